"""Photograph-like digits that no training run saw, and what each model reads on them (README,
'Pretrained models'; RESULTS.md, 'Reading photographed digits'): the set by which image_annotate.py's
default model is chosen, rather than by any dataset's test labels.

    python -m experiments.photo_digits                     # make photo_digits/ (once), read it with every bundled model
    python -m experiments.photo_digits --models runs/choose-synth-mnist_m-7000/chosen mnist-mnist_m-dann

Four kinds, 50 pictures each, digits 0-9 equally often, drawn with PIL (FreeType's rasterizer, not
synth.py's) at photograph sizes and then photographed: turned, unevenly lit, blurred, noisy, JPEG:
- plate: an enamel house-number plate on a brick or rendered wall, a neighbour digit cut at the edge;
- tag: a price tag on a shelf, with a small currency sign;
- meter: a seven-segment display, LCD (dark on grey-green, unlit segments faintly visible) or LED;
- handwritten: pen or pencil strokes of varying width on ruled or squared paper.
Each picture is read as image_annotate.py reads a file: dann.pictures.picture_to_digit, then the model.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from experiments.make_images import handwritten, on, photographed, printed, texture

KINDS = ("plate", "tag", "meter", "handwritten")
PER_KIND = 50
FACES = ("DejaVu Sans:bold", "DejaVu Serif:bold", "DejaVu Sans", "DejaVu Sans Mono:bold", "STIXGeneral:bold")
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc",
            8: "abcdefg", 9: "abcdfg"}


def plate(rng, digit):
    wall = texture(rng, (260, 280), rng.uniform(60, 200, 3), 10, 0.4)
    colour = tuple(int(v) for v in rng.uniform(0, 255, 3)) + (255,)
    ink = (245, 245, 240, 255) if sum(colour[:3]) < 380 else (20, 20, 25, 255)
    enamel = Image.new("RGBA", (200, 230), colour)
    face = FACES[rng.integers(len(FACES))]
    enamel.alpha_composite(printed(str(digit), face, 170, ink, (200, 210)), (0, 10))
    enamel.alpha_composite(printed(str(rng.integers(10)), face, 170, ink, (200, 210)), (-int(rng.uniform(110, 135)), 10))
    return photographed(rng, on(wall, enamel), rng.uniform(-8, 8), rng.uniform(0.1, 0.4))


def tag(rng, digit):
    shelf = texture(rng, (240, 240), rng.uniform(120, 230, 3), 6, 0.2)
    card = Image.new("RGBA", (200, 200), ((250, 220, 40, 255), (240, 240, 235, 255), (220, 40, 40, 255))[rng.integers(3)])
    ink = (20, 20, 20, 255) if card.getpixel((0, 0))[1] > 100 else (250, 250, 250, 255)
    card.alpha_composite(printed(str(digit), FACES[rng.integers(len(FACES))], 160, ink, (200, 200)), (10, 0))
    card.alpha_composite(printed("$", "DejaVu Sans", 40, ink, (40, 50)), (4, 10))
    return photographed(rng, on(shelf, card), rng.uniform(-6, 6), rng.uniform(0.1, 0.3))


def segment_polygons(w, h, t):
    """The seven segments of a display cell w x h, stroke t: letter -> polygon."""
    m = h / 2
    horizontal = lambda y: [(t, y), (w - t, y), (w - t / 2, y + t / 2), (w - t, y + t), (t, y + t), (t / 2, y + t / 2)]
    vertical = lambda x, y0, y1: [(x, y0 + t / 2), (x + t / 2, y0 + t), (x + t / 2, y1 - t / 2), (x, y1), (x - t / 2, y1 - t / 2), (x - t / 2, y0 + t)]
    return {"a": horizontal(0), "g": horizontal(m - t / 2), "d": horizontal(h - t),
            "f": vertical(t / 2, 0, m), "b": vertical(w - t / 2, 0, m),
            "e": vertical(t / 2, m, h - t / 2), "c": vertical(w - t / 2, m, h - t / 2)}


def meter(rng, digit):
    lcd = rng.random() < 0.5
    ground = (150, 165, 140) if lcd else (15, 15, 15)
    lit = (25, 30, 25, 255) if lcd else ((255, 40, 30, 255), (60, 255, 90, 255))[rng.integers(2)]
    unlit = (135, 150, 127, 255) if lcd else (35, 25, 25, 255)
    cell = Image.new("RGBA", (150, 230), (0, 0, 0, 0))
    draw = ImageDraw.Draw(cell)
    for name, polygon in segment_polygons(110, 190, rng.uniform(16, 26)).items():
        draw.polygon([(x + 20 - 0.12 * y, y + 20) for x, y in polygon], fill=lit if name in SEGMENTS[digit] else unlit)
    panel = texture(rng, (200, 260), ground, 3, 0.1)
    return photographed(rng, on(panel, cell), rng.uniform(-5, 5), rng.uniform(0.1, 0.35))


def handwriting(rng, digit):
    paper = texture(rng, (280, 280), (238, 234, 222), 5, 0.25)
    if rng.random() < 0.5:
        paper[::28] -= (60, 40, 10)  # ruled lines
    else:
        paper[::20] -= (40, 20, 0)  # squared paper
        paper[:, ::20] -= (40, 20, 0)
    ink = ((20, 40, 120, 255), (80, 80, 80, 255), (20, 20, 20, 255))[rng.integers(3)]
    strokes = handwritten(rng, digit, 220, ink, int(rng.integers(5, 12)))
    return photographed(rng, on(paper, strokes), rng.uniform(-8, 8), rng.uniform(0.1, 0.35))


MAKERS = {"plate": plate, "tag": tag, "meter": meter, "handwritten": handwriting}


def make_set(folder):
    """folder/<kind>_<i>_<digit>.jpg, the same pictures every time (a seed per kind and picture)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, kind in enumerate(KINDS):
        for i in range(PER_KIND):
            rng = np.random.default_rng([k, i])
            MAKERS[kind](rng, i % 10).convert("RGB").save(folder / f"{kind}_{i:02d}_{i % 10}.jpg", quality=int(rng.integers(70, 92)))


