"""Read the digit in pictures with a trained DANN and write annotated copies.

    python image_annotate.py -f paper_handwritten_3.jpg     # a bare name is also looked for in images/
    python image_annotate.py -f a.jpg b.png -f photos/ --checkpoint runs/X/checkpoint.pt
    python image_annotate.py --list                      # the bundled models

With no --checkpoint the model is the latest finished run under runs/, or before any training the
bundled default (self-ensembling from MNIST and synth to MNIST-M, README 'Pretrained models');
the first line printed says which, and --list says it too. Each picture is prepared
exactly as the training images were (dann/pictures.py): any mode PIL reads (RGB, RGBA, grey,
palette, 16-bit, CMYK), EXIF rotation applied, padded to a square and resized to 28 x 28. The
chance shown is the model's calibrated probability (dann/trust.py); a reading below the model's
threshold (where the sure readings of its own target pictures are estimated 99% right) or below
.5 is marked "not sure": often a wrong reading, a picture that holds no digit, or one unlike any
it learnt. The annotated copy is <picture file name>.<model>.annotated.png, one per picture and
model (a bundled model's name, else the run's name and a short id of where its checkpoint is),
beside the picture (in annotated/ for pictures inside this repository) or in --out-dir, where two
pictures of one name from two folders each get their folder's name as a subfolder; a file that
this project did not write is never replaced. A file that cannot be read, or is
too large to read safely, is reported in one line and skipped; the exit code is 1 when any failed.
"""
from dann.cli import one_line_errors, run_script

one_line_errors()  # first: Ctrl-C, or a torchvision that does not fit torch, while they load

import argparse
import sys
from pathlib import Path

from PIL import Image

from dann.annotate import destinations, expand, has_display, model_tag, process
from dann.checkpoints import class_names, load_checkpoint
from dann.runs import unfinished
from dann.common import UserError
from dann.pretrained import model_trust
from dann.trust import SURE_FLOOR, sure_at
from dann.fonts import drawable
from dann.pretrained import add_checkpoint_flags, format_bundled, resolve_checkpoint


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--file", dest="files", type=Path, nargs="+", action="extend", default=[], metavar="PATH",
                   help="picture(s), or folder(s) whose pictures are read, subfolders included; may be repeated. "
                        "A bare file name that is not in the current folder is also looked for in images/")
    add_checkpoint_flags(p)
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where to write the annotated copies, a folder's subfolders kept (default: beside each "
                        "picture; annotated/ for pictures inside this repository)")
    p.add_argument("--show", action="store_true", help="also open each annotated copy in a window, when a display exists")
    args = p.parse_args(argv)
    if not args.files and not args.list:
        p.error("the following arguments are required: -f/--file")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print(format_bundled())
        return 0
    checkpoint, why = resolve_checkpoint(args.checkpoint, args.sha256)
    model, ckpt = load_checkpoint(checkpoint)
    note, trust, names = unfinished(ckpt, checkpoint), model_trust(ckpt, checkpoint), class_names(ckpt)
    threshold = trust["unsure_below"]
    marks = f"not sure below a calibrated chance of {sure_at(threshold):.4f}" + (
        "" if threshold is not None and threshold >= SURE_FLOOR else
        f" (the floor{'; no threshold of its own in this checkpoint' if threshold is None else ''})") + (
        f"; chances calibrated at temperature {trust['temperature']:g}" if trust["temperature"] != 1.0 else "")
    print(f"model: {checkpoint} ({why}{'; ' + note if note else ''}); {marks}")
    numbered = drawable(tuple(names))[2]
    if numbered:
        print(numbered)
    failures = 0
    for path, out in destinations(expand(args.files), args.out_dir, model_tag(checkpoint)):
        try:
            probs, sure = process(path, out, model, trust, names)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failures += 1
            continue
        except (MemoryError, RuntimeError) as e:  # a picture that decodes but cannot be processed: the batch goes on
            print(f"error: {path}: cannot process it ({type(e).__name__}); skipped", file=sys.stderr)
            failures += 1
            continue
        top = probs.topk(min(3, len(probs)))
        best = names[top.indices[0].item()]
        reading = best if sure else f"not sure ({best}?)"
        print(f"{path}: {reading}  (top-{len(top.values)}: "
              + ", ".join(f"{names[i]} {v:.3f}" for i, v in zip(top.indices.tolist(), top.values.tolist()))
              + f")  -> {out}")
        if args.show and has_display():
            Image.open(out).show()
    if args.show and not has_display():
        print("--show: no display found; open the annotated files instead", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    run_script(main)
