"""PyTorch -> scratch model: :func:`from_torch`, the converse of :mod:`scratch_rnn.ports.to_torch`.

A PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` / ``nn.Linear`` / ``nn.Embedding`` (or an ``nn.Sequential`` of
them, plus the weightless ``nn.Dropout``, ``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softmax(dim=-1)``,
``nn.Identity``) becomes a scratch :class:`~scratch_rnn.models.Sequential` computing what the module computes
in ``eval()`` mode; ``model.save("m.keras")`` then writes a file real Keras 3 loads. Every mapping rule is
written next to the code that applies it (and collected in ``docs/ports.md``, "PyTorch -> Keras").

Layout. The scratch model, like every Keras model, is **batch-first**: ``x (batch, timesteps, features)``.
A recurrent module built with ``batch_first=False`` (PyTorch's default) takes ``(timesteps, batch,
features)``; its converted model takes ``x.transpose(1, 0, 2)`` of that, and returns batch-first outputs.

What a recurrent module "returns" inside a Sequential. ``nn.RNN`` and its kin return ``(output, h_n)``, so in
PyTorch they cannot sit in an ``nn.Sequential`` followed by another module: the tuple reaches it. Here a
recurrent module passes on ``output`` (every timestep, both directions concatenated), which is what a
PyTorch user feeds onwards by hand. ``return_sequences`` decides only the **last** recurrent module:
True (default): its ``output``, ``(batch, timesteps, directions * hidden_size)``; False: its last layer's
final hidden state ``h_n`` (``h_n[-1]``; bidirectional ``torch.cat([h_n[-2], h_n[-1]], -1)``: the forward
direction's state after the last step, the backward direction's after the first), which is what Keras's
``return_sequences=False`` returns and the usual input of a classifier head. It is **not** ``output[:, -1]``
for a bidirectional module (there the backward half is its state after one step).

A module made by :func:`scratch_rnn.ports.to_torch.to_torch` (a scratch model ported to PyTorch, perhaps
fine-tuned there since) comes back too, any layer that port converts: the structure (layers, options, masks)
from the scratch model it was made from, every weight from the module's current PyTorch parameters, read back
through the inverse of each of that port's rules (``weight.T`` for a kernel, the GRU's blocks swapped back,
``b_ih + b_hh`` for SimpleRNN and LSTM).

Only the parameters are read (``named_parameters``); PyTorch is imported only to check module types, when
:func:`from_torch` is called, never at import time.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding
from scratch_rnn.gru import GRU
from scratch_rnn.keras_config import layer_config, model_config
from scratch_rnn.keras_convert import from_config, model_from_config
from scratch_rnn.lstm import LSTM
from scratch_rnn.models import Input, InputLayer, Sequential
from scratch_rnn.saving import with_float_dtype
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.wrappers import Bidirectional

#: The float dtypes a converted model computes in.
_DTYPES = ("float32", "float64")

#: PyTorch activation modules and the Keras activation each is.
_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax", "Identity": "linear"}

_SUPPORTED = "nn.RNN, nn.LSTM, nn.GRU, nn.Linear, nn.Embedding, nn.Dropout, nn.ReLU, nn.Tanh, nn.Sigmoid, " \
    "nn.Softmax(dim=-1), nn.Identity and nn.Sequential of them"  # fmt: skip


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - the ports extra installs torch
        raise ImportError("from_torch needs PyTorch: pip install 'scratch-rnn[ports]'") from err
    return torch


def from_torch(module, *, input_shape=None, return_sequences=True, dtype=None, name=None) -> Sequential:
    """A scratch :class:`~scratch_rnn.models.Sequential` computing what the PyTorch ``module`` computes in
    ``eval()`` mode (dropout off), weights copied.

    Args:
        module: an ``nn.RNN``, ``nn.LSTM``, ``nn.GRU``, ``nn.Linear``, ``nn.Embedding``, a weightless
            ``nn.Dropout`` / ``nn.ReLU`` / ``nn.Tanh`` / ``nn.Sigmoid`` / ``nn.Softmax(dim=-1)`` /
            ``nn.Identity``, or an ``nn.Sequential`` of them (nested ones flattened); or a module made by
            :func:`~scratch_rnn.ports.to_torch.to_torch` (module docstring). Anything else (a subclass of
            these included, and a module with forward hooks: code) is a ValueError naming its type and position.
        input_shape: the input's shape without the batch, batch-first (see the module docstring), e.g.
            ``(timesteps, features)``; a None size is free. Default: ``(None, input_size)`` for a recurrent
            first module, ``(None,)`` token ids (int32) for an ``Embedding``, ``(in_features,)`` for a
            ``Linear``.
        return_sequences: what the last recurrent module gives (module docstring): True its ``output``,
            False its final hidden state ``h_n``.
        dtype: ``"float32"`` or ``"float64"``; default the module's parameters' dtype (which must be one
            of them).
        name: the model's name.
    """
    torch = _torch()
    if _is_port(module):
        if input_shape is not None or return_sequences is not True:
            raise ValueError(
                f"Module {type(module).__name__} was made by to_torch: it keeps its model's input and outputs, so "
                "`input_shape` and `return_sequences` apply only to plain PyTorch modules."
            )
        return _from_port(module, _dtype(module, dtype), name)
    if not isinstance(module, torch.nn.Module):
        raise ValueError(
            f"Received an invalid value for argument `module`, expected a torch.nn.Module, got {module!r:.100}."
        )
    modules = _flatten(module, torch)
    if not modules:
        raise ValueError("Argument `module` is an empty nn.Sequential: there is nothing to convert.")
    dtype = _dtype(module, dtype)
    if not isinstance(return_sequences, bool):
        raise ValueError(
            "Received an invalid value for argument `return_sequences`, expected True or False, "
            f"got {return_sequences!r}."
        )
    recurrent = [i for i, (_, m) in enumerate(modules) if isinstance(m, torch.nn.RNNBase)]
    last_recurrent = recurrent[-1] if recurrent else None
    layers = []
    for i, (where, m) in enumerate(modules):
        sequences = return_sequences or i != last_recurrent
        layers += _convert(m, where, torch, dtype, sequences)
    model_input = _input(modules[0][1], input_shape, torch, dtype)
    return Sequential([model_input, *layers], name=name)


def _flatten(module, torch, prefix="") -> list:
    """``[(position, module)]``: an ``nn.Sequential``'s modules in order, nested ones flattened; the position
    is PyTorch's dotted name (``"0"``, ``"2.1"``), or ``"`module`"`` (the argument) for a lone module."""
    if type(module) is torch.nn.Sequential:  # a subclass may have its own forward: converted (refused) as itself
        found = []
        for key, child in module.named_children():
            found += _flatten(child, torch, f"{prefix}{key}.")
        return found
    return [(prefix.rstrip(".") or "`module`", module)]


