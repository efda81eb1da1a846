"""The one decode cache: decoded pictures kept as a torch file beside the data, keyed by a
fingerprint of the files they were decoded from (names, sizes, modification times), so that a
changed, added or removed file rebuilds it and every other load is one fast read."""
import hashlib

import torch

from dann import outputs
from dann.common import UserError

VERSION = 2  # bump when decoding changes, so that old caches are rebuilt


def fingerprint(folder, files):
    """files: (path relative to folder, what else decides its decoding, e.g. its label) pairs."""
    h = hashlib.sha1(str(VERSION).encode())
    for relative, extra in files:
        stat = (folder / relative).stat()
        h.update(f"{relative}\0{extra}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cached(path, key):
    """The dict saved at `path` if its fingerprint is `key` (any fingerprint: None), else None
    (absent, stale or damaged)."""
    try:
        found = torch.load(path, weights_only=True)
        if found["fingerprint"] == key or (key is None and isinstance(found["fingerprint"], str)):
            return found
    except Exception:  # noqa: BLE001  torch.load raises a dozen kinds on a damaged file (IndexError among them)
        pass  # a missing, damaged or foreign file: decoded again
    return None


def keep(path, key, decoded):
    """Save `decoded` (a dict of tensors and plain values) under fingerprint `key`. A read-only data
    folder, or a file of the user's with the cache's name, still works: decoded at every load."""
    try:
        outputs.adopt_marked(path, lambda p: cached(p, None) is not None)  # a cache from before manifests
        outputs.save({**decoded, "fingerprint": key}, path)
    except UserError:
        pass
