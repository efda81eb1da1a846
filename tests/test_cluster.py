"""choose.py --cluster on a real Ray cluster: a head and a second node started on this machine, a
tiny sweep spread over both, one Ray worker killed in the middle of a run, the sweep continued, and
that run's weights the same as when it trains on this machine alone."""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_script

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-cluster.txt")
# one worker for every test that starts Ray here: `--cluster auto` would join another test's cluster
pytestmark = pytest.mark.xdist_group("ray")

# a token of the test's own (Ray's token authentication), so no user's ~/.ray/auth_token is read or made
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
       "RAY_AUTH_TOKEN": secrets.token_hex(32)}
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
# 40 MNIST pictures, 5 steps an epoch: a run trains for a few seconds, time to kill one in the middle
SWEEP = ["--source", "mnist", "--target", "mnist_m", "--no-download", "--device", "cpu", "--batch-size", "8",
         "--epochs", "150", "--eval-every", "1000", "--candidates", "source-only", "dann", "--seeds", "0", "1"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """The address of a two-node Ray cluster (one CPU a node), stopped afterwards: each node is a
    `ray start --block` process that stops what it started when it ends."""
    address = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen([*RAY, "start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=1",
                               "--include-dashboard=false", "--disable-usage-stats", "--block"],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:  # the second node waits for the head by itself
        nodes.append(subprocess.Popen([*RAY, "start", f"--address={address}", "--num-cpus=1", "--block"], env=ENV,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for_nodes(address, 2)
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


def wait_for_nodes(address, count, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = subprocess.run([*RAY, "status", f"--address={address}"], env=ENV, capture_output=True, text=True)
        active = status.stdout.split("Active:")[-1].split("Pending:")[0]
        if status.returncode == 0 and active.count("node_") >= count:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not reach {count} node(s)")


def main_py_processes(run_folder):
    """pid -> parent pid of the training processes (`python -m dann.train`, main.py's command) of `run_folder`."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = stat.read_bytes().split(b"\0")
            parent = int((stat.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"dann.train" in argv and str(run_folder).encode() in argv:
            found[int(stat.parent.name)] = parent
    return found


def kill_worker_while_training(sweep, run, log):
    """SIGKILL the Ray worker whose main.py trains `run`, once the run is in its training loop."""
    deadline = time.time() + 120
    while time.time() < deadline and sweep.poll() is None:
        if log.is_file() and "step/s" in log.read_text(errors="replace"):
            for _, worker in main_py_processes(run).items():
                os.kill(worker, signal.SIGKILL)
                return
        time.sleep(0.05)
    pytest.fail(f"{run} never started training")


def weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc")
def test_a_sweep_on_a_two_node_ray_cluster_survives_a_killed_worker_and_matches_a_local_run(
        cluster, synthetic_root, tmp_path):
    out = tmp_path / "sweep"
    args = [sys.executable, str(REPO / "choose.py"), *SWEEP, "--data-dir", str(synthetic_root), "--cluster", cluster,
            "--out", str(out)]
    first = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    alone = tmp_path / "alone"  # the killed run trained on this machine alone, meanwhile, to compare
    local = subprocess.Popen([sys.executable, str(REPO / "choose.py"), *SWEEP[:-5], "dann", "--seeds", "0", "--jobs", "1",
                              "--data-dir", str(synthetic_root), "--out", str(alone)], cwd=tmp_path, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    kill_worker_while_training(first, out / "dann" / "seed0", out / "logs" / "dann-seed0.log")
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 1, stderr[-2000:]
    assert "failed dann/seed0: its Ray task ended with" in stderr, stderr[-2000:]
    assert "not finished: dann/seed0" in stdout
    logs = [p.read_text() for p in (out / "logs").glob("*.log")]
    nodes = {line.split()[-1] for text in logs for line in text.splitlines() if line.startswith("on Ray node")}
    assert len(nodes) == 2  # the runs spread over both nodes

    again = run_script("choose.py", *args[2:], cwd=tmp_path, env=ENV)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuing dann/seed0" in again.stderr  # the killed run saved when its worker died, and resumed
    report = json.loads((out / "choice.json").read_text())
    assert [row["status"] for row in report["runs"]] == ["done"] * 4

    assert local.wait(timeout=300) == 0, (alone / "logs" / "dann-seed0.log").read_text()[-2000:]
    on_cluster, here = weights(out / "dann" / "seed0"), weights(alone / "dann" / "seed0")
    assert on_cluster.keys() == here.keys() and all(torch.equal(on_cluster[k], here[k]) for k in here)


    # a run that no node can hold would wait in Ray's queue for ever: refused in one line, nothing made
    gpu = run_script("choose.py", *args[2:-2], "--gpus-per-run", "1", "--out", tmp_path / "gpu", cwd=tmp_path, env=ENV)
    assert gpu.returncode == 1 and "--gpus-per-run 1: no node of the cluster has that many GPUs" in gpu.stderr, gpu.stderr
    assert not (tmp_path / "gpu").exists()

    # a results row's seeds as tasks of the same cluster
    row = run_script("main.py", *SWEEP[:SWEEP.index("--epochs")], "--epochs", "2", "--seeds", "0", "1", "--data-dir",
                     synthetic_root, "--cluster", cluster, "--out", tmp_path / "row", cwd=tmp_path, env=ENV)
    assert row.returncode == 0, row.stderr[-2000:]
    summary = json.loads((tmp_path / "row" / "summary.json").read_text())
    assert len(summary["target_test_acc"]["runs"]) == 2 and row.stdout.strip().splitlines()[-1] == summary["line"]
    assert all("on Ray node" in (tmp_path / "row" / "logs" / f"dann-seed{s}.log").read_text() for s in (0, 1))
