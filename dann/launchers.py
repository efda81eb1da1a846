"""Where a sweep's runs train: main.py processes on this machine (Local: --jobs side by side, the
default, no dependency) or tasks of a Ray cluster (OnRay: --cluster; Ray places each run on a node
with the CPUs and GPUs it asks for, fractions of a GPU included). Both start a run the same way,
`spawn`: the same main.py command line with the same thread count, so a run gives the same numbers
on either. A run writes only to its run folder and its log, so the sweep learns what happened from
those, wherever the run trained: every node must see them at the same paths (shared storage)."""
import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import time

from dann import outputs
from dann.common import REPO, UserError

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def spawn(argv, log, threads):
    """Start main.py (`argv`) with `threads` threads, its output appended to `log`. On Linux it gets
    SIGTERM, and so saves its run, if the process that started it dies (a Ray worker killed, a sweep
    killed by SIGKILL): nothing trains on unseen."""
    with outputs.open_log(log, "a") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": importable()},
                                preexec_fn=_as_if_started_by_hand)


def _as_if_started_by_hand():
    """In the child before main.py starts: no signal blocked (a Ray worker blocks some, and a child
    inherits that), and SIGTERM when the parent dies (Linux)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if _LIBC:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def importable():
    """PYTHONPATH with the folder that holds this package first, so that `python -m dann.train` finds it
    from any folder, installed or not."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


class Local:
    """main.py processes on this machine, `jobs` at a time with `threads` threads each."""

    def __init__(self, jobs, threads):
        self.slots, self.threads = jobs, threads

    def describe(self):
        return f"{self.slots} at a time with {self.threads} thread(s) each"

    def open(self):
        pass

    def start(self, argv, log):
        return spawn(argv, log, self.threads)

    def ended(self, process):
        return process.poll() is not None

    def failure(self, process):
        """Why a run ended without finishing, beyond what its log says: nothing here (the log has it)."""
        return None

    def stop(self, processes, sig):
        for process in processes:
            process.send_signal(sig)  # each main.py saves its run and exits

    def close(self):
        pass


def train_on_node(argv, log, threads):
    """A Ray task: one run's main.py on the node Ray chose, to its end. Cancelling the task (the sweep's
    Ctrl-C) reaches it as KeyboardInterrupt and is passed on as SIGTERM, so the run saves as it would
    locally."""
    import ray
    with outputs.open_log(log, "a") as out:
        out.write(f"on Ray node {ray.get_runtime_context().get_node_id()}\n")
    process = spawn(argv, log, threads)
    try:
        while process.poll() is None:  # not wait(): Ray's cancel is an exception raised between bytecodes
            time.sleep(0.2)
        return process.returncode
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        return process.wait()


