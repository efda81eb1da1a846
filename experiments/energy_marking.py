"""No digit here (RESULTS.md, 'How far to trust a reading'): the free energy of a picture,
-logsumexp of its class logits (Liu et al., NeurIPS 2020), as a second "not sure". Each bundled model's
energy threshold is the energy that 1% of its target's first 2,000 unlabelled training pictures lie
above; a reading is "not sure" below the model's calibrated-chance threshold or above its energy
threshold. For every bundled model (or --models) and every labelled test set at hand: the share marked
and the sure readings' accuracy under both rules; then the 28 pictures without a digit and the
README's pencil 7; last, the adoption rule RESULTS.md wrote down before any of it was measured.
experiments/feature_distance.py measures another number the same way.

    python -m experiments.energy_marking --data-dir data      # MNIST, MNIST-M and synth in data/
"""
import functools

import torch

from dann.checkpoints import class_names, load_checkpoint
from dann.pretrained import model_trust, resolve_checkpoint
from dann.trust import calibrated, sure_at
from experiments.shift_agreement import goal_row, pictures_to_mark, rule_cells
from experiments.trust_report import labelled_task, report

TARGET_MARKED = 0.01  # the share of the model's own target pictures the second number alone may mark
THRESHOLD = "threshold"


def energy(model, images, batch_size=2048):
    """-logsumexp of the class logits, one number a picture: high where no class responds strongly."""
    with torch.no_grad():
        return torch.cat([-torch.logsumexp(model.eval()(images[i:i + batch_size]).float(), 1)
                          for i in range(0, len(images), batch_size)])


def energy_signal(model, sets):
    """The energy as a signal: (a picture's number, higher the less like what the model learnt)."""
    return functools.partial(energy, model)


def marking(model, images, trust, signal, above, correct=None):
    """{rule: (share marked, sure readings' accuracy)} for the threshold alone and with the signal, and the class read."""
    chances, read = calibrated(model.predict_proba(images), trust["temperature"]).max(1)
    sure = chances >= sure_at(trust["unsure_below"])
    out = {}
    for rule, kept in ((THRESHOLD, sure), (f"{THRESHOLD} and {signal.__name__}", sure & (signal(images) <= above))):
        acc = correct(read)[kept].double().mean().item() if correct is not None and kept.any() else None
        out[rule] = (1 - kept.double().mean().item(), acc)
    return out, read


def loaded(spec, data_dir, signal_of):
    """(model, checkpoint, trust, signal, its threshold) of a bundled model or checkpoint; signal_of(model,
    sets) makes the signal from the model's task (training pictures only; no target label read)."""
    path = resolve_checkpoint(spec)[0]
    model, ckpt = load_checkpoint(path)
    sets = labelled_task(ckpt["config"], data_dir)
    signal = signal_of(model, sets)
    signal.__name__ = signal_of.__name__.removesuffix("_signal")
    above = torch.quantile(signal(sets.target_train[0][:2000]).double(), 1 - TARGET_MARKED).item()
    return model, ckpt, model_trust(ckpt, path), signal, above


def rows(spec, tests, data_dir, signal_of):
    model, _, trust, signal, above = loaded(spec, data_dir, signal_of)
    for name, (images, labels) in tests.items():
        marks, read = marking(model, images, trust, signal, above, lambda read: read == labels)
        yield {"model": spec, "set": name, "accuracy": (read == labels).double().mean().item(), **marks}


def rules(table):
    return [k for k in table[0] if k.startswith(THRESHOLD)]


def print_table(table, default):
    print(f"| model | set | accuracy | not sure: {' | sure acc | reader goal | '.join(rules(table))} | sure acc | "
          "reader goal |\n" + "| --- " * 9 + "|")
    for r in table:
        cells = rule_cells(r, rules(table), r["model"] == default or r["accuracy"] >= 0.85)
        print(f"| {r['model']} | {r['set']} | {r['accuracy']:.4f} | {' | '.join(cells)} |")


def pictures_report(models, data_dir, signal_of):
    pictures, pencil = pictures_to_mark(data_dir)
    for i, spec in enumerate(models):
        model, ckpt, trust, signal, above = loaded(spec, data_dir, signal_of)
        marks, _ = marking(model, pictures, trust, signal, above)
        pencil_marks, read = marking(model, pencil, trust, signal, above)
        if i == 0:
            print(f"\n| model | no digit marked: {' | '.join(marks)} | pencil 7: read | sure: {' | '.join(marks)} |\n"
                  + "| --- " * 6 + "|")
        n = len(pictures)
        print(f"| {spec} | " + " | ".join(f"{round(marked * n)} of {n}" for marked, _ in marks.values())
              + f" | {class_names(ckpt)[read.item()]} | "
              + " | ".join("no" if marked else "yes" for marked, _ in pencil_marks.values()) + " |")


def verdict(table):
    plain, joined = rules(table)
    lost = [f"{r['model']} on {r['set']}" for r in table if goal_row(r, plain) and not goal_row(r, joined)]
    adds = sum(r[joined][0] > r[plain][0] for r in table)
    print(f"\nreader goal lost with '{joined}': {', '.join(lost) or 'none'} -> by the rule it "
          f"{'may join' if not lost else 'may not join'} 'not sure'; it marks more than the threshold alone on "
          f"{adds} of the {len(table)} model-and-set pairs")


def measure(description, signal_of):
    """The whole report of a signal: its table, the pictures without a digit, its verdict."""
    report(description, functools.partial(rows, signal_of=signal_of), print_table,
           functools.partial(pictures_report, signal_of=signal_of), verdict)


if __name__ == "__main__":
    measure(__doc__, energy_signal)
