"""The small base every scratch layer shares: naming, dtype, weights.

A layer keeps its weights as attributes in the *seed* layout (see
:mod:`scratch_rnn.keras_layout`); ``get_weights``/``set_weights`` speak Keras's
layout and order, converting in that one module.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
from collections import defaultdict

import numpy as np

from scratch_rnn import keras_layout, symbolic
from scratch_rnn.checks import as_numeric, check_dtype

_name_counters: dict[str, itertools.count] = defaultdict(itertools.count)

#: Held while a layer builds or takes new weights. Building happens once per layer, so one lock for
#: all layers costs nothing, and a layer holds no lock of its own (layers pickle and deep-copy).
BUILD_LOCK = threading.RLock()


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
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Received an invalid value for argument `name`, expected a string, got {name!r:.80}.")
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
        """Set weights given in Keras's layout and order; builds an unbuilt layer from them.

        All or nothing: weights that are refused (count, shape, type) leave the layer as it was,
        unbuilt if it was unbuilt.
        """
        with BUILD_LOCK, unchanged_on_error(self):
            self._set_weights(weights)

    def _set_weights(self, weights) -> None:
        """:meth:`set_weights` without its guard: what a wrapper overrides."""
        keras_layout.set_weights(self, weights)

    def sublayers(self) -> list[Layer]:
        """The layers this one wraps (a wrapper's), whose state is part of this layer's."""
        return []

    def weight_rng(self) -> np.random.Generator:
        """The generator default weights are drawn from (unseeded; recurrent layers use their ``seed``)."""
        return np.random.default_rng()

    def initializer_for(self, keras_name: str):
        """The initialiser of weight ``keras_name`` (set by the concrete layer's constructor)."""
        return self.initializers[keras_name]

    #: The constructor arguments that size the weights (named when they cannot be allocated).
    SIZE_ARGUMENTS = ("units",)

    #: The constructor argument that names each Keras weight's initialiser.
    INITIALIZER_ARGUMENTS = {
        "kernel": "kernel_initializer",
        "recurrent_kernel": "recurrent_initializer",
        "bias": "bias_initializer",
        "embeddings": "embeddings_initializer",
    }

    def initialize_weights(self, rng: np.random.Generator) -> None:
        """Draw every weight from its initialiser, in Keras's layout, and store it like ``set_weights``."""
        specs = self.weight_spec()
        shapes = [spec.keras_shape for spec in specs]
        weights = []
        for spec in specs:
            argument = self.INITIALIZER_ARGUMENTS[spec.keras_name]
            try:
                value = self.initializer_for(spec.keras_name)(spec.keras_shape, self.dtype, rng)
            except (MemoryError, ValueError) as err:  # e.g. units=10**12: numpy cannot allocate the kernel
                sizes = " and ".join(f"`{size}`" for size in self.SIZE_ARGUMENTS)
                raise ValueError(
                    f"Layer {self.name!r} cannot allocate its weights of shapes {shapes} ({type(err).__name__}: "
                    f"{err}); check {sizes} and the input's feature size (or `{argument}`)."
                ) from None
            except Exception as err:  # a user's callable initialiser failed
                raise ValueError(
                    f"Argument `{argument}` of layer {self.name!r} raised {type(err).__name__}: {err}"
                ) from None
            array = as_numeric(value, argument)
            if array.shape != spec.keras_shape:
                raise ValueError(
                    f"Argument `{argument}` of layer {self.name!r} must return an array of shape {spec.keras_shape}, "
                    f"got {array.shape}."
                )
            weights.append(array)
        keras_layout.assign_weights(self, weights)

    def input_shape_from_weights(self, first_weight_shape: tuple) -> tuple:
        """The input shape to build on when ``set_weights`` meets an unbuilt layer.

        The default reads a recurrent kernel, Keras shape ``(input_dim, ...)``.
        """
        return (None, None, first_weight_shape[0])

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet: call it, or give the model an Input, first.")
        return sum(int(np.prod(spec.keras_shape)) for spec in self.weight_spec())

    def count_trainable_params(self) -> int:
        """Keras's trainable count (summary's "Trainable params"): 0 for a frozen layer (``trainable=False``),
        else the weights whose :class:`~scratch_rnn.keras_layout.WeightSpec` is trainable."""
        self.count_params()  # refuses an unbuilt layer
        if not self.trainable:
            return 0
        return sum(int(np.prod(spec.keras_shape)) for spec in self.weight_spec() if spec.trainable)

    # --- calling ---------------------------------------------------------------------
    #: Whether the layer passes on or computes a mask (Keras's ``supports_masking``): its ``compute_mask`` is the
    #: next layer's mask in a model. A layer that sets it False drops the mask, as Keras does (with a warning).
    supports_masking = True

    def __call__(self, *args, **kwargs):
        """Run the layer: :meth:`call` (each layer's computation, as in Keras) on arrays; on symbolic tensors
        (any argument, at any depth, a :class:`~scratch_rnn.symbolic.SymbolicTensor`), build the layer on their
        shapes, record a node of the functional graph and return symbolic outputs
        (:func:`scratch_rnn.symbolic.symbolic_call`)."""
        if symbolic.any_symbolic(args, kwargs):
            return symbolic.symbolic_call(self, args, kwargs)
        return self.call(*args, **kwargs)

    def call(self, x, mask=None):  # pragma: no cover - abstract
        """The layer's computation on concrete arrays; see each layer's docstring."""
        raise NotImplementedError

    # --- shapes ----------------------------------------------------------------------
    def build(self, input_shape: tuple, initialize: bool = True) -> None:
        """Take ``input_shape`` and, with ``initialize``, draw the default weights; ``built`` is set last,
        so a thread that sees a built layer sees its weights."""
        self.input_shape = tuple(input_shape)
        if initialize and self.weight_spec():
            self.initialize_weights(self.weight_rng())
        self.built = True

    def ensure_built(self, input_shape: tuple) -> None:
        """Build on first use, once, even when several threads make the first call at once."""
        if not self.built:
            with BUILD_LOCK:
                if not self.built:
                    self.build(input_shape)

    def compute_output_shape(self, input_shape: tuple):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask):
        return mask

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"


class WeightlessLayer(Layer):
    """Base of the layers without weights (``Masking``, ``Dropout``, the pooling, reshaping, merge and
    noise layers): built by their first call; they count no parameters, built or not."""

    def count_params(self) -> int:
        return 0

    def _input(self, x):
        """``x`` cast to the layer's dtype; builds the layer on its shape."""
        x = as_numeric(x, "x", self.dtype)
        self.ensure_built((None, *x.shape[1:]))
        return x


@contextlib.contextmanager
def unchanged_on_error(layer: Layer):
    """Restore ``layer`` (and the layers it wraps) to its state before the block if the block raises."""
    layers, stack = [], [layer]
    while stack:
        layers.append(stack.pop())
        stack.extend(layers[-1].sublayers())
    saved = [(each, dict(vars(each))) for each in layers]
    try:
        yield
    except BaseException:
        for each, state in saved:
            vars(each).clear()
            vars(each).update(state)
        raise
