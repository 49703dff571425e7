"""Batch split across threads (scratch_rnn.parallel) against BLAS's own threads, per shape (docs/performance.md,
"Threads"). For each layer, shape ``BxTxFxU`` (``return_sequences=True``) and backend (``--backends``: the compiled
loop or the NumPy kernels, ``scratch_rnn.compiled.using``), interleaved, ``--repeats`` samples of about 50 ms each,
the median (and the best, least disturbed by other load on a shared machine) kept:

* ``1 thread``: the engine unsplit, NumPy's BLAS on one thread;
* ``BLAS N``: the engine unsplit (``threads(1)``), BLAS on N threads (the default before threadpoolctl limited it);
* ``split N``: the engine's threads at N (``scratch_rnn.threads``), BLAS on one thread for the whole call;
* ``default``: the call as a user makes it, nothing set (with threadpoolctl installed: the machine's cores, BLAS
  limited while a split call runs);
* ``forced split N``: as ``split N`` with the size policy off (``MIN_ROWS``, ``MIN_STEP_FLOPS`` at 1), to
  show what a split costs where the policy declines it.

Every candidate's outputs are compared with the first's, bit for bit, before timing (a line says if not).
Usage::

    python examples/threads_scaling.py [--threads 2] [--repeats 9] [--shapes 64x200x64x128 ...] \
        [--layers GRU] [--backends numpy numba] [--pin]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np
import threadpoolctl

import scratch_rnn
from scratch_rnn import compiled, parallel

SHAPES = ("32x100x16x32", "48x100x64x128", "64x200x64x128", "128x50x64x128", "256x50x64x128", "256x50x128x256")


def sample(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def candidate(blas, layer, x, threads, blas_threads, force: bool, backend: str):
    """A call of ``layer`` on ``x`` with the engine's ``threads`` and BLAS's ``blas_threads`` (None: as they are),
    on ``backend``; ``force``: split whatever the size."""

    def call():
        with contextlib.ExitStack() as stack:
            stack.enter_context(compiled.using(backend))
            if blas_threads is not None:
                stack.enter_context(blas.limit(limits=blas_threads, user_api="blas"))
            stack.enter_context(scratch_rnn.threads(threads))
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
    parser.add_argument("--backends", nargs="+", default=["auto"], choices=compiled.BACKENDS)
    parser.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="seconds to wait before each sample: OpenBLAS's idle threads spin "
        "for about 0.1 s after a product on several threads and would slow the next candidate's threads",
    )
    parser.add_argument("--pin", action="store_true", help="parallel.PIN_SLICES on: each slice on one core")
    args = parser.parse_args()
    parallel.PIN_SLICES = args.pin
    n = args.threads
    if "numba" in args.backends or (compiled.enabled() and "auto" in args.backends):
        compiled.warm_up()  # SciPy's BLAS loaded before the controller scans the libraries
    blas = threadpoolctl.ThreadpoolController()
    names = ["1 thread", f"BLAS {n}", f"split {n}", "default", f"forced split {n}"]
    configs = [(1, 1, False), (1, n, False), (n, 1, False), (None, None, False), (n, 1, True)]
    print(f"cores {len(os.sched_getaffinity(0))}, threads {n}, default threads {scratch_rnn.get_num_threads()}, ")
    print(f"load {os.getloadavg()}, BLAS {[(p['prefix'], p['num_threads']) for p in blas.info()]}")
    print(
        f"{'layer':9s} {'B x T x F x U':>16s} {'backend':7s} {'split?':>6s} | ms, median (best): {', '.join(names)}",
        end="",
    )
    print(f" | median of split {n} and of default over BLAS {n}")
    for shape_text in args.shapes:
        batch, timesteps, features, units = map(int, shape_text.split("x"))
        for name in args.layers:
            layer = getattr(scratch_rnn, name)(units, return_sequences=True, seed=0)
            x = np.random.default_rng(0).standard_normal((batch, timesteps, features)).astype("float32")
            layer(x[:2])
            for backend in args.backends:
                candidates = [candidate(blas, layer, x, *config, backend) for config in configs]
                reference = candidates[0]()
                same = all(np.array_equal(candidate(), reference) for candidate in candidates[1:])
                once = sample(candidates[0], 1)
                number = max(1, int(0.05 / once))
                samples = [[] for _ in candidates]
                for repeat in range(args.repeats):
                    order = list(range(len(candidates)))
                    order = order[repeat % len(order) :] + order[: repeat % len(order)]
                    for i in order:
                        time.sleep(args.settle)
                        candidates[i]()  # one untimed call
                        samples[i].append(sample(candidates[i], number))
                best = [min(s) * 1e3 for s in samples]
                median = [float(np.median(s)) * 1e3 for s in samples]
                with scratch_rnn.threads(n):
                    split = parallel.split_count(batch, layer._step_flops_per_row)
                cells = " ".join(f"{m:8.3g} ({b:.3g})" for b, m in zip(best, median))
                print(
                    f"{name:9s} {shape_text:>16s} {backend:7s} {split:6d} | {cells} | "
                    f"{median[2] / median[1]:.2f}x {median[3] / median[1]:.2f}x"
                    + ("" if same else " (outputs differ in the last bits)"),
                    flush=True,
                )
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
