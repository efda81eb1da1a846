import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dann.common import UserError
from dann.config import Config
from conftest import REPO, ctrl_c_after
from dann import checkpoints, config, methods, models, outputs, runs, stepping, training


def test_gradient_reversal_is_minus_lambda_times_the_plain_gradient():
    torch.manual_seed(0)
    x = torch.randn(5, 7, requires_grad=True)
    w = torch.randn(7, 3)
    (x @ w).sin().sum().backward()
    plain = x.grad.clone()
    grl = models.GradientReversal()
    for lambd in (0.0, 0.37, 1.0):
        x.grad = None
        grl.set_lambda(lambd)
        out = grl(x)
        assert torch.equal(out, x)
        (out @ w).sin().sum().backward()
        assert torch.equal(x.grad, -torch.tensor(lambd) * plain)


def test_schedules_match_the_paper_formulas():
    p = torch.tensor([0, 0.5, 1], dtype=torch.float64)
    assert stepping.learning_rate(p, 0.01, 10, 0.75).tolist() == [0.01, 0.01 / 6 ** 0.75, 0.01 / 11 ** 0.75]
    lambd = methods.adaptation_weight(p, 10).tolist()
    assert lambd[0] == 0
    assert math.isclose(lambd[1], 2 / (1 + math.exp(-5)) - 1)
    assert math.isclose(lambd[2], 2 / (1 + math.exp(-10)) - 1)


@pytest.mark.parametrize("arch,features", [("mnist", 768), ("svhn", 4608)])
def test_architectures_have_the_papers_shapes(arch, features):
    model = models.DANN(arch)
    assert model.features(torch.zeros(2, 3, 28, 28)).shape == (2, features)
    linear = [m.out_features for m in model.label_classifier if isinstance(m, torch.nn.Linear)]
    domain = [m.out_features for m in model.domain_classifier if isinstance(m, torch.nn.Linear)]
    assert linear == {"mnist": [100, 100, 10], "svhn": [3072, 2048, 10]}[arch]
    assert domain == {"mnist": [100, 2], "svhn": [1024, 1024, 2]}[arch]
    convs = [m.out_channels for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == {"mnist": [32, 48], "svhn": [64, 64, 128]}[arch]


def test_epoch_batches_cover_the_set_and_depend_only_on_seed_and_epoch():
    a = stepping.epoch_batches(10, 3, 4, seed=1, epoch=0, device="cpu")
    assert a.shape == (3, 4) and set(a.flatten()[:10].tolist()) == set(range(10))
    assert torch.equal(a, stepping.epoch_batches(10, 3, 4, seed=1, epoch=0, device="cpu"))
    assert not torch.equal(a, stepping.epoch_batches(10, 3, 4, seed=1, epoch=1, device="cpu"))


def tiny_config(root, **changes):
    # on the CPU, where the same seed gives the same numbers (a GPU sums in a varying order)
    return Config(**{"source": "mnist", "target": "mnist_m", "data_dir": str(root), "no_download": True, "epochs": 2,
                     "batch_size": 8, "eval_every": 1, "save_every": 1, "device": "cpu", **changes})


def tiny_run(root, out, **changes):
    return training.train(tiny_config(root, **changes), out)


def test_tiny_run_writes_metrics_events_and_checkpoint(synthetic_root, tmp_path):
    out = tmp_path / "run"
    metrics = tiny_run(synthetic_root, out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["target_test_acc"] == metrics["target_test_acc"] and 0 <= saved["target_test_acc"] <= 1
    assert saved["config"]["method"] == "dann" and saved["config"]["arch"] == "mnist"
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert all("target_test_acc" in h and h["domain_acc"] > 0 for h in saved["history"])
    assert saved["versions"]["torch"] == torch.__version__ and saved["wall_time_s"] >= 0
    assert list(out.glob("events.out.tfevents.*"))
    model, ckpt = checkpoints.load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 2 * 4 and ckpt["config"]["source"] == "mnist"  # 30 target images / 8 = 4 steps an epoch


def test_same_seed_same_numbers_on_cpu(synthetic_root, tmp_path):
    a = tiny_run(synthetic_root, tmp_path / "a", seed=3)
    b = tiny_run(synthetic_root, tmp_path / "b", seed=3)
    c = tiny_run(synthetic_root, tmp_path / "c", seed=4)
    assert a["history"] == b["history"]
    assert a["history"] != c["history"]
    for flag in ("augment", "bf16"):  # each changes what is computed, and stays reproducible
        d = tiny_run(synthetic_root, tmp_path / f"d{flag}", seed=3, **{flag: True})
        e = tiny_run(synthetic_root, tmp_path / f"e{flag}", seed=3, **{flag: True})
        assert d["history"] == e["history"] != a["history"]
        assert d["config"][flag] is True


@pytest.mark.parametrize("stop_after,flags,method", [(4, {}, "dann"), (6, {}, "dann"),
                                                   (6, {"augment": True, "bf16": True}, "dann"),
                                                   (6, {"augment": True}, "source-only"),
                                                   (6, {"augment": True}, "target-only"),
                                                   (6, {}, "dann-im"), (6, {"ema": 0.9}, "vada"),
                                                   (6, {}, "self-ensemble"), (6, {}, "adamatch")])
def test_ctrl_c_then_resume_equals_an_uninterrupted_run(synthetic_root, tmp_path, monkeypatch, stop_after, flags,
                                                        method):
    # stop exactly after epoch 1, or in the middle of epoch 2; dropout, augmentation and bf16 draw random numbers
    tiny_run(synthetic_root, tmp_path / "whole", dropout=0.3, method=method, **flags)
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)

    real_step = ctrl_c_after(monkeypatch, stop_after)
    assert tiny_run(synthetic_root, tmp_path / "cut", dropout=0.3, method=method, **flags) is None
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == stop_after
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(stepping, "sgd_step", real_step)
    resumed = training.train(runs.resumed_config(tmp_path / "cut", "cpu"), tmp_path / "cut", resume=True)
    final = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, final["model"][name]), name
    assert resumed["target_test_acc"] == json.loads((tmp_path / "whole" / "metrics.json").read_text())["target_test_acc"]


