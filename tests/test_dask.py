"""scratch_rnn.dask.predict: a model over a dask.array, on the threaded scheduler and on a local cluster of
worker processes (reached by its address, as a remote one would be). Outputs are compared exactly with
``model.predict`` on the same data: every chunk here has two rows or more and every product is small (OpenBLAS's
small-matrix path for the batch and for its chunks alike), so each row's products sum in the same order as in
one call on the whole batch (scratch_rnn.dask.predict's docstring)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import randomize, require

import scratch_rnn
import scratch_rnn.dask as sdask
from scratch_rnn.testing.compare import assert_close

da = require("dask.array")


def assert_same_bits(actual, expected, name="output"):
    __tracebackhide__ = True
    assert_close(actual, expected, 0.0, name=name, equal_nan=True)


@pytest.fixture(scope="module")
def sequential():
    model = scratch_rnn.Sequential(
        [
            scratch_rnn.Input(shape=(7, 3)),
            scratch_rnn.Bidirectional(scratch_rnn.GRU(4, return_sequences=True)),
            scratch_rnn.LSTM(5),
            scratch_rnn.Dense(2),
        ]
    )
    rng = np.random.default_rng(11)
    for layer in model.layers:
        randomize(layer, rng)
    return model


@pytest.fixture(scope="module")
def functional():
    """Two inputs, two outputs of different ranks."""
    sequence, extra = scratch_rnn.Input(shape=(6, 3)), scratch_rnn.Input(shape=(2,))
    summary = scratch_rnn.LSTM(4)(sequence)
    first = scratch_rnn.Dense(3)(scratch_rnn.Concatenate()([summary, extra]))
    second = scratch_rnn.SimpleRNN(2, return_sequences=True)(sequence)
    model = scratch_rnn.Model([sequence, extra], [first, second])
    rng = np.random.default_rng(12)
    for layer in model.layers:
        if layer.get_weights():
            randomize(layer, rng)
    return model


@pytest.fixture
def data():
    return np.random.default_rng(5).standard_normal((23, 7, 3)).astype("float32")


def test_the_threaded_scheduler_computes_model_predict(sequential, data):
    x = da.from_array(data, chunks=(8, -1, -1))  # 8, 8, 7 rows
    y = sdask.predict(sequential, x)
    assert isinstance(y, da.Array)
    assert y.shape == (23, 2) and y.dtype == np.float32 and y.chunks == ((8, 8, 7), (2,))
    assert_same_bits(y.compute(scheduler="threads"), sequential.predict(data))


def test_several_inputs_and_outputs(functional):
    rng = np.random.default_rng(6)
    sequence, extra = rng.standard_normal((10, 6, 3)).astype("float32"), rng.standard_normal((10, 2)).astype("float32")
    ys = sdask.predict(functional, [da.from_array(sequence, chunks=(4, -1, -1)), da.from_array(extra, chunks=(4, 2))])
    assert [y.chunks for y in ys] == [((4, 4, 2), (3,)), ((4, 4, 2), (6,), (2,))]
    import dask

    computed = dask.compute(*ys, scheduler="threads")
    for i, (got, want) in enumerate(zip(computed, functional.predict([sequence, extra]))):
        assert_same_bits(got, want, f"output[{i}]")


def test_the_model_enters_the_graph_once(sequential, data):
    """One node holds the model, whatever the number of chunks, and every chunk's task depends on it; a graph
    that puts the model into every task (serialised once per chunk: the mistake this guards against) fails."""
    x = da.from_array(data, chunks=(2, -1, -1))  # 12 chunks
    graph = dict(sdask.predict(sequential, x).__dask_graph__())
    assert model_shipped_once(graph, 12)
    per_task = da.map_blocks(
        lambda b, m: m.predict(b), x, sequential, drop_axis=[1, 2], new_axis=[1], chunks=(2, 2), dtype="float32"
    )
    assert not model_shipped_once(dict(per_task.__dask_graph__()), 12)


def model_shipped_once(graph, chunks: int) -> bool:
    """Whether one node of ``graph`` holds a model and ``chunks`` tasks depend on it."""
    from dask._task_spec import DataNode

    models = [
        key
        for key, node in graph.items()
        if isinstance(node, DataNode) and isinstance(node.value, (scratch_rnn.Sequential, scratch_rnn.Model))
    ]
    users = [key for key, node in graph.items() if models and models[0] in getattr(node, "dependencies", ())]
    return len(models) == 1 and len(users) == chunks


def test_a_local_cluster_of_worker_processes_by_address(sequential, functional, data):
    """Two worker processes, one thread each, reached through the scheduler's address (as a remote cluster
    would be): the same bits as model.predict, for both models."""
    require("distributed")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster.scheduler_address) as client:
            x = da.from_array(data, chunks=(6, -1, -1))
            y = sdask.predict(sequential, x)
            assert_same_bits(y.compute(), sequential.predict(data))
            rng = np.random.default_rng(7)
            inputs = [rng.standard_normal((9, 6, 3)).astype("float32"), rng.standard_normal((9, 2)).astype("float32")]
            ys = sdask.predict(functional, [da.from_array(a, chunks=(3,) + a.shape[1:]) for a in inputs])
            for got, want in zip(client.compute(ys, sync=True), functional.predict(inputs)):
                assert_same_bits(got, want)
            assert len(client.scheduler_info()["workers"]) == 2


def test_the_comparison_fails_on_a_planted_difference(sequential, data):
    y = sdask.predict(sequential, da.from_array(data, chunks=(8, -1, -1))).compute(scheduler="threads")
    nudged = y.copy()
    nudged[9, 1] = np.nextafter(nudged[9, 1], np.inf)
    with pytest.raises(AssertionError, match="1 of 46 elements differ"):
        assert_same_bits(nudged, sequential.predict(data))
    with pytest.raises(AssertionError, match="shape"):
        assert_same_bits(y[:-1], sequential.predict(data))


def test_bad_chunking_is_refused_by_name(sequential, data):
    for chunks, axes in (((8, 3, -1), r"\[1\]"), ((8, -1, 2), r"\[2\]"), ((8, 2, 2), r"\[1, 2\]")):
        with pytest.raises(ValueError, match=rf"Argument `x` .* chunked along the batch axis only .*axes {axes}"):
            sdask.predict(sequential, da.from_array(data, chunks=chunks))
    with pytest.raises(ValueError, match=r"rechunk with x\.rechunk\(\{1: -1\}\)"):
        sdask.predict(sequential, da.from_array(data, chunks=(8, 3, -1)))
    x = da.from_array(data, chunks=(8, -1, -1))
    unknown = x[x[:, 0, 0] > 0]  # rows selected by value: unknown chunk sizes
    with pytest.raises(ValueError, match="known chunk sizes"):
        sdask.predict(sequential, unknown)


def test_bad_arguments_are_refused_by_name(sequential, functional, data):
    with pytest.raises(ValueError, match="Argument `x` .* must be a dask.array.Array .*got ndarray"):
        sdask.predict(sequential, data)
    with pytest.raises(ValueError, match="Argument `model` .* Sequential or Model, got LSTM"):
        sdask.predict(scratch_rnn.LSTM(2), da.from_array(data))
    with pytest.raises(ValueError, match="argument `threads`, expected a positive integer, got 0"):
        sdask.predict(sequential, da.from_array(data), threads=0)
    with pytest.raises(ValueError, match="must be a list of 2 dask arrays .*got one array"):
        sdask.predict(functional, da.from_array(data))
    rng = np.random.default_rng(0)
    sequence, extra = rng.standard_normal((10, 6, 3)), rng.standard_normal((10, 2))
    with pytest.raises(ValueError, match=r"Argument `x\[1\]` .* batch chunks of x\[0\], \(5, 5\), got \(4, 4, 2\)"):
        sdask.predict(functional, [da.from_array(sequence, chunks=(5, 6, 3)), da.from_array(extra, chunks=(4, 2))])
    stateful = scratch_rnn.Sequential([scratch_rnn.Input(batch_shape=(4, 7, 3)), scratch_rnn.GRU(2, stateful=True)])
    with pytest.raises(ValueError, match=r"no stateful layer .*stateful: \['gru"):
        sdask.predict(stateful, da.from_array(data[:4]))
    wrapped = scratch_rnn.Sequential(
        [scratch_rnn.Input(batch_shape=(4, 7, 3)), scratch_rnn.Bidirectional(scratch_rnn.LSTM(2, stateful=True))]
    )
    with pytest.raises(ValueError, match="no stateful layer"):
        sdask.predict(wrapped, da.from_array(data[:4]))


def test_importing_scratch_rnn_does_not_import_dask():
    import subprocess

    code = "import sys, scratch_rnn; print('dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    code = "import sys, scratch_rnn.dask; print('dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
