"""Merge layers against Keras 3: values and output masks, masks attached to the inputs as Keras's functional
graph attaches them (``set_keras_mask`` on each input tensor: Keras's merge layers take no ``mask=`` argument),
both dtypes, square and rectangular shapes, broadcasting, and every refusal."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, keras_masked
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.keras_convert import from_config, from_keras

ELEMENTWISE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def check(keras, name, kwargs, xs, masks, dtype):
    """Ours equals Keras's, values and mask, with the same inputs and masks."""
    theirs = getattr(keras.layers, name)(**kwargs, dtype=dtype)
    ours = getattr(scratch_rnn, name)(**kwargs, dtype=dtype)
    xs = [x.astype(dtype) for x in xs]
    expected, expected_mask = keras_masked(keras, theirs, xs, masks)
    context = f"{name}({kwargs}) {dtype} shapes {[x.shape for x in xs]} masks {[m is not None for m in masks or []]}"
    assert_outputs_close(ours(xs, mask=masks), expected, context)
    mask = ours.compute_mask(xs, masks)
    if expected_mask is None:
        assert mask is None, context
    else:
        np.testing.assert_array_equal(mask, expected_mask, err_msg=context)
    assert ours.count_params() == theirs.count_params() == 0


def random_mask(rng, shape):
    mask = rng.random(shape) < 0.6
    mask.reshape(-1, shape[-1])[0] = False  # a row masked everywhere
    return mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 5, 3), (4, 6)], ids=["square", "rectangular", "rank2"])
@pytest.mark.parametrize("masked", ["none", "first", "all"])
def test_elementwise_merges_equal_keras(keras, rng, name, dtype, shape, masked):
    n = 2 if name == "Subtract" else 3
    xs = [rng.standard_normal(shape) for _ in range(n)]
    masks = {
        "none": None,
        "first": [random_mask(rng, shape[:-1])] + [None] * (n - 1),
        "all": [random_mask(rng, shape[:-1]) for _ in range(n)],
    }[masked]
    check(keras, name, {}, xs, masks, dtype)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shapes", [[(2, 3, 4), (2, 1, 4)], [(2, 3, 4), (2, 4)], [(2, 3, 1), (2, 3, 5)]])
