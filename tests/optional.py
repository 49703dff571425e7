"""Optional test dependencies: skipped locally when absent, required in CI (which installs them)."""

import importlib
import os

import pytest


def require(module: str):
    """Import ``module``; without it skip the test file, except under CI=true where that is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    extra = {"torch": "bench", "tf_keras": "keras2"}.get(module, "test")
    return pytest.importorskip(module, reason=f"{module} is optional locally (pip install 'scratch-rnn[{extra}]')")
