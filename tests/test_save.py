"""Writing Keras 3 files without TensorFlow: ``model.save`` / ``scratch_rnn.saving.save_model`` (``.keras``) and
``model.save_weights`` (``.weights.h5``), read back by real Keras 3 (``keras.saving.load_model``, safe mode)
and by ``scratch_rnn.load_model`` (issue #13, item 2).

* Scratch-built models holding every layer class the engine writes, random non-symmetric weights, square and
  rectangular shapes, float32 and float64: Keras's predictions and the engine's are both compared with the
  float64 engine under the tolerance derived for the case (``derive_model``), and the dtypes must match.
* The model zoo of ``tests/test_model_zoo.py`` (built and saved by Keras) goes Keras -> ``.keras`` ->
  ``scratch_rnn.load_model`` -> ``model.save`` -> Keras: same weights and the same Keras code, so Keras's
  predictions must be *identical* to the original model's, and the configs equal (but for the ``training``
  argument Keras records in some call nodes, which the engine, inference only, does not keep).
* Our own reader gets identical weights back (exactly) and the same configs.
* Planted differences (a weight changed in the written file, ``go_backwards`` flipped in its config) make the
  comparisons fail; what cannot be written is refused by name.
"""

from __future__ import annotations

import json
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import DTYPES

import scratch_rnn as sr
from scratch_rnn import saving
from scratch_rnn.keras_config import layer_config
from scratch_rnn.testing.compare import assert_close
from scratch_rnn.testing.model_verify import ModelCase, derive_model

h5py = pytest.importorskip("h5py")
sys.path.insert(0, str(Path(__file__).parent))
import test_model_zoo as zoo  # noqa: E402  (its builders: the models Keras saves)

MARGINS: list[float] = []


