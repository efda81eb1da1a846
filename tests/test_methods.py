import json
import math

import pytest
import torch

import methods
import models
import training
from methods import METHODS, Batch, Method
from training import Config


def tiny_batch(unlabelled=True, n=6):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8)
    other = torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8)
    return Batch(images, torch.arange(n) % 10, other if unlabelled else None)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_returns_a_loss_and_exactly_its_declared_statistics(name):
    method = METHODS[name]
    torch.manual_seed(0)
    model = models.DANN("mnist")
    loss, stats = method.loss(model, tiny_batch(method.uses_unlabelled), torch.tensor(0.5, dtype=torch.float64),
                              Config(source="mnist", target="mnist_m", mode=name))
    assert tuple(stats) == method.stats and all(v.dim() == 0 for v in stats.values())
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert math.isclose(stats["class_loss"].item(), math.log(10), rel_tol=1e-6)  # zero output layers: uniform


def test_dann_loss_is_class_plus_domain_loss_with_lambda_from_the_schedule():
    model = models.DANN("mnist")
    p = torch.tensor(0.3, dtype=torch.float64)
    loss, stats = methods.dann(model, tiny_batch(), p, Config(source="mnist", target="mnist_m", gamma=4.0))
    assert torch.equal(loss, stats["class_loss"] + stats["domain_loss"])
    assert math.isclose(stats["lambda"].item(), 2 / (1 + math.exp(-4 * 0.3)) - 1, rel_tol=1e-6)
    assert math.isclose(stats["domain_loss"].item(), math.log(2), rel_tol=1e-6)  # zero output layer: can't tell


def test_baselines_train_on_their_own_domain_and_take_no_unlabelled_batch():
    assert METHODS["source-only"].labelled == "source" and METHODS["target-only"].labelled == "target"
    assert not METHODS["source-only"].uses_unlabelled and not METHODS["target-only"].uses_unlabelled
    assert METHODS["dann"].labelled == "source" and METHODS["dann"].uses_unlabelled


def entropy_method(model, batch, p, cfg):
    """A method that is not in the project: cross-entropy plus the prediction entropy on the unlabelled batch."""
    logits = model(torch.cat([batch.images, batch.unlabelled])).float()
    class_loss = torch.nn.functional.cross_entropy(logits[:len(batch.images)], batch.labels)
    probs = logits[len(batch.images):].softmax(1)
    entropy = -(probs * probs.clamp(min=1e-8).log()).sum(1).mean()
    return class_loss + 0.1 * entropy, {"class_loss": class_loss, "entropy": entropy}


def test_a_new_method_plugs_in_with_one_entry(synthetic_root, tmp_path, monkeypatch):
    # the extension point: one METHODS entry, and the loop, checkpoints, resume and metrics carry it
    monkeypatch.setitem(METHODS, "entropy", Method(entropy_method, labelled="source", uses_unlabelled=True,
                                                   stats=("class_loss", "entropy")))
    cfg = Config(source="mnist", target="mnist_m", mode="entropy", data_dir=str(synthetic_root), no_download=True,
                 epochs=2, batch_size=8, eval_every=1, save_every=1, device="cpu")
    metrics = training.train(cfg, tmp_path / "run")
    assert [sorted(h) for h in metrics["history"]] == [["class_loss", "entropy", "epoch", "source_test_acc",
                                                        "target_test_acc"]] * 2
    assert 0 < metrics["history"][0]["entropy"] <= math.log(10) + 1e-6
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert training.resumed_config(tmp_path / "run", "cpu") == Config(**{**saved, "device": "cpu"})
