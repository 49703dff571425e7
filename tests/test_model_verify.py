"""Verifying a whole model (``scratch_rnn.verify_model``, ``scratch-rnn verify --model``) and running one
from its file (``scratch-rnn inspect``, ``scratch-rnn predict``): the engine passes, a port with one
wrong weight fails, unusable files and arguments are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratch_rnn.cli import main
from scratch_rnn.testing.compare import assert_close
from scratch_rnn.testing.model_verify import input_specs, verify_model

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory):
    """Two saved Keras models with random weights: a text classifier (functional, int ids, mask_zero)
    and a two-layer stacked GRU (Sequential, float inputs with a Masking layer)."""
    rng = np.random.default_rng(5)
    folder = tmp_path_factory.mktemp("models")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 4, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(3))(x)
    classifier = keras.Model(tokens, keras.layers.Dense(2, activation="softmax")(x), name="classifier")
    stacked = keras.Sequential(
        [
            keras.Input((7, 3)),
            keras.layers.Masking(0.0),
            keras.layers.GRU(4, return_sequences=True),
            keras.layers.GRU(2, reset_after=False),
        ],
        name="stacked",
    )
    paths = {}
    for model in (classifier, stacked):
        model.set_weights([rng.uniform(-1, 1, w.shape) for w in model.get_weights()])
        paths[model.name] = folder / f"{model.name}.keras"
        model.save(paths[model.name])
    return paths


def test_input_specs_say_what_each_input_feeds(keras, saved):
    specs = input_specs(keras.saving.load_model(saved["classifier"], compile=False))
    assert [(s.shape, s.dtype, s.vocabulary, s.mask_zero) for s in specs] == [((None,), "int32", 30, True)]
    specs = input_specs(keras.saving.load_model(saved["stacked"], compile=False))
    assert [(s.shape, s.mask_value) for s in specs] == [((7, 3), 0.0)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["classifier", "stacked"])
def test_the_engine_passes_on_a_saved_model(saved, name, dtype, keras):
    report = verify_model(saved[name], max_examples=15, seed=3, dtype=dtype)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples + report.skipped == 15 and report.max_margin <= 1


def one_wrong_weight(model_file, inputs):
    """A port of the model that got one bias entry wrong by 0.01."""
    import scratch_rnn

    model = scratch_rnn.load_model(model_file)
    weights = model.get_weights()
    weights[-1] = (
        weights[-1] + np.eye(1, weights[-1].size, 0, dtype=weights[-1].dtype).reshape(weights[-1].shape) * 0.01
    )
    model.set_weights(weights)
    return model.predict(inputs[0])


def test_a_port_with_one_wrong_weight_fails(saved, keras):
    report = verify_model(saved["classifier"], one_wrong_weight, max_examples=20, seed=3, shrink_seconds=5)
    assert not report.ok and report.max_margin > 10
    assert "differ beyond tolerance" in report.failures[0].message and "seed=3" in report.failures[0].reproducer


def test_a_port_given_a_keras_model_gets_a_saved_file(keras, saved):
    seen = []

    def port(model_file, inputs):
        import scratch_rnn

        seen.append(model_file)
        return scratch_rnn.load_model(model_file).predict(inputs[0])

    report = verify_model(keras.saving.load_model(saved["stacked"], compile=False), port, max_examples=5, seed=1)
    assert report.ok and seen and all(path.endswith(".keras") for path in seen)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(model="/nonexistent.keras"), "model"),
        (dict(model=42), "model"),
        (dict(model="x.keras", candidate="not callable"), "candidate"),
        (dict(model="x.keras", max_examples=0), "max_examples"),
        (dict(model="x.keras", dtype="float16"), "dtype"),
    ],
)
def test_verify_model_refuses_bad_arguments(kwargs, argument, keras):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        verify_model(**kwargs)


def test_the_command_line_verifies_a_model_and_fails_a_planted_port(saved, keras, tmp_path, monkeypatch, capsys):
    assert main(["verify", "--model", str(saved["stacked"]), "--examples", "5", "--seed", "2"]) == 0
    assert "All cases agree" in capsys.readouterr().out
    (tmp_path / "my_model_port.py").write_text(
        "from tests.test_model_verify import one_wrong_weight as port\n"
        if False
        else "import numpy as np\nimport scratch_rnn\n\n"
        "def port(model_file, inputs):\n"
        "    model = scratch_rnn.load_model(model_file)\n"
        "    w = model.get_weights(); w[-1] = w[-1] + 0.01; model.set_weights(w)\n"
        "    return model.predict(inputs[0])\n"
    )
    monkeypatch.chdir(tmp_path)
    args = ["verify", "--model", str(saved["stacked"]), "--candidate", "my_model_port:port", "--examples", "5"]
    assert main([*args, "--dtype", "float32", "--seed", "2"]) == 1
    assert main(["verify", "--model", str(tmp_path / "missing.keras"), "--examples", "2"]) == 2
    assert main(["verify", "--model", str(saved["stacked"]), "--layer", "GRU"]) == 2


def blocked(*argv, cwd):
    """``scratch-rnn ARGV`` in a process where TensorFlow and Keras cannot be imported."""
    env = {"PYTHONPATH": str(ROOT / "tests" / "block_keras"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "scratch_rnn.cli", *argv], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)  # fmt: skip


def test_inspect_and_predict_run_a_saved_model_without_tensorflow(saved, keras, tmp_path):
    model = keras.saving.load_model(saved["classifier"], compile=False)
    ids = np.array([[3, 7, 1, 0, 0], [0, 0, 2, 29, 5]], dtype="int32")
    np.save(tmp_path / "ids.npy", ids)
    done = blocked("predict", str(saved["classifier"]), "ids.npy", "--out", "out.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = np.asarray(model(ids))
    assert_close(np.load(tmp_path / "out.npy"), expected, 1e-6 + 1e-5 * np.abs(expected), "predict's output")
    done = blocked("inspect", str(saved["classifier"]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    keras_total = next(line for line in "\n".join(lines).splitlines() if "Total params" in line).strip()
    assert keras_total in done.stdout and "Bidirectional" in done.stdout
    assert blocked("inspect", str(tmp_path / "ids.npy"), cwd=tmp_path).returncode == 2
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused = blocked("predict", str(saved["classifier"]), "objects.npy", "--out", "o.npy", cwd=tmp_path)
    assert refused.returncode == 2 and "objects.npy" in refused.stderr
    assert blocked("predict", str(saved["classifier"]), "ids.npy", "--out", "o.txt", cwd=tmp_path).returncode == 2


def test_input_specs_of_a_keras2_model(tf_keras):
    """Regression: tf_keras gives a node's input_tensors as one tensor and dtypes as tf.DType; input_specs
    iterated the tensor ("Cannot iterate over a Tensor with unknown first dimension") and read "<dtype: ...>"."""
    L = tf_keras.layers
    model = tf_keras.Sequential([L.Embedding(20, 4, mask_zero=True, input_length=7), L.GRU(3)])
    model.build((None, 7))
    specs = input_specs(model)
    assert [(s.shape, s.dtype, s.vocabulary, s.mask_zero) for s in specs] == [((7,), "float32", 20, True)]


def plant_in_the_fast_kernels(monkeypatch, error: float = 1e-3):
    """Every per-step product of the engine's NumPy kernels (float32 and float64 alike) off by ``error`` in one
    element; the readable project/step untouched."""
    from scratch_rnn import kernels

    monkeypatch.setenv("SCRATCH_RNN_BACKEND", "numpy")  # the NumPy kernels, not the compiled loop
    original = kernels.mkl.recurrent_product

    def planted(weights, n, left=True):
        product = original(weights, n, left)

        def wrong(x, out):
            product(x, out)
            out.flat[0] += error

        return wrong

    monkeypatch.setattr(kernels.mkl, "recurrent_product", planted)


def test_a_bug_in_the_engines_fast_kernels_fails_the_model(saved, keras, monkeypatch):
    """The float64 oracle runs the readable step: a bug in the fast kernels, which the engine runs in both
    dtypes, is not folded into the tolerance (the unperturbed oracle on the kernels would have hidden it)."""
    plant_in_the_fast_kernels(monkeypatch)
    report = verify_model(saved["stacked"], max_examples=10, seed=3, shrink_seconds=0)
    assert not report.ok and report.failures
