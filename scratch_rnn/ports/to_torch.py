"""Keras → PyTorch: a scratch model (or a saved Keras file) as a ``torch.nn.Module`` computing what Keras computes.

:func:`to_torch` converts a scratch layer, :class:`~scratch_rnn.models.Sequential` or functional
:class:`~scratch_rnn.models.Model` (or a ``.keras`` / ``.h5`` path, read with :func:`scratch_rnn.saving.load_model`,
no TensorFlow) into a module in eval mode whose parameters are real ``nn.Parameter`` s (``.to("cuda")`` and
``.double()`` work). It takes torch tensors and returns the structure the scratch model returns: one tensor, or a
list. Every rule that turns Keras's weights and semantics into PyTorch's is written next to its code:

* **Layout.** Keras's kernels are ``(input_dim, G*units)`` for ``x @ kernel``; PyTorch's ``weight_ih_l0`` is
  ``(G*units, input_dim)`` for ``W @ x``: the seed layout the engine already keeps (``Wx``, ``Wh``), so the
  engine's arrays are copied as they are (:mod:`scratch_rnn.keras_layout` is the only place that transposes).
* **Gate order.** LSTM: Keras's ``i, f, c, o`` is PyTorch's ``i, f, g, o`` (same blocks). GRU: Keras's ``z, r, h``
  becomes PyTorch's ``r, z, n`` (:func:`gru_to_torch_order`).
* **Biases.** Keras's SimpleRNN and LSTM have one bias: ``bias_ih = bias``, ``bias_hh = 0``. GRU
  ``reset_after=True`` (Keras 3's default) has a ``(2, 3u)`` bias: row 0 is ``bias_ih``, row 1 ``bias_hh``, which
  PyTorch (like Keras) adds *inside* ``r * (W_hn h + b_hn)``. ``use_bias=False``: PyTorch's ``bias=False``.
* **go_backwards** reads the sequence from its end and returns the outputs in that processing order (Keras's
  order): the port flips the input, never the output. **Bidirectional** flips its backward layer's *sequence*
  back to time order before merging (concat, sum, ave, mul, or None: ``[forward, backward]``); its returned
  states are the forward layer's then the backward layer's, and so is its ``initial_state``.

Two paths compute a recurrent layer, on the same parameters:

* **fused**: PyTorch's own ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (cuDNN on a GPU), when no mask is given and
  PyTorch's cell is Keras's: SimpleRNN with ``tanh`` or ``relu``; LSTM and GRU with ``tanh`` and a ``sigmoid``
  recurrent activation; GRU with ``reset_after=True``.
* **stepwise**: a loop over timesteps in torch operations, Keras's ``backend.rnn`` exactly: at a masked step
  the states are carried and the output repeats the previous output (zeros before the first kept step, leading
  padding included), or is zero with ``zero_output_for_mask`` (Bidirectional sets it when returning sequences);
  ``unroll=True`` zeroes by the mask in input order afterwards, as Keras's unrolled loop does. It also computes
  what the fused path cannot: other activations, GRU ``reset_after=False``. So nothing recurrent is refused
  but ``stateful=True`` (a module holding states between calls is not a port of a function) and Keras's
  ``RNN(cell)`` layer.

Anything without a PyTorch counterpart here is refused by name (:class:`UnsupportedLayerError`, a ValueError).
torch is imported when :func:`to_torch` runs, never when this module is imported.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from scratch_rnn import activations
from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding, Masking
from scratch_rnn.gru import GRU
from scratch_rnn.lstm import LSTM
from scratch_rnn.merging import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from scratch_rnn.models import (
    Any,
    ConcatenateOp,
    ConvertToTensor,
    ExpandDims,
    InputLayer,
    LogicalOr,
    Model,
    NotEqual,
    OnesLike,
    Operation,
    Sequential,
    ZerosLike,
)
from scratch_rnn.regularization import GaussianDropout, GaussianNoise, SpatialDropout1D
from scratch_rnn.rnn import BaseRNN
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.wrappers import Bidirectional, TimeDistributed

#: The layers computed as the identity at inference (Keras's training-only noise and dropout).
IDENTITY = (Dropout, SpatialDropout1D, GaussianNoise, GaussianDropout)
#: The merge layers and what they compute (masks as Keras's, see ``_merge``).
MERGES = (Add, Subtract, Average, Multiply, Maximum, Minimum, Concatenate)


class UnsupportedLayerError(ValueError):
    """A layer, or an option of one, that this port does not convert; the message names both."""


def gru_to_torch_order(w: np.ndarray) -> np.ndarray:
    """GRU gate blocks along the first axis (seed layout ``(3u, ...)`` or a bias ``(3u,)``): Keras's ``z, r, h``
    -> PyTorch's ``r, z, n``. The blocks are the same equations: ``n`` is Keras's candidate ``h``."""
    z, r, h = np.split(w, 3, axis=0)
    return np.concatenate([r, z, h], axis=0)


def torch_rnn_weights(layer: BaseRNN) -> dict:
    """A SimpleRNN, LSTM or GRU's weights as PyTorch names them (``weight_ih_l0``, ...), PyTorch's gate order;
    a GRU with ``reset_after=False`` has no PyTorch counterpart: its names are this port's (one ``bias``)."""
    wx, wh = layer.Wx, layer.Wh  # seed layout: (G*u, F), (G*u, u) = PyTorch's, no transpose
    b = getattr(layer, "b", None) if layer.use_bias else None
    if isinstance(layer, GRU):
        wx, wh = gru_to_torch_order(wx), gru_to_torch_order(wh)
        if not layer.reset_after:
            weights = {"weight_ih_l0": wx, "weight_hh_l0": wh}
            if b is not None:
                weights["bias"] = gru_to_torch_order(b)  # (3u,): added to the input projection
            return weights
        weights = {"weight_ih_l0": wx, "weight_hh_l0": wh}
        if b is not None:  # (2, 3u): row 0 the input bias, row 1 the recurrent one (inside r * (...))
            weights["bias_ih_l0"], weights["bias_hh_l0"] = gru_to_torch_order(b[0]), gru_to_torch_order(b[1])
        return weights
    weights = {"weight_ih_l0": wx, "weight_hh_l0": wh}  # LSTM: i, f, c, o is PyTorch's i, f, g, o
    if b is not None:  # Keras's one bias is PyTorch's b_ih; b_hh is zero
        weights["bias_ih_l0"], weights["bias_hh_l0"] = b, np.zeros_like(b)
    return weights


