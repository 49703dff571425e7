"""scratch_rnn.Bidirectional: what the Keras sweep does not reach, Keras's golden values, errors.

The sweep (``test_harness.py::test_engine_equals_keras``) holds every merge mode around every recurrent
layer and option against Keras on random weights: masks, initial states split between the directions,
stateful, return flags, both dtypes. Here: shapes beyond the sweep's, the mask a wrapper passes on,
``reset_state``, an explicit ``backward_layer`` (the sweep has none), a wrapper dtype other than its
layer's, clones and names, output shapes and parameter counts, ``from_keras``, Keras's published golden
values (``keras/src/layers/rnn/bidirectional_test.py``) and the error messages.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    DTYPES,
    LARGE,
    assert_golden,
    assert_golden_statefulness,
    assert_outputs_close,
    left_and_right_padded_mask,
    randomize,
)

import scratch_rnn
from scratch_rnn.initializers import Constant

MERGE_MODES = ["concat", "sum", "mul", "ave", None]


@pytest.fixture
def bidirectional_twin(keras):
    """``bidirectional_twin(rnn, kwargs, merge_mode, input_shape, dtype, rng, backward_kwargs=None)``: a built
    Keras Bidirectional and its scratch twin (same random weights); the wrapper and the layers share ``dtype``."""

    def twin(rnn, kwargs, merge_mode, input_shape, dtype, rng, backward_kwargs=None):
        def make(namespace):  # keras.layers or scratch_rnn: same names, same arguments
            backward = None if backward_kwargs is None else getattr(namespace, rnn)(**backward_kwargs, dtype=dtype)
            layer = getattr(namespace, rnn)(**kwargs, dtype=dtype)
            return namespace.Bidirectional(layer, merge_mode=merge_mode, backward_layer=backward, dtype=dtype)

        kb = make(keras.layers)
        kb.build(input_shape)
        ours = make(scratch_rnn)
        ours.set_weights(randomize(kb, rng))
        return kb, ours

    return twin


@pytest.mark.parametrize("rnn, dtype", [("LSTM", "float32"), ("GRU", "float64")])
def test_large_shapes_match_keras(bidirectional_twin, rnn, dtype):
    """A mask and initial states over 150 steps, across the fast kernels' chunks, in both directions."""
    batch, timesteps, features, units = LARGE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, timesteps, features)).astype(dtype)
    mask = left_and_right_padded_mask(batch, timesteps)
    states = [rng.standard_normal((batch, units)).astype(dtype) for _ in range(4 if rnn == "LSTM" else 2)]
    kwargs = {"units": units, "return_sequences": True, "return_state": True}
    kb, ours = bidirectional_twin(rnn, kwargs, "concat", x.shape, dtype, rng)
    theirs = kb(x, mask=mask, initial_state=states)
    assert_outputs_close(ours(x, mask=mask, initial_state=states), theirs, f"Bidirectional({rnn}) {LARGE}")


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_the_mask_is_passed_on_only_with_sequences(return_sequences):
    layer = scratch_rnn.Bidirectional(scratch_rnn.GRU(3, return_sequences=return_sequences))
    x, mask = np.zeros((5, 6, 4)), left_and_right_padded_mask(5, 6)
    assert layer.compute_mask(x, mask) is (mask if return_sequences else None)


def test_stateful_across_calls_and_reset_state(bidirectional_twin):
    rng = np.random.default_rng(8)
    x1, x2 = (rng.standard_normal((2, 3, 4)) for _ in range(2))
    kb, ours = bidirectional_twin("GRU", {"units": 3, "stateful": True}, "concat", x1.shape, "float64", rng)
    assert_outputs_close(ours(x1), kb(x1), "stateful call 1")
    assert_outputs_close(ours(x2), kb(x2), "stateful call 2")
    assert len(ours.states) == 2
    kb.reset_state()
    ours.reset_state()
    assert_outputs_close(ours(x1), kb(x1), "stateful after reset_state")


@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_backward_layer_matches_keras(bidirectional_twin, dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5, 4)).astype(dtype)
    mask = left_and_right_padded_mask(3, 5)
    kb, ours = bidirectional_twin(
        "LSTM",
        {"units": 3, "return_sequences": True},
        "concat",
        x.shape,
        dtype,
        rng,
        backward_kwargs={"units": 2, "activation": "relu", "go_backwards": True, "return_sequences": True},
    )
    assert_outputs_close(ours(x, mask=mask), kb(x, mask=mask), "explicit backward_layer")


