"""Keras's own golden values for SimpleRNN (keras/src/layers/rnn/simple_rnn_test.py), without running Keras.

Constant initialisers make every unit equal, so these cases cannot reveal a
transpose; the random-weight properties in test_harness.py and
test_simple_rnn.py do that. They pin the absolute numbers Keras publishes.
"""

import numpy as np
import pytest
from helpers import assert_golden, assert_golden_statefulness

from scratch_rnn import SimpleRNN
from scratch_rnn.initializers import Constant

SEQ_234 = np.arange(24).reshape((2, 3, 4)).astype("float32")
SEQ_243 = np.arange(24).reshape((2, 4, 3)).astype("float32")
INITIAL = np.arange(8).reshape((2, 4)).astype("float32")
MASK = np.array([[True, True, False, True], [True, False, False, True]])


def constant_rnn(units=4, **kwargs):
    return SimpleRNN(
        units,
        kernel_initializer=Constant(0.01),
        recurrent_initializer=Constant(0.02),
        bias_initializer=Constant(0.03),
        **kwargs,
    )


def rows(*values, units=4):
    return np.array([[v] * units for v in values], dtype="float32")


CASES = {
    "correctness": (dict(), SEQ_234, {}, rows(0.405432, 0.73605347)),
    "correctness-unroll": (dict(unroll=True), SEQ_234, {}, rows(0.405432, 0.73605347)),
    "correctness-backwards": (dict(go_backwards=True), SEQ_234, {}, rows(0.11144729, 0.5528889)),
    "correctness-backwards-unroll": (dict(go_backwards=True, unroll=True), SEQ_234, {}, rows(0.11144729, 0.5528889)),
    "initial-state": (dict(), SEQ_243, {"initial_state": INITIAL}, rows(0.33621645, 0.6262637)),
    "initial-state-backwards": (
        dict(go_backwards=True),
        SEQ_243,
        {"initial_state": INITIAL},
        rows(0.07344437, 0.43043602),
    ),
    "masking-unroll": (dict(unroll=True), SEQ_243, {"mask": MASK}, rows(0.32951632, 0.61799484)),
    "masking-sequences": (
        dict(units=2, return_sequences=True),
        SEQ_243,
        {"mask": MASK},
        np.array(
            [
                rows(0.0599281, 0.15122814, 0.15122814, 0.32394567, units=2),
                rows(0.3969304, 0.3969304, 0.3969304, 0.608085, units=2),
            ]
        ),
    ),
    "masking-zero-output": (
        dict(units=2, return_sequences=True, zero_output_for_mask=True),
        SEQ_243,
        {"mask": MASK},
        np.array([rows(0.0599281, 0.15122814, 0.0, 0.32394567, units=2), rows(0.3969304, 0.0, 0.0, 0.608085, units=2)]),
    ),
    "masking-backwards": (dict(go_backwards=True), SEQ_243, {"mask": MASK}, rows(0.07376196, 0.43645123)),
}


@pytest.mark.parametrize("name", CASES)
def test_keras_golden_values(name):
    kwargs, x, call_kwargs, expected = CASES[name]
    assert_golden(constant_rnn(**kwargs)(x, **call_kwargs), expected, context=name)


def test_keras_golden_statefulness():
    assert_golden_statefulness(constant_rnn(stateful=True), SEQ_234, rows(0.40559256, 0.7361247))