def test_resume_lays_momentum_out_like_its_parameter(synthetic_root, tmp_path):
    # A run trained on a GPU saves NCHW momentum buffers; on the CPU the convolutions' weights are
    # channels_last, and a fused SGD kernel would pair the two element by element.
    tiny_run(synthetic_root, tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    for s in ckpt["optimizer"]["state"].values():
        s["momentum_buffer"] = s["momentum_buffer"].contiguous()
    torch.save(ckpt, path)
    model, opt = stepping.model_and_optimizer(Config(**ckpt["config"]), torch.device("cpu"))
    lr = opt.param_groups[0]["lr"]
    checkpoints.restore(tmp_path / "run", model, opt, {})
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(not p.is_contiguous() for p in convs)
    for i, p in enumerate(model.parameters()):
        buf = opt.state[p]["momentum_buffer"]
        assert buf.stride() == p.stride() and torch.equal(buf, ckpt["optimizer"]["state"][i]["momentum_buffer"])
    assert all(group["lr"] is lr for group in opt.param_groups)  # the tensor that the step writes


def test_target_only_trains_on_target_labels(synthetic_root, tmp_path):
    metrics = tiny_run(synthetic_root, tmp_path / "run", method="target-only", epochs=15, lr=0.05)
    assert metrics["target_test_acc"] > 0.5  # the synthetic digits are learnable; chance is 0.1


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.mark.slow
def test_cli_bad_inputs(tmp_path, capsys):
    import main
    for argv, message in ((["--epochs", "0"], "--epochs must be at least 1"),
                          (["--source", "mnist", "--target", "mnist"], "nothing to adapt")):
        with pytest.raises(SystemExit) as e:
            main.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err
    r = run_cli("--data-dir", str(tmp_path), "--no-download", "--out", str(tmp_path / "run"))  # the script's one line
    assert r.returncode == 1 and r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "python download_data.py --datasets" in r.stderr and not (tmp_path / "run").exists()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    for folder, message in ((tmp_path / "nothing", "no config.json there"), (tmp_path / "broken", "config.json is not valid JSON")):
        with pytest.raises(UserError, match=message):
            main.main(["--resume", str(folder)])
    with pytest.raises(SystemExit):
        main.main(["--help"])
    assert "--limit" in capsys.readouterr().out


@pytest.mark.parametrize("edit,message", [
    (lambda cfg: [], "does not hold the settings main.py writes"),
    (lambda cfg: {**cfg, "source": "cifar"}, "cifar: neither a built-in domain (mnist, svhn, mnist_m, usps, synth) "
                                              "nor a folder of pictures"),  # a name that is not built in means a folder
    (lambda cfg: {**cfg, "source": 7}, "does not hold the settings main.py writes"),
    (lambda cfg: {**cfg, "epochs": "100"}, "does not hold the settings main.py writes"),
    (lambda cfg: {**cfg, "data_dir": 7}, "does not hold the settings main.py writes"),
    (lambda cfg: {**cfg, "batch_size": 0}, "config.json says --batch-size must be at least 1"),
    (lambda cfg: {**cfg, "learning_rate": 0.1}, "does not hold the settings main.py writes"),  # not a setting
    (lambda cfg: {**cfg, "augment": 1}, "does not hold the settings main.py writes"),
    (lambda cfg: {"epochs": 0}, "config.json says --epochs must be at least 1"),  # the others: their defaults
])
def test_resume_of_an_edited_config_is_refused_with_what_to_do(tmp_path, edit, message):
    """main.main as the script runs it (a UserError is the script's one line: test_cli_bad_inputs)."""
    import main
    cfg = Config().as_dict()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(edit(cfg)))
    with pytest.raises(UserError) as e:
        main.main(["--resume", str(tmp_path / "run")])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_out_must_not_be_a_file_or_an_earlier_run(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli("--out", str(tmp_path / "file"))
    assert r.returncode == 1 and r.stderr.strip() == f"error: --out {tmp_path / 'file'} is a file; name a folder"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text("{}")
    (tmp_path / "old" / "checkpoint.pt").write_text("saved")
    r = run_cli("--out", str(tmp_path / "old"))
    assert r.returncode == 1 and "already holds a run; continue it with --resume" in r.stderr
    assert (tmp_path / "old" / "config.json").read_text() == "{}"


def test_default_task_svhn_to_mnist_runs_with_the_svhn_network(synthetic_root, tmp_path):
    cfg = Config(data_dir=str(synthetic_root), no_download=True, epochs=1, batch_size=8, device="cpu")
    metrics = training.train(cfg, tmp_path / "run")
    assert metrics["config"]["source"] == "svhn" and metrics["config"]["target"] == "mnist"
    assert metrics["config"]["arch"] == "svhn" and len(metrics["history"]) == 1
    model, _ = checkpoints.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert model.arch == "svhn"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["self-ensemble", "adamatch"])
