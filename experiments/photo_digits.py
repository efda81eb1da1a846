"""Photograph-like digits that no training run saw, and what each model reads on them (README,
'Pretrained models'; RESULTS.md, 'Reading photographed digits'): the set by which image_annotate.py's
default model is chosen, rather than by any dataset's test labels.

    python -m experiments.photo_digits                     # make photo_digits/ (once), read it with every bundled model
    python -m experiments.photo_digits --models runs/choose-synth-mnist_m-7000/chosen mnist-mnist_m-dann

Eight kinds, 50 pictures each, digits 0-9 equally often, drawn at photograph sizes and then
photographed: turned, unevenly lit, blurred, noisy, JPEG. The first four share synth's faces (the fonts
matplotlib ships), drawn by PIL (FreeType's rasterizer, not synth.py's):
- plate: an enamel house-number plate on a brick or rendered wall, a neighbour digit cut at the edge;
- tag: a price tag on a shelf, with a small currency sign;
- meter: a seven-segment display, LCD (dark on grey-green, unlit segments faintly visible) or LED;
- handwritten: pen or pencil strokes of varying width on ruled or squared paper.
The other four use faces no training set has (font packages from the package index, pinned in
experiments/requirements.txt) and a second stroke model, filled by matplotlib's Agg rasterizer:
- sign: a door or room-number sign in one of six printed faces, with a border;
- marker: a hand-drawn face (Intuitive, Amatic SC) in felt pen on a whiteboard or a sticky note;
- scrawl: ballpoint strokes of another hand (other letter shapes, smooth curves, slant, pen pressure);
- crowded: a digit between close neighbours cut at the edges, in a table's rules, under a cast shadow.
Each picture is read as image_annotate.py reads a file: dann.pictures.picture_to_digit, then the model.
"""
import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch, PathPatch
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D
from PIL import Image, ImageDraw, ImageFilter
from scipy.interpolate import splev, splprep

from dann import outputs
from experiments.make_images import handwritten, on, photographed, printed, texture

KINDS = ("plate", "tag", "meter", "handwritten", "sign", "marker", "scrawl", "crowded")
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


# ---------------------------------------------------------------- faces and hands no training set has

PRINTED_FACES = (("font_roboto", "RobotoBlack"), ("font_roboto", "RobotoMediumItalic"), ("font_caladea", "CaladeaBold"),
                 ("font_fredoka_one", "FredokaOne"), ("font_hanken_grotesk", "HankenGroteskSemiBold"),
                 ("font_source_serif_pro", "SourceSerifProBlack"))
HAND_FACES = (("font_intuitive", "Intuitive"), ("font_amatic_sc", "AmaticSCBold"))

# A second hand: other letter shapes than make_images.STROKES (open 4, 1 with a flag and foot, 7 crossed,
# 9 with a straight leg, 2 with a loop), unit box, y down; each stroke a smooth curve through its points.
HAND = {
    0: [[(0.55, 0.1), (0.3, 0.25), (0.25, 0.6), (0.45, 0.9), (0.7, 0.75), (0.75, 0.35), (0.6, 0.12), (0.5, 0.15)]],
    1: [[(0.3, 0.3), (0.55, 0.1), (0.52, 0.9)], [(0.3, 0.9), (0.75, 0.9)]],
    2: [[(0.25, 0.3), (0.45, 0.1), (0.7, 0.2), (0.6, 0.5), (0.25, 0.85), (0.35, 0.8), (0.45, 0.85), (0.8, 0.88)]],
    3: [[(0.25, 0.15), (0.75, 0.12), (0.45, 0.42), (0.72, 0.55), (0.7, 0.82), (0.45, 0.92), (0.22, 0.8)]],
    4: [[(0.45, 0.1), (0.25, 0.6), (0.8, 0.6)], [(0.65, 0.15), (0.62, 0.92)]],
    5: [[(0.3, 0.12), (0.27, 0.45), (0.55, 0.4), (0.75, 0.62), (0.6, 0.88), (0.3, 0.88)], [(0.3, 0.12), (0.75, 0.1)]],
    6: [[(0.65, 0.08), (0.35, 0.4), (0.3, 0.75), (0.5, 0.92), (0.7, 0.75), (0.55, 0.55), (0.32, 0.65)]],
    7: [[(0.2, 0.15), (0.8, 0.12), (0.45, 0.92)], [(0.35, 0.5), (0.75, 0.5)]],
    8: [[(0.65, 0.15), (0.45, 0.08), (0.3, 0.25), (0.7, 0.65), (0.55, 0.92), (0.3, 0.75), (0.7, 0.3), (0.65, 0.15)]],
    9: [[(0.7, 0.3), (0.5, 0.5), (0.3, 0.35), (0.45, 0.1), (0.7, 0.2), (0.7, 0.92)]],
}


