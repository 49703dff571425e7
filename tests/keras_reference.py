"""Shared helpers for the tests that compare scratch_rnn layers with real Keras (no mocks).

Not a test module: ``test_lstm.py``, ``test_gru.py``, ``test_bidirectional.py`` and
``test_models.py`` import it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import scratch_rnn  # noqa: E402

#: Tolerance per dtype, ``|ours - keras| <= ATOL + RTOL * |keras|``: float32 accumulates rounding over the
#: steps, float64 agrees to ~1e-16. RTOL matters only where outputs grow large (linear activations).
ATOL = {"float32": 1e-5, "float64": 1e-12}
RTOL = {"float32": 1e-5, "float64": 1e-12}
DTYPES = ("float32", "float64")


def as_list(outputs) -> list[np.ndarray]:
    """A layer's output(s) as a list of NumPy arrays (Keras returns tuples of tensors)."""
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def assert_matches_keras(ours, theirs, dtype, what: str) -> float:
    """Same number of outputs, then shape, dtype, values within ``ATOL + RTOL * |keras|``; returns the worst error."""
    __tracebackhide__ = True
    ours, theirs = as_list(ours), as_list(theirs)
    assert len(ours) == len(theirs), f"{what}: {len(ours)} outputs, Keras returns {len(theirs)}"
    worst = 0.0
    for i, (o, k) in enumerate(zip(ours, theirs)):
        name = f"{what} output[{i}]"
        assert o.shape == k.shape, f"{name}: shape {o.shape}, Keras {k.shape}"
        assert o.dtype == k.dtype, f"{name}: dtype {o.dtype}, Keras {k.dtype}"
        if o.size:
            err = np.abs(o.astype(np.float64) - k.astype(np.float64))
            allowed = ATOL[dtype] + RTOL[dtype] * np.abs(k.astype(np.float64))
            at = np.unravel_index(np.argmax(err - allowed), err.shape)
            assert err[at] <= allowed[at], (
                f"{name}: abs error {err[at]:.3g} > {allowed[at]:.3g} (atol {ATOL[dtype]}, rtol {RTOL[dtype]}) "
                f"at index {at}: ours {o[at]!r}, Keras {k[at]!r}"
            )
            worst = max(worst, float(err.max()))
    return worst


def randomize(keras_layer, rng, scale=0.5) -> list[np.ndarray]:
    """Give a built Keras layer random, non-symmetric weights and biases; return them as Keras stores them."""
    keras_layer.set_weights([rng.standard_normal(w.shape) * scale for w in keras_layer.get_weights()])
    return [np.asarray(w) for w in keras_layer.get_weights()]


def twin(name: str, kwargs: dict, input_shape, dtype: str, rng):
    """A Keras recurrent layer and its scratch twin with the same random weights."""
    keras_layer = getattr(keras.layers, name)(**kwargs, dtype=dtype)
    keras_layer.build(input_shape)
    ours = getattr(scratch_rnn, name)(**kwargs, dtype=dtype)
    ours.set_weights(randomize(keras_layer, rng))
    return keras_layer, ours


def left_and_right_padded_mask(batch: int, timesteps: int) -> np.ndarray:
    """Rows: masked first steps, masked last steps (padding), holes, all steps kept, everything masked."""
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
    for _ in range(2):
        layer(sequence)
        np.testing.assert_allclose(layer(sequence), expected, atol=1e-6, rtol=1e-6)
        layer.reset_state()
