"""How choose.py's rule did on labelled tasks (RESULTS.md, 'Choosing without labels'): for each sweep
folder, the target test accuracy of the model the rule chose, of the most accurate candidate (known
only afterwards, from target labels) and of always taking one recipe; for each seed's own sweep and
for all seeds together. Then every label-free score as a rule of its own: its regret against the
most accurate candidate and how often it picks below source-only, on the sweeps named by --fit (where
a rule may be chosen) and on the others (where it is then measured), its Spearman correlation with
target accuracy within each sweep, and the error of the estimated target accuracy. With --data-dir,
also the ensemble of each seed's candidates (the mean of their predictions) on the target test set.

    python -m experiments.choice_report runs/experiments/choose-*-7000 --fit runs/experiments/choose-mnist-mnist_m-7000
"""
import argparse
import dataclasses
import functools
import json
import statistics
from pathlib import Path

import torch
from scipy.stats import spearmanr

from dann import sweep, training
from dann.checkpoints import ensemble_of, load_checkpoint
from dann.evaluation import accuracy, predictions
from dann.config import Config
from dann.scores import ALL_SCORES

BELOW = 0.005  # a pick this far below source-only of the same seed counts as below it

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


@functools.lru_cache(maxsize=None)
def target_test_set(run_folder, data_dir):
    """The target test pictures and labels a run was measured on (--limit and --target-imbalance as it had them)."""
    saved = json.loads((Path(run_folder) / "config.json").read_text())
    cfg = dataclasses.replace(Config.from_saved(saved, run_folder), data_dir=data_dir, no_download=True)
    return training.load_data(cfg, torch.device("cpu")).target_test


def ensemble_accuracy(rows, data_dir):
    """Target test accuracy of the mean of the candidates' predictions (one seed's sweep)."""
    images, labels = target_test_set(rows[0]["folder"], data_dir)
    members = [load_checkpoint(Path(r["folder"]) / "checkpoint.pt")[0] for r in rows]
    model = ensemble_of(members, {}, 0)[0] if len(members) > 1 else members[0]  # an ensemble of one is that model
    return accuracy(predictions(model, images), labels)


def line(task, seeds, o):
    chosen, best = o["chosen"], o["best"]
    fixed = " | ".join(f"{o['fixed'][n]:.4f}" if n in o["fixed"] else "-" for n in FIXED)
    ensemble = f" {o['ensemble']:.4f} |" if "ensemble" in o else ""
    return (f"| {task} | {seeds} | {chosen['candidate']} s{chosen['seed']} {chosen['target_test_acc']:.4f} | "
            f"{best['candidate']} s{best['seed']} {best['target_test_acc']:.4f} | {fixed} |{ensemble}")


def one_seed_sweeps(folders):
    """{folder: [the candidate rows of each seed]} of the labelled sweep folders."""
    return {f: [[r for r in rows if r["seed"] == seed and r.get("eligible", True)] for seed in sorted({r["seed"] for r in rows})]
            for f in folders for rows in [rows_of(f)]}


def as_rule(name, rows):
    """What the score `name` alone picks among one seed's candidates: -> (regret, below source-only or None)."""
    scored = [r for r in rows if r["label_free"].get(name) is not None]
    if not scored:
        return None
    pick = max(scored, key=lambda r: ALL_SCORES[name].oriented(r["label_free"][name]))
    regret = max(r["target_test_acc"] for r in rows) - pick["target_test_acc"]
    floor = [r["target_test_acc"] for r in rows if r["candidate"] == "source-only"]
    return regret, (pick["target_test_acc"] < floor[0] - BELOW) if floor else None


def rule_line(outcomes):
    regrets = [o[0] for o in outcomes if o]
    below = [o[1] for o in outcomes if o and o[1] is not None]
    if not regrets:
        return "- | - | -"
    return f"{statistics.median(regrets):.4f} | {max(regrets):.4f} | {sum(below)} of {len(below)}"


def spearman_within(name, folders):
    """The mean over sweep folders of the Spearman correlation of the oriented score with target accuracy."""
    values = []
    for f in folders:
        rows = [r for r in rows_of(f) if r.get("eligible", True) and r["label_free"].get(name) is not None]
        if len(rows) > 2:
            values.append(spearmanr([ALL_SCORES[name].oriented(r["label_free"][name]) for r in rows],
                                    [r["target_test_acc"] for r in rows]).statistic)
    return f"{statistics.mean(values):+.3f}" if values else "-"


