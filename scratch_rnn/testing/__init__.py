"""The verification harness: strategies, the comparison helper, and the sweep against real Keras.

Needs the ``verify`` extra (TensorFlow, Keras, Hypothesis); the engine does not.
"""

from scratch_rnn.testing.compare import TensorComparison, assert_close, compare_outputs, compare_tensor
from scratch_rnn.testing.strategies import Case, cases
from scratch_rnn.testing.verify import Report, check_case, verify

__all__ = ["Case", "cases", "TensorComparison", "assert_close", "compare_outputs", "compare_tensor",
           "Report", "check_case", "verify"]
