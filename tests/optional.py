"""Kept so that ``from optional import require`` still works (tests/test_bench.py): ``require`` is in helpers.py."""

from helpers import require

__all__ = ["require"]
