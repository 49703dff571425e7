"""Keras → ONNX without TensorFlow: ``to_onnx(model, path)`` writes an ONNX file of a scratch model, a
single layer, or a saved Keras file (read by :func:`scratch_rnn.load_model`), with the ``onnx`` package.

The usual route, tf2onnx, needs TensorFlow to convert. Here the model is the engine's, whose weights and
semantics are proven equal to Keras's by the harness; each layer is written as the ONNX ops that compute
what Keras computes (the rules are next to each emitter; the recurrent ones in
:mod:`scratch_rnn.ports.onnx_recurrent`), and the harness runs the exported file in ONNX Runtime as a
candidate (:mod:`scratch_rnn.testing.onnx_candidates`). What ONNX cannot express as Keras computes it
is refused by name with a ValueError starting ``to_onnx:``.

The graph: one input per model input (a ``Sequential``'s is ``x``; a functional model's keep their
``Input`` names; a single layer's are ``x``, then ``mask`` and ``initial_state_<k>`` when asked for),
the batch and every free axis dynamic (``batch``, ``time``, ...), outputs named after the layers that make
them. Masks flow as Keras 3.15 passes them (``Embedding(mask_zero=True)``, ``Masking``; in a functional
model a layer called with ``initial_state`` tensors gets no mask, as in Keras) and a masked recurrent layer
is a Scan with Keras's exact masked semantics. Every float computes in its layer's dtype: float32, or
float64 for a model loaded with ``dtype="float64"`` (where ONNX Runtime has no double kernel, for ``RNN``,
``LSTM``, ``GRU``, ``Conv`` and ``AveragePool``, the layer is written with ops it has: a Scan, gathered
windows).
"""

from __future__ import annotations

import inspect
import os

import numpy as np

from scratch_rnn.ports import onnx_recurrent as rec
from scratch_rnn.ports.onnx_graph import GraphBuilder, activation

#: The opset written unless another is asked for: ONNX Runtime 1.14 and later run it.
DEFAULT_OPSET = 17
#: The oldest opset accepted: the recurrent operators' current form (RNN, LSTM, GRU 14). The newest is what
#: the installed onnx knows; ONNX Runtime may know less (an error from it names the opset).
MIN_OPSET = 14

_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
_OPERATIONS = ("NotEqual", "Any", "ZerosLike", "OnesLike", "ConvertToTensor", "ExpandDims", "LogicalOr",
               "ConcatenateOp")  # fmt: skip
_CALL_OPTIONS = ("use_causal_mask", "return_attention_scores")
_MERGES = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Average": "Add", "Maximum": "Max", "Minimum": "Min"}


def to_onnx(
    model,
    path,
    opset: int = DEFAULT_OPSET,
    *,
    recurrent: str = "auto",
    mask: bool = False,
    initial_state: bool = False,
    rules=None,
):
    """Write ``model`` to ``path`` as an ONNX model; returns the ``onnx.ModelProto`` (checked by
    ``onnx.checker``).

    ``model``: a scratch ``Sequential``, functional ``Model``, a single built layer, or the path of a saved
    Keras model (``.keras``/``.h5``, read by :func:`scratch_rnn.load_model`). ``path`` None: nothing written.
    ``recurrent``: ``"auto"`` (default) writes each unmasked float32 LSTM and GRU as ONNX's LSTM or GRU
    operator (fused kernels in ONNX Runtime; their activations are approximations, see docs/ports.md) and a
    SimpleRNN as a Scan (ONNX Runtime's RNN operator is slower than the Scan, and less exact); ``"operators"``
    uses the RNN operator too; ``"scan"`` writes every recurrent layer as a Scan of Keras's step, with exact
    activations. Masked and
    float64 layers are a Scan either way. For a single recurrent layer (or ``Bidirectional``), ``mask=True``
    adds a ``mask (batch, time)`` bool input and ``initial_state=True`` one ``initial_state_<k> (batch, units)``
    input per state. ``rules`` is for the mutant gallery (a :class:`~scratch_rnn.ports.onnx_recurrent.Rules`
    with one rule broken).
    """
    import onnx

    if isinstance(model, (str, os.PathLike)):
        from scratch_rnn.saving import load_model

        model = load_model(os.fspath(model))
    if (
        isinstance(opset, bool)
        or not isinstance(opset, int)
        or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version()
    ):
        raise ValueError(
            f"Argument `opset` must be an int in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}] (the installed onnx's "
            f"newest), got {opset!r}."
        )
    if recurrent not in rec.RECURRENT_FORMS:
        raise ValueError(f"Argument `recurrent` must be one of {list(rec.RECURRENT_FORMS)}, got {recurrent!r}.")
    exporter = _Exporter(rules or rec.Rules(), opset, recurrent)
    kind = type(model).__name__
    if (mask or initial_state) and kind in ("Sequential", "Model"):
        raise ValueError("Arguments `mask` and `initial_state` of to_onnx apply to a single layer; a model's inputs "
                         "are its own.")  # fmt: skip
    if kind == "Sequential":
        graph_name = exporter.sequential(model)
    elif kind == "Model":
        graph_name = exporter.functional(model)
    elif hasattr(model, "weight_spec") and hasattr(model, "call"):
        graph_name = exporter.single(model, mask, initial_state)
    else:
        raise ValueError(
            f"Argument `model` must be a scratch Sequential, Model or layer, or a saved Keras model's path, got "
            f"{type(model).__name__}."
        )
    return _finish(exporter.b, graph_name, opset, path)


