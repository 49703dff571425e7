"""A Keras layer or model ported to PyTorch on the GPU, and proven against Keras by the harness.

The port is :func:`scratch_rnn.to_torch` (PyTorch's own ``nn.GRU``/``nn.LSTM``/``nn.RNN`` where Keras's
computation maps onto them, so cuDNN runs it), moved to ``cuda``. A GPU rarely multiplies in strict float32:
with TF32 on (PyTorch's default for cuDNN, ``torch.backends.cudnn.allow_tf32``) each product's operands keep
10 mantissa bits. So verify the GPU port at the precision it computes in::

    cd examples
    scratch-rnn verify --candidate torch_cuda:candidate --layer GRU --dtype float32 --precision tf32
    scratch-rnn verify --candidate torch_cuda:model --model my_model.keras --dtype float32 --precision tf32
    python torch_cuda.py                  # GRU and LSTM, 100 cases each, at the precision the device computes in

A failing case says the least precision it would agree under ("agrees under precision='tf32'") or that no
standard precision explains it (a porting bug). ``TORCH_CUDA_TF32=0`` turns TF32 off (cuDNN and CUDA matmuls)
for an exact-float32 run; ``TORCH_CUDA_DEVICE`` picks the device (default ``cuda`` when one is available).
Without a GPU the port runs on the CPU, after saying so on stderr: the harness then checks the same code at
float32 (``tests/test_torch_cuda_example.py`` does). docs/precision.md has the numbers measured on an H200.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from scratch_rnn import to_torch
from scratch_rnn.keras_convert import from_config
from scratch_rnn.testing.torch_candidates import layer_kind


def tf32_enabled() -> bool:
    """``TORCH_CUDA_TF32``: 1 (PyTorch's cuDNN default, the default here) or 0."""
    value = os.environ.get("TORCH_CUDA_TF32", "1")
    if value not in ("0", "1"):
        raise ValueError(f"TORCH_CUDA_TF32 must be 0 or 1, got {value!r}.")
    return value == "1"


def device() -> torch.device:
    """The device the port runs on: ``$TORCH_CUDA_DEVICE``, else ``cuda`` if available, else the CPU (said on
    stderr, once). Sets TF32 for cuDNN and for CUDA matmuls from :func:`tf32_enabled`."""
    torch.backends.cudnn.allow_tf32 = tf32_enabled()
    torch.backends.cuda.matmul.allow_tf32 = tf32_enabled()
    chosen = os.environ.get("TORCH_CUDA_DEVICE")
    if chosen is None:
        chosen = "cuda" if torch.cuda.is_available() else "cpu"
        if chosen == "cpu" and not getattr(device, "warned", False):
            print("torch_cuda: no CUDA device available; the port runs on the CPU (float32 products)", file=sys.stderr)
            device.warned = True
    return torch.device(chosen)


def precision() -> str:
    """The ``precision=`` this port computes in: ``tf32`` on a CUDA device with TF32 on, else ``float32``."""
    return "tf32" if device().type == "cuda" and tf32_enabled() else "float32"


def _tensor(array, where):
    return None if array is None else torch.from_numpy(np.ascontiguousarray(array)).to(where)


def _numpy(out):
    return [o.detach().cpu().numpy() for o in out] if isinstance(out, (list, tuple)) else out.detach().cpu().numpy()


def candidate(config, weights, x, mask=None, initial_state=None):
    """A Keras recurrent layer (or Bidirectional) call, computed by its PyTorch port on :func:`device`."""
    where = device()
    scratch = from_config(layer_kind(config), config)
    scratch.set_weights(weights)
    module = to_torch(scratch).to(where)
    states = None if initial_state is None else [_tensor(s, where) for s in initial_state]
    with torch.no_grad():
        return _numpy(module(_tensor(x, where), _tensor(mask, where), states))


candidate.__qualname__ = "to_torch on the GPU"


def model(model_file, inputs):
    """A saved Keras model's call (``verify --model``), computed by its PyTorch port on :func:`device`; in
    float64 when a float input is float64 (the harness's float64 lane), else in the file's dtype."""
    from scratch_rnn.saving import load_model

    where = device()
    dtype = "float64" if any(np.asarray(x).dtype == np.float64 for x in inputs) else None
    module = to_torch(load_model(os.fspath(model_file), dtype=dtype)).to(where)
    xs = [_tensor(np.asarray(x), where) for x in inputs]
    with torch.no_grad():
        return _numpy(module(xs if len(xs) > 1 else xs[0]))


model.__qualname__ = "to_torch model on the GPU"


if __name__ == "__main__":
    import scratch_rnn

    chosen = precision()
    print(f"device {device()}, TF32 {'on' if tf32_enabled() else 'off'}: verifying at precision={chosen!r}")
    for layer in ("GRU", "LSTM"):
        report = scratch_rnn.verify(candidate, layer=layer, dtype="float32", max_examples=100, precision=chosen)
        print(
            f"{layer}: ok={report.ok}, cases={report.examples}, margin p50 {report.margin_percentile(50):.3g}, "
            f"p99 {report.margin_percentile(99):.3g}, max {report.max_margin:.3g}"
        )
        for failure in report.failures:
            print(failure)
