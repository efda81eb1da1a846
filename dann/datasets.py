"""The datasets a run reads: a built-in domain's split decoded once and cached (load_domain), the
files fetched or rendered where absent (ensure_datasets), folders of pictures beside them
(load_datasets), and the export of a built-in domain as such a folder."""
import contextlib
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dann import cache, folders, outputs
from dann.common import UserError
from dann.domains import DIGITS, DOMAINS, SPLITS, default_root, fetch_command, is_folder
from dann.download import download, import_file, matches
from dann.parsers import BadFile, StaleFile
from dann.pictures import to_28x28_rgb


def load_domain(name, split, root=None):
    """Return (images, labels): uint8 N x 3 x 28 x 28 and int64 N, for a built-in domain and split."""
    if name not in DOMAINS:
        raise UserError(f"unknown domain {name!r}; choose one of {', '.join(DOMAINS)}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose train or test")
    root = Path(root or default_root())
    folder, files = root / name, DOMAINS[name].files[split]
    absent = [f for f in files if not (folder / f).is_file()]
    if absent:
        raise UserError(f"{name} is not in {root} (missing {', '.join(absent)}); "
                        f"get it with: {fetch_command(name, root)}")
    key = cache.fingerprint(folder, [(f, "") for f in files])
    hit = cache.cached(folder / "cache" / f"{split}.pt", key)
    if hit is not None:
        return hit["images"], hit["labels"]
    try:
        images, labels = DOMAINS[name].parse([folder / f for f in files], split)
    except StaleFile as e:
        raise UserError(f"{e}; render it again with: {render_again_command(name, split, e.path, root)}") from None
    except BadFile as e:
        again = (f"render it again with: {render_again_command(name, split, e.path, root)}" if DOMAINS[name].rendered
                 else f"delete it and fetch it again with: {fetch_command(name, root)}")
        raise UserError(f"{e}; {again}") from None
    images = to_28x28_rgb(images)
    cache.keep(folder / "cache" / f"{split}.pt", key, {"images": images, "labels": labels})
    return images, labels


def needed(name, splits=SPLITS):
    """The official files of dataset `name` that the given splits are decoded from."""
    files = DOMAINS[name].files_of(splits)
    return [remote for remote in DOMAINS[name].sources if remote.name in files]


def fetch(names, root=None, source_dir=None, log=print, splits=SPLITS, synth_size=None):
    """Make sure every file of the named datasets' splits is present and valid under root/<name>/
    (synth: rendered, see render_synth)."""
    root = Path(root or default_root())
    for name in names:
        if DOMAINS[name].rendered:
            render_synth(root, splits, synth_size, log)
        for remote in needed(name, splits):
            dest = root / name / remote.name
            if dest.is_file() and matches(dest, remote.checksums):
                log(f"{name}: {remote.name} present and verified")
                continue
            if dest.is_file():  # what the project writes there is verified first: this is a file of the user's
                raise UserError(f"{dest} is not the official file (its checksum differs) and this project did not "
                                "write it; move it away, then fetch again")
            if source_dir:
                import_file(remote.name, source_dir, dest, remote.checksums)
                log(f"{name}: {remote.name} imported from {source_dir}")
            else:
                download(remote.urls, dest, remote.checksums, by_hand="fetch the file by hand and import it with: "
                         f"python download_data.py --from DIR --datasets {name}")
                log(f"{name}: {remote.name} downloaded")


def missing_files(name, root=None, splits=SPLITS):
    folder = Path(root or default_root()) / name
    return [f for f in DOMAINS[name].files_of(splits) if not (folder / f).is_file()]


def at_hand(name, splits, root=None):
    """Whether a domain can be read without fetching anything: a folder that exists, or a built-in
    domain whose files for these splits are in place."""
    return Path(name).is_dir() if is_folder(name) else not missing_files(name, root, splits)


def rendered_count(path, any_version=False):
    """How many pictures a synth file holds, or None if it is absent, unreadable or (unless
    any_version) of another version of synth.py (then it is rendered again)."""
    import zipfile
    from dann.synth import RENDER_VERSION
    try:
        with np.load(path, allow_pickle=False) as f:
            return len(f["labels"]) if any_version or int(f["version"]) == RENDER_VERSION else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def render_again_command(name, split, path, root):
    """The command that renders a stale or damaged file of a rendered domain again, at the size it had
    (the default size when that cannot be read any more, said so)."""
    if split != "train":
        return fetch_command(name, root)
    count = rendered_count(path, any_version=True)
    if count is None:
        return (f"{fetch_command(name, root)} (add --synth-size N to render N training pictures, as you may have; "
                "the default is 100,000)")
    return f"{fetch_command(name, root)} --synth-size {count}"


def render_synth(root, splits=SPLITS, train_size=None, log=print, test_size=None):
    """Render the synth domain (synth.py) into root/synth/: train_size training and test_size test
    pictures (defaults: synth.SPLIT_SIZES; a file of another size is kept unless a size is asked
    for), on every core, each file written whole or not at all."""
    from dann import synth
    for split in splits:
        dest = Path(root) / "synth" / DOMAINS["synth"].files[split][0]
        asked = train_size if split == "train" else test_size
        wanted = asked or synth.SPLIT_SIZES[split]
        have = rendered_count(dest)
        if have is not None and (have == wanted or asked is None):
            log(f"synth: {dest.name} present ({have:,} pictures)")
            continue
        log(f"synth: rendering {wanted:,} {split} pictures on {os.cpu_count()} cores (about "
            f"{max(1, round(wanted / 2000 / (os.cpu_count() or 1)))} s on a recent CPU)")
        started = time.time()
        with tqdm(total=wanted, desc=f"synth {split}", unit="picture", leave=False, disable=None) as bar:
            images, labels = synth.render_split(split, wanted, bar.update)
        seconds = time.time() - started

        def write(tmp):
            with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
                np.savez(f, images=images, labels=labels, version=synth.RENDER_VERSION)
        outputs.write(dest, write)
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
        if not allow_download and not DOMAINS[name].rendered:  # rendering needs no network
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
        raise UserError(f"missing from {Path(root).resolve()}: " + "; ".join(failed))


