"""Nothing of the user's is ever replaced: dann/outputs.py owns every file the project writes. First
the owner on its own, then a guard that no code writes around it, then every command's every
output, each tried once into an empty place and once into a place that holds a file of the user's
at every path the first try wrote."""
import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest
import torch

import download_data
import image_annotate
import main
import valid
from conftest import REPO, digit_images, with_sources
from dann import bundle, domains, outputs, pretrained, runs
from dann.common import UserError
from dann.config import Config

TINY = ["--source", "mnist", "--target", "mnist_m", "--no-download", "--device", "cpu", "--epochs", "1",
        "--batch-size", "8"]


# ---------------------------------------------------------------- the owner

def test_a_file_is_the_projects_only_while_it_holds_what_the_project_wrote(tmp_path):
    path = outputs.save("ours\n", tmp_path / "a.txt")
    assert outputs.is_ours(path) and outputs.replaceable(path)
    outputs.save("ours again\n", path)  # the project may replace its own file
    path.write_text("edited by the user\n")
    assert not outputs.is_ours(path)
    with pytest.raises(UserError, match=r"a\.txt exists and was not written by this project"):
        outputs.save("ours\n", path)
    assert path.read_text() == "edited by the user\n"
    (tmp_path / "b.txt").write_text("the user's")
    assert not outputs.is_ours(tmp_path / "b.txt") and outputs.replaceable(tmp_path / "c.txt")


def test_a_manifest_of_the_users_is_never_replaced_nor_believed(tmp_path):
    (tmp_path / outputs.MANIFEST).write_text('{"files": {"a.txt": null}}')  # not the project's format
    (tmp_path / "a.txt").write_text("mine")
    assert not outputs.is_ours(tmp_path / "a.txt")
    with pytest.raises(UserError, match="is not this project's record"):
        outputs.save("x", tmp_path / "b.txt")
    assert (tmp_path / outputs.MANIFEST).read_text() == '{"files": {"a.txt": null}}' and not (tmp_path / "b.txt").exists()
    with pytest.raises(UserError, match="holds files that are not a run folder"):
        outputs.check_folder(tmp_path, "run", "--out")


def test_a_folder_of_the_project_is_refused_to_a_command_of_another_kind(tmp_path):
    outputs.claim_folder(tmp_path / "run", "run")
    outputs.check_folder(tmp_path / "run", "run", "--out")
    with pytest.raises(UserError, match="is a run folder of main.py, not a sweep of choose.py"):
        outputs.check_folder(tmp_path / "run", "sweep", "--out")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=r"holds files that are not a sweep of choose.py's \(notes.txt\)"):
        outputs.check_folder(tmp_path / "mine", "sweep", "--out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file; name a folder"):
        outputs.check_folder(tmp_path / "file", "evaluation", "--out-dir")
    outputs.check_folder(tmp_path / "new", "sweep", "--out")
    assert not (tmp_path / "new").exists()  # a check makes nothing


def record_many(folder, first, count):
    for i in range(first, first + count):
        outputs.save(f"{i}\n", Path(folder) / f"{i}.txt")


