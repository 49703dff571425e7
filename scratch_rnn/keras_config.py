"""Scratch layers and models -> Keras 3 configs (``config.json`` of a ``.keras`` file): the door out.

The converse of :mod:`scratch_rnn.keras_convert` (``from_config``, ``model_from_config``): what
:func:`scratch_rnn.saving.save_model` writes, in the form Keras 3 itself writes (``keras/src/saving/
serialization_lib.py``, ``serialize_keras_object``, and ``keras/src/models/functional.py``, ``get_config``),
so that ``keras.saving.load_model`` rebuilds the model in its default ``safe_mode``:

* a layer: ``{"module": "keras.layers", "class_name", "config", "registered_name": None, "build_config"}``,
  its ``config`` the scratch layer's ``get_config()`` with the dtype as a ``DTypePolicy``, ``trainable``
  added, wrapped layers and cells serialised the same way, and initialisers by Keras name
  (``"glorot_uniform"``; a ``Constant`` as Keras's ``Constant``). An initialiser that is a user's callable
  has no Keras form; it only drew the initial weights, which the file replaces, so its key is left out
  (Keras's default stands in). Regularisers and constraints (training only) are not written.
* an operation of a functional graph (the masks Keras records as ops: ``NotEqual``, ``Any``, ...):
  ``{"module": "keras.src.ops.numpy", "class_name", "config", "registered_name": class_name}``.
* a ``Sequential``: its ``InputLayer`` first, every layer with the ``build_config`` of its input shape.
* a functional ``Model``: every operation with its ``inbound_nodes`` (arguments as given, each tensor a
  ``__keras_tensor__`` with ``keras_history`` ``[layer, node, index]``), ``input_layers``, ``output_layers``.

NumPy only; nothing here imports Keras.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import initializers
from scratch_rnn.keras_convert import KERAS_CLASSES
from scratch_rnn.layer import Layer
from scratch_rnn.models import InputLayer, Model, Operation, Sequential
from scratch_rnn.symbolic import SymbolicTensor

#: Config keys that name an initialiser.
_INITIALIZER_KEYS = ("kernel_initializer", "recurrent_initializer", "bias_initializer", "embeddings_initializer")

#: Keras classes whose constructor takes no ``trainable`` (and whose ``get_config`` writes none).
_NO_TRAINABLE = ("SpatialDropout1D",)

#: The module Keras names for each operation class (``keras.src.ops``); the rest are in ``numpy``.
_OPERATION_MODULES = {"ConvertToTensor": "keras.src.ops.core"}


def dtype_policy(name: str) -> dict:
    """Keras 3's serialised ``DTypePolicy`` for a float dtype name."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def layer_config(layer: Layer, input_shape=None) -> dict:
    """Keras 3's serialised form of a scratch layer (``serialize_keras_object``); ``input_shape`` (the full
    shape it is called on, batch included) becomes its ``build_config``. A class Keras does not have under
    that name is a ValueError naming it."""
    kind = type(layer).__name__
    if KERAS_CLASSES.get(kind) is not type(layer):
        raise ValueError(
            f"Layer {getattr(layer, 'name', '?')!r} is of class {kind!r}, which has no Keras 3 config "
            f"(writable: {sorted(KERAS_CLASSES)})."
        )
    config = {}
    for key, value in layer.get_config().items():
        if key in _INITIALIZER_KEYS:
            value = _initializer(value)
            if value is None:
                continue  # a user's callable: no Keras form; it only drew weights the file replaces
        config[key] = _value(key, value)
    if kind not in _NO_TRAINABLE:
        config["trainable"] = bool(layer.trainable)
    entry = {"module": "keras.layers", "class_name": kind, "config": config, "registered_name": None}
    if input_shape is not None:
        entry["build_config"] = {"input_shape": _json_shape(input_shape)}
    return entry


def _value(key: str, value):
    """A config value as Keras writes it: dtypes as policies, layers serialised, tuples as lists."""
    if key == "dtype" and isinstance(value, str):
        return dtype_policy(value)
    if isinstance(value, Layer):
        return layer_config(value)
    if isinstance(value, (list, tuple)):
        return [_value("", each) for each in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _initializer(init):
    """An initialiser as Keras reads it: its Keras name, Keras's ``Constant``, or None (no Keras form)."""
    if isinstance(init, str):
        return init
    if isinstance(init, initializers.Constant):
        return {
            "module": "keras.initializers",
            "class_name": "Constant",
            "config": {"value": init.value},
            "registered_name": None,
        }
    return None


def _json_shape(shape):
    """A shape (or a list of shapes) as JSON lists, None for unknown sizes."""
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [_json_shape(each) for each in shape]
    return [None if d is None else int(d) for d in shape]


def input_layer_config(batch_shape, dtype, name: str) -> dict:
    """Keras 3's ``InputLayer`` entry."""
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": _json_shape(batch_shape),
            "dtype": np.dtype(dtype).name,
            "sparse": False,
            "ragged": False,
            "name": name,
            "optional": False,
        },
        "registered_name": None,
    }