def font_file(module, name):
    """The path of a face from a font package; a one-line message when the packages are not installed."""
    import importlib
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        raise SystemExit("error: the sign, marker and crowded pictures need fonts from the package index: "
                         "pip install -r experiments/requirements.txt") from None


def agg_layer(box, draw):
    """A transparent RGBA picture of box (w, h) pixels, drawn by draw(axes) in pixel units, y down."""
    fig = Figure(figsize=(box[0] / 100, box[1] / 100), dpi=100)
    fig.patch.set_alpha(0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, box[0]), ylim=(box[1], 0))
    ax.axis("off")
    draw(ax)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba()).copy())


def glyph(ax, text, face, height, centre, colour, slant=0.0):
    """text as a filled outline (Agg, not FreeType's rasterizer), `height` pixels tall, centred at centre."""
    path = TextPath((0, 0), text, size=100, prop=FontProperties(fname=face))
    (x0, y0), (x1, y1) = path.get_extents().get_points()
    scale = height / (y1 - y0)
    to_pixels = (Affine2D().translate(-(x0 + x1) / 2, -(y0 + y1) / 2).scale(scale, -scale)
                 + Affine2D(np.array([[1, -slant, 0], [0, 1, 0], [0, 0, 1]])).translate(*centre))
    ax.add_patch(PathPatch(to_pixels.transform_path(path), facecolor=colour, edgecolor=colour, linewidth=1))


def hand(ax, rng, digit, size, centre, ink, width):
    """The second hand's digit: jittered points, a random slant and aspect, smooth curves, pen pressure."""
    slant, aspect = rng.uniform(-0.35, 0.15), rng.uniform(0.7, 1.1)
    for stroke in HAND[digit]:
        points = np.array(stroke) + rng.normal(0, 0.025, (len(stroke), 2))
        x = (points[:, 0] - 0.5) * size * aspect - slant * (points[:, 1] - 0.5) * size + centre[0]
        y = (points[:, 1] - 0.5) * size + centre[1]
        tck, _ = splprep([x, y], k=min(3, len(x) - 1), s=0)
        cx, cy = splev(np.linspace(0, 1, 60), tck)
        segments = np.stack([np.c_[cx[:-1], cy[:-1]], np.c_[cx[1:], cy[1:]]], 1)
        pressure = 0.55 + 0.45 * np.sin(np.linspace(0.2, np.pi - 0.2, 59)) * rng.uniform(0.7, 1.0)
        ax.add_collection(LineCollection(segments, linewidths=width * pressure, colors=[ink], capstyle="round"))


def sign(rng, digit):
    wall = texture(rng, (260, 280), rng.uniform(90, 230, 3), 6, 0.3)
    colour = rng.uniform(0, 1, 3)
    ink = (0.97, 0.97, 0.95) if colour.sum() < 1.5 else (0.08, 0.08, 0.1)
    face = font_file(*PRINTED_FACES[rng.integers(len(PRINTED_FACES))])

    def draw(ax):
        ax.add_patch(FancyBboxPatch((18, 18), 164, 194, boxstyle="round,pad=0,rounding_size=18", facecolor=colour,
                                    edgecolor=ink, linewidth=rng.uniform(2, 6)))
        glyph(ax, str(digit), face, rng.uniform(120, 150), (100, 115), ink)
    return photographed(rng, on(wall, agg_layer((200, 230), draw)), rng.uniform(-8, 8), rng.uniform(0.1, 0.4))


def marker(rng, digit):
    if rng.random() < 0.5:  # whiteboard
        board = texture(rng, (260, 260), (232, 234, 236), 3, 0.15)
    else:  # sticky note
        board = texture(rng, (260, 260), ((250, 235, 110), (250, 170, 190), (170, 220, 250))[rng.integers(3)], 4, 0.1)
    ink = ((0.1, 0.2, 0.7), (0.1, 0.1, 0.1), (0.75, 0.1, 0.1), (0.1, 0.5, 0.2))[rng.integers(4)]
    face = font_file(*HAND_FACES[rng.integers(len(HAND_FACES))])

    def draw(ax):
        glyph(ax, str(digit), face, rng.uniform(150, 190), (110, 110), ink, slant=rng.uniform(-0.15, 0.2))
    return photographed(rng, on(board, agg_layer((220, 220), draw)), rng.uniform(-8, 8), rng.uniform(0.1, 0.35))


