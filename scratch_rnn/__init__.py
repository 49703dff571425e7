"""scratch_rnn: Keras's recurrent layers from scratch in NumPy, proven equal to Keras.

Importing this package imports NumPy only; the harness (:mod:`scratch_rnn.testing`)
imports Keras and Hypothesis when it is used.
"""

from scratch_rnn.keras_layout import from_keras
from scratch_rnn.models import Input, Sequential
from scratch_rnn.simple_rnn import SimpleRNN

__all__ = ["SimpleRNN", "Input", "Sequential", "from_keras"]
__version__ = "0.1.0"


def layers_by_keras_name() -> dict:
    """Scratch layer classes by the Keras class name they mirror."""
    return {"SimpleRNN": SimpleRNN}
