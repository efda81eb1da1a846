"""choose.py: candidates trained side by side, ranked without target labels, the choice shared."""
import json
import re
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from dann.config import Config
from conftest import REPO, run_script
from dann import launchers, outputs, sweep

TINY = ["--source", "mnist", "--target", "mnist_m", "--no-download", "--device", "cpu", "--batch-size", "8"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def finished(candidate, seed, class_shift, entropy, accuracy=None):
    run = sweep.CandidateRun(candidate, seed, Config(source="mnist", target="mnist_m", method="dann"), None, None)
    run.status = "done"
    run.metrics, run.scores = {"target_test_acc": accuracy}, {"class_shift": class_shift, "entropy": entropy}
    return run


def test_the_rule_takes_the_lowest_class_shift_breaks_ties_by_entropy_and_never_reads_target_accuracy():
    runs = [finished("dann", 0, 0.20, 0.4, accuracy=0.9), finished("dann-im", 0, 0.05, 0.9, accuracy=0.5),
            finished("dirt-t", 0, 0.05, 0.3, accuracy=0.6), finished("source-only", 0, 0.30, 0.1, accuracy=0.7)]
    failed = sweep.CandidateRun("vada", 0, runs[0].cfg, None, None, status="failed")
    assert sweep.choose(runs + [failed]).candidate == "dirt-t"
    assert sweep.most_accurate(runs).candidate == "dann"
    for run in runs:  # other accuracies: the same choice
        run.metrics["target_test_acc"] = 1 - run.metrics["target_test_acc"]
    assert sweep.choose(runs).candidate == "dirt-t"
    assert sweep.choose([failed]) is None and sweep.most_accurate([finished("dann", 0, 0.1, 0.1)]) is None


def test_dirt_t_refines_the_dann_run_of_its_own_seed_for_half_the_epochs(tmp_path):
    runs = sweep.plan(Config(source="mnist", target="mnist_m", epochs=100), ["dirt-t", "source-only"], [0, 1], tmp_path)
    assert [r.name for r in runs] == ["dann/seed0", "dirt-t/seed0", "source-only/seed0",
                                      "dann/seed1", "dirt-t/seed1", "source-only/seed1"]
    dirt_t = runs[4]
    assert dirt_t.after is runs[3] and dirt_t.cfg.init == str(tmp_path / "dann" / "seed1")
    assert (dirt_t.cfg.method, dirt_t.cfg.epochs, dirt_t.cfg.seed, runs[3].cfg.epochs) == ("dirt-t", 50, 1, 100)
    assert all(r.status == "to train" for r in runs)


@pytest.mark.slow
def test_a_sweep_chooses_a_model_that_valid_and_image_annotate_then_use_and_a_rerun_trains_nothing(
        synthetic_root, tmp_path):
    sweep_args = [*TINY, "--data-dir", synthetic_root, "--epochs", "2", "--seeds", "0", "1",
                  "--candidates", "source-only", "dirt-t", "--jobs", "2"]
    r = run_script("choose.py", *sweep_args, cwd=tmp_path, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "runs" / "choose-mnist-mnist_m"
    report = json.loads((out / "choice.json").read_text())
    done = [row for row in report["runs"] if row["status"] == "done"]
    assert len(done) == 6 and {row["candidate"] for row in done} == {"source-only", "dann", "dirt-t"}
    candidates = [row for row in done if row["eligible"]]  # not the DANN runs, there only for DIRT-T to refine
    assert {row["candidate"] for row in candidates} == {"source-only", "dirt-t"}
    chosen = min(candidates, key=lambda row: (row["label_free"]["class_shift"], row["label_free"]["entropy"]))
    # every candidate scored afresh, the DANN runs that DIRT-T refines outside the ensemble
    assert all(0 <= row["label_free"]["agreement"] <= 1 and len(row["target_class_mix"]) == 10 for row in candidates)
    assert all("agreement" not in row["label_free"] for row in done if not row["eligible"])
    for row in candidates:  # GDE: each seed against the other seed of its candidate
        other = next(o for o in candidates if o["candidate"] == row["candidate"] and o is not row)
        assert row["label_free"]["seed_agreement"] == other["label_free"]["seed_agreement"]
        assert 0 <= row["label_free"]["seed_agreement"] <= 1
    assert report["chosen"] == f"{chosen['candidate']}/seed{chosen['seed']}" and "<- chosen" in r.stdout
    assert f"estimated target accuracy {chosen['label_free']['seed_agreement']:.4f}, agreement with its other seeds" \
        in r.stdout  # two seeds: GDE, not ATC
    shared = json.loads((out / "chosen" / "metrics.json").read_text())
    assert shared["config"]["method"] == chosen["candidate"] and shared["config"]["seed"] == chosen["seed"]

    v = run_script("valid.py", "--data-dir", synthetic_root, "--no-download", "--json", cwd=tmp_path)  # no --checkpoint
    assert v.returncode == 0 and "runs/choose-mnist-mnist_m/chosen/checkpoint.pt" in v.stderr, v.stderr
    assert json.loads(v.stdout)["domains"]["mnist_m"]["accuracy"] == pytest.approx(chosen["target_test_acc"])
    a = run_script("image_annotate.py", "-f", REPO / "images" / "mnist_test0_digit7.png", "--checkpoint",
                   out / "chosen", "--out-dir", tmp_path / "annotated", cwd=tmp_path)
    assert a.returncode == 0 and "mnist_test0_digit7.png" in a.stdout, a.stderr
    # the ensemble of every candidate, offered beside the choice, is a model both scripts read
    ensemble = report["ensemble"]
    assert sorted(ensemble["members"]) == sorted(f"{row['candidate']}/seed{row['seed']}" for row in candidates)
    assert "also offered: the ensemble of the 4 finished candidates" in r.stdout
    e = run_script("valid.py", "--checkpoint", out / "ensemble", "--data-dir", synthetic_root, "--no-download", "--json",
                   cwd=tmp_path)
    assert e.returncode == 0 and "ensemble, mnist -> mnist_m" in e.stderr, e.stderr
    assert json.loads(e.stdout)["domains"]["mnist_m"]["accuracy"] == pytest.approx(ensemble["target_test_acc"])
    a = run_script("image_annotate.py", "-f", REPO / "images" / "mnist_test0_digit7.png", "--checkpoint",
                   out / "ensemble", "--out-dir", tmp_path / "annotated", cwd=tmp_path)
    assert a.returncode == 0 and "mnist_test0_digit7.png" in a.stdout, a.stderr

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoint.pt")}
    again = run_script("choose.py", *sweep_args, cwd=tmp_path, env=ENV)
    assert again.returncode == 0 and "6 finished already, 0 to train" in again.stdout, again.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/checkpoint.pt")} == stamps
    assert json.loads((out / "choice.json").read_text())["chosen"] == report["chosen"]
    wider = [*sweep_args, "--seeds", "0", "1", "2", "--no-train"]  # seed 2 is not trained: chosen among the others
    scored = run_script("choose.py", *wider, cwd=tmp_path, env=ENV)
    assert scored.returncode == 0 and "6 finished already, 3 left untrained (--no-train)" in scored.stdout
    assert "not trained (--no-train): source-only/seed2, dann/seed2, dirt-t/seed2" in scored.stdout
    assert not (out / "dann" / "seed2").exists() and json.loads((out / "choice.json").read_text())["chosen"] == report["chosen"]

    other = run_script("choose.py", *TINY, "--data-dir", synthetic_root, "--epochs", "3", "--candidates", "source-only",
                       cwd=tmp_path, env=ENV)
    assert other.returncode == 1 and other.stderr.startswith("error: ") and "other settings" in other.stderr


@pytest.mark.slow
def test_a_stopped_sweep_continues_where_it_stopped(synthetic_root, tmp_path):
    args = [*TINY, "--data-dir", synthetic_root, "--epochs", "60", "--save-every", "1", "--candidates", "dann",
            "--out", tmp_path / "sweep", "--jobs", "1"]
    process = subprocess.Popen([sys.executable, str(REPO / "choose.py"), *map(str, args)], cwd=tmp_path, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "sweep" / "dann" / "seed0" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.is_file() and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and "Continue with the same command" in out, err[-2000:]
    assert not (checkpoint.parent / "metrics.json").exists()
    r = run_script("choose.py", *args, cwd=tmp_path, env=ENV)
    assert r.returncode == 0 and "0 finished already, 1 to train" in r.stdout, r.stderr[-2000:]
    assert "continuing dann/seed0" in r.stderr
    log = (tmp_path / "sweep" / "logs" / "dann-seed0.log").read_text()
    assert "stopped at step" in log and json.loads((checkpoint.parent / "metrics.json").read_text())["history"]


@pytest.mark.slow
def test_a_failed_candidate_is_reported_its_refinement_skipped_and_the_others_still_chosen_from(
        synthetic_root, tmp_path):
    args = [*TINY, "--data-dir", synthetic_root, "--epochs", "1", "--candidates", "source-only", "dirt-t",
            "--out", tmp_path / "sweep"]
    broken = tmp_path / "sweep" / "dann" / "seed0"  # the sweep's DANN run, its checkpoint damaged as it was saved
    outputs.claim_folder(tmp_path / "sweep", "sweep")
    outputs.claim_folder(broken, "run")
    the_sweeps = Config(source="mnist", target="mnist_m", batch_size=8, epochs=1)
    outputs.save(json.dumps(the_sweeps.as_dict()), broken / "config.json")
    outputs.save(b"not a checkpoint", broken / "checkpoint.pt")
    r = run_script("choose.py", *args, cwd=tmp_path, env=ENV)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
    assert "failed: " in r.stdout and "checkpoint.pt is unreadable" in r.stdout
    assert "skipped: the run it refines, dann/seed0, did not finish" in r.stdout
    assert "chosen: source-only/seed0" in r.stdout and (tmp_path / "sweep" / "chosen" / "checkpoint.pt").is_file()
    assert re.search(r"^chosen: source-only/seed0 .*estimated target accuracy [01]\.\d{4}, ATC\)", r.stdout, re.M)  # one seed


def test_the_table_and_the_record_carry_every_registered_score_the_rules_first(capsys):
    import choose
    from dann.scores import SCORES
    runs = [finished("dann", 0, 0.20, 0.4, accuracy=0.9), finished("dirt-t", 0, 0.05, 0.3, accuracy=0.6)]
    for run in runs:
        run.scores.update({name: 0.5 for name in SCORES if name not in run.scores}, agreement=0.75)
    choose.print_table(runs, sweep.choose(runs), labelled=True)
    header, *rows = capsys.readouterr().out.splitlines()
    titles = [SCORES[name].column for name in (*sweep.RULE_SCORES, *(n for n in SCORES if n not in sweep.RULE_SCORES))]
    assert all(title in header for title in titles) and header.index("class shift") < header.index("entropy")
    assert "agreement" in header and all("0.7500" in row for row in rows)
    assert "<- chosen" in rows[1] and "<- chosen" not in rows[0]
    record = sweep.report(runs, sweep.choose(runs), threads=1)
    assert record["chosen"] == "dirt-t/seed0" and record["most_accurate"] == "dann/seed0" and record["rule"] == sweep.RULE
    assert [row["label_free"] for row in record["runs"]] == [run.scores for run in runs]


def test_a_new_score_is_one_entry_and_every_report_carries_it(trained_run, monkeypatch):
    """What README's 'A score' promises: one Score in SCORES, and label_free_report computes it."""
    from dann import checkpoints, datasets, scores
    from dann.methods import METHODS
    monkeypatch.setitem(scores.SCORES, "top_probability", scores.Score(
        "top_probability", lambda e: e.probs.max(1).values.mean().item(), scores.higher, "top p"))
    root, run = trained_run
    model, _ = checkpoints.load_checkpoint(run / "checkpoint.pt")
    sets = datasets.task_data(["mnist"], "mnist_m", root, allow_download=False)
    found = scores.label_free_report(model, sets, METHODS["dann"])["label_free"]
    assert list(found) == list(scores.SCORES) and 0.1 <= found["top_probability"] <= 1


def test_where_runs_train_is_checked_before_anything_runs(capsys):
    import choose
    for flags, message in ((["--cpus-per-run", "2"], "--cpus-per-run need --cluster"),
                           (["--cluster", "auto", "--jobs", "2"], "--jobs is for this machine"),
                           (["--cluster", "auto", "--gpus-per-run", "-1"], "--gpus-per-run must be 0 or more"),
                           (["--jobs", "0"], "--jobs must be at least 1")):
        with pytest.raises(SystemExit) as e:
            choose.parse_args(["--source", "mnist", "--target", "mnist_m", *flags])
        assert e.value.code == 2 and message in capsys.readouterr().err
    args = choose.parse_args(["--source", "mnist", "--target", "mnist_m", "--jobs", "2"])
    assert launchers.from_flags(args).slots == 2


def test_a_cluster_address_where_nothing_listens_is_one_line_at_once():
    from dann.common import UserError
    with socket.socket() as s:  # a port just freed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address, message in ((f"127.0.0.1:{port}", "no Ray cluster answers there"), ("nowhere", "host:port"),
                             ("127.0.0.1:", "host:port")):
        with pytest.raises(UserError, match=message):
            launchers.answers(address)
