"""Naming a candidate on the command line: ``--candidate package.module:function``.

The function is a candidate as :mod:`scratch_rnn.testing.verify` defines it:
``candidate(config, weights, x, mask=None, initial_state=None)``, given Keras's
``get_config()`` dict and ``get_weights()`` list. The part after the colon may
be dotted (``module:Class.method``). As with uvicorn and gunicorn, the current
directory is importable, so ``--candidate my_port:simple_rnn`` finds
``./my_port.py``.
"""

from __future__ import annotations

import importlib
import os
import sys

from scratch_rnn.testing.errors import one_line


class CandidateError(ValueError):
    """The ``--candidate`` spec cannot be turned into a callable; the message says why."""


def load_candidate(spec: str):
    """The callable named by ``spec`` (``"package.module:function"``); a :class:`CandidateError` otherwise."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise CandidateError(f"Argument `candidate` must look like 'package.module:function', got {spec!r}.")
    module_name, attribute = spec.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    importlib.invalidate_caches()  # a module written a moment ago is found
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # not found; or a syntax error or a failing import inside the candidate's module
        missing = err.name if isinstance(err, ModuleNotFoundError) else None
        if missing is not None and (missing == module_name or module_name.startswith(f"{missing}.")):
            raise CandidateError(
                f"Cannot import module {module_name!r} for candidate {spec!r}: no module named "
                f"{missing!r} (searched the current directory and sys.path)."
            ) from None
        raise CandidateError(
            f"Importing module {module_name!r} for candidate {spec!r} failed: {one_line(err)}"
        ) from None
    parts = attribute.split(".")
    for i, part in enumerate(parts):
        if not hasattr(obj, part):
            where = f"module {module_name!r}" if i == 0 else repr(f"{module_name}:{'.'.join(parts[:i])}")
            raise CandidateError(f"Candidate {spec!r} not found: {where} has no attribute {part!r}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CandidateError(
            f"Candidate {spec!r} must be callable as candidate(config, weights, x, mask, "
            f"initial_state), got a {type(obj).__name__}: {obj!r:.80}."
        )
    return obj
