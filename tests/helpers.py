"""What the tests share besides fixtures: the comparison, tolerances, masks, random weights, optional extras.

NumPy only: nothing here imports Keras (the ``keras`` fixture in ``tests/conftest.py`` is the one way
to it), so the fast lane (``-m "not keras"``) imports this module too.

Every comparison of values is :func:`scratch_rnn.testing.compare.assert_close`, the harness's own:
shape, then dtype, then values, the worst element named. :func:`assert_outputs_close` applies it to each
of a layer call's outputs, with a tolerance that scales with the reference.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest

from scratch_rnn.initializers import Constant
from scratch_rnn.testing.compare import assert_close

DTYPES = ("float32", "float64")

#: ``|actual - expected| <= ATOL + RTOL * |expected|`` per dtype, for two implementations of the same
#: layer on the same weights: float32 accumulates rounding over the steps, float64 agrees to ~1e-16.
#: RTOL matters only where outputs grow large (linear activations).
ATOL = {"float32": 1e-5, "float64": 1e-12}
RTOL = {"float32": 1e-5, "float64": 1e-12}

#: ``(batch, timesteps, features, units)`` beyond the Keras sweep's (batch <= 4, timesteps <= 12, units and
#: features <= 8), and longer than one chunk of the fast kernels (``scratch_rnn.rnn.CHUNK_STEPS``, 128 steps).
LARGE = (16, 150, 24, 32)

#: Keras's published golden values are checked as Keras checks them, ``assertAllClose``'s default
#: ``1e-6 + 1e-6 * |expected|``: they are printed to 7-8 digits.
GOLDEN_ATOL = GOLDEN_RTOL = 1e-6

#: The constant initialisers of Keras's own golden tests (keras/src/layers/rnn/*_test.py).
KERAS_GOLDEN_INITIALIZERS = {
    "kernel_initializer": Constant(0.01),
    "recurrent_initializer": Constant(0.02),
    "bias_initializer": Constant(0.03),
}


def tolerance(expected: np.ndarray, atol: float | None = None, rtol: float | None = None) -> np.ndarray:
    """``atol + rtol * |expected|`` element by element; the defaults are :data:`ATOL` and :data:`RTOL`
    for ``expected``'s dtype."""
    dtype = expected.dtype.name
    atol = ATOL[dtype] if atol is None else atol
    rtol = RTOL[dtype] if rtol is None else rtol
    tol = atol + rtol * np.abs(expected.astype(np.float64))
    return np.where(np.isnan(tol), 0.0, tol)  # at a NaN, only a NaN passes, and only with equal_nan


def assert_outputs_close(actual, expected, context: str = "", tol=None, equal_nan: bool = False) -> None:
    """A layer call's outputs against a reference's: as many outputs, then :func:`assert_close` on each.

    ``actual`` is what the engine returned (an array, or a list of them) and is not converted: anything
    but a NumPy array fails. ``expected`` may hold Keras tensors. ``tol`` defaults to :func:`tolerance`
    of each expected output; a scalar applies to all.
    """
    __tracebackhide__ = True
    actual = list(actual) if isinstance(actual, (list, tuple)) else [actual]
    expected = [np.asarray(e) for e in (expected if isinstance(expected, (list, tuple)) else [expected])]
    assert len(actual) == len(expected), f"{len(actual)} outputs, but should be {len(expected)} [{context}]"
    for i, (a, e) in enumerate(zip(actual, expected)):
        name = "output" if len(actual) == 1 else f"output[{i}]"
        assert_close(a, e, tolerance(e) if tol is None else tol, name=name, context=context, equal_nan=equal_nan)


def assert_golden(actual, expected, name: str = "output", context: str = "") -> None:
    """A float32 output against Keras's published values (a nested list), as Keras's own test checks them."""
    __tracebackhide__ = True
    expected = np.asarray(expected, dtype=np.float32)
    assert_close(actual, expected, tolerance(expected, GOLDEN_ATOL, GOLDEN_RTOL), name=name, context=context)


def randomize(layer, rng, scale: float = 0.5) -> list[np.ndarray]:
    """Give a built layer (Keras's or scratch's) random, distinct weights and biases; return them as stored."""
    layer.set_weights([rng.standard_normal(w.shape) * scale for w in layer.get_weights()])
    return [np.asarray(w) for w in layer.get_weights()]


def left_and_right_padded_mask(batch: int, timesteps: int) -> np.ndarray:
    """Rows in turn: masked first steps, masked last steps (padding), holes, all steps kept, all masked."""
    rows = [
        [False, False] + [True] * (timesteps - 2),
        [True] * (timesteps - 2) + [False, False],
        [i % 2 == 0 for i in range(timesteps)],
        [True] * timesteps,
        [False] * timesteps,
    ]
    return np.array([rows[b % len(rows)] for b in range(batch)])


def assert_golden_statefulness(layer, sequence, expected) -> None:
    """Keras's stateful golden test: the second call continues the first; ``reset_state`` starts over."""
    __tracebackhide__ = True
    for attempt in ("the first time", "after reset_state"):
        layer(sequence)
        assert_golden(layer(sequence), expected, name="second call", context=attempt)
        layer.reset_state()


#: The extra that installs each optional test dependency.
EXTRAS = {
    "torch": "ports",
    "threadpoolctl": "bench",
    "tf_keras": "keras2",
    "onnx": "ports",
    "onnxruntime": "ports",
    "numba": "fast",
    "scipy": "fast",
    "dask": "dask",
    "distributed": "dask",
}


def fast_lane() -> bool:
    """Whether ``tests/block_keras`` is blocking TensorFlow and Keras in this process (the fast lane)."""
    return any(type(finder).__name__ == "BlockKeras" for finder in sys.meta_path)


def require(module: str):
    """Import an optional test dependency, or skip the test (or the module, at module level) without it.

    Under ``CI=true`` a missing dependency is an error instead, as CI installs every extra; except in
    the fast lane, which runs from a bare wheel on purpose.
    """
    if os.environ.get("CI", "").lower() == "true" and not fast_lane():
        return importlib.import_module(module)
    extra = EXTRAS.get(module, "test")
    return pytest.importorskip(module, reason=f"{module} is optional locally (pip install 'scratch-rnn[{extra}]')")


def keras_masked(keras, layer, inputs, masks=None, **call_options):
    """The Keras ``layer`` called on ``inputs`` (an array, or a list for a merge or attention layer) with
    ``masks`` (one, or one per input, None allowed) attached to them as a functional graph attaches them
    (Keras 3's ``set_keras_mask``: merge layers take no ``mask=`` argument); its output and output mask."""
    from keras.src.backend import get_keras_mask, set_keras_mask

    many = isinstance(inputs, (list, tuple))
    tensors = [keras.ops.convert_to_tensor(x) for x in (inputs if many else [inputs])]
    masks = (list(masks) if many else [masks]) if masks is not None else [None] * len(tensors)
    for tensor, mask in zip(tensors, masks):
        if mask is not None:
            set_keras_mask(tensor, keras.ops.convert_to_tensor(mask))
    y = layer(tensors if many else tensors[0], **call_options)
    out_mask = get_keras_mask(y)
    return np.asarray(y), None if out_mask is None else np.asarray(out_mask)
