import json
import math

import pytest
import torch

from dann.datasets import TaskData
from conftest import ctrl_c_after
from dann.common import UserError
from dann.methods import METHODS, Batch, Method
from dann.config import Config
from dann import checkpoints, domains, methods, models, pretrained, runs, stepping, training


def tiny_batch(unlabelled=True, n=6, method=None):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8)
    other = torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8)
    batch = Batch(images, torch.arange(n) % 10, other if unlabelled else None)
    if method is not None and not method.labelled:
        batch.images = batch.labels = None
    if method is not None and method.teacher:
        batch.teacher_probs = torch.full((n, 10), 0.1)  # a teacher that cannot tell the digits apart
    return batch


@pytest.mark.parametrize("name", METHODS)
def test_every_method_returns_a_loss_and_exactly_its_declared_statistics(name):
    method = METHODS[name]
    torch.manual_seed(0)
    model = models.DANN("mnist")
    cfg = Config(source="mnist", target="mnist_m", method=name, init="run" if method.teacher else None)
    loss, stats = method.loss(model, tiny_batch(method.uses_unlabelled, method=method),
                              torch.tensor(0.5, dtype=torch.float64), cfg)
    assert tuple(stats) == method.stats and all(v.dim() == 0 for v in stats.values())
    assert loss.dim() == 0 and torch.isfinite(loss)
    # zero output layers: a uniform prediction, whose class loss and entropy are log 10
    assert math.isclose(stats["class_loss" if "class_loss" in stats else "entropy"].item(), math.log(10), rel_tol=1e-6)


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
    cfg = Config(source="mnist", target="mnist_m", method="entropy", data_dir=str(synthetic_root), no_download=True,
                 epochs=2, batch_size=8, eval_every=1, save_every=1, device="cpu")
    metrics = training.train(cfg, tmp_path / "run")
    assert [sorted(h) for h in metrics["history"]] == [["class_loss", "entropy", "epoch", "label_free",
                                                        "source_test_acc", "target_class_mix", "target_test_acc"]] * 2
    assert 0 < metrics["history"][0]["entropy"] <= math.log(10) + 1e-6
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert runs.resumed_config(tmp_path / "run", "cpu") == Config(**{**saved, "device": "cpu"})


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


def test_joint_standardization_keeps_a_pictures_colours_where_the_per_channel_one_removes_them():
    gray = torch.randint(0, 100, (1, 1, 28, 28)).float()
    tinted = torch.cat([gray, 2 * gray, gray + 50], 1)  # one picture, its channels the same strokes in other colours
    per_channel = models.DANN("mnist").prepare(tinted)
    joint = models.DANN("mnist", input_norm="joint").prepare(tinted)
    assert torch.allclose(per_channel[0, 0], per_channel[0, 2], atol=1e-4)  # an offset is taken away per channel
    assert not torch.allclose(joint[0, 0], joint[0, 2], atol=0.1)  # and kept when standardized jointly
    assert abs(joint.mean().item()) < 1e-4 and abs(joint.std().item() - 1) < 0.05  # +1 in the divisor
    assert torch.allclose(joint[0, 1] - joint[0, 1].mean(), 2 * (joint[0, 0] - joint[0, 0].mean()), atol=1e-4)


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


def test_the_virtual_adversarial_search_is_not_rounded_away_under_bf16():
    torch.manual_seed(0)
    model = models.DANN("mnist")
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)
    x = models.standardize(torch.randint(0, 256, (16, 3, 28, 28), dtype=torch.uint8))
    probs = model.classify(x).softmax(1).detach()
    torch.manual_seed(1)
    full = methods.vat_perturbation(model, x, probs, radius=2.0)
    torch.manual_seed(1)  # the same probe, with the step's bf16 autocast around the search
    with torch.autocast("cpu", torch.bfloat16, cache_enabled=False):
        mixed = methods.vat_perturbation(model, x, probs, radius=2.0)
    assert torch.allclose(mixed, full, atol=1e-5)


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
    cfg = Config(source="mnist", target="mnist_m", method="source-only", batch_size=4, epochs=1, ema=0.9)
    model, opt = stepping.model_and_optimizer(cfg, torch.device("cpu"))
    ema = stepping.frozen_copy(model)
    start = [p.detach().clone() for p in ema.parameters()]
    images = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    step, state = stepping.make_step(model, opt, METHODS["source-only"], (images, torch.arange(8) % 10, None), cfg,
                                     2, 0, ema)
    state.batches.copy_(stepping.epoch_indices([(8,)], 2, 4, 0, 0, "cpu"))
    step()
    for e, s, p in zip(ema.parameters(), start, model.parameters()):
        assert torch.allclose(e, 0.9 * s + 0.1 * p.detach(), atol=1e-7)
    assert any(not torch.equal(e, p) for e, p in zip(ema.parameters(), model.parameters()))


