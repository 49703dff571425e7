"""Port mutants of the PyTorch converter: :func:`~scratch_rnn.ports.to_torch.to_torch` with one conversion rule
broken, each a realistic mistake of someone moving Keras weights into ``nn.GRU`` / ``nn.LSTM`` by hand.

Each bug is planted in the converted module, never in the converter: the correct module is built, then one
parameter block or one output order is changed the way the buggy port would have it. Registered with
:func:`~scratch_rnn.testing.mutants.port_mutant` when the gallery is asked for ``port="torch"``
(``scratch-rnn verify --mutants --port torch``); torch is imported only when a mutant runs.
"""

from __future__ import annotations

from scratch_rnn.ports.to_torch import to_torch
from scratch_rnn.testing.mutants import port_mutant
from scratch_rnn.testing.torch_candidates import for_layer

REQUIRES = ("torch",)


def _blocks(module, gates: int, order) -> None:
    """Every recurrent parameter's gate blocks (first axis, ``gates * units`` long) rearranged into ``order``."""
    import torch

    with torch.no_grad():
        params = module.params.values() if module.rnn is None else module.rnn.parameters()  # GRU reset-before: own
        for p in params:
            blocks = torch.chunk(p.detach().clone(), gates, dim=0)
            p.copy_(torch.cat([blocks[k] for k in order], dim=0))


def _gru_reorder_skipped(scratch):
    """Keras's z, r, h blocks copied as they are: ``_blocks`` undoes the converter's r, z, n."""
    module = to_torch(scratch)
    _blocks(module, 3, [1, 0, 2])  # PyTorch's r, z, n back to Keras's z, r, h
    return module


def _gru_b_hh_dropped(scratch):
    import torch

    module = to_torch(scratch)
    b_hh = module.weight("bias_hh_l0")
    if b_hh is not None:  # reset_after with a bias: Keras's row 1 never copied
        with torch.no_grad():
            b_hh.zero_()
    return module


def _lstm_f_c_swapped(scratch):
    module = to_torch(scratch)
    _blocks(module, 4, [0, 2, 1, 3])  # i, g, f, o: the forget and cell blocks exchanged
    return module


def _flip_sequence(module):
    """``module``'s returned sequence flipped in time (a wrapper around its forward)."""
    import torch

    forward = module.forward

    def flipped(x, mask=None, initial_state=None):
        out = forward(x, mask, initial_state)
        if not module.return_sequences:
            return out
        if module.return_state:
            return [torch.flip(out[0], dims=[1]), *out[1:]]
        return torch.flip(out, dims=[1])

    module.forward = flipped
    return module


def _backward_not_re_reversed(scratch):
    module = to_torch(scratch)
    _flip_sequence(module.backward_layer)  # the wrapper's flip now undoes it: processing order merged
    return module


def _go_backwards_output_in_input_order(scratch):
    module = to_torch(scratch)
    return _flip_sequence(module) if module.go_backwards else module


for _layer, _name, _description, _convert in (
    ("GRU", "reorder-skipped", "copies Keras's GRU blocks z, r, h into nn.GRU as they are (PyTorch's are r, z, n)",
     _gru_reorder_skipped),
    ("GRU", "b-hh-dropped", "with reset_after, copies only row 0 of Keras's (2, 3u) bias into bias_ih; bias_hh stays "
     "zero", _gru_b_hh_dropped),
    ("LSTM", "forget-cell-swapped", "copies Keras's LSTM blocks i, f, c, o into nn.LSTM as i, g, f, o (forget and "
     "cell blocks exchanged)", _lstm_f_c_swapped),
    ("Bidirectional", "backward-not-re-reversed", "merges the backward direction's sequence in its processing "
     "order, not flipped back to time order", _backward_not_re_reversed),
    ("SimpleRNN", "go-backwards-output-flipped", "with go_backwards, flips the returned sequence back to input "
     "order (Keras returns it in processing order)", _go_backwards_output_in_input_order),
):  # fmt: skip
    port_mutant("torch", _layer, _name, _description, requires=REQUIRES)(for_layer(_layer, _convert))
