"""Keras's 1D pooling layers: global average and max over the steps, and windowed max and average.

``x (batch, steps, features)`` (``data_format="channels_last"``, the default) or
``(batch, features, steps)`` (``"channels_first"``: moved to channels-last, pooled, moved back).
No weights.

Masks, as in Keras 3: ``GlobalAveragePooling1D`` takes the mean over the unmasked steps only and
returns no mask; ``GlobalMaxPooling1D``, ``MaxPooling1D`` and ``AveragePooling1D`` do not support
masking (Keras ignores the mask in their values and drops it), so here they ignore ``mask`` and
``compute_mask`` returns None.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import checks
from scratch_rnn.checks import as_numeric, boolean, positive_int
from scratch_rnn.layer import WeightlessLayer


class _Pooling(WeightlessLayer):
    """A weightless layer on ``(batch, steps, features)`` that returns no mask."""

    def __init__(self, data_format=None, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.data_format = checks.data_format(data_format)

    def compute_mask(self, inputs, mask):
        return None

    def _input(self, x):
        """``x`` cast, checked 3-D, and moved to ``(batch, steps, features)``."""
        x = as_numeric(x, "x", self.dtype)
        if x.ndim != 3:
            raise ValueError(
                f"Argument `x` of {self.name!r} ({type(self).__name__}) must have 3 dimensions (batch, steps, "
                f"features) for data_format={self.data_format!r}, got shape {x.shape}."
            )
        self.ensure_built((None, *x.shape[1:]))
        return np.swapaxes(x, 1, 2) if self.data_format == "channels_first" else x

    def _output(self, y):
        return np.ascontiguousarray(np.swapaxes(y, 1, 2) if self.data_format == "channels_first" else y)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "data_format": self.data_format}


class _GlobalPooling(_Pooling):
    def __init__(self, data_format=None, keepdims=False, *, name=None, dtype="float32", **kwargs):
        super().__init__(data_format, name=name, dtype=dtype, **kwargs)
        self.keepdims = boolean(keepdims, "keepdims")

    def compute_output_shape(self, input_shape):
        batch, features = (input_shape[0], input_shape[-1 if self.data_format == "channels_last" else 1])
        if not self.keepdims:
            return (batch, features)
        return (batch, 1, features) if self.data_format == "channels_last" else (batch, features, 1)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling):
    """Keras's ``GlobalAveragePooling1D``: the mean over the steps, masked steps excluded.

    Equations (channels-last ``x (B, T, F)``, ``mask (B, T)``)::

        y[b, f] = sum_t x[b, t, f] / T                                  # without a mask
        y[b, f] = sum_t mask[b, t] x[b, t, f] / sum_t mask[b, t]        # with one: 0/0 = NaN if all masked

    Output ``(B, F)``, or ``(B, 1, F)`` (``(B, F, 1)`` channels-first) with ``keepdims``. No output mask.

    Args:
        data_format: ``"channels_last"`` (default, also for None) or ``"channels_first"``.
        keepdims: whether to keep the steps axis, of length 1.
    """

    def call(self, x, mask=None):
        x = self._input(x)  # (B, T, F)
        if mask is None:
            y = np.mean(x, axis=1, keepdims=True)  # (B, 1, F)
        else:
            mask = as_numeric(mask, "mask")
            if mask.shape != x.shape[:2]:
                raise ValueError(
                    f"Argument `mask` of {self.name!r} must have shape (batch, steps) = {x.shape[:2]}, "
                    f"got {mask.shape}."
                )
            keep = mask.astype(bool)[:, :, None]  # (B, T, 1)
            total = np.sum(np.where(keep, x, self.dtype.type(0)), axis=1, keepdims=True)  # (B, 1, F)
            with np.errstate(divide="ignore", invalid="ignore"):  # every step masked: NaN, as in Keras
                y = total / np.sum(keep, axis=1, keepdims=True, dtype=self.dtype)
        y = self._output(y)
        return y if self.keepdims else y[:, 0, :] if self.data_format == "channels_last" else y[:, :, 0]


class GlobalMaxPooling1D(_GlobalPooling):
    """Keras's ``GlobalMaxPooling1D``: ``y[b, f] = max_t x[b, t, f]``; output ``(B, F)`` (``keepdims``: as
    :class:`GlobalAveragePooling1D`).

    A mask is ignored, as in Keras 3, where this layer does not support masking: masked steps count.

    Args:
        data_format: ``"channels_last"`` (default, also for None) or ``"channels_first"``.
        keepdims: whether to keep the steps axis, of length 1.
    """

    supports_masking = False

    def call(self, x, mask=None):
        y = self._output(np.max(self._input(x), axis=1, keepdims=True))  # (B, 1, F) channels-last
        return y if self.keepdims else y[:, 0, :] if self.data_format == "channels_last" else y[:, :, 0]


def _one_int(value, argument: str) -> int:
    """Keras's ``standardize_tuple(value, 1, ...)``: an int or a 1-tuple of one, here positive."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return positive_int(value, argument)


