"""How choose.py's rule did on labelled tasks (RESULTS.md, 'Choosing without labels'): for each sweep
folder, the target test accuracy of the model the rule chose, of the most accurate candidate (known
only afterwards, from target labels) and of always taking one recipe; for each seed's own sweep and
for all seeds together.

    python -m experiments.choice_report runs/experiments/choose-*-7000
"""
import argparse
import json
import statistics
from pathlib import Path

from dann import sweep

FIXED = ("source-only", "dann", "dann-im", "dirt-t", "self-ensemble", "adamatch")  # a user who always takes one recipe


def rows_of(sweep_dir):
    runs = json.loads((Path(sweep_dir) / "choice.json").read_text())["runs"]
    return [r for r in runs if r["status"] == "done" and r["target_test_acc"] is not None]


def outcome(rows):
    """The accuracies of the chosen run, the most accurate one and each fixed recipe among `rows`."""
    candidates = [r for r in rows if r.get("eligible", True)]  # not what a candidate only refines
    chosen = min(candidates, key=lambda r: sweep.rank_key(r["label_free"]))
    best = max(candidates, key=lambda r: r["target_test_acc"])
    fixed = {name: statistics.mean(r["target_test_acc"] for r in rows if r["candidate"] == name)
             for name in FIXED if any(r["candidate"] == name for r in rows)}
    return {"chosen": chosen, "best": best, "fixed": fixed}


def line(task, seeds, o):
    chosen, best = o["chosen"], o["best"]
    fixed = " | ".join(f"{o['fixed'][n]:.4f}" if n in o["fixed"] else "-" for n in FIXED)
    return (f"| {task} | {seeds} | {chosen['candidate']} s{chosen['seed']} {chosen['target_test_acc']:.4f} | "
            f"{best['candidate']} s{best['seed']} {best['target_test_acc']:.4f} | {fixed} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="+", type=Path, help="choose.py --out folders of labelled tasks")
    args = p.parse_args(argv)
    print(f"rule: {sweep.RULE}; fixed recipes: the mean over the seeds in the row\n")
    print("| sweep | seeds | chosen | most accurate | " + " | ".join(FIXED) + " |")
    print("| --- " * (4 + len(FIXED)) + "|")
    per_seed = []
    for folder in args.sweeps:
        rows = rows_of(folder)
        seeds = sorted({r["seed"] for r in rows})
        for seed in seeds:
            o = outcome([r for r in rows if r["seed"] == seed])
            per_seed.append(o)
            print(line(folder.name, seed, o))
        if len(seeds) > 1:
            print(line(folder.name, " ".join(map(str, seeds)), outcome(rows)))
    chosen = statistics.mean(o["chosen"]["target_test_acc"] for o in per_seed)
    best = statistics.mean(o["best"]["target_test_acc"] for o in per_seed)
    print(f"\nover {len(per_seed)} one-seed sweeps: chosen {chosen:.4f} on average, the most accurate {best:.4f}; "
          + ", ".join(f"always {n} {statistics.mean(o['fixed'][n] for o in per_seed):.4f}" for n in FIXED
                      if all(n in o["fixed"] for o in per_seed)))
    wrong = sum(o["chosen"]["target_test_acc"] < o["best"]["target_test_acc"] for o in per_seed)
    print(f"the rule chose a less accurate model than the best candidate in {wrong} of {len(per_seed)}")


if __name__ == "__main__":
    main()
