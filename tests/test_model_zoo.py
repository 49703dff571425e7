"""The model zoo (#12): real models built and saved by Keras during the run, loaded without TensorFlow.

Each zoo model is built by Keras 3 (or Keras 2, ``tf_keras``), given random non-symmetric weights, saved in
every form Keras writes for it (``.keras``, legacy ``.h5``, ``.weights.h5``; Keras 2: ``.h5`` and legacy
weights ``.h5``), and Keras's predictions on fixed inputs (padding included) are written next to the files as
``.npy``. Then **one** subprocess, with TensorFlow and Keras blocked (``tests/block_keras``), loads every file
with ``scratch_rnn.load_model`` (a weights file: into the model loaded from the ``.keras`` file with its
weights zeroed first, or into a model built by hand), predicts, compares with Keras's predictions
(``assert_close``, ``1e-5 + 1e-5 |expected|`` in float32; NaN where Keras gives NaN, an all-padding row
pooled) and reads the totals of its ``summary()``. Each (model, form) is one test here, on that result.
``verify_model(path, max_examples=10)`` then checks each model on generated inputs (float32; float64 for a
few). docs/saving.md has the table of what is tested in which form, docs/verify-model.md the measurements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parent.parent
BLOCK = ROOT / "tests" / "block_keras"


def ids(rng, batch, timesteps, vocab):
    """Token ids with padding zeros: trailing in row 0, leading in row 1, none in the rest."""
    x = rng.integers(1, vocab, (batch, timesteps)).astype("int32")
    x[0, -2:] = 0
    x[1, :2] = 0
    return x


def uniform(rng, *shape):
    return rng.uniform(-1, 1, shape).astype("float32")


# --- the zoo: name -> builder(keras, rng) -> (model, inputs) --------------------------------------------------


def classifier(keras, rng):
    """1. Input(int32) -> Embedding(mask_zero) -> Bidirectional(LSTM) -> Dense(softmax)."""
    L = keras.layers
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = L.Bidirectional(L.LSTM(5))(L.Embedding(20, 6, mask_zero=True)(tokens))
    return keras.Model(tokens, L.Dense(3, activation="softmax")(h), name="classifier"), [ids(rng, 4, 7, 20)]


def seq2seq(keras, rng):
    """2. Encoder-decoder: the decoder LSTM starts from the encoder's [h, c] (teacher forcing), a
    TimeDistributed(Dense) over the decoder's sequence."""
    L = keras.layers
    enc, dec = keras.Input((None,), dtype="int32", name="enc"), keras.Input((None,), dtype="int32", name="dec")
    _, h, c = L.LSTM(6, return_state=True)(L.Embedding(15, 5, mask_zero=True)(enc))
    y = L.LSTM(6, return_sequences=True)(L.Embedding(12, 4, mask_zero=True)(dec), initial_state=[h, c])
    model = keras.Model([enc, dec], L.TimeDistributed(L.Dense(12, activation="softmax"))(y), name="seq2seq")
    return model, [ids(rng, 4, 7, 15), ids(rng, 4, 5, 12)]


def autoencoder(keras, rng):
    """3. LSTM -> RepeatVector -> LSTM(return_sequences) -> TimeDistributed(Dense)."""
    L = keras.layers
    x = keras.Input((6, 3))
    h = L.LSTM(5, return_sequences=True)(L.RepeatVector(6)(L.LSTM(4)(x)))
    return keras.Model(x, L.TimeDistributed(L.Dense(3))(h), name="autoencoder"), [uniform(rng, 4, 6, 3)]


def conv_gru(padding):
    def build(keras, rng):
        """4. Conv1D -> MaxPooling1D -> GRU -> Dense (valid, causal padding)."""
        L = keras.layers
        x = keras.Input((12, 3))
        h = L.MaxPooling1D(2)(L.Conv1D(4, 3, padding=padding, activation="relu")(x))
        model = keras.Model(x, L.Dense(2)(L.GRU(5)(h)), name=f"conv_gru_{padding}")
        return model, [uniform(rng, 4, 12, 3)]

    return build


