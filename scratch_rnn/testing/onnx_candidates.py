"""ONNX Runtime sessions as candidates: the exported ONNX file of a layer or model, run against Keras.

Each candidate converts what the harness hands it (Keras's ``get_config()`` and ``get_weights()``, or a
saved model file) into a scratch layer or model, exports it with :func:`scratch_rnn.ports.to_onnx.to_onnx`
and runs the file in ONNX Runtime; the harness compares what comes out with Keras. So a green sweep proves
the *exported file*, not the engine (which has its own sweep).

* :func:`layer_candidate` ``(layer)`` -> ``candidate(config, weights, x, mask=None, initial_state=None)`` for
  :func:`~scratch_rnn.testing.verify.verify` of SimpleRNN, LSTM, GRU, Bidirectional; :data:`simple_rnn`,
  :data:`lstm`, :data:`gru`, :data:`bidirectional` are those, for ``--candidate
  scratch_rnn.testing.onnx_candidates:lstm``.
* :func:`core_layer_candidate` ``(layer)`` -> ``candidate(config, weights, inputs, mask=None)`` for the
  non-recurrent layers the exporter writes.
* :func:`model` ``(model_file, inputs)`` for :func:`~scratch_rnn.testing.model_verify.verify_model`: the file
  loaded by :func:`scratch_rnn.load_model` in the inputs' float dtype (float64 when a float input is),
  exported and run; :func:`model64` computes in float64 whatever the inputs (a token-id model's float64 lane).

Sessions run on one thread (the harness runs in parallel processes) and are cached by the exported bytes,
so Hypothesis's replays of a case while shrinking do not rebuild them. ``rules`` (every factory) exports with
a conversion rule broken: the ONNX mutants (:mod:`scratch_rnn.testing.onnx_mutants`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict

import numpy as np

from scratch_rnn.keras_convert import from_config
from scratch_rnn.ports.to_onnx import layer_call_to_onnx, to_onnx

_SESSIONS: OrderedDict = OrderedDict()
_CACHE_SIZE = 16


def session(proto):
    """An ONNX Runtime session of ``proto`` (an ``onnx.ModelProto``), cached by its bytes; one thread."""
    import onnxruntime as ort

    data = proto.SerializeToString()
    key = hashlib.sha256(data).hexdigest()
    if key in _SESSIONS:
        _SESSIONS.move_to_end(key)
        return _SESSIONS[key]
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    made = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    _SESSIONS[key] = made
    while len(_SESSIONS) > _CACHE_SIZE:
        _SESSIONS.popitem(last=False)
    return made


def run(proto, feeds: dict) -> list[np.ndarray]:
    """``proto`` run on ``feeds`` (input name -> array); the outputs in the graph's order."""
    return session(proto).run(None, feeds)


def _states(initial_state) -> list:
    if initial_state is None:
        return []
    return list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]


def layer_candidate(layer: str, rules=None, recurrent: str = "auto"):
    """The recurrent ``layer`` (``"SimpleRNN"``, ``"LSTM"``, ``"GRU"``, ``"Bidirectional"``) exported to ONNX and
    run in ONNX Runtime, behind :func:`~scratch_rnn.testing.verify.verify`'s candidate interface;
    ``recurrent`` is :func:`~scratch_rnn.ports.to_onnx.to_onnx`'s."""

    def candidate(config, weights, x, mask=None, initial_state=None):
        scratch = from_config(layer, config)
        scratch.set_weights(weights)
        states = _states(initial_state)
        proto = to_onnx(
            scratch, None, recurrent=recurrent, mask=mask is not None, initial_state=bool(states), rules=rules
        )
        feeds = {"x": np.asarray(x, dtype=scratch.dtype)}
        if mask is not None:
            feeds["mask"] = np.asarray(mask, dtype=bool)
        for k, state in enumerate(states):
            feeds[f"initial_state_{k}"] = np.asarray(state, dtype=scratch.dtype)
        outs = run(proto, feeds)
        return outs[0] if len(outs) == 1 else outs

    form = "" if recurrent == "auto" else f"[{recurrent}]"
    candidate.__name__ = candidate.__qualname__ = f"onnx.{layer}{form}"
    return candidate


