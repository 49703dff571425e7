"""Naming a candidate on the command line: ``--candidate package.module:function``.

The function is a candidate as :mod:`scratch_rnn.testing.verify` defines it:
``candidate(config, weights, x, mask=None, initial_state=None)``, given Keras's
``get_config()`` dict and ``get_weights()`` list. The part after the colon may
be dotted (``module:Class.method``). As with uvicorn and gunicorn, the current
directory is importable, so ``--candidate my_port:simple_rnn`` finds
``./my_port.py``.

Importing the module is the candidate's code running: whatever it raises, ``SystemExit`` (a port
script's ``sys.exit(main())``, or its argparse refusing scratch-rnn's arguments) and
``KeyboardInterrupt`` included, is a :class:`CandidateError` saying the candidate module did it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
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
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            obj = importlib.import_module(module_name)
    except BaseException as err:  # the module's own code raised or exited: the candidate's failure
        raise _import_error(err, spec, module_name, printed.getvalue()) from None
    _replay(printed.getvalue())
    parts = attribute.split(".")
    for i, part in enumerate(parts):
        try:
            found = hasattr(obj, part)
            obj = getattr(obj, part) if found else obj
        except BaseException as err:  # a module __getattr__ or a descriptor of the candidate's
            raise CandidateError(f"Looking up candidate {spec!r} raised {one_line(err)}") from None
        if not found:
            where = f"module {module_name!r}" if i == 0 else repr(f"{module_name}:{'.'.join(parts[:i])}")
            raise CandidateError(f"Candidate {spec!r} not found: {where} has no attribute {part!r}.")
    if not callable(obj):
        raise CandidateError(
            f"Candidate {spec!r} must be callable as candidate(config, weights, x, mask, "
            f"initial_state), got a {type(obj).__name__}: {obj!r:.80}."
        )
    return obj


def _import_error(err: BaseException, spec: str, module_name: str, printed: str) -> CandidateError:
    """Why importing the candidate's module failed, in words that cannot pass for scratch-rnn's own error."""
    missing = err.name if isinstance(err, ModuleNotFoundError) else None
    if missing is not None and (missing == module_name or module_name.startswith(f"{missing}.")):
        _replay(printed)
        return CandidateError(
            f"Cannot import module {module_name!r} for candidate {spec!r}: no module named "
            f"{missing!r} (searched the current directory and sys.path)."
        )
    if isinstance(err, SystemExit):
        said = " ".join(printed.split())
        said = f"; it printed: {said[-300:]!r}" if said else ""
        return CandidateError(
            f"Importing module {module_name!r} for candidate {spec!r} failed: the candidate module exited "
            f"({one_line(err)}) while being imported{said}. A port script's `sys.exit(main())` or argument "
            'parsing belongs under `if __name__ == "__main__":`.'
        )
    _replay(printed)
    what = "raised KeyboardInterrupt" if isinstance(err, KeyboardInterrupt) else f"raised {one_line(err)}"
    return CandidateError(
        f"Importing module {module_name!r} for candidate {spec!r} failed: the candidate module {what}"
    )


def _replay(printed: str) -> None:
    """What the candidate's module printed while imported, on stderr (stdout is the command's report)."""
    if printed:
        sys.stderr.write(printed)