def _dtype(module, dtype) -> str:
    """The dtype to compute in: ``dtype``, else the parameters' (float32 or float64, all the same)."""
    if dtype is not None:
        name = getattr(dtype, "name", None) or str(dtype).removeprefix("torch.")
        if name not in _DTYPES:
            raise ValueError(
                f"Received an invalid value for argument `dtype`, expected one of {list(_DTYPES)}, got {dtype!r}."
            )
        return name
    found = {str(p.dtype).removeprefix("torch.") for p in module.parameters()}
    if not found:
        return "float32"
    if len(found) > 1 or not found <= set(_DTYPES):
        raise ValueError(
            f"The parameters of `module` have dtypes {sorted(found)}: from_torch computes in float32 or float64; "
            "pass `dtype=` to convert them."
        )
    return found.pop()


def _input(first, input_shape, torch, dtype) -> Input:
    """The model's :class:`Input`: ``input_shape`` given, else what the first module implies."""
    ids = isinstance(first, torch.nn.Embedding)
    if input_shape is None:
        if isinstance(first, torch.nn.RNNBase):
            input_shape = (None, first.input_size)
        elif isinstance(first, torch.nn.Linear):
            input_shape = (first.in_features,)
        elif ids:
            input_shape = (None,)
        else:
            raise ValueError(
                f"The first module ({type(first).__name__}) does not say the input's size: pass `input_shape=`."
            )
    if not isinstance(input_shape, (tuple, list)) or not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in input_shape
    ):
        raise ValueError(
            "Received an invalid value for argument `input_shape`, expected a tuple of positive ints or None "
            f"(the shape without the batch), got {input_shape!r}."
        )
    return Input(shape=tuple(input_shape), dtype="int32" if ids else dtype)