@pytest.mark.slow
def test_processes_writing_into_one_folder_keep_each_others_entries(tmp_path):
    workers = [multiprocessing.get_context("spawn").Process(target=record_many, args=(tmp_path, k * 20, 20))
               for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(w.exitcode == 0 for w in workers)
    assert len(outputs.read_manifest(tmp_path)["files"]) == 40
    assert all(outputs.is_ours(p) for p in tmp_path.glob("*.txt"))


def test_a_new_folder_appears_whole_with_its_manifests(tmp_path):
    outputs.write_new_folder(tmp_path / "set", [("a/1.bin", b"1"), ("a/2.bin", b"2"), ("b/3.bin", b"3")], "--export")
    assert outputs.is_ours(tmp_path / "set") and sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    with pytest.raises(UserError, match="exists already"):
        outputs.write_new_folder(tmp_path / "set", [], "--export")

    def failing():
        yield "a/1.bin", b"1"
        raise OSError(28, "No space left on device")
    with pytest.raises(UserError, match="could not write .*other"):
        outputs.write_new_folder(tmp_path / "other", failing(), "--export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no partial folder left behind


def test_two_inputs_of_one_name_get_names_of_their_own():
    paths = [Path("/x/a/IMG.jpg"), Path("/x/b/IMG.jpg"), Path("/x/b/other.jpg")]
    names = outputs.distinct_names(paths, lambda p, parts: "/".join(p.parts[-parts:]))
    assert names == {paths[0]: "a/IMG.jpg", paths[1]: "b/IMG.jpg", paths[2]: "other.jpg"}


# ---------------------------------------------------------------- no writer goes around the owner

WRITES = ("write_text(", "write_bytes(", ".savefig(", "torch.save(", "os.replace(", ".rename(", "np.save",
          "shutil.copy", "shutil.move", "SummaryWriter(", "EventsWriter(", ".save(")
# (file, what the line writes): written by the owner's own callback into its temporary file, or in memory
THROUGH_THE_OWNER = ("outputs.", "tmp", "buffer")


CODE = [*REPO.glob("*.py"), *(REPO / "dann").glob("*.py"), *(REPO / "experiments").glob("*.py")]


def writing_lines(files=CODE):
    """(file, line number, line) for every line of the project's code that writes a file itself."""
    for path in files:
        if path.name == "outputs.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(w in code for w in WRITES) and not any(word in code for word in THROUGH_THE_OWNER):
                yield path, number, line.strip()
            if "open(" in code and any(f'"{m}' in code for m in ("w", "a", "x")) and "outputs.open_log" not in code \
                    and "tmp" not in code:
                yield path, number, line.strip()


def test_every_file_the_project_writes_goes_through_the_one_owner():
    allowed = {  # each checked by the owner some other way, as its comment says
        ("dann/datasets.py", "np.savez(f, images=images, labels=labels, version=synth.RENDER_VERSION)"),  # into tmp
        ("dann/common.py", 'probe.write_bytes(b"")'),  # a probe of a failed write's cause, removed at once
        ("dann/runs.py", 'lock = open(out / LOCK, "a")'),  # refused if the user's, recorded; its bytes never change
        ("dann/curves.py", 'self.file = EventsWriter(str(Path(folder) / "events"))'),  # a new name, then recorded
    }
    found = [(str(f.relative_to(REPO)), n, line) for f, n, line in writing_lines()
             if (str(f.relative_to(REPO)), line) not in allowed]
    assert found == [], "write through dann/outputs.py (write, save, open_log, write_new_folder) instead"


def test_the_guard_sees_a_writer_that_goes_around_the_owner(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text('from pathlib import Path\nPath("x.json").write_text("{}")\nwith open("y", "w") as f:\n    pass\n'
                     'outputs.write(path, lambda tmp: tmp.write_text("{}"))\n')
    assert [n for _, n, _ in writing_lines([rogue])] == [2, 3]


# ---------------------------------------------------------------- every output of every command

def files_under(folder):
    return sorted(p.relative_to(folder) for p in Path(folder).rglob("*") if p.is_file())


def prefill(like, place):
    """A file of the user's at every path the command wrote under `like`, the manifests included;
    returns {path: its bytes}."""
    made = {}
    for relative in files_under(like):
        path = Path(place) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"the user's own {relative}\n".encode())
        made[path] = path.read_bytes()
    assert made, f"the first try wrote nothing under {like}"
    return made


def untouched(made):
    return [str(p) for p, payload in made.items() if not p.is_file() or p.read_bytes() != payload]


def refused_or_untouched(call, made):
    """Run `call`; every file of the user's must be as it was, and a refusal is one UserError."""
    try:
        call()
    except UserError as e:
        assert "\n" not in str(e)
    except SystemExit as e:  # a script's own exit code: nothing of the user's may have changed either
        assert e.code not in (0, None)
    assert untouched(made) == []


def run_twice(tmp_path, command):
    """command(destination) into an empty destination, then into one pre-filled with what it wrote."""
    first, second = tmp_path / "first", tmp_path / "second"
    command(first)
    made = prefill(first, second)
    refused_or_untouched(lambda: command(second), made)
    return made


def test_main_out_and_seeds_never_replace_a_users_file(synthetic_root, tmp_path):
    run_twice(tmp_path / "one", lambda out: main.main([*TINY, "--data-dir", str(synthetic_root), "--out", str(out)]))
    run_twice(tmp_path / "row", lambda out: main.main([*TINY, "--data-dir", str(synthetic_root), "--seeds", "0",
                                                        "--out", str(out)]))


def test_a_users_summary_or_config_alone_is_refused_before_training(synthetic_root, tmp_path, capsys):
    for name, flags in (("config.json", []), ("summary.json", ["--seeds", "0"])):
        out = tmp_path / name
        out.mkdir()
        (out / name).write_text('{"mine": true}')
        with pytest.raises(UserError, match=f"holds files that are not a .*{name}"):
            main.main([*TINY, "--data-dir", str(synthetic_root), *flags, "--out", str(out)])
        assert (out / name).read_text() == '{"mine": true}' and sorted(p.name for p in out.iterdir()) == [name]
    assert "epoch" not in capsys.readouterr().err  # refused before any training


def test_valid_out_dir_never_replaces_a_users_file(trained_run, tmp_path):
    root, run = trained_run
    made = run_twice(tmp_path, lambda out: valid.main(["--checkpoint", str(run / "checkpoint.pt"), "--data-dir", str(root),
                                                       "--no-download", "--device", "cpu", "--out-dir", str(out)]))
    assert any(p.name.startswith("confusion_") for p in made) and any(p.name == "evaluation.json" for p in made)


def test_image_annotate_never_replaces_a_users_file_in_out_dir_or_beside_the_picture(trained_run, tmp_path):
    from PIL import Image
    _, run = trained_run
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        Image.fromarray(digit_images([3], 40, 3)[0]).save(tmp_path / folder / "IMG_0001.jpg")
    pictures = [str(tmp_path / "A" / "IMG_0001.jpg"), str(tmp_path / "B" / "IMG_0001.jpg")]
    checkpoint = ["--checkpoint", str(run / "checkpoint.pt")]
    made = run_twice(tmp_path / "out", lambda out: image_annotate.main(["-f", *pictures, *checkpoint, "--out-dir", str(out)]))
    assert len([p for p in made if p.suffix == ".png"]) == 2  # two pictures of one name: two copies
    beside = []  # the default place: beside each picture
    assert image_annotate.main(["-f", *pictures, *checkpoint]) == 0
    for folder in ("A", "B"):
        for copy in (tmp_path / folder).glob("*.annotated.png"):
            copy.write_bytes(b"the user's own copy")
            beside.append(copy)
        (tmp_path / folder / outputs.MANIFEST).unlink()  # as if the user had made them
    assert len(beside) == 2 and image_annotate.main(["-f", *pictures, *checkpoint]) == 1
    assert all(p.read_bytes() == b"the user's own copy" for p in beside)


def test_two_pictures_of_one_name_go_to_two_copies_and_the_line_says_where(trained_run, tmp_path, capsys):
    from PIL import Image
    _, run = trained_run
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        Image.fromarray(digit_images([3], 40, 3)[0]).save(tmp_path / folder / "IMG_0001.jpg")
    assert image_annotate.main(["-f", str(tmp_path / "A"), str(tmp_path / "B"), "--checkpoint", str(run / "checkpoint.pt"),
                                "--out-dir", str(tmp_path / "O")]) == 0
    copies = sorted(str(p.relative_to(tmp_path / "O")) for p in (tmp_path / "O").rglob("*.png"))
    assert [Path(c).parent.name for c in copies] == ["A", "B"]
    printed = capsys.readouterr().out
    assert all(f"-> {tmp_path / 'O' / c}" in printed for c in copies)


@pytest.mark.slow
def test_choose_out_never_replaces_a_users_file_with_or_without_training(synthetic_root, tmp_path):
    sweep_args = [*TINY, "--data-dir", str(synthetic_root), "--candidates", "source-only", "dann", "--jobs", "2"]

    def choose(out, *more):  # in this process: the runs are main.py processes of their own anyway
        import choose as script
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMP_NUM_THREADS", "1")
            assert script.main([*sweep_args, "--out", str(out), *more]) == 0
    made = run_twice(tmp_path, choose)
    assert any(p.name == "choice.json" for p in made) and any(p.parent.name == "ensemble" for p in made)
    refused_or_untouched(lambda: choose(tmp_path / "second", "--no-train"), made)
    run_folder = tmp_path / "first" / "source-only" / "seed0"  # a run folder is not a sweep
    before = files_under(run_folder)
    with pytest.raises(UserError, match="is a run folder of main.py, not a sweep of choose.py"):
        choose(run_folder, "--no-train")
    assert files_under(run_folder) == before
    with pytest.raises(UserError, match="holds no finished run"):
        choose(tmp_path / "nothing", "--no-train")
    assert not (tmp_path / "nothing").exists()  # a command that did nothing made nothing


@pytest.fixture
def bundle_dir(tmp_path, monkeypatch):
    """pretrained/ as a copy, so that the test bundles into a folder of its own."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    for name in ("registry.json", outputs.MANIFEST):
        (folder / name).write_bytes((pretrained.PRETRAINED_DIR / name).read_bytes())
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    monkeypatch.setattr(pretrained, "REGISTRY", folder / "registry.json")
    return folder


def test_bundle_needs_replace_for_a_name_in_use_a_plain_name_and_a_real_run(trained_run, bundle_dir, monkeypatch):
    root, run = trained_run
    monkeypatch.setattr(bundle, "measured", lambda *a: {"source_test_acc": 0.5, "target_test_acc": 0.5,
                                                        "target_not_sure": 0.1})
    registry = (bundle_dir / "registry.json").read_text()
    with pytest.raises(UserError, match="a bundled model has that name already; give --replace"):
        bundle.bundle(run, "mnist-mnist_m-dann", "abc", False, root)
    for name in ("../../x", "a/b", "x.pt", ""):
        with pytest.raises(UserError, match="a plain name"):
            bundle.bundle(run, name, "abc", False, root)
    with pytest.raises(UserError, match="no such run folder"):
        bundle.bundle(run.parent / "no-such-run", "new-model", "abc", False, root)
    assert (bundle_dir / "registry.json").read_text() == registry and not list(bundle_dir.glob("*.pt"))
    (bundle_dir / "mine.pt").write_bytes(b"the user's own file")  # not in the registry, not the project's
    with pytest.raises(UserError, match="mine.pt exists and was not written by this project"):
        bundle.bundle(run, "mine", "abc", False, root)
    assert (bundle_dir / "mine.pt").read_bytes() == b"the user's own file"
    bundle.bundle(run, "new-model", "abc", False, root)
    assert "new-model" in json.loads((bundle_dir / "registry.json").read_text())["models"]
    bundle.bundle(run, "new-model", "abc", False, root, replace=True)  # its own name, told to


def test_download_data_export_and_root_never_replace_a_users_file(synthetic_root, tmp_path, monkeypatch):
    def export(out):
        assert download_data.main(["--root", str(synthetic_root), "--datasets", "mnist", "--export", str(out)]) is None
    made = run_twice(tmp_path / "export", export)
    assert any(p.suffix == ".png" for p in made)
    with_sources(monkeypatch, "mnist", [  # the tiny copies' own checksums stand for the official ones
        domains.RemoteFile(f.name, (), ("md5:" + hashlib.md5((synthetic_root / "mnist" / f.name).read_bytes()).hexdigest(),))
        for f in domains.DOMAINS["mnist"].sources])

    def fetch(root):
        assert download_data.main(["--from", str(synthetic_root), "--root", str(root), "--datasets", "mnist"]) is None
    run_twice(tmp_path / "root", fetch)


def test_resume_with_other_settings_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main.parse_args(["--resume", "runs/x", "--epochs", "2", "--lr", "0.5"])
    assert stop.value.code == 2 and "leave out --epochs --lr" in capsys.readouterr().err
    assert main.parse_args(["--resume", "runs/x", "--device", "cpu"]).resume == Path("runs/x")


def test_a_seed_given_twice_to_choose_is_refused_as_main_refuses_it(capsys):
    import choose
    for script in (choose, main):
        with pytest.raises(SystemExit) as stop:
            script.parse_args(["--seeds", "0", "0"])
        assert stop.value.code == 2 and "--seeds 0 0: each seed once" in capsys.readouterr().err


def test_a_failed_start_leaves_no_folder_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="--no-download is set"):
        main.main([*TINY, "--data-dir", str(tmp_path / "no-data")])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_folder_written_before_manifests_can_still_be_resumed(synthetic_root, tmp_path):
    out = tmp_path / "old"
    cfg = Config(source="mnist", target="mnist_m", data_dir=str(synthetic_root), no_download=True, epochs=2,
                 batch_size=8, device="cpu")
    from dann import training
    from conftest import ctrl_c_after
    with pytest.MonkeyPatch.context() as patch:
        ctrl_c_after(patch, 3)
        assert training.train(cfg, out) is None  # stopped, saved
    (out / outputs.MANIFEST).unlink()  # as an older version left it
    assert training.train(runs.resumed_config(out, "cpu"), out, resume=True)["source_test_acc"] is not None
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] > 3


def test_valid_out_dir_that_is_a_file_is_one_line_before_evaluating(trained_run, tmp_path):
    root, run = trained_run
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match=r"--out-dir .*file is a file; name a folder"):
        valid.main(["--checkpoint", str(run / "checkpoint.pt"), "--data-dir", str(root), "--no-download",
                    "--device", "cpu", "--out-dir", str(tmp_path / "file")])
    assert (tmp_path / "file").read_text() == "mine"


def test_two_test_sets_of_one_folder_name_are_told_apart_in_the_table():
    from dann import evaluation
    row = {"role": "extra", "images": 4, "accuracy": 0.5, "per_class_accuracy": [0.5] * 10, "not_sure_share": 0.0}
    table = evaluation.format_table({"shop/a/test": row, "shop/b/test": row}, [str(d) for d in range(10)])
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["a/test", "b/test"]


def test_missing_data_names_the_full_path(tmp_path, monkeypatch):
    from dann import datasets
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=f"missing from {tmp_path / 'data'}: mnist"):
        datasets.ensure_datasets(["mnist"], Path("data"), allow_download=False)


def test_a_cache_or_an_annotated_copy_made_before_manifests_is_still_the_projects(tmp_path, trained_run):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from dann import annotate, cache
    old_cache = tmp_path / "cache" / "train.pt"
    old_cache.parent.mkdir()
    torch.save({"images": torch.zeros(2), "fingerprint": "stale"}, old_cache)  # as an older version left it
    cache.keep(old_cache, "new", {"images": torch.ones(2)})
    assert torch.load(old_cache, weights_only=True)["fingerprint"] == "new" and outputs.is_ours(old_cache)
    mine = tmp_path / "cache" / "test.pt"
    mine.write_bytes(b"the user's own file")
    cache.keep(mine, "new", {"images": torch.ones(2)})  # not a cache: left alone, the data decoded every time
    assert mine.read_bytes() == b"the user's own file"
    _, run = trained_run
    Image.fromarray(digit_images([3], 40, 3)[0]).save(tmp_path / "a.png")
    copy = tmp_path / annotate.annotated_name(tmp_path / "a.png", annotate.model_tag(run / "checkpoint.pt"))
    marked = PngInfo()
    marked.add_text("Software", "image_annotate.py of dann")  # what copies carried before manifests
    Image.new("RGB", (4, 4)).save(copy, pnginfo=marked)
    assert image_annotate.main(["-f", str(tmp_path / "a.png"), "--checkpoint", str(run / "checkpoint.pt")]) == 0
    assert Image.open(copy).size != (4, 4)
