"""Saved Keras files load without TensorFlow (scratch_rnn.load_model, model.load_weights), and bad files are refused.

Models are built and saved by real Keras 3 (and Keras 2, ``tf_keras``) during the run; each is then loaded
in a subprocess where TensorFlow and Keras are blocked (``tests/block_keras``), and its predictions are
compared with Keras's. The refusals edit real files with zipfile and h5py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import randomize

import scratch_rnn
from scratch_rnn import saving
from scratch_rnn.testing import assert_close

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parent.parent
BLOCK = Path(__file__).resolve().parent / "block_keras"
F32 = 2e-6  # float32 predictions of small models; the engine is exact to ~1e-7 here


# --- helpers ------------------------------------------------------------------------------------------------


def run_blocked(script: str, tmp_path: Path) -> None:
    """Run ``script`` in a fresh interpreter with TensorFlow, Keras and tf_keras blocked."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BLOCK), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def load_blocked(tmp_path: Path, files: list[str], x: np.ndarray) -> list[np.ndarray]:
    """``scratch_rnn.load_model(file)(x)`` for each file, computed with Keras blocked."""
    np.save(tmp_path / "x.npy", x)
    run_blocked(
        f"""
        import sys, numpy as np, scratch_rnn
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        x = np.load("x.npy")
        for i, name in enumerate({files!r}):
            np.save(f"out{{i}}.npy", scratch_rnn.load_model(name)(x))
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        """,
        tmp_path,
    )
    return [np.load(tmp_path / f"out{i}.npy") for i in range(len(files))]


def predict(model, x) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0))


def text_ids(rng, batch=6, timesteps=9, vocab=50) -> np.ndarray:
    x = rng.integers(1, vocab, (batch, timesteps))
    x[0, 5:] = 0  # padding, masked by mask_zero
    x[2, 1:] = 0
    x[4, :3] = 0  # leading padding
    return x


def text_classifier(keras, names=True):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((9,), dtype="int32"),
            L.Embedding(50, 8, mask_zero=True, name="tokens" if names else None),
            L.Bidirectional(L.LSTM(5), name="reader" if names else None),
            L.Dense(4, activation="softmax", name="LSTM" if names else None),  # a name that is another class's
        ]
    )


# --- Keras 3 files ------------------------------------------------------------------------------------------


def test_text_classifier_keras_h5_and_weights_files(keras, rng, tmp_path):
    """Embedding(mask_zero) -> Bidirectional(LSTM) -> Dense, as .keras, legacy .h5 and .weights.h5; the
    weights file loads into a scratch model with other layer names (Keras keys it by class)."""
    model = text_classifier(keras)
    randomize(model, rng)
    model.save(tmp_path / "m.keras")
    keras.saving.save_model(model, tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    x = text_ids(rng)
    expected = predict(model, x)
    for out in load_blocked(tmp_path, ["m.keras", "m.h5"], x):
        assert_close(out, expected, F32, name="prediction")
    np.save(tmp_path / "x.npy", x)
    run_blocked(
        """
        import numpy as np, scratch_rnn as s
        m = s.Sequential([s.Input(shape=(9,)), s.Embedding(50, 8, mask_zero=True, name="dense"),
                          s.Bidirectional(s.LSTM(5), name="other"), s.Dense(4, activation="softmax")])
        m.load_weights("m.weights.h5")
        np.save("w.npy", m(np.load("x.npy")))
        """,
        tmp_path,
    )
    assert_close(np.load(tmp_path / "w.npy"), expected, F32, name="prediction (load_weights)")


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_models(keras, rng, tmp_path, reset_after):
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((7, 5)),
            L.Masking(),
            L.GRU(6, return_sequences=True, reset_after=reset_after),
            L.GRU(3, reset_after=reset_after, go_backwards=True),
            L.Dense(2),
        ]
    )
    randomize(model, rng)
    model.save(tmp_path / "g.keras")
    keras.saving.save_model(model, tmp_path / "g.h5")
    x = rng.standard_normal((4, 7, 5)).astype("float32")
    x[1, 4:] = 0.0  # masked steps
    expected = predict(model, x)
    for out in load_blocked(tmp_path, ["g.keras", "g.h5"], x):
        assert_close(out, expected, F32, name="prediction")


