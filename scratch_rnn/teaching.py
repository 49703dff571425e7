"""The seed notebook's recurrence, one sample and one timestep at a time.

This is the readable reference the layers must agree with; the layers compute
the same thing vectorised over the batch (see :class:`scratch_rnn.SimpleRNN`).
"""

from __future__ import annotations

import numpy as np


def notebook_rnn(inputs, Wx, Wh, b, hidden_state=None):
    """``h_t = tanh(Wx @ x_t + Wh @ h_{t-1} + b)`` for one sequence, as the notebook writes it.

    Args:
        inputs: ``(timesteps, input_dim)``, one sample.
        Wx: ``(units, input_dim)``; Wh: ``(units, units)``; b: ``(units,)``.
        hidden_state: ``(units,)``, zeros by default.

    Returns:
        ``(timesteps, units)``: every hidden state, in order.
    """
    hidden_state_t = np.zeros(Wh.shape[0]) if hidden_state is None else hidden_state
    total_hidden_states = []
    for input_t in inputs:
        output_t = np.tanh(np.dot(Wx, input_t) + np.dot(Wh, hidden_state_t) + b)  # (units,)
        total_hidden_states.append(output_t)
        hidden_state_t = output_t  # the output becomes the next step's hidden state
    return np.array(total_hidden_states)
