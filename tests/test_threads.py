"""Splitting a batch across threads (scratch_rnn.parallel, BaseRNN._loop): the same bits as one thread,
thread counts checked, concurrent calls on one layer. No timing here (docs/performance.md, "Threads").

Most tests force a split whatever the batch size (``split_anything``): the policy that decides when a split
pays (:func:`scratch_rnn.parallel.split_count`) is tested on its own, and the split run is compared with
the unsplit one exactly (tolerance 0, NaN equal to NaN only where both are NaN in the same place).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import assert_outputs_close, left_and_right_padded_mask, randomize, require

import scratch_rnn
from scratch_rnn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    GRUCell,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
    StackedRNNCells,
    parallel,
)
from scratch_rnn.testing.compare import assert_close

LAYERS = {
    "SimpleRNN": lambda **kw: SimpleRNN(5, **kw),
    "LSTM": lambda **kw: LSTM(4, **kw),
    "GRU": lambda **kw: GRU(6, **kw),
    "GRU_reset_before": lambda **kw: GRU(3, reset_after=False, **kw),
    "RNN_LSTMCell": lambda **kw: RNN(LSTMCell(4), **kw),
    "RNN_stacked": lambda **kw: RNN(StackedRNNCells([SimpleRNNCell(3), GRUCell(5), LSTMCell(2)]), **kw),
}


@pytest.fixture
def split_anything(monkeypatch):
    """Any batch of four rows or more is split, two rows a thread at least (the size policy is
    :func:`test_split_count_policy`'s); records the row slices each call ran, so a test can check that its call
    was split. Not one row a thread: a one-row product is BLAS's matrix-vector product, which sums in another
    order (the policy's :data:`~scratch_rnn.parallel.MIN_ROWS` keeps 8 rows a thread)."""
    monkeypatch.setattr(parallel, "MIN_ROWS", 2)
    monkeypatch.setattr(parallel, "MIN_STEP_FLOPS", 1)
    monkeypatch.setattr(parallel, "MIN_CALL_ELEMENTS", 1)  # the compiled loop's own split (scratch_rnn.compiled)
    runs = []
    original = parallel.map_slices

    def recording(fn, batch, n):
        runs.append(parallel.row_slices(batch, n))
        return original(fn, batch, n)

    monkeypatch.setattr(parallel, "map_slices", recording)
    return runs


def flat(outputs) -> list:
    """A call's outputs as a flat list (stacked cells return each cell's states as a list)."""
    if isinstance(outputs, (list, tuple)):
        return [leaf for output in outputs for leaf in flat(output)]
    return [outputs]


def assert_same_bits(actual, expected, context=""):
    """Every output of a call equal to the other call's, exactly (shape, dtype, values; NaN where NaN)."""
    __tracebackhide__ = True
    actual, expected = flat(actual), flat(expected)
    assert len(actual) == len(expected), f"{len(actual)} outputs, but should be {len(expected)} [{context}]"
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, 0.0, name=f"output[{i}]", context=context, equal_nan=True)


def call(layer, threads, *args, **kwargs):
    with scratch_rnn.threads(threads):
        return layer(*args, **kwargs)


def built(name, rng, dtype="float32", features=3, batch=1, **options):
    layer = LAYERS[name](dtype=dtype, **options)
    layer(np.zeros((batch, 2, features), dtype))
    randomize(layer, rng)
    return layer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True, "return_state": True},
        {"return_sequences": True, "go_backwards": True},
        {"return_sequences": True, "zero_output_for_mask": True},
        {"return_sequences": True, "zero_output_for_mask": True, "unroll": True, "go_backwards": True},
    ],
    ids=["last", "sequences+state", "backwards", "zero_output", "unroll_backwards_zero"],
)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_split_calls_compute_the_same_bits(name, options, dtype, backend, rng, split_anything):
    """On the NumPy kernels (split by BaseRNN._loop) and on the compiled loop (split by scratch_rnn.compiled.run)."""
    from scratch_rnn import compiled

    if backend == "numba":
        require("numba")
    layer = built(name, rng, dtype, **options)
    batch, timesteps = 11, 7  # slices of 4, 4, 3 rows with 3 threads; 6 and 5 with 2
    x = rng.standard_normal((batch, timesteps, 3)).astype(dtype)
    mask = left_and_right_padded_mask(batch, timesteps)
    for kwargs in ({}, {"mask": mask}):
        with compiled.using(backend):
            expected = call(layer, 1, x, **kwargs)
            assert not split_anything
            for threads in (2, 3, 16):  # 16: as many as two rows a thread allow, 5
                assert_same_bits(call(layer, threads, x, **kwargs), expected, f"{name} {options} threads={threads}")
                n = min(threads, batch // 2)
                assert [s.stop - s.start for s in split_anything.pop()] == [len(r) for r in np.array_split(x, n)]


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU", "RNN_stacked"])
def test_split_calls_with_initial_states_and_the_readable_path(name, rng, split_anything):
    layer = built(name, rng, return_state=True)
    x = rng.standard_normal((9, 5, 3)).astype("float32")
    initial = [0.5 * rng.standard_normal((9, size)).astype("float32") for size in layer.flat_state_size]
    for fast in (True, False):
        layer.fast = fast
        expected = call(layer, 1, x, initial_state=initial)
        assert_same_bits(call(layer, 3, x, initial_state=initial), expected, f"{name} fast={fast}")
        assert len(split_anything.pop()) == 3


def test_a_stateful_layer_carries_the_same_states_split(rng, split_anything):
    split, whole = (built("LSTM", rng, batch=8, stateful=True) for _ in range(2))
    whole.set_weights(split.get_weights())
    split.reset_state()
    whole.reset_state()
    split_anything.clear()
    for _ in range(3):
        x = rng.standard_normal((8, 4, 3)).astype("float32")
        assert_same_bits(call(split, 4, x), call(whole, 1, x))
    assert_same_bits(split.states, whole.states)
    assert len(split_anything) == 3


def test_nan_and_inf_inputs_stay_in_their_rows(rng, split_anything):
    layer = built("GRU", rng, return_sequences=True)
    x = rng.standard_normal((6, 4, 3)).astype("float32")
    x[1, 2, 0], x[4, 0, 1] = np.nan, np.inf
    expected = call(layer, 1, x)
    assert np.isnan(expected[1]).any() and not np.isnan(expected[[0, 2, 3, 5]]).any()
    assert_same_bits(call(layer, 2, x), expected)


def test_an_initial_state_near_the_largest_float_is_not_split(rng, split_anything):
    """The NumPy kernels choose LSTM's folded gates and GRU's update from the initial states: a split call would
    choose per slice. Such calls run unsplit, with the same bits. (The compiled loop has one form: it splits.)"""
    from scratch_rnn import compiled

    for name in ("LSTM", "GRU"):
        layer = built(name, rng)
        x = rng.standard_normal((6, 3, 3)).astype("float32")
        initial = [np.zeros((6, size), "float32") for size in layer.flat_state_size]
        initial[0][4, 0] = np.finfo("float32").max  # one row above half the largest float
        with compiled.using("numpy"):
            expected = call(layer, 1, x, initial_state=initial)
            assert_same_bits(call(layer, 2, x, initial_state=initial), expected, name)
            initial[0][4, 0] = np.nan
            assert_same_bits(call(layer, 2, x, initial_state=initial), call(layer, 1, x, initial_state=initial), name)
    assert not split_anything


def test_models_split_through_predict_and_bidirectional(rng, split_anything):
    inputs = scratch_rnn.Input(shape=(6, 3))
    forward = Bidirectional(LSTM(4, return_sequences=True))(inputs)
    outputs = scratch_rnn.Dense(2)(GRU(5)(forward))
    model = scratch_rnn.Model(inputs, outputs)
    for layer in model.layers[1:]:
        randomize(layer, rng)
    x = rng.standard_normal((10, 6, 3)).astype("float32")
    expected = model.predict(x, threads=1)
    assert not split_anything
    assert_same_bits(model.predict(x, threads=2), expected)
    assert len(split_anything) == 3  # forward, backward, GRU
    sequential = scratch_rnn.Sequential([scratch_rnn.Input(shape=(6, 3)), SimpleRNN(4)])
    randomize(sequential.layers[0], rng)
    assert_same_bits(sequential.predict(x, batch_size=7, threads=3), sequential.predict(x, threads=1))


def test_the_comparison_fails_on_a_planted_difference(rng, split_anything, monkeypatch):
    """The split run's results joined in the wrong order (each slice right, the rows swapped; the NumPy kernels'
    split, which joins the slices' results) or a slice that never ran (the compiled loop's, which writes in
    place) must fail the comparison above; so must an off-by-one ulp in one element."""
    from scratch_rnn import compiled

    layer = built("SimpleRNN", rng, return_sequences=True, return_state=True)
    x = rng.standard_normal((6, 4, 3)).astype("float32")
    expected = call(layer, 1, x)
    original = parallel.map_slices
    monkeypatch.setattr(parallel, "map_slices", lambda fn, batch, n: original(fn, batch, n)[::-1])
    with compiled.using("numpy"), pytest.raises(AssertionError, match="output"):
        assert_same_bits(call(layer, 2, x), expected)
    monkeypatch.setattr(parallel, "map_slices", lambda fn, batch, n: [fn(parallel.row_slices(batch, n)[0])])
    with compiled.using("numba" if compiled.available() else "numpy"), pytest.raises(AssertionError, match="output"):
        assert_same_bits(call(layer, 2, x), expected)
    nudged = [a.copy() for a in expected]
    nudged[1][3, 0] = np.nextafter(nudged[1][3, 0], np.inf)
    with pytest.raises(AssertionError, match="output\\[1\\]"):
        assert_same_bits(nudged, expected)
    nan = [a.copy() for a in expected]
    nan[0][2, 1, 0] = np.nan
    with pytest.raises(AssertionError):
        assert_same_bits(nan, expected)


def test_concurrent_calls_on_one_layer_from_user_threads(rng):
    """Eight user threads call one layer at once, with the split on and off (their own workspaces and the
    shared pool's); each gets what a lone call computes."""
    layer = built("LSTM", rng, return_sequences=True)
    inputs = [rng.standard_normal((32 + i, 12, 3)).astype("float32") for i in range(8)]
    expected = [call(layer, 1, x) for x in inputs]
    results, errors = [None] * len(inputs), []
    barrier = threading.Barrier(len(inputs))

    def work(i, threads):
        try:
            barrier.wait()
            for _ in range(5):
                results[i] = call(layer, threads, inputs[i])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    original = parallel.MIN_ROWS, parallel.MIN_STEP_FLOPS
    parallel.MIN_ROWS, parallel.MIN_STEP_FLOPS = 2, 1  # split every call (threads 2 and 3)
    try:
        workers = [threading.Thread(target=work, args=(i, 1 + i % 3)) for i in range(len(inputs))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        parallel.MIN_ROWS, parallel.MIN_STEP_FLOPS = original
    assert not errors
    for i, (result, want) in enumerate(zip(results, expected)):
        assert_same_bits(result, want, f"thread {i}")


def test_an_error_in_one_slice_is_raised_after_every_slice_ran():
    ran = []

    def fn(rows):
        ran.append(rows.start)
        if rows.start == 3:
            raise RuntimeError("slice at row 3")
        return rows.start

    with pytest.raises(RuntimeError, match="row 3"):
        parallel.map_slices(fn, 9, 3)
    assert sorted(ran) == [0, 3, 6]
    assert parallel.map_slices(fn, 2, 2) == [0, 1]


def test_row_slices_cover_the_batch_in_order():
    for batch in range(0, 12):
        for n in range(1, 6):
            slices = parallel.row_slices(batch, n)
            assert len(slices) == n
            assert [i for s in slices for i in range(batch)[s]] == list(range(batch))
            assert max(len(range(batch)[s]) for s in slices) - min(len(range(batch)[s]) for s in slices) <= 1


def test_split_count_policy(monkeypatch):
    """Split only when each thread gets MIN_ROWS rows and (n - 1) * MIN_STEP_FLOPS flops a step; never more
    threads than asked for."""
    monkeypatch.setattr(parallel, "MIN_ROWS", 8)
    monkeypatch.setattr(parallel, "MIN_STEP_FLOPS", 1000)
    with scratch_rnn.threads(4):
        assert parallel.split_count(7, lambda: 10**9) == 1  # fewer rows than two threads need
        assert parallel.split_count(16, lambda: 10**9) == 2
        assert parallel.split_count(1000, lambda: 10**9) == 4
        assert parallel.split_count(1000, lambda: 1) == 1  # 500 flops a thread < 1000
        assert parallel.split_count(1000, lambda: 3) == 2  # 3 threads: 333 * 3 < 2000; 2 threads: 1500 >= 1000
        assert parallel.split_count(1000, lambda: 10) == 3  # 4 threads: 2500 < 3000; 3 threads: 3330 >= 2000
    with scratch_rnn.threads(1):
        assert parallel.split_count(10**6, lambda: pytest.fail("not asked with one thread")) == 1


@pytest.mark.parametrize("threadpoolctl_found", [True, False])
def test_the_default_leaves_the_cores_blas_does_not_use(monkeypatch, threadpoolctl_found):
    """Every core when a split can lower BLAS's threads (threadpoolctl found, no BLAS variable); else cores over
    BLAS's threads from its environment, 1 when BLAS is not told (it takes every core)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: (real if threadpoolctl_found else lambda *_: None)(name, *a)
    )
    monkeypatch.setattr(parallel, "machine_threads", lambda: 8)
    cases = [
        ({}, 8 if threadpoolctl_found else 1),
        ({"OPENBLAS_NUM_THREADS": "1"}, 8),
        ({"OMP_NUM_THREADS": "2"}, 4),
        ({"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "1"}, 2),  # OpenBLAS's own variable first
        ({"MKL_NUM_THREADS": "3"}, 2),
        ({"OMP_NUM_THREADS": "16"}, 1),
        ({"OMP_NUM_THREADS": "4,2"}, 1),  # nested OpenMP levels: not one integer
        ({"OMP_NUM_THREADS": "0"}, 1),
        ({"GOTO_NUM_THREADS": " "}, 8 if threadpoolctl_found else 1),  # blank: not set
    ]
    if threadpoolctl_found:
        require("threadpoolctl")
    for env, expected in cases:
        for name in parallel.BLAS_ENV:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        parallel.default_threads.cache_clear()
        parallel.limits_blas.cache_clear()
        assert parallel.default_threads() == expected, env
        unset = all(not value.strip() for value in env.values())
        assert parallel.limits_blas() == (threadpoolctl_found and unset), env
    monkeypatch.undo()
    parallel.default_threads.cache_clear()
    parallel.limits_blas.cache_clear()


def test_thread_counts_are_checked_by_name(monkeypatch):
    for bad in (0, -1, 1.5, "2", True, [2]):
        with pytest.raises(ValueError, match="argument `threads`, expected a positive integer"):
            with scratch_rnn.threads(bad):
                pass
        with pytest.raises(ValueError, match="argument `n`, expected a positive integer"):
            scratch_rnn.set_num_threads(bad)
    model = scratch_rnn.Sequential([scratch_rnn.Input(shape=(2, 3)), SimpleRNN(2)])
    with pytest.raises(ValueError, match="argument `threads`.*got 0"):
        model.predict(np.zeros((1, 2, 3), "float32"), threads=0)
    monkeypatch.setenv(parallel.ENV, "many")
    with pytest.raises(ValueError, match="environment variable `SCRATCH_RNN_THREADS`.*got 'many'"):
        scratch_rnn.get_num_threads()
    monkeypatch.setenv(parallel.ENV, "0")
    with pytest.raises(ValueError, match="SCRATCH_RNN_THREADS"):
        model.predict(np.zeros((32, 2, 3), "float32"))


def test_where_the_thread_count_comes_from(monkeypatch):
    monkeypatch.delenv(parallel.ENV, raising=False)
    monkeypatch.setattr(parallel, "_global", None)
    assert scratch_rnn.get_num_threads() == parallel.default_threads() >= 1
    monkeypatch.setenv(parallel.ENV, " 3 ")
    assert scratch_rnn.get_num_threads() == 3
    scratch_rnn.set_num_threads(5)
    assert scratch_rnn.get_num_threads() == 5
    with scratch_rnn.threads(2):
        assert scratch_rnn.get_num_threads() == 2
        seen = []
        other = threading.Thread(target=lambda: seen.append(scratch_rnn.get_num_threads()))
        other.start()
        other.join()
        assert seen == [5]  # the context manager is this thread's only
        with scratch_rnn.threads(None):
            assert scratch_rnn.get_num_threads() == 2
    assert scratch_rnn.get_num_threads() == 5
    scratch_rnn.set_num_threads(None)
    assert scratch_rnn.get_num_threads() == 3


@pytest.mark.parametrize("name, units, batch", [("SimpleRNN", 8, 16), ("LSTM", 8, 16), ("GRU", 8, 16)])
def test_a_split_call_runs_the_loop_the_whole_batch_chose(name, units, batch, rng, split_anything):
    """The backend (compiled loop or NumPy kernels, scratch_rnn.compiled) is chosen from the batch size; a split
    call must run what the whole batch chose, not what each slice would (in float64 the whole batch chooses the
    NumPy kernels here, its quarters would choose the compiled loop, whose libm activations differ in the last
    bits). Small products on purpose: OpenBLAS takes the same (small-matrix) path for the batch and its slices."""
    require("numba")
    from scratch_rnn import compiled

    layer = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[name](units, return_sequences=True, dtype="float64")
    x = rng.standard_normal((batch, 5, 3))
    layer(x[:1])
    randomize(layer, rng)
    with compiled.using("auto"):
        assert layer.compiled_loop(batch) is None and layer.compiled_loop(batch // 4) is not None
        expected = call(layer, 1, x)
        assert_same_bits(call(layer, 4, x), expected, name)
    assert len(split_anything) == 1


def test_every_slice_runs_in_the_callers_context(split_anything):
    """A setting made with a context manager in the calling thread (scratch_rnn.threads, compiled.using)
    holds in the pool threads that run the other slices."""
    seen = []

    def fn(rows):
        seen.append(scratch_rnn.get_num_threads())
        return rows

    with scratch_rnn.threads(7):
        parallel.map_slices(fn, 9, 3)
    assert seen == [7, 7, 7]


def test_where_blas_changes_kernel_with_the_size_the_split_is_within_tolerance(rng):
    """The one way a split call's bits can differ: a product whose size straddles a BLAS kernel switch between
    the slice and the whole batch. OpenBLAS on SkylakeX takes small-matrix kernels up to about 10^6
    multiply-adds: GRU(64, reset_after=False)'s (64, 64) @ (64, B) product is 819K per 200-row slice, 1.6M for
    400 rows (measured: max |difference| 1.2e-7, an ulp). Other BLAS builds may give the same bits here; either
    way the outputs agree within the tolerance of two implementations of one layer (tests/helpers.py). 384
    features: enough flops a step (34 Mflop a slice) for the policy to split it."""
    layer = GRU(64, reset_after=False, return_sequences=True, return_state=True)
    x = rng.standard_normal((400, 10, 384)).astype("float32")
    layer(x[:2])
    randomize(layer, rng)
    with scratch_rnn.threads(2):
        assert parallel.split_count(400, layer._step_flops_per_row) == 2  # the policy splits this call
    expected = call(layer, 1, x)
    assert_outputs_close(call(layer, 2, x), expected)


def test_the_bench_times_the_split_in_a_block_of_its_own(monkeypatch, split_anything):
    """``scratch-rnn bench``'s scratch_split candidate: the engine's threads at the run's count (a forced
    split here), NumPy's BLAS on one thread for its block, outputs identical to scratch's."""
    require("threadpoolctl")
    from scratch_rnn import bench

    limits = []
    original = bench.one_blas_thread
    monkeypatch.setattr(bench, "one_blas_thread", lambda: limits.append(1) or original())
    result = bench.benchmark(
        ["LSTM"],
        [(8, 3, 2, 4)],
        repeats=2,
        threads=2,
        against=["scratch_split"],
        sample_seconds=0.001,
        settle_seconds=0,
    )
    entry = result["results"][0]
    assert entry["max_abs_difference"] == {"scratch_split": 0.0}
    assert len(entry["samples"]["scratch_split"]) == 2 and "scratch/scratch_split" in entry["ratios"]
    assert limits == [1, 1]  # one block a repeat
    assert split_anything and all(len(slices) == 2 for slices in split_anything)


def _split_in_child(queue):
    layer, x = _forked_case
    queue.put(call(layer, 2, x))


_forked_case = None


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_splits_with_a_pool_of_its_own(rng, split_anything):
    """After the parent split a call (its pool has threads), a child forked from it (multiprocessing's default
    on Linux) must not queue slices on the parent's pool, whose threads it does not have: it would hang."""
    import multiprocessing

    global _forked_case
    layer = built("LSTM", rng, return_sequences=True)
    x = rng.standard_normal((8, 4, 3)).astype("float32")
    expected = call(layer, 2, x)  # the parent's pool now exists, its threads idle
    assert split_anything
    _forked_case = (layer, x)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_split_in_child, args=(queue,))
    child.start()
    try:
        result = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        if child.is_alive():  # pragma: no cover - the failure this test is about
            child.kill()
        _forked_case = None
    assert_same_bits(result, expected)


