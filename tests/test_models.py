"""Whole Keras models converted with scratch_rnn.from_keras, and the non-recurrent layers, against real Keras.

The Keras sweep (test_harness.py) runs one recurrent layer at a time: models, masks flowing between
layers, and Dense, Embedding, Masking, Dropout, Activation and TimeDistributed are tested only here.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close, randomize

import scratch_rnn
from scratch_rnn.testing import assert_close

T, V, E, U, CLASSES = 7, 20, 6, 5, 4


def keras_text_model(keras, dtype):
    """The brief's model: ids -> Embedding(mask_zero) -> Bidirectional(LSTM) -> GRU -> Dropout -> softmax."""
    K = keras.layers
    return keras.Sequential(
        [
            keras.Input((T,)),
            K.Embedding(V, E, mask_zero=True, dtype=dtype),
            K.Bidirectional(K.LSTM(U, return_sequences=True, dtype=dtype), dtype=dtype),
            K.GRU(U, dtype=dtype),
            K.Dropout(0.3, dtype=dtype),
            K.Dense(CLASSES, activation="softmax", dtype=dtype),
        ]
    )


def padded_ids(rng, lengths):
    """Token ids 1..V-1 followed by trailing zeros (padding), one row per length."""
    x = np.zeros((len(lengths), T), "int64")
    for row, n in enumerate(lengths):
        x[row, :n] = rng.integers(1, V, n)
    return x


@pytest.fixture(scope="module", params=DTYPES)
def text_models(request, keras):
    dtype = request.param
    rng = np.random.default_rng(0)
    keras_model = keras_text_model(keras, dtype)
    randomize(keras_model, rng)  # every weight random, embeddings and biases included
    return dtype, keras_model, scratch_rnn.from_keras(keras_model)


def test_end_to_end_predictions_equal_keras(text_models):
    dtype, keras_model, ours = text_models
    x = padded_ids(np.random.default_rng(1), [T, 5, 1, 3, T, 2])
    theirs = keras_model.predict(x, verbose=0)
    assert_outputs_close(ours.predict(x), theirs, "text model predict")
    assert_outputs_close(ours(x), keras_model(x), "text model call")
    assert_close(ours(x).sum(axis=-1), np.ones(len(x), dtype), 1e-6, name="softmax sums")


def test_padding_is_ignored(text_models):
    """With the mask, a padded row predicts what its unpadded prefix predicts (both directions skip padding)."""
    dtype, _, ours = text_models
    x = padded_ids(np.random.default_rng(2), [3, 6])
    batch = ours(x)
    for row, n in enumerate([3, 6]):
        alone = scratch_rnn.Sequential(ours.layers)(x[row : row + 1, :n])
        assert_close(batch[row], alone[0], 1e-6 if dtype == "float32" else 1e-13, name=f"row {row}", context="padded")


def test_structure_parameter_counts_and_summary_equal_keras(text_models):
    dtype, keras_model, ours = text_models
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in keras_model.layers]
    assert [layer.name for layer in ours.layers] == [layer.name for layer in keras_model.layers]
    assert ours.input.batch_shape == (None, T)
    assert (
        ours.count_params()
        == keras_model.count_params()
        == (V * E + 2 * 4 * U * (E + U + 1) + 3 * U * (2 * U + U + 2) + CLASSES * (U + 1))
    )
    lines = []
    ours.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for layer in keras_model.layers:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer.output.shape) + ")"
        row = next(line for line in text.splitlines() if line.strip().startswith(f"{layer.name} ("))
        assert shape in row and row.split()[-1] == str(layer.count_params()), row
    assert f"Total params: {keras_model.count_params()} " in text
    itemsize = np.dtype(dtype).itemsize
    assert f"({keras_model.count_params() * itemsize:.2f} Byte)" in text


def test_weights_round_trip_in_keras_order(text_models):
    _, keras_model, ours = text_models
    for o, k in zip(ours.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(o, np.asarray(k))


# --- other Keras models --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_masking_timedistributed_dense_activation_model(keras, dtype):
    """Masking's mask passes through TimeDistributed(Dense), Dense on 3-D input and Activation into the LSTM."""
    K = keras.layers
    rng = np.random.default_rng(3)
    keras_model = keras.Sequential(
        [
            keras.Input((6, 3), dtype=dtype),
            K.Masking(0.0, dtype=dtype),
            K.TimeDistributed(K.Dense(4, activation="tanh", dtype=dtype), dtype=dtype),
            K.Dense(4, dtype=dtype),
            K.Activation("relu", dtype=dtype),
            K.LSTM(3, return_sequences=True, dtype=dtype),
            K.TimeDistributed(K.Dense(2, dtype=dtype), dtype=dtype),
        ]
    )
    randomize(keras_model, rng)
    x = rng.standard_normal((4, 6, 3)).astype(dtype)
    x[0, :2] = 0.0  # masked first steps
    x[1, 4:] = 0.0  # padding
    x[2, 3] = 0.0  # a hole
    ours = scratch_rnn.from_keras(keras_model)
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in keras_model.layers]
    assert_outputs_close(ours(x), keras_model(x), "masking model")
    assert ours.count_params() == keras_model.count_params()


