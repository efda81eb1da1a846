import json

import torch

import bench


def test_fast_step_equals_the_plain_eager_step():
    for arch in ("mnist", "svhn"):
        check = bench.check_same_step(arch, torch.device("cpu"))
        assert check["ok"], check


def test_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main_bench(["--devices", "cpu", "--tasks", "mnist->mnist_m", "--steps", "1", "--workers", "0", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["pipeline"] for r in rows] == ["baseline", "this project"]
    for r in rows:
        assert r["ms_per_step"] > 0 and abs(r["pairs_per_s"] - 128_000 / r["ms_per_step"]) < 1e-6 * r["pairs_per_s"]
        assert abs(r["projected_100_epochs_s"] - 100 * 461 * r["ms_per_step"] / 1000) < 1e-6 * r["projected_100_epochs_s"]
    assert rows[1]["same_step_check"]["ok"]
    assert "this project" in capsys.readouterr().out
