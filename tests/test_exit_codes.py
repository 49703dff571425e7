"""Every command's exit status, for each way a candidate or a recording can go wrong: the README's table.

0: every case agreed. 1: a mismatch; a candidate that computes wrong values, or raises, exits, is
interrupted or hangs when called, is a mismatch. 2: bad arguments, an unusable candidate (missing, not
callable, exiting or raising at import) or recording (corrupt, a zip bomb, config and keras_config
disagreeing), a missing extra (tests/test_cli.py holds those rows).

The command line runs in-process (``scratch_rnn.cli.main``); three rows run it as a process, to prove the
status the shell sees. ``verify`` and ``record`` rows need Keras (the ``keras`` fixture) unless refused
before Keras is imported; ``check`` and ``bench`` rows need NumPy only.
"""

import functools
import hashlib
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import require
from test_golden import SHIPPED, truncated_npz, zip_bomb

from scratch_rnn import bench
from scratch_rnn.cli import main
from scratch_rnn.testing import golden
from scratch_rnn.testing.check import CaseResult

PORT = """
import sys
import threading

import numpy as np

from scratch_rnn import SimpleRNN
from scratch_rnn.testing.runners import engine_candidate

correct = engine_candidate("SimpleRNN")
RELEASE = threading.Event()  # set when the test ends: a hung candidate's thread then returns
# The engine's first calls load (or, with a cold numba cache, compile) its compiled loop, for seconds: paid here,
# at import, not inside the 1 s the tests give each call.
for dtype in ("float32", "float64"):
    SimpleRNN(2, dtype=dtype)(np.ones((1, 2, 3), dtype), mask=np.ones((1, 2), bool))
    SimpleRNN(2, dtype=dtype, return_sequences=True)(np.ones((1, 2, 3), dtype))


def wrong(config, weights, x, mask=None, initial_state=None):
    out = correct(config, weights, x, mask, initial_state)
    return [o + 1 for o in out] if isinstance(out, (list, tuple)) else out + 1


def raises(config, weights, x, mask=None, initial_state=None):
    raise RuntimeError("not ported yet")


def exits(config, weights, x, mask=None, initial_state=None):
    sys.exit(0)


def exits_with_a_message(config, weights, x, mask=None, initial_state=None):
    raise SystemExit("x")


def interrupts(config, weights, x, mask=None, initial_state=None):
    raise KeyboardInterrupt


def hangs(config, weights, x, mask=None, initial_state=None):
    RELEASE.wait(60)


not_callable = 42
"""

#: Candidate modules that cannot be imported: a port script that exits, or parses its own arguments.
AT_IMPORT = {
    "exits_at_import": "import sys\n\ndef port(*args):\n    pass\n\nsys.exit(0)\n",
    "parses_arguments_at_import": "import argparse\n\np = argparse.ArgumentParser()\n"
    "p.add_argument('--mine', required=True)\np.parse_args()\n",
}

#: ``(row, candidate, status)``: the same for ``verify`` and ``check``.
CANDIDATES = [
    ("correct", "port:correct", 0),
    ("wrong values", "port:wrong", 1),
    ("raises at call", "port:raises", 1),
    ("sys.exit(0) at call", "port:exits", 1),
    ('SystemExit("x") at call', "port:exits_with_a_message", 1),
    ("KeyboardInterrupt at call", "port:interrupts", 1),
    ("hangs (--timeout 1)", "port:hangs", 1),
    ("sys.exit(0) at import", "exits_at_import:port", 2),
    ("argparse at import", "parses_arguments_at_import:port", 2),
    ("not callable", "port:not_callable", 2),
    ("module missing", "no_such_module_xyz:port", 2),
]


def status(argv) -> int:
    """``scratch-rnn argv``'s exit status, argparse's refusals (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.fixture
def candidate(tmp_path, monkeypatch):
    """``candidate("port:wrong")``: the spec of that function in modules written to the current directory,
    named uniquely for the test; a hung candidate is released and the modules forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    suffix = "_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)
    for name, source in {"port": PORT, **AT_IMPORT}.items():
        (tmp_path / f"{name}{suffix}.py").write_text(source)
    yield lambda spec: spec if spec.startswith("no_such") else spec.replace(":", f"{suffix}:")
    port = sys.modules.get(f"port{suffix}")
    if port is not None:
        port.RELEASE.set()
    for name in ("port", *AT_IMPORT):
        sys.modules.pop(f"{name}{suffix}", None)