class _WindowPooling(_Pooling):
    """Windows of ``pool_size`` steps, ``strides`` apart; ``"same"`` padding as TensorFlow's."""

    supports_masking = False

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, *, name=None, **kwargs):
        super().__init__(data_format, name=name, **kwargs)
        self.pool_size = _one_int(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _one_int(strides, "strides")
        self.padding = checks.choice(padding, ("valid", "same"), "padding")

    def _steps_out(self, steps, input_shape):
        """The output's steps for ``steps`` input steps; an empty output is refused, as in Keras."""
        if steps is None:
            return None
        if self.padding == "same":
            return (steps - 1) // self.strides + 1
        out = (steps - self.pool_size) // self.strides + 1
        if out <= 0:
            raise ValueError(
                f"Argument `x` of {self.name!r}: computed output size would be zero or negative for input shape "
                f"{tuple(input_shape)}, pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}."
            )
        return out

    def compute_output_shape(self, input_shape):
        steps_axis = 1 if self.data_format == "channels_last" else 2
        out = list(input_shape)
        out[steps_axis] = self._steps_out(input_shape[steps_axis], input_shape)
        return tuple(out)

    def _windows(self, x, fill):
        """``x (B, T, F)`` -> windows ``(B, T_out, F, pool_size)`` padded with ``fill``, and the count of real
        steps in each window ``(T_out, 1)``."""
        steps = x.shape[1]
        steps_out = self._steps_out(steps, x.shape)
        pad_total = max((steps_out - 1) * self.strides + self.pool_size - steps, 0) if self.padding == "same" else 0
        left = pad_total // 2  # TensorFlow's: the extra padding goes on the right
        padded = np.pad(x, ((0, 0), (left, pad_total - left), (0, 0)), constant_values=fill)
        real = np.pad(np.ones(steps, self.dtype), (left, pad_total - left))  # (T + pad,)
        windows = np.lib.stride_tricks.sliding_window_view(padded, self.pool_size, axis=1)  # (B, T', F, P)
        counts = np.lib.stride_tricks.sliding_window_view(real, self.pool_size).sum(axis=-1)  # (T',)
        take = slice(0, (steps_out - 1) * self.strides + 1, self.strides)
        return windows[:, take], counts[take][:, None]

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": (self.pool_size,),
            "padding": self.padding,
            "strides": (self.strides,),
        }


class MaxPooling1D(_WindowPooling):
    """Keras's ``MaxPooling1D``: ``y[b, j, f] = max_{p < pool_size} x[b, j * strides + p - left, f]``.

    With ``padding="valid"`` the windows lie inside the input, ``T_out = (T - pool_size) // strides + 1``;
    with ``"same"``, ``T_out = ceil(T / strides)`` and the input is padded as TensorFlow pads,
    ``left = pad_total // 2`` steps first, the padding never being the maximum. ``(B, T, F)`` ->
    ``(B, T_out, F)``. A mask is ignored and dropped (Keras's layer does not support masking).

    Args:
        pool_size: positive integer (or a 1-tuple), the window length (default 2).
        strides: positive integer (or a 1-tuple), the step between windows; None: ``pool_size``.
        padding: ``"valid"`` (default) or ``"same"``, case-insensitive.
        data_format: ``"channels_last"`` (default, also for None) or ``"channels_first"``.
    """

    def call(self, x, mask=None):
        windows, _ = self._windows(self._input(x), -np.inf)  # (B, T_out, F, P)
        return self._output(windows.max(axis=-1))  # (B, T_out, F)


class AveragePooling1D(_WindowPooling):
    """Keras's ``AveragePooling1D``: the mean of each window of real steps.

    Windows as :class:`MaxPooling1D`; with ``padding="same"`` a window overlapping the padding averages
    only its real steps (TensorFlow's ``avg_pool`` excludes the padding from the count). A mask is
    ignored and dropped (Keras's layer does not support masking).

    Args:
        pool_size: positive integer (or a 1-tuple), the window length (default 2).
        strides: positive integer (or a 1-tuple), the step between windows; None: ``pool_size``.
        padding: ``"valid"`` (default) or ``"same"``, case-insensitive.
        data_format: ``"channels_last"`` (default, also for None) or ``"channels_first"``.
    """

    def call(self, x, mask=None):
        windows, counts = self._windows(self._input(x), 0)  # (B, T_out, F, P), (T_out, 1)
        return self._output(windows.sum(axis=-1) / counts)  # (B, T_out, F)
