"""The measurements behind the compiled loop's choices (scratch_rnn.compiled, scratch_rnn.parallel): where ``auto``
takes the compiled loop over the NumPy kernels, and when a compiled call splits its batch across threads.

``--table kernels``: wall time of the NumPy kernels and the compiled loop, each with its products on OpenBLAS
(NumPy's, or SciPy's for the compiled loop) and on MKL's packed weights, at the default thread count (so a call
splits where its policy says). ``--table split``: wall time of a compiled call unsplit and split in two (the
split forced with ``parallel.MIN_CALL_ELEMENTS = 0``), products as ``auto`` chooses. Medians of ``--repeats``
samples of about 40 ms (each after a third as many untimed calls), ms; float32, ``return_sequences=False``; the
split table at 2 threads.
docs/performance.md ("One compiled call a slice") gives a run. Needs numba, and the ``mkl`` extra for MKL's
columns. Time it on an idle machine: every column is wall time.

    python benchmarks/compiled_choice.py [--table kernels|split] [--shapes 32x100x32x64 ...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import numpy as np

import scratch_rnn
from scratch_rnn import compiled, mkl, parallel

LAYERS = {"SimpleRNN": scratch_rnn.SimpleRNN, "LSTM": scratch_rnn.LSTM, "GRU": scratch_rnn.GRU}
SHAPES = {
    "kernels": "32x100x32x64 64x100x64x64 32x100x32x128 64x200x64x128 128x50x64x128 256x50x64x128 "
    "128x50x128x256 256x50x128x256",
    "split": "16x1x16x32 32x10x16x32 16x30x16x32 32x30x16x32 16x100x16x32 32x100x16x32 16x100x16x64 64x30x8x16 "
    "128x30x8x8",
}


def wall_ms(fn, repeats: int) -> float:
    """The median wall time of ``fn()`` in ms, over ``repeats`` samples of about 40 ms."""
    fn()
    start = time.perf_counter()
    fn()
    number = max(3, int(0.04 / max(time.perf_counter() - start, 1e-9)))
    samples = []
    for _ in range(repeats):
        for _ in range(max(1, number // 3)):
            fn()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return float(np.median(samples)) * 1e3


def kernels_row(name, layer, x, repeats) -> str:
    times = {}
    for backend in ("numpy", "numba"):
        for products in ("numpy", "mkl") if mkl.available() else ("numpy",):
            with compiled.using(backend), mkl.using(products):
                times[backend, products] = wall_ms(lambda: layer(x), repeats)
    cells = []
    for products in ("numpy", "mkl"):
        cells += [times.get(("numpy", products)), times.get(("numba", products))]
    ratios = [cells[1] / cells[0], cells[3] / cells[2] if cells[2] else None]
    shown = [f"{c:.3g}" if c is not None else "-" for c in cells]
    shown += [f"{r:.2f}" if r is not None else "-" for r in ratios]
    return f"| {name} | {'×'.join(map(str, x.shape))}×{layer.units} | " + " | ".join(shown) + " |"


@contextlib.contextmanager
def min_call_elements(value: int):
    saved, parallel.MIN_CALL_ELEMENTS = parallel.MIN_CALL_ELEMENTS, value
    try:
        yield
    finally:
        parallel.MIN_CALL_ELEMENTS = saved


def split_row(shape, x, repeats) -> str:
    cells = []
    for cls in LAYERS.values():
        call = functools.partial(cls(shape[3]), x)
        call()
        with compiled.using("numba"), parallel.threads(2):
            with min_call_elements(1 << 60):  # never split
                whole = wall_ms(call, repeats)
            with min_call_elements(0):  # always split (8 rows a thread at least)
                split = wall_ms(call, repeats)
        cells.append(f"{whole:.3g} / {split:.3g} ({split / whole:.2f})")
    return f"| {', '.join(map(str, shape))} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=sorted(SHAPES), default="kernels")
    parser.add_argument("--shapes", nargs="+", help="BxTxFxU (default: the table's shapes in docs/performance.md)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    shapes = [tuple(int(n) for n in s.split("x")) for s in (args.shapes or SHAPES[args.table].split())]
    rng = np.random.default_rng(0)
    if args.table == "kernels":
        columns = "NumPy kernels | compiled | NumPy kernels, MKL | compiled, MKL | compiled / NumPy | on MKL"
        print(f"| layer | B×T×F×U | {columns} |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
    else:
        print("| B, T, F, U | " + " | ".join(LAYERS) + " |")
        print("|---|" + "---|" * len(LAYERS))
    for shape in shapes:
        x = rng.standard_normal(shape[:3]).astype("float32")
        if args.table == "split":
            print(split_row(shape, x, args.repeats), flush=True)
            continue
        for name, cls in LAYERS.items():
            layer = cls(shape[3])
            layer(x)
            print(kernels_row(name, layer, x, args.repeats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
