"""The PyTorch port (:func:`scratch_rnn.ports.to_torch.to_torch`) behind the harness's candidate interfaces.

* :func:`layer` -- ``layer(config, weights, x, mask=None, initial_state=None)``, the recurrent sweep's
  (``scratch-rnn verify --candidate scratch_rnn.testing.torch_candidates:layer --layer GRU``);
* :func:`core_layer` -- ``core_layer(config, weights, inputs, mask=None, **call_options)``, the
  non-recurrent layers' (``--layer core``);
* :func:`model` -- ``model(model_file, inputs)``, :func:`~scratch_rnn.testing.model_verify.verify_model`'s
  (``--model FILE``); :func:`model_float64` is the same port computing in float64 (the float64 lane).

``scratch-rnn verify --port torch`` picks the right one for each ``--layer`` and ``--model``. Each call builds
the scratch layer from Keras's ``get_config()`` (:func:`scratch_rnn.keras_convert.from_config`), sets Keras's
weights, converts it and runs the PyTorch module on the CPU in the config's dtype (float32 or float64), under
``torch.no_grad()``; outputs come back as NumPy arrays in Keras's structure. The layer's class is read from its
Keras name (``gru_3`` is a GRU: Keras names a layer after its class), the config's keys deciding otherwise.
torch is imported when a candidate runs, not with this module.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from scratch_rnn.keras_convert import from_config
from scratch_rnn.ports.to_torch import to_torch
from scratch_rnn.testing.case import CORE_LAYERS, LAYERS


def snake_case(class_name: str) -> str:
    """Keras's ``to_snake_case`` (``keras/src/utils/naming.py``): the prefix of a layer's automatic name."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_kind(config: dict, candidates=LAYERS + CORE_LAYERS) -> str:
    """The Keras class of the layer ``config`` (a Keras ``get_config()``) describes, from its automatic name
    (``simple_rnn_2`` -> ``SimpleRNN``), else from the options only one recurrent class has."""
    name = str(config.get("name", ""))
    for kind in sorted(candidates, key=len, reverse=True):  # additive_attention before attention
        if re.fullmatch(rf"{snake_case(kind)}(_\d+)?", name):
            return kind
    if "layer" in config and "merge_mode" in config:
        return "Bidirectional"
    if "unit_forget_bias" in config:
        return "LSTM"
    if "reset_after" in config:
        return "GRU"
    if "return_sequences" in config and "units" in config:
        return "SimpleRNN"
    raise ValueError(
        f"Argument `config`: cannot tell which layer {name!r} is (not a Keras automatic name, and its options do "
        "not say); name the layer with the candidate factory for_layer(kind)."
    )


def _tensor(array):
    import torch

    return None if array is None else torch.from_numpy(np.ascontiguousarray(array))


def _numpy(out):
    return [o.detach().cpu().numpy() for o in out] if isinstance(out, (list, tuple)) else out.detach().cpu().numpy()


def run_recurrent(module, x, mask=None, initial_state=None):
    """A converted recurrent layer or Bidirectional called on NumPy arrays; NumPy outputs, Keras's structure."""
    import torch

    states = None if initial_state is None else [_tensor(s) for s in initial_state]
    with torch.no_grad():
        return _numpy(module(_tensor(x), _tensor(mask), states))


def for_layer(kind: str, convert=to_torch):
    """The recurrent candidate for layer class ``kind`` (``"GRU"``, ``"Bidirectional"``, ...); ``convert``
    turns the scratch layer into the module (the port mutants pass a buggy one)."""

    def candidate(config, weights, x, mask=None, initial_state=None):
        scratch = from_config(kind, config)
        scratch.set_weights(weights)
        return run_recurrent(convert(scratch), x, mask, initial_state)

    candidate.__name__ = candidate.__qualname__ = f"to_torch({kind})"
    return candidate


def layer(config, weights, x, mask=None, initial_state=None):
    """A Keras recurrent layer (or Bidirectional) call computed by its PyTorch port."""
    return for_layer(layer_kind(config, LAYERS))(config, weights, x, mask, initial_state)


layer.__qualname__ = "to_torch"


def for_core_layer(kind: str, convert=to_torch):
    """The non-recurrent candidate for layer class ``kind`` (``"Dense"``, ``"Concatenate"``, ...)."""

    def candidate(config, weights, inputs, mask=None, **call_options):
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LayerNormalization's rms_scaling deprecation, as Keras's
            scratch = from_config(kind, config)
        multi = isinstance(inputs, (list, tuple))
        shapes = [tuple(x.shape) for x in inputs] if multi else tuple(inputs.shape)
        scratch.build(shapes, initialize=False)
        if weights:
            scratch.set_weights(weights)
        module = convert(scratch)
        xs = [_tensor(x) for x in inputs] if multi else _tensor(inputs)
        masks = None
        if mask is not None:
            masks = [_tensor(m) for m in mask] if isinstance(mask, (list, tuple)) else _tensor(mask)
        with torch.no_grad():
            return _numpy(module(xs, mask=masks, **call_options))

    candidate.__name__ = candidate.__qualname__ = f"to_torch({kind})"
    return candidate


def core_layer(config, weights, inputs, mask=None, **call_options):
    """A Keras non-recurrent layer call computed by its PyTorch port."""
    return for_core_layer(layer_kind(config, CORE_LAYERS))(config, weights, inputs, mask, **call_options)


core_layer.__qualname__ = "to_torch"

_CACHE: dict = {}


def _converted(model_file: str, dtype: str | None):
    """The file's scratch model (in ``dtype``; None: as saved) converted, once per file version."""
    from scratch_rnn.saving import load_model

    stat = os.stat(model_file)
    key = (os.path.abspath(model_file), stat.st_mtime_ns, stat.st_size, dtype)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = to_torch(load_model(model_file, dtype=dtype))
    return _CACHE[key]


def model(model_file, inputs, dtype: str | None = None):
    """A saved Keras model's call computed by its PyTorch port: ``inputs`` one array per model input. The port
    computes in ``dtype``; None: float64 when a float input is float64 (the harness's float64 lane), else as
    saved."""
    import torch

    inputs = list(inputs)
    if dtype is None and any(np.asarray(x).dtype == np.float64 for x in inputs):
        dtype = "float64"
    module = _converted(os.fspath(model_file), dtype)
    xs = [_tensor(np.asarray(x)) for x in inputs]
    with torch.no_grad():
        return _numpy(module(xs if len(xs) > 1 else xs[0]))


model.__qualname__ = "to_torch"


def model_float64(model_file, inputs):
    """:func:`model` computing in float64 (a model whose inputs are all token ids says nothing of the lane)."""
    return model(model_file, inputs, dtype="float64")


model_float64.__qualname__ = "to_torch (float64)"
