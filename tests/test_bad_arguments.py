"""The probe of the reliability report, kept as a property: the public API fed random bad arguments.

Whatever odd value arrives, a constructor or a call either accepts it and works, or raises the one
documented exception, a ``ValueError`` whose message names the argument. Never a ``TypeError``,
``AttributeError`` or ``MemoryError`` from deep inside NumPy or Python. NumPy only (no Keras).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn

#: Values a careless or hostile caller passes: wrong types, wrong signs, huge, NaN, NumPy scalars, containers.
ODD = st.sampled_from(
    [
        None, 0, -1, 1, 3, 2.5, -0.5, 1e20, float("nan"), float("inf"), True, False, "x", "", "tanh", b"1",
        [], [3], (2, 3), {}, {"config": {}}, object(), 1j, np.float32(0.5), np.int64(4), np.bool_(True),
        np.array([1, 2]), np.array(2.0), 10**20, -(10**20), print,
    ]
)  # fmt: skip

#: Each public constructor, a valid way to build it, the input it takes, and the arguments to spoil.
CONSTRUCTORS = {
    "SimpleRNN": (lambda **kw: scratch_rnn.SimpleRNN(**{"units": 2, **kw}), (2, 3, 2)),
    "LSTM": (lambda **kw: scratch_rnn.LSTM(**{"units": 2, **kw}), (2, 3, 2)),
    "GRU": (lambda **kw: scratch_rnn.GRU(**{"units": 2, **kw}), (2, 3, 2)),
    "Bidirectional": (
        lambda **kw: scratch_rnn.Bidirectional(**{"layer": scratch_rnn.GRU(2, return_sequences=True), **kw}),
        (2, 3, 2),
    ),
    "Dense": (lambda **kw: scratch_rnn.Dense(**{"units": 2, **kw}), (2, 3)),
    "Embedding": (lambda **kw: scratch_rnn.Embedding(**{"input_dim": 5, "output_dim": 2, **kw}), None),
    "Masking": (lambda **kw: scratch_rnn.Masking(**kw), (2, 3, 2)),
    "Dropout": (lambda **kw: scratch_rnn.Dropout(**{"rate": 0.5, **kw}), (2, 3)),
    "Activation": (lambda **kw: scratch_rnn.Activation(**{"activation": "relu", **kw}), (2, 3)),
    "TimeDistributed": (lambda **kw: scratch_rnn.TimeDistributed(**{"layer": scratch_rnn.Dense(2), **kw}), (2, 3, 2)),
}
ARGUMENTS = {
    "SimpleRNN": ["units", "activation", "use_bias", "kernel_initializer", "dropout", "return_sequences",
                  "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask", "dtype", "seed",
                  "name"],
    "LSTM": ["units", "recurrent_activation", "unit_forget_bias", "recurrent_dropout", "bias_initializer", "dtype"],
    "GRU": ["units", "reset_after", "recurrent_activation", "recurrent_initializer", "seed"],
    "Bidirectional": ["layer", "merge_mode", "backward_layer", "dtype", "name"],
    "Dense": ["units", "activation", "use_bias", "kernel_initializer", "dtype"],
    "Embedding": ["input_dim", "output_dim", "mask_zero", "embeddings_initializer", "dtype"],
    "Masking": ["mask_value", "dtype"],
    "Dropout": ["rate", "seed", "dtype"],
    "Activation": ["activation", "dtype"],
    "TimeDistributed": ["layer", "dtype"],
}  # fmt: skip


def valid_input(name, shape):
    if name == "Embedding":
        return np.array([[1, 0, 4]])
    return np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)


def accepted_or_refused_by_name(action, argument):
    """Run ``action``; it may succeed or raise a ValueError naming ``argument``; anything else fails the test."""
    try:
        action()
    except ValueError as err:
        assert f"`{argument}`" in str(err) or argument in str(err), f"the message does not name `{argument}`: {err}"
        return False
    return True


@settings(max_examples=400)
@given(data=st.data())
def test_constructors_accept_or_refuse_a_bad_argument_by_name(data):
    name = data.draw(st.sampled_from(sorted(CONSTRUCTORS)), label="layer")
    make, shape = CONSTRUCTORS[name]
    argument = data.draw(st.sampled_from(ARGUMENTS[name]), label="argument")
    value = data.draw(ODD, label="value")
    built = []
    if accepted_or_refused_by_name(lambda: built.append(make(**{argument: value})), argument):
        # accepted at construction: the first call works, or refuses the argument by name
        accepted_or_refused_by_name(lambda: built[0](valid_input(name, shape)), argument)


CALL_ARGUMENTS = ["x", "mask", "initial_state"]


@settings(max_examples=300)
@given(data=st.data())
def test_recurrent_calls_accept_or_refuse_a_bad_argument_by_name(data):
    name = data.draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU", "Bidirectional"]), label="layer")
    make, shape = CONSTRUCTORS[name]
    layer = make()
    arguments = {"x": valid_input(name, shape)}
    argument = data.draw(st.sampled_from(CALL_ARGUMENTS), label="argument")
    arguments[argument] = data.draw(
        st.one_of(ODD, st.builds(np.ones, st.sampled_from([(2,), (2, 3), (3, 2), (2, 3, 2), (2, 2), (1, 3, 2)]))),
        label="value",
    )
    result = []
    if accepted_or_refused_by_name(lambda: result.append(layer(**arguments)), argument):
        assert result[0] is not None


@settings(max_examples=200)
@given(batch_size=ODD, weights=ODD)
def test_model_methods_accept_or_refuse_a_bad_argument_by_name(batch_size, weights):
    model = scratch_rnn.Sequential([scratch_rnn.Input((3, 2)), scratch_rnn.SimpleRNN(2)])
    x = np.ones((4, 3, 2))
    accepted_or_refused_by_name(lambda: model.predict(x, batch_size=batch_size), "batch_size")
    accepted_or_refused_by_name(lambda: model.set_weights(weights), "weights")


@pytest.mark.parametrize("argument, value", [("units", 0), ("dropout", 2.0), ("name", 3)])
def test_the_property_fails_on_an_error_that_does_not_name_the_argument(argument, value):
    """The helper the properties use fails the test when a refusal names the wrong argument."""
    with pytest.raises(AssertionError, match="does not name"):
        accepted_or_refused_by_name(lambda: scratch_rnn.SimpleRNN(**{"units": 2, argument: value}), "seed")
