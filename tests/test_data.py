import dataclasses
import gzip
import os
import time

import numpy as np
import pytest
import torch

from dann.common import UserError
from conftest import digit_images, make_mnist, write_idx
from dann import augment, common, datasets, domains, pictures


@pytest.mark.parametrize("name", domains.DOMAINS)
@pytest.mark.parametrize("split", domains.SPLITS)
def test_every_domain_loads_as_28x28_rgb_uint8(synthetic_root, name, split):
    images, labels = datasets.load_domain(name, split, synthetic_root)
    n = {"train": {"mnist": 40}.get(name, 30), "test": 20}[split]
    assert images.shape == (n, 3, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [i % 10 for i in range(n)]
    # the label-dependent bright bar survives decoding and resizing at the right height
    rows = images.float().mean(dim=(1, 3))
    assert rows[1].argmax() < rows[5].argmax() < rows[9].argmax()


def test_gray_domains_are_replicated_to_three_equal_channels(synthetic_root):
    for name in ("mnist", "usps"):
        images, _ = datasets.load_domain(name, "train", synthetic_root)
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])


def test_mnist_pixels_are_exactly_the_idx_bytes(synthetic_root):
    images, _ = datasets.load_domain("mnist", "test", synthetic_root)
    expected = digit_images(np.arange(20) % 10, 28, 1)[..., 0]
    assert np.array_equal(images[:, 0].numpy(), expected)


def test_svhn_label_10_means_digit_0(synthetic_root):
    _, labels = datasets.load_domain("svhn", "train", synthetic_root)
    assert labels[0] == 0 and labels[10] == 0 and 10 not in labels.tolist()


def test_cache_is_used_and_rebuilt_when_the_raw_file_changes(synthetic_root):
    first, _ = datasets.load_domain("mnist", "train", synthetic_root)
    cache = synthetic_root / "mnist" / "cache" / "train.pt"
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    datasets.load_domain("mnist", "train", synthetic_root)
    assert cache.stat().st_mtime_ns == stamp  # a hit does not rewrite it
    # replace the raw images with different content: the cache must not answer any more
    labels = np.arange(40) % 10
    write_idx(synthetic_root / "mnist" / "train-images-idx3-ubyte.gz", 255 - digit_images(labels, 28, 1)[..., 0], 2051)
    os.utime(synthetic_root / "mnist" / "train-images-idx3-ubyte.gz", ns=(time.time_ns(), time.time_ns() + 10**9))
    second, _ = datasets.load_domain("mnist", "train", synthetic_root)
    assert torch.equal(second, 255 - first)


def test_damaged_cache_is_rebuilt(synthetic_root):
    datasets.load_domain("usps", "test", synthetic_root)
    (synthetic_root / "usps" / "cache" / "test.pt").write_bytes(b"garbage")
    images, _ = datasets.load_domain("usps", "test", synthetic_root)
    assert images.shape == (20, 3, 28, 28)


def test_a_dataset_folder_that_cannot_hold_a_cache_still_loads(synthetic_root):
    (synthetic_root / "usps" / "cache").write_text("a file where the cache folder would go")  # as read-only would
    first, _ = datasets.load_domain("usps", "test", synthetic_root)
    again, _ = datasets.load_domain("usps", "test", synthetic_root)
    assert first.shape == (20, 3, 28, 28) and torch.equal(first, again)
    assert list((synthetic_root / "usps").glob("*.tmp")) == []


def test_make_folder_with_a_file_in_the_way_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"cannot create the folder .*f/sub \(Not a directory\)"):
        common.make_folder(tmp_path / "f" / "sub")
    assert common.make_folder(tmp_path / "a" / "b").is_dir()


def test_missing_dataset_names_the_command_to_get_it(tmp_path):
    with pytest.raises(UserError, match=r"python download_data.py --datasets svhn --root"):
        datasets.load_domain("svhn", "train", tmp_path)


def test_unknown_domain_and_split(tmp_path):
    with pytest.raises(UserError, match="unknown domain"):
        datasets.load_domain("cifar", "train", tmp_path)
    with pytest.raises(UserError, match="unknown split"):
        datasets.load_domain("mnist", "val", tmp_path)