def test_stacked_lstms_and_friends_float64(keras, rng, tmp_path):
    """Stacked LSTMs, SimpleRNN, TimeDistributed, Dropout, Activation; two layers of one class named
    against the grain; float64 weights."""
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((6, 4), dtype="float64"),
            L.LSTM(5, return_sequences=True, dtype="float64", name="lstm_1"),
            L.LSTM(4, return_sequences=True, dtype="float64", name="lstm"),
            L.SimpleRNN(3, return_sequences=True, dtype="float64"),
            L.TimeDistributed(L.Dense(2, dtype="float64"), dtype="float64"),
            L.Dropout(0.5, dtype="float64"),
            L.Activation("tanh", dtype="float64"),
        ]
    )
    randomize(model, rng)
    model.save(tmp_path / "s.keras")
    x = rng.standard_normal((3, 6, 4))
    expected = predict(model, x)
    (out,) = load_blocked(tmp_path, ["s.keras"], x)
    assert_close(out, scratch_rnn.from_keras(model)(x), 0.0, name="prediction (the file vs the live model)")
    assert_close(out, expected, F32, name="prediction")  # Keras's float64 predict differs by up to ~5e-8


def test_rnn_of_stacked_cells_keras_file(keras, rng, tmp_path):
    """Regression: an RNN(StackedRNNCells) keeps its weights per cell, ``layers/rnn/cell/cells/lstm_cell/vars``
    and ``.../lstm_cell_1/vars`` for a second cell of one class; the loader looked in ``layers/rnn/cell/vars``."""
    L = keras.layers
    cells = [L.LSTMCell(4), L.GRUCell(3), L.LSTMCell(2)]
    model = keras.Sequential([keras.Input((5, 3)), L.RNN(L.StackedRNNCells(cells), return_sequences=True)])
    randomize(model, rng)
    model.save(tmp_path / "s.keras")
    model.save_weights(tmp_path / "s.weights.h5")
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    (out,) = load_blocked(tmp_path, ["s.keras"], x)
    assert_close(out, predict(model, x), F32, name="prediction")
    ours = scratch_rnn.load_model(tmp_path / "s.keras")
    ours.set_weights([w * 0 for w in ours.get_weights()])
    ours.load_weights(tmp_path / "s.weights.h5")
    assert_close(ours(x), predict(model, x), F32, name="prediction after load_weights")


# --- Keras 2 (tf_keras) files -------------------------------------------------------------------------------


def test_the_seed_notebooks_model_saved_by_keras2(tf_keras, rng, tmp_path):
    model = tf_keras.Sequential([tf_keras.layers.SimpleRNN(3, batch_input_shape=(8, 2, 10))])  # as written
    randomize(model, rng)
    model.save(tmp_path / "seed.h5")
    x = rng.uniform(-1, 1, (8, 2, 10)).astype("float32")
    (out,) = load_blocked(tmp_path, ["seed.h5"], x)
    assert_close(out, predict(model, x), F32, name="prediction")


def test_keras2_text_classifier_gru_and_stacked_lstms(tf_keras, rng, tmp_path):
    K = tf_keras.layers
    model = tf_keras.Sequential(
        [
            K.Embedding(50, 8, mask_zero=True, input_length=9),
            K.Bidirectional(K.LSTM(5, return_sequences=True)),
            K.LSTM(4, return_sequences=True),
            K.GRU(4, reset_after=False, return_sequences=True),
            K.GRU(3),  # Keras 2's default, reset_after=True
            K.Dense(3, activation="softmax"),
        ]
    )
    model.build((None, 9))
    randomize(model, rng)
    model.save(tmp_path / "k2.h5")
    model.save_weights(tmp_path / "k2.weights.h5")
    x = text_ids(rng)
    expected = predict(model, x)
    (out,) = load_blocked(tmp_path, ["k2.h5"], x)
    assert_close(out, expected, F32, name="prediction")
    ours = saving.load_model(tmp_path / "k2.h5")
    ours.set_weights([w * 0 for w in ours.get_weights()])
    ours.load_weights(tmp_path / "k2.weights.h5")  # a legacy weights file
    assert_close(ours(x), expected, F32, name="prediction (load_weights)")


def test_a_keras2_gru_without_reset_after_is_keras2s_old_gru(tf_keras, rng, tmp_path):
    """Keras 2 before 2.1 wrote no `reset_after`: its GRU was reset_after=False (Keras 3's default is True)."""
    model = tf_keras.Sequential([tf_keras.layers.GRU(3, reset_after=False, input_shape=(4, 2))])
    randomize(model, rng)
    model.save(tmp_path / "old.h5")
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        config = json.loads(f.attrs["model_config"])
        del config["config"]["layers"][1]["config"]["reset_after"]
        f.attrs["model_config"] = json.dumps(config).encode()  # bytes, as old h5py wrote
    ours = saving.load_model(tmp_path / "old.h5")
    assert ours.layers[0].reset_after is False
    x = rng.standard_normal((2, 4, 2)).astype("float32")
    assert_close(ours(x), predict(model, x), F32, name="prediction")


