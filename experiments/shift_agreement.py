"""A reading that stays put (RESULTS.md, 'How far to trust a reading'): each picture read as it is
and moved by two pixels up, down, left and right. For every bundled model (or --models) and every
labelled test set at hand (MNIST, MNIST-M, synth, the photograph set): the share marked "not sure" and
the sure readings' accuracy with the threshold alone and with the moved copies agreeing too; ATC and
the moved copies' agreement as estimates of the accuracy; then the 28 pictures without a digit and the
README's pencil 7. Last, the two adoption rules RESULTS.md wrote down before any of it was measured.

    python -m experiments.shift_agreement --data-dir data      # MNIST, MNIST-M and synth in data/
"""
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from dann import scores
from dann.checkpoints import class_names, load_checkpoint
from dann.common import REPO
from dann.pictures import picture_to_digit
from dann.pretrained import model_trust, resolve_checkpoint
from dann.methods import METHODS
from dann.trust import RISK, calibrated, sure_at
from experiments.not_digits import digits, not_digits
from experiments.trust_report import CHOSEN_ON, labelled_task, report, reader_goal

ATC_ERROR_ON_THE_FOUR = 0.0443  # RESULTS.md: ATC's mean absolute error on the four models, to beat
THRESHOLD_ALONE_DISTANCE = 0.0269  # mean |sure error - .01| of the threshold alone on the four


def moved(images, pixels=2):
    """4 x N x C x H x W: each picture moved by `pixels` up, down, left and right, its edge repeated
    to fill the side it leaves (no draw: the same picture always moves the same way)."""
    n, c, h, w = images.shape
    padded = F.pad(images.float(), (pixels,) * 4, mode="replicate").to(images.dtype)
    p, far = pixels, 2 * pixels
    return torch.stack([padded[:, :, far:far + h, p:p + w], padded[:, :, :h, p:p + w],   # up, down
                        padded[:, :, p:p + h, far:far + w], padded[:, :, p:p + h, :w]])  # left, right


def trained_on_moved_copies(config):
    """Whether a model learnt from pictures moved about (its method's own augmentation, or --augment)
    from its first step, not started with --init from another model, so that a copy moved by two pixels
    is, for it, the same picture (RESULTS.md, 'A reading that stays put'): a checkpoint's config."""
    method = METHODS.get(config.get("method"))
    return (bool(config.get("augment")) or bool(method and method.augments)) and not config.get("init")


def readings(model, images, temperature):
    """(calibrated top chance, class read, N x 4 whether each moved copy reads that class)."""
    chances, read = calibrated(model.predict_proba(images), temperature).max(1)
    copies = moved(images)
    agree = torch.stack([model.predict_proba(c).argmax(1) == read for c in copies], 1)
    return chances, read, agree


def marking(chances, agree, threshold, correct=None):
    """{rule: (share marked, sure readings' accuracy)} for the threshold alone and with the copies."""
    above = chances >= sure_at(threshold)
    out = {}
    for rule, sure in (("threshold", above), ("threshold and moves", above & agree.all(1))):
        acc = correct[sure].double().mean().item() if correct is not None and sure.any() else None
        out[rule] = (1 - sure.double().mean().item(), acc)
    return out


def rows(spec, tests, data_dir):
    path = resolve_checkpoint(spec)[0]
    model, ckpt = load_checkpoint(path)
    trust = model_trust(ckpt, path)
    sets = labelled_task(ckpt["config"], data_dir)
    for name, (images, labels) in tests.items():
        chances, read, agree = readings(model, images, trust["temperature"])
        correct = read == labels
        shuffled = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))]
        atc = scores.SCORES["estimated_accuracy"].compute(
            scores.evidence(model, dataclasses.replace(sets, target_train=(shuffled, None))))
        yield {"model": spec, "set": name, "moved_copies": trained_on_moved_copies(ckpt["config"]),
               "accuracy": correct.double().mean().item(), "atc": atc,
               "moves": agree.double().mean().item(), "steady": agree.all(1).double().mean().item(),
               **{rule: marks for rule, marks in marking(chances, agree, trust["unsure_below"], correct).items()}}


def goal_row(r, rule):
    return reader_goal({"accuracy": r["accuracy"], "not_sure_share": r[rule][0], "sure_accuracy": r[rule][1]})


def print_table(table, default):
    print("| model | set | accuracy | not sure: threshold | sure acc | reader goal | threshold and moves | sure acc | "
          "reader goal | ATC | moves agree |\n" + "| --- " * 11 + "|")
    for r in table:
        applies = r["model"] == default or r["accuracy"] >= 0.85
        cells = rule_cells(r, ("threshold", "threshold and moves"), applies)
        print(f"| {r['model']} | {r['set']} | {r['accuracy']:.4f} | {' | '.join(cells)} | {r['atc']:.4f} | {r['moves']:.4f} |")


def rule_cells(r, rules, applies):
    """A table row's cells for each rule: the share marked, the sure readings' accuracy, the reader goal."""
    cells = []
    for rule in rules:
        marked, acc = r[rule]
        cells += [f"{marked:.1%}", "-" if acc is None else f"{acc:.4f}",
                  ("met" if goal_row(r, rule) else "missed") if applies else "-"]
    return cells


