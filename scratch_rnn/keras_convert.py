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

from scratch_rnn.attention import AdditiveAttention, Attention
from scratch_rnn.cells import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from scratch_rnn.convolutional import Conv1D
from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding, Masking
from scratch_rnn.gru import GRU
from scratch_rnn.layer import Layer
from scratch_rnn.lstm import LSTM
from scratch_rnn.merging import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from scratch_rnn.models import OPERATIONS, Input, Model, Sequential
from scratch_rnn.normalization import BatchNormalization, LayerNormalization
from scratch_rnn.pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from scratch_rnn.regularization import GaussianDropout, GaussianNoise, SpatialDropout1D
from scratch_rnn.reshaping import Flatten, Permute, RepeatVector, Reshape
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.wrappers import Bidirectional, TimeDistributed

#: Scratch layer classes by the Keras class name they mirror.
KERAS_CLASSES = {
    cls.__name__: cls
    for cls in (
        SimpleRNN, LSTM, GRU, Bidirectional, Embedding, Masking, Dense, TimeDistributed, Dropout, Activation,
        LayerNormalization, BatchNormalization, Conv1D, Attention, AdditiveAttention,
        *(RNN, SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells),
        *(Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot),
        *(RepeatVector, Flatten, Reshape, Permute),
        *(GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D, AveragePooling1D),
        *(SpatialDropout1D, GaussianNoise, GaussianDropout),
    )
}  # fmt: skip

#: Weightless scratch layers: copied from a Keras layer even before Keras has built it (a merge layer
#: builds at its first call).
_WEIGHTLESS = (
    Dropout, Masking, Activation, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot,
    RepeatVector, Flatten, Reshape, Permute, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D,
    AveragePooling1D, SpatialDropout1D, GaussianNoise, GaussianDropout,
)  # fmt: skip

#: Config keys that shape only training or default initialisation; weights are copied, so they are dropped.
_NOT_INFERENCE = {
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "embeddings_initializer",
    "seed",
    *Layer.TRAINING_ONLY,  # regularizers and constraints
}

#: Config keys whose Keras default, None, is the only value scratch_rnn supports: dropped when None.
_NONE_ONLY = {"quantization_config", "lora_rank", "lora_alpha"}

#: Keras 2 (tf_keras) config keys dropped at their only supported value by a class that does not take
#: them (the recurrent layers, LSTM/GRU and the cells take and check them): ``time_major=False`` (the
#: layout of ``x``), ``implementation`` 1 or 2 (two orderings of the same products).
_KERAS2_ONLY = {"time_major": (False,), "implementation": (1, 2)}

#: Keras 2 shape hints in layer configs (the first layer's ``batch_input_shape``, Embedding's
#: ``input_length``, which Embedding takes and checks): a model's input shape is taken from the model
#: itself (an ``Input``); dropped by a class that does not take them.
_SHAPE_HINTS = {"batch_input_shape", "input_length"}

