"""The functional graph (``Input``, ``Model(inputs, outputs)``): outputs, masks, weights and summaries equal to
Keras 3's, for models built the same way in both and for Keras models converted with ``from_keras``."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from helpers import assert_outputs_close, randomize

import scratch_rnn as S
from scratch_rnn.keras_convert import from_keras, model_from_config
from scratch_rnn.models import KERAS_SEMANTICS, Model

DTYPES = ("float32", "float64")


def ids(rng, batch=3, timesteps=5, vocab=12):
    """Token ids with right padding (zeros) of a different length per row."""
    x = rng.integers(1, vocab, size=(batch, timesteps))
    for row in range(batch):
        x[row, timesteps - row :] = 0
    return x


def text_classifier(L, Input, M, dtype):
    inputs = Input((None,), dtype="int32", name="tokens")
    e = L.Embedding(12, 5, mask_zero=True, dtype=dtype)(inputs)
    h = L.Bidirectional(L.LSTM(4, dtype=dtype), dtype=dtype)(e)
    return M(inputs, L.Dense(3, dtype=dtype)(h))


def encoder_decoder(L, Input, M, dtype):
    """The decoder LSTM starts from the encoder's [h, c]; the embedding is shared by both."""
    enc_in = Input((None,), dtype="int32", name="enc_in")
    dec_in = Input((None,), dtype="int32", name="dec_in")
    emb = L.Embedding(12, 4, mask_zero=True, dtype=dtype)
    _, h, c = L.LSTM(3, return_state=True, dtype=dtype)(emb(enc_in))
    d = L.LSTM(3, return_sequences=True, dtype=dtype)(emb(dec_in), initial_state=[h, c])
    return M([enc_in, dec_in], L.Dense(2, dtype=dtype)(d))


def masked_branches(L, Input, M, dtype):
    """Masking's mask reaches a SimpleRNN two layers down (through a GRU); two outputs."""
    inputs = Input((6, 3), dtype=dtype)
    m = L.Masking(0.0, dtype=dtype)(inputs)
    s = L.GRU(4, return_sequences=True, dtype=dtype)(m)
    last = L.SimpleRNN(2, dtype=dtype)(s)
    return M(inputs, [last, L.Dense(2, dtype=dtype)(s)])


def shared_two_inputs(L, Input, M, dtype):
    """One LSTM (shared) reads two inputs; two outputs."""
    a, b = Input((5, 3), dtype=dtype, name="a"), Input((5, 3), dtype=dtype, name="b")
    lstm = L.LSTM(4, dtype=dtype)
    dense = L.Dense(2, dtype=dtype)
    return M([a, b], [dense(lstm(a)), dense(lstm(b))])


def masked_concatenate(L, Input, M, dtype):
    """Regression: a Concatenate of masked tensors (Keras records its mask as ExpandDims, ZerosLike, LogicalOr,
    OnesLike, the concatenate op and Any), a masked Add (LogicalOr) and an unmasked input in the join."""
    tokens = Input((None,), dtype="int32", name="tokens")
    a = L.Embedding(12, 3, mask_zero=True, dtype=dtype)(tokens)
    b = L.Embedding(12, 2, mask_zero=True, dtype=dtype)(tokens)
    c = L.Dense(2, dtype=dtype)(b)  # Dense passes b's mask on
    joined = L.Concatenate(dtype=dtype)([a, L.Add(dtype=dtype)([b, c]), L.Embedding(12, 2, dtype=dtype)(tokens)])
    return M(tokens, L.Dense(2, dtype=dtype)(L.LSTM(3, dtype=dtype)(joined)))


def attention_pooled(L, Input, M, dtype):
    """Regression: Attention's output mask (the query's, through Keras's convert_to_tensor) reaches the pooling."""
    tokens = Input((None,), dtype="int32", name="tokens")
    h = L.LSTM(4, return_sequences=True, dtype=dtype)(L.Embedding(12, 3, mask_zero=True, dtype=dtype)(tokens))
    pooled = L.GlobalAveragePooling1D(dtype=dtype)(L.Attention(dtype=dtype)([h, h]))
    return M(tokens, L.Dense(2, dtype=dtype)(pooled))


