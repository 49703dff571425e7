"""scratch_rnn: Keras's recurrent layers from scratch in NumPy, proven equal to Keras.

Importing this package imports NumPy only; the harness (:mod:`scratch_rnn.testing`)
imports Keras and Hypothesis when it is used.
"""

from scratch_rnn.bidirectional import Bidirectional
from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding, Masking, TimeDistributed
from scratch_rnn.gru import GRU
from scratch_rnn.keras_layout import from_keras
from scratch_rnn.lstm import LSTM
from scratch_rnn.models import Input, Sequential
from scratch_rnn.simple_rnn import SimpleRNN

__all__ = [
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "Embedding",
    "Masking",
    "Dense",
    "TimeDistributed",
    "Dropout",
    "Activation",
    "Input",
    "Sequential",
    "from_keras",
    "verify",
]
__version__ = "0.1.0"


def layers_by_keras_name() -> dict:
    """Scratch layer classes by the Keras class name they mirror."""
    return {
        "SimpleRNN": SimpleRNN,
        "LSTM": LSTM,
        "GRU": GRU,
        "Bidirectional": Bidirectional,
        "Embedding": Embedding,
        "Masking": Masking,
        "Dense": Dense,
        "TimeDistributed": TimeDistributed,
        "Dropout": Dropout,
        "Activation": Activation,
    }


def verify(candidate=None, layer="SimpleRNN", max_examples=100, seed=None, dtype="float32", **kwargs):
    """Prove ``candidate`` (default: this engine) computes what Keras computes; returns a ``Report``.

    A thin entry to :func:`scratch_rnn.testing.verify`, imported on first use so that
    ``import scratch_rnn`` stays NumPy-only (the harness needs the ``verify`` extra).
    """
    from scratch_rnn.testing.verify import verify as _verify

    return _verify(candidate, layer=layer, max_examples=max_examples, seed=seed, dtype=dtype, **kwargs)
