"""examples/torch_cuda.py: the GPU port a user runs through the harness, run here on the CPU it falls back to."""

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from helpers import require

from scratch_rnn.cli import main

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture
def example(monkeypatch):
    """examples/torch_cuda.py as a module, on the CPU whatever the machine has (torch: the ``ports`` extra)."""
    require("torch")
    monkeypatch.setenv("TORCH_CUDA_DEVICE", "cpu")
    spec = importlib.util.spec_from_file_location("torch_cuda", EXAMPLES / "torch_cuda.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_and_runs_on_the_cpu(example, monkeypatch, capsys):
    import torch

    monkeypatch.delenv("TORCH_CUDA_DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert example.device().type == "cpu" and example.precision() == "float32"
    assert "no CUDA device available; the port runs on the CPU" in capsys.readouterr().err


def test_tf32_follows_the_environment(example, monkeypatch):
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        monkeypatch.setenv("TORCH_CUDA_TF32", "0")
        example.device()
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        monkeypatch.setenv("TORCH_CUDA_TF32", "1")
        example.device()
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        monkeypatch.setenv("TORCH_CUDA_TF32", "yes")
        with pytest.raises(ValueError, match="TORCH_CUDA_TF32 must be 0 or 1, got 'yes'"):
            example.device()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_the_port_returns_keras_structure(example, rng):
    from scratch_rnn import LSTM

    layer = LSTM(3, return_sequences=True, return_state=True)
    layer.build((2, 5, 4))
    weights = [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    expected = layer(x)
    out = example.candidate(layer.get_config(), weights, x)
    assert [o.shape for o in out] == [(2, 5, 3), (2, 3), (2, 3)] and all(o.dtype == np.float32 for o in out)
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError):  # the planted difference: another weight gives another output
        np.testing.assert_allclose(example.candidate(layer.get_config(), [w * 1.01 for w in weights], x)[0], out[0])


@pytest.mark.keras
@pytest.mark.parametrize("layer", ["GRU", "LSTM"])
@pytest.mark.parametrize("precision", ["float32", "tf32"])
def test_the_cpu_fallback_passes_the_harness(keras, example, layer, precision):
    from scratch_rnn.testing.verify import verify

    report = verify(example.candidate, layer=layer, max_examples=15, seed=2, precision=precision)
    assert report.ok, "\n".join(map(str, report.failures))


@pytest.mark.keras
def test_cli_runs_it_as_a_candidate_at_tf32(keras, monkeypatch, capsys):
    require("torch")
    monkeypatch.chdir(EXAMPLES)
    monkeypatch.setenv("TORCH_CUDA_DEVICE", "cpu")
    argv = ["verify", "--candidate", "torch_cuda:candidate", "--layer", "GRU", "--dtype", "float32"]
    code = main([*argv, "--examples", "6", "--seed", "1", "--precision", "tf32"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "to_torch on the GPU vs Keras" in out and "float32 @tf32" in out


@pytest.mark.keras
def test_the_model_candidate_in_both_lanes(keras, example, tmp_path):
    """verify --model with the example's model candidate: float32 at tf32, the float64 lane in float64."""
    from scratch_rnn.testing.model_verify import verify_model

    rng = np.random.default_rng(4)
    stacked = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True), keras.layers.GRU(2)])
    stacked.set_weights([rng.uniform(-1, 1, w.shape) for w in stacked.get_weights()])
    path = tmp_path / "stacked.keras"
    stacked.save(path)
    for dtype, precision in (("float32", "tf32"), ("float64", "float32")):
        report = verify_model(path, example.model, max_examples=8, seed=1, dtype=dtype, precision=precision)
        assert report.ok, "\n".join(map(str, report.failures))
