"""Make the pictures in images/: sample digits from the test sets and synth, pictures like the ones users
try (digits written or printed on paper and photographed, a house number, a sticky note; all
drawn here, with matplotlib's DejaVu fonts), and the architecture figure.

    python -m experiments.make_images       # needs MNIST and MNIST-M in ./data
    python -m experiments.make_images --curves runs/mnist-mnist_m-*   # also the README's accuracy plot
    python -m experiments.make_images --curves runs/e50-* --curves-file mnist_mnist_m_dann_runs.png

Sample digits are test-set images enlarged 4x with nearest-neighbour, so image_annotate.py
sees (after its own resize back to 28 x 28) nearly the pixels the model was tested on.
"""
import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from dann import outputs
from dann.common import REPO
from dann.config import in_current_words
from dann.datasets import load_domain
from dann.methods import METHODS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

HERE = REPO / "images"  # where the pictures go

SAMPLES = {"mnist_m": (0, 1, 2, 3), "mnist": (0, 1)}  # first test images: digits 7 2 1 0 / 7 2


def save_picture(picture, name, **options):
    """images/<name>, through the one owner of what the project writes (images/'s manifest)."""
    kind = {".png": "PNG", ".jpg": "JPEG"}[Path(name).suffix]
    outputs.write(HERE / name, lambda tmp: picture.save(tmp, format=kind, **options))


def save_samples():
    for name, indices in SAMPLES.items():
        images, labels = load_domain(name, "test")
        for i in indices:
            picture = Image.fromarray(images[i].permute(1, 2, 0).numpy()).resize((112, 112), Image.NEAREST)
            save_picture(picture, f"{name}_test{i}_digit{labels[i].item()}.png")


def save_synth_grid(rows=8):
    """The first synth test pictures, a column per digit, enlarged 3x (README, 'Data')."""
    import synth
    images, _ = synth.render_range("test", 0, rows * 10)
    grid = images.reshape(rows, 10, synth.SIZE, synth.SIZE, 3).transpose(0, 2, 1, 3, 4)
    picture = Image.fromarray(grid.reshape(rows * synth.SIZE, 10 * synth.SIZE, 3))
    save_picture(picture.resize((picture.width * 3, picture.height * 3), Image.NEAREST), "synth_samples.png")


def box(ax, x, y, w, h, text, color):
    ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=color, edgecolor="black", linewidth=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)


def arrow(ax, x0, y0, x1, y1, label=""):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", linewidth=1))
    if label:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, label, ha="center", fontsize=7, style="italic")


def save_architecture():
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.set(xlim=(0, 10), ylim=(0, 3.6))
    ax.axis("off")
    box(ax, 0.1, 1.3, 1.2, 1.0, "image\n3 x 28 x 28\n(source and\ntarget)", "#eeeeee")
    box(ax, 1.8, 1.1, 2.4, 1.4, "feature extractor $G_f$\nmnist: conv5-32, pool, conv5-48, pool\n"
        "svhn: conv5-64, pool3/2, conv5-64,\npool3/2, conv5-128", "#cfe2f3")
    box(ax, 5.2, 2.3, 2.4, 0.9, "label classifier $G_y$\nmnist: fc100, fc100, fc10\nsvhn: fc3072, fc2048, fc10", "#d9ead3")
    box(ax, 4.7, 0.3, 1.1, 0.8, "gradient\nreversal\n$\\times(-\\lambda)$ back", "#f4cccc")
    box(ax, 6.3, 0.2, 2.2, 1.0, "domain classifier $G_d$\nmnist: fc100, fc2\nsvhn: fc1024, fc1024, fc2", "#fce5cd")
    box(ax, 8.3, 2.45, 1.5, 0.6, "class loss\n(source labels)", "white")
    box(ax, 8.9, 0.4, 1.0, 0.6, "domain\nloss", "white")
    arrow(ax, 1.3, 1.8, 1.8, 1.8)
    arrow(ax, 4.2, 2.1, 5.2, 2.7, "features")
    arrow(ax, 4.2, 1.5, 4.7, 0.8)
    arrow(ax, 5.8, 0.7, 6.3, 0.7)
    arrow(ax, 7.6, 2.75, 8.3, 2.75)
    arrow(ax, 8.5, 0.7, 8.9, 0.7)
    ax.set_title("DANN (Ganin & Lempitsky 2015): one network, two heads; the reversal layer makes "
                 "$G_f$ fool $G_d$", fontsize=9)
    fig.tight_layout()
    outputs.write(HERE / "architecture.png", lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)


# ---------------------------------------------------------------- pictures like users' own

