"""Default weight initialisers, by Keras name, drawn from a NumPy ``Generator``.

The distributions are Keras's (``glorot_uniform`` kernels, ``orthogonal``
recurrent kernels, ``zeros`` biases); the random streams are NumPy's, so a
seeded scratch layer is reproducible but does not draw Keras's numbers. To get
Keras's exact weights, copy them (:func:`scratch_rnn.from_keras` or
``set_weights``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple, np.dtype, np.random.Generator], np.ndarray]


def zeros(shape, dtype, rng):
    return np.zeros(shape, dtype)


def ones(shape, dtype, rng):
    return np.ones(shape, dtype)


def glorot_uniform(shape, dtype, rng):
    """``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))``; ``shape`` is Keras's ``(fan_in, fan_out)``."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape, dtype, rng):
    """Keras's ``Orthogonal(gain=1)``: Q of the QR of a normal matrix, signs fixed by diag(R)."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


def uniform(shape, dtype, rng):
    """Keras's ``RandomUniform()`` defaults, ``U(-0.05, 0.05)`` (the ``Embedding`` default, named ``"uniform"``)."""
    return rng.uniform(-0.05, 0.05, size=shape).astype(dtype)


class Constant:
    """Every element ``value`` (Keras's ``initializers.Constant``)."""

    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, shape, dtype, rng):
        return np.full(shape, self.value, dtype)

    def __repr__(self):
        return f"Constant({self.value})"


_BY_NAME: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "uniform": uniform,
    "random_uniform": uniform,
}


def get(identifier, argument: str) -> Initializer:
    """An initialiser by Keras name, or any callable ``(shape, dtype, rng) -> array``."""
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]
    if callable(identifier) and not isinstance(identifier, str):
        return identifier
    raise ValueError(
        f"Received an invalid value for argument `{argument}`, expected one of "
        f"{sorted(_BY_NAME)} or a callable (shape, dtype, rng) -> array, got {identifier!r:.100}."
    )


def name_of(init: Initializer):
    """The Keras name of an initialiser returned by :func:`get`, or the callable itself if it has none."""
    return next((name for name, fn in _BY_NAME.items() if fn is init), init)
