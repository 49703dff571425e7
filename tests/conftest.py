import numpy as np
import pytest


@pytest.fixture(scope="session")
def keras():
    from scratch_rnn.testing.runners import import_keras

    return import_keras()


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


pytest_plugins = ["pytester"]
