"""Read the digit in pictures with a trained DANN and write annotated copies.

    python image_annotate.py -f paper_handwritten_3.jpg --out-dir annotated/   # a bare name is also looked for in images/
    python image_annotate.py -f a.jpg b.png -f photos/ --checkpoint runs/X/checkpoint.pt
    python image_annotate.py --list                      # the bundled models

With no --checkpoint the model is the latest run under runs/, or the bundled MNIST -> MNIST-M
DANN before any training; the first line printed says which. Each picture is prepared exactly
as the training images were (data.picture_to_digit): any mode PIL reads (RGB, RGBA, grey,
palette, 16-bit, CMYK), EXIF rotation applied, padded to a square and resized to 28 x 28.
The annotated copy is <name>_annotated.png, beside the picture or in --out-dir. A file that
cannot be read, or is too large to read safely, is reported in one line and skipped; the
exit code is 1 when any file failed.
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from checkpoints import add_checkpoint_flags, format_bundled, load_checkpoint, resolve_checkpoint
from common import UserError, run_script, write_atomic
from data import picture_to_digit

DISPLAY_HEIGHT = 224
IMAGES_DIR = Path(__file__).resolve().parent / "images"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--file", dest="files", type=Path, nargs="+", action="extend", default=[], metavar="PATH",
                   help="picture(s), or folder(s) whose pictures are read, subfolders included; may be repeated. "
                        "A bare file name that is not in the current folder is also looked for in images/")
    add_checkpoint_flags(p)
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where to write the annotated copies, a folder's subfolders kept (default: beside each picture)")
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


def annotate(picture, probs):
    """The picture enlarged, with the top-3 predictions written in a band below it."""
    picture = picture.convert("RGB")
    scale = DISPLAY_HEIGHT / picture.height
    resample = Image.NEAREST if scale >= 2 else Image.LANCZOS  # keep small digits crisp
    picture = picture.resize((max(1, round(picture.width * scale)), DISPLAY_HEIGHT), resample)
    top = probs.topk(3)
    width = max(picture.width, 224)
    canvas = Image.new("RGB", (width, DISPLAY_HEIGHT + 56), "white")
    canvas.paste(picture, ((width - picture.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, DISPLAY_HEIGHT + 4), f"digit {top.indices[0].item()} ({top.values[0].item():.0%})",
              fill="black", font=ImageFont.load_default(size=24))
    runner_up = ", ".join(f"{i}: {v:.1%}" for i, v in zip(top.indices[1:].tolist(), top.values[1:].tolist()))
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


def process(path, subfolder, model, out_dir):
    if path.is_dir():
        raise UserError(f"{path}: a folder with no pictures in it, subfolders included")
    shown, digit = read_picture(path)
    with torch.no_grad():
        probs = model.predict_proba(digit[None])[0]
    out = (out_dir / subfolder if out_dir else path.parent) / f"{path.stem}_annotated.png"
    write_atomic(out, lambda tmp: annotate(shown, probs).save(tmp, format="PNG"))
    return probs, out


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print(format_bundled())
        return 0
    path, why = resolve_checkpoint(args.checkpoint, args.sha256)
    model, _ = load_checkpoint(path)
    print(f"model: {path} ({why})")
    failures = 0
    for path, subfolder in expand(args.files):
        try:
            probs, out = process(path, subfolder, model, args.out_dir)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failures += 1
            continue
        top = probs.topk(3)
        print(f"{path}: {top.indices[0].item()}  (top-3: "
              + ", ".join(f"{i} {v:.3f}" for i, v in zip(top.indices.tolist(), top.values.tolist())) + f")  -> {out}")
        if args.show and has_display():
            Image.open(out).show()
    if args.show and not has_display():
        print("--show: no display found; open the annotated files instead", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    run_script(main)