def two_inputs(keras, rng):
    """5. An LSTM over a sequence and a Dense over static features, merged by Concatenate."""
    L = keras.layers
    seq, static = keras.Input((None, 3), name="seq"), keras.Input((4,), name="static")
    h = L.Concatenate()([L.LSTM(5)(seq), L.Dense(3, activation="relu")(static)])
    return keras.Model([seq, static], L.Dense(2)(h), name="two_inputs"), [uniform(rng, 4, 6, 3), uniform(rng, 4, 4)]


def masked_concat(keras, rng):
    """5b. A Concatenate of two masked embeddings (Keras records its mask as ops) -> LSTM -> Dense."""
    L = keras.layers
    tokens = keras.Input((None,), dtype="int32")
    h = L.Concatenate()([L.Embedding(20, 3, mask_zero=True)(tokens), L.Embedding(20, 4, mask_zero=True)(tokens)])
    return keras.Model(tokens, L.Dense(2)(L.LSTM(5)(h)), name="masked_concat"), [ids(rng, 4, 7, 20)]


def attention(keras, rng):
    """6. Embedding(mask_zero) -> LSTM(return_sequences) -> Attention([h, h]) -> GlobalAveragePooling1D -> Dense;
    row 2 is all padding (Keras's pooled output is NaN there: 0/0)."""
    L = keras.layers
    tokens = keras.Input((None,), dtype="int32")
    h = L.LSTM(6, return_sequences=True)(L.Embedding(20, 5, mask_zero=True)(tokens))
    h = L.GlobalAveragePooling1D()(L.Attention()([h, h]))
    x = ids(rng, 4, 7, 20)
    x[2] = 0
    return keras.Model(tokens, L.Dense(3, activation="softmax")(h), name="attention"), [x]


def additive_attention(keras, rng):
    """6b. AdditiveAttention of a query embedding over an LSTM's sequence, both masked, pooled."""
    L = keras.layers
    q, v = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    value = L.LSTM(5, return_sequences=True)(L.Embedding(20, 5, mask_zero=True)(v))
    h = L.GlobalAveragePooling1D()(L.AdditiveAttention()([L.Embedding(20, 5, mask_zero=True)(q), value]))
    return keras.Model([q, v], L.Dense(2)(h), name="additive_attention"), [ids(rng, 4, 5, 20), ids(rng, 4, 7, 20)]


def stacked_cells_norm(keras, rng):
    """8. RNN(StackedRNNCells([LSTMCell, GRUCell, SimpleRNNCell])) -> LayerNormalization -> LSTM ->
    BatchNormalization (non-trainable moving statistics) -> Dense."""
    L = keras.layers
    x = keras.Input((7, 3))
    cells = L.StackedRNNCells([L.LSTMCell(4), L.GRUCell(5), L.SimpleRNNCell(3)])
    h = L.LayerNormalization()(L.RNN(cells, return_sequences=True)(x))
    h = L.BatchNormalization()(L.LSTM(4)(h))
    return keras.Model(x, L.Dense(2)(h), name="stacked_cells_norm"), [uniform(rng, 4, 7, 3)]


def classifier_sequential(keras, rng):
    """1b. The text classifier as a Sequential."""
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            L.Embedding(20, 6, mask_zero=True),
            L.Bidirectional(L.LSTM(5)),
            L.Dense(3, activation="softmax"),
        ],
        name="classifier_sequential",
    )
    return model, [ids(rng, 4, 7, 20)]


def keras2_seed(tf_keras, rng):
    """7. The seed notebook's model, saved by Keras 2."""
    model = tf_keras.Sequential([tf_keras.layers.SimpleRNN(3, batch_input_shape=(8, 2, 10))], name="keras2_seed")
    return model, [uniform(rng, 8, 2, 10)]


