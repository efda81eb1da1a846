"""Train DANN (Ganin & Lempitsky 2015) on a labelled source and an unlabelled target domain.

    python main.py                                        # SVHN -> MNIST, the paper's recipe
    python main.py --source mnist --target mnist_m        # MNIST -> MNIST-M
    python main.py --mode source-only                     # the paper's lower bound
    python main.py --resume runs/svhn-mnist-dann-...      # continue an interrupted run

Writes a run folder: config.json, checkpoint.pt (every --save-every epochs and at the end;
Ctrl-C saves too), TensorBoard curves, and metrics.json with the final model's accuracies.
The engine is training.py, the methods' losses methods.py; see README, 'How the code is organised'.
"""
import argparse
from pathlib import Path

import training
from data import run_script


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = training.add_flags(p)["run"]
    run.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<source>-<target>-<mode>-<time>)")
    run.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="continue the run in DIR from its last checkpoint, with its settings (--device may change)")
    args = p.parse_args(argv)
    try:
        args.config = training.Config.from_flags(args)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.resume:
        return training.train(training.resumed_config(args.resume, args.device), args.resume, resume=True)
    return training.train(args.config, training.new_run_folder(args.config, args.out))


if __name__ == "__main__":
    run_script(main)  # Ctrl-C outside the loop (loading, evaluating): nothing to save
