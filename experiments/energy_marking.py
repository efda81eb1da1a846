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
from dann.common import REPO
from dann.pictures import picture_to_digit
from dann.pretrained import bundled_models, model_trust, resolve_checkpoint
from dann.trust import calibrated, sure_at
from experiments.not_digits import digits, not_digits
from experiments.trust_report import labelled_sets, labelled_task, parse_args, reader_goal

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


def goal_row(r, rule):
    return reader_goal({"accuracy": r["accuracy"], "not_sure_share": r[rule][0], "sure_accuracy": r[rule][1]})


def print_table(table, default):
    print("| model | set | accuracy | not sure: threshold | sure acc | reader goal | threshold and energy | sure acc | "
          "reader goal |\n" + "| --- " * 9 + "|")
    for r in table:
        applies = r["model"] == default or r["accuracy"] >= 0.85
        cells = []
        for rule in RULES:
            marked, acc = r[rule]
            cells += [f"{marked:.1%}", "-" if acc is None else f"{acc:.4f}",
                      ("met" if goal_row(r, rule) else "missed") if applies else "-"]
        print(f"| {r['model']} | {r['set']} | {r['accuracy']:.4f} | {' | '.join(cells)} |")


def pictures_report(models, data_dir):
    pictures = digits(not_digits(data_dir))
    from PIL import Image
    pencil = picture_to_digit(Image.open(REPO / "images" / "pencil_7.jpg"))[None]
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
    print(f"\nreader goal lost with the energy: {', '.join(lost) or 'none'} -> energy "
          f"{'adopted' if not lost else 'not adopted'}")


def main():
    args = parse_args(__doc__)
    tests = labelled_sets(args.data_dir, args.photographs)
    table = [row for spec in args.models for row in rows(spec, tests, args.data_dir)]
    print_table(table, bundled_models()["default"])
    pictures_report(args.models, args.data_dir)
    verdict(table)


if __name__ == "__main__":
    main()
