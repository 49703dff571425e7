"""Recording one's own model (``scratch-rnn record --model``) and checking it without TensorFlow, Keras or
Hypothesis (``scratch-rnn check DIR --model PATH``): the engine and an honest port pass, a port with one
wrong weight fails, an edited model file and corrupt recordings are refused with exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratch_rnn.cli import main
from scratch_rnn.testing import golden
from scratch_rnn.testing.compare import assert_close

ROOT = Path(__file__).parents[1]

#: ``scratch-rnn ARGV`` with Hypothesis blocked here and TensorFlow and Keras by tests/block_keras.
NO_HYPOTHESIS = (
    "import sys\nsys.modules['hypothesis'] = None\nfrom scratch_rnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
)


def blocked(*argv, cwd):
    """``scratch-rnn ARGV`` in a process where TensorFlow, Keras and Hypothesis cannot be imported."""
    env = {"PYTHONPATH": str(ROOT / "tests" / "block_keras"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", NO_HYPOTHESIS, *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)  # fmt: skip


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory):
    """A text classifier saved by Keras: ids -> Embedding(mask_zero) -> LSTM -> Dense, random weights."""
    rng = np.random.default_rng(12)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    x = keras.layers.LSTM(3)(x)
    model = keras.Model(tokens, keras.layers.Dense(2)(x), name="classifier")
    model.set_weights([rng.uniform(-1, 1, w.shape) for w in model.get_weights()])
    path = tmp_path_factory.mktemp("model") / "classifier.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def recorded(saved, tmp_path_factory):
    """The classifier recorded in float32 and float64 (3 inputs each), and in float32 only (for ports)."""
    both, float32 = tmp_path_factory.mktemp("both"), tmp_path_factory.mktemp("float32")
    golden.record_model(saved, both, examples=3, seed=4)
    golden.record_model(saved, float32, examples=4, seed=5, dtypes=["float32"])
    return both, float32


def test_the_recording_holds_the_model_hash_specs_and_cases(saved, recorded):
    manifest = json.loads((recorded[0] / golden.MANIFEST).read_text())
    assert manifest["format"] == golden.MODEL_FORMAT and manifest["recording"]["seed"] == 4
    assert manifest["model"]["sha256"] == golden._sha256(saved) and manifest["model"]["file"] == "classifier.keras"
    assert manifest["model"]["inputs"] == [
        {"name": "tokens", "shape": [None], "dtype": "int32", "vocabulary": 20, "mask_zero": True, "mask_value": None}
    ]
    assert [c["dtype"] for c in manifest["cases"]] == ["float32"] * 3 + ["float64"] * 3
    recording = golden.load_model_recording(recorded[0])
    for case in recording.cases:
        ids = case.case.inputs[0]
        assert ids.dtype == np.int32 and min(ids.shape) >= 2 and 0 <= ids.min() and ids.max() < 20
        assert case.outputs[0].shape == (ids.shape[0], 2) and case.outputs[0].dtype.name == case.dtype


def test_the_engine_passes_in_python(saved, recorded):
    result = golden.check_model(recorded[0], saved)
    assert result.ok and [(r.layer, r.dtype, r.examples) for r in result.reports] == [
        ("classifier", "float32", 3),
        ("classifier", "float64", 3),
    ]
    assert all(r.max_margin <= 1 for r in result.reports)


def test_check_runs_without_tensorflow_keras_or_hypothesis(saved, recorded, tmp_path):
    done = blocked("check", recorded[0], "--model", saved, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All cases agree with the recording." in flat(done.stdout)


PORT = """
import numpy as np
import scratch_rnn


def honest(model_file, inputs):
    return scratch_rnn.load_model(model_file).predict(inputs[0])


def one_wrong_weight(model_file, inputs):
    model = scratch_rnn.load_model(model_file)
    weights = model.get_weights()
    weights[-1] = weights[-1] + np.array([0.01, 0.0], dtype=weights[-1].dtype)  # one bias entry of the Dense
    model.set_weights(weights)
    return model.predict(inputs[0])
