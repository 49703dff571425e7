"""The ONNX graph under construction: nodes, initializers, names and dtypes, and Keras's activations as ONNX ops.

:class:`GraphBuilder` is the one place that calls ``onnx.helper``; the layer emitters
(:mod:`scratch_rnn.ports.onnx_recurrent`, :mod:`scratch_rnn.ports.to_onnx`) speak in value names: each
method takes the names of its inputs and returns the name of its output, and the builder remembers every
value's element type (so a ``Cast`` is added only where the dtype changes, as the engine casts). A Scan
body is a child builder (:meth:`GraphBuilder.body`): its constants live in the outer graph, which ONNX
lets a subgraph read by name.
"""

from __future__ import annotations

import itertools

import numpy as np

#: The element types the exporter writes; anything else is refused by name.
ONNX_TYPES = {"float32": 1, "float64": 11, "int32": 6, "int64": 7, "bool": 9}


def onnx_type(dtype) -> int:
    name = np.dtype(dtype).name
    if name not in ONNX_TYPES:
        raise ValueError(f"to_onnx: dtype {name!r} is not exported; supported: {sorted(ONNX_TYPES)}.")
    return ONNX_TYPES[name]


#: The ops whose output type is not their first input's.
_OUTPUT_DTYPE = {"Shape": "int64", "Equal": "bool", "Greater": "bool", "Less": "bool"}


class GraphBuilder:
    """Nodes and initializers of one ONNX graph (or Scan body), each value named and typed."""

    def __init__(self, parent: GraphBuilder | None = None, opset: int = 17):
        from onnx import helper  # lazily: `import scratch_rnn` never imports onnx

        self.helper = helper
        self.parent = parent
        self.root = self if parent is None else parent.root
        self.opset = opset if parent is None else parent.opset
        self._counter = itertools.count() if parent is None else parent._counter
        self.nodes, self.initializers = [], []
        self.inputs, self.outputs = [], []
        self.dtypes: dict[str, np.dtype] = {} if parent is None else parent.dtypes  # names are unique: shared

    def fresh(self, hint: str) -> str:
        return f"{hint}__{next(self._counter)}"

    def body(self) -> GraphBuilder:
        """A child builder for a Scan body: it shares names and dtypes, its constants go to the root graph."""
        return GraphBuilder(self)

    # --- values -------------------------------------------------------------------------------
    def const(self, array, hint: str = "const", dtype=None) -> str:
        """An initializer holding ``array`` (copied, in ``dtype`` if given); its name."""
        from onnx import numpy_helper

        array = np.array(array, dtype=dtype) if dtype is not None else np.array(array)
        name = self.fresh(hint)
        self.root.initializers.append(numpy_helper.from_array(array, name))
        self.dtypes[name] = array.dtype
        return name

    def ints(self, values, hint: str = "ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def add_input(self, name: str, dtype, shape) -> str:
        self.inputs.append(self.helper.make_tensor_value_info(name, onnx_type(dtype), shape))
        self.dtypes[name] = np.dtype(dtype)
        return name

    def add_output(self, value: str, name: str | None = None, shape=None) -> str:
        """Declare ``value`` a graph output, renamed ``name`` through an ``Identity`` when given. Without
        ``shape`` its rank is left to :meth:`infer_outputs`."""
        if name is not None and name != value:
            value = self.op("Identity", [value], out=name)
        self.outputs.append(self.helper.make_tensor_value_info(value, onnx_type(self.dtypes[value]), shape))
        return value

    def op(self, op_type: str, inputs, *, outputs: int = 1, dtype=None, out: str | None = None, **attrs):
        """Append one node; its output name (a list when ``outputs > 1``). The outputs take ``dtype``, else the
        first input's (``Cast`` and comparisons pass theirs)."""
        names = [out] if out is not None else [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, name=self.fresh(op_type), **attrs))
        if dtype is None and op_type in _OUTPUT_DTYPE:
            dtype = _OUTPUT_DTYPE[op_type]
        typed = inputs[1:] if op_type == "Where" else inputs  # Where(condition, x, y): x's type
        kind = np.dtype(dtype) if dtype is not None else self.dtypes.get(next((i for i in typed if i), ""))
        for name in names:
            self.dtypes[name] = kind
        return names if outputs > 1 else names[0]

    def reduce(self, op_type: str, x: str, axes, keepdims: int = 1) -> str:
        """A Reduce op over ``axes``: an input from opset 18 (ReduceSum: 13), an attribute before."""
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.op(op_type, [x, self.ints(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=list(axes), keepdims=keepdims)

    def cast(self, value: str, dtype) -> str:
        """``value`` in ``dtype``: the value itself when it already is."""
        if self.dtypes.get(value) == np.dtype(dtype):
            return value
        return self.op("Cast", [value], dtype=dtype, to=onnx_type(dtype))

    def scalar(self, value, like: str, hint: str = "scalar") -> str:
        """A 0-d constant in ``like``'s dtype."""
        return self.const(np.asarray(value, dtype=self.dtypes[like]), hint)

    def graph(self, name: str):
        return self.helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)


# --- activations ----------------------------------------------------------------------------------

#: Keras activation name -> ONNX activation inside the RNN/LSTM/GRU operators (name, alpha, beta). Keras 3's
#: ``hard_sigmoid`` is ``relu6(x + 3) / 6`` (keras/src/activations/activations.py), i.e. HardSigmoid with
#: alpha 1/6 and beta 1/2 (ONNX's default alpha 0.2 is Keras 2's); ``linear`` is ``Affine(1, 0)``.
RNN_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5),
    "linear": ("Affine", 1.0, 0.0),
}


def activation(b: GraphBuilder, name: str, x: str, hard_sigmoid_alpha: float = 1 / 6) -> str:
    """Keras's activation ``name`` applied to ``x`` as plain ONNX ops, in ``x``'s dtype.

    ``hard_sigmoid`` is written as Keras 3 computes it, ``clip(x + 3, 0, 6) / 6`` (``hard_sigmoid_alpha``
    other than 1/6 is a planted bug's ``clip(alpha x + 0.5, 0, 1)``); ``softmax`` over the last axis.
    """
    if name == "linear":
        return x
    if name in ("tanh", "relu"):
        return b.op({"tanh": "Tanh", "relu": "Relu"}[name], [x])
    if name == "sigmoid":  # the engine's form: ONNX Runtime's Sigmoid is off by up to 1.4e-7 absolute (measured)
        e = b.op("Exp", [b.op("Neg", [b.op("Abs", [x])])])  # exp(-|x|), never overflows
        one_plus = b.op("Add", [b.scalar(1, x), e])
        positive = b.op("Not", [b.op("Less", [x, b.scalar(0, x)])])
        return b.op("Where", [positive, b.op("Reciprocal", [one_plus]), b.op("Div", [e, one_plus])])
    if name == "hard_sigmoid":
        if hard_sigmoid_alpha != 1 / 6:
            scaled = b.op("Add", [b.op("Mul", [x, b.scalar(hard_sigmoid_alpha, x)]), b.scalar(0.5, x)])
            return b.op("Clip", [scaled, b.scalar(0, x), b.scalar(1, x)])
        clipped = b.op("Clip", [b.op("Add", [x, b.scalar(3, x)]), b.scalar(0, x), b.scalar(6, x)])
        return b.op("Div", [clipped, b.scalar(6, x)])
    if name == "softmax":
        return b.op("Softmax", [x], axis=-1)
    raise ValueError(f"to_onnx: activation {name!r} has no ONNX mapping; supported: {sorted(RNN_ACTIVATIONS)}.")
