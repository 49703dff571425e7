"""Reproduce the reduced-precision table of issue #13 on the CPU (docs/precision.md prints its output).

The issue measured PyTorch's ``nn.GRU``/``nn.LSTM`` on an H200 with Keras's weights: with TF32 on, every one
of 120 cases per layer was over the float32 tolerance, at margins (|error| / tolerance) of 55 typical, 216
worst. Here the candidates of :mod:`scratch_rnn.testing.precision` compute as such a GPU does (operands
rounded to TF32, float16 or bfloat16 before each product, float32 accumulation), and each is compared on the
same generated cases under the float32 tolerance and under the tolerance of its own ``precision=``::

    python examples/precision_table.py                 # GRU and LSTM, 120 cases each (about a minute)
    python examples/precision_table.py --examples 30 --layer GRU

Add ``--torch`` to include the PyTorch CPU port of examples/torch_cuda.py (needs torch and scratch_rnn.to_torch).
"""

from __future__ import annotations

import argparse
import time

from scratch_rnn.testing import precision
from scratch_rnn.testing.tolerance import PRECISIONS


def rows(layer: str, examples: int, seed: int, with_torch: bool = False):
    """``(candidate name, tolerance precision, Survey)`` for every emulated precision (and the torch port)."""
    candidates = [(name, getattr(precision, name), ("float32", name)) for name in PRECISIONS]
    if with_torch:
        import torch_cuda  # examples/torch_cuda.py: run from examples/, or with it on sys.path

        candidates.append(("torch CPU port", torch_cuda.candidate, ("float32", "tf32")))
    for name, candidate, precisions in candidates:
        for row in precision.survey(candidate, layer, examples, seed, tuple(dict.fromkeys(precisions))):
            yield name, row


def markdown(layer: str, examples: int, seed: int, with_torch: bool = False) -> str:
    lines = [
        f"| {layer}: candidate | tolerance | cases over tolerance | margin p50 / p99 / max | float32 failures "
        "explained by |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows(layer, examples, seed, with_torch):
        explained = ", ".join(f"{k} {v}" for k, v in sorted(row.explained.items())) if row.explained else ""
        lines.append(
            f"| {name} | {row.precision} | {row.over} / {row.cases} | {row.percentile(50):.3g} / "
            f"{row.percentile(99):.3g} / {row.percentile(100):.3g} | {explained} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", action="append", choices=["SimpleRNN", "LSTM", "GRU", "Bidirectional"])
    parser.add_argument("--examples", type=int, default=120)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--torch", action="store_true", help="add the PyTorch CPU port (examples/torch_cuda.py)")
    args = parser.parse_args()
    for layer in args.layer or ["GRU", "LSTM"]:
        start = time.perf_counter()
        print(markdown(layer, args.examples, args.seed, args.torch))
        print(f"\n({layer}: {args.examples} cases, seed {args.seed}, {time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
