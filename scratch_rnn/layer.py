"""The small base every scratch layer shares: naming, dtype, weights.

A layer keeps its weights as attributes in the *seed* layout (see
:mod:`scratch_rnn.keras_layout`); ``get_weights``/``set_weights`` speak Keras's
layout and order, converting in that one module.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict

import numpy as np

from scratch_rnn import keras_layout
from scratch_rnn.checks import check_dtype

_name_counters: dict[str, itertools.count] = defaultdict(itertools.count)


def auto_name(cls_name: str) -> str:
    """Keras-style unique names: ``simple_rnn``, ``simple_rnn_1``, ..."""
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls_name).lower()
    n = next(_name_counters[base])
    return base if n == 0 else f"{base}_{n}"


class Layer:
    """Base of every scratch layer: ``name``, ``dtype``, ``built``, weights and their count."""

    #: Keyword arguments that only matter for training; accepted and stored, no-ops at inference.
    TRAINING_ONLY = (
        "kernel_regularizer",
        "recurrent_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "recurrent_constraint",
        "bias_constraint",
        "embeddings_regularizer",
        "embeddings_constraint",
    )

    def __init__(self, *, name=None, dtype="float32", trainable=True, **kwargs):
        unknown = sorted(set(kwargs) - set(self.TRAINING_ONLY))
        if unknown:
            hint = ""
            if {"input_shape", "batch_input_shape", "input_dim"} & set(unknown):
                hint = (
                    " Give the input shape with `scratch_rnn.Input(shape=...)` or `Input(batch_shape=...)`"
                    " (Keras 3 style)."
                )
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {unknown}.{hint}")
        self.training_only = dict(kwargs)
        self.name = name if name is not None else auto_name(type(self).__name__)
        self.dtype = check_dtype(dtype)
        self.trainable = bool(trainable)
        self.built = False
        self.input_shape: tuple | None = None  # (batch or None, ..., features), set by build

    # --- weights --------------------------------------------------------------------
    def weight_spec(self) -> list[keras_layout.WeightSpec]:
        """The layer's weights, in Keras's order, with their Keras and seed layouts."""
        return []

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras's layout and order."""
        return keras_layout.get_weights(self)

    def set_weights(self, weights) -> None:
        """Set weights given in Keras's layout and order; builds an unbuilt layer from them."""
        keras_layout.set_weights(self, weights)

    def initializer_for(self, keras_name: str):
        """The initialiser of weight ``keras_name`` (set by the concrete layer's constructor)."""
        return self.initializers[keras_name]

    def initialize_weights(self, rng: np.random.Generator) -> None:
        """Draw every weight from its initialiser, in Keras's layout, and store it like ``set_weights``."""
        self.set_weights(
            [self.initializer_for(spec.keras_name)(spec.keras_shape, self.dtype, rng) for spec in self.weight_spec()]
        )

    def input_shape_from_weights(self, first_weight_shape: tuple) -> tuple:
        """The input shape to build on when ``set_weights`` meets an unbuilt layer.

        The default reads a recurrent kernel, Keras shape ``(input_dim, ...)``.
        """
        return (None, None, first_weight_shape[0])

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet: call it, or give the model an Input, first.")
        return sum(int(np.prod(spec.keras_shape)) for spec in self.weight_spec())

    # --- shapes ----------------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        self.input_shape = tuple(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: tuple):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask):
        return mask

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"
