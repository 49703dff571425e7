"""The fast engine against the readable reference it optimises: steps, whole calls, chunking, memory.

Each layer keeps a readable ``project``/``step`` (the equations of its docstring) and runs a
fast ``kernel`` (derived weights, preallocated buffers, in-place operations, one column per
sample). These tests hold the two equal; the Keras harness holds the fast one equal to Keras.
No timing here: benchmarks are ``scratch-rnn bench``, not tests.
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
from helpers import DTYPES, tolerance

import scratch_rnn
from scratch_rnn import activations
from scratch_rnn.rnn import recurrence, reference_kernel
from scratch_rnn.testing import assert_close

#: Fast and reference differ only by rounding (sigmoid as 1 / (1 + exp(-x)), division for
#: multiplication, another matmul summation order): a few ulps per step.
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def assert_near(fast, reference, name: str, context: str = "") -> None:
    """The fast result against the reference's, within ``TOL`` of the reference's dtype (which it must have)."""
    __tracebackhide__ = True
    assert_close(fast, reference, tolerance(reference, **TOL[reference.dtype.name]), name=name, context=context)


# Each layer with the options that choose a different code path in its kernel.
LAYERS = [
    ("SimpleRNN", {"activation": "tanh"}),
    ("SimpleRNN", {"activation": "relu", "use_bias": False}),
    ("SimpleRNN", {"activation": "sigmoid"}),
    ("SimpleRNN", {"activation": "hard_sigmoid"}),
    ("SimpleRNN", {"activation": None}),
    ("LSTM", {}),
    ("LSTM", {"use_bias": False}),
    ("LSTM", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("LSTM", {"activation": "sigmoid", "recurrent_activation": "tanh"}),
    ("LSTM", {"activation": None, "recurrent_activation": None}),
    ("GRU", {}),
    ("GRU", {"reset_after": False}),
    ("GRU", {"use_bias": False}),
    ("GRU", {"recurrent_activation": "hard_sigmoid", "activation": "relu"}),
    ("GRU", {"reset_after": False, "recurrent_activation": "tanh", "activation": None}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, kw in LAYERS]


def make_layer(name, kwargs, dtype, features=3, units=4, seed=0, **call_flags):
    """A built layer with random weights, random biases included."""
    layer = getattr(scratch_rnn, name)(units, dtype=dtype, seed=seed, **kwargs, **call_flags)
    layer.build((None, None, features))
    rng = np.random.default_rng(seed)  # small enough that linear and relu layers stay finite over the steps
    layer.set_weights([rng.uniform(-0.4, 0.4, w.shape).astype(dtype) for w in layer.get_weights()])
    return layer


def random_states(layer, batch, rng):
    return [rng.uniform(-1, 1, (batch, size)).astype(layer.dtype) for size in layer.state_size]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_fast_step_equals_the_reference_step(name, kwargs, dtype, rng):
    layer = make_layer(name, kwargs, dtype)
    batch = 5
    x = rng.uniform(-2, 2, (batch, 1, layer.input_dim)).astype(dtype)  # one timestep
    states = random_states(layer, batch, rng)

    _, expected = layer.step(layer.project(x.transpose(1, 0, 2))[0], states)  # readable: (B, S) rows

    _, _, actual = recurrence(layer.kernel(batch), x, states)  # fast, one step: (B, S) rows

    assert len(actual) == len(expected)
    for i, (fast, reference) in enumerate(zip(actual, expected)):
        assert reference.dtype == np.dtype(dtype), f"state[{i}] dtype"
        assert_near(fast, reference, f"state[{i}]", f"{name} {kwargs}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs", LAYERS, ids=IDS)
def test_fast_layer_equals_the_reference_layer(name, kwargs, dtype, rng):
    """Whole calls through the one loop, with masks, go_backwards and every output flag."""
    layer = make_layer(name, kwargs, dtype)
    batch, timesteps = 4, 7
    x = rng.uniform(-1, 1, (batch, timesteps, layer.input_dim)).astype(dtype)
    states = random_states(layer, batch, rng)
    mask = rng.random((batch, timesteps)) < 0.7
    mask[0, :3] = False  # masked before any output
    mask[1] = False  # a fully masked sample
    for go_backwards, zero_output, unroll, m in itertools.product(
        [False, True], [False, True], [False, True], [None, mask]
    ):
        flags = dict(go_backwards=go_backwards, return_sequences=True, zero_output_for_mask=zero_output, unroll=unroll)
        time_major = None if m is None else m.T
        fast = recurrence(layer.kernel(batch), x, states, time_major, **flags)
        reference = recurrence(reference_kernel(layer), x, states, time_major, **flags)
        what = f"{name} {kwargs} {flags} mask={m is not None}"
        assert np.all(np.isfinite(reference[1])), what + ": the case itself overflowed"
        assert_near(fast[0], reference[0], "last output", what)
        assert_near(fast[1], reference[1], "outputs", what)
        for i, (a, b) in enumerate(zip(fast[2], reference[2])):
            assert_near(a, b, f"state[{i}]", what)


def test_in_place_activations_compute_the_reference(rng):
    for dtype in DTYPES:
        x = np.concatenate([rng.uniform(-8, 8, 200), [-1e4, -100.0, 0.0, 100.0, 1e4]]).astype(dtype)
        for act_name in activations.RECURRENT:
            fn = activations.get(act_name)
            out = np.empty_like(x)
            with np.errstate(over="ignore"):
                activations.in_place(fn)(x, out)
                expected = fn(x)
            assert_near(out, expected, act_name, dtype)
            same = x.copy()
            with np.errstate(over="ignore"):
                activations.in_place(fn)(same, same)  # in place proper
            np.testing.assert_array_equal(same, out, err_msg=f"{act_name} {dtype} out=x")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, kwargs", [LAYERS[0], LAYERS[5], LAYERS[10], LAYERS[11]], ids=lambda v: str(v))
def test_chunked_projection_equals_unchunked(name, kwargs, dtype, rng):
    layer = make_layer(name, kwargs, dtype)
    batch, timesteps = 3, 10
    x = rng.uniform(-2, 2, (batch, timesteps, layer.input_dim)).astype(dtype)
    states = random_states(layer, batch, rng)
    g = layer.kernel(batch).width
    for return_sequences, go_backwards in itertools.product([False, True], [False, True]):
        flags = dict(return_sequences=return_sequences, go_backwards=go_backwards)
        whole = recurrence(layer.kernel(batch), x, states, chunk_elements=10**9, **flags)
        for steps in (1, 3, 4, 9):  # chunks of 1, 3, 4 and 9 steps: some leave a remainder
            chunked = recurrence(layer.kernel(batch), x, states, chunk_elements=steps * g * batch, **flags)
            assert np.all(np.isfinite(chunked[0]))
            np.testing.assert_array_equal(chunked[0], whole[0], err_msg=f"{flags} chunk={steps} last")
            if return_sequences:
                np.testing.assert_array_equal(chunked[1], whole[1], err_msg=f"{flags} chunk={steps}")
            for a, b in zip(chunked[2], whole[2]):
                np.testing.assert_array_equal(a, b, err_msg=f"{flags} chunk={steps} states")


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_memory_does_not_grow_with_timesteps(name, rng):
    """return_sequences=False: the peak for 10,000 steps is within 1.5x of the peak for 1,000."""
    layer = make_layer(name, {}, "float32", features=8, units=16)
    peaks = {}
    for timesteps in (1_000, 10_000):
        x = rng.standard_normal((4, timesteps, 8)).astype("float32")  # the input itself is not counted
        layer(x[:, :10])  # warm up outside the measurement
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            layer(x)
            peaks[timesteps] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[10_000] <= 1.5 * peaks[1_000], (
        f"{name}: peak {peaks[10_000]} B for 10,000 steps, {peaks[1_000]} B for 1,000"
    )


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_calls_share_no_buffers_and_leave_their_inputs_alone(name, rng):
    layer = make_layer(name, {}, "float32", return_sequences=True, return_state=True)
    x1, x2 = (rng.standard_normal((2, 5, 3)).astype("float32") for _ in range(2))
    initial = random_states(layer, 2, rng)
    kept = [s.copy() for s in initial], x1.copy()
    first = layer(x1, initial_state=initial)
    snapshot = [a.copy() for a in first]
    layer(x2, initial_state=initial)
    for a, b in zip(first, snapshot):
        np.testing.assert_array_equal(a, b)  # a later call does not overwrite
    for a, b in zip(initial, kept[0]):
        np.testing.assert_array_equal(a, b)  # initial states are only read
    np.testing.assert_array_equal(x1, kept[1])
    assert not np.shares_memory(first[0], first[1]), "the returned state is not a view of the outputs"


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_an_empty_batch_gives_empty_outputs(name):
    """Batch 0 runs and returns empty arrays of the right shapes (Keras 3.15 raises inside BiasAdd)."""
    layer = make_layer(name, {}, "float32", return_sequences=True, return_state=True)
    outputs = layer(np.zeros((0, 5, 3), "float32"))
    assert [a.shape for a in outputs] == [(0, 5, 4)] + [(0, size) for size in layer.state_size]
    assert all(a.dtype == np.float32 for a in outputs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_tanh_form_of_the_sigmoid_keeps_extreme_gates(dtype, rng):
    """The fast LSTM computes sigmoid(a) as (1 + tanh(a / 2)) / 2 and holds 2h: saturated gates
    (|a| up to 60) and the exact halvings stay within the reference's tolerance."""
    layer = make_layer("LSTM", {}, dtype, return_sequences=True)
    layer.set_weights([w * 30 for w in layer.get_weights()])  # pre-activations of tens
    x = rng.uniform(-2, 2, (6, 9, layer.input_dim)).astype(dtype)
    states = random_states(layer, 6, rng)
    fast = recurrence(layer.kernel(6), x, states, return_sequences=True)
    reference = recurrence(reference_kernel(layer), x, states, return_sequences=True)
    names = ["last output", "outputs"] + [f"state[{i}]" for i in range(len(fast[2]))]
    for name, a, b in zip(names, [fast[0], fast[1], *fast[2]], [reference[0], reference[1], *reference[2]]):
        assert_near(a, b, name, "LSTM, saturated gates")


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_repeated_calls_reuse_their_scratch_buffers(name, rng):
    """A layer keeps its scratch arrays between calls (rnn.Workspace): a repeated call allocates only
    what it returns."""
    layer = make_layer(name, {}, "float32", return_sequences=True)
    mask = rng.random((3, 300)) < 0.8
    x = rng.standard_normal((3, 300, 3)).astype("float32")
    layer(x, mask=mask)
    kept = dict(layer._workspace().arrays)
    assert kept, "no scratch arrays were kept"
    layer(x[:, :200], mask=mask[:, :200])  # same batch, same chunk (128 steps)
    assert all(layer._workspace().arrays[key] is array for key, array in kept.items())


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_returned_arrays_are_never_scratch_buffers(name, rng):
    """With a mask (the loop's own 'last output' buffer) and without, for both output modes."""
    for return_sequences in (False, True):
        layer = make_layer(name, {}, "float32", return_sequences=return_sequences, return_state=True)
        x1, x2 = (rng.standard_normal((2, 6, 3)).astype("float32") for _ in range(2))
        for mask in (None, np.array([[True] * 6, [False, True, True, False, True, False]])):
            first = layer(x1, mask=mask)
            snapshot = [a.copy() for a in first]
            layer(x2, mask=mask)
            for a, b in zip(first, snapshot):
                np.testing.assert_array_equal(
                    a, b, err_msg=f"return_sequences={return_sequences} mask={mask is not None}"
                )
            scratch = list(layer._workspace().arrays.values())
            assert not any(np.shares_memory(a, s) for a in first for s in scratch)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_one_layer_called_from_two_threads_at_once(name, rng):
    """Each thread has its own scratch buffers: concurrent calls give the sequential results."""
    from concurrent.futures import ThreadPoolExecutor

    layer = make_layer(name, {}, "float32", features=8, units=16, return_sequences=True)
    inputs = [rng.standard_normal((8, 40, 8)).astype("float32") for _ in range(16)]
    expected = [layer(x) for x in inputs]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            actual = list(pool.map(layer, inputs))
            for a, b in zip(actual, expected):
                np.testing.assert_array_equal(a, b)
