import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO
from httpserver import FileServer
from dann import checkpoints, datasets, evaluation, models, pretrained, runs
from dann.common import UserError
from dann.domains import DIGITS
from dann.models import DANN
from dann.pretrained import start_from


def run_valid(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "valid.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.slow
def test_table_and_figures(trained_run, tmp_path):
    root, run = trained_run
    r = run_valid("--checkpoint", str(run / "checkpoint.pt"), "--data-dir", str(root), "--no-download",
                  "--out-dir", str(tmp_path / "figs"))
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.startswith(("mnist ", "mnist_m "))}
    assert rows["mnist"][1:3] == ["source", "20"] and rows["mnist_m"][1:3] == ["target", "20"]
    assert len(rows["mnist"]) == 6 + 1 + 10  # name, role, images, accuracy, not sure, sure acc, '|', ten per class
    assert 0 <= float(rows["mnist_m"][4]) <= 1 and "not sure" in r.stdout
    for name in ("mnist", "mnist_m"):
        assert (tmp_path / "figs" / f"confusion_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_json_matches_a_direct_evaluation(trained_run, tmp_path):
    root, run = trained_run
    r = run_valid("--checkpoint", str(run / "checkpoint.pt"), "--data-dir", str(root), "--no-download",
                  "--domains", "usps", "--json", "--out-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {k: v["role"] for k, v in out["domains"].items()} == {"mnist": "source", "mnist_m": "target", "usps": "extra"}
    model, _ = checkpoints.load_checkpoint(run / "checkpoint.pt")
    images, labels = datasets.load_domain("mnist_m", "test", root)
    predictions = model(images).argmax(1)
    target = out["domains"]["mnist_m"]
    assert target["accuracy"] == pytest.approx((predictions == labels).float().mean().item())
    cm = torch.tensor(target["confusion_matrix"])
    assert cm.sum() == 20 and cm.diag().sum() == (predictions == labels).sum()
    assert target["per_class_accuracy"][3] == pytest.approx(cm[3, 3].item() / cm[3].sum().item())


@pytest.mark.slow
def test_checkpoint_from_a_url_is_verified_and_cached(trained_run, tmp_path):
    root, run = trained_run
    blob = (run / "checkpoint.pt").read_bytes()
    with FileServer() as server:
        server.files["/models/dann.pt"] = blob
        url = server.url + "/models/dann.pt"
        common = ("--checkpoint", url, "--data-dir", str(root), "--no-download", "--json")
        bad = run_valid(*common, "--sha256", "0" * 64, cwd=tmp_path)
        assert bad.returncode == 1 and "checksum mismatch" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert not any((tmp_path / "checkpoints").iterdir())
        good = run_valid(*common, "--sha256", hashlib.sha256(blob).hexdigest(), cwd=tmp_path)
        assert good.returncode == 0, good.stderr
        assert len(server.requests) == 2
        again = run_valid(*common, cwd=tmp_path)  # served from checkpoints/, no new request
        assert again.returncode == 0 and len(server.requests) == 2
    cached = list((tmp_path / "checkpoints").glob("*.pt"))  # the figures land beside it too
    assert len(cached) == 1 and cached[0].read_bytes() == blob


class RunsCode:
    """Unpickling this would create a file: the proof that a checkpoint ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.slow
def test_a_checkpoint_carrying_pickled_code_is_refused(trained_run, tmp_path):
    root, run = trained_run
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["extra"] = RunsCode(tmp_path / "pwned")
    torch.save(ckpt, tmp_path / "evil.pt")
    r = run_valid("--checkpoint", str(tmp_path / "evil.pt"), "--data-dir", str(root), "--no-download")
    assert r.returncode == 1 and "refusing to load" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("make,message", [
    (lambda p, run: None, "no checkpoint at"),
    (lambda p, run: p.write_bytes(os.urandom(1000)), "is not a readable checkpoint"),
    (lambda p, run: p.write_bytes((run / "checkpoint.pt").read_bytes()[:5000]), "is not a readable checkpoint"),
    (lambda p, run: torch.save({"weights": torch.zeros(3)}, p), "is not a DANN checkpoint"),
    (lambda p, run: torch.save({**torch.load(run / "checkpoint.pt", weights_only=True),
                                "model_config": {"arch": "svhn", "dropout": 0.0}}, p), "do not fit the 'svhn'"),
    (lambda p, run: torch.save({"format": "dann-checkpoint-1"}, p), "has the DANN checkpoint marker but not"),
    (lambda p, run: torch.save({**torch.load(run / "checkpoint.pt", weights_only=True),
                                "model_config": {"arch": "mnist", "dropout": 0.0, "depth": 9}}, p),
     "has the DANN checkpoint marker but not"),
    (lambda p, run: torch.save({**torch.load(run / "checkpoint.pt", weights_only=True),
                                "model_config": {"arch": "mnist", "dropout": 0.0, "input_norm": "whiten"}}, p),
     "has the DANN checkpoint marker but not"),
    (lambda p, run: torch.save({k: v for k, v in torch.load(run / "checkpoint.pt", weights_only=True).items()
                                if k != "config"}, p), "has the DANN checkpoint marker but not"),
])
@pytest.mark.slow
def test_bad_checkpoints_are_refused_with_what_to_do(trained_run, tmp_path, make, message):
    """valid.main as the script runs it; the script's one line for such an error: test_a_bad_checkpoint_is_one_line."""
    import valid
    root, run = trained_run
    make(tmp_path / "x.pt", run)
    with pytest.raises(UserError) as e:
        valid.main(["--checkpoint", str(tmp_path / "x.pt"), "--data-dir", str(root), "--no-download"])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_a_bad_checkpoint_is_one_line(trained_run, tmp_path):
    root, run = trained_run
    (tmp_path / "x.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:5000])
    r = run_valid("--checkpoint", str(tmp_path / "x.pt"), "--data-dir", str(root), "--no-download")
    assert r.returncode == 1 and "is not a readable checkpoint" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")


def test_an_ensemble_predicts_the_mean_of_its_members_and_travels_as_one_checkpoint(tmp_path):
    torch.manual_seed(0)
    members = [DANN() for _ in range(3)]
    for m in members:  # initialise() starts every output layer at zero: every prediction uniform
        torch.nn.init.normal_(m.label_classifier[-1].weight)
    images = torch.randint(0, 256, (16, 3, 28, 28), dtype=torch.uint8)
    ensemble, ckpt = checkpoints.ensemble_of(members, {"source": "mnist", "target": "mnist_m", "method": "ensemble"}, 7)
    mean = torch.stack([m.predict_proba(images) for m in members]).mean(0)
    assert torch.allclose(ensemble.predict_proba(images), mean) and not torch.allclose(mean, members[0].predict_proba(images))
    assert torch.equal(ensemble(images).argmax(1), mean.argmax(1))
    torch.save(ckpt, tmp_path / "e.pt")
    loaded, saved = checkpoints.load_checkpoint(tmp_path / "e.pt")
    assert saved["model_config"]["members"] == 3 and torch.allclose(loaded.predict_proba(images), mean)
    for few in (members[:1], [members[0], DANN(arch="svhn")]):
        with pytest.raises(ValueError):
            checkpoints.ensemble_of(few, {}, 0)
    torch.save({**ckpt, "model_config": {**ckpt["model_config"], "members": 1}}, tmp_path / "one.pt")
    with pytest.raises(UserError, match="has the DANN checkpoint marker but not"):
        checkpoints.load_checkpoint(tmp_path / "one.pt")
    with pytest.raises(UserError, match="is an ensemble of 3 models, not one network"):
        start_from(DANN(), str(tmp_path / "e.pt"), DIGITS)


def test_a_whole_number_dropout_loads(trained_run, tmp_path):
    # a resumed run whose config.json says "dropout": 0 writes that int into its checkpoints
    _, run = trained_run
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "model_config": {**ckpt["model_config"], "dropout": 0}}, tmp_path / "x.pt")
    model, _ = checkpoints.load_checkpoint(tmp_path / "x.pt")
    assert model.dropout == 0 and model.arch == ckpt["model_config"]["arch"]


def test_the_input_normalisation_travels_with_the_checkpoint(trained_run, tmp_path):
    # a checkpoint from before the setting (the bundled models among them) standardizes, as every model then did
    _, run = trained_run
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    older = {k: v for k, v in ckpt["model_config"].items() if k != "input_norm"}
    torch.save({**ckpt, "model_config": older}, tmp_path / "older.pt")
    torch.save({**ckpt, "model_config": {**older, "input_norm": "scale"}}, tmp_path / "scaled.pt")
    model, scaled = (checkpoints.load_checkpoint(tmp_path / name)[0] for name in ("older.pt", "scaled.pt"))
    images = torch.randint(0, 256, (4, 3, 28, 28), dtype=torch.uint8)
    assert model.input_norm == "standardize" and scaled.input_norm == "scale"
    assert torch.equal(model.prepare(images), models.standardize(images))
    assert scaled.prepare(images).min() >= -1 and scaled.prepare(images).max() <= 1
    assert torch.equal(scaled.prepare(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0]))
    assert not torch.allclose(model(images), scaled(images))


