"""LSTM: Keras's long short-term memory layer, on the shared recurrent loop."""

from __future__ import annotations

import numpy as np

from scratch_rnn import activations, initializers
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.rnn import RNN, Kernel


class LSTM(RNN):
    """Long short-term memory (Hochreiter 1997), computing what Keras's ``LSTM`` computes.

    Equations::

        i_t = recurrent_activation(Wx_i @ x_t + Wh_i @ h_{t-1} + b_i)    # input gate
        f_t = recurrent_activation(Wx_f @ x_t + Wh_f @ h_{t-1} + b_f)    # forget gate
        g_t = activation(Wx_c @ x_t + Wh_c @ h_{t-1} + b_c)              # candidate carry
        o_t = recurrent_activation(Wx_o @ x_t + Wh_o @ h_{t-1} + b_o)    # output gate
        c_t = f_t * c_{t-1} + i_t * g_t                                   # carry state
        h_t = o_t * activation(c_t)                                       # output = memory state

    computed for the batch and all four gates at once as ``Z = X_t @ Wx.T + H_{t-1} @ Wh.T + b``
    ``(B, 4*units)``, split in Keras's gate order i, f, c, o.

    Weights (seed layout, gate blocks stacked in the order i, f, c, o; ``get_weights``
    gives Keras's, see :mod:`scratch_rnn.keras_layout`):
        ``Wx (4*units, input_dim)`` (Keras ``kernel (input_dim, 4*units)``),
        ``Wh (4*units, units)`` (Keras ``recurrent_kernel (units, 4*units)``),
        ``b (4*units,)`` (Keras ``bias``, same layout). Rows ``k*units:(k+1)*units`` are gate k.

    Args:
        units: positive int, size of the output and of each state.
        activation: of the candidate and the output, ``"tanh"`` (default), ``"relu"``,
            ``"sigmoid"``, ``"hard_sigmoid"`` (Keras 3's), ``"linear"`` or None (linear).
        recurrent_activation: of the gates i, f, o; ``"sigmoid"`` (default), same choices.
        use_bias: whether ``b`` exists.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or a callable
            ``(shape, dtype, rng) -> array`` in Keras's layout; drawn from ``np.random.default_rng(seed)``.
        unit_forget_bias: default initialisation only: the forget-gate block of ``b`` starts at 1,
            the other blocks come from ``bias_initializer`` (as in Keras).
        dropout, recurrent_dropout: accepted for Keras compatibility; dropout acts only in
            training, so both are no-ops in this inference engine.
        return_sequences: return ``(batch, timesteps, units)`` instead of the last output ``(batch, units)``.
        return_state: also return the final states: ``[output, h, c]``.
        go_backwards: process timesteps from last to first; the returned sequence is in
            that (reversed) processing order, as in Keras.
        stateful: carry the final states of each call into the next one; ``reset_state()`` zeros them.
        unroll: how Keras builds its loop; results are the same except in the one case Keras's
            unrolled loop computes differently, which this engine reproduces (see :func:`scratch_rnn.rnn.recurrence`).
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.
        dtype: ``"float32"`` (default) or ``"float64"``; inputs are cast to it.
        seed: seed of the default initialisers.
        kernel_regularizer ... bias_constraint, activity_regularizer: training-only, accepted and ignored.

    Call arguments:
        x: ``(batch, timesteps, features)``.
        mask: ``(batch, timesteps)`` bool; False skips a step (states kept, previous output
            repeated, zeros before the first unmasked step).
        initial_state: ``[h0, c0]``, each ``(batch, units)``.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        dtype="float32",
        seed=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            units,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=dtype,
            name=name,
            **kwargs,
        )
        self.activation = activations.get(activation, "activation", activations.RECURRENT)
        self.recurrent_activation = activations.get(recurrent_activation, "recurrent_activation", activations.RECURRENT)
        self.use_bias = bool(use_bias)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.initializers = {
            "kernel": initializers.get(kernel_initializer, "kernel_initializer"),
            "recurrent_kernel": initializers.get(recurrent_initializer, "recurrent_initializer"),
            "bias": initializers.get(bias_initializer, "bias_initializer"),
        }

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]  # [h, c]

    def initializer_for(self, keras_name):
        init = self.initializers[keras_name]
        if keras_name != "bias" or not self.unit_forget_bias:
            return init
        u = self.units

        def unit_forget_bias(shape, dtype, rng):
            """Keras's: blocks i | f | c, o from ``bias_initializer``, but f = ones."""
            return np.concatenate([init((u,), dtype, rng), np.ones((u,), dtype), init((2 * u,), dtype, rng)])

        return unit_forget_bias

    def weight_spec(self):
        u, f = self.units, self.input_dim
        spec = [
            WeightSpec("kernel", "Wx", (f, 4 * u), transpose=True),
            WeightSpec("recurrent_kernel", "Wh", (u, 4 * u), transpose=True),
        ]
        if self.use_bias:
            spec.append(WeightSpec("bias", "b", (4 * u,), transpose=False))
        return spec

    def project(self, x_tm):
        z = x_tm @ self.Wx.T  # (T, B, F) @ (F, 4U) -> (T, B, 4U)
        if self.use_bias:
            z += self.b
        return z

    def step(self, z_t, states):
        h, c = states  # (B, U), (B, U)
        z = z_t + h @ self.Wh.T  # (B, 4U): every gate in one matmul
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)  # 4 x (B, U), Keras's order i, f, c, o
        i = self.recurrent_activation(z_i)  # (B, U)
        f = self.recurrent_activation(z_f)  # (B, U)
        o = self.recurrent_activation(z_o)  # (B, U)
        c = f * c + i * self.activation(z_c)  # (B, U)
        h = o * self.activation(c)  # (B, U)
        return h, [h, c]

    def kernel(self, batch):
        return _StackedKernel(self)

    def get_config(self):
        return {
            **super().get_config(),
            "activation": activations.name_of(self.activation),
            "recurrent_activation": activations.name_of(self.recurrent_activation),
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
        }


class _StackedKernel(Kernel):
    """:meth:`LSTM.step` in place, one column per sample: one matrix product per step, inputs included.

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
        product is ``np.dot`` (measured: 0.4 us a step less than ``np.matmul`` at 32 x 32).
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
        dot, tanh, add, multiply = np.dot, np.tanh, np.add, np.multiply

        def step(j):
            z, ifo, i_f, i, f, o, g, g_c = views[j & 1]  # the carry c in rows 4U: is this step's input
            c_new = c[~j & 1]
            dot(W, column[j], out=z)  # (4U, U+F+1) @ (U+F+1, B): all gates, inputs included
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
