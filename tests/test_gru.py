"""scratch_rnn.GRU against keras.layers.GRU: both reset_after modes, every option, golden values, errors."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras_reference import (
    DTYPES,
    assert_golden_statefulness,
    assert_matches_keras,
    left_and_right_padded_mask,
    randomize,
    twin,
)  # noqa: E402

import scratch_rnn  # noqa: E402
from scratch_rnn.initializers import Constant  # noqa: E402

SHAPES = [(4, 4), (6, 2)]  # (features, units): square, and more features than units

OPTIONS = {
    "default": {},
    "return_sequences": {"return_sequences": True},
    "go_backwards": {"go_backwards": True, "return_sequences": True},
    "return_state": {"return_state": True, "return_sequences": True},
    "no_bias": {"use_bias": False},
    "relu_hard_sigmoid": {"activation": "relu", "recurrent_activation": "hard_sigmoid", "return_sequences": True},
    "linear_tanh": {"activation": None, "recurrent_activation": "tanh"},
    "sigmoid_linear": {"activation": "sigmoid", "recurrent_activation": "linear", "return_state": True},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
@pytest.mark.parametrize("features, units", SHAPES)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_random_weights_match_keras(option, features, units, reset_after, dtype):
    rng = np.random.default_rng([list(OPTIONS).index(option), features, units, reset_after])
    x = rng.standard_normal((3, 5, features)).astype(dtype)
    kl, ours = twin("GRU", {"units": units, "reset_after": reset_after, **OPTIONS[option]}, x.shape, dtype, rng)
    assert_matches_keras(ours(x), kl(x), dtype, f"GRU {option} reset_after={reset_after} {features}->{units}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"return_sequences": True},
        {"return_sequences": True, "zero_output_for_mask": True},
        {"return_sequences": True, "go_backwards": True, "return_state": True},
        {"go_backwards": True, "zero_output_for_mask": True},
    ],
    ids=lambda k: "-".join(k),
)
def test_masks_match_keras(kwargs, reset_after, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 3)).astype(dtype)
    mask = left_and_right_padded_mask(5, 6)
    kl, ours = twin("GRU", {"units": 3, "reset_after": reset_after, **kwargs}, x.shape, dtype, rng)
    assert_matches_keras(ours(x, mask=mask), kl(x, mask=mask), dtype, f"GRU masked {kwargs}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_initial_state_matches_keras(as_list, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3)).astype(dtype)
    h0 = rng.standard_normal((2, 5)).astype(dtype)
    state = [h0] if as_list else h0
    kl, ours = twin("GRU", {"units": 5, "return_state": True, "go_backwards": True}, x.shape, dtype, rng)
    assert_matches_keras(ours(x, initial_state=state), kl(x, initial_state=state), dtype, "GRU initial_state")


@pytest.mark.parametrize("dtype", DTYPES)
def test_stateful_across_calls(dtype):
    rng = np.random.default_rng(3)
    x1, x2 = (rng.standard_normal((2, 3, 4)).astype(dtype) for _ in range(2))
    kl, ours = twin("GRU", {"units": 4, "stateful": True, "reset_after": False}, x1.shape, dtype, rng)
    assert_matches_keras(ours(x1), kl(x1), dtype, "GRU stateful call 1")
    assert_matches_keras(ours(x2), kl(x2), dtype, "GRU stateful call 2")


@pytest.mark.parametrize("reset_after, bias_shape", [(True, (2, 12)), (False, (12,))])
@pytest.mark.parametrize("features", [4, 7])
def test_parameter_count_and_bias_layout_equal_keras(reset_after, bias_shape, features):
    units = 4
    kl = keras.layers.GRU(units, reset_after=reset_after)
    kl.build((None, None, features))
    ours = scratch_rnn.GRU(units, reset_after=reset_after)
    ours.build((None, None, features))
    expected = 3 * units * (features + units + (2 if reset_after else 1))
    assert ours.count_params() == kl.count_params() == expected
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in kl.get_weights()]
    assert ours.get_weights()[2].shape == bias_shape


def test_from_keras_keeps_reset_after():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3)).astype("float64")
    for reset_after in (True, False):
        kl = keras.layers.GRU(4, reset_after=reset_after, return_sequences=True, dtype="float64")
        kl.build(x.shape)
        randomize(kl, rng)
        ours = scratch_rnn.from_keras(kl)
        assert ours.reset_after is reset_after and ours.dtype == np.float64
        assert_matches_keras(ours(x), kl(x), "float64", f"from_keras(GRU reset_after={reset_after})")


# --- Keras's own golden values (keras/src/layers/rnn/gru_test.py) ---------------------------

CONSTANTS = {
    "kernel_initializer": Constant(0.01),
    "recurrent_initializer": Constant(0.02),
    "bias_initializer": Constant(0.03),
}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]]),
        ({"go_backwards": True}, [[0.24406259] * 3, [0.611516] * 3, [0.3928808] * 3]),
        ({"unroll": True}, [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]]),
        ({"reset_after": False}, [[0.51447755] * 3, [0.6426879] * 3, [0.40208298] * 3]),
        ({"use_bias": False}, [[0.49988455] * 3, [0.64701194] * 3, [0.4103359] * 3]),
    ],
    ids=["default", "go_backwards", "unroll", "reset_before", "no_bias"],
)
def test_keras_golden_correctness(kwargs, expected):
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    np.testing.assert_allclose(scratch_rnn.GRU(3, **CONSTANTS, **kwargs)(sequence), expected, atol=1e-6, rtol=1e-6)


def test_keras_golden_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = scratch_rnn.GRU(4, stateful=True, **CONSTANTS)
    expected = [[0.29542392] * 4, [0.5885018] * 4]
    assert_golden_statefulness(layer, sequence, expected)


def test_keras_golden_initial_and_return_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    for go_backwards, expected in [
        (False, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]),
        (True, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]]),
    ]:
        layer = scratch_rnn.GRU(2, go_backwards=go_backwards, return_state=True, **CONSTANTS)
        output, state = layer(sequence, initial_state=initial_state)
        np.testing.assert_allclose(output, expected, atol=1e-6, rtol=1e-6)
        np.testing.assert_array_equal(output, state)


def test_keras_golden_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    layer = scratch_rnn.GRU(2, unroll=True, **CONSTANTS)
    np.testing.assert_allclose(layer(sequence, mask=mask), [[0.19393763] * 2, [0.30818558] * 2], atol=1e-6, rtol=1e-6)
    layer = scratch_rnn.GRU(2, return_sequences=True, **CONSTANTS)
    output = layer(sequence, mask=mask)
    np.testing.assert_allclose(
        output[0], [[0.03606692] * 2, [0.09497581] * 2, [0.09497581] * 2, [0.19393763] * 2], atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(
        output[1], [[0.16051409] * 2, [0.16051409] * 2, [0.16051409] * 2, [0.30818558] * 2], atol=1e-6, rtol=1e-6
    )
    layer = scratch_rnn.GRU(2, return_sequences=True, zero_output_for_mask=True, **CONSTANTS)
    output = layer(sequence, mask=mask)
    np.testing.assert_allclose(
        output[0], [[0.03606692] * 2, [0.09497581] * 2, [0.0] * 2, [0.19393763] * 2], atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(
        output[1], [[0.16051409] * 2, [0.0] * 2, [0.0] * 2, [0.30818558] * 2], atol=1e-6, rtol=1e-6
    )
    layer = scratch_rnn.GRU(2, go_backwards=True, **CONSTANTS)
    np.testing.assert_allclose(layer(sequence, mask=mask), [[0.11669192] * 2, [0.28380975] * 2], atol=1e-6, rtol=1e-6)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": -1}, r"argument `units`, expected a positive integer, got -1"),
        ({"units": 3, "reset_after": "yes"}, r"argument `reset_after`, expected a bool, got 'yes'"),
        ({"units": 3, "activation": "elu"}, r"argument `activation`.*got 'elu'"),
        ({"units": 3, "recurrent_activation": "softmax"}, r"argument `recurrent_activation`"),
        ({"units": 3, "go_backwards": 1}, r"argument `go_backwards`, expected a bool"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scratch_rnn.GRU(**kwargs)


def test_bias_of_the_other_reset_after_mode_is_refused():
    layer = scratch_rnn.GRU(3, reset_after=True)
    layer.build((None, None, 2))
    kernel, recurrent, _ = layer.get_weights()
    with pytest.raises(ValueError, match=r"\(bias\) .* must have Keras shape \(2, 9\), got \(9,\)"):
        layer.set_weights([kernel, recurrent, np.zeros(9)])
    layer = scratch_rnn.GRU(3, reset_after=False)
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=r"\(bias\) .* must have Keras shape \(9,\), got \(2, 9\)"):
        layer.set_weights([kernel, recurrent, np.zeros((2, 9))])


def test_bad_call_arguments_raise():
    layer = scratch_rnn.GRU(3, stateful=True)
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"stateful with batch size 2"):
        layer(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"at least one timestep"):
        layer(np.zeros((2, 0, 5)))
    with pytest.raises(ValueError, match=r"`initial_state\[0\]` must have shape \(2, 3\)"):
        layer(np.zeros((2, 4, 5)), initial_state=np.zeros((2, 5)))
