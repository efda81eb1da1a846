"""Reading the digit in a user's pictures: the pictures named (files, folders), the reading of
each (its top classes, and whether the model is sure), and the annotated copy written for it."""
import os
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from dann.common import REPO, UserError, write_atomic
from dann.domains import DIGITS
from dann.evaluation import sure_at
from dann.fonts import drawable
from dann.pictures import UnreadablePicture, eight_bit, picture_suffixes, read_picture

DISPLAY_HEIGHT = 224
DISPLAY_WIDTH = 4 * DISPLAY_HEIGHT  # at most: a picture of extreme shape is shown smaller, not wider
IMAGES_DIR = REPO / "images"
OWN_FOLDER = Path("annotated")  # for pictures inside the repository, which should not fill up with copies


def expand(paths):
    """-f arguments -> (picture, the folder its annotated copy goes to under --out-dir).
    Folders give their pictures, subfolders included, sorted; earlier annotated copies are
    left out. A bare name that is not here is looked for in images/, where the example pictures are."""
    suffixes = picture_suffixes()
    for path in paths:
        if not path.exists() and path.name == str(path) and (IMAGES_DIR / path).exists():
            path = IMAGES_DIR / path
        if path.is_dir():
            pictures = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                              and not is_annotated_copy_name(p))
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
    font, labels, _ = drawable(tuple(names))
    best = labels[top.indices[0].item()]
    reading = (f"digit {best}" if tuple(names) == DIGITS else best) if sure else f"not sure: {best}?"
    draw.text((8, DISPLAY_HEIGHT + 4), f"{reading} ({top.values[0].item():.0%})",
              fill="black" if sure else "firebrick", font=ImageFont.truetype(font, 22))
    runner_up = ", ".join(f"{labels[i]}: {v:.1%}" for i, v in zip(top.indices[1:].tolist(), top.values[1:].tolist()))
    draw.text((8, DISPLAY_HEIGHT + 34), f"then {runner_up}", fill="dimgray", font=ImageFont.truetype(font, 13))
    return canvas


def has_display():
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def copy_folder(path, subfolder, out_dir):
    """Where the annotated copy of `path` goes: --out-dir, else annotated/ for a picture inside the
    repository, else beside the picture."""
    if out_dir:
        return out_dir / subfolder
    if path.resolve().is_relative_to(REPO):
        return OWN_FOLDER / subfolder
    return path.parent


MARK = "image_annotate.py of dann"  # in each annotated copy's PNG "Software" field: a file we may replace


def model_tag(checkpoint):
    """A short name for the model a checkpoint file holds: a bundled model's name, a run folder's
    name (with its row for a --seeds run: row-seed0), else the file's own name."""
    checkpoint = Path(checkpoint)
    if checkpoint.name != "checkpoint.pt":
        return checkpoint.stem
    folder = checkpoint.parent
    return f"{folder.parent.name}-{folder.name}" if folder.name.startswith("seed") else folder.name


def annotated_name(picture, tag):
    """pencil_7.jpg read by model `tag` -> pencil_7.jpg.<tag>.annotated.png: one copy per picture file
    and model, so that a.jpg and a.png, or two models' readings, never replace each other."""
    return f"{Path(picture).name}.{tag}.annotated.png"


def is_annotated_copy_name(path):
    return path.name.endswith(".annotated.png") or path.stem.endswith("_annotated")  # the latter: older copies


def check_replaceable(out):
    """An existing file at `out` is replaced only if it is an annotated copy this script wrote."""
    if not out.exists():
        return
    try:
        with Image.open(out) as existing:
            ours = existing.info.get("Software") == MARK
    except (OSError, ValueError, SyntaxError):
        ours = False
    if not ours:
        raise UserError(f"{out} exists and is not an annotated copy made by image_annotate.py; move it, or give "
                        "--out-dir")


def process(path, subfolder, model, out_dir, threshold, names, tag):
    """Read one picture -> (probabilities, whether the reading is sure, the annotated copy's path)."""
    if path.is_dir():
        raise UserError(f"{path}: a folder with no pictures in it, subfolders included")
    try:
        shown, digit = read_picture(path)
    except UnreadablePicture as e:
        missing = f"; a bare name is also looked for in {IMAGES_DIR}" if not path.exists() else ""
        raise UserError(f"{path}: {e}{missing}") from None
    with torch.no_grad():
        probs = model.predict_proba(digit[None])[0]
    sure = probs.max().item() >= sure_at(threshold)
    out = copy_folder(path, subfolder, out_dir) / annotated_name(path, tag)
    check_replaceable(out)
    marked = PngInfo()
    marked.add_text("Software", MARK)
    write_atomic(out, lambda tmp: annotate(shown, probs, sure, names).save(tmp, format="PNG", pnginfo=marked))
    return probs, sure, out
