"""MKL's packed per-step products (scratch_rnn/mkl.py): the products against float64 within the rounding bound
of a dot product, the layers on them against the layers on NumPy's BLAS and against Keras, split calls bit for
bit, the selection and its errors. No timing here (docs/performance.md, "MKL's packed products")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import assert_outputs_close, fast_lane, left_and_right_padded_mask, randomize, require

import scratch_rnn
from scratch_rnn import GRU, LSTM, SimpleRNN, compiled, mkl, parallel
from scratch_rnn.testing.compare import assert_close


def require_mkl():
    """MKL's runtime, or a skip locally; under ``CI=true`` CI installs the ``mkl`` extra, so it must be there."""
    if mkl.available():
        return
    if os.environ.get("CI", "").lower() == "true" and not fast_lane():
        pytest.fail("MKL is not installed, but CI installs every extra: pip install 'scratch-rnn[mkl]'")
    pytest.skip("MKL is optional locally (pip install 'scratch-rnn[mkl]')")


@pytest.fixture
def on_mkl():
    require_mkl()
    with mkl.using("mkl"):
        yield


def dot_bound(weights, x, dtype) -> np.ndarray:
    """The worst rounding error of ``weights @ x`` computed in ``dtype``: ``K u |W| |x|`` (a sum of K products,
    each rounded, in any order: Higham's gamma_K, to first order)."""
    u = np.finfo(dtype).eps / 2
    return weights.shape[1] * u * (np.abs(weights).astype(np.float64) @ np.abs(x).astype(np.float64))


SHAPES = [(8, 8, 8), (96, 30, 7), (1024, 385, 64), (30, 96, 1)]  # (M, K, n): square, rectangular, one column


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
def test_packed_products_are_within_the_rounding_bound(shape, dtype, rng, on_mkl):
    m, k, n = shape
    weights = rng.standard_normal((m, k)).astype(dtype)
    x = rng.standard_normal((k, n)).astype(dtype)
    exact = weights.astype(np.float64) @ x.astype(np.float64)
    bound = dot_bound(weights, x, dtype)
    left = mkl.recurrent_product(weights, n)
    assert isinstance(left, type(lambda: None)) and mkl.chosen(1, dtype)
    out = np.full((m, n), np.nan, dtype)
    left(x, out)
    assert out.dtype == dtype and np.all(np.abs(out - exact) <= bound)
    # rows: x.T @ weights.T, the SimpleRNN kernel's form
    rows = mkl.recurrent_product(np.ascontiguousarray(weights.T), n, left=False)
    out_rows = np.full((n, m), np.nan, dtype)
    rows(np.ascontiguousarray(x.T), out_rows)
    assert np.all(np.abs(out_rows - exact.T) <= bound.T)


def test_the_bound_check_fails_on_a_planted_difference(rng, on_mkl):
    """The comparison above can fail: one element moved by a tenth of its magnitude is outside the bound."""
    weights = rng.standard_normal((96, 30)).astype("float32")
    x = rng.standard_normal((30, 7)).astype("float32")
    out = np.empty((96, 7), "float32")
    mkl.recurrent_product(weights, 7)(x, out)
    out[5, 3] *= 1.1
    exact = weights.astype(np.float64) @ x.astype(np.float64)
    assert not np.all(np.abs(out - exact) <= dot_bound(weights, x, "float32"))


