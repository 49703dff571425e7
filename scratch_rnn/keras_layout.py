"""The one boundary between Keras's weight layout and the seed's.

Keras stores a recurrent layer's input kernel as ``(input_dim, units)`` and
computes ``x @ kernel``; the seed notebook (and this engine) stores
``Wx (units, input_dim)`` and computes ``Wx @ x``. Every conversion between the
two happens here, one named tensor at a time, each shape asserted before it is
copied (the habit of nanoGPT's ``from_pretrained``). No other module transposes.

=======================  ===============================  ================================
Keras weight             Keras shape                      seed attribute (shape)
=======================  ===============================  ================================
``kernel`` (recurrent)   ``(input_dim, G*units)``         ``Wx (G*units, input_dim)``
``recurrent_kernel``     ``(units, G*units)``             ``Wh (G*units, units)``
``bias`` (recurrent)     ``(G*units,)``                   ``b (G*units,)``
``bias`` (GRU, reset     ``(2, 3*units)``                 ``b (2, 3*units)``
after)
``kernel`` (Dense)       ``(input_dim, units)``           ``W (units, input_dim)``
``bias`` (Dense)         ``(units,)``                     ``b (units,)``
``embeddings``           ``(input_dim, output_dim)``      ``embeddings (input_dim, output_dim)``
=======================  ===============================  ================================

``G`` is the number of stacked gate blocks: 1 for SimpleRNN, 4 for LSTM (i, f, c, o),
3 for GRU (z, r, h); the blocks keep Keras's order, so only kernels are transposed.
``Bidirectional`` lists its forward layer's weights then its backward layer's;
``TimeDistributed`` lists its wrapped layer's.

This module also turns Keras objects into scratch objects (:func:`from_keras`)
without importing Keras: it reads ``get_config()`` and ``get_weights()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from scratch_rnn.layer import Layer


@dataclass(frozen=True)
class WeightSpec:
    """One weight: its Keras name and shape, the seed attribute holding it, and whether they differ by a transpose."""

    keras_name: str
    attr: str
    keras_shape: tuple
    transpose: bool

    @property
    def seed_shape(self) -> tuple:
        return tuple(reversed(self.keras_shape)) if self.transpose else self.keras_shape

    def to_seed(self, keras_array: np.ndarray) -> np.ndarray:
        return keras_array.T if self.transpose else keras_array

    def to_keras(self, seed_array: np.ndarray) -> np.ndarray:
        return seed_array.T if self.transpose else seed_array


def get_weights(layer: Layer) -> list[np.ndarray]:
    """The layer's weights in Keras's layout and order (copies)."""
    if not layer.built:
        return []
    return [np.array(spec.to_keras(getattr(layer, spec.attr))) for spec in layer.weight_spec()]


def build_from_weights(layer: Layer, weights) -> None:
    """Check that ``weights`` is a list; build an unbuilt ``layer`` from its first array's shape."""
    from scratch_rnn.layer import as_numeric

    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"Argument `weights` must be a list of arrays, got {type(weights).__name__}.")
    if layer.built:
        return
    if not weights:
        raise ValueError(f"Argument `weights` is empty; cannot build layer {layer.name!r} from it.")
    first = as_numeric(weights[0], "weights[0]")
    if first.ndim < 1:
        raise ValueError(f"Argument `weights[0]` must be the kernel, shape (input_dim, ...), got {first.shape}.")
    layer.build(layer.input_shape_from_weights(first.shape), initialize=False)


def set_weights(layer: Layer, weights) -> None:
    """Copy ``weights`` (Keras layout and order) into the layer's seed-layout attributes.

    An unbuilt layer is first built from the shape of the first array (Keras's
    kernel: ``(input_dim, ...)``). Every array's count, shape and type is checked.
    """
    from scratch_rnn.layer import as_numeric

    build_from_weights(layer, weights)
    specs = layer.weight_spec()
    if len(weights) != len(specs):
        names = [s.keras_name for s in specs]
        raise ValueError(
            f"Argument `weights` for layer {layer.name!r} must hold {len(specs)} arrays {names}, got {len(weights)}."
        )
    converted = []
    for i, (spec, value) in enumerate(zip(specs, weights)):
        array = as_numeric(value, f"weights[{i}] ({spec.keras_name})")
        if array.shape != spec.keras_shape:
            raise ValueError(
                f"Argument `weights[{i}]` ({spec.keras_name}) of layer {layer.name!r} must have "
                f"Keras shape {spec.keras_shape}, got {array.shape}."
            )
        converted.append(np.array(spec.to_seed(array), dtype=layer.dtype, order="C"))  # a copy, as Keras keeps
    for spec, array in zip(specs, converted):  # all checked before any is assigned
        setattr(layer, spec.attr, array)


# --- Keras configs -> scratch constructors -------------------------------------------

#: Config keys that shape only training or default initialisation; weights are copied, so they are dropped.
_NOT_INFERENCE = {
    "trainable",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "seed",
    "embeddings_initializer",
    "embeddings_regularizer",
    "embeddings_constraint",
}