# --- BLAS's threads while a split call runs (parallel.blas_limited) ---------------------------------------------
def blas_counts() -> dict:
    """``{library path: threads}`` of every process-wide BLAS library loaded, read back with threadpoolctl (a fresh
    scan). Not MKL (scratch_rnn.mkl may load it) nor OpenBLAS on OpenMP: threadpoolctl sets their threads per calling
    thread, and the limiter leaves them alone (parallel._process_wide)."""
    import threadpoolctl

    return {
        p["filepath"]: p["num_threads"]
        for p in threadpoolctl.threadpool_info()
        if p["user_api"] == "blas" and p["internal_api"] != "mkl" and p.get("threading_layer") != "openmp"
    }


@pytest.fixture
def blas(monkeypatch):
    """The limiter on (threadpoolctl found, no BLAS variable in the environment) and 2 cores as far as it knows,
    so an n-way split lowers each BLAS library to max(1, 2 // n) threads. Yields BLAS's counts before the test;
    after it, they must be back."""
    require("threadpoolctl")
    for name in parallel.BLAS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(parallel, "machine_threads", lambda: 2)
    parallel.limits_blas.cache_clear()
    parallel.default_threads.cache_clear()
    before = blas_counts()
    if max(before.values(), default=1) < 2:  # pragma: no cover - a one-core machine's BLAS
        pytest.skip("BLAS runs on one thread here: nothing to lower")
    yield before
    monkeypatch.undo()
    parallel.limits_blas.cache_clear()
    parallel.default_threads.cache_clear()
    assert blas_counts() == before, "BLAS's threads not restored"


