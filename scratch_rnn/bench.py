"""``scratch-rnn bench``: inference time of the scratch engine against Keras and PyTorch, on this machine.

For each layer (SimpleRNN, LSTM, GRU) and shape ``(batch, timesteps, features, units)``,
with ``return_sequences=True``, in one process and one run:

* ``scratch``: the scratch layer's call, with the engine's threads at the run's thread count
  (``scratch_rnn.threads``): it splits a large batch across them, BLAS's threads lowered while it runs when
  threadpoolctl is installed (:mod:`scratch_rnn.parallel`), else it leaves BLAS as the run set it;
* ``torch``: ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` on the CPU (``batch_first``, under
  ``torch.inference_mode()``), with the same thread count as NumPy's BLAS;
* ``keras_eager``: the Keras layer called eagerly on a tensor;
* ``keras_predict``: ``Sequential([Input, layer]).predict``;
* ``scratch_split``: the same call with NumPy's BLAS limited to one thread for a block of its own (how a split
  was run before the engine lowered BLAS itself; it still does where a BLAS variable such as
  ``OPENBLAS_NUM_THREADS`` is set, which keeps the engine's hands off BLAS);
* ``scratch_numba`` and ``scratch_numpy``: the scratch layer's call on the compiled loop (:mod:`scratch_rnn.compiled`,
  the ``fast`` extra) and on the NumPy kernels with NumPy's BLAS (no extra: MKL's products off too, ``mkl.using``),
  each forced (``compiled.using``); ``scratch`` is what a call picks by itself (``auto``: the compiled loop for small
  steps, where it measured faster, and MKL's packed products for large ones when the ``mkl`` extra is installed);
* the roof: float32 ``matmul`` throughput of NumPy's BLAS (square matrices).

All candidates get the same weights (random, biases included) and their outputs are
compared before any timing. Runs are interleaved: every repeat times every candidate
once per configuration, library by library in an order that rotates, with a pause
between libraries for the previous one's worker threads to go idle (see
:func:`benchmark`), so a burst of load on a shared machine hits all of them alike; the
table shows medians over the repeats, and every ratio compares medians of the same run.
A sample times enough consecutive calls to last about ``--sample-ms``. ``GF/s`` counts the matrix products only,
``2 * B * T * (F + U) * G`` flops (``G`` = U, 4U, 3U), and ``roof`` is that rate over
the measured GEMM rate. ``torch of roof`` is PyTorch's rate over the same roof; it is also
the lowest scratch/torch ratio that any implementation whose matrix products run no faster
than this BLAS's roof could reach (its products alone take ``flops / roof``).

Needs the ``bench`` extra: ``pip install 'scratch-rnn[bench]'`` (PyTorch, threadpoolctl,
rich, and the harness's Keras/TensorFlow). Benchmarks are not tests: nothing here asserts a time.
:func:`benchmark` returns the results; nothing here prints or parses arguments (the command,
its table and summary are :mod:`scratch_rnn.cli`).

OpenBLAS note: where ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are set to work around old
OpenBLAS builds, they slow a current NumPy; unset both for the benchmark command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE scratch-rnn bench
"""

from __future__ import annotations

import os
import platform
import sys
import time
from contextlib import nullcontext

import numpy as np

from scratch_rnn import compiled, mkl, parallel
from scratch_rnn.gru import GRU
from scratch_rnn.lstm import LSTM
from scratch_rnn.simple_rnn import SimpleRNN
from scratch_rnn.version import __version__

ENGINE = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
LAYERS = ("SimpleRNN", "LSTM", "GRU")
SHAPES = ((8, 10, 4, 8), (32, 100, 16, 32), (64, 200, 64, 128), (256, 50, 128, 256))
AGAINST = ("torch", "keras_eager", "keras_predict", "scratch_split", "scratch_numba", "scratch_numpy")
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
#: Largest |difference| from the Keras output tolerated before timing (outputs are tanh-bounded).
AGREEMENT = {"float32": 1e-4, "float64": 1e-10}
ROOF_SIZE = 1024


# --- the machine ----------------------------------------------------------------------
def blas_threads() -> int:
    """The thread count of NumPy's BLAS (threadpoolctl), 1 if it cannot tell."""
    import threadpoolctl

    for pool in threadpoolctl.threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            return int(pool["num_threads"])
    return 1