def read_set(folder, spec):
    """{kind: share of its pictures the model reads as labelled}, read as image_annotate.py reads files."""
    import torch
    from dann.checkpoints import load_checkpoint
    from dann.pictures import picture_to_digit
    from dann.pretrained import resolve_checkpoint
    model = load_checkpoint(resolve_checkpoint(spec)[0])[0]
    right = {kind: [] for kind in KINDS}
    for path in sorted(folder.glob("*.jpg")):
        kind, _, digit = path.stem.split("_")
        with torch.no_grad():
            read = model.predict_proba(picture_to_digit(Image.open(path))[None]).argmax(1).item()
        right[kind].append(read == int(digit))
    return {kind: float(np.mean(v)) for kind, v in right.items()}


def main():
    from dann.pretrained import bundled_models
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, default=Path("photo_digits"), help="where the pictures are (made if absent)")
    p.add_argument("--models", nargs="+", default=list(bundled_models()["models"]), metavar="NAME|PATH",
                   help="bundled model names, checkpoint files or run folders (default: every bundled model)")
    args = p.parse_args()
    if not any(args.folder.glob("*.jpg")):
        make_set(args.folder)
    print(f"| model | {' | '.join(KINDS)} | all {len(KINDS) * PER_KIND} |\n|" + " --- |" * (len(KINDS) + 2))
    for spec in args.models:
        shares = read_set(args.folder, spec)
        print(f"| {spec} | " + " | ".join(f"{shares[k]:.2f}" for k in KINDS) + f" | {np.mean(list(shares.values())):.3f} |")


if __name__ == "__main__":
    main()
