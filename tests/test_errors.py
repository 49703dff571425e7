"""Every bad input gets a ValueError naming the argument, the expectation and what arrived."""

import re

import numpy as np
import pytest

import scratch_rnn
from scratch_rnn import GRU, LSTM, SimpleRNN

RECURRENT = [SimpleRNN, LSTM, GRU]


def built(cls, units=3, features=5, **kwargs):
    layer = cls(units, **kwargs)
    layer.build((None, None, features))
    return layer


def raises(match):
    return pytest.raises(ValueError, match=re.escape(match))


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("shape", [(4, 5), (5,), (2, 3, 4, 5), ()])
def test_x_must_be_3d(cls, shape):
    layer = built(cls)
    with raises(f"Argument `x` of '{layer.name}' must be 3-D (batch, timesteps, features), got shape {shape}"):
        layer(np.zeros(shape))


@pytest.mark.parametrize("cls", RECURRENT)
def test_feature_size_must_match_the_built_kernel(cls):
    layer = built(cls, features=5)
    with raises(
        "must have 5 features (the built kernel's input_dim): expected shape (batch, timesteps, 5), got (2, 4, 6)"
    ):
        layer(np.zeros((2, 4, 6)))


@pytest.mark.parametrize("cls", RECURRENT)
def test_zero_timesteps(cls):
    with raises("must have at least one timestep, got shape (2, 0, 5)"):
        built(cls)(np.zeros((2, 0, 5)))


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("mask_shape", [(2, 3), (4, 2), (2,), (2, 4, 1)])
def test_mask_of_the_wrong_shape(cls, mask_shape):
    with raises(f"Argument `mask` must have shape (2, 4), got {mask_shape}"):
        built(cls)(np.zeros((2, 4, 5)), mask=np.ones(mask_shape, bool))


@pytest.mark.parametrize("state_shape", [(2, 4), (1, 3), (3,), (2, 3, 1)])
def test_initial_state_of_the_wrong_shape(state_shape):
    with raises(f"Argument `initial_state[0]` must have shape (2, 3), got {state_shape}"):
        built(SimpleRNN)(np.zeros((2, 4, 5)), initial_state=np.zeros(state_shape))


def test_initial_state_is_never_broadcast():
    with raises("Argument `initial_state[0]` must have shape (2, 3), got (1, 3)"):
        built(SimpleRNN)(np.zeros((2, 4, 5)), initial_state=[np.zeros((1, 3))])


def test_initial_state_with_the_wrong_number_of_arrays():
    with raises("Argument `initial_state` of 'lstm"):
        built(LSTM)(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3))])
    with raises("must hold 1 array(s) of shapes [(2, 3)], got 2"):
        built(SimpleRNN)(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3))] * 2)


def test_set_weights_with_the_wrong_number_of_arrays():
    layer = built(SimpleRNN)
    with raises("must hold 3 arrays ['kernel', 'recurrent_kernel', 'bias'], got 2"):
        layer.set_weights(layer.get_weights()[:2])


def test_set_weights_with_the_wrong_shapes_keeps_the_old_weights():
    layer = built(SimpleRNN)
    before = layer.get_weights()
    kernel, recurrent, bias = before
    with raises("must have Keras shape (5, 3), got (3, 5)"):
        layer.set_weights([kernel.T, recurrent, bias])
    with raises("must have Keras shape (3,), got (1, 3)"):
        layer.set_weights([kernel + 1, recurrent, bias[None]])
    for now, then in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(now, then)


def test_set_weights_builds_an_unbuilt_layer_from_the_kernel():
    layer = SimpleRNN(3)
    layer.set_weights([np.ones((7, 3)), np.ones((3, 3)), np.ones(3)])
    assert layer.built and layer.Wx.shape == (3, 7) and layer.count_params() == 3 * (7 + 3 + 1)


@pytest.mark.parametrize("value", [np.array([["a", "b"]]), np.zeros((1, 2, 3), complex), [[[object()]]]])
def test_non_numeric_inputs(value):
    with pytest.raises(ValueError, match="Argument `x` must be a real numeric array"):
        built(SimpleRNN)(value)


def test_non_numeric_mask_and_weights():
    with raises("Argument `mask` must be a real numeric array"):
        built(SimpleRNN)(np.zeros((2, 4, 5)), mask=np.full((2, 4), "yes"))
    with raises("Argument `weights[1] (recurrent_kernel)` must be a real numeric array"):
        built(SimpleRNN).set_weights([np.ones((5, 3)), np.full((3, 3), "w"), np.ones(3)])


@pytest.mark.parametrize("units", [0, -2, 2.5, True, "3"])
def test_units_must_be_a_positive_integer(units):
    with raises(f"Received an invalid value for argument `units`, expected a positive integer, got {units!r}"):
        SimpleRNN(units)


@pytest.mark.parametrize("argument", ["activation", "recurrent_activation"])
def test_unknown_activation_is_refused_by_name(argument):
    with raises(f"Received an invalid value for argument `{argument}`"):
        LSTM(3, **{argument: "gelu"})


def test_softmax_is_not_a_recurrent_activation():
    with raises("argument `activation`"):
        SimpleRNN(3, activation="softmax")


def test_unsupported_options_are_refused_by_name():
    with raises("Unrecognized keyword arguments passed to SimpleRNN: ['use_cudnn']"):
        SimpleRNN(3, use_cudnn=True)
    with raises("Give the input shape with `scratch_rnn.Input(shape=...)`"):
        SimpleRNN(3, batch_input_shape=(8, 2, 10))  # Keras 2 style, as the seed notebook wrote it


@pytest.mark.parametrize("dtype", ["float16", "int32", "mixed_float16"])
def test_unsupported_dtype(dtype):
    with raises("Received an invalid value for argument `dtype`, expected one of ['float32', 'float64']"):
        SimpleRNN(3, dtype=dtype)


@pytest.mark.parametrize("rate", [-0.1, 1.5, "0.2"])
def test_dropout_must_be_a_rate(rate):
    with raises("argument `dropout`, expected a float in [0, 1]"):
        SimpleRNN(3, dropout=rate)


def test_dropout_is_a_documented_inference_no_op():
    plain, dropped = built(SimpleRNN, seed=1), built(SimpleRNN, seed=1, dropout=0.5, recurrent_dropout=0.5)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 5))
    np.testing.assert_array_equal(plain(x), dropped(x))


def test_sequential_input_shape_mismatch():
    model = scratch_rnn.Sequential([scratch_rnn.Input(shape=(2, 10)), SimpleRNN(3)])
    with raises("Argument `x` of model"):
        model(np.zeros((8, 2, 9)))
