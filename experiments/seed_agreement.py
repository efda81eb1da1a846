"""Disagreement between seeds (RESULTS.md, 'How far to trust a reading'): for recipes trained with several
seeds, each run's target accuracy estimated by GDE (its mean agreement with the recipe's other seeds,
dann/scores.py's seed_agreement) and by ATC, against the truth; and "not sure" by the model's threshold
alone (dann/trust.py, computed afresh as a finished run now computes it) and by the threshold together
with the other seeds reading the same class. On the target's test pictures and on the photograph set.

    python -m experiments.seed_agreement runs/experiments/short-dann runs/experiments/short-dirt-t --data-dir data

Each argument is a main.py --seeds folder (seed0/, seed1/, ...); the procedure that reads the table
was written in RESULTS.md before it ran.
"""
import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from dann import runs as run_folder
from dann import scores, trust
from dann.checkpoints import load_checkpoint
from experiments.trust_report import labelled_task, photographs


def copies_of(recipe):
    return sorted(p for p in Path(recipe).glob("seed*") if (p / run_folder.CHECKPOINT).is_file())


def readings(model, decision, images):
    chances, predicted = trust.calibrated(model.predict_proba(images), decision["temperature"]).max(1)
    return predicted, chances >= trust.sure_at(decision["unsure_below"])


def recipe_rows(recipe, data_dir, photo_set):
    folders, models, decisions, sets = copies_of(recipe), [], [], None
    for folder in folders:
        model, ckpt = load_checkpoint(folder / run_folder.CHECKPOINT)
        sets = sets or labelled_task(ckpt["config"], data_dir)
        models.append(model)
        decisions.append(trust.decide(model, sets.source_test, sets.target_train[0]))
    tests = {"target": (sets.target_train[0], sets.target_test), "photographs": (photo_set[0], photo_set)}
    for name, (unlabelled, (images, labels)) in tests.items():
        estimated_on = dataclasses.replace(sets, target_train=(unlabelled, None))
        evidence = [scores.evidence(m, estimated_on) for m in models]
        gde = scores.seed_agreement([e.probs for e in evidence])
        read = [readings(m, d, images) for m, d in zip(models, decisions)]
        for i, (folder, e, (predicted, sure)) in enumerate(zip(folders, evidence, read)):
            agreed = torch.stack([p == predicted for j, (p, _) in enumerate(read) if j != i]).all(0)
            right = predicted == labels
            yield {"recipe": Path(recipe).name, "seed": folder.name, "set": name, "accuracy": right.double().mean().item(),
                   "atc": scores.estimated_accuracy(e), "gde": gde[i], **share_and_accuracy("threshold", sure, right),
                   **share_and_accuracy("agreed", sure & agreed, right)}


def share_and_accuracy(name, sure, right):
    return {f"{name}_marked": 1 - sure.double().mean().item(),
            f"{name}_sure_acc": right[sure].double().mean().item() if sure.any() else float("nan")}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipes", nargs="+", help="main.py --seeds folders of one task, each with two or more seeds")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: ./data)")
    p.add_argument("--photographs", type=Path, default=Path("photo_digits"), help="the photograph set (made if absent)")
    args = p.parse_args()
    photo_set = photographs(args.photographs)
    print("| recipe | seed | set | accuracy | ATC | GDE | not sure: threshold | sure acc | threshold and seeds agree "
          "| sure acc |\n" + "| --- " * 10 + "|")
    table = []
    for recipe in args.recipes:
        for r in recipe_rows(recipe, args.data_dir, photo_set):
            table.append(r)
            print(f"| {r['recipe']} | {r['seed']} | {r['set']} | {r['accuracy']:.4f} | {r['atc']:.4f} | {r['gde']:.4f} | "
                  f"{r['threshold_marked']:.1%} | {r['threshold_sure_acc']:.4f} | {r['agreed_marked']:.1%} | "
                  f"{r['agreed_sure_acc']:.4f} |", flush=True)
    for name in ("target", "photographs"):
        rows = [r for r in table if r["set"] == name]
        errors = {k: [r[k] - r["accuracy"] for r in rows] for k in ("atc", "gde")}
        print(f"\n{name}, {len(rows)} runs: " + "; ".join(
            f"{k} mean error {np.mean(np.abs(v)):.4f}, worst {max(v, key=abs):+.4f}" for k, v in errors.items())
            + f"; marked {np.mean([r['threshold_marked'] for r in rows]):.1%} -> {np.mean([r['agreed_marked'] for r in rows]):.1%}, "
            f"sure accuracy {np.nanmean([r['threshold_sure_acc'] for r in rows]):.4f} -> "
            f"{np.nanmean([r['agreed_sure_acc'] for r in rows]):.4f} (means over the runs)")


if __name__ == "__main__":
    main()
