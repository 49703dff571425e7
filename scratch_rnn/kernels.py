"""The fast kernels: each recurrent layer's ``project`` and ``step`` rewritten for speed.

A layer's own module (:mod:`~scratch_rnn.simple_rnn`, :mod:`~scratch_rnn.lstm`,
:mod:`~scratch_rnn.gru`) holds its docstring, weights and readable equations; the
forms here compute the same thing with derived weights, preallocated buffers and
in-place operations, behind the :class:`~scratch_rnn.rnn.Kernel` protocol that the
one time loop (:func:`~scratch_rnn.rnn.recurrence`) drives. A layer runs its kernel
unless ``layer.fast`` is False; ``tests/test_fast_path.py`` holds the two equal.
A kernel reads the layer's attributes (``units``, ``Wx``, ``Wh``, ``b``, the
activations), never imports the layer classes.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import activations, mkl
from scratch_rnn.rnn import Kernel, ProjectedKernel


def input_projection(Wx: np.ndarray, bias: np.ndarray | None, columns: bool = True):
    """``project_into`` for ``Wx`` ``(G, F)`` and ``bias`` ``(G,)``: ``Wx @ x_t + b`` for each timestep of a chunk."""
    if columns:
        bias = None if bias is None else bias[:, None]  # (G, 1)

        def product(x, out):
            np.matmul(Wx, x, out=out)  # (G, F) @ (n, F, B) -> (n, G, B)
    else:
        WxT = Wx.T

        def product(x, out):
            np.matmul(x, WxT, out=out)  # (n, B, F) @ (F, G) -> (n, B, G)

    def project_into(x, out):
        product(x, out)
        if bias is not None:
            np.add(out, bias, out=out)

    return project_into


# --- SimpleRNN -------------------------------------------------------------------------


def simple_rnn_kernel(layer) -> ProjectedKernel:
    """``SimpleRNN.step`` in place: ``H_new = activation(H @ Wh.T + Z_t)``, the batch in rows.

    No gates to slice, so no need for columns: the outputs are written without a transpose.
    """
    WhT = np.ascontiguousarray(layer.Wh.T)  # (U, U)
    activation_ = activations.in_place(layer.activation)
    product = [None]  # H @ Wh.T, made once the batch is known (mkl.recurrent_product)

    def on_start(states):
        product[0] = mkl.recurrent_product(WhT, states[0].shape[0], left=False)

    def step_into(z_t, states, new_states):
        h = new_states[0]  # (B, U)
        product[0](states[0], h)
        np.add(h, z_t, out=h)
        activation_(h, h)

    projection = input_projection(layer.Wx, layer.b if layer.use_bias else None, columns=False)
    return ProjectedKernel(layer.units, projection, step_into, columns=False, on_start=on_start)


# --- LSTM ------------------------------------------------------------------------------


class LSTMKernel(Kernel):
    """``LSTM.step`` in place, one column per sample: one matrix product per step, inputs included.

    Each step multiplies ``W = [Wh | Wx | b]`` ``(4U, U+F+1)`` by the stacked column
    ``[h_{t-1}; x_t; 1]`` ``(U+F+1, B)``: the input projection and the bias ride in the
    recurrent matmul, so a step has no separate projection to add and the step's ``h``
    is written straight into the next stacked column. Gate rows are reordered
    i, f, o, c (i, f, o adjacent), and the carry state sits in the rows after the
    candidate, ``[i f o g c]`` ``(5U, B)``, so ``[i; f] * [g; c]`` is one multiplication.

    With the default activations (sigmoid gates, tanh) every gate goes through one
    ``tanh``: ``sigmoid(a) = (1 + tanh(a / 2)) / 2``, the ``/ 2`` inside folded into the
    i, f, o rows of ``W`` (exact: a power of two), the ``/ 2`` outside into the state,
    which holds ``2h`` (``output_scale``; ``Wh`` is halved to match). A step is then one
    matmul and seven in-place operations. The folding is done in :meth:`start`, once the
    initial states are known: one above half the largest float (where ``2h`` or ``2f * c``
    would overflow) keeps the plain form. A kernel serves one call.
    """

    def __init__(self, layer):
        u = self.units = layer.units
        features = layer.input_dim

        def ifoc(w):  # Keras's gate blocks i, f, c, o -> i, f, o, c
            return np.concatenate([w[: 2 * u], w[3 * u :], w[2 * u : 3 * u]])

        blocks = [ifoc(layer.Wh), ifoc(layer.Wx)]  # (4U, U), (4U, F)
        if layer.use_bias:
            blocks.append(ifoc(layer.b)[:, None])  # (4U, 1)
        self.W = np.concatenate(blocks, axis=1)  # (4U, U+F+1), a new array: start() may fold it
        self.foldable = layer.recurrent_activation is activations.sigmoid and layer.activation is activations.tanh
        self.width = self.W.shape[1]
        self.inputs = slice(u, u + features)  # the x_t rows of a stacked column
        self.use_bias = layer.use_bias
        self.gate_ = activations.in_place(layer.recurrent_activation)
        self.activation_ = activations.in_place(layer.activation)

    def start(self, states, chunk, workspace):
        u, (_, batch) = self.units, states[0].shape
        dtype = states[0].dtype
        # column j: [h before step j; x_j; 1]
        self.stacked = workspace.empty("stacked", (chunk + 1, self.width, batch), dtype)
        if self.use_bias:
            self.stacked[:, -1] = 1
        # rows i | f | o | g | c, even / odd steps
        self.cells = [workspace.empty(f"cells {k}", (5 * u, batch), dtype) for k in range(2)]
        h0, c0 = states
        limit = np.finfo(dtype).max / 2  # 2h0 and 2f * c0 must stay finite (and no NaN)
        self.tanh_gates = self.foldable and max(np.max(np.abs(h0), initial=0), np.max(np.abs(c0), initial=0)) <= limit
        if self.tanh_gates:  # exact: powers of two
            self.W[:, :u] *= 0.5  # h is held as 2h
            self.W[: 3 * u] *= 0.5  # sigmoid(a) = (1 + tanh(a / 2)) / 2
            self.output_scale = 0.5
        np.multiply(h0, 1 / self.output_scale, out=self.stacked[0, :u])
        np.copyto(self.cells[0][4 * u :], c0)
        self.h = [column[:u] for column in self.stacked]
        self.c = [cells[4 * u :] for cells in self.cells]
        self.step = self._step_function()

    def load(self, x, n):
        np.copyto(self.stacked[:n, self.inputs], x)  # (n, F, B)

    def _step_function(self):
        """``step(j)`` for this call's buffers, a closure: the loop's hottest code reads no attributes.

        Its views are made once here (slicing costs as much as a small operation), and the
        product is :func:`~scratch_rnn.mkl.recurrent_product`'s: ``np.dot`` (measured: 0.4 us a step less than
        ``np.matmul`` at 32 x 32), or MKL's packed ``W``, packed after :meth:`start` folded it.
        """
        u, W, h, c = self.units, self.W, self.h, self.c
        column = list(self.stacked)  # column[j]: step j's stacked input
        views = [
            (
                cells[: 4 * u],
                cells[: 3 * u],
                cells[: 2 * u],
                cells[:u],
                cells[u : 2 * u],
                cells[2 * u : 3 * u],
                cells[3 * u : 4 * u],
                cells[3 * u :],
            )
            for cells in self.cells
        ]
        tanh_gates, gate_, activation_ = self.tanh_gates, self.gate_, self.activation_
        product = mkl.recurrent_product(W, column[0].shape[1])
        tanh, add, multiply = np.tanh, np.add, np.multiply

        def step(j):
            z, ifo, i_f, i, f, o, g, g_c = views[j & 1]  # the carry c in rows 4U: is this step's input
            c_new = c[~j & 1]
            product(column[j], z)  # (4U, U+F+1) @ (U+F+1, B): all gates, inputs included
            if tanh_gates:
                tanh(z, out=z)  # tanh(a / 2) for i, f, o; g = tanh(a)
                add(ifo, 1, out=ifo)  # 2 i, 2 f, 2 o
            else:
                gate_(ifo, ifo)
                activation_(g, g)
            multiply(i_f, g_c, out=i_f)  # [i * g; f * c] (times 2 with tanh gates)
            add(i, f, out=c_new)  # c_new = f * c + i * g
            if tanh_gates:
                multiply(c_new, 0.5, out=c_new)
            activation_(c_new, g)
            multiply(o, g, out=h[j + 1])  # h_new = o * activation(c_new) (2h with tanh gates)

        return step

    def state(self, j):
        return [self.h[j], self.c[j & 1]]

    def carry(self, n):
        np.copyto(self.h[0], self.h[n])
        if n & 1:
            np.copyto(self.c[0], self.c[1])


# --- GRU -------------------------------------------------------------------------------


def gru_kernel(layer, batch: int) -> ProjectedKernel:
    """``GRU.step`` in place, one column per sample, in Keras's gate order z, r, h (z, r adjacent).

    With the default sigmoid, a gate is kept as its denominator ``d = 1 + exp(-a)`` and
    applied by division: ``r * x = x / d_r`` and ``z * h + (1 - z) * hh = hh + (h - hh) / d_z``,
    which saves computing reciprocals (and stays finite when ``exp(-a)`` overflows). ``h - hh``
    stays finite when the candidate's activation is bounded (``|hh| <= 1``) and the initial state
    is at most half the largest float (``|h_t| <= max(|h_0|, 1)``: ``h_t`` is a convex combination);
    otherwise the update takes Keras's form ``z * h + (1 - z) * hh`` with ``z = 1 / d_z``.
    """
    u, dtype = layer.units, layer.dtype
    divide = layer.recurrent_activation is activations.sigmoid
    apply = np.divide if divide else np.multiply  # r * x as x / d_r, or as r * x
    # the z, r rows activated: their denominators d = 1 + exp(-a) with the sigmoid, else z, r themselves
    gates_ = activations.sigmoid_denominator_ if divide else activations.in_place(layer.recurrent_activation)
    activation_ = activations.in_place(layer.activation)
    bounded = layer.activation in (activations.tanh, activations.sigmoid, activations.hard_sigmoid)
    update = {"by_division": divide and bounded}
    limit = np.finfo(dtype).max / 2

    def choose_update(states):
        if divide and bounded:  # else the multiplication form anyway
            h0 = states[0]
            update["by_division"] = bool(h0.max(initial=0) <= limit and -h0.min(initial=0) <= limit)

    if layer.reset_after:
        bias_x, bias_h = (layer.b[0], layer.b[1][:, None]) if layer.use_bias else (None, None)
        Wh = mkl.recurrent_product(layer.Wh, batch)  # (3U, U) @ (U, B)
        inner = np.empty((3 * u, batch), dtype)  # (3U, B): rows z | r | h
        zr, z, r, hh = inner[: 2 * u], inner[:u], inner[u : 2 * u], inner[2 * u :]

        def candidate(zT, h):
            Wh(h, inner)  # (3U, U) @ (U, B): every gate in one matmul
            if bias_h is not None:
                np.add(inner, bias_h, out=inner)  # recurrent bias bh
            np.add(zr, zT[: 2 * u], out=zr)
            gates_(zr, zr)
            apply(hh, r, out=hh)  # reset after the matmul
            np.add(hh, zT[2 * u :], out=hh)
    else:
        bias_x = layer.b if layer.use_bias else None
        Wh_zr, Wh_h = (mkl.recurrent_product(w, batch) for w in (layer.Wh[: 2 * u], layer.Wh[2 * u :]))
        zr = np.empty((2 * u, batch), dtype)  # (2U, B): rows z | r
        z, r = zr[:u], zr[u:]
        rh, hh = np.empty((u, batch), dtype), np.empty((u, batch), dtype)

        def candidate(zT, h):
            Wh_zr(h, zr)  # (2U, U) @ (U, B): gates z, r
            np.add(zr, zT[: 2 * u], out=zr)
            gates_(zr, zr)
            apply(h, r, out=rh)  # reset before the matmul
            Wh_h(rh, hh)  # (U, U) @ (U, B)
            np.add(hh, zT[2 * u :], out=hh)

    def step_into(zT, states, new_states):
        h, h_new = states[0], new_states[0]  # (U, B) each
        candidate(zT, h)  # z, r and hh before its activation
        activation_(hh, hh)
        if update["by_division"]:  # h_new = hh + (h - hh) / d_z
            np.subtract(h, hh, out=h_new)
            np.divide(h_new, z, out=h_new)
            np.add(h_new, hh, out=h_new)
        else:  # h_new = z * h + (1 - z) * hh
            if divide:
                np.reciprocal(z, out=z)  # z = 1 / d_z
            np.multiply(z, h, out=h_new)
            np.subtract(1, z, out=z)
            np.multiply(z, hh, out=z)
            np.add(h_new, z, out=h_new)

    return ProjectedKernel(3 * u, input_projection(layer.Wx, bias_x), step_into, on_start=choose_update)