def model_config(model) -> dict:
    """Keras 3's serialised form of a scratch :class:`Sequential` or functional :class:`Model` (the
    ``config.json`` of a ``.keras`` file)."""
    if isinstance(model, Sequential):
        return _sequential_config(model)
    if isinstance(model, Model):
        return _functional_config(model)
    raise ValueError(
        "Received an invalid value for argument `model`, expected a scratch_rnn Sequential or Model, "
        f"got {model!r:.100}."
    )


def _sequential_config(model: Sequential) -> dict:
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built, so it has no weights to save: give it an Input or call it first."
        )
    if model.input is not None:
        batch_shape, dtype, input_name = model.input.batch_shape, model.input.dtype, model.input.name
    else:
        batch_shape, dtype, input_name = model.layers[0].input_shape, model.layers[0].dtype, "input_layer"
    names = [layer.name for layer in model.layers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # Keras's Sequential refuses to load such a file: refused here, before it is written
        raise ValueError(
            f"Model {model.name!r} has layers sharing the names {repeated}: Keras loads a Sequential only when its "
            "layers' names are unique; give them distinct `name`s."
        )
    shapes = [tuple(batch_shape), *model._output_shapes()]
    layers = [input_layer_config(batch_shape, dtype, input_name)]
    layers += [layer_config(layer, shape) for layer, shape in zip(model.layers, shapes)]
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": dtype_policy(model.layers[0].dtype.name),
            "layers": layers,
            "build_input_shape": _json_shape(batch_shape),
        },
        "registered_name": None,
        "build_config": {"input_shape": _json_shape(batch_shape)},
        "compile_config": None,
    }


def _functional_config(model: Model) -> dict:
    in_model = {id(node) for node in model._nodes}
    # Keras numbers a layer's nodes among those of this model only (functional.py, node_reindexing_map).
    node_index = {}
    for op in model.operations:
        kept = [node for node in op.inbound_nodes if id(node) in in_model]
        node_index.update({id(node): i for i, node in enumerate(kept)})

    def history(tensor: SymbolicTensor) -> list:
        return [tensor.layer.name, node_index[id(tensor.node)], tensor.index]

    def argument(item):
        if isinstance(item, SymbolicTensor):
            return {
                "class_name": "__keras_tensor__",
                "config": {"shape": _json_shape(item.shape), "dtype": item.dtype.name, "keras_history": history(item)},
            }
        if isinstance(item, (list, tuple)):
            return [argument(each) for each in item]
        if isinstance(item, dict):
            return {key: argument(each) for key, each in item.items()}
        if isinstance(item, np.generic):
            return item.item()
        return item

    layers = []
    for op in model.operations:
        nodes = [node for node in op.inbound_nodes if id(node) in in_model]
        if isinstance(op, InputLayer):
            entry = input_layer_config(op.batch_shape, op.dtype, op.name)
        elif isinstance(op, Operation):
            kind = getattr(op, "KERAS_NAME", type(op).__name__)
            entry = {
                "module": _OPERATION_MODULES.get(kind, "keras.src.ops.numpy"),
                "class_name": kind,
                "config": {key: argument(value) for key, value in op.get_config().items()},
                "registered_name": kind,
            }
        else:
            entry = layer_config(op, _build_shape(nodes[0]) if nodes else None)
        entry["name"] = op.name
        entry["inbound_nodes"] = [
            {"args": argument(list(node.args)), "kwargs": argument(dict(node.kwargs))}
            for node in nodes
            if not node.is_input
        ]
        layers.append(entry)

    def ends(tensors, single):
        refs = [history(t) for t in tensors]
        return refs[0] if single else refs

    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": model.name,
            "trainable": True,
            "layers": layers,
            "input_layers": ends(model.inputs, model._single_input),
            "output_layers": ends(model.outputs, model._single_output),
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
        "compile_config": None,
    }


def _build_shape(node):
    """The ``input_shape`` of a layer's ``build_config``: the shape (or list of shapes) of its first call's
    first argument when that is its only tensor argument (a ``mask`` aside); else None (Keras builds the
    layer when the graph is called, as it does for a call with ``initial_state``)."""
    first = node.args[0] if node.args else None
    others = [value for key, value in node.kwargs.items() if key != "mask"] + list(node.args[1:])
    if any(isinstance(t, SymbolicTensor) for t in _leaves(others)):
        return None
    if isinstance(first, SymbolicTensor):
        return first.shape
    if isinstance(first, (list, tuple)) and first and all(isinstance(t, SymbolicTensor) for t in first):
        return [t.shape for t in first]
    return None


def _leaves(structure) -> list:
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _leaves(item)]
    if isinstance(structure, dict):
        return [leaf for item in structure.values() for leaf in _leaves(item)]
    return [structure]
