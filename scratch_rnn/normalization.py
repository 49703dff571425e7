"""Keras's normalization layers: ``LayerNormalization`` and ``BatchNormalization`` (at inference).

Both pass their input's mask on unchanged (Keras's ``supports_masking``) and compute in their
``dtype`` (float inputs are cast to it, as Keras's layer call casts them). Weights keep Keras's
layout (no transpose); ``BatchNormalization``'s moving statistics are non-trainable weights, so
:meth:`~scratch_rnn.layer.Layer.count_trainable_params` splits the count as Keras's summary does.
"""

from __future__ import annotations

import math
import re

import numpy as np

from scratch_rnn import initializers
from scratch_rnn.checks import as_numeric, boolean
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.layer import Layer


def _initializer(identifier, argument: str):
    """:func:`scratch_rnn.initializers.get`, also taking Keras 3's serialised ``{"class_name": "Ones", ...}``
    (what ``get_config()`` holds) by its snake-case name."""
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        if identifier.get("config"):
            raise ValueError(
                f"Received an invalid value for argument `{argument}`, expected an initializer without "
                f"arguments, got {identifier!r:.100}."
            )
        identifier = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", identifier["class_name"]).lower()
    return initializers.get(identifier, argument)


def _epsilon(value) -> float:
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"Received an invalid value for argument `epsilon`, expected a non-negative float, got {value!r}."
        )
    return float(value)


def _axes(axis, argument: str = "axis") -> list[int]:
    """``axis`` (an int, or a list/tuple of ints) as a list of ints."""
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not items or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) for a in items):
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected an int or a non-empty list of ints, "
            f"got {axis!r}."
        )
    return [int(a) for a in items]


def _check_axes(axes: list[int], ndim: int, layer) -> None:
    """Every axis inside ``[-ndim, ndim)`` and no axis twice (Keras's IndexError, as a ValueError)."""
    if any(not -ndim <= a < ndim for a in axes) or len({a % ndim for a in axes}) != len(axes):
        raise ValueError(
            f"Argument `axis`={axes} of {layer.name!r} must name distinct axes of the input, which has "
            f"{ndim} dimensions."
        )


class _Normalization(Layer):
    """What both normalizations share: weights in Keras's layout, built from the input's shape, mask passed on."""

    SIZE_ARGUMENTS = ("axis",)

    #: The training-only arguments both normalizations take, accepted and kept for the config.
    TRAINING_ONLY_OPTIONS = ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint")

    def _options(self, epsilon, center, scale, beta_initializer, gamma_initializer, training_only):
        """Check and keep the options both normalizations take; ``training_only`` holds the values of
        :attr:`TRAINING_ONLY_OPTIONS`, in order."""
        self.epsilon = _epsilon(epsilon)
        self.center = boolean(center, "center")
        self.scale = boolean(scale, "scale")
        self.initializers = {
            "gamma": _initializer(gamma_initializer, "gamma_initializer"),
            "beta": _initializer(beta_initializer, "beta_initializer"),
        }
        self.regularizers_and_constraints = dict(zip(self.TRAINING_ONLY_OPTIONS, training_only))

    def compute_output_shape(self, input_shape):
        _check_axes(self.axes, len(input_shape), self)
        return tuple(input_shape)

    def compute_mask(self, inputs, mask):
        return mask

    def _input(self, x):
        x = as_numeric(x, "x", self.dtype)
        if x.ndim < 1:
            raise ValueError(f"Argument `x` of {self.name!r} must have at least 1 dimension, got shape {x.shape}.")
        _check_axes(self.axes, x.ndim, self)
        batch = x.shape[0] if any(a % x.ndim == 0 for a in self.axes) else None  # axis 0 needs its size
        self.ensure_built((batch, *x.shape[1:]))
        got = tuple(x.shape[a] for a in self.axes)
        if got != self._param_shape():
            raise ValueError(
                f"Argument `x` of {self.name!r} must have sizes {self._param_shape()} on axis {self.axes} (the "
                f"built weights'), got shape {x.shape}."
            )
        return x

    def _param_shape(self) -> tuple:
        """The weights' shape: the input's sizes on the normalized axes, in sorted-axis order (Keras's)."""
        return tuple(self.input_shape[a] for a in self.axes)

    def input_shape_from_weights(self, first_weight_shape):
        # The weights give the normalized axes' sizes only: place them on an input with room for every
        # axis (non-negative ones from the front, negative ones from the back).
        front = max((a + 1 for a in self.axes if a >= 0), default=1)
        back = max((-a for a in self.axes if a < 0), default=0)
        shape = [None] * max(front + back, 2)
        for a, size in zip(self.axes, first_weight_shape):
            shape[a] = size
        return tuple(shape)

    def build(self, input_shape, initialize=True):
        _check_axes(self.axes, len(input_shape), self)
        if any(input_shape[a] is None for a in self.axes):
            raise ValueError(
                f"{type(self).__name__} {self.name!r} needs the size of axis {self.axes} of its input, "
                f"got input shape {tuple(input_shape)}."
            )
        super().build(input_shape, initialize)

    def get_config(self):
        """Keras's config: the options both normalizations share; each adds its own."""
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "trainable": self.trainable,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.name_of(self.initializers["beta"]),
            "gamma_initializer": initializers.name_of(self.initializers["gamma"]),
            **self.regularizers_and_constraints,
        }