def _corrupt(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "not-gzip":
        path.write_bytes(b"<html>not found</html>")
    return path


@pytest.mark.parametrize("how", ["truncated", "not-gzip"])
def test_damaged_mnist_file_gets_one_clear_error(tmp_path, how):
    make_mnist(tmp_path / "mnist")
    _corrupt(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", how)
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.gz is not a valid .*download_data.py"):
        datasets.load_domain("mnist", "train", tmp_path)


def test_idx_with_wrong_magic_or_length(tmp_path):
    make_mnist(tmp_path / "mnist")
    labels_file = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    write_idx(labels_file, np.zeros(40), 2051)  # an image file where labels belong
    with pytest.raises(UserError, match="magic number 2049"):
        datasets.load_domain("mnist", "train", tmp_path)
    write_idx(labels_file, np.zeros(39), 2049)  # one label short
    with pytest.raises(UserError, match="40 images but 39 labels"):
        datasets.load_domain("mnist", "train", tmp_path)
    with gzip.open(labels_file, "wb") as f:  # header promises more bytes than there are
        f.write((2049).to_bytes(4, "big") + (40).to_bytes(4, "big") + bytes(10))
    with pytest.raises(UserError, match="header says"):
        datasets.load_domain("mnist", "train", tmp_path)


def test_bad_svhn_files(synthetic_root):
    import scipy.io
    path = synthetic_root / "svhn" / "train_32x32.mat"
    scipy.io.savemat(path, {"images": np.zeros((2, 2))})
    with pytest.raises(UserError, match="lacks the 'X' and 'y'"):
        datasets.load_domain("svhn", "train", synthetic_root)
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1))})
    with pytest.raises(UserError, match="not uint8 32x32x3xN"):
        datasets.load_domain("svhn", "train", synthetic_root)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.full((4, 1), 11)})
    with pytest.raises(UserError, match=r"labels outside 1..10"):
        datasets.load_domain("svhn", "train", synthetic_root)
    _corrupt(synthetic_root / "svhn" / "test_32x32.mat", "truncated")
    with pytest.raises(UserError, match="test_32x32.mat is not a valid SVHN .mat"):
        datasets.load_domain("svhn", "test", synthetic_root)


def test_bad_mnist_m_archives(synthetic_root):
    path = synthetic_root / "mnist_m" / "mnist_m.tar.gz"
    _corrupt(path, "truncated")
    with pytest.raises(UserError, match="not a valid MNIST-M archive"):
        datasets.load_domain("mnist_m", "train", synthetic_root)
    import tarfile
    with tarfile.open(path, "w:gz"):
        pass  # an archive without the label files
    with pytest.raises(UserError, match="no mnist_m/mnist_m_test_labels.txt"):
        datasets.load_domain("mnist_m", "test", synthetic_root)


def test_bad_usps_files(synthetic_root):
    path = synthetic_root / "usps" / "zip.train.gz"
    with gzip.open(path, "wt") as f:
        f.write("3 0.5 0.5\n")
    with pytest.raises(UserError, match="a label and 256 numbers"):
        datasets.load_domain("usps", "train", synthetic_root)
    with gzip.open(path, "wt") as f:
        f.write("3 " + " ".join(["7"] * 256) + "\n")
    with pytest.raises(UserError, match=r"\[-1, 1\]"):
        datasets.load_domain("usps", "train", synthetic_root)


def test_to_28x28_rgb_resizes_with_antialiasing():
    # a 1-pixel checkerboard must average to grey, not alias into stripes
    board = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2 * 255
    out = pictures.to_28x28_rgb(board.to(torch.uint8)[None, None])
    assert out.shape == (1, 3, 28, 28)
    assert (out.float() - 127.5).abs().max() < 20


def test_real_mnist_and_mnist_m_counts_and_histograms(real_root, monkeypatch):
    expected = {
        ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        ("mnist_m", "train"): [5825, 6640, 5853, 6028, 5746, 5331, 5812, 6158, 5757, 5851],
        ("mnist_m", "test"): [878, 1016, 933, 908, 890, 807, 856, 914, 880, 919],
    }
    for (name, split), hist in expected.items():
        images, labels = datasets.load_domain(name, split, real_root)
        assert images.shape == (sum(hist), 3, 28, 28) and images.dtype == torch.uint8
        assert labels.bincount(minlength=10).tolist() == hist
    # MNIST-M is MNIST blended over photos: same labels, in the same order
    assert torch.equal(datasets.load_domain("mnist_m", "test", real_root)[1], datasets.load_domain("mnist", "test", real_root)[1][:9001])
    # a second load is served from the cache: the parser is not called again
    monkeypatch.setitem(domains.DOMAINS, "mnist_m", dataclasses.replace(
        domains.DOMAINS["mnist_m"], parse=lambda *a: pytest.fail("cache was not used")))
    assert len(datasets.load_domain("mnist_m", "train", real_root)[0]) == 59001


