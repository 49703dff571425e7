"""Models written and built with Keras 2 (tf_keras) convert with from_keras and predict what Keras 2 predicts."""

from helpers import randomize

import scratch_rnn
from scratch_rnn.testing import assert_close

F32 = 2e-6  # float32 predictions in [0, 1]; measured up to 1.2e-7 here


def test_the_seed_notebooks_keras2_model(tf_keras, rng, capsys):
    model = tf_keras.Sequential()
    model.add(tf_keras.layers.SimpleRNN(units=3, batch_input_shape=(8, 2, 10), return_sequences=True))  # as written
    randomize(model, rng)
    ours = scratch_rnn.from_keras(model)
    ours.summary()
    text = capsys.readouterr().out
    assert "(8, 2, 3)" in text and "Total params: 42" in text
    x = rng.uniform(-1, 1, (8, 2, 10)).astype("float32")
    assert_close(ours(x), model.predict(x, verbose=0), F32, name="prediction")


def test_embedding_bidirectional_lstm_gru_dense(tf_keras, rng):
    K = tf_keras.layers
    model = tf_keras.Sequential(
        [
            K.Embedding(20, 6, mask_zero=True, input_length=7),
            K.Bidirectional(K.LSTM(5, return_sequences=True)),
            K.GRU(4),  # Keras 2's default is reset_after=True, with a (2, 3u) bias, as Keras 3's
            K.Dropout(0.3),
            K.Dense(3, activation="softmax"),
        ]
    )
    model.build((None, 7))
    randomize(model, rng)
    x = rng.integers(1, 20, (4, 7))
    x[0, 4:] = 0  # padding, masked by mask_zero
    x[2, 2:] = 0
    ours = scratch_rnn.from_keras(model)
    assert ours.count_params() == model.count_params()
    assert_close(ours(x), model.predict(x, verbose=0), F32, name="prediction")