def packed_product(x, packed, n_columns, dtype) -> np.ndarray:
    """``x @ W`` with ``W`` packed as the B operand (:func:`mkl.packed`), through MKL's compute call."""
    rows, k = x.shape
    out = np.full((rows, n_columns), np.nan, dtype)
    mkl.compute(dtype)(101, 111, 151, rows, n_columns, k, x.ctypes.data, k, packed.ctypes.data, n_columns, 0.0,
                       out.ctypes.data, n_columns)  # fmt: skip
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in SHAPES])
def test_weights_packed_from_their_transpose_give_the_same_bits(shape, dtype, rng, on_mkl):
    """``mkl.packed(S, n, transposed=True)`` packs ``S.T``, MKL transposing as it packs (the compiled loop's
    weight stacks): bit for bit the product of ``S.T`` packed as it is, and within the rounding bound."""
    columns, k, n = shape
    stack = rng.standard_normal((columns, k)).astype(dtype)  # (N, K): the matrix's transpose
    x = rng.standard_normal((n, k)).astype(dtype)
    as_is = packed_product(x, mkl.packed(np.ascontiguousarray(stack.T), n), columns, dtype)
    transposing = packed_product(x, mkl.packed(stack, n, transposed=True), columns, dtype)
    np.testing.assert_array_equal(transposing, as_is, strict=True)
    exact = x.astype(np.float64) @ stack.T.astype(np.float64)
    assert np.all(np.abs(transposing - exact) <= dot_bound(x, stack.T, dtype))


def test_the_transposed_packing_check_fails_on_a_planted_difference(rng, on_mkl):
    """A square stack packed without ``transposed`` is ``S``, not ``S.T``: the comparison above fails."""
    stack = rng.standard_normal((8, 8)).astype("float32")
    x = rng.standard_normal((5, 8)).astype("float32")
    as_is = packed_product(x, mkl.packed(np.ascontiguousarray(stack.T), 5), 8, "float32")
    wrong = packed_product(x, mkl.packed(stack, 5), 8, "float32")
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(wrong, as_is, strict=True)


def test_a_product_reuses_its_binding_and_follows_the_buffers(rng, on_mkl):
    """Bound once per (x, out) pair; the same arrays with new contents give the new product."""
    weights = rng.standard_normal((16, 12)).astype("float32")
    product = mkl.recurrent_product(weights, 5)
    x, out = rng.standard_normal((12, 5)).astype("float32"), np.empty((16, 5), "float32")
    for _ in range(3):
        x[...] = rng.standard_normal(x.shape)
        product(x, out)
        assert_close(out, weights @ x, 1e-5, name="product")


@pytest.mark.parametrize(
    "name, x, out, expected",
    [
        ("x", np.zeros((12, 6), "float32"), np.zeros((16, 5), "float32"), "shape (12, 5), got shape (12, 6)"),
        ("x", np.zeros((12, 5), "float64"), np.zeros((16, 5), "float32"), "dtype float64"),
        ("out", np.zeros((12, 5), "float32"), np.zeros((5, 16), "float32").T, "C-contiguous False"),
    ],
    ids=["shape", "dtype", "layout"],
)
def test_a_bad_buffer_is_refused_by_name(name, x, out, expected, rng, on_mkl):
    product = mkl.PackedProduct(rng.standard_normal((16, 12)).astype("float32"), 5, left=True)
    with pytest.raises(ValueError, match=rf"argument `{name}`.*{re.escape(expected)}"):
        product.bind(x, out)


INITIALISED_FIRST = """
import ctypes, numpy as np
from scratch_rnn import mkl
first = ctypes.CDLL(mkl.library_path())
first.MKL_Get_Max_Threads()  # MKL initialised here, by someone else: the Intel (OpenMP) layer
lib = mkl.library()
assert not lib.sequential
rng = np.random.default_rng(0)
weights, x = rng.standard_normal((64, 48)).astype("float32"), rng.standard_normal((48, 40)).astype("float32")
out = np.empty((64, 40), "float32")
previous = lib.MKL_Set_Num_Threads_Local(3)
mkl.PackedProduct(weights, 40, left=True).bind(x, out)()
assert lib.MKL_Set_Num_Threads_Local(previous) == 3, "the caller's setting was not restored"
exact = weights.astype(np.float64) @ x.astype(np.float64)
assert np.all(np.abs(out - exact) <= 48 * 2**-24 * (np.abs(weights) @ np.abs(x))), "wrong product"
"""


def test_where_mkl_was_initialised_first_a_product_restores_the_callers_mkl_threads():
    """Something else initialised MKL first (a NumPy built on MKL): its threading layer stays, each product sets
    one thread for itself and gives the calling thread its own setting back (a process of its own: the layer
    is chosen once per process)."""
    require_mkl()
    subprocess.run([sys.executable, "-c", INITIALISED_FIRST], check=True)


