"""Keras's recurrent layers as ONNX: the RNN/LSTM/GRU operators where they compute what Keras computes, a Scan
of Keras's own step equations where they cannot (a mask; SimpleRNN in float64).

The operators (ONNX ``docs/Operators.md``), from Keras's weights in the engine's seed layout
(``Wx (G*units, input_dim)`` is ONNX's ``W`` per direction, ``Wh`` its ``R``; no transpose here):

* gate order: Keras's LSTM blocks are i, f, c, o; ONNX's are i, o, f, c (:data:`ONNX_LSTM_ORDER`).
  Keras's GRU blocks z, r, h are ONNX's z, r, h already.
* biases: ONNX's ``B`` is ``[Wb, Rb]`` per direction. SimpleRNN and LSTM: Keras's one bias is ``Wb``,
  ``Rb`` zeros. GRU ``reset_after=True``: row 0 is ``Wb``, row 1 ``Rb``, ``linear_before_reset=1``
  (``r * (h @ Rh + Rbh)``); ``reset_after=False``: the bias is ``Wb``, ``Rb`` zeros,
  ``linear_before_reset=0`` (``(r * h) @ Rh``).
* activations: ``[recurrent_activation, activation, activation]`` for LSTM (f, g, h), ``[recurrent_activation,
  activation]`` for GRU, ``[activation]`` for SimpleRNN (:data:`~scratch_rnn.ports.onnx_graph.RNN_ACTIVATIONS`).
  ONNX Runtime reads ``activation_alpha``/``activation_beta`` only for the activations that take them, in
  order (measured: a list with an entry per activation misplaces HardSigmoid's alpha).
* ``go_backwards``: ``direction="reverse"``. ONNX's reverse ``Y`` is in input time order; Keras returns the
  sequence in processing order (reversed), so ``Y`` is reversed back. ``Y_h`` is the final state either way.
* ``Bidirectional`` (forward layer forward, backward layer ``go_backwards``): one ``direction="bidirectional"``
  operator; its backward ``Y`` is in input time order, which is where Keras flips the backward sequence.

With a mask, Keras's loop (keras/src/backend/tensorflow/rnn.py) carries each state through a masked step and
repeats the previous output (zeros before the first kept step), or outputs zeros with
``zero_output_for_mask``; the operators' ``sequence_lens`` only expresses trailing padding. So a masked layer
is a ``Scan`` over time whose body is Keras's step followed by ``Where(mask_t, new, old)`` on every state and
the output: exactly Keras's semantics, for any mask. Keras's ``unroll=True`` with ``zero_output_for_mask``
then zeros the outputs where the mask *in input order* is False (the engine's :func:`scratch_rnn.rnn.recurrence`
documents that difference); reproduced.

float64: ONNX Runtime (1.32, measured) has no double kernel for ``RNN``, and its ``LSTM`` and ``GRU`` double
kernels are registered but refuse to run ("LSTM operator does not support double yet"). So a float64 layer
is the same Scan (MatMul, Add, Tanh, Sigmoid, Relu, Clip, Where run in double): exact Keras semantics in
float64, on ONNX's generic ops rather than its recurrent operators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratch_rnn.ports.onnx_graph import RNN_ACTIVATIONS, GraphBuilder, activation
from scratch_rnn.simple_rnn import SimpleRNN

#: Keras's LSTM gate blocks (i, f, c, o) taken in ONNX's order (i, o, f, c).
ONNX_LSTM_ORDER = (0, 3, 1, 2)
#: Keras's GRU blocks (z, r, h) in ONNX's order: the same.
ONNX_GRU_ORDER = (0, 1, 2)


@dataclass(frozen=True)
class Rules:
    """The conversion rules. The defaults are right; the ONNX mutants of the gallery
    (:mod:`scratch_rnn.testing.onnx_mutants`) each export with one rule broken. The Scan form honours each
    broken rule the way the operator would read it (gate blocks, reset side, time order), so a planted bug is
    in every export: float32 or float64, masked or not."""

    lstm_order: tuple = ONNX_LSTM_ORDER
    gru_order: tuple = ONNX_GRU_ORDER
    flip_linear_before_reset: bool = False
    reverse_for_go_backwards: bool = True  # direction="reverse" for a go_backwards layer
    rereverse_backward: bool = True  # a go_backwards layer's Y back to processing order
    bidirectional_backward_in_time_order: bool = True  # a Bidirectional's backward sequence in time order
    hard_sigmoid_alpha: float = 1 / 6


def kind(layer) -> str:
    """``"SimpleRNN"``, ``"LSTM"`` or ``"GRU"``; anything else (``RNN(cell)``, ...) refused by name."""
    name = type(layer).__name__
    if name not in ("SimpleRNN", "LSTM", "GRU"):
        raise ValueError(
            f"to_onnx: layer {layer.name!r} ({name}) is not exported; the recurrent layers exported are "
            "SimpleRNN, LSTM and GRU (an RNN(cell) layer is refused)."
        )
    return name


def check_exportable(layer) -> None:
    kind(layer)
    if layer.stateful:
        raise ValueError(
            f"to_onnx: layer {layer.name!r} has stateful=True; an ONNX graph keeps no state between runs "
            "(pass the states as initial_state inputs instead)."
        )


def _activations(layer, rules: Rules) -> list[tuple]:
    names = [layer.activation.__name__]
    if kind(layer) == "LSTM":
        names = [layer.recurrent_activation.__name__, names[0], names[0]]
    elif kind(layer) == "GRU":
        names = [layer.recurrent_activation.__name__, names[0]]
    out = []
    for name in names:
        onnx_name, alpha, beta = RNN_ACTIVATIONS[name]
        if name == "hard_sigmoid":
            alpha = rules.hard_sigmoid_alpha
        out.append((onnx_name, alpha, beta))
    return out


def _gates(layer, rules: Rules):
    return {"SimpleRNN": (0,), "LSTM": rules.lstm_order, "GRU": rules.gru_order}[kind(layer)]


def _reorder(array, order) -> np.ndarray:
    return np.concatenate([np.split(array, len(order), axis=0)[k] for k in order], axis=0)


def _wrb(layer, rules: Rules):
    """ONNX's ``W (G*U, F)``, ``R (G*U, U)``, ``B (2*G*U,)`` for one direction, from the seed layout."""
    order = _gates(layer, rules)
    u = layer.units
    g = len(order)
    w, r = _reorder(layer.Wx, order), _reorder(layer.Wh, order)
    wb, rb = np.zeros(g * u, layer.dtype), np.zeros(g * u, layer.dtype)
    if layer.use_bias:
        bias = np.asarray(layer.b)
        if bias.ndim == 2:  # GRU reset_after: row 0 input bias, row 1 recurrent bias
            wb, rb = _reorder(bias[0], order), _reorder(bias[1], order)
        else:
            wb = _reorder(bias, order)
    return w, r, np.concatenate([wb, rb])


