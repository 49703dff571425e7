"""The ``scratch-rnn`` command line: a passing sweep, a table, exit codes, and defaults taken from the library."""

import functools
import importlib
import inspect
import shutil
import subprocess
import sys

import pytest

from scratch_rnn import bench
from scratch_rnn.cli import build_parser, main
from scratch_rnn.testing import golden
from scratch_rnn.testing.check import CaseResult
from scratch_rnn.testing.verify import verify

verify_module = importlib.import_module(
    "scratch_rnn.testing.verify"
)  # the module: the package's `verify` is the function


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_verify_passes_and_prints_the_table(keras, capsys):
    code = main(["verify", "--examples", "4", "--seed", "5", "--layer", "SimpleRNN", "--dtype", "both"])
    out = capsys.readouterr().out
    assert code == 0, out
    for word in (
        "SimpleRNN",
        "float32",
        "float64",
        "weak",
        "max |err|",
        "max rel err",
        "max err/tol",
        "failures",
        "All cases agree with Keras.",
    ):
        assert word in out
    # not a terminal: no progress bar, a line per sweep as it starts (a CI log shows where a run is)
    assert "SimpleRNN float32: 4 cases ...\nSimpleRNN float64: 4 cases ..." in out


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--examples", "0"],
        ["verify", "--examples", "many"],
        ["verify", "--dtype", "float16"],
        ["verify", "--layer", "ConvLSTM1D"],
        ["verify", "--timeout", "0"],
        ["verify", "--timeout", "nan"],
        ["check", "x", "--timeout", "-1"],
        ["check", "x", "--timeout", "inf"],
        ["record"],  # --out is required
        ["record", "--out", "x", "--examples", "0"],
        ["check"],  # the recording is required
        ["check", "x", "--layer", "ConvLSTM1D"],
        ["bench", "--shapes", "8x10"],
        ["bench", "--repeats", "0"],
        ["bench", "--against", "jax"],
        ["bench", "--sample-ms", "-1"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: scratch-rnn" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "record", "check", "bench"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: scratch-rnn {command}" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = shutil.which("scratch-rnn") or str(__import__("pathlib").Path(sys.executable).with_name("scratch-rnn"))
    result = subprocess.run([exe, "verify", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--examples" in result.stdout


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "scratch_rnn.cli", "bench", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "--sample-ms" in result.stdout


def test_defaults_are_the_librarys_own():
    """The command line restates no default of verify, golden.record or bench.benchmark: it reads their signatures."""
    parser = build_parser()

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    args = parser.parse_args(["verify"])
    assert args.examples == default(verify, "max_examples") and args.seed == default(verify, "seed")
    assert args.reference == default(verify, "reference") and args.timeout == default(verify, "timeout")
    assert parser.parse_args(["check", "somewhere"]).timeout == default(golden.check, "timeout")
    assert not args.reference_step and default(verify, "fast") is True
    args = parser.parse_args(["record", "--out", "somewhere"])
    assert (args.examples, args.seed) == (default(golden.record, "examples"), default(golden.record, "seed"))
    assert args.force is default(golden.record, "force") is False
    args = parser.parse_args(["bench"])
    assert (args.layers, args.shapes, args.against) == tuple(
        list(default(bench.benchmark, name)) for name in ("layers", "shapes", "against")
    )
    names = ("repeats", "threads", "dtype", "sample_seconds", "settle_seconds")
    assert [getattr(args, name) for name in names] == [default(bench.benchmark, name) for name in names]
    args = parser.parse_args(["bench", "--sample-ms", "1", "--settle-ms", "0"])
    assert (args.sample_seconds, args.settle_seconds) == (0.001, 0.0)  # milliseconds on the command line


def test_shapes_are_parsed_or_refused(capsys):
    parser = build_parser()
    assert parser.parse_args(["bench", "--shapes", "8x10x4x8", "(2, 3, 4, 5)"]).shapes == [(8, 10, 4, 8), (2, 3, 4, 5)]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--shapes", "8x10"])
    assert "expected BxTxFxU" in capsys.readouterr().err


# --- verify ---------------------------------------------------------------------------------


def test_verify_the_reference_step(keras, capsys):
    code = main(
        ["verify", "--reference-step", "--examples", "3", "--seed", "1", "--layer", "GRU", "--dtype", "float32"]
    )
    out = flat(capsys.readouterr().out)
    assert code == 0, out
    assert "scratch_rnn engine (reference step) vs Keras" in out and "All cases agree with Keras." in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--reference-step", "--candidate", "scratch_rnn.testing.runners:engine_candidate", "--layer", "GRU"],
        ["--reference-step", "--mutants"],
    ],
)
def test_the_reference_step_is_the_engines_only(argv, capsys):
    assert main(["verify", "--examples", "1", *argv]) == 2
    assert "--reference-step" in capsys.readouterr().err


PORT = """
from scratch_rnn.testing.runners import engine_candidate

gru = engine_candidate('GRU')

def broken(config, weights, x, mask=None, initial_state=None):
    raise RuntimeError("not ported yet")
"""


def test_verify_a_candidate_named_on_the_command_line(keras, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_port.py").write_text(PORT)
    monkeypatch.chdir(tmp_path)

    @functools.wraps(verify)
    def unshrunk(*args, **kwargs):  # a failure as generated: shrinking one would take 20 s of Keras calls
        return verify(*args, **kwargs, shrink_seconds=0)

    monkeypatch.setattr(verify_module, "verify", unshrunk)
    argv = ["verify", "--layer", "GRU", "--examples", "3", "--seed", "1", "--dtype", "float32", "--candidate"]
    assert main([*argv, "my_port:gru"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main([*argv, "my_port:broken"]) == 1
    out = flat(capsys.readouterr().out)
    assert "the candidate raised" in out and "not ported yet" in out and "Mismatch: see above." in out
    row = out.split("│ GRU")[1].split("│")[1:11]  # dtype, cases, skipped, weak, max |err|, rel, err/tol p50, p99,
    # max, failures
    assert [cell.strip() for cell in row] == ["float32", "1", "0", "0", "inf", "inf", "inf", "inf", "inf", "1"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--candidate", "no_such_module:f", "--layer", "GRU"], "no module named 'no_such_module'"),
        (["--candidate", "not-a-spec", "--layer", "GRU"], "must look like 'package.module:function'"),
        (["--candidate", "scratch_rnn:__version__", "--layer", "GRU"], "must be callable"),
        (["--candidate", "scratch_rnn.testing.runners:engine_candidate"], "name it with --layer"),
        (["--candidate", "scratch_rnn.testing.runners:engine_candidate", "--mutants"], "not a --candidate"),
    ],
)
def test_an_unusable_candidate_exits_2(keras, argv, message, capsys):
    assert main(["verify", "--examples", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_arguments_verify_refuses_exit_2(keras, monkeypatch, capsys):
    @functools.wraps(verify)
    def refusing(*args, **kwargs):
        raise ValueError("Argument `max_examples` must be an int in [1, 1000000], got 2000000.")

    monkeypatch.setattr(verify_module, "verify", refusing)
    assert main(["verify", "--examples", "2000000", "--layer", "GRU"]) == 2
    assert "scratch-rnn verify: Argument `max_examples` must be" in capsys.readouterr().err


def test_verify_mutants_prints_the_kill_table(keras, capsys):
    code = main(["verify", "--mutants", "--layer", "Bidirectional", "--dtype", "float32"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "backward" in out and "mutants, float32: up to 100 cases each ..." in out


def test_a_bad_reference_in_the_environment_exits_2(monkeypatch, capsys):
    """Refused before Keras is imported: no traceback, exit 2 (it was a ValueError and exit 1)."""
    monkeypatch.setenv("SCRATCH_RNN_REFERENCE", "bogus")
    assert main(["verify", "--layer", "SimpleRNN", "--examples", "1"]) == 2
    assert "$SCRATCH_RNN_REFERENCE is 'bogus'; expected one of keras, tf_keras" in capsys.readouterr().err


@pytest.mark.parametrize("timeout", [0, -1.0, True, "60", float("nan"), float("inf")])
def test_verify_refuses_a_bad_timeout_before_running_anything(timeout):
    with pytest.raises(ValueError, match="`timeout`"):
        verify(layer="SimpleRNN", max_examples=1, timeout=timeout)


# --- record and bench exit codes (check's are in test_golden.py) -------------------------------


def test_record_exits_1_when_the_engine_disagrees_with_keras(keras, tmp_path, monkeypatch, capsys):
    def disagreeing(case, reference, candidate=None):
        return CaseResult(case, error="planted disagreement")

    monkeypatch.setattr(golden, "check_against", disagreeing)
    argv = ["record", "--out", str(tmp_path), "--layer", "SimpleRNN", "--dtype", "float32", "--examples", "1"]
    assert main(argv) == 1
    out = flat(capsys.readouterr().out)
    assert "The engine disagrees with Keras (recorded anyway)" in out and "planted disagreement" in out
    assert golden.load(tmp_path).cases  # recorded anyway: the recording is Keras's truth


def test_record_into_a_file_exits_2(keras, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["record", "--out", str(tmp_path / "file"), "--layer", "SimpleRNN", "--examples", "1"]) == 2
    assert "error:" in capsys.readouterr().out


def test_bench_exits_1_when_a_candidate_disagrees(monkeypatch, capsys):
    @functools.wraps(bench.benchmark)  # the parser reads its defaults from this signature
    def disagreeing(*args, **kwargs):
        raise bench.Disagreement("GRU (2, 3, 4, 5): torch differs from scratch by 0.5")

    monkeypatch.setattr(bench, "benchmark", disagreeing)
    assert main(["bench"]) == 1
    assert "torch differs from scratch" in capsys.readouterr().out


# --- a missing extra is exit 2 and the install line --------------------------------------------

BLOCKING = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # any import of these now raises ImportError
from scratch_rnn.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "blocked, argv, message",
    [
        ("keras", ["verify"], "scratch-rnn verify needs keras: pip install 'scratch-rnn[verify]'"),
        ("hypothesis", ["verify"], "scratch-rnn verify needs hypothesis: pip install 'scratch-rnn[verify]'"),
        ("tf_keras", ["verify", "--reference", "tf_keras"], "pip install 'scratch-rnn[keras2]'"),
        ("keras", ["record", "--out", "unused"], "scratch-rnn record needs keras: pip install 'scratch-rnn[verify]'"),
        ("rich", ["check", "unused"], "scratch-rnn check needs rich: pip install 'scratch-rnn[verify]'"),
        ("threadpoolctl", ["bench"], "scratch-rnn bench needs threadpoolctl: pip install 'scratch-rnn[bench]'"),
        ("torch", ["bench", "--against", "torch"], "scratch-rnn bench needs torch: pip install 'scratch-rnn[bench]'"),
    ],
)
def test_a_missing_extra_exits_2_with_the_install_line(blocked, argv, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", BLOCKING, blocked, *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
