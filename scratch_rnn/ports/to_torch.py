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
  what the fused path cannot: other activations, GRU ``reset_after=False``, Keras's ``RNN(cell)`` and stacked
  cells. So nothing recurrent is refused but ``stateful=True`` (a module holding states between calls is not a
  port of a function: pass the states as ``initial_state``).

The non-recurrent layers are in :mod:`scratch_rnn.ports.torch_core`. Anything without a conversion is refused by
name (:class:`UnsupportedLayerError`, a ValueError). A functional model runs the engine's graph
(``Model._nodes``) with the engine's rules of which layer gets which mask.
torch is imported when :func:`to_torch` runs, never when this module is imported.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from scratch_rnn import activations
from scratch_rnn.attention import Attention
from scratch_rnn.cells import StackedRNNCells
from scratch_rnn.core_layers import Embedding, Masking
from scratch_rnn.gru import GRU
from scratch_rnn.merging import Concatenate, Dot
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
    Sequential,
    ZerosLike,
)
from scratch_rnn.ports import torch_core
from scratch_rnn.ports.torch_core import torch_dtype
from scratch_rnn.rnn import BaseRNN
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.wrappers import Bidirectional, TimeDistributed, merge_directions


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
    if isinstance(layer, (InputLayer, *torch_core.SUPPORTED)):
        return
    supported = ", ".join(["SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed"] + SUPPORTED_CORE)
    raise UnsupportedLayerError(
        f"Layer {layer.name!r} ({type(layer).__name__}): to_torch has no conversion for it; supported: {supported}."
    )


#: The non-recurrent layers' names, for the refusal message.
SUPPORTED_CORE = sorted({cls.__name__ for cls in torch_core.SUPPORTED})


