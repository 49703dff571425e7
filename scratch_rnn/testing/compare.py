"""The one comparison helper: structure, then shape, then dtype, then values.

Values pass where ``|actual - expected| <= tol`` element by element, with
``tol`` a scalar or an array of exactly ``expected``'s shape (never
broadcast). Identical values (infinities of the same sign included) pass;
NaN never equals NaN unless ``equal_nan=True`` is asked for. A failure names
the tensor, the worst element and its tolerance; the caller adds the config
and how to reproduce it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TensorComparison:
    """How one tensor compared: its worst absolute error, relative error and margin (error / tolerance).

    ``max_rel_error`` is normwise: ``max |error| / max |expected|`` over the tensor (elementwise
    relative errors are meaningless next to zeros); NaN, undefined, when ``expected`` is all zeros
    and ``actual`` is not (the margin still judges it). ``tol_ratio`` is the same for the
    tolerance, ``max tol / max |expected|``: how loosely the comparison held the tensor
    (0 for an exact check; against an all-zero tensor, the largest tolerance itself, the
    outputs of these layers being of order 1).
    """

    name: str
    ok: bool
    max_abs_error: float = 0.0
    margin: float = 0.0
    problem: str = ""
    max_rel_error: float = 0.0
    tol_ratio: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.problem}"
            if not self.ok
            else (f"{self.name}: ok, max |error| {self.max_abs_error:.3g}, margin {self.margin:.3g}")
        )


def compare_tensor(actual, expected, tol, name: str = "output", equal_nan: bool = False) -> TensorComparison:
    """Compare one array with its reference. Never raises for a mismatch: the result says."""
    if not isinstance(actual, np.ndarray):
        return TensorComparison(name, False, np.inf, np.inf, f"expected a numpy array, got {type(actual).__name__}")
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return TensorComparison(name, False, np.inf, np.inf, f"shape {actual.shape}, but should be {expected.shape}")
    if actual.dtype != expected.dtype:
        return TensorComparison(name, False, np.inf, np.inf, f"dtype {actual.dtype}, but should be {expected.dtype}")
    tol = np.asarray(tol, dtype=np.float64)
    if tol.ndim != 0 and tol.shape != expected.shape:
        raise ValueError(f"Argument `tol` must be a scalar or have shape {expected.shape}, got {tol.shape}.")
    if np.isnan(tol).any() or (tol < 0).any():  # a NaN tolerance would pass nothing and say "0 elements differ"
        raise ValueError("Argument `tol` must hold non-negative numbers (inf allowed), got NaN or a negative value.")
    if actual.size == 0:
        return TensorComparison(name, True)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    tol = np.broadcast_to(tol, e.shape)
    with np.errstate(invalid="ignore"):
        err = np.abs(a - e)
    identical = a == e
    both_nan = np.isnan(a) & np.isnan(e)
    err = np.where(identical | (both_nan if equal_nan else False), 0.0, err)
    err = np.where(np.isnan(err), np.inf, err)  # NaN against a number, inf against a number
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol)  # err > 0 with tol == 0 -> inf
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    margin = float(ratio[worst])
    result = TensorComparison(name, margin <= 1.0, float(err.max()), margin)
    scale = float(np.abs(e[np.isfinite(e)]).max(initial=0.0))
    if result.max_abs_error > 0:
        result.max_rel_error = result.max_abs_error / scale if scale > 0 else np.nan
    loosest = float(tol.max(initial=0.0))
    if loosest > 0:
        result.tol_ratio = loosest / scale if scale > 0 else loosest
    if not result.ok:
        bad = int((ratio > 1.0).sum())
        result.problem = (
            f"{bad} of {ratio.size} elements differ beyond tolerance; worst at index {tuple(int(i) for i in worst)}: "
            f"actual {a[worst]!r}, expected {e[worst]!r}, |error| {err[worst]:.3g} > tol {tol[worst]:.3g} "
            f"(margin {margin:.3g}); max |error| {err.max():.3g}"
        )
    return result


def compare_outputs(actual, expected, tols, names) -> list[TensorComparison]:
    """Compare a list of named tensors (a layer's outputs and states) with their references."""
    if len(actual) != len(expected):
        return [
            TensorComparison(
                "outputs", False, np.inf, np.inf, f"{len(actual)} tensors, but should be {len(expected)} ({names})"
            )
        ]
    return [compare_tensor(a, e, t, n) for a, e, t, n in zip(actual, expected, tols, names)]


def assert_close(actual, expected, tol, name: str = "output", context: str = "", equal_nan: bool = False) -> None:
    """``compare_tensor`` as an assertion for tests; hidden from pytest tracebacks."""
    __tracebackhide__ = True
    result = compare_tensor(actual, expected, tol, name, equal_nan)
    if not result.ok:
        raise AssertionError(f"{result}{' [' + context + ']' if context else ''}")