def test_a_run_with_ema_is_evaluated_and_shared_with_the_averaged_weights(synthetic_root, tmp_path):
    cfg = Config(source="mnist", target="mnist_m", method="dann", data_dir=str(synthetic_root), no_download=True,
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
    for method in ("dann", "source-only", "target-only"):
        cfg = Config(source="mnist", target="mnist_m", method=method, data_dir=str(synthetic_root), no_download=True,
                     epochs=1, batch_size=8, device="cpu")
        training.train(cfg, tmp_path / method)
        steps[method] = torch.load(tmp_path / method / "checkpoint.pt", weights_only=True)["step"]
    assert steps == {"dann": 4, "source-only": 4, "target-only": 4}  # 30 target images, more source ones


@pytest.mark.parametrize("bf16", [False, True])  # dirt-t has no labelled batch: bf16 once failed on that
def test_dirt_t_follows_a_teacher_that_no_gradient_reaches(bf16):
    torch.manual_seed(0)
    cfg = Config(source="mnist", target="mnist_m", method="dirt-t", init="run", batch_size=4, epochs=1, bf16=bf16)
    model, opt = stepping.model_and_optimizer(cfg, torch.device("cpu"))
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)  # a model that predicts something
    teacher = stepping.frozen_copy(model).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    target = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    step, state = stepping.make_step(model, opt, METHODS["dirt-t"], (None, None, target), cfg, 2, 0, teacher=teacher)
    state.batches.copy_(stepping.epoch_indices([(8,)], 2, 4, 0, 0, "cpu"))
    step()
    stats = dict(zip(METHODS["dirt-t"].stats, state.last.tolist()))
    # the first step starts from the teacher itself (computed in fp32; the bf16 model differs by rounding)
    assert stats["teacher_kl"] < (1e-3 if bf16 else 1e-6) < stats["entropy"]
    step()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), teacher.parameters()))
    assert state.last[2].item() > 1e-3  # now the model has moved away from the teacher


def test_with_augment_the_teacher_sees_the_plain_target_batch_and_the_model_an_augmented_one():
    torch.manual_seed(0)
    cfg = Config(source="mnist", target="mnist_m", method="dirt-t", init="run", batch_size=4, epochs=1, augment=True)
    model, opt = stepping.model_and_optimizer(cfg, torch.device("cpu"))
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)
    teacher, seen = stepping.frozen_copy(model).eval(), []
    teacher.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    target = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    step, state = stepping.make_step(model, opt, METHODS["dirt-t"], (None, None, target), cfg, 2, 0, teacher=teacher)
    state.batches.copy_(stepping.epoch_indices([(8,)], 2, 4, 0, 0, "cpu"))
    step()
    assert torch.equal(seen[0], target[state.batches[0, 0]])
    # the model starts as the teacher's copy, so only a different (augmented) input can make them disagree
    assert state.last[2].item() > 1e-3


def test_the_kl_to_the_teacher_is_zero_only_where_the_model_agrees():
    model = models.DANN("mnist")
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)
    batch = tiny_batch(method=METHODS["dirt-t"])
    cfg = Config(source="mnist", target="mnist_m", method="dirt-t", init="run", teacher_weight=2.0)
    _, agreeing = methods.dirt_t(model, Batch(None, None, batch.unlabelled, model(batch.unlabelled).softmax(1).detach()),
                                 torch.tensor(0.5), cfg)
    loss, uniform = methods.dirt_t(model, batch, torch.tensor(0.5), cfg)
    assert agreeing["teacher_kl"].item() < 1e-6 < uniform["teacher_kl"].item()
    assert torch.allclose(loss, uniform["entropy"] + uniform["vat_target"] + 2.0 * uniform["teacher_kl"])