def to_torch(model, *, fused: bool = True):
    """``model`` (a scratch layer, Sequential or Model, a .keras/.h5 path, or a Keras object, converted by
    :func:`scratch_rnn.from_keras`) as a ``torch.nn.Module`` in eval mode.

    The module's ``forward`` takes what the scratch model's call takes, as torch tensors: ``forward(x, mask=None)``
    for a model (a list for several inputs), ``forward(x, mask=None, initial_state=None)`` for a recurrent layer.
    ``fused=False`` computes every recurrent layer with the stepwise loop even without a mask (the readable
    equations; ``tests/test_to_torch.py`` holds the two paths equal). An unsupported layer or option raises
    :class:`UnsupportedLayerError` naming it.
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from scratch_rnn.saving import load_model

        model = load_model(model)
    elif type(model).__module__.split(".")[0] in ("keras", "tf_keras"):  # a live Keras model or layer
        from scratch_rnn.keras_convert import from_keras

        model = from_keras(model)
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

    _, activation, _, parameter = torch_core._torch()

    def cast(x, like):
        """``x`` in ``like``'s float dtype and device (a layer computes in its dtype, as Keras casts its input)."""
        if torch.is_floating_point(x) and (x.dtype != like.dtype or x.device != like.device):
            return x.to(dtype=like.dtype, device=like.device)
        return x

    class TorchCell(nn.Module):
        """One SimpleRNN, LSTM or GRU cell's weights (PyTorch's names, layout and gate order; see the module
        docstring) in PyTorch's own module where one computes the cell (``self.rnn``, which the fused path runs),
        else here; and the cell's step in torch operations, which the stepwise path runs on the same weights."""

        def __init__(self, layer: BaseRNN):
            super().__init__()
            self.kind = type(layer).__name__
            self.units = layer.units
            self.act_name = activations.name_of(layer.activation)
            self.rec_name = activations.name_of(getattr(layer, "recurrent_activation", activations.sigmoid))
            self.reset_after = getattr(layer, "reset_after", True)
            self.fusable = fusable(layer)
            self.n_states = 2 if self.kind == "LSTM" else 1
            weights = torch_rnn_weights(layer)
            if self.kind == "GRU" and not self.reset_after:
                self.rnn = None  # no PyTorch module computes reset-before; the parameters are held here
                self.params = nn.ParameterDict({k: parameter(v) for k, v in weights.items()})
                return
            cls = {"SimpleRNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[self.kind]
            extra = {"nonlinearity": self.act_name if self.fusable else "tanh"} if self.kind == "SimpleRNN" else {}
            dtype = torch_dtype(weights["weight_ih_l0"].dtype)
            self.rnn = cls(layer.input_dim, layer.units, bias=layer.use_bias, batch_first=True, dtype=dtype, **extra)
            with torch.no_grad():
                for name, value in weights.items():
                    getattr(self.rnn, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
            self.rnn.requires_grad_(False)

        def weight(self, name):
            """A weight by PyTorch's name (``bias`` for GRU reset-before); None when the layer has no bias."""
            if self.rnn is None:
                return self.params[name] if name in self.params else None
            return getattr(self.rnn, name, None)

        def project(self, x):
            """``x`` ``(..., F)`` -> ``(..., G*u)``: the input projection, input bias included."""
            b_ih = self.weight("bias") if self.rnn is None else self.weight("bias_ih_l0")
            xp = x @ self.weight("weight_ih_l0").T
            return xp if b_ih is None else xp + b_ih

        def step(self, xp, states):
            """One step: ``xp`` ``(B, G*u)`` from :meth:`project` and the states -> the new states (the first is
            the output)."""
            h = states[0]  # (B, u)
            act, rec = activation(self.act_name), activation(self.rec_name)
            w_hh, b_hh = self.weight("weight_hh_l0"), self.weight("bias_hh_l0")
            if self.kind == "GRU" and not self.reset_after:
                u = self.units
                x_r, x_z, x_n = xp.split(u, dim=-1)
                rz = h @ w_hh[: 2 * u].T  # (B, 2u): gates r, z
                r, z = rec(x_r + rz[:, :u]), rec(x_z + rz[:, u:])
                n = act(x_n + (r * h) @ w_hh[2 * u :].T)  # reset before the matmul
                return [z * h + (1 - z) * n]
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

    class Recurrent(nn.Module):
        """A SimpleRNN, LSTM or GRU layer, or Keras's ``RNN`` over a cell or stacked cells: PyTorch's fused module
        where it computes Keras's layer (one cell, no mask), else the stepwise loop, on the same weights."""

        def __init__(self, layer: BaseRNN, fused: bool):
            super().__init__()
            cell = getattr(layer, "cell", None)  # Keras's RNN(cell): the cells' own layers hold the weights
            stack = None if cell is None else (cell.cells if isinstance(cell, StackedRNNCells) else [cell])
            self.stacked = isinstance(cell, StackedRNNCells)
            self.cells = nn.ModuleList([TorchCell(layer)] if stack is None else [TorchCell(c.layer) for c in stack])
            self.units = self.cells[-1].units
            self.go_backwards = layer.go_backwards
            self.return_sequences = layer.return_sequences
            self.return_state = layer.return_state
            self.zero_output_for_mask = layer.zero_output_for_mask
            self.unroll = layer.unroll
            self.fused = fused and len(self.cells) == 1 and self.cells[0].fusable

        @property
        def kind(self) -> str:
            return self.cells[0].kind

        def weight(self, name):
            """The (first) cell's weight by PyTorch's name."""
            return self.cells[0].weight(name)

        @property
        def rnn(self):
            return self.cells[0].rnn

        @property
        def params(self):
            return self.cells[0].params

        def forward(self, x, mask=None, initial_state=None):
            w = self.weight("weight_ih_l0")
            x = cast(x, w)  # (B, T, F)
            sizes = [cell.units for cell in self.cells for _ in range(cell.n_states)]
            if initial_state is None:
                states = [x.new_zeros((x.shape[0], size)) for size in sizes]
            else:
                given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
                if self.stacked and len(given) == len(self.cells):  # Keras's form: one entry per cell
                    given = [s for entry in given for s in (entry if isinstance(entry, (list, tuple)) else [entry])]
                if len(given) != len(sizes):
                    raise ValueError(
                        f"Argument `initial_state` must hold {len(sizes)} tensor(s) (batch, size) of sizes {sizes}, "
                        f"got {len(given)}."
                    )
                states = [cast(torch.as_tensor(s), w) for s in given]
            if mask is None and self.fused:
                last, seq, states = self.fused_call(x, states)
            else:
                last, seq, states = self.stepwise(x, states, mask)
            out = seq if self.return_sequences else last
            if not self.return_state:
                return out
            if not self.stacked:
                return [out, *states]
            grouped, start = [], 0  # Keras returns a stack's states one list per cell
            for cell in self.cells:
                grouped.append(states[start : start + cell.n_states])
                start += cell.n_states
            return [out, *grouped]

        def fused_call(self, x, states):
            """PyTorch's module on the sequence in processing order: outputs stay in that order (Keras's)."""
            if self.go_backwards:
                x = torch.flip(x, dims=[1])
            h0 = [s.unsqueeze(0).contiguous() for s in states]  # (1, B, u) each
            seq, final = self.rnn(x, (h0[0], h0[1]) if self.kind == "LSTM" else h0[0])
            final = [f[0] for f in final] if self.kind == "LSTM" else [final[0]]  # [(B, u), ...]
            return final[0], seq, final

        def step(self, xp_first, states):
            """All cells one step: the first cell's projection given, each next cell fed the previous output."""
            new, start, inp = [], 0, None
            for k, cell in enumerate(self.cells):
                xp = xp_first if k == 0 else cell.project(inp)
                out = cell.step(xp, states[start : start + cell.n_states])
                new += out
                inp = out[0]
                start += cell.n_states
            return new, inp

        def stepwise(self, x, states, mask):
            """Keras's ``backend.rnn`` loop (``scratch_rnn.rnn.recurrence``) in torch operations."""
            steps = x.shape[1]
            if mask is not None:
                mask = torch.as_tensor(mask).to(device=x.device, dtype=torch.bool)  # (B, T)
            seq_x = torch.flip(x, dims=[1]) if self.go_backwards else x  # processing order
            kept = None if mask is None else (torch.flip(mask, dims=[1]) if self.go_backwards else mask)
            xp = self.cells[0].project(seq_x)  # (B, T, G*u): every step's input projection at once
            zero_at_step = self.zero_output_for_mask and not self.unroll
            last = x.new_zeros((x.shape[0], self.units))  # the previous output
            outputs = []
            for t in range(steps):
                new, out = self.step(xp[:, t], states)
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
            outputs = merge_directions(y, y_rev, self.merge_mode, lambda parts: torch.cat(parts, dim=-1))
            outputs += states
            return outputs[0] if len(outputs) == 1 else outputs

    class TorchTimeDistributed(nn.Module):
        def __init__(self, layer: TimeDistributed, fused: bool):
            super().__init__()
            self.layer = convert_layer(layer.layer, fused)

        def forward(self, x, mask=None):
            batch, steps = x.shape[:2]
            if mask is not None:  # each step's mask, as the engine (and Keras) gives the wrapped layer
                mask = torch.as_tensor(mask).reshape(batch * steps, *mask.shape[2:])
            y = self.layer(x.reshape(batch * steps, *x.shape[2:]), mask=mask)  # (B*T, ...): every step at once
            return y.reshape(batch, steps, *y.shape[1:])

    def convert_layer(layer, fused: bool) -> nn.Module:
        """One scratch layer as a module; :class:`UnsupportedLayerError` for anything else."""
        check_supported(layer)
        if isinstance(layer, BaseRNN):
            return Recurrent(layer, fused)
        if isinstance(layer, Bidirectional):
            return TorchBidirectional(layer, fused)
        if isinstance(layer, TimeDistributed):
            return TorchTimeDistributed(layer, fused)
        if isinstance(layer, InputLayer):
            return nn.Identity()  # never called: a model's inputs are its arguments
        return torch_core.convert(layer)

    def output_mask(layer, first, previous_mask):
        """The mask ``layer`` attaches to its output, as its ``compute_mask`` computes it, on torch tensors: the
        layers that compute one from their input (Embedding, Masking, the merges) in torch; the others' masks only
        pass on or stop (their own ``compute_mask`` runs, it reads no values)."""
        if isinstance(layer, Embedding):
            return torch.as_tensor(first) != 0 if layer.mask_zero else None
        if isinstance(layer, Masking):
            x = torch.as_tensor(first).to(torch_dtype(layer.dtype))  # compared in the layer's dtype
            return torch.any(x != torch.tensor(layer.mask_value, dtype=x.dtype, device=x.device), dim=-1)
        if isinstance(layer, Dot):
            return None  # a dot product has no output mask
        if isinstance(layer, Attention):  # the query's mask (AdditiveAttention's too)
            return (
                None if not isinstance(previous_mask, (list, tuple)) or previous_mask[0] is None else previous_mask[0]
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
        if isinstance(layer, torch_core.MERGES):
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
            return make(args[0], dtype=torch_dtype(op.dtype) if op.dtype is not None else None)
        if isinstance(op, ConvertToTensor):
            x = torch.as_tensor(args[0])
            return x if op.dtype is None else x.to(torch_dtype(op.dtype))
        if isinstance(op, ExpandDims):
            return torch.unsqueeze(args[0], op.axis)
        if isinstance(op, LogicalOr):
            return torch.logical_or(args[0], args[1])
        if isinstance(op, ConcatenateOp):
            return torch.cat(list(args[0]), dim=op.axis)
        raise UnsupportedLayerError(f"Operation {op.name!r} ({type(op).__name__}): to_torch has no conversion for it.")

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
                    array = array.to(torch_dtype(tensor.dtype))
                values[id(tensor)] = array
                value_masks[id(tensor)] = None if m is None else torch.as_tensor(m).bool()
            for node in model._nodes:
                if not node.is_input:
                    self.run_node(node, values, value_masks)
            outputs = [values[id(t)] for t in model.outputs]
            return outputs[0] if model._single_output else outputs

        def run_node(self, node, values, value_masks):
            """``Model._run_node`` with torch values: the engine's mask rules, the layer's module computing."""
            self.model._run_node(node, values, value_masks, compute=self)

        def operation(self, op, args, kwargs):
            return run_operation(op, args, kwargs)

        def call(self, layer, args, kwargs):
            return self.by_layer[self.names[id(layer)]](*args, **kwargs)

        def compute_mask(self, layer, first, previous_mask):
            return output_mask(layer, first, previous_mask)

    return types.SimpleNamespace(
        Recurrent=Recurrent,
        TorchBidirectional=TorchBidirectional,
        TorchSequential=TorchSequential,
        TorchFunctional=TorchFunctional,
        convert_layer=convert_layer,
    )