#: ``to_onnx``'s ``recurrent`` choices: ``"auto"`` ONNX's LSTM and GRU operators where they can and a Scan for
#: SimpleRNN (ONNX Runtime's RNN operator is both slower than the Scan and outside the float32 tolerance on tiny
#: outputs: docs/ports.md), ``"operators"`` all three operators where they can, or ``"scan"`` always the Scan.
RECURRENT_FORMS = ("auto", "operators", "scan")


def use_operator(layer, masked: bool, form: str = "auto") -> bool:
    """Whether the ONNX operator computes this layer (else a Scan does)."""
    if masked or layer.dtype != np.float32 or form == "scan":
        return False
    return form == "operators" or not isinstance(layer, SimpleRNN)


def reverse_time(b: GraphBuilder, x: str, axis: int) -> str:
    """``x`` with axis ``axis`` reversed (a Slice with step -1)."""
    big = np.iinfo(np.int64).max
    return b.op("Slice", [x, b.ints([-1]), b.ints([-big]), b.ints([axis]), b.ints([-1])])


def operator(b: GraphBuilder, layers: list, x_tm: str, initial: list | None, rules: Rules):
    """One ONNX RNN/LSTM/GRU node for ``layers`` (one layer, or a Bidirectional's [forward, backward]) on
    time-major ``x_tm (T, B, F)``; returns ``(Y (T, D, B, U), [Y_h (D, B, U), Y_c])`` with Y in input time
    order. ``initial``: per layer a list of ``(B, U)`` state names, or None."""
    name = kind(layers[0])
    dtype = layers[0].dtype
    if len(layers) == 2:
        direction = "bidirectional"
    elif layers[0].go_backwards and rules.reverse_for_go_backwards:
        direction = "reverse"
    else:
        direction = "forward"
    w, r, bias = zip(*(_wrb(layer, rules) for layer in layers))
    acts = [a for layer in layers for a in _activations(layer, rules)]
    attrs = {
        "hidden_size": layers[0].units,
        "direction": direction,
        "activations": [a[0] for a in acts],
    }
    alphas = [a[1] for a in acts if a[1] is not None]
    betas = [a[2] for a in acts if a[2] is not None]
    if alphas:
        attrs.update(activation_alpha=alphas, activation_beta=betas)
    if name == "GRU":
        attrs["linear_before_reset"] = int(layers[0].reset_after != rules.flip_linear_before_reset)
    inputs = [x_tm, b.const(np.stack(w), "W", dtype), b.const(np.stack(r), "R", dtype), b.const(np.stack(bias), "B")]
    if initial is not None:
        inputs.append("")  # sequence_lens
        for k in range(len(initial[0])):  # h (and c): (D, B, U)
            states = [b.op("Unsqueeze", [b.cast(s[k], dtype), b.ints([0])]) for s in initial]
            inputs.append(states[0] if len(states) == 1 else b.op("Concat", states, axis=0))
    outs = b.op(name if name != "SimpleRNN" else "RNN", inputs, outputs=3 if name == "LSTM" else 2, **attrs)
    return outs[0], outs[1:]


