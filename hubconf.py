"""torch.hub entry points for the bundled models (pretrained/README.md has their numbers).

    model = torch.hub.load("<owner>/<repo>", "mnist_mnist_m_dann")           # from GitHub
    model = torch.hub.load(".", "mnist_mnist_m_dann", source="local")        # from a clone
    probs = model.predict_proba(images)   # uint8 N x 3 x 28 x 28, as data.load_domain returns

Each returns a models.DANN in eval mode on the CPU, its file checked against its sha256.
"""
from checkpoints import bundled_model

dependencies = ["torch"]


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
