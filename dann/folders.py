"""A folder of pictures as a domain, beside the built-in digit sets.

Layout (torchvision's ImageFolder convention): PATH/<class>/*.png|jpg|..., one subfolder per class,
or PATH/train/<class>/ and PATH/test/<class>/ for fixed splits; a folder that holds its pictures
directly, with no class subfolders, is an unlabelled domain (a target). Without train/ and test/,
TEST_SHARE percent of the pictures are held out as the test split by a hash of each file's relative
path, so adding pictures never moves old ones between splits. Hidden files and files that are not
pictures are ignored. Every picture is read by pictures.read_picture, as image_annotate.py reads a
user's picture, decoded on every core and cached like the built-in domains (cache.py: rebuilt when
a file is added, removed or changed). A picture that cannot be read
is skipped and listed; a folder most of whose pictures cannot be read is refused.
"""
import hashlib
import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch

from dann import cache
from dann.common import UserError
from dann.domains import DOMAINS, SPLITS, default_root
from dann.pictures import UnreadablePicture, picture_suffixes, read_picture, resize_functions

TEST_SHARE = 20  # percent of a folder's pictures held out for testing when it has no test/ subfolder


def passed_over(path, root):
    """Why an entry of a folder domain is not read (None if it is): links are followed only within
    the domain's folder and never back up to a folder above them, and only regular files are
    pictures (a FIFO would block the reader forever)."""
    if os.path.islink(path):
        real = os.path.realpath(path)
        if not os.path.exists(path):
            return "a broken link"
        if os.path.commonpath([real, root]) != root:
            return "a link that leaves the domain's folder, not followed"
        if os.path.isdir(path) and os.path.commonpath([real, os.path.realpath(os.path.dirname(path))]) == real:
            return "a link to a folder above it (a loop), not followed"
    if not os.path.isdir(path) and not os.path.isfile(path):
        return "not a regular file"
    return None


def pictures_under(folder, suffixes, root, passed):
    """Paths (str) of the pictures under `folder`, relative to it, hidden files and folders left
    out; what passed_over() refuses is appended to `passed` as (path relative to root, why)."""
    found, start = [], len(str(folder)) + 1
    for top, subfolders, files in os.walk(folder, followlinks=True):
        prefix = top[start:] + "/" if len(top) >= start else ""
        kept = []
        for name in sorted(d for d in subfolders if not d.startswith(".")):
            why = passed_over(os.path.join(top, name), root)
            if why:
                passed.append((os.path.relpath(os.path.join(top, name), root), why))
            else:
                kept.append(name)
        subfolders[:] = kept
        for name in files:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in suffixes:
                continue
            why = passed_over(os.path.join(top, name), root)
            if why:
                passed.append((os.path.relpath(os.path.join(top, name), root), why))
            else:
                found.append(prefix + name)
    return found


def classes_of(folder, suffixes, root, passed):
    """-> (the class subfolders of `folder`, sorted, or None when its pictures lie in it directly;
    {class or None: its pictures' paths relative to `folder`})."""
    folder = Path(folder)
    entries = sorted(e for e in folder.iterdir() if not e.name.startswith(".")
                     and (e.is_dir() or e.suffix.lower() in suffixes or os.path.islink(e)))
    usable = []
    for entry in entries:
        why = passed_over(str(entry), root)
        if why:
            passed.append((os.path.relpath(entry, root), why))
        else:
            usable.append(entry)
    subfolders = [d.name for d in usable if d.is_dir()]
    loose = [f.name for f in usable if f.is_file() and f.suffix.lower() in suffixes]
    if loose and subfolders:
        raise UserError(f"{folder} holds pictures both directly ({loose[0]}, ...) and in subfolders ({subfolders[0]}, "
                        "...); put each class in a subfolder, or every picture directly in it for an unlabelled domain")
    if loose:
        return None, {None: pictures_under(folder, suffixes, root, passed)}
    if not subfolders:
        raise UserError(f"{folder} holds no pictures ({', '.join(sorted(suffixes)[:6])}, ...); add some, one "
                        "subfolder per class")
    listing = {c: [f"{c}/{p}" for p in pictures_under(folder / c, suffixes, root, passed)] for c in subfolders}
    empty = [c for c in subfolders if not listing[c]]
    if empty:
        raise UserError(f"{folder / empty[0]} holds no pictures; add some or remove the folder")
    if len(subfolders) < 2:
        raise UserError(f"{folder} has one class folder ({subfolders[0]}); a labelled domain needs two or more "
                        "(for an unlabelled one, put the pictures directly in it)")
    return subfolders, listing


def differences(found):
    """Which class folders only one of train/ and test/ has, e.g. "only in train: 3, 7"."""
    train, test = (set(found[split][0] or ()) for split in SPLITS)
    only = [f"only in {split}: {', '.join(sorted(extra))}" for split, extra in (("train", train - test),
                                                                                ("test", test - train)) if extra]
    return "; ".join(only) + ("; a link that leaves the domain's folder is not read" if only else "")