def test_self_train_learns_the_teachers_most_probable_class():
    model = models.DANN("mnist")
    torch.nn.init.xavier_uniform_(model.label_classifier[-1].weight)
    batch = tiny_batch(method=METHODS["self-train"])
    batch.teacher_probs = torch.softmax(torch.randn(6, 10, generator=torch.Generator().manual_seed(1)), 1)
    cfg = Config(source="mnist", target="mnist_m", method="self-train", init="run")
    loss, stats = methods.self_train(model, batch, torch.tensor(0.5), cfg)
    logits = model(batch.unlabelled)
    teacher_says = batch.teacher_probs.argmax(1)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, teacher_says))
    assert stats["agreement"].item() == (logits.argmax(1) == teacher_says).float().mean().item()
    batch.teacher_probs = torch.nn.functional.one_hot(logits.argmax(1), 10).float()  # a teacher the model agrees with
    assert methods.self_train(model, batch, torch.tensor(0.5), cfg)[1]["agreement"].item() == 1.0


def test_the_averaged_model_averages_batch_norm_statistics_too():
    # the paper's networks have no batch norm; one that a user adds must not be evaluated with stale statistics
    torch.manual_seed(0)
    cfg = Config(source="mnist", target="mnist_m", method="source-only", batch_size=4, epochs=1, ema=0.9)
    model, opt = stepping.model_and_optimizer(cfg, torch.device("cpu"))
    model.features[1] = torch.nn.Sequential(torch.nn.BatchNorm2d(32), torch.nn.ReLU())
    opt.add_param_group({"params": list(model.features[1].parameters())})
    ema = stepping.frozen_copy(model)
    images = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    step, state = stepping.make_step(model, opt, METHODS["source-only"], (images, torch.arange(8) % 10, None), cfg,
                                     2, 0, ema)
    state.batches.copy_(stepping.epoch_indices([(8,)], 2, 4, 0, 0, "cpu"))
    step()
    bn, averaged = model.features[1][0], ema.features[1][0]
    assert not torch.equal(bn.running_mean, torch.zeros(32))  # one training step has moved the statistics
    assert torch.allclose(averaged.running_mean, 0.1 * bn.running_mean, atol=1e-6)
    assert torch.allclose(averaged.running_var, 0.9 + 0.1 * bn.running_var, atol=1e-6)


def test_init_starts_from_a_runs_evaluated_weights_and_refuses_another_network(synthetic_root, tmp_path):
    base = dict(source="mnist", target="mnist_m", data_dir=str(synthetic_root), no_download=True, epochs=1,
                batch_size=8, device="cpu")
    training.train(Config(**base, ema=0.5), tmp_path / "first")
    model = models.DANN("mnist")
    pretrained.start_from(model, str(tmp_path / "first"), domains.DIGITS)
    ema = torch.load(tmp_path / "first" / "checkpoint.pt", weights_only=True)["ema"]
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    with pytest.raises(UserError, match="holds a 'mnist' network; add --arch mnist"):
        training.train(Config(**base, arch="svhn", init=str(tmp_path / "first")), tmp_path / "second")
    with pytest.raises(UserError, match="no run folder, checkpoint file or bundled model"):
        training.train(Config(**base, init=str(tmp_path / "nothing")), tmp_path / "third")
    with pytest.raises(UserError, match="made 'standardize'; add --input-norm standardize"):
        training.train(Config(**base, input_norm="scale", init=str(tmp_path / "first")), tmp_path / "fourth")
    assert not any((tmp_path / name).exists() for name in ("second", "third", "fourth"))


def whole_and_resumed(cfg, tmp_path, monkeypatch, stop_after):
    """The checkpoints of a run trained whole and of the same run stopped after `stop_after` steps, then resumed."""
    training.train(cfg, tmp_path / "whole")
    real_step = ctrl_c_after(monkeypatch, stop_after)
    assert training.train(cfg, tmp_path / "cut") is None
    monkeypatch.setattr(stepping, "sgd_step", real_step)
    training.train(runs.resumed_config(tmp_path / "cut", "cpu"), tmp_path / "cut", resume=True)
    return (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("whole", "cut"))


