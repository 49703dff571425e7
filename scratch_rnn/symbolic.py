"""The functional graph's pieces: symbolic tensors and the nodes that connect them (Keras's ``KerasTensor`` and
``Node``), and the symbolic call :meth:`scratch_rnn.layer.Layer.__call__` makes when an argument is symbolic.

A :class:`SymbolicTensor` holds a shape (``None`` for a size not known yet: the batch, often the timesteps), a
dtype, and its history: the :class:`Node` that made it and its index among that node's outputs. A node records
one call of a layer: the arguments as given (symbolic tensors, possibly nested in lists such as
``initial_state=[h, c]``, and constants), and the output tensors. ``scratch_rnn.Model`` walks the nodes back
from its outputs and runs them in order.

Masks are recorded as Keras 3 records them: a symbolic tensor carries the symbolic mask its layer computed
(``keras_mask``), and a layer called on one tensor with a mask, whose ``call`` takes ``mask``, gets it as an
explicit ``mask=`` argument of its node. A layer that *makes* a mask (``Embedding(mask_zero=True)``,
``Masking``) makes it with operations (Keras's ``NotEqual``, ``Any``), which become nodes too; the module
that defines them registers them in :data:`MASK_MAKERS` (this module imports no layer).

This module sits below :mod:`scratch_rnn.layer` and imports NumPy only.
"""

from __future__ import annotations

import inspect

import numpy as np

#: ``{layer class: fn(layer, inputs) -> symbolic mask or None}`` for layers that compute a new mask from their
#: inputs; filled by :mod:`scratch_rnn.models`. Any other layer's ``compute_mask`` is called on the symbolic
#: values themselves (it passes a mask on or drops it, whatever they are).
MASK_MAKERS: dict[type, object] = {}


class SymbolicTensor:
    """A placeholder for an array in a functional graph: ``shape`` (None for unknown sizes), ``dtype``, and the
    :class:`Node` (``node``) and output index (``index``) that make it."""

    def __init__(self, shape, dtype, node: Node | None = None, index: int = 0, name: str | None = None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index
        self.name = name
        self.keras_mask: SymbolicTensor | None = None  # the symbolic mask its layer computed, if any

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def layer(self):
        """The layer (or operation) whose call made this tensor."""
        return self.node.layer if self.node is not None else None

    @property
    def history(self) -> tuple:
        """Keras's ``keras_history``: ``(layer name, node index in the layer's inbound nodes, tensor index)``."""
        return (self.layer.name, self.layer.inbound_nodes.index(self.node), self.index)

    def __repr__(self):
        made_by = f", made by {self.layer.name!r}" if self.node is not None else ""
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype.name}{made_by}>"


class Node:
    """One call of a layer in a functional graph.

    ``args``/``kwargs`` are the call's arguments as given (symbolic tensors, nested lists of them, constants);
    ``input_tensors`` their symbolic tensors in Keras's order (the positional arguments, then the keyword
    arguments by sorted name); ``outputs`` the tensors the call returned. The node adds itself to
    ``layer.inbound_nodes``.
    """

    def __init__(self, layer, args: tuple, kwargs: dict, outputs: list[SymbolicTensor]):
        self.layer = layer
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.outputs = list(outputs)
        self.auto_mask = False  # whether kwargs["mask"] was recorded from the input's mask (not given)
        self.input_tensors = [t for t in flatten([list(self.args), [self.kwargs[k] for k in sorted(self.kwargs)]])]
        for i, tensor in enumerate(self.outputs):
            tensor.node, tensor.index = self, i
        if not hasattr(layer, "inbound_nodes"):
            layer.inbound_nodes = []
        layer.inbound_nodes.append(self)

    @property
    def is_input(self) -> bool:
        """Whether this is an ``Input``'s node (no arguments: the graph starts here)."""
        return not self.args and not self.kwargs

    @property
    def parent_nodes(self) -> list[Node]:
        return [t.node for t in self.input_tensors if t.node is not None]

    def fill_in(self, values: dict) -> tuple[tuple, dict]:
        """The call's arguments with each symbolic tensor replaced by ``values[id(tensor)]``."""

        def fill(item):
            if isinstance(item, SymbolicTensor):
                return values[id(item)]
            if isinstance(item, (list, tuple)):
                return type(item)(fill(each) for each in item)
            if isinstance(item, dict):
                return {key: fill(each) for key, each in item.items()}
            return item

        return fill(self.args), fill(self.kwargs)

    def __repr__(self):
        return f"<Node of {self.layer.name!r}: {len(self.input_tensors)} inputs, {len(self.outputs)} outputs>"


def flatten(structure) -> list:
    """The leaves of nested lists, tuples and dicts (dicts by sorted key, as Keras's ``tree.flatten``) that are
    symbolic tensors."""
    if isinstance(structure, SymbolicTensor):
        return [structure]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return []


