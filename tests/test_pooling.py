"""1D pooling against Keras 3: global average (masked mean) and max, windowed max and average with valid and
same padding, both data formats and dtypes, square and rectangular shapes, masks, and every refusal."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, keras_masked
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.keras_convert import from_config, from_keras

WINDOWED = ("MaxPooling1D", "AveragePooling1D")
GLOBAL = ("GlobalAveragePooling1D", "GlobalMaxPooling1D")


def keras_masked_quietly(keras, layer, x, mask):
    """:func:`helpers.keras_masked`, without Keras's warning for the layers that drop the mask (tested here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Layer .* does not support masking")
        return keras_masked(keras, layer, x, mask)


def check(keras, name, kwargs, x, dtype, mask=None):
    theirs = getattr(keras.layers, name)(**kwargs, dtype=dtype)
    ours = getattr(scratch_rnn, name)(**kwargs, dtype=dtype)
    x = x.astype(dtype)
    context = f"{name}({kwargs}) {dtype} x{x.shape} mask={mask is not None}"
    expected, expected_mask = keras_masked_quietly(keras, theirs, x, mask)
    assert_outputs_close(ours(x, mask=mask), expected, context, equal_nan=True)
    assert expected_mask is None and ours.compute_mask(x, mask) is None, context
    assert ours.compute_output_shape(x.shape) == tuple(theirs.compute_output_shape(x.shape)), context
    assert ours.count_params() == theirs.count_params() == 0


def steps_mask(rng, batch, steps):
    mask = rng.random((batch, steps)) < 0.6
    mask[0] = False  # every step masked: Keras's 0/0 is NaN, and so is ours
    if batch > 1:
        mask[1] = True
    return mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", GLOBAL)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 4), (4, 7, 3)], ids=["square", "rectangular"])
def test_global_pooling_equals_keras_with_and_without_a_mask(keras, rng, dtype, name, data_format, keepdims, shape):
    x = rng.standard_normal(shape)
    kwargs = {"data_format": data_format, "keepdims": keepdims}
    steps = shape[1] if data_format == "channels_last" else shape[2]
    check(keras, name, kwargs, x, dtype)
    check(keras, name, kwargs, x, dtype, mask=steps_mask(rng, shape[0], steps))


def test_global_max_pooling_ignores_the_mask_as_keras_3_does(keras):
    x = np.array([[[1.0], [5.0], [2.0]]], "float32")
    mask = np.array([[True, False, True]])
    check(keras, "GlobalMaxPooling1D", {}, x, "float32", mask=mask)
    assert scratch_rnn.GlobalMaxPooling1D()(x, mask=mask)[0, 0] == 5.0  # the masked step counts
    assert scratch_rnn.GlobalAveragePooling1D()(x, mask=mask)[0, 0] == 1.5  # the masked step does not


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool_size, strides", [(2, None), (3, 1), (3, 2), (1, 1), (2, 3), (5, 2)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_windowed_pooling_equals_keras(keras, rng, dtype, name, padding, pool_size, strides, data_format):
    x = rng.standard_normal((2, 7, 3) if data_format == "channels_last" else (2, 3, 7))
    kwargs = {"pool_size": pool_size, "strides": strides, "padding": padding, "data_format": data_format}
    check(keras, name, kwargs, x, dtype)
    check(keras, name, kwargs, x, dtype, mask=rng.random((2, x.shape[1])) < 0.5)


@settings(max_examples=50)
@given(
    name=st.sampled_from(WINDOWED + GLOBAL),
    batch=st.integers(1, 3),
    steps=st.integers(1, 9),
    features=st.integers(1, 4),
    pool_size=st.integers(1, 4),
    strides=st.none() | st.integers(1, 4),
    padding=st.sampled_from(["valid", "same"]),
    masked=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_pooling_equals_keras_on_generated_cases(
    keras, name, batch, steps, features, pool_size, strides, padding, masked, dtype, seed
):
    if name in WINDOWED:
        if padding == "valid" and pool_size > steps:
            steps = pool_size  # Keras refuses an empty output, as ours does (tested below)
        kwargs = {"pool_size": pool_size, "strides": strides, "padding": padding}
    else:
        kwargs = {"keepdims": padding == "same"}
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, steps)) < 0.5 if masked else None
    check(keras, name, kwargs, rng.standard_normal((batch, steps, features)), dtype, mask=mask)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("GlobalAveragePooling1D", {"keepdims": True}),
        ("GlobalMaxPooling1D", {"data_format": "channels_first"}),
        ("MaxPooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}),
        ("AveragePooling1D", {"pool_size": (2,), "strides": (2,)}),
    ],
)
def test_from_keras_and_from_config_copy_the_layer(keras, rng, name, kwargs):
    theirs = getattr(keras.layers, name)(**kwargs)
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    expected = theirs(x)
    for ours in (from_keras(theirs), from_config(name, theirs.get_config())):
        assert_outputs_close(ours(x), expected, name)
        assert ours.get_config() == {k: v for k, v in theirs.get_config().items() if k != "trainable"} | {
            "dtype": "float32"
        }


def test_sequential_masked_average_after_masking(keras, rng):
    x = rng.standard_normal((3, 5, 2)).astype("float32")
    x[0, 3:] = 0.0  # padding that Masking masks
    theirs = keras.Sequential([keras.Input((5, 2)), keras.layers.Masking(), keras.layers.GlobalAveragePooling1D()])
    ours = from_keras(theirs)
    assert_outputs_close(ours(x), theirs(x), "Masking -> GlobalAveragePooling1D")


# --- refusals (NumPy only) -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: scratch_rnn.MaxPooling1D(pool_size=0), "pool_size"),
        (lambda: scratch_rnn.MaxPooling1D(pool_size=(2, 2)), "pool_size"),
        (lambda: scratch_rnn.MaxPooling1D(pool_size=2.0), "pool_size"),
        (lambda: scratch_rnn.AveragePooling1D(strides=0), "strides"),
        (lambda: scratch_rnn.AveragePooling1D(strides=-1), "strides"),
        (lambda: scratch_rnn.AveragePooling1D(padding="full"), "padding"),
        (lambda: scratch_rnn.AveragePooling1D(padding=None), "padding"),
        (lambda: scratch_rnn.MaxPooling1D(data_format="nwc"), "data_format"),
        (lambda: scratch_rnn.GlobalAveragePooling1D(keepdims=1), "keepdims"),
        (lambda: scratch_rnn.GlobalMaxPooling1D(data_format=3), "data_format"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


@pytest.mark.parametrize(
    "layer, x, mask, argument",
    [
        (scratch_rnn.GlobalAveragePooling1D, np.ones((2, 3)), None, "x"),
        (scratch_rnn.GlobalMaxPooling1D, np.ones((2, 3, 4, 5)), None, "x"),
        (scratch_rnn.GlobalAveragePooling1D, np.ones((2, 3, 4)), np.ones((2, 4), bool), "mask"),
        (lambda: scratch_rnn.MaxPooling1D(4), np.ones((2, 3, 1)), None, "x"),
        (scratch_rnn.AveragePooling1D, np.ones((2, 3)), None, "x"),
    ],
)
def test_bad_calls_are_refused_naming_the_argument(layer, x, mask, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        layer()(x, mask=mask)


def test_padding_is_case_insensitive_and_same_keeps_ceil_steps():
    layer = scratch_rnn.MaxPooling1D(pool_size=3, strides=2, padding="SAME")
    assert layer.padding == "same"
    assert layer(np.ones((1, 7, 2))).shape == (1, 4, 2)