@pytest.mark.parametrize("stop_after", [2, 5])
@pytest.mark.parametrize("method", ["dirt-t", "self-train"])
def test_a_method_with_a_teacher_resumes_exactly(synthetic_root, tmp_path, monkeypatch, stop_after, method):
    # dirt-t's teacher is refreshed every 3 steps: once before the cut at 5, and again after it;
    # self-train's stays the --init model
    base = dict(source="mnist", target="mnist_m", data_dir=str(synthetic_root), no_download=True, epochs=2,
                batch_size=8, device="cpu", eval_every=1, save_every=1)
    training.train(Config(**base), tmp_path / "dann")
    cfg = Config(**base, method=method, init=str(tmp_path / "dann"), teacher_every=3, ema=0.5, augment=True)
    whole, cut = whole_and_resumed(cfg, tmp_path, monkeypatch, stop_after)
    assert whole["step"] == cut["step"] == 8
    for part in ("model", "ema", "teacher"):
        assert all(torch.equal(v, cut[part][k]) for k, v in whole[part].items()), part
    assert any(not torch.equal(v, whole["model"][k]) for k, v in whole["teacher"].items())
    dann = torch.load(tmp_path / "dann" / "checkpoint.pt", weights_only=True)["model"]
    fixed = all(torch.equal(v, dann[k]) for k, v in whole["teacher"].items())
    assert fixed == (method == "self-train")


def test_self_train_starts_a_fresh_student_not_a_copy_of_its_teacher(synthetic_root, tmp_path):
    base = dict(source="mnist", target="mnist_m", data_dir=str(synthetic_root), no_download=True, epochs=1,
                batch_size=8, device="cpu")
    training.train(Config(**base), tmp_path / "dann")
    # a learning rate too small to move the weights: what is saved is where the student started
    training.train(Config(**base, method="self-train", init=str(tmp_path / "dann"), lr=1e-30), tmp_path / "student")
    saved = torch.load(tmp_path / "student" / "checkpoint.pt", weights_only=True)
    output_layer = "label_classifier.6.weight"
    assert saved["teacher"][output_layer].abs().sum() > 0  # trained
    assert saved["model"][output_layer].abs().max() < 1e-20  # initialised to zeros, and barely moved


# ---------------------------------------------------------------- self-ensembling and AdaMatch

def test_self_ensembling_counts_consistency_only_where_the_teacher_is_confident():
    method, model = METHODS["self-ensemble"], models.DANN("mnist")  # zero output layers: the model predicts 0.1 each
    cfg = Config(source="mnist", target="mnist_m", method="self-ensemble")
    p = torch.tensor(0.5, dtype=torch.float64)
    batch = tiny_batch(method=method)  # a teacher at 0.1 each: never confident
    loss, stats = method.loss(model, batch, p, cfg)
    assert stats["confident"] == 0 and stats["consistency"] == 0 and stats["balance"] == 0
    assert torch.isclose(loss, stats["class_loss"])
    sure, unsure = torch.full((10,), 0.001).index_fill(0, torch.tensor(3), 0.991), torch.full((10,), 0.1)
    batch.teacher_probs = torch.stack([sure, sure, sure, unsure, unsure, unsure])  # confident on half
    loss, stats = method.loss(model, batch, p, cfg)
    assert stats["confident"] == 0.5
    assert torch.isclose(stats["consistency"], ((0.1 - sure) ** 2).mean() / 2)
    balance = 0.5 * 10 * -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))  # the uniform mean's BCE, times the share
    assert torch.isclose(stats["balance"], torch.tensor(balance))
    assert torch.isclose(loss, stats["class_loss"] + 3 * (stats["consistency"] + 0.005 * stats["balance"]))


def test_the_class_balance_term_is_smallest_for_a_uniform_mean_prediction():
    uniform = methods.class_balance(torch.full((4, 10), 0.1))
    collapsed = methods.class_balance(torch.eye(10)[[2, 2, 2, 2]])
    mixed = methods.class_balance(torch.randn(4, 10).softmax(1))
    assert uniform < mixed < collapsed


