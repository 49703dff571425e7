"""The README's worked example: a PyTorch nn.GRU port verified against Keras, and its pitfalls caught."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from helpers import require

import scratch_rnn

EXAMPLE = Path(__file__).parents[1] / "examples" / "torch_gru.py"


@pytest.fixture(scope="module")
def example():
    """examples/torch_gru.py as a module; it imports torch (the ``bench`` extra), skipped without it."""
    require("torch")
    spec = importlib.util.spec_from_file_location("torch_gru", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def narrow(example):
    """What the port supports: GRU with reset_after=True and its other fixed options, no mask."""
    return dict(layer="GRU", fixed=example.SUPPORTED, with_mask=False)


@pytest.mark.keras  # verify runs the sweep against Keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_torch_port_equals_keras(example, dtype):
    report = scratch_rnn.verify(example.torch_gru, dtype=dtype, max_examples=40, seed=4, **narrow(example))
    assert report.ok, "\n".join(map(str, report.failures))


@pytest.mark.keras  # verify runs the sweep against Keras
def test_the_gate_order_pitfall_is_caught(example, monkeypatch):
    monkeypatch.setattr(example, "keras_to_torch_order", lambda w: w)  # copy z, r, h as if they were r, z, n
    report = scratch_rnn.verify(example.torch_gru, max_examples=40, seed=4, shrink_seconds=0, **narrow(example))
    assert not report.ok and "Mismatch for GRU" in str(report.failures[0])


def test_unsupported_options_are_refused_by_name(example):
    config = {**example.SUPPORTED, "reset_after": False}
    with pytest.raises(NotImplementedError, match="reset_after=True"):
        example.torch_gru(config, [], np.zeros((1, 1, 1), np.float32))