def layout(folder):
    """"fixed" (train/ and test/), "test only" (test/ alone: a folder to evaluate on), or "one" (to be split)."""
    subfolders = {d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if {"train", "test"} <= subfolders:
        return "fixed"
    if subfolders == {"train"} and not any(p.is_file() for p in (folder / "train").iterdir()):
        raise UserError(f"{folder} has train/ but no test/; add test/ with the same class folders, or move the class "
                        f"folders out of train/ into {folder} (20% of each is then held out)")
    return "test only" if subfolders == {"test"} else "one"


def split_files(folder, passed=None):
    """-> (class names or None, {split: [(relative path, class index or None)]}), in a fixed order:
    by file name, then path (exported domains keep their sets' order). What is not read (links out
    of the folder or in a loop, broken links, files that are not regular) is appended to `passed`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: neither a built-in domain ({', '.join(DOMAINS)}) nor a folder of pictures")
    passed = [] if passed is None else passed
    root = os.path.realpath(folder)
    suffixes = picture_suffixes()
    splits = {split: [] for split in SPLITS}
    kind = layout(folder)
    if kind != "one":
        present = SPLITS if kind == "fixed" else ("test",)
        found = {split: classes_of(folder / split, suffixes, root, passed) for split in present}
        names = found["test"][0]
        if kind == "fixed" and found["train"][0] != names:
            raise UserError(f"{folder}/train and {folder}/test have different class folders ({differences(found)}); "
                            "give both the same")
        for split, (_, listing) in found.items():
            splits[split] = [(f"{split}/{path}", names.index(c) if names else None)
                             for c, paths in listing.items() for path in paths]
    else:
        names, listing = classes_of(folder, suffixes, root, passed)
        for c, paths in listing.items():
            for path in paths:
                held_out = int.from_bytes(hashlib.sha1(path.encode()).digest()[:4], "big") % 100 < TEST_SHARE
                splits["test" if held_out else "train"].append((path, names.index(c) if names else None))
    for split in SPLITS:
        splits[split].sort(key=lambda item: (os.path.basename(item[0]), item[0]))
    return names, splits


def read_picture_file(path):
    """A file -> (3 x 28 x 28 uint8 array, None), or (None, why it cannot be read)."""
    try:
        return read_picture(path)[1].numpy(), None
    except UnreadablePicture as e:
        return None, str(e)


def decode(paths):
    """Decode pictures on every core: -> list of (array or None, reason or None). The workers are
    spawned, not forked: a child forked from a process whose torch thread pool has run hangs."""
    if len(paths) < 256 or (os.cpu_count() or 1) < 2:
        return [read_picture_file(p) for p in paths]
    resize_functions()  # one that cannot load stops the script here: in a worker, the pool would wait forever
    with multiprocessing.get_context("spawn").Pool(os.cpu_count(), initializer=torch.set_num_threads,
                                                   initargs=(1,)) as pool:
        return pool.map(read_picture_file, paths, chunksize=256)


def cache_path(folder, split, root):
    key = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    return Path(root or default_root()) / "folders" / f"{Path(folder).name}-{key}" / f"{split}.pt"


def load_folder(folder, split, root=None):
    """-> {"images": uint8 N x 3 x 28 x 28, "labels": int64 N or None, "classes": names or None,
    "skipped": [(relative path, why)]} for one split of a folder domain, from the cache when fresh."""
    folder = Path(folder)
    passed = []
    names, splits = split_files(folder, passed)
    files = splits[split]
    key = cache.fingerprint(folder, files)
    hit = cache.cached(cache_path(folder, split, root), key)
    if hit is not None:
        return {**hit, "skipped": passed + hit["skipped"]}
    decoded = decode([folder / relative for relative, _ in files])
    kept = [i for i, (array, _) in enumerate(decoded) if array is not None]
    skipped = [(files[i][0], why) for i, (array, why) in enumerate(decoded) if array is None]
    if files and len(skipped) > len(files) / 2:
        raise UserError(f"{folder}: {len(skipped)} of the {len(files)} pictures of its {split} split cannot be read "
                        f"({', '.join(p for p, _ in skipped[:3])}, ...); is it a folder of pictures?")
    images = torch.from_numpy(np.stack([decoded[i][0] for i in kept])) if kept else \
        torch.zeros(0, 3, 28, 28, dtype=torch.uint8)
    labels = torch.tensor([files[i][1] for i in kept], dtype=torch.int64) if names else None
    loaded = {"images": images, "labels": labels, "classes": names, "skipped": skipped}
    cache.keep(cache_path(folder, split, root), key, loaded)
    return {**loaded, "skipped": passed + skipped}