def randomized(model, seed: int):
    """Random non-symmetric weights (uniform in [-0.8, 0.8]); BatchNormalization's variances positive."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in model.get_weights()])
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, mean, np.abs(variance) + 0.5])
    return model


def uniform(seed, *shape, dtype="float32"):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)


def ids(seed, batch, steps, vocab):
    x = np.random.default_rng(seed).integers(1, vocab, (batch, steps)).astype("int32")
    x[0, -2:] = 0  # trailing padding
    x[1, :2] = 0  # leading padding
    return x


# --- scratch-built models: every layer the engine writes -------------------------------------------------


def recurrent_stack(dtype):
    """SimpleRNN (go_backwards) -> LSTM -> GRU(reset_after=False) -> Dense(softmax); 3 features, units 4, 5, 3."""
    model = sr.Sequential(
        [
            sr.Input((6, 3), dtype=dtype),
            sr.SimpleRNN(4, activation="relu", return_sequences=True, go_backwards=True, dtype=dtype),
            sr.LSTM(5, return_sequences=True, dtype=dtype),
            sr.GRU(3, reset_after=False, recurrent_activation="hard_sigmoid", dtype=dtype),
            sr.Dense(2, activation="softmax", dtype=dtype),
        ]
    )
    return model, [uniform(1, 4, 6, 3, dtype=dtype)]


def masked_bidirectional(dtype):
    """Masking -> Bidirectional(GRU, sum) -> TimeDistributed(Dense) -> Dropout -> Activation -> masked pooling."""
    x = uniform(2, 4, 7, 3, dtype=dtype)
    x[0, -2:] = 0.0  # masked steps
    model = sr.Sequential(
        [
            sr.Input((None, 3), dtype=dtype),
            sr.Masking(0.0, dtype=dtype),
            sr.Bidirectional(sr.GRU(4, return_sequences=True, dtype=dtype), merge_mode="sum", dtype=dtype),
            sr.TimeDistributed(sr.Dense(2, dtype=dtype), dtype=dtype),
            sr.Dropout(0.3, dtype=dtype),
            sr.Activation("tanh", dtype=dtype),
            sr.GlobalAveragePooling1D(dtype=dtype),
        ]
    )
    return model, [x]


def convolutional(dtype):
    """Conv1D -> AveragePooling1D -> norms -> noise (identity) -> Flatten -> RepeatVector -> Reshape -> Permute."""
    model = sr.Sequential(
        [
            sr.Input((12, 3), dtype=dtype),
            sr.Conv1D(4, 3, padding="causal", activation="relu", dtype=dtype),
            sr.AveragePooling1D(2, dtype=dtype),
            sr.LayerNormalization(dtype=dtype),
            sr.BatchNormalization(dtype=dtype),
            sr.SpatialDropout1D(0.2, dtype=dtype),
            sr.GaussianNoise(0.1, dtype=dtype),
            sr.GaussianDropout(0.1, dtype=dtype),
            sr.MaxPooling1D(2, dtype=dtype),
            sr.Flatten(dtype=dtype),
            sr.RepeatVector(2, dtype=dtype),
            sr.Reshape((4, 6), dtype=dtype),
            sr.Permute((2, 1), dtype=dtype),
            sr.GlobalMaxPooling1D(dtype=dtype),
        ]
    )
    return model, [uniform(3, 4, 12, 3, dtype=dtype)]


def merges(dtype):
    """Two inputs through RNN(StackedRNNCells) and RNN(LSTMCell), every merge layer, Dot, both attentions."""
    a, b = sr.Input((5, 3), dtype=dtype, name="a"), sr.Input((5, 2), dtype=dtype, name="b")
    cells = sr.StackedRNNCells(
        [sr.SimpleRNNCell(4, dtype=dtype), sr.LSTMCell(3, dtype=dtype), sr.GRUCell(4, dtype=dtype)], dtype=dtype
    )
    ha = sr.RNN(cells, return_sequences=True, dtype=dtype)(a)
    hb = sr.RNN(sr.LSTMCell(4, dtype=dtype), return_sequences=True, go_backwards=True, dtype=dtype)(b)
    merged = [
        cls(dtype=dtype)([ha, hb]) for cls in (sr.Add, sr.Subtract, sr.Multiply, sr.Average, sr.Maximum, sr.Minimum)
    ]
    h = sr.Concatenate(dtype=dtype)(merged)
    att = sr.Attention(use_scale=True, score_mode="concat", dtype=dtype)([ha, hb])
    add_att = sr.AdditiveAttention(dtype=dtype)([hb, ha])
    dot = sr.Dot(axes=(2, 2), normalize=True, dtype=dtype)([att, add_att])
    out = sr.Dense(3, dtype=dtype)(sr.GlobalAveragePooling1D(dtype=dtype)(sr.Concatenate(dtype=dtype)([h, dot])))
    return sr.Model([a, b], out, name="merges"), [uniform(4, 4, 5, 3, dtype=dtype), uniform(5, 4, 5, 2, dtype=dtype)]


def seq2seq(dtype):
    """Masked embeddings, return_state, initial_state, two outputs."""
    enc, dec = sr.Input((None,), dtype="int32", name="enc"), sr.Input((None,), dtype="int32", name="dec")
    _, h, c = sr.LSTM(6, return_state=True, dtype=dtype)(sr.Embedding(15, 5, mask_zero=True, dtype=dtype)(enc))
    y = sr.LSTM(6, return_sequences=True, dtype=dtype)(
        sr.Embedding(12, 4, mask_zero=True, dtype=dtype)(dec), initial_state=[h, c]
    )
    out = sr.TimeDistributed(sr.Dense(12, activation="softmax", dtype=dtype), dtype=dtype)(y)
    return sr.Model([enc, dec], [out, h], name="s2s"), [ids(6, 4, 7, 15), ids(7, 4, 5, 12)]


def shared_layers(dtype):
    """One LSTM and one Dense called on two inputs each (two nodes per layer, Keras's node indices)."""
    a, b = sr.Input((5, 3), dtype=dtype, name="left"), sr.Input((6, 3), dtype=dtype, name="right")
    lstm, dense = sr.LSTM(4, dtype=dtype), sr.Dense(2, activation="tanh", dtype=dtype)
    out = sr.Concatenate(dtype=dtype)([dense(lstm(a)), dense(lstm(b))])
    return sr.Model([a, b], out, name="shared"), [uniform(9, 3, 5, 3, dtype=dtype), uniform(10, 3, 6, 3, dtype=dtype)]


def from_torch_model(dtype):
    """A from_torch conversion: Embedding -> bidirectional 2-layer GRU -> LSTM -> Linear."""
    from helpers import require

    torch = require("torch")
    from scratch_rnn.ports.from_torch import from_torch

    nn = torch.nn
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Embedding(20, 4),
        nn.GRU(4, 5, 2, bidirectional=True, batch_first=True),
        nn.LSTM(10, 3, batch_first=True),
        nn.Linear(3, 2),
    )
    return from_torch(module.eval(), return_sequences=False, dtype=dtype), [ids(8, 3, 7, 20)]


