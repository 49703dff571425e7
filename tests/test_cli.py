"""The ``scratch-rnn`` command line: a passing sweep, a table, and exit codes."""

import shutil
import subprocess
import sys

import pytest

from scratch_rnn.cli import main


def test_verify_passes_and_prints_the_table(capsys):
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


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--examples", "0"],
        ["verify", "--examples", "many"],
        ["verify", "--dtype", "float16"],
        ["verify", "--layer", "Conv1D"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: scratch-rnn" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = shutil.which("scratch-rnn") or str(__import__("pathlib").Path(sys.executable).with_name("scratch-rnn"))
    result = subprocess.run([exe, "verify", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--examples" in result.stdout


def test_verify_a_candidate_named_on_the_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_port.py").write_text(
        "from scratch_rnn.testing.runners import engine_candidate\ngru = engine_candidate('GRU')\n"
    )
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "verify",
            "--candidate",
            "my_port:gru",
            "--layer",
            "GRU",
            "--examples",
            "3",
            "--seed",
            "1",
            "--dtype",
            "float32",
        ]
    )
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--candidate", "no_such_module:f", "--layer", "GRU"], "no module named 'no_such_module'"),
        (["--candidate", "not-a-spec", "--layer", "GRU"], "must look like 'package.module:function'"),
        (["--candidate", "scratch_rnn:__version__", "--layer", "GRU"], "must be callable"),
        (["--candidate", "scratch_rnn.testing.runners:engine_candidate"], "name it with --layer"),
    ],
)
def test_an_unusable_candidate_exits_2(argv, message, capsys):
    assert main(["verify", "--examples", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_verify_mutants_prints_the_kill_table(capsys):
    code = main(["verify", "--mutants", "--layer", "Bidirectional", "--dtype", "float32"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "backward" in out
