"""Several labelled sources at once (--source mnist+synth): parsing, balanced draws, a tiny training
of every method, and the checkpoint, valid.py and choose.py that follow."""
import json

import pytest
import torch
from PIL import Image

import valid
from experiments import choice_report
from dann import checkpoints, domains, stepping, training
from dann.config import Config
from dann.methods import METHODS
from tests.conftest import run_script
from tests.test_train import tiny_config, tiny_run


def test_a_source_joined_by_plus_names_each_domain():
    assert domains.source_parts("mnist+synth") == ("mnist", "synth")
    assert domains.source_parts("mnist") == ("mnist",)
    assert domains.default_arch("mnist+synth") == "mnist"
    assert domains.default_arch("mnist+svhn") == "svhn"  # the larger network where any source needs it


def test_a_folder_whose_name_holds_a_plus_is_one_domain(tmp_path):
    folder = tmp_path / "a+b"
    folder.mkdir()
    assert domains.source_parts(str(folder)) == (str(folder),)


@pytest.mark.parametrize("source,target,batch_size,says", [
    ("mnist+mnist", "mnist_m", 8, "different domains"), ("mnist+", "mnist_m", 8, "different domains"),
    ("mnist+synth", "synth", 8, "one of the sources"), ("mnist+synth+usps", "mnist_m", 2, "number of sources")])
def test_bad_multi_source_settings_are_refused(source, target, batch_size, says):
    with pytest.raises(ValueError, match=says):
        Config(source=source, target=target, batch_size=batch_size)


def test_each_batch_draws_an_equal_share_from_every_source():
    parts, batch_size = (10, 4, 7), 8
    batches = stepping.balanced_batches(parts, 5, batch_size, seed=2, epoch=3, device="cpu")
    starts = [0, 10, 14, 21]
    counts = torch.stack([((batches >= a) & (batches < b)).sum(1) for a, b in zip(starts, starts[1:])], 1)
    assert counts.tolist() == [[3, 3, 2]] * 5  # 8 = 3 + 3 + 2, the first parts one more
    assert torch.equal(batches, stepping.balanced_batches(parts, 5, batch_size, seed=2, epoch=3, device="cpu"))
    # the small part (4 pictures) wraps around, each of its pictures drawn as often as the others
    assert torch.bincount(batches[:, 3:6].flatten() - 10).tolist() == [4, 4, 4, 3]
    one = stepping.balanced_batches((10,), 5, batch_size, seed=2, epoch=3, device="cpu")
    assert torch.equal(one, stepping.epoch_batches(10, 5, batch_size, seed=2, epoch=3, device="cpu"))


def test_load_data_joins_the_sources_each_cut_to_limit(synthetic_root):
    sets = training.load_data(tiny_config(synthetic_root, source="mnist+synth", limit=25), torch.device("cpu"))
    assert sets.source_parts == (25, 25)  # mnist has 40 training pictures here, synth 30
    assert len(sets.source_train[0]) == 50 and len(sets.source_test[0]) == 20 + 20
    assert sets.source_test_parts == (20, 20)
    assert len(sets.target_train[0]) == 25


def test_the_label_free_scores_read_an_equal_share_of_each_source():
    from dann import scores
    labels = torch.cat([torch.zeros(3000), torch.ones(500), torch.full((900,), 2)]).long()  # a source a class
    images = torch.arange(len(labels))
    _, read = scores.first_of_each_source((images, labels), (3000, 500, 900))
    share = scores.SAMPLE // 3
    assert torch.bincount(read).tolist() == [share, 500, share]  # the small source gives all it has
    _, one = scores.first_of_each_source((images, labels), (len(labels),))
    assert torch.equal(one, labels[:scores.SAMPLE])  # one source: the first pictures, as always


FAST = ("dann", "adamatch", "target-only")  # a domain classifier, the source batch read by the loss, a target-labelled method


@pytest.mark.parametrize("method", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in METHODS
                                    if not METHODS[m].teacher or not METHODS[m].teacher.needs_init])
def test_every_method_trains_on_two_sources(synthetic_root, tmp_path, method):
    metrics = tiny_run(synthetic_root, tmp_path / "run", source="mnist+synth", method=method, epochs=1)
    assert 0 <= metrics["source_test_acc"] <= 1 and metrics["config"]["source"] == "mnist+synth"
    _, ckpt = checkpoints.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["config"]["source"] == "mnist+synth"


def test_valid_reports_each_source_of_a_multi_source_model(synthetic_root, tmp_path, capsys):
    tiny_run(synthetic_root, tmp_path / "run", source="mnist+synth", epochs=1)
    results = valid.main(["--checkpoint", str(tmp_path / "run"), "--data-dir", str(synthetic_root), "--no-download",
                          "--out-dir", str(tmp_path / "eval"), "--scores"])
    assert {name: r["role"] for name, r in results.items()} == {"mnist": "source", "synth": "source",
                                                                "mnist_m": "target"}
    assert "estimated target class mix" in capsys.readouterr().out


@pytest.mark.slow
def test_sources_with_other_classes_are_refused_in_one_line(synthetic_root, tmp_path):
    letters = tmp_path / "letters"
    for split in ("train", "test"):
        for letter in "ab":
            (letters / split / letter).mkdir(parents=True)
            Image.new("RGB", (28, 28)).save(letters / split / letter / "0.png")
    result = run_script("main.py", "--source", f"mnist+{letters}", "--target", "mnist_m", "--data-dir",
                        str(synthetic_root), "--no-download", "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "name different classes" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_choose_takes_several_sources_and_its_report_measures_the_ensemble(synthetic_root, tmp_path, capsys):
    result = run_script("choose.py", "--source", "mnist+synth", "--target", "mnist_m", "--candidates", "source-only",
                        "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--data-dir", str(synthetic_root),
                        "--no-download", "--out", str(tmp_path / "sweep"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "sweep" / "source-only" / "seed0" / "config.json").read_text())
    assert config["source"] == "mnist+synth"
    choice_report.main([str(tmp_path / "sweep"), "--data-dir", str(synthetic_root)])
    accuracy = json.loads((tmp_path / "sweep" / "source-only" / "seed0" / "metrics.json").read_text())["target_test_acc"]
    # an ensemble of one candidate is that candidate, measured on the same target test pictures
    assert f"the ensemble of each seed's candidates: {accuracy:.4f} on average" in capsys.readouterr().out