def _array(tensor, dtype) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(dtype)


def _convert(m, where: str, torch, dtype: str, sequences: bool) -> list:
    """The scratch layers of one PyTorch module (a recurrent module: one per PyTorch layer)."""
    kind = type(m).__name__
    nn = torch.nn
    if m._forward_hooks or m._forward_pre_hooks:
        raise ValueError(
            f"Module {where} ({kind}) has forward hooks: code that may change what it computes, which from_torch "
            "cannot see, so it refuses the module (remove the hooks first)."
        )
    if isinstance(m, nn.RNNBase):
        return _recurrent(m, where, dtype, sequences)
    if type(m) is nn.Linear:  # exact types: a subclass (a LoRA or parametrized Linear) computes something else
        # y = x W^T + b: Keras's Dense kernel is W^T, (in_features, out_features).
        dense = Dense(m.out_features, use_bias=m.bias is not None, dtype=dtype)
        weights = [_array(m.weight, dtype).T] + ([_array(m.bias, dtype)] if m.bias is not None else [])
        dense.build((None, m.in_features), initialize=False)
        dense.set_weights(weights)
        return [dense]
    if type(m) is nn.Embedding:
        # max_norm renormalises the looked-up rows in the forward pass (and rewrites the weight in place):
        # Keras's Embedding has no such step, so it is refused. padding_idx only zeroes that row's gradient
        # (and its initial value): the forward pass is a plain lookup of whatever the row holds, so it is
        # accepted and NOT turned into mask_zero (a mask would change what the next layers compute).
        # scale_grad_by_freq and sparse shape training only.
        if m.max_norm is not None:
            raise ValueError(
                f"Module {where} (nn.Embedding) has max_norm={m.max_norm}: it renormalises rows at lookup, which "
                "Keras's Embedding does not do, so from_torch refuses it."
            )
        embedding = Embedding(m.num_embeddings, m.embedding_dim, dtype=dtype)
        embedding.build((None, None), initialize=False)
        embedding.set_weights([_array(m.weight, dtype)])
        return [embedding]
    if type(m) is nn.Dropout:
        return [Dropout(m.p, dtype=dtype)]  # the identity at inference, as nn.Dropout in eval()
    if kind in _ACTIVATIONS and type(m) is getattr(nn, kind):
        if kind == "Softmax" and m.dim not in (-1,):
            raise ValueError(
                f"Module {where} (nn.Softmax) has dim={m.dim!r}: Keras's softmax activation is over the last "
                "axis, so from_torch takes only dim=-1."
            )
        return [Activation(_ACTIVATIONS[kind], dtype=dtype)]
    raise ValueError(
        f"Module {where} is of type {type(m).__module__}.{kind}, which from_torch does not convert; "
        f"supported: {_SUPPORTED}."
    )


def _recurrent(m, where: str, dtype: str, sequences: bool) -> list:
    """One scratch layer per PyTorch layer of ``m`` (``num_layers``), ``Bidirectional`` when bidirectional."""
    kind = type(m).__name__
    if kind not in ("RNN", "LSTM", "GRU") or not type(m).__module__.startswith("torch.nn"):
        raise ValueError(
            f"Module {where} is of type {type(m).__module__}.{kind}, which from_torch does not convert; "
            f"supported: {_SUPPORTED}."
        )
    if getattr(m, "proj_size", 0):
        raise ValueError(
            f"Module {where} (nn.LSTM) has proj_size={m.proj_size}: its hidden state is projected, which Keras's "
            "LSTM has no weight for, so from_torch refuses it."
        )
    # ``dropout`` (between the stacked layers) acts only in training: ignored, as in eval().
    layers = []
    for k in range(m.num_layers):
        last = k == m.num_layers - 1
        directions = [_direction(m, k, suffix, dtype) for suffix in ([""] + (["_reverse"] if m.bidirectional else []))]
        options = dict(return_sequences=sequences or not last, dtype=dtype)
        layer = _keras_layer(m, options)
        if m.bidirectional:
            # Bidirectional(merge_mode="concat") puts [forward, backward] on the last axis, the backward
            # sequence re-reversed into time order: PyTorch's output layout. Its weights: forward's, then backward's.
            layer = Bidirectional(layer, merge_mode="concat", dtype=dtype)
        input_size = m.input_size if k == 0 else m.hidden_size * (2 if m.bidirectional else 1)
        layer.build((None, None, input_size), initialize=False)
        layer.set_weights([w for weights in directions for w in weights])
        layers.append(layer)
    return layers


