"""RepeatVector, Flatten, Reshape, Permute against Keras 3: values, shapes, both dtypes, square and rectangular
shapes, the mask (Keras drops it: none of them supports masking), from_keras/from_config, and every refusal."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, keras_masked
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.keras_convert import from_config, from_keras
from scratch_rnn.testing.compare import assert_close

CASES = [
    ("RepeatVector", {"n": 3}, (2, 4)),
    ("RepeatVector", {"n": 1}, (3, 3)),
    ("Flatten", {}, (2, 3, 4)),
    ("Flatten", {}, (3,)),
    ("Flatten", {"data_format": "channels_first"}, (2, 3, 4, 5)),
    ("Flatten", {"data_format": "channels_first"}, (2, 3)),
    ("Reshape", {"target_shape": (4, 3)}, (2, 3, 4)),
    ("Reshape", {"target_shape": (-1, 2)}, (2, 3, 4)),
    ("Reshape", {"target_shape": (2, -1, 3)}, (2, 6, 3)),
    ("Reshape", {"target_shape": (12,)}, (2, 3, 4)),
    ("Permute", {"dims": (2, 1)}, (2, 3, 4)),
    ("Permute", {"dims": (2, 1)}, (2, 4, 4)),
    ("Permute", {"dims": (3, 1, 2)}, (2, 3, 4, 5)),
    ("Permute", {"dims": (1,)}, (2, 3)),
]


def check(keras, name, kwargs, x, dtype, mask=None):
    theirs = getattr(keras.layers, name)(**kwargs, dtype=dtype)
    ours = getattr(scratch_rnn, name)(**kwargs, dtype=dtype)
    x = x.astype(dtype)
    context = f"{name}({kwargs}) {dtype} x{x.shape}"
    if mask is not None:
        with pytest.warns(UserWarning, match="does not support masking"):  # Keras drops the mask
            expected, expected_mask = keras_masked(keras, theirs, x, mask)
    else:
        expected, expected_mask = keras_masked(keras, theirs, x, None)
    assert_outputs_close(ours(x, mask=mask), expected, context)
    assert expected_mask is None and ours.compute_mask(x, mask) is None, context
    assert ours.compute_output_shape(x.shape) == tuple(theirs.compute_output_shape(x.shape)), context
    assert ours.count_params() == theirs.count_params() == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_reshaping_layers_equal_keras(keras, rng, name, kwargs, shape, dtype):
    check(keras, name, kwargs, rng.standard_normal(shape), dtype)


@pytest.mark.parametrize("name, kwargs, shape", [c for c in CASES if len(c[2]) >= 3])
def test_a_mask_is_dropped_as_keras_drops_it(keras, rng, name, kwargs, shape):
    check(keras, name, kwargs, rng.standard_normal(shape), "float32", mask=rng.random(shape[:2]) < 0.5)


@st.composite
def reshaping_cases(draw):
    name = draw(st.sampled_from(["RepeatVector", "Flatten", "Reshape", "Permute"]), label="layer")
    rank = 1 if name == "RepeatVector" else draw(st.integers(1, 3), label="rank without batch")
    dims = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank), label="dims"))
    shape = (draw(st.integers(1, 3), label="batch"), *dims)
    if name == "RepeatVector":
        kwargs = {"n": draw(st.integers(1, 4), label="n")}
    elif name == "Flatten":
        kwargs = {"data_format": draw(st.sampled_from(["channels_last", "channels_first"]), label="data_format")}
    elif name == "Permute":
        kwargs = {"dims": tuple(draw(st.permutations(range(1, rank + 1)), label="permutation"))}
    else:
        size = int(np.prod(dims))
        first = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]), label="first")
        kwargs = {"target_shape": draw(st.sampled_from([(first, size // first), (first, -1), (-1, first), (size,)]))}
    return name, kwargs, shape, draw(st.sampled_from(DTYPES), label="dtype"), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=40)
@given(case=reshaping_cases())
def test_reshaping_layers_equal_keras_on_generated_cases(keras, case):
    name, kwargs, shape, dtype, seed = case
    check(keras, name, kwargs, np.random.default_rng(seed).standard_normal(shape), dtype)


@pytest.mark.parametrize("name, kwargs, shape", [c for c in CASES if c[1]][::2])
def test_from_keras_and_from_config_copy_the_layer(keras, rng, name, kwargs, shape):
    theirs = getattr(keras.layers, name)(**kwargs)
    x = rng.standard_normal(shape).astype("float32")
    assert type(from_keras(theirs)) is getattr(scratch_rnn, name)  # unbuilt: nothing to copy but the config
    expected = theirs(x)
    for ours in (from_keras(theirs), from_config(name, theirs.get_config())):
        assert_outputs_close(ours(x), expected, name)


def test_sequential_passes_one_array_through_them(rng):
    model = scratch_rnn.Sequential(
        [scratch_rnn.Permute((2, 1)), scratch_rnn.Flatten(), scratch_rnn.RepeatVector(2), scratch_rnn.Reshape((-1,))]
    )
    x = rng.standard_normal((2, 3, 4))
    assert_close(model(x), np.tile(x.transpose(0, 2, 1).reshape(2, 12), 2).astype("float32"), 0.0, "Sequential")


# --- refusals (NumPy only) -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: scratch_rnn.RepeatVector(0), "n"),
        (lambda: scratch_rnn.RepeatVector(2.0), "n"),
        (lambda: scratch_rnn.RepeatVector(True), "n"),
        (lambda: scratch_rnn.Flatten(data_format="channels_middle"), "data_format"),
        (lambda: scratch_rnn.Flatten(data_format=1), "data_format"),
        (lambda: scratch_rnn.Reshape((-1, -1)), "target_shape"),
        (lambda: scratch_rnn.Reshape((2, -2)), "target_shape"),
        (lambda: scratch_rnn.Reshape(4), "target_shape"),
        (lambda: scratch_rnn.Reshape((2.5,)), "target_shape"),
        (lambda: scratch_rnn.Permute((1, 3)), "dims"),
        (lambda: scratch_rnn.Permute((0, 1)), "dims"),
        (lambda: scratch_rnn.Permute(2), "dims"),
        (lambda: scratch_rnn.Permute((1, 1)), "dims"),
        (lambda: scratch_rnn.Flatten(dtype="int8"), "dtype"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: scratch_rnn.RepeatVector(2), (2, 3, 4)),
        (lambda: scratch_rnn.RepeatVector(2), (2,)),
        (lambda: scratch_rnn.Permute((2, 1)), (2, 3)),
        (lambda: scratch_rnn.Permute((2, 1)), (2, 3, 4, 5)),
        (lambda: scratch_rnn.Reshape((5,)), (2, 3, 4)),
        (lambda: scratch_rnn.Reshape((5, -1)), (2, 3, 4)),
        (lambda: scratch_rnn.Flatten(), ()),
    ],
)
def test_inputs_of_the_wrong_shape_are_refused_naming_x(layer, shape):
    with pytest.raises(ValueError, match="`x`"):
        layer()(np.ones(shape))