def keras2_lstm_gru(tf_keras, rng):
    """7b. Keras 2: Embedding(mask_zero) -> LSTM(return_sequences) -> GRU -> Dense(softmax)."""
    L = tf_keras.layers
    model = tf_keras.Sequential(
        [
            L.Embedding(20, 6, mask_zero=True, input_length=7),
            L.LSTM(5, return_sequences=True),
            L.GRU(4),
            L.Dense(3, activation="softmax"),
        ],
        name="keras2_lstm_gru",
    )
    model.build((None, 7))
    return model, [ids(rng, 4, 7, 20)]


KERAS3 = {
    "classifier": classifier,
    "classifier_sequential": classifier_sequential,
    "seq2seq": seq2seq,
    "autoencoder": autoencoder,
    "conv_gru_valid": conv_gru("valid"),
    "conv_gru_causal": conv_gru("causal"),
    "two_inputs": two_inputs,
    "masked_concat": masked_concat,
    "attention": attention,
    "additive_attention": additive_attention,
    "stacked_cells_norm": stacked_cells_norm,
}
KERAS2 = {"keras2_seed": keras2_seed, "keras2_lstm_gru": keras2_lstm_gru}

#: The forms each model is saved in: ``keras`` (.keras), ``h5`` (legacy model), ``weights`` (Keras 3
#: .weights.h5 into the model loaded from the .keras file), ``weights_by_hand`` (into a model built by hand),
#: ``legacy_weights`` (Keras 2 save_weights .h5 into the model loaded from the .h5 file).
FORMS = {name: ("keras", "h5", "weights") for name in KERAS3}
FORMS["classifier"] += ("weights_by_hand",)
FORMS.update({name: ("h5", "legacy_weights") for name in KERAS2})
ENTRIES = [(name, form) for name, forms in FORMS.items() for form in forms]

#: verify_model in float64 as well for these.
FLOAT64 = ("classifier", "seq2seq", "stacked_cells_norm")


def randomize_model(model, rng):
    """Random non-symmetric weights; BatchNormalization's moving variance positive."""
    model.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in model.get_weights()])
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, mean, np.abs(variance) + 0.5])


def param_counts(model) -> dict:
    total = int(model.count_params())
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