def test_cuda_graph_captures_the_methods_that_augment_and_average_on_the_device(synthetic_root, tmp_path, capsys,
                                                                               method):
    graphed = tiny_run(synthetic_root, tmp_path / "graph", device="cuda", epochs=3, method=method)
    assert "CUDA graph capture failed" not in capsys.readouterr().err  # Adam's and the teacher's updates captured
    eager = tiny_run(synthetic_root, tmp_path / "eager", device="cuda", epochs=3, method=method, cuda_graph=False)
    # the augmentations' draws come from the graph's own RNG offsets: the same in law, not in value
    for g, e in zip(graphed["history"], eager["history"]):
        assert abs(g["class_loss"] - e["class_loss"]) < 0.2 * max(1, e["class_loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_run_matches_eager_run_and_resumes_on_the_cpu(synthetic_root, tmp_path):
    graphed = tiny_run(synthetic_root, tmp_path / "graph", device="cuda", epochs=3)
    eager = tiny_run(synthetic_root, tmp_path / "eager", device="cuda", epochs=3, cuda_graph=False)
    for g, e in zip(graphed["history"], eager["history"]):
        assert abs(g["class_loss"] - e["class_loss"]) < 1e-3 * max(1, e["class_loss"])
    ckpt = torch.load(tmp_path / "graph" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 12
    config = json.loads((tmp_path / "graph" / "config.json").read_text())
    config["epochs"] = 4
    (tmp_path / "graph" / "config.json").write_text(json.dumps(config))
    resumed = training.train(runs.resumed_config(tmp_path / "graph", "cpu"), tmp_path / "graph", resume=True)
    assert len(resumed["history"]) == 4 and resumed["history"][-1]["class_loss"] < 10


@pytest.mark.parametrize("name", methods.METHODS)
def test_the_step_reads_no_value_back_to_the_host(name):
    # What capturing the step in a CUDA graph needs, checked without a GPU: meta tensors have
    # shapes but no values, so an .item(), a bool(tensor) or a data-dependent shape in the batch
    # gather, augmentation, schedule, forward or backward raises here. The optimizer is stubbed:
    # the fused SGD that runs on a GPU is capturable by design and has no meta kernel.
    meta = torch.device("meta")
    method = methods.METHODS[name]
    cfg = Config(source="mnist", target="mnist_m", method=name, batch_size=8, epochs=2, augment=not method.augments,
                 init="run" if method.teacher else None)
    model = models.DANN("mnist", dropout=0.3).to(meta)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    opt.param_groups[0]["lr"] = torch.tensor(0.01, device=meta)
    steps = []
    opt.step = lambda: steps.append([p.grad.shape for p in model.parameters() if p.grad is not None])
    images = torch.empty(40, 3, 28, 28, dtype=torch.uint8, device=meta)
    labels = torch.empty(40, dtype=torch.long, device=meta)
    train_sets = (images if method.labelled else None, labels if method.labelled else None,
                  images if method.uses_unlabelled else None)
    teacher = stepping.frozen_copy(model).eval() if method.teacher else None
    mean_teacher = teacher if method.teacher and method.teacher.averages_student else None
    step, state = stepping.make_step(model, opt, method, train_sets, cfg, 10, 0, ema=mean_teacher, teacher=teacher,
                                     decay=cfg.teacher_ema)
    for _ in range(3):
        step()
    # the domain classifier (4 tensors) learns in adversarial methods only
    grads = 14 if method.trains_domain_classifier else 10
    assert len(steps) == 3 and all(len(s) == grads for s in steps)
    assert state.step.device == meta and state.lr.device == meta


@pytest.mark.slow
def test_resume_of_a_checkpoint_missing_its_progress_is_one_line(synthetic_root, tmp_path):
    tiny_run(synthetic_root, tmp_path / "run", epochs=1)
    path = tmp_path / "run" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["rng"]
    torch.save(ckpt, path)
    r = run_cli("--resume", str(tmp_path / "run"))
    assert r.returncode == 1 and "checkpoint.pt is unreadable or from another setup (KeyError)" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where creating a CUDA graph fails")
def test_a_failing_graph_capture_falls_back_to_the_eager_step(capsys):
    # on this CPU-only machine torch.cuda.CUDAGraph() itself raises, as a capture that fails would
    calls = []
    step = stepping.CapturedStep(lambda: calls.append(1), warmup=0)
    for _ in range(3):
        step()
    assert len(calls) == 3 and step.graph is None  # every call still one real training step
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("CUDA graph capture failed (") and "--no-cuda-graph" in err[0]


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_leaves_nothing_behind(synthetic_root, tmp_path,
                                                                                  monkeypatch):
    def disk_full(obj, f, *a, **k):
        Path(f).write_bytes(b"half")  # what torch's zip writer leaves when the disk fills up
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 521664 vs 521592")
    monkeypatch.setattr(torch, "save", disk_full)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10 << 30, 10 << 30, 0))
    out = tmp_path / "run"
    with pytest.raises(UserError) as e:
        tiny_run(synthetic_root, out)
    assert str(e.value) == (f"could not write {out / 'checkpoint.pt'} (the disk is full); free some space or choose "
                            "another disk. What was there before is untouched. Nothing of this run was saved yet; "
                            f"once it can be written, start it again with: python main.py --resume {out}")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(("events", ".lock", ".dann"))) == ["config.json"]


