"""Make the pictures in images/: sample digits from the test sets and the architecture figure.

    python images/make_images.py            # needs MNIST and MNIST-M in ./data

Sample digits are test-set images enlarged 4x with nearest-neighbour, so image_annotate.py
sees (after its own resize back to 28 x 28) nearly the pixels the model was tested on.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from data import load_domain  # noqa: E402

SAMPLES = {"mnist_m": (0, 1, 2, 3), "mnist": (0, 1)}  # first test images: digits 7 2 1 0 / 7 2


def save_samples():
    for name, indices in SAMPLES.items():
        images, labels = load_domain(name, "test")
        for i in indices:
            picture = Image.fromarray(images[i].permute(1, 2, 0).numpy()).resize((112, 112), Image.NEAREST)
            picture.save(HERE / f"{name}_test{i}_digit{labels[i].item()}.png")


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
    fig.savefig(HERE / "architecture.png", dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    save_samples()
    save_architecture()