def emit(
    b: GraphBuilder, layer, x: str, mask: str | None, initial: list | None, rules: Rules, form: str = "auto"
) -> list[str]:
    """``layer`` (SimpleRNN, LSTM, GRU) on ``x (B, T, F)``: what the layer call returns, as value names
    (``[output]`` or ``[output, *states]`` with return_state). ``mask (B, T)`` bool or None; ``initial`` a list
    of ``(B, U)`` names or None."""
    x = b.cast(x, layer.dtype)
    x_tm = b.op("Transpose", [x], perm=[1, 0, 2])  # (T, B, F)
    if use_operator(layer, mask is not None, form):
        y, states = operator(b, [layer], x_tm, None if initial is None else [initial], rules)
        states = [b.op("Squeeze", [s, b.ints([0])]) for s in states]  # (B, U) each
        last = states[0]
        seq = None
        if layer.return_sequences:
            seq = b.op("Squeeze", [y, b.ints([1])])  # (T, B, U), input time order
            if layer.go_backwards and rules.rereverse_backward:
                seq = reverse_time(b, seq, 0)  # Keras: processing order
        if not layer.return_sequences or layer.return_state:
            last = b.op("Identity", [last])  # its own tensor, as Keras returns two
    else:
        seq, last, states = scan(b, layer, x_tm, mask, initial, rules)
        if layer.go_backwards and not rules.rereverse_backward:  # the planted bug, in the Scan form too
            seq = reverse_time(b, seq, 0)
    output = b.op("Transpose", [seq], perm=[1, 0, 2]) if layer.return_sequences else last
    return [output, *states] if layer.return_state else [output]


# --- the Scan: Keras's step, masked --------------------------------------------------------------------