def counts_inside_a_split(batch: int, n: int) -> list:
    """BLAS's counts as each slice of an ``n``-way split of ``batch`` rows saw them."""
    return parallel.map_slices(lambda rows: blas_counts(), batch, n)


@pytest.mark.parametrize("cores, n", [(2, 2), (2, 3), (8, 2), (8, 4), (8, 8)])
def test_a_split_lowers_blas_to_its_share_of_the_cores_never_raising_it(blas, monkeypatch, cores, n):
    monkeypatch.setattr(parallel, "machine_threads", lambda: cores)
    share = max(1, cores // n)  # 2 cores: 1 thread; 8 cores: 4, 2 or 1 (4 and 2 above BLAS's 2: unchanged)
    assert counts_inside_a_split(4 * n, n) == [{path: min(count, share) for path, count in blas.items()}] * n
    assert blas_counts() == blas


def test_the_default_splits_a_call_across_the_cores_with_blas_lowered(blas, split_anything, monkeypatch, rng):
    monkeypatch.delenv(parallel.ENV, raising=False)
    monkeypatch.setattr(parallel, "_global", None)
    assert scratch_rnn.get_num_threads() == 2
    layer = built("GRU", rng, return_sequences=True)
    x = rng.standard_normal((8, 4, 3)).astype("float32")
    seen, original = [], parallel._map
    monkeypatch.setattr(parallel, "_map", lambda fn, slices: seen.append(blas_counts()) or original(fn, slices))
    result = layer(x)
    assert split_anything.pop() == parallel.row_slices(8, 2)
    assert seen == [dict.fromkeys(blas, 1)]
    assert blas_counts() == blas
    assert_same_bits(result, call(layer, 1, x))


@pytest.mark.parametrize("why", ["no threadpoolctl", "OPENBLAS_NUM_THREADS set", "limiter planted off"])
def test_blas_is_left_alone_without_threadpoolctl_or_with_its_variable_set(blas, monkeypatch, why):
    """Without threadpoolctl, today's behaviour: the default is 1 and an explicit split leaves BLAS as it is;
    a user who sets a BLAS variable manages BLAS (the default is cores over its threads). Planted: the check
    of the lowered counts above fails when the limiter is off."""
    import importlib.util

    if why == "no threadpoolctl":
        real = importlib.util.find_spec
        hidden = lambda name, *a: None if name == "threadpoolctl" else real(name)  # noqa: E731
        monkeypatch.setattr(importlib.util, "find_spec", hidden)
        expected_default = 1
    elif why == "OPENBLAS_NUM_THREADS set":
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        expected_default = 1
    parallel.limits_blas.cache_clear()
    parallel.default_threads.cache_clear()
    if why == "limiter planted off":
        monkeypatch.setattr(parallel, "limits_blas", lambda: False)
        with pytest.raises(AssertionError):
            assert counts_inside_a_split(8, 2) == [dict.fromkeys(blas, 1)] * 2
        return
    assert not parallel.limits_blas() and parallel.default_threads() == expected_default
    assert counts_inside_a_split(8, 2) == [blas, blas]


def splits_leaving_one_by_one(count: int) -> tuple[list, dict]:
    """``count`` user threads each split a call (2, 3, 4 ways) at once, and leave one after another while the
    others still run: BLAS's counts that each saw once every earlier one had left, and BLAS's counts after."""
    entered = threading.Barrier(count + 1, timeout=30)
    turns = [threading.Event() for _ in range(count)]
    seen, errors = [None] * count, []

    def fn(i, rows):
        if rows.start == 0:  # the slice in the calling user thread
            entered.wait()
            assert turns[i].wait(timeout=30)
            seen[i] = blas_counts()

    def work(i):
        try:
            parallel.map_slices(lambda rows: fn(i, rows), 16, 2 + i % 3)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    entered.wait()
    for turn, worker in zip(turns, workers):
        turn.set()
        worker.join(timeout=30)
    assert not errors
    return seen, blas_counts()


@pytest.mark.parametrize("count", [2, 4])
def test_concurrent_splits_restore_blas_when_the_last_one_leaves(blas, monkeypatch, count):
    """The first to leave must not restore BLAS's threads under the others; the last one does. Planted: a
    limiter that restores whenever a call leaves fails this check."""
    seen, after = splits_leaving_one_by_one(count)
    assert seen == [dict.fromkeys(blas, 1)] * count and after == blas

    def eager_release():
        with parallel._blas_lock:
            parallel._blas.users -= 1
            parallel._restore_blas()

    monkeypatch.setattr(parallel, "_release_blas", eager_release)
    seen, after = splits_leaving_one_by_one(count)
    with pytest.raises(AssertionError):
        assert seen == [dict.fromkeys(blas, 1)] * count
    assert seen[0] == dict.fromkeys(blas, 1) and seen[1] == blas and after == blas


def test_a_split_in_a_user_thread_leaves_blas_to_other_threads_limits(blas, monkeypatch):
    """threadpoolctl (3.6 on) lets one Python thread at a time set OpenBLAS's threads (pthreads builds), the
    first that sets them, while it lives; a split call gives that role back, so this thread's own
    ``threadpool_limits`` still applies after another thread split a call. Planted: keeping the role fails."""
    import threadpoolctl

    def limit_applies() -> bool:
        split, done = threading.Event(), threading.Event()
        worker = threading.Thread(target=lambda: (counts_inside_a_split(8, 2), split.set(), done.wait(timeout=30)))
        worker.start()  # the worker splits a call, then stays alive
        try:
            assert split.wait(timeout=30)
            with threadpoolctl.threadpool_limits(1, user_api="blas"):
                return blas_counts() == dict.fromkeys(blas, 1)
        finally:
            done.set()
            worker.join()

    assert limit_applies()
    controllers = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
    one_at_a_time = [c for c in controllers if hasattr(type(c), "_SHARED_STATE") and c.threading_layer != "openmp"]
    if one_at_a_time:  # threadpoolctl 3.6 on, OpenBLAS on pthreads
        monkeypatch.setattr(parallel, "_set_blas_threads", lambda pool, count: pool.set_num_threads(count))
        assert not limit_applies()
        monkeypatch.undo()
        type(one_at_a_time[0]).clear_controlling_thread(force=True)  # the role the planted version kept


def _blas_in_child(queue):
    counts = [parallel._blas.users, blas_counts()]
    counts.append(counts_inside_a_split(8, 2)[0])
    queue.put([*counts, blas_counts()])


def forked_during_a_split(monkeypatch, planted: bool) -> list:
    """A child forked (multiprocessing's default on Linux) while this process runs a split with BLAS lowered:
    ``[split calls running, BLAS's counts, counts inside a split of its own, counts after it]`` in the child.
    ``planted``: the child's reset does not restore BLAS."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def fn(rows):
        if rows.start:
            return None
        with monkeypatch.context() as patch:
            if planted:
                patch.setattr(parallel, "_restore_blas", lambda: None)
            child = context.Process(target=_blas_in_child, args=(queue,))
            child.start()
        try:
            return queue.get(timeout=60)
        finally:
            child.join(timeout=10)

    return parallel.map_slices(fn, 8, 2)[0]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_child_forked_during_a_split_gets_blas_back(blas, monkeypatch):
    """The split calls that lowered BLAS do not exist in the child: it starts with none running and BLAS's
    counts back, and splits of its own lower and restore them. Planted: a reset that does not restore fails."""
    lowered = dict.fromkeys(blas, 1)
    assert forked_during_a_split(monkeypatch, planted=False) == [0, blas, lowered, blas]
    with pytest.raises(AssertionError):
        assert forked_during_a_split(monkeypatch, planted=True) == [0, blas, lowered, blas]


RESCAN = """
import json, sys
import threadpoolctl
from scratch_rnn import parallel

if sys.argv[1] == "planted":
    parallel.SCIPY_BLAS = "no.such.module"
def counts():
    return {p["filepath"]: p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
seen = {"without": counts()}
seen["inside without"] = parallel.map_slices(lambda rows: counts(), 8, 2)[0]
import scipy.linalg.cython_blas
seen["with"] = counts()
seen["inside with"] = parallel.map_slices(lambda rows: counts(), 8, 2)[0]
seen["after"] = counts()
print(json.dumps(seen))
"""


def rescan_in_a_fresh_process(planted: bool) -> dict:
    """BLAS's counts in a new process (2 cores or more), before and inside split calls, without SciPy's BLAS
    and after it was loaded; the SciPy BLAS's path under ``"scipy"``."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in (*parallel.BLAS_ENV, parallel.ENV)}
    run = subprocess.run(
        [sys.executable, "-c", RESCAN, "planted" if planted else "real"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    (seen["scipy"],) = set(seen["with"]) - set(seen["without"])
    return seen


def test_the_limiter_finds_scipys_blas_loaded_after_its_first_split():
    """The compiled loop's np.dot runs on SciPy's BLAS, a library of its own, loaded at the loop's first call;
    the limiter scans the libraries once, and again when SciPy's BLAS appears. Planted: no second scan."""
    require("threadpoolctl")
    require("scipy")
    if parallel.machine_threads() < 2:  # pragma: no cover
        pytest.skip("one core: BLAS already runs on one thread")
    seen = rescan_in_a_fresh_process(planted=False)
    assert seen["inside without"] == dict.fromkeys(seen["without"], 1)
    assert seen["with"][seen["scipy"]] > 1 and seen["after"] == seen["with"]
    assert seen["inside with"] == dict.fromkeys(seen["with"], 1)
    seen = rescan_in_a_fresh_process(planted=True)
    assert seen["inside with"][seen["scipy"]] == seen["with"][seen["scipy"]] > 1


def test_threadpoolctl_is_imported_at_the_first_split_not_with_the_package():
    require("threadpoolctl")
    code = """
import sys
import scratch_rnn
from scratch_rnn import parallel
{plant}
before = "threadpoolctl" in sys.modules
parallel.map_slices(lambda rows: rows, 8, 2)
print(before, "threadpoolctl" in sys.modules)
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in parallel.BLAS_ENV}

    def imported(plant: str) -> str:
        done = subprocess.run([sys.executable, "-c", code.format(plant=plant)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert imported("") == ["False", "True"]
    assert imported("import threadpoolctl") != ["False", "True"]  # planted: the check sees an early import


def test_a_failure_while_lowering_blas_leaves_no_call_counted(blas, monkeypatch):
    """A split whose lowering fails (say threadpoolctl cannot be imported) raises, and the next split still
    lowers BLAS and restores it: the failed call is not left counted as running."""
    monkeypatch.setattr(parallel._blas, "pools", None)

    def broken():
        raise ImportError("threadpoolctl is broken")

    monkeypatch.setattr(parallel, "_blas_pools", broken)
    with pytest.raises(ImportError, match="broken"):
        counts_inside_a_split(8, 2)
    assert parallel._blas.users == 0
    monkeypatch.undo()
    monkeypatch.setattr(parallel, "machine_threads", lambda: 2)
    assert counts_inside_a_split(8, 2) == [dict.fromkeys(blas, 1)] * 2


def affinities_of_split(batch: int, n: int) -> tuple[list, set, list]:
    """The cores each slice of a split may run on, this thread's cores after it, and each slice's cores in an
    unpinned split after it (the pool's threads)."""
    import os

    during = parallel.map_slices(lambda rows: sorted(os.sched_getaffinity(0)), batch, n)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "PIN_SLICES", False)
        later = parallel.map_slices(lambda rows: os.sched_getaffinity(0), batch, n)
    return during, os.sched_getaffinity(0), later


@pytest.mark.skipif(
    not hasattr(__import__("os"), "sched_setaffinity") or len(__import__("os").sched_getaffinity(0)) < 2,
    reason="needs Linux's thread affinity and two cores",
)
def test_pinned_slices_run_one_core_each_and_give_the_threads_back(monkeypatch, rng, split_anything):
    """parallel.PIN_SLICES (on by default; SCRATCH_RNN_PIN=0 turns it off): slice i runs on the caller's i-th core
    (round robin), every thread's own cores restored after; the bits are those of one thread. Planted: a pin that
    does not restore fails."""
    import os

    cores, mine = sorted(os.sched_getaffinity(0)), os.sched_getaffinity(0)
    monkeypatch.setattr(parallel, "PIN_SLICES", True)
    during, after, later = affinities_of_split(12, 3)
    assert during == [[cores[i % len(cores)]] for i in range(3)]
    assert after == mine and later == [mine] * 3
    layer = built("LSTM", rng, return_sequences=True)
    x = rng.standard_normal((12, 5, 3)).astype("float32")
    assert_same_bits(call(layer, 3, x), call(layer, 1, x))
    monkeypatch.setattr(parallel, "_pinned", lambda fn, cpu: lambda rows: (os.sched_setaffinity(0, {cpu}), fn(rows))[1])
    try:
        during, after, later = affinities_of_split(12, 3)
        assert after != mine and later != [mine] * 3
    finally:  # this thread's cores back; the pool, whose threads may keep one core, dropped (its threads exit)
        os.sched_setaffinity(0, mine)
        parallel._pool = None


def test_pinning_is_on_by_default_and_the_environment_turns_it_off():
    import subprocess
    import sys

    code = "from scratch_rnn import parallel; print(parallel.PIN_SLICES)"
    for env, expected in (({}, "True"), ({"SCRATCH_RNN_PIN": "0"}, "False"), ({"SCRATCH_RNN_PIN": "1"}, "True")):
        environment = {k: v for k, v in __import__("os").environ.items() if k != "SCRATCH_RNN_PIN"} | env
        out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected, env


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="needs Linux's thread affinity")
def test_a_split_runs_unpinned_where_the_system_refuses_to_pin(monkeypatch, rng, split_anything):
    """A sandbox that forbids sched_setaffinity (OSError) costs the pinning, not the call."""
    import os

    def refused(pid, cpus):
        raise PermissionError(1, "Operation not permitted")

    layer = built("GRU", rng, return_sequences=True)
    x = rng.standard_normal((12, 5, 3)).astype("float32")
    expected = call(layer, 1, x)
    monkeypatch.setattr(parallel, "PIN_SLICES", True)
    monkeypatch.setattr(parallel, "machine_threads", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "sched_setaffinity", refused)
    assert_same_bits(call(layer, 2, x), expected)
    assert split_anything and len(split_anything[-1]) == 2
