"""``scratch-rnn bench``: its weight copies into PyTorch and its report. No timing is asserted."""

import json

import pytest
from helpers import require

from scratch_rnn import bench
from scratch_rnn.cli import main

torch = require("torch")
require("threadpoolctl")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", bench.LAYERS)
def test_torch_computes_what_scratch_computes_with_the_copied_weights(layer, dtype):
    """The gate orders (GRU: Keras z, r, h; PyTorch r, z, n) and the biases are copied right."""
    frameworks = {"torch": torch, "against": ["torch"]}
    calls, differences = bench.candidates(layer, (3, 6, 4, 5), dtype, frameworks)
    assert set(calls) == {"scratch", "torch"}
    assert differences["torch"] <= {"float32": 1e-6, "float64": 1e-14}[dtype]


def test_a_wrong_copy_is_refused_before_timing(monkeypatch):
    correct = bench.torch_module

    def swapped_gates(torch, layer, features, units, weights, dtype):
        module = correct(torch, layer, features, units, weights, dtype)
        with torch.no_grad():  # PyTorch's r and z rows exchanged: the classic port bug
            w = module.weight_hh_l0
            w.copy_(torch.cat([w[units : 2 * units], w[:units], w[2 * units :]]))
        return module

    monkeypatch.setattr(bench, "torch_module", swapped_gates)
    with pytest.raises(bench.Disagreement, match="GRU .* torch differs from scratch"):
        bench.candidates("GRU", (3, 6, 4, 5), "float32", {"torch": torch, "against": ["torch"]})


def test_the_command_writes_every_sample_to_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--shapes",
            "2x3x4x5",
            "--against",
            "torch",
            "--repeats",
            "2",
            "--sample-ms",
            "1",
            "--settle-ms",
            "0",
            "--threads",
            "1",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "scratch/torch" in out and "GEMM roof" in out and f"JSON written to {path}" in out
    result = json.loads(path.read_text())
    assert result["threads"] == 1 and result["gemm"]["gflops"] > 0
    assert [e["layer"] for e in result["results"]] == list(bench.LAYERS)
    for entry in result["results"]:
        assert entry["shape"] == {"B": 2, "T": 3, "F": 4, "U": 5}
        assert {name: len(s) for name, s in entry["samples"].items()} == {"scratch": 2, "torch": 2}
        assert entry["ratios"]["scratch/torch"] > 0 and entry["flops"] == bench.flops(entry["layer"], (2, 3, 4, 5))
        median = entry["median_seconds"]
        fractions = {name: entry["flops"] / median[name] / (result["gemm"]["gflops"] * 1e9) for name in median}
        assert entry["roof_fractions"] == pytest.approx(fractions, rel=1e-12)


def test_benchmark_returns_its_result_prints_nothing_and_reports_progress(capsys):
    progress = []
    result = bench.benchmark(
        ["SimpleRNN"],
        [(2, 3, 4, 5)],
        repeats=2,
        threads=1,
        against=["torch"],
        sample_seconds=0.001,
        settle_seconds=0,
        on_sample=lambda done, total: progress.append((done, total)),
    )
    assert capsys.readouterr() == ("", "")
    assert [e["layer"] for e in result["results"]] == ["SimpleRNN"]
    total = 2 * 3  # repeats x (the GEMM roof, scratch, torch)
    assert progress == [(done, total) for done in range(total + 1)]