@pytest.fixture
def unshrunk(monkeypatch):
    """verify without shrinking: a failure as generated (shrinking one replays Keras for up to a minute)."""
    module = importlib.import_module("scratch_rnn.testing.verify")
    verify = module.verify

    @functools.wraps(verify)
    def first_failure(*args, **kwargs):
        return verify(*args, **kwargs, shrink_seconds=0)

    monkeypatch.setattr(module, "verify", first_failure)


def update_sha(path):
    manifest = json.loads((path / golden.MANIFEST).read_text())
    manifest["arrays"]["sha256"] = hashlib.sha256((path / golden.ARRAYS).read_bytes()).hexdigest()
    (path / golden.MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def tiny(tmp_path):
    """Two SimpleRNN float32 cases of the shipped recording (one stateful, one returning its state)."""
    path = tmp_path / "tiny"
    path.mkdir()
    manifest = json.loads((SHIPPED / golden.MANIFEST).read_text())
    manifest["cases"] = [c for c in manifest["cases"] if c["id"] in ("case0000", "case0003")]
    with np.load(SHIPPED / golden.ARRAYS, allow_pickle=False) as npz:
        np.savez_compressed(path / golden.ARRAYS, **{n: npz[n] for c in manifest["cases"] for n in c["arrays"]})
    (path / golden.MANIFEST).write_text(json.dumps(manifest))
    update_sha(path)
    return path


# --- candidates: verify and check ---------------------------------------------------------------


@pytest.mark.parametrize("row, spec, expected", CANDIDATES, ids=[row for row, _, _ in CANDIDATES])
def test_verify_a_candidate(keras, candidate, unshrunk, row, spec, expected, capsys):
    argv = ["verify", "--layer", "SimpleRNN", "--dtype", "float32", "--examples", "3", "--seed", "1"]
    assert status([*argv, "--timeout", "1", "--candidate", candidate(spec)]) == expected, capsys.readouterr()


@pytest.mark.parametrize("row, spec, expected", CANDIDATES, ids=[row for row, _, _ in CANDIDATES])
def test_check_a_candidate(tiny, candidate, row, spec, expected, capsys):
    argv = ["check", str(tiny), "--layer", "SimpleRNN", "--timeout", "1", "--candidate", candidate(spec)]
    assert status(argv) == expected, capsys.readouterr()


@pytest.mark.parametrize(
    "spec, expected, said",
    [
        ("port:exits", 1, "the candidate raised: SystemExit: 0"),
        ("exits_at_import:port", 2, "the candidate module exited (SystemExit: 0)"),
        ("parses_arguments_at_import:port", 2, "the candidate module exited (SystemExit: 2)"),
    ],
)
def test_the_shell_sees_the_same_status(tiny, candidate, spec, expected, said):
    """As a process: an exit inside the candidate is never the command's own exit (it was 0, or argparse's 2)."""
    argv = ["check", str(tiny), "--layer", "SimpleRNN", "--candidate", candidate(spec)]
    result = subprocess.run(
        [sys.executable, "-m", "scratch_rnn.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == expected, result.stdout + result.stderr
    assert said in " ".join(result.stdout.split()) and "usage:" not in result.stderr


# --- the engine: verify, verify --mutants -------------------------------------------------------

SWEEP = ["--layer", "SimpleRNN", "--dtype", "float32"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["verify", *SWEEP, "--examples", "3"], 0),
        (["verify", *SWEEP, "--mutants"], 0),  # every mutant killed (the slowest takes 58 cases)
        (["verify", *SWEEP, "--mutants", "--examples", "2"], 1),  # some survive 2 cases
    ],
    ids=["engine agrees", "every mutant killed", "a mutant survives"],
)
def test_verify_the_engine(keras, argv, expected, capsys):
    assert status(argv) == expected, capsys.readouterr()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["verify", *SWEEP, "--examples", "0"], 2),
        (["verify", *SWEEP, "--timeout", "0"], 2),
        (["verify", *SWEEP, "--mutants", "--candidate", "json:loads"], 2),
        (["verify", "--candidate", "scratch_rnn.testing.runners:engine_candidate"], 2),  # no --layer
    ],
    ids=["--examples 0", "--timeout 0", "--mutants with --candidate", "--candidate without --layer"],
)
def test_verify_refuses_before_keras(argv, expected, capsys):
    assert status(argv) == expected, capsys.readouterr()


