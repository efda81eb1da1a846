"""Evaluate a trained DANN on the test sets of its source and target domains.

    python valid.py                                   # the latest finished run, else the bundled DANN
    python valid.py --list                            # the bundled models and their accuracies
    python valid.py --checkpoint mnist-mnist_m-source-only
    python valid.py --checkpoint runs/X/checkpoint.pt --domains usps
    python valid.py --checkpoint https://host/model.pt --sha256 HEX --json

Prints accuracy, image count and per-class accuracy for each domain, then writes a
confusion-matrix figure per domain and evaluation.json to figures/<name>/ (--out-dir); a file
that cannot be written is one line after the accuracies, and the exit code is 1. Only the test
files are fetched. Checkpoints load with weights_only=True: one that carries pickled code is refused.
"""
import argparse
import json
import sys
from pathlib import Path

from common import UserError, run_script, write_atomic  # first: Ctrl-C while torch loads is one line

import torch

import download_data
from checkpoints import (PRETRAINED_DIR, add_checkpoint_flags, class_names, format_bundled, load_checkpoint,
                         resolve_checkpoint, unfinished)
from config import add_flags, pick_device
from data import DOMAINS
from scores import label_free_scores


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_flags(p)
    p.add_argument("--domains", nargs="+", default=[], metavar="DOMAIN|FOLDER",
                   help=f"more test sets to evaluate besides the checkpoint's source and target: {', '.join(DOMAINS)} "
                        "or folders of pictures (a folder's test split)")
    add_flags(p, ("data_dir", "no_download", "device"))
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where to write the confusion matrices and evaluation.json (default: figures/<name>/, "
                        "named after the checkpoint: figures/runs-X-checkpoint/, or figures/NAME/ for a bundled model)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead of a table")
    p.add_argument("--scores", action="store_true",
                   help="also the label-free scores of adaptation (scores.py), from the training pictures of the "
                        "checkpoint's target and source, which are then fetched too")
    return p.parse_args(argv)


def confusion_matrix(labels, predictions, classes):
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).view(classes, classes)


def domain_report(model, images, labels, role, class_names):
    """Accuracy, per-class accuracy and the confusion matrix on one test set; for an unlabelled
    folder, the share of its pictures predicted as each class instead."""
    with torch.no_grad():
        predictions = model.predict_proba(images).argmax(1)
    n = len(class_names)
    if labels is None:
        share = (torch.bincount(predictions, minlength=n) / max(1, len(predictions))).tolist()
        return {"role": role, "images": len(images), "accuracy": None, "why_no_accuracy": "an unlabelled folder",
                "predicted_share": share}
    cm = confusion_matrix(labels, predictions, n)
    per_class = (cm.diag() / cm.sum(1).clamp(min=1)).tolist()
    return {"role": role, "images": len(labels), "accuracy": (predictions == labels).sum().item() / len(labels),
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist()}


def format_table(results, class_names):
    """One row per test set: accuracy and per-class accuracy (an unlabelled folder: predicted shares)."""
    width = max(5, *(len(c) for c in class_names[:12]))
    head = f"{'domain':<12} {'role':<7} {'images':>6} {'acc':>7} | " + " ".join(f"{c[:width]:>{width}}" for c in class_names)
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        acc, cells = ((f"{r['accuracy']:>7.4f}", r["per_class_accuracy"]) if r["accuracy"] is not None
                      else (f"{'none':>7}", r["predicted_share"]))
        note = "" if r["accuracy"] is not None else "  (no labels: share predicted as each class)"
        lines.append(f"{Path(name).name[:12]:<12} {r['role']:<7} {r['images']:>6} {acc} | "
                     + " ".join(f"{a:>{width}.3f}" for a in cells) + note)
    return "\n".join(lines)


