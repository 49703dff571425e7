"""The verification harness: strategies, the comparison helper, and the sweep against real Keras.

The comparison (:mod:`~scratch_rnn.testing.compare`), one case (:mod:`~scratch_rnn.testing.case`,
:mod:`~scratch_rnn.testing.check`) and golden vectors (:mod:`~scratch_rnn.testing.golden`) need
NumPy only. The strategies (``cases``) and the sweep (``verify``) need Hypothesis and are
available when it is installed; Keras is imported only to run the sweep.
"""

import importlib.util

from scratch_rnn.testing.case import Case
from scratch_rnn.testing.check import Report, check_case
from scratch_rnn.testing.compare import TensorComparison, assert_close, compare_outputs, compare_tensor

__all__ = ["Case", "TensorComparison", "assert_close", "compare_outputs", "compare_tensor", "Report", "check_case"]

if importlib.util.find_spec("hypothesis") is not None:
    from scratch_rnn.testing.strategies import cases
    from scratch_rnn.testing.verify import verify

    __all__ += ["cases", "verify"]