def core_layer_candidate(layer: str, rules=None):
    """A non-recurrent ``layer`` (one input, or a list for a merge; masks as graph inputs) exported alone and run
    in ONNX Runtime; Attention's call options (``use_causal_mask``, ``return_attention_scores``) are passed on."""

    def candidate(config, weights, inputs, mask=None, **call_options):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scratch = from_config(layer, config)
        several = isinstance(inputs, (list, tuple))
        xs = [np.asarray(x) for x in inputs] if several else [np.asarray(inputs)]
        masks = (list(mask) if several else [mask]) if mask is not None else []
        masks = (masks + [None] * len(xs))[: len(xs)]  # Attention's [query_mask, value_mask] for 3 inputs
        shapes = [(None, *x.shape[1:]) for x in xs]
        scratch.build(shapes if several else shapes[0], initialize=not weights)
        if weights:
            scratch.set_weights(weights)
        xs = [x.astype(scratch.dtype) if x.dtype.kind == "f" else x for x in xs]
        specs = [(x.dtype, x.shape) for x in xs]
        has = [m is not None for m in masks]
        options = {key: value for key, value in call_options.items() if value}  # Attention's, when set
        proto = layer_call_to_onnx(
            scratch, specs if several else specs[0], has if several else has[0], rules=rules, options=options
        )
        feeds = {}
        for i, (x, m) in enumerate(zip(xs, masks)):
            suffix = f"_{i}" if several else ""
            feeds[f"x{suffix}"] = x
            if m is not None:
                feeds[f"mask{suffix}"] = np.asarray(m, dtype=bool)
        outs = run(proto, feeds)
        return outs[0] if len(outs) == 1 else outs

    candidate.__name__ = candidate.__qualname__ = f"onnx.{layer}"
    return candidate


def model_candidate(dtype=None, rules=None, recurrent: str = "auto"):
    """``candidate(model_file, inputs)``: the saved model loaded by :func:`scratch_rnn.load_model` (in
    ``dtype``; None: float64 if a float input is float64, else as saved), exported and run."""

    def candidate(model_file, inputs):
        from scratch_rnn.saving import load_model

        arrays = [np.asarray(x) for x in inputs]
        wanted = dtype
        if wanted is None and any(a.dtype == np.float64 for a in arrays):
            wanted = "float64"
        scratch = load_model(model_file, dtype=wanted)
        proto = to_onnx(scratch, None, recurrent=recurrent, rules=rules)
        names = [i.name for i in proto.graph.input]
        kinds = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
        numpy_of = {1: np.float32, 11: np.float64, 6: np.int32, 7: np.int64, 9: np.bool_}
        feeds = {name: a.astype(numpy_of[kinds[name]]) for name, a in zip(names, arrays)}
        outs = run(proto, feeds)
        return outs[0] if len(outs) == 1 else outs

    candidate.__name__ = candidate.__qualname__ = "onnx.model" if dtype is None else f"onnx.model_{dtype}"
    return candidate


def layer(config, weights, x, mask=None, initial_state=None):
    """A Keras recurrent layer (or Bidirectional) call computed by its ONNX export in ONNX Runtime; the class is
    read from the config (``scratch-rnn verify --port onnx``)."""
    from scratch_rnn.testing.case import LAYERS
    from scratch_rnn.testing.torch_candidates import layer_kind  # torch itself is not imported

    return layer_candidate(layer_kind(config, LAYERS))(config, weights, x, mask, initial_state)


def core_layer(config, weights, inputs, mask=None, **call_options):
    """A Keras non-recurrent layer call computed by its ONNX export in ONNX Runtime."""
    from scratch_rnn.testing.case import CORE_LAYERS
    from scratch_rnn.testing.torch_candidates import layer_kind

    return core_layer_candidate(layer_kind(config, CORE_LAYERS))(config, weights, inputs, mask, **call_options)


layer.__qualname__ = core_layer.__qualname__ = "to_onnx"

simple_rnn = layer_candidate("SimpleRNN")
lstm = layer_candidate("LSTM")
gru = layer_candidate("GRU")
bidirectional = layer_candidate("Bidirectional")
simple_rnn_scan = layer_candidate("SimpleRNN", recurrent="scan")
lstm_scan = layer_candidate("LSTM", recurrent="scan")
gru_scan = layer_candidate("GRU", recurrent="scan")
bidirectional_scan = layer_candidate("Bidirectional", recurrent="scan")
model = model_candidate()
model64 = model_float64 = model_candidate("float64")
