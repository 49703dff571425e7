"""Fixtures, and the ``keras`` marker that separates the tests needing TensorFlow from the quick ones.

Keras is reached one way: the session fixture ``keras`` (``scratch_rnn.testing.runners.import_keras``),
or a fixture built on it (``twin``). No test module imports Keras or TensorFlow at its top, so every
module collects without them.

The ``keras`` marker is applied here, at collection, to every test that needs TensorFlow:

* a test using a fixture of :data:`KERAS_FIXTURES`, directly or through another fixture
  (``item.fixturenames`` holds them all);
* a test marked ``@pytest.mark.keras`` itself, or by its module's ``pytestmark``: for tests that run
  Keras without a Keras object of their own (``scratch_rnn.verify``, the ``scratch-rnn`` command).

``pytest -m "not keras"`` is then the quick NumPy-only lane; without TensorFlow or Keras installed, every
``keras`` test is skipped with the reason. ``PYTHONPATH=tests/block_keras`` blocks both, to prove it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import EXTRAS, randomize, require

import scratch_rnn
from scratch_rnn.testing.hypothesis_internals import seed_only
from scratch_rnn.testing.runners import default_reference

#: Fixtures that import Keras. ``keras_reference`` and ``scratch_rnn_verify`` are the pytest plugin's
#: (scratch_rnn.pytest_plugin).
KERAS_FIXTURES = frozenset({"keras", "keras3", "tf_keras", "keras_reference", "scratch_rnn_verify"})


def keras_missing() -> str | None:
    """Why the ``keras`` tests cannot run here (TensorFlow, Keras 3 or the chosen reference is not
    installed), or None. Looks for the packages without importing them."""
    for module in dict.fromkeys(("tensorflow", "keras", default_reference())):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # blocked (tests/block_keras), or a broken stub in sys.modules
            found = False
        if not found:
            extra = EXTRAS.get(module, "test")
            return f"needs TensorFlow and Keras; {module} is not installed (pip install 'scratch-rnn[{extra}]')"
    return None


def needs_keras(item) -> bool:
    return bool(item.get_closest_marker("keras") or KERAS_FIXTURES.intersection(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by `-m`
def pytest_collection_modifyitems(config, items):
    missing = keras_missing()
    for item in items:
        if needs_keras(item):
            item.add_marker(pytest.mark.keras)
            if missing:
                item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture(scope="session")
def keras():
    """The reference Keras module ($SCRATCH_RNN_REFERENCE: Keras 3 by default), TensorFlow's logs quiet."""
    from scratch_rnn.testing.runners import import_keras

    return import_keras()


@pytest.fixture(scope="session")
def keras3():
    """Keras 3 whatever the reference: what the engine follows where Keras 2 differs."""
    from scratch_rnn.testing.runners import import_keras

    return import_keras("keras")


@pytest.fixture(scope="session")
def tf_keras():
    """Keras 2 (the ``tf_keras`` package, the ``keras2`` extra): skipped without it, except in CI."""
    from scratch_rnn.testing.runners import import_keras

    require("tf_keras")
    return import_keras("tf_keras")


@pytest.fixture
def twin(keras):
    """``twin(name, kwargs, input_shape, dtype, rng)``: a built Keras recurrent layer and its scratch twin,
    the same random weights in both."""

    def make(name: str, kwargs: dict, input_shape, dtype: str, rng):
        keras_layer = getattr(keras.layers, name)(**kwargs, dtype=dtype)
        keras_layer.build(input_shape)
        ours = getattr(scratch_rnn, name)(**kwargs, dtype=dtype)
        ours.set_weights(randomize(keras_layer, rng))
        return keras_layer, ours

    return make


@pytest.fixture(autouse=True)
def _cases_from_the_seed_alone(request):
    """Hypothesis's draws of literals from local modules off, so that a derandomised (``ci``) test
    sees the same cases whichever tests are collected with it (see ``hypothesis_internals.seed_only``)."""
    if request.node.get_closest_marker("local_constants"):  # the test of verify's own guard
        yield
        return
    with seed_only():
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


pytest_plugins = ["pytester"]