@pytest.mark.parametrize("dtype", DTYPES)
def test_stacked_recurrent_model_with_simple_rnn(keras, dtype):
    K = keras.layers
    rng = np.random.default_rng(4)
    keras_model = keras.Sequential(
        [
            keras.Input((5,)),
            K.Embedding(9, 4, mask_zero=True, dtype=dtype),
            K.SimpleRNN(4, return_sequences=True, dtype=dtype),
            K.Bidirectional(K.GRU(3, reset_after=False, dtype=dtype), merge_mode="sum", dtype=dtype),
            K.Dense(2, activation="sigmoid", dtype=dtype),
        ]
    )
    randomize(keras_model, rng)
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [8, 0, 0, 0, 0]])
    ours = scratch_rnn.from_keras(keras_model)
    assert_outputs_close(ours(x), keras_model(x), "stacked model")


# --- the non-recurrent layers one by one -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["softmax", "relu", "tanh", "sigmoid", "hard_sigmoid", "linear", None])
@pytest.mark.parametrize("input_shape", [(3, 5), (2, 4, 5), (2, 3, 2, 5)], ids=["2d", "3d", "4d"])
def test_dense_matches_keras(keras, input_shape, activation, dtype):
    K = keras.layers
    rng = np.random.default_rng(len(input_shape))
    x = rng.standard_normal(input_shape).astype(dtype)
    kd = K.Dense(5, activation=activation, dtype=dtype)  # square kernel (5 -> 5)
    kd.build(input_shape)
    ours = scratch_rnn.Dense(5, activation=activation, dtype=dtype)
    ours.set_weights(randomize(kd, rng))
    assert_outputs_close(ours(x), kd(x), f"Dense {activation}")
    assert ours.compute_output_shape((None, *input_shape[1:])) == kd.compute_output_shape((None, *input_shape[1:]))
    assert ours.count_params() == kd.count_params() == 5 * 5 + 5


def test_dense_kernel_is_a_transpose_declared_once():
    ours = scratch_rnn.Dense(3, use_bias=False)
    kernel = np.arange(6.0).reshape(2, 3)  # Keras layout (input_dim, units)
    ours.set_weights([kernel])
    np.testing.assert_array_equal(ours.W, kernel.T)  # seed layout (units, input_dim)
    np.testing.assert_array_equal(ours.get_weights()[0], kernel)
    assert ours.input_shape == (None, 2) and ours.count_params() == 6


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_matches_keras_including_mask_and_odd_ids(keras, dtype):
    K = keras.layers
    rng = np.random.default_rng(5)
    ke = K.Embedding(6, 3, mask_zero=True, dtype=dtype)
    ke.build()
    ours = scratch_rnn.Embedding(6, 3, mask_zero=True, dtype=dtype)
    ours.set_weights(randomize(ke, rng))
    for x in [np.array([[0, 1, 5, 2], [3, 0, 0, 0]]), np.array([[-1, -6, 4, 0]]), np.array([[0.4, 2.9, -0.7, 0.0]])]:
        assert_outputs_close(ours(x), ke(x), f"Embedding {x.tolist()}")
        np.testing.assert_array_equal(ours.compute_mask(x, None), np.asarray(ke.compute_mask(x)))
    assert ours.compute_output_shape((None, 4)) == ke.compute_output_shape((None, 4)) == (None, 4, 3)
    assert scratch_rnn.Embedding(6, 3).compute_mask(np.zeros((1, 2)), None) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_value", [0.0, 0.5])
def test_masking_matches_keras(keras, mask_value, dtype):
    K = keras.layers
    x = np.array([[[0.5, 0.5], [0.5, 1.0], [0.0, 0.0], [2.0, 3.0]]], dtype)
    km = K.Masking(mask_value, dtype=dtype)
    ours = scratch_rnn.Masking(mask_value, dtype=dtype)
    assert_outputs_close(ours(x), km(x), "Masking")
    np.testing.assert_array_equal(ours.compute_mask(x, None), np.asarray(km.compute_mask(x)))
    assert ours.count_params() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_activation_and_timedistributed_match_keras(keras, dtype):
    K = keras.layers
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    assert_outputs_close(scratch_rnn.Dropout(0.5, dtype=dtype)(x), K.Dropout(0.5, dtype=dtype)(x), "Dropout")
    for name in ["softmax", "relu", "hard_sigmoid"]:
        ours = scratch_rnn.Activation(name, dtype=dtype)(x)
        assert_outputs_close(ours, K.Activation(name, dtype=dtype)(x), f"Activation {name}")
    kt = K.TimeDistributed(K.Dense(4, dtype=dtype), dtype=dtype)
    kt.build(x.shape)
    ours = scratch_rnn.TimeDistributed(scratch_rnn.Dense(4, dtype=dtype), dtype=dtype)
    ours.set_weights(randomize(kt, rng))
    assert_outputs_close(ours(x), kt(x), "TimeDistributed(Dense)")
    assert ours.count_params() == kt.count_params()
    assert ours.compute_output_shape((None, 3, 4)) == kt.compute_output_shape((None, 3, 4))


