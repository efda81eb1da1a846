"""A calibration weighted toward the target (Park et al., AISTATS 2020), measured against the source-fitted
one that dann/trust.py uses (RESULTS.md, 'How far to trust a reading'): for every bundled model on its
target's test pictures (MNIST-M), the temperature fitted on the labelled pictures of its own domain(s)
with every picture counted once and weighted by p(target | x) / p(source | x); the effective share of
pictures those weights keep (Kish); the "not sure" threshold each temperature gives on the unlabelled
target training pictures; the share marked and the sure readings' error on the test pictures; and the
weighted confidence (the mean calibrated top chance) as an estimate of the accuracy.

The weights come from a logistic regression (scikit-learn's default L2 penalty, C = 1) that tells the
model's features of the labelled pictures from its features of the target's, cross-fitted. The rule
that adopts the weighting was written in RESULTS.md before this ran.

    python -m experiments.weighted_calibration --data-dir data
"""
import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

from dann import trust
from dann.checkpoints import load_checkpoint
from dann.pretrained import bundled_models, resolve_checkpoint
from experiments.trust_report import CHOSEN_ON, labelled_task

MOST = 4000  # pictures of each domain a domain classifier is fitted on


def domain_classifier(source, target, c=1.0):
    """Logistic regression of "target" on standardised rows, scikit-learn's default penalty (the summed
    log-loss times C plus half the squared weights, the bias unpenalised), by L-BFGS -> its log-odds."""
    x = torch.cat([source, target])
    y = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-12)
    x = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = c * F.binary_cross_entropy_with_logits(x @ w + b, y, reduction="sum") + 0.5 * (w * w).sum()
        value.backward()
        return value
    with torch.enable_grad():
        optimizer.step(loss)
    w, b = w.detach(), b.detach()
    return lambda rows: ((rows - mean) / std) @ w + b


def importance_weights(labelled, target):
    """p(target | x) / p(source | x) of each labelled row, cross-fitted: each half of the labelled rows
    is weighed by a classifier fitted on the other half of both domains; corrected for the numbers of
    rows it was fitted on, normalised to mean 1."""
    g = torch.Generator().manual_seed(0)
    labelled, target = labelled.double().cpu(), target.double().cpu()
    halves, target_halves = torch.randperm(len(labelled), generator=g).chunk(2), torch.randperm(len(target), generator=g).chunk(2)
    log_odds = torch.empty(len(labelled), dtype=torch.float64)
    for k in (0, 1):
        source_rows, target_rows = labelled[halves[1 - k][:MOST]], target[target_halves[1 - k][:MOST]]
        log_odds[halves[k]] = (domain_classifier(source_rows, target_rows)(labelled[halves[k]])
                               + math.log(len(source_rows) / len(target_rows)))
    weights = (log_odds - log_odds.max()).exp()  # the largest is 1 before normalising: no overflow
    return weights / weights.mean()


def effective_share(weights):
    return (weights.sum() ** 2 / (weights * weights).sum()).item() / len(weights)


def measure(probs_labelled, labels, probs_target_train, probs_test, test_labels, weights):
    temperature = trust.fit_temperature(probs_labelled, labels, weights)
    threshold = trust.sure_at(trust.sure_threshold(trust.calibrated(probs_target_train, temperature).max(1).values))
    chances, predicted = trust.calibrated(probs_test, temperature).max(1)
    sure = chances >= threshold
    error = (predicted[sure] != test_labels[sure]).double().mean().item() if sure.any() else float("nan")
    return {"T": temperature, "marked": 1 - sure.double().mean().item(), "sure_error": error,
            "confidence": chances.double().mean().item()}


def rows(spec, data_dir):
    model, ckpt = load_checkpoint(resolve_checkpoint(spec)[0])
    sets = labelled_task(ckpt["config"], data_dir)
    images, labels = sets.source_test
    target = sets.target_train[0][torch.randperm(len(sets.target_train[0]), generator=torch.Generator().manual_seed(0))]
    test_images, test_labels = sets.target_test
    probs = {name: model.predict_proba(x).cpu() for name, x in
             (("labelled", images), ("target", target), ("test", test_images))}
    weights = importance_weights(model.representation(images), model.representation(target[:2 * MOST]))
    accuracy = (probs["test"].argmax(1) == test_labels.cpu()).double().mean().item()
    plain, weighted = (measure(probs["labelled"], labels.cpu(), probs["target"], probs["test"], test_labels.cpu(), w)
                       for w in (None, weights))
    return {"model": spec, "accuracy": accuracy, "effective": effective_share(weights), "plain": plain,
            "weighted": weighted}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="dataset folder with MNIST, MNIST-M and synth (default: ./data)")
    p.add_argument("--models", nargs="+", default=list(bundled_models()["models"]), metavar="NAME|PATH",
                   help="bundled model names, checkpoint files or run folders (default: every bundled model)")
    args = p.parse_args()
    print("| model | accuracy | weights' effective share | T source / weighted | marked | sure error "
          "| weighted: marked | sure error | confidence: source T / weighted T |\n" + "| --- " * 9 + "|")
    table = []
    for spec in args.models:
        r = rows(spec, args.data_dir)
        table.append(r)
        a, b = r["plain"], r["weighted"]
        print(f"| {spec} | {r['accuracy']:.4f} | {r['effective']:.4f} | {a['T']:.3f} / {b['T']:.3f} | {a['marked']:.1%} "
              f"| {a['sure_error']:.4f} | {b['marked']:.1%} | {b['sure_error']:.4f} | {a['confidence']:.4f} / "
              f"{b['confidence']:.4f} |", flush=True)
    fit = [r for r in table if r["model"] in CHOSEN_ON["models"]]
    if fit:
        gap = {k: np.mean([abs(r[k]["sure_error"] - trust.RISK) for r in fit]) for k in ("plain", "weighted")}
        error = {k: np.mean([abs(r[k]["confidence"] - r["accuracy"]) for r in fit]) for k in ("plain", "weighted")}
        print(f"\non the {len(fit)} models the rule reads: mean |sure error - {trust.RISK}| source-fitted "
              f"{gap['plain']:.4f}, weighted {gap['weighted']:.4f} -> "
              f"{'weighted' if gap['weighted'] < gap['plain'] else 'source-fitted'} kept; mean absolute error of the "
              f"mean calibrated chance as an estimate: " + ", ".join(f"{k} {v:.4f}" for k, v in error.items()))


if __name__ == "__main__":
    main()
