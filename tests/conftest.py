import numpy as np
import pytest

from scratch_rnn.testing.hypothesis_internals import seed_only


@pytest.fixture(scope="session")
def keras():
    from scratch_rnn.testing.runners import import_keras

    return import_keras()


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
