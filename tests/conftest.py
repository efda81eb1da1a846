"""Shared fixtures: tiny datasets written in each official format, and the real data when present."""
import dataclasses
import gzip
import io
import signal
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dann import datasets, domains, stepping, training
from dann.config import Config

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def ctrl_c_after(monkeypatch, steps):
    """Make training's SGD step press Ctrl-C (SIGINT) once it has run `steps` times; returns the real step."""
    real_step, calls = stepping.sgd_step, []

    def step_then_ctrl_c(*args):
        result = real_step(*args)
        calls.append(1)
        if len(calls) == steps:
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(stepping, "sgd_step", step_then_ctrl_c)
    return real_step


def run_script(script, *args, cwd=REPO, **kwargs):
    """One of the project's scripts in a process of its own, its output captured as text."""
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, **kwargs)


def write_idx(path, array, magic):
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def digit_images(labels, size, channels, seed=0):
    """Images whose content depends on the label (a bright bar at a label-dependent row), so
    that a classifier can learn them and a loader's label order can be checked."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 60, (len(labels), size, size, channels), dtype=np.uint8)
    for i, y in enumerate(labels):
        row = 2 + int(y) * (size - 4) // 10
        imgs[i, row:row + 2, 2:-2] = 250
    return imgs


def make_mnist(folder, n_train=40, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", digit_images(labels, 28, 1)[..., 0], 2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)


def make_svhn(folder, n_train=30, n_test=20):
    import scipy.io
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        x = digit_images(labels, 32, 3).transpose(1, 2, 3, 0)  # the official 32 x 32 x 3 x N layout
        y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})


def make_mnist_m(folder, n_train=30, n_test=20):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "mnist_m.tar.gz", "w:gz") as tar:
        def add(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for split, n in (("train", n_train), ("test", n_test)):
            labels = np.arange(n) % 10
            lines = []
            for i, img in enumerate(digit_images(labels, 32, 3, seed=1)):
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, "PNG")
                add(f"mnist_m/mnist_m_{split}/{i:08d}.png", buf.getvalue())
                lines.append(f"{i:08d}.png {labels[i]}")
            add(f"mnist_m/mnist_m_{split}_labels.txt", ("\n".join(lines) + "\n").encode())


def make_usps(folder, n_train=30, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        pixels = digit_images(labels, 16, 1)[..., 0].reshape(n, -1) / 127.5 - 1
        text = "\n".join(f"{y:.4f} " + " ".join(f"{v:.4f}" for v in row) for y, row in zip(labels, pixels))
        with gzip.open(folder / f"zip.{split}.gz", "wt") as f:
            f.write(text + "\n")


def make_synth(folder, n_train=30, n_test=20):
    """A few rendered synth pictures in the files download_data.py writes (all 110,000 take 30 s)."""
    datasets.render_synth(folder.parent, train_size=n_train, log=lambda _: None, test_size=n_test)


REAL_DATA = {"real_root"}


def pytest_collection_modifyitems(items):
    """A test that reads the real datasets belongs to the full suite, not to the fast tier."""
    for item in items:
        if REAL_DATA & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def with_sources(monkeypatch, name, remotes):
    """Make built-in domain `name` fetch its files from `remotes` (domains.RemoteFile) for one test."""
    monkeypatch.setitem(domains.DOMAINS, name, dataclasses.replace(domains.DOMAINS[name], sources=tuple(remotes)))


MAKERS = {"mnist": make_mnist, "svhn": make_svhn, "mnist_m": make_mnist_m, "usps": make_usps, "synth": make_synth}


@pytest.fixture
def synthetic_root(tmp_path):
    """A data root with a tiny copy of every domain in its official format."""
    root = tmp_path / "data"
    for name, make in MAKERS.items():
        make(root / name)
    return root


@pytest.fixture(scope="session")
def real_root(tmp_path_factory):
    """Real MNIST and MNIST-M imported from ../shared/data with download_data.py --from."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "mnist_m").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    import download_data  # the script: real data is imported as a user would
    root = tmp_path_factory.mktemp("real") / "data"
    download_data.main(["--from", str(SHARED_DATA), "--root", str(root), "--datasets", "mnist", "mnist_m"])
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A small DANN trained on the synthetic MNIST -> MNIST-M files: (data root, run folder)."""
    base = tmp_path_factory.mktemp("trained")
    root = base / "data"
    for name in ("mnist", "mnist_m", "usps"):
        MAKERS[name](root / name)
    out = base / "run"
    training.train(Config(source="mnist", target="mnist_m", data_dir=str(root), no_download=True, epochs=10,
                                   batch_size=8, lr=0.05, device="cpu"), out)
    return root, out