# --- refusals: hand-made bad files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(keras, tmp_path_factory):
    """A small text classifier saved by Keras 3 as .keras, .h5 and .weights.h5, with its weights."""
    folder = tmp_path_factory.mktemp("real")
    model = text_classifier(keras, names=False)
    randomize(model, np.random.default_rng(5))
    model.save(folder / "m.keras")
    keras.saving.save_model(model, folder / "m.h5")
    model.save_weights(folder / "m.weights.h5")
    return folder


def copy(real, tmp_path, name):
    shutil.copy(real / name, tmp_path / name)
    return tmp_path / name


def rewrite_archive(src: Path, dst: Path, config=None, members=None, compression=zipfile.ZIP_STORED):
    """A copy of archive ``src`` with ``config`` (a function of the config dict) and members replaced."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", compression) as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename == "config.json" and config is not None:
                data = json.dumps(config(json.loads(data))).encode()
            if members and info.filename in members:
                continue
            new.writestr(info.filename, data)
        for name, data in (members or {}).items():
            new.writestr(name, data)
    return dst


def edit_layer(index, **changes):
    def edit(config):
        entry = config["config"]["layers"][index]
        for key, value in changes.items():
            if key == "config":
                entry["config"].update(value)
            else:
                entry[key] = value
        return config

    return edit


@pytest.mark.parametrize(
    "edit, words",
    [
        (edit_layer(3, class_name="Lambda", config={"function": "gASVAAAA"}), ["'Lambda'", "run code"]),
        (edit_layer(3, module="my_pkg.layers"), ["'my_pkg.layers'", "'Dense'"]),
        (edit_layer(3, registered_name="MyPkg>Dense"), ["'MyPkg>Dense'", "custom"]),
        (edit_layer(3, class_name="Conv3DTranspose"), ["'Conv3DTranspose'", "does not implement"]),
        (edit_layer(3, config={"activation": {"module": "builtins", "class_name": "function", "config": "evil"}}),
         ["'function'", "run code"]),
        (edit_layer(3, config={"kernel_size": 3}), ["kernel_size", "not supported"]),
        (lambda c: {**c, "class_name": "MyModel", "module": None}, ["'MyModel'", "subclassed"]),
    ],
)  # fmt: skip
def test_a_layer_that_would_run_code_or_that_the_engine_lacks_is_refused(real, tmp_path, edit, words):
    bad = rewrite_archive(real / "m.keras", tmp_path / "bad.keras", config=edit)
    with pytest.raises(ValueError) as caught:
        saving.load_model(bad)
    for word in [*words, "bad.keras"]:
        assert word in str(caught.value)


def test_a_keras2_lambda_layer_is_refused_unrun(real, tmp_path):
    path = copy(real, tmp_path, "m.h5")
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][2] = {"class_name": "Lambda", "config": {"name": "lam", "function": ["4wAAAA"]}}
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match=r"'lam'.*'Lambda'.*run code"):
        saving.load_model(path)


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.weights.h5"])
def test_a_truncated_file_is_refused(real, tmp_path, name):
    data = (real / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated|corrupt"):
        if name == "m.weights.h5":
            saving.load_model(real / "m.keras").load_weights(path)
        else:
            saving.load_model(path)


def test_files_that_are_not_keras_files_are_refused(tmp_path):
    (tmp_path / "x.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a .keras archive"):
        saving.load_model(tmp_path / "x.keras")
    with pytest.raises(ValueError, match="a directory"):
        saving.load_model(tmp_path)
    with zipfile.ZipFile(tmp_path / "y.keras", "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(ValueError, match=r"`config.json` of .*y.keras.* not valid JSON"):
        saving.load_model(tmp_path / "y.keras")
    with pytest.raises(ValueError, match="Cannot read"):
        saving.load_model(tmp_path / "missing.keras")


def test_without_h5py_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ImportError, match=r"pip install 'scratch-rnn\[h5\]'"):
        saving.load_model(tmp_path / "m.h5")


def test_importing_scratch_rnn_does_not_import_h5py():
    code = "import sys, scratch_rnn; assert 'h5py' not in sys.modules, 'h5py imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_missing_weight_is_refused(real, tmp_path):
    path = copy(real, tmp_path, "m.weights.h5")
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/1"]
    model = saving.load_model(real / "m.keras")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"expects 2 weights in 'layers/dense/vars'.*m.weights.h5"):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):  # all or nothing
        np.testing.assert_array_equal(a, b)
    with h5py.File(path, "r+") as f:
        del f["layers/bidirectional/backward_layer"]
    with pytest.raises(ValueError, match=r"no group 'layers/bidirectional/backward_layer/cell/vars'.*Bidirectional"):
        model.load_weights(path)


def test_a_weight_whose_shape_or_dtype_differs_from_the_config_is_refused(real, tmp_path):
    path = copy(real, tmp_path, "m.weights.h5")
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((3, 4), "float32")
    model = saving.load_model(real / "m.keras")
    with pytest.raises(ValueError, match=r"'layers/dense/vars/0'.*'kernel'.*shape \(3, 4\).*config implies \(10, 4\)"):
        model.load_weights(path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((10, 4), "int64")
    with pytest.raises(ValueError, match=r"dtype int64, expected a float"):
        model.load_weights(path)


def test_a_shape_bomb_is_refused_before_it_is_read(real, tmp_path):
    """A config declaring a huge Embedding, and a dataset of that shape storing nothing (chunked, fill value
    only): refused from its declared size, before any allocation; and by the byte budget."""
    path = tmp_path / "bomb.keras"
    big = (1_000_000, 8)  # 32 MB declared, a few bytes stored

    with zipfile.ZipFile(real / "m.keras") as z:
        (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
    with h5py.File(tmp_path / "w.h5", "r+") as f:
        del f["layers/embedding/vars/0"]
        f.create_dataset("layers/embedding/vars/0", shape=big, dtype="float32", chunks=(1000, 8), compression="gzip")
    rewrite_archive(
        real / "m.keras", path, config=edit_layer(1, config={"input_dim": big[0]}),
        members={"model.weights.h5": (tmp_path / "w.h5").read_bytes()},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'layers/embedding/vars/0'.*declares 32000000 bytes but stores 0.*bomb"):
        saving.load_model(path)
    with pytest.raises(ValueError, match=r"more than max_bytes=1000 bytes"):
        saving.load_model(real / "m.keras", max_bytes=1000)
    with pytest.raises(ValueError, match=r"argument `max_bytes`, expected a positive integer"):
        saving.load_model(real / "m.keras", max_bytes=0)


def test_a_zip_member_that_inflates_beyond_its_bound_is_refused(real, tmp_path):
    huge = rewrite_archive(
        real / "m.keras", tmp_path / "json.keras", members={"metadata.json": b" " * (65 << 20)},
        compression=zipfile.ZIP_DEFLATED,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'metadata.json' of .*json.keras.* more than"):
        saving.load_model(huge)
    bomb = rewrite_archive(
        real / "m.keras", tmp_path / "bomb.keras", members={"model.weights.h5": bytes(20 << 20)},
        compression=zipfile.ZIP_DEFLATED,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"'model.weights.h5' of .*bomb.keras.* decompression bomb"):
        saving.load_model(bomb)


def test_a_recompressed_archive_still_loads(real, tmp_path):
    """Deflated members (an archive re-zipped by hand) are read through zipfile's stream."""
    path = rewrite_archive(real / "m.keras", tmp_path / "z.keras", compression=zipfile.ZIP_DEFLATED)
    x = text_ids(np.random.default_rng(1))
    assert_close(saving.load_model(path)(x), saving.load_model(real / "m.keras")(x), 0.0, name="prediction")


