"""Synth digits: the paper's Syn Numbers (Ganin et al., JMLR 2016, 5.2.4), rebuilt as a generator.
The original was released only as data files; here every picture is rendered on the user's machine
from the fonts matplotlib ships, so the domain never goes dead and needs no network.

Picture i of a split is a pure function of (RENDER_VERSION, split, i): its own random generator
(numpy's PCG64, seeded by those three), glyph outlines read from the font files without hinting,
filled by matplotlib's Agg rasterizer, and only exact arithmetic afterwards, so the same version
renders the same bytes on any machine and in any number of worker processes.

What varies, and what it imitates (SVHN's house-number crops, or photographs in general):
- the number: one to three digits, the labelled one in the middle of the picture, its neighbours
  cut by the crop as in SVHN (which crops around one digit of a house number);
- the font: 22 faces (DejaVu Sans, Sans Mono and Serif in four styles each, STIX in four, and
  Computer Modern roman, bold, sans, typewriter and italic): plates and signs use many typefaces;
- size (digit height 45-85% of the picture), position (+-2.5 px), rotation (+-12 degrees) and shear
  (+-0.3): crops are loose, cameras are not square to the wall, italic lettering;
- colours: any background and stroke colours at least 60 grey levels apart (SVHN plates are every
  colour; a legible digit has some contrast); backgrounds plain, a gradient (light falling across
  a plate) or textured (walls, brick, wood: smooth random noise);
- an outline or a drop shadow in a third colour (painted and embossed numbers);
- blur (Gaussian, sigma up to 1.3 px: focus and motion), sensor noise (Gaussian, sigma up to 10
  grey levels) and JPEG artefacts (quality 25-90: photographs are JPEG files).
"""
import contextlib
import io
import math
import multiprocessing
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

SIZE = 32  # the picture side, as SVHN's crops and the paper's Syn Numbers
RENDER_VERSION = 1  # part of every picture's seed: a change to the rendering is a new version
SPLIT_SEEDS = {"train": 0, "test": 1}
SPLIT_SIZES = {"train": 100_000, "test": 10_000}  # defaults; download_data.py --synth-size N renders N training
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
    "DejaVuSansMono.ttf",  # typewriter-like figures twice as often: meters, price tags
)


def font_folder():
    import matplotlib
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=None)
def glyph(font, digit):
    """The outline of `digit` in `font` (font units, no hinting), as a matplotlib Path, and its
    ink box (x0, y0, x1, y1)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as Outline
    from matplotlib.textpath import TextToPath
    vertices, codes = TextToPath().get_text_path(FontProperties(fname=str(font_folder() / font)), str(digit))
    vertices = np.asarray(vertices, dtype=np.float64)
    box = (*vertices.min(0), *vertices.max(0))
    return Outline(vertices, codes), box


class Canvas:
    """Agg coverage masks of outlines on a SIZE x SIZE grid (one renderer, reused)."""

    def __init__(self):
        from matplotlib.backends.backend_agg import RendererAgg
        self.renderer = RendererAgg(SIZE, SIZE, 72)
        self.gc = self.renderer.new_gc()
        self.gc.set_antialiased(True)

    def coverage(self, outlines, stroke=0.0):
        """The share of each pixel inside the outlines (stroke = 0) or under a line of `stroke`
        pixels along them: float64 SIZE x SIZE in [0, 1]."""
        self.renderer.clear()
        self.gc.set_linewidth(stroke)  # points, which are pixels at 72 dpi
        for path, transform in outlines:
            self.renderer.draw_path(self.gc, path, transform, None if stroke else (1.0, 1.0, 1.0, 1.0))
        return np.asarray(self.renderer.buffer_rgba())[..., 3] / 255.0


def rng_for(split, index):
    return np.random.Generator(np.random.PCG64([RENDER_VERSION, SPLIT_SEEDS[split], index]))


def uniform(rng, low, high):
    return low + (high - low) * rng.random()


def luma(colour):
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def colour(rng):
    """A random colour, its saturation drawn apart: SVHN's plates are more often greyish than vivid."""
    rgb = rng.random(3) * 255
    grey = luma(rgb)
    return grey + rng.random() * (rgb - grey)


def two_colours(rng, contrast=60):
    """A background and a stroke colour whose grey levels differ by at least `contrast`."""
    while True:
        a, b = colour(rng), colour(rng)
        if abs(luma(a) - luma(b)) >= contrast:
            return a, b


def background(rng, back):
    """SIZE x SIZE x 3 floats: plain, a gradient, or a smooth random texture around colour `back`."""
    kind = rng.random()
    plain = np.broadcast_to(back, (SIZE, SIZE, 3))
    if kind < 0.4:
        return plain.copy()
    if kind < 0.7:  # light falling across the plate: a linear ramp to a second colour
        other = back + (rng.random(3) - 0.5) * 160
        angle = uniform(rng, 0, 2 * math.pi)
        ys, xs = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1) - 0.5
        t = (math.cos(angle) * xs + math.sin(angle) * ys + 0.71) / 1.42
        return plain + t[..., None] * (other - back)
    coarse = rng.random((5, 5, 3)) - 0.5  # walls, brick, wood: smooth noise, bilinear from a 5 x 5 grid
    grid = np.linspace(0, 4, SIZE)
    i = np.minimum(grid.astype(int), 3)
    f = grid - i
    rows = coarse[i] * (1 - f)[:, None, None] + coarse[i + 1] * f[:, None, None]
    texture = rows[:, i] * (1 - f)[None, :, None] + rows[:, i + 1] * f[None, :, None]
    return plain + texture * uniform(rng, 40, 120)