def test_verify_with_a_bad_reference_in_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("SCRATCH_RNN_REFERENCE", "bogus")
    assert status(["verify", *SWEEP, "--examples", "1"]) == 2, capsys.readouterr()


# --- recordings: check -------------------------------------------------------------------------


def config_disagrees(path):
    manifest = json.loads((path / golden.MANIFEST).read_text())
    manifest["cases"][1]["keras_config"]["units"] += 1
    (path / golden.MANIFEST).write_text(json.dumps(manifest))


def edit_array(name, change):
    def edit(path):
        with np.load(path / golden.ARRAYS, allow_pickle=False) as npz:
            arrays = {n: npz[n] for n in npz.files}
        change(arrays[name])
        np.savez_compressed(path / golden.ARRAYS, **arrays)
        update_sha(path)

    return edit


RECORDINGS = [
    ("good", lambda path: None, 0),
    ("truncated archive", truncated_npz, 2),
    ("zip bomb", functools.partial(zip_bomb, megabytes=50), 2),
    ("config and keras_config disagree", config_disagrees, 2),
    ("NaN in x", edit_array("case0003/x", lambda x: x.flat.__setitem__(0, np.nan)), 2),
    ("outputs the engine disagrees with", edit_array("case0003/outputs/0", lambda o: o.__iadd__(0.5)), 1),
]


@pytest.mark.parametrize("row, change, expected", RECORDINGS, ids=[row for row, _, _ in RECORDINGS])
def test_check_a_recording(tiny, row, change, expected, capsys):
    change(tiny)
    assert status(["check", str(tiny)]) == expected, capsys.readouterr()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["check", "/dev/null"], 2),
        (["check", "{tiny}", "--case", "case9999"], 2),
        (["check", "{tiny}", "--candidate", "scratch_rnn.testing.runners:engine_candidate"], 2),  # no --layer
        (["check", "{tiny}", "--timeout", "0"], 2),
    ],
    ids=["not a directory", "unknown case", "--candidate without --layer", "--timeout 0"],
)
def test_check_refuses(tiny, argv, expected, capsys):
    assert status([arg.format(tiny=tiny) for arg in argv]) == expected, capsys.readouterr()


# --- record ------------------------------------------------------------------------------------

RECORD = ["record", *SWEEP, "--examples", "1", "--out"]


def test_record(keras, tmp_path, capsys):
    assert status([*RECORD, str(tmp_path / "new")]) == 0, capsys.readouterr()
    assert status([*RECORD, str(tmp_path / "new")]) == 0, capsys.readouterr()  # a recording: re-recorded


def test_record_when_the_engine_disagrees_with_keras(keras, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(golden, "check_against", lambda case, *args, **kwargs: CaseResult(case, error="planted"))
    assert status([*RECORD, str(tmp_path / "new")]) == 1, capsys.readouterr()


def test_record_refuses_before_keras(tmp_path, capsys):
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "manifest.json").write_text('{"name": "my web app"}')
    (tmp_path / "file").write_text("")
    for out in (str(tmp_path / "webapp"), "", str(tmp_path / "file")):
        assert status([*RECORD, out]) == 2, capsys.readouterr()
    assert status(["record", *SWEEP, "--examples", "0", "--out", str(tmp_path / "new")]) == 2


# --- bench -------------------------------------------------------------------------------------

BENCH = ["bench", "--layers", "SimpleRNN", "--shapes", "1x2x3x4", "--repeats", "1", "--against"]


def test_bench(capsys):
    require("threadpoolctl")
    assert status([*BENCH, "--sample-ms", "1", "--settle-ms", "0"]) == 0, capsys.readouterr()
    assert status([*BENCH, "--shapes", "1x2"]) == 2


def test_bench_when_the_candidates_disagree(monkeypatch, capsys):
    @functools.wraps(bench.benchmark)  # the parser reads its defaults from this signature
    def disagreeing(*args, **kwargs):
        raise bench.Disagreement("SimpleRNN (1, 2, 3, 4): torch differs from scratch by 0.5")

    monkeypatch.setattr(bench, "benchmark", disagreeing)
    assert status(BENCH) == 1, capsys.readouterr()