#: Keras wrappers: the config key of each wrapped layer and the Keras attribute holding it, converted first.
_WRAPPED = {
    "Bidirectional": {"layer": "forward_layer", "backward_layer": "backward_layer"},
    "TimeDistributed": {"layer": "layer"},
    "RNN": {"cell": "cell"},
    "StackedRNNCells": {"cells": "cells"},  # a list
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
    accepted = {
        name
        for klass in cls.__mro__
        if "__init__" in vars(klass)
        for name in inspect.signature(vars(klass)["__init__"]).parameters
    } - {"self", "kwargs"}  # a layer's own options, then its bases' (BaseRNN's shared ones, Layer's name and dtype)
    kwargs = {}
    for key, value in config.items():
        if key == "trainable":  # every layer takes it (summary()'s trainable count), none computes with it
            kwargs[key] = bool(value)
            continue
        if (
            key in _NOT_INFERENCE
            or (key in _SHAPE_HINTS and key not in accepted)
            or (key in _NONE_ONLY and value is None)
            or (key not in accepted and value in _KERAS2_ONLY.get(key, ()))
        ):
            continue
        if key not in accepted:
            raise ValueError(f"Keras {cls.__name__} option `{key}`={value!r:.100} is not supported by scratch_rnn.")
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
        if isinstance(inner, list):  # StackedRNNCells' cells
            wrapped[key] = [from_config(each["class_name"], each["config"]) for each in inner]
        elif inner is not None:
            wrapped[key] = from_config(inner["class_name"], inner["config"])
    return _construct(cls, config, wrapped, config.get("name", "?"))


def _construct(cls, config: dict, wrapped: dict, name: str):
    """``cls`` built from a Keras config, a refusal naming the Keras layer."""
    try:
        return cls(**wrapped, **kwargs_from_config(cls, config))
    except ValueError as err:
        raise ValueError(f"Keras layer {name!r} ({cls.__name__}): {err}") from None


def _keras_class(obj) -> str:
    """The Keras class name of ``obj``, refusing a class defined outside Keras: a user's subclass named
    ``LSTM`` may compute something else in its ``call``, and only its name would match."""
    cls = type(obj)
    root = cls.__module__.split(".")[0]
    if root not in ("keras", "tf_keras", "tensorflow"):
        raise ValueError(
            f"Keras layer {getattr(obj, 'name', '?')!r} is of class {cls.__name__!r} from module {cls.__module__!r}, "
            "not one of Keras's own classes: a subclass may compute something else, so scratch_rnn refuses it."
        )
    return cls.__name__


def _has_weights(layer) -> bool:
    if isinstance(layer, TimeDistributed):
        return _has_weights(layer.layer)
    return not isinstance(layer, _WEIGHTLESS)


def from_keras(obj):
    """A scratch layer or model equal to the Keras layer or ``Sequential`` ``obj``, weights copied.

    Supported: the layers of :data:`KERAS_CLASSES` (``Bidirectional``
    and ``TimeDistributed`` with their wrapped layers), ``InputLayer``, and ``Sequential``
    models of them. Anything else, or an option scratch_rnn does not implement, is a
    ValueError naming it, and so are a subclass of a Keras class defined outside Keras
    and a layer that has weights but is not built (its weights do not exist yet). Copied
    besides the weights: ``trainable``, and a stateful layer's current states. Keras is
    not imported: ``obj`` is read through ``get_config()``/``get_weights()``,
    ``states`` and, for wrappers, the wrapped layer attributes.
    """
    kind = _keras_class(obj)
    if kind == "Functional":  # keras.Model(inputs, outputs): its graph from its config, each layer copied live
        return model_from_config(obj.get_config(), lambda class_name, config: from_keras(obj.get_layer(config["name"])))
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
        inner = getattr(obj, attribute)
        wrapped[key] = [from_keras(each) for each in inner] if isinstance(inner, (list, tuple)) else from_keras(inner)
    layer = _construct(cls, config, wrapped, getattr(obj, "name", "?"))
    if not getattr(obj, "built", True) and _has_weights(layer):
        raise ValueError(
            f"Keras layer {obj.name!r} ({kind}) is not built: its weights do not exist yet, so there is nothing "
            "to copy. Build the Keras model first (give it an Input, or call it), or use "
            "scratch_rnn.keras_convert.from_config for an unweighted copy."
        )
    weights = [np.asarray(w) for w in obj.get_weights()]
    if weights:
        layer.set_weights(weights)
    states = getattr(obj, "states", None) if getattr(obj, "stateful", False) and kind in RECURRENT else None
    if states is not None:  # a stateful layer mid-sequence: carry on from where Keras is
        layer.states = [np.asarray(s).astype(layer.dtype) for s in _flatten(states)]
    return layer


#: Keras's recurrent layers, whose ``states`` a stateful layer carries between calls.
RECURRENT = ("SimpleRNN", "LSTM", "GRU", "RNN")


def _flatten(states) -> list:
    if isinstance(states, (list, tuple)):
        return [leaf for s in states for leaf in _flatten(s)]
    return [states]


def model_from_config(config: dict, custom_layer_factory=from_config, keras_version: str | None = None) -> Model:
    """A :class:`~scratch_rnn.models.Model` from a Keras functional model's ``get_config()`` dict.

    Each entry of ``config["layers"]`` becomes an ``Input`` (``InputLayer``), an operation Keras 3 records in
    its graph (``NotEqual``, ``Any``: the masks of ``Embedding(mask_zero=True)`` and ``Masking``; any other is
    refused by name), or a layer made by ``custom_layer_factory(class_name, layer_config)`` (default
    :func:`from_config`, unweighted; :func:`from_keras` passes one that copies the live layer). Then every
    ``inbound_nodes`` entry is called, in an order that has its inputs ready (``keras_history`` =
    ``[layer name, node index, tensor index]``); ``training`` arguments are dropped (inference).
    ``keras_version`` (e.g. a saved file's ``metadata.json``) picks how the model passes masks
    (:data:`scratch_rnn.models.KERAS_SEMANTICS`); None is the default of :class:`~scratch_rnn.models.Model`.
    """
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("Argument `config` must be a Keras functional model's get_config() dict (with `layers`).")
    made: dict[tuple, list] = {}  # (layer name, node index) -> the node's output tensors
    pending = []  # [layer, its config's inbound nodes, the next node to call]
    for spec in config["layers"]:
        class_name, layer_config = spec.get("class_name"), dict(spec.get("config", {}))
        name = spec.get("name", layer_config.get("name"))
        if class_name == "InputLayer":
            shape = layer_config.get("batch_shape", layer_config.get("batch_input_shape"))
            dtype = _dtype_name(layer_config.get("dtype"))
            made[(name, 0)] = [Input(batch_shape=tuple(shape), dtype=dtype, name=name)]
            continue
        if class_name in ("Functional", "Sequential", "Model"):
            raise ValueError(f"Keras model {name!r} nested in a functional model is not supported by scratch_rnn.")
        module = spec.get("module")
        if module is not None:
            operation = module.startswith(("keras.src.ops", "keras.ops"))
        else:  # a legacy .h5 config names no module; a layer's config always has its dtype, an op's may not
            operation = class_name in OPERATIONS and (class_name not in KERAS_CLASSES or "dtype" not in layer_config)
        if operation and class_name in OPERATIONS:
            layer = OPERATIONS[class_name](**layer_config)
        elif operation:
            raise ValueError(
                f"Keras operation {class_name!r} ({name}) is not supported by scratch_rnn; supported operations: "
                f"{sorted(OPERATIONS)}."
            )
        else:
            layer = custom_layer_factory(class_name, layer_config)
        pending.append([layer, spec.get("inbound_nodes", []), 0, name])

    def resolve(item):
        if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
            layer_name, node_index, tensor_index = item["config"]["keras_history"]
            return made[(layer_name, node_index)][tensor_index]  # KeyError: not made yet
        if isinstance(item, list):
            return [resolve(each) for each in item]
        if isinstance(item, dict):
            return {key: resolve(each) for key, each in item.items()}
        return item

    while any(entry[2] < len(entry[1]) for entry in pending):
        progress = False
        for entry in pending:
            layer, nodes, index, name = entry
            while index < len(nodes):
                try:
                    args = resolve(list(nodes[index].get("args", [])))
                    kwargs = resolve(dict(nodes[index].get("kwargs", {})))
                except KeyError:
                    break
                kwargs.pop("training", None)
                outputs = layer(*args, **kwargs)
                made[(name, index)] = outputs if isinstance(outputs, list) else [outputs]
                index += 1
                entry[2] = index
                progress = True
        if not progress:
            stuck = [entry[3] for entry in pending if entry[2] < len(entry[1])]
            raise ValueError(
                f"Keras functional config: the inputs of layers {stuck} are never made (a disconnected graph)."
            )

    def ends(key):
        refs = config.get(key)
        single = bool(refs) and isinstance(refs[0], str)  # one [name, node, tensor], not a list of them
        try:
            tensors = [made[(n, i)][t] for n, i, t in ([refs] if single else refs)]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"Keras functional config: `{key}` {refs!r} names no tensor of the graph.") from None
        return tensors[0] if single else tensors

    versioned = {} if keras_version is None else {"keras_version": keras_version}
    return Model(ends("input_layers"), ends("output_layers"), name=config.get("name"), **versioned)