def number_outlines(rng, digit):
    """The outlines of a number of one to three digits whose `digit` is centred in the picture,
    each with its Agg transform."""
    from matplotlib.transforms import Affine2D
    font = FONT_FILES[rng.integers(len(FONT_FILES))]
    count = 1 + int(rng.random() * 3)
    where = int(rng.random() * count)  # the labelled digit's place in the number
    digits = [int(rng.random() * 10) for _ in range(count)]
    digits[where] = digit
    height = glyph(font, 8)[1][3] - glyph(font, 8)[1][1]  # a digit's height in font units
    gap = uniform(rng, 0.05, 0.35) * height
    lefts, x = [], 0.0
    for d in digits:
        x0, _, x1, _ = glyph(font, d)[1]
        lefts.append(x - x0)
        x += (x1 - x0) + gap
    x0, y0, x1, y1 = glyph(font, digit)[1]
    centre = (lefts[where] + (x0 + x1) / 2, (y0 + y1) / 2)
    place = (Affine2D().translate(-centre[0], -centre[1]).scale(uniform(rng, 0.45, 0.85) * SIZE / height)
             .skew(math.atan(uniform(rng, -0.3, 0.3)), 0)
             .rotate_deg(uniform(rng, -12, 12))
             .translate(SIZE / 2 + uniform(rng, -2.5, 2.5), SIZE / 2 + uniform(rng, -2.5, 2.5)))
    return [(glyph(font, d)[0], Affine2D().translate(left, 0) + place) for d, left in zip(digits, lefts)]


def gaussian_blur(image, sigma):
    """Separable Gaussian blur, edges repeated; the kernel from Python's scalar exp (numpy's vector
    exp may round differently on different CPUs)."""
    radius = math.ceil(3 * sigma)
    kernel = np.array([math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)])
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
        image = sum(w * np.take(padded, range(k, k + SIZE), axis=axis) for k, w in enumerate(kernel))
    return image


def jpeg(image, quality):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def render(split, index, canvas, plain=False):
    """Picture `index` of `split`: (SIZE x SIZE x 3 uint8, its label). plain=True draws the same
    number in the same place, white on black and nothing else: the plainest version of it."""
    rng = rng_for(split, index)
    label = index % 10  # every class equally often
    back, ink = two_colours(rng)
    image = background(rng, back)
    outlines = number_outlines(rng, label)
    decoration, third, stroke, darker = rng.random(), colour(rng), uniform(rng, 1.0, 2.5), uniform(rng, 0.2, 0.6)
    shift = [int(rng.integers(1, 3)) * (1 if rng.random() < 0.5 else -1) for _ in range(2)]
    blur, sigma = rng.random() < 0.6, uniform(rng, 0.3, 1.3)
    noisy, noise = rng.random() < 0.5, rng.standard_normal(image.shape) * uniform(rng, 1, 10)
    compressed, quality = rng.random() < 0.5, int(rng.integers(25, 91))
    if plain:
        image, ink, decoration, blur, noisy, compressed = np.zeros_like(image), np.full(3, 255.0), 1, False, False, False
    if decoration < 0.2:  # a painted outline in a third colour
        image += canvas.coverage(outlines, stroke=stroke)[..., None] * (third - image)
    elif decoration < 0.4:  # a drop shadow, darker than the background
        image += np.roll(canvas.coverage(outlines), shift, axis=(0, 1))[..., None] * (back * darker - image)
    image += canvas.coverage(outlines)[..., None] * (ink - image)
    if blur:
        image = gaussian_blur(image, sigma)
    if noisy:
        image = image + noise
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if compressed:
        image = jpeg(image, quality)
    return image, label


def render_range(split, start, stop, plain=False):
    """Pictures start..stop-1 of a split: N x SIZE x SIZE x 3 uint8 and int64 labels."""
    canvas = Canvas()
    pictures = [render(split, i, canvas, plain) for i in range(start, stop)]
    return np.stack([p for p, _ in pictures]), np.array([label for _, label in pictures], dtype=np.int64)


def _render_chunk(job):
    return render_range(*job)


def render_split(split, count, progress=lambda n: None, chunk=1000):
    """The first `count` pictures of a split, rendered in chunks on every core (spawned workers:
    see folders.decode); progress(n) is called as each chunk of n pictures arrives. The same
    pictures whatever the number of cores, since each is a function of its index alone."""
    images, labels = np.empty((count, SIZE, SIZE, 3), np.uint8), np.empty(count, np.int64)
    jobs = [(split, start, min(start + chunk, count)) for start in range(0, count, chunk)]
    workers = min(os.cpu_count() or 1, len(jobs))  # one chunk or one core: no worker is worth starting
    with multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for (_, start, stop), (x, y) in zip(jobs, (pool.imap if pool else map)(_render_chunk, jobs)):
            images[start:stop], labels[start:stop] = x, y
            progress(stop - start)
    return images, labels