# Pen strokes of handwritten digits, in a unit box (x right, y down); a second stroke where the pen lifts.
STROKES = {
    0: [[(0.5, 0.08), (0.28, 0.2), (0.2, 0.5), (0.28, 0.8), (0.5, 0.92), (0.72, 0.8), (0.8, 0.5), (0.72, 0.2),
         (0.5, 0.08)]],
    1: [[(0.32, 0.25), (0.55, 0.08), (0.55, 0.92)]],
    2: [[(0.2, 0.25), (0.35, 0.1), (0.6, 0.08), (0.75, 0.25), (0.7, 0.45), (0.2, 0.9), (0.82, 0.9)]],
    3: [[(0.22, 0.2), (0.4, 0.08), (0.65, 0.1), (0.74, 0.27), (0.62, 0.43), (0.42, 0.48), (0.63, 0.53),
         (0.78, 0.7), (0.7, 0.88), (0.45, 0.94), (0.2, 0.84)]],
    4: [[(0.55, 0.08), (0.15, 0.65), (0.85, 0.65)], [(0.62, 0.35), (0.62, 0.92)]],
    5: [[(0.75, 0.1), (0.32, 0.1), (0.26, 0.45), (0.5, 0.4), (0.72, 0.5), (0.78, 0.7), (0.65, 0.88), (0.4, 0.92),
         (0.2, 0.82)]],
    6: [[(0.7, 0.1), (0.45, 0.2), (0.28, 0.45), (0.25, 0.7), (0.38, 0.9), (0.6, 0.9), (0.74, 0.72), (0.65, 0.52),
         (0.42, 0.5), (0.27, 0.62)]],
    7: [[(0.18, 0.14), (0.5, 0.12), (0.8, 0.1), (0.66, 0.35), (0.52, 0.62), (0.42, 0.92)],
        [(0.38, 0.5), (0.72, 0.48)]],
    8: [[(0.5, 0.48), (0.28, 0.35), (0.3, 0.15), (0.5, 0.08), (0.7, 0.15), (0.72, 0.33), (0.5, 0.48), (0.25, 0.65),
         (0.3, 0.88), (0.5, 0.93), (0.72, 0.86), (0.75, 0.65), (0.5, 0.48)]],
    9: [[(0.72, 0.35), (0.55, 0.48), (0.35, 0.45), (0.26, 0.28), (0.4, 0.1), (0.62, 0.1), (0.74, 0.3), (0.7, 0.6),
         (0.55, 0.92)]],
}


