"""Read the digit in pictures with a trained DANN and write annotated copies.

    python image_annotate.py -f paper_handwritten_3.jpg     # a bare name is also looked for in images/
    python image_annotate.py -f a.jpg b.png -f photos/ --checkpoint runs/X/checkpoint.pt
    python image_annotate.py --list                      # the bundled models

With no --checkpoint the model is the latest finished run under runs/, or before any training the
bundled default, the best reader of photographed digits (synth -> MNIST-M, README 'Pretrained
models'); the first line printed says which. Each picture is prepared
exactly as the training images were (data.picture_to_digit): any mode PIL reads (RGB, RGBA,
grey, palette, 16-bit, CMYK), EXIF rotation applied, padded to a square and resized to 28 x 28.
A reading whose top probability is below the model's threshold (reached by 95% of its own source
test digits) is marked "not sure": a picture that holds no digit, or one unlike any it learnt.
The annotated copy is <name>_annotated.png: beside the picture, in annotated/ for pictures inside
this repository, or in --out-dir. A file that cannot be read, or is too large to read safely, is
reported in one line and skipped; the exit code is 1 when any file failed.
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

from common import REPO, UserError, run_script, write_atomic  # first: Ctrl-C while torch loads is one line

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from checkpoints import (add_checkpoint_flags, class_names, format_bundled, load_checkpoint, resolve_checkpoint,
                         unfinished, unsure_below)
from data import DIGITS, eight_bit, picture_to_digit

DISPLAY_HEIGHT = 224
DISPLAY_WIDTH = 4 * DISPLAY_HEIGHT  # at most: a picture of extreme shape is shown smaller, not wider
IMAGES_DIR = REPO / "images"
OWN_FOLDER = Path("annotated")  # for pictures inside the repository, which should not fill up with copies


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


def expand(paths):
    """-f arguments -> (picture, the folder its annotated copy goes to under --out-dir).
    Folders give their pictures, subfolders included, sorted; earlier annotated copies are
    left out. A bare name that is not here is looked for in images/, where the example pictures are."""
    picture_suffixes = set(Image.registered_extensions())
    for path in paths:
        if not path.exists() and path.name == str(path) and (IMAGES_DIR / path).exists():
            path = IMAGES_DIR / path
        if path.is_dir():
            pictures = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in picture_suffixes
                              and not p.stem.endswith("_annotated"))
            yield from [(p, p.parent.relative_to(path)) for p in pictures] or [(path, Path())]  # empty: process() says so
        else:
            yield path, Path()


def annotate(picture, probs, sure, names=DIGITS):
    """The picture scaled to DISPLAY_HEIGHT (or narrower), with the top-3 predictions below it."""
    picture = eight_bit(picture)  # 16-bit grey keeps its levels, as the model saw them
    scale = min(DISPLAY_HEIGHT / picture.height, DISPLAY_WIDTH / picture.width)
    resample = Image.NEAREST if scale >= 2 else Image.LANCZOS  # keep small digits crisp
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), resample)
    top = probs.topk(min(3, len(probs)))
    width = max(picture.width, 224)
    canvas = Image.new("RGB", (width, DISPLAY_HEIGHT + 56), "white")
    canvas.paste(picture, ((width - picture.width) // 2, (DISPLAY_HEIGHT - picture.height) // 2))
    draw = ImageDraw.Draw(canvas)
    best = names[top.indices[0].item()]
    reading = (f"digit {best}" if names == DIGITS else best) if sure else f"not sure: {best}?"
    draw.text((8, DISPLAY_HEIGHT + 4), f"{reading} ({top.values[0].item():.0%})",
              fill="black" if sure else "firebrick", font=ImageFont.load_default(size=24))
    runner_up = ", ".join(f"{names[i]}: {v:.1%}" for i, v in zip(top.indices[1:].tolist(), top.values[1:].tolist()))
    draw.text((8, DISPLAY_HEIGHT + 34), f"then {runner_up}", fill="dimgray", font=ImageFont.load_default(size=14))
    return canvas


def has_display():
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def read_picture(path):
    """-> (the upright picture, the 28 x 28 digit the model reads), or UserError in one line."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between 89M and 179M pixels; both are refused, before decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                shown = ImageOps.exif_transpose(picture)  # the same upright picture is read and drawn
                return shown, picture_to_digit(shown)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: more than {Image.MAX_IMAGE_PIXELS:,} pixels, too large to read safely; "
                        "crop or shrink it first") from None
    except FileNotFoundError:
        raise UserError(f"{path}: cannot read it as a picture (no such file; a bare name is also looked for "
                        f"in {IMAGES_DIR})") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as e:  # PIL's errors for bad files
        raise UserError(f"{path}: cannot read it as a picture ({type(e).__name__}: {e})") from None


def copy_folder(path, subfolder, out_dir):
    """Where the annotated copy of `path` goes: --out-dir, else annotated/ for a picture inside the
    repository, else beside the picture."""
    if out_dir:
        return out_dir / subfolder
    if path.resolve().is_relative_to(REPO):
        return OWN_FOLDER / subfolder
    return path.parent


def process(path, subfolder, model, out_dir, threshold, names):
    """Read one picture -> (probabilities, whether the reading is sure, the annotated copy's path)."""
    if path.is_dir():
        raise UserError(f"{path}: a folder with no pictures in it, subfolders included")
    shown, digit = read_picture(path)
    with torch.no_grad():
        probs = model.predict_proba(digit[None])[0]
    sure = threshold is None or probs.max().item() >= threshold
    out = copy_folder(path, subfolder, out_dir) / f"{path.stem}_annotated.png"
    write_atomic(out, lambda tmp: annotate(shown, probs, sure, names).save(tmp, format="PNG"))
    return probs, sure, out


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print(format_bundled())
        return 0
    path, why = resolve_checkpoint(args.checkpoint, args.sha256)
    model, ckpt = load_checkpoint(path)
    note, threshold, names = unfinished(ckpt, path), unsure_below(ckpt, path), class_names(ckpt)
    marks = (f"not sure below a top probability of {threshold:.3f}" if threshold is not None
             else "no 'not sure' threshold in this checkpoint")
    print(f"model: {path} ({why}{'; ' + note if note else ''}); {marks}")
    failures = 0
    for path, subfolder in expand(args.files):
        try:
            probs, sure, out = process(path, subfolder, model, args.out_dir, threshold, names)
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
