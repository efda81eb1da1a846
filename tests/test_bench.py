import json

import pytest
import torch

import bench
from dann import benchmark
from dann.common import UserError


# bf16 is checked on the mnist network only: its autocast path is the same code for both networks, and
# the svhn network's five steps take 20 s a precision on two cores
@pytest.mark.parametrize("arch, bf16", [("mnist", False), ("mnist", True), pytest.param("svhn", False, marks=pytest.mark.slow)])
def test_fast_step_equals_the_plain_eager_step(arch, bf16):
    check = benchmark.check_same_steps(arch, torch.device("cpu"), bf16)
    assert check["ok"], check


@pytest.mark.parametrize("change", [{"momentum": 0.8}, {"lr_alpha": 12.0}, {"gamma": 5.0}])
def test_the_same_step_check_catches_a_different_update(change):
    check = benchmark.check_same_steps("mnist", torch.device("cpu"), False, **change)
    assert not check["ok"], check


def test_the_fast_step_of_french_et_als_batch_norm_network_matches_the_plain_step():
    # each domain through the network apart, dropout drawn alike: the check must still hold there
    check = benchmark.check_same_steps("mnist-bn", torch.device("cpu"), False)
    assert check["ok"], check


@pytest.mark.slow
def test_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--devices", "cpu", "--tasks", "mnist-mnist_m", "--steps", "1", "--workers", "0",
                      "--json", str(out)])
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["pipeline"] for r in rows] == ["baseline", "this project", "+ --augment", "+ --bf16", "+ --ema 0.998",
                                             "--method dann-im", "--method vada", "--method dirt-t",
                                             "--method self-train --augment", "--method self-ensemble",
                                             "--method adamatch"]
    for r in rows:
        assert r["ms_per_step"] > 0 and abs(r["pairs_per_s"] - 128_000 / r["ms_per_step"]) < 1e-6 * r["pairs_per_s"]
        assert abs(r["projected_100_epochs_s"] - 100 * 461 * r["ms_per_step"] / 1000) < 1e-6 * r["projected_100_epochs_s"]
        assert abs(r["speedup"] - rows[0]["ms_per_step"] / r["ms_per_step"]) < 1e-9 * r["speedup"]
    assert [(c["arch"], c["precision"], c["ok"]) for c in result["checks"]] == [("mnist", "fp32", True), ("mnist", "bf16", True)]
    printed = capsys.readouterr().out
    assert "+ --bf16" in printed and "same-step check" in printed and "MISMATCH" not in printed


def test_bench_real_data_missing_says_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("DANN_DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match="download_data.py --datasets svhn"):
        bench.main(["--devices", "cpu", "--tasks", "svhn-mnist", "--real", "--json", str(tmp_path / "b.json")])


def test_a_json_path_in_a_missing_folder_is_refused_before_timing(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.parse_args(["--json", str(tmp_path / "nowhere" / "b.json")])
    assert stop.value.code == 2 and "its folder does not exist" in capsys.readouterr().err


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("arch", ["mnist", "svhn"])
@pytest.mark.parametrize("bf16", [False, True])
def test_cuda_graph_step_equals_the_plain_eager_step(arch, bf16):
    check = benchmark.check_same_steps(arch, torch.device("cuda"), bf16)
    assert check["ok"], check
