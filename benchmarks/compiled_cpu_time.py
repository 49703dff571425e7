"""CPU time of one call, in the calling thread (``time.thread_time``): the compiled loop, the NumPy kernels and
PyTorch, one thread each, at ``scratch-rnn bench``'s shapes.

Why CPU time: on a shared machine (other processes on the cores) wall-clock samples measure the load as much as
the code, while a single-threaded call's CPU time is what it costs. Everything runs on one thread here (BLAS
limited to one with threadpoolctl, ``torch.set_num_threads(1)``), so each call computes in the calling thread.
Medians of ``--repeats`` interleaved samples (each sample enough calls for ~``--sample-ms``), min-max spread
given. The candidates are ``scratch.bench.candidates``' (same weights, outputs compared first).

    python benchmarks/compiled_cpu_time.py [--repeats 5] [--sample-ms 100] [--layers LSTM ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scratch_rnn import bench, compiled


def cpu_seconds(fn, sample_seconds: float) -> float:
    number, spent = 1, 0.0
    while True:
        start = time.thread_time()
        for _ in range(number):
            fn()
        spent = time.thread_time() - start
        if spent >= sample_seconds or number > 1 << 20:
            return spent / number
        number = max(number * 2, int(number * sample_seconds / max(spent, 1e-6)))


def cell(samples) -> str:
    """The median in ms and the spread, min-max."""
    return f"{np.median(samples) * 1e3:.3g} ({min(samples) * 1e3:.3g}-{max(samples) * 1e3:.3g})"


def ratio(samples, torch_samples) -> str:
    """The ratio of medians, and the spread of the ratios within each interleaved repeat."""
    r = [a / b for a, b in zip(samples, torch_samples)]
    return f"{np.median(samples) / np.median(torch_samples):.2f} ({min(r):.2f}-{max(r):.2f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-ms", type=float, default=100)
    parser.add_argument("--layers", nargs="+", default=list(bench.LAYERS))
    args = parser.parse_args(argv)
    import threadpoolctl
    import torch

    torch.set_num_threads(1)
    compiled.warm_up()
    names = ("scratch_numba", "scratch_numpy", "torch")
    with threadpoolctl.threadpool_limits(1, user_api="blas"), torch.inference_mode():
        print("| layer | B, T, F, U | compiled ms | NumPy kernels ms | PyTorch ms | compiled/torch | NumPy/torch |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for shape in bench.SHAPES:
            for layer in args.layers:
                frameworks = {"torch": torch, "against": ["torch", "scratch_numba", "scratch_numpy"], "threads": 1}
                calls, _ = bench.candidates(layer, shape, "float32", frameworks)
                samples = {name: [] for name in names}
                for _ in range(args.repeats):
                    for name in names:
                        samples[name].append(cpu_seconds(calls[name], args.sample_ms / 1000))
                cells = [cell(samples[name]) for name in names]
                cells += [ratio(samples[name], samples["torch"]) for name in names[:2]]
                print(f"| {layer} | {', '.join(map(str, shape))} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
