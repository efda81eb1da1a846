"""A run folder, the one place that knows its layout: config.json (the settings, written when the
run starts), checkpoint.pt (written every --save-every epochs, on Ctrl-C and at the end),
metrics.json (written last: a run is finished exactly when it exists), TensorBoard events,
skipped_pictures.tsv, and .lock, which holds the folder for one main.py at a time."""
import contextlib
import dataclasses
import fcntl
import json
import shutil
import time
from pathlib import Path

from dann.common import UserError, make_folder, save_atomic
from dann.config import Config

CONFIG, CHECKPOINT, METRICS = "config.json", "checkpoint.pt", "metrics.json"


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


def new_run_folder(cfg, out=None):
    """The folder a new run will write to (created only once the data has loaded)."""
    out = Path(out or Path("runs") / f"{cfg.source}-{cfg.target}-{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_new(out)
    return out


def check_new(out):
    """A new run may write to an absent or empty folder, or to one whose run stopped before its
    first checkpoint (nothing in it to lose); never over a run that saved something."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a folder for the run")
    if status(out) != "new":
        raise UserError(f"--out {out} already holds a run; continue it with --resume {out}, or choose another --out")


@contextlib.contextmanager
def claimed(out):
    """Hold run folder `out` for this process: a second main.py writing to it is refused in one
    line. The lock is the operating system's (flock), so a process that crashes or is killed
    releases it. A folder this call created is removed again if the run ends before its
    config.json was written (it could not start: a bad --init, Ctrl-C while setting up)."""
    created = not out.exists()
    make_folder(out)
    lock = open(out / ".lock", "a")
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