class LayerNormalization(_Normalization):
    """Keras's ``LayerNormalization``: each example normalized over ``axis``, then scaled and shifted.

    Equations (Keras 3's ``ops.layer_normalization``, computed the same way)::

        mean = mean(x, axis)                       # keepdims: broadcasts against x
        var  = mean((x - mean) ** 2, axis)         # biased variance
        inv  = gamma / sqrt(var + epsilon)         # 1 / sqrt(var + epsilon) without `scale`
        y    = x * inv + (beta - mean * inv)       # -mean * inv without `center`

    With the deprecated ``rms_scaling=True``, ``y = x / sqrt(var + epsilon) * gamma`` (Keras's formula:
    the variance, not the mean square) and there is no ``beta``.

    Weights (Keras's layout, in Keras's order): ``gamma`` then ``beta``, each of shape
    ``tuple(input_shape[a] for a in sorted(axis))``, reshaped onto those axes (as Keras does: a reshape,
    so ``axis=[-1, 1]`` lays ``gamma (features, timesteps)`` onto ``(timesteps, features)`` element
    order, Keras's quirk). ``gamma`` exists with ``scale`` or ``rms_scaling``, ``beta`` with ``center``
    and not ``rms_scaling``.

    Args:
        axis: int or list of ints, the axes normalized (default -1, the features).
        epsilon: non-negative float added to the variance (default 1e-3).
        center, scale: whether ``beta`` and ``gamma`` exist.
        rms_scaling: Keras's deprecated RMS variant (see above).
        beta_initializer, gamma_initializer: Keras names (or serialised dicts) or callables.
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: training-only, accepted.
        dtype: ``"float32"`` (default) or ``"float64"``.

    Call arguments:
        x: ``(batch, ..., features)``, any rank containing ``axis``.
        mask: accepted and ignored; it passes through to the next layer, as in Keras.
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        rms_scaling=False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        dtype="float32",
        name=None,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.axes = _axes(axis)
        self.axis = list(self.axes) if isinstance(axis, (list, tuple)) else self.axes[0]
        training_only = (beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint)
        self._options(epsilon, center, scale, beta_initializer, gamma_initializer, training_only)
        self.rms_scaling = boolean(rms_scaling, "rms_scaling")
        self.axes = sorted(self.axes)  # Keras sorts them at build; the weights' shape follows this order

    INITIALIZER_ARGUMENTS = {"gamma": "gamma_initializer", "beta": "beta_initializer"}

    def weight_spec(self):
        shape = self._param_shape()
        spec = []
        if self.scale or self.rms_scaling:
            spec.append(WeightSpec("gamma", "gamma", shape, transpose=False))
        if self.center and not self.rms_scaling:
            spec.append(WeightSpec("beta", "beta", shape, transpose=False))
        return spec

    def _broadcast(self, w, x_shape):
        """Keras's ``_broadcast``: the weight reshaped onto the normalized axes (a reshape, not a transpose)."""
        shape = [1] * len(x_shape)
        for a in self.axes:
            shape[a] = x_shape[a]
        return w.reshape(shape)

    def call(self, x, mask=None):
        x = self._input(x)  # (batch, ..., features), in self.dtype
        axes = tuple(self.axes)
        mean = np.mean(x, axis=axes, keepdims=True)  # 1 on the normalized axes
        var = np.mean(np.square(x - mean), axis=axes, keepdims=True)
        inv = 1 / np.sqrt(var + self.dtype.type(self.epsilon))
        if self.rms_scaling:
            return x * inv * self._broadcast(self.gamma, x.shape)  # rms_scaling always has gamma
        if self.scale:
            inv = inv * self._broadcast(self.gamma, x.shape)
        res = -mean * inv
        if self.center:
            res = res + self._broadcast(self.beta, x.shape)
        return x * inv + res  # same shape as x

    def get_config(self):
        return {**super().get_config(), "rms_scaling": self.rms_scaling}