def padded_sequences(rng, dtype, batch=3):
    x = rng.standard_normal((batch, 6, 3)).astype(dtype)
    x[0, 4:] = 0
    x[1, 2:] = 0
    x[2, 1] = 0  # a masked step in the middle
    return x


BUILDERS = {
    "text_classifier": (text_classifier, lambda rng, dtype: ids(rng)),
    "encoder_decoder": (encoder_decoder, lambda rng, dtype: [ids(rng), ids(rng, timesteps=4)]),
    "masked_branches": (masked_branches, padded_sequences),
    "masked_concatenate": (masked_concatenate, lambda rng, dtype: ids(rng)),
    "attention_pooled": (attention_pooled, lambda rng, dtype: ids(rng)),
    "shared_two_inputs": (
        shared_two_inputs,
        lambda rng, dtype: [rng.standard_normal((2, 5, 3)).astype(dtype) for _ in range(2)],
    ),
}


def keras_summary_rows(keras_model) -> list[tuple]:
    """Keras's rich table as rows of cells, each cell's wrapped lines joined with a space."""
    lines = []
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "400"  # rich's console width: no cell cut short with an ellipsis
    try:
        keras_model.summary(line_length=300, print_fn=lambda text, **_: lines.append(text))
    finally:
        os.environ.pop("COLUMNS") if columns is None else os.environ.update(COLUMNS=columns)
    rows, current = [], None
    for line in "\n".join(lines).splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            current = cells if current is None else [f"{a} {b}".strip() for a, b in zip(current, cells)]
        elif current is not None:
            rows.append(tuple(current))
            current = None
    return rows


def renamed_rows(ours, keras_rows) -> list[tuple]:
    """Our summary rows with each layer's name replaced by Keras's at the same position: auto names
    (``lstm_3``, ``not_equal_2``) count every layer made in the process, and the two counters differ."""
    our_rows = ours.summary_rows()
    names = dict(zip([r[0].split(" (")[0] for r in our_rows], [r[0].split(" (")[0] for r in keras_rows]))

    def rename(cell):
        return re.sub(r"[A-Za-z_][A-Za-z0-9_]*(?=\[| \()", lambda m: names.get(m.group(0), m.group(0)), cell)

    return [tuple(rename(cell) for cell in row) for row in our_rows]


def totals(lines_text: str) -> list[str]:
    return [line for line in lines_text.splitlines() if "params:" in line]


@pytest.fixture(params=sorted(BUILDERS))
def pair(request, keras):
    """(name, keras model, scratch model built the same way with Keras's weights randomised and copied, x)."""
    builder, make_x = BUILDERS[request.param]
    rng = np.random.default_rng(7)
    keras_model = builder(keras.layers, keras.Input, keras.Model, "float32")
    ours = builder(S, S.Input, Model, "float32")
    for layer in keras_model.layers:
        if layer.get_weights():
            randomize(layer, rng)
    ours.set_weights(keras_model.get_weights())
    return request.param, keras_model, ours, make_x(rng, "float32")


def test_outputs_equal_keras(pair):
    name, keras_model, ours, x = pair
    assert_outputs_close(ours(x), keras_model(x), context=name)
    assert_outputs_close(ours.predict(x, batch_size=2), keras_model(x), context=f"{name} predict")


