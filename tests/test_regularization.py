"""SpatialDropout1D, GaussianNoise, GaussianDropout against Keras 3 at inference: the identity, the mask passed
on, both dtypes, Keras's argument checks, from_keras/from_config, and every refusal."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, keras_masked
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.keras_convert import from_config, from_keras

LAYERS = {"SpatialDropout1D": "rate", "GaussianNoise": "stddev", "GaussianDropout": "rate"}


def check(keras, name, value, x, dtype, mask):
    argument = LAYERS[name]
    theirs = getattr(keras.layers, name)(**{argument: value}, seed=3, dtype=dtype)
    ours = getattr(scratch_rnn, name)(**{argument: value}, seed=3, dtype=dtype)
    x = x.astype(dtype)
    expected, expected_mask = keras_masked(keras, theirs, x, mask, training=False)
    context = f"{name}({argument}={value}) {dtype} x{x.shape}"
    y = ours(x, mask=mask)
    assert_outputs_close(y, expected, context, tol=0.0)
    assert y is not x  # a new array, as Keras's output is a new tensor
    if mask is None:
        assert expected_mask is None and ours.compute_mask(x, mask) is None
    else:
        np.testing.assert_array_equal(ours.compute_mask(x, mask), expected_mask, err_msg=context)
    assert ours.count_params() == theirs.count_params() == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 6, 3)], ids=["square", "rectangular"])
@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
def test_noise_layers_are_the_identity_and_pass_the_mask_as_keras(keras, rng, name, dtype, shape, value):
    x = rng.standard_normal(shape)
    check(keras, name, value, x, dtype, None)
    check(keras, name, value, x, dtype, rng.random(shape[:2]) < 0.5)


@settings(max_examples=30)
@given(
    name=st.sampled_from(sorted(LAYERS)),
    value=st.floats(0, 1),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5)),
    masked=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_noise_layers_equal_keras_on_generated_cases(keras, name, value, shape, masked, dtype, seed):
    rng = np.random.default_rng(seed)
    check(keras, name, value, rng.standard_normal(shape), dtype, rng.random(shape[:2]) < 0.5 if masked else None)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_keras_refuses_what_we_refuse(keras, name, value):
    argument = LAYERS[name]
    with pytest.raises(ValueError, match=argument):
        getattr(keras.layers, name)(**{argument: value})
    with pytest.raises(ValueError, match=f"`{argument}`"):
        getattr(scratch_rnn, name)(**{argument: value})


@pytest.mark.parametrize("name", LAYERS)
def test_from_keras_and_from_config_copy_the_layer(keras, rng, name):
    theirs = getattr(keras.layers, name)(0.25, seed=7)
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    for ours in (from_keras(theirs), from_config(name, theirs.get_config())):
        assert type(ours) is getattr(scratch_rnn, name)
        assert_outputs_close(ours(x), theirs(x, training=False), name, tol=0.0)
        assert getattr(ours, LAYERS[name]) == 0.25  # the seed is training-only: keras_convert drops it


# --- refusals (NumPy only) -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("value", [-0.5, 1.01, float("nan"), "0.5", None, True])
def test_bad_rates_are_refused_by_name(name, value):
    argument = LAYERS[name]
    with pytest.raises(ValueError, match=f"`{argument}`"):
        getattr(scratch_rnn, name)(**{argument: value})


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("argument, value", [("seed", 1.5), ("seed", "1"), ("dtype", "float16"), ("name", 3)])
def test_bad_seed_dtype_and_name_are_refused_by_name(name, argument, value):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        getattr(scratch_rnn, name)(0.1, **{argument: value})


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4, 5)])
def test_spatial_dropout_1d_takes_3d_inputs_only(shape):
    with pytest.raises(ValueError, match="`x`"):
        scratch_rnn.SpatialDropout1D(0.5)(np.ones(shape))


def test_gaussian_layers_take_any_rank():
    for layer in (scratch_rnn.GaussianNoise(0.1), scratch_rnn.GaussianDropout(0.1)):
        assert layer(np.ones((2, 3, 4, 5))).shape == (2, 3, 4, 5)
