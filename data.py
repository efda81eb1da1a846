"""Digit domains as tensors: MNIST, SVHN, MNIST-M, USPS and synth, all as 3 x 28 x 28 uint8.

`load_domain(name, split)` parses the official files (where they come from and their checksums
are download_data.py's), checks what it reads, and caches the decoded tensors next to the raw
files so that every later load is a single fast read. Also the one preprocessing of a user's
picture (`picture_to_digit`) and the batched augmentation.
"""
import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from common import UserError, save_atomic

DOMAINS = ("mnist", "svhn", "mnist_m", "usps", "synth")
DIGITS = tuple(str(digit) for digit in range(10))  # the built-in domains' class names
SPLITS = ("train", "test")
IMAGE_SIZE = 28
CACHE_VERSION = 1  # bump when decoding changes, so old caches are rebuilt


def default_root():
    return Path(os.environ.get("DANN_DATA_DIR", "data"))


# Which raw files each (domain, split) is decoded from (download_data.SOURCES says where they come from).
SPLIT_FILES = {
    ("mnist", "train"): ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("mnist", "test"): ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ("svhn", "train"): ("train_32x32.mat",),
    ("svhn", "test"): ("test_32x32.mat",),
    ("mnist_m", "train"): ("mnist_m.tar.gz",),
    ("mnist_m", "test"): ("mnist_m.tar.gz",),
    ("usps", "train"): ("zip.train.gz",),
    ("usps", "test"): ("zip.test.gz",),
    ("synth", "train"): ("synth_train_32x32.npz",),  # rendered here (synth.py), not downloaded
    ("synth", "test"): ("synth_test_32x32.npz",),
}


def fetch_command(name, root):
    return f"python download_data.py --datasets {name} --root {root}"


# ---------------------------------------------------------------- shared preprocessing

def to_28x28_rgb(images):
    """N x C x H x W uint8 (C = 1 or 3) -> N x 3 x 28 x 28 uint8, resized with antialiasing.

    The one place where any picture becomes a model-sized image: the loaders and
    image_annotate.py both go through it.
    """
    if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        images = TF.resize(images, [IMAGE_SIZE, IMAGE_SIZE], antialias=True)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.contiguous()


LARGEST_SIDE = 1024  # longer sides are reduced first; 28 x 28 needs far fewer pixels


