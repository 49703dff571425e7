"""The verification harness: strategies, the comparison helper, and the sweep against real Keras.

The comparison (:mod:`~scratch_rnn.testing.compare`), one case (:mod:`~scratch_rnn.testing.case`,
:mod:`~scratch_rnn.testing.check`) and golden vectors (:mod:`~scratch_rnn.testing.golden`) need
NumPy only. The strategies (``cases``) and the sweep (``verify``) need Hypothesis (the ``verify``
extra); without it, importing them raises an ImportError that says what to install. Keras is
imported only to run the sweep.
"""

from scratch_rnn.testing.case import Case
from scratch_rnn.testing.check import Report, check_case
from scratch_rnn.testing.compare import TensorComparison, assert_close, compare_outputs, compare_tensor
from scratch_rnn.testing.errors import missing_extra

__all__ = [
    "Case",
    "TensorComparison",
    "assert_close",
    "compare_outputs",
    "compare_tensor",
    "Report",
    "check_case",
    "cases",
    "verify",
]

try:
    import hypothesis  # noqa: F401  (only whether it is installed)
except ImportError as _missing:
    _hypothesis_missing = _missing

    def __getattr__(name):
        if name in ("cases", "verify"):
            raise ImportError(
                missing_extra(f"scratch_rnn.testing.{name}", "verify", _hypothesis_missing), name="hypothesis"
            )
        raise AttributeError(f"module 'scratch_rnn.testing' has no attribute {name!r}")

else:
    from scratch_rnn.testing.strategies import cases
    from scratch_rnn.testing.verify import verify