def test_the_mean_teacher_is_an_average_of_the_model_that_gets_no_gradient_and_is_what_is_evaluated():
    torch.manual_seed(0)
    cfg = Config(source="mnist", target="mnist_m", method="self-ensemble", batch_size=4, epochs=1, teacher_ema=0.9)
    images = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    sets = TaskData(source_train=(images, torch.arange(8) % 10), target_train=(images.flip(0), None))
    run, _ = training.setup(cfg, sets, torch.device("cpu"))
    assert run.teacher is run.ema is run.evaluated and run.companions == {"ema": run.ema, "teacher": None}
    start = [p.detach().clone() for p in run.teacher.parameters()]
    run.start_epoch(0)
    for _ in range(2):
        before = [p.detach().clone() for p in run.teacher.parameters()]
        run.step()
        for t, b, m in zip(run.teacher.parameters(), before, run.model.parameters()):
            assert torch.allclose(t, 0.9 * b + 0.1 * m.detach(), atol=1e-7)
    assert all(not t.requires_grad and t.grad is None for t in run.teacher.parameters())
    assert any(not torch.equal(t, s) for t, s in zip(run.teacher.parameters(), start))


# ---------------------------------------------------------------- French et al.'s network

def test_the_mnist_bn_network_reads_pictures_into_classes_and_normalises_each_domain_by_its_own_batch():
    torch.manual_seed(0)
    model = models.DANN("mnist-bn").train()
    source, target = (torch.randint(0, 256, (6, 3, 28, 28), dtype=torch.uint8) for _ in range(2))
    target[:, :, :14] = 0  # another domain: the top half blank
    assert model.batch_norm and not models.DANN("mnist").batch_norm
    assert model.features(model.prepare(source)).shape == (6, 64 * 4 * 4) and model(source).shape == (6, 10)
    model.features[-1].p = 0.0  # dropout off, so that passes can be compared
    for layer in (model.label_classifier[-1], model.domain_classifier[-1]):
        torch.nn.init.normal_(layer.weight)  # outputs that show their input (they start at zero)
    apart = model.classify_apart(torch.cat([source, target]), 6)
    assert torch.allclose(apart, torch.cat([model(source), model(target)]), atol=1e-5)
    assert not torch.allclose(apart, model(torch.cat([source, target])), atol=1e-2)  # shared statistics differ
    logits, domain_logits = model.adversarial(source, target, classify_unlabelled=True)
    assert torch.allclose(logits, apart, atol=1e-5) and domain_logits.shape == (12, 2)


@pytest.mark.parametrize("shared", [False, True])
def test_the_mean_teacher_of_a_batch_norm_network_keeps_statistics_of_the_target_alone(shared, monkeypatch):
    # French et al.: the teacher reads each target batch in training mode, so its running statistics (what
    # it is evaluated with) follow the target; the student's mix both domains; the weights are averaged.
    # experiments/shared_statistics.py's ablation undoes it: then the source reaches the teacher's statistics
    if shared:
        from experiments import shared_statistics
        monkeypatch.setattr(models.DANN, "__init__", models.DANN.__init__)  # restored after the test
        monkeypatch.setattr(stepping, "averaged_tensors", stepping.averaged_tensors)
        shared_statistics.share_statistics()
    cfg = Config(source="mnist", target="mnist_m", method="self-ensemble", arch="mnist-bn", batch_size=4, epochs=1,
                 teacher_ema=0.9)
    target = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    teachers = []
    for source in (torch.zeros(8, 3, 28, 28, dtype=torch.uint8), torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)):
        torch.manual_seed(0)
        run, _ = training.setup(cfg, TaskData(source_train=(source, torch.arange(8) % 10), target_train=(target, None)),
                                torch.device("cpu"))
        run.start_epoch(0)
        before = [p.detach().clone() for p in run.teacher.parameters()]
        run.step()
        for t, b, m in zip(run.teacher.parameters(), before, run.model.parameters()):
            assert torch.allclose(t, 0.9 * b + 0.1 * m.detach(), atol=1e-7)
        assert not run.teacher.training  # evaluated with its running statistics
        teachers.append((run.teacher.features[1].running_mean.clone(), run.model.features[1].running_mean.clone()))
    (teacher_a, student_a), (teacher_b, student_b) = teachers
    assert not torch.equal(teacher_a, torch.zeros(32))  # one step moved them
    assert torch.equal(teacher_a, teacher_b) != shared  # per domain: whatever the source batch was
    assert not torch.allclose(student_a, student_b)  # the student's read the source too