def scrawl(rng, digit):
    paper = texture(rng, (260, 260), ((245, 243, 235), (215, 190, 150), (238, 238, 242))[rng.integers(3)], 5, 0.2)
    ink = ((0.1, 0.15, 0.55), (0.05, 0.05, 0.05), (0.35, 0.35, 0.4))[rng.integers(3)]
    layer = agg_layer((220, 220), lambda ax: hand(ax, rng, digit, rng.uniform(150, 185), (110, 110), ink,
                                                  rng.uniform(3, 9)))
    return photographed(rng, on(paper, layer), rng.uniform(-8, 8), rng.uniform(0.1, 0.35))


def cast_shadow(rng, picture):
    """Darken one side of a straight edge across the picture, softly: the shadow of something beside it."""
    h, w = picture.shape[:2]
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[:h, :w]
    side = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle) - rng.uniform(-0.3, 0.3) * w
    return picture * (1 - rng.uniform(0.3, 0.6) / (1 + np.exp(-side / 8)))[..., None]


def crowded(rng, digit):
    paper = texture(rng, (300, 240), rng.uniform(170, 245, 3), 5, 0.2)
    ink = (0.08, 0.08, 0.1)
    neighbours = rng.integers(10, size=2)
    printed_row = rng.random() < 0.5
    face = font_file(*PRINTED_FACES[rng.integers(len(PRINTED_FACES))])
    pitch = rng.uniform(95, 115)

    def draw(ax):
        for x, d in zip((150 - pitch, 150, 150 + pitch), (neighbours[0], digit, neighbours[1])):
            if printed_row:
                glyph(ax, str(d), face, 140, (x, 120), ink)
            else:
                hand(ax, rng, d, 150, (x, 120), ink, rng.uniform(4, 8))
        for y in rng.uniform(5, 25), 240 - rng.uniform(5, 25):  # the table row's rules
            ax.plot([0, 300], [y, y + rng.uniform(-4, 4)], color=(0.3, 0.3, 0.35), linewidth=rng.uniform(1, 3))
        for x in 150 + np.array([-0.5, 0.5]) * pitch + rng.normal(0, 3, 2):  # the column rules
            ax.plot([x, x], [0, 240], color=(0.3, 0.3, 0.35), linewidth=rng.uniform(1, 2.5))
    half = pitch * rng.uniform(0.65, 0.8)  # framed as SVHN frames a digit: the neighbours cut at the edges
    row = on(paper, agg_layer((300, 240), draw)).crop((int(150 - half), 0, int(150 + half), 240))
    shaded = Image.fromarray(np.uint8(np.clip(cast_shadow(rng, np.asarray(row, float)), 0, 255)))
    return photographed(rng, shaded.filter(ImageFilter.SMOOTH), rng.uniform(-5, 5), rng.uniform(0.1, 0.3))


MAKERS = {"plate": plate, "tag": tag, "meter": meter, "handwritten": handwriting,
          "sign": sign, "marker": marker, "scrawl": scrawl, "crowded": crowded}


def make_set(folder):
    """folder/<kind>_<i>_<digit>.jpg, the same pictures every time (a seed per kind and picture); the
    pictures already there are kept (a set made before the later kinds existed is completed)."""
    for k, kind in enumerate(KINDS):
        for i in range(PER_KIND):
            path = folder / f"{kind}_{i:02d}_{i % 10}.jpg"
            if not path.exists():
                rng = np.random.default_rng([k, i])
                picture = MAKERS[kind](rng, i % 10).convert("RGB")
                quality = int(rng.integers(70, 92))
                outputs.write(path, lambda tmp: picture.save(tmp, "JPEG", quality=quality))


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
    make_set(args.folder)
    print(f"| model | {' | '.join(KINDS)} | all {len(KINDS) * PER_KIND} |\n|" + " --- |" * (len(KINDS) + 2))
    for spec in args.models:
        shares = read_set(args.folder, spec)
        print(f"| {spec} | " + " | ".join(f"{shares[k]:.2f}" for k in KINDS) + f" | {np.mean(list(shares.values())):.3f} |")


if __name__ == "__main__":
    main()
