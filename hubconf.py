"""torch.hub entry points: the bundled models (pretrained/README.md has their numbers) and the
preprocessing that turns a picture into what they read.

    model = torch.hub.load("<owner>/<repo>", "mnist_mnist_m_dirt_t")          # from GitHub
    model = torch.hub.load(".", "mnist_mnist_m_dirt_t", source="local")       # from a clone
    prepare = torch.hub.load(".", "picture_to_digit", source="local")
    probs = model.predict_proba(prepare(PIL.Image.open("images/pencil_7.jpg"))[None])

Each model is a dann.models.DANN in eval mode on the CPU, its file checked against its sha256.
Only the package `dann` is imported: no module of a generic name enters the caller's process.
"""
from dann import pictures
from dann.pretrained import bundled_model

dependencies = ["torch", "torchvision", "numpy", "PIL"]


def mnist_mnist_m_dann():
    """DANN, MNIST -> MNIST-M, the paper's recipe (100 epochs, seed 0)."""
    return bundled_model("mnist-mnist_m-dann")


def mnist_mnist_m_source_only():
    """Trained on MNIST only: the paper's lower bound on MNIST-M."""
    return bundled_model("mnist-mnist_m-source-only")


def mnist_mnist_m_target_only():
    """Trained on MNIST-M's labels: the paper's upper bound."""
    return bundled_model("mnist-mnist_m-target-only")


def mnist_mnist_m_dirt_t():
    """The DANN above refined by DIRT-T on unlabelled MNIST-M (50 epochs): the best bundled MNIST-M reader."""
    return bundled_model("mnist-mnist_m-dirt-t")


def mnist_synth_mnist_m_self_ensemble():
    """Self-ensembling from MNIST and synth together to MNIST-M (7,000 pictures each, 100 epochs, seed 0):
    the default model before the one below, ahead of it on seven-segment meters and handwriting."""
    return bundled_model("mnist+synth-mnist_m-self-ensemble")


def mnist_synth_mnist_m_self_ensemble_full():
    """Self-ensembling from MNIST and synth together to MNIST-M, every training picture (100 epochs, seed 0):
    the default model, the best bundled reader of MNIST, synth and photograph-like digits."""
    return bundled_model("mnist+synth-mnist_m-self-ensemble-full")


def picture_to_digit():
    """The function image_annotate.py prepares a picture with: any PIL image -> the 3 x 28 x 28
    uint8 tensor the models read (a batch of them: stack, or index with [None])."""
    return pictures.picture_to_digit
