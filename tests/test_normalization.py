"""LayerNormalization and BatchNormalization (inference) against Keras 3: values, weights, counts, masks, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, randomize
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.normalization import BatchNormalization, LayerNormalization
from scratch_rnn.testing.compare import assert_close


def _keras_ln(keras, x_shape, dtype, rng, **kwargs):
    k = keras.layers.LayerNormalization(dtype=dtype, **kwargs)
    k.build(x_shape)
    weights = randomize(k, rng)
    ours = LayerNormalization(dtype=dtype, **kwargs)
    if weights:  # center=False, scale=False: no weights, built by the call
        ours.set_weights(weights)
    return k, ours


def _keras_bn(keras, x_shape, dtype, rng, **kwargs):
    k = keras.layers.BatchNormalization(dtype=dtype, **kwargs)
    k.build(x_shape)
    weights = [
        np.abs(w) + 0.1 if ("variance" in v.name or "stddev" in v.name) else w  # variances stay positive
        for w, v in zip(randomize(k, rng), k.weights)
    ]
    k.set_weights(weights)
    ours = BatchNormalization(dtype=dtype, **kwargs)
    ours.set_weights(weights)
    return k, ours


LN_OPTIONS = [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False}, {"rms_scaling": True}]


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, [1, 2], [-1, 1], [0, 2], (2,)])
@pytest.mark.parametrize("options", LN_OPTIONS, ids=str)
def test_layer_normalization_equals_keras(keras, rng, dtype, axis, options):
    x = (rng.standard_normal((3, 4, 5)) * 3 + 1).astype(dtype)  # timesteps != features: a reshape shows
    k, ours = _keras_ln(keras, x.shape, dtype, rng, axis=axis, epsilon=1e-3, **options)
    assert_outputs_close(ours(x), k(x), context=f"axis={axis} {options}")
    assert ours.count_params() == k.count_params()
    assert ours.count_trainable_params() == sum(int(np.prod(w.shape)) for w in k.trainable_weights)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in k.get_weights()]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 3), (4, 2, 6), (5, 7), (2, 3, 4, 5)])
def test_layer_normalization_ranks_and_input_cast(keras, rng, dtype, shape):
    x = rng.standard_normal(shape)  # float64 into a float32 layer: cast as Keras casts it
    k, ours = _keras_ln(keras, shape, dtype, rng)
    assert_outputs_close(ours(x), k(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize(
    "options", [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False}, {"renorm": True}], ids=str
)
def test_batch_normalization_equals_keras(keras, rng, dtype, axis, options):
    x = (rng.standard_normal((3, 4, 5)) * 2 - 1).astype(dtype)
    k, ours = _keras_bn(keras, x.shape, dtype, rng, axis=axis, **options)
    assert_outputs_close(ours(x), k(x, training=False), context=f"axis={axis} {options}")
    assert [v.name for v in k.weights] == [s.keras_name for s in ours.weight_spec()]
    assert ours.count_params() == k.count_params()
    assert ours.count_trainable_params() == sum(int(np.prod(w.shape)) for w in k.trainable_weights)
    assert [s.keras_name for s in ours.weight_spec() if not s.trainable] == [v.name for v in k.non_trainable_weights]


def test_batch_normalization_frozen_counts_nothing_trainable(keras, rng):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    k, ours = _keras_bn(keras, x.shape, "float32", rng)
    k.trainable = False
    ours.trainable = False
    assert ours.count_trainable_params() == len(k.trainable_weights) == 0
    assert ours.count_params() == k.count_params() == 16


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_normalization_masks_pass_through(keras, rng, dtype):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    mask = np.array([[True, True, False, False], [True, False, True, True], [False] * 4])
    k, ours = _keras_bn(keras, x.shape, dtype, rng)
    y = k(x, mask=mask, training=False)
    assert_outputs_close(ours(x, mask=mask), y)  # the mask changes nothing at inference
    np.testing.assert_array_equal(ours.compute_mask(x, mask), np.asarray(y._keras_mask))
    with pytest.raises(ValueError, match="one dimension less"):
        k(x, mask=mask[:, :, None] | np.zeros((1, 1, 5), bool), training=False)  # Keras refuses it too
    with pytest.raises(ValueError, match="`mask`.*one dimension less"):
        ours(x, mask=np.ones((3, 4, 5), bool))


def test_layer_normalization_passes_the_mask_on(keras):
    mask = np.array([[True, False, True]])
    layer = LayerNormalization()
    assert layer.compute_mask(np.zeros((1, 3, 2)), mask) is mask
    np.testing.assert_array_equal(layer(np.ones((1, 3, 2)), mask=mask), layer(np.ones((1, 3, 2))))
    assert keras.layers.LayerNormalization().supports_masking and keras.layers.BatchNormalization().supports_masking


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@settings(max_examples=60)
@given(data=st.data())
def test_layer_normalization_property(keras, data):
    ndim = data.draw(st.integers(2, 4), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim), label="shape"))
    axes = data.draw(st.lists(st.integers(1, ndim - 1), min_size=1, max_size=ndim - 1, unique=True), label="axes")
    axis = data.draw(st.sampled_from([axes, axes[0], [a - ndim for a in axes]]), label="axis")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    options = data.draw(
        st.fixed_dictionaries(
            {
                "center": st.booleans(),
                "scale": st.booleans(),
                "rms_scaling": st.booleans(),
                "epsilon": st.sampled_from([1e-3, 1e-6, 0.5]),
            }
        ),
        label="options",
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = (rng.standard_normal(shape) * data.draw(st.sampled_from([0.1, 1.0, 10.0]), label="scale")).astype(dtype)
    k, ours = _keras_ln(keras, shape, dtype, rng, axis=axis, **options)
    # epsilon keeps var + eps >= eps, but a constant slice (var 0, eps 1e-6) amplifies rounding by 1/sqrt(eps)
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert_outputs_close(ours(x), k(x), context=f"{shape} axis={axis} {options}", tol=tol)
    assert ours.count_params() == k.count_params()


@settings(max_examples=60)
@given(data=st.data())
def test_batch_normalization_property(keras, data):
    ndim = data.draw(st.integers(2, 4), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim), label="shape"))
    axis = data.draw(st.integers(-(ndim - 1), ndim - 1).filter(lambda a: a % ndim != 0), label="axis")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    options = data.draw(
        st.fixed_dictionaries(
            {"center": st.booleans(), "scale": st.booleans(), "epsilon": st.sampled_from([1e-3, 1e-5, 0.5])}
        ),
        label="options",
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    k, ours = _keras_bn(keras, shape, dtype, rng, axis=axis, **options)
    assert_outputs_close(ours(x), k(x, training=False), context=f"{shape} axis={axis} {options}")


@pytest.mark.parametrize("cls", ["LayerNormalization", "BatchNormalization"])
def test_from_keras_copies_config_and_weights(keras, rng, cls):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    k = getattr(keras.layers, cls)(axis=1, epsilon=0.01, center=False)
    k.build(x.shape)
    randomize(k, rng)
    if cls == "BatchNormalization":
        k.set_weights([np.abs(w) for w in k.get_weights()])
    ours = scratch_rnn.from_keras(k)
    assert type(ours).__name__ == cls
    assert_outputs_close(ours(x), k(x))


# --- without Keras ----------------------------------------------------------------------------------


def test_default_weights_and_formula_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    y = LayerNormalization(epsilon=0.0, dtype="float64")(x)
    assert_close(y, (x - 3.0) / np.sqrt(3.5), 1e-15, "LayerNormalization by hand")
    bn = BatchNormalization(dtype="float64", epsilon=0.0)
    bn.build((None, 4))
    bn.set_weights([np.full(4, 2.0), np.full(4, 1.0), np.full(4, 3.0), np.full(4, 4.0)])
    assert_close(bn(x), 2.0 * (x - 3.0) / 2.0 + 1.0, 1e-15, "BatchNormalization by hand")
    assert [s.trainable for s in bn.weight_spec()] == [True, True, False, False]
    assert bn.count_params() == 16 and bn.count_trainable_params() == 8


def test_set_weights_builds_from_weights_on_any_rank():
    ln = LayerNormalization(axis=[-1, 1])
    ln.set_weights([np.ones((5, 4)), np.zeros((5, 4))])  # Keras's order: sizes of axes sorted, -1 first
    assert ln(np.random.default_rng(0).standard_normal((2, 4, 5))).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="sizes"):
        ln(np.zeros((2, 5, 4)))


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: LayerNormalization(axis="x"), "axis"),
        (lambda: LayerNormalization(axis=[]), "axis"),
        (lambda: LayerNormalization(axis=1.5), "axis"),
        (lambda: LayerNormalization(epsilon=-1.0), "epsilon"),
        (lambda: LayerNormalization(epsilon="1e-3"), "epsilon"),
        (lambda: LayerNormalization(center="yes"), "center"),
        (lambda: LayerNormalization(rms_scaling=1), "rms_scaling"),
        (lambda: LayerNormalization(gamma_initializer="he_normal"), "gamma_initializer"),
        (lambda: BatchNormalization(axis=[1, 2]), "axis"),
        (lambda: BatchNormalization(momentum="high"), "momentum"),
        (lambda: BatchNormalization(epsilon=float("nan")), "epsilon"),
        (lambda: BatchNormalization(scale=None), "scale"),
        (lambda: BatchNormalization(renorm_clipping={"rmax": 1, "bad": 2}), "renorm_clipping"),
        (lambda: BatchNormalization(moving_variance_initializer={"class_name": "Constant", "config": {"value": 2}}),
         "moving_variance_initializer"),
        (lambda: BatchNormalization(dtype="float16"), "dtype"),
        (lambda: BatchNormalization(fused=True), "fused"),
    ],
)  # fmt: skip
def test_refused_arguments(make, argument):
    with pytest.raises(ValueError, match=f"`?{argument}`?"):
        make()


@pytest.mark.parametrize(
    "layer", [LayerNormalization(axis=3), LayerNormalization(axis=[1, -2]), BatchNormalization(axis=-4)]
)
def test_axis_outside_the_input_is_refused(layer):
    with pytest.raises(ValueError, match="`axis`"):
        layer(np.zeros((2, 3, 4)))


def test_training_is_refused_by_name():
    with pytest.raises(ValueError, match="`training`"):
        BatchNormalization()(np.zeros((2, 3)), training=True)
    assert BatchNormalization()(np.zeros((2, 3)), training=False).shape == (2, 3)


def test_keras_serialised_initializers_are_read():
    bn = BatchNormalization(gamma_initializer={"class_name": "Ones", "config": {}}, beta_initializer="zeros")
    bn(np.zeros((1, 3)))
    np.testing.assert_array_equal(bn.gamma, np.ones(3, np.float32))
    assert bn.get_config()["gamma_initializer"] == "ones"
