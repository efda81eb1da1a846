"""Choose a method without target labels: train the candidate methods on one task, score each final
model on the unlabelled target training pictures, and recommend the one with the lowest class shift.

    python choose.py --source mnist --target mnist_m --limit 7000          # the default candidates, seed 0
    python choose.py --source my_pictures/labelled --target my_pictures/unlabelled --seeds 0 1 2
    python choose.py --source mnist --target mnist_m --candidates dann dirt-t --epochs 30

Candidates (--candidates): source-only, dann, dann-im, vada, dirt-t (DANN, then DIRT-T for half as
many epochs, from the DANN run of the same seed, which it shares), self-ensemble, adamatch. The
rule, fixed before any sweep was measured: the final model with the lowest class shift (how far its
predicted class mix on the target is from the source's label mix), a tie going to the lower entropy;
RESULTS.md, 'Choosing without labels', says how often it picked well. It assumes the target's class mix is the source's.

Writes <out>/<candidate>/seed<S>/ (main.py run folders), <out>/logs/, <out>/choice.json (every run,
its scores, the choice), <out>/chosen/ (the chosen model: valid.py and image_annotate.py use it by
default, or with --checkpoint <out>/chosen) and, with two or more finished candidates, <out>/ensemble/
(one model whose prediction is the mean of all of theirs: --checkpoint <out>/ensemble; on the sweeps of
RESULTS.md it was more accurate than the choice on average, and never below source-only). The same
command continues a stopped sweep: finished runs are not trained again. Target labels, where the
target has them, are only reported.
"""
from dann.cli import one_line_errors, parsed_config, run_script

one_line_errors()  # first: Ctrl-C, or a torchvision that does not fit torch, while they load

import argparse
import contextlib
import json
import shlex
from pathlib import Path

import torch

from dann import datasets, launchers, outputs, sweep, training
from dann.common import UserError
from dann.config import add_flags
from dann.domains import is_folder, source_parts
from dann.scores import ALL_SCORES


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = add_flags(p, without=("method", "init", "seed"))["run"]
    run.add_argument("--candidates", nargs="+", default=list(sweep.DEFAULT_CANDIDATES), choices=sweep.CANDIDATES,
                     metavar="NAME", help="methods to train and choose from: " + ", ".join(sweep.CANDIDATES) +
                     f" (default: {' '.join(sweep.DEFAULT_CANDIDATES)})")
    run.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S",
                     help="train every candidate with each seed; the rule chooses among all the final models "
                          "(default: 0)")
    run.add_argument("--out", type=Path, default=None,
                     help="the sweep's folder (default: runs/choose-<source>-<target>); the same --out continues it")
    run.add_argument("--no-train", action="store_true",
                     help="train nothing: score and choose among the runs of the sweep that finished already "
                          "(an older sweep is scored again with today's scores)")
    launchers.add_flags(p, run)
    args = p.parse_args(argv)
    launchers.check_flags(p, args)
    args.config = parsed_config(p, args)
    args.out = args.out or Path("runs") / f"choose-{short_name(args.config.source)}-{short_name(args.config.target)}"
    return args


def short_name(domain):
    """A domain as a folder name: a built-in name, or a folder's own name."""
    return Path(domain).name or "folder"


def print_table(runs, chosen, labelled):
    """One row per run: its label-free scores (the rule's first), its target accuracy where known."""
    titles = {name: score.column for name, score in ALL_SCORES.items()}
    columns = [*sweep.RULE_SCORES, *(name for name in titles if name not in sweep.RULE_SCORES)]
    widths = [max(8, len(titles[name]) + 2) for name in columns]
    header = f"{'candidate':<14}{'seed':>5}" + "".join(f"{titles[n]:>{w}}" for n, w in zip(columns, widths))
    print(header + (f"{'target test':>13}" if labelled else "") + "   status")
    for r in runs:
        s = r.scores
        line = f"{r.candidate:<14}{r.seed:>5}"
        line += "".join(f"{'-' if s.get(n) is None else format(s[n], '.4f'):>{w}}" for n, w in zip(columns, widths)) \
            if s else " " * sum(widths)
        if labelled:
            line += f"{r.metrics['target_test_acc']:>13.4f}" if r.metrics else " " * 13
        mark = "  <- chosen" if r is chosen else "" if r.eligible else "  (not a candidate: what a candidate refines)"
        print(f"{line}   {r.status}{': ' + r.note if r.note else ''}{mark}")


