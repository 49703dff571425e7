"""CPU time per element of the compiled loop's float32 tanh and sigmoid (scratch_rnn.compiled) against NumPy's
float32 ``tanh``, on an array that stays in L1 cache (4096 elements, N(0, 3) inputs), one thread.

Why CPU time: the machine is shared (see docs/performance.md, "The compiled loop"); the best of 5 samples.

    python benchmarks/activation_ns.py [--size 4096] [--calls 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scratch_rnn import compiled


def nanoseconds(fn, x, out, calls: int) -> float:
    fn(x, out)
    best = np.inf
    for _ in range(5):
        start = time.thread_time()
        for _ in range(calls):
            fn(x, out)
        best = min(best, (time.thread_time() - start) / calls / x.size * 1e9)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    x = (np.random.default_rng(1).standard_normal(args.size) * 3).astype(np.float32)
    out = np.empty_like(x)
    jitted = compiled._jit()
    for label, fn in (
        ("compiled tanh (float32)", jitted["tanh_f32_array"]),
        ("compiled sigmoid (float32)", jitted["sigmoid_f32_array"]),
        ("NumPy tanh (float32)", lambda x, out: np.tanh(x, out=out)),
    ):
        print(f"{label}: {nanoseconds(fn, x, out, args.calls):.3f} ns an element", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
