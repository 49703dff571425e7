"""The compiled time loop (scratch_rnn.compiled, numba): the same results as the NumPy kernels and as Keras,
chosen as documented, and float32 activations within the tolerance model's ulps.

Each comparison here has a twin that plants a difference and must see it fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import assert_outputs_close, randomize, require

import scratch_rnn
from scratch_rnn import compiled, mkl
from scratch_rnn.testing.tolerance import ACTIVATION_ULPS

require("numba")

LAYERS = {
    "SimpleRNN": (scratch_rnn.SimpleRNN, {}),
    "LSTM": (scratch_rnn.LSTM, {}),
    "GRU": (scratch_rnn.GRU, {}),
    "GRU-reset-before": (scratch_rnn.GRU, {"reset_after": False}),
}
#: (batch, timesteps, features, units): square (features == units) and rectangular, one longer than a chunk.
SHAPES = [(3, 5, 4, 4), (5, 7, 3, 6), (2, 4, 6, 2), (4, 140, 2, 3)]


@pytest.fixture
def numba_backend(monkeypatch):
    monkeypatch.setenv(compiled.ENV, "numba")


@pytest.fixture
def compiled_calls(monkeypatch):
    """How many calls ran the compiled loop (compiled.run, wrapped)."""
    calls = []
    run = compiled.run

    def counting(*args, **kwargs):
        calls.append(args[1])
        return run(*args, **kwargs)

    monkeypatch.setattr(compiled, "run", counting)
    return calls


def call_both(layer, x, **kwargs):
    """The layer's outputs from the compiled loop and from the NumPy kernels (a list each)."""
    results = []
    for backend in ("numba", "numpy"):
        with compiled.using(backend):
            out = layer(x, **kwargs)
        results.append(list(out) if isinstance(out, list) else [out])
    return results


def random_layer(name, dtype, shape, rng, **options):
    cls, kwargs = LAYERS[name]
    batch, timesteps, features, units = shape
    layer = cls(units, dtype=dtype, **kwargs, **options)
    layer.build((None, timesteps, features))
    randomize(layer, rng)
    return layer


# --- the compiled loop equals the NumPy kernels ------------------------------------------------------
OPTIONS = [
    {},
    {"return_sequences": True, "return_state": True},
    {"go_backwards": True, "return_sequences": True},
    {"use_bias": False, "return_state": True},
    {"zero_output_for_mask": True, "return_sequences": True},
    {"activation": "hard_sigmoid", "recurrent_activation": "tanh", "return_sequences": True},
    {"activation": "sigmoid", "recurrent_activation": "hard_sigmoid"},
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(LAYERS))
def test_compiled_loop_equals_the_numpy_kernels(name, shape, dtype, rng, compiled_calls):
    """Every option, masks and initial states, random weights and biases; bounded activations in float32
    (the suite's float32 tolerance, 1e-5, assumes outputs near 1; relu and linear run in float64, and every
    activation in both dtypes in the Keras sweeps below, with derived tolerances)."""
    batch, timesteps, features, _ = shape
    x = rng.standard_normal((batch, timesteps, features)).astype(dtype)
    mask = rng.random((batch, timesteps)) > 0.3
    options = OPTIONS + (
        [{"activation": "relu", "return_sequences": True}, {"activation": None}] if dtype == "float64" else []
    )
    for opts in options:
        if name == "SimpleRNN":
            opts = {k: v for k, v in opts.items() if k != "recurrent_activation"}
        layer = random_layer(name, dtype, shape, rng, **opts)
        states = [rng.standard_normal((batch, s)).astype(dtype) * 0.5 for s in layer.state_size]
        for kwargs in ({}, {"mask": mask}, {"mask": mask, "initial_state": states}, {"initial_state": states}):
            got, expected = call_both(layer, x, **kwargs)
            for a, e in zip(got, expected):
                assert a.dtype == e.dtype == np.dtype(dtype)
            assert_outputs_close(got, expected, context=f"{name} {opts} {sorted(kwargs)}")
    assert compiled_calls, "the compiled loop never ran"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_the_compiled_loop_on_mkls_packed_products_equals_the_numpy_kernels(name, dtype, rng, compiled_calls):
    """The compiled loop's products on MKL (packed once a call, :func:`compiled._product`) as on SciPy's BLAS: every
    option, masks and initial states, square and rectangular weights."""
    if not mkl.available():
        pytest.skip("MKL's packed products need the mkl extra")
    for shape in ((5, 7, 6, 6), (9, 4, 3, 7)):
        batch, timesteps, features, _ = shape
        x = rng.standard_normal((batch, timesteps, features)).astype(dtype)
        mask = rng.random((batch, timesteps)) > 0.3
        for opts in OPTIONS[:5]:
            layer = random_layer(name, dtype, shape, rng, **opts)
            states = [rng.standard_normal((batch, s)).astype(dtype) * 0.5 for s in layer.state_size]
            for kwargs in ({"mask": mask, "initial_state": states}, {}):
                with mkl.using("mkl"):
                    got, expected = call_both(layer, x, **kwargs)
                with mkl.using("numpy"), compiled.using("numba"):
                    on_scipy = layer(x, **kwargs)
                on_scipy = list(on_scipy) if isinstance(on_scipy, list) else [on_scipy]
                context = f"{name} {opts} {sorted(kwargs)}"
                assert_outputs_close(got, expected, context=context)
                assert_outputs_close(got, on_scipy, context=context)
    assert compiled_calls


