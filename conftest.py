"""Test-suite set-up: a quiet TensorFlow on the right backend, and the Hypothesis profiles.

The environment comes first, before anything can import TensorFlow: this is the one place the tests
set it (``scratch_rnn.testing.runners.import_keras`` sets the same defaults for the library's users).

Profiles (choose with HYPOTHESIS_PROFILE, default ``dev``):
  dev  - a quick local run: 25 examples a property, random.
  ci   - derandomised (same cases every run, whatever else is collected: see tests/conftest.py),
         100 examples, failure blobs printed.
  deep - 500 examples, for a release or a Keras upgrade.
Every profile has ``deadline=None``: a Keras call takes tens of milliseconds,
beyond Hypothesis's 200 ms default once a case builds a layer and runs it.
"""

import os

from hypothesis import HealthCheck, settings  # Hypothesis imports no TensorFlow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow: pytest loads this
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # file before any test module or tests/conftest.py

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None)
settings.register_profile("dev", max_examples=25, print_blob=True, **_common)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_common)
settings.register_profile("deep", max_examples=500, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