def test_elementwise_merges_broadcast_as_keras(keras, rng, name, shapes):
    xs = [rng.standard_normal(s) for s in shapes]
    check(keras, name, {}, xs, None, "float32")
    assert getattr(scratch_rnn, name)().compute_output_shape(shapes) == getattr(
        keras.layers, name
    )().compute_output_shape(shapes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize("masked", ["none", "first", "all"])
def test_concatenate_equals_keras(keras, rng, dtype, axis, masked):
    shapes = {-1: [(3, 4, 2), (3, 4, 5)], 2: [(3, 4, 2), (3, 4, 5)], 1: [(3, 2, 5), (3, 4, 5)]}[axis]
    xs = [rng.standard_normal(s) for s in shapes]
    masks = {
        "none": None,
        "first": [random_mask(rng, shapes[0][:-1]), None],
        "all": [random_mask(rng, s[:-1]) for s in shapes],
    }[masked]
    check(keras, "Concatenate", {"axis": axis}, xs, masks, dtype)
    ours = scratch_rnn.Concatenate(axis=axis)
    assert ours.compute_output_shape(shapes) == keras.layers.Concatenate(axis=axis).compute_output_shape(shapes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shapes, axes",
    [
        ([(3, 4), (3, 4)], 1),
        ([(3, 4), (3, 4)], -1),
        ([(2, 5, 3), (2, 5, 4)], 1),
        ([(2, 5, 3), (2, 4, 3)], (2, 2)),
        ([(2, 5, 3), (2, 3)], (2, 1)),
        ([(2, 3), (2, 3, 6)], (1, 1)),
        ([(2, 3, 4, 5), (2, 5, 6)], (3, 1)),
        ([(2, 4, 4), (2, 4, 4)], (1, 2)),
    ],
)
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_equals_keras(keras, rng, dtype, shapes, axes, normalize):
    xs = [rng.standard_normal(s) for s in shapes]
    masks = [random_mask(rng, s[:-1]) for s in shapes]
    check(keras, "Dot", {"axes": axes, "normalize": normalize}, xs, masks, dtype)
    ours = scratch_rnn.Dot(axes, normalize=normalize)
    assert ours.compute_output_shape(shapes) == keras.layers.Dot(axes).compute_output_shape(shapes)


def test_dot_normalize_of_a_zero_vector_is_zero_as_keras(keras):
    xs = [np.zeros((2, 3), "float32"), np.ones((2, 3), "float32")]
    check(keras, "Dot", {"axes": 1, "normalize": True}, xs, None, "float32")


@st.composite
def merge_cases(draw):
    name = draw(st.sampled_from((*ELEMENTWISE, "Concatenate")), label="layer")
    dtype = draw(st.sampled_from(DTYPES), label="dtype")
    n = 2 if name == "Subtract" else draw(st.integers(1, 4), label="inputs")
    batch, steps, features = (draw(st.integers(1, 4), label=label) for label in ("batch", "steps", "features"))
    axis = draw(st.sampled_from([-1, 1, 2]), label="axis") if name == "Concatenate" else None
    shapes = []
    for _ in range(n):
        shape = [batch, steps, features]
        if axis is not None:
            shape[axis] = draw(st.integers(1, 4), label="size along axis")
        shapes.append(tuple(shape))
    elements = st.floats(-10, 10, width=32, allow_subnormal=False)
    xs = [
        np.array(draw(st.lists(elements, min_size=int(np.prod(s)), max_size=int(np.prod(s))))).reshape(s)
        for s in shapes
    ]
    masks = None
    if draw(st.booleans(), label="masked"):
        masks = []
        for s in shapes:
            bits = st.lists(st.booleans(), min_size=batch * s[1], max_size=batch * s[1])
            masks.append(None if draw(st.booleans()) else np.array(draw(bits)).reshape(batch, s[1]))
    return name, ({"axis": axis} if axis is not None else {}), xs, masks, dtype


@settings(max_examples=40)
@given(case=merge_cases())
def test_merges_equal_keras_on_generated_cases(keras, case):
    check(keras, *case)


@settings(max_examples=30)
@given(
    axes=st.sampled_from([1, 2, -1, (1, 2), (2, 1), (1, 1), (-1, -2)]),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    normalize=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
)
def test_dot_equals_keras_on_generated_cases(keras, axes, sizes, normalize, seed, dtype):
    batch, n, k = sizes  # square when n == k
    pair = (axes, axes) if isinstance(axes, int) else axes
    shape1, shape2 = [batch, n, n], [batch, n, n]
    shape1[pair[0]], shape2[pair[1]] = k, k
    rng = np.random.default_rng(seed)
    check(
        keras,
        "Dot",
        {"axes": axes, "normalize": normalize},
        [rng.standard_normal(shape1), rng.standard_normal(shape2)],
        None,
        dtype,
    )


@pytest.mark.parametrize("name", [*ELEMENTWISE, "Concatenate", "Dot"])
def test_from_keras_and_from_config_copy_an_unbuilt_or_called_merge_layer(keras, rng, name):
    kwargs = {"axes": (2, 2)} if name == "Dot" else {"axis": 1} if name == "Concatenate" else {}
    theirs = getattr(keras.layers, name)(**kwargs)
    assert type(from_keras(theirs)) is getattr(scratch_rnn, name)  # not built: no weights to wait for
    xs = [rng.standard_normal((2, 3, 3)).astype("float32") for _ in range(2)]
    expected = theirs(xs)
    for ours in (from_keras(theirs), from_config(name, theirs.get_config())):
        assert_outputs_close(ours(xs), expected, name)
        assert ours.get_config()["name"] == theirs.name


# --- refusals (NumPy only) -------------------------------------------------------------------------------
A, B = np.ones((2, 3, 4)), np.ones((2, 3, 5))


@pytest.mark.parametrize(
    "make, inputs, mask, argument",
    [
        (scratch_rnn.Add, A, None, "inputs"),
        (scratch_rnn.Add, [], None, "inputs"),
        (scratch_rnn.Add, [A, B], None, "inputs"),
        (scratch_rnn.Add, [A, np.ones((3, 3, 4))], None, "inputs"),
        (scratch_rnn.Subtract, [A, A, A], None, "inputs"),
        (lambda: scratch_rnn.Dot(1), [A, A, A], None, "inputs"),
        (lambda: scratch_rnn.Dot(2), [A, B], None, "inputs"),
        (lambda: scratch_rnn.Dot(3), [A, A], None, "axes"),
        (lambda: scratch_rnn.Dot(-3), [A, A], None, "axes"),
        (scratch_rnn.Concatenate, [A, np.ones((2, 4, 5))], None, "inputs"),
        (scratch_rnn.Concatenate, [A, np.ones((2, 3))], None, "inputs"),
        (lambda: scratch_rnn.Concatenate(axis=3), [A, A], None, "inputs"),
        (scratch_rnn.Multiply, [A, A], np.ones((2, 3), bool), "mask"),
        (scratch_rnn.Multiply, [A, A], [np.ones((2, 3), bool)], "mask"),
        (scratch_rnn.Maximum, [A, A], [np.ones((2, 4), bool), None], "mask[0]"),
        (scratch_rnn.Maximum, [A, np.ones((2, 4))], [np.ones((2, 3), bool), None], "mask"),
        (scratch_rnn.Add, [A, ["a"]], None, "inputs[1]"),
    ],
)
def test_bad_calls_are_refused_naming_the_argument(make, inputs, mask, argument):
    with pytest.raises(ValueError, match=f"`{argument}`".replace("[", r"\[").replace("]", r"\]")):
        make()(inputs, mask=mask)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: scratch_rnn.Concatenate(axis=1.5), "axis"),
        (lambda: scratch_rnn.Concatenate(axis=True), "axis"),
        (lambda: scratch_rnn.Dot(axes=0), "axes"),
        (lambda: scratch_rnn.Dot(axes=(1, 0)), "axes"),
        (lambda: scratch_rnn.Dot(axes=(1, 2, 3)), "axes"),
        (lambda: scratch_rnn.Dot(axes="1"), "axes"),
        (lambda: scratch_rnn.Dot(axes=1, normalize=1), "normalize"),
        (lambda: scratch_rnn.Add(dtype="float16"), "dtype"),
        (lambda: scratch_rnn.Add(name=3), "name"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


def test_unknown_keyword_is_refused():
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        scratch_rnn.Add(mode="sum")


def test_merges_compute_in_their_dtype_and_have_no_weights():
    a = np.arange(6).reshape(2, 3)  # integers are cast, as Keras autocasts
    for name in (*ELEMENTWISE, "Concatenate"):
        for dtype in DTYPES:
            layer = getattr(scratch_rnn, name)(dtype=dtype)
            assert layer([a, a]).dtype == dtype
            assert layer.count_params() == 0 and layer.get_weights() == []


@pytest.mark.parametrize("name", [*ELEMENTWISE, "Concatenate"])
def test_unmasked_merge_builds_in_a_functional_graph(name):
    """Regression: the graph passes ``compute_mask`` symbolic inputs with a list of None masks, which the merge
    layers read as arrays before seeing that no input had a mask ("`inputs[0]` must be a real numeric array")."""
    a, b = scratch_rnn.Input((3, 2)), scratch_rnn.Input((3, 2))
    model = scratch_rnn.Model([a, b], getattr(scratch_rnn, name)()([a, b]))
    x, z = np.ones((2, 3, 2)), np.full((2, 3, 2), 2.0)
    assert model.predict([x, z]).shape == ((2, 3, 4) if name == "Concatenate" else (2, 3, 2))
