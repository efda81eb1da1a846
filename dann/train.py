"""Train DANN (Ganin & Lempitsky 2015) on a labelled source and an unlabelled target domain.

    python main.py                                        # SVHN -> MNIST, the paper's recipe
    python main.py --source mnist --target mnist_m        # MNIST -> MNIST-M
    python main.py --method source-only                   # the paper's lower bound
    python main.py --resume runs/svhn-mnist-dann-...      # continue an interrupted run
    python main.py --source mnist --target mnist_m --seeds 0 1 2   # a results row: mean +- std of 3 seeds
    python main.py --source mnist --target mnist_m --method dirt-t --init runs/row/seed{seed} --seeds 0 1 2
                                                          # DIRT-T's refinement of each seed's run in runs/row

Writes a run folder: config.json, checkpoint.pt (every --save-every epochs and at the end;
Ctrl-C saves too), TensorBoard curves, and metrics.json with the final model's accuracies.
`python -m dann.train` is the same command from any folder once the package is installed (`pip
install .`); a sweep launches its runs so. The settings are dann/config.py's, the engine
dann/training.py, the methods' losses dann/methods.py; see README, 'How the code is organised'.
"""
if __name__ == "__main__":  # python -m dann.train: as main.py does, before torch loads
    from dann.cli import one_line_errors
    one_line_errors()

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dann import launchers, outputs, runs, sweep, training
from dann.cli import parsed_config, run_script
from dann.config import Config, add_flags, flag_name


def parse_args(argv=None):
    # named as it was called: main.py, or the package's module rather than its file name
    prog = "python -m dann.train" if Path(sys.argv[0]).resolve() == Path(__file__).resolve() else None
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = add_flags(p)["run"]
    run.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<source>-<target>-<method>-<time>)")
    run.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="continue the run in DIR from its last checkpoint, with its settings (--device may change)")
    run.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                     help="one run per seed, one after another, in <out>/seed<S>/; then the mean +- std of their "
                          "final accuracies, printed and written to <out>/summary.json")
    launchers.add_flags(p, run, jobs_default="one after another, in this process")
    args = p.parse_args(argv)
    launchers.check_flags(p, args)
    if (args.jobs is not None or args.cluster is not None) and not args.seeds:
        p.error("--jobs and --cluster place the runs of --seeds; give --seeds (or train one run without them)")
    if args.seeds and args.seed != 0:
        p.error("--seed and --seeds: give one of them")
    if args.seeds and args.resume:
        p.error("--resume continues one run; resume each seed's folder on its own (<out>/seed<S>)")
    args.config = parsed_config(p, args)
    changed = [flag_name(f.name) for f in dataclasses.fields(Config)
               if f.name != "device" and getattr(args.config, f.name) != getattr(Config(), f.name)]
    if args.resume and (changed or args.out):
        p.error(f"--resume continues a run with the settings it started with; leave out {' '.join(changed or ['--out'])} "
                "(only --device may change), or start a new run with them")
    return args


def main(argv=None):
    """The run's metrics (a row's summary with --seeds); 1 when Ctrl-C or SIGTERM stopped it, so
    that `main.py && valid.py` goes no further."""
    args = parse_args(argv)
    if args.resume:
        result = training.train(runs.resumed_config(args.resume, args.device), args.resume, resume=True)
    elif args.seeds:
        out = runs.new_run_folder(args.config, args.out, kind="row")
        outputs.refuse_foreign([out / SUMMARY], "choose another --out")
        placed = args.jobs is not None or args.cluster is not None
        result = train_seeds(args.config, args.seeds, out, launchers.from_flags(args) if placed else None)
    else:
        result = training.train(args.config, runs.new_run_folder(args.config, args.out))
    return 1 if result is None else result


SUMMARY = "summary.json"


def train_seeds(cfg, seeds, out, place=None):
    """Each seed's run, in this process one after another, or as main.py processes through `place`
    (--jobs, --cluster); then the row's summary, or None when a run did not finish (it is saved)."""
    configs = {seed: dataclasses.replace(cfg, seed=seed, init=cfg.init and cfg.init.replace("{seed}", str(seed)))
               for seed in seeds}
    if place is not None:
        finished = sweep.train_copies(configs, out, place)
        if finished is None:
            return None
    else:
        outputs.claim_folder(out, "row")  # so that --jobs or --cluster may continue it
        finished = []
        for seed, seed_cfg in configs.items():
            metrics = training.train(seed_cfg, runs.new_run_folder(seed_cfg, out / f"seed{seed}"))
            if metrics is None:  # Ctrl-C: that run is saved; the others wait
                return None
            finished.append(metrics)
    summary = training.seed_summary(finished, cfg)
    outputs.save(json.dumps(summary, indent=2), out / SUMMARY)
    print(summary["line"])
    return summary


if __name__ == "__main__":
    run_script(main)  # Ctrl-C outside the loop (loading, evaluating): nothing to save