def layer_call_to_onnx(
    layer, inputs, masks, opset: int = DEFAULT_OPSET, *, recurrent: str = "auto", rules=None, options=None
):
    """One call of a built non-recurrent ``layer`` as an ONNX model: ``inputs`` one ``(dtype, shape)`` (inputs
    ``x``) or a list of them (a merge: ``x_0``, ``x_1``, ...), ``masks`` whether each has a ``mask`` (or
    ``mask_<i>``) input of its first two axes. What :mod:`scratch_rnn.testing.onnx_candidates` runs for the
    non-recurrent sweep; the mask is given to the layer as a functional graph would give it."""
    exporter = _Exporter(rules or rec.Rules(), opset, recurrent)
    b = exporter.b
    several = isinstance(inputs, list)
    specs, has_mask = (inputs, masks) if several else ([inputs], [masks])
    xs, ms = [], []
    for i, ((dtype, shape), m) in enumerate(zip(specs, has_mask)):
        suffix = f"_{i}" if several else ""
        dims = ["batch", *[f"d{k}" for k in range(1, len(shape))]]
        xs.append(b.add_input(f"x{suffix}", dtype, _dims((None, *shape[1:]), dims)))
        ms.append(b.add_input(f"mask{suffix}", "bool", dims[:2]) if m else None)
    outs, _ = exporter.layer(layer, xs if several else xs[0], ms if several else ms[0], None, options)
    for k, value in enumerate(outs):
        b.add_output(value, "output" if len(outs) == 1 else f"output_{k}")
    return _finish(b, layer.name, opset, None)


def _finish(b: GraphBuilder, graph_name: str, opset: int, path):
    """The model of ``b``'s graph: IR version for ``opset``, output shapes, checked, written to ``path``."""
    import onnx

    proto = onnx.helper.make_model(
        b.graph(graph_name), opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="scratch_rnn"
    )
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))  # what ORT can read
    proto = _with_output_shapes(proto)
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto


