"""The float32 tanh and sigmoid of the compiled loop (scratch_rnn.compiled), checked on ALL 2^32 float32 inputs.

For every bit pattern (NaNs, infinities, zeros and subnormals included) it computes the compiled activation
and NumPy's float64 reference and reports the largest error in float32 ulps of the exact value, and where.
The harness's tolerance model assumes at most ``ACTIVATION_ULPS`` (2) for an activation; the result is
stated in docs/performance.md ("The compiled loop"). Needs numba (``pip install 'scratch-rnn[fast]'``).
Takes about 7 minutes per activation on one core of a 2-core VM (2026-11-26: tanh 1.3320, sigmoid 1.0325 ulp).

    python benchmarks/activation_ulps.py [tanh|sigmoid ...] [--blocks N]   # N blocks of 2^24 inputs (256: all)
"""

from __future__ import annotations

import argparse
import sys
import time

from scratch_rnn import compiled
from scratch_rnn.testing.tolerance import ACTIVATION_ULPS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {list(compiled.APPROXIMATED)} (default: both)")
    parser.add_argument("--blocks", type=int, default=256, help="blocks of 2^24 inputs from bit pattern 0 (256: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(compiled.APPROXIMATED))
    if unknown:
        parser.error(f"unknown activation(s) {unknown}, expected names from {list(compiled.APPROXIMATED)}")
    failed = False
    for name in args.names or compiled.APPROXIMATED:
        started = time.perf_counter()
        worst, where, checked = compiled.max_ulp_error(name, 0, min(args.blocks, 256) << 24)
        seconds = time.perf_counter() - started
        verdict = "within" if worst <= ACTIVATION_ULPS else "ABOVE"
        print(
            f"{name}: max error {worst:.4f} ulp at x = {where!r} ({where.view('uint32'):#010x}) over {checked} "
            f"float32 inputs, {verdict} ACTIVATION_ULPS = {ACTIVATION_ULPS:g}; {seconds:.0f} s",
            flush=True,
        )
        failed |= worst > ACTIVATION_ULPS
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
