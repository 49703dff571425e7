"""Keras objects and configs -> scratch layers and models: the package's one door in from Keras.

:func:`from_keras` copies a live Keras layer or ``Sequential`` (weights included);
:func:`from_config` builds an unbuilt layer from a Keras class name and
``get_config()`` dict. Neither imports Keras: a Keras object is read through
``get_config()``, ``get_weights()`` and, for wrappers, the wrapped layer
attributes. This module sits above the layers and models (it builds both);
weights cross in Keras's layout and the layers convert them in
:mod:`scratch_rnn.keras_layout`.
"""

from __future__ import annotations

import inspect

import numpy as np

from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding, Masking
from scratch_rnn.gru import GRU
from scratch_rnn.lstm import LSTM
from scratch_rnn.models import Input, Sequential
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.wrappers import Bidirectional, TimeDistributed

#: Scratch layer classes by the Keras class name they mirror.
KERAS_CLASSES = {
    cls.__name__: cls
    for cls in (
        SimpleRNN, LSTM, GRU, Bidirectional, Embedding, Masking, Dense, TimeDistributed, Dropout, Activation,
    )
}  # fmt: skip

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
    cls = KERAS_CLASSES.get(class_name)
    if cls is None:
        raise ValueError(
            f"Keras layer {class_name!r} is not supported by scratch_rnn; supported: {sorted(KERAS_CLASSES)}."
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

    Supported: the layers of :data:`KERAS_CLASSES` (``Bidirectional``
    and ``TimeDistributed`` with their wrapped layers), ``InputLayer``, and ``Sequential``
    models of them. Anything else, or an option scratch_rnn does not implement, is a
    ValueError naming it. Keras is not imported: ``obj`` is read through
    ``get_config()``/``get_weights()`` and, for wrappers, the wrapped layer attributes.
    """
    kind = type(obj).__name__
    if kind == "Sequential":
        batch_shape = getattr(obj, "input_shape", None) if getattr(obj, "built", False) else None
        layers = [from_keras(layer) for layer in obj.layers]
        if batch_shape and not any(isinstance(layer, Input) for layer in layers):
            layers.insert(0, Input(batch_shape=tuple(batch_shape)))
        return Sequential(layers, name=obj.name)
    if kind == "InputLayer":
        return Input(batch_shape=tuple(obj.batch_shape), name=obj.name)
    cls = KERAS_CLASSES.get(kind)
    if cls is None:
        raise ValueError(
            f"Keras layer {kind!r} ({getattr(obj, 'name', '?')}) is not supported by scratch_rnn; "
            f"supported: {sorted(KERAS_CLASSES)}, InputLayer and Sequential."
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
