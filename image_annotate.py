"""Read the digit in pictures with a trained DANN and write annotated copies.

    python image_annotate.py -f images/sample_7.png
    python image_annotate.py -f a.jpg b.png -f photos/ --checkpoint runs/X/checkpoint.pt

Each picture is prepared exactly as the training images were (data.picture_to_digit):
any mode PIL reads (RGB, RGBA, grey, palette, 16-bit, CMYK), EXIF rotation applied,
padded to a square and resized to 28 x 28. The annotated copy is <name>_annotated.png,
beside the picture or in --out-dir. A file that cannot be read is reported and skipped;
the exit code is 1 when any file failed.
"""
import argparse
import os
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from data import UserError, make_folder, picture_to_digit
from models import load_checkpoint, resolve_checkpoint

DISPLAY_HEIGHT = 224


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--file", dest="files", type=Path, nargs="+", action="extend", required=True, metavar="PATH",
                   help="picture(s) or folder(s) of pictures; may be repeated")
    p.add_argument("--checkpoint", default=None, metavar="PATH|URL",
                   help="trained model (default: the latest runs/*/checkpoint.pt)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of a --checkpoint URL's file")
    p.add_argument("--out-dir", type=Path, default=None, help="where to write the annotated copies (default: beside each picture)")
    p.add_argument("--show", action="store_true", help="also open each annotated copy in a window, when a display exists")
    return p.parse_args(argv)


def expand(paths):
    """Files as given; folders -> the pictures directly inside them, sorted."""
    picture_suffixes = set(Image.registered_extensions())
    for path in paths:
        if path.is_dir():
            pictures = sorted(p for p in path.iterdir()
                              if p.suffix.lower() in picture_suffixes and not p.stem.endswith("_annotated"))
            yield from pictures or [path]  # an empty folder is reported by process()
        else:
            yield path


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


def process(path, model, out_dir):
    if path.is_dir():
        raise UserError(f"{path}: a folder with no pictures in it")
    try:
        with Image.open(path) as picture:
            shown = ImageOps.exif_transpose(picture)  # the same upright picture is read and drawn
            digit = picture_to_digit(shown)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UserError(f"{path}: cannot read it as a picture ({type(e).__name__}: {e})") from None
    with torch.no_grad():
        probs = model.predict_proba(digit[None])[0]
    out = (out_dir or path.parent) / f"{path.stem}_annotated.png"
    make_folder(out.parent)
    tmp = out.with_name(f".{out.name}.tmp.png")
    annotate(shown, probs).save(tmp)
    tmp.replace(out)
    return probs, out


def main(argv=None):
    args = parse_args(argv)
    model, _ = load_checkpoint(resolve_checkpoint(args.checkpoint, args.sha256))
    failures = 0
    for path in expand(args.files):
        try:
            probs, out = process(path, model, args.out_dir)
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
    try:
        sys.exit(main())
    except UserError as e:
        sys.exit(f"error: {e}")
