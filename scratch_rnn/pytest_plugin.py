"""A pytest plugin (entry point ``pytest11``) for projects that port Keras RNNs.

Installed with scratch-rnn, it gives every test session two fixtures:

``scratch_rnn_verify``
    :func:`scratch_rnn.verify` itself, same arguments and defaults (one layer, one dtype,
    ``max_examples`` generated cases against the installed Keras), except that a mismatch
    fails the test: ``AssertionError`` with the shrunk case and its reproducer.
    ``scratch_rnn_verify(my_port, layer="GRU", max_examples=50)``.
``keras_reference``
    the Keras *module* the harness compares against (``keras``, or ``tf_keras`` when
    ``$SCRATCH_RNN_REFERENCE`` says so), on TensorFlow, its logs quieted: for a test that
    builds its own Keras layer. Not a layer, nor reference outputs.

The Hypothesis strategies are importable as ``scratch_rnn.testing.cases``. Nothing
heavy is imported until a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

import functools

import pytest


def asserting(verify):
    """``verify`` (its signature, defaults and docstring) raising ``AssertionError`` with every failure, if any."""

    @functools.wraps(verify)
    def verified(*args, **kwargs):
        __tracebackhide__ = True
        report = verify(*args, **kwargs)
        if not report.ok:
            details = "\n\n".join(str(f) for f in report.failures) or "no case was checked"
            raise AssertionError(f"{report.candidate} differs from Keras {report.layer} ({report.dtype}):\n{details}")
        return report

    return verified


@pytest.fixture
def scratch_rnn_verify():
    """:func:`scratch_rnn.verify` (same arguments, same defaults) that fails the test unless the candidate
    equals Keras; returns the :class:`~scratch_rnn.testing.check.Report`."""
    from scratch_rnn.testing.verify import verify

    return asserting(verify)


@pytest.fixture(scope="session")
def keras_reference():
    """The Keras module the harness compares against (``$SCRATCH_RNN_REFERENCE``: ``keras`` or ``tf_keras``)."""
    from scratch_rnn.testing.runners import import_keras

    return import_keras()