def test_flags_are_made_from_the_config_and_its_command_parses_back_to_it():
    import argparse
    parser = argparse.ArgumentParser()
    config.add_flags(parser)
    assert Config.from_flags(parser.parse_args([])) == Config()
    cfg = Config(source="mnist", target="usps", method="source-only", arch="svhn", dropout=0.25, augment=True, epochs=7,
                 lr=0.02, gamma=3.5, weight_decay=0.0, bf16=True, seed=9, limit=500)
    words = cfg.command().split()
    assert words[:2] == ["python", "main.py"]
    assert Config.from_flags(parser.parse_args(words[2:])) == cfg
    assert Config.from_flags(parser.parse_args(["--no-cuda-graph"])).cuda_graph is False


@pytest.mark.parametrize("changes,message", [({"epochs": 0}, "--epochs must be at least 1"),
                                             ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
                                             ({"lr": 0.0}, "--lr must be positive"),
                                             ({"limit": 0}, "--limit must be at least 1"),
                                             ({"source": "usps", "target": "usps"}, "nothing to adapt"),
                                             ({"method": "dirt-t"}, "name it with --init"),
                                             ({"method": "dirt-t", "init": "run", "teacher_every": 0},
                                              "--teacher-every must be at least 1")])
def test_an_invalid_config_cannot_be_made(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        Config(**changes)
    with pytest.raises(TypeError):
        Config(epochs="100")
    with pytest.raises(TypeError):
        Config(method="dirt")  # not a method here


def test_a_baseline_may_train_with_the_same_domain_on_both_sides():
    assert Config(source="usps", target="usps", method="source-only").arch == "mnist"


def test_curves_that_cannot_be_written_are_one_line_and_training_goes_on(synthetic_root, tmp_path, monkeypatch,
                                                                         capsys):
    import errno
    import tensorboardX.record_writer

    def disk_full(self):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tensorboardX.record_writer.RecordWriter, "flush", disk_full)
    metrics = tiny_run(synthetic_root, tmp_path / "run")
    assert metrics is not None and (tmp_path / "run" / "metrics.json").is_file()
    err = [line for line in capsys.readouterr().err.splitlines() if "TensorBoard" in line or "Traceback" in line]
    assert err == [f"could not write TensorBoard curves to {tmp_path / 'run'} (No space left on device); training "
                   "goes on without them (checkpoints and metrics.json are written apart)"]


