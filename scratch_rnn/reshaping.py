"""Keras's reshaping layers: ``RepeatVector``, ``Flatten``, ``Reshape``, ``Permute``.

None of them has weights, and none supports masking in Keras 3 (none sets ``supports_masking``
or defines ``compute_mask``): a mask given to them is dropped, their output has no mask
(Keras warns that the layer "will therefore destroy the mask information"). Here ``compute_mask``
returns None and ``call`` accepts ``mask`` and ignores it.
"""

from __future__ import annotations

import math

import numpy as np

from scratch_rnn import checks
from scratch_rnn.checks import as_numeric, positive_int
from scratch_rnn.layer import WeightlessLayer


class _Reshaping(WeightlessLayer):
    """A weightless layer that drops the mask (Keras's layers without ``supports_masking``)."""

    supports_masking = False

    def __init__(self, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def compute_mask(self, inputs, mask):
        return None

    def _input(self, x, ndim: int | None = None, min_ndim: int = 1):
        x = as_numeric(x, "x", self.dtype)
        if (ndim is not None and x.ndim != ndim) or x.ndim < min_ndim:
            expected = f"{ndim}" if ndim is not None else f"at least {min_ndim}"
            raise ValueError(
                f"Argument `x` of {self.name!r} ({type(self).__name__}) must have {expected} dimensions, got shape "
                f"{x.shape}."
            )
        self.ensure_built((None, *x.shape[1:]))
        return x

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}


class RepeatVector(_Reshaping):
    """Keras's ``RepeatVector``: ``y[:, i, :] = x`` for ``i < n``, ``x (batch, features)`` ->
    ``y (batch, n, features)``.

    Args:
        n: positive integer, the repetition factor.
    """

    def __init__(self, n, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.n = positive_int(n, "n")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def call(self, x, mask=None):
        x = self._input(x, ndim=2)  # (B, F)
        return np.repeat(x[:, None, :], self.n, axis=1)  # (B, n, F)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Flatten(_Reshaping):
    """Keras's ``Flatten``: ``x (batch, d1, ..., dk)`` -> ``y (batch, d1 * ... * dk)``; ``(batch,)`` ->
    ``(batch, 1)``.

    With ``data_format="channels_first"``, ``x (batch, channels, d1, ...)`` is first moved to
    ``(batch, d1, ..., channels)``, so the flattened order is the channels-last one, as in Keras.

    Args:
        data_format: ``"channels_last"`` (default, also for None) or ``"channels_first"``.
    """

    def __init__(self, data_format=None, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.data_format = checks.data_format(data_format)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def call(self, x, mask=None):
        x = self._input(x, min_ndim=1)
        if self.data_format == "channels_first" and x.ndim > 1:
            x = np.moveaxis(x, 1, -1)  # (B, C, d1, ...) -> (B, d1, ..., C)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # (B, d1 * ... * dk)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(_Reshaping):
    """Keras's ``Reshape``: ``x (batch, ...)`` -> ``y (batch, *target_shape)``, the elements in C order.

    One entry of ``target_shape`` may be -1: it is inferred from the input's size.

    Args:
        target_shape: tuple of non-negative integers and at most one -1, without the batch axis.
    """

    def __init__(self, target_shape, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        ok = isinstance(target_shape, (list, tuple)) and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= -1 for d in target_shape
        )
        if not ok or list(target_shape).count(-1) > 1:
            raise ValueError(
                "Received an invalid value for argument `target_shape`, expected a tuple of non-negative integers "
                f"with at most one -1 (an unknown dimension), got {target_shape!r}."
            )
        self.target_shape = tuple(int(d) for d in target_shape)

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape[1:])
        if None in rest:
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        size = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise ValueError(
                    f"Argument `x` of {self.name!r}: the total size of the tensor must be unchanged, got input shape "
                    f"{rest} and target_shape={self.target_shape}."
                )
            return (input_shape[0], *(size // known if d == -1 else d for d in self.target_shape))
        if known != size:
            raise ValueError(
                f"Argument `x` of {self.name!r}: the total size of the tensor must be unchanged, got input shape "
                f"{rest} and target_shape={self.target_shape}."
            )
        return (input_shape[0], *self.target_shape)

    def call(self, x, mask=None):
        x = self._input(x, min_ndim=1)
        return x.reshape(self.compute_output_shape(x.shape))  # (B, *target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(_Reshaping):
    """Keras's ``Permute``: ``y = transpose(x, (0, *dims))``; the batch axis stays first.

    ``Permute((2, 1))`` turns ``(batch, timesteps, features)`` into ``(batch, features, timesteps)``.

    Args:
        dims: a permutation of ``1, ..., k`` for inputs of rank ``k + 1`` (indexing starts at 1).
    """

    def __init__(self, dims, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        ok = isinstance(dims, (list, tuple)) and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in dims
        )
        if not ok or sorted(int(d) for d in dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Received an invalid value for argument `dims`, expected a permutation of 1, ..., k (the set of "
                f"indices must be consecutive and start from 1), got {dims!r}."
            )
        self.dims = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def call(self, x, mask=None):
        x = self._input(x, ndim=len(self.dims) + 1)
        return np.transpose(x, (0, *self.dims)).copy()

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}
