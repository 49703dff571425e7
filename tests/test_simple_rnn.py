"""The SimpleRNN engine: the seed notebook's numbers, and what the Keras sweep does not reach.

The sweep (``test_harness.py::test_engine_equals_keras``) holds every option against Keras on random
weights: activations, bias, masks, initial states, go_backwards, stateful, unroll, return flags, both
dtypes. Here: the seed notebook's model, loop and layout, Keras's initialisers, shapes beyond the
sweep's, the outputs before the first unmasked step, the unrolled-backwards quirk, an initial state as
an array, ``reset_state``, the parameter count, NaN and infinity, and ``from_keras`` on Keras objects.
Keras's golden values are in test_golden_simple_rnn.py.
"""

import numpy as np
import pytest
from helpers import LARGE, assert_outputs_close, left_and_right_padded_mask

import scratch_rnn
from scratch_rnn import SimpleRNN
from scratch_rnn.teaching import notebook_rnn
from scratch_rnn.testing import assert_close

# The inputs the seed notebook printed (timesteps=10, input_dim=4).
NOTEBOOK_INPUTS = np.array(
    [
        [4.98705738e-01, 3.43579551e-01, 7.29424948e-01, 8.83242390e-01],
        [6.57167566e-01, 2.75695171e-01, 4.18105849e-01, 2.87613807e-01],
        [5.04763833e-01, 8.07398860e-01, 2.44745919e-01, 7.93149621e-01],
        [5.17434268e-01, 5.93458272e-01, 5.39100197e-01, 6.17021694e-01],
        [8.98304903e-04, 3.89044120e-01, 8.07803813e-01, 7.09065966e-01],
        [9.63687096e-01, 7.73384134e-01, 9.84945676e-01, 3.96307645e-01],
        [4.44714669e-01, 6.57832453e-01, 1.38266969e-01, 4.39878920e-01],
        [7.79074827e-01, 8.72103339e-03, 7.89651492e-01, 1.76798585e-01],
        [2.88806605e-01, 3.78584281e-01, 2.04598350e-01, 8.16329346e-01],
        [7.73349873e-01, 4.73593833e-01, 7.84976774e-01, 1.81558486e-02],
    ]
)


def random_weights(rng, features, units, use_bias=True, dtype="float64", scale=0.6):
    """Keras-layout weights: random, non-symmetric, with a random bias."""
    w = [rng.uniform(-scale, scale, (features, units)), rng.uniform(-scale, scale, (units, units))]
    if use_bias:
        w.append(rng.uniform(-scale, scale, (units,)))
    return [a.astype(dtype) for a in w]


def keras_and_scratch(keras, rng, units=5, features=3, dtype="float64", build_shape=None, scale=0.6, **kwargs):
    k = keras.layers.SimpleRNN(units, dtype=dtype, **kwargs)
    k.build(build_shape or (None, None, features))
    k.set_weights(random_weights(rng, features, units, kwargs.get("use_bias", True), dtype, scale))
    return k, scratch_rnn.from_keras(k)


# --- the notebook ------------------------------------------------------------------------


def test_notebook_model_summary_and_params(capsys):
    model = scratch_rnn.Sequential(
        [scratch_rnn.Input(batch_shape=(8, 2, 10)), SimpleRNN(units=3, return_sequences=True)]
    )
    model.summary()
    text = capsys.readouterr().out
    assert "(SimpleRNN)" in text and "(8, 2, 3)" in text
    assert "Total params: 42 (168.00 Byte)" in text
    assert model.count_params() == 42
    assert model(np.zeros((8, 2, 10))).shape == (8, 2, 3)


def test_notebook_hand_written_rnn_has_104_params():
    layer = SimpleRNN(units=8)
    layer.build((None, 10, 4))
    assert layer.count_params() == 104 == 8 * (4 + 8 + 1)


def test_layer_equals_the_notebook_loop_for_every_sample(rng):
    Wx, Wh, b = rng.random((8, 4)), rng.random((8, 8)), rng.random(8)  # the notebook's shapes
    layer = SimpleRNN(8, return_sequences=True, dtype="float64")
    layer.set_weights([Wx.T, Wh.T, b])  # Keras layout in, seed layout kept
    np.testing.assert_array_equal(layer.Wx, Wx)
    batch = np.stack([NOTEBOOK_INPUTS, NOTEBOOK_INPUTS[::-1], rng.random((10, 4))])
    out = layer(batch)
    for i, seq in enumerate(batch):
        assert_close(out[i], notebook_rnn(seq, Wx, Wh, b), 1e-15, name=f"sample {i}")


