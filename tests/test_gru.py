"""scratch_rnn.GRU: what the Keras sweep does not reach, Keras's golden values, errors.

The sweep (``test_harness.py::test_engine_equals_keras``) holds every option against Keras on random
weights, both ``reset_after`` modes included: activations, bias, masks, initial states, go_backwards,
stateful, unroll, return flags, both dtypes. Here: shapes beyond the sweep's, an initial state given as
an array rather than a list, the parameter count and both bias layouts, ``from_keras`` on a Keras layer,
Keras's published golden values (``keras/src/layers/rnn/gru_test.py``) and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    KERAS_GOLDEN_INITIALIZERS as CONSTANTS,
)
from helpers import (
    LARGE,
    assert_golden,
    assert_golden_statefulness,
    assert_outputs_close,
    left_and_right_padded_mask,
    randomize,
)

import scratch_rnn
from scratch_rnn.testing import assert_close


@pytest.mark.parametrize("reset_after, dtype", [(True, "float32"), (False, "float64")])  # each layout, each dtype
def test_large_shapes_match_keras(twin, reset_after, dtype):
    """A mask and an initial state over 150 steps, across the fast kernel's chunks."""
    batch, timesteps, features, units = LARGE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, timesteps, features)).astype(dtype)
    mask = left_and_right_padded_mask(batch, timesteps)
    h0 = rng.standard_normal((batch, units)).astype(dtype)
    config = {"units": units, "reset_after": reset_after, "return_sequences": True, "return_state": True}
    kl, ours = twin("GRU", config, x.shape, dtype, rng)
    theirs = kl(x, mask=mask, initial_state=[h0])
    assert_outputs_close(ours(x, mask=mask, initial_state=[h0]), theirs, f"GRU reset_after={reset_after} {LARGE}")


@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_initial_state_as_an_array_or_a_list_matches_keras(twin, as_list):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3))
    h0 = rng.standard_normal((2, 5))
    state = [h0] if as_list else h0
    kl, ours = twin("GRU", {"units": 5, "return_state": True, "go_backwards": True}, x.shape, "float64", rng)
    assert_outputs_close(ours(x, initial_state=state), kl(x, initial_state=state), "GRU initial_state")


@pytest.mark.parametrize("reset_after, bias_shape", [(True, (2, 12)), (False, (12,))])
@pytest.mark.parametrize("features", [4, 7])
def test_parameter_count_and_bias_layout_equal_keras(keras, reset_after, bias_shape, features):
    units = 4
    kl = keras.layers.GRU(units, reset_after=reset_after)
    kl.build((None, None, features))
    ours = scratch_rnn.GRU(units, reset_after=reset_after)
    ours.build((None, None, features))
    expected = 3 * units * (features + units + (2 if reset_after else 1))
    assert ours.count_params() == kl.count_params() == expected
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in kl.get_weights()]
    assert ours.get_weights()[2].shape == bias_shape


def test_from_keras_keeps_reset_after(keras):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3)).astype("float64")
    for reset_after in (True, False):
        kl = keras.layers.GRU(4, reset_after=reset_after, return_sequences=True, dtype="float64")
        kl.build(x.shape)
        randomize(kl, rng)
        ours = scratch_rnn.from_keras(kl)
        assert ours.reset_after is reset_after and ours.dtype == np.float64
        assert_outputs_close(ours(x), kl(x), f"from_keras(GRU reset_after={reset_after})")


# --- Keras's own golden values (keras/src/layers/rnn/gru_test.py) ---------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]]),
        ({"go_backwards": True}, [[0.24406259] * 3, [0.611516] * 3, [0.3928808] * 3]),
        ({"unroll": True}, [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]]),
        ({"reset_after": False}, [[0.51447755] * 3, [0.6426879] * 3, [0.40208298] * 3]),
        ({"use_bias": False}, [[0.49988455] * 3, [0.64701194] * 3, [0.4103359] * 3]),
    ],
    ids=["default", "go_backwards", "unroll", "reset_before", "no_bias"],
)
def test_keras_golden_correctness(kwargs, expected):
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    assert_golden(scratch_rnn.GRU(3, **CONSTANTS, **kwargs)(sequence), expected, context=str(kwargs))


