"""Verifying a whole model: a saved file (or a Keras model) run on generated inputs by Keras and by the
engine, or by a user's port of that model.

``verify_model(model, candidate=None, ...)`` loads the model in Keras (the reference) and in the engine,
draws inputs that fit the model's input specs with Hypothesis, and compares every output under a
tolerance derived for that model and input, as :func:`~scratch_rnn.testing.verify.verify` does for a
layer. A candidate is ``candidate(model_file, inputs) -> outputs``: the path of the saved model and a
list with one array per model input; it returns an array or a list, one per model output.

The inputs fit what each input feeds (read from the Keras model): token ids inside the vocabulary of
the ``Embedding`` an input feeds, with padding zeros leading, trailing or filling whole rows where that
Embedding has ``mask_zero``; the ``mask_value`` of a ``Masking`` layer in random steps; floats in
[-2, 2] elsewhere. The batch (1-4) and every free dimension (1-12) vary; one size is drawn per axis and
shared by all inputs, since a model may combine its inputs along that axis.

Hypothesis is imported only to draw inputs (:func:`model_cases`, :func:`verify_model`): the check of one
input (:func:`check_model_case`, :func:`derive_model`) needs NumPy only, and is what
:func:`scratch_rnn.testing.golden.check_model` runs on a recording without TensorFlow, Keras or Hypothesis.
"""

from __future__ import annotations

import copy
import os
import random
import tempfile
from dataclasses import dataclass, field

import numpy as np

from scratch_rnn.saving import with_float_dtype
from scratch_rnn.testing import tolerance
from scratch_rnn.testing.check import CaseResult, Report, derived_or_skipped, diagnose, outputs_or_failed
from scratch_rnn.testing.compare import compare_outputs
from scratch_rnn.testing.runners import default_reference, import_keras

