"""Every script in experiments/ runs end to end (tiny data, one epoch): its first row and its sweeps
train, the flags of its other rows are parsed, so that none can rot."""
import os
import re
import shlex
import subprocess

import pytest
import torch

import main
from conftest import REPO

GPU_ONLY = {"gpu_packing.sh"}  # runs on a CUDA device: test_the_gpu_packing_script_runs_on_cuda
SCRIPTS = sorted(s for s in (REPO / "experiments").glob("*.sh") if s.name not in {"lib.sh", *GPU_ONLY})  # lib.sh: what they share
TINY = ["--limit", "40", "--epochs", "1", "--seeds", "0", "--no-download", "--device", "cpu"]


def rows_in(script):
    return len(re.findall(r"^row ", script.read_text(), re.M))


# what a script's environment narrows it to here: carry_over.sh's five tasks and seven candidates would
# add minutes of process start-ups and test nothing its one task and three new candidates do not, nor
# the other sweeps' candidates what one or two do (test_choose.py trains DIRT-T from its DANN run)
NARROWED = {"carry_over.sh": {"TASKS": "synth:mnist", "CANDIDATES": "adamatch self-ensemble source-only"},
            "label_free_estimates.sh": {"CANDIDATES": "source-only"}, "multi_source.sh": {"CANDIDATES": "source-only"},
            "synth_tasks.sh": {"CANDIDATES": "source-only"}, "choose_without_labels.sh": {"CANDIDATES": "source-only"},
            "cluster_overhead.sh": {"CANDIDATES": "source-only"}}
# scripts whose first row is a plain recipe that another script's first row (or another test) trains
# already: only their flags are parsed here
NOT_TRAINED = {"paper_table.sh", "short_schedule.sh", "quick_trial.sh", "self_train.sh",
               "dann_dirt_t.sh",  # plain dann, trained everywhere
               "svhn_network.sh",  # dann with --arch svhn, whose step test_bench trains
               "carry_over_full.sh", "other_methods.sh",  # self-ensemble and dann-im: test_train trains them
               "augment.sh", "dropout.sh",  # target-only with flags test_train and test_methods train
               "multi_source_full.sh",  # test_multi_source trains two sources
               "french_network.sh",  # test_methods trains and resumes its recipe
               "french_input.sh"}  # the same recipe with another input, which test_methods prepares


def sweeps_in(script):
    """The sweeps a script runs: its choose.py lines (one in a loop over TASKS runs once here)."""
    return len(re.findall(r"^\s*python choose.py ", script.read_text(), re.M))


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # cluster_overhead.sh starts Ray (`--cluster auto`): never beside test_cluster's
def test_every_experiment_script_trains_its_first_row_and_sweeps_and_every_other_row_parses(
        synthetic_root, tmp_path):
    assert {s.name for s in SCRIPTS} >= {"paper_table.sh", "dann_dirt_t.sh", "short_schedule.sh"}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # each main.py start-up costs seconds
    running = {}
    for script in SCRIPTS:  # side by side: most of each script's time is Python starting up
        running[script] = subprocess.Popen(
            ["bash", str(script), *TINY, "--data-dir", str(synthetic_root)], cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**env, "RUNS": str(tmp_path / script.stem), "ROWS_FILE": str(tmp_path / f"{script.stem}.rows"),
                 "TRAIN_ROWS": "0" if script.name in NOT_TRAINED else "1", **NARROWED.get(script.name, {})})
    for script, process in running.items():
        out = process.communicate(timeout=600)[0]
        assert process.returncode == 0, f"{script.name}:\n{out[-3000:]}"
        trained = 0 if script.name in NOT_TRAINED else min(1, rows_in(script))
        assert rows_in(script) + sweeps_in(script) > 0, script.name
        assert len(re.findall(r"mean \+- sample std of \d seeds", out)) == trained, f"{script.name}:\n{out[-3000:]}"
        assert len(list((tmp_path / script.stem).glob("*/summary.json"))) == trained
        assert len(re.findall(r"^chosen: ", out, re.M)) == sweeps_in(script), f"{script.name}:\n{out[-3000:]}"
        rows = tmp_path / f"{script.stem}.rows"
        untrained = rows.read_text().splitlines() if rows.exists() else []
        assert len(untrained) == rows_in(script) - trained, script.name
        for line in untrained:  # the flags of every other row: main.py would take them
            assert main.parse_args(shlex.split(line)).config.method, line


@pytest.mark.slow
def test_a_finished_row_is_not_trained_again(synthetic_root, tmp_path):
    run = ["bash", str(REPO / "experiments" / "quick_trial.sh"), *TINY, "--data-dir", str(synthetic_root)]
    env = {**os.environ, "RUNS": str(tmp_path / "runs")}
    first = subprocess.run(run, capture_output=True, text=True, env=env)
    again = subprocess.run(run, capture_output=True, text=True, env=env)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "quick-trial (done already): target test" in again.stdout and "final model" not in again.stderr


@pytest.mark.slow
def test_the_photograph_set_is_the_same_every_time_and_a_partial_one_is_completed(tmp_path, monkeypatch):
    from experiments import photo_digits
    monkeypatch.setattr(photo_digits, "PER_KIND", 2)
    photo_digits.make_set(tmp_path / "a")
    names = sorted(p.name for p in (tmp_path / "a").glob("*.jpg"))
    assert names == sorted(f"{kind}_{i:02d}_{i}.jpg" for kind in photo_digits.KINDS for i in range(2))
    (tmp_path / "a" / "crowded_01_1.jpg").unlink()  # a set made before that kind existed, or cut short
    photo_digits.make_set(tmp_path / "a")
    photo_digits.make_set(tmp_path / "b")
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert not list((tmp_path / "a").glob("*.part"))
    shares = photo_digits.read_set(tmp_path / "a", "mnist+synth-mnist_m-self-ensemble")
    assert set(shares) == set(photo_digits.KINDS) and all(v in (0, 0.5, 1) for v in shares.values())


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_gpu_packing_script_runs_on_cuda(synthetic_root, tmp_path):
    r = subprocess.run(["bash", str(REPO / "experiments" / "gpu_packing.sh"), "--limit", "40", "--epochs", "1",
                        "--no-download", "--data-dir", str(synthetic_root)], cwd=tmp_path, text=True,
                       capture_output=True, env={**os.environ, "RUNS": str(tmp_path / "runs"), "SEEDS": "0",
                                                 "CANDIDATES": "source-only", "PACK": "2"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert re.search(r"^one: .* runs an hour", r.stdout, re.M) and re.search(r"^packed 2: .* runs an hour", r.stdout, re.M)