def test_links_and_external_datasets_are_refused(real, tmp_path):
    path = copy(real, tmp_path, "m.weights.h5")
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = h5py.SoftLink("/layers/embedding/vars/0")
    model = saving.load_model(real / "m.keras")
    with pytest.raises(ValueError, match=r"'layers/dense/vars/1' is a SoftLink"):
        model.load_weights(path)
    (tmp_path / "raw.bin").write_bytes(bytes(16))
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/1"]
        f.create_dataset("layers/dense/vars/1", shape=(4,), dtype="float32", external=[("raw.bin", 0, 16)])
    with pytest.raises(ValueError, match=r"external or virtual"):
        model.load_weights(path)


def test_legacy_files_that_do_not_fit_the_model_are_refused(real, tmp_path):
    path = copy(real, tmp_path, "m.h5")
    model = saving.load_model(path)
    with h5py.File(path, "r+") as f:
        names = list(f["model_weights"].attrs["layer_names"])
        f["model_weights"].attrs["layer_names"] = names[:-1]
    with pytest.raises(ValueError, match=r"holds weights for 2 layers.*has 3 layers with weights"):
        model.load_weights(path)
    with pytest.raises(ValueError, match=r"holds weights only .*model.load_weights"):
        saving.load_model(real / "m.weights.h5")


