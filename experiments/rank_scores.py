"""How well each label-free score ranks finished runs by their target test accuracy.

    python -m experiments.rank_scores runs/experiments/lf-*/seed* [mnist-mnist_m-dann ...] [--data-dir DIR]

For every run folder (finished: metrics.json), or bundled model by name, it computes
dann.scores.label_free_report of the final model on its task's training pictures and its source's
test pictures (target labels unread), reads the target test accuracy the run reported (a bundled model's: the registry's),
and prints one row per run, then each score's Spearman rank correlation with that
accuracy (each oriented so that higher is better, as dann.scores.SCORES says), the accuracy of the run
each score would choose against the best, and how far the estimated target accuracy is from the true one.
Other main.py flags (an experiments/ script's overrides) are accepted and ignored but --data-dir.
"""
import argparse
import json
import statistics
from pathlib import Path

from scipy.stats import spearmanr

from dann import datasets, outputs
from dann.checkpoints import load_checkpoint
from dann.config import Config
from dann.domains import source_parts
from dann.methods import METHODS
from dann.pretrained import bundled_checkpoint, bundled_models
from dann.scores import SCORES, label_free_report


def score_run(run, data_dir):
    """A run folder or a bundled model's name -> its row: name, target test accuracy, scores."""
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
        cfg = Config.from_saved(metrics["config"], run / "metrics.json")
        task, data_dir, method = (cfg.source, cfg.target), data_dir or cfg.data_dir, cfg.method
        path, name, accuracy = run / "checkpoint.pt", f"{run.parent.name}/{run.name}", metrics["target_test_acc"]
    else:
        entry = bundled_models()["models"][str(run)]
        task, method = (entry["source"], entry["target"]), entry["method"]
        path, name, accuracy = bundled_checkpoint(str(run)), str(run), entry["target_test_acc"]
    model, _ = load_checkpoint(path)
    sets = datasets.task_data(source_parts(task[0]), task[1], data_dir, False)
    return {"run": name, "target_test_acc": accuracy, **label_free_report(model, sets, METHODS[method])["label_free"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders of main.py, or bundled models' names")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: each run's own)")
    p.add_argument("--json", default=None, help="also write the rows and correlations to this file")
    args, _ = p.parse_known_args()
    bundled = bundled_models()["models"]
    rows = [score_run(run, args.data_dir) for run in args.runs
            if (run / "metrics.json").is_file() or str(run) in bundled]
    names = list(SCORES)
    print(f"{'run':<28} {'target acc':>10} " + " ".join(f"{n[:12]:>12}" for n in names))
    for r in sorted(rows, key=lambda r: r["target_test_acc"]):
        print(f"{r['run'][:28]:<28} {r['target_test_acc']:>10.4f} "
              + " ".join(f"{'-' if r[n] is None else format(r[n], '.4f'):>12}" for n in names))
    best = max(r["target_test_acc"] for r in rows)
    summary = {}
    print(f"\nover {len(rows)} runs (best target accuracy {best:.4f}):")
    for name, score in SCORES.items():
        scored = [r for r in rows if r[name] is not None]  # a domain classifier's score: the runs that train one
        if not scored:
            continue
        rho = spearmanr([score.oriented(r[name]) for r in scored], [r["target_test_acc"] for r in scored]).statistic \
            if len(scored) > 2 else float("nan")
        chosen = max(scored, key=lambda r: score.oriented(r[name]))
        summary[name] = {"spearman": rho, "runs": len(scored), "chosen_run": chosen["run"],
                         "chosen_acc": chosen["target_test_acc"]}
        print(f"  {name:<26} Spearman {rho:+.3f} over {len(scored)} runs; it would choose {chosen['run']} "
              f"({chosen['target_test_acc']:.4f})")
    errors = [abs(r["estimated_accuracy"] - r["target_test_acc"]) for r in rows]
    summary["estimate_error"] = {"mean": statistics.mean(errors), "median": statistics.median(errors), "max": max(errors)}
    print("  estimated accuracy against the true one: |error| mean {mean:.4f}, median {median:.4f}, "
          "max {max:.4f}".format(**summary["estimate_error"]))
    if args.json:
        outputs.save(json.dumps({"rows": rows, "scores": summary}, indent=2), Path(args.json))


if __name__ == "__main__":
    main()