"""


def test_an_honest_port_passes_and_a_port_with_one_wrong_weight_fails(saved, recorded, tmp_path):
    (tmp_path / "my_port.py").write_text(PORT)
    done = blocked("check", recorded[1], "--model", saved, "--candidate", "my_port:honest", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = blocked("check", recorded[1], "--model", saved, "--candidate", "my_port:one_wrong_weight", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = flat(done.stdout)
    assert "differ beyond tolerance" in out and "to rerun it alone, add --case case0000" in out


def test_a_model_file_edited_after_recording_is_refused_with_both_hashes(saved, recorded, tmp_path):
    edited = tmp_path / "classifier.keras"
    shutil.copy(saved, edited)
    with open(edited, "ab") as f:
        f.write(b"\0")
    done = blocked("check", recorded[0], "--model", edited, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    out = flat(done.stdout + done.stderr)
    assert golden._sha256(saved) in out and golden._sha256(edited) in out
    with pytest.raises(golden.ModelMismatchError, match=golden._sha256(edited)):
        golden.check_model(recorded[0], edited)


def edit_manifest(change):
    def corrupt(directory: Path) -> None:
        manifest = json.loads((directory / golden.MANIFEST).read_text())
        change(manifest)
        (directory / golden.MANIFEST).write_text(json.dumps(manifest))

    return corrupt


def truncate_arrays(directory: Path) -> None:
    data = (directory / golden.ARRAYS).read_bytes()
    (directory / golden.ARRAYS).write_bytes(data[: len(data) // 2])


#: (what is wrong, how to make it so, what the error says)
CORRUPTIONS = [
    ("a layer recording's format", edit_manifest(lambda m: m.update(format=golden.FORMAT)), "without --model"),
    ("no model key", edit_manifest(lambda m: m.pop("model")), "the top-level key 'model' is missing"),
    ("a bad model hash", edit_manifest(lambda m: m["model"].update(sha256="abc")), "64 lowercase hex digits"),
    ("a smaller vocabulary", edit_manifest(lambda m: m["model"]["inputs"][0].update(vocabulary=1)), "outside [0, 1)"),
    ("a fixed timestep count", edit_manifest(lambda m: m["model"]["inputs"][0].update(shape=[99])), "on axis 1"),
    ("two outputs", edit_manifest(lambda m: m["model"]["outputs"].append("extra")), "the model has 2 outputs"),
    ("an unknown case field", edit_manifest(lambda m: m["cases"][0].update(mask=None)), "unknown field 'mask'"),
    (
        "an output's declared dtype",
        edit_manifest(lambda m: m["cases"][0]["arrays"]["case0000/outputs/0"].update(dtype="float64")),
        "but the manifest records",
    ),
    ("a truncated archive", truncate_arrays, "arrays.npz"),
]


@pytest.mark.parametrize("what, corrupt, said", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_corrupt_recording_is_refused_with_exit_2(saved, recorded, tmp_path, capsys, what, corrupt, said):
    copy = tmp_path / "recording"
    shutil.copytree(recorded[0], copy)
    corrupt(copy)
    assert main(["check", str(copy), "--model", str(saved)]) == 2
    assert said in flat(capsys.readouterr().out)


def test_check_refuses_a_model_recording_without_model_and_a_layer_with_it(saved, recorded, capsys):
    assert main(["check", str(recorded[0])]) == 2
    assert "a model recording is checked with --model PATH" in flat(capsys.readouterr().out)
    assert main(["check", str(recorded[0]), "--model", str(saved), "--layer", "LSTM"]) == 2
    assert main(["check", str(golden.Path(__file__).parent / "data" / "golden"), "--model", str(saved)]) == 2
    assert "a layer recording is checked without --model" in flat(capsys.readouterr().out)


def test_record_refuses_a_non_empty_directory_and_a_missing_model(tmp_path, capsys):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not read: the directory is refused first")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["record", "--model", str(model), "--out", str(out)]) == 2
    assert "not empty (notes.txt)" in flat(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(["record", "--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "new")]) == 2
    assert "Argument `model` (--model)" in flat(capsys.readouterr().out) and not (tmp_path / "new").exists()
    assert main(["record", "--model", str(model), "--out", str(tmp_path / "new"), "--layer", "GRU"]) == 2
    with pytest.raises(ValueError, match="`model`"):
        golden.check_model(tmp_path, 42)


def test_the_command_line_records_a_model(saved, tmp_path, capsys):
    out = tmp_path / "recording"
    assert main(["record", "--model", str(saved), "--out", str(out), "--examples", "2", "--dtype", "float32"]) == 0
    assert "2 cases" in flat(capsys.readouterr().out)
    assert golden.check_model(out, saved).ok
    assert main(["record", "--model", str(saved), "--out", str(out), "--examples", "2", "--seed", "3"]) == 0


def test_load_model_in_float64_is_the_float32_model_in_float64(saved, keras):
    import scratch_rnn

    ids = np.array([[3, 7, 1, 0], [0, 0, 2, 19]], dtype="int32")
    twin = scratch_rnn.load_model(saved, dtype="float64")
    assert all(w.dtype == np.float64 for w in twin.get_weights())
    assert twin.layers[0].dtype == np.int32  # the ids Input stays an integer input
    reference = keras.saving.load_model(saved, compile=False)
    expected = np.asarray(reference(ids), np.float64)
    assert_close(twin(ids), expected, 1e-6 + 1e-5 * np.abs(expected), "float64 twin vs Keras float32")
    assert twin(ids).dtype == np.float64 and scratch_rnn.load_model(saved)(ids).dtype == np.float32
    with pytest.raises(ValueError, match="`dtype`"):
        scratch_rnn.load_model(saved, dtype="float16")


def test_with_float_dtype_rewrites_float_dtypes_only():
    from scratch_rnn.saving import with_float_dtype

    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}
    config = {
        "layers": [{"config": {"dtype": "int32"}}, {"config": {"dtype": policy}}, {"config": {"dtype": "float16"}}]
    }
    rewritten = with_float_dtype(config, "float64")
    assert [layer["config"]["dtype"] for layer in rewritten["layers"]] == [
        "int32",
        {**policy, "config": {"name": "float64"}},
        "float64",
    ]
    assert config["layers"][1]["config"]["dtype"]["config"]["name"] == "float32"  # not modified in place
    assert with_float_dtype(config, None) is config
