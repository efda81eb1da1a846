"""How often the bundled models mark a reading "not sure": on pictures that hold no digit, made
here, and on real digits (RESULTS.md, '"Not sure"').

    python -m experiments.not_digits --data-dir data        # needs MNIST and MNIST-M in data/

It draws 28 pictures without a digit into --pictures (default runs/not_digits/): diagrams,
montages of six test digits, photographs of surfaces, letters and signs, blank pages; all made
from fixed seeds. For each bundled model it computes the calibration and "not sure" threshold again
by dann/trust.py's rule (RESULTS.md, 'How far to trust a reading'; never below the floor of .5),
checks them against the registry, and counts what falls below the threshold: the pictures without
a digit (should be flagged), and MNIST test, MNIST-M test and the digit pictures in images/ (should
not, unless read wrong).
"""
import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from dann import outputs
from dann.bundle import decided
from dann.common import REPO
from dann.datasets import load_domain
from dann.pictures import picture_to_digit
from dann.pretrained import bundled_checkpoint, bundled_model, bundled_models
from dann.trust import calibrated, sure_at

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def diagrams(rng):
    """Charts and box diagrams, as a user's screenshot folder holds them."""
    for kind in ("line", "bar", "scatter", "pie", "boxes", "histogram", "step", "area"):
        fig, ax = plt.subplots(figsize=(3, 2.4), dpi=80)
        x = np.arange(12)
        y = rng.normal(0, 1, 12).cumsum()
        if kind == "line":
            ax.plot(x, y, marker="o")
        elif kind == "bar":
            ax.bar(x[:6], np.abs(y[:6]) + 1)
        elif kind == "scatter":
            ax.scatter(rng.normal(0, 1, 60), rng.normal(0, 1, 60), s=8)
        elif kind == "pie":
            ax.pie(np.abs(y[:4]) + 1)
        elif kind == "boxes":
            ax.axis("off")
            for i in range(3):
                ax.add_patch(plt.Rectangle((0.05 + 0.32 * i, 0.4), 0.25, 0.25, fill=False))
                if i:
                    ax.annotate("", (0.05 + 0.32 * i, 0.52), (0.3 + 0.32 * (i - 1), 0.52), arrowprops={"arrowstyle": "->"})
        elif kind == "histogram":
            ax.hist(rng.normal(0, 1, 300), bins=15)
        elif kind == "step":
            ax.step(x, y)
        else:
            ax.fill_between(x, y, y.min() - 1, alpha=0.5)
        fig.canvas.draw()
        yield f"diagram_{kind}", Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)


def montages(data_dir):
    """Six test digits side by side in one picture: digits, but no single one to read."""
    for name in ("mnist", "mnist_m"):
        images = load_domain(name, "test", data_dir)[0]
        for k, (rows, cols) in enumerate(((2, 3), (3, 2), (1, 6))):
            tiles = images[6 * k:6 * k + 6].permute(0, 2, 3, 1).numpy()
            grid = tiles.reshape(rows, cols, 28, 28, 3).transpose(0, 2, 1, 3, 4).reshape(rows * 28, cols * 28, 3)
            yield f"montage_{name}_{rows}x{cols}", Image.fromarray(grid).resize((cols * 84, rows * 84), Image.NEAREST)


def surfaces(rng):
    """Photographs of surfaces with no writing: blotchy colour, grain, a little blur."""
    for kind, base in (("bricks", (150, 70, 50)), ("wood", (150, 105, 60)), ("paper", (236, 232, 220)),
                       ("grass", (60, 120, 40)), ("sky", (120, 170, 230)), ("fabric", (90, 90, 140))):
        slow = np.kron(rng.normal(0, 1, (9, 9, 1)), np.ones((32, 32, 1)))[:256, :256]
        pixels = np.array(base, float) + 25 * slow + rng.normal(0, 12, (256, 256, 3))
        if kind == "wood":
            pixels += 20 * np.sin(np.linspace(0, 50, 256))[:, None, None]
        if kind == "bricks":
            pixels[::32] = pixels[1::32] = 190
        yield f"surface_{kind}", Image.fromarray(np.uint8(np.clip(pixels, 0, 255))).filter(ImageFilter.GaussianBlur(1))


