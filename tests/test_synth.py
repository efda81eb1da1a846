"""The synth domain: rendered here, the same bytes every time, labels that a model trained on MNIST
alone agrees with, and a built-in domain like the others."""
import hashlib

import numpy as np
import pytest
import torch

from dann.common import UserError
from conftest import run_script
from dann import datasets, pictures, pretrained, synth

# sha256 of the first 24 pictures of each split at RENDER_VERSION 1: a change to the rendering must
# bump RENDER_VERSION (and these), since every rendered set and trained model depends on them
DIGESTS = {"train": "c5f51ff5bb2778cf19fa31c09d4a2ba8704da48270749b5e7a2194f427333058",
           "test": "dfe1d11a1498dda9a4f475ba9e2eecf0373bdd032f02bf495f3b9d1ae48d0761"}


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_same_version_renders_the_same_pictures(split):
    images, labels = synth.render_range(split, 0, 24)
    assert synth.RENDER_VERSION == 1 and hashlib.sha256(images.tobytes()).hexdigest() == DIGESTS[split]
    assert labels.tolist() == [i % 10 for i in range(24)]


def test_a_picture_depends_on_its_index_only_not_on_how_the_set_is_split_over_cores():
    whole, labels = synth.render_split("test", 300, chunk=64)  # five chunks, on every core
    assert np.array_equal(whole[250:260], synth.render_range("test", 250, 260)[0])
    assert np.array_equal(labels, np.arange(300) % 10)
    assert not np.array_equal(whole[:10], synth.render_range("train", 0, 10)[0])  # the splits differ


def test_a_model_trained_on_mnist_alone_reads_the_plainest_synth_digits_as_labelled():
    """An independent reading of the labels: the same numbers drawn white on black only, read by the
    bundled source-only model (MNIST, never synth). Wrong or off-centre labels would read near 10%."""
    images, labels = synth.render_range("test", 0, 500, plain=True)
    model = pretrained.bundled_model("mnist-mnist_m-source-only")
    with torch.no_grad():
        read = model.predict_proba(pictures.to_28x28_rgb(torch.from_numpy(images).permute(0, 3, 1, 2))).argmax(1)
    agree = read.numpy() == labels
    assert agree.mean() > 0.7
    assert all(agree[labels == digit].mean() > 0.4 for digit in range(10))


def test_synth_is_rendered_on_demand_kept_and_loaded_like_any_domain(tmp_path):
    datasets.render_synth(tmp_path, train_size=120, test_size=50)
    images, labels = datasets.load_domain("synth", "train", tmp_path)
    assert images.shape == (120, 3, 28, 28) and images.dtype == torch.uint8 and labels.tolist()[:3] == [0, 1, 2]
    assert datasets.load_domain("synth", "test", tmp_path)[0].shape == (50, 3, 28, 28)
    said = []
    datasets.render_synth(tmp_path, log=said.append)  # no size asked for: the files there are kept
    assert said == ["synth: synth_train_32x32.npz present (120 pictures)", "synth: synth_test_32x32.npz present (50 pictures)"]
    datasets.render_synth(tmp_path, ["train"], train_size=130, log=said.append)
    assert datasets.load_domain("synth", "train", tmp_path)[0].shape[0] == 130


@pytest.mark.slow
def test_a_damaged_or_stale_synth_file_is_one_line_that_says_how_to_render_it_again(tmp_path):
    folder = tmp_path / "synth"
    folder.mkdir()
    (folder / "synth_test_32x32.npz").write_bytes(b"not a zip file")
    r = run_script("valid.py", "--checkpoint", "mnist-mnist_m-dann", "--domains", "synth", "--data-dir", tmp_path,
                   "--no-download", cwd=tmp_path)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # beside "not evaluated: mnist ..."
    assert r.returncode == 1 and len(errors) == 1 and "synth" in errors[0] and "python download_data.py" in errors[0]
    assert "Traceback" not in r.stderr
    with open(folder / "synth_test_32x32.npz", "wb") as f:
        np.savez(f, images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(2, np.int64), version=0)
    with pytest.raises(UserError, match="rendered by version 0 of synth.py.*render it again"):
        datasets.load_domain("synth", "test", tmp_path)
    assert datasets.rendered_count(folder / "synth_test_32x32.npz") is None  # so it is rendered again


@pytest.mark.slow
def test_download_data_renders_synth_with_a_progress_line_and_refuses_a_bad_size(tmp_path):
    r = run_script("download_data.py", "--datasets", "synth", "--synth-size", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--synth-size takes a number of at least 1" in r.stderr
    r = run_script("download_data.py", "--datasets", "mnist", "--synth-size", "5", cwd=tmp_path)
    assert r.returncode == 2 and "with --datasets synth" in r.stderr
