"""A run folder, the one place that knows its layout: config.json (the settings, written when the
run starts), checkpoint.pt (written every --save-every epochs, on Ctrl-C and at the end),
metrics.json (written last: a run is finished exactly when it exists), TensorBoard events,
skipped_pictures.tsv, and .lock, which holds the folder for one main.py at a time."""
import contextlib
import dataclasses
import fcntl
import json
import re
import shlex
import shutil
import time
from pathlib import Path

from dann.common import UserError, make_folder, save_atomic, write_failure
from dann.config import Config

CONFIG, CHECKPOINT, METRICS = "config.json", "checkpoint.pt", "metrics.json"
# What a run writes before its first checkpoint: a folder holding only these is a run that can start
# again there. A --seeds row's folder holds its runs' folders and summary.json.
BEFORE_FIRST_SAVE = re.compile(r"(config\.json|\.lock|events.*|skipped_pictures\.tsv|\..*\.tmp)")
ROW = re.compile(r"(seed-?\d+|summary\.json|\.summary\.json\..*\.tmp)")


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


def new_run_folder(cfg, out=None, holds=BEFORE_FIRST_SAVE):
    """The folder a new run (or, with holds=ROW, a --seeds row) will write to. Without --out:
    runs/<source>-<target>-<method>-<time>, made here so that a run started in the same second
    gets the next free name (-2, -3, ...); an --out folder is made only once the data has loaded."""
    if out is None:
        return reserve(Path("runs") / f"{Path(cfg.source).name}-{Path(cfg.target).name}-{cfg.method}-"
                                      f"{time.strftime('%Y%m%d-%H%M%S')}")
    out = Path(out)
    check_new(out, holds)
    return out


def reserve(base):
    """Make a new empty folder named base, or base-2, base-3, ... whichever is free first."""
    make_folder(base.parent)
    for n in range(1, 10_000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            what, todo = write_failure(base.parent, e)
            raise UserError(f"cannot create the run folder {folder} ({what}); {todo}, or give --out") from None
    raise UserError(f"{base.parent} holds 10,000 runs named {base.name}; give --out")


def check_new(out, holds=BEFORE_FIRST_SAVE):
    """A new run may write to an absent or empty folder, or to one whose run stopped before its
    first checkpoint (nothing in it to lose); never over a run that saved something, and never
    into a folder of other files, which the run's own files could replace."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a folder for the run")
    if status(out) != "new":
        raise UserError(f"--out {out} already holds a run; continue it with --resume {shown(out)}, or choose "
                        "another --out")
    foreign = sorted(p.name for p in out.iterdir() if not holds.fullmatch(p.name)) if out.is_dir() else []
    if foreign:
        raise UserError(f"--out {out} holds files that are not a run's ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder")


@contextlib.contextmanager
def claimed(out):
    """Hold run folder `out` for this process: a second main.py writing to it is refused in one
    line. The lock is the operating system's (flock), so a process that crashes or is killed
    releases it. A folder this call created is removed again if the run ends before its
    config.json was written (it could not start: a bad --init, Ctrl-C while setting up); so is an
    empty one, as new_run_folder reserves them."""
    created = not out.exists() or not any(out.iterdir())
    make_folder(out)
    try:
        lock = open(out / ".lock", "a")
    except OSError as e:
        what, todo = write_failure(out, e)
        raise UserError(f"cannot write in the run folder {out} ({what}); {todo}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{out} is in use by another training (main.py) right now; wait for it to end, "
                            "or choose another --out") from None
        yield
    except BaseException:
        if created and not (out / CONFIG).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        lock.close()


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
    """A run folder's Config, on the device asked for now (the one setting a resume may change)."""
    return dataclasses.replace(read_config(folder, f"--resume {folder}"), device=device)


def write_config(folder, cfg):
    save_atomic(json.dumps(cfg.as_dict(), indent=2), Path(folder) / CONFIG)


def read_metrics(folder):
    return json.loads((Path(folder) / METRICS).read_text())


def write_metrics(folder, metrics):
    save_atomic(json.dumps(metrics, indent=2), Path(folder) / METRICS)
