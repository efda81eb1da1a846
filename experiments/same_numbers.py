"""The reference runs that show a change of the code's layout changed no number: every method and the
quick trial, with fixed seeds and short settings, each through main.py; then every number of each
run's metrics.json (accuracies, label-free scores, "not sure" threshold, the epochs' statistics)
in one JSON file. Two such files from two commits must be equal.

    python -m experiments.same_numbers --data-dir data --out runs/same-numbers      # -> numbers.json
    python -m experiments.same_numbers --data-dir data --out runs/same-after --compare runs/same-numbers/numbers.json

Needs MNIST and MNIST-M in --data-dir (python download_data.py --datasets mnist mnist_m). About 4
minutes on 2 CPU cores, one thread (the thread count changes how sums round, so it is fixed).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from dann import outputs

REPO = Path(__file__).resolve().parent.parent
TASK = ["--source", "mnist", "--target", "mnist_m", "--limit", "600", "--epochs", "3", "--eval-every", "1",
        "--batch-size", "32"]
RUNS = {  # name: main.py flags; a run that learns from another (--init) comes after it
    "source-only": TASK + ["--method", "source-only"],
    "dann": TASK + ["--method", "dann"],
    "dann-augment-ema": TASK + ["--method", "dann", "--augment", "--ema", "0.9", "--seed", "1"],
    "dann-im": TASK + ["--method", "dann-im"],
    "vada": TASK + ["--method", "vada"],
    "dirt-t": TASK + ["--method", "dirt-t", "--init", "{dann}", "--teacher-every", "20"],
    "self-train": TASK + ["--method", "self-train", "--init", "{dirt-t}", "--augment"],
    "target-only": TASK + ["--method", "target-only"],
    "quick-trial": ["--source", "mnist", "--target", "mnist_m", "--method", "source-only", "--limit", "3000",
                    "--epochs", "3", "--seed", "4"],
}


def train(name, flags, out, data_dir):
    folder = out / name
    if not (folder / "metrics.json").is_file():
        flags = [f.format(**{n: str(out / n) for n in RUNS}) for f in flags]
        subprocess.run([sys.executable, str(REPO / "main.py"), *flags, "--data-dir", str(data_dir), "--no-download",
                        "--device", "cpu", "--out", str(folder)], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = json.loads((folder / "metrics.json").read_text())
    return {key: metrics[key] for key in ("source_test_acc", "target_test_acc", "label_free", "unsure_below",
                                          "history")}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="a folder holding mnist/ and mnist_m/")
    p.add_argument("--out", type=Path, required=True, help="the runs' folder; numbers.json is written there")
    p.add_argument("--compare", type=Path, default=None, help="another numbers.json that must be equal")
    args = p.parse_args()
    numbers = {name: train(name, flags, args.out, args.data_dir) for name, flags in RUNS.items()}
    outputs.save(json.dumps(numbers, indent=1, sort_keys=True), args.out / "numbers.json")
    print(f"{args.out / 'numbers.json'}: " + ", ".join(f"{n} {v['target_test_acc']:.4f}" for n, v in numbers.items()))
    if args.compare:
        theirs = json.loads(args.compare.read_text())
        differ = [name for name in numbers if numbers[name] != theirs.get(name)]
        print("identical to " + str(args.compare) if not differ else f"DIFFERENT from {args.compare}: {differ}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
