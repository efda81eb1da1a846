"""Add a finished run's final model to the bundled models (for maintainers).

    python pretrained/bundle.py runs/X --name mnist-mnist_m-dann --commit a36932a [--default]

Writes pretrained/<name>.pt (the checkpoint without optimizer, RNG state or history), measures
its source and target test accuracy with valid.py, and records both with the file's sha256, the
run's settings and the command that reproduces it in pretrained/registry.json.
"""
import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import valid  # noqa: E402
from checkpoints import REGISTRY, weights_only  # noqa: E402
from common import UserError, run_script, save_atomic  # noqa: E402
from config import Config  # noqa: E402


def bundle(run, name, commit, make_default, data_dir):
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise UserError(f"{run}: no metrics.json, so the run has not finished; bundle finished runs only")
    metrics = json.loads(metrics_file.read_text())
    cfg = Config.from_saved(metrics["config"], metrics_file).as_dict()
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    path = HERE / f"{name}.pt"
    save_atomic(weights_only(ckpt), path)
    with tempfile.TemporaryDirectory() as figures, contextlib.redirect_stdout(sys.stderr):
        results = valid.main(["--checkpoint", str(path), "--json", "--no-download", "--out-dir", figures,
                              "--device", "cpu", *(["--data-dir", str(data_dir)] if data_dir else [])])
    if not isinstance(results, dict):
        raise UserError(f"valid.py could not evaluate {path} completely; see the lines above")
    registry = json.loads(REGISTRY.read_text()) if REGISTRY.is_file() else {"default": name, "models": {}}
    registry["models"][name] = {
        "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "source": cfg["source"], "target": cfg["target"], "method": cfg["method"], "arch": cfg["arch"],
        "epochs": cfg["epochs"], "seed": cfg["seed"], "commit": commit,
        "source_test_acc": results[cfg["source"]]["accuracy"], "target_test_acc": results[cfg["target"]]["accuracy"],
        "command": Config(**cfg).command(), "wall_time_s": metrics["wall_time_s"],
        "device": metrics["device"], "unsure_below": metrics.get("unsure_below")}
    if make_default:
        registry["default"] = name
    save_atomic(json.dumps(registry, indent=2) + "\n", REGISTRY)
    print(json.dumps(registry["models"][name], indent=2))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished run folder of main.py")
    p.add_argument("--name", required=True, help="the registry name, e.g. mnist-mnist_m-dann")
    p.add_argument("--commit", required=True, help="the commit whose main.py trained the run")
    p.add_argument("--default", action="store_true", help="make it the model used when there is no run under runs/")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default: $DANN_DATA_DIR, else ./data)")
    args = p.parse_args()
    run_script(lambda: bundle(args.run, args.name, args.commit, args.default, args.data_dir))
