"""``Input``, ``Sequential`` and the functional ``Model``: layers in a stack or a graph, with Keras's call,
masks, weights and ``summary()``."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from scratch_rnn import parallel, symbolic
from scratch_rnn import rnn as _rnn
from scratch_rnn.attention import Attention
from scratch_rnn.checks import DTYPES, as_numeric, boolean, positive_int
from scratch_rnn.core_layers import Embedding, Masking
from scratch_rnn.layer import BUILD_LOCK, Layer, auto_name, unchanged_on_error
from scratch_rnn.merging import Concatenate, Dot, _Merge
from scratch_rnn.symbolic import Node, SymbolicTensor
from scratch_rnn.wrappers import Bidirectional, TimeDistributed


class NoWeights:
    """What a graph node without weights (an :class:`InputLayer`, an :class:`Operation`) answers to a model's
    weight and parameter queries."""

    def weight_spec(self):
        return []

    def get_weights(self):
        return []

    def set_weights(self, weights):
        if len(weights):
            raise ValueError(
                f"Argument `weights` for {type(self).__name__} {self.name!r} must be empty (it has no weights), "
                f"got {len(weights)} arrays."
            )

    def count_params(self) -> int:
        return 0

    def count_trainable_params(self) -> int:
        return 0


class InputLayer(NoWeights):
    """The layer behind an :class:`Input` (Keras's ``InputLayer``): no weights, no computation."""

    supports_masking = True

    def __init__(self, batch_shape: tuple, dtype, name: str):
        self.batch_shape = batch_shape
        self.dtype = np.dtype(dtype)
        self.name = name
        self.built = True
        self.trainable = True
        self.inbound_nodes: list[Node] = []

    def __repr__(self):
        return f"<InputLayer name={self.name!r}, batch_shape={self.batch_shape}>"


class Input(SymbolicTensor):
    """The input of a model, a symbolic tensor: ``shape`` without the batch, or the full ``batch_shape``.

    ``Input(shape=(2, 10), batch_size=8)`` is ``Input(batch_shape=(8, 2, 10))``. ``dtype`` is float32 (default),
    float64, or an integer type for token ids (``"int32"``). It starts a :class:`Model` (``Model(inputs, outputs)``)
    or a :class:`Sequential` (its first entry). Its layer, an :class:`InputLayer`, is ``input.layer``.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
        if (shape is None) == (batch_shape is None):
            raise ValueError("Give exactly one of `shape` and `batch_shape` to Input.")
        given, argument = (batch_shape, "batch_shape") if batch_shape is not None else (shape, "shape")
        if not isinstance(given, (tuple, list)):
            raise ValueError(
                f"Argument `{argument}` of Input must be a tuple of non-negative ints or None, got {given!r}."
            )
        if batch_shape is not None:
            if batch_size is not None:
                raise ValueError("Give `batch_size` only with `shape`; `batch_shape` already includes it.")
            full = tuple(batch_shape)
        else:
            if batch_size is not None:
                positive_int(batch_size, "batch_size")
            full = (batch_size, *tuple(shape))
        if not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0) for d in full
        ):
            raise ValueError(
                f"Argument `{argument}` of Input must hold non-negative ints or None, got {tuple(given)!r}."
            )
        dtype = _input_dtype(dtype)
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Received an invalid value for argument `name`, expected a string, got {name!r:.80}.")
        name = name if name is not None else auto_name("InputLayer")
        super().__init__(full, dtype, name=name)
        Node(InputLayer(self.shape, dtype, name), (), {}, [self])

    @property
    def batch_shape(self) -> tuple:
        return self.shape

    def __repr__(self):
        return f"Input(batch_shape={self.batch_shape}, dtype={self.dtype.name!r}, name={self.name!r})"


def _input_dtype(dtype) -> np.dtype:
    """An Input's dtype: a float one a layer computes in, or an integer one (token ids); bool for masks."""
    if dtype is None:
        return np.dtype("float32")
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.kind not in "biu" and resolved.name not in DTYPES:
        raise ValueError(
            f"Received an invalid value for argument `dtype`, expected one of {list(DTYPES)}, an integer type "
            f"or 'bool', got {dtype!r}."
        )
    return resolved


#: The reader of Keras weight files behind ``model.load_weights``: :func:`scratch_rnn.saving.load_weights`,
#: set by that module (it sits above the models in the dependency order, so the models do not import it).
WEIGHTS_READER = None

#: The writers behind ``model.save`` and ``model.save_weights``: :func:`scratch_rnn.saving.save_model` and
#: :func:`scratch_rnn.saving.save_weights`, set by that module, as :data:`WEIGHTS_READER`.
MODEL_WRITER = None
WEIGHTS_WRITER = None


class LayerStack:
    """What :class:`Sequential` and :class:`Model` share: their layers' weights, in Keras's order (``layers``),
    got, set (all or nothing) and loaded from a Keras weights file."""

    def _check_built(self) -> None:
        """Raise if the model cannot take weights yet (a :class:`Sequential` without an Input, never called)."""

    def _weighted_layers(self) -> list:
        return [layer for layer in self.layers if isinstance(layer, Layer)]

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self._weighted_layers() for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Every layer's weights, in Keras's order; all or nothing, like a layer's ``set_weights``."""
        if not isinstance(weights, (list, tuple)):
            raise ValueError(f"Argument `weights` must be a list of arrays, got {type(weights).__name__}.")
        weights = list(weights)
        self._check_built()
        layers = self._weighted_layers()
        counts = [len(layer.weight_spec()) for layer in layers]
        if len(weights) != sum(counts):
            raise ValueError(
                f"Argument `weights` for model {self.name!r} must hold {sum(counts)} arrays, got {len(weights)}."
            )
        start = 0
        with BUILD_LOCK, contextlib.ExitStack() as guard:
            for layer in layers:
                guard.enter_context(unchanged_on_error(layer))
            for layer, n in zip(layers, counts):
                layer.set_weights(weights[start : start + n])
                start += n

    def load_weights(self, filepath, **options) -> None:
        """Set the weights from a Keras weights file (``.weights.h5``, or a legacy ``.h5``), all or nothing:
        :func:`scratch_rnn.saving.load_weights`, which reads files and sits above the models (so it is
        reached through :data:`WEIGHTS_READER`, which it sets when the package is imported)."""
        if WEIGHTS_READER is None:  # pragma: no cover - scratch_rnn/__init__.py imports saving
            raise ImportError("model.load_weights needs scratch_rnn.saving: `import scratch_rnn` first.")
        WEIGHTS_READER(self, filepath, **options)

    def save(self, filepath) -> None:
        """Write a Keras 3 ``.keras`` file that real Keras loads (:func:`scratch_rnn.saving.save_model`,
        reached through :data:`MODEL_WRITER`)."""
        if MODEL_WRITER is None:  # pragma: no cover - scratch_rnn/__init__.py imports saving
            raise ImportError("model.save needs scratch_rnn.saving: `import scratch_rnn` first.")
        MODEL_WRITER(self, filepath)

    def save_weights(self, filepath) -> None:
        """Write a Keras 3 ``.weights.h5`` file (:func:`scratch_rnn.saving.save_weights`, through
        :data:`WEIGHTS_WRITER`)."""
        if WEIGHTS_WRITER is None:  # pragma: no cover - scratch_rnn/__init__.py imports saving
            raise ImportError("model.save_weights needs scratch_rnn.saving: `import scratch_rnn` first.")
        WEIGHTS_WRITER(self, filepath)


class Sequential(LayerStack):
    """A linear stack of layers; an optional leading :class:`Input` builds every layer at once.

    Masks flow as in Keras: each layer receives the mask its predecessor computes
    (a recurrent layer passes its mask on only with ``return_sequences``).
    """

    def __init__(self, layers=(), name=None):
        self.name = name if name is not None else auto_name("Sequential")
        self.input: Input | None = None
        self.layers: list[Layer] = []
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, Input):
            if self.layers or self.input is not None:
                raise ValueError("An Input can only be the first entry of a Sequential model.")
            self.input = layer
            return
        if isinstance(layer, Sequential):
            raise ValueError(
                f"Model {layer.name!r} cannot be a layer of a Sequential model: nested models are not supported; "
                "add its layers instead."
            )
        if not isinstance(layer, Layer):
            raise ValueError(f"Sequential takes scratch_rnn layers, got {type(layer).__name__}.")
        if getattr(layer, "return_state", False):
            raise ValueError(
                f"Layer {layer.name!r} has return_state=True: it returns a list, and a Sequential "
                "model needs one output per layer."
            )
        if self.layers and getattr(self.layers[-1], "merge_mode", "concat") is None:
            raise ValueError(
                f"Layer {self.layers[-1].name!r} has merge_mode=None: it returns a list [forward, backward], "
                f"and the next layer ({layer.name!r}) takes one input."
            )
        self.layers.append(layer)
        if self.input is not None:
            self._output_shapes()  # builds the new layer on the known input shape

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    def _output_shapes(self) -> list:
        """Each layer's output shape, building unbuilt layers on the way."""
        shape = self.input.batch_shape if self.input is not None else self.layers[0].input_shape
        shapes = []
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            elif layer.input_shape[-1] is not None and shape[-1] is not None and layer.input_shape[-1] != shape[-1]:
                raise ValueError(
                    f"Layer {layer.name!r} was built for inputs with {layer.input_shape[-1]} features, but in model "
                    f"{self.name!r} it receives shape {shape} (a layer used twice, or built elsewhere?)."
                )
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def __call__(self, x, mask=None):
        """Run every layer in order; returns the last layer's output."""
        x = as_numeric(x, "x")
        if self.input is not None:
            expected = self.input.batch_shape
            if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], x.shape[1:])):
                raise ValueError(
                    f"Argument `x` of model {self.name!r} must have shape {('batch', *expected[1:])}, got {x.shape}."
                )
        for layer in self.layers:
            x, mask = layer(x, mask=mask), layer.compute_mask(x, mask)
        return x

    def predict(self, x, batch_size=None, threads=None):
        """``self(x)``, optionally in chunks of ``batch_size`` samples (stateless models); a recurrent layer
        splits a large batch across up to ``threads`` threads (default :func:`scratch_rnn.get_num_threads`)."""
        x = as_numeric(x, "x")
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batch_size")
        with parallel.threads(threads):
            if batch_size is None or len(x) <= batch_size:
                return self(x)
            return np.concatenate([self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    def _check_built(self) -> None:
        if not self.built:
            raise ValueError(f"Model {self.name!r} is not built: give it an Input or call it first.")

    def count_params(self) -> int:
        self._check_built()
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> None:
        """Print each layer's name (type), output shape and parameter count, then the totals."""
        if not self.built and self.input is None:
            raise ValueError(f"Model {self.name!r} is not built: give it an Input or call it first.")
        shapes = self._output_shapes()
        width = 65
        cols = (29, 26)

        def row(a, b, c):
            # Long names or shapes overflow their column, but a space always separates the columns.
            return f" {a:<{cols[0] - 2}} {b:<{cols[1] - 1}} {c:<{width - sum(cols)}}"

        def fmt_shape(shape):
            if isinstance(shape, list):
                return ", ".join(fmt_shape(s) for s in shape)
            return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")

        lines = [f'Model: "{self.name}"', "_" * width, row("Layer (type)", "Output Shape", "Param #"), "=" * width]
        for layer, shape in zip(self.layers, shapes):
            lines.append(row(f"{layer.name} ({type(layer).__name__})", fmt_shape(shape), str(layer.count_params())))
            lines.append(" " * width)
        nbytes = sum(w.nbytes for layer in self.layers for w in layer.get_weights())
        trainable = [layer for layer in self.layers if layer.trainable]
        t_params = sum(layer.count_params() for layer in trainable)
        t_bytes = sum(w.nbytes for layer in trainable for w in layer.get_weights())
        total = self.count_params()
        lines += [
            "=" * width,
            f"Total params: {total} ({nbytes:.2f} Byte)",
            f"Trainable params: {t_params} ({t_bytes:.2f} Byte)",
            f"Non-trainable params: {total - t_params} ({nbytes - t_bytes:.2f} Byte)",
            "_" * width,
        ]
        print_fn("\n".join(lines))


# --- the functional graph -------------------------------------------------------------------


class Operation(NoWeights):
    """A weightless operation of a functional graph (Keras's ``keras.src.ops`` classes): the masks Keras 3 records
    as ops (``NotEqual`` for ``Embedding(mask_zero=True)``, ``Any`` for ``Masking``) are these. Calling it on
    arrays computes; on symbolic tensors it records a node, like a layer. It takes and makes no mask."""

    supports_masking = False
    built = True
    trainable = True

    def __init__(self, name=None):
        self.name = name if name is not None else auto_name(type(self).__name__)
        self.inbound_nodes: list[Node] = []

    def __call__(self, *args, **kwargs):
        if symbolic.any_symbolic(args, kwargs):
            return symbolic.symbolic_call(self, args, kwargs)
        return self.call(*args, **kwargs)

    def output_dtypes(self, n):
        return [np.dtype(bool)] * n

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class NotEqual(Operation):
    """Keras's ``ops.not_equal``: ``x1 != x2`` elementwise, a bool array (``x2`` a number or an array)."""

    def call(self, x1, x2):
        return np.not_equal(_value(x1, "x1"), _value(x2, "x2"))  # broadcast, as Keras's

    def compute_output_shape(self, input_shape):
        return input_shape


class Any(Operation):
    """Keras's ``ops.any``: whether any element along ``axis`` is true, a bool array."""

    def __init__(self, axis=None, keepdims=False, name=None):
        super().__init__(name=name)
        self.axis, self.keepdims = axis, boolean(keepdims, "keepdims")

    def call(self, x):
        return np.any(_value(x, "x"), axis=self.axis, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        if self.axis is None:
            return tuple(1 for _ in input_shape) if self.keepdims else ()
        axes = {a % len(input_shape) for a in ([self.axis] if isinstance(self.axis, int) else self.axis)}
        return tuple(1 if i in axes else d for i, d in enumerate(input_shape) if self.keepdims or i not in axes)

    def get_config(self):
        return {"name": self.name, "axis": self.axis, "keepdims": self.keepdims}


def _bool_only(dtype, argument: str):
    """The ``dtype`` of a ``*Like``/``ConvertToTensor`` op: None (the input's) or ``"bool"``, what masks use."""
    if dtype not in (None, "bool"):
        raise ValueError(
            f"Received an invalid value for argument `{argument}`, expected None or 'bool' (the mask operations "
            f"scratch_rnn implements), got {dtype!r}."
        )
    return dtype


class _Elementwise(Operation):
    """An operation whose output has its input's shape and, unless ``dtype`` is given, its dtype."""

    def __init__(self, dtype=None, name=None):
        super().__init__(name=name)
        self.dtype = _bool_only(dtype, "dtype")

    def __call__(self, *args, **kwargs):
        out = super().__call__(*args, **kwargs)
        if isinstance(out, SymbolicTensor) and self.dtype is None:
            out.dtype = args[0].dtype
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class ZerosLike(_Elementwise):
    """Keras's ``ops.zeros_like(x, dtype)``: zeros of ``x``'s shape (Concatenate's mask broadcasts with it)."""

    def call(self, x):
        x = _value(x, "x")
        return np.zeros(np.shape(x), self.dtype or x.dtype)


class OnesLike(_Elementwise):
    """Keras's ``ops.ones_like(x, dtype)``: ones of ``x``'s shape (Concatenate's mask of an unmasked input)."""

    def call(self, x):
        x = _value(x, "x")
        return np.ones(np.shape(x), self.dtype or x.dtype)


class ConvertToTensor(_Elementwise):
    """Keras's ``ops.convert_to_tensor(x)``: ``x`` itself (the output mask of ``Attention`` is its query's,
    converted). ``sparse`` and ``ragged`` may only be None or False."""

    def __init__(self, dtype=None, sparse=None, ragged=None, name=None):
        super().__init__(dtype=dtype, name=name)
        for argument, value in (("sparse", sparse), ("ragged", ragged)):
            if value not in (None, False):
                raise ValueError(
                    f"Received an invalid value for argument `{argument}`, expected None or False (dense arrays "
                    f"only), got {value!r}."
                )
        self.sparse, self.ragged = sparse, ragged

    def call(self, x):
        x = _value(x, "x")
        return np.asarray(x, self.dtype or x.dtype)

    def get_config(self):
        return {**super().get_config(), "sparse": self.sparse, "ragged": self.ragged}


class ExpandDims(Operation):
    """Keras's ``ops.expand_dims(x, axis)``: a new axis of size 1 at ``axis``."""

    def __init__(self, axis, name=None):
        super().__init__(name=name)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Received an invalid value for argument `axis`, expected an integer, got {axis!r}.")
        self.axis = axis

    def call(self, x):
        return np.expand_dims(_value(x, "x"), self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape.insert(self.axis % (len(shape) + 1), 1)
        return tuple(shape)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


class LogicalOr(Operation):
    """Keras's ``ops.logical_or(x1, x2)``: elementwise OR, broadcast."""

    def __call__(self, x1, x2):
        out = super().__call__(x1, x2)
        if isinstance(out, SymbolicTensor):  # the graph sizes an output from the first argument: both here
            out.shape = _broadcast_shape(x1.shape, getattr(x2, "shape", ()))
        return out

    def call(self, x1, x2):
        return np.logical_or(_value(x1, "x1"), _value(x2, "x2"))

    def compute_output_shape(self, input_shape):
        return input_shape


def _broadcast_shape(a, b) -> tuple:
    """NumPy's broadcast of two shapes whose sizes may be None (unknown)."""
    a, b = (1,) * (len(b) - len(a)) + tuple(a), (1,) * (len(a) - len(b)) + tuple(b)
    return tuple(j if i == 1 else i if j == 1 else (i if i is not None else j) for i, j in zip(a, b))


class ConcatenateOp(Operation):
    """Keras's ``ops.concatenate(xs, axis)`` (Keras class name ``Concatenate``, like the layer): the masks of a
    ``Concatenate`` layer's inputs joined before ``Any`` reduces them."""

    KERAS_NAME = "Concatenate"

    def __init__(self, axis=0, name=None):
        super().__init__(name=name if name is not None else auto_name("Concatenate"))
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Received an invalid value for argument `axis`, expected an integer, got {axis!r}.")
        self.axis = axis

    def call(self, xs):
        return np.concatenate([_value(x, f"xs[{i}]") for i, x in enumerate(xs)], axis=self.axis)

    def compute_output_shape(self, input_shape):
        out = list(input_shape[0])
        axis = self.axis % len(out)
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


#: The operations a functional model may hold, by Keras class name (``model_from_config`` reads these).
OPERATIONS = {
    getattr(cls, "KERAS_NAME", cls.__name__): cls
    for cls in (NotEqual, Any, ZerosLike, OnesLike, ConvertToTensor, ExpandDims, LogicalOr, ConcatenateOp)
}


def _value(x, argument):
    return x if isinstance(x, (int, float, bool, np.number, np.bool_)) else as_numeric(x, argument)


# Masks recorded as Keras 3 records them: Embedding(mask_zero) makes ``not_equal(ids, 0)``, Masking
# ``any(not_equal(x, mask_value), axis=-1)`` (keras/src/layers/core/embedding.py and masking.py, compute_mask).
symbolic.MASK_MAKERS[Embedding] = lambda layer, ids: NotEqual()(ids, 0) if layer.mask_zero else None
symbolic.MASK_MAKERS[Masking] = lambda layer, x: Any(axis=-1)(NotEqual()(x, layer.mask_value))


def _input_masks(inputs) -> list:
    return [t.keras_mask if isinstance(t, SymbolicTensor) else None for t in inputs]


def _merge_mask(layer, inputs):
    """Keras's ``Merge.compute_mask``: the OR of the input masks, None if one input has none."""
    masks = _input_masks(inputs)
    if isinstance(layer, Dot) or any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = LogicalOr()(out, m)
    return out


def _concatenate_mask(layer, inputs):
    """Keras's ``Concatenate.compute_mask``: each mask broadcast over its input's features (ones for an unmasked
    input), joined along ``axis``, reduced with ``any`` over the last axis; None if no input has a mask."""
    masks = _input_masks(inputs)
    if all(m is None for m in masks):
        return None
    parts = []
    for x, m in zip(inputs, masks):
        if m is None:
            parts.append(OnesLike(dtype="bool")(x))
        elif m.ndim < x.ndim:
            parts.append(LogicalOr()(ExpandDims(axis=-1)(m), ZerosLike(dtype="bool")(x)))
        else:
            parts.append(m)
    return Any(axis=-1, keepdims=False)(ConcatenateOp(axis=layer.axis)(parts))


def _attention_mask(layer, inputs):
    """Keras's ``Attention.compute_mask``: the query's mask, through ``convert_to_tensor``."""
    mask = _input_masks(inputs)[0] if isinstance(inputs, (list, tuple)) else None
    return None if mask is None else ConvertToTensor()(mask)


# The first class a layer is an instance of wins: Concatenate (a _Merge) before _Merge; AdditiveAttention is
# an Attention.
symbolic.MASK_MAKERS[Concatenate] = _concatenate_mask
symbolic.MASK_MAKERS[_Merge] = _merge_mask
symbolic.MASK_MAKERS[Attention] = _attention_mask


#: How a functional model passes masks, by the Keras version whose behaviour it reproduces: ``{(first, end):
#: semantics}`` with versions as tuples, ``end`` excluded (None: open). ``sequence_layers_pass_mask``: whether
#: ``RNN`` layers (with ``return_sequences``), ``Bidirectional`` and ``TimeDistributed`` pass their input's mask
#: to the next layer. Keras 3.0-3.15 do; Keras's main branch after PR #23235 (unreleased at 3.15.1; taken here
#: as 3.16 onwards) stops them. ``Model(..., keras_version=...)`` picks a row; the default is 3.15's.
KERAS_SEMANTICS = {
    ((3, 0), (3, 16)): {"sequence_layers_pass_mask": True},
    ((3, 16), None): {"sequence_layers_pass_mask": False},
}

#: The recurrent base class (``RNN``, renamed ``BaseRNN`` when the cell-based ``RNN`` layer arrived).
_RECURRENT = getattr(_rnn, "BaseRNN", None) or _rnn.RNN

#: The Keras version whose semantics a Model follows unless told otherwise.
DEFAULT_KERAS_VERSION = "3.15.1"


def keras_semantics(version: str) -> dict:
    """The row of :data:`KERAS_SEMANTICS` for Keras ``version`` (``"3.15.1"``), else a ValueError."""
    try:
        key = tuple(int(part) for part in str(version).split(".")[:2])
    except ValueError:
        key = None
    for (first, end), semantics in KERAS_SEMANTICS.items():
        if key is not None and first <= key and (end is None or key < end):
            return semantics
    raise ValueError(
        f"Received an invalid value for argument `keras_version`, expected a Keras 3 version such as "
        f"{DEFAULT_KERAS_VERSION!r}, got {version!r}."
    )


def _as_list(structure, argument: str) -> tuple[list, bool]:
    """``structure`` (one symbolic tensor or a list/tuple of them) as a list, and whether it was one tensor."""
    if isinstance(structure, SymbolicTensor):
        return [structure], True
    if isinstance(structure, (list, tuple)) and structure and all(isinstance(t, SymbolicTensor) for t in structure):
        return list(structure), False
    raise ValueError(
        f"Argument `{argument}` of Model must be a symbolic tensor or a non-empty list of them "
        f"(from scratch_rnn.Input and layer calls), got {structure!r:.200}."
    )


class Model(LayerStack):
    """A functional model: the graph of layer calls from ``inputs`` (:class:`Input` tensors) to ``outputs``.

    ``Model(inputs, outputs)`` takes one symbolic tensor or a list of them for each. Calling it on arrays
    (``model(x)``, ``model([x1, x2])``) runs every node of the graph once, in Keras's order (deepest first);
    a layer called twice (shared) has two nodes and one set of weights. Masks flow as in Keras 3: each layer's
    ``compute_mask`` is attached to its outputs, and a layer called on one tensor whose ``call`` takes ``mask``
    receives that tensor's mask (a layer called with ``initial_state=`` tensors has two tensor arguments and is
    given no mask, as in Keras; a merge layer gets a list of masks). ``keras_version`` picks the row of
    :data:`KERAS_SEMANTICS` to follow (default: Keras 3.15's).
    """

    def __init__(self, inputs, outputs, name=None, keras_version=DEFAULT_KERAS_VERSION):
        self.semantics = keras_semantics(keras_version)
        self.keras_version = keras_version
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Received an invalid value for argument `name`, expected a string, got {name!r:.80}.")
        self.name = name if name is not None else auto_name("Functional")
        self.inputs, self._single_input = _as_list(inputs, "inputs")
        self.outputs, self._single_output = _as_list(outputs, "outputs")
        for tensor in self.inputs:
            if not isinstance(tensor, Input):
                raise ValueError(
                    f"Every entry of `inputs` of Model {self.name!r} must be an Input (scratch_rnn.Input(...)), "
                    f"got {tensor!r}, made by layer {tensor.layer.name!r}."
                )
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError(f"Argument `inputs` of Model {self.name!r} lists the same Input twice.")
        self._map_graph()

    # --- the graph, as keras/src/ops/function.py maps it -----------------------------
    def _map_graph(self):
        finished, in_progress, ordered, indices = set(), set(), [], {}

        def visit(tensor):
            node = tensor.node
            if id(node) in finished:
                return
            if id(node) in in_progress:
                raise ValueError(f"Tensor {tensor} from layer {node.layer.name!r} is part of a cycle.")
            indices.setdefault(id(node.layer), (len(indices), node.layer))
            in_progress.add(id(node))
            for parent in node.input_tensors:
                visit(parent)
            finished.add(id(node))
            in_progress.discard(id(node))
            ordered.append(node)

        for tensor in self.outputs:
            visit(tensor)
        in_graph = {id(node) for node in ordered}
        node_depth, layer_depth = {}, {}
        for node in reversed(ordered):
            depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = node_depth[id(node)] = depth
            for parent in node.parent_nodes:
                if id(parent) in in_graph:
                    node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
        for tensor in self.inputs:  # an Input no output depends on still belongs to the model, as in Keras
            if id(tensor.layer) not in layer_depth:
                indices[id(tensor.layer)] = (-1, tensor.layer)
                layer_depth[id(tensor.layer)] = node_depth[id(tensor.node)] = 0
                ordered.append(tensor.node)
        by_id = {id(node): node for node in ordered}
        self._nodes = sorted(ordered, key=lambda node: -node_depth[id(node)])  # stable: traversal order kept
        self._nodes_by_depth = {}
        for node_id, depth in node_depth.items():
            self._nodes_by_depth.setdefault(depth, []).append(by_id[node_id])
        self.operations = [
            layer
            for _, layer in sorted(
                (indices[key] for key in layer_depth), key=lambda item: (-layer_depth[id(item[1])], item[0])
            )
        ]
        computable = {id(t) for t in self.inputs}
        for node in self._nodes:
            if node.is_input and id(node.outputs[0]) not in computable:
                raise ValueError(
                    f"Graph disconnected: model {self.name!r} needs Input {node.layer.name!r}, which is not in its "
                    f"`inputs` ({[t.name for t in self.inputs]})."
                )
            for tensor in node.input_tensors:
                if id(tensor) not in computable:  # pragma: no cover - an Input's node comes first
                    raise ValueError(f"Graph disconnected: cannot compute {tensor} for layer {node.layer.name!r}.")
            computable.update(id(t) for t in node.outputs)
        names = [layer.name for layer in self.operations]
        for layer_name in names:
            if names.count(layer_name) > 1:
                raise ValueError(
                    f'The name "{layer_name}" is used {names.count(layer_name)} times in the model. '
                    "All layer names should be unique."
                )

    @property
    def layers(self) -> list:
        """The model's layers in Keras's order (``InputLayer`` s included, operations such as ``NotEqual`` not)."""
        return [op for op in self.operations if not isinstance(op, Operation)]

    @property
    def built(self) -> bool:
        return True

    # --- calling -------------------------------------------------------------------------
    def __call__(self, inputs, mask=None):
        """Run the graph on arrays: ``inputs`` one array per model input (an array for a single input, else a
        list); ``mask`` optional, one per input. Returns one array or a list, as the outputs were given."""
        if symbolic.any_symbolic([inputs], {}):
            raise ValueError(
                f"Model {self.name!r} cannot be called on symbolic tensors: nested models are not supported."
            )
        arrays = [inputs] if self._single_input and not isinstance(inputs, (list, tuple)) else inputs
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(self.inputs):
            got = f"a list of {len(arrays)}" if isinstance(arrays, (list, tuple)) else "one array"
            raise ValueError(
                f"Model {self.name!r} expects {len(self.inputs)} input(s) {[t.name for t in self.inputs]}, got {got}."
            )
        masks = [None] * len(self.inputs) if mask is None else (mask if isinstance(mask, (list, tuple)) else [mask])
        if len(masks) != len(self.inputs):
            raise ValueError(
                f"Argument `mask` of model {self.name!r} must hold one mask per input ({len(self.inputs)})."
            )
        values, value_masks = {}, {}
        for tensor, array, m in zip(self.inputs, arrays, masks):
            array = as_numeric(array, f"inputs[{tensor.name!r}]")
            if array.dtype.kind == "f" or tensor.dtype.kind == "f":
                array = array.astype(tensor.dtype, copy=False)
            expected = tensor.shape
            if array.ndim != len(expected) or any(
                e is not None and e != s for e, s in zip(expected[1:], array.shape[1:])
            ):
                raise ValueError(
                    f"Input {tensor.name!r} of model {self.name!r} must have shape {('batch', *expected[1:])}, "
                    f"got {array.shape}."
                )
            values[id(tensor)] = array
            value_masks[id(tensor)] = None if m is None else as_numeric(m, "mask").astype(bool)
        for node in self._nodes:
            if not node.is_input:
                self._run_node(node, values, value_masks)
        outputs = [values[id(t)] for t in self.outputs]
        return outputs[0] if self._single_output else outputs

    def _run_node(self, node, values, value_masks, compute=None):
        """One node, with Keras 3's mask rules (keras/src/layers/layer.py ``Layer.__call__``, steps 6-7).

        ``compute`` computes in another framework on its own values (:func:`scratch_rnn.ports.to_torch`), the rules
        of which layer gets which mask staying here: an object with ``operation(op, args, kwargs)``,
        ``call(layer, args, kwargs)`` and ``compute_mask(layer, first_input, mask)``; None: the engine."""
        layer = node.layer
        args, kwargs = node.fill_in(values)
        if isinstance(layer, Operation):
            outputs = compute.operation(layer, args, kwargs) if compute else layer.call(*args, **kwargs)
            outputs = outputs if isinstance(outputs, list) else [outputs]
            for tensor, value in zip(node.outputs, outputs):
                values[id(tensor)], value_masks[id(tensor)] = value, None
            return
        if node.auto_mask:  # recorded from the input's mask at construction: propagated here instead, per version
            kwargs.pop("mask")
        recorded = {key: value for key, value in node.kwargs.items() if not (node.auto_mask and key == "mask")}
        bound = symbolic.inspect.signature(layer.call).bind(*node.args, **recorded).arguments
        first = next(iter(bound.values()))
        first_mask = symbolic.map_structure(
            lambda t: value_masks.get(id(t)) if isinstance(t, SymbolicTensor) else None, first
        )
        tensor_args = [name for name, value in bound.items() if symbolic._is_tensor_argument(value)]
        has_mask = any(m is not None for m in _leaves(first_mask))
        if len(tensor_args) == 1 and symbolic.takes_mask(layer) and kwargs.get("mask") is None and has_mask:
            kwargs["mask"] = first_mask
        previous_mask = kwargs["mask"] if kwargs.get("mask") is not None else first_mask
        outputs = compute.call(layer, args, kwargs) if compute else layer(*args, **kwargs)
        several = len(node.outputs) > 1
        outputs = outputs if several else [outputs]
        masks = [None] * len(outputs)
        if layer.supports_masking:
            if not self.semantics["sequence_layers_pass_mask"] and isinstance(
                layer, (_RECURRENT, Bidirectional, TimeDistributed)
            ):
                computed = None
            else:
                first_input = next(iter(_fill_first(args, kwargs, layer)))
                if compute:
                    computed = compute.compute_mask(layer, first_input, previous_mask)
                else:
                    computed = layer.compute_mask(first_input, previous_mask)
            if not several:
                masks = [computed]
            elif isinstance(computed, (list, tuple)):
                masks = list(computed) + [None] * (len(outputs) - len(computed))
            else:
                masks[0] = computed
        elif compute is None and any(m is not None for m in _leaves(previous_mask)):
            warnings.warn(
                f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input with a mask attached to "
                "it. However, this layer does not support masking and will therefore destroy the mask information. "
                "Downstream layers will not see the mask.",
                stacklevel=3,
            )
        for tensor, value, m in zip(node.outputs, outputs, masks):
            values[id(tensor)], value_masks[id(tensor)] = value, m

    def predict(self, x, batch_size=None, threads=None):
        """``self(x)``, optionally in chunks of ``batch_size`` samples (each output concatenated); a recurrent
        layer splits a large batch across up to ``threads`` threads (default :func:`scratch_rnn.get_num_threads`)."""
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batch_size")
        with parallel.threads(threads):
            return self._predict(x, batch_size)

    def _predict(self, x, batch_size):
        arrays = [x] if self._single_input and not isinstance(x, (list, tuple)) else list(x)
        arrays = [as_numeric(a, "x") for a in arrays]
        n = len(arrays[0]) if arrays else 0
        if batch_size is None or n <= batch_size:
            return self(x)
        chunks = []
        for i in range(0, n, batch_size):
            part = [a[i : i + batch_size] for a in arrays]
            out = self(part[0] if self._single_input and not isinstance(x, (list, tuple)) else part)
            chunks.append(out if isinstance(out, list) else [out])
        outputs = [np.concatenate([c[j] for c in chunks]) for j in range(len(chunks[0]))]
        return outputs[0] if self._single_output else outputs

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # --- summary, as keras/src/utils/summary_utils.py prints it --------------------------
    def _sequential_like(self) -> bool:
        nodes = []
        for depth_nodes in self._nodes_by_depth.values():
            if len(depth_nodes) > 1 or (len(depth_nodes) == 1 and len(depth_nodes[0].input_tensors) > 1):
                return False
            nodes += depth_nodes
        for layer in self.layers:
            if sum(1 for node in layer.inbound_nodes if any(node is n for n in nodes)) > 1:
                return False
        return True

    def summary_rows(self) -> list[tuple]:
        """The summary's table: ``(name (type), output shape, param #[, connected to])`` per operation."""
        sequential_like = self._sequential_like()
        relevant = [node for nodes in self._nodes_by_depth.values() for node in nodes]
        rows = []
        for op in self.operations:
            nodes = op.inbound_nodes
            shapes = [_format_shapes(t.shape for t in nodes[-1].outputs)] if nodes else ["?"]
            kind = getattr(op, "KERAS_NAME", type(op).__name__)  # ConcatenateOp is Keras's Concatenate op
            row = [f"{op.name} ({kind})", shapes[0], f"{op.count_params():,}"]
            if not sequential_like:
                links = [
                    "{}[{}][{}]".format(*tensor.history)
                    for node in nodes
                    if any(node is n for n in relevant)
                    for tensor in node.input_tensors
                ]
                row.append(", ".join(links) or "-")
            rows.append(tuple(row))
        return rows

    def summary(self, print_fn=print) -> None:
        """Print Keras 3's summary: each operation's name (type), output shape, parameter count and, for a model
        with several inputs or branches, what it is connected to (``layer[node][tensor]``); then the totals."""
        rows = self.summary_rows()
        header = ("Layer (type)", "Output Shape", "Param #", "Connected to")[: len(rows[0]) if rows else 3]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

        def line(cells):
            return "  ".join(
                (str(c).rjust(w) if i == 2 else str(c).ljust(w)) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        width = sum(widths) + 2 * (len(widths) - 1)
        weights = [(layer, w) for layer in self.layers for w in layer.get_weights()]
        total = self.count_params()
        trainable = sum(_trainable_params(layer) for layer in self.layers)
        nbytes = sum(w.nbytes for _, w in weights)
        t_bytes = sum(_trainable_params(layer) * np.dtype(layer.dtype).itemsize for layer in self.layers)
        lines = [f'Model: "{self.name}"', "=" * width, line(header), "=" * width]
        for row in rows:
            lines += [line(row), "-" * width]
        lines[-1] = "=" * width
        lines += [
            f" Total params: {total:,} ({_readable_size(nbytes)})",
            f" Trainable params: {trainable:,} ({_readable_size(t_bytes)})",
            f" Non-trainable params: {total - trainable:,} ({_readable_size(nbytes - t_bytes)})",
        ]
        print_fn("\n".join(lines))

    def __repr__(self):
        return f"<Model name={self.name!r}, inputs={[t.name for t in self.inputs]}, outputs={len(self.outputs)}>"


def _trainable_params(layer) -> int:
    """A layer's trainable parameter count (0 when frozen)."""
    if hasattr(layer, "count_trainable_params"):
        return layer.count_trainable_params()
    return layer.count_params() if layer.trainable else 0


def _leaves(structure) -> list:
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _leaves(item)]
    return [structure]


def _fill_first(args, kwargs, layer):
    """The value of the call's first argument (positional or keyword)."""
    bound = symbolic.inspect.signature(layer.call).bind(*args, **kwargs).arguments
    return iter(bound.values())


def _format_shapes(shapes) -> str:
    def one(shape):
        return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")

    shapes = [one(s) for s in shapes]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def _readable_size(nbytes: float) -> str:
    """Keras's ``readable_memory_size``: ``960.00 B``, ``4.82 KB``, ..."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"