MAX_BATCH = 4
MAX_FREE = 12


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, shape without the batch (None: free), dtype, and what it feeds."""

    name: str
    shape: tuple
    dtype: str
    vocabulary: int | None = None  # ids in [0, vocabulary): the input feeds an Embedding
    mask_zero: bool = False  # ... whose mask_zero makes 0 padding
    mask_value: float | None = None  # the input feeds a Masking layer


@dataclass
class ModelCase:
    """Generated inputs for one model call, one array per model input."""

    inputs: list
    specs: list
    padding: list = field(default_factory=list)  # how each input's padding was drawn

    def describe(self) -> str:
        parts = []
        for spec, x, pad in zip(self.specs, self.inputs, self.padding):
            parts.append(f"{spec.name}: {x.dtype}{x.shape}" + (f" ({pad})" if pad else ""))
        return "model inputs " + ", ".join(parts)


def _as_list(tensors) -> list:
    return list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]


def input_specs(keras_model) -> list[InputSpec]:
    """The input specs of a Keras model, with what each input feeds (Embedding, Masking)."""
    specs = []
    for tensor in keras_model.inputs:
        consumers = [
            layer
            for layer in keras_model.layers
            for node in getattr(layer, "_inbound_nodes", ())
            if any(t is tensor for t in _as_list(node.input_tensors))  # tf_keras: one tensor, not a list
        ]
        dtype = getattr(tensor.dtype, "name", tensor.dtype)  # tf_keras: a tf.DType
        spec = {"name": tensor.name, "shape": tuple(tensor.shape[1:]), "dtype": str(dtype)}
        for layer in consumers:
            kind = type(layer).__name__
            if kind == "Embedding":
                spec.update(vocabulary=int(layer.input_dim), mask_zero=bool(layer.mask_zero))
            elif kind == "Masking":
                spec.update(mask_value=float(layer.mask_value))
        specs.append(InputSpec(**spec))
    return specs


def model_cases(specs: list[InputSpec], dtype: str = "float32"):
    """A Hypothesis strategy of :class:`ModelCase` for ``specs``: one batch size, one size per free axis,
    inputs that fit."""
    from hypothesis import strategies as st

    return st.composite(_draw_model_case)(specs, dtype)


def _draw_model_case(draw, specs: list[InputSpec], dtype: str) -> ModelCase:
    from hypothesis import strategies as st

    from scratch_rnn.testing.strategies import float_arrays

    batch = draw(st.integers(1, MAX_BATCH), label="batch")
    free = {}
    inputs, padding = [], []
    for spec in specs:
        shape = [batch]
        for axis, size in enumerate(spec.shape, start=1):
            if size is None:
                if axis not in free:
                    free[axis] = draw(st.integers(1, MAX_FREE), label=f"size of axis {axis}")
                size = free[axis]
            shape.append(size)
        shape = tuple(shape)
        pad = ""
        if spec.vocabulary is not None:
            x = draw(
                st.lists(
                    st.integers(1, max(1, spec.vocabulary - 1)),
                    min_size=int(np.prod(shape)),
                    max_size=int(np.prod(shape)),
                ),
                label="ids",
            )
            x = np.array(x, dtype=spec.dtype).reshape(shape)
            if spec.mask_zero and x.ndim == 2:
                pad = draw(st.sampled_from(["none", "leading", "trailing", "whole rows", "random"]), label="padding")
                x = _pad(draw, x, pad)
        elif np.dtype(spec.dtype).kind in "iu":
            x = draw(st.integers(0, 9).map(lambda v: v), label="int fill") * np.ones(shape, spec.dtype)
        else:
            x = draw(float_arrays(dtype, shape, bound=2.0, unique=False), label=f"input {spec.name}")
            if spec.mask_value is not None and x.ndim >= 3:
                steps = draw(st.lists(st.booleans(), min_size=shape[1], max_size=shape[1]), label="masked steps")
                x[:, np.array(steps, dtype=bool)] = spec.mask_value
                pad = f"Masking value in {sum(steps)} steps"
        inputs.append(x)
        padding.append(pad if pad != "none" else "")
    return ModelCase(inputs, list(specs), padding)


def _pad(draw, ids: np.ndarray, kind: str) -> np.ndarray:
    """Zeros (padding) in ``ids`` ``(batch, timesteps)``: leading or trailing per row, whole rows, or random."""
    from hypothesis import strategies as st

    ids = ids.copy()
    batch, steps = ids.shape
    if kind in ("leading", "trailing"):
        for row in range(batch):
            k = draw(st.integers(0, steps), label="padding length")
            if kind == "leading":
                ids[row, :k] = 0
            else:
                ids[row, steps - k :] = 0
    elif kind == "whole rows":
        rows = draw(st.lists(st.booleans(), min_size=batch, max_size=batch), label="padded rows")
        ids[np.array(rows, dtype=bool)] = 0
    elif kind == "random":
        zeros = draw(st.lists(st.booleans(), min_size=ids.size, max_size=ids.size), label="zeros")
        ids[np.array(zeros, dtype=bool).reshape(ids.shape)] = 0
    return ids


def keras_in_dtype(keras, keras_model, dtype: str):
    """The same Keras model computing in ``dtype`` (its config's float dtypes rewritten, weights copied)."""
    if dtype == "float32":
        return keras_model
    clone = type(keras_model).from_config(with_float_dtype(keras_model.get_config(), dtype))
    clone.set_weights([np.asarray(w).astype(dtype) for w in keras_model.get_weights()])
    return clone


def output_names(keras_model) -> list[str]:
    """The model's outputs' names for reports: ``output[i] (dense)``, the Keras layer that makes each."""
    names = []
    for i, tensor in enumerate(keras_model.outputs):
        operation = getattr(getattr(tensor, "_keras_history", None), "operation", None)
        names.append(f"output[{i}] ({operation.name})" if operation is not None else f"output[{i}]")
    return names


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _dot_length(weights) -> int:
    """The longest dot product a step of the model can take: twice the largest fan-in, plus the bias
    (an RNN's step adds a kernel's and a recurrent kernel's products)."""
    fan_in = max((w.shape[0] for w in weights if w.ndim >= 2), default=1)
    return 2 * fan_in + 1


def derive_model(oracle_model, weights, case: ModelCase, dtype: str, seed: int = 0, precision: str = "float32"):
    """``(oracle_outputs, tolerances)``: the float64 engine's outputs and their derived tolerances
    (:mod:`scratch_rnn.testing.tolerance`), weights and float inputs perturbed, recurrent layers'
    activations jittered."""
    weights = [np.asarray(w, np.float64) for w in weights]
    inputs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in case.inputs]

    def run(p_weights, p_inputs, jitter=None):
        model = copy.deepcopy(oracle_model)  # jitter and the readable path patch its layers
        model.set_weights(p_weights)
        for layer in model.layers:
            if hasattr(layer, "forward_layer") or hasattr(layer, "step"):  # recurrent: its readable project/step
                if jitter is None:  # (the fast kernels are the candidate's: see check.check_against)
                    tolerance.readable_path(layer)
                else:
                    tolerance.jitter_activations(layer, jitter)
        outputs = model(_feed(p_inputs))
        return [np.asarray(o, np.float64) for o in _as_list(outputs)]

    def perturb_inputs(jitter, u):
        return [jitter(x, u) if x.dtype.kind == "f" else x for x in inputs]

    return tolerance.derive_from_runs(
        run, weights, inputs, perturb_inputs, _dot_length(weights), dtype, seed, precision
    )


