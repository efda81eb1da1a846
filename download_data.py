"""Fetch the digit datasets into ./data (or --root / $DANN_DATA_DIR), verified by checksum.

    python download_data.py                               # MNIST and SVHN from the official sources
    python download_data.py --datasets mnist mnist_m usps
    python download_data.py --from /mnt/copies            # import local copies instead (offline machines)
    python download_data.py --datasets synth              # render the synthetic digits here (synth.py)

Every file is checked against the checksum table SOURCES below. A valid file already in
place is skipped, a corrupt one is fetched again. Downloads resume after an interruption
(HTTP Range), fall back to the next mirror on an error and land by atomic rename.
"""
import argparse
import contextlib
import hashlib
import os
import shutil
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import requests
from tqdm import tqdm

from common import UserError, make_folder, run_script, write_atomic
import folders
from data import DIGITS, DOMAINS, SPLIT_FILES, SPLITS, default_root, fetch_command, load_domain

CHUNK = 1 << 20

# One row per official file. `checksums` holds every digest a good copy may have
# ("algo:hex"); an empty tuple means no checksum is published, and the file is then
# trusted only after its parser (data.py) has checked its structure and counts.
RemoteFile = namedtuple("RemoteFile", "name urls checksums")

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_USPS_MIRRORS = ("https://hastie.su.domains/ElemStatLearn/datasets/",
                 "https://web.stanford.edu/~hastie/ElemStatLearn/datasets/")


def _mnist_file(name, md5):
    return RemoteFile(name, tuple(m + name for m in _MNIST_MIRRORS), ("md5:" + md5,))


