"""Each difference between Keras 2 (tf_keras) and Keras 3 that the sweep leaves out, shown to be real.

The engine follows Keras 3. Against Keras 2 the sweep omits these
(``scratch_rnn.testing.strategies.KNOWN_DIFFERENCES``); if one of these tests
starts failing, the difference is gone and the omission should go too.
"""

import numpy as np
import pytest
from hypothesis import given, settings

import scratch_rnn
from scratch_rnn.testing import assert_close, check_case
from scratch_rnn.testing.strategies import KNOWN_DIFFERENCES, activation_names, cases


def layer_pair(module, **kwargs):
    layer = module.layers.SimpleRNN(4, dtype="float64", return_sequences=True, **kwargs)
    layer.build((None, None, 3))
    rng = np.random.default_rng(1)
    layer.set_weights([rng.uniform(-2, 2, w.shape) for w in layer.get_weights()])
    return layer


def test_hard_sigmoid_differs_and_the_engine_follows_keras_3(keras3, tf_keras):
    x = np.random.default_rng(2).uniform(-2, 2, (2, 5, 3))
    k3, k2 = layer_pair(keras3, activation="hard_sigmoid"), layer_pair(tf_keras, activation="hard_sigmoid")
    k2.set_weights(k3.get_weights())
    ours = scratch_rnn.from_keras(k3)(x)
    assert_close(ours, np.asarray(k3(x)), 1e-13, name="engine vs Keras 3")
    assert np.abs(ours - np.asarray(k2(x))).max() > 1e-3  # Keras 2: clip(0.2x + 0.5, 0, 1)
    assert "hard_sigmoid" not in activation_names("tf_keras") and "hard_sigmoid" in activation_names("keras")


def test_keras2_unrolled_zero_output_without_sequences_raises_where_keras3_runs(keras3, tf_keras):
    x, mask = np.ones((2, 4, 3)), np.array([[True, False, True, True]] * 2)
    options = dict(unroll=True, zero_output_for_mask=True, return_sequences=False)
    k3 = keras3.layers.SimpleRNN(2, **options)
    k3(x, mask=mask)  # runs
    with pytest.raises(ValueError):
        tf_keras.layers.SimpleRNN(2, **options)(x, mask=mask)
    repaired = KNOWN_DIFFERENCES["tf_keras"]["config"](
        {"unroll": True, "return_sequences": False, "zero_output_for_mask": True}
    )
    assert repaired["zero_output_for_mask"] is False


@settings(max_examples=10)
@given(case=cases("LSTM", "float64", reference="tf_keras"))
def test_keras2_lane_cases_run_on_tf_keras(tf_keras, case):
    result = check_case(case, tf_keras)
    assert result.ok or result.skipped, result.message()
