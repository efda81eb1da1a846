"""How far to trust a reading and an estimate (RESULTS.md, 'How far to trust a reading'): for every
bundled model (or --models) and every labelled test set at hand (MNIST, MNIST-M, synth, the
photograph set of experiments/photo_digits.py), the accuracy, the share marked "not sure", the
accuracy of the sure and of the not-sure readings (dann/trust.py, the model's own calibration and
threshold), and the accuracy ATC, DoC and COT estimate from the set's pictures without their labels.
Then the estimator chosen by the procedure RESULTS.md wrote down first, and its errors everywhere.

    python -m experiments.trust_report --data-dir data      # MNIST, MNIST-M and synth in data/
"""
import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dann import datasets, evaluation, scores
from dann.checkpoints import class_names, load_checkpoint
from dann.domains import source_parts
from dann.pictures import picture_to_digit
from dann.pretrained import bundled_models, model_trust, resolve_checkpoint
from experiments.photo_digits import make_set

ESTIMATORS = ("estimated_accuracy", "doc", "cot")  # ATC, DoC, COT
CHOSEN_ON = {"models": ("mnist-mnist_m-dann", "mnist-mnist_m-dirt-t", "mnist-mnist_m-source-only",
                        "mnist-mnist_m-target-only"), "set": "mnist_m"}  # RESULTS.md: fixed before measuring
SOURCE_ONLY = "mnist-mnist_m-source-only"  # the accuracy an adapted model should not fall below


def photographs(folder):
    """The photograph set as (3 x 28 x 28 uint8 digits, labels), read as image_annotate.py reads files."""
    make_set(folder)
    paths = sorted(folder.glob("*.jpg"))
    return (torch.stack([picture_to_digit(Image.open(p)) for p in paths]),
            torch.tensor([int(p.stem.split("_")[2]) for p in paths]))


def labelled_sets(data_dir, photo_folder):
    loaded = datasets.load_datasets(["mnist", "mnist_m", "synth"], ["test"], data_dir, allow_download=False)
    return {**{name: loaded[name, "test"] for name in ("mnist", "mnist_m", "synth")},
            "photographs": photographs(photo_folder)}


def labelled_task(cfg, data_dir):
    """What the scores read of a model: its labelled domain(s) (the target for target-only) as the
    source, whose held-out test pictures and class mix the estimators compare with."""
    labelled = [cfg["target"]] if cfg["method"] == "target-only" else list(source_parts(cfg["source"]))
    return datasets.task_data(labelled, cfg["target"], data_dir, allow_download=False)


def rows(spec, tests, data_dir):
    path = resolve_checkpoint(spec)[0]
    model, ckpt = load_checkpoint(path)
    trust, names = model_trust(ckpt, path), class_names(ckpt)
    sets = labelled_task(ckpt["config"], data_dir)
    for name, (images, labels) in tests.items():
        report = evaluation.domain_report(model, images, labels, "extra", names, trust)
        shuffled = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))]
        e = scores.evidence(model, dataclasses.replace(sets, target_train=(shuffled, None)))
        estimates = {k: scores.SCORES[k].compute(e) for k in ESTIMATORS}
        yield {"model": spec, "set": name, **{k: report[k] for k in ("accuracy", "not_sure_share", "sure_accuracy",
                                                                      "not_sure_accuracy")}, **estimates}


def reader_goal(row):
    """Sure readings at least .99 right, marking at most twice the error plus .02."""
    return (row["sure_accuracy"] or 0) >= 0.99 and row["not_sure_share"] <= 2 * (1 - row["accuracy"]) + 0.02


def parse_args(description):
    """--data-dir, --photographs, --models: what a report over the bundled models and the sets at hand reads."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="dataset folder with MNIST, MNIST-M and synth (default: ./data)")
    p.add_argument("--photographs", type=Path, default=Path("photo_digits"), help="the photograph set (made if absent)")
    p.add_argument("--models", nargs="+", default=list(bundled_models()["models"]), metavar="NAME|PATH",
                   help="bundled model names, checkpoint files or run folders (default: every bundled model)")
    return p.parse_args()


def read_table(description, rows):
    """(the command line, rows(spec, tests, data_dir) of every model named and every labelled set at hand)."""
    args = parse_args(description)
    tests = labelled_sets(args.data_dir, args.photographs)
    return args, [row for spec in args.models for row in rows(spec, tests, args.data_dir)]


def report(description, rows, print_table, pictures_report, verdict):
    """A second "not sure" measured: its table over the models and sets, the pictures without a digit, its verdict."""
    args, table = read_table(description, rows)
    print_table(table, bundled_models()["default"])
    pictures_report(args.models, args.data_dir)
    verdict(table)


def main():
    _, table = read_table(__doc__, rows)
    default = bundled_models()["default"]
    print("| model | set | accuracy | not sure | sure acc | not-sure acc | reader goal | ATC | DoC | COT |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in table:
        applies = r["model"] == default or r["accuracy"] >= 0.85
        goal = ("met" if reader_goal(r) else "missed") if applies else "-"
        cells = [f"{r['accuracy']:.4f}", f"{r['not_sure_share']:.1%}"] + \
                ["-" if r[k] is None else f"{r[k]:.4f}" for k in ("sure_accuracy", "not_sure_accuracy")]
        print(f"| {r['model']} | {r['set']} | {' | '.join(cells)} | {goal} | "
              + " | ".join(f"{r[k]:.4f}" for k in ESTIMATORS) + " |")
    fit = [r for r in table if r["model"] in CHOSEN_ON["models"] and r["set"] == CHOSEN_ON["set"]]
    if not fit:
        return
    error = {k: np.mean([abs(r[k] - r["accuracy"]) for r in fit]) for k in ESTIMATORS}
    chosen = min(error, key=error.get)
    print(f"\nchosen on {len(fit)} MNIST -> MNIST-M models on MNIST-M: {chosen} (mean absolute error "
          + ", ".join(f"{k} {v:.4f}" for k, v in error.items()) + ")")
    others = [r for r in table if r not in fit]
    floor = {r["set"]: r["accuracy"] for r in table if r["model"] == SOURCE_ONLY}
    for k in ESTIMATORS:
        errors = [r[k] - r["accuracy"] for r in others]
        too_high = [f"{r['model']} on {r['set']} (+{r[k] - r['accuracy']:.3f})" for r in others
                    if r["set"] in floor and r["accuracy"] < floor[r["set"]] and r[k] - r["accuracy"] > 0.05]
        print(f"{k}{' (chosen)' if k == chosen else ''} on the other {len(others)}: mean error "
              f"{np.mean(np.abs(errors)):.4f}, worst {max(errors, key=abs):+.4f}; more than .05 too high below "
              f"source-only: {', '.join(too_high) or 'none'}")


if __name__ == "__main__":
    main()
