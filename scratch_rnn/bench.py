"""``scratch-rnn bench``: inference time of the scratch engine against Keras and PyTorch, on this machine.

For each layer (SimpleRNN, LSTM, GRU) and shape ``(batch, timesteps, features, units)``,
with ``return_sequences=True``, in one process and one run:

* ``scratch``: the scratch layer's call;
* ``torch``: ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` on the CPU (``batch_first``, under
  ``torch.inference_mode()``), with the same thread count as NumPy's BLAS;
* ``keras_eager``: the Keras layer called eagerly on a tensor;
* ``keras_predict``: ``Sequential([Input, layer]).predict``;
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

OpenBLAS note: where ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are set to work around old
OpenBLAS builds, they slow a current NumPy; unset both for the benchmark command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE scratch-rnn bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

LAYERS = ("SimpleRNN", "LSTM", "GRU")
SHAPES = ((8, 10, 4, 8), (32, 100, 16, 32), (64, 200, 64, 128), (256, 50, 128, 256))
AGAINST = ("torch", "keras_eager", "keras_predict")
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
#: Largest |difference| from the Keras output tolerated before timing (outputs are tanh-bounded).
AGREEMENT = {"float32": 1e-4, "float64": 1e-10}
ROOF_SIZE = 1024


# --- command line ---------------------------------------------------------------------
def _shape(text: str) -> tuple:
    parts = text.lower().replace("(", "").replace(")", "").replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected BxTxFxU (batch x timesteps x features x units), got {text!r}")
    return shape


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--layers",
        nargs="+",
        choices=LAYERS,
        default=list(LAYERS),
        metavar="LAYER",
        help=f"layers to time (default: {' '.join(LAYERS)})",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=_shape,
        default=list(SHAPES),
        metavar="BxTxFxU",
        help="shapes batch x timesteps x features x units (default: "
        + " ".join("x".join(map(str, s)) for s in SHAPES)
        + ")",
    )
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        default=7,
        metavar="N",
        help="interleaved samples per candidate; the table shows medians (default 7)",
    )
    parser.add_argument(
        "--against",
        nargs="*",
        choices=AGAINST,
        default=list(AGAINST),
        metavar="NAME",
        help=f"what to time besides scratch (default: {' '.join(AGAINST)}); none: only scratch",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="BLAS, PyTorch and TensorFlow threads (default: NumPy's BLAS thread count)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--sample-ms",
        type=float,
        default=20.0,
        metavar="MS",
        help="each sample repeats the call for about this long (default 20)",
    )
    parser.add_argument(
        "--settle-ms",
        type=float,
        default=250.0,
        metavar="MS",
        help="pause before each library's block, for the previous one's threads to idle (default 250)",
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write every sample and the machine to PATH")
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``scratch-rnn`` subcommands; dispatch with ``bench.run(args)``."""
    parser = subparsers.add_parser(
        "bench", help="time the engine against Keras and PyTorch on this machine", description=__doc__.split("\n\n")[0]
    )
    return configure(parser)


def main(argv=None) -> int:
    parser = configure(argparse.ArgumentParser(prog="scratch-rnn bench", description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv))


def run(args) -> int:
    """Run the benchmark for parsed ``args``; 0 on success, 2 on a missing dependency, 1 on disagreement."""
    try:
        import threadpoolctl
        from rich.console import Console
    except ImportError as err:
        print(f"scratch-rnn bench needs the bench extra: pip install 'scratch-rnn[bench]' ({err})", file=sys.stderr)
        return 2
    console = Console() if sys.stdout.isatty() else Console(width=140)  # a file or pipe gets the whole table
    limits = threadpoolctl.threadpool_limits(args.threads, user_api="blas") if args.threads else None
    try:
        threads = args.threads or blas_threads()
        try:
            frameworks = load_frameworks(args.against, threads)
        except ImportError as err:
            print(f"scratch-rnn bench needs the bench extra: pip install 'scratch-rnn[bench]' ({err})", file=sys.stderr)
            return 2
        try:
            result = benchmark(
                args.layers,
                args.shapes,
                args.repeats,
                threads,
                frameworks,
                args.dtype,
                args.sample_ms / 1000,
                console,
                args.settle_ms / 1000,
            )
        except Disagreement as err:
            console.print(f"[red]{err}[/red]")
            return 1
    finally:
        if limits is not None:
            limits.restore_original_limits()
    console.print(table(result))
    console.print(summary(result), highlight=False)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        console.print(f"JSON written to {args.json}")
    return 0


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
    return frameworks


