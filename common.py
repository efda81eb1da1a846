"""The small pieces every module and script shares: the one-line error for an expected failure,
the scripts' entry point that prints it, and writes that never leave a half-written file."""
import os
import sys
from pathlib import Path

import torch


class UserError(Exception):
    """An expected failure (bad file, bad flag, missing data): its message says what to do."""


def run_script(main, interrupted="interrupted"):
    """A script's entry point: main()'s int is the exit code (anything else means 0); a
    UserError or Ctrl-C is one line on stderr and exit code 1, not a traceback."""
    try:
        code = main()
    except UserError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(interrupted)
    sys.exit(code if isinstance(code, int) else 0)


def make_folder(path):
    """mkdir -p, failing with one line (a file in the way, no permission) instead of a traceback."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder {path} ({e.strerror or type(e).__name__}); "
                        "move what is in the way or choose another folder") from None
    return path


def write_atomic(path, write):
    """write(a temporary path beside `path`), then rename it to `path`: a crash or a full disk
    never leaves a half-written file, and a failed write is one line."""
    path = Path(path)
    make_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as a RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "the write failed; is the disk full?"
        raise UserError(f"could not write {path} ({reason}); what was there before is untouched") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_atomic(obj, path):
    """write_atomic for text (a str) or anything torch.save takes."""
    return write_atomic(path, lambda tmp: tmp.write_text(obj) if isinstance(obj, str) else torch.save(obj, tmp))
