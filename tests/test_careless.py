"""What a careless hour brings: each bad input is one line that names the cause and what to do, a
non-zero exit where the command did not do what was asked, nothing of the user's overwritten, no
traceback and no hang. Numbered as the cases of the issue that listed them."""
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import image_annotate
import main
import valid
from conftest import REPO, ctrl_c_after, digit_images
from dann import annotate, cli, datasets, evaluation, pretrained, runs, sweep, synth
from dann.common import UserError
from dann.config import Config
from dann.domains import DIGITS
from dann.fonts import drawable
from dann.models import DANN

TINY = ["--source", "mnist", "--target", "mnist_m", "--no-download", "--device", "cpu", "--epochs", "1",
        "--batch-size", "8"]


def picture(path, label=3, size=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(digit_images([label], size, 3)[0]).save(path)
    return path


# ---------------------------------------------------------------- 1. --out a folder of the user's

@pytest.mark.parametrize("out", [".", "/", ""])
def test_out_a_folder_of_other_files_is_refused_before_anything_is_written(synthetic_root, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("my own settings")
    with pytest.raises(UserError, match="holds files that are not a run folder of main.py's .*give a new or empty folder"):
        main.main([*TINY, "--data-dir", str(synthetic_root), "--out", out])
    assert (tmp_path / "config.json").read_text() == "my own settings"


def test_a_run_may_start_again_in_a_folder_it_left_before_its_first_save(synthetic_root, tmp_path):
    out = tmp_path / "run"
    with runs.claimed(out):
        runs.write_config(out, Config())
    assert runs.new_run_folder(Config(), out) == out
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}")  # a run's file names, but not written by the project
    (mine / ".lock").write_text("")
    with pytest.raises(UserError, match=r"\.lock, config\.json"):
        runs.new_run_folder(Config(), mine)


# ---------------------------------------------------------------- 2. a batch that cannot fit

def test_a_batch_too_large_for_memory_is_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(UserError, match=r"--batch-size 1000000000 needs about .* GiB .* give a smaller --batch-size"):
        main.main([*TINY, "--batch-size", "1000000000", "--data-dir", str(tmp_path / "nothing"),
                   "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 3. annotated copies

def test_annotated_copies_never_replace_a_users_file_nor_each_other(trained_run, tmp_path, capsys):
    _, run = trained_run
    jpg, png = picture(tmp_path / "a.jpg"), picture(tmp_path / "a.png", label=5)
    tag = annotate.model_tag(run / "checkpoint.pt")
    mine = tmp_path / annotate.annotated_name(png, tag)
    mine.write_bytes(b"a file of the user's that happens to have this name")
    code = image_annotate.main(["-f", str(jpg), str(png), "--checkpoint", str(run / "checkpoint.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "exists and was not written by this project" in err[0]
    assert mine.read_bytes().startswith(b"a file of the user's")
    assert (tmp_path / f"a.jpg.{tag}.annotated.png").is_file()  # the rest of the batch is done
    mine.unlink()
    assert image_annotate.main(["-f", str(jpg), str(png), "--checkpoint", str(run / "checkpoint.pt")]) == 0
    assert image_annotate.main(["-f", str(png), "--checkpoint", "mnist-mnist_m-dann"]) == 0  # another model
    assert sorted(p.name for p in tmp_path.glob("*.annotated.png")) == [
        f"a.jpg.{tag}.annotated.png", "a.png.mnist-mnist_m-dann.annotated.png", f"a.png.{tag}.annotated.png"]


def test_the_model_tag_names_a_run_a_seed_of_a_row_or_a_bundled_model():
    assert annotate.model_tag(Path("runs/dann-x/checkpoint.pt")).startswith("dann-x-")
    assert annotate.model_tag(Path("runs/row/seed2/checkpoint.pt")).startswith("row-seed2-")
    assert annotate.model_tag(pretrained.PRETRAINED_DIR / "mnist-mnist_m-dann.pt") == "mnist-mnist_m-dann"
    # two sweeps' chosen/ models, or two runs called run, are told apart by where they are
    assert annotate.model_tag(Path("a/chosen/checkpoint.pt")) != annotate.model_tag(Path("b/chosen/checkpoint.pt"))


# ---------------------------------------------------------------- 4. valid.py's folder and figures

def test_an_evaluation_json_that_is_not_valid_pys_is_never_replaced(tmp_path):
    record = tmp_path / "evaluation.json"
    for foreign in ("my notes", json.dumps({"results": 1}), json.dumps({"checkpoint": "model.pt"})):
        record.write_text(foreign)
        with pytest.raises(UserError, match="holds files that are not an evaluation of valid.py's"):
            evaluation.claim_evaluation_folder(tmp_path, tmp_path / "model.pt", ["mnist"])
    record.unlink()
    evaluation.save_outputs({"checkpoint": str((tmp_path / "model.pt").resolve()), "domains": {}}, tmp_path, DIGITS)
    evaluation.claim_evaluation_folder(tmp_path, tmp_path / "model.pt", ["mnist"])  # its own: may be rewritten
    with pytest.raises(UserError, match="holds the evaluation of another model"):
        evaluation.claim_evaluation_folder(tmp_path, tmp_path / "other.pt", ["mnist"])


def test_two_domains_of_the_same_folder_name_get_a_figure_each():
    names = evaluation.figure_names(["mnist", "shop/a/test", "shop/b/test"])
    assert names["mnist"] == "confusion_mnist.png" and len(set(names.values())) == 3


# ---------------------------------------------------------------- 5, 8. --init from a model of other classes

@pytest.mark.parametrize("classes", [("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
                                     ("cat", "dog", "fox")])
def test_init_from_a_model_with_other_class_names_or_count_is_one_line(classes):
    model = DANN("mnist", classes=len(classes))
    with pytest.raises(UserError, match=r"knows the classes 10 \(0, 1, .*this task has .*train without --init"):
        pretrained.start_from(model, "mnist-mnist_m-dann", classes)


# ---------------------------------------------------------------- 6, 10, 11. links, broken links, FIFOs

def test_links_out_of_the_folder_loops_broken_links_and_fifos_are_passed_over_and_listed(tmp_path, capsys):
    domain = tmp_path / "shop"
    for c in ("0", "1"):
        for i in range(4):
            picture(domain / c / f"{i}.png", label=int(c))
    picture(tmp_path / "elsewhere" / "x.png")
    os.symlink("..", domain / "0" / "up")  # a link to the domain itself: every class again
    os.symlink(tmp_path / "elsewhere", domain / "1" / "out")
    os.symlink(tmp_path / "gone.png", domain / "1" / "x.png")
    os.mkfifo(domain / "1" / "pipe.png")
    skipped = []
    loaded = datasets.load_datasets([str(domain)], ["train", "test"], tmp_path / "data", skipped=skipped)
    assert sum(len(loaded[str(domain), split][0]) for split in ("train", "test")) == 8  # nothing counted twice
    assert {(path, why) for _, _, path, why in skipped} == {
        ("0/up", "a link to a folder above it (a loop), not followed"),
        ("1/out", "a link that leaves the domain's folder, not followed"),
        ("1/x.png", "a broken link"), ("1/pipe.png", "not a regular file")}
    code = image_annotate.main(["-f", str(domain / "1" / "pipe.png"), "--checkpoint", "mnist-mnist_m-dann",
                                "--out-dir", str(tmp_path / "out")])
    assert code == 1 and "not a regular file" in capsys.readouterr().err  # and no hang


# ---------------------------------------------------------------- 7. class names no font draws

def test_class_names_are_drawn_in_a_font_that_has_them_or_by_number(tmp_path):
    assert drawable(("δύο", "τρία"))[1:] == (["δύο", "τρία"], None)
    font, labels, note = drawable(("一", "二"))
    if note is not None:  # no font on this machine has them
        assert labels == ["0", "1"] and "0 = 一" in note
    result = {"role": "target", "accuracy": 0.5, "confusion_matrix": [[1, 1], [0, 2]]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns for each glyph it cannot draw
        evaluation.save_confusion_figure("δοκιμή", result, tmp_path / "greek.png", ("δύο", "τρία"))
        evaluation.save_confusion_figure("試験", result, tmp_path / "cjk.png", ("一", "二"))
        annotate.annotate(Image.new("RGB", (30, 30)), torch.tensor([0.3, 0.7]), True, ("一", "二"))
    assert (tmp_path / "greek.png").is_file() and (tmp_path / "cjk.png").is_file()


# ---------------------------------------------------------------- 9. a run folder that cannot be written

def test_resuming_a_run_folder_that_cannot_be_written_is_one_line(trained_run, monkeypatch):
    root, run = trained_run

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(runs, "open", refused, raising=False)
    with pytest.raises(UserError, match=r"cannot write in the run folder .*\(permission denied\)"):
        main.main(["--resume", str(run), "--device", "cpu"])


# ---------------------------------------------------------------- 12. torch and torchvision that do not fit

def test_a_torchvision_that_does_not_fit_torch_is_one_line_naming_both_and_the_fix(capsys, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    cli.one_line_errors()
    sys.excepthook(RuntimeError, RuntimeError("operator torchvision::nms does not exist"), None)
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1
    assert re.fullmatch(r"error: torchvision \S+ does not fit torch \S+ \(its operators do not load\); install the "
                        r"matching pair with: pip install (--index-url \S+ )?torch==\S+ torchvision==0\.\d+\.\*", line)


@pytest.mark.slow
def test_a_script_started_with_a_torchvision_that_does_not_fit_says_so_in_one_line(tmp_path):
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    # torchvision is first needed to resize a picture that is not 28 x 28
    r = subprocess.run([sys.executable, str(REPO / "image_annotate.py"), "-f", str(REPO / "images" / "printed_5.png")],
                       cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=120)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "does not fit torch" in r.stderr


# ---------------------------------------------------------------- 13. a stopped run is not a success

def test_main_returns_1_when_ctrl_c_stopped_the_run(synthetic_root, tmp_path, monkeypatch, capsys):
    ctrl_c_after(monkeypatch, 2)
    out = tmp_path / "my runs" / "a b"
    assert main.main([*TINY, "--data-dir", str(synthetic_root), "--out", str(out)]) == 1
    assert f"python main.py --resume '{out}'" in capsys.readouterr().err  # pasted into a shell as it is


# ---------------------------------------------------------------- 14. default folders, seeds, quoting

def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runs.time, "strftime", lambda _: "20261205-120000")
    first = runs.new_run_folder(Config())
    assert not first.exists()  # nothing is made before the run starts: a failed start leaves nothing
    with runs.claimed(first):
        second = runs.new_run_folder(Config())
        assert first.is_dir() and second.name == first.name + "-2"


def test_a_seed_given_twice_is_refused_before_training(capsys):
    with pytest.raises(SystemExit) as stop:
        main.parse_args([*TINY, "--seeds", "0", "0"])
    assert stop.value.code == 2 and "each seed once" in capsys.readouterr().err


# ---------------------------------------------------------------- 15. synth's files

def test_a_damaged_synth_file_says_how_to_render_it_again_at_its_size(tmp_path, monkeypatch):
    monkeypatch.setitem(synth.SPLIT_SIZES, "test", 20)
    datasets.render_synth(tmp_path, train_size=30, log=lambda _: None)
    train = tmp_path / "synth" / "synth_train_32x32.npz"
    with np.load(train) as f:
        stale = {key: f[key] for key in f}
    np.savez(open(train, "wb"), **{**stale, "version": 0})
    with pytest.raises(UserError, match=r"--datasets synth --root \S+ --synth-size 30$"):
        datasets.load_domain("synth", "train", tmp_path)
    train.write_bytes(train.read_bytes()[:1000])  # truncated: its size cannot be read any more
    with pytest.raises(UserError, match=r"add --synth-size N .* the default is 100,000"):
        datasets.load_domain("synth", "train", tmp_path)


def test_no_download_still_renders_synth_which_needs_no_network(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(synth.SPLIT_SIZES, "test", 20)
    datasets.ensure_datasets(["synth"], tmp_path, allow_download=False, splits=["test"])
    assert len(datasets.load_domain("synth", "test", tmp_path)[0]) == 20
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("synth: rendering 20 test pictures") and "rendered 20 test pictures" in said[1]


# ---------------------------------------------------------------- 16. a folder to evaluate on only

def test_a_folder_with_only_test_classes_is_evaluated_without_the_models_own_data(trained_run, tmp_path, capsys):
    _, run = trained_run
    for digit in DIGITS:
        picture(tmp_path / "mine" / "test" / digit / "a.png", label=int(digit))
    results = valid.main(["--checkpoint", str(run / "checkpoint.pt"), "--domains", str(tmp_path / "mine"),
                          "--data-dir", str(tmp_path / "no-data"), "--no-download", "--device", "cpu",
                          "--out-dir", str(tmp_path / "figs")])
    assert list(results) == [str(tmp_path / "mine")] and results[str(tmp_path / "mine")]["images"] == 10
    err = capsys.readouterr().err
    assert "not evaluated: mnist, the model's source domain, is not at hand" in err
    assert "python download_data.py --datasets mnist_m" in err


# ---------------------------------------------------------------- 17. small things that misled

def test_the_run_dirt_t_refines_is_never_the_choice_unless_it_is_a_candidate(tmp_path):
    planned = sweep.plan(Config(source="mnist", target="mnist_m"), ["dirt-t"], [0], tmp_path)
    dann_run, dirt_t = planned
    assert not dann_run.eligible and dirt_t.eligible
    for run, shift in ((dann_run, 0.01), (dirt_t, 0.2)):
        run.status, run.metrics, run.scores = "done", {"target_test_acc": 0.5}, {"class_shift": shift, "entropy": 0.1}
    assert sweep.choose(planned) is dirt_t and sweep.most_accurate(planned) is dirt_t


def test_list_names_the_model_used_without_checkpoint(trained_run, tmp_path):
    _, run = trained_run
    assert "without --checkpoint: the bundled default" in pretrained.format_bundled(tmp_path / "runs")
    shutil.copytree(run, tmp_path / "runs" / "mine")
    assert f"without --checkpoint: {tmp_path / 'runs' / 'mine' / 'checkpoint.pt'}" in \
        pretrained.format_bundled(tmp_path / "runs")


def test_every_readme_section_the_code_cites_exists():
    headings = set(re.findall(r"^## (.+)$", (REPO / "README.md").read_text(), re.M))
    cited = {m for p in [*REPO.glob("*.py"), *(REPO / "dann").glob("*.py")]
             for m in re.findall(r"README, '([^']+)'", p.read_text())}
    assert cited and cited <= headings, cited - headings


# ---------------------------------------------------------------- 18. the first hour

def test_the_quick_start_comes_first_and_says_what_a_new_user_needs():
    readme = (REPO / "README.md").read_text()
    sections = re.findall(r"^## (.+)$", readme, re.M)
    assert sections[0] == "Quick start"
    quick = readme.split("## Quick start")[1].split("\n## ")[0]
    for needed in ("--epochs 3", "download_data.py --from", "--checkpoint mnist+synth-mnist_m-self-ensemble-full", "134 MB",
                   "505 MB", "813 MB", "5.7 GB", "1.3 GB", "--index-url https://download.pytorch.org/whl/cpu"):
        assert needed in quick, needed
