"""scratch_rnn: Keras's recurrent layers from scratch in NumPy, proven equal to Keras.

The facade: it re-exports the public names and nothing in the package imports it
(each module imports the module it needs; ``docs/architecture.md``). Importing it
imports NumPy only; the harness (:mod:`scratch_rnn.testing`, :func:`verify`) imports
Keras and Hypothesis when it is used.
"""

from scratch_rnn.attention import AdditiveAttention, Attention
from scratch_rnn.cells import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from scratch_rnn.convolutional import Conv1D
from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding, Masking
from scratch_rnn.gru import GRU
from scratch_rnn.keras_convert import from_keras
from scratch_rnn.lstm import LSTM
from scratch_rnn.merging import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from scratch_rnn.models import Input, Model, Sequential
from scratch_rnn.normalization import BatchNormalization, LayerNormalization
from scratch_rnn.parallel import get_num_threads, set_num_threads, threads
from scratch_rnn.pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from scratch_rnn.ports.from_torch import from_torch
from scratch_rnn.ports.to_onnx import to_onnx
from scratch_rnn.ports.to_torch import to_torch
from scratch_rnn.regularization import GaussianDropout, GaussianNoise, SpatialDropout1D
from scratch_rnn.reshaping import Flatten, Permute, RepeatVector, Reshape
from scratch_rnn.saving import load_model, save_model
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.version import __version__
from scratch_rnn.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "SimpleRNN",
    "LSTM",
    "GRU",
    "RNN",
    "SimpleRNNCell",
    "LSTMCell",
    "GRUCell",
    "StackedRNNCells",
    "Bidirectional",
    "Embedding",
    "Masking",
    "Dense",
    "TimeDistributed",
    "Dropout",
    "Activation",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
    "RepeatVector",
    "Flatten",
    "Reshape",
    "Permute",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "Input",
    "Sequential",
    "Model",
    "LayerNormalization",
    "BatchNormalization",
    "Conv1D",
    "Attention",
    "AdditiveAttention",
    "from_keras",
    "load_model",
    "save_model",
    "from_torch",
    "to_torch",
    "to_onnx",
    "set_num_threads",
    "get_num_threads",
    "threads",
    "verify",
    "verify_model",
    "__version__",
]


def __getattr__(name):
    """``scratch_rnn.verify`` and ``scratch_rnn.verify_model`` are the harness's functions themselves
    (:mod:`scratch_rnn.testing.verify`, :mod:`scratch_rnn.testing.model_verify`), imported on first use,
    so that ``import scratch_rnn`` stays NumPy-only (the harness needs the ``verify`` extra)."""
    if name == "verify":
        from scratch_rnn.testing.verify import verify

        return verify
    if name == "verify_model":
        from scratch_rnn.testing.model_verify import verify_model

        return verify_model
    raise AttributeError(f"module 'scratch_rnn' has no attribute {name!r}")
