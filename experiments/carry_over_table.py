"""The carry-over table (RESULTS.md, 'Carry-over'): from choose.py sweep folders, each run folder's
target test accuracy per seed and its mean +- std, whether it beat source-only in every seed it
shares with it, and its wall time.

    python -m experiments.carry_over_table runs/experiments/choose-*-7000
"""
import argparse
import json
import statistics
from pathlib import Path


def finished_runs(sweep_dir):
    """Every finished run of a sweep folder, read from its run folders (<candidate>/seed<S>/metrics.json):
    choice.json holds only the candidates and seeds of the sweep's last call."""
    found = []
    for path in sorted(Path(sweep_dir).glob("*/seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("target_test_acc") is not None:
            found.append({"candidate": path.parent.parent.name, "seed": int(path.parent.name.removeprefix("seed")),
                          "target_test_acc": metrics["target_test_acc"], "wall_time_s": metrics["wall_time_s"]})
    return found


def row(task, name, runs, baseline):
    accs = {r["seed"]: r["target_test_acc"] for r in runs}
    mean = statistics.mean(accs.values())
    spread = f" +- {statistics.stdev(accs.values()):.4f}" if len(accs) > 1 else ""
    shared = [s for s in accs if s in baseline]
    beats = "-" if name == "source-only" or not shared else (
        f"{sum(accs[s] > baseline[s] for s in shared)} of {len(shared)}")
    walls = ", ".join(f"{r['wall_time_s']:.0f}" for r in runs)
    per_seed = " / ".join(f"s{s} {a:.4f}" for s, a in sorted(accs.items()))
    return f"| {task} | {name} | {per_seed} | {mean:.4f}{spread} | {beats} | {walls} s |"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="+", type=Path, help="choose.py --out folders of labelled tasks")
    args = p.parse_args(argv)
    print("| task | method | target test per seed | mean +- std | beats source-only | wall time |")
    print("| --- | --- | --- | --- | --- | --- |")
    for folder in args.sweeps:
        runs = finished_runs(folder)
        task = folder.name.removeprefix("choose-").removesuffix("-7000").replace("-", " -> ")
        baseline = {r["seed"]: r["target_test_acc"] for r in runs if r["candidate"] == "source-only"}
        for name in dict.fromkeys(r["candidate"] for r in runs):
            print(row(task, name, [r for r in runs if r["candidate"] == name], baseline))


if __name__ == "__main__":
    main()