def test_latest_checkpoint_is_the_newest_finished_run(tmp_path):
    for i, name in enumerate(["b-run", "a-run", "stopped-run"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.pt").write_bytes(b"x")
        if name != "stopped-run":
            (tmp_path / name / "metrics.json").write_text("{}")  # what a finished run writes last
        os.utime(tmp_path / name / "checkpoint.pt", (time.time() + i, time.time() + i))
    assert runs.latest_finished(tmp_path) == tmp_path / "a-run" / "checkpoint.pt"
    assert runs.latest_finished(tmp_path / "nothing") is None
    row = tmp_path / "a-row" / "seed1"  # main.py --seeds writes one folder per seed
    row.mkdir(parents=True)
    (row / "checkpoint.pt").write_bytes(b"x")
    (row / "metrics.json").write_text("{}")
    os.utime(row / "checkpoint.pt", (time.time() + 5, time.time() + 5))
    assert runs.latest_finished(tmp_path) == row / "checkpoint.pt"


@pytest.mark.slow
def test_with_no_run_the_bundled_model_is_used_and_said_first(tmp_path):
    r = run_valid("--no-download", "--data-dir", str(tmp_path / "empty"), cwd=tmp_path)  # no runs/ there
    default = pretrained.bundled_models()["default"]
    assert r.stdout.splitlines()[0].startswith(f"model: {pretrained.PRETRAINED_DIR / default}.pt (bundled model "
                                               f"{default}, since there is no finished run under runs/ yet)")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "download_data.py" in r.stderr


@pytest.mark.slow
def test_an_unreachable_checkpoint_url_says_what_to_do_in_valid_py_terms(tmp_path):
    r = run_valid("--checkpoint", "http://127.0.0.1:9/dann.pt", "--no-download", cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "pass it as --checkpoint PATH" in r.stderr and "--from" not in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_asking_for_cuda_without_one_gets_one_line(trained_run):
    root, run = trained_run
    r = run_valid("--checkpoint", str(run / "checkpoint.pt"), "--data-dir", str(root), "--device", "cuda")
    assert r.returncode == 1 and r.stderr.strip() == "error: --device cuda: no CUDA device is visible; use --device cpu"


def test_an_evaluation_in_process_reports_every_domain_writes_its_figures_and_guards_its_folder(trained_run, tmp_path,
                                                                                             capsys):
    import valid
    root, run = trained_run
    args = ["--checkpoint", str(run / "checkpoint.pt"), "--data-dir", str(root), "--no-download", "--device", "cpu",
            "--domains", "usps", "--out-dir", str(tmp_path / "figs")]
    results = valid.main(args)
    model, _ = checkpoints.load_checkpoint(run / "checkpoint.pt")
    for name in ("mnist", "mnist_m", "usps"):
        images, labels = datasets.load_domain(name, "test", root)
        assert results[name]["accuracy"] == evaluation.accuracy(evaluation.predictions(model, images), labels)
        assert (tmp_path / "figs" / f"confusion_{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert [r["role"] for r in results.values()] == ["source", "target", "extra"]
    assert "per-class accuracy" in capsys.readouterr().out
    record = json.loads((tmp_path / "figs" / "evaluation.json").read_text())
    assert record["checkpoint"] == str((run / "checkpoint.pt").resolve()) and record["finished"]
    with pytest.raises(UserError, match="holds the evaluation of another model"):
        evaluation.claim_evaluation_folder(tmp_path / "figs", tmp_path / "other.pt", ["mnist"])


def test_accuracy_is_an_exact_count():
    predicted, labels = torch.tensor([1, 2, 3, 4, 5, 6, 7]), torch.tensor([1, 2, 3, 0, 0, 0, 0])
    assert evaluation.accuracy(predicted, labels) == 3 / 7  # not float32's 0.4285714328...