def map_structure(fn, structure):
    """``fn`` applied to every leaf of nested lists and tuples (the structure kept)."""
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, item) for item in structure)
    return fn(structure)


def any_symbolic(args, kwargs) -> bool:
    """Whether any argument, at any depth, is a :class:`SymbolicTensor`. Arrays and None answer at once (the
    engine's every call asks: measured 1.3 us a call when walked, a third of a small layer call's overhead)."""
    if all(type(a) is np.ndarray or a is None for a in args) and all(
        type(v) is np.ndarray or v is None for v in kwargs.values()
    ):
        return False
    return bool(flatten([list(args), kwargs]))


def call_parameters(layer) -> list[str]:
    """The names of the parameters of ``layer.call``."""
    return list(inspect.signature(layer.call).parameters)


def takes_mask(layer) -> bool:
    """Whether Keras would pass ``layer`` a mask: its Keras ``call`` has a ``mask`` parameter. A layer whose
    own ``call`` accepts one (for ``Sequential``) where Keras's does not says so with ``call_takes_mask = False``."""
    if not getattr(layer, "call_takes_mask", True):
        return False
    return "mask" in call_parameters(layer)


def _is_tensor_argument(value) -> bool:
    if isinstance(value, SymbolicTensor):
        return True
    leaves = flatten(value) if isinstance(value, (list, tuple)) else []
    return bool(leaves) and len(leaves) == len(_leaves(value))


def _leaves(structure) -> list:
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _leaves(item)]
    return [structure]


def symbolic_call(layer, args: tuple, kwargs: dict):
    """``layer(*args, **kwargs)`` on symbolic tensors: build the layer on the input shapes, record a
    :class:`Node`, and return the symbolic output(s): one tensor, or a list (``return_state``, a
    ``Bidirectional`` with ``merge_mode=None``).

    The mask is recorded as Keras 3 records it (``Layer.__call__``, step 6): when the call has exactly one
    tensor argument, no ``mask`` given and a ``mask`` parameter, the first argument's symbolic mask becomes the
    node's ``mask=`` argument (Keras stores it only when its call converted nothing: a single positional
    tensor of the layer's dtype, no keyword arguments).
    """
    parameters = call_parameters(layer)
    if "mask" in kwargs and "mask" not in parameters:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) was given `mask=`, but its call takes no `mask` argument."
        )
    try:
        bound = inspect.signature(layer.call).bind(*args, **kwargs)
    except TypeError as err:
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) cannot take these arguments: {err}") from None
    arguments = bound.arguments
    first = next(iter(arguments.values()))
    if not flatten(first):
        raise ValueError(
            f"The first argument of layer {layer.name!r} must be a symbolic tensor (or a list of them) when "
            f"another argument is one, got {type(first).__name__}."
        )
    tensor_args = {name: value for name, value in arguments.items() if _is_tensor_argument(value)}
    first_mask = map_structure(lambda t: t.keras_mask if isinstance(t, SymbolicTensor) else None, first)
    given_mask = kwargs.get("mask")
    record_kwargs = dict(kwargs)
    if (
        len(tensor_args) == 1
        and takes_mask(layer)
        and given_mask is None
        and not kwargs
        and len(args) == 1
        and isinstance(first, SymbolicTensor)
        and first.dtype == getattr(layer, "dtype", None)
        and first.keras_mask is not None
    ):
        record_kwargs["mask"] = first_mask
    previous_mask = given_mask if given_mask is not None else first_mask

    input_shape = map_structure(lambda t: t.shape if isinstance(t, SymbolicTensor) else None, first)
    if hasattr(layer, "ensure_built"):
        layer.ensure_built(input_shape)
    output_shape = layer.compute_output_shape(input_shape)
    several = isinstance(output_shape, list)
    shapes = output_shape if several else [output_shape]
    dtypes = output_dtypes(layer, len(shapes))
    outputs = [SymbolicTensor(shape, dtype, name=layer.name) for shape, dtype in zip(shapes, dtypes)]
    node = Node(layer, args, record_kwargs, outputs)
    node.auto_mask = "mask" in record_kwargs and "mask" not in kwargs  # recorded here, not given by the caller

    if getattr(layer, "supports_masking", True):
        maker = next((fn for cls, fn in MASK_MAKERS.items() if isinstance(layer, cls)), None)
        masks = maker(layer, first) if maker is not None else layer.compute_mask(first, previous_mask)
        if not several:
            masks = [masks]
        elif not isinstance(masks, list):
            masks = [masks] + [None] * (len(outputs) - 1)
        for tensor, mask in zip(outputs, masks):
            tensor.keras_mask = mask if isinstance(mask, SymbolicTensor) else None
    return outputs if several else outputs[0]


def output_dtypes(layer, n: int) -> list:
    """The dtypes of a layer's ``n`` outputs: ``layer.output_dtypes(n)`` if it has one, else its dtype."""
    if hasattr(layer, "output_dtypes"):
        return layer.output_dtypes(n)
    return [layer.dtype] * n
