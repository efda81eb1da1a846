import numpy as np
import pytest
import torch
from PIL import Image

import image_annotate
from conftest import digit_images
from dann.annotate import annotated_name, model_tag
from dann.outputs import MANIFEST
from dann import datasets, pictures


def bar_picture(label=2, size=60):
    """A digit-like picture: a bright bar at a label-dependent height on a dark background."""
    return digit_images([label], size, 3, seed=5)[0]


def test_a_training_image_is_prepared_exactly_as_the_loader_did(synthetic_root, tmp_path):
    for name, size in (("mnist_m", 32), ("mnist", 28)):
        images, _ = datasets.load_domain(name, "test", synthetic_root)
        raw = digit_images(np.arange(20) % 10, size, 3 if name == "mnist_m" else 1, seed=1 if name == "mnist_m" else 0)
        for i in (0, 7):
            picture = Image.fromarray(raw[i] if name == "mnist_m" else raw[i, ..., 0])
            picture.save(tmp_path / "x.png")
            assert torch.equal(pictures.picture_to_digit(Image.open(tmp_path / "x.png")), images[i])


def modes(tmp_path):
    """One file per kind of picture the issue lists; returns their paths."""
    rgb = Image.fromarray(bar_picture())
    made = {
        "rgb.jpg": rgb,
        "gray.png": rgb.convert("L"),
        "palette.gif": rgb.convert("P"),
        "big.png": rgb.resize((900, 900)),
        "tiny.png": rgb.resize((14, 14)),
        "wide.png": rgb.resize((60, 50)),
    }
    for name, picture in made.items():
        picture.save(tmp_path / name)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257)).save(tmp_path / "deep16.png")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 3  # orientation: rotated 180 degrees
    rgb.rotate(180).save(tmp_path / "rotated.jpg", exif=exif)
    return sorted(tmp_path.iterdir())


def test_every_picture_mode_becomes_a_28x28_digit(tmp_path):
    reference = pictures.picture_to_digit(Image.fromarray(bar_picture())).float()
    for path in modes(tmp_path):
        digit = pictures.picture_to_digit(Image.open(path))
        assert digit.shape == (3, 28, 28) and digit.dtype == torch.uint8, path.name
        row = digit.float().mean(dim=(0, 2)).argmax().item()
        assert abs(row - reference.mean(dim=(0, 2)).argmax().item()) <= 2, path.name  # the bar stays where it was


def test_sixteen_bit_pixels_are_scaled_not_clipped():
    deep = Image.fromarray(np.full((20, 20), 32768, np.uint16))
    assert abs(pictures.picture_to_digit(deep).float().mean().item() - 127.5) < 1


def test_transparency_is_laid_over_white():
    clear = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert pictures.picture_to_digit(clear).min() == 255


def test_files_and_a_folder_with_a_corrupt_file(trained_run, tmp_path, capsys):
    _, run = trained_run
    folder = tmp_path / "pics"
    folder.mkdir()
    paths = modes(folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    single = tmp_path / "one.png"
    Image.fromarray(bar_picture(7)).save(single)
    out = tmp_path / "out"
    code = image_annotate.main(["-f", str(single), "-f", str(folder), str(tmp_path / "missing.jpg"),
                                "--checkpoint", str(run / "checkpoint.pt"), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "broken.png: cannot read it" in errors[0] and "missing.jpg: cannot read it" in errors[1]
    written = sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    tag = model_tag(run / "checkpoint.pt")  # the model's run folder, and where it is
    assert tag.startswith("run-") and written == sorted(annotated_name(p, tag) for p in [single, *paths])
    lines = [line for line in captured.out.splitlines() if "top-3" in line]
    assert len(lines) == len(paths) + 1
    for line in lines:  # "<path>: <digit>  (top-3: d p, d p, d p)  -> <out>"
        probs = [float(x.split()[1]) for x in line.split("top-3: ")[1].split(")")[0].split(", ")]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    annotated = Image.open(out / f"one.png.{tag}.annotated.png")
    assert annotated.height > 200 and annotated.mode == "RGB"


def test_all_good_files_exit_zero_and_annotate_beside_the_picture(trained_run, tmp_path, capsys, monkeypatch):
    _, run = trained_run
    Image.fromarray(bar_picture()).save(tmp_path / "a.png")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert image_annotate.main(["-f", str(tmp_path / "a.png"), "--checkpoint", str(run / "checkpoint.pt"), "--show"]) == 0
    assert (tmp_path / f"a.png.{model_tag(run / 'checkpoint.pt')}.annotated.png").is_file()
    assert "no display found" in capsys.readouterr().err


def test_an_empty_folder_is_reported(trained_run, tmp_path, capsys):
    _, run = trained_run
    (tmp_path / "empty").mkdir()
    assert image_annotate.main(["-f", str(tmp_path / "empty"), "--checkpoint", str(run / "checkpoint.pt")]) == 1
    assert "a folder with no pictures in it" in capsys.readouterr().err


def test_cli_needs_a_file(capsys):
    with pytest.raises(SystemExit) as e:
        image_annotate.parse_args([])
    assert e.value.code == 2 and "-f/--file" in capsys.readouterr().err


def huge_png(path, width=30000, height=30000):
    """A valid PNG header claiming width x height pixels: PIL checks the size before decoding."""
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(30000, 30000), (10000, 10000)])  # PIL's error, and its mere warning
def test_an_oversized_picture_is_one_line_and_the_batch_goes_on(trained_run, tmp_path, capsys, size):
    _, run = trained_run
    huge_png(tmp_path / "bomb.png", *size)
    Image.fromarray(bar_picture()).save(tmp_path / "after.png")
    code = image_annotate.main(["-f", str(tmp_path / "bomb.png"), str(tmp_path / "after.png"),
                                "--checkpoint", str(run / "checkpoint.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "bomb.png: more than" in err[0] and "too large to read safely" in err[0]
    tag = model_tag(run / "checkpoint.pt")
    assert (tmp_path / f"after.png.{tag}.annotated.png").is_file() and not (tmp_path / f"bomb.png.{tag}.annotated.png").exists()


def test_a_folder_is_read_with_its_subfolders_kept_under_out_dir(trained_run, tmp_path, capsys):
    _, run = trained_run
    for rel in ("top.png", "a/one.png", "a/b/two.jpg", "c/three.png"):
        (tmp_path / "pics" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(bar_picture()).save(tmp_path / "pics" / rel)
    (tmp_path / "pics" / "a" / "notes.txt").write_text("not a picture")
    (tmp_path / "pics" / "empty").mkdir()
    assert image_annotate.main(["-f", str(tmp_path / "pics"), "--checkpoint", str(run / "checkpoint.pt"),
                                "--out-dir", str(tmp_path / "out")]) == 0
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    tag = model_tag(run / "checkpoint.pt")
    assert written == [f"a/b/two.jpg.{tag}.annotated.png", f"a/one.png.{tag}.annotated.png",
                       f"c/three.png.{tag}.annotated.png", f"top.png.{tag}.annotated.png"]
    # annotating again does not annotate the annotated copies
    assert image_annotate.main(["-f", str(tmp_path / "out"), "--checkpoint", str(run / "checkpoint.pt")]) == 1
    assert "a folder with no pictures in it" in capsys.readouterr().err