BUILDERS = {
    f.__name__: f
    for f in (recurrent_stack, masked_bidirectional, convolutional, merges, seq2seq, shared_layers, from_torch_model)
}
CASES = [(name, dtype) for name in BUILDERS for dtype in DTYPES]


def test_the_models_hold_every_layer_class_the_engine_reads_and_writes():
    """Test the test: every class of keras_convert.KERAS_CLASSES is in a model above."""
    from scratch_rnn.keras_convert import KERAS_CLASSES

    def classes(layer):
        keys = ("forward_layer", "backward_layer", "cell") + (
            ("layer",) if isinstance(layer, sr.TimeDistributed) else ()
        )
        inner = [getattr(layer, key, None) for key in keys]  # (a cell's own .layer holds its weights: not a class used)
        inner += list(getattr(layer, "cells", []))
        return {type(layer).__name__}.union(*(classes(each) for each in inner if isinstance(each, sr.layer.Layer)))

    found = set()
    for name, build in BUILDERS.items():
        if name != "from_torch_model":
            found |= set().union(*(classes(layer) for layer in build("float32")[0].layers))
    assert set(KERAS_CLASSES) <= found, sorted(set(KERAS_CLASSES) - found)


def feed(inputs):
    return inputs if len(inputs) > 1 else inputs[0]


