"""The engine as a careless or hostile user meets it: threads, pickling, re-entry, refused weights,
odd arguments, values near the largest float, and Keras objects that only look like Keras's.

Each test names the finding of ``shared/reports/reliability-2026-11-26.md`` it holds fixed (F2, F3, ...).
"""

from __future__ import annotations

import copy
import pickle
import signal
import threading

import numpy as np
import pytest
from helpers import require

import scratch_rnn
from scratch_rnn.testing.compare import assert_close

RECURRENT = ("SimpleRNN", "LSTM", "GRU")
MIXED = {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}


def recurrent(name, units=3, **kwargs):
    return getattr(scratch_rnn, name)(units, **kwargs)


#: Every kind of layer with weights, unbuilt: (id, factory).
LAYER_KINDS = [
    ("SimpleRNN", lambda: scratch_rnn.SimpleRNN(4)),
    ("LSTM", lambda: scratch_rnn.LSTM(8, return_sequences=True)),
    ("GRU", lambda: scratch_rnn.GRU(6)),
    ("GRU-reset-before", lambda: scratch_rnn.GRU(5, reset_after=False)),
    ("Bidirectional", lambda: scratch_rnn.Bidirectional(scratch_rnn.LSTM(3))),
    ("Dense", lambda: scratch_rnn.Dense(4)),
]


# --- F2: concurrent first calls ----------------------------------------------------------------


@pytest.mark.parametrize("make", [make for _, make in LAYER_KINDS], ids=[name for name, _ in LAYER_KINDS])
def test_concurrent_first_calls_build_once_and_agree(make, rng):
    """Eight threads released together on an unbuilt layer: no AttributeError, one set of weights."""
    x = rng.uniform(-1, 1, (4, 5, 3))
    for _ in range(5):
        layer, barrier, results, errors = make(), threading.Barrier(8), [], []

        def call(layer=layer, barrier=barrier, results=results, errors=errors):
            barrier.wait()
            try:
                results.append(layer(x))
            except Exception as err:  # the test reports whatever a thread raised
                errors.append(err)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for result in results[1:]:
            assert_close(result, results[0], 0.0, "a concurrent first call")


# --- F3: refused weights change nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    "make, weights",
    [
        (lambda: scratch_rnn.SimpleRNN(3), [np.ones((5, 3)), np.ones((3, 4)), np.ones(3)]),
        (lambda: scratch_rnn.LSTM(2), [np.ones((4, 8)), np.ones((2, 8))] * 2),
        (lambda: scratch_rnn.Bidirectional(scratch_rnn.GRU(2)), [np.ones((4, 6)), np.ones((2, 6)), np.ones((2, 7))]),
        (lambda: scratch_rnn.Dense(3), [np.ones((5, 3)), np.ones(4)]),
        (lambda: scratch_rnn.TimeDistributed(scratch_rnn.Dense(3)), [np.ones((5, 3))]),
    ],
)
def test_refused_weights_leave_an_unbuilt_layer_unbuilt(make, weights):
    layer = make()
    with pytest.raises(ValueError, match="weights"):
        layer.set_weights(weights)
    assert not layer.built and layer.get_weights() == []
    for inner in layer.sublayers():
        assert not inner.built
    x = np.ones((2, 3, 4))
    assert layer(x).shape[0] == 2  # builds on the real input, not on the rejected kernel's shape


def test_refused_weights_leave_a_built_layer_as_it_was(rng):
    layer = scratch_rnn.Bidirectional(scratch_rnn.LSTM(2))
    layer(np.ones((1, 2, 3)))
    before = layer.get_weights()
    good_forward = [rng.uniform(-1, 1, w.shape) for w in before[:3]]
    with pytest.raises(ValueError, match=r"weights\[2\]"):
        layer.set_weights(good_forward + [before[3], before[4], np.ones(3)])  # the backward bias is wrong
    for now, then in zip(layer.get_weights(), before):
        assert_close(now, then, 0.0, "weights after a refused set_weights")


def test_a_model_takes_all_its_weights_or_none(rng):
    model = scratch_rnn.Sequential([scratch_rnn.Input((3, 2)), scratch_rnn.GRU(2), scratch_rnn.Dense(1)])
    before = model.get_weights()
    fresh = [rng.uniform(-1, 1, w.shape) for w in before]
    fresh[-1] = np.ones(2)  # the Dense bias: refused after the GRU took its new weights
    with pytest.raises(ValueError, match="bias"):
        model.set_weights(fresh)
    for now, then in zip(model.get_weights(), before):
        assert_close(now, then, 0.0, "model weights after a refused set_weights")


# --- F9: pickling and copying ----------------------------------------------------------------------