def _keras_layer(m, options: dict):
    kind = type(m).__name__
    use_bias = m.bias
    if kind == "RNN":
        # nn.RNN's nonlinearity is SimpleRNN's activation (tanh or relu).
        return SimpleRNN(m.hidden_size, activation=m.nonlinearity, use_bias=use_bias, **options)
    if kind == "LSTM":
        # nn.LSTM's gates are sigmoid, its cell and output activation tanh: LSTM's defaults.
        return LSTM(m.hidden_size, use_bias=use_bias, **options)
    # nn.GRU applies the reset gate after the recurrent product, bias included: reset_after=True.
    return GRU(m.hidden_size, use_bias=use_bias, reset_after=True, **options)


def _direction(m, k: int, suffix: str, dtype: str) -> list[np.ndarray]:
    """Keras's weights of layer ``k``, one direction (``suffix`` ``""`` or ``"_reverse"``) of ``m``:
    ``[kernel, recurrent_kernel(, bias)]``."""
    params = dict(m.named_parameters())
    return keras_rnn_weights(type(m).__name__, lambda name: params.get(f"{name}_l{k}{suffix}"), True, dtype)


def keras_rnn_weights(kind: str, get, reset_after: bool, dtype: str) -> list[np.ndarray]:
    """Keras's ``[kernel, recurrent_kernel(, bias)]`` of a ``kind`` (``"RNN"``/``"SimpleRNN"``, ``"LSTM"``,
    ``"GRU"``) cell from PyTorch's ``get(name)`` (``"weight_ih"``, ``"weight_hh"``, ``"bias_ih"``, ``"bias_hh"``;
    ``"bias"`` for a GRU with ``reset_after=False``, which only :mod:`~scratch_rnn.ports.to_torch` holds; None
    when absent)."""
    w_ih = _array(get("weight_ih"), dtype)  # (G*H, in), PyTorch's gate blocks stacked in rows
    w_hh = _array(get("weight_hh"), dtype)  # (G*H, H)
    b_ih, b_hh = (None if get(n) is None else _array(get(n), dtype) for n in ("bias_ih", "bias_hh"))
    if kind == "GRU":
        # PyTorch's gate blocks are r, z, n; Keras's z, r, h (h is PyTorch's n, same equation with
        # reset_after=True): swap the first two blocks of every weight and bias.
        kernels = [_gru_order(w_ih).T, _gru_order(w_hh).T]  # Keras: x @ kernel (in, 3H); h @ recurrent (H, 3H)
        if not reset_after:  # to_torch's own cell: one (3H,) bias added to the input projection, as Keras's
            bias = get("bias")
            return kernels if bias is None else [*kernels, _gru_order(_array(bias, dtype))]
        if b_ih is None:
            return kernels
        # Keras's GRU(reset_after=True) keeps both biases, bias (2, 3H): row 0 the input one (PyTorch's
        # b_ih), row 1 the recurrent one (b_hh, multiplied by r inside the candidate with b_hn). Not summed.
        return [*kernels, np.stack([_gru_order(b_ih), _gru_order(b_hh)])]
    # nn.RNN and nn.LSTM: LSTM's gate blocks i, f, g, o are Keras's i, f, c, o, in the same order.
    kernels = [w_ih.T, w_hh.T]
    if b_ih is None:
        return kernels
    # Keras's SimpleRNN and LSTM have one bias added once per step; PyTorch adds b_ih and b_hh, both
    # outside any gate product: Keras's bias is their sum.
    return [*kernels, b_ih + b_hh]