def machine() -> dict:
    import threadpoolctl

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    blas = [
        {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
        for pool in threadpoolctl.threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ},
    }


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None


# --- the candidates ---------------------------------------------------------------------
class Disagreement(RuntimeError):
    """Two candidates computed different outputs: their times would not be comparable."""


def load_frameworks(against, threads: int) -> dict:
    """Import what ``against`` needs, each limited to ``threads`` threads."""
    frameworks = {}
    if "torch" in against:
        import torch

        torch.set_num_threads(threads)
        frameworks["torch"] = torch
    if {"keras_eager", "keras_predict"} & set(against):
        from scratch_rnn.testing.runners import import_keras

        keras = import_keras()
        import tensorflow as tf

        try:  # only possible before TensorFlow runs its first operation
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
        frameworks["keras"] = keras
    frameworks["against"] = [name for name in AGAINST if name in against]
    frameworks["threads"] = threads
    return frameworks


def weights_for(layer: str, shape: tuple, dtype: str, seed: int) -> list[np.ndarray]:
    """Random weights in Keras's layout and order, biases included (zeros would hide a misplaced bias)."""
    _, _, features, units = shape
    scratch = ENGINE[layer](units, dtype=dtype, seed=seed)
    scratch.build((None, None, features))
    rng = np.random.default_rng(seed)
    weights = scratch.get_weights()
    weights[-1] = (0.1 * rng.standard_normal(weights[-1].shape)).astype(dtype)
    return weights


def torch_module(torch, layer: str, features: int, units: int, weights, dtype: str):
    """PyTorch's own ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` computing what Keras's layer does: the module the PyTorch
    port runs (:func:`scratch_rnn.to_torch`'s fused path), its weights copied by the port's rules (gate order,
    biases, layout; docs/ports.md), not by a copy of them here. ``torch`` is the imported framework."""
    from scratch_rnn.ports.to_torch import to_torch

    scratch = ENGINE[layer](units, return_sequences=True, dtype=dtype)
    scratch.set_weights(weights)
    return to_torch(scratch).rnn.eval()  # (B, T, F) -> (sequence, final states), batch_first


def candidates(layer: str, shape: tuple, dtype: str, frameworks: dict, seed: int = 0):
    """``({name: zero-argument callable}, {name: max |output - scratch output|})`` for one configuration."""
    batch, timesteps, features, units = shape
    weights = weights_for(layer, shape, dtype, seed)
    x = np.random.default_rng(seed + 1).standard_normal((batch, timesteps, features)).astype(dtype)
    scratch = ENGINE[layer](units, return_sequences=True, dtype=dtype)
    scratch.set_weights(weights)
    calls = {"scratch": lambda: scratch(x)}
    expected = scratch(x)
    outputs = {}
    if "scratch_split" in frameworks["against"]:
        threads = frameworks["threads"]

        def split():
            with parallel.threads(threads):
                return scratch(x)

        calls["scratch_split"] = split
        outputs["scratch_split"] = split()
    for backend in ("numba", "numpy"):
        if f"scratch_{backend}" in frameworks["against"] and (backend == "numpy" or compiled.available()):

            def forced(backend=backend):  # scratch_numpy: no extra at all, MKL's products off too
                with compiled.using(backend), mkl.using("numpy" if backend == "numpy" else "auto"):
                    return scratch(x)

            calls[f"scratch_{backend}"] = forced
            outputs[f"scratch_{backend}"] = forced()
    if "torch" in frameworks["against"]:
        torch = frameworks["torch"]
        module = torch_module(torch, layer, features, units, weights, dtype)
        xt = torch.from_numpy(x)
        calls["torch"] = lambda: module(xt)
        with torch.inference_mode():
            outputs["torch"] = module(xt)[0].numpy()
    keras = frameworks.get("keras")
    if keras is not None:
        k_layer = getattr(keras.layers, layer)(units, return_sequences=True, dtype=dtype)
        model = keras.Sequential([keras.Input(batch_shape=(batch, timesteps, features), dtype=dtype), k_layer])
        k_layer.set_weights(weights)
        xk = keras.ops.convert_to_tensor(x)
        outputs["keras"] = np.asarray(k_layer(xk))
        if "keras_eager" in frameworks["against"]:
            calls["keras_eager"] = lambda: k_layer(xk)
        if "keras_predict" in frameworks["against"]:
            calls["keras_predict"] = lambda: model.predict(x, batch_size=batch, verbose=0)
            outputs["keras_predict"] = calls["keras_predict"]()
    differences = {name: float(np.max(np.abs(out - expected))) for name, out in outputs.items()}
    for name, difference in differences.items():
        if not difference <= AGREEMENT[dtype]:
            raise Disagreement(
                f"{layer} {shape}: {name} differs from scratch by {difference:.3g} "
                f"(> {AGREEMENT[dtype]:g}); the times would not be comparable."
            )
    return calls, differences