def answers(address, timeout=5.0):
    """Refuse, in one line, an address where nothing listens (Ray itself would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--cluster {address}: give 'auto' or the head's host:port, as `ray start --head` prints it")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"--cluster {address}: no Ray cluster answers there ({e.strerror or e}); start one with: "
                        "ray start --head, then pass the address it prints, or use --cluster auto") from None


class OnRay:
    """Each run a task of a Ray cluster: cluster "auto" starts Ray on this machine for the sweep, else
    it is the address of a running cluster (`ray start --head` prints it). A run asks for `cpus`
    CPUs and `gpus` GPUs and uses ceil(cpus) threads; Ray runs as many at once as the nodes hold."""

    def __init__(self, cluster, cpus, gpus):
        try:
            import ray
        except ImportError:
            raise UserError("--cluster needs Ray, which is not installed: pip install -r requirements-cluster.txt") from None
        if cluster != "auto":
            answers(cluster)
        self.ray, self.cluster, self.cpus, self.gpus = ray, cluster, cpus, gpus
        self.threads, self.slots, self.task = max(1, math.ceil(cpus)), math.inf, None

    def open(self):
        """Join (or with "auto" start) the cluster, once there is a run to train (a sweep with nothing
        left to train starts no Ray), and before the sweep takes Ctrl-C: ray.init sets handlers of its own."""
        if self.task is not None:
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        local = {"include_dashboard": False} if self.cluster == "auto" else {}
        try:
            self.ray.init(address="local" if self.cluster == "auto" else self.cluster, log_to_driver=False,
                          logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": importable()}}, **local)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--cluster {self.cluster}: no Ray cluster could be joined ({str(e).splitlines()[0]}); "
                            "start one with: ray start --head, then pass the address it prints, or use --cluster auto"
                            ) from None
        self.refuse_what_no_node_holds()
        self.task = self.ray.remote(max_retries=0)(train_on_node)  # a dead worker is reported; the same command resumes

    def refuse_what_no_node_holds(self):
        """Ray would queue a run that no node can hold for ever: say so instead."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        for flag, resource, wanted in (("--cpus-per-run", "CPU", self.cpus), ("--gpus-per-run", "GPU", self.gpus)):
            most = max((n.get(resource, 0) for n in nodes), default=0)
            if wanted > most:
                self.ray.shutdown()
                raise UserError(f"{flag} {wanted:g}: no node of the cluster has that many {resource}s (the most: "
                                f"{most:g}); ask for fewer, or add a node that has them")

    def describe(self):
        return (f"as Ray tasks on {'this machine' if self.cluster == 'auto' else self.cluster} with "
                f"{self.cpus:g} CPU(s), {self.gpus:g} GPU(s) and {self.threads} thread(s) each")

    def start(self, argv, log):
        return self.task.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(argv, str(log), self.threads)

    def ended(self, task):
        return bool(self.ray.wait([task], timeout=0)[0])

    def failure(self, task):
        try:
            self.ray.get(task)
        except self.ray.exceptions.RayError as e:
            return f"its Ray task ended with {type(e).__name__}"
        return None

    def stop(self, tasks, sig):
        for task in tasks:
            self.ray.cancel(task)

    def close(self):
        if self.task is not None:
            self.ray.shutdown()


# ---------------------------------------------------------------- the flags that choose between them

def add_flags(parser, group, jobs_default="the CPU's cores, at most 4"):
    """--jobs in `group`; --cluster, --cpus-per-run and --gpus-per-run in a group of their own."""
    group.add_argument("--jobs", type=int, default=None, metavar="J",
                       help=f"on this machine: main.py processes side by side (default: {jobs_default}), "
                            "each with cores / J threads unless OMP_NUM_THREADS says otherwise")
    cluster = parser.add_argument_group("on several machines (README, 'On several machines'; needs Ray: pip install "
                                        "-r requirements-cluster.txt)")
    cluster.add_argument("--cluster", metavar="auto|ADDRESS",
                         help="train each run as a task of a Ray cluster instead: 'auto' starts Ray on this machine, "
                              "an ADDRESS (host:port, as `ray start --head` prints it) joins a running cluster. "
                              "Every node must see this checkout, the data folder and --out at the same paths")
    cluster.add_argument("--cpus-per-run", type=float, default=None, metavar="C",
                         help="with --cluster: the CPUs each run reserves; its main.py uses C threads, rounded up "
                              "(default: 1)")
    cluster.add_argument("--gpus-per-run", type=float, default=None, metavar="G",
                         help="with --cluster: the GPUs each run reserves; a fraction packs several runs on one card "
                              "(0.25: four) (default: 0)")


def check_flags(parser, args):
    """--jobs belongs to this machine, --cpus-per-run and --gpus-per-run to --cluster."""
    if args.cluster is None:
        given = [f for f, v in (("--cpus-per-run", args.cpus_per_run), ("--gpus-per-run", args.gpus_per_run))
                 if v is not None]
        if given:
            parser.error(f"{' and '.join(given)} need --cluster (on this machine, --jobs says how many runs share it)")
    elif args.jobs is not None:
        parser.error("--jobs is for this machine; with --cluster, --cpus-per-run and --gpus-per-run say what a run needs")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.cpus_per_run is not None and args.cpus_per_run <= 0:
        parser.error("--cpus-per-run must be above 0")
    if args.gpus_per_run is not None and args.gpus_per_run < 0:
        parser.error("--gpus-per-run must be 0 or more")


def from_flags(args):
    """The launcher that checked flags ask for."""
    if args.cluster is not None:
        return OnRay(args.cluster, args.cpus_per_run or 1.0, args.gpus_per_run or 0.0)
    jobs = args.jobs or min(4, os.cpu_count() or 1)
    return Local(jobs, int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // jobs)))
