"""Argument checks every layer shares, each raising a ``ValueError`` in Keras's voice.

The bottom of the package: it imports NumPy only. A message names the argument,
what was expected and what arrived ("Received an invalid value for argument
`units`, expected a positive integer, got 0.").
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import numpy as np

#: The dtypes a layer computes in.
DTYPES = ("float32", "float64")


def check_dtype(dtype) -> np.dtype:
    """``dtype`` as one of :data:`DTYPES` (None means float32; Keras 3's serialised
    ``{"class_name": "DTypePolicy", "config": {"name": ...}}`` names one), else a ValueError."""
    if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict):
        dtype = dtype["config"].get("name", dtype)
    try:
        name = np.dtype(dtype).name if dtype is not None else "float32"
    except (TypeError, ValueError):  # a name NumPy does not know, e.g. Keras's "mixed_float16" policy
        name = str(dtype)
    if name not in DTYPES:
        raise ValueError(
            f"Received an invalid value for argument `dtype`, expected one of {list(DTYPES)}, got {dtype!r}."
        )
    return np.dtype(name)


def positive_int(value, argument: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected a positive integer, got {value!r}."
        )
    return int(value)


def rate(value, argument: str) -> float:
    """``value`` as a float if it is a real number in [0, 1] (NumPy scalars included, bools not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        ok = False
    else:
        ok = 0.0 <= float(value) <= 1.0
    if not ok:
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected a float in [0, 1], got {value!r}."
        )
    return float(value)


def seed(value, argument: str = "seed") -> int | None:
    """``value`` if it is None or an integer (not a bool), else a ValueError, at construction rather than
    at the first call."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected an integer or None, got {value!r}."
        )
    return int(value)


def choice(value, choices: tuple, argument: str) -> str:
    """``value`` lower-cased if it is a string among ``choices`` (case-insensitive, as Keras's), else a ValueError."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected one of {list(choices)}, got {value!r}."
        )
    return value.lower()


def data_format(value) -> str:
    """Keras's ``standardize_data_format``: None is ``"channels_last"`` (Keras's default ``image_data_format``;
    scratch_rnn does not read ``~/.keras/keras.json``)."""
    return "channels_last" if value is None else choice(value, ("channels_last", "channels_first"), "data_format")


def boolean(value, argument: str) -> bool:
    """``value`` if it is a bool (NumPy's included), else a ValueError: ``1`` or ``"yes"`` is not a flag."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a bool, got {value!r}.")
    return bool(value)


def as_numeric(value, argument: str, dtype: np.dtype | None = None) -> np.ndarray:
    """``value`` as an array of real numbers (cast to ``dtype`` if given), else a ValueError."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nested lists, objects numpy refuses
        raise ValueError(f"Argument `{argument}` must be a numeric array, got {type(value).__name__}: {err}") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"Argument `{argument}` must be a real numeric array, got dtype {array.dtype} (shape {array.shape})."
        )
    return array.astype(dtype, copy=False) if dtype is not None else array


def check_shape(array: np.ndarray, expected: tuple, argument: str) -> None:
    """Exact shape equality; ``None`` in ``expected`` matches any size. No broadcasting."""
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise ValueError(f"Argument `{argument}` must have shape {shown}, got {array.shape}.")


class EnvironmentChoice:
    """A setting read from the environment variable ``variable`` (unset or empty: ``choices[0]``) and overridden
    for a block by :meth:`using` (a ``contextvars`` setting: this thread or task, and the slices of a split call);
    a value outside ``choices`` is a ValueError naming the variable, or the argument ``name``."""

    def __init__(self, variable: str, choices: tuple):
        self.variable, self.choices = variable, tuple(choices)
        self._override: contextvars.ContextVar[str | None] = contextvars.ContextVar(variable.lower(), default=None)

    def get(self) -> str:
        value = self._override.get()
        if value is None:
            value = os.environ.get(self.variable, "") or self.choices[0]
            if value not in self.choices:
                raise ValueError(
                    f"Received an invalid value for environment variable `{self.variable}`, expected one of "
                    f"{list(self.choices)}, got {value!r:.100}."
                )
        return value

    @contextlib.contextmanager
    def using(self, name: str):
        if name not in self.choices:
            raise ValueError(
                f"Received an invalid value for argument `name`, expected one of {list(self.choices)}, "
                f"got {name!r:.100}."
            )
        token = self._override.set(name)
        try:
            yield
        finally:
            self._override.reset(token)