def gemm(dtype: str, threads: int):
    """A square ``matmul`` of :data:`ROOF_SIZE` and its flop count: the machine's BLAS roof."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((ROOF_SIZE, ROOF_SIZE)).astype(dtype) for _ in range(2))
    out = np.empty_like(a)
    return (lambda: np.matmul(a, b, out=out)), 2 * ROOF_SIZE**3


# --- timing -----------------------------------------------------------------------------
def calibrate(fn, seconds: float) -> int:
    """How many consecutive calls of ``fn`` last about ``seconds`` (at least one); ``fn`` warms up here too."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(round(seconds / once)))


def sample(fn, number: int) -> float:
    """Seconds per call, averaged over ``number`` consecutive calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def flops(layer: str, shape: tuple) -> int:
    """Flops of the matrix products of one call: ``2 * B * T * (F + U) * G``."""
    batch, timesteps, features, units = shape
    return 2 * batch * timesteps * (features + units) * GATES[layer] * units


#: The block each candidate is timed in: a repeat times one block after another, with a pause before each, and
#: every sample follows untimed calls of the same candidate for half the pause (:func:`warm`): what is timed is a
#: call repeated. OpenBLAS's idle
#: threads spin for about 0.1 s after a product on several threads, and a split call (``scratch``) started
#: meanwhile shares a core with one of them: LSTM 64x200x64x128 took 21 ms right after another configuration's
#: unsplit call, 13.5 ms repeated (docs/performance.md, "Threads"). The roof and the engine without extras, which
#: run OpenBLAS on several threads, get blocks of their own as well.
FRAMEWORK = {
    "gemm": "numpy, the roof",
    "scratch": "numpy",
    "torch": "torch",
    "keras_eager": "tensorflow",
    "keras_predict": "tensorflow",
    "scratch_split": "numpy, BLAS on one thread",
    "scratch_numba": "numpy",
    "scratch_numpy": "numpy, no extra",
}


def benchmark(
    layers=LAYERS,
    shapes=SHAPES,
    repeats: int = 7,
    threads: int | None = None,
    against=AGAINST,
    dtype: str = "float32",
    sample_seconds: float = 0.02,
    settle_seconds: float = 0.25,
    on_sample=None,
) -> dict:
    """Time every candidate on every configuration, interleaved; the JSON-able result.

    ``against`` names what to time besides scratch (:data:`AGAINST`); ``threads`` (default:
    NumPy's BLAS thread count) limits NumPy's BLAS, PyTorch and TensorFlow for the run.
    Each repeat times the candidates library by library (NumPy, PyTorch, TensorFlow, in an
    order that rotates every repeat), every configuration in each. Before a library's block it
    waits ``settle_seconds`` and makes one untimed call: each library's worker threads spin for
    a while after their last call (OpenBLAS's for about 0.1 s), and on a machine with few
    cores they would slow down the next library's threads. Measured here (2 cores): a torch
    LSTM call right after NumPy work took 2.7 ms instead of 0.7-1.3 ms.

    ``on_sample(done, total)`` is called once every candidate is ready and checked (``done`` 0),
    then after each timed sample (progress bars). Raises ImportError without the ``bench``
    extra, and :class:`Disagreement` when a candidate's outputs differ from scratch's.
    """
    import threadpoolctl

    if compiled.enabled():  # SciPy's BLAS (numba's np.dot) loaded now, so that the limit below covers it too
        compiled.warm_up()
    with threadpoolctl.threadpool_limits(threads, user_api="blas"):  # None: no limit
        threads = threads or blas_threads()
        frameworks = load_frameworks(against, threads)
        torch = frameworks.get("torch")
        with torch.inference_mode() if torch is not None else nullcontext(), parallel.threads(threads):
            return _interleaved(
                [(layer, tuple(shape)) for shape in shapes for layer in layers],
                repeats,
                threads,
                frameworks,
                dtype,
                sample_seconds,
                settle_seconds,
                on_sample or (lambda done, total: None),
            )


def _interleaved(configs, repeats, threads, frameworks, dtype, sample_seconds, settle_seconds, on_sample) -> dict:
    """:func:`benchmark` once the frameworks are loaded and limited."""
    result = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "threads": threads,
        "backend": compiled.backend() if compiled.enabled() else "numpy",  # what ``scratch`` ran
        "products": mkl.choice() if mkl.choice() != "auto" or mkl.available() else "numpy",  # its per-step products
        "dtype": dtype,
        "repeats": repeats,
        "sample_seconds": sample_seconds,
        "settle_seconds": settle_seconds,
        "versions": versions(frameworks),
        "load_average_start": load_average(),
        "results": [],
    }
    roof_fn, roof_flops = gemm(dtype, threads)
    blocks = {}  # library -> [(config index or None for the roof, candidate, fn, calls per sample)]
    blocks.setdefault(FRAMEWORK["gemm"], []).append((None, "gemm", roof_fn, calibrate(roof_fn, sample_seconds)))
    for index, (layer, shape) in enumerate(configs):
        calls, differences = candidates(layer, shape, dtype, frameworks)
        result["results"].append(
            {
                "layer": layer,
                "shape": dict(zip("BTFU", shape)),
                "flops": flops(layer, shape),
                "max_abs_difference": differences,
                "samples": {name: [] for name in calls},
            }
        )
        for name, fn in calls.items():
            blocks.setdefault(FRAMEWORK[name], []).append((index, name, fn, calibrate(fn, sample_seconds)))
    roof_samples = []
    libraries = list(blocks)
    total, done = repeats * sum(len(block) for block in blocks.values()), 0
    on_sample(done, total)
    for repeat in range(repeats):
        shift = repeat % len(libraries)
        for library in libraries[shift:] + libraries[:shift]:
            time.sleep(settle_seconds)
            with one_blas_thread() if library == FRAMEWORK["scratch_split"] else nullcontext():
                for index, name, fn, number in blocks[library]:
                    warm(fn, settle_seconds / 2)  # the steady state of this call repeated (see FRAMEWORK)
                    seconds = sample(fn, number)
                    if index is None:
                        roof_samples.append(seconds)
                    else:
                        result["results"][index]["samples"][name].append(seconds)
                    done += 1
                    on_sample(done, total)
    result["load_average_end"] = load_average()
    roof = roof_flops / float(np.median(roof_samples))
    result["gemm"] = {"size": ROOF_SIZE, "samples": roof_samples, "gflops": roof / 1e9}
    for entry in result["results"]:
        median = {name: float(np.median(s)) for name, s in entry["samples"].items()}
        entry["median_seconds"] = median
        entry["gflops"] = entry["flops"] / median["scratch"] / 1e9
        entry["roof_fractions"] = {name: entry["flops"] / t / roof for name, t in median.items()}  # scratch's too
        entry["ratios"] = {f"scratch/{name}": median["scratch"] / t for name, t in median.items() if name != "scratch"}
    return result


def warm(fn, seconds: float) -> None:
    """Call ``fn`` until ``seconds`` have passed (once at least): the threads another candidate left spinning
    (OpenBLAS's, about 0.1 s) go idle meanwhile, and ``fn``'s own are awake."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def one_blas_thread():
    """NumPy's BLAS limited to one thread for a block (``scratch_split``'s: its threads are the engine's)."""
    import threadpoolctl

    return threadpoolctl.threadpool_limits(1, user_api="blas")


def versions(frameworks: dict) -> dict:
    found = {"scratch_rnn": __version__, "numpy": np.__version__}
    if "numba" in sys.modules:
        found["numba"] = sys.modules["numba"].__version__
    if "torch" in frameworks:
        found["torch"] = frameworks["torch"].__version__
    if "keras" in frameworks:
        found["keras"] = frameworks["keras"].__version__
        found["tensorflow"] = sys.modules["tensorflow"].__version__
    return found
