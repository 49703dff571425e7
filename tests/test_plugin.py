"""The pytest plugin a porter's project gets by installing scratch-rnn."""

import inspect

import numpy as np
import pytest

import scratch_rnn
from scratch_rnn.testing.runners import engine_candidate


def test_the_fixture_is_verify_with_the_same_signature(scratch_rnn_verify):
    """The fixture forwards to scratch_rnn.verify: one definition of the arguments and their defaults."""
    assert inspect.signature(scratch_rnn_verify) == inspect.signature(scratch_rnn.verify)
    assert scratch_rnn_verify.__wrapped__ is scratch_rnn.verify


def test_fixture_passes_a_correct_candidate(scratch_rnn_verify):
    report = scratch_rnn_verify(engine_candidate("GRU"), layer="GRU", max_examples=10, seed=2)
    assert report.ok and report.examples + report.skipped >= 10


def test_fixture_fails_a_wrong_candidate(scratch_rnn_verify):
    engine = engine_candidate("SimpleRNN")

    def no_bias(config, weights, x, mask=None, initial_state=None):
        if len(weights) == 3:
            weights = [*weights[:2], np.zeros_like(weights[2])]
        return engine(config, weights, x, mask, initial_state)

    with pytest.raises(AssertionError, match="differs from Keras SimpleRNN"):
        scratch_rnn_verify(no_bias, layer="SimpleRNN", max_examples=40, seed=2, shrink_seconds=0)


@pytest.mark.keras  # its inner pytest run imports Keras in a subprocess
def test_plugin_is_registered_by_entry_point_in_a_porters_project(pytester):
    pytester.makepyfile(
        test_port="""
        from scratch_rnn.testing.runners import engine_candidate

        def my_port(config, weights, x, mask=None, initial_state=None):
            return engine_candidate("LSTM")(config, weights, x, mask, initial_state)

        def test_my_lstm_port(scratch_rnn_verify):
            scratch_rnn_verify(my_port, layer="LSTM", max_examples=5, seed=1)

        def test_keras_reference(keras_reference):
            assert keras_reference.backend.backend() == "tensorflow"
    """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