@pytest.fixture(scope="module")
def zoo(keras, request, tmp_path_factory):
    """The folder of saved models, inputs and Keras's predictions, and its manifest (name -> entry)."""
    folder = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(20261126)
    built = [(name, build, keras) for name, build in KERAS3.items()]
    try:
        tf_keras = request.getfixturevalue("tf_keras")
        built += [(name, build, tf_keras) for name, build in KERAS2.items()]
    except pytest.skip.Exception:
        pass  # tf_keras not installed locally: the Keras 2 entries skip
    manifest = {}
    for name, build, module in built:
        model, inputs = build(module, rng)
        randomize_model(model, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy .h5 format's warning
            if module is keras:
                model.save(folder / f"{name}.keras")
                model.save_weights(folder / f"{name}.weights.h5")
            else:
                model.save_weights(folder / f"{name}.weights_legacy.h5")
            model.save(folder / f"{name}.h5")
        expected = np.asarray(model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0))
        for i, x in enumerate(inputs):
            np.save(folder / f"{name}.x{i}.npy", x)
        np.save(folder / f"{name}.y.npy", expected)
        manifest[name] = {"inputs": len(inputs), "params": param_counts(model), "forms": FORMS[name]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, manifest


#: Runs in the subprocess, TensorFlow and Keras blocked: every (model, form) loaded, predicted, compared.
LOADER = """
import io, json, re, sys, traceback
import numpy as np
import scratch_rnn
from scratch_rnn.testing.compare import assert_close

def by_hand():
    # the classifier built by hand: the weights file is keyed by class and order, not by name
    tokens = scratch_rnn.Input((None,), dtype="int32")
    h = scratch_rnn.Bidirectional(scratch_rnn.LSTM(5))(scratch_rnn.Embedding(20, 6, mask_zero=True)(tokens))
    return scratch_rnn.Model(tokens, scratch_rnn.Dense(3, activation="softmax")(h))

def load(name, form):
    if form in ("keras", "h5"):
        return scratch_rnn.load_model(f"{name}.{form}")
    if form == "weights_by_hand":
        model = by_hand()
    else:
        model = scratch_rnn.load_model(f"{name}.h5" if form == "legacy_weights" else f"{name}.keras")
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])  # so the file's weights must land
    model.load_weights(f"{name}.weights_legacy.h5" if form == "legacy_weights" else f"{name}.weights.h5")
    return model

def totals(model):
    text = io.StringIO()
    model.summary(print_fn=text.write)
    found = dict(re.findall(r"(Total|Trainable|Non-trainable) params: ([0-9,]+)", text.getvalue()))
    return {"total": int(found["Total"].replace(",", "")), "trainable": int(found["Trainable"].replace(",", "")),
            "non_trainable": int(found["Non-trainable"].replace(",", ""))}

manifest = json.load(open("manifest.json"))
results = {}
for name, entry in manifest.items():
    xs = [np.load(f"{name}.x{i}.npy") for i in range(entry["inputs"])]
    expected = np.load(f"{name}.y.npy")
    for form in entry["forms"]:
        try:
            model = load(name, form)
            actual = model.predict(xs if len(xs) > 1 else xs[0])
            tol = 1e-5 + 1e-5 * np.abs(np.nan_to_num(expected.astype(np.float64)))
            assert_close(actual, expected, tol, name="prediction", context=f"{name} {form}", equal_nan=True)
            error = float(np.nanmax(np.abs(actual.astype(np.float64) - expected)))
            results[f"{name}/{form}"] = {"ok": True, "params": totals(model), "max_error": error}
        except Exception as err:
            results[f"{name}/{form}"] = {"ok": False, "error": "".join(traceback.format_exception_only(err))}
assert "tensorflow" not in sys.modules and "keras" not in sys.modules and "tf_keras" not in sys.modules
json.dump(results, open("results.json", "w"))
"""


@pytest.fixture(scope="module")
def loaded(zoo):
    """The subprocess's result per ``name/form``: ok, the summary's totals, the largest error; or the error."""
    folder, _ = zoo
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BLOCK), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOADER)], cwd=folder, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "results.json").read_text())


@pytest.mark.parametrize("name, form", ENTRIES, ids=[f"{n}-{f}" for n, f in ENTRIES])
def test_zoo_model_loads_without_keras_and_predicts_what_keras_predicts(zoo, loaded, name, form):
    _, manifest = zoo
    if name not in manifest:
        pytest.skip("tf_keras is not installed (pip install 'scratch-rnn[keras2]')")
    result = loaded[f"{name}/{form}"]
    assert result["ok"], result.get("error")
    assert result["params"] == manifest[name]["params"], "summary() totals differ from Keras's"


VERIFY = [(name, "float32") for name in KERAS3] + [(name, "float64") for name in FLOAT64]


@pytest.mark.parametrize("name, dtype", VERIFY, ids=[f"{n}-{d}" for n, d in VERIFY])
def test_verify_model_passes_on_the_zoo(zoo, name, dtype):
    from scratch_rnn.testing.model_verify import verify_model

    folder, _ = zoo
    report = verify_model(folder / f"{name}.keras", max_examples=10, seed=1, dtype=dtype)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples > 0 and report.max_margin <= 1


@pytest.mark.parametrize("name", sorted(KERAS2))
def test_verify_model_passes_on_the_keras2_files(zoo, name):
    from scratch_rnn.testing.model_verify import verify_model

    folder, manifest = zoo
    if name not in manifest:
        pytest.skip("tf_keras is not installed (pip install 'scratch-rnn[keras2]')")
    report = verify_model(str(folder / f"{name}.h5"), max_examples=10, seed=1, reference="tf_keras")
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples > 0 and report.max_margin <= 1
