"""The one owner of every file the project writes. A file is replaced only when the project can
prove it wrote it: each folder it writes into keeps a manifest, .dann-manifest.json, naming what
the project wrote there with the sha256 of the bytes written (or, for a log the project keeps
appending to, no digest). Anything else in the way is the user's: the command refuses in one line
that names it, before any work starts where the command can know its outputs beforehand, and the
user's file stays byte for byte as it was.

A folder the project makes for itself (a run, a --seeds row, a sweep, an evaluation) also records
what it is, its kind, so that a command never writes into a folder of another kind (choose.py into
a run folder) nor into a folder of the user's. Every write is atomic (a temporary file beside the
target, then a rename), and the manifest is updated under a lock on its folder, so that processes
writing side by side (a sweep's runs, two trainings sharing a decode cache) keep each other's
entries."""
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

from dann.common import UserError, make_folder, write_failure

MANIFEST = ".dann-manifest.json"
TEMPORARY = re.compile(r"\..+\.\d+\.tmp")  # write()'s temporary files: a crash can leave one behind
APPENDED = None  # the digest recorded for a log: proven by its name, as its bytes keep growing


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder):
    """{"kind": what the folder is (None for a folder of the user's), "files": {name: sha256}}; None
    for a file of that name that is not such a manifest (the user's: it is never replaced)."""
    try:
        found = json.loads((Path(folder) / MANIFEST).read_text())
    except FileNotFoundError:
        return {"kind": None, "files": {}}
    except (OSError, ValueError):
        return None
    if isinstance(found, dict) and isinstance(found.get("files"), dict) and set(found) == {"kind", "files"}:
        return found
    return None


def manifest_of(folder):
    """read_manifest, or one line for a file of the user's in the manifest's place."""
    found = read_manifest(folder)
    if found is None:
        raise UserError(f"{Path(folder) / MANIFEST} is not this project's record of what it wrote there; it is "
                        "never replaced: move it, or choose another folder")
    return found


def is_ours(path):
    """True when the project wrote `path` and nobody changed it since. A folder is ours when
    everything in it is (an empty one holds nothing to lose)."""
    path = Path(path)
    if path.name == MANIFEST:
        return read_manifest(path.parent) is not None
    if TEMPORARY.fullmatch(path.name):
        return True
    if path.is_symlink():
        return False
    if path.is_dir():
        return all(is_ours(entry) for entry in path.iterdir())
    files = (read_manifest(path.parent) or {"files": {}})["files"]
    if path.name not in files:
        return False
    return files[path.name] is APPENDED or (path.is_file() and digest(path) == files[path.name])


def replaceable(path):
    return not os.path.lexists(path) or is_ours(path)


def adopt_marked(path, marked):
    """A file the project wrote before it kept manifests is proven its own by the mark it left there
    (`marked(path)`: a decode cache's fingerprint, an annotated copy's PNG field): recorded as ours."""
    path = Path(path)
    if path.is_file() and not is_ours(path) and marked(path):
        record(path, digest(path))


def refuse_foreign(paths, todo):
    """Before any work: one line for the first of `paths` that exists and is not the project's."""
    for path in paths:
        if not replaceable(path):
            raise UserError(f"{path} exists and was not written by this project; it is never replaced: {todo}")


KINDS = {"run": "a run folder of main.py", "row": "a --seeds row of main.py", "sweep": "a sweep of choose.py",
         "evaluation": "an evaluation of valid.py", "model": "a model choose.py shares"}


def check_folder(folder, kind, flag):
    """A folder a command is about to make its own: absent, empty, or already a `kind` folder of
    the project's (which the command continues). Anything else is refused, naming what is there."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise UserError(f"{flag} {folder} is a file; name a folder")
    entries = sorted(p.name for p in folder.iterdir() if not (p.name == MANIFEST and is_ours(p))) \
        if folder.is_dir() else []
    found = (read_manifest(folder) or {"kind": None})["kind"]
    if found == kind or (not entries and found is None):
        return
    if found in KINDS:
        raise UserError(f"{flag} {folder} is {KINDS[found]}, not {KINDS[kind]}; choose another {flag}")
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise UserError(f"{flag} {folder} holds files that are not {KINDS[kind]}'s ({shown}); give a new or empty folder")


@contextlib.contextmanager
def locked(folder):
    """The folder's manifest to change, under an exclusive lock of the folder itself (flock on the
    folder, so that no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = manifest_of(folder)
        yield manifest
        if not manifest["files"] and manifest["kind"] is None:  # nothing of the project's left here
            (Path(folder) / MANIFEST).unlink(missing_ok=True)
            return
        tmp = Path(folder) / f".{MANIFEST}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, Path(folder) / MANIFEST)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        os.close(fd)