def test_keras_golden_statefulness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    layer = scratch_rnn.GRU(4, stateful=True, **CONSTANTS)
    expected = [[0.29542392] * 4, [0.5885018] * 4]
    assert_golden_statefulness(layer, sequence, expected)


def test_keras_golden_initial_and_return_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = np.arange(4).reshape((2, 2)).astype("float32")
    for go_backwards, expected in [
        (False, [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]),
        (True, [[0.13486053, 0.23261218], [0.78257304, 0.9691353]]),
    ]:
        layer = scratch_rnn.GRU(2, go_backwards=go_backwards, return_state=True, **CONSTANTS)
        output, state = layer(sequence, initial_state=initial_state)
        assert_golden(output, expected, context=f"go_backwards={go_backwards}")
        assert_close(state, output, 0.0, name="state", context="a GRU's state is its last output")


def test_keras_golden_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    layer = scratch_rnn.GRU(2, unroll=True, **CONSTANTS)
    assert_golden(layer(sequence, mask=mask), [[0.19393763] * 2, [0.30818558] * 2], context="unroll")
    layer = scratch_rnn.GRU(2, return_sequences=True, **CONSTANTS)
    expected = [
        [[0.03606692] * 2, [0.09497581] * 2, [0.09497581] * 2, [0.19393763] * 2],
        [[0.16051409] * 2, [0.16051409] * 2, [0.16051409] * 2, [0.30818558] * 2],
    ]
    assert_golden(layer(sequence, mask=mask), expected, context="return_sequences")
    layer = scratch_rnn.GRU(2, return_sequences=True, zero_output_for_mask=True, **CONSTANTS)
    expected = [
        [[0.03606692] * 2, [0.09497581] * 2, [0.0] * 2, [0.19393763] * 2],
        [[0.16051409] * 2, [0.0] * 2, [0.0] * 2, [0.30818558] * 2],
    ]
    assert_golden(layer(sequence, mask=mask), expected, context="zero_output_for_mask")
    layer = scratch_rnn.GRU(2, go_backwards=True, **CONSTANTS)
    assert_golden(layer(sequence, mask=mask), [[0.11669192] * 2, [0.28380975] * 2], context="go_backwards")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": -1}, r"argument `units`, expected a positive integer, got -1"),
        ({"units": 3, "reset_after": "yes"}, r"argument `reset_after`, expected a bool, got 'yes'"),
        ({"units": 3, "activation": "elu"}, r"argument `activation`.*got 'elu'"),
        ({"units": 3, "recurrent_activation": "softmax"}, r"argument `recurrent_activation`"),
        ({"units": 3, "go_backwards": 1}, r"argument `go_backwards`, expected a bool"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scratch_rnn.GRU(**kwargs)


def test_bias_of_the_other_reset_after_mode_is_refused():
    layer = scratch_rnn.GRU(3, reset_after=True)
    layer.build((None, None, 2))
    kernel, recurrent, _ = layer.get_weights()
    with pytest.raises(ValueError, match=r"\(bias\) .* must have Keras shape \(2, 9\), got \(9,\)"):
        layer.set_weights([kernel, recurrent, np.zeros(9)])
    layer = scratch_rnn.GRU(3, reset_after=False)
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=r"\(bias\) .* must have Keras shape \(9,\), got \(2, 9\)"):
        layer.set_weights([kernel, recurrent, np.zeros((2, 9))])


def test_bad_call_arguments_raise():
    layer = scratch_rnn.GRU(3, stateful=True)
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"stateful with batch size 2"):
        layer(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"at least one timestep"):
        layer(np.zeros((2, 0, 5)))
    with pytest.raises(ValueError, match=r"`initial_state\[0\]` must have shape \(2, 3\)"):
        layer(np.zeros((2, 4, 5)), initial_state=np.zeros((2, 5)))
