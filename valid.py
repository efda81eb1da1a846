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
from checkpoints import (PRETRAINED_DIR, add_checkpoint_flags, format_bundled, load_checkpoint, resolve_checkpoint,
                         unfinished)
from config import add_flags, pick_device
from data import DOMAINS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_flags(p)
    p.add_argument("--domains", nargs="+", choices=DOMAINS, default=[], metavar="NAME",
                   help=f"more test sets to evaluate besides the checkpoint's source and target ({' '.join(DOMAINS)})")
    add_flags(p, ("data_dir", "no_download", "device"))
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where to write the confusion matrices and evaluation.json (default: figures/<name>/, "
                        "named after the checkpoint: figures/runs-X-checkpoint/, or figures/NAME/ for a bundled model)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead of a table")
    return p.parse_args(argv)


def confusion_matrix(labels, predictions):
    return torch.bincount(labels * 10 + predictions, minlength=100).view(10, 10)


def domain_report(model, images, labels, role):
    with torch.no_grad():
        predictions = model.predict_proba(images).argmax(1)
    cm = confusion_matrix(labels, predictions)
    per_class = (cm.diag() / cm.sum(1).clamp(min=1)).tolist()
    return {"role": role, "images": len(labels), "accuracy": (predictions == labels).sum().item() / len(labels),
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist()}


def format_table(results):
    head = f"{'domain':<8} {'role':<7} {'images':>6} {'acc':>7} | " + " ".join(f"{d:>5}" for d in range(10))
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(f"{name:<8} {r['role']:<7} {r['images']:>6} {r['accuracy']:>7.4f} | "
                     + " ".join(f"{a:>5.3f}" for a in r["per_class_accuracy"]))
    return "\n".join(lines)


def save_confusion_figure(name, result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = torch.tensor(result["confusion_matrix"], dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow((cm / cm.sum(1, keepdim=True).clamp(min=1)).numpy(), cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in zip(((i, j) for i in range(10) for j in range(10)), cm.flatten().tolist()):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=6, color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"{name} ({result['role']}): accuracy {result['accuracy']:.4f}")
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
    cfg, note = ckpt["config"], unfinished(ckpt, path)
    print(f"model: {path} ({why}{'; ' + note if note else ''}); {cfg['method']}, {cfg['source']} -> "
          f"{cfg['target']}, step {ckpt['step']}", file=sys.stderr if args.json else sys.stdout)
    out_dir = args.out_dir or evaluation_folder(path)
    claim_evaluation_folder(out_dir, path)
    roles = {cfg["source"]: "source", cfg["target"]: "target"}
    roles.update({d: "extra" for d in args.domains if d not in roles})
    test_sets = download_data.load_datasets(roles, ["test"], args.data_dir, not args.no_download)
    results = {}
    for name, role in roles.items():
        images, labels = test_sets[name, "test"]
        results[name] = domain_report(model, images.to(device), labels.to(device), role)
    report = {"checkpoint": str(path.resolve()), "chosen": why, "method": cfg["method"], "step": ckpt["step"],
              "finished": note is None, "domains": results}
    failures = save_outputs(report, out_dir)  # the accuracies are printed whatever happens to the files
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\nper-class accuracy on the right\n" + format_table(results))
        saved = [r["figure"] for r in results.values() if r["figure"]]
        print("\nconfusion matrices: " + (", ".join(saved) or "none saved"))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else results


def save_outputs(report, out_dir):
    """The confusion-matrix figures and evaluation.json in out_dir; returns what could not be written."""
    failures = []
    for name, result in report["domains"].items():
        result["figure"] = str(out_dir / f"confusion_{name}.png")
        try:
            save_confusion_figure(name, result, Path(result["figure"]))
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