def test_weights_round_trip_and_seed_layout(rng):
    layer = SimpleRNN(3)
    kernel, recurrent, bias = random_weights(rng, 10, 3, dtype="float32")
    layer.set_weights([kernel, recurrent, bias])
    assert (layer.Wx.shape, layer.Wh.shape, layer.b.shape) == ((3, 10), (3, 3), (3,))
    np.testing.assert_array_equal(layer.Wx, kernel.T)
    np.testing.assert_array_equal(layer.Wh, recurrent.T)
    for got, given in zip(layer.get_weights(), [kernel, recurrent, bias]):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, given)


def test_default_initialisation_follows_keras_distributions():
    layer = SimpleRNN(16, seed=3)
    layer.build((None, None, 16))
    kernel, recurrent, bias = layer.get_weights()
    limit = np.sqrt(6 / (16 + 16))
    assert np.all(np.abs(kernel) <= limit) and kernel.std() > limit / 3
    assert_close(recurrent.T @ recurrent, np.eye(16, dtype=np.float32), 1e-5, name="recurrent.T @ recurrent")
    np.testing.assert_array_equal(bias, 0)
    again = SimpleRNN(16, seed=3)
    again.build((None, None, 16))
    np.testing.assert_array_equal(again.get_weights()[0], kernel)  # seeded


# --- every option against Keras ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_shapes_match_keras(keras, rng, dtype):
    """A mask and an initial state over 150 steps, across the fast kernel's chunks. Small weights keep the
    recurrence contracting: with 32 units at the default scale it is chaotic, and float32 rounding grows
    step after step (the sweep's derived tolerances allow for that; a fixed one cannot)."""
    batch, timesteps, features, units = LARGE
    options = dict(return_sequences=True, return_state=True)
    k, s = keras_and_scratch(keras, rng, units, features, dtype, scale=0.15, **options)
    x = rng.uniform(-1, 1, (batch, timesteps, features)).astype(dtype)
    mask = left_and_right_padded_mask(batch, timesteps)
    h0 = rng.uniform(-1, 1, (batch, units)).astype(dtype)
    assert_outputs_close(s(x, mask=mask, initial_state=h0), k(x, mask=mask, initial_state=[h0]), f"SimpleRNN {LARGE}")


def test_masked_first_steps_output_zeros_not_the_initial_state(keras, rng):
    k, s = keras_and_scratch(keras, rng, return_sequences=True)
    x, h0 = rng.uniform(-1, 1, (2, 5, 3)), rng.uniform(-1, 1, (2, 5))
    mask = np.array([[False, False, True, True, False], [True] * 5])
    out = s(x, mask=mask, initial_state=h0)
    np.testing.assert_array_equal(out[0, :2], 0.0)
    assert_outputs_close(out, k(x, mask=mask, initial_state=[h0]), "masked first steps")


def test_unrolled_backwards_zero_output_quirk(keras, rng):
    """Keras's unrolled loop zeros reversed outputs by the mask in input order; the engine matches both loops."""
    mask = np.array([[True, False, True, True, True, True]] * 2)
    x = rng.uniform(-1, 1, (2, 6, 3))
    weights = random_weights(rng, 3, 5)
    outputs = []
    for unroll in (False, True):
        k = keras.layers.SimpleRNN(
            5, dtype="float64", unroll=unroll, go_backwards=True, zero_output_for_mask=True, return_sequences=True
        )
        k.build((None, None, 3))
        k.set_weights(weights)
        s = scratch_rnn.from_keras(k)
        assert_outputs_close(s(x, mask=mask), k(x, mask=mask), f"unroll={unroll}")
        outputs.append(s(x, mask=mask))
    assert not np.allclose(*outputs), "Keras's two loops differ in this case, and so must the engine"


