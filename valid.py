"""Evaluate a trained DANN on the test sets of its source and target domains.

    python valid.py                                   # the latest run's final checkpoint, else the bundled DANN
    python valid.py --list                            # the bundled models and their accuracies
    python valid.py --checkpoint mnist-mnist_m-source-only
    python valid.py --checkpoint runs/X/checkpoint.pt --domains usps
    python valid.py --checkpoint https://host/model.pt --sha256 HEX --json

Prints accuracy, image count and per-class accuracy for each domain and writes a
confusion-matrix figure per domain. Checkpoints load with weights_only=True: one that
carries pickled code is refused.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

import download_data
from checkpoints import PRETRAINED_DIR, add_checkpoint_flags, format_bundled, load_checkpoint, resolve_checkpoint
from common import run_script, write_atomic
from config import add_flags, pick_device
from data import DOMAINS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_flags(p)
    p.add_argument("--domains", nargs="+", choices=DOMAINS, default=[], metavar="NAME",
                   help=f"more test sets to evaluate besides the checkpoint's source and target ({' '.join(DOMAINS)})")
    add_flags(p, ("data_dir", "no_download", "device"))
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where to write the figures (default: beside the checkpoint; figures/<name>/ for a bundled model)")
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


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print(format_bundled())
        return None
    device = pick_device(args.device)
    path, why = resolve_checkpoint(args.checkpoint, args.sha256)
    model, ckpt = load_checkpoint(path, device)
    cfg = ckpt["config"]
    print(f"model: {path} ({why}); {cfg['method']}, {cfg['source']} -> {cfg['target']}, step {ckpt['step']}",
          file=sys.stderr if args.json else sys.stdout)
    roles = {cfg["source"]: "source", cfg["target"]: "target"}
    roles.update({d: "extra" for d in args.domains if d not in roles})
    test_sets = download_data.load_datasets(roles, ["test"], args.data_dir, not args.no_download)
    results = {}
    for name, role in roles.items():
        images, labels = test_sets[name, "test"]
        results[name] = domain_report(model, images.to(device), labels.to(device), role)
    out_dir = args.out_dir or (Path("figures") / path.stem if path.parent == PRETRAINED_DIR else path.parent)
    for name, result in results.items():
        result["figure"] = str(out_dir / f"confusion_{name}.png")
        save_confusion_figure(name, result, Path(result["figure"]))
    if args.json:
        print(json.dumps({"checkpoint": str(path), "chosen": why, "method": cfg["method"], "step": ckpt["step"],
                          "domains": results}, indent=2))
    else:
        print("\nper-class accuracy on the right\n" + format_table(results))
        print("\nconfusion matrices: " + ", ".join(r["figure"] for r in results.values()))
    return results


if __name__ == "__main__":
    run_script(main)