def _with_output_shapes(proto):
    """``proto`` with each output's rank (and known sizes) from ONNX's shape inference: the checker wants a
    shape on every graph output; the batch and time stay symbolic."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    for output, known in zip(proto.graph.output, inferred.graph.output):
        if known.type.tensor_type.HasField("shape"):
            output.type.CopyFrom(known.type)
        else:
            output.type.tensor_type.shape.SetInParent()  # pragma: no cover - unknown rank, still a shape field
    return proto


def _dims(shape, names) -> list:
    return [names[i] if d is None else int(d) for i, d in enumerate(shape)]


class _Exporter:
    def __init__(self, rules, opset: int, form: str):
        self.rules, self.form = rules, form
        self.b = GraphBuilder(opset=opset)

    # --- the three kinds of model -------------------------------------------------------------------
    def single(self, layer, mask: bool, initial_state: bool) -> str:
        if not layer.built:
            raise ValueError(f"to_onnx: layer {layer.name!r} is not built; build it or set its weights first.")
        shape = tuple(layer.input_shape)
        x = self.b.add_input("x", _input_dtype(layer), _dims(shape, ["batch", "time", "d2", "d3"]))
        recurrent = _kind(layer) in (*_RECURRENT, "Bidirectional")
        if (mask or initial_state) and not recurrent:
            raise ValueError(
                f"Arguments `mask` and `initial_state` of to_onnx apply to a recurrent layer, not {_kind(layer)}."
            )
        m = self.b.add_input("mask", "bool", ["batch", "time"]) if mask else None
        init = None
        if initial_state:
            inner = _inner_layers(layer)
            sizes = [s for sub in inner for s in sub.state_size]
            init = [self.b.add_input(f"initial_state_{k}", layer.dtype, ["batch", s]) for k, s in enumerate(sizes)]
        outs, _ = self.layer(layer, x, m, init)
        for k, value in enumerate(outs):
            self.b.add_output(value, "output" if len(outs) == 1 else f"output_{k}")
        return layer.name

    def sequential(self, model) -> str:
        model._check_built()
        first = model.layers[0]
        shape = model.input.batch_shape if model.input is not None else tuple(first.input_shape)
        dtype = model.input.dtype if model.input is not None else _input_dtype(first)
        x = self.b.add_input("x", dtype, _dims(shape, ["batch", "time", "d2", "d3", "d4"]))
        mask = None
        for layer in model.layers:
            outs, masks = self.layer(layer, x, mask, None)
            x, mask = outs[0], masks[0]
        self.b.add_output(x, "output")
        return model.name

    def functional(self, model) -> str:
        from scratch_rnn import symbolic

        if model.semantics.get("sequence_layers_pass_mask", True) is False:
            raise ValueError(
                f"to_onnx: model {model.name!r} follows Keras {model.keras_version}'s mask rules; exported are "
                "Keras 3.0-3.15's."
            )
        names, masks = {}, {}
        for tensor in model.inputs:
            dims = ["batch"] + [f"{tensor.name}_d{i}" for i in range(1, len(tensor.shape))]
            names[id(tensor)] = self.b.add_input(tensor.name, tensor.dtype, _dims(tensor.shape, dims))
            masks[id(tensor)] = None
        for node in model._nodes:
            if node.is_input:
                continue
            layer = node.layer
            args, kwargs = node.fill_in(names)
            if _kind(layer) in _OPERATIONS:  # the mask operations Keras records in a functional graph
                value = self.operation(layer, args, kwargs)
                names[id(node.outputs[0])], masks[id(node.outputs[0])] = value, None
                continue
            bound = inspect.signature(layer.call).bind(*node.args, **node.kwargs).arguments
            first = next(iter(bound.values()))
            first_mask = symbolic.map_structure(
                lambda t: masks.get(id(t)) if isinstance(t, symbolic.SymbolicTensor) else None, first
            )
            tensor_args = [k for k, v in bound.items() if symbolic._is_tensor_argument(v) and k != "mask"]
            explicit = None if node.auto_mask else kwargs.get("mask")
            if explicit is not None:
                mask = explicit
            elif len(tensor_args) == 1 and symbolic.takes_mask(layer):
                mask = first_mask
            else:
                mask = None
            filled = inspect.signature(layer.call).bind(*args, **kwargs).arguments
            x = next(iter(filled.values()))
            init = filled.get("initial_state")
            if init is not None and not isinstance(init, (list, tuple)):
                init = [init]
            options = {k: filled[k] for k in _CALL_OPTIONS if filled.get(k)}  # Attention's, when set
            outs, out_masks = self.layer(layer, list(x) if isinstance(x, (list, tuple)) else x, mask, init, options)
            for tensor, value, m in zip(node.outputs, outs, out_masks):
                names[id(tensor)], masks[id(tensor)] = value, m
        used = {i.name for i in self.b.inputs}
        for tensor in model.outputs:
            producer = tensor.node.layer.name
            index = f"_{tensor.index}" if len(tensor.node.outputs) > 1 else ""
            name = f"{producer}{index}"
            while name in used:  # a shared layer's second call, or an output that is an input
                name += "_"
            used.add(name)
            self.b.add_output(names[id(tensor)], name)
        return model.name

    def operation(self, op, args, kwargs) -> str:
        """One of the operations Keras records for masks (``NotEqual``, ``Any``, ...), as ONNX ops."""
        b, kind = self.b, _kind(op)
        if kind not in _OPERATIONS or kwargs:
            raise ValueError(f"to_onnx: operation {op.name!r} ({kind}) is not exported.")
        if kind == "NotEqual":
            x1, x2 = args
            if not isinstance(x1, str):
                x1, x2 = x2, x1
            if not isinstance(x2, str):
                x2 = b.const(np.asarray(x2, dtype=b.dtypes[x1]), "constant")
            return b.op("Not", [b.op("Equal", [x1, b.cast(x2, b.dtypes[x1])])])
        if kind == "Any":
            ints = b.cast(args[0], "int32")
            if op.axis is None:
                reduced = b.op("ReduceMax", [ints], keepdims=int(op.keepdims))
            else:
                reduced = b.reduce("ReduceMax", ints, op.axis if isinstance(op.axis, (list, tuple)) else [op.axis],
                                   keepdims=int(op.keepdims))  # fmt: skip
            return b.cast(reduced, "bool")
        if kind in ("ZerosLike", "OnesLike"):
            dtype = np.dtype(op.dtype or b.dtypes[args[0]])
            value = np.array([kind == "OnesLike"], dtype=dtype)
            from onnx import numpy_helper

            return b.op("ConstantOfShape", [b.op("Shape", [args[0]])], dtype=dtype,
                        value=numpy_helper.from_array(value))  # fmt: skip
        if kind == "ConvertToTensor":
            return b.op("Identity", [args[0] if op.dtype is None else b.cast(args[0], op.dtype)])
        if kind == "ExpandDims":
            return b.op("Unsqueeze", [args[0], b.ints([op.axis])])
        if kind == "LogicalOr":
            return b.op("Or", [b.cast(args[0], "bool"), b.cast(args[1], "bool")])
        return b.op("Concat", list(args[0]), axis=op.axis)  # ConcatenateOp

    # --- one layer ------------------------------------------------------------------------------------
    def layer(self, layer, x, mask, initial, options=None):
        """``(outputs, output masks)`` of ``layer`` called on ``x`` (a name, or a list for merges)."""
        kind = _kind(layer)
        if kind in ("Attention", "AdditiveAttention"):
            return self._attention(layer, x, mask, **(options or {}))
        emit = getattr(self, f"_{kind}", None)
        if emit is None:
            raise ValueError(f"to_onnx: layer {layer.name!r} ({kind}) has no ONNX export.")
        if initial is not None and kind not in (*_RECURRENT, "Bidirectional", "RNN"):
            raise ValueError(f"to_onnx: layer {layer.name!r} ({kind}) takes no initial_state.")
        if isinstance(mask, (list, tuple)) and all(m is None for m in mask):
            mask = None
        if options and kind not in ("Attention", "AdditiveAttention"):
            raise ValueError(f"to_onnx: layer {layer.name!r} ({kind}) takes no call options, got {sorted(options)}.")
        if kind in (*_RECURRENT, "Bidirectional", "RNN"):
            outs = emit(layer, x, mask, initial)
            seq_mask = mask if layer.return_sequences else None
            n_seq = 2 if kind == "Bidirectional" and layer.merge_mode is None else 1
            return outs, [seq_mask] * n_seq + [None] * (len(outs) - n_seq)
        outs, out_mask = emit(layer, x, mask)
        return outs, [out_mask]

    def _SimpleRNN(self, layer, x, mask, initial):
        rec.check_exportable(layer)
        return rec.emit(self.b, layer, x, mask, initial, self.rules, self.form)

    _LSTM = _GRU = _SimpleRNN

    def _Bidirectional(self, layer, x, mask, initial):
        b, fw, bw = self.b, layer.forward_layer, layer.backward_layer
        rec.check_exportable(fw)
        rec.check_exportable(bw)
        x = b.cast(x, layer.dtype)
        init_fw = init_bw = None
        if initial is not None:
            half = len(fw.state_size)
            init_fw, init_bw = list(initial[:half]), list(initial[half:])
        one_operator = (
            mask is None
            and not fw.go_backwards
            and bw.go_backwards
            and type(fw) is type(bw)
            and fw.get_config() == {**bw.get_config(), "name": fw.name, "go_backwards": False}
            and rec.use_operator(fw, False, self.form)
        )
        in_time_order = self.rules.bidirectional_backward_in_time_order
        if one_operator:  # one bidirectional operator: Y's backward half is already in input time order
            x_tm = b.op("Transpose", [b.cast(x, fw.dtype)], perm=[1, 0, 2])
            y, states = rec.operator(b, [fw, bw], x_tm, None if initial is None else [init_fw, init_bw], self.rules)
            split = [b.op("Split", [s, b.ints([1, 1])], outputs=2, axis=0) for s in states]  # per state: fw, bw
            fw_states = [b.op("Squeeze", [s[0], b.ints([0])]) for s in split]
            bw_states = [b.op("Squeeze", [s[1], b.ints([0])]) for s in split]
            if layer.return_sequences:
                y_fw, y_bw = b.op("Split", [y, b.ints([1, 1])], outputs=2, axis=1)  # (T, 1, B, U) each
                y_fw, y_bw = (
                    b.op("Transpose", [b.op("Squeeze", [v, b.ints([1])])], perm=[1, 0, 2]) for v in (y_fw, y_bw)
                )
                if not in_time_order:  # the planted bug: ONNX's backward Y taken for processing order, flipped
                    y_bw = rec.reverse_time(b, y_bw, 1)
            else:
                y_fw, y_bw = fw_states[0], bw_states[0]
        else:  # each direction on its own (a mask, float64 SimpleRNN, a custom backward layer)
            out_fw = rec.emit(b, fw, x, mask, init_fw, self.rules, self.form)
            out_bw = rec.emit(b, bw, x, mask, init_bw, self.rules, self.form)
            y_fw, fw_states = out_fw[0], out_fw[1:]
            y_bw, bw_states = out_bw[0], out_bw[1:]
            if layer.return_sequences and in_time_order:
                y_bw = rec.reverse_time(b, y_bw, 1)  # Keras flips the backward sequence back to time order
        y_fw, y_bw = b.cast(y_fw, layer.dtype), b.cast(y_bw, layer.dtype)
        mode = layer.merge_mode
        if mode == "concat":
            outputs = [b.op("Concat", [y_fw, y_bw], axis=-1)]
        elif mode == "sum":
            outputs = [b.op("Add", [y_fw, y_bw])]
        elif mode == "mul":
            outputs = [b.op("Mul", [y_fw, y_bw])]
        elif mode == "ave":
            outputs = [b.op("Div", [b.op("Add", [y_fw, y_bw]), b.scalar(2, y_fw)])]
        else:
            outputs = [y_fw, y_bw]
        if layer.return_state:
            outputs += [*fw_states, *bw_states]
        return outputs

    # --- the layers around the recurrent ones ----------------------------------------------------------
    def _Dense(self, layer, x, mask):
        """``activation(x @ kernel + bias)`` (MatMul, Add: Keras's order); the mask passes on."""
        b = self.b
        weights = layer.get_weights()
        y = b.op("MatMul", [b.cast(x, layer.dtype), b.const(weights[0], "kernel", layer.dtype)])
        if layer.use_bias:
            y = b.op("Add", [y, b.const(weights[1], "bias", layer.dtype)])
        return [activation(b, layer.activation.__name__, y)], mask

    def _Embedding(self, layer, x, mask):
        """``Gather(embeddings, ids)`` (ids cast to int64, as Keras casts to int); the mask is ``ids != 0``
        with ``mask_zero``, else none."""
        b = self.b
        ids = b.cast(x, "int64")
        y = b.op("Gather", [b.const(layer.get_weights()[0], "embeddings", layer.dtype), ids], axis=0)
        out_mask = b.op("Not", [b.op("Equal", [ids, b.ints(0)], dtype="bool")]) if layer.mask_zero else None
        return [y], out_mask

    def _Masking(self, layer, x, mask):
        """``keep = any(x != mask_value, axis=-1)``, ``y = where(keep, x, 0)``; ``keep`` is the mask."""
        b = self.b
        x = b.cast(x, layer.dtype)
        differs = b.op("Not", [b.op("Equal", [x, b.scalar(layer.mask_value, x)], dtype="bool")])
        keep = b.op("Cast", [b.reduce("ReduceMax", b.cast(differs, "int32"), [-1], keepdims=0)],
                    dtype="bool", to=9)  # fmt: skip
        y = b.op("Where", [b.op("Unsqueeze", [keep, b.ints([-1])]), x, b.scalar(0, x)])
        return [y], keep

    def _Activation(self, layer, x, mask):
        return [activation(self.b, layer.activation.__name__, self.b.cast(x, layer.dtype))], mask

    def _identity(self, layer, x, mask):
        return [self.b.op("Identity", [self.b.cast(x, layer.dtype)])], mask

    _Dropout = _SpatialDropout1D = _GaussianNoise = _GaussianDropout = _identity

    def _TimeDistributed(self, layer, x, mask):
        """The wrapped layer on ``x`` reshaped to ``(batch * time, ...)``, reshaped back; the mask passes on.
        The wrapped layer gets no mask, as in Keras 3."""
        b = self.b
        inner = layer.layer  # never a recurrent layer: the engine refuses one
        x = b.cast(x, layer.dtype) if b.dtypes[x].kind == "f" else x
        shape = b.op("Shape", [x])
        flat = b.op("Reshape", [x, b.op("Concat", [b.ints([-1]), b.op("Slice", [shape, b.ints([2]), b.ints([99])])],
                                                 axis=0)])  # fmt: skip
        outs, _ = self.layer(inner, flat, None, None)
        y = outs[0]
        y_shape = b.op("Shape", [y])
        back = b.op("Concat", [b.op("Slice", [shape, b.ints([0]), b.ints([2])]),
                               b.op("Slice", [y_shape, b.ints([1]), b.ints([99])])], axis=0)  # fmt: skip
        return [b.op("Reshape", [y, back])], mask

    def _merge(self, layer, xs, mask):
        """Elementwise in Keras's order (``((x1 + x2) + x3)``; Average divides the sum by n), broadcasting
        as Keras's merges do; the mask is the OR of the input masks, none if one input has none."""
        b = self.b
        kind = _kind(layer)
        xs = [b.cast(v, layer.dtype) for v in xs]
        masks = mask if isinstance(mask, (list, tuple)) else [None] * len(xs)
        if kind in ("Multiply", "Maximum", "Minimum") and any(m is not None for m in masks):
            y = self._masked_merge(kind, xs, [None if m is None else b.op("Unsqueeze", [m, b.ints([-1])])
                                              for m in masks])  # fmt: skip
        else:
            y = xs[0]
            for v in xs[1:]:
                y = b.op(_MERGES[kind], [y, v])
        if kind == "Average":
            y = b.op("Div", [y, b.scalar(len(xs), y)])
        out_mask = None
        if isinstance(mask, (list, tuple)) and all(m is not None for m in mask):
            out_mask = mask[0]
            for m in mask[1:]:
                out_mask = b.op("Or", [out_mask, m])
        return [y], out_mask

    _Add = _Subtract = _Multiply = _Average = _Maximum = _Minimum = _merge

    def _masked_merge(self, kind, xs, masks):
        """Keras's masked ``Multiply`` (a masked element counts as 1; zeros where every input is masked, when
        each has a mask) and ``Maximum``/``Minimum`` (``_apply_merge_op_and_or_mask``: a masked element takes the
        running result, a masked running result the element); ``masks`` are ``(B, T, 1)`` or None."""
        b = self.b
        y = keep = None
        if kind == "Multiply":
            every = all(m is not None for m in masks)
            for x, m in zip(xs, masks):
                if m is not None:
                    x = b.op("Where", [m, x, b.scalar(1, x)])
                    if every:
                        keep = m if keep is None else b.op("Or", [keep, m])
                y = x if y is None else b.op("Mul", [y, x])
            return b.op("Where", [keep, y, b.scalar(0, y)]) if every else y
        for i, (x, m) in enumerate(zip(xs, masks)):
            if i == 0:
                y, keep = x, m
                continue
            if m is not None:
                x = b.op("Where", [m, x, y])
            if keep is not None:
                y = b.op("Where", [keep, y, x])
            keep = b.op("Or", [keep, m]) if (m is not None and keep is not None) else None
            y = b.op(_MERGES[kind], [y, x])
        return y

    def _Concatenate(self, layer, xs, mask):
        """``Concat`` along ``axis``; the mask as Keras's ``Concatenate.compute_mask``: each input's mask
        broadcast over its features (all True for an unmasked input), joined along ``axis``, any over the last
        axis."""
        b = self.b
        xs = [b.cast(v, layer.dtype) for v in xs]
        y = b.op("Concat", xs, axis=layer.axis)
        if mask is None:
            return [y], None
        from onnx import numpy_helper

        full = []
        for x, m in zip(xs, mask):
            if m is None:
                true = numpy_helper.from_array(np.array([True]))
                full.append(b.op("ConstantOfShape", [b.op("Shape", [x])], dtype="bool", value=true))
            else:
                full.append(b.op("Expand", [b.op("Unsqueeze", [m, b.ints([-1])]), b.op("Shape", [x])]))
        joined = b.cast(b.op("Concat", full, axis=layer.axis), "int32")
        return [y], b.cast(b.reduce("ReduceMax", joined, [-1], keepdims=0), "bool")

    def _attention(self, layer, xs, mask, use_causal_mask=False, return_attention_scores=False):
        """Keras's ``Attention`` / ``AdditiveAttention`` at inference: the scores (``q @ k^T`` times ``scale``;
        ``concat``: ``concat_score_weight * sum(tanh(scale * (q + k)))``; additive: ``sum(scale * tanh(q + k))``),
        masked as Keras masks them (``scores - 1e9`` where the value mask or the causal mask forbids, Keras
        subtracts rather than overwrites), softmax over the value steps, ``weights @ v``, zeros at query-masked
        steps. Returns ``([out] or [out, weights], [query mask, None])``."""
        from scratch_rnn.attention import MASKED_SCORE_OFFSET

        b = self.b
        xs = [b.cast(v, layer.dtype) for v in xs]
        q, v = xs[0], xs[1]
        k = xs[2] if len(xs) > 2 else v
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None, None]
        q_mask, v_mask = (masks + [None, None])[:2]
        weights = dict(zip([s.keras_name for s in layer.weight_spec()], layer.get_weights()))
        if _kind(layer) == "Attention" and layer.score_mode == "dot":
            scores = b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 2, 1])])  # (B, Tq, Tv)
            if layer.use_scale:
                scores = b.op("Mul", [scores, b.const(weights["scale"], "scale", layer.dtype)])
        else:
            summed = b.op("Add", [b.op("Unsqueeze", [q, b.ints([2])]), b.op("Unsqueeze", [k, b.ints([1])])])
            if _kind(layer) == "Attention":  # concat
                if layer.use_scale:
                    summed = b.op("Mul", [b.const(weights["scale"], "scale", layer.dtype), summed])
                total = b.reduce("ReduceSum", b.op("Tanh", [summed]), [-1], keepdims=0)
                scores = b.op("Mul", [b.const(weights["concat_score_weight"], "concat_weight", layer.dtype), total])
            else:
                t = b.op("Tanh", [summed])  # (B, Tq, Tv, dim)
                if layer.use_scale:
                    t = b.op("Mul", [b.const(weights["scale"], "scale", layer.dtype), t])
                scores = b.reduce("ReduceSum", t, [-1], keepdims=0)
        allowed = None if v_mask is None else b.op("Unsqueeze", [b.cast(v_mask, "bool"), b.ints([1])])  # (B,1,Tv)
        if use_causal_mask:
            from onnx import numpy_helper

            one = numpy_helper.from_array(np.ones(1, np.float32))
            square = b.op("ConstantOfShape", [b.op("Shape", [scores], start=1, end=3)], dtype="float32", value=one)
            causal = b.cast(b.op("Unsqueeze", [b.op("Trilu", [square], upper=0), b.ints([0])]), "bool")  # j <= i
            allowed = causal if allowed is None else b.op("And", [allowed, causal])
        if allowed is not None:
            offset = b.op("Sub", [scores, b.scalar(MASKED_SCORE_OFFSET, scores)])
            scores = b.op("Where", [allowed, scores, offset])
        attn = b.op("Softmax", [scores], axis=-1)  # (B, Tq, Tv)
        out = b.op("MatMul", [attn, v])  # (B, Tq, dv)
        if q_mask is not None:
            keep = b.op("Unsqueeze", [b.cast(q_mask, "bool"), b.ints([-1])])
            out = b.op("Where", [keep, out, b.scalar(0, out)])
        outs = [out, attn] if return_attention_scores else [out]
        return outs, [q_mask] + [None] * (len(outs) - 1)

    def _Dot(self, layer, xs, mask):
        """Keras's ``Dot`` as the engine computes it: optional L2 normalisation along each axis
        (``x * min(1 / sqrt(sum(x^2)), 1 / epsilon)``), the dotted axes moved to ``(B, X..., K)`` and
        ``(B, K, Z...)``, one batched ``MatMul`` on ``(B, prod X, K) @ (B, K, prod Z)``, reshaped to
        ``(B, X..., Z...)`` (``(B, 1)`` for two vectors). No mask enters or leaves it."""
        from scratch_rnn.merging import EPSILON

        b = self.b
        shapes = [tuple(shape) for shape in layer.input_shape]
        a_x, a_z = layer._axes(shapes)
        rx, rz = len(shapes[0]), len(shapes[1])
        x, z = (b.cast(v, layer.dtype) for v in xs)
        if layer.normalize:
            cap = b.scalar(1 / EPSILON, x)

            def unit(v, axis):
                norm = b.reduce("ReduceSum", b.op("Mul", [v, v]), [axis])
                return b.op("Mul", [v, b.op("Min", [b.op("Reciprocal", [b.op("Sqrt", [norm])]), cap])])

            x, z = unit(x, a_x), unit(z, a_z)
        x = b.op("Transpose", [x], perm=[k for k in range(rx) if k != a_x] + [a_x])  # (B, X..., K)
        z = b.op("Transpose", [z], perm=[0, a_z] + [k for k in range(1, rz) if k != a_z])  # (B, K, Z...)
        sx, sz = b.op("Shape", [x]), b.op("Shape", [z])

        def dims(shape, start, end):
            return b.op("Slice", [shape, b.ints([start]), b.ints([end])])

        x3 = b.op("Reshape", [x, b.op("Concat", [dims(sx, 0, 1), b.ints([-1]), dims(sx, rx - 1, rx)], axis=0)])
        z3 = b.op("Reshape", [z, b.op("Concat", [dims(sz, 0, 2), b.ints([-1])], axis=0)])
        y = b.op("MatMul", [x3, z3])  # (B, prod X, prod Z)
        if rx + rz - 2 == 1:
            out = b.op("Concat", [dims(sx, 0, 1), b.ints([1])], axis=0)  # two vectors: (B, 1)
        else:
            out = b.op("Concat", [dims(sx, 0, rx - 1), dims(sz, 2, rz)], axis=0)  # (B, X..., Z...)
        return [b.op("Reshape", [y, out])], None

    def _RepeatVector(self, layer, x, mask):
        b = self.b
        y = b.op("Unsqueeze", [b.cast(x, layer.dtype), b.ints([1])])  # (B, 1, F)
        return [b.op("Tile", [y, b.ints([1, layer.n, 1])])], None

    def _Flatten(self, layer, x, mask):
        b = self.b
        x = b.cast(x, layer.dtype)
        ndim = len(layer.input_shape)
        if layer.data_format == "channels_first" and ndim > 2:  # (B, C, d1, ...) -> (B, d1, ..., C) first
            x = b.op("Transpose", [x], perm=[0, *range(2, ndim), 1])
        return [b.op("Flatten", [x], axis=1)], None

    def _Reshape(self, layer, x, mask):
        b = self.b
        return [b.op("Reshape", [b.cast(x, layer.dtype), b.ints([0, *layer.target_shape])])], None

    def _Permute(self, layer, x, mask):
        return [self.b.op("Transpose", [self.b.cast(x, layer.dtype)], perm=[0, *layer.dims])], None

    def _GlobalAveragePooling1D(self, layer, x, mask):
        """The mean over the steps; with a mask ``sum(where(mask, x, 0)) / sum(mask)`` (NaN if all masked)."""
        b = self.b
        x = b.cast(x, layer.dtype)
        axis = 1 if layer.data_format == "channels_last" else 2
        if mask is None:
            y = b.reduce("ReduceMean", x, [axis])
        else:
            feature_axis = 3 - axis  # the mask (B, T) broadcast over the features: (B, T, 1) or (B, 1, T)
            keep = b.op("Unsqueeze", [b.cast(mask, "bool"), b.ints([feature_axis])])
            total = b.reduce("ReduceSum", b.op("Where", [keep, x, b.scalar(0, x)]), [axis])
            y = b.op("Div", [total, b.reduce("ReduceSum", b.cast(keep, layer.dtype), [axis])])
        return [y if layer.keepdims else b.op("Squeeze", [y, b.ints([axis])])], None

    def _GlobalMaxPooling1D(self, layer, x, mask):
        b = self.b
        axis = 1 if layer.data_format == "channels_last" else 2
        y = b.reduce("ReduceMax", b.cast(x, layer.dtype), [axis])
        return [y if layer.keepdims else b.op("Squeeze", [y, b.ints([axis])])], None

    def _Conv1D(self, layer, x, mask):
        """ONNX ``Conv`` on ``(B, C, L)``: Keras's kernel ``(k, C/groups, F)`` is ONNX's ``W (F, C/groups, k)``
        (a transpose of the ONNX layout, made here); ``"same"`` padding is a ``Pad`` computed from the input's
        length as TensorFlow pads (the extra step on the right; ONNX Runtime refuses ``SAME_UPPER`` with a
        dilation), ``"causal"`` a left ``Pad`` of ``dilation * (k - 1)`` steps."""
        b = self.b
        weights = layer.get_weights()
        x = b.cast(x, layer.dtype)
        if layer.data_format == "channels_last":
            x = b.op("Transpose", [x], perm=[0, 2, 1])  # (B, C, L)
        attrs = {"dilations": [layer.dilation_rate], "strides": [layer.strides], "group": layer.groups,
                 "kernel_shape": [layer.kernel_size]}  # fmt: skip
        if layer.padding == "causal":
            left = layer.dilation_rate * (layer.kernel_size - 1)
            x = b.op("Pad", [x, b.ints([0, 0, left, 0, 0, 0])])
        elif layer.padding == "same":
            x = self._same_pad(x, layer.kernel_size, layer.strides, layer.dilation_rate, 0.0)
        if layer.dtype == np.float64:  # no double Conv in ONNX Runtime: the engine's im2col, one MatMul
            windows = self._windows(b.op("Transpose", [x], perm=[0, 2, 1]), layer.kernel_size, layer.strides,
                                    layer.dilation_rate)  # (B, L_out, k, C)  # fmt: skip
            g, k, f = layer.groups, layer.kernel_size, layer.filters
            if g == 1:
                patches = b.op("Reshape", [windows, b.ints([0, 0, -1])])  # (B, L_out, k*C)
                y = b.op("MatMul", [patches, b.const(weights[0].reshape(-1, f), "kernel", layer.dtype)])
            else:  # per group: (G, B*L_out, k*Cg) @ (G, k*Cg, Fg), filter = group * Fg + j, as the engine
                cg = weights[0].shape[1]
                grouped = b.op("Reshape", [windows, b.ints([0, 0, k, g, cg])])  # (B, L_out, k, G, Cg)
                grouped = b.op("Reshape", [b.op("Transpose", [grouped], perm=[3, 0, 1, 2, 4]), b.ints([g, -1, k * cg])])
                w = weights[0].reshape(k, cg, g, f // g).transpose(2, 0, 1, 3).reshape(g, k * cg, f // g)
                y = b.op("Transpose", [b.op("MatMul", [grouped, b.const(w, "kernel", layer.dtype)])], perm=[1, 0, 2])
                lead = b.op("Shape", [windows], start=0, end=2)  # (B, L_out)
                y = b.op("Reshape", [y, b.op("Concat", [lead, b.ints([f])], axis=0)])  # (B, L_out, F)
            if layer.use_bias:
                y = b.op("Add", [y, b.const(weights[1], "bias", layer.dtype)])
            if layer.data_format == "channels_first":
                y = b.op("Transpose", [y], perm=[0, 2, 1])
            return [activation(b, layer.activation.__name__, y)], None
        inputs = [x, b.const(np.transpose(weights[0], (2, 1, 0)), "kernel", layer.dtype)]
        if layer.use_bias:
            inputs.append(b.const(weights[1], "bias", layer.dtype))
        y = b.op("Conv", inputs, **attrs)  # (B, F, L_out)
        if layer.data_format == "channels_last":
            y = b.op("Transpose", [y], perm=[0, 2, 1])
        return [activation(b, layer.activation.__name__, y)], None

    def _windows(self, x, kernel: int, stride: int, dilation: int) -> str:
        """The windows of ``x (B, L, C)``: ``(B, L_out, kernel, C)``, window ``i`` the steps ``i * stride + j *
        dilation`` (a ``Gather`` of indices built from the length in the graph)."""
        b = self.b
        span = dilation * (kernel - 1) + 1
        steps = b.op("Squeeze", [b.op("Shape", [x], start=1, end=2), b.ints([0])])  # L, a 0-d int64
        count = b.op("Add", [b.op("Div", [b.op("Sub", [steps, b.ints(span)]), b.ints(stride)]), b.ints(1)])
        starts = b.op("Mul", [b.op("Range", [b.ints(0), count, b.ints(1)]), b.ints(stride)])  # (L_out,)
        taps = b.op("Add", [b.op("Unsqueeze", [starts, b.ints([1])]), b.ints(np.arange(kernel)[None] * dilation)])
        return b.op("Gather", [x, taps], axis=1)

    def _same_pad(self, x, kernel: int, stride: int, dilation: int, value: float) -> str:
        """``x (B, C, L)`` padded as TensorFlow's ``"same"``: ``total = max((ceil(L / s) - 1) * s + span - L, 0)``
        steps, ``total // 2`` on the left and the rest on the right, with ``value``; computed from ``L`` in the
        graph, so the time axis stays dynamic."""
        b = self.b
        steps = b.op("Shape", [x], start=2, end=3)  # (1,) int64
        s, span = b.ints([stride]), b.ints([dilation * (kernel - 1) + 1])
        out = b.op("Div", [b.op("Add", [steps, b.ints([stride - 1])]), s])  # ceil(L / s), integers
        total = b.op("Max", [b.op("Sub", [b.op("Add", [b.op("Mul", [b.op("Sub", [out, b.ints([1])]), s]), span]),
                                          steps]), b.ints([0])])  # fmt: skip
        left = b.op("Div", [total, b.ints([2])])
        right = b.op("Sub", [total, left])
        pads = b.op("Concat", [b.ints([0, 0]), left, b.ints([0, 0]), right], axis=0)
        return b.op("Pad", [x, pads, b.scalar(value, x)])

    def _window_pool(self, layer, x, op_type):
        """``MaxPool``/``AveragePool`` on ``(B, F, T)``. ``"same"``: an explicit pad (:meth:`_same_pad`), with
        -inf for the max; TensorFlow's average counts only the real steps of a window, so it is
        ``AveragePool(padded x) / AveragePool(padded ones)`` (both padded with zeros)."""
        b = self.b
        x = b.cast(x, layer.dtype)
        if layer.data_format == "channels_last":
            x = b.op("Transpose", [x], perm=[0, 2, 1])  # (B, F, T)
        attrs = {"kernel_shape": [layer.pool_size], "strides": [layer.strides]}
        if layer.padding != "same" and not (op_type == "AveragePool" and layer.dtype == np.float64):
            y = b.op(op_type, [x], **attrs)
        elif op_type == "MaxPool":
            y = b.op(op_type, [self._same_pad(x, layer.pool_size, layer.strides, 1, -np.inf)], **attrs)
        elif layer.dtype == np.float64:  # no double AveragePool in ONNX Runtime: sums of gathered windows
            from onnx import numpy_helper

            one = numpy_helper.from_array(np.ones(1, layer.dtype))
            ones = b.op("ConstantOfShape", [b.op("Shape", [x], start=0, end=3)], dtype=layer.dtype, value=one)
            if layer.padding == "same":
                x, ones = (self._same_pad(v, layer.pool_size, layer.strides, 1, 0.0) for v in (x, ones))

            def sums(v):  # (B, F, Tp) -> (B, T_out, F)
                windows = self._windows(b.op("Transpose", [v], perm=[0, 2, 1]), layer.pool_size, layer.strides, 1)
                return b.reduce("ReduceSum", windows, [2], keepdims=0)

            y = b.op("Transpose", [b.op("Div", [sums(x), sums(ones)])], perm=[0, 2, 1])  # (B, F, T_out)
        else:
            from onnx import numpy_helper

            one = numpy_helper.from_array(np.ones(1, layer.dtype))
            ones = b.op("ConstantOfShape", [b.op("Shape", [x])], dtype=layer.dtype, value=one)  # NaN-free
            total = b.op(op_type, [self._same_pad(x, layer.pool_size, layer.strides, 1, 0.0)], **attrs)
            count = b.op(op_type, [self._same_pad(ones, layer.pool_size, layer.strides, 1, 0.0)], **attrs)
            y = b.op("Div", [total, count])
        return [b.op("Transpose", [y], perm=[0, 2, 1]) if layer.data_format == "channels_last" else y], None

    def _MaxPooling1D(self, layer, x, mask):
        return self._window_pool(layer, x, "MaxPool")

    def _AveragePooling1D(self, layer, x, mask):
        return self._window_pool(layer, x, "AveragePool")

    def _LayerNormalization(self, layer, x, mask):
        """Keras 3's: ``inv = 1 / sqrt(var + eps)`` (times gamma), ``y = x * inv + (beta - mean * inv)``, with
        the mean and variance over ``axes``; the mask passes on."""
        b = self.b
        x = b.cast(x, layer.dtype)
        ndim = len(layer.input_shape)
        axes = [a % ndim for a in layer.axes]
        shape = [layer.input_shape[a] if a in axes else 1 for a in range(ndim)]
        weights = dict(zip([s.keras_name for s in layer.weight_spec()], layer.get_weights()))

        def broadcast(name):
            return b.const(np.reshape(weights[name], shape[1:]), name, layer.dtype)  # without the batch axis

        mean = b.reduce("ReduceMean", x, axes)
        centred = b.op("Sub", [x, mean])
        var = b.reduce("ReduceMean", b.op("Mul", [centred, centred]), axes)
        inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, b.scalar(layer.epsilon, x)])])])
        if layer.rms_scaling:
            return [b.op("Mul", [b.op("Mul", [x, inv]), broadcast("gamma")])], mask
        if layer.scale:
            inv = b.op("Mul", [inv, broadcast("gamma")])
        res = b.op("Neg", [b.op("Mul", [mean, inv])])
        if layer.center:
            res = b.op("Add", [res, broadcast("beta")])
        return [b.op("Add", [b.op("Mul", [x, inv]), res])], mask

    def _BatchNormalization(self, layer, x, mask):
        """At inference: ``x * inv + res`` with ``inv = gamma / sqrt(moving_variance + eps)`` and ``res = beta -
        moving_mean * inv`` computed here in the layer's dtype, as the engine computes them; the mask passes on."""
        b = self.b
        x = b.cast(x, layer.dtype)
        ndim = len(layer.input_shape)
        inv = 1 / np.sqrt(layer.moving_variance + layer.dtype.type(layer.epsilon))
        if layer.scale:
            inv = inv * layer.gamma
        res = -layer.moving_mean * inv
        if layer.center:
            res = layer.beta + res
        shape = [1] * (ndim - 1)
        shape[layer.axis % ndim - 1] = -1  # the channels along `axis` (the batch axis left out)
        y = b.op("Mul", [x, b.const(inv.reshape(shape), "inv", layer.dtype)])
        return [b.op("Add", [y, b.const(res.reshape(shape), "res", layer.dtype)])], mask

    def _RNN(self, layer, x, mask, initial):
        """Keras's ``RNN(cell)``: the cell's layer with the RNN's loop options; stacked cells as a chain of
        layers (every one but the last returning its sequence, each given the mask: a masked step keeps every
        cell's state, which is what the one loop does). States come out flat. ``go_backwards`` on stacked cells
        reverses the input (and mask) once, before the chain, which then runs forwards: the one loop's
        processing order, its sequence returned in that order as Keras returns it. (Keras's unrolled loop with
        ``zero_output_for_mask`` zeros by the mask in input order: that one combination is refused.)"""
        from scratch_rnn.cells import StackedRNNCells

        cells = layer.cell.cells if isinstance(layer.cell, StackedRNNCells) else [layer.cell]
        backwards_once = len(cells) > 1 and layer.go_backwards
        if backwards_once and layer.unroll and layer.zero_output_for_mask and mask is not None:
            raise ValueError(
                f"to_onnx: RNN {layer.name!r} with stacked cells, go_backwards, unroll and zero_output_for_mask on a "
                "masked input is not exported (Keras zeros the reversed sequence by the mask in input order)."
            )
        if layer.stateful:
            raise ValueError(
                f"to_onnx: layer {layer.name!r} has stateful=True; an ONNX graph keeps no state between runs "
                "(pass the states as initial_state inputs instead)."
            )
        x = self.b.cast(x, layer.dtype)
        if backwards_once:
            x = rec.reverse_time(self.b, x, 1)
            mask = None if mask is None else rec.reverse_time(self.b, mask, 1)
        sizes = [len(cell.layer.state_size) for cell in cells]
        outputs, states, k = x, [], 0
        for i, cell in enumerate(cells):
            last = i == len(cells) - 1
            clone = type(cell.layer)(**{
                **cell.layer.get_config(),
                "return_sequences": layer.return_sequences if last else True,
                "return_state": True,
                "go_backwards": layer.go_backwards and not backwards_once,
                "unroll": layer.unroll and last,
                "zero_output_for_mask": layer.zero_output_for_mask and last,
            })  # fmt: skip
            clone.build(cell.layer.input_shape, initialize=False)
            clone.set_weights(cell.layer.get_weights())
            init = None if initial is None else list(initial[k : k + sizes[i]])
            k += sizes[i]
            outs = rec.emit(self.b, clone, outputs, mask, init, self.rules, self.form)
            outputs = outs[0]
            states += outs[1:]
        outputs = self.b.cast(outputs, layer.dtype)
        return [outputs, *(self.b.cast(s, layer.dtype) for s in states)] if layer.return_state else [outputs]


def _kind(layer) -> str:
    return type(layer).__name__


def _inner_layers(layer) -> list:
    return [layer.forward_layer, layer.backward_layer] if _kind(layer) == "Bidirectional" else [layer]


def _input_dtype(layer):
    return np.dtype("int32") if _kind(layer) == "Embedding" else layer.dtype