SOURCES = {
    "mnist": (
        _mnist_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        _mnist_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        _mnist_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        _mnist_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "svhn": (
        RemoteFile("train_32x32.mat", ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
                   ("md5:e26dedcc434d2e4c54c9b2d4a06d8373",)),
        RemoteFile("test_32x32.mat", ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
                   ("md5:eb5a983be6a315427106f1b164d9cef3",)),
    ),
    # Ganin's archive has no official checksum. Two byte-different copies in the same layout
    # are accepted: the one pytorch-adapt serves at this URL (its md5 below), and one whose
    # 68,004 files were each checked against a public mirror (sha256 below). Either way the
    # parser then checks every label line against the PNGs it names.
    "mnist_m": (
        RemoteFile("mnist_m.tar.gz", ("https://cornell.box.com/shared/static/jado7quprg6hzzdubvwzh9umr75damwi",),
                   ("md5:859df31c91afe82e80e5012ba928f279",
                    "sha256:0372695e4a26f81db2c163788f0a7a75645a6594d52e53928db49f66a235245a")),
    ),
    # The ESL book publishes no checksum for these; the parser checks counts and ranges.
    "usps": (
        RemoteFile("zip.train.gz", tuple(m + "zip.train.gz" for m in _USPS_MIRRORS), ()),
        RemoteFile("zip.test.gz", tuple(m + "zip.test.gz" for m in _USPS_MIRRORS), ()),
    ),
}


def file_digest(path, algo):
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def matches(path, checksums):
    """True when the file has one of the accepted digests ("algo:hex"), or none is published."""
    return not checksums or any(file_digest(path, c.split(":")[0]) == c.split(":")[1].lower() for c in checksums)


def _stream_to(url, part, timeout):
    """Append url's bytes to `part`, resuming from its current size when the server allows."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416:  # the partial file is already whole (or wrong): start over
            part.unlink()
            return _stream_to(url, part, timeout)
        r.raise_for_status()
        if have and r.status_code != 206:  # server ignored the Range header
            have = 0
        total = int(r.headers.get("Content-Length", 0)) + have or None
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name[:-len(".part")], leave=False, disable=None) as bar:
            for block in r.iter_content(64 * 1024):  # small blocks: an interruption loses little
                f.write(block)
                bar.update(len(block))


def _reason(error):
    """A few words for one failed attempt (requests' own messages run to several lines)."""
    if isinstance(error, requests.HTTPError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return "connection failed or was cut"
    return type(error).__name__


def download(urls, dest, checksums=(), timeout=30, by_hand="fetch the file by hand"):
    """Download `dest` from the first of `urls` that delivers a file with a valid checksum.

    Bytes go to `dest.part`, which survives an interruption so the next call resumes it;
    only a verified file is renamed to `dest`. Raises UserError when every URL fails; its
    message ends with `by_hand`, what the calling script offers instead.
    """
    dest = Path(dest)
    make_folder(dest.parent)
    part = dest.with_name(dest.name + ".part")
    tried = []
    for url in urls:
        try:
            _stream_to(url, part, timeout)
        except requests.RequestException as e:
            tried.append(f"{url} ({_reason(e)})")
            if isinstance(e, requests.HTTPError):
                part.unlink(missing_ok=True)  # an error page is not a partial file
            continue
        if matches(part, checksums):
            os.replace(part, dest)
            return dest
        part.unlink()
        tried.append(f"{url} (checksum mismatch)")
    raise UserError(f"could not download {dest.name}: tried {'; '.join(tried)}. Check the network, or {by_hand}")


def import_file(name, source_dir, dest, checksums):
    """Copy a local copy named `name` found anywhere under source_dir, if its checksum is right."""
    candidates = sorted(Path(source_dir).rglob(name))
    for found in candidates:
        if found.is_file() and matches(found, checksums):
            return write_atomic(dest, lambda tmp: shutil.copyfile(found, tmp))
    why = "has the wrong checksum" if candidates else "is not there"
    raise UserError(f"{name} {why} under {source_dir}; put an intact copy of the official file there")


def needed(name, splits=SPLITS):
    """The official files of dataset `name` that the given splits are decoded from."""
    files = {f for split in splits for f in SPLIT_FILES[(name, split)]}
    return [remote for remote in SOURCES.get(name, ()) if remote.name in files]


def fetch(names, root=None, source_dir=None, log=print, splits=SPLITS, synth_size=None):
    """Make sure every file of the named datasets' splits is present and valid under root/<name>/
    (synth: rendered, see render_synth)."""
    root = Path(root or default_root())
    for name in names:
        if name == "synth":
            render_synth(root, splits, synth_size, log)
        for remote in needed(name, splits):
            dest = root / name / remote.name
            if dest.is_file() and matches(dest, remote.checksums):
                log(f"{name}: {remote.name} present and verified")
                continue
            if dest.is_file():
                log(f"{name}: {remote.name} is corrupt, fetching it again")
                dest.unlink()
            if source_dir:
                import_file(remote.name, source_dir, dest, remote.checksums)
                log(f"{name}: {remote.name} imported from {source_dir}")
            else:
                download(remote.urls, dest, remote.checksums, by_hand="fetch the file by hand and import it with: "
                         f"python download_data.py --from DIR --datasets {name}")
                log(f"{name}: {remote.name} downloaded")


def missing_files(name, root=None, splits=SPLITS):
    folder = Path(root or default_root()) / name
    return sorted({f for split in splits for f in SPLIT_FILES[(name, split)] if not (folder / f).is_file()})


def rendered_count(path):
    """How many pictures a synth file holds, or None if it is absent, unreadable or of another
    version of synth.py (then it is rendered again)."""
    import zipfile
    from synth import RENDER_VERSION
    try:
        with np.load(path, allow_pickle=False) as f:
            return len(f["labels"]) if int(f["version"]) == RENDER_VERSION else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def render_synth(root, splits=SPLITS, train_size=None, log=print, test_size=None):
    """Render the synth domain (synth.py) into root/synth/: train_size training and test_size test
    pictures (defaults: synth.SPLIT_SIZES; a file of another size is kept unless a size is asked
    for), on every core, each file written whole or not at all."""
    import synth
    for split in splits:
        dest = Path(root) / "synth" / SPLIT_FILES[("synth", split)][0]
        asked = train_size if split == "train" else test_size
        wanted = asked or synth.SPLIT_SIZES[split]
        have = rendered_count(dest)
        if have is not None and (have == wanted or asked is None):
            log(f"synth: {dest.name} present ({have:,} pictures)")
            continue
        started = time.time()
        with tqdm(total=wanted, desc=f"synth {split}", unit="picture", leave=False, disable=None) as bar:
            images, labels = synth.render_split(split, wanted, bar.update)
        seconds = time.time() - started

        def write(tmp):
            with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
                np.savez(f, images=images, labels=labels, version=synth.RENDER_VERSION)
        write_atomic(dest, write)
        log(f"synth: rendered {wanted:,} {split} pictures in {seconds:.0f} s ({wanted / seconds:,.0f} pictures/s on "
            f"{os.cpu_count()} cores) into {dest}")


def ensure_datasets(names, root=None, allow_download=True, splits=SPLITS):
    """Fetch the files the named datasets' splits need, where absent. Every dataset is tried, and
    those that could not be had are named in one error; a folder made for a failed download is
    removed again, so that no empty dataset folder is left behind."""
    root = Path(root or default_root())
    failed = []
    for name in names:
        if not missing_files(name, root, splits):
            continue
        if not allow_download:
            failed.append(f"{name}: --no-download is set; get it with: {fetch_command(name, root)}")
            continue
        new_folders = [f for f in (root, root / name) if not f.exists()]
        try:
            fetch([name], root, splits=splits)
        except UserError as e:
            failed.append(f"{name}: {e}")
            for folder in reversed(new_folders):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty: partial downloads (.part) are kept to resume
    if failed:
        raise UserError(f"missing from {root}: " + "; ".join(failed))


def load_datasets(names, splits, root=None, allow_download=True, skipped=None):
    """Fetch what the named built-in datasets' splits need, then load them, folders of pictures
    too: {(name, split): (uint8 images, int64 labels, or None for an unlabelled folder)}
    (training.py and valid.py call this). Pictures of a folder that could not be read are
    appended to `skipped` as (name, split, relative path, why)."""
    ensure_datasets([n for n in names if not folders.is_folder(n)], root, allow_download, splits)
    loaded = {}
    for name in names:
        for split in splits:
            if folders.is_folder(name):
                found = folders.load_folder(name, split, root)
                loaded[name, split] = found["images"], found["labels"]
                if skipped is not None:
                    skipped += [(name, split, *item) for item in found["skipped"]]
            else:
                loaded[name, split] = load_domain(name, split, root)
    return loaded


def class_names(name):
    """A domain's class names: the digits for the built-in domains, the class folders of a folder
    (None for an unlabelled one)."""
    return DIGITS if not folders.is_folder(name) else folders.split_files(name)[0]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=DOMAINS, default=["mnist", "svhn"], metavar="NAME",
                   help=f"datasets to fetch, any of: {' '.join(DOMAINS)} (default: mnist svhn); synth is rendered "
                        "on this machine from the fonts matplotlib ships, no network needed (see synth.py)")
    p.add_argument("--synth-size", type=int, default=None, metavar="N",
                   help="synth: render N training pictures (default: 100000, or keep the file there; the test set "
                        "is always the same 10000)")
    p.add_argument("--root", type=Path, default=None,
                   help="folder to put them in (default: $DANN_DATA_DIR, else ./data)")
    p.add_argument("--from", dest="source_dir", type=Path, default=None, metavar="DIR",
                   help="import local copies found anywhere under DIR (same file names as the "
                        "official downloads) instead of using the network")
    p.add_argument("--export", type=Path, default=None, metavar="DIR",
                   help="then write each dataset as a folder of pictures, DIR/<name>/train|test/<class>/*.png: the "
                        "layout main.py reads a folder domain in (see README, 'Your own pictures')")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="with --export: the first N pictures of each split only")
    p.add_argument("--unlabelled", action="store_true",
                   help="with --export: the training pictures only, directly in DIR/<name>-unlabelled/ with no "
                        "class folders: an unlabelled domain, like a folder of your own pictures")
    args = p.parse_args(argv)
    if args.limit is not None and (args.limit < 1 or not args.export):
        p.error("--limit takes a number of at least 1, with --export")
    if args.unlabelled and not args.export:
        p.error("--unlabelled goes with --export")
    if args.synth_size is not None and (args.synth_size < 1 or "synth" not in args.datasets):
        p.error("--synth-size takes a number of at least 1, with --datasets synth")
    return args


def export(names, root, dest, limit=None, unlabelled=False, log=print):
    """Write each built-in dataset as a folder domain: dest/<name>/<split>/<class>/<index>.png, or
    with `unlabelled` its training pictures as dest/<name>-unlabelled/<index>.png; the pictures as
    the loaders decode them (28 x 28 RGB), their order kept by the file names. The folder appears
    whole or not at all."""
    from PIL import Image
    for name in names:
        final = Path(dest) / (f"{name}-unlabelled" if unlabelled else name)
        partial = final.with_name(f".{final.name}.partial")
        if final.exists():
            raise UserError(f"--export: {final} exists already; remove it or choose another folder")
        shutil.rmtree(partial, ignore_errors=True)
        for split in ["train"] if unlabelled else SPLITS:
            images, labels = load_domain(name, split, root)
            count = len(images) if limit is None else min(limit, len(images))
            folder = {label: partial if unlabelled else partial / split / DIGITS[label]
                      for label in labels[:count].unique().tolist()}
            for path in folder.values():
                make_folder(path)
            for i in tqdm(range(count), desc=f"{name} {split}", unit="picture", leave=False, disable=None):
                picture = Image.fromarray(images[i].permute(1, 2, 0).numpy())
                try:
                    picture.save(folder[labels[i].item()] / f"{i:06d}.png")
                except OSError as e:
                    raise UserError(f"--export: could not write into {partial} ({e.strerror or e}); the "
                                    "pictures written so far are left there to remove") from None
        os.replace(partial, final)
        log(f"{name}: exported to {final}")


def main(argv=None):
    args = parse_args(argv)
    if args.source_dir and not args.source_dir.is_dir():
        raise UserError(f"--from {args.source_dir}: no such folder")
    if args.export and not args.source_dir:  # exporting needs the files present, not fetched again
        ensure_datasets(args.datasets, args.root)
        export(args.datasets, args.root, args.export, args.limit, args.unlabelled)
        return
    fetch(args.datasets, args.root, args.source_dir, synth_size=args.synth_size)
    if args.export:
        export(args.datasets, args.root, args.export, args.limit, args.unlabelled)


if __name__ == "__main__":
    run_script(main, interrupted="interrupted: partial downloads are kept as .part files and resume on the next run")
