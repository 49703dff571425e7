"""Batch split across threads (scratch_rnn.parallel) against BLAS's own threads, per shape (docs/performance.md,
"Threads"). For each layer and shape ``BxTxFxU`` (``return_sequences=True``), interleaved, ``--repeats`` samples
of about 50 ms each, the best (least disturbed by other load on a shared machine) and the median kept:

* ``1 thread``: the engine unsplit, NumPy's BLAS on one thread;
* ``BLAS N``: the engine unsplit, BLAS on N threads (what a call does by default);
* ``split N``: the engine's threads at N (``scratch_rnn.threads``), BLAS on one thread;
* ``split N, BLAS N``: both (oversubscribed: N x N threads);
* ``forced split N``: as ``split N`` with the size policy off (``MIN_ROWS``, ``MIN_STEP_FLOPS`` at 1), to
  show what a split costs where the policy declines it.

Every candidate's outputs are compared with the first's, bit for bit, before timing (a line says if not). Usage::

    python examples/threads_scaling.py [--threads 2] [--repeats 9] [--shapes 64x200x64x128 ...]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import threadpoolctl

import scratch_rnn
from scratch_rnn import parallel

SHAPES = ("8x10x4x8", "32x100x16x32", "64x200x64x128", "256x50x128x256", "128x50x64x128", "512x20x32x64")


def sample(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def candidate(blas, layer, x, threads: int, blas_threads: int, force: bool):
    """A call of ``layer`` on ``x`` with the engine's ``threads`` and BLAS's ``blas_threads``; ``force``: split
    whatever the size."""

    def call():
        with blas.limit(limits=blas_threads, user_api="blas"), scratch_rnn.threads(threads):
            if not force:
                return layer(x)
            saved = parallel.MIN_ROWS, parallel.MIN_STEP_FLOPS
            parallel.MIN_ROWS, parallel.MIN_STEP_FLOPS = 2, 1
            try:
                return layer(x)
            finally:
                parallel.MIN_ROWS, parallel.MIN_STEP_FLOPS = saved

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layers", nargs="+", default=["SimpleRNN", "LSTM", "GRU"])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    args = parser.parse_args()
    n = args.threads
    blas = threadpoolctl.ThreadpoolController()
    print(f"cores {len(os.sched_getaffinity(0))}, threads {n}, load {os.getloadavg()}")
    print(
        f"{'layer':9s} {'B x T x F x U':>16s} {'split?':>6s} | ms, best (median): 1 thread, BLAS {n}, split {n}, ",
        end="",
    )
    print(f"split {n} + BLAS {n}, forced split {n} | speed-up of split {n} over 1 thread and over BLAS {n}")
    for shape_text in args.shapes:
        batch, timesteps, features, units = map(int, shape_text.split("x"))
        for name in args.layers:
            layer = getattr(scratch_rnn, name)(units, return_sequences=True, seed=0)
            x = np.random.default_rng(0).standard_normal((batch, timesteps, features)).astype("float32")
            layer(x[:2])

            configs = [(1, 1, False), (1, n, False), (n, 1, False), (n, n, False), (n, 1, True)]
            candidates = [candidate(blas, layer, x, *config) for config in configs]
            reference = candidates[0]()
            same = all(np.array_equal(candidate(), reference) for candidate in candidates[1:])
            once = sample(candidates[0], 1)
            number = max(1, int(0.05 / once))
            samples = [[] for _ in candidates]
            for repeat in range(args.repeats):
                order = list(range(len(candidates)))
                order = order[repeat % len(order) :] + order[: repeat % len(order)]
                for i in order:
                    samples[i].append(sample(candidates[i], number))
            best = [min(s) * 1e3 for s in samples]
            median = [float(np.median(s)) * 1e3 for s in samples]
            with scratch_rnn.threads(n):
                split = parallel.split_count(batch, layer._step_flops_per_row)
            cells = " ".join(f"{b:8.3g} ({m:.3g})" for b, m in zip(best, median))
            print(
                f"{name:9s} {shape_text:>16s} {split:6d} | {cells} | {best[0] / best[2]:.2f}x {best[1] / best[2]:.2f}x"
                + ("" if same else " (outputs differ in the last bits)"),
                flush=True,
            )
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
