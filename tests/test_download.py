import hashlib
import os
import subprocess
import sys

import pytest

from dann.common import UserError
from conftest import REPO, SHARED_DATA, make_mnist, with_sources
from httpserver import FileServer
from dann import datasets, domains, download, outputs

PAYLOAD = os.urandom(300_000)
MD5 = "md5:" + hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


def test_downloads_and_verifies(server, tmp_path):
    server.files["/a/file.bin"] = PAYLOAD
    dest = download.download([server.url + "/a/file.bin"], tmp_path / "file.bin", (MD5,))
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dann-manifest.json", "file.bin"]
    assert outputs.is_ours(dest)


def test_falls_back_to_next_mirror_on_http_error_and_bad_checksum(server, tmp_path):
    server.errors["/one/file.bin"] = 503
    server.files["/two/file.bin"] = b"corrupted copy"
    server.files["/three/file.bin"] = PAYLOAD
    urls = [server.url + m + "/file.bin" for m in ("/one", "/two", "/three")]
    dest = download.download(urls, tmp_path / "file.bin", (MD5,))
    assert dest.read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/one/file.bin", "/two/file.bin", "/three/file.bin"]


def test_resumes_a_partial_file_with_range(server, tmp_path):
    server.files["/file.bin"] = PAYLOAD
    server.cut_after["/file.bin"] = 100_000
    url = server.url + "/file.bin"
    with pytest.raises(UserError, match="could not download file.bin"):
        download.download([url], tmp_path / "file.bin", (MD5,))
    # the interrupted bytes wait in a .part file; nothing looks complete
    assert not (tmp_path / "file.bin").exists()
    kept = (tmp_path / "file.bin.part").read_bytes()
    assert 0 < len(kept) <= 100_000 and PAYLOAD.startswith(kept)
    download.download([url], tmp_path / "file.bin", (MD5,))
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/file.bin", f"bytes={len(kept)}-")
    assert not (tmp_path / "file.bin.part").exists()


def test_a_stale_part_file_is_discarded_when_the_server_refuses_its_range(server, tmp_path):
    server.files["/file.bin"] = PAYLOAD
    with outputs.open_log(tmp_path / "file.bin.part", "wb") as part:  # an earlier download's, longer than the file
        part.write(os.urandom(400_000))
    download.download([server.url + "/file.bin"], tmp_path / "file.bin", (MD5,))
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_a_part_file_of_the_users_is_never_appended_to(server, tmp_path):
    server.files["/file.bin"] = PAYLOAD
    (tmp_path / "file.bin.part").write_bytes(b"mine")
    with pytest.raises(UserError, match="file.bin.part exists and was not written by this project"):
        download.download([server.url + "/file.bin"], tmp_path / "file.bin", (MD5,))
    assert (tmp_path / "file.bin.part").read_bytes() == b"mine" and not server.requests


def test_nothing_is_left_behind_when_every_source_fails(server, tmp_path):
    server.files["/bad/file.bin"] = b"not the file"
    server.errors["/gone/file.bin"] = 404
    urls = [server.url + "/bad/file.bin", server.url + "/gone/file.bin"]
    with pytest.raises(UserError) as err:
        download.download(urls, tmp_path / "file.bin", (MD5,), by_hand="do what the calling script says")
    message = str(err.value)
    assert "checksum mismatch" in message and "HTTP 404" in message
    assert message.endswith("Check the network, or do what the calling script says")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_dataset_that_cannot_be_downloaded_names_the_import_command(tmp_path, monkeypatch):
    with_sources(monkeypatch, "usps", [domains.RemoteFile("zip.train.gz", ("http://127.0.0.1:9/zip.train.gz",), ())])
    with pytest.raises(UserError) as err:
        datasets.ensure_datasets(["usps"], tmp_path)
    assert str(err.value).endswith("python download_data.py --from DIR --datasets usps")


def test_unreachable_host_is_reported_not_raised(tmp_path):
    with pytest.raises(UserError, match="connection failed"):
        download.download(["http://127.0.0.1:9/file.bin"], tmp_path / "file.bin", (MD5,), timeout=2)