@pytest.mark.parametrize("stop_after", [3])
def test_a_batch_norm_networks_statistics_are_restored_on_resume(synthetic_root, tmp_path, monkeypatch, stop_after):
    cfg = Config(source="mnist", target="mnist_m", data_dir=str(synthetic_root), no_download=True, epochs=2,
                 batch_size=8, device="cpu", save_every=1, method="self-ensemble", arch="mnist-bn")
    whole, cut = whole_and_resumed(cfg, tmp_path, monkeypatch, stop_after)
    for part in ("model", "ema"):
        assert "features.1.running_var" in whole[part]
        assert all(torch.equal(v, cut[part][k]) for k, v in whole[part].items()), part


def test_adamatch_aligns_the_target_class_mix_to_the_source_and_thresholds_relative_to_source_confidence():
    source = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]])  # mean (0.5, 0.5), mean top 0.85
    target = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.8, 0.2], [0.8, 0.2]])  # mean (0.8, 0.2): skewed to class 0
    labels, confident, threshold = methods.aligned_pseudo_labels(source, target, 0.9)
    assert math.isclose(threshold.item(), 0.9 * 0.85, rel_tol=1e-6)
    aligned = target * torch.tensor([0.5 / 0.8, 0.5 / 0.2])  # (0.5625, 0.25), (0.4375, 0.75), (0.5, 0.5) ...
    aligned = aligned / aligned.sum(1, keepdim=True)
    assert labels.tolist() == [0, 1, 0, 0]  # the second picture's pseudo-label moved to the rarer class
    assert confident.tolist() == (aligned.max(1).values >= 0.765).float().tolist() == [0.0, 0.0, 0.0, 0.0]
    labels, confident, _ = methods.aligned_pseudo_labels(source, target, 0.5)
    assert confident.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_adamatch_brings_the_target_term_in_over_the_first_half_of_training():
    weights = [methods.warmup(torch.tensor(p, dtype=torch.float64)).item() for p in (0.0, 0.25, 0.5, 0.9)]
    assert [round(w, 6) for w in weights] == [0.0, 0.5, 1.0, 1.0]
    method, model = METHODS["adamatch"], models.DANN("mnist")
    cfg = Config(source="mnist", target="mnist_m", method="adamatch")
    loss, stats = method.loss(model, tiny_batch(), torch.tensor(0.0, dtype=torch.float64), cfg)
    assert torch.isclose(loss.float(), 2 * stats["class_loss"])  # at the start the target term weighs nothing


def test_methods_that_augment_themselves_refuse_augment_and_the_mean_teacher_refuses_ema():
    with pytest.raises(ValueError, match="augments its pictures"):
        Config(source="mnist", target="mnist_m", method="adamatch", augment=True)
    with pytest.raises(ValueError, match="leave out --ema"):
        Config(source="mnist", target="mnist_m", method="self-ensemble", ema=0.99)
    Config(source="mnist", target="mnist_m", method="self-ensemble")  # needs no --init: its teacher is its own


def test_each_method_trains_with_its_papers_optimiser_unless_the_flags_say_otherwise():
    task = {"source": "mnist", "target": "mnist_m"}
    cpu = torch.device("cpu")
    se = Config(**task, method="self-ensemble")
    _, opt = stepping.model_and_optimizer(se, cpu)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"].item() == pytest.approx(0.001)
    assert stepping.learning_rate(torch.tensor(0.9), se.recipe.lr, se.recipe.lr_alpha, se.lr_beta) == pytest.approx(0.001)
    assert se.command() == "python main.py --source mnist --target mnist_m --method self-ensemble"
    _, opt = stepping.model_and_optimizer(Config(**task, method="self-ensemble", optimizer="sgd"), cpu)
    assert isinstance(opt, torch.optim.SGD)
    for name in ("dann", "adamatch"):
        cfg = Config(**task, method=name)
        assert (cfg.recipe.optimizer, cfg.recipe.lr, cfg.recipe.lr_alpha) == ("sgd", 0.01, 10.0)
        assert isinstance(stepping.model_and_optimizer(cfg, cpu)[1], torch.optim.SGD)
    # a configuration that spells out its method's own values (config.json of older runs) is the same run
    spelled = Config(**task, lr=0.01, lr_alpha=10.0, optimizer="sgd")
    assert spelled.same_model(Config(**task)) and "--lr" not in spelled.command()
    assert not Config(**task, method="self-ensemble", lr=0.01).same_model(se)