def weights_for(layer: str, shape: tuple, dtype: str, seed: int) -> list[np.ndarray]:
    """Random weights in Keras's layout and order, biases included (zeros would hide a misplaced bias)."""
    import scratch_rnn

    _, _, features, units = shape
    scratch = getattr(scratch_rnn, layer)(units, dtype=dtype, seed=seed)
    scratch.build((None, None, features))
    rng = np.random.default_rng(seed)
    weights = scratch.get_weights()
    weights[-1] = (0.1 * rng.standard_normal(weights[-1].shape)).astype(dtype)
    return weights


def torch_module(torch, layer: str, features: int, units: int, weights, dtype: str):
    """The PyTorch layer computing what Keras's does, weights copied (the only place their layouts meet)."""
    kernel, recurrent, bias = weights
    if layer == "GRU":
        # Keras stacks the gates z, r, h; PyTorch r, z, n. PyTorch's GRU is Keras's reset_after=True:
        # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), with Keras's bias rows as b_i* and b_h*.
        u = units
        order = np.r_[u : 2 * u, 0:u, 2 * u : 3 * u]
        w_ih, w_hh, b_ih, b_hh = kernel.T[order], recurrent.T[order], bias[0][order], bias[1][order]
    else:
        # SimpleRNN: one block; LSTM: PyTorch's i, f, g, o is Keras's i, f, c, o. Keras has one bias.
        w_ih, w_hh, b_ih, b_hh = kernel.T, recurrent.T, bias, np.zeros_like(bias)
    cls = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[layer]
    module = cls(features, units, batch_first=True, dtype=getattr(torch, dtype)).eval()
    with torch.no_grad():
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def candidates(layer: str, shape: tuple, dtype: str, frameworks: dict, seed: int = 0):
    """``({name: zero-argument callable}, {name: max |output - scratch output|})`` for one configuration."""
    import scratch_rnn

    batch, timesteps, features, units = shape
    weights = weights_for(layer, shape, dtype, seed)
    x = np.random.default_rng(seed + 1).standard_normal((batch, timesteps, features)).astype(dtype)
    scratch = getattr(scratch_rnn, layer)(units, return_sequences=True, dtype=dtype)
    scratch.set_weights(weights)
    calls = {"scratch": lambda: scratch(x)}
    expected = scratch(x)
    outputs = {}
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


#: The library each candidate runs on: a repeat times one library after another.
FRAMEWORK = {
    "gemm": "numpy",
    "scratch": "numpy",
    "torch": "torch",
    "keras_eager": "tensorflow",
    "keras_predict": "tensorflow",
}


def benchmark(
    layers,
    shapes,
    repeats: int,
    threads: int,
    frameworks: dict,
    dtype: str = "float32",
    sample_seconds: float = 0.02,
    console=None,
    settle_seconds: float = 0.25,
) -> dict:
    """Time every candidate on every configuration, interleaved; the JSON-able result.

    Each repeat times the candidates library by library (NumPy, PyTorch, TensorFlow, in an
    order that rotates every repeat), every configuration in each. Before a library's block it
    waits ``settle_seconds`` and makes one untimed call: each library's worker threads spin for
    a while after their last call (OpenBLAS's for about 0.1 s), and on a machine with few
    cores they would slow down the next library's threads. Measured here (2 cores): a torch
    LSTM call right after NumPy work took 2.7 ms instead of 0.7-1.3 ms.
    """
    from contextlib import nullcontext

    torch = frameworks.get("torch")
    no_grad = torch.inference_mode() if torch is not None else nullcontext()
    configs = [(layer, tuple(shape)) for shape in shapes for layer in layers]
    result = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "threads": threads,
        "dtype": dtype,
        "repeats": repeats,
        "sample_seconds": sample_seconds,
        "settle_seconds": settle_seconds,
        "versions": versions(frameworks),
        "load_average_start": load_average(),
        "results": [],
    }
    with no_grad:
        status = console.status("preparing and checking outputs...") if console is not None else nullcontext()
        with status:
            roof_fn, roof_flops = gemm(dtype, threads)
            blocks = {}  # library -> [(config index or None for the roof, candidate, fn, calls per sample)]
            blocks.setdefault("numpy", []).append((None, "gemm", roof_fn, calibrate(roof_fn, sample_seconds)))
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
        total = repeats * sum(len(block) for block in blocks.values())
        with _progress(console) as progress:
            task = progress.add_task("timing", total=total) if progress is not None else None
            for repeat in range(repeats):
                shift = repeat % len(libraries)
                for library in libraries[shift:] + libraries[:shift]:
                    time.sleep(settle_seconds)
                    blocks[library][0][2]()  # one untimed call wakes the library's threads
                    for index, name, fn, number in blocks[library]:
                        seconds = sample(fn, number)
                        if index is None:
                            roof_samples.append(seconds)
                        else:
                            result["results"][index]["samples"][name].append(seconds)
                        if task is not None:
                            progress.advance(task)
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