@pytest.mark.parametrize("name", list(LAYERS))
def test_mkls_products_in_the_compiled_loop_are_the_ones_checked(name, rng, monkeypatch):
    """The comparison above runs MKL's packed products: weights packed 0.1% off make it fail."""
    if not mkl.available():
        pytest.skip("MKL's packed products need the mkl extra")
    layer = random_layer(name, "float32", (5, 7, 6, 6), rng)
    x = rng.standard_normal((5, 7, 6)).astype("float32")
    packed = mkl.packed
    monkeypatch.setattr(mkl, "packed", lambda W, n, into=None, **how: packed(W * np.float32(1.001), n, into, **how))
    with mkl.using("mkl"), pytest.raises(AssertionError, match="output"):
        assert_outputs_close(*call_both(layer, x))


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_comparison_fails_on_a_planted_difference(name, rng, monkeypatch):
    """A compiled loop computing the wrong gate activation, or dropping the mask's zeros, is caught."""
    shape = (3, 6, 4, 5)
    x = rng.standard_normal(shape[:3]).astype("float32")
    layer = random_layer(name, "float32", shape, rng, return_sequences=True, zero_output_for_mask=True)
    mask = rng.random(shape[:2]) > 0.3
    monkeypatch.setitem(compiled.CODES, "tanh", compiled.CODES["sigmoid"])  # every tanh computed as sigmoid
    with pytest.raises(AssertionError, match="output"):
        assert_outputs_close(*call_both(layer, x))
    monkeypatch.undo()
    run = compiled.run
    monkeypatch.setattr(compiled, "run", lambda *a, **k: run(*a, **{**k, "zero_output_for_mask": False}))
    with pytest.raises(AssertionError, match="output"):
        assert_outputs_close(*call_both(layer, x, mask=mask))


def test_a_stateful_layer_and_bidirectional_run_compiled(rng, compiled_calls):
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    layer = random_layer("LSTM", "float32", (2, 5, 3, 4), rng, stateful=True)
    first = [layer(x), layer(x)]
    layer.reset_state()
    with compiled.using("numpy"):
        second = [layer(x), layer(x)]
    assert_outputs_close(first, second)
    wrapped = scratch_rnn.Bidirectional(scratch_rnn.GRU(4, return_sequences=True, zero_output_for_mask=True))
    wrapped.build((None, 5, 3))
    randomize(wrapped, rng)
    mask = rng.random((2, 5)) > 0.4
    assert_outputs_close(*call_both(wrapped, x, mask=mask))
    assert {"lstm", "gru"} <= set(compiled_calls)