def test_layers_weights_and_summary_equal_keras(pair):
    name, keras_model, ours, _ = pair
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in keras_model.layers]
    assert ours.count_params() == keras_model.count_params()
    for o, k in zip(ours.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(o, np.asarray(k))
    expected = keras_summary_rows(keras_model)
    assert renamed_rows(ours, expected) == expected, name
    ours_text, keras_text = [], []
    ours.summary(print_fn=ours_text.append)
    keras_model.summary(print_fn=lambda text, **_: keras_text.append(text))
    assert totals("\n".join(ours_text)) == totals("\n".join(keras_text))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_from_keras_equals_keras(keras, name, dtype):
    builder, make_x = BUILDERS[name]
    rng = np.random.default_rng(11)
    keras_model = builder(keras.layers, keras.Input, keras.Model, dtype)
    for layer in keras_model.layers:
        if layer.get_weights():
            randomize(layer, rng)
    ours = from_keras(keras_model)
    x = make_x(rng, dtype)
    assert_outputs_close(ours(x), keras_model(x), context=f"{name} {dtype}")
    assert ours.summary_rows() == keras_summary_rows(keras_model)
    unweighted = model_from_config(keras_model.get_config())
    assert [type(layer).__name__ for layer in unweighted.layers] == [type(layer).__name__ for layer in ours.layers]


def test_decoder_given_initial_state_gets_no_mask(keras):
    """Keras 3 passes a mask only to a call with one tensor argument: the decoder (x and initial_state) runs
    over its padding. The engine does the same, and a decoder given the mask would differ."""
    rng = np.random.default_rng(3)
    keras_model = encoder_decoder(keras.layers, keras.Input, keras.Model, "float32")
    for layer in keras_model.layers:
        if layer.get_weights():
            randomize(layer, rng)
    ours = from_keras(keras_model)
    x = [ids(rng), ids(rng, timesteps=4)]
    decoder = ours.layers[-2]
    masked = Model(ours.inputs, ours.outputs)  # same graph
    y = masked(x)
    assert_outputs_close(y, keras_model(x))
    state = [np.asarray(t) for t in keras.Model(keras_model.inputs, keras_model.layers[-3].output)(x)[1:]]
    emb = ours.layers[2](x[1])
    with_mask = ours.layers[-1](decoder(emb, mask=x[1] != 0, initial_state=state))
    assert not np.allclose(with_mask, y)


# --- NumPy only --------------------------------------------------------------------------------


def test_shared_layer_runs_once_per_node_and_counts_once():
    a, b = S.Input((4, 2), name="first"), S.Input((4, 2), name="second")
    rnn = S.SimpleRNN(3)
    model = Model([a, b], [rnn(a), rnn(b)])
    x1, x2 = np.ones((2, 4, 2)), np.zeros((2, 4, 2))
    y1, y2 = model([x1, x2])
    assert_outputs_close(y1, rnn(x1))
    assert_outputs_close(y2, rnn(x2))
    assert model.count_params() == rnn.count_params() == 3 * (2 + 3 + 1)
    assert [layer.name for layer in model.layers] == ["first", "second", rnn.name]


def test_mask_reaches_two_layers_down_and_version_table():
    """Keras 3.15: Masking's mask reaches the SimpleRNN through the GRU; after PR #23235 (the 3.16 row) the GRU
    passes no mask on."""
    rng = np.random.default_rng(0)
    x = padded_sequences(rng, "float32")
    model = masked_branches(S, S.Input, Model, "float32")
    later = Model(model.inputs[0], model.outputs, keras_version="3.16.0")
    masking, gru, simple = (model.layers[i] for i in (1, 2, 3))
    keep = np.any(x != 0, axis=-1)
    seq = gru(masking(x), mask=keep)
    assert_outputs_close(model(x)[0], simple(seq, mask=keep))
    assert_outputs_close(later(x)[0], simple(seq))
    assert [row["sequence_layers_pass_mask"] for row in KERAS_SEMANTICS.values()] == [True, False]


def test_input_dtypes_and_sequential_still_takes_input():
    tokens = S.Input((None,), dtype="int32")
    assert tokens.dtype == np.dtype("int32") and tokens.shape == (None, None)
    model = S.Sequential([S.Input((3, 2)), S.SimpleRNN(2)])
    assert model(np.ones((1, 3, 2))).shape == (1, 2)


def test_refusals():
    a = S.Input((3, 2))
    y = S.SimpleRNN(2)(a)
    with pytest.raises(ValueError, match="must be an Input"):
        Model(y, S.Dense(1)(y))
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(S.Input((3, 2)), y)
    with pytest.raises(ValueError, match="symbolic tensor or a non-empty list"):
        Model(a, np.ones(3))
    with pytest.raises(ValueError, match="`keras_version`"):
        Model(a, y, keras_version="2.15")
    with pytest.raises(ValueError, match="expects 1 input"):
        Model(a, y)([np.ones((1, 3, 2))] * 2)
    with pytest.raises(ValueError, match="must have shape"):
        Model(a, y)(np.ones((1, 3, 5)))
    with pytest.raises(ValueError, match="`dtype`"):
        S.Input((3,), dtype="complex64")

    class NoMask(S.Dense):
        def call(self, x):
            return super().call(x)

    with pytest.raises(ValueError, match="takes no `mask`"):
        NoMask(2)(a, mask=S.Input((3,), dtype="bool"))


def test_config_refusals():
    def ref(name):
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}

    config = {
        "name": "m",
        "layers": [
            {"class_name": "InputLayer", "name": "x", "config": {"batch_shape": [None, 3], "dtype": "float32"}},
            {
                "module": "keras.src.ops.numpy",
                "class_name": "Cumsum",
                "name": "cumsum",
                "config": {"name": "cumsum"},
                "inbound_nodes": [],
            },
        ],
        "input_layers": [["x", 0, 0]],
        "output_layers": [["x", 0, 0]],
    }
    with pytest.raises(ValueError, match="operation 'Cumsum'"):
        model_from_config(config)
    config["layers"][1] = {
        "class_name": "Dense",
        "name": "dense_x",
        "config": {"name": "dense_x", "units": 2},
        "inbound_nodes": [
            {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["nowhere", 0, 0]}}], "kwargs": {}}
        ],
    }
    with pytest.raises(ValueError, match="never made"):
        model_from_config(config)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda ops: ops.ZerosLike(dtype="float32"), "dtype"),
        (lambda ops: ops.OnesLike(dtype="int32"), "dtype"),
        (lambda ops: ops.ConvertToTensor(sparse=True), "sparse"),
        (lambda ops: ops.ConvertToTensor(ragged=True), "ragged"),
        (lambda ops: ops.ExpandDims(axis=1.5), "axis"),
        (lambda ops: ops.ConcatenateOp(axis="x"), "axis"),
    ],
)
def test_mask_operations_refuse_what_they_do_not_implement(make, argument):
    from scratch_rnn import models

    with pytest.raises(ValueError, match=f"`{argument}`"):
        make(models)