def _step(b: GraphBuilder, layer, weights: list, z: str, h: str, c: str | None, rules: Rules):
    """Keras's step on ``z = x_t @ kernel + bias (B, G*U)`` (GRU reset_after: the input part only) and the
    states; returns the new states ``[h]`` or ``[h, c]``. Gate blocks in Keras's order."""
    u, dtype = layer.units, layer.dtype
    kernel = weights[1]  # Keras's recurrent_kernel (U, G*U)

    def act(fn, value):
        return activation(b, fn.__name__, value, rules.hard_sigmoid_alpha)

    def split(value, n):
        return b.op("Split", [value, b.ints([u] * n)], outputs=n, axis=-1)

    name = kind(layer)
    if name == "SimpleRNN":
        return [act(layer.activation, b.op("Add", [z, b.op("MatMul", [h, b.const(kernel, "recurrent", dtype)])]))]
    if name == "LSTM":
        zi, zf, zc, zo = split(b.op("Add", [z, b.op("MatMul", [h, b.const(kernel, "recurrent", dtype)])]), 4)
        i, f, o = (act(layer.recurrent_activation, v) for v in (zi, zf, zo))
        c = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, act(layer.activation, zc)])])
        return [b.op("Mul", [o, act(layer.activation, c)]), c]
    x_z, x_r, x_h = split(z, 3)
    rb = weights[2][1] if layer.use_bias and weights[2].ndim == 2 else None  # the recurrent bias (3U,)
    if layer.reset_after != rules.flip_linear_before_reset:  # reset after the matmul (ONNX linear_before_reset=1)
        inner = b.op("MatMul", [h, b.const(kernel, "recurrent", dtype)])
        if rb is not None:
            inner = b.op("Add", [inner, b.const(rb, "recurrent_bias", dtype)])
        h_z, h_r, h_h = split(inner, 3)
        zg = act(layer.recurrent_activation, b.op("Add", [x_z, h_z]))
        r = act(layer.recurrent_activation, b.op("Add", [x_r, h_r]))
        hh = act(layer.activation, b.op("Add", [x_h, b.op("Mul", [r, h_h])]))
    else:  # reset before (only a planted bug gives this form a recurrent bias: ONNX adds it after the matmul)
        inner = b.op("MatMul", [h, b.const(kernel[:, : 2 * u], "recurrent_zr", dtype)])
        if rb is not None:
            inner = b.op("Add", [inner, b.const(rb[: 2 * u], "recurrent_bias_zr", dtype)])
        h_z, h_r = split(inner, 2)
        zg = act(layer.recurrent_activation, b.op("Add", [x_z, h_z]))
        r = act(layer.recurrent_activation, b.op("Add", [x_r, h_r]))
        rh = b.op("MatMul", [b.op("Mul", [r, h]), b.const(kernel[:, 2 * u :], "recurrent_h", dtype)])
        if rb is not None:
            rh = b.op("Add", [rh, b.const(rb[2 * u :], "recurrent_bias_h", dtype)])
        hh = act(layer.activation, b.op("Add", [x_h, rh]))
    one_minus = b.op("Sub", [b.scalar(1, zg), zg])
    return [b.op("Add", [b.op("Mul", [zg, h]), b.op("Mul", [one_minus, hh])])]


def _scan_weights(layer, rules: Rules) -> list:
    """Keras's weights as the Scan reads them. With the default rules, as they are; with a planted gate-order
    bug, the gate blocks the operator would read from its wrongly ordered ``W``: Keras gate ``k`` comes from the
    ONNX slot of ``k``, which holds Keras block ``order[slot]`` (so a bug of the operator's encoding is in the
    Scan form too)."""
    weights = layer.get_weights()
    name = kind(layer)
    if name == "SimpleRNN":
        return weights
    onnx_order = ONNX_LSTM_ORDER if name == "LSTM" else ONNX_GRU_ORDER
    order = _gates(layer, rules)
    take = [order[onnx_order.index(k)] for k in range(len(order))]
    if take == list(range(len(order))):
        return weights
    return [np.concatenate([np.split(w, len(order), axis=-1)[k] for k in take], axis=-1) for w in weights]


