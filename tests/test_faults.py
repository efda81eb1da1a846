"""Faults and odd inputs: nothing lost, nothing silent (README, 'Troubleshooting')."""
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import image_annotate
from dann.common import UserError
from dann.config import Config
from conftest import REPO, digit_images, run_script, with_sources
from dann import annotate, checkpoints, datasets, domains, evaluation, outputs, pretrained, runs, stepping, training, trust

DIGIT_7 = REPO / "images" / "mnist_test0_digit7.png"


def tiny(root, **changes):
    return Config(**{"source": "mnist", "target": "mnist_m", "data_dir": str(root), "no_download": True,
                     "epochs": 2, "batch_size": 8, "device": "cpu", **changes})


def stop_after(monkeypatch, steps, sig):
    """Make the training step raise `sig` at this process once it has run `steps` times."""
    real, calls = stepping.sgd_step, []

    def step_then_signal(*args):
        result = real(*args)
        calls.append(1)
        if len(calls) == steps:
            signal.raise_signal(sig)
        return result
    monkeypatch.setattr(stepping, "sgd_step", step_then_signal)


# ---------------------------------------------------------------- 1. a run folder belongs to one process

@pytest.mark.slow
def test_a_second_training_on_a_folder_in_use_is_refused_in_one_line(synthetic_root, tmp_path, monkeypatch):
    out, stopped = tmp_path / "run", tmp_path / "stopped"
    stop_after(monkeypatch, 2, signal.SIGINT)
    training.train(tiny(synthetic_root), stopped)
    with runs.claimed(out), runs.claimed(stopped):  # as a running main.py holds them
        r = run_script("main.py", "--source", "mnist", "--target", "mnist_m", "--data-dir", synthetic_root,
                       "--no-download", "--epochs", "1", "--out", out)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1] == (f"error: {out} is in use by another training (main.py) right now; "
                                                     "wait for it to end, or choose another --out")
        r = run_script("main.py", "--resume", stopped)  # a resume is a writer too
        assert r.returncode == 1 and "in use by another training" in r.stderr
    monkeypatch.undo()
    assert training.train(tiny(synthetic_root, epochs=1), out)["target_test_acc"] >= 0  # free again


def test_a_crashed_training_leaves_no_lock_behind(tmp_path):
    out = tmp_path / "run"
    code = f"import os, pathlib; from dann import runs; held = runs.claimed(pathlib.Path({str(out)!r})); held.__enter__(); os._exit(9)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 9
    assert (out / ".lock").exists()
    with runs.claimed(out):  # the operating system released it with the process
        pass


# ---------------------------------------------------------------- 2. settings that cannot train

@pytest.mark.parametrize("flag,message", [("--lr=nan", "--lr must be a finite number, not nan"),
                                          ("--lr=inf", "--lr must be a finite number, not inf"),
                                          ("--momentum=5", "--momentum must be in [0, 1)"),
                                          ("--weight-decay=-1", "--weight-decay must be 0 or more"),
                                          ("--gamma=-inf", "--gamma must be a finite number, not -inf")])
def test_settings_that_cannot_train_are_refused_before_anything_starts(tmp_path, flag, message, capsys):
    import main
    with pytest.raises(SystemExit) as e:
        main.main([flag, "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].endswith(f" error: {message}")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_setting_that_cannot_train_is_one_line_of_the_script(tmp_path):
    r = run_script("main.py", "--lr=nan", "--out", tmp_path / "run")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == "main.py: error: --lr must be a finite number, not nan"
    assert not (tmp_path / "run").exists()


def test_a_loss_that_becomes_nan_stops_the_run_and_no_nan_model_is_saved(synthetic_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    training.train(tiny(synthetic_root, epochs=1), out)  # a good first epoch, saved ...
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    real = stepping.sgd_step

    def poisoned(model, *args):  # ... then the weights blow up in the resumed run's second step
        result = real(model, *args)
        if len(calls) == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        calls.append(1)
        return result
    calls = []
    monkeypatch.setattr(stepping, "sgd_step", poisoned)
    (out / "metrics.json").unlink()
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "epochs": 3}))
    with pytest.raises(UserError) as e:
        training.train(runs.resumed_config(out, "cpu"), out, resume=True)
    assert str(e.value) == (f"the loss became NaN or infinite by step 6; the run stopped there and the last good "
                            f"checkpoint is {out}/checkpoint.pt (step 4). Lower --lr (or the method's weights) and "
                            "start again")
    after = torch.load(out / "checkpoint.pt", weights_only=True)
    assert after["step"] == saved["step"] and not (out / "metrics.json").exists()
    assert all(torch.isfinite(t).all() for t in after["model"].values())


