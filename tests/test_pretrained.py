"""The bundled models: registry, integrity, names on the command line, torch.hub, and the first run."""
import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import torch

import valid
from conftest import REPO
from dann.common import UserError
from dann.config import Config
from dann import checkpoints, datasets, domains, evaluation, models, pretrained, training

REGISTRY = pretrained.bundled_models()
NAMES = list(REGISTRY["models"])
DIGIT_7 = "mnist_m_test0_digit7.png"  # a committed MNIST-M test digit, in images/


def test_the_registry_lists_the_papers_three_columns_dirt_t_and_the_readers_under_the_size_limits():
    methods_ = {e["method"] for e in REGISTRY["models"].values()}
    assert methods_ == {"dann", "source-only", "target-only", "dirt-t", "self-ensemble"}
    default = REGISTRY["models"][REGISTRY["default"]]  # several sources at full size, the carry-over method
    assert (default["source"], default["method"]) == ("mnist+synth", "self-ensemble") and "--limit" not in default["command"]
    files = [pretrained.PRETRAINED_DIR / e["file"] for e in REGISTRY["models"].values()]
    assert all(f.stat().st_size < 1 << 20 for f in files) and sum(f.stat().st_size for f in files) < 5 << 20
    for e in REGISTRY["models"].values():
        assert set(e) >= {"file", "sha256", "source", "target", "method", "epochs", "seed", "commit",
                          "source_test_acc", "target_test_acc", "command"}