def verify_model(
    model,
    candidate=None,
    max_examples: int = 100,
    seed: int | None = None,
    dtype: str = "float32",
    reference: str | None = None,
    on_example=None,
    shrink_seconds: float = 60.0,
    timeout: float | None = 60.0,
    precision: str = "float32",
) -> Report:
    """Check a whole model against Keras on ``max_examples`` generated inputs; returns a :class:`Report`.

    ``model`` is the path of a saved Keras model (``.keras`` or ``.h5``) or a Keras model object.
    ``candidate`` is None (the engine: the file loaded by :func:`scratch_rnn.load_model`, or the Keras
    model converted by :func:`scratch_rnn.from_keras`) or ``candidate(model_file, inputs) -> outputs``
    (a Keras model object is saved to a temporary ``.keras`` file for it). ``dtype="float64"`` runs both
    sides in float64 (the model's float dtypes rewritten, weights cast), where agreement is near machine
    precision. The other arguments are :func:`~scratch_rnn.testing.verify.verify`'s, ``precision`` (the
    candidate's products' precision, docs/precision.md) included.
    """
    from scratch_rnn.testing.verify import check_sweep_arguments, sweep

    timeout = check_sweep_arguments(candidate, max_examples, seed, dtype, timeout, precision)
    reference = default_reference() if reference is None else reference
    keras = import_keras(reference)

    model_file = None
    if isinstance(model, (str, os.PathLike)):
        model_file = os.fspath(model)
        if not os.path.isfile(model_file):
            raise ValueError(
                f"Argument `model` must be a saved Keras model file or a Keras model, got {model_file!r}: not a file."
            )
        keras_model = keras.saving.load_model(model_file, compile=False)
    elif hasattr(model, "get_config") and hasattr(model, "inputs"):
        keras_model = model
    else:
        raise ValueError(
            f"Argument `model` must be a saved Keras model file or a Keras model, got {type(model).__name__}."
        )
    seed = random.getrandbits(32) if seed is None else int(seed)
    keras_run = keras_in_dtype(keras, keras_model, dtype)
    oracle_model = _engine(model_file, lambda: keras_in_dtype(keras, keras_model, "float64"), "float64")
    weights = [np.asarray(w) for w in keras_model.get_weights()]
    engine = None
    if candidate is None:
        engine = _engine(model_file, lambda: keras_run, dtype)
        name = "scratch_rnn engine"
    else:
        name = getattr(candidate, "__qualname__", repr(candidate))
        if model_file is None:
            scratch_dir = tempfile.mkdtemp(prefix="scratch-rnn-model-")
            model_file = os.path.join(scratch_dir, "model.keras")
            keras_model.save(model_file)
    specs = input_specs(keras_model)
    names = output_names(keras_model)
    report = Report(
        keras_model.name, np.dtype(dtype).name, name, seed, reference=f"{reference} {keras.__version__}",
        precision=precision,
    )  # fmt: skip

    def check_one(case: ModelCase) -> CaseResult:
        return check_model_case(
            case, lambda: keras_outputs(keras_run, case), oracle_model, weights, dtype, names, engine, candidate,
            model_file, timeout, precision,
        )  # fmt: skip

    return sweep(model_cases(specs, dtype), check_one, report, seed, max_examples, shrink_seconds, on_example)