def test_from_keras_timedistributed_and_masks_pass_through(keras):
    K = keras.layers
    rng = np.random.default_rng(7)
    kt = K.TimeDistributed(K.Dense(3, activation="relu"))
    kt.build((None, 5, 2))
    randomize(kt, rng)
    ours = scratch_rnn.from_keras(kt)
    assert isinstance(ours.layer, scratch_rnn.Dense) and ours.layer.name == kt.layer.name
    x = rng.standard_normal((2, 5, 2)).astype("float32")
    assert_outputs_close(ours(x), kt(x), "from_keras(TimeDistributed)")
    mask = np.ones((2, 5), bool)
    for layer in [ours, scratch_rnn.Dense(2), scratch_rnn.Dropout(0.1), scratch_rnn.Activation("tanh")]:
        assert layer.compute_mask(x, mask) is mask


# --- errors --------------------------------------------------------------------------------


def test_unsupported_keras_layers_and_options_are_refused_by_name(keras):
    K = keras.layers
    conv = keras.Sequential([keras.Input((5, 3)), K.Conv1DTranspose(2, 2), K.LSTM(2)])
    with pytest.raises(ValueError, match=r"Keras layer 'Conv1DTranspose' \(conv1d_transpose.*\) is not supported"):
        scratch_rnn.from_keras(conv)
    lora = K.Dense(2, lora_rank=1)
    lora.build((None, 3))
    with pytest.raises(ValueError, match=r"Dense option `lora_rank`=1 is not supported"):
        scratch_rnn.from_keras(lora)
    mixed = K.LSTM(2, dtype="mixed_float16")
    with pytest.raises(ValueError, match=r"'mixed_float16' is not supported"):
        scratch_rnn.from_keras(mixed)
    with pytest.raises(ValueError, match=r"argument `activation`.*got 'gelu'"):
        scratch_rnn.from_keras(K.Dense(2, activation="gelu"))


def test_sequential_refuses_a_layer_after_an_unmerged_bidirectional():
    unmerged = scratch_rnn.Bidirectional(scratch_rnn.LSTM(2), merge_mode=None)
    with pytest.raises(ValueError, match=r"merge_mode=None: it returns a list"):
        scratch_rnn.Sequential([scratch_rnn.Input((3, 4)), unmerged, scratch_rnn.Dense(2)])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: scratch_rnn.Dense(0), r"argument `units`, expected a positive integer, got 0"),
        (lambda: scratch_rnn.Dense(2, activation="swish"), r"argument `activation`"),
        (lambda: scratch_rnn.Embedding(0, 3), r"argument `input_dim`"),
        (lambda: scratch_rnn.Embedding(3, 2, mask_zero=1), r"argument `mask_zero`, expected a bool"),
        (lambda: scratch_rnn.Dropout(1.5), r"argument `rate`, expected a float in \[0, 1\], got 1.5"),
        (lambda: scratch_rnn.Masking("zero"), r"argument `mask_value`, expected a real number"),
        (lambda: scratch_rnn.Activation("bogus"), r"argument `activation`.*got 'bogus'"),
        (lambda: scratch_rnn.TimeDistributed(scratch_rnn.LSTM(2)), r"expected a non-recurrent scratch_rnn layer"),
        (lambda: scratch_rnn.Dense(2, dtype="int32"), r"argument `dtype`"),
    ],
)
def test_bad_constructor_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_call_arguments_raise():
    dense = scratch_rnn.Dense(2)
    dense(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"must have last dimension 3"):
        dense(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"at least 2 dimensions"):
        dense(np.zeros(3))
    embedding = scratch_rnn.Embedding(4, 2)
    with pytest.raises(ValueError, match=r"ids in \[-4, 4\) \(input_dim=4\), got 4"):
        embedding(np.array([[1, 4]]))
    with pytest.raises(ValueError, match=r"finite ids"):
        embedding(np.array([[np.nan]]))
    td = scratch_rnn.TimeDistributed(scratch_rnn.Dense(2))
    with pytest.raises(ValueError, match=r"at least 3 dimensions"):
        td(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"`mask` of .* must start with the input's \(batch, timesteps\) = \(2, 3\)"):
        td(np.zeros((2, 3, 4)), mask=np.ones((2, 4), bool))
    model = scratch_rnn.Sequential([scratch_rnn.Input((3,)), scratch_rnn.Embedding(4, 2), scratch_rnn.LSTM(2)])
    with pytest.raises(ValueError, match=r"must have shape \('batch', 3\)"):
        model(np.zeros((2, 4), int))


def test_from_keras_sequential_with_input_layer(keras):
    K = keras.layers
    rng = np.random.default_rng(8)
    keras_model = keras.Sequential([K.InputLayer(shape=(5, 3)), K.GRU(2, go_backwards=True)])
    randomize(keras_model, rng)
    ours = scratch_rnn.from_keras(keras_model)
    assert ours.input.batch_shape == (None, 5, 3) and ours.built
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    assert_outputs_close(ours(x), keras_model(x), "Sequential(InputLayer, GRU)")