def test_augment_equals_torchvision_crop_and_jitter_per_image():
    import torchvision.transforms.v2.functional as TF
    images = torch.randint(0, 256, (6, 3, 28, 28), dtype=torch.uint8)
    torch.manual_seed(5)
    out = augment.augment(images)
    torch.manual_seed(5)  # the same draws, in the order augment makes them
    shift = torch.randint(0, 9, (2, 6, 1, 1, 1))
    factors = 1 + 0.4 * (2 * torch.rand(3, 6, 1, 1, 1) - 1)
    assert out.dtype == torch.float32 and out.shape == images.shape
    for i in range(6):
        x = TF.pad(images[i].float() / 255, [4, 4, 4, 4])  # RandomCrop(28, padding=4) at this offset
        x = x[:, shift[0, i]:shift[0, i] + 28, shift[1, i]:shift[1, i] + 28]
        x = TF.adjust_brightness(x, factors[0, i].item())
        x = TF.adjust_contrast(x, factors[1, i].item())
        x = TF.adjust_saturation(x, factors[2, i].item())
        assert torch.allclose(out[i], x * 255, atol=1e-3), i
    assert len({tuple(s) for s in shift.view(2, 6).T.tolist()}) > 1  # drawn per image


def test_augment_without_jitter_only_shifts():
    images = torch.randint(1, 256, (50, 3, 28, 28), dtype=torch.uint8)
    out = augment.augment(images, jitter=0.0)
    seen = set()
    for x, y in zip(images.float(), out):
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
        shifts = [(r, c) for r in range(9) for c in range(9) if torch.equal(padded[:, r:r + 28, c:c + 28], y)]
        assert len(shifts) == 1
        seen.add(shifts[0])
    assert len(seen) > 20  # 81 possible shifts


def test_a_new_built_in_domain_is_one_entry_in_the_registry(synthetic_root, monkeypatch):
    """What README's 'A domain' promises: one Domain record, and loading, fetching and the default network follow."""
    (synthetic_root / "digits2").symlink_to(synthetic_root / "mnist")
    mnist = domains.DOMAINS["mnist"]
    monkeypatch.setitem(domains.DOMAINS, "digits2", domains.Domain("digits2", mnist.files, mnist.parse, arch="svhn"))
    images, labels = datasets.load_domain("digits2", "test", synthetic_root)
    assert torch.equal(images, datasets.load_domain("mnist", "test", synthetic_root)[0])
    assert domains.default_arch("digits2") == "svhn" and not domains.is_folder("digits2")
    assert datasets.missing_files("digits2", synthetic_root) == [] and datasets.class_names("digits2") == domains.DIGITS


def test_strong_augmentation_of_a_batch_equals_each_picture_augmented_alone_with_its_draws():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 28, 28), dtype=torch.uint8)
    draws = augment.draw_strong(images.shape, images.device)
    batch = augment.apply_strong(images, draws)
    for i in range(16):
        alone = augment.apply_strong(images[i:i + 1], {name: d[i:i + 1] for name, d in draws.items()})
        assert torch.allclose(batch[i:i + 1], alone, atol=1e-3), i
    assert batch.dtype == torch.float32 and batch.min() >= 0 and batch.max() <= 255
    assert len({tuple(d.flatten().tolist()) for d in draws["affine"]}) == 16  # drawn per picture


def test_strong_augmentation_is_the_same_for_the_same_seed_and_differs_for_another():
    images = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8)
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(augment.strong_augment(images))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def strong_draws(n, **changed):
    """Draws that change nothing (identity warp, no colour change, no blur, noise or cutout), but `changed`."""
    draws = {"affine": torch.eye(2).expand(n, 2, 2), "shift": torch.zeros(n, 2), "colour": torch.ones(n, 3),
             "invert": torch.zeros(n, dtype=torch.bool), "blur": torch.zeros(n), "noise": torch.zeros(n, 3, 28, 28),
             "cutout": torch.zeros(n, 3)}
    return {**draws, **changed}