def test_fetch_skips_valid_files_and_never_replaces_a_changed_one(server, tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_mnist(src)
    table = {"mnist": tuple(
        domains.RemoteFile(f.name, (f"{server.url}/{f.name}",), ("md5:" + hashlib.md5((src / f.name).read_bytes()).hexdigest(),))
        for f in domains.DOMAINS["mnist"].sources)}
    for f in table["mnist"]:
        server.files["/" + f.name] = (src / f.name).read_bytes()
    with_sources(monkeypatch, "mnist", table["mnist"])
    root = tmp_path / "data"
    datasets.fetch(["mnist"], root, log=lambda *_: None)
    assert len(server.requests) == 4
    damaged = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(b"damaged")  # or the user's own file of that name: the project cannot tell
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz is not the official file .* move it away"):
        datasets.fetch(["mnist"], root, log=lambda *_: None)
    assert damaged.read_bytes() == b"damaged" and len(server.requests) == 4
    damaged.unlink()
    datasets.fetch(["mnist"], root, log=lambda *_: None)
    assert len(server.requests) == 5 and server.requests[-1][0] == "/t10k-labels-idx1-ubyte.gz"
    assert datasets.load_domain("mnist", "test", root)[0].shape == (20, 3, 28, 28)


def test_import_from_a_folder_finds_files_anywhere_and_checks_them(tmp_path, monkeypatch):
    src = tmp_path / "copies" / "deep" / "er"
    make_mnist(src)
    table = {"mnist": tuple(
        domains.RemoteFile(f.name, (), ("md5:" + hashlib.md5((src / f.name).read_bytes()).hexdigest(),))
        for f in domains.DOMAINS["mnist"].sources)}
    with_sources(monkeypatch, "mnist", table["mnist"])
    root = tmp_path / "data"
    datasets.fetch(["mnist"], root, source_dir=tmp_path / "copies", log=lambda *_: None)
    assert datasets.load_domain("mnist", "train", root)[0].shape == (40, 3, 28, 28)
    (src / "train-images-idx3-ubyte.gz").write_bytes(b"bad")
    (root / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz has the wrong checksum under"):
        datasets.fetch(["mnist"], root, source_dir=tmp_path / "copies", log=lambda *_: None)
    assert not (root / "mnist" / "train-images-idx3-ubyte.gz").exists()


def run_cli(*args, **env):
    return subprocess.run([sys.executable, "download_data.py", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.slow
def test_cli_bad_inputs_get_one_line_and_nonzero_exit(tmp_path):
    r = run_cli("--from", str(tmp_path / "nowhere"), "--root", str(tmp_path / "d"))
    assert r.returncode != 0 and r.stderr.strip() == f"error: --from {tmp_path / 'nowhere'}: no such folder"
    r = run_cli("--from", str(tmp_path), "--root", str(tmp_path / "d"), "--datasets", "usps")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "zip.train.gz is not there under" in r.stderr
    (tmp_path / "file").write_text("x")
    r = run_cli("--root", str(tmp_path / "file"), "--datasets", "usps")  # fails before any network access
    assert r.returncode == 1 and r.stderr.startswith(f"error: cannot create the folder {tmp_path / 'file' / 'usps'}")
    r = run_cli("--datasets", "cifar")
    assert r.returncode == 2 and "invalid choice: 'cifar'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_imports_real_mnist_with_from(tmp_path):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_DATA}")
    r = run_cli("--from", str(SHARED_DATA), "--datasets", "mnist", DANN_DATA_DIR=str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "d" / "mnist").iterdir() if p.name != outputs.MANIFEST) == \
        sorted(f.name for f in domains.DOMAINS["mnist"].sources)
    r = run_cli("--from", str(SHARED_DATA), "--datasets", "mnist", DANN_DATA_DIR=str(tmp_path / "d"))
    assert r.stdout.count("present and verified") == 4
