"""A run folder, the one place that knows its layout: config.json (the settings, written when the
run starts), checkpoint.pt (written every --save-every epochs, on Ctrl-C and at the end),
metrics.json (written last: a run is finished exactly when it exists), TensorBoard events,
skipped_pictures.tsv, and .lock, which holds the folder for one main.py at a time. What may be
replaced there is dann/outputs.py's to say, as for every file the project writes."""
import contextlib
import dataclasses
import fcntl
import json
import shlex
import shutil
import time
from pathlib import Path

from dann import outputs
from dann.common import UserError, make_folder, write_failure
from dann.config import Config

CONFIG, CHECKPOINT, METRICS, LOCK = "config.json", "checkpoint.pt", "metrics.json", ".lock"


def shown(folder):
    """A folder as it can be pasted into a shell."""
    return shlex.quote(str(folder))


def status(folder):
    """"finished" (metrics.json), "stopped" (a checkpoint, no metrics yet) or "new"."""
    folder = Path(folder)
    if (folder / METRICS).is_file():
        return "finished"
    return "stopped" if (folder / CHECKPOINT).is_file() else "new"


def latest_finished(runs_dir="runs"):
    """The newest finished run's checkpoint.pt under runs_dir, a --seeds row's seed<S>/ folders
    included: a stopped run is used only when named."""
    found = sorted((p for p in Path(runs_dir).glob(f"**/{CHECKPOINT}") if status(p.parent) == "finished"),
                   key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def new_run_folder(cfg, out=None, kind="run"):
    """The folder a new run (or, with kind="row", a --seeds row) will write to. Without --out:
    runs/<source>-<target>-<method>-<time>, or -2, -3, ... when a run started in the same second
    holds that name; nothing is made before the run starts (claimed)."""
    if out is None:
        return free_name(Path("runs") / f"{Path(cfg.source).name}-{Path(cfg.target).name}-{cfg.method}-"
                                         f"{time.strftime('%Y%m%d-%H%M%S')}")
    out = Path(out)
    check_new(out, kind)
    return out


def free_name(base):
    """base, or base-2, base-3, ..., whichever no file or folder holds yet."""
    for n in range(1, 10_000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if not folder.exists():
            return folder
    raise UserError(f"{base.parent} holds 10,000 runs named {base.name}; give --out")


def check_new(out, kind="run"):
    """A new run may write to an absent or empty folder, or to a run folder of the project's that
    stopped before its first checkpoint (nothing in it to lose); never over a run that saved
    something, and never into a folder of the user's."""
    if status(out) != "new":
        raise UserError(f"--out {out} already holds a run; continue it with --resume {shown(out)}, or choose "
                        "another --out")
    outputs.check_folder(out, kind, "--out")


@contextlib.contextmanager
def claimed(out):
    """Hold run folder `out` for this process: a second main.py writing to it is refused in one
    line. The lock is the operating system's (flock), so a process that crashes or is killed
    releases it. A folder this call created is removed again if the run ends before its
    config.json was written (it could not start: a bad --init, Ctrl-C while setting up)."""
    created = not out.exists()
    if created:
        try:
            make_folder(out.parent)
            out.mkdir()
        except FileExistsError:  # another run took the name first (the same second)
            raise UserError(f"{out} was made by another command just now; start again (or give --out)") from None
    outputs.refuse_foreign([out / LOCK], "move it, or choose another --out")
    try:
        lock = open(out / LOCK, "a")
    except OSError as e:
        what, todo = write_failure(out, e)
        raise UserError(f"cannot write in the run folder {out} ({what}); {todo}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{out} is in use by another training (main.py) right now; wait for it to end, "
                            "or choose another --out") from None
        try:
            outputs.record(out / LOCK)
            outputs.claim_folder(out, "run")
            yield
        except BaseException:
            if not (out / CONFIG).exists():
                undo_claim(out, created)
            raise
    finally:
        lock.close()


def undo_claim(out, created):
    """A run that could not start leaves nothing behind: the folder it made, or in a folder that was
    there before, the lock and manifest it added."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
    elif all(p.name in (LOCK, outputs.MANIFEST) for p in out.iterdir()):
        for name in (LOCK, outputs.MANIFEST):
            (out / name).unlink(missing_ok=True)


def read_config(folder, where=None):
    """A run folder's Config; `where` names the folder in the one-line errors (default: the folder)."""
    where = where or str(folder)
    cfg_file = Path(folder) / CONFIG
    if not cfg_file.is_file():
        raise UserError(f"{where}: no config.json there; is it a run folder of main.py?")
    try:
        saved = json.loads(cfg_file.read_text())
    except ValueError:
        raise UserError(f"{where}: config.json is not valid JSON; start a new run instead") from None
    return Config.from_saved(saved, f"{where}: config.json")


def resumed_config(folder, device):
    """A run folder's Config, on the device asked for now (the one setting a resume may change). A
    run folder made before the project kept manifests is adopted: its run's files become ones
    the resumed run may replace."""
    cfg = read_config(folder, f"--resume {folder}")
    if not (Path(folder) / outputs.MANIFEST).exists():
        for name in (CONFIG, CHECKPOINT, METRICS, LOCK):
            if (Path(folder) / name).is_file():
                outputs.record(Path(folder) / name, None if name == LOCK else outputs.digest(Path(folder) / name))
    return dataclasses.replace(cfg, device=device)


def write_config(folder, cfg):
    outputs.save(json.dumps(cfg.as_dict(), indent=2), Path(folder) / CONFIG)


def read_metrics(folder):
    return json.loads((Path(folder) / METRICS).read_text())


def write_metrics(folder, metrics):
    outputs.save(json.dumps(metrics, indent=2), Path(folder) / METRICS)


def unfinished(ckpt, path):
    """None for a finished model; else "unfinished, step K of N" (a run stopped before its end).
    A weights-only file is a shared, finished model; a run's checkpoint says its total steps, and
    one from before it did is finished when its run folder holds metrics.json."""
    if "optimizer" not in ckpt:
        return None
    total = ckpt.get("total_steps")
    if total is None:
        return None if status(Path(path).parent) == "finished" else f"unfinished, step {ckpt['step']}"
    return None if ckpt["step"] >= total else f"unfinished, step {ckpt['step']} of {total}"