def texture(rng, size, base, grain, blotch):
    """An RGB surface: a base colour, a slow blotchy variation and a fine grain."""
    slow = np.kron(rng.normal(0, blotch, (size[1] // 32 + 1, size[0] // 32 + 1, 1)), np.ones((32, 32, 1)))
    slow = np.asarray(Image.fromarray(np.uint8(np.clip(slow * 40 + 128, 0, 255))[:size[1], :size[0]]
                                      .repeat(3, 2)).filter(ImageFilter.GaussianBlur(24)), float) - 128
    fine = rng.normal(0, grain, (size[1], size[0], 1))
    return np.array(base, float) + slow / 40 * blotch * 255 + fine


def photographed(rng, canvas, angle, light):
    """Rotate a little, light unevenly, blur, add sensor noise: what a phone photo does."""
    picture = canvas.rotate(angle, resample=Image.BICUBIC, fillcolor=canvas.getpixel((0, 0)))
    h, w = picture.height, picture.width
    shade = 1 - light * np.linspace(0, 1, w)[None, :, None] * np.linspace(0.4, 1, h)[:, None, None]
    pixels = np.asarray(picture.filter(ImageFilter.GaussianBlur(1.2)), float) * shade + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.uint8(np.clip(pixels, 0, 255)))


def handwritten(rng, digit, size, ink, width):
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for stroke in STROKES[digit]:
        points = [(size * (0.15 + 0.7 * x) + rng.normal(0, 2), size * (0.1 + 0.8 * y) + rng.normal(0, 2)) for x, y in stroke]
        draw.line(points, fill=ink, width=width, joint="curve")
    return canvas


def printed(text, font, size, color, box):
    canvas = Image.new("RGBA", box, (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    face = ImageFont.truetype(font_manager.findfont(font), size)
    draw.text((box[0] / 2, box[1] / 2), text, font=face, fill=color, anchor="mm")
    return canvas


def on(surface, layer):
    base = Image.fromarray(np.uint8(np.clip(surface, 0, 255))).convert("RGBA")
    base.alpha_composite(layer, ((base.width - layer.width) // 2, (base.height - layer.height) // 2))
    return base.convert("RGB")


def save_photos():
    rng = np.random.default_rng(7)
    paper = texture(rng, (320, 320), (236, 232, 220), 5, 0.25)
    paper[::28] -= (60, 40, 10)  # ruled lines
    save_picture(photographed(rng, on(paper, handwritten(rng, 3, 240, (20, 40, 120, 255), 9)), 6, 0.35),
                 "paper_handwritten_3.jpg", quality=85)
    squared = texture(rng, (300, 260), (245, 245, 240), 3, 0.15)
    squared[::20] -= (40, 20, 0)
    squared[:, ::20] -= (40, 20, 0)
    save_picture(photographed(rng, on(squared, handwritten(rng, 7, 220, (80, 80, 80, 255), 6)), -4, 0.25),
                 "pencil_7.jpg", quality=85)
    scan = texture(rng, (200, 260), (250, 250, 248), 4, 0.1)
    save_picture(Image.fromarray(np.uint8(np.clip(np.asarray(on(scan, printed("5", "DejaVu Serif:bold", 180, (30, 30, 30, 255),
                                                                            (200, 260))), float), 0, 255)))
                 .convert("L").filter(ImageFilter.GaussianBlur(0.8)), "printed_5.png")
    bricks = texture(rng, (280, 300), (150, 70, 50), 12, 0.4)
    bricks[::36] = bricks[1::36] = (190, 185, 175)  # mortar
    for row in range(0, 300, 36):
        bricks[row:row + 36, (row // 36 % 2) * 40::80][:, :3] = (190, 185, 175)
    plate = printed("4", "DejaVu Sans:bold", 170, (245, 245, 245, 255), (170, 210))
    enamel = Image.new("RGBA", (190, 230), (20, 50, 130, 255))
    enamel.alpha_composite(plate, (10, 10))
    save_picture(photographed(rng, on(bricks, enamel), 3, 0.3), "house_number_4.jpg", quality=85)
    desk = texture(rng, (300, 300), (150, 105, 60), 10, 0.3)
    desk += 18 * np.sin(np.linspace(0, 60, 300))[:, None, None]  # wood grain
    note = Image.new("RGBA", (210, 210), (250, 225, 90, 255))
    note.alpha_composite(printed("9", "DejaVu Sans:bold", 190, (15, 15, 15, 255), (210, 210)))
    save_picture(photographed(rng, on(desk, note.rotate(8, resample=Image.BICUBIC)), -2, 0.2), "sticky_note_9.jpg",
                 quality=85)


PAPER_MNIST_M = {"source-only": 0.5225, "dann": 0.7666, "target-only": 0.9596}  # JMLR 2016, Table 2


def save_curves(run_dirs, name, title="MNIST -> MNIST-M, mnist architecture (final models)"):
    """Target test accuracy against epochs for finished runs, with the paper's numbers. A later
    phase (--init) is drawn after the epochs of the runs before it; one that starts from its
    --init model (dirt-t) is joined to that model's accuracy, one that starts afresh (self-train) is not."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    colors = dict(zip(METHODS, plt.get_cmap("tab10").colors))  # one per method, in the method table's order
    runs = {Path(run).name: json.loads((Path(run) / "metrics.json").read_text()) for run in sorted(run_dirs)}
    longest = max(m["config"]["epochs"] for m in runs.values())
    for folder, metrics in runs.items():
        config = in_current_words(metrics["config"])
        offset, start = earlier_phases(config)
        teacher = METHODS[config["method"]].teacher
        joined = start is not None and not (teacher and teacher.fresh_student)  # a fresh student starts apart
        points = [(offset, start)] if joined else []
        points += [(offset + h["epoch"], h["target_test_acc"]) for h in metrics["history"] if "target_test_acc" in h]
        ax.plot(*zip(*points), marker="o", markersize=3, alpha=0.8,
                color="tab:gray" if config.get("bf16") else colors[config["method"]],
                linestyle=":" if config["epochs"] != longest and not offset else "-." if config.get("ema") else "-",
                label=folder)
    for method, acc in PAPER_MNIST_M.items():
        ax.axhline(acc, color=colors[method], linestyle="--", linewidth=1)
        ax.text(0.01, acc + 0.004, f"paper {method} {acc}", color=colors[method], fontsize=7,
                transform=ax.get_yaxis_transform())
    ax.set(xlabel="epoch", ylabel="MNIST-M test accuracy", title=title)
    ax.grid(alpha=0.3)
    # beside the axes: inside, a long legend hides the curves that end low
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    outputs.write(HERE / name, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png"))
    plt.close(fig)


def earlier_phases(config):
    """-> (epochs of the runs this one's --init chain goes back through, the final target accuracy
    of its --init run or None): 0 and None for a run that starts from scratch or from a checkpoint."""
    first = Path(config.get("init") or "") / "metrics.json"
    if not config.get("init") or not first.is_file():
        return 0, None
    start = json.loads(first.read_text())
    offset, _ = earlier_phases(in_current_words(start["config"]))
    return offset + start["config"]["epochs"], start["target_test_acc"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", nargs="+", default=None, metavar="RUN",
                        help="finished run folders to plot, labelled by folder name, coloured by method (bf16 runs "
                             "in grey; dash-dotted: with --ema; dotted: shorter runs)")
    parser.add_argument("--curves-file", default="mnist_mnist_m_curves.png",
                        help="file name under images/ for that plot (default: mnist_mnist_m_curves.png)")
    parser.add_argument("--curves-title", default="MNIST -> MNIST-M, mnist architecture (final models)",
                        help="that plot's title")
    args = parser.parse_args()
    save_samples()
    save_synth_grid()
    save_photos()
    save_architecture()
    if args.curves:
        save_curves(args.curves, args.curves_file, args.curves_title)
