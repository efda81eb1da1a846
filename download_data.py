"""Fetch the digit datasets into ./data (or --root / $DANN_DATA_DIR), verified by checksum.

    python download_data.py                               # MNIST and SVHN from the official sources
    python download_data.py --datasets mnist mnist_m usps
    python download_data.py --from /mnt/copies            # import local copies instead (offline machines)
    python download_data.py --datasets synth              # render the synthetic digits here (synth.py)

Every file is checked against its checksums in the table of built-in domains (dann/domains.py).
A valid file already in place is skipped, a corrupt one is fetched again. Downloads resume after
an interruption (HTTP Range), fall back to the next mirror on an error and land by atomic rename.
"""
from dann.cli import one_line_errors, run_script

one_line_errors()  # first: Ctrl-C, or a torchvision that does not fit torch, while they load

import argparse
from pathlib import Path

from dann.common import UserError
from dann.datasets import ensure_datasets, export, fetch
from dann.domains import DOMAINS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=DOMAINS, default=["mnist", "svhn"], metavar="NAME",
                   help=f"datasets to fetch, any of: {' '.join(DOMAINS)} (default: mnist svhn); synth is rendered "
                        "on this machine from the fonts matplotlib ships, no network needed (see synth.py)")
    p.add_argument("--synth-size", type=int, default=None, metavar="N",
                   help="synth: render N training pictures (default: 100000, or keep the file there; the test set "
                        "is always the same 10000)")
    p.add_argument("--root", type=Path, default=None,
                   help="folder to put them in (default: $DANN_DATA_DIR, else ./data)")
    p.add_argument("--from", dest="source_dir", type=Path, default=None, metavar="DIR",
                   help="import local copies found anywhere under DIR (same file names as the "
                        "official downloads) instead of using the network")
    p.add_argument("--export", type=Path, default=None, metavar="DIR",
                   help="then write each dataset as a folder of pictures, DIR/<name>/train|test/<class>/*.png: the "
                        "layout main.py reads a folder domain in (see README, 'Adapt to your own pictures')")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="with --export: the first N pictures of each split only")
    p.add_argument("--unlabelled", action="store_true",
                   help="with --export: the training pictures only, directly in DIR/<name>-unlabelled/ with no "
                        "class folders: an unlabelled domain, like a folder of your own pictures")
    args = p.parse_args(argv)
    if args.limit is not None and (args.limit < 1 or not args.export):
        p.error("--limit takes a number of at least 1, with --export")
    if args.unlabelled and not args.export:
        p.error("--unlabelled goes with --export")
    if args.synth_size is not None and (args.synth_size < 1 or "synth" not in args.datasets):
        p.error("--synth-size takes a number of at least 1, with --datasets synth")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.source_dir and not args.source_dir.is_dir():
        raise UserError(f"--from {args.source_dir}: no such folder")
    if args.export and not args.source_dir:  # exporting needs the files present, not fetched again
        ensure_datasets(args.datasets, args.root)
        export(args.datasets, args.root, args.export, args.limit, args.unlabelled)
        return
    fetch(args.datasets, args.root, args.source_dir, synth_size=args.synth_size)
    if args.export:
        export(args.datasets, args.root, args.export, args.limit, args.unlabelled)


if __name__ == "__main__":
    run_script(main, interrupted="interrupted: partial downloads are kept as .part files and resume on the next run")