def pictures_to_mark(data_dir):
    """(the 28 pictures without a digit, the README's pencil 7), as the reader sees them."""
    from PIL import Image
    return digits(not_digits(data_dir)), picture_to_digit(Image.open(REPO / "images" / "pencil_7.jpg"))[None]


def pictures_report(models, data_dir):
    """The 28 pictures without a digit marked, and the pencil 7's reading, under each rule."""
    pictures, pencil = pictures_to_mark(data_dir)
    print("\n| model | no digit marked: threshold | threshold and moves | pencil 7: read | chance | sure: threshold | "
          "threshold and moves |\n" + "| --- " * 7 + "|")
    for spec in models:
        path = resolve_checkpoint(spec)[0]
        model, ckpt = load_checkpoint(path)
        trust = model_trust(ckpt, path)
        chances, _, agree = readings(model, pictures, trust["temperature"])
        marks = marking(chances, agree, trust["unsure_below"])
        chance, read, agree = readings(model, pencil, trust["temperature"])
        pencil_marks = marking(chance, agree, trust["unsure_below"])
        n = len(pictures)
        print(f"| {spec} | {round(marks['threshold'][0] * n)} of {n} | {round(marks['threshold and moves'][0] * n)} of {n} | "
              f"{class_names(ckpt)[read.item()]} | {chance.item():.3f} | "
              + " | ".join("no" if pencil_marks[rule][0] else "yes" for rule in ("threshold", "threshold and moves")) + " |")


def distance_and_lost(fit, pairs):
    """The two conditions of both rules: each rule's mean distance of the sure error from RISK over `fit`,
    and the `pairs` that meet the reader goal with the threshold alone but not with the moves."""
    distance = {rule: np.mean([abs(1 - r[rule][1] - RISK) for r in fit]) for rule in ("threshold", "threshold and moves")}
    lost = [f"{r['model']} on {r['set']}" for r in pairs if goal_row(r, "threshold") and not goal_row(r, "threshold and moves")]
    return distance, lost


def verdict(table):
    fit = [r for r in table if r["model"] in CHOSEN_ON["models"] and r["set"] == CHOSEN_ON["set"]]
    if len(fit) != len(CHOSEN_ON["models"]):
        return verdict_on_moved_copies(table)
    distance, lost = distance_and_lost(fit, table)
    adopted = distance["threshold and moves"] < THRESHOLD_ALONE_DISTANCE and not lost
    print(f"\nsure error's mean distance from {RISK} on the four: threshold {distance['threshold']:.4f} "
          f"(recorded {THRESHOLD_ALONE_DISTANCE}), threshold and moves {distance['threshold and moves']:.4f}; "
          f"reader goal lost: {', '.join(lost) or 'none'} -> second 'not sure' {'adopted' if adopted else 'not adopted'}")
    error = {k: np.mean([abs(r[k] - r["accuracy"]) for r in fit]) for k in ("atc", "moves")}
    print(f"estimate's mean absolute error on the four: ATC {error['atc']:.4f} (recorded {ATC_ERROR_ON_THE_FOUR}), "
          f"moves agree {error['moves']:.4f} -> {'moves adopted' if error['moves'] < ATC_ERROR_ON_THE_FOUR else 'ATC stays'}")
    others = [r for r in table if r not in fit]
    for k in ("atc", "moves"):
        errors = [r[k] - r["accuracy"] for r in others]
        print(f"{k} on the other {len(others)}: mean error {np.mean(np.abs(errors)):.4f}, worst {max(errors, key=abs):+.4f}")
    for rule in ("threshold", "threshold and moves"):
        applies = [r for r in table if r["accuracy"] >= 0.85]
        print(f"{rule}: sure accuracy {np.mean([r[rule][1] for r in applies]):.4f} on average over the {len(applies)} "
              f"pairs read at least .85 right, {np.mean([r[rule][0] for r in applies]):.1%} marked; reader goal met in "
              f"{sum(goal_row(r, rule) for r in applies)}")


def verdict_on_moved_copies(table):
    """The second rule (RESULTS.md): the moves join "not sure" for models trained on moved pictures if,
    over the pairs they read at least .85 right, the sure readings' error comes closer to .01 on average
    and no pair meeting the reader goal with the threshold alone misses it with the moves."""
    judged = [r for r in table if r["moved_copies"] and r["accuracy"] >= 0.85]
    if not judged:
        return print("\nno pair read at least .85 right by a model trained on moved pictures: nothing to judge")
    distance, lost = distance_and_lost(judged, judged)
    adopted = distance["threshold and moves"] < distance["threshold"] and not lost
    met = {rule: sum(goal_row(r, rule) for r in judged) for rule in distance}
    print(f"\n{len(judged)} pairs read at least .85 right by models trained on moved pictures: sure error's mean "
          f"distance from {RISK}: threshold {distance['threshold']:.4f}, threshold and moves "
          f"{distance['threshold and moves']:.4f}; reader goal met in {met['threshold']} and {met['threshold and moves']}; "
          f"lost: {', '.join(lost) or 'none'} -> moves {'adopted' if adopted else 'not adopted'} for such models")


if __name__ == "__main__":
    report(__doc__, rows, print_table, pictures_report, verdict)