def read_scalars(folder):
    """{tag: [(step, value)]} from a run folder's event files (TFRecord: length, crc, event, crc)."""
    import struct
    from tensorboardX.proto.event_pb2 import Event
    scalars = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (n,) = struct.unpack("Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + n])
            at += 12 + n + 4
            for v in event.summary.value:
                scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    return scalars


def test_curves_are_tensorboard_events(synthetic_root, tmp_path):
    metrics = tiny_run(synthetic_root, tmp_path / "run")
    scalars = read_scalars(tmp_path / "run")
    assert scalars["accuracy_by_epoch/target_test_acc"] == [
        (h["epoch"], pytest.approx(h["target_test_acc"])) for h in metrics["history"]]


@pytest.mark.slow
def test_seeds_train_a_row_and_summarise_it(synthetic_root, tmp_path):
    out, one_thread = tmp_path / "row", {**os.environ, "OMP_NUM_THREADS": "1"}
    row = ["--source", "mnist", "--target", "mnist_m", "--data-dir", str(synthetic_root), "--no-download",
           "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--seeds", "0", "5"]
    r = run_cli(*row, "--out", str(out), env=one_thread)
    assert r.returncode == 0, r.stderr
    outputs.check_folder(out, "row", "--out")  # a row trained here may be continued side by side (--jobs)
    # the same row with its seeds side by side, each a main.py of its own: the same numbers, and a rerun trains nothing
    side_by_side = run_cli(*row, "--out", str(tmp_path / "jobs"), "--jobs", "2", env=one_thread)
    assert side_by_side.returncode == 0, side_by_side.stderr
    assert side_by_side.stdout.strip().splitlines()[-1] == r.stdout.strip().splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "jobs" / "logs").glob("*.log")) == ["dann-seed0.log", "dann-seed5.log"]
    again = run_cli(*row, "--out", str(tmp_path / "jobs"), "--jobs", "2", env=one_thread)
    assert again.returncode == 0 and "training" not in again.stderr, again.stderr
    assert refusal(*row[:-3], "--jobs", "2").startswith("--jobs and --cluster place the runs of --seeds")
    runs = [json.loads((out / f"seed{s}" / "metrics.json").read_text()) for s in (0, 5)]
    assert [m["config"]["seed"] for m in runs] == [0, 5]
    summary = json.loads((out / "summary.json").read_text())
    values = [m["target_test_acc"] for m in runs]
    assert summary["target_test_acc"]["runs"] == values
    assert math.isclose(summary["target_test_acc"]["mean"], sum(values) / 2)
    assert math.isclose(summary["target_test_acc"]["std"], abs(values[0] - values[1]) / math.sqrt(2))
    assert summary["command"] == "python main.py --source mnist --target mnist_m --epochs 1 --batch-size 8 --seeds 0 5"
    assert r.stdout.strip().splitlines()[-1] == summary["line"]
    # a second phase refines each seed's run of the first: {seed} in --init names it
    init = str(out / "seed{seed}")
    r = run_cli("--source", "mnist", "--target", "mnist_m", "--data-dir", str(synthetic_root), "--no-download",
                "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path / "refined"),
                "--method", "dirt-t", "--init", init, "--seeds", "0", "5")
    assert r.returncode == 0, r.stderr
    assert [json.loads((tmp_path / "refined" / f"seed{s}" / "config.json").read_text())["init"] for s in (0, 5)] == [
        str(out / "seed0"), str(out / "seed5")]
    assert f"--init '{init}' " in json.loads((tmp_path / "refined" / "summary.json").read_text())["command"]
    assert "--seed and --seeds: give one of them" in refusal("--seeds", "1", "2", "--seed", "3")
    assert "--resume continues one run" in refusal("--seeds", "1", "2", "--resume", str(out / "seed0"))


def refusal(*args):
    """main.py's one-line refusal of a combination of flags (argparse's exit 2), read in this process."""
    import main
    with pytest.raises(SystemExit) as ended, contextlib.redirect_stderr(io.StringIO()) as err:
        main.parse_args(list(args))
    assert ended.value.code == 2
    return err.getvalue().strip().splitlines()[-1].split("error: ", 1)[1]