def test_wrapper_dtype_casts_input_and_output_but_not_states_like_keras(keras):
    """A float32 wrapper around a float64 layer: Keras casts the input and the output, not the states."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 4, 3))
    kb = keras.layers.Bidirectional(keras.layers.LSTM(3, dtype="float64", return_state=True))
    kb.build(x.shape)
    ours = scratch_rnn.Bidirectional(scratch_rnn.LSTM(3, dtype="float64", return_state=True))
    ours.set_weights(randomize(kb, rng))
    out, theirs = ours(x), [np.asarray(t) for t in kb(x)]
    assert [t.dtype for t in theirs] == [np.float32] + [np.float64] * 4
    assert_outputs_close(out, theirs, "float32 wrapper around a float64 LSTM")  # the dtypes too


def test_clones_names_and_forced_zero_output_like_keras(keras):
    kb = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True, name="enc"))
    ours = scratch_rnn.Bidirectional(scratch_rnn.GRU(2, return_sequences=True, name="enc"))
    for k, o in [(kb.forward_layer, ours.forward_layer), (kb.backward_layer, ours.backward_layer)]:
        assert (o.name, o.go_backwards, o.zero_output_for_mask) == (k.name, k.go_backwards, k.zero_output_for_mask)
    ours = scratch_rnn.Bidirectional(scratch_rnn.GRU(2, name="enc"))
    assert ours.forward_layer.zero_output_for_mask is False


@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=str)
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_output_shape_and_parameter_count_equal_keras(keras, merge_mode, return_state, return_sequences):
    options = dict(return_state=return_state, return_sequences=return_sequences)
    kb = keras.layers.Bidirectional(keras.layers.LSTM(3, **options), merge_mode=merge_mode)
    kb.build((None, 7, 5))
    ours = scratch_rnn.Bidirectional(scratch_rnn.LSTM(3, **options), merge_mode=merge_mode)
    ours.build((None, 7, 5))
    theirs = kb.compute_output_shape((None, 7, 5))
    expected = [tuple(s) for s in theirs] if isinstance(theirs[0], tuple) else tuple(theirs)
    assert ours.compute_output_shape((None, 7, 5)) == expected
    assert ours.count_params() == kb.count_params() == 2 * 4 * 3 * (5 + 3 + 1)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in kb.get_weights()]


def test_from_keras_converts_both_directions(keras):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 5, 4)).astype("float32")
    kb = keras.layers.Bidirectional(
        keras.layers.GRU(3, return_sequences=True, reset_after=False),
        merge_mode="ave",
        backward_layer=keras.layers.GRU(
            3, return_sequences=True, reset_after=False, go_backwards=True, activation="relu"
        ),
    )
    kb.build(x.shape)
    randomize(kb, rng)
    ours = scratch_rnn.from_keras(kb)
    assert isinstance(ours, scratch_rnn.Bidirectional) and ours.merge_mode == "ave"
    assert (ours.forward_layer.name, ours.backward_layer.name) == (kb.forward_layer.name, kb.backward_layer.name)
    assert_outputs_close(ours(x), kb(x), "from_keras(Bidirectional)")


# --- Keras's own golden values (keras/src/layers/rnn/bidirectional_test.py) -----------------


def constants(kernel=0.01, recurrent=0.02, bias=0.03):
    return {
        "kernel_initializer": Constant(kernel),
        "recurrent_initializer": Constant(recurrent),
        "bias_initializer": Constant(bias),
    }


def test_keras_golden_correctness():
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    forward_layer = scratch_rnn.SimpleRNN(2, **constants())
    output = scratch_rnn.Bidirectional(forward_layer)(sequence)
    expected = [[0.39687276, 0.39687276, 0.10004295, 0.10004295], [0.7237238, 0.7237238, 0.53391594, 0.53391594]]
    assert_golden(output, expected, context="concat")
    output = scratch_rnn.Bidirectional(forward_layer, merge_mode="ave")(sequence)
    assert_golden(output, [[0.24845785, 0.24845785], [0.6288199, 0.6288199]], context="ave")
    output1, output2 = scratch_rnn.Bidirectional(forward_layer, merge_mode=None)(sequence)
    assert_golden(output1, [[0.39687276, 0.39687276], [0.7237238, 0.7237238]], "forward output", "merge_mode=None")
    assert_golden(output2, [[0.10004295, 0.10004295], [0.53391594, 0.53391594]], "backward output", "merge_mode=None")
    backward_layer = scratch_rnn.SimpleRNN(2, go_backwards=True, **constants(0.03, 0.02, 0.01))
    output = scratch_rnn.Bidirectional(forward_layer, backward_layer=backward_layer, merge_mode="mul")(sequence)
    assert_golden(output, [[0.08374989, 0.08374989], [0.6740834, 0.6740834]], context="mul, backward_layer")
    forward_layer = scratch_rnn.GRU(2, return_sequences=True, **constants())
    output = scratch_rnn.Bidirectional(forward_layer, merge_mode="sum")(sequence)
    expected = [
        [[0.20937867] * 2, [0.34462988] * 2, [0.40290534] * 2],
        [[0.59829646] * 2, [0.6734641] * 2, [0.6479671] * 2],
    ]
    assert_golden(output, expected, context="sum, GRU")


def test_keras_golden_statefulness():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    layer = scratch_rnn.Bidirectional(scratch_rnn.LSTM(2, stateful=True, **constants()))
    expected = [[0.26234663, 0.26234663, 0.16959146, 0.16959146], [0.6137073, 0.6137073, 0.5381646, 0.5381646]]
    assert_golden_statefulness(layer, sequence, expected)


def test_keras_golden_initial_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    initial_state = [np.arange(4).reshape((2, 2)).astype("float32") * k for k in (1, 2, 3, 4)]
    layer = scratch_rnn.Bidirectional(scratch_rnn.LSTM(2, **constants()))
    expected = [[0.20794602, 0.4577124, 0.14046375, 0.48191673], [0.6682636, 0.6711909, 0.60943645, 0.60950446]]
    assert_golden(layer(sequence, initial_state=initial_state), expected)


def test_keras_golden_masking():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    layer = scratch_rnn.Bidirectional(scratch_rnn.GRU(2, **constants()))
    expected = [[0.19393763, 0.19393763, 0.11669192, 0.11669192], [0.30818558, 0.30818558, 0.28380975, 0.28380975]]
    assert_golden(layer(sequence, mask=mask), expected)


def test_keras_golden_return_state():
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    layer = scratch_rnn.Bidirectional(scratch_rnn.LSTM(2, return_state=True, **constants()))
    output, h1, c1, h2, c2 = layer(sequence)
    expected = [[0.1990008, 0.1990008, 0.12659755, 0.12659755], [0.52335435, 0.52335435, 0.44717982, 0.44717982]]
    assert_golden(output, expected)
    assert_golden(h1, [[0.1990008] * 2, [0.52335435] * 2], "forward h")
    assert_golden(c1, [[0.35567185] * 2, [1.0492687] * 2], "forward c")
    assert_golden(h2, [[0.12659755] * 2, [0.44717982] * 2], "backward h")
    assert_golden(c2, [[0.2501858] * 2, [0.941473] * 2], "backward c")


# --- errors --------------------------------------------------------------------------------


def test_bad_arguments_raise():
    lstm = scratch_rnn.LSTM(2)
    with pytest.raises(ValueError, match=r"argument `merge_mode`, expected one of .*got 'max'"):
        scratch_rnn.Bidirectional(lstm, merge_mode="max")
    with pytest.raises(ValueError, match=r"argument `layer`, expected a scratch_rnn recurrent layer"):
        scratch_rnn.Bidirectional(scratch_rnn.Dense(2))
    with pytest.raises(ValueError, match=r"argument `backward_layer`"):
        scratch_rnn.Bidirectional(lstm, backward_layer="lstm")
    with pytest.raises(ValueError, match=r"different `go_backwards` values"):
        scratch_rnn.Bidirectional(lstm, backward_layer=scratch_rnn.LSTM(2))
    with pytest.raises(ValueError, match=r"same value for attribute `return_sequences`"):
        scratch_rnn.Bidirectional(lstm, backward_layer=scratch_rnn.LSTM(2, go_backwards=True, return_sequences=True))


def test_bad_call_and_weights_raise():
    layer = scratch_rnn.Bidirectional(scratch_rnn.LSTM(2))
    x = np.zeros((2, 3, 4))
    layer(x)
    with pytest.raises(ValueError, match=r"`initial_state` of .* must be a list of 4 arrays.*got 2 arrays"):
        layer(x, initial_state=[np.zeros((2, 2))] * 2)
    with pytest.raises(ValueError, match=r"must hold 6 arrays \(3 forward, then 3 backward\), got 3"):
        layer.set_weights(layer.get_weights()[:3])
    with pytest.raises(ValueError, match=r"must have 4 features"):
        layer(np.zeros((2, 3, 5)))