def fusable(layer: BaseRNN) -> bool:
    """Whether PyTorch's own ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` computes ``layer``'s cell."""
    act = activations.name_of(layer.activation)
    if isinstance(layer, SimpleRNN):
        return act in ("tanh", "relu")
    rec = activations.name_of(layer.recurrent_activation)
    if act != "tanh" or rec != "sigmoid":
        return False
    return not isinstance(layer, GRU) or layer.reset_after


def check_supported(layer) -> None:
    """Refuse, by name, a layer or option this port does not convert."""
    if isinstance(layer, BaseRNN):
        if type(layer) not in (SimpleRNN, LSTM, GRU):
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} ({type(layer).__name__}): to_torch converts SimpleRNN, LSTM and GRU layers, "
                "not Keras's RNN(cell) layer."
            )
        if layer.stateful:
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has stateful=True: to_torch converts stateless "
                "layers (pass the states as initial_state instead)."
            )
        return
    if isinstance(layer, Bidirectional):
        check_supported(layer.forward_layer)
        check_supported(layer.backward_layer)
        return
    if isinstance(layer, TimeDistributed):
        check_supported(layer.layer)
        return
    if isinstance(layer, (Dense, Embedding, Masking, Activation, InputLayer, *IDENTITY, *MERGES)):
        return
    what = "Dot (normalize and axes)" if isinstance(layer, Dot) else type(layer).__name__
    raise UnsupportedLayerError(
        f"Layer {layer.name!r} ({what}): to_torch has no conversion for it; supported: SimpleRNN, LSTM, GRU, "
        "Bidirectional, TimeDistributed, Dense, Embedding, Masking, Activation, Dropout and the noise layers, "
        "Add, Subtract, Average, Multiply, Maximum, Minimum, Concatenate."
    )


