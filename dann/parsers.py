"""Parsers of the official dataset files: each reads one split's files and returns (images, labels),
uint8 N x C x H x W and int64 N, after checking what it read; a file that is not what it should be
raises BadFile. Which files each domain has and where they come from: domains.py."""
import gzip
import io
import struct
import tarfile

import numpy as np
import torch
from tqdm import tqdm


class BadFile(Exception):
    """A dataset file that is not what its name says: damaged, truncated or another file."""

    def __init__(self, path, what):
        super().__init__(f"{path} is not a valid {what}")
        self.path = path


class StaleFile(BadFile):
    """A rendered file made by another version of its renderer."""

    def __init__(self, path, made, now):
        Exception.__init__(self, f"{path} was rendered by version {made} of synth.py, this is version {now}")
        self.path = path


def _read_gzip(path):
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; truncation raises EOFError
        raise BadFile(path, f"gzip file ({e})") from None


def read_idx(path, expect_magic):
    """Parse a gzip IDX file (MNIST): magic 2049 for labels (N), 2051 for images (N x 28 x 28)."""
    raw = _read_gzip(path)
    ndim = {2049: 1, 2051: 3}[expect_magic]
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != expect_magic:
        raise BadFile(path, f"IDX file (expected magic number {expect_magic})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + int(np.prod(dims)):
        raise BadFile(path, f"IDX file (header says {dims}, data is {len(raw) - header} bytes)")
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy())


def _check_labels(path, labels, count, what):
    if len(labels) != count:
        raise BadFile(path, f"{what} ({count} images but {len(labels)} labels)")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise BadFile(path, f"{what} (labels outside 0..9)")


def load_mnist(paths, split):
    image_file, label_file = paths
    images = read_idx(image_file, 2051)
    labels = read_idx(label_file, 2049).long()
    if images.shape[1:] != (28, 28):
        raise BadFile(image_file, f"MNIST image file (images are {tuple(images.shape[1:])}, not 28x28)")
    _check_labels(label_file, labels, len(images), "MNIST label file")
    return images[:, None], labels


def load_svhn(paths, split):
    import scipy.io  # only SVHN needs it; keeps `import data` light
    (path,) = paths
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for a damaged .mat
        raise BadFile(path, f"SVHN .mat file ({type(e).__name__}: {e})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise BadFile(path, "SVHN .mat file (it lacks the 'X' and 'y' arrays)")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise BadFile(path, f"SVHN .mat file ('X' is {x.dtype} {x.shape}, not uint8 32x32x3xN)")
    y = y.reshape(-1).astype(np.int64)
    if len(y) == x.shape[3] and len(y) and (y.min() < 1 or y.max() > 10):
        raise BadFile(path, "SVHN .mat file (labels outside 1..10)")
    labels = torch.from_numpy(y % 10)  # SVHN writes the digit 0 as label 10
    _check_labels(path, labels, x.shape[3], "SVHN .mat file")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, labels


def load_mnist_m(paths, split):
    from PIL import Image
    (path,) = paths
    prefix = f"mnist_m/mnist_m_{split}"
    pngs, label_text = {}, None
    try:
        with tarfile.open(path, "r:gz") as tar:  # a first load takes seconds: a bar on a terminal
            for member in tqdm(tar, desc=f"reading MNIST-M {split}", unit="file", leave=False, disable=None):
                if member.name == f"{prefix}_labels.txt":
                    label_text = tar.extractfile(member).read().decode()
                elif member.name.startswith(prefix + "/") and member.name.endswith(".png"):
                    pngs[member.name.rsplit("/", 1)[1]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BadFile(path, f"MNIST-M archive ({e})") from None
    if label_text is None:
        raise BadFile(path, f"MNIST-M archive (no {prefix}_labels.txt inside)")
    images, labels = [], []
    lines = label_text.splitlines()
    for line_no, line in enumerate(tqdm(lines, desc=f"decoding MNIST-M {split}", unit="picture", leave=False,
                                        disable=None), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in pngs or not fields[1].isdigit():
            raise BadFile(path, f"MNIST-M archive (line {line_no} of the {split} label file: {line!r})")
        try:
            img = Image.open(io.BytesIO(pngs[fields[0]])).convert("RGB")
        except OSError as e:
            raise BadFile(path, f"MNIST-M archive ({fields[0]}: {e})") from None
        images.append(np.asarray(img))
        labels.append(int(fields[1]))
    if not images:
        raise BadFile(path, f"MNIST-M archive (the {split} label file lists no images)")
    if len({im.shape for im in images}) != 1:
        raise BadFile(path, "MNIST-M archive (images of different sizes)")
    labels = torch.tensor(labels, dtype=torch.int64)
    _check_labels(path, labels, len(images), "MNIST-M archive")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), labels


def load_usps(paths, split):
    (path,) = paths
    text = _read_gzip(path).decode(errors="replace")
    try:
        rows = np.array([line.split() for line in text.splitlines() if line.strip()], dtype=np.float64)
    except ValueError:
        raise BadFile(path, "USPS file (every line must be a label and 256 numbers)") from None
    if rows.ndim != 2 or rows.shape[1] != 257:
        raise BadFile(path, "USPS file (every line must be a label and 256 numbers)")
    if np.abs(rows[:, 1:]).max() > 1 or np.any(rows[:, 0] != np.round(rows[:, 0])):
        raise BadFile(path, "USPS file (pixels must lie in [-1, 1] and labels be whole numbers)")
    labels = torch.from_numpy(rows[:, 0].astype(np.int64))
    _check_labels(path, labels, len(rows), "USPS file")
    pixels = np.round((rows[:, 1:] + 1) * 127.5).astype(np.uint8).reshape(-1, 1, 16, 16)
    return torch.from_numpy(pixels), labels


def load_synth(paths, split):
    import zipfile
    from dann.synth import RENDER_VERSION, SIZE
    (path,) = paths
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels, version = f["images"], f["labels"], int(f["version"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise BadFile(path, f"synth file ({type(e).__name__})") from None
    if version != RENDER_VERSION:
        raise StaleFile(path, version, RENDER_VERSION)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise BadFile(path, f"synth file (images are {images.dtype} {images.shape})")
    labels = torch.from_numpy(labels.astype(np.int64))
    _check_labels(path, labels, len(images), "synth file")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), labels