def test_mask_operations_compute_on_arrays_and_legacy_configs_tell_the_op_from_the_layer():
    from scratch_rnn import models

    m = np.array([[True, False]])
    x = np.zeros((1, 2, 3), "float32")
    joined = models.LogicalOr()(models.ExpandDims(axis=-1)(m), models.ZerosLike(dtype="bool")(x))
    np.testing.assert_array_equal(joined, np.broadcast_to(m[..., None], (1, 2, 3)))
    both = models.ConcatenateOp(axis=-1)([joined, models.OnesLike(dtype="bool")(x)])
    np.testing.assert_array_equal(models.Any(axis=-1)(both), [[True, True]])
    assert models.ConvertToTensor()(m) is not None and models.ConvertToTensor()(x).dtype == np.float32

    # A legacy .h5 config names no module: Keras's concatenate op has no dtype, the Concatenate layer has one.
    def ref(name):
        return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}

    config = {
        "name": "m",
        "layers": [
            {"class_name": "InputLayer", "name": "a", "config": {"batch_shape": [None, 2, 3], "name": "a"}},
            {"class_name": "Concatenate", "name": "op", "config": {"name": "op", "axis": -1}, "inbound_nodes": [
                {"args": [[ref("a")] * 2]}]},
            {"class_name": "Concatenate", "name": "layer", "config": {"name": "layer", "axis": 1, "dtype": "float32"},
             "inbound_nodes": [{"args": [[ref("op")] * 2]}]},
        ],
        "input_layers": ["a", 0, 0],
        "output_layers": ["layer", 0, 0],
    }  # fmt: skip
    model = model_from_config(config)
    assert model.predict(np.ones((1, 2, 3))).shape == (1, 4, 6)
