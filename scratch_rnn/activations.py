"""Activations by Keras name, computed in the input's dtype.

Each function follows the TensorFlow backend of Keras 3 (``keras/src/backend/
tensorflow/nn.py``) closely enough that float64 results agree to the last few
bits: ``hard_sigmoid`` in particular is Keras 3's ``relu6(x + 3) / 6``, *not*
Keras 2's ``clip(0.2 * x + 0.5, 0, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Activation = Callable[[np.ndarray], np.ndarray]


def linear(x: np.ndarray) -> np.ndarray:
    """Identity, ``a(x) = x`` (Keras's ``None`` activation)."""
    return x


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow: ``exp`` only sees ``-|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """Keras 3: ``relu6(x + 3) / 6`` = 0 below -3, 1 above 3, ``x/6 + 0.5`` between."""
    return np.clip(x + 3, 0, 6) / 6


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (Keras's default ``axis=-1``)."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


_BY_NAME: dict[str, Activation] = {
    "linear": linear,
    "tanh": tanh,
    "relu": relu,
    "sigmoid": sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "softmax": softmax,
}

#: The activations a recurrent layer accepts (softmax is for ``Dense`` only).
RECURRENT = ("tanh", "relu", "sigmoid", "linear", "hard_sigmoid")


def get(name: str | None, argument: str = "activation", allowed=tuple(_BY_NAME)) -> Activation:
    """The activation called ``name`` (``None`` means linear, as in Keras)."""
    if name is None:
        return linear
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected one of "
            f"{sorted(allowed)} (or None for linear), got {name!r:.100}."
        )
    return _BY_NAME[name]


def name_of(fn: Activation) -> str:
    """The Keras name of an activation returned by :func:`get`."""
    return fn.__name__


# --- in place, for the engine's fast path --------------------------------------------
# ``f(x, out)`` writes ``a(x)`` into ``out`` (which may be ``x``) without temporaries.
# Each computes what the function above computes, with the same operations except sigmoid,
# whose fast form ``1 / (1 + exp(-x))`` is as accurate (a few ulps) but not bit-identical.


def _linear_(x, out):
    if out is not x:
        np.copyto(out, x)


def _tanh_(x, out):
    np.tanh(x, out=out)


def _relu_(x, out):
    np.maximum(x, 0, out=out)


def sigmoid_denominator_(x, out):
    """``1 + exp(-x)`` into ``out``: sigmoid's denominator (inf for very negative ``x``; GRU divides by it)."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1


def _sigmoid_(x, out):
    sigmoid_denominator_(x, out)
    np.reciprocal(out, out=out)  # 1 / inf = 0


def _hard_sigmoid_(x, out):
    np.add(x, 3, out=out)
    np.clip(out, 0, 6, out=out)
    out /= 6


_IN_PLACE = {"linear": _linear_, "tanh": _tanh_, "relu": _relu_, "sigmoid": _sigmoid_, "hard_sigmoid": _hard_sigmoid_}


def in_place(fn: Activation):
    """The in-place form ``f(x, out)`` of the recurrent activation ``fn`` (from :func:`get`)."""
    return _IN_PLACE[name_of(fn)]
