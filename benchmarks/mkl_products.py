"""One recurrent step's matrix product, NumPy's BLAS (``np.dot``) against MKL's packed product
(:mod:`scratch_rnn.mkl`), one thread each, at the products of ``scratch-rnn bench``'s shapes: what
``SCRATCH_RNN_BLAS=auto``'s threshold (``mkl.AUTO_MIN_FLOPS``) and docs/performance.md ("MKL's packed
products") rest on.

Each product is the one the NumPy kernels run per step: LSTM ``(4U, U+F+1) @ (U+F+1, B)``, GRU
``(3U, U) @ (U, B)``, SimpleRNN ``(B, U) @ (U, U)``, for the whole batch and for half of it (a 2-way split's
slice). CPU time in the calling thread (``time.thread_time``: BLAS limited to one thread, so the load of other
processes does not count), medians of ``--repeats`` interleaved samples.

    python benchmarks/mkl_products.py [--repeats 7] [--sample-ms 50]
"""

from __future__ import annotations

import argparse

import numpy as np
import threadpoolctl
from compiled_cpu_time import cpu_seconds  # this folder's (a script's own folder is on sys.path)

from scratch_rnn import bench, mkl


def products(shape):
    """``(name, weights, x, left)`` for each layer's per-step product at ``shape`` and at half its batch."""
    batch, _, features, units = shape
    for rows in sorted({batch, max(1, batch // 2)}, reverse=True):
        yield f"LSTM B={rows}", (4 * units, units + features + 1), (units + features + 1, rows), True
        yield f"GRU B={rows}", (3 * units, units), (units, rows), True
        yield f"SimpleRNN B={rows}", (units, units), (rows, units), False


def time_pair(rng, w_shape, x_shape, left, repeats, sample_seconds):
    """Median CPU seconds of ``np.dot`` and of the packed product, interleaved."""
    weights = rng.standard_normal(w_shape).astype(np.float32)
    x = rng.standard_normal(x_shape).astype(np.float32)
    out = np.empty((w_shape[0], x_shape[1]) if left else (x_shape[0], w_shape[1]), np.float32)
    packed = mkl.recurrent_product(weights, x_shape[1] if left else x_shape[0], left)
    calls = {
        "blas": (lambda: np.dot(weights, x, out=out)) if left else (lambda: np.dot(x, weights, out=out)),
        "mkl": lambda: packed(x, out),
    }
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(cpu_seconds(call, sample_seconds))
    return (float(np.median(samples[name])) for name in calls)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sample-ms", type=float, default=50)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| product | shape | flops | NumPy's BLAS us | MKL packed us | BLAS / MKL |")
    print("|---|---|---:|---:|---:|---:|")
    with threadpoolctl.threadpool_limits(1, user_api="blas"), mkl.using("mkl"):
        for shape in bench.SHAPES:
            for name, w_shape, x_shape, left in products(shape):
                blas, packed_time = time_pair(rng, w_shape, x_shape, left, args.repeats, args.sample_ms / 1e3)
                flops = 2 * w_shape[0] * w_shape[1] * (x_shape[1] if left else x_shape[0])
                label = f"{w_shape} @ {x_shape}" if left else f"{x_shape} @ {w_shape}"
                print(
                    f"| {name} ({'x'.join(map(str, shape))}) | {label} | {flops / 1e6:.2f}M "
                    f"| {blas * 1e6:.1f} | {packed_time * 1e6:.1f} | {blas / packed_time:.2f} |"
                )


if __name__ == "__main__":
    main()
