"""What every script at the repository's root does the same way: an expected failure or Ctrl-C is
one line on stderr and a non-zero exit, never a traceback."""
import sys

from dann.common import UserError


def one_line_interrupts():
    """Make Ctrl-C before run_script starts (while torch and the package load) one line too. A
    script calls this first of all; nothing else changes sys.excepthook."""
    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
        else:
            sys.__excepthook__(kind, value, traceback)
    sys.excepthook = hook


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