def print_scores_as_rules(folders, fit):
    seeds = one_seed_sweeps(folders)
    fitted = [rows for f in folders if f in fit for rows in seeds[f]]
    others = [rows for f in folders if f not in fit for rows in seeds[f]]
    print(f"\nevery score as the rule, on {len(fitted)} one-seed sweeps to fix a rule on and {len(others)} others to "
          f"measure it on (regret: the most accurate candidate's accuracy minus the pick's; below: more than {BELOW} "
          "below source-only of the same seed)\n")
    print("| score | fit: median regret | fit: worst | fit: below | others: median regret | others: worst | "
          "others: below | Spearman within a sweep, mean |")
    print("| --- " * 8 + "|")
    for name in ALL_SCORES:
        print(f"| {name} | {rule_line([as_rule(name, rows) for rows in fitted])} | "
              f"{rule_line([as_rule(name, rows) for rows in others])} | {spearman_within(name, folders)} |")


def print_estimate_errors(folders):
    """|estimated - true| target accuracy of every candidate run, by sweep folder and over all."""
    print("\n| sweep | runs | estimated accuracy: mean error | worst | agreement as an estimate: mean error | worst "
          "| seed agreement (GDE): mean error | worst |")
    print("| --- " * 8 + "|")
    everything = {"estimated_accuracy": [], "agreement": [], "seed_agreement": []}
    for f in folders:
        rows = [r for r in rows_of(f) if r.get("eligible", True)]
        cells = []
        for name in everything:
            errors = [abs(r["label_free"][name] - r["target_test_acc"]) for r in rows if r["label_free"].get(name) is not None]
            everything[name] += errors
            cells.append(f"{statistics.mean(errors):.4f} | {max(errors):.4f}" if errors else "- | -")
        print(f"| {f.name} | {len(rows)} | {' | '.join(cells)} |")
    cells = [f"{statistics.mean(e):.4f} | {max(e):.4f}" if e else "- | -" for e in everything.values()]
    print(f"| all | {len(everything['estimated_accuracy'])} | {' | '.join(cells)} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="+", type=Path, help="choose.py --out folders of labelled tasks")
    p.add_argument("--fit", nargs="*", type=Path, default=[],
                   help="the sweep folders a rule may be fixed on (the others only measure it)")
    p.add_argument("--data-dir", help="dataset folder: also measure the ensemble of each seed's candidates")
    args = p.parse_args(argv)
    print(f"rule: {sweep.RULE}; fixed recipes: the mean over the seeds in the row\n")
    print("| sweep | seeds | chosen | most accurate | " + " | ".join(FIXED) + " |" + (" ensemble |" if args.data_dir else ""))
    print("| --- " * (4 + len(FIXED) + bool(args.data_dir)) + "|")
    per_seed = []
    for folder in args.sweeps:
        rows = rows_of(folder)
        seeds = sorted({r["seed"] for r in rows})
        for seed in seeds:
            o = outcome([r for r in rows if r["seed"] == seed])
            if args.data_dir:
                o["ensemble"] = ensemble_accuracy([r for r in rows if r["seed"] == seed and r.get("eligible", True)],
                                                  args.data_dir)
            per_seed.append(o)
            print(line(folder.name, seed, o))
        if len(seeds) > 1:
            print(line(folder.name, " ".join(map(str, seeds)), outcome(rows)))
    chosen = statistics.mean(o["chosen"]["target_test_acc"] for o in per_seed)
    best = statistics.mean(o["best"]["target_test_acc"] for o in per_seed)
    print(f"\nover {len(per_seed)} one-seed sweeps: chosen {chosen:.4f} on average, the most accurate {best:.4f}; "
          + ", ".join(f"always {n} {statistics.mean(o['fixed'][n] for o in per_seed):.4f}" for n in FIXED
                      if all(n in o["fixed"] for o in per_seed)))
    if args.data_dir:
        ensemble = [o["ensemble"] for o in per_seed]
        beats = sum(e > o["chosen"]["target_test_acc"] for e, o in zip(ensemble, per_seed))
        print(f"the ensemble of each seed's candidates: {statistics.mean(ensemble):.4f} on average, above the "
              f"chosen model in {beats} of {len(per_seed)}")
    wrong = sum(o["chosen"]["target_test_acc"] < o["best"]["target_test_acc"] for o in per_seed)
    print(f"the rule chose a less accurate model than the best candidate in {wrong} of {len(per_seed)}")
    print_scores_as_rules(args.sweeps, set(args.fit))
    print_estimate_errors(args.sweeps)


if __name__ == "__main__":
    main()