@pytest.mark.slow
def test_a_diverging_run_exits_1_in_one_line(synthetic_root, tmp_path):
    r = run_script("main.py", "--source", "mnist", "--target", "mnist_m", "--data-dir", synthetic_root, "--no-download",
                   "--device", "cpu", "--epochs", "3", "--batch-size", "8", "--lr", "1e6", "--out", tmp_path / "run")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: the loss became NaN or infinite by step ")
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "metrics.json").exists()


# ---------------------------------------------------------------- 3. finished and unfinished runs

@pytest.mark.slow
def test_an_unfinished_run_is_used_only_when_named_and_then_says_so(synthetic_root, tmp_path, monkeypatch):
    stop_after(monkeypatch, 3, signal.SIGINT)
    runs = tmp_path / "runs"
    assert training.train(tiny(synthetic_root), runs / "stopped") is None
    r = run_script("valid.py", "--data-dir", synthetic_root, "--no-download", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0 and "since there is no finished run under runs/ yet" in r.stdout.splitlines()[0]
    named = runs / "stopped" / "checkpoint.pt"
    r = run_script("valid.py", "--checkpoint", named, "--data-dir", synthetic_root, "--no-download", "--device", "cpu",
                   cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith(f"model: {named} (as given; unfinished, step 3 of 8)")
    r = run_script("image_annotate.py", "-f", DIGIT_7, "--checkpoint", named, "--out-dir", tmp_path / "a", cwd=tmp_path)
    assert r.returncode == 0 and "unfinished, step 3 of 8" in r.stdout.splitlines()[0]
    r = run_script("main.py", "--source", "mnist", "--target", "mnist_m", "--method", "dirt-t", "--init", runs / "stopped",
                   "--data-dir", synthetic_root, "--no-download", "--device", "cpu", "--epochs", "1",
                   "--out", tmp_path / "third")
    assert r.returncode == 0 and f"from --init {runs / 'stopped'}: unfinished, step 3 of 8" in r.stderr


# ---------------------------------------------------------------- 4. SIGTERM, and a run stopped before its first save

def test_sigterm_saves_like_ctrl_c_and_the_resumed_run_ends_with_the_same_weights(synthetic_root, tmp_path,
                                                                                  monkeypatch):
    whole = training.train(tiny(synthetic_root), tmp_path / "whole")
    stop_after(monkeypatch, 3, signal.SIGTERM)
    assert training.train(tiny(synthetic_root), tmp_path / "cut") is None
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 3
    monkeypatch.undo()
    resumed = training.train(runs.resumed_config(tmp_path / "cut", "cpu"), tmp_path / "cut", resume=True)
    assert resumed["target_test_acc"] == whole["target_test_acc"]
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["model"] for r in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_stopped_before_its_first_save_can_be_resumed_from_the_start_or_its_folder_reused(synthetic_root,
                                                                                                tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(tiny(synthetic_root).as_dict()))  # killed while loading, say
    metrics = training.train(runs.resumed_config(out, "cpu"), out, resume=True)
    assert metrics["history"][-1]["epoch"] == 2
    assert "holds no checkpoint yet (its run stopped before the first save): starting it from step 0" in \
        capsys.readouterr().err
    (out / "checkpoint.pt").unlink()
    (out / "metrics.json").unlink()
    training.train(tiny(synthetic_root, epochs=1), runs.new_run_folder(None, out))  # or reused by a new run
    assert json.loads((out / "config.json").read_text())["epochs"] == 1


# ---------------------------------------------------------------- 5. messages tell the true cause

@pytest.mark.parametrize("code,cause", [(errno.EACCES, r"permission denied\); make the folder writable"),
                                       (errno.EROFS, r"the file system is read-only\); choose a folder on a writable"),
                                       (errno.ENOSPC, r"the disk is full\); free some space")])
def test_a_failed_write_names_its_cause(tmp_path, code, cause):
    def refused(tmp):
        raise OSError(code, os.strerror(code))
    with pytest.raises(UserError, match=f"could not write .*x.txt \\({cause}"):
        outputs.write(tmp_path / "x.txt", refused)


def test_a_write_that_torch_reports_without_its_cause_is_asked_of_the_os(tmp_path, monkeypatch):
    real_write = type(tmp_path).write_bytes

    def probe_refused(self, data):
        if self.name.startswith(".write-probe"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_write(self, data)
    monkeypatch.setattr(type(tmp_path), "write_bytes", probe_refused)

    def torch_save(tmp):
        raise RuntimeError(f"File {tmp} cannot be opened.")  # torch's zip writer: no errno
    with pytest.raises(UserError, match=r"\(permission denied\); make the folder writable"):
        outputs.write(tmp_path / "x.pt", torch_save)


@pytest.mark.slow
def test_valid_prints_its_accuracies_even_when_no_figure_can_be_written(trained_run, tmp_path):
    root, run = trained_run
    (tmp_path / "file").write_text("in the way")
    r = run_script("valid.py", "--checkpoint", run / "checkpoint.pt", "--data-dir", root, "--no-download", "--json",
                   "--out-dir", tmp_path / "file" / "figures", "--device", "cpu")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    report = json.loads(r.stdout)
    assert set(report["domains"]) == {"mnist", "mnist_m"} and report["domains"]["mnist"]["figure"] is None
    assert "cannot create the folder" in r.stderr


# ---------------------------------------------------------------- 6. outputs go where a user expects

@pytest.mark.slow
def test_evaluation_files_go_to_a_folder_of_the_evaluation_never_beside_the_checkpoint(trained_run, tmp_path):
    root, run = trained_run
    r = run_script("valid.py", "--checkpoint", "mnist-mnist_m-source-only", "--data-dir", root, "--no-download",
                   "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "figures" / "mnist-mnist_m-source-only" / "confusion_mnist_m.png").is_file()
    assert not list(pretrained.PRETRAINED_DIR.glob("*.png"))
    r = run_script("valid.py", "--checkpoint", run / "checkpoint.pt", "--data-dir", root, "--no-download",
                   "--device", "cpu", "--out-dir", tmp_path / "figures" / "mnist-mnist_m-source-only", cwd=tmp_path)
    assert r.returncode == 1 and "holds the evaluation of another model" in r.stderr  # never silently over it
    assert not list(run.glob("confusion_*.png"))


@pytest.mark.slow
def test_annotated_copies_of_the_repository_pictures_go_to_a_folder_of_their_own(tmp_path):
    before = sorted(p.name for p in (REPO / "images").iterdir())
    r = run_script("image_annotate.py", "-f", "pencil_7.jpg", "-f", REPO / "images" / "printed_5.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{REPO / 'images' / 'pencil_7.jpg'}: 7  (top-3: 7 " in r.stdout  # the README's first example: read, and sure
    assert sorted(p.name for p in (REPO / "images").iterdir()) == before
    default = pretrained.bundled_models()["default"]
    assert sorted(p.name for p in (tmp_path / "annotated").glob("*.png")) == [f"pencil_7.jpg.{default}.annotated.png",
                                                                         f"printed_5.png.{default}.annotated.png"]


# ---------------------------------------------------------------- 7. any picture that decodes, in bounded memory

def test_pictures_of_extreme_shape_are_read_in_bounded_memory_and_shown_at_a_sane_size(trained_run, tmp_path):
    _, run = trained_run
    Image.new("L", (20000, 1), 200).save(tmp_path / "line.png")
    Image.new("RGB", (1, 5000), (10, 200, 10)).save(tmp_path / "pole.png")
    Image.fromarray(digit_images([7], 28, 1)[0, :, :, 0]).save(tmp_path / "after.png")
    code = image_annotate.main(["-f", str(tmp_path / "line.png"), str(tmp_path / "pole.png"),
                                str(tmp_path / "after.png"), "--checkpoint", str(run / "checkpoint.pt")])
    assert code == 0
    for name in ("line", "pole", "after"):
        with Image.open(tmp_path / f"{name}.png.{annotate.model_tag(run / 'checkpoint.pt')}.annotated.png") as copy:
            assert copy.width <= annotate.DISPLAY_WIDTH and copy.height <= annotate.DISPLAY_HEIGHT + 56


def test_a_16_bit_grey_picture_keeps_its_grey_levels_in_the_annotated_copy(trained_run, tmp_path):
    _, run = trained_run
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65,520
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    assert image_annotate.main(["-f", str(tmp_path / "ramp16.png"), "--checkpoint", str(run / "checkpoint.pt")]) == 0
    copy = np.asarray(Image.open(tmp_path / f"ramp16.png.{annotate.model_tag(run / 'checkpoint.pt')}.annotated.png")
                      .convert("L"))[:224]
    assert len(np.unique(copy)) > 100  # clipping to 8 bits left two levels


@pytest.mark.slow
def test_ctrl_c_while_a_script_starts_is_one_line():
    # torch takes a second or more to import, partly in Python called from C++, where a
    # KeyboardInterrupt would abort the process with a C++ message: every Ctrl-C that lands before
    # the script prints anything must end it with one line
    landed = 0
    for delay in (0.5, 0.7, 0.9, 1.1, 1.4):
        process = subprocess.Popen([sys.executable, str(REPO / "image_annotate.py"), "-f", str(DIGIT_7), "--out-dir",
                                    "/dev/null/none"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        if not out:  # interrupted during start-up, before or after run_script took over
            assert (process.returncode, err.strip()) == (130, "interrupted")
            landed += 1
    assert landed, "no Ctrl-C landed during start-up"


# ---------------------------------------------------------------- 8. evaluation needs only what it reads

@pytest.mark.slow
def test_valid_needs_only_the_test_files(trained_run, tmp_path):
    root, run = trained_run
    only_tests = tmp_path / "data"
    for name in ("mnist", "mnist_m"):
        (only_tests / name).mkdir(parents=True)
        for remote in datasets.needed(name, ["test"]):
            (only_tests / name / remote.name).write_bytes((root / name / remote.name).read_bytes())
    assert len(list((only_tests / "mnist").iterdir())) == 2  # the two t10k files, no training file
    r = run_script("valid.py", "--checkpoint", run / "checkpoint.pt", "--data-dir", only_tests, "--no-download",
                   "--device", "cpu", "--out-dir", tmp_path / "figures")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_every_missing_dataset_is_named_in_one_message_and_no_empty_folder_is_left(tmp_path, monkeypatch):
    r = run_script("valid.py", "--checkpoint", "mnist-mnist_m-dann", "--data-dir", tmp_path / "data", "--no-download",
                   "--device", "cpu")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "missing from" in r.stderr and "mnist: --no-download" in r.stderr and "mnist_m: --no-download" in r.stderr
    for name in ("mnist", "mnist_m"):
        with_sources(monkeypatch, name, [domains.RemoteFile(f.name, ("http://127.0.0.1:9/" + f.name,), f.checksums)
                                         for f in domains.DOMAINS[name].sources])
    with pytest.raises(UserError) as e:
        datasets.ensure_datasets(["mnist", "mnist_m"], tmp_path / "data", splits=["test"])
    assert "mnist: could not download t10k-images" in str(e.value) and "mnist_m: could not download" in str(e.value)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- 9. "not sure" is visible

def test_a_finished_run_carries_its_calibration_and_threshold(trained_run):
    root, run = trained_run
    metrics = json.loads((run / "metrics.json").read_text())
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    model, _ = checkpoints.load_checkpoint(run / "checkpoint.pt")
    loaded = datasets.load_datasets(["mnist", "mnist_m"], ["train", "test"], root, False)
    again = trust.decide(model, loaded["mnist", "test"], loaded["mnist_m", "train"][0])  # the labels of the source only
    for key in ("temperature", "unsure_below"):
        assert ckpt[key] == metrics[key] == checkpoints.weights_only(ckpt)[key]
        assert math.isclose(ckpt[key], again[key], rel_tol=1e-4)
    assert pretrained.model_trust(ckpt, run / "checkpoint.pt") == again


@pytest.mark.slow
def test_image_annotate_marks_a_picture_without_a_digit_as_not_sure(tmp_path):
    Image.new("RGB", (200, 200), "white").save(tmp_path / "blank.png")
    r = run_script("image_annotate.py", "-f", tmp_path / "blank.png", DIGIT_7, "--checkpoint", "mnist-mnist_m-dirt-t",
                   "--out-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    first, blank, seven = r.stdout.splitlines()
    entry = pretrained.bundled_models()["models"]["mnist-mnist_m-dirt-t"]
    assert f"; not sure below a calibrated chance of {entry['unsure_below']:.4f}" in first
    assert blank.startswith(f"{tmp_path / 'blank.png'}: not sure (") and seven.startswith(f"{DIGIT_7}: 7  (top-3")


def test_run_script_makes_an_expected_failure_or_ctrl_c_one_line_and_passes_an_exit_code(capsys):
    from dann.cli import run_script

    def fails():
        raise UserError("the folder x is missing; create it")

    def interrupted():
        raise KeyboardInterrupt

    for main, code in ((fails, "error: the folder x is missing; create it"), (interrupted, 130),
                       (lambda: 3, 3), (lambda: {"a": "result"}, 0)):
        with pytest.raises(SystemExit) as stop:
            run_script(main)
        assert stop.value.code == code
    assert capsys.readouterr().err == "interrupted\n"  # Ctrl-C: one line, and the shell's code, as during start-up


def test_a_reading_below_the_floor_is_never_sure_whatever_the_models_threshold(tmp_path):
    assert [trust.sure_at(t) for t in (None, 0.3, 0.96)] == [trust.SURE_FLOOR, trust.SURE_FLOOR, 0.96]

    class Flat(torch.nn.Module):  # top probability .13: the model hardly prefers a class
        def predict_proba(self, images):
            return torch.tensor([[0.13] + [0.87 / 9] * 9]).expand(len(images), -1)
    Image.new("RGB", (28, 28), "white").save(tmp_path / "plain.png")
    for threshold in (None, 0.1):  # no threshold of its own, or one below the floor
        probs, sure = annotate.process(tmp_path / "plain.png", tmp_path / "out" / f"plain.{threshold}.png", Flat(),
                                       {"temperature": 1.0, "unsure_below": threshold}, [str(d) for d in range(10)])
        assert probs.max().item() == pytest.approx(0.13) and not sure
    report = evaluation.domain_report(Flat(), torch.zeros(4, 3, 28, 28, dtype=torch.uint8), torch.zeros(4).long(),
                                      "target", [str(d) for d in range(10)])
    assert report["not_sure_share"] == 1 and report["accuracy"] == 1


def test_list_says_which_bundled_model_marks_most_of_its_own_target_not_sure(tmp_path, monkeypatch):
    registry = json.loads((REPO / "pretrained" / "registry.json").read_text())
    name = next(iter(registry["models"]))
    registry["models"][name]["target_not_sure"] = 0.7
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    monkeypatch.setattr(pretrained, "REGISTRY", tmp_path / "registry.json")
    listed = pretrained.format_bundled(tmp_path / "runs")
    assert "not sure" in listed.splitlines()[0] and " 0.7000" in listed
    assert f"marks most of its own target's test digits \"not sure\": {name} (70% of " in listed
