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

Only the parameters are read (``named_parameters``); PyTorch is imported only to check module types, when
:func:`from_torch` is called, never at import time.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding
from scratch_rnn.gru import GRU
from scratch_rnn.lstm import LSTM
from scratch_rnn.models import Input, Sequential
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
            ``nn.Identity``, or an ``nn.Sequential`` of them (nested ones flattened). Anything else is a
            ValueError naming its type and position.
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
    is PyTorch's dotted name (``"0"``, ``"2.1"``), or ``"module"`` for a lone module."""
    if isinstance(module, torch.nn.Sequential):
        found = []
        for key, child in module.named_children():
            found += _flatten(child, torch, f"{prefix}{key}.")
        return found
    return [(prefix.rstrip(".") or "module", module)]


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
    if isinstance(m, nn.RNNBase):
        return _recurrent(m, where, dtype, sequences)
    if isinstance(m, nn.Linear):
        # y = x W^T + b: Keras's Dense kernel is W^T, (in_features, out_features).
        dense = Dense(m.out_features, use_bias=m.bias is not None, dtype=dtype)
        weights = [_array(m.weight, dtype).T] + ([_array(m.bias, dtype)] if m.bias is not None else [])
        dense.build((None, m.in_features), initialize=False)
        dense.set_weights(weights)
        return [dense]
    if isinstance(m, nn.Embedding):
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
    if isinstance(m, nn.Dropout):
        return [Dropout(m.p, dtype=dtype)]  # the identity at inference, as nn.Dropout in eval()
    if kind in _ACTIVATIONS and type(m).__module__.startswith("torch.nn"):
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
    w_ih = _array(params[f"weight_ih_l{k}{suffix}"], dtype)  # (G*H, in), PyTorch's gate blocks stacked in rows
    w_hh = _array(params[f"weight_hh_l{k}{suffix}"], dtype)  # (G*H, H)
    b_ih = _array(params[f"bias_ih_l{k}{suffix}"], dtype) if m.bias else None  # (G*H,)
    b_hh = _array(params[f"bias_hh_l{k}{suffix}"], dtype) if m.bias else None
    if type(m).__name__ == "GRU":
        # PyTorch's gate blocks are r, z, n; Keras's z, r, h (h is PyTorch's n, same equation with
        # reset_after=True): swap the first two blocks of every weight and bias.
        w_ih, w_hh = _gru_order(w_ih), _gru_order(w_hh)
        kernels = [w_ih.T, w_hh.T]  # Keras: x @ kernel, (in, 3H); h @ recurrent_kernel, (H, 3H)
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
    """PyTorch's GRU blocks ``[r; z; n]`` (along the first axis) reordered to Keras's ``[z; r; h]``."""
    r, z, n = np.split(w, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)
