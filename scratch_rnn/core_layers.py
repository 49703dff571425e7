"""The non-recurrent layers that surround recurrent ones in Keras models.

``Embedding`` and ``Masking`` make masks, ``Dense``, ``Dropout`` and ``Activation``
pass them on unchanged (Keras's ``supports_masking``), and
:class:`scratch_rnn.Sequential` hands each layer's mask to the next. Every layer
here computes in its ``dtype`` (float inputs are cast to it, as Keras autocasts).
Default weights of ``Dense`` and ``Embedding`` come from an unseeded NumPy generator;
copy Keras's (:func:`scratch_rnn.from_keras`, ``set_weights``) to compute Keras's values.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import activations, checks, initializers
from scratch_rnn.checks import as_numeric, boolean, positive_int
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.layer import Layer, WeightlessLayer


class Dense(Layer):
    """Keras's densely connected layer, applied to the last axis of an input of any rank >= 2.

    Equations::

        y = activation(W @ x + b)          # one feature vector x (input_dim,)
        Y = activation(X @ W.T + b)        # X (..., input_dim) -> Y (..., units), as computed

    Weights (seed layout; ``get_weights`` gives Keras's): ``W (units, input_dim)``
    (Keras ``kernel (input_dim, units)``, a transpose), ``b (units,)``.

    Args:
        units: positive int, size of the last output axis.
        activation: any name in :mod:`scratch_rnn.activations` (``"softmax"`` included, over the
            last axis) or None (linear).
        use_bias: whether ``b`` exists.
        kernel_initializer, bias_initializer: Keras names or callables ``(shape, dtype, rng) -> array``.
        dtype: ``"float32"`` (default) or ``"float64"``.

    Call arguments:
        x: ``(batch, ..., input_dim)``.
        mask: accepted and ignored; the mask passes through to the next layer, as in Keras.
    """

    call_takes_mask = False  # Keras's call takes no mask (keras/src/layers/core/): a graph passes none

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        dtype="float32",
        name=None,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.units = positive_int(units, "units")
        self.activation = activations.get(activation, "activation")
        self.use_bias = boolean(use_bias, "use_bias")
        self.initializers = {
            "kernel": initializers.get(kernel_initializer, "kernel_initializer"),
            "bias": initializers.get(bias_initializer, "bias_initializer"),
        }

    def build(self, input_shape, initialize=True):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs (batch, ..., input_dim) with a known input_dim, "
                f"got shape {input_shape}."
            )
        super().build(input_shape, initialize)

    def input_shape_from_weights(self, first_weight_shape):
        return (None, first_weight_shape[0])  # kernel (input_dim, units)

    @property
    def input_dim(self) -> int:
        return self.input_shape[-1]

    def weight_spec(self):
        spec = [WeightSpec("kernel", "W", (self.input_dim, self.units), transpose=True)]
        if self.use_bias:
            spec.append(WeightSpec("bias", "b", (self.units,), transpose=False))
        return spec

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def call(self, x, mask=None):
        x = as_numeric(x, "x", self.dtype)
        if x.ndim < 2:
            raise ValueError(
                f"Argument `x` of {self.name!r} must have at least 2 dimensions (batch, ..., input_dim), "
                f"got shape {x.shape}."
            )
        self.ensure_built((None, *x.shape[1:]))
        if x.shape[-1] != self.input_dim:
            raise ValueError(
                f"Argument `x` of {self.name!r} must have last dimension {self.input_dim} (the built kernel's "
                f"input_dim), got shape {x.shape}."
            )
        y = x @ self.W.T  # (..., F) @ (F, U) -> (..., U)
        if self.use_bias:
            y += self.b
        return self.activation(y)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "units": self.units,
            "activation": activations.name_of(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.name_of(self.initializers["kernel"]),
            "bias_initializer": initializers.name_of(self.initializers["bias"]),
        }


class Embedding(Layer):
    """Keras's ``Embedding``: row lookup in a ``(input_dim, output_dim)`` table.

    Equations::

        y[..., :] = embeddings[x[...], :]      # x (...) integer ids -> y (..., output_dim)
        mask      = x != 0                     # only with mask_zero

    Float ids are truncated to integers (Keras casts them to int32); the mask is computed
    from the ids as given, as in Keras. Negative ids count from the end, as Keras's
    ``take`` does; ids outside ``[-input_dim, input_dim)`` are a ValueError.

    Weights (seed layout = Keras's): ``embeddings (input_dim, output_dim)``.

    Args:
        input_dim: positive int, the vocabulary size.
        output_dim: positive int, the size of each vector.
        embeddings_initializer: Keras name (default ``"uniform"``, ``U(-0.05, 0.05)``) or a callable.
        mask_zero: whether id 0 is padding: the layer then emits the mask ``x != 0``.
        weights: optional initial table ``(input_dim, output_dim)`` (or a one-element list of it),
            set at construction, which builds the layer (Keras 3's argument; not in ``get_config()``).
        input_length: accepted (a positive int or None) and dropped, as Keras 3 does.
        dtype: ``"float32"`` (default) or ``"float64"``, the dtype of the vectors.

    Call arguments:
        x: integer ids of any shape, typically ``(batch, timesteps)``.
        mask: accepted and ignored (the output mask comes from ``x``).
    """

    call_takes_mask = False  # Keras's call takes no mask (keras/src/layers/core/): a graph passes none

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        mask_zero=False,
        weights=None,
        dtype="float32",
        name=None,
        input_length=None,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.input_dim = positive_int(input_dim, "input_dim")
        self.output_dim = positive_int(output_dim, "output_dim")
        self.mask_zero = boolean(mask_zero, "mask_zero")
        self.initializers = {"embeddings": initializers.get(embeddings_initializer, "embeddings_initializer")}
        # Keras 3 drops `input_length` (deprecated: the ids' shape comes from the input): checked, not kept.
        if input_length is not None:
            positive_int(input_length, "input_length")
        if weights is not None:  # Keras 3: the initial table, built at once
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    SIZE_ARGUMENTS = ("input_dim", "output_dim")

    def build(self, input_shape=None, initialize=True):
        super().build((None, None) if input_shape is None else input_shape, initialize)

    def input_shape_from_weights(self, first_weight_shape):
        return (None, None)  # the table does not tell the ids' shape

    def weight_spec(self):
        return [WeightSpec("embeddings", "embeddings", (self.input_dim, self.output_dim), transpose=False)]

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def compute_mask(self, inputs, mask):
        if not self.mask_zero:
            return None
        return as_numeric(inputs, "x") != 0  # (batch, timesteps)

    def call(self, x, mask=None):
        ids = as_numeric(x, "x")
        if ids.dtype.kind == "f":
            if not np.all(np.isfinite(ids)):
                raise ValueError(f"Argument `x` of {self.name!r} must hold finite ids, got NaN or infinity.")
            ids = np.trunc(ids)
        outside = (ids < -self.input_dim) | (ids >= self.input_dim)  # before any cast: 1e20 is not an int64
        if outside.any():
            raise ValueError(
                f"Argument `x` of {self.name!r} must hold ids in [-{self.input_dim}, {self.input_dim}) "
                f"(input_dim={self.input_dim}), got {ids[outside][0].item()!r}."
            )
        ids = ids.astype(np.int64)
        self.ensure_built((None, *ids.shape[1:]))
        return self.embeddings[ids]  # (..., output_dim)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "mask_zero": self.mask_zero,
            "embeddings_initializer": initializers.name_of(self.initializers["embeddings"]),
        }


class Masking(WeightlessLayer):
    """Keras's ``Masking``: skip the timesteps whose features all equal ``mask_value``.

    Equations::

        mask[b, t]   = any(x[b, t, :] != mask_value)       # (batch, timesteps)
        y[b, t, :]   = x[b, t, :] if mask[b, t] else 0     # masked steps are zeroed

    The comparison is made in the layer's dtype (the input and ``mask_value`` are cast to it).

    Args:
        mask_value: a real number (default 0.0).
        dtype: ``"float32"`` (default) or ``"float64"``.

    Call arguments:
        x: ``(batch, timesteps, features)`` (any rank >= 2; the last axis is compared).
        mask: accepted and ignored; the output mask comes from ``x``.
    """

    call_takes_mask = False  # Keras's call takes no mask (keras/src/layers/core/): a graph passes none

    def __init__(self, mask_value=0.0, dtype="float32", name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.integer, np.floating)):
            raise ValueError(
                f"Received an invalid value for argument `mask_value`, expected a real number, got {mask_value!r}."
            )
        self.mask_value = mask_value

    def _keep(self, x):
        x = self._input(x)
        if x.ndim < 2:
            raise ValueError(
                f"Argument `x` of {self.name!r} must have at least 2 dimensions (batch, ..., features), "
                f"got shape {x.shape}."
            )
        return x, np.any(x != self.dtype.type(self.mask_value), axis=-1)  # (batch, timesteps)

    def compute_mask(self, inputs, mask):
        return self._keep(inputs)[1]

    def call(self, x, mask=None):
        x, keep = self._keep(x)
        return np.where(keep[..., None], x, self.dtype.type(0))  # (batch, timesteps, features)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "mask_value": self.mask_value}


class Dropout(WeightlessLayer):
    """Keras's ``Dropout``; at inference (all this engine does) it is the identity.

    Args:
        rate: float in [0, 1], the fraction dropped in training.
        noise_shape, seed: training-only, accepted and stored.
        dtype: ``"float32"`` (default) or ``"float64"``; the input is cast to it.
    """

    call_takes_mask = False  # Keras's call takes no mask (keras/src/layers/core/): a graph passes none

    def __init__(self, rate, noise_shape=None, seed=None, dtype="float32", name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.rate = checks.rate(rate, "rate")
        self.noise_shape = noise_shape
        self.seed = checks.seed(seed)

    def call(self, x, mask=None):
        return self._input(x).copy()

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }


class Activation(WeightlessLayer):
    """Keras's ``Activation``: ``y = activation(x)`` elementwise (softmax: over the last axis).

    Args:
        activation: any name in :mod:`scratch_rnn.activations`, or None (linear).
        dtype: ``"float32"`` (default) or ``"float64"``; the input is cast to it.
    """

    call_takes_mask = False  # Keras's call takes no mask (keras/src/layers/core/): a graph passes none

    def __init__(self, activation, dtype="float32", name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.activation = activations.get(activation, "activation")

    def call(self, x, mask=None):
        return self.activation(self._input(x))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "activation": activations.name_of(self.activation)}