def _progress(console):
    from contextlib import nullcontext

    if console is None:
        return nullcontext()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("timing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )


def versions(frameworks: dict) -> dict:
    import scratch_rnn

    found = {"scratch_rnn": scratch_rnn.__version__, "numpy": np.__version__}
    if "torch" in frameworks:
        found["torch"] = frameworks["torch"].__version__
    if "keras" in frameworks:
        found["keras"] = frameworks["keras"].__version__
        found["tensorflow"] = sys.modules["tensorflow"].__version__
    return found


# --- the report -------------------------------------------------------------------------
def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def table(result: dict):
    from rich.table import Table

    names = [
        n for n in ("torch", "keras_eager", "keras_predict") if any(n in e["median_seconds"] for e in result["results"])
    ]
    title = (
        f"Inference time (ms), {result['dtype']}, return_sequences=True, {result['threads']} thread(s), "
        f"medians of {result['repeats']} interleaved samples"
    )
    t = Table(title=title)
    t.add_column("layer")
    t.add_column("B, T, F, U")
    t.add_column("scratch", justify="right")
    for name in names:
        t.add_column(
            {"torch": "torch", "keras_eager": "Keras eager", "keras_predict": "Keras predict"}[name], justify="right"
        )
    if "torch" in names:
        t.add_column("scratch/torch", justify="right")
    if "keras_eager" in names:
        t.add_column("vs eager", justify="right")
    t.add_column("GF/s", justify="right")
    t.add_column("of roof", justify="right")
    if "torch" in names:
        t.add_column("torch of roof", justify="right")
    for e in result["results"]:
        m = e["median_seconds"]
        row = [e["layer"], ", ".join(str(v) for v in e["shape"].values()), _ms(m["scratch"])]
        row += [_ms(m.get(name)) for name in names]
        if "torch" in names:
            ratio = e["ratios"]["scratch/torch"]
            row.append(f"[{'green' if ratio <= 1 else 'red'}]{ratio:.2f}[/]")
        if "keras_eager" in names:
            row.append(f"{1 / e['ratios']['scratch/keras_eager']:.0f}x")
        row += [f"{e['gflops']:.1f}", f"{e['roof_fractions']['scratch']:.0%}"]
        if "torch" in names:
            row.append(f"{e['roof_fractions']['torch']:.0%}")
        t.add_row(*row)
    return t


def summary(result: dict) -> str:
    m = result["machine"]
    blas = ", ".join(
        f"{b['internal_api']} {b['version']} ({b['architecture']}, {b['num_threads']} threads)" for b in m["blas"]
    )
    v = result["versions"]
    lines = [
        f"GEMM roof: {result['gemm']['gflops']:.0f} GF/s ({result['dtype']} {ROOF_SIZE}^3 matmul, median).",
        f"Machine: {m['cpu']}, {m['cores']} cores; BLAS: {blas}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Load average at start / end: {_load(result['load_average_start'])} / {_load(result['load_average_end'])}"
        " (a shared machine: high load inflates every column).",
    ]
    if m["openblas_env"]:
        lines.append(f"Note: {m['openblas_env']} is set; unset both for benchmarking (see --help).")
    return "\n".join(lines)


def _load(values) -> str:
    return "?" if values is None else " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
