"""The engine needs NumPy only: importing it never imports TensorFlow, Keras or the harness."""

import subprocess
import sys

CODE = """
import sys
for name in ("tensorflow", "keras", "tf_keras", "hypothesis", "torch"):
    sys.modules[name] = None  # any import of these now raises ImportError
import numpy as np
import scratch_rnn
model = scratch_rnn.Sequential([scratch_rnn.Input(batch_shape=(8, 2, 10)),
                                scratch_rnn.SimpleRNN(units=3, return_sequences=True)])
assert model(np.zeros((8, 2, 10))).shape == (8, 2, 3)
assert model.count_params() == 42
print("ok")
"""


def test_import_and_run_without_tensorflow_keras_or_hypothesis():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_importing_the_engine_loads_no_framework():
    code = (
        "import sys, scratch_rnn; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'hypothesis', 'rich') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
