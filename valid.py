"""Evaluate a trained DANN on the test sets of its source and target domains.

    python valid.py                                   # the latest finished run, else the bundled default
    python valid.py --list                            # the bundled models and their accuracies
    python valid.py --checkpoint mnist-mnist_m-source-only
    python valid.py --checkpoint runs/X/checkpoint.pt --domains usps
    python valid.py --checkpoint https://host/model.pt --sha256 HEX --json

Prints accuracy, image count and per-class accuracy for each domain, then writes a
confusion-matrix figure per domain and evaluation.json to figures/<name>/ (--out-dir); a file
that cannot be written is one line after the accuracies, and the exit code is 1. Only the test
files are fetched. Checkpoints load with weights_only=True: one that carries pickled code is refused.
"""
from dann.cli import one_line_errors, run_script

one_line_errors()  # first: Ctrl-C, or a torchvision that does not fit torch, while they load

import argparse
import json
import sys
from pathlib import Path

from dann import datasets, evaluation
from dann.checkpoints import class_names, load_checkpoint
from dann.runs import unfinished
from dann.config import add_flags, pick_device
from dann.fonts import drawable
from dann.methods import METHODS
from dann.domains import DOMAINS, default_root, fetch_command, is_folder, source_parts
from dann.pretrained import add_checkpoint_flags, evaluation_folder, format_bundled, model_trust, resolve_checkpoint
from dann.scores import label_free_report


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
                   help="also the label-free scores of adaptation (dann/scores.py), among them the estimated target accuracy, "
                        "and the estimated target class mix, from the training pictures of the checkpoint's target and "
                        "source and the source's test pictures, which are then fetched too")
    return p.parse_args(argv)


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
    sources = source_parts(cfg["source"])
    roles = {**dict.fromkeys(sources, "source"), cfg["target"]: "target"}
    if args.domains:  # what was asked about; the model's own domains too where their test files are here already
        for name in [d for d in roles if d not in args.domains and not datasets.at_hand(d, ["test"], args.data_dir)]:
            print(f"not evaluated: {name}, the model's {roles.pop(name)} domain, is not at hand"
                  + ("" if is_folder(name) else f"; include it with: {fetch_command(name, args.data_dir or default_root())}"),
                  file=sys.stderr)
    roles.update({d: "extra" for d in args.domains if d not in roles})
    evaluation.claim_evaluation_folder(out_dir, path, list(roles))
    results = evaluation.test_reports(model, roles, names, args.data_dir, not args.no_download, device,
                                      trust=model_trust(ckpt, path))
    report = {"checkpoint": str(path.resolve()), "chosen": why, "method": cfg["method"], "step": ckpt["step"],
              "finished": note is None, "domains": results}
    if args.scores:
        print(f"label-free scores: reading the training pictures of {cfg['source']} and {cfg['target']} (decoded once, "
              "then cached)", file=sys.stderr)
        sets = datasets.task_data(sources, cfg["target"], args.data_dir, not args.no_download, device)
        report.update(label_free_report(model, sets, METHODS.get(cfg["method"])))  # an ensemble has no method
    failures = evaluation.save_outputs(report, out_dir, names)  # the accuracies are printed whatever happens to files
    numbered = drawable(tuple(names))[2]
    if numbered and any(r["figure"] for r in results.values()):
        print(f"confusion matrices: {numbered}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\nper-class accuracy on the right\n" + evaluation.format_table(results, names))
        saved = [r["figure"] for r in results.values() if r["figure"]]
        print("\nconfusion matrices: " + (", ".join(saved) or "none saved"))
        if args.scores:
            print(f"label-free scores on {cfg['target']}'s training pictures (no label read): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in report["label_free"].items() if v is not None))
            print("estimated target class mix: " + ", ".join(f"{name} {share:.3f}" for name, share
                                                             in zip(names, report["target_class_mix"])))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else results


if __name__ == "__main__":
    run_script(main)
