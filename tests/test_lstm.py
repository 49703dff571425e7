"""scratch_rnn.LSTM: what the Keras sweep does not reach, Keras's golden values, errors.

The sweep (``test_harness.py::test_engine_equals_keras``) holds every option against Keras on random
weights: activations, bias, masks, initial states, go_backwards, stateful, unroll, return flags, both
dtypes. Here: shapes beyond the sweep's, initial states near the largest float, ``reset_state``, the
parameter count and weight shapes, ``from_keras`` on a Keras layer, Keras's published golden values
(``keras/src/layers/rnn/lstm_test.py``) and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    DTYPES,
    LARGE,
    assert_golden,
    assert_golden_statefulness,
    assert_outputs_close,
    left_and_right_padded_mask,
    randomize,
)
from helpers import (
    KERAS_GOLDEN_INITIALIZERS as CONSTANTS,
)

import scratch_rnn
from scratch_rnn.initializers import Constant


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_shapes_match_keras(twin, dtype):
    """A mask and an initial state over 150 steps, across the fast kernel's chunks."""
    batch, timesteps, features, units = LARGE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, timesteps, features)).astype(dtype)
    mask = left_and_right_padded_mask(batch, timesteps)
    state = [rng.standard_normal((batch, units)).astype(dtype) for _ in range(2)]
    kl, ours = twin("LSTM", {"units": units, "return_sequences": True, "return_state": True}, x.shape, dtype, rng)
    theirs = kl(x, mask=mask, initial_state=state)
    assert_outputs_close(ours(x, mask=mask, initial_state=state), theirs, f"LSTM {LARGE}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("huge", ["h0", "c0"])
def test_initial_state_near_the_largest_float_matches_keras(twin, huge, dtype):
    # The fast kernel holds h as 2h and forms 2f * c; either overflows for a state above max / 2
    # where Keras, with small recurrent weights, stays finite. The all-masked sample returns h0 itself.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6, 3)).astype(dtype)
    h0, c0 = (rng.uniform(-1, 1, (5, 4)).astype(dtype) for _ in range(2))
    if huge == "h0":
        h0 *= 0.75 * np.finfo(dtype).max
    else:
        c0 *= 0.75 * np.finfo(dtype).max
    kl, ours = twin("LSTM", {"units": 4, "return_sequences": True, "return_state": True}, x.shape, dtype, rng)
    kernel, recurrent_kernel, bias = kl.get_weights()
    bias[4:8] = 5  # forget gates near 1: 2f * c0 > max
    kl.set_weights([kernel, recurrent_kernel * 1e-3, bias])
    ours.set_weights(kl.get_weights())
    mask = left_and_right_padded_mask(5, 6)
    theirs = [np.asarray(t) for t in kl(x, initial_state=[h0, c0], mask=mask)]
    assert all(np.isfinite(t).all() for t in theirs)
    assert_outputs_close(ours(x, initial_state=[h0, c0], mask=mask), theirs, f"LSTM {huge} near max")


def test_stateful_carries_both_states_and_reset_state_clears_them(twin):
    rng = np.random.default_rng(3)
    x1, x2 = (rng.standard_normal((2, 3, 4)) for _ in range(2))
    kl, ours = twin("LSTM", {"units": 4, "stateful": True, "return_state": True}, x1.shape, "float64", rng)
    assert_outputs_close(ours(x1), kl(x1), "LSTM stateful call 1")
    assert_outputs_close(ours(x2), kl(x2), "LSTM stateful call 2")
    kl.reset_state()
    ours.reset_state()
    assert_outputs_close(ours(x2), kl(x2), "LSTM stateful after reset_state")


@pytest.mark.parametrize("units, features", [(4, 4), (2, 7)])
def test_parameter_count_and_weight_shapes_equal_keras(keras, units, features):
    kl = keras.layers.LSTM(units)
    kl.build((None, None, features))
    ours = scratch_rnn.LSTM(units)
    ours.build((None, None, features))
    assert ours.count_params() == kl.count_params() == 4 * units * (features + units + 1)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in kl.get_weights()]
    assert ours.compute_output_shape((None, 7, features)) == (None, units)


def test_from_keras_copies_config_and_weights(keras):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    kl = keras.layers.LSTM(4, activation="relu", go_backwards=True, return_sequences=True, unit_forget_bias=False)
    kl.build(x.shape)
    randomize(kl, rng)
    ours = scratch_rnn.from_keras(kl)
    assert isinstance(ours, scratch_rnn.LSTM) and ours.name == kl.name and ours.go_backwards
    assert_outputs_close(ours(x), kl(x), "from_keras(LSTM)")


def test_unit_forget_bias_initialises_forget_block_to_ones():
    ours = scratch_rnn.LSTM(3, bias_initializer=Constant(0.5))
    ours.build((None, None, 2))
    np.testing.assert_array_equal(ours.get_weights()[2], [0.5] * 3 + [1.0] * 3 + [0.5] * 6)
    ours = scratch_rnn.LSTM(3, bias_initializer=Constant(0.5), unit_forget_bias=False)
    ours.build((None, None, 2))
    np.testing.assert_array_equal(ours.get_weights()[2], [0.5] * 12)


# --- Keras's own golden values (keras/src/layers/rnn/lstm_test.py) --------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, [[0.6288687] * 3, [0.86899155] * 3, [0.9460773] * 3]),
        ({"go_backwards": True}, [[0.35622165] * 3, [0.74789524] * 3, [0.8872726] * 3]),
        ({"unroll": True}, [[0.6288687] * 3, [0.86899155] * 3, [0.9460773] * 3]),
        ({"unit_forget_bias": False}, [[0.57019705] * 3, [0.8661914] * 3, [0.9459622] * 3]),
        ({"use_bias": False}, [[0.54986924] * 3, [0.86226785] * 3, [0.9443936] * 3]),
    ],
    ids=["default", "go_backwards", "unroll", "no_unit_forget_bias", "no_bias"],
)
def test_keras_golden_correctness(kwargs, expected):
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    assert_golden(scratch_rnn.LSTM(3, **CONSTANTS, **kwargs)(sequence), expected, context=str(kwargs))


def test_keras_golden_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = scratch_rnn.LSTM(4, stateful=True, **CONSTANTS)
    expected = [[0.3124785] * 4, [0.6863672] * 4]
    assert_golden_statefulness(layer, sequence, expected)


def test_keras_golden_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = [np.arange(4).reshape((2, 2)).astype("float32")] * 2
    layer = scratch_rnn.LSTM(2, **CONSTANTS)
    assert_golden(layer(sequence, initial_state=initial_state), [[0.20574439, 0.3558822], [0.64930826, 0.66276]])
    layer = scratch_rnn.LSTM(2, go_backwards=True, **CONSTANTS)
    expected = [[0.13281618, 0.2790356], [0.5839337, 0.5992567]]
    assert_golden(layer(sequence, initial_state=initial_state), expected, context="go_backwards")


def test_keras_golden_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    layer = scratch_rnn.LSTM(2, unroll=True, **CONSTANTS)
    assert_golden(layer(sequence, mask=mask), [[0.11755939] * 2, [0.28556206] * 2], context="unroll")
    layer = scratch_rnn.LSTM(2, return_sequences=True, **CONSTANTS)
    expected = [
        [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2, [0.11755939] * 2],
        [[0.14185596] * 2, [0.28556206] * 2, [0.28556206] * 2, [0.28556206] * 2],
    ]
    assert_golden(layer(sequence, mask=mask), expected, context="return_sequences")
    layer = scratch_rnn.LSTM(2, return_sequences=True, zero_output_for_mask=True, **CONSTANTS)
    expected = [
        [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2, [0.0] * 2],
        [[0.14185596] * 2, [0.28556206] * 2, [0.0] * 2, [0.0] * 2],
    ]
    assert_golden(layer(sequence, mask=mask), expected, context="zero_output_for_mask")
    backwards_mask = np.array([[False, True, True, True], [False, False, True, True]])
    layer = scratch_rnn.LSTM(2, go_backwards=True, **CONSTANTS)
    assert_golden(layer(sequence, mask=backwards_mask), [[0.15341201] * 2, [0.3844719] * 2], context="go_backwards")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0}, r"argument `units`, expected a positive integer, got 0"),
        ({"units": 2.5}, r"argument `units`"),
        ({"units": 3, "activation": "softmax"}, r"argument `activation`.*got 'softmax'"),
        ({"units": 3, "recurrent_activation": "bogus"}, r"argument `recurrent_activation`.*got 'bogus'"),
        ({"units": 3, "return_state": "yes"}, r"argument `return_state`, expected a bool"),
        ({"units": 3, "dropout": 1.5}, r"argument `dropout`"),
        ({"units": 3, "dtype": "float16"}, r"argument `dtype`"),
        ({"units": 3, "kernel_initializer": "he_normal"}, r"argument `kernel_initializer`"),
        ({"units": 3, "use_cudnn": "yes"}, r"argument `use_cudnn`, expected one of \['auto', True, False\]"),
        ({"units": 3, "implementation": 3}, r"argument `implementation`, expected 1 or 2, got 3"),
        ({"units": 3, "time_major": True}, r"argument `time_major`, expected False"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scratch_rnn.LSTM(**kwargs)


def test_bad_call_arguments_raise():
    layer = scratch_rnn.LSTM(3)
    x = np.zeros((2, 4, 5), "float32")
    layer(x)
    with pytest.raises(ValueError, match=r"must be 3-D"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"must have 5 features"):
        layer(np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 4\)"):
        layer(x, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"`initial_state` of .* must hold 2 array"):
        layer(x, initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"`initial_state\[1\]` must have shape \(2, 3\)"):
        layer(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"numeric array"):
        layer(np.array([["a"]]))


def test_bad_weights_raise():
    layer = scratch_rnn.LSTM(3)
    layer.build((None, None, 2))
    good = layer.get_weights()
    with pytest.raises(ValueError, match=r"must hold 3 arrays"):
        layer.set_weights(good[:2])
    with pytest.raises(ValueError, match=r"recurrent_kernel.*Keras shape \(3, 12\), got \(12, 3\)"):
        layer.set_weights([good[0], good[1].T, good[2]])
