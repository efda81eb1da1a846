"""Folders of pictures as domains: layout, classes, splits, cache, bad files, export, equivalence."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import image_annotate
from dann.common import UserError
from dann.config import Config
from conftest import REPO, digit_images
from dann import folders, scores, training
import download_data


def run_main(*args):
    return subprocess.run([sys.executable, str(REPO / "main.py"), *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def picture_folder(base, labels, seed=0, layout=None):
    """Write digit-like pictures: layout maps a label to its class folder name (None: no class folders)."""
    for i, (label, pixels) in enumerate(zip(labels, digit_images(labels, 28, 3, seed))):
        folder = base / layout[label] if layout else base
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return base


def tiny(source, target, root, **changes):
    return Config(**{"source": str(source), "target": str(target), "data_dir": str(root), "no_download": True,
                     "epochs": 2, "batch_size": 8, "device": "cpu", **changes})


@pytest.fixture
def exported(synthetic_root, tmp_path):
    download_data.main(["--datasets", "mnist", "mnist_m", "--root", str(synthetic_root), "--export",
                        str(tmp_path / "folders")])
    return synthetic_root, tmp_path / "folders"


def test_exported_folders_train_exactly_like_the_built_in_domains(exported, tmp_path):
    root, exports = exported
    assert sorted(p.name for p in (exports / "mnist" / "train").iterdir()) == list("0123456789")
    built_in = training.train(tiny("mnist", "mnist_m", root, epochs=3), tmp_path / "built-in")
    folder = training.train(tiny(exports / "mnist", exports / "mnist_m", root, epochs=3), tmp_path / "folder")
    assert (folder["source_test_acc"], folder["target_test_acc"]) == (built_in["source_test_acc"],
                                                                      built_in["target_test_acc"])
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True) for r in ("built-in", "folder"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["class_names"] == list("0123456789")


def test_a_folder_without_splits_holds_out_a_fixed_share_by_path(tmp_path):
    base = picture_folder(tmp_path / "cats", [0, 1] * 100, layout={0: "cat", 1: "dog"})
    names, splits = folders.split_files(base)
    assert names == ["cat", "dog"] and len(splits["train"]) + len(splits["test"]) == 200
    assert 20 <= len(splits["test"]) <= 60  # about TEST_SHARE percent
    picture_folder(tmp_path / "more", [0, 1] * 50, seed=3, layout={0: "cat", 1: "dog"})
    for f in (tmp_path / "more").rglob("*.png"):
        os.replace(f, base / f.parent.name / f"new{f.name}")
    _, grown = folders.split_files(base)
    assert set(splits["test"]) <= set(grown["test"]) and set(splits["train"]) <= set(grown["train"])


def test_a_three_class_model_reads_pictures_by_class_name(tmp_path, synthetic_root, capsys):
    groups = {0: "low", 1: "low", 2: "low", 3: "mid", 4: "mid", 5: "mid", 6: "high", 7: "high", 8: "high", 9: "high"}
    labels = list(range(10)) * 12
    source = picture_folder(tmp_path / "source", labels, layout=groups)
    target = picture_folder(tmp_path / "target", labels, seed=5)  # unlabelled: no class folders
    out = tmp_path / "run"
    metrics = training.train(tiny(source, target, synthetic_root, epochs=15), out)
    err = capsys.readouterr().err
    assert f"source {source}: " in err and "(classes high, low, mid)" in err and "(unlabelled)" in err
    assert metrics["target_test_acc"] is None and "target test none (an unlabelled target)" in err
    assert metrics["source_test_acc"] > 0.9
    assert set(metrics["label_free"]) == set(scores.SCORES) and len(metrics["target_class_mix"]) == 3
    assert sum(metrics["target_class_mix"]) == pytest.approx(1, abs=1e-3)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["class_names"] == ["high", "low", "mid"] and ckpt["model_config"]["classes"] == 3
    Image.fromarray(digit_images([8], 28, 3)[0]).save(tmp_path / "eight.png")
    assert image_annotate.main(["-f", str(tmp_path / "eight.png"), "--checkpoint", str(out / "checkpoint.pt")]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"{tmp_path / 'eight.png'}: high  (top-3: high ")


@pytest.mark.slow
def test_a_two_class_labelled_target_is_evaluated_by_valid(tmp_path, synthetic_root):
    layout = {d: "even" if d % 2 == 0 else "odd" for d in range(10)}
    source = picture_folder(tmp_path / "source", list(range(10)) * 6, layout=layout)
    target = picture_folder(tmp_path / "target", list(range(10)) * 6, seed=2, layout=layout)
    training.train(tiny(source, target, synthetic_root), tmp_path / "run")
    r = subprocess.run([sys.executable, str(REPO / "valid.py"), "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                        "--json", "--out-dir", str(tmp_path / "figures"), "--device", "cpu", "--scores"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert len(report["domains"][str(target)]["per_class_accuracy"]) == 2
    assert set(report["label_free"]) == set(scores.SCORES) and len(report["target_class_mix"]) == 2


def test_unreadable_pictures_are_skipped_counted_and_listed(tmp_path, synthetic_root, capsys):
    source = picture_folder(tmp_path / "source", list(range(10)) * 4, layout={d: f"c{d}" for d in range(10)})
    (source / "c3" / "empty.png").write_bytes(b"")
    (source / "c4" / "cut.png").write_bytes((source / "c4" / "00004.png").read_bytes()[:40])
    (source / "c5" / "notes.txt").write_text("not a picture: ignored")
    (source / "c5" / ".hidden.png").write_bytes(b"ignored")
    target = picture_folder(tmp_path / "target", list(range(10)) * 4, seed=1)
    training.train(tiny(source, target, synthetic_root, epochs=1), tmp_path / "run")
    err = capsys.readouterr().err
    assert "2 pictures could not be read and were left out (" in err
    listed = (tmp_path / "run" / "skipped_pictures.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[2] for line in listed) == ["c3/empty.png", "c4/cut.png"]


@pytest.mark.parametrize("make,message", [
    (lambda d: d.mkdir(), "holds no pictures"),
    (lambda d: picture_folder(d, [1, 2], layout={1: "one", 2: "one"}), "has one class folder (one)"),
    (lambda d: (picture_folder(d, [1, 2], layout={1: "a", 2: "b"}), (d / "c").mkdir()), "c holds no pictures"),
    (lambda d: (picture_folder(d, [1], layout={1: "a"}), picture_folder(d, [2])), "both directly"),
    (lambda d: None, "neither a built-in domain (mnist, svhn, mnist_m, usps, synth) nor a folder of pictures"),
])
def test_a_bad_source_folder_is_refused_with_what_to_do(tmp_path, synthetic_root, make, message):
    import main
    make(tmp_path / "bad")
    with pytest.raises(UserError) as e:
        main.main(["--source", str(tmp_path / "bad"), "--target", "mnist_m", "--data-dir", str(synthetic_root),
                   "--no-download", "--out", str(tmp_path / "run")])
    assert message in str(e.value) and "\n" not in str(e.value) and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_bad_source_folder_is_one_line_of_the_script(tmp_path, synthetic_root):
    (tmp_path / "bad").mkdir()
    r = run_main("--source", tmp_path / "bad", "--target", "mnist_m", "--data-dir", synthetic_root, "--no-download",
                 "--out", tmp_path / "run")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "holds no pictures" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_mostly_unreadable_folders_and_mismatched_classes_are_refused(tmp_path, synthetic_root):
    broken = tmp_path / "broken"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (broken / split / c).mkdir(parents=True)
            for i in range(3):
                (broken / split / c / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="6 of the 6 pictures of its train split cannot be read"):
        folders.load_folder(broken, "train", tmp_path / "data")
    source = picture_folder(tmp_path / "source", [0, 1, 2] * 4, layout={0: "cat", 1: "dog", 2: "owl"})
    target = picture_folder(tmp_path / "target", [0, 1] * 4, layout={0: "cat", 1: "emu"})
    with pytest.raises(UserError, match=r"only in the source \['dog', 'owl'\], only in the target \['emu'\]"):
        training.train(tiny(source, target, synthetic_root), tmp_path / "run")


def test_a_link_loop_is_read_once(tmp_path):
    base = picture_folder(tmp_path / "loop", [0, 1] * 3, layout={0: "a", 1: "b"})
    (base / "a" / "again").symlink_to(base / "a", target_is_directory=True)
    names, splits = folders.split_files(base)
    assert names == ["a", "b"] and sum(len(files) for files in splits.values()) == 6


def test_the_folder_cache_is_rebuilt_when_a_picture_changes(tmp_path):
    base = picture_folder(tmp_path / "pics", [0, 1] * 20, layout={0: "a", 1: "b"})
    first = folders.load_folder(base, "train", tmp_path / "data")
    assert folders.cache_path(base, "train", tmp_path / "data").is_file()
    changed = next(p for p, _ in folders.split_files(base)[1]["train"])
    Image.new("RGB", (28, 28), "white").save(base / changed)
    again = folders.load_folder(base, "train", tmp_path / "data")
    assert len(again["images"]) == len(first["images"]) and not torch.equal(again["images"], first["images"])
    (base / changed).unlink()
    assert len(folders.load_folder(base, "train", tmp_path / "data")["images"]) == len(first["images"]) - 1


@pytest.mark.slow
def test_the_readme_worked_example_runs_as_written(synthetic_root, tmp_path):
    """The commands of README 'Adapt to your own pictures', shortened (--limit, --epochs) and on the
    synthetic files, run one after another in a fresh folder."""
    import re
    section = (REPO / "README.md").read_text().split("## Adapt to your own pictures")[1].split("\n## ")[0]
    commands = [line.split("  #")[0].strip() for line in re.search(r"```bash\n(.*?)```", section, re.S).group(1)
                .splitlines() if line.strip()]
    assert len(commands) >= 6 and all(c.startswith("python ") for c in commands)
    env = {**os.environ, "DANN_DATA_DIR": str(synthetic_root), "OMP_NUM_THREADS": "1"}
    for command in commands:
        command = re.sub(r"--limit \d+", "--limit 60", re.sub(r"--epochs \d+", "--epochs 1", command))
        words = command.split()
        words[1] = str(REPO / words[1])
        r = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"{command}\n{r.stderr[-2000:]}"
    assert (tmp_path / "runs" / "own-dirt-t" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "choose-mnist-mnist_m-unlabelled" / "chosen" / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_a_large_folder_is_decoded_on_every_core_to_the_same_pictures(tmp_path, monkeypatch):
    base = picture_folder(tmp_path / "many", [0, 1] * 200, layout={0: "a", 1: "b"})  # past the parallel threshold
    torch.ones(64, 64) @ torch.ones(64, 64)  # torch's thread pool has run: a forked worker would now hang
    paths = [base / p for p, _ in folders.split_files(base)[1]["train"]]
    assert len(paths) >= 256
    parallel = folders.decode(paths)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    serial = folders.decode(paths)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(parallel, serial))


def test_train_without_test_and_split_class_differences_say_their_true_cause(tmp_path):
    only_train = picture_folder(tmp_path / "only_train" / "train", [0, 1] * 3, layout={0: "cat", 1: "dog"})
    with pytest.raises(UserError, match="has train/ but no test/; add test/ with the same class folders"):
        folders.split_files(only_train.parent)
    classes = picture_folder(tmp_path / "vehicles", [0, 1, 2] * 3, layout={0: "car", 1: "train", 2: "bus"})
    assert folders.split_files(classes)[0] == ["bus", "car", "train"]  # a class called train is a class
    shop = tmp_path / "shop"
    picture_folder(shop / "train", [0, 1, 2] * 3, layout={0: "a", 1: "b", 2: "c"})
    picture_folder(shop / "test", [0, 1] * 3, layout={0: "a", 1: "b"})
    picture_folder(tmp_path / "elsewhere", [2] * 3, layout={2: "c"})
    os.symlink(tmp_path / "elsewhere" / "c", shop / "test" / "c")  # a link that leaves the domain: not read
    with pytest.raises(UserError, match="different class folders \\(only in train: c; a link that leaves"):
        folders.split_files(shop)


def test_an_empty_picture_file_says_so(tmp_path):
    from dann.pictures import UnreadablePicture, read_picture
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UnreadablePicture, match="an empty file"):
        read_picture(tmp_path / "empty.jpg")
