"""SimpleRNN: the seed notebook's recurrence, as a Keras-compatible layer."""

from __future__ import annotations

from scratch_rnn import compiled, kernels
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.rnn import BaseRNN


class SimpleRNN(BaseRNN):
    """Fully-connected RNN whose output is fed back as the next state (Keras's ``SimpleRNN``).

    Equations::

        h_t = activation(Wx @ x_t + Wh @ h_{t-1} + b)        # one sample
        H_t = activation(X_t @ Wx.T + H_{t-1} @ Wh.T + b)    # the batch, as computed

    Weights (seed layout; ``get_weights`` gives Keras's, see :mod:`scratch_rnn.keras_layout`):
        ``Wx (units, input_dim)``, ``Wh (units, units)``, ``b (units,)``.

    Args:
        units: positive int, size of the output and the state.
        activation: ``"tanh"`` (default), ``"relu"``, ``"sigmoid"``, ``"hard_sigmoid"``
            (Keras 3's), ``"linear"`` or None (linear).
        use_bias: whether ``b`` exists.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras names
            (``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``, ``"ones"``) or a callable
            ``(shape, dtype, rng) -> array`` in Keras's layout; drawn from ``np.random.default_rng(seed)``.
        dropout, recurrent_dropout: accepted for Keras compatibility; dropout acts only in
            training, so both are no-ops in this inference engine.
        return_sequences: return ``(batch, timesteps, units)`` instead of the last output ``(batch, units)``.
        return_state: also return the final state: ``[output, h]``.
        go_backwards: process timesteps from last to first; the returned sequence is in
            that (reversed) processing order, as in Keras.
        stateful: carry the final state of each call into the next one; ``reset_state()`` zeros it.
        unroll: how Keras builds its loop; the results are the same except in one case
            that Keras's unrolled loop computes differently and this engine reproduces
            (go_backwards + zero_output_for_mask + a mask: see :func:`scratch_rnn.rnn.recurrence`).
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

    def weight_spec(self):
        u, f = self.units, self.input_dim
        spec = [
            WeightSpec("kernel", "Wx", (f, u), transpose=True),
            WeightSpec("recurrent_kernel", "Wh", (u, u), transpose=True),
        ]
        if self.use_bias:
            spec.append(WeightSpec("bias", "b", (u,), transpose=False))
        return spec

    def project(self, x_tm):
        z = x_tm @ self.Wx.T  # (T, B, F) @ (F, U) -> (T, B, U)
        if self.use_bias:
            z += self.b
        return z

    def step(self, z_t, states):
        h = self.activation(z_t + states[0] @ self.Wh.T)  # (B, U)
        return h, [h]

    def kernel(self, batch):
        return kernels.simple_rnn_kernel(self)

    def compiled_loop(self, batch, timesteps=1):
        return compiled.loop_for(self, "simple_rnn", batch, timesteps)