def main(argv=None):
    args = parse_args(argv)
    runs = sweep.plan(args.config, args.candidates, args.seeds, args.out)
    sweep.check_out(args.out, runs, args.no_train)
    left = sum(r.status != "done" for r in runs)
    place = launchers.from_flags(args)
    if left and not args.no_train:
        place.open()  # a cluster that does not answer, or cannot hold a run, is refused before the folder is made
    outputs.claim_folder(args.out, "sweep")
    with contextlib.closing(place):
        print(f"{len(runs)} runs in {args.out}: {len(runs) - left} finished already, {left} "
              + ("left untrained (--no-train)" if args.no_train else f"to train, {place.describe()}")
              + f". Rule: {sweep.RULE}.")
        if left and not args.no_train:  # fetched (or rendered) once here, not by two main.py processes at once
            datasets.ensure_datasets([d for d in (*source_parts(args.config.source), args.config.target)
                                      if not is_folder(d)], args.config.data_dir, not args.config.no_download)
        stopped = not args.no_train and (not sweep.run_all(runs, place, args.out / "logs")
                                         or any(r.status == "stopped" for r in runs))
    threads = place.threads
    chosen = ensemble = None
    if not stopped:
        sets = training.load_data(args.config, torch.device("cpu"))
        sweep.score_all(runs, sets)
        chosen = sweep.choose(runs)
        ensemble = sweep.share_ensemble(runs, sets, args.out / "ensemble")  # before chosen/, the newest run
    labelled = any(r.metrics and r.metrics["target_test_acc"] is not None for r in runs)
    print_table(runs, chosen, labelled)
    outputs.save(json.dumps(sweep.report(runs, chosen, threads, ensemble), indent=2), args.out / sweep.CHOICE)
    if stopped:
        print(f"stopped; every run is saved. Continue with the same command (--out {shlex.quote(str(args.out))}).")
        return 1
    if chosen is None:
        raise UserError(f"no candidate in {args.out} has finished; train them: the same command without --no-train"
                        if args.no_train else f"no candidate finished; see the logs in {args.out / 'logs'}")
    sweep.share_chosen(chosen, args.out / "chosen")
    estimate, how = sweep.estimated_accuracy(chosen)
    print(f"chosen: {chosen.name} (class shift {chosen.scores['class_shift']:.4f}; estimated target accuracy "
          f"{estimate:.4f}, {how}), copied to {args.out / 'chosen'}: python valid.py --checkpoint {args.out / 'chosen'}")
    if ensemble is not None:
        print(f"also offered: the ensemble of the {len(ensemble['members'])} finished candidates (the mean of their "
              f"predictions; estimated accuracy {ensemble['label_free']['estimated_accuracy']:.4f}): python valid.py "
              f"--checkpoint {args.out / 'ensemble'}")
    best = sweep.most_accurate(runs)
    if best is not None:
        print(f"target test accuracy, read only to report: chosen {chosen.metrics['target_test_acc']:.4f}, "
              f"most accurate {best.name} {best.metrics['target_test_acc']:.4f}"
              + (f", ensemble {ensemble['target_test_acc']:.4f}" if ensemble else ""))
    untrained = [r.name for r in runs if r.status in ("to train", "to resume")]  # left so by --no-train
    if untrained:
        print(f"not trained (--no-train): {', '.join(untrained)}; chosen among the finished runs")
    failed = [r.name for r in runs if r.status in ("failed", "skipped")]
    if failed:
        print(f"not finished: {', '.join(failed)}; chosen among the others")
        return 1
    return 0


if __name__ == "__main__":
    run_script(main)
