"""Golden vectors: the shipped recording checks without TensorFlow, recordings round-trip, bad files fail clearly."""

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
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


def _update_sha(path):
    """The manifest's sha256 made to match the archive: an edit that a checksum alone would not catch."""
    digest = hashlib.sha256((path / golden.ARRAYS).read_bytes()).hexdigest()
    _edit_manifest(path, lambda m: m["arrays"].update(sha256=digest))


def rewrite_entries(path, replace):
    """Rewrite ``arrays.npz`` entry by entry, the sha256 updated: ``replace`` maps an entry's name to
    ``(new name, write(stream))``, streamed (a bomb is never held in memory), or to None to drop it."""
    archive, new = path / golden.ARRAYS, path / "new.npz"
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(new, "w", zipfile.ZIP_DEFLATED) as out:
        for info in old.infolist():
            if info.filename not in replace:
                out.writestr(info.filename, old.read(info.filename))
            elif replace[info.filename] is not None:
                name, write = replace[info.filename]
                with out.open(name, "w", force_zip64=True) as f:
                    write(f)
    new.replace(archive)
    _update_sha(path)


def npy_of_zeros(header_shape, data_bytes: int, descr: str = "<f4"):
    """``write(stream)``: a .npy header declaring ``header_shape``, then ``data_bytes`` zeros, 1 MB at a time."""

    def write(f):
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": header_shape})
        f.write(header.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(data_bytes >> 20):
            f.write(chunk)
        f.write(bytes(data_bytes % (1 << 20)))

    return write


def zip_bomb(path, entry: str = "case0003/x.npy", megabytes: int = 200):
    """``entry`` becomes a real .npy of ``megabytes`` MB of float32 zeros (its header says so), about 0.1% of
    that compressed; the manifest still declares the small array, and its sha256 is updated."""
    rewrite_entries(path, {entry: (entry, npy_of_zeros((megabytes << 18,), megabytes << 20))})


def trailing_bomb(path, entry: str = "case0003/x.npy", megabytes: int = 200):
    """``entry``'s header declares the manifest's shape, and ``megabytes`` MB of zeros follow its header."""
    with zipfile.ZipFile(path / golden.ARRAYS) as z, z.open(entry) as f:
        np.lib.format.read_magic(f)
        shape = np.lib.format.read_array_header_1_0(f)[0]
    rewrite_entries(path, {entry: (entry, npy_of_zeros(shape, megabytes << 20))})


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


def deeply_nested(path):
    (path / golden.MANIFEST).write_text("[" * 100_000 + "]" * 100_000)


def deeply_nested_config(path):
    _edit_manifest(path, lambda m: m["cases"][3]["config"].update(units="NESTED"))
    text = (path / golden.MANIFEST).read_text()
    (path / golden.MANIFEST).write_text(text.replace('"NESTED"', "[" * 100_000 + "]" * 100_000))


def nested_keras_config(path):
    """200 levels: within what Python's JSON parser takes, beyond what a manifest holds."""
    _edit_manifest(path, lambda m: m["cases"][3]["keras_config"].update(units="NESTED"))
    text = (path / golden.MANIFEST).read_text()
    (path / golden.MANIFEST).write_text(text.replace('"NESTED"', "[" * 200 + "]" * 200))


def recorded_with_a_string(path):
    _edit_manifest(path, lambda m: m.update(recorded_with="keras 3"))


def recording_a_string(path):
    _edit_manifest(path, lambda m: m.update(recording="seed 5"))


def entry_not_npy(path):
    rewrite_entries(path, {"case0003/x.npy": ("case0003/x.npy", lambda f: f.write(b"not the .npy format at all"))})


def entry_without_npy_suffix(path):
    with zipfile.ZipFile(path / golden.ARRAYS) as z:
        data = z.read("case0003/x.npy")
    rewrite_entries(path, {"case0003/x.npy": ("case0003/x", lambda f: f.write(data))})


def huge_declared_shape(path):
    _edit_manifest(path, lambda m: m["cases"][3]["arrays"]["case0003/x"].update(shape=[100_000, 100_000, 8]))


def object_dtype_declared(path):
    _edit_manifest(path, lambda m: m["cases"][3]["arrays"]["case0003/x"].update(dtype="object"))


def _edit_case(path, index, change):
    _edit_manifest(path, lambda m: change(m["cases"][index]))


def keras_config_units(path):
    _edit_case(path, 3, lambda c: c["keras_config"].update(units=99))


def keras_config_go_backwards(path):
    _edit_case(path, 3, lambda c: c["keras_config"].update(go_backwards=not c["keras_config"]["go_backwards"]))


def keras_config_unknown_key(path):
    _edit_case(path, 3, lambda c: c["keras_config"].update(frobnicate=1))


def keras_config_empty(path):
    _edit_case(path, 3, lambda c: c.update(keras_config={}))


def config_activation(path):
    def flip(case):
        case["config"]["activation"] = "relu" if case["config"]["activation"] != "relu" else "tanh"

    _edit_case(path, 3, flip)


def config_dtype_float64(path):
    _edit_case(path, 3, lambda c: c["config"].update(dtype="float64"))


def bidirectional_inner_units(path):
    def change(manifest):
        case = next(c for c in manifest["cases"] if c["layer"] == "Bidirectional")
        case["keras_config"]["layer"]["config"]["units"] += 1

    _edit_manifest(path, change)


def format_version_true(path):
    _edit_manifest(path, lambda m: m.update(format_version=True))


def unknown_top_level_key(path):
    _edit_manifest(path, lambda m: m.update(comment="hello"))


def unknown_case_field(path):
    _edit_case(path, 3, lambda c: c.update(note="hello"))


def seed_not_an_int(path):
    _edit_manifest(path, lambda m: m["recording"].update(seed="abc"))


def nan_in_x(path):
    arrays = _arrays(path)
    arrays["case0003/x"].flat[0] = np.nan
    _rewrite_arrays(path, arrays)
    _update_sha(path)


def inf_in_outputs(path):
    arrays = _arrays(path)
    arrays["case0003/outputs/0"].flat[0] = np.inf
    _rewrite_arrays(path, arrays)
    _update_sha(path)


def arrays_outside_the_directory(path):
    _edit_manifest(path, lambda m: m["arrays"].update(file="../arrays.npz"))


def oversized_manifest(path):
    text = (path / golden.MANIFEST).read_text()
    (path / golden.MANIFEST).write_text(text[:-2] + " " * golden.MAX_MANIFEST_BYTES + text[-2:])


def archive_larger_than_its_arrays(path):
    """A stray entry of 1 MB of random bytes: more than the arrays the manifest lists can take."""
    noise = np.random.default_rng(0).bytes(1 << 20)
    with zipfile.ZipFile(path / golden.ARRAYS, "a") as z:
        z.writestr("case0003/stray.npy", noise)
    _update_sha(path)


def bool_bytes_not_0_or_1(path):
    with zipfile.ZipFile(path / golden.ARRAYS) as z, z.open("case0001/mask.npy") as f:
        np.lib.format.read_magic(f)
        shape = np.lib.format.read_array_header_1_0(f)[0]

    def write(f):
        npy_of_zeros(shape, 0, descr="|b1")(f)
        f.write(bytes([2]) * int(np.prod(shape)))

    rewrite_entries(path, {"case0001/mask.npy": ("case0001/mask.npy", write)})


def four_dimensional_shape(path):
    _edit_manifest(path, lambda m: m["cases"][3]["arrays"]["case0003/x"].update(shape=[1, 1, 1, 1]))


def recorded_with_a_number(path):
    _edit_manifest(path, lambda m: m["recorded_with"].update(keras=3))


def unknown_recording_key(path):
    _edit_manifest(path, lambda m: m["recording"].update(note="hello"))


def duplicate_entry(path):
    with zipfile.ZipFile(path / golden.ARRAYS) as z:
        data = z.read("case0003/x.npy")
    with warnings.catch_warnings(), zipfile.ZipFile(path / golden.ARRAYS, "a") as z:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name, and writes it
        z.writestr("case0003/x.npy", data)
    _update_sha(path)


def npy_version_3(path):
    """The same header and data under .npy version 3.0 (a 4-byte header length, UTF-8)."""
    with zipfile.ZipFile(path / golden.ARRAYS) as z:
        data = z.read("case0003/x.npy")
    assert data[6:8] == b"\x01\x00"
    length = struct.unpack("<H", data[8:10])[0]
    v3 = data[:6] + b"\x03\x00" + struct.pack("<I", length) + data[10:]
    rewrite_entries(path, {"case0003/x.npy": ("case0003/x.npy", lambda f: f.write(v3))})


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
    # F4: each once a traceback and exit 1
    deeply_nested: "nested more than 32 levels deep",
    deeply_nested_config: "nested more than 32 levels deep",
    nested_keras_config: "nested more than 32 levels deep",
    recorded_with_a_string: '"recorded_with" must be an object',
    recording_a_string: '"recording" must be an object',
    entry_not_npy: "the entry 'case0003/x.npy' is not a .npy file",
    entry_without_npy_suffix: "the entry 'case0003/x' is not named '<array>.npy'",
    huge_declared_shape: "more than the 67108864 one array may",
    object_dtype_declared: "the dtype must be one of ['float32', 'float64', 'bool']",
    # F5: each once blamed on the engine (exit 1) or not noticed (exit 0)
    keras_config_units: "config and keras_config disagree on `units`",
    keras_config_go_backwards: "config and keras_config disagree on `go_backwards`",
    keras_config_unknown_key: '"keras_config" is not a SimpleRNN config scratch_rnn can build',
    keras_config_empty: '"keras_config" is not a SimpleRNN config scratch_rnn can build',
    config_activation: "config and keras_config disagree on `activation`",
    config_dtype_float64: "\"config\" has `dtype` 'float64', but the case's dtype (its arrays' dtype) is 'float32'",
    bidirectional_inner_units: "config and keras_config disagree on `layer.units`",
    # F23: each once accepted
    format_version_true: "format version True is not supported",
    unknown_top_level_key: "unknown top-level key 'comment'",
    unknown_case_field: "unknown field 'note'",
    seed_not_an_int: '"recording.seed" must be int',
    nan_in_x: "the array 'case0003/x' holds NaN or infinity",
    # what docs/golden.md promises a reader beyond the findings
    arrays_outside_the_directory: '"arrays" must be {"file": <a file name beside the manifest>',
    oversized_manifest: "more than the 16777216 a scratch-rnn-golden manifest may take",
    archive_larger_than_its_arrays: "that the arrays manifest.json lists can take in a zip archive",
    bool_bytes_not_0_or_1: "the entry 'case0001/mask.npy' holds bool bytes other than 0 and 1",
    four_dimensional_shape: "the shape must be a list of at most 3 non-negative ints",
    recorded_with_a_number: '"recorded_with" must be an object of version strings',
    unknown_recording_key: "\"recording\" has an unknown key 'note'",
    duplicate_entry: "the entry 'case0003/x.npy' appears more than once",
    npy_version_3: "the entry 'case0003/x.npy' is a .npy file of version (3, 0); this reader takes 1.0 and 2.0",
    inf_in_outputs: "the array 'case0003/outputs/0' holds NaN or infinity",
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


class Payload:
    """Unpickling this runs ``open(marker, "w")``: if the marker exists, a recording ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_entry_is_refused_and_never_unpickled(recording, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    payload = np.array([Payload(marker)] * 4, dtype=object)
    buffer = io.BytesIO()
    np.save(buffer, payload, allow_pickle=True)
    with zipfile.ZipFile(recording / golden.ARRAYS) as z:
        size = z.getinfo("case0003/x.npy").file_size
    assert len(buffer.getvalue()) < size  # within the entry's size bound: the header is what refuses it
    rewrite_entries(recording, {"case0003/x.npy": ("case0003/x.npy", lambda f: f.write(buffer.getvalue()))})
    with pytest.raises(GoldenFileError, match=r"has shape \[4\] and dtype object, but the manifest records"):
        golden.load(recording)
    assert cli(["check", str(recording)]) == 2
    assert not marker.exists()


def test_a_path_that_is_neither_a_directory_nor_a_file_is_not_a_directory(capsys):
    with pytest.raises(GoldenFileError, match="/dev/null: not a directory"):
        golden.load("/dev/null")
    assert cli(["check", "/dev/null"]) == 2


# --- F6: sizes are checked before anything is decompressed -------------------------------------


@pytest.mark.parametrize("bomb", [zip_bomb, trailing_bomb], ids=["header-declares-200MB", "200MB-after-a-small-header"])
def test_a_zip_bomb_is_refused_before_it_is_inflated(recording, bomb, capsys):
    """The entry's declared size is bounded by the manifest's shape before a byte is inflated (a header that
    disagrees with the manifest within that bound is refused before the data is read: wrong_shape above)."""
    bomb(recording)
    assert (recording / golden.ARRAYS).stat().st_size < 2_000_000  # 200 MB of zeros, deflated
    tracemalloc.start()
    try:
        with pytest.raises(GoldenFileError, match="case0003/x") as info:
            golden.load(recording)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "inflates to 209715328 bytes" in str(info.value) and "refused before decompressing it" in str(info.value)
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MB while refusing a bomb"
    assert cli(["check", str(recording)]) == 2


# --- F7, F8: where record writes ----------------------------------------------------------------


def test_record_refuses_a_directory_that_holds_something_else(tmp_path, capsys):
    """No Keras is imported: the output directory is checked first."""
    webapp = tmp_path / "webapp"
    webapp.mkdir()
    (webapp / "manifest.json").write_text('{"name": "my web app"}')
    with pytest.raises(ValueError, match="not empty .manifest.json. and holds no scratch-rnn-golden recording"):
        golden.record(webapp, layers=["SimpleRNN"], examples=1)
    argv = ["record", "--layer", "SimpleRNN", "--examples", "1", "--out"]
    assert cli([*argv, str(webapp)]) == 2
    assert "--force" in flat(capsys.readouterr().out)
    assert (webapp / "manifest.json").read_text() == '{"name": "my web app"}'
    assert cli([*argv, ""]) == 2
    assert "must name a directory, got ''" in flat(capsys.readouterr().out)
    with pytest.raises(ValueError, match="must name a directory"):
        golden.record("", layers=["SimpleRNN"], examples=1)


def test_what_record_may_write_into(tmp_path):
    assert golden.check_output_directory(tmp_path / "new") == tmp_path / "new"  # created by record
    assert golden.check_output_directory(tmp_path) == tmp_path  # empty
    shutil.copytree(SHIPPED, tmp_path / "again")
    (tmp_path / "again" / "README").write_text("notes")
    assert golden.check_output_directory(tmp_path / "again") == tmp_path / "again"  # a recording, to re-record
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="force"):
        golden.check_output_directory(tmp_path / "other")
    assert golden.check_output_directory(tmp_path / "other", force=True) == tmp_path / "other"
    with pytest.raises(ValueError, match="not a directory"):
        golden.check_output_directory(tmp_path / "other" / "notes.txt", force=True)


def test_record_never_follows_a_planted_temporary_file(keras, tmp_path):
    """The old temporary names (``.<name>.<pid>.tmp``) and a few guesses, each a symlink to a file outside."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    shutil.copytree(SHIPPED, out)  # a recording: record may write here without force
    outside.mkdir()
    planted = {}
    for target in (golden.MANIFEST, golden.ARRAYS):
        for name in (f".{target}.{os.getpid()}.tmp", f".{target}.tmp", f"{target}.tmp", f".{target}"):
            victim = outside / f"victim-{len(planted)}"
            victim.write_text("untouched")
            (out / name).symlink_to(victim)
            planted[name] = victim
    golden.record(out, layers=["SimpleRNN"], dtypes=["float32"], examples=1, seed=3)
    assert all(victim.read_text() == "untouched" for victim in planted.values())
    assert sorted(p.name for p in outside.iterdir()) == sorted(v.name for v in planted.values())
    for target in (golden.MANIFEST, golden.ARRAYS):
        assert not (out / target).is_symlink() and (out / target).stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert sorted(p.name for p in out.iterdir()) == sorted([golden.MANIFEST, golden.ARRAYS, *planted])
    assert [g.id for g in golden.load(out).cases] == ["case0000"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- F1, F20, F21: whatever a candidate does is its own failure --------------------------------


def exits(config, weights, x, mask=None, initial_state=None):
    sys.exit(0)


def exits_with_a_message(config, weights, x, mask=None, initial_state=None):
    raise SystemExit("x")


def interrupts(config, weights, x, mask=None, initial_state=None):
    raise KeyboardInterrupt


def parses_arguments(config, weights, x, mask=None, initial_state=None):
    import argparse

    argparse.ArgumentParser(prog="port").parse_args(["--unknown"])


@pytest.mark.parametrize(
    "candidate, said",
    [
        (exits, "the candidate raised: SystemExit: 0 (the candidate exited"),
        (exits_with_a_message, "the candidate raised: SystemExit: x (the candidate exited"),
        (interrupts, "the candidate raised: KeyboardInterrupt (raised inside the candidate"),
        (parses_arguments, "the candidate raised: SystemExit: 2"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_a_candidate_that_exits_or_interrupts_fails_its_cases(candidate, said, capsys):
    result = golden.check(SHIPPED, candidate, layers=["SimpleRNN"], ids=["case0003", "case0004"])
    assert not result.ok and len(result.failures) == 2
    assert said in result.failures[0].message


@pytest.fixture
def hung():
    """A candidate that does not return until the test ends, and how many times it was called."""
    release, calls = threading.Event(), []

    def hangs(config, weights, x, mask=None, initial_state=None):
        calls.append(None)
        release.wait(60)

    yield hangs, calls
    release.set()


def test_a_candidate_that_does_not_return_fails_and_the_check_stops(hung):
    hangs, calls = hung
    start = time.perf_counter()
    result = golden.check(SHIPPED, hangs, layers=["SimpleRNN"], timeout=0.5)
    assert time.perf_counter() - start < 5
    assert len(calls) == 1 and not result.ok and [r.examples for r in result.reports] == [1]
    (failure,) = result.failures
    assert "the candidate did not return within 0.5 s" in failure.message
    assert "the check stopped there, 11 later cases not run" in failure.reproducer


def test_a_ctrl_c_of_the_harness_still_stops_it():
    """A real SIGINT reaches the main thread while it waits for the candidate: it propagates, never a failure."""
    seen, release = [], threading.Event()

    def slow(config, weights, x, mask=None, initial_state=None):
        seen.append(None)
        if len(seen) == 1:  # once: the worker goes on to a stateful case's second call after the test
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            release.wait(30)

    try:
        with pytest.raises(KeyboardInterrupt):
            golden.check(SHIPPED, slow, layers=["SimpleRNN"], timeout=30)
        assert len(seen) == 1  # reported by nobody: the interrupt went straight out
    finally:
        release.set()


@pytest.mark.parametrize("timeout", [0, -1, True, "5", float("nan"), float("inf")])
def test_check_refuses_a_bad_timeout(timeout):
    with pytest.raises(ValueError, match="`timeout`"):
        golden.check(SHIPPED, engine_candidate("SimpleRNN"), timeout=timeout)


def test_check_refuses_a_candidate_that_is_not_callable():
    with pytest.raises(ValueError, match="`candidate`"):
        golden.check(SHIPPED, "my_port:gru")


EXITS_AT_IMPORT = {
    "import sys\ndef port(*args): pass\nsys.exit(0)\n": "exited (SystemExit: 0)",
    "import sys\ndef main(): return 0\ndef port(*args): pass\nsys.exit(main())\n": "exited (SystemExit: 0)",
    "raise SystemExit('done porting')\n": "exited (SystemExit: done porting)",
    "import argparse\nargparse.ArgumentParser().add_argument('--mine', required=True)\n": None,  # fine: not parsed
    "import argparse\np = argparse.ArgumentParser(prog='port')\np.add_argument('--mine', required=True)\n"
    "p.parse_args()\n": "exited (SystemExit: 2) while being imported; it printed: 'usage: port [-h] --mine MINE port:",
    "raise KeyboardInterrupt\n": "the candidate module raised KeyboardInterrupt",
}


@pytest.mark.parametrize("source", EXITS_AT_IMPORT, ids=range(len(EXITS_AT_IMPORT)))
def test_a_candidate_module_that_exits_at_import_is_unusable(candidate_module, source, capsys):
    name = candidate_module(source + "def port(*args):\n    pass\n")
    said = EXITS_AT_IMPORT[source]
    if said is None:
        assert callable(load_candidate(f"{name}:port"))
        return
    with pytest.raises(CandidateError) as info:
        load_candidate(f"{name}:port")
    assert said in str(info.value) and f"Importing module '{name}'" in str(info.value)
    assert "usage:" not in capsys.readouterr().err  # quoted in the error, not printed as if scratch-rnn's own
    assert cli(["check", str(SHIPPED), "--candidate", f"{name}:port", "--layer", "SimpleRNN"]) == 2
    assert "the candidate module" in flat(capsys.readouterr().out)


def test_check_a_candidate_without_layer_exits_2(capsys):
    assert cli(["check", str(SHIPPED), "--candidate", "scratch_rnn.testing.runners:engine_candidate"]) == 2
    assert "a --candidate implements one layer; name it with --layer" in capsys.readouterr().err
    argv = ["check", str(SHIPPED), "--candidate", "scratch_rnn.testing.runners:engine_candidate", "--layer"]
    assert cli([*argv, "SimpleRNN", "--layer", "GRU"]) == 2


# --- report numbers: a failing case is folded in ----------------------------------------------


def test_a_failing_row_shows_its_margin():
    """max_margin above 1 for a value mismatch, inf for a candidate that raised; 0 failures keep it <= 1."""
    result = golden.check(SHIPPED, without_bias, layers=["SimpleRNN"])
    assert all(r.max_margin > 1 and r.max_abs_error > 0 for r in result.reports if r.failures)
    result = golden.check(SHIPPED, exits, layers=["SimpleRNN"], ids=["case0003"])
    assert [r.max_margin for r in result.reports] == [np.inf]
    assert all(r.max_margin <= 1 for r in golden.check(SHIPPED).reports)
