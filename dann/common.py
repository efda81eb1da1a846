"""The small pieces every module shares: the one-line error for an expected failure, folders made
with one, and what a failed write says. Writing itself belongs to dann/outputs.py."""
import errno
import os
import shutil
from dataclasses import field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the folder that holds the package: a clone, or site-packages


def shipped(folder):
    """pretrained/ or images/: the clone's, where the package runs from one, else the copy that `pip
    install .` put inside the package (pyproject.toml maps them to dann/_pretrained and dann/_images)."""
    installed = Path(__file__).resolve().parent / f"_{folder}"
    return installed if installed.is_dir() else REPO / folder


def restore_hint(folder):
    """How to get back a damaged file of `folder` (a shipped() folder)."""
    inside = folder.parent == Path(__file__).resolve().parent
    return "reinstall the package: pip install --force-reinstall ." if inside else f"git checkout -- {folder.name}/"


def setting(default, help, group=None, **flag):
    """A field of a settings dataclass (dann/config.py's Config, a method's settings in dann/methods.py):
    its default, its --help text, its group in --help (a method's settings: the method's), argparse extras."""
    return field(default=default, metadata={"help": help, "group": group, **flag})


class UserError(Exception):
    """An expected failure (bad file, bad flag, missing data): its message says what to do."""


def make_folder(path):
    """mkdir -p, failing with one line (a file in the way, no permission) instead of a traceback."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder {path} ({e.strerror or type(e).__name__}); "
                        "move what is in the way or choose another folder") from None
    return path


CAUSES = {  # errno -> (what happened, what to do)
    errno.EACCES: ("permission denied", "make the folder writable or choose another"),
    errno.EPERM: ("operation not permitted", "make the folder writable or choose another"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
    errno.ENOSPC: ("the disk is full", "free some space or choose another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or choose another disk"),
}


def write_failure(folder, error):
    """(what happened, what to do) for a failed write into `folder`. torch's zip writer wraps the
    OS error in a RuntimeError without its errno; the OS is then asked directly."""
    code = getattr(error, "errno", None)
    if code is None:
        probe = Path(folder) / f".write-probe.{os.getpid()}"
        try:
            probe.write_bytes(b"")
            code = errno.ENOSPC if shutil.disk_usage(folder).free < (1 << 20) else None
        except OSError as e:
            code = e.errno
        finally:
            probe.unlink(missing_ok=True)
    if code in CAUSES:
        return CAUSES[code]
    text = str(error).strip()
    reason = getattr(error, "strerror", None) or (text.splitlines()[0] if text else type(error).__name__)
    return reason, "check the folder and the disk, then try again"


def mismatched_torchvision():
    """What to say when torchvision's compiled operators do not load into this torch: each torch
    2.N needs torchvision 0.(N + 15), built for the same device (a CPU-only torch with a CUDA
    torchvision, or the reverse, fails the same way)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        torch_version, vision_version = version("torch"), version("torchvision")
    except PackageNotFoundError:
        return "torch or torchvision is not installed; install both with: pip install -r requirements.txt"
    release = torch_version.split("+")[0]
    minor = int(release.split(".")[1])
    index = "--index-url https://download.pytorch.org/whl/cpu " if "+cpu" in torch_version else ""
    return (f"torchvision {vision_version} does not fit torch {torch_version} (its operators do not load); install "
            f"the matching pair with: pip install {index}torch=={release} torchvision==0.{minor + 15}.*")