def test_the_engine_loading_mkl_first_takes_the_sequential_layer():
    """No OpenMP runtime in the process: nothing for a forked child (multiprocessing, Dask) to inherit."""
    require_mkl()
    code = (
        "import threadpoolctl; from scratch_rnn import mkl; lib = mkl.library(); "
        "pools = [(p['internal_api'], p.get('threading_layer')) for p in threadpoolctl.threadpool_info()]; "
        "assert lib.sequential and ('mkl', 'sequential') in pools, pools; "
        "assert not any(api == 'openmp' for api, _ in pools), pools"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


LAYERS = {
    "SimpleRNN": lambda **kw: SimpleRNN(24, **kw),
    "LSTM": lambda **kw: LSTM(16, **kw),
    "GRU": lambda **kw: GRU(20, **kw),
    "GRU_reset_before": lambda **kw: GRU(12, reset_after=False, **kw),
    "LSTM_square": lambda **kw: LSTM(9, **kw),  # features == units
}


def built(name, rng, dtype, features, **options):
    layer = LAYERS[name](dtype=dtype, **options)
    layer(np.zeros((1, 2, features), dtype))
    randomize(layer, rng)
    return layer


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_on_mkl_agree_with_layers_on_numpys_blas(name, dtype, rng):
    """The NumPy kernels with MKL's products against the same kernels with np.dot, with a mask, backwards, and
    initial states: within the tolerance of two implementations of one layer (only the products differ)."""
    require_mkl()
    features = 9
    layer = built(name, rng, dtype, features, return_sequences=True, return_state=True, go_backwards=True)
    x = rng.standard_normal((10, 7, features)).astype(dtype)
    mask = left_and_right_padded_mask(10, 7)
    with compiled.using("numpy"):
        with mkl.using("numpy"):
            expected = layer(x, mask=mask)
        with mkl.using("mkl"):
            actual = layer(x, mask=mask)
    assert_outputs_close(actual, expected, context=f"{name} {dtype}")


def test_the_layer_comparison_fails_on_a_planted_difference(rng, monkeypatch):
    """A product off by one part in a thousand makes the comparison above fail."""
    require_mkl()
    layer = built("LSTM", rng, "float32", 9, return_sequences=True)
    x = rng.standard_normal((10, 7, 9)).astype("float32")
    with compiled.using("numpy"), mkl.using("numpy"):
        expected = layer(x)
    original = mkl.PackedProduct.bind

    def planted(self, x, out):
        product = original(self, x, out)

        def wrong():
            product()
            out[0, 0] *= 1.001

        return wrong

    monkeypatch.setattr(mkl.PackedProduct, "bind", planted)
    with compiled.using("numpy"), mkl.using("mkl"), pytest.raises(AssertionError):
        assert_outputs_close(layer(x), expected)


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_split_call_on_mkl_computes_the_same_bits(name, rng, monkeypatch):
    """MKL's one-thread product computes each sample's column alike in a slice and in the whole batch."""
    require_mkl()
    monkeypatch.setattr(parallel, "MIN_ROWS", 2)
    monkeypatch.setattr(parallel, "MIN_STEP_FLOPS", 1)
    layer = built(name, rng, "float32", 5, return_sequences=True)
    x = rng.standard_normal((12, 6, 5)).astype("float32")
    with compiled.using("numpy"), mkl.using("mkl"):
        with scratch_rnn.threads(1):
            whole = layer(x)
        with scratch_rnn.threads(3):
            split = layer(x)
    assert_close(split, whole, 0.0, name="split output", equal_nan=True)


def test_the_packing_buffers_are_kept_per_thread_and_slot():
    """mkl.scratch: the same buffer for a slot until a larger one is asked for, another for another slot, dtype or
    thread (a call's packed weights must not be overwritten by another thread's call)."""
    slot = 1000  # one no call uses (calls take slots from 0)
    a = mkl.scratch(slot, 10, np.float32)
    assert mkl.scratch(slot, 10, np.float32) is a and mkl.scratch(slot, 4, np.float32) is a
    assert mkl.scratch(slot + 1, 10, np.float32) is not a and mkl.scratch(slot, 10, np.float64) is not a
    larger = mkl.scratch(slot, 11, np.float32)
    assert larger is not a and larger.size >= 11 and mkl.scratch(slot, 10, np.float32) is larger
    seen = []
    thread = threading.Thread(target=lambda: seen.append(mkl.scratch(slot, 10, np.float32)))
    thread.start()
    thread.join()
    assert seen[0] is not larger


def test_concurrent_calls_on_mkl_from_user_threads(rng):
    """Four user threads calling one layer at once on MKL each get their own result."""
    require_mkl()
    layer = built("GRU", rng, "float32", 6, return_sequences=True)
    inputs = [rng.standard_normal((8, 5, 6)).astype("float32") for _ in range(4)]
    with compiled.using("numpy"), mkl.using("numpy"):
        expected = [layer(x) for x in inputs]
    results = [None] * 4

    def work(i):
        with compiled.using("numpy"), mkl.using("mkl"):
            results[i] = layer(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(4):
        assert_outputs_close(results[i], expected[i], context=f"thread {i}")


def test_auto_takes_mkl_for_large_products_only(rng, monkeypatch):
    monkeypatch.delenv(mkl.ENV, raising=False)
    monkeypatch.setattr(mkl, "available", lambda: True)
    monkeypatch.setattr(mkl, "_usable", lambda: True)  # as if installed, whether it is or not
    assert not mkl.chosen(mkl.AUTO_MIN_FLOPS - 1, np.float32)
    assert mkl.chosen(mkl.AUTO_MIN_FLOPS, np.float32) and mkl.chosen(mkl.AUTO_MIN_FLOPS, np.float64)
    assert not mkl.chosen(10**9, np.float16)  # sgemm and dgemm only
    with mkl.using("numpy"):
        assert not mkl.chosen(10**9, np.float32)
    monkeypatch.setattr(mkl, "available", lambda: False)
    assert not mkl.chosen(10**9, np.float32)
    product = mkl.recurrent_product(np.eye(3, dtype="float32"), 2)  # np.dot when not chosen
    out = np.empty((3, 2), "float32")
    product(np.arange(6, dtype="float32").reshape(3, 2), out)
    assert_close(out, np.arange(6, dtype="float32").reshape(3, 2), 0.0, name="np.dot product")


def test_choices_are_checked_by_name(monkeypatch):
    monkeypatch.setenv(mkl.ENV, "openblas")
    with pytest.raises(ValueError, match=r"environment variable `SCRATCH_RNN_BLAS`.*'openblas'"):
        mkl.choice()
    with pytest.raises(ValueError, match=r"argument `name`.*'cuda'"):
        with mkl.using("cuda"):
            pass


def test_asking_for_mkl_without_it_names_the_extra(monkeypatch):
    monkeypatch.setattr(mkl, "_LIB", None)
    monkeypatch.setattr(mkl, "library_path", lambda: None)
    with mkl.using("mkl"), pytest.raises(ImportError, match=r"scratch-rnn\[mkl\]"):
        mkl.recurrent_product(np.eye(4, dtype="float32"), 4)


def test_importing_scratch_rnn_does_not_load_mkl():
    code = (
        "import scratch_rnn, scratch_rnn.mkl as m; "
        "maps = open('/proc/self/maps').read() if __import__('os').path.exists('/proc/self/maps') else ''; "
        "assert m._LIB is None and 'mkl_rt' not in maps, 'loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.keras  # verify runs the sweep against Keras
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("layer", ["SimpleRNN", "LSTM", "GRU"])
def test_the_harness_proves_the_engine_on_mkl_against_keras(layer, backend, monkeypatch):
    """``verify`` on the NumPy kernels or the compiled loop with every product on MKL (the environment, which the
    sweep's candidate thread sees): every case agrees with real Keras, both dtypes."""
    require_mkl()
    if backend == "numba":
        require("numba")
    from scratch_rnn.testing.verify import verify

    monkeypatch.setenv(compiled.ENV, backend)
    monkeypatch.setenv(mkl.ENV, "mkl")
    for dtype in ("float32", "float64"):
        report = verify(None, layer=layer, max_examples=12, seed=3, dtype=dtype)
        assert report.ok, "\n".join(map(str, report.failures))
        assert report.examples + report.skipped >= 12 and report.max_margin <= 1.0


def test_a_call_on_mkl_splits_from_the_sequential_threshold(monkeypatch):
    """MKL's products run on one thread split or not, so a call on them splits from
    parallel.MIN_STEP_FLOPS_SEQUENTIAL per thread and step; on NumPy's BLAS from MIN_STEP_FLOPS."""
    monkeypatch.setattr(mkl, "available", lambda: True)
    monkeypatch.setattr(mkl, "_usable", lambda: True)  # as if installed, whether it is or not
    layer = LSTM(128)
    layer.build((64, 5, 64))  # 2 * (193 * 512 + 0) flops a row and step: 6.3 Mflop for 32 rows
    per_thread = 32 * layer._step_flops_per_row()
    assert parallel.MIN_STEP_FLOPS_SEQUENTIAL <= per_thread < parallel.MIN_STEP_FLOPS
    with scratch_rnn.threads(2):
        with mkl.using("auto"):
            assert parallel.split_count(64, layer._step_flops_per_row, layer._products_on_one_thread) == 2
        with mkl.using("numpy"):
            assert parallel.split_count(64, layer._step_flops_per_row, layer._products_on_one_thread) == 1
        layer.fast = False  # the readable step's products are NumPy's
        with mkl.using("auto"):
            assert parallel.split_count(64, layer._step_flops_per_row, layer._products_on_one_thread) == 1


def test_a_broken_mkl_is_named_when_asked_for_and_skipped_by_auto(tmp_path, monkeypatch):
    """An MKL runtime that does not load: SCRATCH_RNN_BLAS=mkl names the file; auto falls back to np.dot."""
    broken = tmp_path / "libmkl_rt.so.3"
    broken.write_bytes(b"not a shared library")
    monkeypatch.setattr(mkl, "_LIB", None)
    monkeypatch.setattr(mkl, "library_path", lambda: str(broken))
    mkl._usable.cache_clear()
    try:
        with mkl.using("mkl"), pytest.raises(ImportError, match=rf"{re.escape(str(broken))} could not be used"):
            mkl.recurrent_product(np.eye(4, dtype="float32"), 4)
        with mkl.using("auto"):
            assert not mkl.chosen(10**9, np.float32)
            product = mkl.recurrent_product(np.eye(2048, dtype="float32"), 512)  # np.dot
            x, out = np.ones((2048, 512), "float32"), np.empty((2048, 512), "float32")
            product(x, out)
            assert_close(out, x, 0.0, name="np.dot product")
    finally:
        mkl._usable.cache_clear()


def test_a_split_slice_takes_the_product_the_whole_batch_chose(rng, monkeypatch):
    """GRU(128) on 256 features, batch 32: the whole call's recurrent product (3.1 Mflop) is MKL's, each
    16-row slice's alone (1.6 Mflop) would not be. The slices must run what the whole batch chose, as they do for
    the compiled loop, or a split call would compute other bits than the unsplit one (and skip MKL)."""
    require_mkl()
    layer = GRU(128, return_sequences=True)
    x = rng.standard_normal((32, 4, 256)).astype("float32")
    layer(x[:2])
    randomize(layer, rng)
    made = []
    original = mkl.PackedProduct.__init__
    monkeypatch.setattr(mkl.PackedProduct, "__init__", lambda self, *a: made.append(a[1]) or original(self, *a))
    with compiled.using("numpy"), mkl.using("auto"):
        with scratch_rnn.threads(1):
            whole = layer(x)
        with scratch_rnn.threads(2):
            assert parallel.split_count(32, layer._step_flops_per_row, layer._products_on_one_thread) == 2
            split = layer(x)
    assert made == [32, 16, 16]  # the unsplit call's product, then each slice's
    assert_close(split, whole, 0.0, name="split output", equal_nan=True)
