"""Running a :class:`~scratch_rnn.testing.strategies.Case` on Keras, on the engine, or on a candidate."""

from __future__ import annotations

import importlib
import logging
import os
import threading
import warnings

import numpy as np

from scratch_rnn.keras_convert import from_config

#: The references the harness can run: Keras 3, and Keras 2 as the ``tf_keras`` package.
REFERENCES = ("keras", "tf_keras")


def default_reference() -> str:
    """``$SCRATCH_RNN_REFERENCE`` (``keras`` or ``tf_keras``), else ``keras``."""
    return os.environ.get("SCRATCH_RNN_REFERENCE", "keras")


def import_keras(reference: str | None = None):
    """The reference Keras module (default :func:`default_reference`), with TensorFlow's log noise turned down."""
    reference = default_reference() if reference is None else reference
    if reference not in REFERENCES:
        raise ValueError(f"Argument `reference` must be one of {list(REFERENCES)}, got {reference!r}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras = importlib.import_module(reference)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"The reference runs Keras on TensorFlow; KERAS_BACKEND is {keras.backend.backend()!r}.")
    return keras


def keras_layer(case, keras):
    """The Keras layer of ``case``: built on the first call's input shape, weights set."""
    config = dict(case.config)
    if case.layer == "Bidirectional":
        inner = config.pop("layer")
        config["layer"] = getattr(keras.layers, inner["class_name"])(**inner["config"])
    layer = getattr(keras.layers, case.layer)(**config)
    layer.build(case.chunks()[0][0].shape)
    layer.set_weights(case.weights)
    return layer


def engine_layer(case, config=None, weights=None, fast: bool = True):
    """The scratch layer of ``case``, from Keras-style ``config`` (default ``case.config``), running its fast
    kernels or (``fast=False``) its readable ``project``/``step``."""
    layer = from_config(case.layer, case.config if config is None else config)
    layer.set_weights(case.weights if weights is None else weights)
    layer.fast = fast
    return layer


def output_names(n_outputs: int, n_calls: int, call: int, split_directions: bool = False) -> list[str]:
    """Names of a call's returned tensors: ``output`` then ``state[i]``; a Bidirectional with
    ``merge_mode=None`` returns ``forward output`` and ``backward output`` first."""
    prefix = f"call {call + 1} " if n_calls > 1 else ""
    heads = ["forward output", "backward output"] if split_directions else ["output"]
    return [prefix + (heads[j] if j < len(heads) else f"state[{j - len(heads)}]") for j in range(n_outputs)]


def returns_both_directions(merge_mode_holder) -> bool:
    """Whether a layer (or Keras config) is a Bidirectional returning its two directions unmerged."""
    if isinstance(merge_mode_holder, dict):
        return "merge_mode" in merge_mode_holder and merge_mode_holder["merge_mode"] is None
    return hasattr(merge_mode_holder, "merge_mode") and merge_mode_holder.merge_mode is None


def run_layer(layer, chunks):
    """Call ``layer`` on each ``(x, mask, initial_state)`` in turn; ``(names, arrays)`` of every output."""
    names, arrays = [], []
    for i, (x, mask, initial_state) in enumerate(chunks):
        out = layer(x, mask=mask, initial_state=initial_state)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        names += output_names(len(outs), len(chunks), i, returns_both_directions(layer))
        arrays += [np.asarray(o) for o in outs]
    return names, arrays


def run_candidate(candidate, keras_config: dict, case):
    """Call a foreign ``candidate(config, weights, x, mask, initial_state)`` on each chunk of ``case``."""
    names, arrays = [], []
    chunks = case.chunks()
    for i, (x, mask, initial_state) in enumerate(chunks):
        weights = [w.copy() for w in case.weights]
        out = candidate(
            dict(keras_config),
            weights,
            x.copy(),
            None if mask is None else mask.copy(),
            None if initial_state is None else [s.copy() for s in initial_state],
        )
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        names += output_names(len(outs), len(chunks), i, returns_both_directions(keras_config))
        arrays += [o if isinstance(o, np.ndarray) else _to_numpy(o) for o in outs]
    return names, arrays


def call_with_timeout(function, timeout: float | None = None):
    """``function()`` in a worker thread: ``("value", result)``, ``("error", exception)`` or
    ``("timeout", timeout)`` if it has not returned after ``timeout`` seconds (None: no limit).

    Whatever ``function`` raises, ``SystemExit`` and ``KeyboardInterrupt`` included, is returned as
    its error, never raised here: it comes from a candidate's own code. A Ctrl-C aimed at the
    harness arrives in the main thread, which only waits here, and propagates as usual. A function
    that does not return is left running in its daemon thread: Python cannot stop a thread.
    """
    outcome = []

    def work():
        try:
            outcome.append(("value", function()))
        except BaseException as err:  # the candidate's, whatever it is: reported, not raised
            outcome.append(("error", err))

    worker = threading.Thread(target=work, name="scratch-rnn candidate", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return ("timeout", timeout)
    return outcome[0]


def _to_numpy(value):
    """Arrays from other frameworks (torch, jax, tf) via ``__array__``; anything else is left for the
    comparison to refuse."""
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
    return np.asarray(value) if hasattr(value, "__array__") else value


def engine_candidate(layer: str = "SimpleRNN"):
    """The scratch engine behind the candidate interface: each call builds a fresh layer from Keras's
    ``get_config()``."""

    def candidate(config, weights, x, mask=None, initial_state=None):
        scratch = from_config(layer, config)
        scratch.set_weights(weights)
        return scratch(x, mask=mask, initial_state=initial_state)

    candidate.__name__ = f"scratch_rnn.{layer}"
    return candidate


# --- non-recurrent layers: a LayerCase ----------------------------------------------------------------


def output_names_of(outs: list, call_options: dict) -> list[str]:
    """Names of a non-recurrent layer's returned tensors (Attention's scores second)."""
    if len(outs) == 1:
        return ["output"]
    if call_options.get("return_attention_scores"):
        return ["output", "attention scores"][: len(outs)] + [f"output[{i}]" for i in range(2, len(outs))]
    return [f"output[{i}]" for i in range(len(outs))]


def as_arrays(out) -> list:
    """A candidate's output(s) as a list, arrays of other frameworks converted (anything else left for the
    comparison to refuse)."""
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [o if isinstance(o, np.ndarray) else _to_numpy(o) for o in outs]


def keras_core_layer(case, keras):
    """The Keras layer of a :class:`~scratch_rnn.testing.case.LayerCase`, built on its inputs, weights set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LayerNormalization's rms_scaling deprecation
        layer = getattr(keras.layers, case.layer)(**case.config)
    if case.weights:
        shapes = [tuple(x.shape) for x in case.input_list()]
        layer.build(shapes if case.multi else shapes[0])
        layer.set_weights(case.weights)
    return layer


def run_keras_core(layer, case, keras):
    """``(names, arrays)``: the Keras layer called on the case's inputs with their masks attached to the
    input tensors, as Keras's functional graph passes them (Keras 3's ``set_keras_mask``)."""
    from keras.src.backend import set_keras_mask  # Keras 3 only: the non-recurrent sweep's reference

    if case.layer == "Conv1D" and case.config.get("data_format") == "channels_first":
        # Keras's channels_last twin on the transposed input: TensorFlow's CPU kernels refuse NCW in float64, and
        # in float32 Keras's channels_first grouped convolution with strides > 1 (the XLA path) is wrong:
        # Conv1D(2, 1, strides=2, groups=2, data_format="channels_first") gives filter 0 the values of filter 1
        # (docs/harness.md, "Where Keras itself is wrong")
        twin = keras.layers.Conv1D(**{**case.config, "data_format": "channels_last"})
        x = np.swapaxes(case.inputs, 1, 2)  # (B, C, L) -> (B, L, C)
        twin.build(x.shape)
        twin.set_weights(layer.get_weights())
        return ["output"], [np.asarray(twin(x)).swapaxes(1, 2)]
    tensors = [keras.ops.convert_to_tensor(x) for x in case.input_list()]
    for tensor, mask in zip(tensors, case.mask_list()):
        if mask is not None:
            set_keras_mask(tensor, keras.ops.convert_to_tensor(mask))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "does not support masking", "softmax over axis -1", rms_scaling
        out = layer(tensors if case.multi else tensors[0], **case.call_options)
    arrays = [np.asarray(o) for o in (list(out) if isinstance(out, (list, tuple)) else [out])]
    return output_names_of(arrays, case.call_options), arrays


def engine_core_layer(case, config=None, weights=None):
    """The scratch layer of a ``LayerCase`` from Keras-style ``config`` (default ``case.config``), built on
    the case's input shapes and given ``weights`` (default ``case.weights``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LayerNormalization's rms_scaling deprecation, as Keras's
        layer = from_config(case.layer, case.config if config is None else config)
    weights = case.weights if weights is None else weights
    if weights:
        shapes = [tuple(x.shape) for x in case.input_list()]
        layer.build(shapes if case.multi else shapes[0], initialize=False)
        layer.set_weights(weights)
    return layer


def run_core(layer, inputs, mask, call_options) -> tuple[list, list]:
    """``(names, arrays)``: a scratch layer (or a candidate's layer) called on ``inputs`` with ``mask``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the engine repeats Keras's "does not support masking"
        out = layer(inputs, mask=mask, **call_options)
    arrays = as_arrays(out)
    return output_names_of(arrays, call_options), arrays


def run_core_candidate(candidate, keras_config: dict, case):
    """Call a foreign ``candidate(config, weights, inputs, mask=None, **call_options)`` on a ``LayerCase``:
    copies of everything, ``inputs`` and ``mask`` lists for the multi-input layers."""
    inputs = [x.copy() for x in case.input_list()]
    masks = [None if m is None else m.copy() for m in case.mask_list()]
    if case.multi:
        mask = None if case.mask is None else masks
        out = candidate(dict(keras_config), [w.copy() for w in case.weights], inputs, mask, **case.call_options)
    else:
        out = candidate(dict(keras_config), [w.copy() for w in case.weights], inputs[0], masks[0], **case.call_options)
    arrays = as_arrays(out)
    return output_names_of(arrays, case.call_options), arrays


def core_engine_candidate(layer: str):
    """The scratch engine behind the non-recurrent candidate interface: a fresh layer per call, from
    Keras's ``get_config()``, built on the inputs' shapes."""

    def candidate(config, weights, inputs, mask=None, **call_options):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scratch = from_config(layer, config)
        if weights:
            shapes = [tuple(x.shape) for x in inputs] if isinstance(inputs, list) else tuple(inputs.shape)
            scratch.build(shapes, initialize=False)
            scratch.set_weights(weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scratch(inputs, mask=mask, **call_options)

    candidate.__name__ = candidate.__qualname__ = f"scratch_rnn.{layer}"
    return candidate