@pytest.mark.parametrize("name", [name for name, m in METHODS.items() if m.augments])
def test_methods_that_augment_take_a_bf16_step(name):
    # under --bf16's autocast the blur's convolution would come out in bfloat16 and the step would fail
    cfg = Config(source="mnist", target="mnist_m", method=name, batch_size=8, epochs=1, bf16=True)
    x = torch.randint(0, 256, (16, 3, 28, 28), dtype=torch.uint8)
    run, _ = training.setup(cfg, TaskData(source_train=(x, torch.arange(16) % 10), target_train=(x.flip(0), None)),
                            torch.device("cpu"))
    run.start_epoch(0)
    run.step()
    assert torch.isfinite(run.state.last).all() and run.state.step.item() == 1


@pytest.mark.slow
def test_a_new_method_is_one_function_and_one_registry_line_and_trains_with_everything_else(synthetic_root, tmp_path,
                                                                                           monkeypatch):
    """README, 'A method': a loss of the batch, one Method in METHODS; main.py then trains it with
    checkpoints, curves, evaluation, label-free scores and the "not sure" threshold."""
    import torch.nn.functional as F
    import main
    from dann.methods import Method

    def entropy_on_target(model, batch, p, cfg):  # the class loss plus the target predictions' entropy
        class_loss = F.cross_entropy(model(batch.images), batch.labels)
        probs = torch.softmax(model(batch.unlabelled).float(), 1)
        entropy = -(probs * probs.clamp_min(1e-8).log()).sum(1).mean()
        return class_loss + 0.1 * p * entropy, {"class_loss": class_loss, "entropy": entropy}
    monkeypatch.setitem(METHODS, "toy", Method(entropy_on_target, labelled="source", uses_unlabelled=True,
                                               stats=("class_loss", "entropy")))
    metrics = main.main(["--source", "mnist", "--target", "mnist_m", "--method", "toy", "--data-dir", str(synthetic_root),
                         "--no-download", "--device", "cpu", "--epochs", "2", "--batch-size", "8",
                         "--out", str(tmp_path / "toy")])
    assert metrics["config"]["method"] == "toy" and metrics["target_test_acc"] is not None
    assert {"class_loss", "entropy"} <= set(metrics["history"][-1]) and "unsure_below" in metrics
    assert (tmp_path / "toy" / "checkpoint.pt").is_file()


TOY_WITH_SETTINGS = '''
import sys
from dataclasses import dataclass
from typing import ClassVar
import torch.nn.functional as F
from dann.common import setting
from dann.methods import METHODS, Method

@dataclass(frozen=True)
class Smoothing:
    paper: ClassVar = "Szegedy et al. 2016"
    smoothing: float = setting(0.1, "label smoothing of the class loss")

def smoothed(model, batch, p, cfg):
    loss = F.cross_entropy(model(batch.images), batch.labels, label_smoothing=cfg.smoothing)
    return loss, {"class_loss": loss}

METHODS["smoothed"] = Method(smoothed, labelled="source", uses_unlabelled=False, stats=("class_loss",),
                             settings=(Smoothing,))
import main
sys.exit(main.main(sys.argv[1:]) is None)
'''


@pytest.mark.slow
def test_a_new_methods_settings_are_one_dataclass_whose_fields_become_its_flags(synthetic_root, tmp_path):
    """A method's hyperparameters: one small dataclass beside its loss, registered with it; main.py's
    flags, --help group and config.json follow."""
    import subprocess
    import sys
    from conftest import REPO
    toy = [sys.executable, "-c", TOY_WITH_SETTINGS]
    shown = subprocess.run([*toy, "--help"], cwd=REPO, capture_output=True, text=True)
    assert "smoothed (defaults: Szegedy et al. 2016):" in shown.stdout and "--smoothing SMOOTHING" in shown.stdout
    r = subprocess.run([*toy, "--source", "mnist", "--target", "mnist_m", "--method", "smoothed", "--smoothing", "0.2",
                        "--data-dir", str(synthetic_root), "--no-download", "--device", "cpu", "--epochs", "1",
                        "--batch-size", "8", "--out", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["smoothing"] == 0.2 and saved["method"] == "smoothed"
