"""Port mutants of the ONNX exporter: :func:`~scratch_rnn.ports.to_onnx.to_onnx` with one conversion rule broken,
each a realistic mistake of someone writing Keras weights into ONNX's RNN/LSTM/GRU operators by hand.

Each bug is planted in the exporter's rules (:class:`~scratch_rnn.ports.onnx_recurrent.Rules`), so the exported
ONNX file itself is wrong, and ONNX Runtime runs it as the candidate. Registered with
:func:`~scratch_rnn.testing.mutants.port_mutant` when the gallery is asked for ``port="onnx"``
(``scratch-rnn verify --mutants --port onnx``); onnx and onnxruntime are imported only when a mutant runs.
"""

from __future__ import annotations

from scratch_rnn.ports.onnx_recurrent import Rules
from scratch_rnn.testing.mutants import port_mutant
from scratch_rnn.testing.onnx_candidates import layer_candidate

REQUIRES = ("onnx", "onnxruntime")

for _layer, _name, _description, _rules in (
    ("GRU", "linear-before-reset-flipped", "writes linear_before_reset=0 for reset_after=True and 1 for False "
     "(the reset gate applied on the wrong side of the recurrent matmul)", Rules(flip_linear_before_reset=True)),
    ("LSTM", "gates-in-keras-order", "copies Keras's LSTM blocks i, f, c, o into W, R, B as they are (ONNX's order "
     "is i, o, f, c)", Rules(lstm_order=(0, 1, 2, 3))),
    ("GRU", "go-backwards-direction-forward", "ignores go_backwards: the operator's direction stays 'forward'",
     Rules(reverse_for_go_backwards=False)),
    ("LSTM", "go-backwards-y-not-re-reversed", "with go_backwards, returns the reverse operator's Y as it comes "
     "(input time order; Keras returns the sequence in processing order)", Rules(rereverse_backward=False)),
    ("Bidirectional", "backward-not-in-time-order", "merges the backward direction's sequence in processing order "
     "(ONNX's bidirectional Y flipped once more, or a separate backward pass not flipped back)",
     Rules(bidirectional_backward_in_time_order=False)),
    ("LSTM", "keras2-hard-sigmoid", "maps hard_sigmoid to HardSigmoid with ONNX's default alpha 0.2 (Keras 2's "
     "clip(0.2x + 0.5)); Keras 3's is relu6(x + 3) / 6, alpha 1/6", Rules(hard_sigmoid_alpha=0.2)),
):  # fmt: skip
    port_mutant("onnx", _layer, _name, _description, requires=REQUIRES)(layer_candidate(_layer, rules=_rules))
