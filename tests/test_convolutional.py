"""Conv1D against Keras 3: every padding x strides x dilation x groups x kernel_size Keras accepts, both dtypes,
both data formats, random weights; masks (dropped, as Keras drops them); parameter counts; refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, randomize
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.convolutional import Conv1D


def _twins(keras, x_shape, dtype, rng, **kwargs):
    """A built Keras Conv1D and ours with the same random weights. For channels_first the Keras reference
    is its channels_last layer on transposed arrays: TensorFlow's CPU kernels refuse NCW in float64."""
    if kwargs.get("data_format") == "channels_first":
        k, ours = _twins(keras, (x_shape[0], x_shape[2], x_shape[1]), dtype, rng, **{**kwargs, "data_format": None})
        ours = Conv1D(dtype=dtype, **kwargs)
        ours.set_weights(k.get_weights())
        return (lambda x: np.asarray(k(np.swapaxes(x, 1, 2))).swapaxes(1, 2)), ours
    k = keras.layers.Conv1D(dtype=dtype, **kwargs)
    k.build(x_shape)
    ours = Conv1D(dtype=dtype, **kwargs)
    ours.set_weights(randomize(k, rng))
    return k, ours


def _keras_count(options, channels):
    """Keras's count, ``kernel_size * channels / groups * filters (+ filters)``, checked against Keras in the grid."""
    kernel = options["kernel_size"] if isinstance(options["kernel_size"], int) else options["kernel_size"][0]
    filters = options["filters"]
    return kernel * channels // options.get("groups", 1) * filters + filters * options.get("use_bias", True)


#: Every combination Keras accepts (strides > 1 with dilation > 1 it refuses), on 7 steps: kernels longer
#: than the input under "valid" are the refusal test's.
GRID = [
    (padding, strides, dilation, groups, kernel)
    for padding, strides, dilation, groups, kernel in itertools.product(
        ("valid", "same", "causal"), (1, 2, 3), (1, 2, 3), (1, 2), (1, 2, 3, 5)
    )
    if not (strides > 1 and dilation > 1) and not (padding == "valid" and dilation * (kernel - 1) + 1 > 7)
]


@pytest.mark.parametrize(("padding", "strides", "dilation", "groups", "kernel"), GRID)
def test_conv1d_grid_equals_keras(keras, rng, padding, strides, dilation, groups, kernel):
    x = rng.standard_normal((2, 7, 4)).astype("float32")
    options = dict(
        filters=6, kernel_size=kernel, strides=strides, padding=padding, dilation_rate=dilation, groups=groups
    )
    k, ours = _twins(keras, x.shape, "float32", rng, **options)
    assert_outputs_close(ours(x), k(x), context=str(options))
    assert ours.compute_output_shape((None, 7, 4)) == tuple(k.compute_output_shape((None, 7, 4)))
    assert ours.count_params() == k.count_params() == _keras_count(options, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(
    "options",
    [
        {"filters": 3, "kernel_size": 3},  # rectangular: 5 channels in, 3 filters out
        {"filters": 5, "kernel_size": (2,), "padding": "same", "activation": "tanh"},  # square
        {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2, "use_bias": False},
        {"filters": 10, "kernel_size": 2, "groups": 5, "strides": 2, "padding": "same", "activation": "relu"},
    ],
    ids=str,
)
def test_conv1d_options_and_dtypes(keras, rng, dtype, data_format, options):
    shape = (3, 9, 5) if data_format == "channels_last" else (3, 5, 9)
    x = rng.standard_normal(shape)  # float64 into a float32 layer: cast as Keras casts it
    k, ours = _twins(keras, shape, dtype, rng, data_format=data_format, **options)
    assert_outputs_close(ours(x), k(x), context=str(options))
    assert ours.count_params() == _keras_count(options, 5)


def test_conv1d_channels_first_against_keras_itself(keras, rng):
    x = rng.standard_normal((2, 4, 7)).astype("float32")  # float32: TensorFlow's CPU runs NCW there
    k = keras.layers.Conv1D(6, 3, padding="same", groups=2, data_format="channels_first")
    k.build(x.shape)
    ours = Conv1D(6, 3, padding="same", groups=2, data_format="channels_first")
    ours.set_weights(randomize(k, rng))
    assert_outputs_close(ours(x), k(x))
    assert ours.count_params() == k.count_params() and ours.compute_output_shape(x.shape) == (2, 6, 7)


def test_conv1d_drops_the_mask_as_keras_does(keras, rng):
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    mask = np.array([[True, True, True, False, False], [True] * 5])
    k, ours = _twins(keras, x.shape, "float32", rng, filters=2, kernel_size=2)
    assert not k.supports_masking and not ours.supports_masking
    with pytest.warns(UserWarning, match="does not support masking"):
        y = ours(x, mask=mask)
    assert_outputs_close(y, k(x))  # the mask changes nothing
    assert ours.compute_mask(x, mask) is None
    # In a Keras model the mask stops at Conv1D: the next layer gets none.
    inputs = keras.Input((5,))
    h = keras.layers.Embedding(4, 3, mask_zero=True)(inputs)
    with pytest.warns(UserWarning, match="does not support masking"):
        h = keras.layers.Conv1D(2, 2)(h)
    assert getattr(h, "_keras_mask", None) is None


def test_from_keras(keras, rng):
    k = keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2, groups=2, activation="sigmoid")
    x = rng.standard_normal((2, 6, 6)).astype("float32")
    k.build(x.shape)
    randomize(k, rng)
    ours = scratch_rnn.from_keras(k)
    assert isinstance(ours, scratch_rnn.Conv1D)
    assert_outputs_close(ours(x), k(x))