def to_torch(model, *, fused: bool = True):
    """``model`` (a scratch layer, Sequential or Model, or a .keras/.h5 path) as a ``torch.nn.Module`` in eval mode.

    The module's ``forward`` takes what the scratch model's call takes, as torch tensors: ``forward(x, mask=None)``
    for a model (a list for several inputs), ``forward(x, mask=None, initial_state=None)`` for a recurrent layer.
    ``fused=False`` computes every recurrent layer with the stepwise loop even without a mask (the readable
    equations; ``tests/test_to_torch.py`` holds the two paths equal). An unsupported layer or option raises
    :class:`UnsupportedLayerError` naming it.
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from scratch_rnn.saving import load_model

        model = load_model(model)
    if not isinstance(fused, (bool, np.bool_)):
        raise ValueError(f"Argument `fused` must be True or False, got {fused!r}.")
    t = _torch_classes()
    if isinstance(model, Sequential):
        if not model.built:
            raise ValueError(f"Argument `model`: model {model.name!r} is not built (give it an Input or call it).")
        converted = t.TorchSequential(model, bool(fused))
    elif isinstance(model, Model):
        converted = t.TorchFunctional(model, bool(fused))
    elif hasattr(model, "weight_spec") and hasattr(model, "compute_mask"):
        if not model.built:
            raise ValueError(f"Argument `model`: layer {model.name!r} is not built (set its weights or call it).")
        converted = t.convert_layer(model, bool(fused))
    else:
        raise ValueError(
            "Argument `model` must be a scratch_rnn layer, Sequential or Model, or the path of a .keras/.h5 file, "
            f"got {type(model).__name__}."
        )
    return converted.eval()


@functools.cache
def _torch_classes():
    """The ``torch.nn.Module`` classes of the port, defined on first use (torch is imported then, not before)."""
    import torch
    from torch import nn

    def parameter(array) -> nn.Parameter:
        return nn.Parameter(torch.from_numpy(np.array(array, order="C")), requires_grad=False)

    def activation(name: str):
        """Keras's activation ``name`` in torch, the formula the engine and Keras 3 use."""
        return {
            "linear": lambda x: x,
            "tanh": torch.tanh,
            "relu": torch.relu,
            "sigmoid": torch.sigmoid,
            "hard_sigmoid": lambda x: torch.clamp(x + 3, 0, 6) / 6,  # Keras 3's relu6(x + 3) / 6
            "softmax": lambda x: torch.softmax(x, dim=-1),
        }[name]

    def cast(x, like):
        """``x`` in ``like``'s float dtype and device (a layer computes in its dtype, as Keras casts its input)."""
        if torch.is_floating_point(x) and (x.dtype != like.dtype or x.device != like.device):
            return x.to(dtype=like.dtype, device=like.device)
        return x

    class Recurrent(nn.Module):
        """A SimpleRNN, LSTM or GRU: PyTorch's fused module where it computes Keras's cell, else the stepwise
        loop, both on the same parameters (PyTorch's names, layout and gate order; see the module docstring)."""

        def __init__(self, layer: BaseRNN, fused: bool):
            super().__init__()
            self.kind = type(layer).__name__
            self.units = layer.units
            self.go_backwards = layer.go_backwards
            self.return_sequences = layer.return_sequences
            self.return_state = layer.return_state
            self.zero_output_for_mask = layer.zero_output_for_mask
            self.unroll = layer.unroll
            self.act_name = activations.name_of(layer.activation)
            self.rec_name = activations.name_of(getattr(layer, "recurrent_activation", activations.sigmoid))
            self.reset_after = getattr(layer, "reset_after", True)
            self.fusable = fusable(layer)
            self.fused = fused and self.fusable
            self.n_states = 2 if self.kind == "LSTM" else 1
            weights = torch_rnn_weights(layer)
            if self.kind == "GRU" and not self.reset_after:
                self.rnn = None  # no PyTorch module computes reset-before; the parameters are held here
                self.params = nn.ParameterDict({k: parameter(v) for k, v in weights.items()})
            else:
                cls = {"SimpleRNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[self.kind]
                extra = {"nonlinearity": self.act_name if self.fusable else "tanh"} if self.kind == "SimpleRNN" else {}
                dtype = torch.from_numpy(weights["weight_ih_l0"][:0]).dtype
                self.rnn = cls(
                    layer.input_dim, layer.units, bias=layer.use_bias, batch_first=True, dtype=dtype, **extra
                )
                with torch.no_grad():
                    for name, value in weights.items():
                        getattr(self.rnn, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
                self.rnn.requires_grad_(False)

        def weight(self, name):
            return self.params[name] if self.rnn is None and name in self.params else getattr(self.rnn, name, None)

        def forward(self, x, mask=None, initial_state=None):
            w = self.weight("weight_ih_l0")
            x = cast(x, w)  # (B, T, F)
            batch = x.shape[0]
            if initial_state is None:
                states = [x.new_zeros((batch, self.units)) for _ in range(self.n_states)]
            else:
                given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
                if len(given) != self.n_states:
                    raise ValueError(
                        f"Argument `initial_state` must hold {self.n_states} tensor(s) (batch, {self.units}), "
                        f"got {len(given)}."
                    )
                states = [cast(torch.as_tensor(s), w) for s in given]
            if mask is None and self.fused:
                last, seq, states = self.fused_call(x, states)
            else:
                last, seq, states = self.stepwise(x, states, mask)
            out = seq if self.return_sequences else last
            return [out, *states] if self.return_state else out

        def fused_call(self, x, states):
            """PyTorch's module on the sequence in processing order: outputs stay in that order (Keras's)."""
            if self.go_backwards:
                x = torch.flip(x, dims=[1])
            h0 = [s.unsqueeze(0).contiguous() for s in states]  # (1, B, u) each
            seq, final = self.rnn(x, (h0[0], h0[1]) if self.kind == "LSTM" else h0[0])
            final = [f[0] for f in final] if self.kind == "LSTM" else [final[0]]  # [(B, u), ...]
            return final[0], seq, final

        def cell(self, xp, states):
            """One step: ``xp`` ``(B, G*u)`` the input projection (input bias included) -> the new states
            (the first is the output). PyTorch's gate order (see the module docstring)."""
            h = states[0]  # (B, u)
            act, rec = activation(self.act_name), activation(self.rec_name)
            w_hh, b_hh = self.weight("weight_hh_l0"), self.weight("bias_hh_l0")
            if self.kind == "GRU" and not self.reset_after:
                u = self.units
                x_r, x_z, x_n = xp.split(u, dim=-1)
                rz = h @ w_hh[: 2 * u].T  # (B, 2u): gates r, z
                r, z = rec(x_r + rz[:, :u]), rec(x_z + rz[:, u:])
                n = act(x_n + (r * h) @ w_hh[2 * u :].T)  # reset before the matmul
                h = z * h + (1 - z) * n
                return [h]
            inner = h @ w_hh.T  # (B, G*u)
            if b_hh is not None:
                inner = inner + b_hh
            if self.kind == "SimpleRNN":
                return [act(xp + inner)]
            if self.kind == "LSTM":
                i, f, g, o = (xp + inner).split(self.units, dim=-1)  # Keras's i, f, c, o
                c = rec(f) * states[1] + rec(i) * act(g)
                return [rec(o) * act(c), c]
            x_r, x_z, x_n = xp.split(self.units, dim=-1)
            h_r, h_z, h_n = inner.split(self.units, dim=-1)
            r, z = rec(x_r + h_r), rec(x_z + h_z)
            n = act(x_n + r * h_n)  # reset after the matmul, b_hn inside
            return [z * h + (1 - z) * n]

        def stepwise(self, x, states, mask):
            """Keras's ``backend.rnn`` loop (``scratch_rnn.rnn.recurrence``) in torch operations."""
            w_ih = self.weight("weight_ih_l0")
            b_ih = self.weight("bias") if self.rnn is None else self.weight("bias_ih_l0")
            steps = x.shape[1]
            if mask is not None:
                mask = torch.as_tensor(mask).to(device=x.device, dtype=torch.bool)  # (B, T)
            seq_x = torch.flip(x, dims=[1]) if self.go_backwards else x  # processing order
            kept = None if mask is None else (torch.flip(mask, dims=[1]) if self.go_backwards else mask)
            xp = seq_x @ w_ih.T  # (B, T, G*u)
            if b_ih is not None:
                xp = xp + b_ih
            zero_at_step = self.zero_output_for_mask and not self.unroll
            last = states[0].new_zeros(states[0].shape)  # the previous output
            outputs = []
            for t in range(steps):
                new = self.cell(xp[:, t], states)
                out = new[0]
                if kept is not None:
                    k = kept[:, t, None]  # (B, 1)
                    new = [torch.where(k, n, s) for n, s in zip(new, states)]  # masked samples keep their states
                    last = torch.where(k, out, torch.zeros_like(out) if zero_at_step else last)
                    out = last
                states = new
                outputs.append(out)
            seq = torch.stack(outputs, dim=1)  # (B, T, u), processing order
            last = outputs[-1]
            if self.unroll and self.zero_output_for_mask and mask is not None:  # Keras's unrolled loop
                last = torch.where(mask[:, 0 if self.go_backwards else -1, None], last, torch.zeros_like(last))
                seq = torch.where(mask[:, :, None], seq, torch.zeros_like(seq))  # the mask in input order
            return last, seq, states

    class TorchBidirectional(nn.Module):
        def __init__(self, layer: Bidirectional, fused: bool):
            super().__init__()
            self.forward_layer = Recurrent(layer.forward_layer, fused)
            self.backward_layer = Recurrent(layer.backward_layer, fused)
            self.merge_mode = layer.merge_mode
            self.return_sequences = layer.return_sequences
            self.return_state = layer.return_state

        def forward(self, x, mask=None, initial_state=None):
            fw_state = bw_state = None
            if initial_state is not None:
                half = len(initial_state) // 2
                fw_state, bw_state = list(initial_state[:half]), list(initial_state[half:])
            y = self.forward_layer(x, mask, fw_state)
            y_rev = self.backward_layer(x, mask, bw_state)
            states = []
            if self.return_state:
                states = y[1:] + y_rev[1:]
                y, y_rev = y[0], y_rev[0]
            if self.return_sequences:
                y_rev = torch.flip(y_rev, dims=[1])  # (B, T, u): back to time order
            if self.merge_mode == "concat":
                outputs = [torch.cat([y, y_rev], dim=-1)]
            elif self.merge_mode == "sum":
                outputs = [y + y_rev]
            elif self.merge_mode == "ave":
                outputs = [(y + y_rev) / 2]
            elif self.merge_mode == "mul":
                outputs = [y * y_rev]
            else:
                outputs = [y, y_rev]
            outputs += states
            return outputs[0] if len(outputs) == 1 else outputs

    class TorchDense(nn.Module):
        def __init__(self, layer: Dense):
            super().__init__()
            self.linear = nn.Linear(layer.input_dim, layer.units, bias=layer.use_bias, dtype=_dtype(layer.W))
            with torch.no_grad():
                self.linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.W)))  # (u, F): seed = PyTorch
                if layer.use_bias:
                    self.linear.bias.copy_(torch.from_numpy(layer.b))
            self.linear.requires_grad_(False)
            self.act_name = activations.name_of(layer.activation)

        def forward(self, x, mask=None):
            return activation(self.act_name)(self.linear(cast(x, self.linear.weight)))

    class TorchEmbedding(nn.Module):
        def __init__(self, layer: Embedding):
            super().__init__()
            self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(np.array(layer.embeddings)), freeze=True)
            self.input_dim = layer.input_dim

        def forward(self, x, mask=None):
            ids = torch.as_tensor(x)
            if torch.is_floating_point(ids):
                ids = torch.trunc(ids)  # the engine's (and Keras's) cast of float ids
            ids = ids.long()
            ids = torch.where(ids < 0, ids + self.input_dim, ids)  # ids in [-input_dim, 0) count from the end
            return self.embedding(ids)

    class TorchMasking(nn.Module):
        def __init__(self, layer: Masking):
            super().__init__()
            self.mask_value = float(layer.mask_value)
            self.dtype = _dtype(np.zeros(0, layer.dtype))

        def keep(self, x):
            x = x.to(self.dtype) if torch.is_floating_point(x) else x.to(self.dtype)
            return x, torch.any(x != torch.tensor(self.mask_value, dtype=self.dtype), dim=-1)

        def forward(self, x, mask=None):
            x, keep = self.keep(x)
            return torch.where(keep[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))

    class TorchActivation(nn.Module):
        def __init__(self, layer: Activation):
            super().__init__()
            self.act_name = activations.name_of(layer.activation)

        def forward(self, x, mask=None):
            return activation(self.act_name)(x)

    class Identity(nn.Module):
        """Dropout and the noise layers: the identity at inference."""

        def forward(self, x, mask=None):
            return x

    class TorchTimeDistributed(nn.Module):
        def __init__(self, layer: TimeDistributed, fused: bool):
            super().__init__()
            self.layer = convert_layer(layer.layer, fused)

        def forward(self, x, mask=None):
            batch, steps = x.shape[:2]
            y = self.layer(x.reshape(batch * steps, *x.shape[2:]))  # (B*T, ...): every step at once
            return y.reshape(batch, steps, *y.shape[1:])

    class TorchMerge(nn.Module):
        """Keras's merge layers (``merging.py``): the same operations in the same order, masks included."""

        def __init__(self, layer):
            super().__init__()
            self.kind = type(layer).__name__
            self.axis = getattr(layer, "axis", -1)

        def forward(self, inputs, mask=None):
            xs = list(inputs)
            if self.kind == "Concatenate":
                return torch.cat(xs, dim=self.axis)
            masks = [None] * len(xs) if mask is None else list(mask)
            rank = max(x.dim() for x in xs)
            xs = [x.reshape(x.shape[0], *(1,) * (rank - x.dim()), *x.shape[1:]) for x in xs]  # expand at axis 1
            if self.kind in ("Add", "Average"):
                y = xs[0]
                for x in xs[1:]:
                    y = y + x
                return y / len(xs) if self.kind == "Average" else y
            if self.kind == "Subtract":
                return xs[0] - xs[1]
            expanded = [None if m is None else torch.as_tensor(m, device=x.device)[..., None].expand(x.shape)
                        for x, m in zip(xs, masks)]  # fmt: skip
            if self.kind == "Multiply":
                every = all(m is not None for m in expanded)
                y = keep = None
                for x, m in zip(xs, expanded):
                    if m is not None:
                        x = torch.where(m, x, torch.ones((), dtype=x.dtype, device=x.device))
                        if every:
                            keep = m if keep is None else keep | m
                    y = x if y is None else y * x
                return torch.where(keep, y, torch.zeros((), dtype=y.dtype, device=y.device)) if every else y
            op = torch.maximum if self.kind == "Maximum" else torch.minimum
            y = keep = None
            for x, m in zip(xs, expanded):
                if y is None:
                    y, keep = x, m
                    continue
                if m is not None:
                    x = torch.where(m, x, y)
                if keep is not None:
                    y = torch.where(keep, y, x)
                keep = keep | m if (m is not None and keep is not None) else None
                y = op(y, x)
            return y

    def convert_layer(layer, fused: bool) -> nn.Module:
        """One scratch layer as a module; :class:`UnsupportedLayerError` for anything else."""
        check_supported(layer)
        if isinstance(layer, BaseRNN):
            return Recurrent(layer, fused)
        if isinstance(layer, Bidirectional):
            return TorchBidirectional(layer, fused)
        if isinstance(layer, TimeDistributed):
            return TorchTimeDistributed(layer, fused)
        if isinstance(layer, Dense):
            return TorchDense(layer)
        if isinstance(layer, Embedding):
            return TorchEmbedding(layer)
        if isinstance(layer, Masking):
            return TorchMasking(layer)
        if isinstance(layer, Activation):
            return TorchActivation(layer)
        if isinstance(layer, MERGES):
            return TorchMerge(layer)
        return Identity()  # the identity layers (and an InputLayer, never called)

    def output_mask(layer, first, previous_mask):
        """The mask ``layer`` attaches to its output, as its ``compute_mask`` computes it, on torch tensors: the
        layers that compute one from their input (Embedding, Masking, the merges) in torch; the others' masks only
        pass on or stop (their own ``compute_mask`` runs, it reads no values)."""
        if isinstance(layer, Embedding):
            return torch.as_tensor(first) != 0 if layer.mask_zero else None
        if isinstance(layer, Masking):
            return torch.any(
                cast(first, torch.zeros((), dtype=_dtype(np.zeros(0, layer.dtype)))) != layer.mask_value, -1
            )
        if isinstance(layer, Concatenate):
            masks = previous_mask if isinstance(previous_mask, (list, tuple)) else [None] * len(first)
            if all(m is None for m in masks):
                return None
            full = [
                torch.ones(x.shape, dtype=torch.bool, device=x.device) if m is None else m[..., None].expand(x.shape)
                for x, m in zip(first, masks)
            ]
            return torch.any(torch.cat(full, dim=layer.axis), dim=-1)
        if isinstance(layer, MERGES):
            masks = previous_mask if isinstance(previous_mask, (list, tuple)) else [None]
            if any(m is None for m in masks):
                return None
            out = masks[0]
            for m in masks[1:]:
                out = out | m
            return out
        return layer.compute_mask(first, previous_mask)

    # The mask operations a functional model records (models.py), in torch.
    def run_operation(op, args, kwargs):
        if isinstance(op, NotEqual):
            return torch.as_tensor(args[0]) != (args[1] if not isinstance(args[1], torch.Tensor) else args[1])
        if isinstance(op, Any):
            x = torch.as_tensor(args[0]).bool()
            return torch.any(x) if op.axis is None else torch.any(x, dim=op.axis, keepdim=op.keepdims)
        if isinstance(op, (ZerosLike, OnesLike)):
            make = torch.zeros_like if isinstance(op, ZerosLike) else torch.ones_like
            return make(args[0], dtype=_torch_dtype(op.dtype) if op.dtype is not None else None)
        if isinstance(op, ConvertToTensor):
            x = torch.as_tensor(args[0])
            return x if op.dtype is None else x.to(_torch_dtype(op.dtype))
        if isinstance(op, ExpandDims):
            return torch.unsqueeze(args[0], op.axis)
        if isinstance(op, LogicalOr):
            return torch.logical_or(args[0], args[1])
        if isinstance(op, ConcatenateOp):
            return torch.cat(list(args[0]), dim=op.axis)
        raise UnsupportedLayerError(f"Operation {op.name!r} ({type(op).__name__}): to_torch has no conversion for it.")

    def _torch_dtype(dtype):
        return {"bool": torch.bool, "float32": torch.float32, "float64": torch.float64, "int32": torch.int32,
                "int64": torch.int64}[np.dtype(dtype).name]  # fmt: skip

    def _dtype(array):
        return torch.from_numpy(np.zeros(0, np.asarray(array).dtype)).dtype

    class TorchSequential(nn.Module):
        """A Sequential: each layer gets the mask its predecessor computes, as the engine's ``Sequential``."""

        def __init__(self, model: Sequential, fused: bool):
            super().__init__()
            self.scratch_layers = list(model.layers)  # for their masks' structure (compute_mask)
            self.layers = nn.ModuleList([convert_layer(layer, fused) for layer in model.layers])

        def forward(self, x, mask=None):
            for scratch, module in zip(self.scratch_layers, self.layers):
                x, mask = module(x, mask=mask), output_mask(scratch, x, mask)
            return x

    class TorchFunctional(nn.Module):
        """A functional Model: its graph's nodes run in the engine's order (``Model._nodes``), masks passed and
        attached by the engine's rules (``Model._run_node``), each layer's computation by its module."""

        def __init__(self, model: Model, fused: bool):
            super().__init__()
            self.model = model  # the graph (not a module: its arrays are the scratch engine's)
            self.by_layer = nn.ModuleDict()
            self.names = {}
            for layer in model.layers:
                if isinstance(layer, InputLayer):
                    continue
                key = f"l{len(self.names)}"
                self.names[id(layer)] = key
                self.by_layer[key] = convert_layer(layer, fused)

        def forward(self, inputs, mask=None):
            model = self.model
            arrays = [inputs] if model._single_input and not isinstance(inputs, (list, tuple)) else list(inputs)
            if len(arrays) != len(model.inputs):
                raise ValueError(f"Model {model.name!r} expects {len(model.inputs)} input(s), got {len(arrays)}.")
            masks = (
                [None] * len(arrays) if mask is None else (list(mask) if isinstance(mask, (list, tuple)) else [mask])
            )
            values, value_masks = {}, {}
            for tensor, array, m in zip(model.inputs, arrays, masks):
                array = torch.as_tensor(array)
                if tensor.dtype.kind == "f" and torch.is_floating_point(array) is False:
                    array = array.to(_torch_dtype(tensor.dtype))
                values[id(tensor)] = array
                value_masks[id(tensor)] = None if m is None else torch.as_tensor(m).bool()
            for node in model._nodes:
                if not node.is_input:
                    self.run_node(node, values, value_masks)
            outputs = [values[id(t)] for t in model.outputs]
            return outputs[0] if model._single_output else outputs

        def run_node(self, node, values, value_masks):
            """``Model._run_node`` with torch values: the same mask rules, the layer's module computing."""
            from scratch_rnn import symbolic
            from scratch_rnn.models import _RECURRENT, _fill_first, _leaves

            layer = node.layer
            args, kwargs = node.fill_in(values)
            if isinstance(layer, Operation):
                outputs = run_operation(layer, args, kwargs)
                outputs = outputs if isinstance(outputs, list) else [outputs]
                for tensor, value in zip(node.outputs, outputs):
                    values[id(tensor)], value_masks[id(tensor)] = value, None
                return
            if node.auto_mask:
                kwargs.pop("mask")
            recorded = {key: value for key, value in node.kwargs.items() if not (node.auto_mask and key == "mask")}
            bound = symbolic.inspect.signature(layer.call).bind(*node.args, **recorded).arguments
            first = next(iter(bound.values()))
            first_mask = symbolic.map_structure(
                lambda t: value_masks.get(id(t)) if isinstance(t, symbolic.SymbolicTensor) else None, first
            )
            tensor_args = [name for name, value in bound.items() if symbolic._is_tensor_argument(value)]
            has_mask = any(m is not None for m in _leaves(first_mask))
            if len(tensor_args) == 1 and symbolic.takes_mask(layer) and kwargs.get("mask") is None and has_mask:
                kwargs["mask"] = first_mask
            previous_mask = kwargs["mask"] if kwargs.get("mask") is not None else first_mask
            module = self.by_layer[self.names[id(layer)]]
            if not symbolic.takes_mask(layer) and "mask" in kwargs and isinstance(layer, (Masking,)):
                kwargs.pop("mask")
            outputs = module(*args, **kwargs)
            several = len(node.outputs) > 1
            outputs = outputs if several else [outputs]
            masks = [None] * len(outputs)
            if layer.supports_masking:
                if not model_passes_masks(self.model) and isinstance(
                    layer, (_RECURRENT, Bidirectional, TimeDistributed)
                ):
                    computed = None
                else:
                    computed = output_mask(layer, next(iter(_fill_first(args, kwargs, layer))), previous_mask)
                if not several:
                    masks = [computed]
                elif isinstance(computed, (list, tuple)):
                    masks = list(computed) + [None] * (len(outputs) - len(computed))
                else:
                    masks[0] = computed
            for tensor, value, m in zip(node.outputs, outputs, masks):
                values[id(tensor)], value_masks[id(tensor)] = value, m

    def model_passes_masks(model) -> bool:
        return model.semantics["sequence_layers_pass_mask"]

    return types.SimpleNamespace(
        Recurrent=Recurrent,
        TorchBidirectional=TorchBidirectional,
        TorchSequential=TorchSequential,
        TorchFunctional=TorchFunctional,
        convert_layer=convert_layer,
    )