class BatchNormalization(_Normalization):
    """Keras's ``BatchNormalization`` at inference: the moving statistics normalize the input.

    Equations (``tf.nn.batch_normalization``, computed the same way; over the channels of ``axis``)::

        inv = gamma / sqrt(moving_variance + epsilon)     # 1 / sqrt(...) without `scale`
        y   = x * inv + (beta - moving_mean * inv)        # -moving_mean * inv without `center`

    which is ``gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``.

    Weights (Keras's layout and ``get_weights`` order), each ``(channels,)``: ``gamma`` (with
    ``scale``), ``beta`` (with ``center``), then the non-trainable ``moving_mean`` and
    ``moving_variance``; with ``renorm``, also the non-trainable ``moving_stddev``, ``renorm_mean`` and
    ``renorm_stddev`` (used in training only: Keras's inference is the same with or without renorm).

    Training (``training=True``: batch statistics, moving-average updates) is not implemented and is
    refused by name; ``momentum``, ``renorm_momentum``, ``renorm_clipping``, ``synchronized`` and
    the regularizers and constraints act in training only and are accepted.

    Args:
        axis: int, the channels axis (default -1).
        momentum: float, the moving averages' momentum (training only).
        epsilon: non-negative float added to the variance (default 1e-3).
        center, scale: whether ``beta`` and ``gamma`` exist.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer:
            Keras names (or serialised dicts) or callables.
        dtype: ``"float32"`` (default) or ``"float64"``.

    Call arguments:
        x: ``(batch, ..., channels)`` (any rank containing ``axis``).
        mask: ``x.ndim - 1`` dimensions (checked, as Keras does), else ignored at inference; it passes
            through to the next layer.
        training: None or False (inference); True is refused.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        dtype="float32",
        name=None,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(axis, (list, tuple)) or len(_axes(axis)) != 1:
            raise ValueError(f"Received an invalid value for argument `axis`, expected an int, got {axis!r}.")
        self.axis = _axes(axis)[0]
        self.axes = [self.axis]
        for argument, value in (("momentum", momentum), ("renorm_momentum", renorm_momentum)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(
                    f"Received an invalid value for argument `{argument}`, expected a float, got {value!r}."
                )
        self.momentum = float(momentum)
        self.renorm_momentum = float(renorm_momentum)
        training_only = (beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint)
        self._options(epsilon, center, scale, beta_initializer, gamma_initializer, training_only)
        self.renorm = boolean(renorm, "renorm")
        self.synchronized = boolean(synchronized, "synchronized")
        if renorm_clipping is not None and (
            not isinstance(renorm_clipping, dict) or set(renorm_clipping) - {"rmax", "rmin", "dmax"}
        ):
            raise ValueError(
                "Received an invalid value for argument `renorm_clipping`, expected None or a dict with keys "
                f"among ['rmax', 'rmin', 'dmax'], got {renorm_clipping!r:.100}."
            )
        self.renorm_clipping = renorm_clipping
        self.initializers["moving_mean"] = _initializer(moving_mean_initializer, "moving_mean_initializer")
        self.initializers["moving_variance"] = _initializer(moving_variance_initializer, "moving_variance_initializer")

    INITIALIZER_ARGUMENTS = {
        "gamma": "gamma_initializer",
        "beta": "beta_initializer",
        "moving_mean": "moving_mean_initializer",
        "moving_variance": "moving_variance_initializer",
        "moving_stddev": "moving_variance_initializer",
        "renorm_mean": "moving_mean_initializer",
        "renorm_stddev": "moving_variance_initializer",
    }

    def initializer_for(self, keras_name):
        if keras_name in ("moving_stddev", "renorm_stddev"):  # Keras: sqrt of the moving variance's initializer
            init = self.initializers["moving_variance"]
            return lambda shape, dtype, rng: np.sqrt(init(shape, dtype, rng))
        if keras_name == "renorm_mean":
            return self.initializers["moving_mean"]
        return self.initializers[keras_name]

    def weight_spec(self):
        shape = self._param_shape()  # (channels,)
        spec = []
        if self.scale:
            spec.append(WeightSpec("gamma", "gamma", shape, transpose=False))
        if self.center:
            spec.append(WeightSpec("beta", "beta", shape, transpose=False))
        names = ["moving_mean", "moving_variance"]
        if self.renorm:
            names += ["moving_stddev", "renorm_mean", "renorm_stddev"]
        spec += [WeightSpec(n, n, shape, transpose=False, trainable=False) for n in names]
        return spec

    def call(self, x, mask=None, training=None):
        if training not in (None, False):
            raise ValueError(
                f"Argument `training`={training!r} of {self.name!r}: scratch_rnn's BatchNormalization runs at "
                "inference only (the moving statistics); training mode is not implemented."
            )
        x = self._input(x)  # (batch, ..., channels), in self.dtype
        if mask is not None:
            mask = as_numeric(mask, "mask")
            if mask.ndim != x.ndim - 1:
                raise ValueError(
                    f"Argument `mask` of {self.name!r} must have one dimension less than the inputs, got "
                    f"mask.shape={mask.shape}, inputs.shape={x.shape}."
                )
        shape = [1] * x.ndim
        shape[self.axis] = x.shape[self.axis]  # the channels broadcast along `axis`
        inv = 1 / np.sqrt(self.moving_variance + self.dtype.type(self.epsilon))  # (channels,)
        if self.scale:
            inv = inv * self.gamma
        res = -self.moving_mean * inv
        if self.center:
            res = self.beta + res
        return x * inv.reshape(shape) + res.reshape(shape)  # same shape as x

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "moving_mean_initializer": initializers.name_of(self.initializers["moving_mean"]),
            "moving_variance_initializer": initializers.name_of(self.initializers["moving_variance"]),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }
