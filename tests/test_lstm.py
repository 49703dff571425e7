"""scratch_rnn.LSTM against keras.layers.LSTM: random weights for every option, Keras's golden values, errors."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras_reference import (
    DTYPES,
    as_list,
    assert_golden_statefulness,
    assert_matches_keras,
    left_and_right_padded_mask,
    randomize,
    twin,
)  # noqa: E402

import scratch_rnn  # noqa: E402
from scratch_rnn.initializers import Constant  # noqa: E402

# (features, units): square kernels are where a forgotten transpose still has the right shape.
SHAPES = [(4, 4), (3, 5)]

OPTIONS = {
    "default": {},
    "return_sequences": {"return_sequences": True},
    "go_backwards": {"go_backwards": True, "return_sequences": True},
    "return_state": {"return_state": True, "return_sequences": True},
    "no_bias": {"use_bias": False},
    "relu_hard_sigmoid": {"activation": "relu", "recurrent_activation": "hard_sigmoid", "return_sequences": True},
    "linear_tanh": {"activation": None, "recurrent_activation": "tanh"},
    "sigmoid_linear": {"activation": "sigmoid", "recurrent_activation": "linear", "return_state": True},
    "unroll": {"unroll": True, "return_sequences": True},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("features, units", SHAPES)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_random_weights_match_keras(option, features, units, dtype):
    rng = np.random.default_rng([list(OPTIONS).index(option), features, units])
    x = rng.standard_normal((3, 5, features)).astype(dtype)
    kl, ours = twin("LSTM", {"units": units, **OPTIONS[option]}, x.shape, dtype, rng)
    assert_matches_keras(ours(x), kl(x), dtype, f"LSTM {option} {features}->{units}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"return_sequences": True},
        {"return_sequences": True, "zero_output_for_mask": True},
        {"return_sequences": True, "go_backwards": True},
        {"return_sequences": True, "go_backwards": True, "zero_output_for_mask": True, "return_state": True},
        {"return_state": True},
        {"unroll": True, "return_sequences": True, "zero_output_for_mask": True},
    ],
    ids=lambda k: "-".join(k),
)
def test_masks_match_keras(kwargs, dtype):
    """Masked first steps, padding, holes, a full row and an all-masked row, in one batch."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 4)).astype(dtype)
    mask = left_and_right_padded_mask(5, 6)
    kl, ours = twin("LSTM", {"units": 4, **kwargs}, x.shape, dtype, rng)
    assert_matches_keras(ours(x, mask=mask), kl(x, mask=mask), dtype, f"LSTM masked {kwargs}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_initial_state_matches_keras(go_backwards, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3)).astype(dtype)
    h0, c0 = (rng.standard_normal((2, 5)).astype(dtype) for _ in range(2))
    kl, ours = twin("LSTM", {"units": 5, "go_backwards": go_backwards, "return_state": True}, x.shape, dtype, rng)
    assert_matches_keras(ours(x, initial_state=[h0, c0]), kl(x, initial_state=[h0, c0]), dtype, "LSTM initial_state")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("huge", ["h0", "c0"])
def test_initial_state_near_the_largest_float_matches_keras(huge, dtype):
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
    theirs = kl(x, initial_state=[h0, c0], mask=mask)
    assert all(np.isfinite(t).all() for t in as_list(theirs))
    assert_matches_keras(ours(x, initial_state=[h0, c0], mask=mask), theirs, dtype, f"LSTM {huge} near max")


@pytest.mark.parametrize("dtype", DTYPES)
def test_stateful_carries_both_states_across_calls(dtype):
    rng = np.random.default_rng(3)
    x1, x2 = (rng.standard_normal((2, 3, 4)).astype(dtype) for _ in range(2))
    kl, ours = twin("LSTM", {"units": 4, "stateful": True, "return_state": True}, x1.shape, dtype, rng)
    assert_matches_keras(ours(x1), kl(x1), dtype, "LSTM stateful call 1")
    assert_matches_keras(ours(x2), kl(x2), dtype, "LSTM stateful call 2")
    kl.reset_state()
    ours.reset_state()
    assert_matches_keras(ours(x2), kl(x2), dtype, "LSTM stateful after reset_state")


@pytest.mark.parametrize("units, features", [(4, 4), (2, 7)])
def test_parameter_count_and_weight_shapes_equal_keras(units, features):
    kl = keras.layers.LSTM(units)
    kl.build((None, None, features))
    ours = scratch_rnn.LSTM(units)
    ours.build((None, None, features))
    assert ours.count_params() == kl.count_params() == 4 * units * (features + units + 1)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in kl.get_weights()]
    assert ours.compute_output_shape((None, 7, features)) == (None, units)


def test_from_keras_copies_config_and_weights():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    kl = keras.layers.LSTM(4, activation="relu", go_backwards=True, return_sequences=True, unit_forget_bias=False)
    kl.build(x.shape)
    randomize(kl, rng)
    ours = scratch_rnn.from_keras(kl)
    assert isinstance(ours, scratch_rnn.LSTM) and ours.name == kl.name and ours.go_backwards
    assert_matches_keras(ours(x), kl(x), "float32", "from_keras(LSTM)")


def test_unit_forget_bias_initialises_forget_block_to_ones():
    ours = scratch_rnn.LSTM(3, bias_initializer=Constant(0.5))
    ours.build((None, None, 2))
    np.testing.assert_array_equal(ours.get_weights()[2], [0.5] * 3 + [1.0] * 3 + [0.5] * 6)
    ours = scratch_rnn.LSTM(3, bias_initializer=Constant(0.5), unit_forget_bias=False)
    ours.build((None, None, 2))
    np.testing.assert_array_equal(ours.get_weights()[2], [0.5] * 12)


# --- Keras's own golden values (keras/src/layers/rnn/lstm_test.py) --------------------------

CONSTANTS = {
    "kernel_initializer": Constant(0.01),
    "recurrent_initializer": Constant(0.02),
    "bias_initializer": Constant(0.03),
}


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
    layer = scratch_rnn.LSTM(3, **CONSTANTS, **kwargs)
    np.testing.assert_allclose(layer(sequence), expected, atol=1e-6, rtol=1e-6)


def test_keras_golden_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = scratch_rnn.LSTM(4, stateful=True, **CONSTANTS)
    expected = [[0.3124785] * 4, [0.6863672] * 4]
    assert_golden_statefulness(layer, sequence, expected)


def test_keras_golden_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = [np.arange(4).reshape((2, 2)).astype("float32")] * 2
    layer = scratch_rnn.LSTM(2, **CONSTANTS)
    np.testing.assert_allclose(
        layer(sequence, initial_state=initial_state),
        [[0.20574439, 0.3558822], [0.64930826, 0.66276]],
        atol=1e-6,
        rtol=1e-6,
    )
    layer = scratch_rnn.LSTM(2, go_backwards=True, **CONSTANTS)
    np.testing.assert_allclose(
        layer(sequence, initial_state=initial_state),
        [[0.13281618, 0.2790356], [0.5839337, 0.5992567]],
        atol=1e-6,
        rtol=1e-6,
    )


def test_keras_golden_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    layer = scratch_rnn.LSTM(2, unroll=True, **CONSTANTS)
    np.testing.assert_allclose(layer(sequence, mask=mask), [[0.11755939] * 2, [0.28556206] * 2], atol=1e-6, rtol=1e-6)
    layer = scratch_rnn.LSTM(2, return_sequences=True, **CONSTANTS)
    output = layer(sequence, mask=mask)
    np.testing.assert_allclose(
        output[0], [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2, [0.11755939] * 2], atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(
        output[1], [[0.14185596] * 2, [0.28556206] * 2, [0.28556206] * 2, [0.28556206] * 2], atol=1e-6, rtol=1e-6
    )
    layer = scratch_rnn.LSTM(2, return_sequences=True, zero_output_for_mask=True, **CONSTANTS)
    output = layer(sequence, mask=mask)
    np.testing.assert_allclose(
        output[0], [[0.01588910] * 2, [0.05552048] * 2, [0.11755939] * 2, [0.0] * 2], atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(
        output[1], [[0.14185596] * 2, [0.28556206] * 2, [0.0] * 2, [0.0] * 2], atol=1e-6, rtol=1e-6
    )
    backwards_mask = np.array([[False, True, True, True], [False, False, True, True]])
    layer = scratch_rnn.LSTM(2, go_backwards=True, **CONSTANTS)
    np.testing.assert_allclose(
        layer(sequence, mask=backwards_mask), [[0.15341201] * 2, [0.3844719] * 2], atol=1e-6, rtol=1e-6
    )


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
        ({"units": 3, "use_cudnn": False}, r"Unrecognized keyword arguments passed to LSTM: \['use_cudnn'\]"),
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