def load_datasets(names, splits, root=None, allow_download=True, skipped=None):
    """Fetch what the named built-in datasets' splits need, then load them, folders of pictures
    too: {(name, split): (uint8 images, int64 labels, or None for an unlabelled folder)}
    (training.py and valid.py call this). Pictures of a folder that could not be read are
    appended to `skipped` as (name, split, relative path, why)."""
    ensure_datasets([n for n in names if not is_folder(n)], root, allow_download, splits)
    loaded = {}
    for name in names:
        for split in splits:
            if is_folder(name):
                found = folders.load_folder(name, split, root)
                loaded[name, split] = found["images"], found["labels"]
                if skipped is not None:  # a link passed over is found by both splits: listed once
                    listed = {(n, path) for n, _, path, _ in skipped}
                    skipped += [(name, split, *item) for item in found["skipped"] if (name, item[0]) not in listed]
            else:
                loaded[name, split] = load_domain(name, split, root)
    return loaded


def imbalanced(images, labels, ratio, classes, name):
    """The first round(n_c * ratio^(-c / (classes - 1))) pictures of each class c, in their order: a
    skewed version of a labelled domain (--target-imbalance), the same for every seed."""
    if labels is None:
        raise UserError(f"--target-imbalance keeps a share of each class, and {name} has no labels; "
                        "use a labelled target, or leave the flag out")
    keep = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    for c in range(classes):
        members = (labels == c).nonzero().squeeze(1)
        keep[members[:round(len(members) * ratio ** (-c / max(1, classes - 1)))]] = True
    return images[keep], labels[keep]


def joined(pictures):
    """Several domains' (images, labels) as one set, in their order."""
    images, labels = zip(*pictures)
    return torch.cat(images), None if any(y is None for y in labels) else torch.cat(labels)


@dataclasses.dataclass
class TaskData:
    """A task's pictures, each an (uint8 images, int64 labels or None) pair: the source's and the
    target's training and test sets (several sources joined one after another), the class names,
    and where several sources are joined, the size of each one's training and test part (the step
    draws from each, the label-free scores read an equal share of each). What a command does not
    need is None."""
    source_train: tuple = None
    source_test: tuple = None
    target_train: tuple = None
    target_test: tuple = None
    classes: tuple = DIGITS
    source_parts: tuple = None
    source_test_parts: tuple = None

    def of(self, domain, split):
        """The pictures of "source" or "target" and "train" or "test"."""
        return getattr(self, f"{domain}_{split}")

    def parts(self, domain, split="train"):
        """The sizes of a joined source's parts (None: one source, or the target)."""
        return None if domain != "source" else self.source_parts if split == "train" else self.source_test_parts


def task_data(sources, target, root=None, allow_download=True, device="cpu"):
    """The TaskData of a finished model's domains, as its label-free scores read them: the sources'
    and the target's training and test sets, whole, on `device`."""
    loaded = load_datasets(dict.fromkeys([*sources, target]), SPLITS, root, allow_download)

    def joined_on_device(names, split):
        return tuple(t if t is None else t.to(device) for t in joined([loaded[name, split] for name in names]))
    return TaskData(**{f"{role}_{split}": joined_on_device(names, split) for role, names in (("source", sources),
                       ("target", [target])) for split in SPLITS},
                    source_parts=tuple(len(loaded[name, "train"][0]) for name in sources),
                    source_test_parts=tuple(len(loaded[name, "test"][0]) for name in sources))


def class_names(name):
    """A domain's class names: the digits for the built-in domains, the class folders of a folder
    (None for an unlabelled one)."""
    return DIGITS if not is_folder(name) else folders.split_files(name)[0]




def export(names, root, dest, limit=None, unlabelled=False, log=print):
    """Write each built-in dataset as a folder domain: dest/<name>/<split>/<class>/<index>.png, or
    with `unlabelled` its training pictures as dest/<name>-unlabelled/<index>.png; the pictures as
    the loaders decode them (28 x 28 RGB), their order kept by the file names. The folder appears
    whole or not at all, and never where anything is already."""
    from PIL import Image
    for name in names:
        final = Path(dest) / (f"{name}-unlabelled" if unlabelled else name)
        if final.exists():
            raise UserError(f"--export: {final} exists already; remove it or choose another folder")

        def pictures():
            for split in ["train"] if unlabelled else SPLITS:
                images, labels = load_domain(name, split, root)
                count = len(images) if limit is None else min(limit, len(images))
                for i in tqdm(range(count), desc=f"{name} {split}", unit="picture", leave=False, disable=None):
                    folder = Path() if unlabelled else Path(split) / DIGITS[labels[i].item()]
                    yield folder / f"{i:06d}.png", outputs.png_bytes(Image.fromarray(images[i].permute(1, 2, 0).numpy()))
        outputs.write_new_folder(final, pictures(), "--export")
        log(f"{name}: exported to {final}")
