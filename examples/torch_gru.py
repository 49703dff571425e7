"""Prove a PyTorch ``nn.GRU`` port of a Keras GRU computes what Keras computes.

The candidate interface: ``candidate(config, weights, x, mask=None, initial_state=None)``
gets the Keras layer's ``get_config()`` and ``get_weights()`` (Keras layout) and
returns what the Keras layer call returns. Run it with::

    python examples/torch_gru.py            # or scratch_rnn.verify(torch_gru, layer="GRU", ...)

The pitfalls this port has to get right:

* Gate order. Keras stacks GRU blocks as z (update), r (reset), h (candidate);
  PyTorch as r, z, n. Copying the kernel as is swaps the update and reset gates.
* Layout. Keras's ``kernel`` is ``(input_dim, 3*units)`` for ``x @ kernel``;
  PyTorch's ``weight_ih_l0`` is ``(3*units, input_dim)`` for ``W @ x``: transpose.
* Bias. With ``reset_after=True`` (Keras 3's default) Keras's bias is
  ``(2, 3*units)``: row 0 is the input bias (PyTorch ``bias_ih_l0``), row 1 the
  recurrent bias (``bias_hh_l0``), which sits *inside* ``r * (W_hn h + b_hn)``.
  PyTorch's GRU is always the ``reset_after=True`` form; ``reset_after=False``
  (Keras 2's old default) has no PyTorch equivalent.
* Direction. ``go_backwards=True`` reads the sequence from the end and returns the
  outputs in that processing order: feed PyTorch the reversed sequence and do not
  reverse its outputs back.
"""

from __future__ import annotations

import numpy as np
import torch

#: What this port implements; anything else is refused by name (and not verified).
SUPPORTED = {"activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True, "use_bias": True}


def keras_to_torch_order(w: np.ndarray) -> np.ndarray:
    """Keras's gate blocks z, r, h (last axis) -> PyTorch's r, z, n."""
    z, r, h = np.split(w, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def torch_gru_from_keras(config: dict, weights: list) -> torch.nn.GRU:
    kernel, recurrent_kernel, bias = weights  # (F, 3u), (u, 3u), (2, 3u)
    dtype = torch.float64 if kernel.dtype == np.float64 else torch.float32
    gru = torch.nn.GRU(kernel.shape[0], config["units"], batch_first=True, dtype=dtype)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(keras_to_torch_order(kernel).T.copy()))  # (3u, F)
        gru.weight_hh_l0.copy_(torch.from_numpy(keras_to_torch_order(recurrent_kernel).T.copy()))  # (3u, u)
        gru.bias_ih_l0.copy_(torch.from_numpy(keras_to_torch_order(bias[0])))
        gru.bias_hh_l0.copy_(torch.from_numpy(keras_to_torch_order(bias[1])))
    return gru


def torch_gru(config, weights, x, mask=None, initial_state=None):
    """A Keras ``GRU`` call, computed by PyTorch."""
    for option, value in SUPPORTED.items():
        if config[option] != value:
            raise NotImplementedError(f"this port supports only {option}={value!r}, got {config[option]!r}")
    if mask is not None:
        raise NotImplementedError("this port does not support masks")
    gru = torch_gru_from_keras(config, weights)
    # Processing order, kept in the output. A copy: torch refuses negative strides, and NumPy's
    # ascontiguousarray keeps them for arrays with size-1 axes.
    x = x[:, ::-1].copy() if config["go_backwards"] else x
    h0 = None if initial_state is None else torch.from_numpy(np.asarray(initial_state[0]))[None]  # (1, B, u)
    with torch.no_grad():
        sequence, h_last = gru(torch.from_numpy(x), h0)
    last = h_last[0].numpy()  # (B, u)
    output = sequence.numpy() if config["return_sequences"] else last
    return [output, last] if config["return_state"] else output


if __name__ == "__main__":
    import scratch_rnn

    for dtype in ("float32", "float64"):
        report = scratch_rnn.verify(
            torch_gru, layer="GRU", dtype=dtype, max_examples=100, fixed=SUPPORTED, with_mask=False
        )
        print(
            f"{dtype}: ok={report.ok}, cases={report.examples}, max |err|={report.max_abs_error:.3g}, "
            f"max err/tol={report.max_margin:.3g}"
        )
        for failure in report.failures:
            print(failure)