def test_each_strong_distortion_does_what_it_says():
    images = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    x = images.float()
    apply = augment.apply_strong
    assert torch.allclose(apply(images, strong_draws(2)), x, atol=1e-3)
    quarter_turn = torch.tensor([[0.0, -1.0], [1.0, 0.0]]).expand(2, 2, 2)
    assert torch.allclose(apply(images, strong_draws(2, affine=quarter_turn)), torch.rot90(x, 1, (2, 3)), atol=1e-3)
    shifted = apply(images, strong_draws(2, shift=torch.tensor([[2.0, 0.0], [2.0, 0.0]])))
    assert torch.allclose(shifted[..., :-2], x[..., 2:], atol=1e-3) and shifted[..., -2:].abs().max() < 1e-3
    inverted = apply(images, strong_draws(2, invert=torch.tensor([True, False])))
    assert torch.allclose(inverted, torch.stack([255 - x[0], x[1]]), atol=1e-3)
    smooth = apply(images, strong_draws(2, blur=torch.ones(2)))
    assert smooth.std() < x.std() and torch.allclose(smooth.mean(), x.mean(), rtol=0.02)
    cut = apply(images, strong_draws(2, cutout=torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.0]])))
    changed = ((cut[0] - x[0]).abs() > 1e-2).any(dim=0)
    assert changed.sum() <= 14 * 14 and torch.allclose(cut[0, :, 7:21, 7:21], x[0].mean().expand(3, 14, 14), atol=1e-2)
    assert torch.allclose(cut[1], x[1], atol=1e-3)  # a side of 0 cuts nothing
    noisy = apply(images, strong_draws(2, noise=torch.randn(2, 3, 28, 28)))
    assert 0 < (noisy - x).std() < 0.2 * x.std()


def test_french_et_al_augmentation_leaves_out_blur_and_cutout():
    torch.manual_seed(0)
    draws = augment.draw_strong((64, 3, 28, 28), "cpu", blur_and_cutout=False)
    assert (draws["blur"] == 0).all() and (draws["cutout"][:, 2] == 0).all()
    torch.manual_seed(0)
    draws = augment.draw_strong((64, 3, 28, 28), "cpu")
    assert draws["blur"].max() > 0.5 and draws["cutout"][:, 2].max() > 0.25


def test_an_imbalanced_target_keeps_the_first_pictures_of_each_class_in_a_falling_share():
    labels = torch.arange(1000) % 10
    images = torch.arange(1000).view(-1, 1, 1, 1).expand(-1, 3, 28, 28)  # each picture shows its index
    kept_images, kept = datasets.imbalanced(images, labels, 10.0, 10, "mnist")
    assert torch.bincount(kept, minlength=10).tolist() == [100, 77, 60, 46, 36, 28, 22, 17, 13, 10]
    first_of_class_9 = torch.arange(9, 1000, 10)[:10]
    assert torch.equal(kept_images[kept == 9][:, 0, 0, 0], first_of_class_9)
    assert torch.equal(datasets.imbalanced(images, labels, 1.0, 10, "mnist")[1], labels)
    with pytest.raises(UserError, match="has no labels; use a labelled target"):
        datasets.imbalanced(images, None, 10.0, 10, "my_pictures")


def test_the_target_imbalance_applies_to_the_target_alone_after_the_limit(synthetic_root):
    from dann import training
    from dann.config import Config
    base = dict(source="mnist", target="mnist_m", data_dir=str(synthetic_root), no_download=True, limit=20)
    plain, skewed = (training.load_data(Config(**base, target_imbalance=r), torch.device("cpu")) for r in (1.0, 5.0))
    for split in ("train", "test"):
        assert torch.equal(plain.of("source", split)[0], skewed.of("source", split)[0])
        counts = torch.bincount(plain.of("target", split)[1], minlength=10)
        expected = [round(n * 5.0 ** (-c / 9)) for c, n in enumerate(counts.tolist())]
        assert torch.bincount(skewed.of("target", split)[1], minlength=10).tolist() == expected
    assert len(plain.target_train[0]) == 20
    with pytest.raises(ValueError, match="--target-imbalance must be at least 1"):
        Config(**base, target_imbalance=0.5)


def test_each_named_recipe_is_its_reference_augmentation_and_stays_float32_under_bf16():
    images = torch.randint(0, 256, (6, 3, 28, 28), dtype=torch.uint8)
    references = {"light": lambda x: augment.augment(x), "weak": lambda x: augment.augment(x, jitter=0.0),
                  "french": lambda x: augment.strong_augment(x, blur_and_cutout=False),
                  "strong": lambda x: augment.strong_augment(x, blur_and_cutout=True)}
    assert set(augment.RECIPES) == set(references)
    for name, reference in references.items():
        torch.manual_seed(3)
        expected = reference(images)
        torch.manual_seed(3)
        with torch.autocast("cpu", torch.bfloat16):
            found = augment.augmented(name, images)
        assert found.dtype == torch.float32 and torch.equal(found, expected), name
