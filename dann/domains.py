"""The built-in domains, one record each: the files of each split, where they come from and their
checksums, the parser that reads them, the paper's network when the domain is the source, and
whether the files are downloaded or rendered here. Adding a domain is one entry in DOMAINS (and a
parser in parsers.py, a tiny copy in tests/conftest.py's MAKERS).

Every domain's pictures become 3 x 28 x 28 uint8 (pictures.to_28x28_rgb); a folder of a user's
pictures is a domain too (folders.py), named by its path instead of a name from this table."""
import os
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dann import parsers

DIGITS = tuple(str(digit) for digit in range(10))  # the built-in domains' class names
SPLITS = ("train", "test")

# One official file: every digest a good copy may have ("algo:hex"); an empty tuple means none is
# published, and the file is then trusted only after its parser has checked its structure and counts.
RemoteFile = namedtuple("RemoteFile", "name urls checksums")


@dataclass(frozen=True)
class Domain:
    name: str
    files: dict  # split -> the raw files it is decoded from (names in <data root>/<name>/)
    parse: Callable  # (paths of the split's files, split) -> (uint8 images, int64 labels)
    sources: tuple = ()  # RemoteFile for each file that is downloaded
    arch: str = "mnist"  # the paper's network when this domain is the source
    rendered: bool = False  # made on this machine (synth.py), not downloaded

    def files_of(self, splits):
        return sorted({f for split in splits for f in self.files[split]})


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_USPS_MIRRORS = ("https://hastie.su.domains/ElemStatLearn/datasets/",
                 "https://web.stanford.edu/~hastie/ElemStatLearn/datasets/")


def _mnist_file(name, md5):
    return RemoteFile(name, tuple(m + name for m in _MNIST_MIRRORS), ("md5:" + md5,))


DOMAINS = {d.name: d for d in (
    Domain("mnist", {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                     "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}, parsers.load_mnist, (
        _mnist_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        _mnist_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        _mnist_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"))),
    Domain("svhn", {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}, parsers.load_svhn, (
        RemoteFile("train_32x32.mat", ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
                   ("md5:e26dedcc434d2e4c54c9b2d4a06d8373",)),
        RemoteFile("test_32x32.mat", ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
                   ("md5:eb5a983be6a315427106f1b164d9cef3",))), arch="svhn"),
    # Ganin's archive has no official checksum. Two byte-different copies in the same layout are
    # accepted: the one pytorch-adapt serves at this URL (its md5 below), and one whose 68,004 files
    # were each checked against a public mirror (sha256 below). Either way the parser then checks
    # every label line against the PNGs it names.
    Domain("mnist_m", {"train": ("mnist_m.tar.gz",), "test": ("mnist_m.tar.gz",)}, parsers.load_mnist_m, (
        RemoteFile("mnist_m.tar.gz", ("https://cornell.box.com/shared/static/jado7quprg6hzzdubvwzh9umr75damwi",),
                   ("md5:859df31c91afe82e80e5012ba928f279",
                    "sha256:0372695e4a26f81db2c163788f0a7a75645a6594d52e53928db49f66a235245a")),)),
    # The ESL book publishes no checksum for these; the parser checks counts and ranges.
    Domain("usps", {"train": ("zip.train.gz",), "test": ("zip.test.gz",)}, parsers.load_usps, (
        RemoteFile("zip.train.gz", tuple(m + "zip.train.gz" for m in _USPS_MIRRORS), ()),
        RemoteFile("zip.test.gz", tuple(m + "zip.test.gz" for m in _USPS_MIRRORS), ()))),
    Domain("synth", {"train": ("synth_train_32x32.npz",), "test": ("synth_test_32x32.npz",)}, parsers.load_synth,
           rendered=True),
)}


def default_root():
    return Path(os.environ.get("DANN_DATA_DIR", "data"))


def fetch_command(name, root):
    return f"python download_data.py --datasets {name} --root {root}"


def is_folder(name):
    """Whether a domain name means a folder of pictures (anything that is not a built-in domain's name)."""
    return name not in DOMAINS


def source_parts(source):
    """The domains a --source names: several joined by "+" ("mnist+synth"), else the one it is (a
    folder whose own name holds a "+" is one domain)."""
    if "+" not in source or source in DOMAINS or Path(source).is_dir():
        return (source,)
    return tuple(source.split("+"))


def default_arch(source):
    """The paper's network for a task whose source is `source` (mnist for a folder); of several
    sources, the larger network where any of them needs it."""
    archs = {DOMAINS[part].arch if part in DOMAINS else "mnist" for part in source_parts(source)}
    return "svhn" if "svhn" in archs else "mnist"