def claim_folder(folder, kind):
    """Make `folder` (checked by check_folder beforehand) and record its kind."""
    make_folder(folder)
    try:
        with locked(folder) as manifest:
            manifest["kind"] = manifest["kind"] or kind
    except OSError as e:
        what, todo = write_failure(folder, e)
        raise UserError(f"cannot write in {folder} ({what}); {todo}") from None
    return Path(folder)


def record(path, sha256=APPENDED):
    """Enter `path`, which the project has just made, in its folder's manifest."""
    path = Path(path)
    try:
        with locked(path.parent) as manifest:
            manifest["files"][path.name] = sha256
    except OSError as e:
        what, todo = write_failure(path.parent, e)
        raise UserError(f"cannot write in {path.parent} ({what}); {todo}") from None


def write(path, write_to):
    """write_to(a temporary path beside `path`), then rename it to `path` and record it: a crash or a
    full disk never leaves a half-written file, a file of the user's is never replaced, and a
    failed write is one line that names its cause."""
    path = Path(path)
    refuse_foreign([path], "move it, or choose another place to write to")
    make_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_to(tmp)
        sha256 = digest(tmp)
        with locked(path.parent) as manifest:
            os.replace(tmp, path)
            manifest["files"][path.name] = sha256
    except (OSError, RuntimeError) as e:  # torch's zip writer reports its OS errors as RuntimeError
        what, todo = write_failure(path.parent, e)
        raise UserError(f"could not write {path} ({what}); {todo}. What was there before is untouched") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save(obj, path):
    """write() for text (a str), bytes, or anything torch.save takes."""
    if isinstance(obj, str):
        return write(path, lambda tmp: tmp.write_text(obj))
    if isinstance(obj, bytes):
        return write(path, lambda tmp: tmp.write_bytes(obj))
    import torch
    return write(path, lambda tmp: torch.save(obj, tmp))


def move(source, path):
    """Rename a finished file the project made (a verified download) to `path`, and record it."""
    refuse_foreign([path], "move it, or choose another place to write to")
    sha256 = digest(source)
    with locked(Path(path).parent) as manifest:
        os.replace(source, path)
        manifest["files"][Path(path).name] = sha256
        if Path(source).parent == Path(path).parent:
            manifest["files"].pop(Path(source).name, None)


def open_log(path, mode="w"):
    """A log the project writes as it goes (a run's output, a partial download): refused if a file
    of the user's has its name, recorded as ours before the first byte."""
    refuse_foreign([path], "move it, or choose another folder")
    make_folder(Path(path).parent)
    handle = open(path, mode)
    record(path)
    return handle


def forget(path):
    """Remove a file of the project's, and its entry."""
    path = Path(path)
    if path.is_file() and is_ours(path):
        with locked(path.parent) as manifest:
            path.unlink()
            manifest["files"].pop(path.name, None)


def write_new_folder(final, files, flag):
    """Make folder `final` from `files`, (relative path, bytes) pairs, whole or not at all: written
    into a hidden folder beside it, each subfolder's manifest written once, then renamed."""
    final = Path(final)
    if os.path.lexists(final):
        raise UserError(f"{flag}: {final} exists already; remove it or choose another folder")
    partial = final.with_name(f".{final.name}.partial")
    if os.path.lexists(partial) and not is_ours(partial):
        raise UserError(f"{flag}: {partial} exists and was not written by this project; remove it or choose "
                        "another folder")
    shutil.rmtree(partial, ignore_errors=True)
    made = {}
    try:
        for relative, payload in files:
            target = partial / relative
            if target.parent not in made:
                made[target.parent] = {}
                make_folder(target.parent)
            target.write_bytes(payload)
            made[target.parent][target.name] = hashlib.sha256(payload).hexdigest()
        for folder, written in made.items():
            (folder / MANIFEST).write_text(json.dumps({"kind": None, "files": written}, indent=1, sort_keys=True))
        os.replace(partial, final)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        what, todo = write_failure(final.parent if final.parent.is_dir() else Path("."), e)
        raise UserError(f"{flag}: could not write {final} ({what}); {todo}") from None


def png_bytes(picture, **options):
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def distinct_names(paths, name):
    """{path: name(path, k)} with k, the number of the path's last parts a name is made of, as small
    as tells the paths apart (1: the file's own name), so that two inputs never share an output."""
    paths = list(dict.fromkeys(paths))
    chosen = {}
    for path in paths:
        parts = 1
        while parts < len(Path(path).parts) and any(
                name(other, parts) == name(path, parts) for other in paths if other != path):
            parts += 1
        chosen[path] = name(path, parts)
    return chosen