def eight_bit(image):
    """Any PIL image -> an RGB image: 16-bit and float pixels scaled to 8 bits (not clipped),
    transparency laid over white."""
    from PIL import Image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float64)
        full_scale = 255.0 if pixels.max() <= 255 else 65535.0  # 16-bit files that hold 8-bit values exist
        image = Image.fromarray(np.clip(pixels / full_scale * 255 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


def picture_to_digit(image):
    """Any PIL image -> 3 x 28 x 28 uint8, the way a training image looks to the model.

    EXIF rotation is applied, the pixels become 8-bit RGB (eight_bit), a picture longer than
    LARGEST_SIDE is reduced, and it is padded (edge pixels repeated) to a square before
    resizing, as SVHN's crops were squared rather than stretched.
    """
    from PIL import Image, ImageOps
    image = eight_bit(ImageOps.exif_transpose(image))
    if max(image.size) > LARGEST_SIDE:  # bounded memory: padding 20,000 x 1 pixels to a square would take GBs
        scale = LARGEST_SIDE / max(image.size)
        image = image.resize([max(1, round(side * scale)) for side in image.size], Image.LANCZOS)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    h, w = x.shape[1:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    x = torch.nn.functional.pad(x[None].float(), (left, side - w - left, top, side - h - top), mode="replicate")
    return to_28x28_rgb(x.round().to(torch.uint8))[0]


def augment(images, pad=4, jitter=0.4):
    """A batch of uint8 images -> float 0..255 images, each randomly shifted and recoloured:
    torchvision's RandomCrop(28, padding=4) then ColorJitter(brightness, contrast, saturation
    = jitter), but drawn per image for the whole batch at once on the images' device, with no
    per-image Python (torchvision's batched transforms draw one set of parameters per batch).
    Only the draws use the global RNG, so a seeded CPU run stays reproducible."""
    n, c, h, w = images.shape
    x = F.pad(images.float(), (pad, pad, pad, pad))  # zero fill, as RandomCrop's default
    shift = torch.randint(0, 2 * pad + 1, (2, n, 1, 1, 1), device=images.device)
    rows = shift[0] + torch.arange(h, device=images.device).view(1, 1, h, 1)
    cols = shift[1] + torch.arange(w, device=images.device).view(1, 1, 1, w)
    x = x.gather(2, rows.expand(n, c, h, w + 2 * pad)).gather(3, cols.expand(n, c, h, w))
    factors = 1 + jitter * (2 * torch.rand(3, n, 1, 1, 1, device=images.device) - 1)
    x = (x * factors[0]).clamp(0, 255)
    x = x.lerp(_gray(x).mean((2, 3), keepdim=True), 1 - factors[1]).clamp(0, 255)  # contrast
    return x.lerp(_gray(x), 1 - factors[2]).clamp(0, 255)  # saturation


def _gray(x):
    """N x 3 x H x W -> N x 1 x H x W luma, with the weights torchvision's rgb_to_grayscale uses."""
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


# ---------------------------------------------------------------- parsers

def _bad(path, what, name):
    return UserError(f"{path} is not a valid {what}; delete it and fetch it again "
                     f"with: {fetch_command(name, Path(path).parent.parent)}")


def _read_gzip(path, name):
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; truncation raises EOFError
        raise _bad(path, f"gzip file ({e})", name) from None


def read_idx(path, expect_magic, name="mnist"):
    """Parse a gzip IDX file (MNIST): magic 2049 for labels (N), 2051 for images (N x 28 x 28)."""
    raw = _read_gzip(path, name)
    ndim = {2049: 1, 2051: 3}[expect_magic]
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != expect_magic:
        raise _bad(path, f"IDX file (expected magic number {expect_magic})", name)
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + int(np.prod(dims)):
        raise _bad(path, f"IDX file (header says {dims}, data is {len(raw) - header} bytes)", name)
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy())


def _check_labels(path, labels, count, what, name):
    if len(labels) != count:
        raise _bad(path, f"{what} ({count} images but {len(labels)} labels)", name)
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise _bad(path, f"{what} (labels outside 0..9)", name)


def load_mnist(folder, split):
    image_file, label_file = (folder / f for f in SPLIT_FILES[("mnist", split)])
    images = read_idx(image_file, 2051)
    labels = read_idx(label_file, 2049).long()
    if images.shape[1:] != (28, 28):
        raise _bad(image_file, f"MNIST image file (images are {tuple(images.shape[1:])}, not 28x28)", "mnist")
    _check_labels(label_file, labels, len(images), "MNIST label file", "mnist")
    return images[:, None], labels


def load_svhn(folder, split):
    import scipy.io  # only SVHN needs it; keeps `import data` light
    path = folder / SPLIT_FILES[("svhn", split)][0]
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for a damaged .mat
        raise _bad(path, f"SVHN .mat file ({type(e).__name__}: {e})", "svhn") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise _bad(path, "SVHN .mat file (it lacks the 'X' and 'y' arrays)", "svhn")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise _bad(path, f"SVHN .mat file ('X' is {x.dtype} {x.shape}, not uint8 32x32x3xN)", "svhn")
    y = y.reshape(-1).astype(np.int64)
    if len(y) == x.shape[3] and len(y) and (y.min() < 1 or y.max() > 10):
        raise _bad(path, "SVHN .mat file (labels outside 1..10)", "svhn")
    labels = torch.from_numpy(y % 10)  # SVHN writes the digit 0 as label 10
    _check_labels(path, labels, x.shape[3], "SVHN .mat file", "svhn")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, labels


def load_mnist_m(folder, split):
    from PIL import Image
    path = folder / "mnist_m.tar.gz"
    prefix = f"mnist_m/mnist_m_{split}"
    pngs, label_text = {}, None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name == f"{prefix}_labels.txt":
                    label_text = tar.extractfile(member).read().decode()
                elif member.name.startswith(prefix + "/") and member.name.endswith(".png"):
                    pngs[member.name.rsplit("/", 1)[1]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise _bad(path, f"MNIST-M archive ({e})", "mnist_m") from None
    if label_text is None:
        raise _bad(path, f"MNIST-M archive (no {prefix}_labels.txt inside)", "mnist_m")
    images, labels = [], []
    for line_no, line in enumerate(label_text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in pngs or not fields[1].isdigit():
            raise _bad(path, f"MNIST-M archive (line {line_no} of the {split} label file: {line!r})", "mnist_m")
        try:
            img = Image.open(io.BytesIO(pngs[fields[0]])).convert("RGB")
        except OSError as e:
            raise _bad(path, f"MNIST-M archive ({fields[0]}: {e})", "mnist_m") from None
        images.append(np.asarray(img))
        labels.append(int(fields[1]))
    if not images:
        raise _bad(path, f"MNIST-M archive (the {split} label file lists no images)", "mnist_m")
    if len({im.shape for im in images}) != 1:
        raise _bad(path, "MNIST-M archive (images of different sizes)", "mnist_m")
    labels = torch.tensor(labels, dtype=torch.int64)
    _check_labels(path, labels, len(images), "MNIST-M archive", "mnist_m")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), labels


def load_usps(folder, split):
    path = folder / SPLIT_FILES[("usps", split)][0]
    text = _read_gzip(path, "usps").decode(errors="replace")
    try:
        rows = np.array([line.split() for line in text.splitlines() if line.strip()], dtype=np.float64)
    except ValueError:
        raise _bad(path, "USPS file (every line must be a label and 256 numbers)", "usps") from None
    if rows.ndim != 2 or rows.shape[1] != 257:
        raise _bad(path, "USPS file (every line must be a label and 256 numbers)", "usps")
    if np.abs(rows[:, 1:]).max() > 1 or np.any(rows[:, 0] != np.round(rows[:, 0])):
        raise _bad(path, "USPS file (pixels must lie in [-1, 1] and labels be whole numbers)", "usps")
    labels = torch.from_numpy(rows[:, 0].astype(np.int64))
    _check_labels(path, labels, len(rows), "USPS file", "usps")
    pixels = np.round((rows[:, 1:] + 1) * 127.5).astype(np.uint8).reshape(-1, 1, 16, 16)
    return torch.from_numpy(pixels), labels


def load_synth(folder, split):
    import zipfile
    from synth import RENDER_VERSION, SIZE
    path = folder / SPLIT_FILES[("synth", split)][0]
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels, version = f["images"], f["labels"], int(f["version"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise _bad(path, f"synth file ({type(e).__name__})", "synth") from None
    if version != RENDER_VERSION:
        raise UserError(f"{path} was rendered by version {version} of synth.py, this is version {RENDER_VERSION}; "
                        f"render it again with: {fetch_command('synth', folder.parent)}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise _bad(path, f"synth file (images are {images.dtype} {images.shape})", "synth")
    labels = torch.from_numpy(labels.astype(np.int64))
    _check_labels(path, labels, len(images), "synth file", "synth")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), labels


_PARSERS = {"mnist": load_mnist, "svhn": load_svhn, "mnist_m": load_mnist_m, "usps": load_usps, "synth": load_synth}


# ---------------------------------------------------------------- cached loading

def _fingerprint(paths):
    """Cheap identity of the raw files: a changed size or modification time rebuilds the cache."""
    return [CACHE_VERSION] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def _read_cache(path, fingerprint):
    try:
        cached = torch.load(path, weights_only=True)
        if cached["fingerprint"] == fingerprint:
            return cached["images"], cached["labels"]
    # a missing, stale or damaged cache is simply rebuilt (torch.load's errors for a bad file)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, KeyError, TypeError):
        pass
    return None


def load_domain(name, split, root=None):
    """Return (images, labels): uint8 N x 3 x 28 x 28 and int64 N, for a domain and split."""
    if name not in DOMAINS:
        raise UserError(f"unknown domain {name!r}; choose one of {', '.join(DOMAINS)}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose train or test")
    root = Path(root or default_root())
    folder = root / name
    raw = [folder / f for f in SPLIT_FILES[(name, split)]]
    absent = [p.name for p in raw if not p.is_file()]
    if absent:
        raise UserError(f"{name} is not in {root} (missing {', '.join(absent)}); "
                        f"get it with: {fetch_command(name, root)}")
    fingerprint = _fingerprint(raw)
    cache = folder / "cache" / f"{split}.pt"
    hit = _read_cache(cache, fingerprint)
    if hit is not None:
        return hit
    images, labels = _PARSERS[name](folder, split)
    images = to_28x28_rgb(images)
    try:
        save_atomic({"fingerprint": fingerprint, "images": images, "labels": labels}, cache)
    except (OSError, UserError):  # a read-only dataset folder still works, decoded at every load
        pass
    return images, labels