@pytest.mark.parametrize("products", ["numpy", "mkl"])
def test_the_compiled_loop_runs_from_two_threads_at_once(products, rng):
    """The loops are nogil; each call has its own buffers (the thread's workspace, and on MKL the thread's packing
    buffers, mkl.scratch): two threads calling two layers at once get what each gets alone."""
    if products == "mkl" and not mkl.available():
        pytest.skip("MKL's packed products need the mkl extra")
    layer = random_layer("LSTM", "float32", (64, 30, 8, 16), rng, return_sequences=True)
    other = random_layer("GRU", "float32", (64, 30, 8, 16), rng, return_sequences=True)
    xs = [rng.standard_normal((64, 30, 8)).astype("float32") for _ in range(2)]
    with compiled.using("numba"), mkl.using(products):
        expected = [layer(xs[0]), other(xs[1])]
    results = [None, None]

    def work(k):
        with compiled.using("numba"), mkl.using(products):
            for _ in range(5):
                results[k] = (layer, other)[k](xs[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_outputs_close(results, expected, tol=0)
    assert all(compiled._jit()[f].targetoptions["nogil"] for f in ("lstm_loop", "gru_after_loop"))


# --- the harness sweeps on the compiled path -------------------------------------------------------
@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", ["SimpleRNN", "LSTM", "GRU", "Bidirectional"])
def test_verify_sweeps_run_on_the_compiled_path(layer, dtype, keras, numba_backend, compiled_calls):
    report = scratch_rnn.verify(
        layer=layer, dtype=dtype, max_examples=12, seed=14, with_mask=True, with_initial_state=True
    )
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.max_margin <= 1
    assert compiled_calls, "the sweep never ran the compiled loop"


# --- selection ---------------------------------------------------------------------------------------
def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != compiled.ENV} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)


PROBE = """
import sys, numpy as np, scratch_rnn
from scratch_rnn import compiled, mkl
assert "numba" not in sys.modules, "import scratch_rnn imported numba"
calls = []
run = compiled.run
compiled.run = lambda *a, **k: calls.append(1) or run(*a, **k)
scratch_rnn.LSTM(3)(np.ones((2, 4, 5), "float32"))
print(len(calls), "numba" in sys.modules)
"""


