"""The README's promises that CI relies on, and the quick lane CI runs (tests/conftest.py, tests/block_keras)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    return [line[2:] for line in section.splitlines() if line.startswith("$ ")]


def test_quick_start_holds_exactly_the_two_commands():
    main, tests = quick_start_commands()
    assert main.endswith("scratch-rnn verify") and "pip install" in main
    assert "pytest" in tests and "pip install" in tests


def test_ci_runs_the_quick_start_commands_from_the_readme():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "quickstart 1" in ci and "quickstart 2" in ci and "README.md" in ci


# --- the quick lane: `pytest -m "not keras"`, and the keras tests skipped without Keras --------

TESTS = ROOT / "tests"

KERAS_USERS = """
import pytest

def test_numpy_only():
    pass

def test_keras_fixture(keras):
    raise AssertionError("ran without Keras")

def test_through_another_fixture(twin):
    raise AssertionError("ran without Keras")

@pytest.mark.keras
def test_marked():
    raise AssertionError("ran without Keras")
"""


@pytest.fixture
def suite_without_keras(pytester, monkeypatch):
    """A copy of tests/conftest.py over ``KERAS_USERS``, run with TensorFlow and Keras blocked (tests/block_keras)."""
    pytester.makeini("[pytest]\nmarkers =\n    keras: needs Keras\n    local_constants: unused\n")
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(test_uses=KERAS_USERS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS / "block_keras"), str(TESTS)]))
    return lambda *args: pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", *args)


def test_without_keras_every_keras_test_is_skipped_with_the_reason(suite_without_keras):
    result = suite_without_keras()
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(["*needs TensorFlow and Keras; tensorflow is not installed*"])


def test_not_keras_selects_the_tests_that_need_no_keras(suite_without_keras):
    suite_without_keras("-m", "not keras").assert_outcomes(passed=1, deselected=3)


SPAWN = "import subprocess, sys; sys.exit(subprocess.run([sys.executable, *sys.argv[2:]], cwd=sys.argv[1]).returncode)"


def test_the_blocker_reaches_subprocesses_in_other_directories(tmp_path):
    """CI puts tests/block_keras on PYTHONPATH relative to the checkout: a test's subprocess in another
    directory (pytester's, a tmp_path) is blocked all the same."""
    env = {**os.environ, "PYTHONPATH": os.path.join("tests", "block_keras")}
    command = [sys.executable, "-c", SPAWN, str(tmp_path), "-c", "import keras"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "blocked by" in result.stderr, result.stderr
