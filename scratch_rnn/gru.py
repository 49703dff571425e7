"""GRU: Keras's gated recurrent unit, both ``reset_after`` conventions, on the shared recurrent loop."""

from __future__ import annotations

import numpy as np

from scratch_rnn import compiled, kernels
from scratch_rnn.checks import boolean
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.rnn import GatedRNN


class GRU(GatedRNN):
    """Gated recurrent unit (Cho et al. 2014), computing what Keras's ``GRU`` computes.

    Equations (``reset_after=True``, Keras 3's default and cuDNN's convention)::

        z_t  = recurrent_activation(Wx_z @ x_t + bx_z + Wh_z @ h_{t-1} + bh_z)    # update gate
        r_t  = recurrent_activation(Wx_r @ x_t + bx_r + Wh_r @ h_{t-1} + bh_r)    # reset gate
        hh_t = activation(Wx_h @ x_t + bx_h + r_t * (Wh_h @ h_{t-1} + bh_h))      # candidate
        h_t  = z_t * h_{t-1} + (1 - z_t) * hh_t

    and with ``reset_after=False`` (one bias ``b``, the reset gate applied before the matmul)::

        z_t  = recurrent_activation(Wx_z @ x_t + Wh_z @ h_{t-1} + b_z)
        r_t  = recurrent_activation(Wx_r @ x_t + Wh_r @ h_{t-1} + b_r)
        hh_t = activation(Wx_h @ x_t + Wh_h @ (r_t * h_{t-1}) + b_h)
        h_t  = z_t * h_{t-1} + (1 - z_t) * hh_t

    The batch and all gates are computed at once: one matmul per step for the recurrence
    (``reset_after=True``); ``reset_after=False`` needs a second one, ``(r * h) @ Wh_h.T``,
    because its input depends on the gate.

    Weights (seed layout, gate blocks stacked in Keras's order z, r, h; ``get_weights``
    gives Keras's, see :mod:`scratch_rnn.keras_layout`):
        ``Wx (3*units, input_dim)`` (Keras ``kernel (input_dim, 3*units)``),
        ``Wh (3*units, units)`` (Keras ``recurrent_kernel (units, 3*units)``),
        ``b``: with ``reset_after=True`` ``(2, 3*units)``, row 0 the input bias ``bx`` and row 1
        the recurrent bias ``bh``; with ``reset_after=False`` ``(3*units,)``. ``b`` has Keras's layout.

    Args:
        units: positive int, size of the output and the state.
        activation: of the candidate, ``"tanh"`` (default), ``"relu"``, ``"sigmoid"``,
            ``"hard_sigmoid"`` (Keras 3's), ``"linear"`` or None (linear).
        recurrent_activation: of the gates z, r; ``"sigmoid"`` (default), same choices.
        use_bias: whether ``b`` exists.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names or a callable
            ``(shape, dtype, rng) -> array`` in Keras's layout; drawn from ``np.random.default_rng(seed)``.
        reset_after: the convention above; True (default) as in Keras 3.
        implementation: 1 or 2 (default), how Keras orders the products; the same values, accepted.
        use_cudnn: ``"auto"`` (default), True or False, whether Keras may use cuDNN on a GPU; accepted.
        time_major: only False (the default): inputs are ``(batch, timesteps, features)``.
        dropout, recurrent_dropout: accepted for Keras compatibility; no-ops at inference.
        return_sequences: return ``(batch, timesteps, units)`` instead of the last output ``(batch, units)``.
        return_state: also return the final state: ``[output, h]``.
        go_backwards: process timesteps from last to first; the returned sequence is in
            that (reversed) processing order, as in Keras.
        stateful: carry the final state of each call into the next one; ``reset_state()`` zeros it.
        unroll: how Keras builds its loop; results are the same except in the one case Keras's
            unrolled loop computes differently, which this engine reproduces (see :func:`scratch_rnn.rnn.recurrence`).
        zero_output_for_mask: masked steps output zeros instead of repeating the previous output.
        dtype: ``"float32"`` (default) or ``"float64"``; inputs are cast to it.
        seed: seed of the default initialisers.
        kernel_regularizer ... bias_constraint, activity_regularizer: training-only, accepted and ignored.

    Call arguments:
        x: ``(batch, timesteps, features)``.
        mask: ``(batch, timesteps)`` bool; False skips a step (state kept, previous output
            repeated, zeros before the first unmasked step).
        initial_state: ``(batch, units)`` array or a one-element list of it.
    """

    def __init__(self, units, activation="tanh", *, reset_after=True, **kwargs):
        super().__init__(units, activation, **kwargs)  # recurrent_activation, implementation, use_cudnn: GatedRNN's
        self.reset_after = boolean(reset_after, "reset_after")

    def weight_spec(self):
        u, f = self.units, self.input_dim
        spec = [
            WeightSpec("kernel", "Wx", (f, 3 * u), transpose=True),
            WeightSpec("recurrent_kernel", "Wh", (u, 3 * u), transpose=True),
        ]
        if self.use_bias:
            spec.append(WeightSpec("bias", "b", (2, 3 * u) if self.reset_after else (3 * u,), transpose=False))
        return spec

    def project(self, x_tm):
        z = x_tm @ self.Wx.T  # (T, B, F) @ (F, 3U) -> (T, B, 3U)
        if self.use_bias:
            z += self.b[0] if self.reset_after else self.b  # input bias bx (3U,) or b (3U,)
        return z

    def step(self, z_t, states):
        h = states[0]  # (B, U)
        u = self.units
        x_z, x_r, x_h = np.split(z_t, 3, axis=-1)  # 3 x (B, U), Keras's order z, r, h
        if self.reset_after:
            inner = h @ self.Wh.T  # (B, 3U): every gate in one matmul
            if self.use_bias:
                inner += self.b[1]  # recurrent bias bh (3U,)
            h_z, h_r, h_h = np.split(inner, 3, axis=-1)  # 3 x (B, U)
            z = self.recurrent_activation(x_z + h_z)  # (B, U)
            r = self.recurrent_activation(x_r + h_r)  # (B, U)
            hh = self.activation(x_h + r * h_h)  # (B, U): reset after the matmul
        else:
            inner = h @ self.Wh[: 2 * u].T  # (B, 2U): gates z, r
            z = self.recurrent_activation(x_z + inner[:, :u])  # (B, U)
            r = self.recurrent_activation(x_r + inner[:, u:])  # (B, U)
            hh = self.activation(x_h + (r * h) @ self.Wh[2 * u :].T)  # (B, U) @ (U, U): reset before
        h = z * h + (1 - z) * hh  # (B, U)
        return h, [h]

    def kernel(self, batch):
        return kernels.gru_kernel(self, batch)

    def compiled_loop(self, batch, timesteps=1):
        return compiled.loop_for(self, "gru", batch, timesteps)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
