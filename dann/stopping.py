"""The one way a long job is stopped: Ctrl-C (SIGINT) and SIGTERM (a cluster's time limit,
`timeout`, a closed terminal) ask it to stop at its next safe point instead of killing it, so
that it saves what it did; main.py exits 1 then, and the same command continues the job."""
import contextlib
import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_requests(forward=None):
    """While active, SIGINT and SIGTERM set stop["now"] (and call forward(signal) first, e.g. to pass
    the signal on to child processes); the previous handlers come back on exit."""
    stop = {"now": False}

    def handle(sig, _frame):
        if forward is not None:
            forward(sig)
        stop["now"] = True

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