@pytest.mark.parametrize(
    "value, expected", [(None, "1 True"), ("auto", "1 True"), ("numba", "1 True"), ("numpy", "0 False"), ("", "1 True")]
)
def test_the_backend_variable_chooses_the_loop(value, expected):
    env = {} if value is None else {compiled.ENV: value}
    result = run_python(PROBE, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == expected


def test_an_unknown_backend_is_refused_by_name():
    result = run_python(
        "import numpy as np, scratch_rnn; scratch_rnn.GRU(2)(np.ones((1, 2, 3)))", **{compiled.ENV: "cuda"}
    )
    assert result.returncode != 0
    assert "SCRATCH_RNN_BACKEND" in result.stderr and "'cuda'" in result.stderr and "numpy" in result.stderr
    with pytest.raises(ValueError, match="`name`.*'jax'"):
        with compiled.using("jax"):
            pass


def test_scipy_counts_as_part_of_the_extra(monkeypatch):
    """numba without SciPy cannot compile np.dot: the loop is then not available (auto runs NumPy)."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else find_spec(name, *a))
    compiled.available.cache_clear()  # asked once a process
    try:
        assert not compiled.available()
    finally:
        monkeypatch.undo()
        compiled.available.cache_clear()
    assert compiled.available()


def test_numba_required_but_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(compiled, "available", lambda: False)
    monkeypatch.setenv(compiled.ENV, "numba")
    with pytest.raises(
        ImportError, match=r"SCRATCH_RNN_BACKEND=numba.*numba or SciPy.*pip install 'scratch-rnn\[fast\]'"
    ):
        scratch_rnn.SimpleRNN(2)(np.ones((1, 2, 3), "float32"))
    monkeypatch.setenv(compiled.ENV, "auto")  # auto without numba: the NumPy kernels, silently
    assert scratch_rnn.SimpleRNN(2)(np.ones((1, 2, 3), "float32")).shape == (1, 2)


def test_fast_false_and_unsupported_options_run_numpy(rng, numba_backend, compiled_calls):
    layer = random_layer("GRU", "float32", (2, 3, 4, 5), rng)
    layer.fast = False
    layer(np.ones((2, 3, 4), "float32"))
    quirk = random_layer("LSTM", "float32", (2, 3, 4, 5), rng, unroll=True, zero_output_for_mask=True)
    quirk(np.ones((2, 3, 4), "float32"), mask=np.ones((2, 3), bool))
    cell = scratch_rnn.RNN(scratch_rnn.LSTMCell(3))
    cell(np.ones((2, 3, 4), "float32"))
    assert compiled_calls == []
    assert not compiled.supports(quirk, "lstm") and compiled.supports(
        random_layer("LSTM", "float64", (2, 3, 4, 5), rng), "lstm"
    )


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_choice_counts_the_products_the_loop_runs(name, rng):
    """compiled.product_shapes (auto's choice, the split, MKL or not) describes step_stacks' matrices, transposed
    (what a call multiplies), on square and rectangular weights."""
    for shape in ((3, 4, 5, 5), (3, 4, 2, 7)):
        layer = random_layer(name, "float32", shape, rng)
        loop = compiled._loop_name(layer, "gru" if "GRU" in name else name.replace("SimpleRNN", "simple_rnn").lower())
        *stacks, _ = compiled.step_stacks(layer, loop)
        assert compiled.product_shapes(layer, loop) == [S.shape[::-1] for S in stacks], (name, shape)


def test_auto_runs_the_compiled_loop_where_it_measured_faster(rng, monkeypatch, compiled_calls):
    """float32: at every size on MKL's packed products; on SciPy's BLAS while the step's product has at most
    AUTO_MAX_COLUMNS columns and the step is small (AUTO_MAX_ELEMENTS) or the call splits; float64 (libm's scalar
    activations): while batch * units is at most AUTO_MAX_ELEMENTS_FLOAT64; ``numba``: always."""
    from scratch_rnn import parallel

    monkeypatch.setenv(compiled.ENV, "auto")
    x = np.ones((2, 3, 4), "float32")
    units = compiled.AUTO_MAX_COLUMNS // 4  # LSTM's four gates
    with mkl.using("numpy"):
        mid = random_layer("LSTM", "float32", (2, 3, 4, 64), rng)
        long = np.ones((2 * compiled.AUTO_MAX_ELEMENTS // 64, 100, 4), "float32")  # 32 rows: beyond a small step
        with parallel.threads(1):
            mid(long)  # unsplit on SciPy's BLAS: the NumPy kernels
        assert compiled_calls == []
        with parallel.threads(2):
            mid(long)  # split: the compiled loop
            mid(long[:, :2])  # too short to split: the NumPy kernels
        assert compiled_calls == ["lstm"]
        compiled_calls.clear()
        random_layer("LSTM", "float32", (2, 3, 4, units), rng)(x)
        assert compiled_calls == ["lstm"]
        wide = random_layer("LSTM", "float32", (2, 3, 4, units + 1), rng)
        wide(x)
        assert compiled_calls == ["lstm"]
        wide(np.ones((64, 3, 4), "float32"))  # 4.4 Mflop a step: MKL's size, but not MKL's products
        assert compiled_calls == ["lstm"]
    if mkl.available():
        wide(np.ones((64, 3, 4), "float32"))  # auto: MKL's products, so the compiled loop
        assert compiled_calls == ["lstm", "lstm"]
        wide(x)  # too small for MKL: SciPy's BLAS, too wide
        assert compiled_calls == ["lstm", "lstm"]
    compiled_calls.clear()
    layer = random_layer("LSTM", "float64", (2, 3, 4, 8), rng)
    small = np.ones((compiled.AUTO_MAX_ELEMENTS_FLOAT64 // 8, 3, 4))
    large = np.ones((small.shape[0] + 1, 3, 4))
    layer(small)
    layer(large)
    assert compiled_calls == ["lstm"]
    monkeypatch.setenv(compiled.ENV, "numba")  # forced: every size
    layer(large)
    wide(x)
    assert compiled_calls == ["lstm", "lstm", "lstm"]


def test_the_gate_pass_is_vectorised(rng):
    """The float32 fused pass holds packed single-precision multiply-adds and divisions, and no packed double
    arithmetic: the activations are computed in float32, 8 (or 16) lanes at a time."""
    for name, options in (("lstm_default", {}), ("lstm_loop", {"activation": "relu"})):  # relu: not the default
        layer = random_layer("LSTM", "float32", (4, 3, 2, 8), rng, **options)
        with compiled.using("numba"):
            layer(np.ones((4, 3, 2), "float32"))  # compiles the loop (in this test: it must not need another)
        counts = compiled.packed_instructions(name, np.float32)
        assert sum(n for op, n in counts.items() if op.startswith("vfmadd") and op.endswith("ps")) >= 20, counts
        assert any(op.startswith(("vdivps", "divps")) for op in counts), counts
        doubles = [op for op in counts if op.endswith("pd") and op.startswith(("vfm", "vmul", "vadd", "vcvt", "vdiv"))]
        assert not doubles, counts


def test_the_vectorisation_check_sees_a_scalar_loop():
    """The instruction count reads real assembly: a float64 pass, or a loop numba cannot vectorise, fails it."""
    layer = random_layer("LSTM", "float64", (4, 3, 2, 8), np.random.default_rng(0))
    with compiled.using("numba"):
        layer(np.ones((4, 3, 2), "float64"))
    counts = compiled.packed_instructions("lstm_default", np.float64)  # libm calls: scalar
    assert sum(n for op, n in counts.items() if op.startswith("vfmadd") and op.endswith("ps")) < 20, counts


def _host_has_avx512() -> bool:
    import llvmlite.binding as llvm

    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


@pytest.mark.parametrize("name", ["lstm_default", "gru_after_default", "simple_rnn_loop"])
def test_the_gate_pass_runs_on_the_widest_registers(name, rng):
    """compiled.wide_vectors reaches the fused pass: on an AVX-512 CPU the float32 loop's vector body has its
    multiply-adds on 512-bit registers (zmm), where LLVM's tuning for the CPU alone gives 256-bit ones."""
    layer_name = {"lstm_default": "LSTM", "gru_after_default": "GRU", "simple_rnn_loop": "SimpleRNN"}[name]
    options = {"activation": "relu"} if name == "simple_rnn_loop" else {}  # relu: the loop, not the default
    layer = random_layer(layer_name, "float32", (4, 3, 2, 40), rng, **options)
    with compiled.using("numba"):
        layer(np.ones((4, 3, 2), "float32"))
    counts = compiled.vector_registers(name, np.float32)
    widest = "zmm" if _host_has_avx512() else "ymm"
    assert counts[widest] >= 10, counts  # (the rest on xmm: the loop's remainder, fewer units than a vector)


def test_the_register_check_sees_256_bit_vectors(monkeypatch, rng):
    """The register count reads real assembly: the same loop compiled asking for 256-bit vectors has no
    multiply-add on zmm."""
    layer = random_layer("LSTM", "float32", (4, 3, 2, 40), rng)
    with compiled.using("numba"):
        layer(np.ones((4, 3, 2), "float32"))
    monkeypatch.setattr(compiled, "VECTOR_BITS", 256)  # read when the fresh copy is compiled
    counts = compiled.vector_registers("lstm_default", np.float32)
    assert counts["zmm"] == 0 and counts["ymm"] >= 10, counts


NARROW = """
import sys, numpy as np, scratch_rnn
from scratch_rnn import compiled
compiled.VECTOR_BITS = 256  # before the first compile (a fresh numba cache: NUMBA_CACHE_DIR)
weights = np.load(sys.argv[1])
with compiled.using("numba"):
    for name in ("LSTM", "GRU"):
        layer = getattr(scratch_rnn, name)(37, return_sequences=True)
        layer.build((None, 6, 7))
        layer.set_weights([weights[f"{name}{k}"] for k in range(len(layer.get_weights()))])
        np.save(sys.argv[1].replace(".npz", f"{name}.npy"), layer(weights["x"]))
print(compiled.vector_registers("lstm_default"))
"""


def test_wide_vectors_compute_the_same_bits_as_256_bit_ones(tmp_path, rng):
    """16 lanes change how many elements a vector holds, not what each element computes: the loops compiled
    for 256-bit vectors (a process of their own, with an empty numba cache) give every bit of this one's."""
    arrays, ours = {"x": (3 * rng.standard_normal((9, 6, 7))).astype("float32")}, {}
    with compiled.using("numba"):
        for name in ("LSTM", "GRU"):  # 37 units: two 16-lane vectors and a remainder
            layer = getattr(scratch_rnn, name)(37, return_sequences=True)
            layer.build((None, 6, 7))
            randomize(layer, rng)
            arrays |= {f"{name}{k}": w for k, w in enumerate(layer.get_weights())}
            ours[name] = layer(arrays["x"])
    path = tmp_path / "weights.npz"
    np.savez(path, **arrays)
    result = subprocess.run(
        [sys.executable, "-c", NARROW, str(path)], capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != compiled.ENV} | {"NUMBA_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "'zmm': 0" in result.stdout, result.stdout  # it did compile narrow
    for name, output in ours.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"weights{name}.npy"), output, strict=True)


# --- the float32 activations' accuracy ---------------------------------------------------------------
def extremes() -> np.ndarray:
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 2.0**-12, 0.5, 1.0, 2.0]
    special += [9.02, 9.1, 9.2, 16.0, 87.3, 88.8, 103.9, 104.0, 104.1, 3.4028235e38, 0.625, 1.1375]
    x = np.array(special, np.float32)
    with np.errstate(over="ignore"):  # the largest float's next is inf
        return np.concatenate([x, -x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])


