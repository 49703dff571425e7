"""Errors in one line: the wording of a quoted exception and of a missing optional dependency.

The harness's messages quote what went wrong inside them (a candidate's import, an
unreadable array); the command line and :mod:`scratch_rnn.testing` say which extra to
install. Both wordings are written here once.
"""

from __future__ import annotations

import traceback


def one_line(err: BaseException) -> str:
    """``err`` as Python prints its last line (``zipfile.BadZipFile: File is not a zip file``), on one line."""
    return " ".join("".join(traceback.format_exception_only(err)).split())


def missing_extra(what: str, extra: str, err: ImportError) -> str:
    """``"<what> needs <module>: pip install 'scratch-rnn[<extra>]'"`` for the failed import ``err``."""
    module = (err.name or "").partition(".")[0]
    needed = module if module else f"the {extra} extra ({one_line(err)})"
    return f"{what} needs {needed}: pip install 'scratch-rnn[{extra}]'"
