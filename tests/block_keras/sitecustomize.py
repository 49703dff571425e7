"""Block TensorFlow and Keras in every Python process that has this directory on ``PYTHONPATH``.

The fast lane proves that the tests deselected by ``-m "not keras"`` are all the tests that need
TensorFlow: with this directory on the path, any import of ``tensorflow``, ``keras`` or ``tf_keras``
(or a submodule) raises ``ModuleNotFoundError`` naming this file, in pytest and in every subprocess a
test starts (they inherit ``PYTHONPATH``)::

    PYTHONPATH=tests/block_keras python -m pytest -m "not keras"

Without ``-m "not keras"``, ``tests/conftest.py`` sees no Keras and skips every ``keras`` test with
the reason. Python imports ``sitecustomize`` once at start-up (``site``); this one shadows any other
``sitecustomize`` on the path, which the test lanes do not have.
"""

import os
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras")


class BlockKeras:
    """A ``sys.meta_path`` finder that refuses the blocked top-level packages, whoever imports them."""

    blocked = BLOCKED

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: blocked by {__file__} (the fast lane, without TensorFlow); "
                "a test that needs it must use the `keras` fixture or carry the `keras` marker",
                name=fullname,
            )
        return None


sys.meta_path.insert(0, BlockKeras())

# A subprocess started in another directory (pytester's, a test's tmp_path) must find this file too:
# a relative PYTHONPATH entry for it becomes absolute, and children inherit that.
_here = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    _here if entry and os.path.abspath(entry) == _here else entry
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
)