def random_inputs(rng, n=1 << 20) -> np.ndarray:
    bits = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)  # every binade alike
    near = (rng.standard_normal(n) * 6).astype(np.float32)  # where the curves bend
    return np.concatenate([bits, near, extremes()])


@pytest.mark.parametrize("name", compiled.APPROXIMATED)
def test_float32_activations_are_within_the_tolerance_models_ulps(name, rng):
    x = random_inputs(rng)
    errors = compiled.ulp_errors(name, x)
    nan_in = np.isnan(x)
    assert np.all(np.isnan(errors) == nan_in), "NaN must map to NaN, and only NaN"
    worst = float(np.max(errors[~nan_in]))
    where = x[~nan_in][np.argmax(errors[~nan_in])]
    assert worst <= compiled.MAX_ULPS[name] <= ACTIVATION_ULPS, f"{name}: {worst:.3f} ulp at {where!r}"
    out = compiled.approximation(name, extremes())
    assert out.dtype == np.float32 and out.shape == extremes().shape


#: Where the exhaustive scan (benchmarks/activation_ulps.py) found each activation's largest error.
WORST_INPUT = {"tanh": 0x3F218C1D, "sigmoid": 0xC26FADE2}


@pytest.mark.parametrize("name", compiled.APPROXIMATED)
def test_the_recorded_bound_is_the_exhaustive_scans(name):
    """compiled.MAX_ULPS is attained where the scan found it: a changed approximation fails here until the
    exhaustive scan is rerun and its result recorded."""
    x = np.array([WORST_INPUT[name]], np.uint32).view(np.float32)
    worst = float(compiled.ulp_errors(name, x)[0])
    assert compiled.MAX_ULPS[name] - 1e-4 <= worst <= compiled.MAX_ULPS[name], (name, worst)