def test_layers_and_models_pickle_and_deep_copy(rng):
    model = scratch_rnn.Sequential(
        [
            scratch_rnn.Input((5, 3)),
            scratch_rnn.LSTM(4, return_sequences=True),
            scratch_rnn.Bidirectional(scratch_rnn.GRU(2, return_sequences=True)),
            scratch_rnn.TimeDistributed(scratch_rnn.Dense(2)),
            scratch_rnn.SimpleRNN(2),
        ]
    )
    x = rng.uniform(-1, 1, (2, 5, 3))
    expected = model(x)  # the workspaces now hold buffers
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model), copy.copy(model)):
        assert_close(clone(x), expected, 0.0, "a copied model's output")
    unbuilt = pickle.loads(pickle.dumps(scratch_rnn.LSTM(3)))
    assert unbuilt(x).shape == (2, 3)


def test_a_shallow_copy_does_not_share_scratch_buffers():
    layer = scratch_rnn.GRU(2)
    layer(np.ones((1, 2, 2)))
    twin = copy.copy(layer)
    assert twin._workspace() is not layer._workspace()


# --- F11: GRU near the largest float ---------------------------------------------------------------


@pytest.mark.parametrize("dtype, big", [("float32", 2e38), ("float64", 1e308)])
@pytest.mark.parametrize("fast", [True, False])
def test_gru_update_stays_finite_where_keras_does(dtype, big, fast):
    """z = 1/2, h0 = -big, hh = +big: Keras's z*h + (1-z)*hh is 0; hh + (h - hh)/d_z overflowed to -inf."""
    layer = scratch_rnn.GRU(1, activation="linear", use_bias=False, dtype=dtype)
    layer.set_weights([np.array([[0.0, 0.0, big]]), np.zeros((1, 3))])
    layer.fast = fast
    out = layer(np.ones((1, 1, 1)), initial_state=np.array([[-big]]))
    assert_close(out, np.zeros((1, 1), dtype), 0.0, "GRU output")


# --- F12: re-entry ---------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
@pytest.mark.parametrize("backend, steps", [("numpy", 3000), ("numba", 100_000)])
def test_a_reentrant_call_does_not_corrupt_the_outer_one(rng, backend, steps):
    """A signal handler calls the layer while a call of it is under way. Python runs the handler between
    bytecodes, so on the compiled loop (one compiled call per chunk of timesteps, ~1 us a step here) only between
    chunks: its call is made long enough to span many."""
    from scratch_rnn import compiled

    if backend == "numba":
        require("numba"), require("scipy")
    layer = scratch_rnn.GRU(16, return_sequences=True)
    x = rng.uniform(-1, 1, (8, steps, 8))
    inner = []

    def handler(signum, frame):
        inner.append(layer(x[:, :50]))

    with compiled.using(backend):
        expected = layer(x)
        previous = signal.signal(signal.SIGALRM, handler)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            outer = layer(x)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, previous)
    assert inner, "the timer never fired during the call"
    assert_close(outer, expected, 0.0, "the interrupted call's output")


# --- F13: independent outputs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", RECURRENT)
def test_output_and_state_are_independent_arrays(name):
    out, h, *_ = recurrent(name, return_state=True)(np.ones((2, 3, 2)))
    assert not np.shares_memory(out, h)
    out *= 0
    assert np.any(h != 0)


# --- F17, F18, F24: arguments refused early, by name -----------------------------------------------


def test_keras_dtype_policy_dicts_and_numpy_rates_are_accepted():
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}, "registered_name": None}
    assert scratch_rnn.LSTM(2, dtype=policy).dtype == np.float64
    assert scratch_rnn.GRU(2, dropout=np.float32(0.25)).dropout == 0.25
    assert scratch_rnn.Dropout(np.float64(0.5)).rate == 0.5
    layer = scratch_rnn.SimpleRNN(2, seed=-1)  # Keras takes any integer seed
    assert layer(np.ones((1, 2, 2))).shape == (1, 2)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: scratch_rnn.LSTM(2, seed="abc"), "seed"),
        (lambda: scratch_rnn.LSTM(2, seed=1.5), "seed"),
        (lambda: scratch_rnn.GRU(2, use_bias="False"), "use_bias"),
        (lambda: scratch_rnn.LSTM(2, unit_forget_bias=1), "unit_forget_bias"),
        (lambda: scratch_rnn.SimpleRNN(2, dropout=True), "dropout"),
        (lambda: scratch_rnn.Dropout("0.5"), "rate"),
        (lambda: scratch_rnn.Input(shape=5), "shape"),
        (lambda: scratch_rnn.Input(batch_shape=(None, 2.5, 3)), "batch_shape"),
        (lambda: scratch_rnn.Input(shape=(3, True)), "shape"),
        (lambda: scratch_rnn.Input(shape=(3, 2), batch_size=0), "batch_size"),
        (lambda: scratch_rnn.LSTM(2, dtype=MIXED), "dtype"),
    ],
)
def test_bad_constructor_arguments_are_refused_at_construction_by_name(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


def test_units_too_large_to_allocate_is_a_value_error_naming_the_shapes():
    layer = scratch_rnn.LSTM(10**12)
    with pytest.raises(ValueError, match=r"cannot allocate its weights of shapes"):
        layer(np.ones((1, 1, 2)))
    assert not layer.built


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "4", True])
def test_predict_batch_size_is_checked(batch_size):
    model = scratch_rnn.Sequential([scratch_rnn.Input((2, 3)), scratch_rnn.SimpleRNN(2)])
    with pytest.raises(ValueError, match="`batch_size`"):
        model.predict(np.ones((5, 2, 3)), batch_size=batch_size)