def _gru_order(w: np.ndarray) -> np.ndarray:
    """PyTorch's GRU blocks ``[r; z; n]`` (along the first axis) reordered to Keras's ``[z; r; h]`` (a swap
    of the first two blocks: its own inverse)."""
    r, z, n = np.split(w, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


# --- modules made by to_torch ----------------------------------------------------------------------------

#: The modules whose classes :func:`scratch_rnn.ports.to_torch.to_torch` builds.
_PORT_MODULES = ("scratch_rnn.ports.to_torch", "scratch_rnn.ports.torch_core")


def _is_port(module) -> bool:
    return type(module).__module__ in _PORT_MODULES


def _from_port(module, dtype: str, name):
    """A scratch model from a ``to_torch`` module: its scratch model's config (float dtypes set to ``dtype``),
    rebuilt, with every weight read from the module's parameters."""
    kind = type(module).__name__
    if kind == "TorchSequential":
        scratch = list(module.scratch_layers)
        layers = [_fresh(layer, dtype) for layer in scratch]
        first = scratch[0]
        ids = isinstance(first, Embedding)
        model_input = Input(batch_shape=first.input_shape, dtype="int32" if ids else dtype)
        model = Sequential([model_input, *layers], name=name)
        pairs = zip(scratch, module.layers)
    elif kind == "TorchFunctional":
        source = module.model
        config = with_float_dtype(model_config(source), dtype)["config"]
        if name is not None:
            config = {**config, "name": name}
        model = model_from_config(config, keras_version=source.keras_version)
        by_name = {layer.name: layer for layer in source.layers}
        olds = [by_name[layer.name] for layer in model.layers if not isinstance(layer, InputLayer)]
        pairs = [(old, module.by_layer[module.names[id(old)]]) for old in olds]
    else:
        raise ValueError(
            f"Module of type {kind} (from to_torch) is not a model: from_torch reads back the module to_torch makes "
            "of a Sequential or a functional Model."
        )
    model.set_weights([w for old, m in pairs for w in _port_weights(old, m, dtype)])
    return model


def _fresh(layer, dtype: str):
    """An unbuilt copy of a scratch layer computing in ``dtype`` (its Keras config, rewritten, rebuilt)."""
    config = with_float_dtype(layer_config(layer), dtype)
    return from_config(config["class_name"], config["config"])


def _port_weights(layer, m, dtype: str) -> list[np.ndarray]:
    """Keras's weights of scratch ``layer`` read from ``m``, the module to_torch made of it."""
    kind = type(m).__name__
    if kind == "TorchBidirectional":
        return _port_weights(layer.forward_layer, m.forward_layer, dtype) + _port_weights(
            layer.backward_layer, m.backward_layer, dtype
        )
    if kind == "TorchTimeDistributed":
        return _port_weights(layer.layer, m.layer, dtype)
    if kind == "Recurrent":  # one TorchCell per cell; to_torch names their weights as PyTorch does, layer 0
        return [
            w
            for cell in m.cells
            for w in keras_rnn_weights(
                cell.kind, lambda n, cell=cell: cell.weight(n if n == "bias" else f"{n}_l0"), cell.reset_after, dtype
            )
        ]
    weights = []
    for spec in layer.weight_spec():
        key = spec.keras_name
        if key == "kernel":  # to_torch keeps nn.Linear's (units, in) and nn.Conv1d's (filters, in, k) layouts
            w = _array(m.weight, dtype)
            weights.append(w.T if w.ndim == 2 else np.transpose(w, (2, 1, 0)))
        elif key == "bias":
            weights.append(_array(m.bias, dtype))
        else:  # the other layers keep Keras's weights under Keras's names (embeddings, gamma, moving_mean, ...)
            value = getattr(m, key, None)
            if value is None:
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}): its module {kind} holds no {key!r}, so "
                    "from_torch cannot read that weight back."
                )
            weights.append(_array(value, dtype))
    return weights