def test_the_recorded_bound_check_sees_a_changed_approximation():
    """The same check on a value one ulp off at the worst input: it leaves the recorded bound's window."""
    x = np.array([WORST_INPUT["tanh"]], np.uint32).view(np.float32)
    off = np.nextafter(compiled.approximation("tanh", x), np.float32(np.inf))
    worst = float(compiled.ulp_errors("tanh", x, off)[0])
    assert not compiled.MAX_ULPS["tanh"] - 1e-4 <= worst <= compiled.MAX_ULPS["tanh"], worst


@pytest.mark.parametrize("name", compiled.APPROXIMATED)
def test_the_ulp_check_sees_a_planted_error(name, rng):
    x = random_inputs(rng, 1 << 12)
    good = compiled.approximation(name, x)
    off = good.copy()
    k = int(np.flatnonzero(np.isfinite(x) & (np.abs(good) > 1e-3) & (np.abs(good) < 0.9))[0])
    for _ in range(3):  # three ulps away
        off[k] = np.nextafter(off[k], np.float32(np.inf))
    assert compiled.ulp_errors(name, x, off)[k] > ACTIVATION_ULPS
    nan_planted = good.copy()
    nan_planted[k] = np.nan
    assert compiled.ulp_errors(name, x, nan_planted)[k] == np.inf
    assert compiled.max_ulp_error(name, 0x3F800000, 0x3F800000 + 4096)[2] == 4096  # the exhaustive scan's blocks


