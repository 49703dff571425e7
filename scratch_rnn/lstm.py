"""LSTM: Keras's long short-term memory layer, on the shared recurrent loop."""

from __future__ import annotations

import numpy as np

from scratch_rnn import compiled, kernels
from scratch_rnn.checks import boolean
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.rnn import GatedRNN


class LSTM(GatedRNN):
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
        implementation: 1 or 2 (default), how Keras orders the products; the same values, accepted.
        use_cudnn: ``"auto"`` (default), True or False, whether Keras may use cuDNN on a GPU; accepted.
        time_major: only False (the default): inputs are ``(batch, timesteps, features)``.
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

    def __init__(self, units, activation="tanh", *, unit_forget_bias=True, **kwargs):
        super().__init__(units, activation, **kwargs)  # recurrent_activation, implementation, use_cudnn: GatedRNN's
        self.unit_forget_bias = boolean(unit_forget_bias, "unit_forget_bias")

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
        return kernels.LSTMKernel(self)

    def compiled_loop(self, batch, timesteps=1):
        return compiled.loop_for(self, "lstm", batch, timesteps)

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}
