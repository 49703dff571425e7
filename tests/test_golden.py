"""Golden vectors: the shipped recording checks without TensorFlow, recordings round-trip, bad files fail clearly."""

import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scratch_rnn.cli import main
from scratch_rnn.testing import golden
from scratch_rnn.testing.candidates import CandidateError, load_candidate
from scratch_rnn.testing.golden import GoldenFileError
from scratch_rnn.testing.runners import engine_candidate
from scratch_rnn.testing.strategies import LAYERS

SHIPPED = Path(__file__).parent / "data" / "golden"


def cli(argv) -> int:
    """The real command line, ``scratch-rnn ...``."""
    return main(argv)


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


# --- the shipped recording ------------------------------------------------------------

BLOCKED = """
import sys
for name in ("tensorflow", "keras", "tf_keras", "hypothesis"):
    sys.modules[name] = None  # any import of these now raises ImportError
from scratch_rnn.testing import golden
result = golden.check(sys.argv[1])
assert result.ok, "\\n".join(map(str, result.failures))
print(sum(r.examples for r in result.reports), "cases")
"""


def test_the_shipped_recording_passes_without_tensorflow_or_keras():
    result = subprocess.run([sys.executable, "-c", BLOCKED, str(SHIPPED)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "48 cases"


def test_the_check_command_runs_without_tensorflow_or_keras():
    code = BLOCKED.split("from scratch_rnn")[0] + (
        "from scratch_rnn.cli import main\nsys.exit(main(['check', sys.argv[1]]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(SHIPPED)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = flat(result.stdout)
    assert "Recorded with Keras 3." in out and "All cases agree with the recording." in out
    for layer in LAYERS:
        assert layer in out


NO_HYPOTHESIS = """
import sys
sys.modules["hypothesis"] = None  # any import of it now raises ImportError
from scratch_rnn.testing import Case, assert_close, check_case, compare_outputs  # NumPy only: importable
import scratch_rnn.testing as testing
for name in ("cases", "verify"):
    try:
        getattr(testing, name)
    except ImportError as err:
        print(err)
try:
    from scratch_rnn.testing import verify
except ImportError as err:
    print(err)
"""


def test_the_harness_without_hypothesis_says_what_to_install():
    result = subprocess.run([sys.executable, "-c", NO_HYPOTHESIS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"scratch_rnn.testing.{name} needs hypothesis: pip install 'scratch-rnn[verify]'"
        for name in ("cases", "verify", "verify")
    ]


def test_checking_prints_nothing(capsys):
    assert golden.check(SHIPPED).ok
    assert capsys.readouterr() == ("", "")


def test_the_shipped_recording_is_small_and_covers_every_layer_and_dtype():
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) < 300_000
    cases = golden.load(SHIPPED).cases
    assert {(g.case.layer, g.case.dtype.name) for g in cases} == {(la, dt) for la in LAYERS for dt in golden.DTYPES}
    assert any(g.case.split is not None for g in cases) and any(g.case.mask is not None for g in cases)
    assert any(g.case.initial_state is not None for g in cases)


def test_keras_configs_and_dtype_policies_survive_json():
    from scratch_rnn.keras_convert import from_config

    for g in golden.load(SHIPPED).cases:
        policy = g.keras_config["dtype"]
        assert policy["class_name"] == "DTypePolicy" and policy["config"]["name"] == g.case.dtype.name, g.id
        assert from_config(g.case.layer, g.keras_config).dtype == g.case.dtype, g.id
        if g.case.mask is not None:
            assert g.case.mask.dtype == np.bool_


@pytest.mark.parametrize("layer", LAYERS)
def test_the_engine_as_a_candidate_passes_stateful_cases_through_the_carried_state(layer):
    result = golden.check(SHIPPED, engine_candidate(layer), layers=[layer])
    assert result.ok, "\n".join(map(str, result.failures))


# --- record, then check ----------------------------------------------------------------


def test_record_then_check_round_trips(keras, tmp_path, capsys):
    out = tmp_path / "rec"
    argv = [
        "record",
        "--out",
        str(out),
        "--layer",
        "SimpleRNN",
        "--layer",
        "Bidirectional",
        "--dtype",
        "float32",
        "--examples",
        "2",
        "--seed",
        "7",
    ]
    assert cli(argv) == 0, capsys.readouterr().out
    assert "4 cases" in flat(capsys.readouterr().out)
    manifest = json.loads((out / golden.MANIFEST).read_text())
    assert manifest["format"] == golden.FORMAT and manifest["recorded_with"]["keras"] == keras.__version__
    with np.load(out / golden.ARRAYS, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(n for c in manifest["cases"] for n in c["arrays"])
    result = golden.check(out)
    assert result.ok and [r.examples for r in result.reports] == [2, 2]

    again = golden.record(
        tmp_path / "again", layers=["SimpleRNN", "Bidirectional"], dtypes=["float32"], examples=2, seed=7
    )
    assert again["cases"] == manifest["cases"]  # the same seed draws the same cases, and Keras agrees with itself
    with np.load(out / golden.ARRAYS) as a, np.load(tmp_path / "again" / golden.ARRAYS) as b:
        assert all(np.array_equal(a[name], b[name]) for name in a.files)


def test_stateful_cases_record_the_carried_state(keras, tmp_path):
    golden.record(tmp_path, layers=["LSTM"], dtypes=["float64"], examples=4, seed=1)
    cases = golden.load(tmp_path).cases
    stateful = [g for g in cases if g.case.split is not None]
    assert stateful and all(len(g.carried_state) == 2 for g in stateful)  # LSTM: h and c
    assert all(g.carried_state is None for g in cases if g.case.split is None)
    assert golden.check(tmp_path, engine_candidate("LSTM")).ok


# --- bad recordings --------------------------------------------------------------------


def _arrays(path):
    with np.load(path / golden.ARRAYS, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _rewrite_arrays(path, arrays):
    np.savez_compressed(path / golden.ARRAYS, **arrays)


def _edit_manifest(path, change):
    manifest = json.loads((path / golden.MANIFEST).read_text())
    change(manifest)
    (path / golden.MANIFEST).write_text(json.dumps(manifest))


def truncated_npz(path):
    data = (path / golden.ARRAYS).read_bytes()
    (path / golden.ARRAYS).write_bytes(data[: len(data) // 2])


def damaged_entry(path):
    archive = path / golden.ARRAYS
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("case0003/x.npy")
    data = bytearray(archive.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length  # the local file header, then the data
    for k in range(start + 8, start + 16):
        data[k] ^= 0xFF
    archive.write_bytes(bytes(data))


def missing_array(path):
    arrays = _arrays(path)
    del arrays["case0003/x"]
    _rewrite_arrays(path, arrays)


def wrong_shape(path):
    arrays = _arrays(path)
    arrays["case0003/x"] = arrays["case0003/x"][:, :1]
    _rewrite_arrays(path, arrays)


def changed_values(path):
    arrays = _arrays(path)
    arrays["case0003/x"] = arrays["case0003/x"] + 1
    _rewrite_arrays(path, arrays)


def extra_array(path):
    _rewrite_arrays(path, {**_arrays(path), "case0003/stray": np.zeros(2, np.float32)})


def bad_json(path):
    (path / golden.MANIFEST).write_text('{"format": "scratch-rnn-golden", "cases": [')


def wrong_version(path):
    _edit_manifest(path, lambda m: m.update(format_version=2))


def wrong_format(path):
    _edit_manifest(path, lambda m: m.update(format="something-else"))


def missing_case(path):
    def add(manifest):
        entry = json.loads(json.dumps(manifest["cases"][3]).replace("case0003", "case9999"))
        manifest["cases"].append(entry)

    _edit_manifest(path, add)


def duplicate_id(path):
    _edit_manifest(path, lambda m: m["cases"][4].update(id="case0003"))


def missing_field(path):
    _edit_manifest(path, lambda m: m["cases"][3].pop("x"))


def wrong_weight_count(path):
    def drop(manifest):
        case = manifest["cases"][3]
        name = case["weights"].pop()
        case["arrays"].pop(name)

    _edit_manifest(path, drop)


def missing_npz(path):
    (path / golden.ARRAYS).unlink()


def missing_manifest(path):
    (path / golden.MANIFEST).unlink()


CORRUPTIONS = {
    truncated_npz: "not a readable .npz archive",
    damaged_entry: "'case0003/x' cannot be read",
    missing_array: "the array 'case0003/x' is missing from",
    wrong_shape: "has shape",
    changed_values: "sha256",
    extra_array: "does not list (first: 'case0003/stray')",
    bad_json: "not valid JSON",
    wrong_version: "format version 2 is not supported",
    wrong_format: "not a scratch-rnn-golden manifest",
    missing_case: "holds none of its arrays",
    duplicate_id: "'case0003' appears 2 times",
    missing_field: "the field 'x' is missing",
    wrong_weight_count: '"weights" have shapes',
    missing_npz: "arrays.npz: not found",
    missing_manifest: "has no manifest.json",
}


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "golden"
    shutil.copytree(SHIPPED, path)
    return path


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_a_bad_recording_is_a_clear_error_and_exit_2(recording, corrupt, capsys):
    corrupt(recording)
    with pytest.raises(GoldenFileError) as info:
        golden.check(recording)
    message = str(info.value)
    assert CORRUPTIONS[corrupt] in message
    assert str(recording) in message  # names the file
    assert cli(["check", str(recording)]) == 2
    assert CORRUPTIONS[corrupt] in flat(capsys.readouterr().out)


def test_the_layer_and_case_filters(capsys):
    result = golden.check(SHIPPED, layers=["GRU"], ids=["case0024", "case0030"])
    assert [(r.layer, r.dtype, r.examples) for r in result.reports] == [("GRU", "float32", 1), ("GRU", "float64", 1)]
    with pytest.raises(ValueError, match="case9999"):
        golden.check(SHIPPED, ids=["case9999"])
    assert cli(["check", str(SHIPPED), "--case", "case9999"]) == 2


# --- candidates ------------------------------------------------------------------------


def without_bias(config, weights, x, mask=None, initial_state=None):
    """A planted bug: the bias is dropped."""
    weights = [*weights[:2], np.zeros_like(weights[2])] if len(weights) == 3 else weights
    return engine_candidate("SimpleRNN")(config, weights, x, mask, initial_state)


def ignoring_initial_state(config, weights, x, mask=None, initial_state=None):
    """A planted bug: the initial state (and so a stateful layer's carried state) is ignored."""
    return engine_candidate("SimpleRNN")(config, weights, x, mask, None)


def test_a_planted_bug_fails_the_check():
    result = golden.check(SHIPPED, without_bias, layers=["SimpleRNN"])
    assert not result.ok
    failed = {f.message.split(":")[0] for f in result.failures}
    recorded = {g.id: g for g in golden.load(SHIPPED).cases if g.case.layer == "SimpleRNN"}
    assert failed == {i for i, g in recorded.items() if g.case.config["use_bias"]}
    message = str(result.failures[0])
    assert "worst at index" in message and "--case" in message


def test_a_candidate_ignoring_the_carried_state_fails_the_stateful_cases():
    result = golden.check(SHIPPED, ignoring_initial_state, layers=["SimpleRNN"])
    failed = {f.message.split(":")[0] for f in result.failures}
    recorded = [g for g in golden.load(SHIPPED).cases if g.case.layer == "SimpleRNN"]
    with_state = {g.id for g in recorded if g.case.split is not None or g.case.initial_state is not None}
    assert failed <= with_state  # a carried state can be all zeros (every first-call step masked): not all fail
    assert any(g.case.split is not None for g in recorded if g.id in failed)


@pytest.fixture
def candidate_module(tmp_path, monkeypatch):
    """A module in the current directory, as a user's port would be; sys.path restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    names = []

    def write(source, stem="port"):
        name = f"{stem}_{tmp_path.name.replace('-', '_')}"
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


PORT = """
from scratch_rnn.testing.runners import engine_candidate
import numpy as np

simple_rnn = engine_candidate("SimpleRNN")

def no_bias(config, weights, x, mask=None, initial_state=None):
    weights = [*weights[:2], np.zeros_like(weights[2])] if len(weights) == 3 else weights
    return simple_rnn(config, weights, x, mask, initial_state)

answer = 42
"""


def test_check_candidate_from_the_command_line(candidate_module, capsys):
    name = candidate_module(PORT)
    assert cli(["check", str(SHIPPED), "--candidate", f"{name}:simple_rnn", "--layer", "SimpleRNN"]) == 0
    assert cli(["check", str(SHIPPED), "--candidate", f"{name}:no_bias", "--layer", "SimpleRNN"]) == 1
    out = flat(capsys.readouterr().out)
    assert "FAIL SimpleRNN" in out and "Mismatch: see above." in out


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_colon", "must look like 'package.module:function'"),
        ("a:b:c", "must look like 'package.module:function'"),
        (":f", "must look like 'package.module:function'"),
        ("no_such_module_xyz:f", "no module named 'no_such_module_xyz'"),
        ("json:no_such_function", "module 'json' has no attribute 'no_such_function'"),
        ("json:JSONDecoder.no_such_method", "'json:JSONDecoder' has no attribute 'no_such_method'"),
        ("math:pi", "must be callable"),
    ],
)
def test_load_candidate_errors(spec, message):
    with pytest.raises(CandidateError, match=None) as info:
        load_candidate(spec)
    assert message in str(info.value) and "candidate" in str(info.value).lower()


def test_load_candidate_finds_the_current_directory_and_reports_import_failures(candidate_module, capsys):
    name = candidate_module(PORT)
    assert load_candidate(f"{name}:simple_rnn").__name__ == "scratch_rnn.SimpleRNN"
    assert load_candidate("json:JSONDecoder.decode") is json.JSONDecoder.decode
    with pytest.raises(CandidateError, match="must be callable"):
        load_candidate(f"{name}:answer")
    broken = candidate_module("import not_a_real_dependency_xyz\n", stem="needs_dependency")
    with pytest.raises(CandidateError, match="No module named 'not_a_real_dependency_xyz'") as info:
        load_candidate(f"{broken}:f")
    assert f"Importing module '{broken}'" in str(info.value)
    broken = candidate_module("raise RuntimeError('boom')\n", stem="raises")
    with pytest.raises(CandidateError, match="RuntimeError: boom"):
        load_candidate(f"{broken}:f")
    assert cli(["check", str(SHIPPED), "--candidate", f"{broken}:f"]) == 2
    assert "RuntimeError: boom" in flat(capsys.readouterr().out)
