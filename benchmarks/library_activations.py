"""The libraries' float32 tanh and sigmoid against the exact (float64) values: the activation budget of
docs/precision.md. (``benchmarks/activation_ulps.py`` checks the compiled loop's own, on every float32.)

The tolerance model perturbs every activation output by ``ACTIVATION_ULPS * u`` relative (``u = 2^-24``),
then multiplies by ``SAFETY``; this prints what implementations actually deliver, as relative error in units
of ``u``, worst and 99.9th percentile, and where the worst one is::

    python benchmarks/library_activations.py          # NumPy, and PyTorch / TensorFlow when installed

Run it on a GPU machine with ``--device cuda`` to measure PyTorch's CUDA activations the same way.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

U = 2.0**-24


def inputs(seed: int = 0) -> np.ndarray:
    """5 million float32 inputs: uniform in [-12, 12], normal with sd 3, and a grid over [-20, 20]."""
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(-12, 12, 2_000_000), rng.standard_normal(2_000_000) * 3, np.linspace(-20, 20, 1_000_001)]
    return np.concatenate(parts).astype(np.float32)


def implementations(device: str) -> dict:
    """``{name: {"tanh": f, "sigmoid": f}}`` of float32 array -> float32 array, for what is installed."""
    found = {"numpy": {"tanh": np.tanh, "sigmoid": lambda x: (1 / (1 + np.exp(-x))).astype(np.float32)}}
    try:
        import torch

        def on(fn):
            return lambda x: fn(torch.from_numpy(x).to(device)).cpu().numpy()

        found[f"torch {torch.__version__} {device}"] = {"tanh": on(torch.tanh), "sigmoid": on(torch.sigmoid)}
    except ImportError:
        pass
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        found[f"tensorflow {tf.__version__}"] = {
            "tanh": lambda x: tf.math.tanh(x).numpy(),
            "sigmoid": lambda x: tf.math.sigmoid(x).numpy(),
        }
    except ImportError:
        pass
    return found


def measure(device: str = "cpu") -> list[tuple]:
    """``(implementation, function, max, p99.9, x at the max)`` of the relative error in units of ``u``."""
    x = inputs()
    exact = {"tanh": np.tanh(x.astype(np.float64)), "sigmoid": 1 / (1 + np.exp(-x.astype(np.float64)))}
    rows = []
    for name, functions in implementations(device).items():
        for function, fn in functions.items():
            nonzero = exact[function] != 0
            got = np.asarray(fn(x), np.float64)[nonzero]
            want = exact[function][nonzero]
            error = np.abs(got - want) / np.abs(want) / U
            worst = int(np.argmax(error))
            rows.append((name, function, float(error.max()), float(np.percentile(error, 99.9)), x[nonzero][worst]))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="PyTorch's device (cpu, cuda)")
    args = parser.parse_args()
    print("| implementation | function | max (u) | p99.9 (u) | at x |\n|---|---|---|---|---|")
    for name, function, worst, p999, where in measure(args.device):
        print(f"| {name} | {function} | {worst:.3g} | {p999:.3g} | {where:.4g} |")