def test_bench_times_the_compiled_loop_and_the_numpy_kernels(compiled_calls):
    from scratch_rnn import bench

    frameworks = {"against": ["scratch_numba", "scratch_numpy"]}
    calls, differences = bench.candidates("LSTM", (3, 6, 4, 5), "float32", frameworks)
    assert set(calls) == {"scratch", "scratch_numba", "scratch_numpy"}
    assert max(differences.values()) <= bench.AGREEMENT["float32"]
    compiled_calls.clear()
    calls["scratch_numpy"]()
    assert compiled_calls == []
    calls["scratch_numba"]()
    assert compiled_calls == ["lstm"]


@pytest.mark.parametrize("products", ["numpy", "mkl"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_a_batch_split_across_threads_runs_the_compiled_loop_in_each(name, products, rng, compiled_calls, monkeypatch):
    """The compiled call splits its batch itself (one nogil call a slice, scratch_rnn.parallel's threads), on
    SciPy's BLAS or MKL's packed products, and computes the same bits as unsplit."""
    from scratch_rnn import parallel

    if products == "mkl" and not mkl.available():
        pytest.skip("MKL's packed products need the mkl extra")
    monkeypatch.setattr(parallel, "MIN_CALL_ELEMENTS", 1)  # split whatever the policy's threshold (parallel.py)
    splits = []
    monkeypatch.setattr(
        parallel, "map_slices", lambda fn, batch, n, run=parallel.map_slices: splits.append(n) or run(fn, batch, n)
    )
    layer = random_layer(name, "float32", (67, 6, 16, 40), rng, return_sequences=True, return_state=True)
    x = rng.standard_normal((67, 6, 16)).astype("float32")
    mask = rng.random((67, 6)) > 0.2
    with compiled.using("numba"), mkl.using(products):
        with parallel.threads(1):
            whole = layer(x, mask=mask)
        with parallel.threads(3):
            split = layer(x, mask=mask)
    assert splits == [3] and len(compiled_calls) == 2
    for a, e in zip(split, whole):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_nan_and_inf_propagate_as_in_the_numpy_kernels(name, dtype, rng):
    """No nnan/ninf fast-math: NaN and Inf in, NaN where the NumPy kernels give NaN, huge inputs saturate alike."""
    layer = random_layer(name, dtype, (4, 5, 2, 3), rng, return_sequences=True)
    x = rng.standard_normal((4, 5, 2)).astype(dtype) * 50
    x[0, 1, 0], x[1, 2, 1], x[2, 0, 0] = np.inf, -np.inf, np.nan
    x[3] *= 1e30
    got, expected = call_both(layer, x)
    assert np.isnan(got[0]).any() and np.isfinite(got[0][3]).all()
    assert_outputs_close(got, expected, equal_nan=True)
