"""The two forms of a recurrent layer exported by ``scratch_rnn.to_onnx``, measured in ONNX Runtime: their
activations' accuracy and their time. The numbers are stated in docs/ports.md ("Keras → ONNX").

1. Accuracy: a SimpleRNN with kernel 1 and recurrent kernel 0 computes ``tanh(x_t)`` at each step, so the
   exported file's output on a grid of ``x`` is the activation ONNX Runtime applies: the fused ``RNN``
   operator's (``recurrent="operators"``) or the standalone ``Tanh`` op's (``recurrent="scan"``). Reported: the
   largest absolute error and the largest error in float32 ulps of the exact value (float64 NumPy).
2. Time: SimpleRNN, LSTM and GRU (batch 32, 100 steps, 32 features, 64 units, ``return_sequences=True``) as
   the operator, the Scan and the masked Scan, one ONNX Runtime thread, best of ``--repeat`` runs; the engine
   on the same shapes.

    python benchmarks/onnx_forms.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import scratch_rnn as sr
from scratch_rnn.ports.to_onnx import to_onnx
from scratch_rnn.testing.onnx_candidates import run, session


def tanh_errors(form: str) -> tuple[float, float, float]:
    """``(max |error|, max ulps, x at the max ulps)`` of the exported tanh on a grid of float32 values."""
    x = np.concatenate([-np.logspace(-30, 1, 3000), np.linspace(-9, 9, 20001), np.logspace(-30, 1, 3000)])
    x = x.astype(np.float32)
    layer = sr.SimpleRNN(1, use_bias=False, return_sequences=True)
    layer.build((None, None, 1))
    layer.set_weights([np.ones((1, 1)), np.zeros((1, 1))])
    got = run(to_onnx(layer, None, recurrent=form), {"x": x[None, :, None]})[0][0, :, 0].astype(np.float64)
    exact = np.tanh(x.astype(np.float64))
    error = np.abs(got - exact)
    ulps = error / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return float(error.max()), float(ulps.max()), float(x[np.argmax(ulps)])


def best_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    for form in ("operators", "scan"):
        error, ulps, where = tanh_errors(form)
        print(f"tanh, {form:9s}: max |error| {error:.3g}, max {ulps:.3g} ulps (at x = {where:.3g})")
    rng = np.random.default_rng(0)
    batch, steps, features, units = 32, 100, 32, 64
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    mask = np.ones((batch, steps), bool)
    mask[:, -10:] = False
    for kind in (sr.SimpleRNN, sr.LSTM, sr.GRU):
        layer = kind(units, return_sequences=True)
        layer.build((None, None, features))
        row = {"engine": best_ms(lambda: layer(x), args.repeat)}  # noqa: B023
        for form in ("operators", "scan"):
            made = session(to_onnx(layer, None, recurrent=form))
            row[form] = best_ms(lambda: made.run(None, {"x": x}), args.repeat)  # noqa: B023
        masked = session(to_onnx(layer, None, mask=True))
        row["masked scan"] = best_ms(lambda: masked.run(None, {"x": x, "mask": mask}), args.repeat)  # noqa: B023
        print(f"{kind.__name__:9s} " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in row.items()))


if __name__ == "__main__":
    main()