def check_model_case(
    case: ModelCase,
    expected,
    oracle_model,
    weights,
    dtype: str,
    names,
    engine=None,
    candidate=None,
    model_file=None,
    timeout: float | None = None,
    precision: str = "float32",
) -> CaseResult:
    """One model input: the engine (``engine``, a scratch model computing in ``dtype``) or ``candidate``
    against ``expected() -> list of arrays`` (Keras run live, or a recording), under the tolerances
    :func:`derive_model` derives with ``oracle_model`` (the float64 scratch twin) and ``weights`` (Keras's
    ``get_weights()``). An exact result that is not finite or beyond ``sqrt(finfo(dtype).max)`` is
    skipped, as for a layer; whatever the engine or the candidate raises fails the case, and a candidate
    that has not returned after ``timeout`` seconds fails it with ``timed_out`` set. ``precision`` is the
    candidate's products' (:data:`~scratch_rnn.testing.tolerance.PRECISIONS`); a failing float32 case is
    diagnosed (:func:`~scratch_rnn.testing.check.diagnose`). NumPy only."""
    tolerance.check_precision(precision, dtype)
    result = CaseResult(case, precision=precision)
    derived = derived_or_skipped(
        result, lambda: derive_model(oracle_model, weights, case, dtype, precision=precision), dtype
    )
    if derived is None:
        return result
    _, tols = derived
    reference = expected()
    if candidate is None:
        actual = outputs_or_failed(result, lambda: _as_list(engine(_feed(case.inputs))))
    else:
        run = lambda: candidate(model_file, [x.copy() for x in case.inputs])  # noqa: E731
        actual = outputs_or_failed(result, run, timeout, in_thread=True)
        if actual is not None:
            actual = [
                o if isinstance(o, np.ndarray) or not hasattr(o, "__array__") else np.asarray(o)
                for o in _as_list(actual)
            ]
    if actual is not None:
        result.comparisons = compare_outputs(actual, reference, tols, names)
        tolerances_for = lambda p: derive_model(oracle_model, weights, case, dtype, precision=p)[1]  # noqa: E731
        diagnose(result, actual, reference, names, tolerances_for, dtype)
    return result


def keras_outputs(keras_model, case: ModelCase) -> list[np.ndarray]:
    """What the Keras model returns on ``case``'s inputs, as NumPy arrays, one per output."""
    return [np.asarray(o) for o in _as_list(keras_model(_feed(case.inputs)))]


def _feed(inputs: list):
    """A model's call argument: the array of a one-input model, else the list."""
    return inputs if len(inputs) > 1 else inputs[0]


def _engine(model_file, keras_model, dtype: str):
    """The engine's model computing in ``dtype``: the file loaded by scratch_rnn's own loader
    (:func:`scratch_rnn.saving.load_model` with ``dtype``), else ``keras_model()`` converted (a Keras model
    object given, or h5py not installed)."""
    from scratch_rnn.keras_convert import from_keras

    if model_file is not None:
        try:
            from scratch_rnn.saving import load_model

            return load_model(model_file, dtype=dtype)
        except ImportError:  # h5py is not installed: convert the live model
            pass
    return from_keras(keras_model())
