"""Keras's ``Conv1D``: a 1-D convolution over time, vectorised as one gather (im2col) and one matmul.

As in Keras 3, ``Conv1D`` does not support masking: a mask given to it is dropped (with Keras's
warning) and the next layer sees none.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from scratch_rnn import activations, checks, initializers
from scratch_rnn.checks import as_numeric, boolean, positive_int
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.layer import Layer, auto_name

PADDINGS = ("valid", "same", "causal")


def _one_int(value, argument: str) -> int:
    """Keras's ``standardize_tuple`` for rank 1: an int or a 1-tuple/list of one positive int."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(
                f"Received an invalid value for argument `{argument}`, expected an int or a tuple of 1 int, "
                f"got {value!r}."
            )
        value = value[0]
    return positive_int(value, argument)


def _glorot_uniform(shape, dtype, rng):
    """Keras's GlorotUniform for a conv kernel ``(kernel_size, in, out)``: fans times the receptive field."""
    receptive = int(np.prod(shape[:-2]))
    limit = np.sqrt(6.0 / (shape[-2] * receptive + shape[-1] * receptive))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class Conv1D(Layer):
    """Keras's ``Conv1D``: ``filters`` kernels of ``kernel_size`` steps slid over time.

    Equations (channels_last; ``k = kernel_size``, ``d = dilation_rate``, ``s = strides``,
    ``G = groups``, ``C = in_channels``, ``Cg = C / G``, ``Fg = filters / G``)::

        xp           = pad(x, (left, right) steps)                      # (B, L + left + right, C)
        y[b, t, f]   = bias[f] + sum_{j < k, c < Cg}
                         xp[b, t*s + j*d, g*Cg + c] * kernel[j, c, f]   # g = f // Fg, the filter's group
        y            = activation(y)                                    # (B, L_out, filters)

    Padding and output length (``eff = d * (k - 1) + 1``, the dilated kernel's span):

    - ``"valid"``: no padding; ``L_out = (L - eff) // s + 1``, which must be positive.
    - ``"same"``: ``L_out = ceil(L / s)``; ``total = max((L_out - 1) * s + eff - L, 0)`` steps of zeros,
      ``total // 2`` on the left and the rest on the right (TensorFlow's split).
    - ``"causal"``: ``d * (k - 1)`` zeros on the left, then ``"valid"``: ``y[t]`` sees ``x[<= t*s]``.

    As computed: the ``k`` taps of every output step are gathered into ``(B, L_out, k, C)`` (no loop over
    time), and each group is one matmul ``(B*L_out, k*Cg) @ (k*Cg, Fg)``.

    Weights (Keras's layout, no transpose): ``kernel (kernel_size, in_channels // groups, filters)``,
    ``bias (filters,)``.

    Args:
        filters: positive int, divisible by ``groups``.
        kernel_size, strides, dilation_rate: positive ints (or 1-tuples); ``strides > 1`` together with
            ``dilation_rate > 1`` is refused, as Keras refuses it.
        padding: ``"valid"`` (default), ``"same"`` or ``"causal"``.
        data_format: ``"channels_last"`` (default; None means it) ``(batch, steps, channels)`` or
            ``"channels_first"`` ``(batch, channels, steps)``, for input and output.
        groups: positive int dividing ``filters`` and the input's channels.
        activation: a name of :mod:`scratch_rnn.activations` or None (linear).
        use_bias: whether ``bias`` exists.
        kernel_initializer, bias_initializer: Keras names or callables; regularizers and constraints
            are training-only and accepted.
        dtype: ``"float32"`` (default) or ``"float64"``.

    Call arguments:
        x: ``(batch, steps, channels)`` (channels_last) or ``(batch, channels, steps)``.
        mask: dropped (Keras's Conv1D does not support masking), with Keras's warning.
    """

    supports_masking = False

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        dtype="float32",
        name=None,
        **kwargs,
    ):
        if name is None:
            name = auto_name("Conv1d")  # Keras's "conv1d", "conv1d_1", ... (not "conv1_d")
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = _one_int(kernel_size, "kernel_size")
        self.strides = _one_int(strides, "strides")
        self.dilation_rate = _one_int(dilation_rate, "dilation_rate")
        self.groups = positive_int(groups, "groups")
        self.padding = checks.choice(padding, PADDINGS, "padding")
        self.data_format = checks.data_format(data_format)
        if self.filters % self.groups:
            raise ValueError(
                f"Received an invalid value for argument `filters`, expected a multiple of `groups`={self.groups}, "
                f"got {self.filters}."
            )
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                f"Received an invalid value for argument `strides`, `strides > 1` is not supported in conjunction "
                f"with `dilation_rate > 1`, got strides={self.strides} and dilation_rate={self.dilation_rate}."
            )
        self.activation = activations.get(activation, "activation")
        self.use_bias = boolean(use_bias, "use_bias")
        self.initializers = {
            "kernel": initializers.get(kernel_initializer, "kernel_initializer"),
            "bias": initializers.get(bias_initializer, "bias_initializer"),
        }

    SIZE_ARGUMENTS = ("filters", "kernel_size")

    def initializer_for(self, keras_name):
        init = self.initializers[keras_name]
        return _glorot_uniform if init is initializers.glorot_uniform else init

    # --- shapes ---------------------------------------------------------------------------
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def _steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    @property
    def in_channels(self) -> int:
        return self.input_shape[self._channel_axis()]

    def _output_steps(self, steps):
        """``L_out`` for ``steps`` input steps (None stays None), as Keras's ``compute_conv_output_shape``."""
        if steps is None:
            return None
        span = self.dilation_rate * (self.kernel_size - 1) + 1
        if self.padding == "valid":
            out = (steps - span) // self.strides + 1
        else:  # "same", and "causal" (left padding of span - 1, then valid)
            out = math.ceil(steps / self.strides)
        if out <= 0:
            raise ValueError(
                f"{self.name!r}: the computed output size would be zero or negative: input of {steps} steps, "
                f"kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}, strides={self.strides}, "
                f"padding={self.padding!r}."
            )
        return out

    def compute_output_shape(self, input_shape):
        steps = self._output_steps(input_shape[self._steps_axis()])
        if self.data_format == "channels_last":
            return (input_shape[0], steps, self.filters)
        return (input_shape[0], self.filters, steps)

    def compute_mask(self, inputs, mask):
        return None  # Keras's Conv1D does not support masking: the mask stops here

    def build(self, input_shape, initialize=True):
        if len(input_shape) != 3 or input_shape[self._channel_axis()] is None:
            raise ValueError(
                f"Conv1D expects inputs (batch, steps, channels) ({self.data_format}) with known channels, "
                f"got shape {tuple(input_shape)}."
            )
        channels = input_shape[self._channel_axis()]
        if channels % self.groups:
            raise ValueError(
                f"{self.name!r}: the number of input channels must be evenly divisible by the number of groups. "
                f"Received groups={self.groups}, but the input has {channels} channels (full input shape is "
                f"{tuple(input_shape)})."
            )
        super().build(input_shape, initialize)

    def input_shape_from_weights(self, first_weight_shape):
        channels = first_weight_shape[1] * self.groups if len(first_weight_shape) == 3 else first_weight_shape[0]
        return (None, None, channels) if self.data_format == "channels_last" else (None, channels, None)

    def weight_spec(self):
        spec = [
            WeightSpec("kernel", "kernel", (self.kernel_size, self.in_channels // self.groups, self.filters), False)
        ]
        if self.use_bias:
            spec.append(WeightSpec("bias", "bias", (self.filters,), transpose=False))
        return spec

    # --- the computation ----------------------------------------------------------------------
    def _padding(self, steps: int) -> tuple[int, int]:
        span = self.dilation_rate * (self.kernel_size - 1) + 1
        if self.padding == "valid":
            return 0, 0
        if self.padding == "causal":
            return span - 1, 0
        total = max((math.ceil(steps / self.strides) - 1) * self.strides + span - steps, 0)
        return total // 2, total - total // 2

    def call(self, x, mask=None):
        if mask is not None:
            warnings.warn(
                f"Layer {self.name!r} (of type Conv1D) was passed an input with a mask attached to it. However, "
                "this layer does not support masking and will therefore destroy the mask information. "
                "Downstream layers will not see the mask.",
                stacklevel=2,
            )
        x = as_numeric(x, "x", self.dtype)
        if x.ndim != 3:
            raise ValueError(
                f"Argument `x` of {self.name!r} must be 3-D (batch, steps, channels) ({self.data_format}), "
                f"got shape {x.shape}."
            )
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 1)  # (B, C, L) -> (B, L, C)
        self.ensure_built((None, None, x.shape[2]) if self.data_format == "channels_last" else (None, x.shape[2], None))
        batch, steps, channels = x.shape
        if channels != self.in_channels:
            raise ValueError(
                f"Argument `x` of {self.name!r} must have {self.in_channels} channels (the built kernel's), "
                f"got shape {x.shape if self.data_format == 'channels_last' else x.transpose(0, 2, 1).shape}."
            )
        out_steps = self._output_steps(steps)
        left, right = self._padding(steps)
        xp = np.pad(x, ((0, 0), (left, right), (0, 0))) if left or right else x  # (B, Lp, C)
        taps = np.arange(out_steps)[:, None] * self.strides + np.arange(self.kernel_size) * self.dilation_rate
        patches = xp[:, taps, :]  # (B, L_out, k, C): im2col, one gather
        g, cg, fg = self.groups, channels // self.groups, self.filters // self.groups
        if g == 1:
            y = patches.reshape(batch * out_steps, self.kernel_size * cg) @ self.kernel.reshape(-1, self.filters)
        else:
            p = patches.reshape(batch * out_steps, self.kernel_size, g, cg).transpose(2, 0, 1, 3)  # (G, BL, k, Cg)
            w = self.kernel.reshape(self.kernel_size, cg, g, fg).transpose(2, 0, 1, 3)  # (G, k, Cg, Fg)
            y = np.matmul(p.reshape(g, batch * out_steps, -1), w.reshape(g, -1, fg))  # (G, BL, Fg)
            y = y.transpose(1, 0, 2)  # (BL, G, Fg): filter f = group * Fg + j
        y = y.reshape(batch, out_steps, self.filters)  # (B, L_out, F)
        if self.use_bias:
            y = y + self.bias
        y = self.activation(y)
        return np.ascontiguousarray(y.transpose(0, 2, 1)) if self.data_format == "channels_first" else y

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "trainable": self.trainable,
            "filters": self.filters,
            "kernel_size": (self.kernel_size,),
            "strides": (self.strides,),
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": (self.dilation_rate,),
            "groups": self.groups,
            "activation": activations.name_of(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.name_of(self.initializers["kernel"]),
            "bias_initializer": initializers.name_of(self.initializers["bias"]),
        }