@pytest.mark.parametrize("as_list_", [False, True])
def test_initial_state_array_or_one_element_list(keras, rng, as_list_):
    k, s = keras_and_scratch(keras, rng, return_state=True)
    x, h0 = rng.uniform(-1, 1, (3, 4, 3)), rng.uniform(-1, 1, (3, 5))
    state = [h0] if as_list_ else h0
    assert_outputs_close(s(x, initial_state=state), k(x, initial_state=[h0]), f"as_list={as_list_}")


def test_stateful_carries_state_and_reset_state_clears_it(keras, rng):
    k, s = keras_and_scratch(keras, rng, stateful=True, return_sequences=True, build_shape=(2, None, 3))
    x1, x2 = rng.uniform(-1, 1, (2, 3, 3)), rng.uniform(-1, 1, (2, 4, 3))
    assert_outputs_close(s(x1), k(x1), "call 1")
    assert_outputs_close(s(x2), k(x2), "call 2")  # continues from the state after x1
    continued = s(x1)
    s.reset_state()
    k.reset_state()
    restarted = s(x1)
    assert_outputs_close(restarted, k(x1), "after reset_state")
    assert not np.allclose(restarted, continued)  # the reset really cleared the carried state
    with pytest.raises(ValueError, match="stateful with batch size 2"):
        s(rng.uniform(-1, 1, (3, 4, 3)))


def test_stateful_equals_one_long_call(rng):
    s = SimpleRNN(4, stateful=True, return_sequences=True, dtype="float64")
    full = SimpleRNN(4, return_sequences=True, dtype="float64")
    s.build((None, None, 3))
    full.set_weights(s.get_weights())
    x = rng.uniform(-1, 1, (2, 9, 3))
    pieces = np.concatenate([s(x[:, :4]), s(x[:, 4:])], axis=1)
    assert_close(pieces, full(x), 1e-15)


def test_use_bias_false_and_param_count(keras, rng):
    k, s = keras_and_scratch(keras, rng, units=4, features=6, use_bias=False)
    assert s.count_params() == k.count_params() == 4 * (6 + 4)
    x = rng.uniform(-1, 1, (2, 3, 6))
    assert_outputs_close(s(x), k(x), "use_bias=False")


@pytest.mark.parametrize("units,features", [(3, 10), (8, 4), (1, 1), (7, 7)])
def test_count_params_equals_keras(keras, units, features):
    k = keras.layers.SimpleRNN(units)
    k.build((None, None, features))
    s = SimpleRNN(units)
    s.build((None, None, features))
    assert s.count_params() == k.count_params() == units * (features + units + 1)


def test_inputs_are_cast_to_the_layer_dtype(rng):
    s = SimpleRNN(3)
    out = s(rng.uniform(-1, 1, (2, 4, 5)))  # float64 in, float32 layer
    assert out.dtype == np.float32
    assert SimpleRNN(3, dtype="float64")(np.ones((1, 2, 2), np.int64)).dtype == np.float64


def test_nan_and_inf_propagate_as_in_keras(keras, rng):
    k, s = keras_and_scratch(keras, rng, return_sequences=True, activation="relu")
    x = rng.uniform(-1, 1, (2, 4, 3))
    x[0, 1, 0] = np.nan
    x[1, 2, 2] = np.inf
    got, want = s(x), np.asarray(k(x))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[0, 1:]).all()  # NaN enters the state and stays
    assert_outputs_close(got, want, "NaN and inf inputs", equal_nan=True)


def test_from_keras_sequential_of_the_notebook(keras, rng):
    model = keras.Sequential([keras.Input(batch_shape=(8, 2, 10)), keras.layers.SimpleRNN(3, return_sequences=True)])
    model.set_weights(random_weights(rng, 10, 3, dtype="float32"))
    ours = scratch_rnn.from_keras(model)
    assert ours.count_params() == model.count_params() == 42
    x = rng.uniform(-1, 1, (8, 2, 10)).astype("float32")
    assert_outputs_close(ours(x), model(x), "call")
    assert_outputs_close(ours.predict(x, batch_size=3), model.predict(x, verbose=0), "predict")


def test_from_keras_refuses_unsupported_layers(keras):
    with pytest.raises(ValueError, match="'ConvLSTM1D'.*not supported"):
        scratch_rnn.from_keras(keras.layers.ConvLSTM1D(2, 3))