def scan(b: GraphBuilder, layer, x_tm: str, mask: str | None, initial: list | None, rules: Rules):
    """Keras's loop as an ONNX ``Scan`` over ``x_tm (T, B, F)``; returns ``(seq (T, B, U), last (B, U),
    states)`` with ``seq`` in processing order, as Keras returns it."""
    dtype, u = layer.dtype, layer.units
    weights = _scan_weights(layer, rules)
    z = b.op("MatMul", [x_tm, b.const(weights[0], "kernel", dtype)])  # (T, B, G*U): every step's input part
    if layer.use_bias:
        bias = weights[2] if weights[2].ndim == 1 else weights[2][0]
        z = b.op("Add", [z, b.const(bias, "bias", dtype)])
    m_tm = None
    if mask is not None:
        m_tm = b.op("Unsqueeze", [b.op("Transpose", [b.cast(mask, "bool")], perm=[1, 0]), b.ints([2])])  # (T,B,1)
    if layer.go_backwards and rules.reverse_for_go_backwards:
        z = reverse_time(b, z, 0)
        m_tm = None if m_tm is None else reverse_time(b, m_tm, 0)
    n_states = 2 if kind(layer) == "LSTM" else 1
    zeros = b.op(  # (B, U) zeros in the input's batch
        "Expand", [b.const(np.zeros((1, u), dtype), "zero"), b.op("Concat", [b.op("Shape", [x_tm], start=1, end=2),
                                                                              b.ints([u])], axis=0)]
    )  # fmt: skip
    starts = [b.cast(s, dtype) for s in initial] if initial is not None else [zeros] * n_states
    body = b.body()
    state_in = [body.fresh(f"state{k}_in") for k in range(n_states)]
    last_in, z_t, m_t = body.fresh("last_in"), body.fresh("z_t"), body.fresh("m_t")
    width = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind(layer)] * u
    for name in [*state_in, last_in]:
        body.add_input(name, dtype, [None, u])  # (B, U)
    body.add_input(z_t, dtype, [None, width])  # (B, G*U)
    if m_tm is not None:
        body.add_input(m_t, "bool", [None, 1])  # (B, 1)
    new = _step(body, layer, weights, z_t, state_in[0], state_in[1] if n_states == 2 else None, rules)
    if m_tm is None:
        new_last, out = new[0], new[0]
    else:
        new = [body.op("Where", [m_t, s_new, s_old]) for s_new, s_old in zip(new, state_in)]
        if layer.zero_output_for_mask and not layer.unroll:
            new_last = out = body.op("Where", [m_t, new[0], body.scalar(0, new[0])])
        else:
            new_last = out = body.op("Where", [m_t, new[0], last_in])
    for value in [*new, new_last, out]:
        body.add_output(body.op("Identity", [value]), shape=[None, u])  # (B, U)
    scan_inputs = [z] + ([m_tm] if m_tm is not None else [])
    outs = b.op(
        "Scan", [*starts, zeros, *scan_inputs], outputs=n_states + 2, num_scan_inputs=len(scan_inputs),
        body=body.graph(b.fresh("keras_step")),
    )  # fmt: skip
    states, last, seq = outs[:n_states], outs[n_states], outs[n_states + 1]
    if mask is None:
        last = b.op("Identity", [states[0]])
    elif layer.unroll and layer.zero_output_for_mask:  # Keras's unrolled loop: zeros where the input-order mask is
        m_in = b.op("Unsqueeze", [b.op("Transpose", [b.cast(mask, "bool")], perm=[1, 0]), b.ints([2])])  # (T,B,1)
        seq = b.op("Where", [m_in, seq, b.scalar(0, seq)])
        at = b.ints([0 if layer.go_backwards else -1])
        m_last = b.op("Squeeze", [b.op("Gather", [m_in, at], axis=0), b.ints([0])])  # (B, 1)
        last = b.op("Where", [m_last, last, b.scalar(0, last)])
    return seq, last, states
