"""``layer.fast = False``: the readable ``project``/``step`` runs, and agrees with the fast kernels.

Every recurrent layer runs its fast kernel (:mod:`scratch_rnn.kernels`) unless ``fast`` is False; then
the same loop, masks and states drive the equations of the layer's docstring, so a learner can put a
breakpoint in ``LSTM.step``. The property here draws from the harness's own strategies (every layer,
every option the Keras sweep draws, both dtypes) and compares the two paths under the harness's derived
tolerance, with no Keras involved; the last test sweeps the reference path against real Keras.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import scratch_rnn
from scratch_rnn.testing.case import LAYERS
from scratch_rnn.testing.check import check_against
from scratch_rnn.testing.compare import assert_close
from scratch_rnn.testing.runners import engine_layer, run_layer
from scratch_rnn.testing.strategies import cases


def reference_step_outputs(case):
    """What the engine's readable step returns on ``case``: a reference for :func:`check_against`."""
    names, outputs = run_layer(engine_layer(case, fast=False), case.chunks())
    return names, outputs, case.config


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", LAYERS)
def test_fast_kernels_equal_the_readable_step_on_the_sweeps_cases(layer, dtype):
    @settings(max_examples=40)
    @given(case=cases(layer, dtype))
    def fast_equals_reference(case):
        result = check_against(case, lambda: reference_step_outputs(case))  # candidate None: the fast kernels
        assert result.ok or result.skipped, result.message()

    fast_equals_reference()


def test_the_comparison_fails_when_the_readable_step_differs(rng):
    """The property above can fail: a readable step with one changed sign is a mismatch."""
    layer = scratch_rnn.GRU(3, return_sequences=True)
    layer.build((None, None, 2))
    layer.set_weights([rng.uniform(-1, 1, w.shape).astype("float32") for w in layer.get_weights()])
    x = rng.uniform(-1, 1, (2, 5, 2)).astype("float32")
    fast = layer(x)
    original = layer.step
    layer.step = lambda z_t, states: original(-z_t, states)
    layer.fast = False
    assert not np.allclose(layer(x), fast, atol=1e-3)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_fast_false_runs_the_layers_own_step_once_per_timestep(name, rng):
    layer = getattr(scratch_rnn, name)(4, return_sequences=True)
    x = rng.uniform(-1, 1, (3, 7, 2))
    fast_output = layer(x)
    calls = []
    original = layer.step

    def counting_step(z_t, states):
        calls.append(z_t.shape)
        return original(z_t, states)

    layer.step = counting_step  # where a learner's breakpoint would stop
    layer(x)
    assert calls == [], "the fast path must not run the readable step"
    layer.fast = False
    reference_output = layer(x)
    assert len(calls) == 7 and all(shape[0] == 3 for shape in calls)
    assert_close(reference_output, fast_output, 1e-5, "reference vs fast output")


def test_bidirectional_fast_sets_both_directions(rng):
    layer = scratch_rnn.Bidirectional(scratch_rnn.LSTM(3, return_sequences=True))
    x = rng.uniform(-1, 1, (2, 4, 3))
    fast_output = layer(x)
    assert layer.fast
    layer.fast = False
    assert not layer.forward_layer.fast and not layer.backward_layer.fast and not layer.fast
    assert_close(layer(x), fast_output, 1e-5, "Bidirectional reference vs fast")
    layer.backward_layer.fast = True
    assert not layer.fast  # both must be fast for the wrapper to say so


def test_fast_is_an_attribute_not_part_of_the_config():
    """Configs stay Keras's: a Keras layer built from a scratch config must not meet an unknown ``fast``."""
    layer = scratch_rnn.SimpleRNN(2)
    layer.fast = False
    assert "fast" not in layer.get_config()
    assert scratch_rnn.SimpleRNN(2).fast is True


@pytest.mark.parametrize("layer", LAYERS)
def test_the_harness_sweeps_the_reference_step_against_keras(layer, keras):
    report = scratch_rnn.verify(layer=layer, max_examples=15, seed=11, dtype="float32", fast=False)
    assert report.ok, "\n".join(str(f) for f in report.failures)
    assert report.candidate == "scratch_rnn engine (reference step)" and report.examples > 0