def test_a_model_saved_unbuilt_has_nowhere_to_put_weights(real, tmp_path):
    def unbuilt(config):
        layers = config["config"]["layers"]
        config["config"]["layers"] = layers[1:]
        layers[1].pop("build_config", None)
        config["config"].pop("build_input_shape", None)
        return config

    bad = rewrite_archive(real / "m.keras", tmp_path / "u.keras", config=unbuilt)
    with pytest.raises(ValueError, match=r"has no input shape"):
        saving.load_model(bad)


def test_load_weights_needs_a_built_model(tmp_path, real):
    model = scratch_rnn.Sequential([scratch_rnn.Dense(2)])
    with pytest.raises(ValueError, match=r"not built"):
        model.load_weights(real / "m.weights.h5")


def test_keras3_keys_count_classes_not_names():
    """saving_lib's keys: snake-case class, then _1, _2 per class; an Input is an InputLayer (functional)."""
    s = scratch_rnn
    model = s.Sequential([s.Input(shape=(3, 2)), s.LSTM(2, return_sequences=True, name="dense"), s.LSTM(2),
                          s.Dense(2, name="lstm"), s.Dense(1)])  # fmt: skip
    assert saving._keras3_keys(model) == ["lstm", "lstm_1", "dense", "dense_1"]

    class Functional:  # the shape of a functional model: its layers include its Inputs
        layers = [s.Input(shape=(3,)), s.Dense(2), s.Input(shape=(2,)), s.SimpleRNN(1), s.TimeDistributed(s.Dense(1))]

    assert saving._keras3_keys(Functional) == [
        "input_layer", "dense", "input_layer_1", "simple_rnn", "time_distributed",
    ]  # fmt: skip


def test_functional_models(keras, rng, tmp_path):
    """A functional model with two outputs, a layer named as another class, as .keras, .h5 and .weights.h5."""
    L = keras.layers
    inputs = keras.Input((6, 3))
    hidden = L.LSTM(4, return_sequences=True, name="dense")(inputs)
    summary = L.GRU(2)(hidden)
    model = keras.Model(inputs, [L.Dense(3, name="lstm")(summary), summary])
    randomize(model, rng)
    model.save(tmp_path / "f.keras")
    keras.saving.save_model(model, tmp_path / "f.h5")
    model.save_weights(tmp_path / "f.weights.h5")
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.save(tmp_path / "x.npy", x)
    run_blocked(
        """
        import numpy as np, scratch_rnn
        x = np.load("x.npy")
        for name in ("f.keras", "f.h5"):
            for i, out in enumerate(scratch_rnn.load_model(name)(x)):
                np.save(f"{name}.{i}.npy", out)
        model = scratch_rnn.load_model("f.keras")
        model.set_weights([w * 0 for w in model.get_weights()])
        model.load_weights("f.weights.h5")
        for i, out in enumerate(model(x)):
            np.save(f"w.{i}.npy", out)
        """,
        tmp_path,
    )
    for prefix in ("f.keras", "f.h5", "w"):
        for i, e in enumerate(expected):
            assert_close(np.load(tmp_path / f"{prefix}.{i}.npy"), np.asarray(e), F32, name=f"{prefix} output[{i}]")


def test_a_functional_model_passes_masks_as_the_keras_that_saved_it(keras, tmp_path):
    """metadata.json's keras_version picks the row of models.KERAS_SEMANTICS: 3.16 onwards (Keras PR #23235)
    stops RNN, Bidirectional and TimeDistributed passing their mask on."""

    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(9, 3, mask_zero=True)(tokens)
    x = keras.layers.LSTM(2, return_sequences=True)(x)
    model = keras.Model(tokens, keras.layers.GRU(2)(x))
    model.save(tmp_path / "saved.keras")
    for version, passes in (("3.15.1", True), ("3.16.0", False)):
        with zipfile.ZipFile(tmp_path / "saved.keras") as source, zipfile.ZipFile(tmp_path / "m.keras", "w") as out:
            for item in source.infolist():
                data = source.read(item.filename)
                if item.filename == "metadata.json":
                    data = json.dumps({**json.loads(data), "keras_version": version}).encode()
                out.writestr(item, data)
        loaded = scratch_rnn.load_model(tmp_path / "m.keras")
        assert loaded.keras_version == version
        assert loaded.semantics["sequence_layers_pass_mask"] is passes
