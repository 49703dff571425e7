"""A pytest plugin (entry point ``pytest11``) for projects that port Keras RNNs.

Installed with scratch-rnn, it gives every test session two fixtures:

``scratch_rnn_verify``
    ``scratch_rnn_verify(candidate, layer="GRU", max_examples=100, dtype="float32", seed=None)``
    runs the Hypothesis sweep of :func:`scratch_rnn.verify` against the installed
    Keras and fails the test with the shrunk case and its reproducer on any mismatch.
``keras_reference``
    the Keras module the harness uses (TensorFlow backend, logs quieted).

The Hypothesis strategies are importable as ``scratch_rnn.testing.cases``. Nothing
heavy is imported until a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

import pytest


def assert_verified(
    candidate, layer: str = "SimpleRNN", max_examples: int = 100, dtype: str = "float32", seed=None, **kwargs
):
    """Run :func:`scratch_rnn.verify` and raise ``AssertionError`` with every failure if any."""
    __tracebackhide__ = True
    from scratch_rnn.testing.verify import verify

    report = verify(candidate, layer=layer, max_examples=max_examples, seed=seed, dtype=dtype, **kwargs)
    if not report.ok:
        details = "\n\n".join(str(f) for f in report.failures) or "no case was checked"
        raise AssertionError(f"{report.candidate} differs from Keras {layer} ({report.dtype}):\n{details}")
    return report


@pytest.fixture
def scratch_rnn_verify():
    """``scratch_rnn_verify(candidate, layer=..., ...)``: fail the test unless ``candidate`` equals Keras."""
    return assert_verified


@pytest.fixture(scope="session")
def keras_reference():
    from scratch_rnn.testing.runners import import_keras

    return import_keras()
