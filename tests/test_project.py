"""The README's promises that CI relies on."""

import re
from pathlib import Path

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