def test_model_argument_errors_name_the_argument():
    model = scratch_rnn.Sequential([scratch_rnn.Input((2, 3)), scratch_rnn.SimpleRNN(2)])
    with pytest.raises(ValueError, match="`weights` must be a list"):
        model.set_weights(None)
    with pytest.raises(ValueError, match="nested models are not supported"):
        scratch_rnn.Sequential([model])
    shared = scratch_rnn.SimpleRNN(3)
    with pytest.raises(ValueError, match="built for inputs with 5 features"):
        scratch_rnn.Sequential([scratch_rnn.Input((4, 5)), shared, scratch_rnn.Dense(3, activation="relu"), shared])


def test_embedding_reports_an_out_of_range_float_id_as_given(recwarn):
    with pytest.raises(ValueError, match=r"got 1e\+20"):
        scratch_rnn.Embedding(4, 2)(np.array([[1e20]]))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# --- F10, F22, F24: from_keras ---------------------------------------------------------------------


def test_from_keras_refuses_a_subclass_that_only_shares_keras_s_name(keras):
    class LSTM(keras.layers.LSTM):  # a user's layer named like Keras's
        def call(self, sequences, initial_state=None, mask=None, training=False):
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training) * 2.0

    model = keras.Sequential([keras.Input((4, 5)), LSTM(3)])
    with pytest.raises(ValueError, match=r"not one of Keras's own classes"):
        scratch_rnn.from_keras(model)


def test_from_keras_refuses_an_unbuilt_model_rather_than_inventing_weights(keras):
    with pytest.raises(ValueError, match=r"is not built"):
        scratch_rnn.from_keras(keras.Sequential([keras.layers.LSTM(3)]))
    assert isinstance(scratch_rnn.from_keras(keras.layers.Dropout(0.5)), scratch_rnn.Dropout)  # nothing to copy


def test_from_keras_copies_a_stateful_layer_mid_sequence_and_trainable(keras, rng):
    x = rng.uniform(-1, 1, (2, 6, 3)).astype("float32")
    layer = keras.layers.GRU(4, stateful=True, return_sequences=True, trainable=False)
    model = keras.Sequential([keras.Input(batch_shape=(2, 6, 3)), layer])
    model.set_weights([rng.uniform(-1, 1, w.shape) for w in model.get_weights()])
    model(x)  # Keras is now mid-sequence
    ours = scratch_rnn.from_keras(model)
    assert_close(ours(x), np.asarray(model(x)), 1e-5, "the next call of a stateful model")
    assert ours.layers[0].trainable is False


def test_from_keras_names_the_layer_of_an_unsupported_option(keras):
    def doubled(t):  # a custom activation: Keras serialises it as a function, not a name
        return t * 2

    layer = keras.layers.LSTM(3, activation=doubled, name="my_lstm")
    layer.build((None, 2, 3))
    with pytest.raises(ValueError, match=r"'my_lstm' \(LSTM\)") as refused:
        scratch_rnn.from_keras(layer)
    assert len(str(refused.value)) < 600


# --- F14, F19, F25: verify()'s arguments and counts -----------------------------------------------


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(candidate="x"), "candidate"),
        (dict(candidate=42), "candidate"),
        (dict(layer="ConvLSTM1D"), "layer"),
        (dict(max_examples=True), "max_examples"),
        (dict(max_examples=10**12), "max_examples"),
        (dict(seed=1.7), "seed"),
        (dict(dtype="float16"), "dtype"),
        (dict(fixed=["units"]), "fixed"),
        (dict(fixed={"units": 200}), "fixed"),
        (dict(fixed={"dtype": "float64"}), "fixed"),
        (dict(fixed={"activation": "gelu"}), "fixed"),
        (dict(fixed={"go_backwards": 1}), "fixed"),
        (dict(fixed={"kernel_size": 3}), "fixed"),
        (dict(candidate=print, fixed={"stateful": True}), "fixed"),
        (dict(candidate=print, fast=False), "fast"),
    ],
)
def test_verify_refuses_bad_arguments_before_running_anything(kwargs, argument):
    """No Keras needed: the arguments are checked before the reference is imported."""
    with pytest.raises(ValueError, match=f"`{argument}"):
        scratch_rnn.verify(**kwargs)


def test_verify_counts_generated_cases_not_shrink_replays(keras):
    def broken(config, weights, x, mask=None, initial_state=None):
        raise RuntimeError("not implemented")

    report = scratch_rnn.verify(broken, layer="GRU", max_examples=5, seed=1, shrink_seconds=5)
    assert report.examples == 1 and len(report.failures) == 1
