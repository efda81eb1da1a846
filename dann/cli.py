"""What every script at the repository's root does the same way: an expected failure or Ctrl-C is
one line on stderr and a non-zero exit, never a traceback."""
import os
import signal
import sys

from dann.common import UserError, mismatched_torchvision


def one_line_errors():
    """Make what can go wrong before run_script starts (while torch and the package load) one line
    too: Ctrl-C, and a torchvision built for another torch. A script calls this first of all;
    nothing else changes sys.excepthook."""
    if sys._getframe(1).f_globals.get("__name__") == "__main__":  # a script, not a test importing one
        signal.signal(signal.SIGINT, end_while_loading)

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
        elif issubclass(kind, RuntimeError) and "torchvision::" in str(value):
            print(f"error: {mismatched_torchvision()}", file=sys.stderr)
        else:
            sys.__excepthook__(kind, value, traceback)
    sys.excepthook = hook


def end_while_loading(signum, frame):
    """Ctrl-C before run_script starts: torch's import runs Python called from C++ (pybind11), where
    a KeyboardInterrupt aborts the process with a C++ message, so nothing is raised: the process
    ends here, having written nothing yet, with the shell's code for Ctrl-C."""
    os.write(2, b"interrupted\n")
    os._exit(128 + signal.SIGINT)


def parsed_config(parser, args):
    """The Config that parsed flags describe, or the parser's one-line error (exit code 2); --seeds
    with a seed twice is refused too: a row's runs differ by their seeds."""
    from dann.config import Config
    seeds = getattr(args, "seeds", None)
    if seeds and len(set(seeds)) < len(seeds):
        parser.error(f"--seeds {' '.join(map(str, seeds))}: each seed once (a row's runs differ by their seeds)")
    try:
        return Config.from_flags(args)
    except ValueError as e:
        parser.error(str(e))


def run_script(main, interrupted="interrupted"):
    """A script's entry point: main()'s int is the exit code (anything else means 0); a
    UserError is one line on stderr and exit code 1, Ctrl-C one line and the shell's code for it
    (as during start-up: end_while_loading), never a traceback."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here Ctrl-C raises: work may clean up
    try:
        code = main()
    except UserError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    sys.exit(code if isinstance(code, int) else 0)