def as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def keras_load(keras, path):
    """``keras.saving.load_model`` in its default safe mode; a warning while loading fails the test (an
    unbuilt layer, a variable not loaded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return keras.saving.load_model(path)


def assert_predicts_like(actual_outputs, path, inputs, dtype, context):
    """Each output within the derived tolerance of the float64 engine (the file loaded in float64)."""
    __tracebackhide__ = True
    oracle = saving.load_model(path, dtype="float64")
    oracles, tols = derive_model(oracle, oracle.get_weights(), ModelCase(inputs=inputs, specs=[]), dtype)
    assert len(actual_outputs) == len(oracles), f"{len(actual_outputs)} outputs, expected {len(oracles)} [{context}]"
    for i, (actual, expected, tol) in enumerate(zip(actual_outputs, oracles, tols)):
        assert_close(actual, expected.astype(dtype), tol, name=f"output[{i}]", context=context)
        margin = np.abs(actual.astype(np.float64) - expected) / np.maximum(tol, np.finfo(float).tiny)
        MARGINS.append(float(np.max(margin)))


@pytest.mark.parametrize("name, dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_keras_loads_what_the_engine_writes_and_predicts_the_same(keras, tmp_path, name, dtype):
    model, inputs = BUILDERS[name](dtype)
    randomized(model, seed=len(name))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert json.loads(archive.read("metadata.json"))["keras_version"].startswith("3.")
    keras_model = keras_load(keras, path)
    expected = as_list(model.predict(feed(inputs)))
    actual = as_list(keras_model(feed(inputs)))  # called: predict() would cast float64 inputs to float32
    assert_predicts_like(actual, path, inputs, dtype, f"{name} {dtype}: Keras")
    assert_predicts_like(expected, path, inputs, dtype, f"{name} {dtype}: engine")
    assert keras_model.count_params() == model.count_params()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_our_reader_gets_the_same_model_back(tmp_path, name):
    model, inputs = BUILDERS[name]("float32")
    randomized(model, seed=3)
    path = tmp_path / f"{name}.keras"
    saving.save_model(model, path)
    loaded = sr.load_model(path)
    weights, again = model.get_weights(), loaded.get_weights()
    assert len(weights) == len(again)
    for i, (w, v) in enumerate(zip(weights, again)):
        assert_close(v, w, 0.0, name=f"weight[{i}]", context=name)
    for ours, theirs in zip(model.layers, loaded.layers):
        if isinstance(ours, sr.models.InputLayer):
            assert (ours.batch_shape, ours.dtype, ours.name) == (theirs.batch_shape, theirs.dtype, theirs.name)
            continue
        assert layer_config(theirs) == layer_config(ours), ours.name
    for i, (a, b) in enumerate(zip(as_list(model.predict(feed(inputs))), as_list(loaded.predict(feed(inputs))))):
        assert_close(b, a, 0.0, name=f"output[{i}]", context=name)
    saving.save_model(loaded, tmp_path / "again.keras")  # and the reloaded model writes the same config
    with zipfile.ZipFile(path) as first, zipfile.ZipFile(tmp_path / "again.keras") as second:
        assert json.loads(first.read("config.json")) == json.loads(second.read("config.json"))


def test_save_weights_is_read_by_keras_and_by_the_engine(keras, tmp_path):
    model, inputs = recurrent_stack("float32")
    randomized(model, seed=5)
    model.save(tmp_path / "m.keras")
    keras_model = keras_load(keras, tmp_path / "m.keras")
    randomized(model, seed=6)  # new weights, written as a weights file only
    model.save_weights(tmp_path / "m.weights.h5")
    keras_model.load_weights(tmp_path / "m.weights.h5")
    for i, (w, v) in enumerate(zip(model.get_weights(), keras_model.get_weights())):
        assert_close(np.asarray(v), w, 0.0, name=f"weight[{i}]")
    scratch = sr.load_model(tmp_path / "m.keras")
    scratch.load_weights(tmp_path / "m.weights.h5")
    assert_close(scratch.predict(inputs[0]), model.predict(inputs[0]), 0.0)


def keras_normalised(config):
    """A written config with the two things Keras changes when it writes our file again: ``"mask": None`` added
    to call nodes without a mask, and an int ``axis`` (LayerNormalization's) as a list."""
    if isinstance(config, dict):
        out = {k: keras_normalised(v) for k, v in config.items() if not (k == "mask" and v is None)}
        if isinstance(out.get("axis"), int) and "epsilon" in out:
            out["axis"] = [out["axis"]]
        return out
    if isinstance(config, list):
        return [keras_normalised(v) for v in config]
    return config


def fixed_point_configs(keras, tmp_path, model, first_save=None):
    """The config.json of ``model`` saved (by ``first_save(model, path)`` if given), and of that file loaded
    by Keras, saved by Keras, loaded by the engine and saved again; both normalised (:func:`keras_normalised`)."""
    (first_save or saving.save_model)(model, tmp_path / "ours.keras")
    keras_load(keras, tmp_path / "ours.keras").save(tmp_path / "keras.keras")
    sr.load_model(tmp_path / "keras.keras").save(tmp_path / "again.keras")
    configs = []
    for path in ("ours.keras", "again.keras"):
        with zipfile.ZipFile(tmp_path / path) as archive:
            configs.append(keras_normalised(json.loads(archive.read("config.json"))))
    return configs


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_what_keras_writes_back_is_what_the_engine_wrote(keras, tmp_path, name):
    """A fixed point: our file -> Keras -> Keras's file -> scratch_rnn.load_model -> our file again, the same
    config.json: every value we write, Keras stores as we wrote it, and Keras adds nothing we lose."""
    first, again = fixed_point_configs(keras, tmp_path, BUILDERS[name]("float32")[0])
    assert again == first


def test_planted_value_keras_reads_differently_breaks_the_fixed_point(keras, tmp_path, monkeypatch):
    """A writer giving Conv1D's sizes as ints, not Keras's one-element lists: Keras reads them, but what it
    writes back (and so what we write again) differs from the first file."""
    from scratch_rnn import keras_config

    real = keras_config.layer_config

    def scalar_sizes(layer, input_shape=None):
        entry = real(layer, input_shape)
        for key in ("kernel_size", "strides", "dilation_rate"):
            if isinstance(entry["config"].get(key), list) and len(entry["config"][key]) == 1:
                entry["config"][key] = entry["config"][key][0]
        return entry

    def first_save(model, path):
        with monkeypatch.context() as patch:
            patch.setattr(keras_config, "layer_config", scalar_sizes)
            saving.save_model(model, path)

    first, again = fixed_point_configs(keras, tmp_path, BUILDERS["convolutional"]("float32")[0], first_save)
    with pytest.raises(AssertionError):
        assert again == first


# --- the model zoo, round-tripped through the engine ------------------------------------------------------


def config_without_training(config):
    """A model config with the ``training`` call argument Keras records in some nodes removed."""
    if isinstance(config, dict):
        return {k: config_without_training(v) for k, v in config.items() if k != "training"}
    if isinstance(config, list):
        return [config_without_training(v) for v in config]
    return config


@pytest.mark.parametrize("name", sorted(zoo.KERAS3))
def test_the_zoo_round_trips_through_the_engine_to_identical_keras_predictions(keras, tmp_path, name):
    model, inputs = zoo.KERAS3[name](keras, np.random.default_rng(20261126))
    zoo.randomize_model(model, np.random.default_rng(1))
    model.save(tmp_path / "keras.keras")
    sr.load_model(tmp_path / "keras.keras").save(tmp_path / "engine.keras")
    again = keras_load(keras, tmp_path / "engine.keras")
    for i, (w, v) in enumerate(zip(model.get_weights(), again.get_weights())):
        assert_close(np.asarray(v), np.asarray(w), 0.0, name=f"weight[{i}]", context=name)
    expected = as_list(model.predict(feed(inputs), verbose=0))
    for i, (e, a) in enumerate(zip(expected, as_list(again.predict(feed(inputs), verbose=0)))):
        assert_close(a, e, 0.0, name=f"output[{i}]", context=f"{name}: same weights, same Keras", equal_nan=True)
    configs = [json.loads(json.dumps(m.get_config(), default=str)) for m in (model, again)]
    assert config_without_training(configs[1]) == config_without_training(configs[0])


# --- planted differences: the round-trip comparison fails ------------------------------------------------


def rewrite_archive(path, member, change):
    """Rewrite ``member`` of the archive at ``path`` with ``change(bytes) -> bytes``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = change(members[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_planted_weight_change_in_the_file_is_caught(keras, tmp_path):
    import io

    model, inputs = recurrent_stack("float32")
    randomized(model, seed=7)
    path = tmp_path / "m.keras"
    model.save(path)

    def nudge(data):
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "a") as f:
            f["layers/dense/vars/0"][0, 0] += 1e-3  # one kernel weight of the Dense head
        return buffer.getvalue()

    rewrite_archive(path, "model.weights.h5", nudge)
    keras_model = keras_load(keras, path)
    with pytest.raises(AssertionError, match="output"):
        assert_predicts_like([model.predict(inputs[0])], path, inputs, "float32", "planted")
    expected = model.predict(inputs[0])
    with pytest.raises(AssertionError):
        assert_close(keras_model.predict(inputs[0], verbose=0), expected, 0.0)


def test_planted_config_change_is_caught(keras, tmp_path):
    model, inputs = recurrent_stack("float32")
    randomized(model, seed=8)
    path = tmp_path / "m.keras"
    model.save(path)

    def flip(data):
        config = json.loads(data)
        config["config"]["layers"][1]["config"]["go_backwards"] = False  # the SimpleRNN's direction
        return json.dumps(config).encode()

    rewrite_archive(path, "config.json", flip)
    actual = np.asarray(keras_load(keras, path).predict(inputs[0], verbose=0))
    assert_predicts_like([actual], path, inputs, "float32", "the flipped file, read by both")  # they agree ...
    # ... and against the model as it was, the flipped direction is far outside the tolerance
    original = tmp_path / "original.keras"
    model.save(original)
    with pytest.raises(AssertionError, match="output"):
        assert_predicts_like([actual], original, inputs, "float32", "planted go_backwards")


def test_verify_model_passes_on_a_file_the_engine_wrote(keras, tmp_path):
    """The harness's whole-model check (generated inputs, padding included) on a from_torch model's file."""
    from scratch_rnn.testing.model_verify import verify_model

    model, _ = from_torch_model("float32")
    model.save(tmp_path / "m.keras")
    report = verify_model(tmp_path / "m.keras", max_examples=8, seed=2)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples > 0 and report.max_margin <= 1


# --- the command line: scratch-rnn convert ----------------------------------------------------------------


def test_cli_converts_a_keras2_h5_file_to_a_keras3_file(tf_keras, keras, tmp_path, capsys):
    from scratch_rnn.cli import main

    model, inputs = zoo.keras2_lstm_gru(tf_keras, np.random.default_rng(9))
    zoo.randomize_model(model, np.random.default_rng(10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy format's warning
        model.save(tmp_path / "keras2.h5")
    assert main(["convert", str(tmp_path / "keras2.h5"), "--out", str(tmp_path / "keras3.keras")]) == 0
    assert "written to" in capsys.readouterr().out
    actual = np.asarray(keras_load(keras, tmp_path / "keras3.keras")(inputs[0]))
    expected = np.asarray(model(inputs[0]))
    assert_predicts_like([actual], tmp_path / "keras3.keras", inputs, "float32", "Keras 3, converted")
    assert_predicts_like([expected], tmp_path / "keras3.keras", inputs, "float32", "Keras 2, the original")


def test_cli_convert_refuses_what_it_cannot_write(tmp_path, capsys):
    from scratch_rnn.cli import main

    model, _ = recurrent_stack("float32")
    model.save(tmp_path / "m.keras")
    assert main(["convert", str(tmp_path / "m.keras"), "--out", str(tmp_path / "m.h5")]) == 2
    assert "expected a path ending in '.keras'" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "out.keras")]) == 2
    assert "missing.keras" in capsys.readouterr().err


# --- refusals ----------------------------------------------------------------------------------------------


def test_what_cannot_be_written_is_refused_by_name(tmp_path):
    model, _ = recurrent_stack("float32")
    with pytest.raises(ValueError, match=r"`filepath`.*'\.keras'.*legacy \.h5.*m\.h5"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"`filepath`.*'\.weights\.h5'.*m\.h5"):
        model.save_weights(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"not built"):
        sr.Sequential([sr.LSTM(3)]).save(tmp_path / "unbuilt.keras")
    with pytest.raises(ValueError, match=r"`model`.*Sequential or Model"):
        saving.save_model(sr.LSTM(3), tmp_path / "layer.keras")

    twins = sr.Sequential([sr.Input((4, 3)), sr.LSTM(3, return_sequences=True, name="rnn"), sr.GRU(2, name="rnn")])
    with pytest.raises(ValueError, match=r"sharing the names \['rnn'\].*unique"):
        twins.save(tmp_path / "twins.keras")

    class MyDense(sr.Dense):
        pass

    custom = sr.Sequential([sr.Input((3,)), MyDense(2, name="mine")])
    with pytest.raises(ValueError, match=r"Layer 'mine' is of class 'MyDense'.*no Keras 3 config"):
        custom.save(tmp_path / "custom.keras")


def test_margins_report():
    """Runs after the cases above: the worst margin of Keras's and the engine's outputs, <= 1."""
    if not MARGINS:
        pytest.skip("run with the module's other tests")
    print(f"\nsave: {len(MARGINS)} comparisons, max margin {max(MARGINS):.3g}, median {float(np.median(MARGINS)):.3g}")
    assert max(MARGINS) <= 1