#: Config keys whose Keras default, None, is the only value scratch_rnn supports: dropped when None.
_NONE_ONLY = {"quantization_config", "lora_rank", "lora_alpha"}

#: Keras 2 (tf_keras) config keys dropped at their only supported value: ``time_major=False`` (the
#: layout of ``x``), and LSTM/GRU ``implementation`` 1 or 2 (two orderings of the same products).
_KERAS2_ONLY = {"time_major": (False,), "implementation": (1, 2)}

#: Keras 2 shape hints in layer configs (the first layer's ``batch_input_shape``, Embedding's
#: ``input_length``): a model's input shape is taken from the model itself (an ``Input``).
_SHAPE_HINTS = {"batch_input_shape", "input_length"}

#: Keras wrappers: the config key of each wrapped layer and the Keras attribute holding it, converted first.
_WRAPPED = {
    "Bidirectional": {"layer": "forward_layer", "backward_layer": "backward_layer"},
    "TimeDistributed": {"layer": "layer"},
}


def _dtype_name(dtype) -> str:
    """Keras 3 stores a DTypePolicy dict; Keras 2 a string. Mixed policies are refused."""
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name", dtype)
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        raise ValueError(f"Keras dtype policy {dtype!r} is not supported: the engine computes in float32 or float64.")
    return dtype


def kwargs_from_config(cls, config: dict) -> dict:
    """Constructor keyword arguments for scratch class ``cls`` from a Keras layer's ``get_config()``.

    Inference-irrelevant keys are dropped; every other key must be one the
    scratch class accepts, so an unknown (possibly semantic) option is refused by name.
    """
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    kwargs = {}
    for key, value in config.items():
        if (
            key in _NOT_INFERENCE
            or key in _SHAPE_HINTS
            or (key in _NONE_ONLY and value is None)
            or value in _KERAS2_ONLY.get(key, ())
        ):
            continue
        if key not in accepted:
            raise ValueError(f"Keras {cls.__name__} option `{key}`={value!r} is not supported by scratch_rnn.")
        kwargs[key] = _dtype_name(value) if key == "dtype" else value
    return kwargs


def from_config(class_name: str, config: dict):
    """An unbuilt scratch layer from a Keras class name and ``get_config()`` dict.

    Wrapped layers (``Bidirectional``'s ``layer`` and ``backward_layer``,
    ``TimeDistributed``'s ``layer``) come as Keras's serialised
    ``{"class_name": ..., "config": ...}`` dicts and are built first.
    """
    from scratch_rnn import layers_by_keras_name

    cls = layers_by_keras_name().get(class_name)
    if cls is None:
        raise ValueError(
            f"Keras layer {class_name!r} is not supported by scratch_rnn; supported: {sorted(layers_by_keras_name())}."
        )
    config = dict(config)
    wrapped = {}
    for key in _WRAPPED.get(class_name, {}):
        inner = config.pop(key, None)
        if inner is not None:
            wrapped[key] = from_config(inner["class_name"], inner["config"])
    return cls(**wrapped, **kwargs_from_config(cls, config))


def from_keras(obj):
    """A scratch layer or model equal to the Keras layer or ``Sequential`` ``obj``, weights copied.

    Supported: the layers of :func:`scratch_rnn.layers_by_keras_name` (``Bidirectional``
    and ``TimeDistributed`` with their wrapped layers), ``InputLayer``, and ``Sequential``
    models of them. Anything else, or an option scratch_rnn does not implement, is a
    ValueError naming it. Keras is not imported: ``obj`` is read through
    ``get_config()``/``get_weights()`` and, for wrappers, the wrapped layer attributes.
    """
    from scratch_rnn import layers_by_keras_name
    from scratch_rnn.models import Input, Sequential

    kind = type(obj).__name__
    if kind == "Sequential":
        batch_shape = getattr(obj, "input_shape", None) if getattr(obj, "built", False) else None
        layers = [from_keras(layer) for layer in obj.layers]
        if batch_shape and not any(isinstance(layer, Input) for layer in layers):
            layers.insert(0, Input(batch_shape=tuple(batch_shape)))
        return Sequential(layers, name=obj.name)
    if kind == "InputLayer":
        return Input(batch_shape=tuple(obj.batch_shape), name=obj.name)
    cls = layers_by_keras_name().get(kind)
    if cls is None:
        raise ValueError(
            f"Keras layer {kind!r} ({getattr(obj, 'name', '?')}) is not supported by scratch_rnn; "
            f"supported: {sorted(layers_by_keras_name())}, InputLayer and Sequential."
        )
    config = dict(obj.get_config())
    wrapped = {}
    for key, attribute in _WRAPPED.get(kind, {}).items():
        config.pop(key, None)
        wrapped[key] = from_keras(getattr(obj, attribute))
    layer = cls(**wrapped, **kwargs_from_config(cls, config))
    weights = [np.asarray(w) for w in obj.get_weights()]
    if weights:
        layer.set_weights(weights)
    return layer
