"""Downloading a file safely: from the first of several mirrors that delivers a copy with an
accepted checksum, resumed after an interruption (HTTP Range), landing by atomic rename; and
importing a local copy instead, checked the same way."""
import hashlib
import shutil
from pathlib import Path

import requests
from tqdm import tqdm

from dann import outputs
from dann.common import UserError, make_folder

CHUNK = 1 << 20


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
            outputs.forget(part)
            return _stream_to(url, part, timeout)
        r.raise_for_status()
        if have and r.status_code != 206:  # server ignored the Range header
            have = 0
        total = int(r.headers.get("Content-Length", 0)) + have or None
        with outputs.open_log(part, "ab" if have else "wb") as f, tqdm(
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
    outputs.refuse_foreign([dest, part], "move it, or choose another --root")
    tried = []
    for url in urls:
        try:
            _stream_to(url, part, timeout)
        except requests.RequestException as e:
            tried.append(f"{url} ({_reason(e)})")
            if isinstance(e, requests.HTTPError):
                outputs.forget(part)  # an error page is not a partial file
            continue
        if matches(part, checksums):
            outputs.move(part, dest)
            return dest
        outputs.forget(part)
        tried.append(f"{url} (checksum mismatch)")
    raise UserError(f"could not download {dest.name}: tried {'; '.join(tried)}. Check the network, or {by_hand}")


def import_file(name, source_dir, dest, checksums):
    """Copy a local copy named `name` found anywhere under source_dir, if its checksum is right."""
    candidates = sorted(Path(source_dir).rglob(name))
    for found in candidates:
        if found.is_file() and matches(found, checksums):
            return outputs.write(dest, lambda tmp: shutil.copyfile(found, tmp))
    why = "has the wrong checksum" if candidates else "is not there"
    raise UserError(f"{name} {why} under {source_dir}; put an intact copy of the official file there")