def signs():
    """Letters and signs in print, and blank pages."""
    face = ImageFont.truetype(font_manager.findfont("DejaVu Sans:bold"), 150)
    for text in ("A", "K", "x", "Hi", "&", "?"):
        canvas = Image.new("RGB", (200, 200), "white")
        ImageDraw.Draw(canvas).text((100, 100), text, font=face, fill="black", anchor="mm")
        yield f"sign_{text if text.isalnum() else 'and' if text == '&' else 'question'}", canvas
    yield "blank_white", Image.new("RGB", (200, 200), "white")
    yield "blank_black", Image.new("RGB", (200, 200), "black")


def not_digits(data_dir):
    rng = np.random.default_rng(0)
    return [*diagrams(rng), *montages(data_dir), *surfaces(rng), *signs()]


def digit_pictures():
    """The pictures of single digits in images/ (drawn ones and test-set samples)."""
    names = ("paper_handwritten_3.jpg", "pencil_7.jpg", "printed_5.png", "house_number_4.jpg", "sticky_note_9.jpg",
             "mnist_m_test0_digit7.png", "mnist_m_test1_digit2.png", "mnist_m_test2_digit1.png",
             "mnist_m_test3_digit0.png", "mnist_test0_digit7.png", "mnist_test1_digit2.png")
    return [(name, Image.open(REPO / "images" / name)) for name in names]


def chance(model, images, temperature):
    """The calibrated top probability of each picture, as image_annotate.py shows it."""
    return calibrated(model.predict_proba(images), temperature).max(1).values


def digits(pictures):
    return torch.stack([picture_to_digit(p) for _, p in pictures])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="dataset folder with MNIST and MNIST-M (default: ./data); synth's "
                                                    "test set is rendered there if a model needs it")
    p.add_argument("--pictures", type=Path, default=Path("runs/not_digits"), help="where to save the pictures made")
    args = p.parse_args()
    pictures = not_digits(args.data_dir)
    for name, picture in pictures:
        outputs.write(args.pictures / f"{name}.png", lambda tmp: picture.save(tmp, format="PNG"))
    tests = {name: load_domain(name, "test", args.data_dir)[0] for name in ("mnist", "mnist_m")}
    drawn = digit_pictures()
    print(f"{len(pictures)} pictures without a digit in {args.pictures}; {len(drawn)} digit pictures in images/")
    models = bundled_models()["models"]
    wide = max(map(len, ["model", *models]))
    print(f"{'model':<{wide}} {'T':>6} {'threshold':>9} {'registry':>9} {'no digit flagged':>17} {'MNIST test':>11} "
          f"{'MNIST-M test':>13} {'digit pictures':>15}")
    for name, entry in models.items():
        model = bundled_model(name)
        trust = decided(bundled_checkpoint(name), args.data_dir)
        bar = sure_at(trust["unsure_below"])  # as image_annotate.py marks: the threshold, never below the floor
        temperature = trust["temperature"]
        flagged = {what: chance(model, digits(pics), temperature) < bar for what, pics in (("none", pictures),
                                                                                          ("drawn", drawn))}
        share = {d: (chance(model, x, temperature) < bar).float().mean().item() for d, x in tests.items()}
        missed = [n for (n, _), f in zip(pictures, flagged["none"]) if not f]
        print(f"{name:<{wide}} {temperature:>6.3f} {trust['unsure_below']:>9.4f} {entry.get('unsure_below', float('nan')):>9.4f} "
              f"{int(flagged['none'].sum()):>10} of {len(pictures):<4} {share['mnist']:>11.1%} {share['mnist_m']:>13.1%} "
              f"{int(flagged['drawn'].sum()):>8} of {len(drawn):<4}")
        print(f"    read as digits (not flagged): {', '.join(missed) or 'none'}")
        print(f"    digit pictures flagged: {', '.join(n for (n, _), f in zip(drawn, flagged['drawn']) if f) or 'none'}")


if __name__ == "__main__":
    main()