def save_confusion_figure(name, result, path, class_names):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = torch.tensor(result["confusion_matrix"], dtype=torch.float64)
    n = len(cm)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow((cm / cm.sum(1, keepdim=True).clamp(min=1)).numpy(), cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in zip(((i, j) for i in range(n) for j in range(n)), cm.flatten().tolist()):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=6, color="white" if i == j else "black")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=class_names, yticklabels=class_names, xlabel="predicted",
           ylabel="true", title=f"{Path(name).name} ({result['role']}): accuracy {result['accuracy']:.4f}")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def evaluation_folder(path):
    """Where an evaluation of checkpoint `path` writes by default: figures/<name>/, a name of its
    own for each checkpoint, so that it never lands in pretrained/ or beside another run's files."""
    if path.parent == PRETRAINED_DIR:
        return Path("figures") / path.stem
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:  # outside the current folder: its absolute path names it
        shown = path.resolve()
    return Path("figures") / "-".join(part for part in shown.with_suffix("").parts if part not in ("/", ".."))


def claim_evaluation_folder(out_dir, path):
    """Refuse an --out-dir that holds another checkpoint's evaluation (evaluation.json says whose)."""
    record = out_dir / "evaluation.json"
    try:
        other = json.loads(record.read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return
    if other not in (None, str(path.resolve())):
        raise UserError(f"{out_dir} holds the evaluation of another model ({other}); choose another --out-dir")


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print(format_bundled())
        return None
    device = pick_device(args.device)
    path, why = resolve_checkpoint(args.checkpoint, args.sha256)
    model, ckpt = load_checkpoint(path, device)
    cfg, note, names = ckpt["config"], unfinished(ckpt, path), class_names(ckpt)
    print(f"model: {path} ({why}{'; ' + note if note else ''}); {cfg['method']}, {cfg['source']} -> "
          f"{cfg['target']}, step {ckpt['step']}", file=sys.stderr if args.json else sys.stdout)
    out_dir = args.out_dir or evaluation_folder(path)
    claim_evaluation_folder(out_dir, path)
    roles = {cfg["source"]: "source", cfg["target"]: "target"}
    roles.update({d: "extra" for d in args.domains if d not in roles})
    for name in roles:
        theirs = download_data.class_names(name)
        if theirs is not None and tuple(theirs) != names:
            raise UserError(f"{name} has the classes {', '.join(theirs)}; the model knows {', '.join(names)}")
    test_sets = download_data.load_datasets(roles, ["test"], args.data_dir, not args.no_download)
    results = {}
    for name, role in roles.items():
        images, labels = test_sets[name, "test"]
        results[name] = domain_report(model, images.to(device), None if labels is None else labels.to(device), role,
                                      names)
    report = {"checkpoint": str(path.resolve()), "chosen": why, "method": cfg["method"], "step": ckpt["step"],
              "finished": note is None, "domains": results}
    if args.scores:
        train = download_data.load_datasets({cfg["source"]: 0, cfg["target"]: 0}, ["train"], args.data_dir,
                                            not args.no_download)
        source, target = train[cfg["source"], "train"], train[cfg["target"], "train"]
        report["label_free"] = label_free_scores(model, target[0].to(device), source[0].to(device),
                                                 source[1].to(device))
    failures = save_outputs(report, out_dir, names)  # the accuracies are printed whatever happens to the files
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\nper-class accuracy on the right\n" + format_table(results, names))
        saved = [r["figure"] for r in results.values() if r["figure"]]
        print("\nconfusion matrices: " + (", ".join(saved) or "none saved"))
        if args.scores:
            print(f"label-free scores on {cfg['target']}'s training pictures (no label read): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in report["label_free"].items()))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else results


def save_outputs(report, out_dir, class_names):
    """The confusion-matrix figures and evaluation.json in out_dir; returns what could not be written."""
    failures = []
    for name, result in report["domains"].items():
        if result["accuracy"] is None:  # no labels, no confusion matrix
            result["figure"] = None
            continue
        result["figure"] = str(out_dir / f"confusion_{Path(name).name}.png")
        try:
            save_confusion_figure(name, result, Path(result["figure"]), class_names)
        except UserError as e:
            failures.append(str(e))
            result["figure"] = None
    try:
        write_atomic(out_dir / "evaluation.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    except UserError as e:
        failures.append(str(e))
    return failures


if __name__ == "__main__":
    run_script(main)
