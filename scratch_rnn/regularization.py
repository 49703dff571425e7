"""Keras's noise layers ``SpatialDropout1D``, ``GaussianNoise``, ``GaussianDropout``: the identity at inference.

They act only in training (dropping whole feature maps, adding ``N(0, stddev^2)`` noise,
multiplying by ``N(1, rate / (1 - rate))`` noise), which this engine does not do; at inference
Keras returns the input unchanged, and so does this module (cast to the layer's dtype, as a copy).
Their arguments are checked as Keras checks them, and the mask passes through unchanged (Keras's
``supports_masking``). No weights.
"""

from __future__ import annotations

from scratch_rnn import checks
from scratch_rnn.checks import as_numeric
from scratch_rnn.layer import WeightlessLayer


class _Identity(WeightlessLayer):
    """A weightless layer that is the identity at inference and passes its input's mask on."""

    #: The rank the input must have (None: any rank).
    NDIM: int | None = None

    def __init__(self, seed=None, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.seed = checks.seed(seed)

    def call(self, x, mask=None):
        x = as_numeric(x, "x", self.dtype)
        if self.NDIM is not None and x.ndim != self.NDIM:
            raise ValueError(
                f"Argument `x` of {self.name!r} ({type(self).__name__}) must have {self.NDIM} dimensions, got shape "
                f"{x.shape}."
            )
        self.ensure_built((None, *x.shape[1:]))
        return x.copy()  # (batch, ...): unchanged

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "seed": self.seed}


class SpatialDropout1D(_Identity):
    """Keras's ``SpatialDropout1D``: in training, drops whole feature maps ``x[:, :, f]``; at inference
    ``y = x``, ``x (batch, timesteps, features)`` (3-D, as Keras requires).

    Args:
        rate: float in [0, 1], the fraction of feature maps dropped in training.
        seed: training-only, an integer or None.
    """

    NDIM = 3

    def __init__(self, rate, seed=None, *, name=None, dtype="float32", **kwargs):
        super().__init__(seed, name=name, dtype=dtype, **kwargs)
        self.rate = checks.rate(rate, "rate")

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class GaussianNoise(_Identity):
    """Keras's ``GaussianNoise``: in training ``y = x + N(0, stddev^2)``; at inference ``y = x``, any rank.

    Args:
        stddev: float in [0, 1] (Keras's bound), the standard deviation of the noise.
        seed: training-only, an integer or None.
    """

    def __init__(self, stddev, seed=None, *, name=None, dtype="float32", **kwargs):
        super().__init__(seed, name=name, dtype=dtype, **kwargs)
        self.stddev = checks.rate(stddev, "stddev")

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


class GaussianDropout(_Identity):
    """Keras's ``GaussianDropout``: in training ``y = x * N(1, rate / (1 - rate))``; at inference ``y = x``.

    Args:
        rate: float in [0, 1], the drop probability the noise's variance comes from.
        seed: training-only, an integer or None.
    """

    def __init__(self, rate, seed=None, *, name=None, dtype="float32", **kwargs):
        super().__init__(seed, name=name, dtype=dtype, **kwargs)
        self.rate = checks.rate(rate, "rate")

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