@settings(max_examples=80)
@given(data=st.data())
def test_conv1d_property(keras, data):
    groups = data.draw(st.sampled_from([1, 2, 3]), label="groups")
    kernel = data.draw(st.integers(1, 5), label="kernel_size")
    strides = data.draw(st.integers(1, 4), label="strides")
    dilation = 1 if strides > 1 else data.draw(st.integers(1, 4), label="dilation_rate")
    padding = data.draw(st.sampled_from(["valid", "same", "causal"]), label="padding")
    span = dilation * (kernel - 1) + 1
    low = span if padding == "valid" else 1  # a valid window needs the whole span (up to 17 steps)
    steps = data.draw(st.integers(low, max(low, 12)), label="steps")
    options = dict(
        filters=groups * data.draw(st.integers(1, 3), label="filters per group"),
        kernel_size=kernel,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        activation=data.draw(st.sampled_from([None, "tanh", "relu"]), label="activation"),
        use_bias=data.draw(st.booleans(), label="use_bias"),
        data_format=data.draw(st.sampled_from(["channels_last", "channels_first"]), label="data_format"),
    )
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    channels = groups * data.draw(st.integers(1, 3), label="channels per group")
    batch = data.draw(st.integers(1, 3), label="batch")
    shape = (batch, steps, channels) if options["data_format"] == "channels_last" else (batch, channels, steps)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.standard_normal(shape).astype(dtype)
    k, ours = _twins(keras, shape, dtype, rng, **options)
    assert_outputs_close(ours(x), k(x), context=f"{options} x{shape}")
    assert ours.count_params() == _keras_count(options, channels)


# --- without Keras ----------------------------------------------------------------------------------


def test_conv1d_by_hand():
    layer = Conv1D(1, 2, padding="causal", use_bias=False, dtype="float64")
    layer.set_weights([np.array([[[1.0]], [[10.0]]])])  # y[t] = x[t-1] + 10 x[t]
    y = layer(np.array([[[1.0], [2.0], [3.0]]]))
    np.testing.assert_array_equal(y[0, :, 0], [10.0, 21.0, 32.0])
    assert layer.get_config()["kernel_size"] == (2,)
    assert Conv1D(1, 1).name.startswith("conv1d")  # Keras's snake case of the class name


def test_default_weights_are_drawn_and_counted():
    layer = Conv1D(4, 3, groups=2)
    y = layer(np.ones((2, 8, 6)))
    assert y.shape == (2, 6, 4) and y.dtype == np.float32
    assert layer.count_params() == 3 * 3 * 4 + 4 == layer.count_trainable_params()
    assert np.abs(layer.kernel).max() <= np.sqrt(6 / (3 * 3 + 4 * 3))  # glorot's limit with the receptive field


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"filters": 0, "kernel_size": 1}, "filters"),
        ({"filters": 2.0, "kernel_size": 1}, "filters"),
        ({"filters": 2, "kernel_size": 0}, "kernel_size"),
        ({"filters": 2, "kernel_size": (2, 2)}, "kernel_size"),
        ({"filters": 2, "kernel_size": 2, "strides": 0}, "strides"),
        ({"filters": 2, "kernel_size": 2, "dilation_rate": -1}, "dilation_rate"),
        ({"filters": 2, "kernel_size": 2, "strides": 2, "dilation_rate": 2}, "strides"),
        ({"filters": 2, "kernel_size": 2, "padding": "full"}, "padding"),
        ({"filters": 2, "kernel_size": 2, "data_format": "NWC"}, "data_format"),
        ({"filters": 3, "kernel_size": 2, "groups": 2}, "filters"),
        ({"filters": 2, "kernel_size": 2, "groups": 0}, "groups"),
        ({"filters": 2, "kernel_size": 2, "activation": "gelu"}, "activation"),
        ({"filters": 2, "kernel_size": 2, "use_bias": 1}, "use_bias"),
        ({"filters": 2, "kernel_size": 2, "dtype": "int32"}, "dtype"),
        ({"filters": 2, "kernel_size": 2, "lora_rank": 2}, "lora_rank"),
    ],
)
def test_refused_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Conv1D(**kwargs)


def test_refused_inputs():
    with pytest.raises(ValueError, match="zero or negative"):
        Conv1D(2, 4)(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="divisible by the number of groups"):
        Conv1D(2, 1, groups=2)(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="3-D"):
        Conv1D(2, 1)(np.zeros((3, 2)))
    layer = Conv1D(2, 1)
    layer(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="2 channels"):
        layer(np.zeros((1, 3, 4)))
