import json
import math

import pytest
import torch

import checkpoints
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


def test_prediction_entropies():
    entropy, diversity = methods.prediction_entropies(torch.zeros(4, 10))  # uniform predictions
    assert math.isclose(entropy.item(), math.log(10), rel_tol=1e-6) and math.isclose(diversity.item(), math.log(10),
                                                                                      rel_tol=1e-6)
    confident = torch.full((4, 10), -30.0)
    confident[torch.arange(4), torch.tensor([0, 1, 2, 3])] = 30.0  # sure, and of four different classes
    entropy, diversity = methods.prediction_entropies(confident)
    assert entropy.item() < 1e-6 and math.isclose(diversity.item(), math.log(4), rel_tol=1e-5)
    confident[:, :4] = torch.tensor([30.0, -30, -30, -30])  # sure, and all of class 0: collapsed
    assert methods.prediction_entropies(confident)[1].item() < 1e-6


def test_the_virtual_adversarial_perturbation_has_the_radius_and_beats_a_random_one():
    torch.manual_seed(0)
    model = models.DANN("mnist")
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)  # a model that predicts something
    x = models.standardize(torch.randint(0, 256, (32, 3, 28, 28), dtype=torch.uint8))
    probs = model.classify(x).softmax(1).detach()
    r = methods.vat_perturbation(model, x, probs, radius=2.0)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((32,), 2.0), rtol=1e-4)
    random = 2.0 * methods.unit(torch.randn_like(x))
    adversarial_kl = methods.kl_from(probs, model.classify(x + r)).item()
    assert adversarial_kl > 3 * methods.kl_from(probs, model.classify(x + random)).item() > 0
    assert all(p.grad is None for p in model.parameters())  # the search itself trains nothing


def test_vat_loss_sends_no_gradient_through_its_target():
    torch.manual_seed(0)
    model = models.DANN("mnist")
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)
    x = models.standardize(torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8))
    logits = model.classify(x)
    loss = methods.vat_loss(model, x, logits, radius=1.0)
    (through_target,) = torch.autograd.grad(loss, logits, allow_unused=True)
    assert through_target is None and loss.item() > 0


def test_the_averaged_model_moves_by_one_minus_decay_each_step():
    torch.manual_seed(0)
    cfg = Config(source="mnist", target="mnist_m", mode="source-only", batch_size=4, epochs=1, ema=0.9)
    model, opt = training.model_and_optimizer(cfg, torch.device("cpu"))
    ema = training.averaged_copy(model)
    start = [p.detach().clone() for p in ema.parameters()]
    images = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    step, state = training.make_step(model, opt, METHODS["source-only"], (images, torch.arange(8) % 10, None), cfg,
                                     2, 0, ema)
    state["batches"].copy_(training.epoch_indices((8,), 2, 4, 0, 0, "cpu"))
    step()
    for e, s, p in zip(ema.parameters(), start, model.parameters()):
        assert torch.allclose(e, 0.9 * s + 0.1 * p.detach(), atol=1e-7)
    assert any(not torch.equal(e, p) for e, p in zip(ema.parameters(), model.parameters()))


def test_a_run_with_ema_is_evaluated_and_shared_with_the_averaged_weights(synthetic_root, tmp_path):
    cfg = Config(source="mnist", target="mnist_m", mode="dann", data_dir=str(synthetic_root), no_download=True,
                 epochs=2, batch_size=8, ema=0.5, device="cpu")
    training.train(cfg, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    model, _ = checkpoints.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, ckpt["ema"][name]), name
    assert any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"])
    shared = checkpoints.weights_only(ckpt)
    assert "ema" not in shared and all(torch.equal(shared["model"][k], ckpt["ema"][k]) for k in ckpt["ema"])


def test_every_method_takes_as_many_steps(synthetic_root, tmp_path):
    steps = {}
    for mode in ("dann", "source-only", "target-only"):
        cfg = Config(source="mnist", target="mnist_m", mode=mode, data_dir=str(synthetic_root), no_download=True,
                     epochs=1, batch_size=8, device="cpu")
        training.train(cfg, tmp_path / mode)
        steps[mode] = torch.load(tmp_path / mode / "checkpoint.pt", weights_only=True)["step"]
    assert steps == {"dann": 4, "source-only": 4, "target-only": 4}  # 30 target images, more source ones
