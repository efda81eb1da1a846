"""Reading the digit in a user's pictures: the pictures named (files, folders), the reading of
each (its top classes, and whether the model is sure), and the annotated copy written for it."""
import hashlib
import os
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from dann import outputs
from dann.common import REPO, UserError, shipped
from dann.domains import DIGITS
from dann.trust import calibrated, sure_at
from dann.fonts import drawable
from dann.pictures import UnreadablePicture, eight_bit, picture_suffixes, read_picture
from dann.pretrained import PRETRAINED_DIR

DISPLAY_HEIGHT = 224
DISPLAY_WIDTH = 4 * DISPLAY_HEIGHT  # at most: a picture of extreme shape is shown smaller, not wider
IMAGES_DIR = shipped("images")
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


def model_tag(checkpoint):
    """A short name for the model a checkpoint file holds: a bundled model's name, else a run
    folder's name (with its row for a --seeds run: row-seed0) or the file's own name, followed by
    a short id of where the file is, so that two models of one name (two sweeps' chosen/, two runs
    called run) never share their annotated copies."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.resolve() == PRETRAINED_DIR.resolve():
        return checkpoint.stem
    folder = checkpoint.parent
    name = checkpoint.stem if checkpoint.name != "checkpoint.pt" else \
        f"{folder.parent.name}-{folder.name}" if folder.name.startswith("seed") else folder.name
    return f"{name}-{hashlib.sha256(str(checkpoint.resolve()).encode()).hexdigest()[:6]}"


def annotated_name(picture, tag):
    """pencil_7.jpg read by model `tag` -> pencil_7.jpg.<tag>.annotated.png: one copy per picture file
    and model, so that a.jpg and a.png, or two models' readings, never replace each other."""
    return f"{Path(picture).name}.{tag}.annotated.png"


def is_annotated_copy_name(path):
    return path.name.endswith(".annotated.png") or path.stem.endswith("_annotated")  # the latter: older copies


def destinations(pictures, out_dir, tag):
    """[(picture, its annotated copy)] for expand()'s (picture, subfolder) pairs. Pictures that
    would share a copy (two IMG_0001.jpg from two folders into one --out-dir) each get a subfolder
    named after as much of their own folder's path as tells them apart."""
    planned = {path: copy_folder(path, sub, out_dir) / annotated_name(path, tag) for path, sub in pictures}
    clashing = [p for p, out in planned.items() if list(planned.values()).count(out) > 1]
    apart = outputs.distinct_names([p.resolve() for p in clashing], lambda p, parts: Path(*p.parts[-parts:]))
    for path in clashing:
        planned[path] = planned[path].parent / apart[path.resolve()].parent / planned[path].name
    return list(planned.items())


def annotated_before(path):
    """Whether `path` is an annotated copy image_annotate.py wrote before the project kept manifests:
    those carried this mark in their PNG "Software" field."""
    try:
        with Image.open(path) as existing:
            return existing.info.get("Software") == "image_annotate.py of dann"
    except (OSError, ValueError, SyntaxError):
        return False


def process(path, out, model, trust, names):
    """Read one picture -> (its calibrated probabilities, whether the reading is sure), and write its
    annotated copy `out`. trust: the model's {"temperature", "unsure_below"} (dann/trust.py)."""
    if path.is_dir():
        raise UserError(f"{path}: a folder with no pictures in it, subfolders included")
    try:
        shown, digit = read_picture(path)
    except UnreadablePicture as e:
        missing = f"; a bare name is also looked for in {IMAGES_DIR}" if not path.exists() else ""
        raise UserError(f"{path}: {e}{missing}") from None
    with torch.no_grad():
        probs = calibrated(model.predict_proba(digit[None]), trust["temperature"])[0]
    sure = probs.max().item() >= sure_at(trust["unsure_below"])
    outputs.adopt_marked(out, annotated_before)
    outputs.write(out, lambda tmp: annotate(shown, probs, sure, names).save(tmp, format="PNG"))
    return probs, sure
