"""No digit here (RESULTS.md, 'How far to trust a reading'): the free energy of a picture,
-logsumexp of its class logits (Liu et al., NeurIPS 2020), as a second "not sure". Each bundled model's
energy threshold is the energy that 1% of its target's first 2,000 unlabelled training pictures lie
above; a reading is "not sure" below the model's calibrated-chance threshold or above its energy
threshold. For every bundled model (or --models) and every labelled test set at hand: the share marked
and the sure readings' accuracy under both rules; then the 28 pictures without a digit and the
README's pencil 7; last, the adoption rule RESULTS.md wrote down before any of it was measured.

    python -m experiments.energy_marking --data-dir data      # MNIST, MNIST-M and synth in data/
"""
import torch

from dann.checkpoints import class_names, load_checkpoint
from dann.pretrained import model_trust, resolve_checkpoint
from dann.trust import calibrated, sure_at
from experiments.shift_agreement import goal_row, pictures_to_mark, rule_cells
from experiments.trust_report import labelled_task, report

TARGET_MARKED = 0.01  # the share of the model's own target pictures the energy alone may mark
RULES = ("threshold", "threshold and energy")


def energy(model, images, batch_size=2048):
    """-logsumexp of the class logits, one number a picture: high where no class responds strongly."""
    with torch.no_grad():
        return torch.cat([-torch.logsumexp(model.eval()(images[i:i + batch_size]).float(), 1)
                          for i in range(0, len(images), batch_size)])


def marking(model, images, trust, energy_above, correct=None):
    """{rule: (share marked, sure readings' accuracy)}, and the class read."""
    chances, read = calibrated(model.predict_proba(images), trust["temperature"]).max(1)
    above = chances >= sure_at(trust["unsure_below"])
    out = {}
    for rule, sure in zip(RULES, (above, above & (energy(model, images) <= energy_above))):
        acc = correct(read)[sure].double().mean().item() if correct is not None and sure.any() else None
        out[rule] = (1 - sure.double().mean().item(), acc)
    return out, read


def loaded(spec, data_dir):
    """(model, checkpoint, trust, energy threshold) of a bundled model or checkpoint."""
    path = resolve_checkpoint(spec)[0]
    model, ckpt = load_checkpoint(path)
    target = labelled_task(ckpt["config"], data_dir).target_train[0][:2000]
    return model, ckpt, model_trust(ckpt, path), torch.quantile(energy(model, target).double(), 1 - TARGET_MARKED).item()


def rows(spec, tests, data_dir):
    model, _, trust, energy_above = loaded(spec, data_dir)
    for name, (images, labels) in tests.items():
        marks, read = marking(model, images, trust, energy_above, lambda read: read == labels)
        yield {"model": spec, "set": name, "accuracy": (read == labels).double().mean().item(), **marks}


def print_table(table, default):
    print("| model | set | accuracy | not sure: threshold | sure acc | reader goal | threshold and energy | sure acc | "
          "reader goal |\n" + "| --- " * 9 + "|")
    for r in table:
        applies = r["model"] == default or r["accuracy"] >= 0.85
        cells = rule_cells(r, RULES, applies)
        print(f"| {r['model']} | {r['set']} | {r['accuracy']:.4f} | {' | '.join(cells)} |")


def pictures_report(models, data_dir):
    pictures, pencil = pictures_to_mark(data_dir)
    print("\n| model | no digit marked: threshold | threshold and energy | pencil 7: read | sure: threshold | "
          "threshold and energy |\n" + "| --- " * 6 + "|")
    for spec in models:
        model, ckpt, trust, energy_above = loaded(spec, data_dir)
        marks, _ = marking(model, pictures, trust, energy_above)
        pencil_marks, read = marking(model, pencil, trust, energy_above)
        n = len(pictures)
        print(f"| {spec} | " + " | ".join(f"{round(marks[rule][0] * n)} of {n}" for rule in RULES)
              + f" | {class_names(ckpt)[read.item()]} | "
              + " | ".join("no" if pencil_marks[rule][0] else "yes" for rule in RULES) + " |")


def verdict(table):
    lost = [f"{r['model']} on {r['set']}" for r in table if goal_row(r, RULES[0]) and not goal_row(r, RULES[1])]
    adds = sum(r[RULES[1]][0] > r[RULES[0]][0] for r in table)
    print(f"\nreader goal lost with the energy: {', '.join(lost) or 'none'} -> by the rule the energy "
          f"{'may join' if not lost else 'may not join'} 'not sure'; it marks more than the threshold alone on "
          f"{adds} of the {len(table)} model-and-set pairs")


if __name__ == "__main__":
    report(__doc__, rows, print_table, pictures_report, verdict)
