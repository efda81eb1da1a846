"""Add a finished run's final model to the bundled models (for maintainers).

    python -m dann.bundle runs/X --name mnist-mnist_m-dann --commit a36932a [--default]
    python -m dann.bundle --remeasure mnist-mnist_m-dann ...    # measure bundled models again

Writes pretrained/<name>.pt (the checkpoint without optimizer, RNG state or history), measures
its source and target test accuracy as valid.py does and the share of its target test pictures
it marks "not sure", and records them with the file's sha256, the run's settings and the command
that reproduces it in pretrained/registry.json. --remeasure measures bundled models again (after
a measurement was added), their calibration and "not sure" threshold included (dann/trust.py),
without touching their files.
"""
import argparse
import hashlib
import json
import re
from pathlib import Path

import torch

from dann import pretrained, runs
from dann.checkpoints import class_names, load_checkpoint, weights_only
from dann.cli import run_script
from dann import outputs, trust
from dann.common import UserError
from dann.config import Config
from dann.domains import source_parts
from dann.evaluation import test_reports


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a file name in pretrained/, never a path


def check_bundle(run, name, replace):
    """Before anything is written: a finished run, a plain name, and --replace for a name in use."""
    if not NAME.fullmatch(name) or name.endswith(".pt"):
        raise UserError(f"--name {name!r}: a plain name of letters, digits and . _ + - (no path, no .pt), "
                        "e.g. mnist-mnist_m-dann")
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder; give the folder main.py trained into")
    if runs.status(run) != "finished":
        raise UserError(f"{run}: no metrics.json, so the run has not finished; bundle finished runs only")
    known = pretrained.bundled_models()["models"] if pretrained.REGISTRY.is_file() else {}
    if name in known and not replace:
        raise UserError(f"--name {name}: a bundled model has that name already; give --replace to replace it, or "
                        "another name")
    outputs.refuse_foreign([pretrained.PRETRAINED_DIR / f"{name}.pt", pretrained.REGISTRY],
                           "move it, or choose another --name")


def bundle(run, name, commit, make_default, data_dir, replace=False):
    check_bundle(run, name, replace)
    metrics = runs.read_metrics(run)
    cfg = Config.from_saved(metrics["config"], run / runs.METRICS)
    ckpt = torch.load(run / runs.CHECKPOINT, map_location="cpu", weights_only=True)
    path = pretrained.PRETRAINED_DIR / f"{name}.pt"
    outputs.save(weights_only(ckpt), path)
    registry = pretrained.bundled_models() if pretrained.REGISTRY.is_file() else {"default": name, "models": {}}
    registry["models"][name] = {
        "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "source": cfg.source, "target": cfg.target, "method": cfg.method, "arch": cfg.arch,
        "epochs": cfg.epochs, "seed": cfg.seed, "commit": commit, "command": cfg.command(),
        "wall_time_s": metrics["wall_time_s"], "device": metrics["device"],
        **({k: metrics[k] for k in ("temperature", "unsure_below")} if "temperature" in metrics  # a run from before
           else decided(path, data_dir))}
    registry["models"][name].update(measured(path, registry["models"][name], data_dir))
    if make_default:
        registry["default"] = name
    save_registry(registry, [name])


def measured(path, entry, data_dir):
    """A bundled file's test accuracies, as valid.py measures them, and on each test set the share
    image_annotate.py would mark "not sure" and the accuracy of the sure and not-sure readings."""
    model, shared = load_checkpoint(path)
    sources, target = source_parts(entry["source"]), entry["target"]
    results = test_reports(model, {**dict.fromkeys(sources, "source"), target: "target"}, class_names(shared),
                           data_dir, allow_download=False, trust=entry)
    right = sum(round(results[name]["accuracy"] * results[name]["images"]) for name in sources)
    return {"source_test_acc": right / sum(results[name]["images"] for name in sources),  # all sources' test pictures
            "target_test_acc": results[target]["accuracy"], "target_not_sure": round(results[target]["not_sure_share"], 4),
            "trust": {name: {k: None if r[k] is None else round(r[k], 4)
                             for k in ("not_sure_share", "sure_accuracy", "not_sure_accuracy")}
                      for name, r in results.items()}}


def decided(path, data_dir):
    """A bundled model's calibration and threshold (dann/trust.py), from the test pictures of the
    domain(s) whose labels it learnt and the training pictures of its target it adapted to."""
    from dann import datasets
    model, ckpt = load_checkpoint(path)
    cfg = Config.from_saved(ckpt["config"], path)
    labelled = [cfg.target] if cfg.method == "target-only" else source_parts(cfg.source)
    tests = datasets.load_datasets(labelled, ["test"], data_dir, allow_download=False)
    target = datasets.load_datasets([cfg.target], ["train"], data_dir, allow_download=False)[cfg.target, "train"][0]
    return trust.decide(model, datasets.joined([tests[name, "test"] for name in labelled]), target[:cfg.limit])


def remeasure(names, data_dir):
    registry = pretrained.bundled_models()
    for name in names:
        entry = registry["models"].get(name)
        if entry is None:
            raise UserError(f"no bundled model {name}; python valid.py --list shows them")
        entry.update(decided(pretrained.bundled_checkpoint(name), data_dir))
        entry.update(measured(pretrained.bundled_checkpoint(name), entry, data_dir))
    save_registry(registry, names)


def save_registry(registry, names):
    outputs.save(json.dumps(registry, indent=2) + "\n", pretrained.REGISTRY)
    outputs.record(pretrained.REGISTRY)  # the project's by its name: maintainers also edit it by hand
    for name in names:
        print(json.dumps({name: registry["models"][name]}, indent=2))


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m dann.bundle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, nargs="?", help="a finished run folder of main.py")
    p.add_argument("--name", help="the registry name, e.g. mnist-mnist_m-dann")
    p.add_argument("--commit", help="the commit whose main.py trained the run")
    p.add_argument("--remeasure", nargs="+", metavar="NAME", help="measure these bundled models again instead")
    p.add_argument("--default", action="store_true", help="make it the model used when there is no run under runs/")
    p.add_argument("--replace", action="store_true", help="replace the bundled model of that --name (never done without)")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default: $DANN_DATA_DIR, else ./data)")
    args = p.parse_args()
    if args.remeasure:
        run_script(lambda: remeasure(args.remeasure, args.data_dir))
    if not (args.run and args.name and args.commit):
        p.error("a run folder, --name and --commit are needed to bundle a run (or --remeasure NAME ...)")
    run_script(lambda: bundle(args.run, args.name, args.commit, args.default, args.data_dir, args.replace))