@pytest.mark.parametrize("name", NAMES)
def test_every_bundled_model_matches_its_sha256_and_loads_weights_only(name):
    entry = REGISTRY["models"][name]
    path = pretrained.bundled_checkpoint(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    ckpt = torch.load(path, weights_only=True)
    assert "optimizer" not in ckpt and "rng" not in ckpt  # weights only
    model, ckpt = checkpoints.load_checkpoint(path)
    assert isinstance(model, models.DANN) and not model.training
    assert {k: ckpt["config"][k] for k in ("source", "target", "method", "epochs", "seed")} == \
        {k: entry[k] for k in ("source", "target", "method", "epochs", "seed")}


@pytest.mark.parametrize("name", NAMES)
def test_re_evaluating_a_bundled_model_gives_its_recorded_accuracies(name, real_root, tmp_path):
    entry = REGISTRY["models"][name]
    sources = domains.source_parts(entry["source"])
    if "synth" in (*sources, entry["target"]):
        datasets.render_synth(real_root, ["test"], log=lambda _: None)  # the same 10,000 pictures, about 10 s
    results = valid.main(["--checkpoint", name, "--data-dir", str(real_root), "--no-download", "--json",
                          "--device", "cpu", "--out-dir", str(tmp_path)])
    right = sum(round(results[s]["accuracy"] * results[s]["images"]) for s in sources)  # of every source's pictures
    assert right / sum(results[s]["images"] for s in sources) == entry["source_test_acc"]
    assert results[entry["target"]]["accuracy"] == entry["target_test_acc"]
    # the share marked "not sure", to one picture: the threshold is a chance computed in floating point, and
    # another CPU may round the picture at its boundary the other way
    for name, recorded in entry["trust"].items():
        one_picture = 1 / results[name]["images"]
        assert abs(results[name]["not_sure_share"] - recorded["not_sure_share"]) <= one_picture + 5e-5, name
        assert abs(results[name]["sure_accuracy"] - recorded["sure_accuracy"]) <= 2 * one_picture + 5e-5, name


def damaged_copy(tmp_path, monkeypatch):
    copy = tmp_path / "pretrained"
    shutil.copytree(pretrained.PRETRAINED_DIR, copy)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", copy)
    monkeypatch.setattr(pretrained, "REGISTRY", copy / "registry.json")
    return copy


def test_a_damaged_bundled_file_is_refused(tmp_path, monkeypatch):
    copy = damaged_copy(tmp_path, monkeypatch)
    name = REGISTRY["default"]
    blob = bytearray((copy / REGISTRY["models"][name]["file"]).read_bytes())
    blob[len(blob) // 2] ^= 1  # one flipped bit in the weights: still loadable, other numbers
    (copy / REGISTRY["models"][name]["file"]).write_bytes(bytes(blob))
    for spec in (name, None):  # by name, and as the default when there is no run
        with pytest.raises(UserError, match="does not match its sha256 .* git checkout -- pretrained/"):
            pretrained.resolve_checkpoint(spec, runs_dir=tmp_path / "runs")
    (copy / REGISTRY["models"][name]["file"]).unlink()
    with pytest.raises(UserError, match="is missing or does not match"):
        pretrained.resolve_checkpoint(name)


def test_a_damaged_registry_is_one_line(tmp_path, monkeypatch):
    copy = damaged_copy(tmp_path, monkeypatch)
    (copy / "registry.json").write_text("{")
    with pytest.raises(UserError, match="registry.json is missing or damaged"):
        pretrained.resolve_checkpoint(None, runs_dir=tmp_path / "runs")


def test_list_prints_every_bundled_model_with_its_accuracies(capsys):
    assert valid.main(["--list"]) is None
    out = capsys.readouterr().out
    for name, e in REGISTRY["models"].items():
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{e['target_test_acc']:.4f}" in row and f"{e['source_test_acc']:.4f}" in row and e["method"] in row


@pytest.mark.slow
def test_a_fresh_clone_reads_a_committed_digit_with_no_run_and_a_bare_name(tmp_path):
    # tmp_path has no runs/ and no images/: the model is the bundled one, the picture is found in images/
    r = subprocess.run([sys.executable, str(REPO / "image_annotate.py"), "-f", DIGIT_7, "--out-dir", str(tmp_path)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, answer = r.stdout.splitlines()[:2]
    default = REGISTRY["default"]
    assert first == (f"model: {pretrained.PRETRAINED_DIR / default}.pt "
                     f"(bundled model {default}, since there is no finished run under runs/ yet); "
                     f"not sure below a calibrated chance of {REGISTRY['models'][default]['unsure_below']:.4f}; "
                     f"chances calibrated at temperature {REGISTRY['models'][default]['temperature']:g}")
    assert answer.startswith(f"{REPO / 'images' / DIGIT_7}: 7 ")  # read as 7, and sure
    assert (tmp_path / f"{DIGIT_7}.{default}.annotated.png").is_file()


def test_torch_hub_loads_the_bundled_dann_ready_for_inference():
    from PIL import Image
    from dann.pictures import picture_to_digit
    model = torch.hub.load(str(REPO), "mnist_mnist_m_dann", source="local", trust_repo=True)
    assert isinstance(model, models.DANN) and not model.training
    digit = picture_to_digit(Image.open(REPO / "images" / DIGIT_7))
    assert model.predict_proba(digit[None]).argmax().item() == 7
    entry = REGISTRY["models"]["mnist-mnist_m-dann"]
    reference = checkpoints.load_checkpoint(pretrained.PRETRAINED_DIR / entry["file"])[0]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_every_bundled_model_has_a_torch_hub_entry_point():
    import hubconf
    for name in NAMES:
        model = getattr(hubconf, name.replace("-", "_").replace("+", "_"))()
        assert isinstance(model, models.DANN) and not model.training


def test_initialisation_is_he_for_relu_layers_and_zero_for_the_outputs():
    torch.manual_seed(0)
    model = models.DANN("svhn")
    conv = model.features[6]  # 64 x 5 x 5 inputs per output: He's std is sqrt(2 / 1600)
    assert abs(conv.weight.std().item() / (2 / conv.weight[0].numel()) ** 0.5 - 1) < 0.02
    for head in (model.label_classifier[-1], model.domain_classifier[-1]):
        assert not head.weight.any() and not head.bias.any()
    images = torch.randint(0, 256, (4, 3, 28, 28), dtype=torch.uint8)
    assert torch.allclose(model.predict_proba(images), torch.full((4, 10), 0.1))  # the loss starts at log 10


def test_the_quick_trial_learns(real_root, tmp_path):
    # the README's first training run; with torch's default initialisation it ended at .52
    cfg = Config(source="mnist", target="mnist_m", method="source-only", limit=3000, epochs=3, seed=0, no_download=True,
                 data_dir=str(real_root), device="cpu")
    metrics = training.train(cfg, tmp_path / "run")
    assert metrics["source_test_acc"] >= 0.90
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["source_test_acc"] == metrics["source_test_acc"]


def test_the_registry_command_reproduces_the_runs_settings():
    cfg = Config(source="mnist", target="mnist_m", method="target-only", bf16=True, seed=1, eval_every=10, device="cpu")
    assert cfg.command() == "python main.py --source mnist --target mnist_m --method target-only --bf16 --seed 1"
    assert Config(source="mnist", target="mnist_m", arch="mnist").command() == \
        "python main.py --source mnist --target mnist_m"  # the paper's network for the source goes unsaid
    assert Config(arch="mnist", cuda_graph=False).command() == "python main.py --arch mnist"
    for name, e in REGISTRY["models"].items():  # every registered command is its model's own settings
        saved = torch.load(pretrained.PRETRAINED_DIR / e["file"], weights_only=True)["config"]
        assert Config.from_saved(saved, name).command() == e["command"]


@pytest.mark.slow
def test_the_readme_torch_hub_example_runs_as_written_and_prints_what_it_says():
    import re
    block = next(b for b in re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
                 if "torch.hub.load" in b)
    expected = re.search(r"print\(.*#\s*(.+)$", block, re.M).group(1).strip()
    r = subprocess.run([sys.executable, "-c", block], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected == "7 0.53"


def test_bundling_a_finished_run_registers_its_checksum_and_its_measured_accuracies(trained_run, tmp_path, monkeypatch):
    from dann import bundle
    root, run = trained_run
    real_registry = pretrained.REGISTRY.read_bytes()
    damaged_copy(tmp_path, monkeypatch)  # a copy of pretrained/ to write into
    bundle.bundle(run, "tiny", "abc1234", False, root)
    assert (tmp_path / "pretrained" / "tiny.pt").is_file() and not (REPO / "pretrained" / "tiny.pt").exists()
    assert (REPO / "pretrained" / "registry.json").read_bytes() == real_registry
    entry = pretrained.bundled_models()["models"]["tiny"]
    path = pretrained.bundled_checkpoint("tiny")  # checked against the sha256 just registered
    model, ckpt = checkpoints.load_checkpoint(path)
    assert "optimizer" not in ckpt and entry["commit"] == "abc1234" and entry["method"] == "dann"
    images, labels = datasets.load_domain("mnist_m", "test", root)
    assert entry["target_test_acc"] == evaluation.accuracy(evaluation.predictions(model, images), labels)
    assert pretrained.bundled_models()["default"] == REGISTRY["default"]
    with pytest.raises(UserError, match="has not finished"):
        bundle.bundle(tmp_path, "nothing", "abc1234", False, root)
