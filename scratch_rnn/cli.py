"""``scratch-rnn``: the command line.

``scratch-rnn verify`` runs the Hypothesis sweep of the scratch engine (or of a
``--candidate``) against the installed Keras and prints a table (``--mutants``:
the planted-bug gallery and its kill table instead); ``record`` and
``check`` write and check golden vectors; ``bench`` times the engine against Keras
and PyTorch; ``export`` writes a saved model as ONNX. The exit status is 0 when every case agreed, 1 on any
mismatch, 2 on
bad arguments, an unusable recording or candidate, or a missing extra.

This is the only module of scratch_rnn that parses arguments or prints. The library
(:func:`scratch_rnn.testing.verify.verify`, :mod:`scratch_rnn.testing.golden`,
:mod:`scratch_rnn.testing.mutants`, :mod:`scratch_rnn.bench`) returns results and
reports progress through callbacks; here arguments become its calls and its results
become tables. Defaults shared with the library are read from its signatures.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from scratch_rnn import bench
from scratch_rnn.testing import golden, mutants
from scratch_rnn.testing.candidates import CandidateError, load_candidate
from scratch_rnn.testing.case import CORE_LAYERS, LAYERS
from scratch_rnn.testing.errors import missing_extra
from scratch_rnn.testing.runners import REFERENCES, default_reference
from scratch_rnn.testing.tolerance import PRECISIONS

#: ``--dtype`` of verify and record: the dtypes each choice sweeps.
DTYPES = {"float32": ("float32",), "float64": ("float64",), "both": golden.DTYPES}
#: The console's width when stdout is not a terminal (logs, pipes, files): room for the widest table.
WIDTH = 140
#: ``verify --port NAME``: the module holding that converter's candidates (``layer``, ``core_layer`` and
#: ``model``, the three candidate interfaces) and the packages it needs. A new converter adds its row.
PORTS = {
    "torch": ("scratch_rnn.testing.torch_candidates", ("torch",)),
    "onnx": ("scratch_rnn.testing.onnx_candidates", ("onnx", "onnxruntime")),
}


# --- shared by every command ------------------------------------------------------------


def positive_int(text: str) -> int:
    """The argparse type of every count: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """The argparse type of ``--timeout``: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def shape(text: str) -> tuple:
    """The argparse type of ``bench --shapes``: ``BxTxFxU`` (or ``(B, T, F, U)``), four positive integers."""
    parts = text.lower().replace("(", "").replace(")", "").replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected BxTxFxU (batch x timesteps x features x units), got {text!r}")
    return dims


def make_console():
    """A rich console on stdout, :data:`WIDTH` wide when stdout is not a terminal (tables are not cut)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=WIDTH)


def progress_bars(console):
    """Transient progress bars, one per task, drawn only on a terminal; the library's callbacks advance them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def fail_missing_extra(command: str, extra: str, err: ImportError) -> int:
    """Say on stderr which extra ``scratch-rnn <command>`` needs (``pip install 'scratch-rnn[extra]'``); exit 2."""
    print(missing_extra(f"scratch-rnn {command}", extra, err), file=sys.stderr)
    return 2


def refuse(command: str, message: str) -> int:
    """Arguments that parse but do not go together: say why on stderr; exit 2."""
    print(f"scratch-rnn {command}: {message}", file=sys.stderr)
    return 2


def print_error(console, err: Exception) -> int:
    """An unusable recording, candidate or output path, on the console; exit 2."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
    return 2


def keyword_defaults(function) -> dict:
    """``function``'s keyword defaults: the command line restates none of the library's."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty}


def verify_defaults() -> dict:
    """:func:`scratch_rnn.testing.verify.verify`'s defaults; none without Hypothesis (verify then exits 2 anyway)."""
    try:
        from scratch_rnn.testing.verify import verify
    except ImportError:
        return {}
    return keyword_defaults(verify)


def selected_layers(chosen) -> tuple:
    """``--layer`` given zero or more times (``all`` included): the layers, in order, once each."""
    if not chosen or "all" in chosen:
        return LAYERS
    return tuple(dict.fromkeys(chosen))


# --- the parsers ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratch-rnn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_verify_parser(sub)
    add_record_parser(sub)
    add_check_parser(sub)
    add_bench_parser(sub)
    add_inspect_parser(sub)
    add_predict_parser(sub)
    add_merge_parser(sub)
    add_export_parser(sub)
    add_convert_parser(sub)
    return parser


def add_inspect_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "inspect",
        help="print a saved Keras model's summary (layers, output shapes, parameter counts), without TensorFlow",
    )
    parser.add_argument("model", metavar="MODEL", help="a .keras archive or a legacy .h5 model file")
    return parser


def add_predict_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("predict", help="run a saved Keras model on .npy inputs, without TensorFlow")
    parser.add_argument("model", metavar="MODEL", help="a .keras archive or a legacy .h5 model file")
    parser.add_argument("inputs", metavar="INPUT.npy", nargs="+", help="one .npy file per model input, in order")
    parser.add_argument(
        "--out", required=True, metavar="OUT", help="OUT.npy for a model with one output, OUT.npz for several"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N", help="samples per call")
    return parser


def add_export_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("export", help="write a saved Keras model as an ONNX file, without TensorFlow")
    parser.add_argument("model", metavar="MODEL", help="a .keras archive or a legacy .h5 model file")
    parser.add_argument("--out", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    parser.add_argument("--opset", type=positive_int, default=None, metavar="N", help="ONNX opset (default 17)")
    parser.add_argument(
        "--recurrent",
        choices=["auto", "operators", "scan"],
        default="auto",
        help="auto (default): LSTM and GRU as ONNX's operators where they can, SimpleRNN as a Scan of Keras's step; "
        "operators: the RNN operator too; scan: every recurrent layer a Scan (exact activations; docs/ports.md)",
    )
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default=None, help="compute in this float dtype (default: as saved)"
    )
    return parser


def add_convert_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "convert",
        help="write a saved Keras model (.keras, or .h5 from Keras 2 or 3) as a Keras 3 .keras file, no TensorFlow",
    )
    parser.add_argument("model", metavar="MODEL", help="a .keras archive or a legacy .h5 model file")
    parser.add_argument("--out", required=True, metavar="OUT.keras", help="the Keras 3 .keras file to write")
    return parser


def add_candidate_option(parser, action: str, timeout: float | None) -> None:
    """``--candidate`` and its ``--timeout``."""
    parser.add_argument(
        "--candidate",
        metavar="MODULE:FUNCTION",
        default=None,
        help=f"{action} candidate(config, weights, x, mask, initial_state) instead of the engine; "
        "a candidate implements one layer, so pair it with --layer",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=timeout,
        metavar="SECONDS",
        help="a --candidate case that has not returned after this long fails, and the run stops there "
        "(default %(default)s)",
    )


def add_precision_option(parser) -> None:
    """``--precision``: the candidate's products' precision the tolerances allow for (docs/precision.md)."""
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="float32",
        help="the precision of the candidate's products the float32 tolerances allow for: float32 (default), "
        "tf32, float16 or bfloat16 (a GPU port with TF32 on, or under autocast); the float64 lane is unchanged",
    )


def add_sweep_options(parser, examples: int | None, seed: int | None, seed_help: str, dtype_help: str) -> None:
    """``--examples``, ``--seed`` and ``--dtype``: how many cases of which dtypes, drawn from which seed."""
    parser.add_argument(
        "--examples",
        type=positive_int,
        default=examples,
        metavar="N",
        help="cases per layer and dtype (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=seed, metavar="S", help=seed_help)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="both", help=dtype_help)


def add_layers_option(parser, what: str) -> None:
    """``--layer`` for recorded cases, repeatable (:func:`selected_layers`)."""
    parser.add_argument(
        "--layer",
        action="append",
        choices=[*LAYERS, "all"],
        metavar="LAYER",
        help=f"{what}, repeatable: {', '.join(LAYERS)} or all (default all)",
    )


def add_verify_parser(sub) -> argparse.ArgumentParser:
    defaults = verify_defaults()
    parser = sub.add_parser("verify", help="prove the engine equals Keras on generated cases")
    add_sweep_options(
        parser,
        defaults.get("max_examples"),
        defaults.get("seed"),
        seed_help="Hypothesis seed (default: random, printed)",
        dtype_help="float32 (noise-floor tolerance), float64 (near machine precision) or both (default)",
    )
    parser.add_argument(
        "--layer",
        choices=[*LAYERS, "all", *CORE_LAYERS, "core"],
        default="all",
        metavar="LAYER",
        help=f"layer to sweep: {', '.join(LAYERS)}, all (those four: the default), core (every non-recurrent "
        f"layer) or one of them: {', '.join(CORE_LAYERS)}; with --mutants, all is the whole gallery",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="verify a whole saved model (.keras or .h5) on generated inputs instead of the layers; a "
        "--candidate then is candidate(model_file, inputs) -> outputs",
    )
    parser.add_argument(
        "--reference",
        choices=REFERENCES,
        default=defaults.get("reference"),
        help="keras (Keras 3) or tf_keras (Keras 2); default $SCRATCH_RNN_REFERENCE or keras",
    )
    add_candidate_option(parser, "verify", defaults.get("timeout"))
    parser.add_argument(
        "--reference-step",
        action="store_true",
        help="sweep the engine's readable project/step instead of its fast kernels "
        "(the engine only: not with --candidate or --mutants)",
    )
    add_precision_option(parser)
    parser.add_argument(
        "--mutants",
        action="store_true",
        help="run the gallery of planted porting bugs instead of the engine: each must fail within "
        f"--examples cases (prints the kill table; exit 1 if a mutant survives); seed {mutants.DEFAULT_SEED} "
        "unless --seed is given",
    )
    parser.add_argument(
        "--port",
        choices=sorted(PORTS),
        default=None,
        help="verify a converter of scratch_rnn.ports instead of the engine: the converted layer (any --layer, "
        "all included) or --model; with --mutants, the bugs planted in that converter",
    )
    add_split_options(parser)
    add_report_options(parser)
    return parser


def add_record_parser(sub) -> argparse.ArgumentParser:
    defaults = keyword_defaults(golden.record)
    parser = sub.add_parser(
        "record",
        help="record golden vectors: cases and real Keras's outputs",
        description="Record cases and real Keras's outputs as golden vectors "
        f"(a directory holding {golden.MANIFEST} and {golden.ARRAYS}).",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="directory to write (created if needed): new, empty, or holding a recording already",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"write into a non-empty directory that holds no recording (its {golden.MANIFEST} and {golden.ARRAYS} "
        "are replaced, nothing else is touched)",
    )
    add_layers_option(parser, "layer to record")
    add_sweep_options(
        parser,
        defaults["examples"],
        defaults["seed"],
        seed_help="Hypothesis seed (default %(default)s)",
        dtype_help="float32, float64 or both (default)",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="record a whole saved model (.keras or .h5) instead of the layers: --examples inputs that fit it "
        "per dtype, with Keras's outputs (check them with scratch-rnn check DIR --model PATH)",
    )
    return parser


def add_check_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "check",
        help="check the engine or a candidate against golden vectors, without TensorFlow or Keras",
        description="Check the engine, or a candidate, against recorded golden vectors. "
        "TensorFlow and Keras are not needed.",
    )
    parser.add_argument(
        "path", metavar="PATH", help=f"a recording: a directory holding {golden.MANIFEST} and {golden.ARRAYS}"
    )
    add_candidate_option(parser, "check", keyword_defaults(golden.check)["timeout"])
    parser.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="the saved model a model recording was made from (its sha256 must match); a --candidate then is "
        "candidate(model_file, inputs) -> outputs",
    )
    add_layers_option(parser, "only this layer's cases")
    parser.add_argument("--case", action="append", metavar="ID", help="only this case (e.g. case0007), repeatable")
    add_precision_option(parser)
    add_report_options(parser)
    return parser


def shard_spec(text: str) -> tuple:
    """The argparse type of ``--shard``: ``K/N`` with ``1 <= K <= N``."""
    from scratch_rnn.testing.workers import parse_shard

    try:
        return parse_shard(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N (e.g. 2/4), got {text!r}") from None


def add_split_options(parser) -> None:
    """``--workers``, ``--shard`` and ``--block-size``: a layer sweep split into blocks, run in parallel
    processes or across CI jobs (:mod:`scratch_rnn.testing.workers`; docs/ci.md)."""
    from scratch_rnn.testing.workers import BLOCK

    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="run the sweep's blocks in N processes, each importing Keras once (default 1: this process); "
        "the result is the same for any N",
    )
    parser.add_argument(
        "--shard",
        type=shard_spec,
        default=None,
        metavar="K/N",
        help="run only shard K of N of the sweep (every N-th block; needs --seed), e.g. one per CI job; "
        "combine their --report-json files with scratch-rnn merge",
    )
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=BLOCK,
        metavar="N",
        help="cases per block of a layer and dtype (default %(default)s); part of the sweep: every shard "
        "must use the same",
    )


def add_report_options(parser) -> None:
    """``--report-json`` and ``--junit-xml``, written whether the run passes or fails (docs/ci.md)."""
    parser.add_argument(
        "--report-json",
        metavar="PATH",
        default=None,
        help="also write the results as JSON (schema in docs/ci.md), even when the run fails",
    )
    parser.add_argument(
        "--junit-xml",
        metavar="PATH",
        default=None,
        help="also write JUnit XML (a testcase per layer and dtype) for CI test reports, even when the run fails",
    )


def add_merge_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "merge",
        help="merge the --report-json files of a sharded verify into one table and exit status",
        description="Merge the JSON reports of the N shards of one scratch-rnn verify --shard K/N sweep: one "
        "table, exit 0 only if every shard is present and every case agreed (2 for a missing, repeated or "
        "foreign shard).",
    )
    parser.add_argument("reports", metavar="REPORT.json", nargs="+", help="one JSON report per shard")
    add_report_options(parser)
    return parser


def milliseconds(text: str) -> float:
    """The argparse type of a duration given in milliseconds: seconds, as the library takes them."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a duration in milliseconds (0 or more), got {text!r}")
    return value / 1000


def add_names_option(parser, flag: str, metavar: str, names, default, what: str, nargs: str) -> None:
    """A list of names from ``names`` (``bench --layers``, ``--against``), every default one by default."""
    parser.add_argument(
        flag,
        nargs=nargs,
        choices=names,
        default=list(default),
        metavar=metavar,
        help=f"{what} (default: {' '.join(default)})",
    )


def add_bench_parser(sub) -> argparse.ArgumentParser:
    """``bench``: each option is the :func:`scratch_rnn.bench.benchmark` argument of the same name
    (``--sample-ms`` and ``--settle-ms`` its ``sample_seconds`` and ``settle_seconds``), default included."""
    defaults = keyword_defaults(bench.benchmark)
    parser = sub.add_parser(
        "bench",
        help="time the engine against Keras and PyTorch on this machine",
        description=bench.__doc__.split("\n\n")[0],
    )
    add_names_option(parser, "--layers", "LAYER", bench.LAYERS, defaults["layers"], "layers to time", nargs="+")
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=shape,
        default=list(defaults["shapes"]),
        metavar="BxTxFxU",
        help="shapes batch x timesteps x features x units (default: "
        + " ".join("x".join(map(str, s)) for s in defaults["shapes"])
        + ")",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=defaults["repeats"],
        metavar="N",
        help="interleaved samples per candidate; the table shows medians (default %(default)s)",
    )
    add_names_option(
        parser,
        "--against",
        "NAME",
        bench.AGAINST,
        defaults["against"],
        "what to time besides scratch, none for scratch alone",
        nargs="*",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=defaults["threads"],
        metavar="N",
        help="BLAS, PyTorch and TensorFlow threads, and scratch_split's engine threads (default: NumPy's BLAS "
        "thread count)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default=defaults["dtype"])
    for flag, dest, what in (
        ("--sample-ms", "sample_seconds", "each sample repeats the call for about this long"),
        ("--settle-ms", "settle_seconds", "pause before each library's block, for the previous one's threads to idle"),
    ):
        parser.add_argument(
            flag,
            dest=dest,
            type=milliseconds,
            default=defaults[dest],
            metavar="MS",
            help=f"{what} (default {defaults[dest] * 1000:g})",
        )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write every sample and the machine to PATH")
    return parser


# --- the commands -----------------------------------------------------------------------


def run_verify(args) -> int:
    """``scratch-rnn verify`` (and ``--mutants``): 0 when every case agrees (every mutant is killed), 1 if not."""
    if args.precision != "float32" and args.dtype == "float64":
        return refuse("verify", f"--precision {args.precision} applies to float32 cases: not with --dtype float64")
    if (args.workers > 1 or args.shard is not None) and (args.mutants or args.model is not None):
        return refuse("verify", "--workers and --shard split a layer sweep: not with --mutants or --model")
    if args.shard is not None and args.seed is None:
        return refuse("verify", "--shard K/N needs --seed S: every shard must draw from the same sweep")
    if (args.report_json or args.junit_xml) and args.mutants:
        return refuse("verify", "--report-json and --junit-xml report a sweep or a model: not with --mutants")
    if args.mutants and args.candidate is not None:
        return refuse("verify", "--mutants runs the planted-bug gallery, not a --candidate")
    if args.port is not None and (args.candidate is not None or args.reference_step):
        return refuse(
            "verify", "--port names the candidates (the converter's): not with --candidate or --reference-step"
        )
    if args.reference_step and (args.candidate is not None or args.mutants):
        return refuse(
            "verify", "--reference-step sweeps the engine's own readable step: not with --candidate or --mutants"
        )
    if args.reference is None and default_reference() not in REFERENCES:
        return refuse(
            "verify",
            f"$SCRATCH_RNN_REFERENCE is {default_reference()!r}; expected one of {', '.join(REFERENCES)} "
            "(or pass --reference)",
        )
    try:
        from scratch_rnn.testing.runners import import_keras
        from scratch_rnn.testing.verify import verify  # noqa: F401  (the verify extra, Hypothesis, is installed)

        if args.workers > 1:  # the workers import Keras; this process would only delay them
            from scratch_rnn.testing.workers import installed_reference

            keras, tensorflow_version = installed_reference(args.reference)
        else:
            keras = import_keras(args.reference)
            tensorflow_version = sys.modules["tensorflow"].__version__
        console = make_console()
    except ImportError as err:
        return fail_missing_extra("verify", "keras2" if args.reference == "tf_keras" else "verify", err)
    except (ValueError, RuntimeError) as err:  # a reference that is not Keras on TensorFlow
        return refuse("verify", str(err))
    try:
        candidate = None if args.candidate is None else load_candidate(args.candidate)
        port = None if args.port is None or args.mutants else port_candidates(args.port)
    except CandidateError as err:
        return refuse("verify", str(err))
    except ImportError as err:
        return fail_missing_extra("verify --port", "ports", err)
    if args.model is not None:
        if port is not None:
            candidate = {"float32": port["model"], "float64": port["model_float64"]}
        return run_verify_model(args, candidate, keras)
    if candidate is not None and args.layer in ("all", "core"):
        return refuse("verify", "a --candidate implements one layer; name it with --layer")
    console.print(f"Reference: {keras.__name__} {keras.__version__} on TensorFlow {tensorflow_version}")
    if args.mutants:
        return run_mutants(args, console)
    return run_sweep(args, console, keras)


def unit_arguments(candidate: str | None, port: str | None, precision: str, layer: str, dtype: str) -> dict:
    """:func:`~scratch_rnn.testing.verify.verify`'s arguments that depend on a sweep's unit: the candidate
    (``--candidate``, or the ``--port`` converter's for the layer's interface) and ``--precision`` for the
    dtype's lane. Module-level, so that ``--workers`` processes rebuild it by name."""
    if port is not None:
        chosen = port_candidates(port)["core_layer" if layer in CORE_LAYERS else "layer"]
    else:
        chosen = None if candidate is None else load_candidate(candidate)
    return {"candidate": chosen, "precision": lane_precision(precision, dtype)}


def run_sweep(args, console, keras) -> int:
    """``scratch-rnn verify`` of layers: the sweep's blocks (:mod:`scratch_rnn.testing.workers`) run here or in
    ``--workers`` processes, ``--shard`` K/N of them only; one table, 0 when every case agreed, 1 if not."""
    import functools
    import random

    from scratch_rnn.testing import workers
    from scratch_rnn.testing.verify import MAX_EXAMPLES

    if args.examples > MAX_EXAMPLES:  # each block asks for fewer: the sweep's total is checked here
        return refuse("verify", f"Argument `max_examples` must be an int in [1, {MAX_EXAMPLES}], got {args.examples}.")
    layers = {"all": LAYERS, "core": CORE_LAYERS}.get(args.layer, [args.layer])
    dtypes = list(DTYPES[args.dtype])
    seed = random.getrandbits(32) if args.seed is None else args.seed
    units = workers.plan(layers, dtypes, args.examples, args.block_size)
    if args.shard is not None:
        units = workers.shard(units, *args.shard)
    name = args.candidate or (f"--port {args.port}" if args.port else "scratch_rnn engine")
    job = workers.Job(
        {"seed": seed, "reference": args.reference, "fast": not args.reference_step, "timeout": args.timeout},
        functools.partial(unit_arguments, args.candidate, args.port, args.precision),
        name,
    )
    sweep = {
        "seed": seed,
        "examples": args.examples,
        "block_size": args.block_size,
        "layers": list(layers),
        "dtypes": dtypes,
        "candidate": name,
        "reference": f"{keras.__name__} {keras.__version__}",
        "reference_step": args.reference_step,
        "precision": args.precision,
        "timeout": args.timeout,
    }
    if args.shard is not None:
        console.print(f"Shard {args.shard[0]}/{args.shard[1]}: {len(units)} blocks of the sweep", highlight=False)
    announced = set()

    def on_start(unit):
        if (unit.layer, unit.dtype) not in announced and not console.is_terminal:  # a line per sweep, for CI logs
            announced.add((unit.layer, unit.dtype))
            total = sum(u.examples for u in units if (u.layer, u.dtype) == (unit.layer, unit.dtype))
            console.print(f"{unit.layer} {unit.dtype}: {total} cases ...", highlight=False)

    start = time.perf_counter()
    try:
        with progress_bars(console) as progress:
            tasks = {}
            for u in units:
                key = (u.layer, u.dtype)
                if key not in tasks:
                    total = sum(v.examples for v in units if (v.layer, v.dtype) == key)
                    tasks[key] = progress.add_task(f"{u.layer} {u.dtype} cases", total=total)
            results = workers.run_units(
                units,
                job,
                args.workers,
                on_start=on_start,
                on_case=lambda unit: progress.advance(tasks[(unit.layer, unit.dtype)]),
                stall_seconds=workers.STALL_SECONDS + 2 * (args.timeout or 0),
            )
    except ValueError as err:  # an argument verify refuses (e.g. more --examples than a sweep may ask for)
        return refuse("verify", str(err))
    seconds = time.perf_counter() - start
    reports = workers.merge_reports([r.report for r in results])
    print_reports(console, reports, f"{reports[0].candidate} vs Keras", seeds=True)
    cases = sum(r.examples + r.skipped for r in reports)
    console.print(
        f"{cases} cases in {seconds:.1f} s ({cases / max(seconds, 1e-9):.1f} cases/s) on {args.workers} "
        f"worker(s)" + ("" if args.shard is None else f", shard {args.shard[0]}/{args.shard[1]}"),
        highlight=False,
    )
    ok = bool(reports) and all(r.ok for r in reports)
    console.print("[green]All cases agree with Keras.[/green]" if ok else "[red]Mismatch: see above.[/red]")
    return write_reports(console, args, "verify", reports, 0 if ok else 1, seconds, results, sweep, args.shard)


def write_reports(console, args, command, reports, status, seconds, units=None, sweep=None, shard_of=None) -> int:
    """``--report-json`` and ``--junit-xml`` (:mod:`scratch_rnn.testing.reports`) if asked; ``status``, or 2
    when a file cannot be written."""
    if not (getattr(args, "report_json", None) or getattr(args, "junit_xml", None)):
        return status
    from scratch_rnn.testing import reports as machine

    arguments = machine.arguments_of(args)
    doc = machine.document(command, arguments, reports, units, sweep, shard_of, seconds, status)
    try:
        if args.report_json:
            machine.write_json(args.report_json, doc)
        if args.junit_xml:
            machine.write_junit(args.junit_xml, doc)
    except OSError as err:
        return print_error(console, err)
    return status


def run_merge(args) -> int:
    """``scratch-rnn merge REPORT.json ...``: 0 when all shards are there and every case agreed, 1 if a case
    failed, 2 for a missing, repeated or foreign shard or an unreadable file."""
    from scratch_rnn.testing import reports as machine

    try:
        console = make_console()
    except ImportError as err:
        return fail_missing_extra("merge", "verify", err)
    try:
        docs = [machine.read_json(path) for path in args.reports]
        merged = machine.merge_documents(docs, list(args.reports))
    except machine.ReportFileError as err:
        return print_error(console, err)
    sweep = merged.sweep
    console.print(
        f"{merged.count} shards of seed {sweep['seed']}, {sweep['examples']} cases per layer and dtype "
        f"({sweep['candidate']} vs {sweep['reference']})",
        highlight=False,
    )
    print_reports(console, merged.reports, f"{sweep['candidate']} vs Keras (merged)", seeds=True)
    ok = merged.ok
    console.print("[green]All cases agree with Keras.[/green]" if ok else "[red]Mismatch: see above.[/red]")
    seconds = sum(float(d.get("seconds") or 0.0) for d in merged.documents)
    return write_reports(console, args, "verify", merged.reports, 0 if ok else 1, seconds, merged.units, sweep)


def run_mutants(args, console) -> int:
    """``scratch-rnn verify --mutants``: the kill table; 0 if every mutant is killed, 1 if any survives."""
    dtypes = DTYPES[args.dtype]
    seed = mutants.DEFAULT_SEED if args.seed is None else args.seed  # a fixed table unless asked: see kill_table
    reference = args.reference or "keras"  # the gallery's bugs are bugs against Keras 3 unless asked
    total = len(mutants.mutants(args.layer, reference, args.port)) * len(dtypes)
    rows: list[mutants.Kill] = []
    start = time.perf_counter()
    try:
        with progress_bars(console) as progress:
            task = progress.add_task("mutants", total=total)
            for dtype in dtypes:
                if not console.is_terminal:  # no progress bar: a line per dtype as it starts, for CI logs
                    console.print(
                        f"{total // len(dtypes)} mutants, {dtype}: up to {args.examples} cases each ...",
                        highlight=False,
                    )
                rows += mutants.kill_table(
                    args.examples,
                    seed,
                    dtype,
                    args.layer,
                    on_row=lambda _row: progress.advance(task),
                    reference=reference,
                    port=args.port,
                    precision=lane_precision(args.precision, dtype),
                )
    except ValueError as err:  # an argument verify refuses
        return refuse("verify", str(err))
    seconds = time.perf_counter() - start
    print_kill_table(
        console,
        rows,
        f"Planted bugs vs the harness ({reference}, seed {seed}, up to {args.examples} cases each"
        + (f", float32 at --precision {args.precision})" if args.precision != "float32" else ")"),
    )
    survivors = [r for r in rows if not r.killed and not r.not_run]
    not_run = [r for r in rows if r.not_run]
    if not survivors and not not_run:
        console.print(f"[green]All {len(rows)} mutants killed[/green] in {seconds:.0f} s.")
        return 0
    if not survivors:  # asked for (--port), but a package they need is missing
        console.print(f"[red]{len(not_run)} of {len(rows)} mutants not run[/red]: {not_run[0].not_run}.")
        missing = ImportError(name=not_run[0].mutant.missing()[0])
        return fail_missing_extra(f"verify --mutants --port {args.port}", "ports", missing)
    console.print(
        f"[red]{len(survivors)} of {len(rows)} mutants survived[/red] ({seconds:.0f} s); reproduce with --seed {seed}."
    )
    return 1


def lane_precision(precision: str, dtype: str) -> str:
    """``--precision`` for a sweep of ``dtype``: as given for float32, float32 (unchanged) for the float64 lane."""
    return golden.lane_precision(precision, dtype)


def port_candidates(port: str) -> dict:
    """``{"layer": ..., "core_layer": ..., "model": ..., "model_float64": ...}``: the candidates of the converter
    ``port`` (:data:`PORTS`; the model's float64 one for the float64 lane, since a model fed only token ids cannot
    tell the lane); an ImportError naming the package when one it needs is missing."""
    import importlib.util

    module, requires = PORTS[port]
    for package in requires:
        if importlib.util.find_spec(package) is None:
            raise ImportError(f"No module named {package!r}", name=package)
    return {name: load_candidate(f"{module}:{name}") for name in ("layer", "core_layer", "model", "model_float64")}


def run_record(args) -> int:
    """``scratch-rnn record``: 0 when recorded and the engine agrees with Keras on every case, 1 if not, 2 on errors."""
    try:
        console = make_console()
    except ImportError as err:
        return fail_missing_extra("record", "verify", err)
    if args.model is not None and args.layer:
        return refuse("record", "--model records a whole model: not with --layer")
    try:  # before Keras takes seconds to import: a refused --out or --model is refused at once
        golden.check_output_directory(args.out, args.force)
        if args.model is not None:
            golden.check_model_file(args.model)
    except (OSError, ValueError) as err:
        return print_error(console, err)
    try:
        from scratch_rnn.testing.runners import import_keras

        keras = import_keras("keras")
    except ImportError as err:
        return fail_missing_extra("record", "verify", err)
    console.print(f"Recording Keras {keras.__version__} on TensorFlow {sys.modules['tensorflow'].__version__}")
    counts, disagreements = {}, []

    def on_case(recorded, result):
        key = (recorded.case.layer, recorded.case.dtype.name) if args.model is None else (args.model, recorded.dtype)
        counts[key] = counts.get(key, 0) + 1
        if not result.ok:
            disagreements.append(f"{recorded.id}: {result.message()}")

    sweep = dict(examples=args.examples, seed=args.seed, dtypes=DTYPES[args.dtype], on_case=on_case, force=args.force)
    try:
        with console.status("recording...", spinner="dots") if console.is_terminal else nullcontext():
            if args.model is None:
                manifest = golden.record(args.out, layers=selected_layers(args.layer), **sweep)
            else:
                manifest = golden.record_model(args.model, args.out, **sweep)
    except ImportError as err:
        return fail_missing_extra("record", "verify", err)
    except (OSError, ValueError, RuntimeError) as err:
        return print_error(console, err)
    print_record_table(console, counts, manifest, Path(args.out))
    for message in disagreements:
        console.print("[red]The engine disagrees with Keras[/red] (recorded anyway):", markup=True)
        console.print(message, markup=False, highlight=False)
    return 0 if not disagreements else 1


def run_check(args) -> int:
    """``scratch-rnn check``: 0 when every case agrees, 1 on a mismatch, 2 for an unusable recording or candidate."""
    start = time.perf_counter()
    try:
        console = make_console()
    except ImportError as err:
        return fail_missing_extra("check", "verify", err)
    try:
        candidate = None if args.candidate is None else load_candidate(args.candidate)
    except CandidateError as err:
        return print_error(console, err)
    layers = selected_layers(args.layer)
    if args.model is not None and args.layer:
        return refuse("check", "--model checks a whole model's recording: not with --layer")
    if args.model is None and candidate is not None and len(layers) != 1:
        return refuse("check", "a --candidate implements one layer; name it with --layer")
    try:
        if args.model is None:
            result = golden.check(
                args.path, candidate, layers=layers, ids=args.case, timeout=args.timeout, precision=args.precision
            )
        else:
            result = golden.check_model(
                args.path, args.model, candidate, ids=args.case, timeout=args.timeout, precision=args.precision
            )
    except ImportError as err:  # h5py, to read the model file
        return fail_missing_extra("check", "h5", err)
    except (golden.GoldenFileError, ValueError, OSError) as err:  # a hash mismatch is a ValueError too
        return print_error(console, err)
    w = result.recorded_with
    console.print(
        f"Recorded with Keras {w.get('keras', '?')} on TensorFlow {w.get('tensorflow', '?')} "
        f"(scratch_rnn {w.get('scratch_rnn', '?')}); checking {result.candidate}",
        highlight=False,
    )
    print_reports(console, result.reports, f"{result.candidate} vs recorded Keras ({result.path})")
    console.print(
        "[green]All cases agree with the recording.[/green]" if result.ok else "[red]Mismatch: see above.[/red]"
    )
    recording = {"recording": str(result.path), "recorded_with": result.recorded_with}
    seconds = time.perf_counter() - start
    return write_reports(console, args, "check", result.reports, 0 if result.ok else 1, seconds, sweep=recording)


def run_bench(args) -> int:
    """``scratch-rnn bench``: 0 on success, 1 when the candidates disagree, 2 on a missing dependency."""
    try:
        console = make_console()
        with progress_bars(console) as progress:
            task = progress.add_task("preparing and checking outputs", total=None)
            result = bench.benchmark(
                args.layers,
                args.shapes,
                args.repeats,
                args.threads,
                args.against,
                args.dtype,
                args.sample_seconds,
                args.settle_seconds,
                on_sample=lambda done, total: progress.update(task, description="timing", completed=done, total=total),
            )
    except ImportError as err:
        return fail_missing_extra("bench", "bench", err)
    except bench.Disagreement as err:
        console.print(str(err), style="red", markup=False)
        return 1
    print_bench_table(console, result)
    console.print(bench_summary(result), highlight=False)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        console.print(f"JSON written to {args.json}")
    return 0


def run_verify_model(args, candidate, keras) -> int:
    """``scratch-rnn verify --model PATH``: 0 when every generated input agrees, 1 if not, 2 for an unusable file."""
    from scratch_rnn.testing.model_verify import verify_model

    start = time.perf_counter()
    if args.mutants or args.reference_step or args.layer != "all":
        return refuse("verify", "--model verifies a whole model: not with --mutants, --reference-step or --layer")
    console = make_console()
    console.print(f"Reference: {keras.__name__} {keras.__version__}; model {args.model}", highlight=False)
    reports = []
    try:
        with progress_bars(console) as progress:
            for dtype in DTYPES[args.dtype]:
                task = progress.add_task(f"model {dtype} cases", total=args.examples)
                if not console.is_terminal:
                    console.print(f"model {dtype}: {args.examples} cases ...", highlight=False)
                reports.append(
                    verify_model(
                        args.model,
                        candidate[dtype] if isinstance(candidate, dict) else candidate,  # --port: one per lane
                        max_examples=args.examples,
                        seed=args.seed,
                        dtype=dtype,
                        reference=args.reference,
                        on_example=lambda _result, task=task: progress.advance(task),
                        timeout=args.timeout,
                        precision=lane_precision(args.precision, dtype),
                    )
                )
    except (ValueError, OSError) as err:  # an unusable file, or an argument verify_model refuses
        return refuse("verify", str(err))
    print_reports(console, reports, f"{reports[0].candidate} vs Keras ({args.model})", seeds=True)
    ok = all(r.ok for r in reports)
    console.print("[green]All cases agree with Keras.[/green]" if ok else "[red]Mismatch: see above.[/red]")
    model = {"model": args.model, "seeds": [r.seed for r in reports], "examples": args.examples}
    seconds = time.perf_counter() - start
    return write_reports(console, args, "verify --model", reports, 0 if ok else 1, seconds, sweep=model)


def load_model_or_refuse(command: str, path: str):
    """``(model, None)`` from :func:`scratch_rnn.saving.load_model`, or ``(None, exit status)`` after saying why."""
    try:
        from scratch_rnn.saving import load_model

        return load_model(path), None
    except ImportError as err:
        return None, fail_missing_extra(command, "h5", err)
    except (ValueError, OSError) as err:
        return None, refuse(command, str(err))


def run_inspect(args) -> int:
    """``scratch-rnn inspect MODEL``: the model's summary, as Keras prints it; 2 for an unusable file."""
    model, status = load_model_or_refuse("inspect", args.model)
    if model is None:
        return status
    model.summary(print_fn=print)
    return 0


def run_predict(args) -> int:
    """``scratch-rnn predict MODEL INPUT.npy ... --out OUT``: 0 when written, 2 for unusable files or arguments."""
    import numpy as np

    model, status = load_model_or_refuse("predict", args.model)
    if model is None:
        return status
    inputs = []
    for path in args.inputs:
        try:
            inputs.append(np.load(path, allow_pickle=False))  # a .npy holding objects is refused, never unpickled
        except (OSError, ValueError) as err:
            return refuse("predict", f"cannot read input {path!r}: {err}")
    try:
        outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], batch_size=args.batch_size)
    except ValueError as err:
        return refuse("predict", str(err))
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    out = Path(args.out)
    if len(outputs) == 1 and out.suffix == ".npy":
        np.save(out, outputs[0])
    elif out.suffix == ".npz":
        np.savez(out, **{f"output_{i}": o for i, o in enumerate(outputs)})
    else:
        return refuse(
            "predict",
            f"--out must end in .npy (one output) or .npz (any), got {args.out!r} for {len(outputs)} output(s)",
        )
    print(f"{len(outputs)} output(s) {[o.shape for o in outputs]} written to {out}")
    return 0


def run_export(args) -> int:
    """``scratch-rnn export MODEL --out OUT.onnx``: 0 when written, 2 for an unusable file, a model ONNX cannot
    express (refused by name) or a missing extra."""
    try:
        from scratch_rnn.ports.to_onnx import DEFAULT_OPSET, to_onnx
        from scratch_rnn.saving import load_model

        model = load_model(args.model, dtype=args.dtype)
        opset = DEFAULT_OPSET if args.opset is None else args.opset
        proto = to_onnx(model, args.out, opset=opset, recurrent=args.recurrent)
    except ImportError as err:
        return fail_missing_extra("export", "ports", err)
    except ValueError as err:
        return refuse("export", f"{args.model}: {err}" if args.model not in str(err) else str(err))
    except OSError as err:
        return refuse("export", f"cannot export {args.model!r} to {args.out!r}: {err}")
    graph = proto.graph
    print(
        f"{args.model} -> {args.out}: opset {opset}, {len(graph.node)} nodes, inputs "
        f"{[i.name for i in graph.input]}, outputs {[o.name for o in graph.output]}"
    )
    return 0


def run_convert(args) -> int:
    """``scratch-rnn convert MODEL --out OUT.keras``: the model read by :func:`scratch_rnn.load_model` and written by
    ``model.save`` (docs/saving.md); 0 when written, 2 for an unusable file or one that cannot be written."""
    model, status = load_model_or_refuse("convert", args.model)
    if model is None:
        return status
    try:
        model.save(args.out)
    except (ValueError, OSError) as err:
        return refuse("convert", f"cannot write {args.model!r} to {args.out!r}: {err}")
    print(f"{args.model} written to {args.out} (Keras 3, {model.count_params()} parameters)")
    return 0


COMMANDS = {
    "export": run_export,
    "convert": run_convert,
    "verify": run_verify,
    "record": run_record,
    "check": run_check,
    "bench": run_bench,
    "inspect": run_inspect,
    "predict": run_predict,
    "merge": run_merge,
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


# --- the tables -------------------------------------------------------------------------


def print_reports(console, reports, title: str, seeds: bool = False) -> None:
    """Print the :class:`~scratch_rnn.testing.check.Report` list as one table (a row per layer and dtype),
    then every failure."""
    from rich.table import Table

    table = Table(title=title)
    # "weak": compared cases whose tolerance exceeds WEAK of an output's scale (loose checks);
    # "max rel err" is normwise, max |candidate - Keras| / max |Keras| per tensor; "max err/tol" is the
    # margin, the worst |candidate - Keras| / tolerance over all elements, which must stay <= 1; "err/tol p50"
    # and "p99" are the cases' margins' percentiles (how close to the tolerance a typical case comes). A
    # dtype "float32 @tf32" was checked under --precision tf32.
    columns = [
        "layer", "dtype", "cases", "skipped", "weak", "max |err|", "max rel err", "err/tol p50", "err/tol p99",
        "max err/tol", "failures",
    ]  # fmt: skip
    for column in columns + ["seed"] * seeds:
        table.add_column(column, justify="right" if column not in ("layer", "dtype") else "left")
    for r in reports:
        table.add_row(
            r.layer,
            r.dtype if r.precision == "float32" else f"{r.dtype} @{r.precision}",
            str(r.examples),
            str(r.skipped),
            str(r.weak),
            f"{r.max_abs_error:.3g}",
            f"{r.max_rel_error:.3g}",
            f"{r.margin_percentile(50):.3g}",
            f"{r.margin_percentile(99):.3g}",
            f"{r.max_margin:.3g}",
            f"[red]{len(r.failures)}[/red]" if r.failures else "0",
            *[str(r.seed)] * seeds,
        )
    console.print(table)
    for r in reports:
        for failure in r.failures:
            console.print(f"[red]FAIL[/red] {r.layer} {r.dtype}:", markup=True)
            console.print(str(failure), markup=False, highlight=False)


def print_kill_table(console, rows, title: str) -> None:
    """Print the :class:`~scratch_rnn.testing.mutants.Kill` rows, then every survivor with its description."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for column in ("mutant", "layer", "dtype", "killed", "cases to kill", "first mismatch"):
        table.add_column(
            column, justify="right" if column == "cases to kill" else "left", no_wrap=column != "first mismatch"
        )
    for r in rows:
        table.add_row(
            f"{r.mutant.port}/{r.mutant.name}" if r.mutant.port else r.mutant.name,
            r.mutant.layer,
            r.dtype,
            ("yes (raised)" if r.raised else "yes") if r.killed else f"[red]{r.not_run or 'SURVIVED'}[/red]",
            str(r.cases) if r.killed else f"> {r.examples}",
            escape(short_mismatch(r.detail)) if r.killed else "",
        )
    console.print(table)
    for r in rows:
        if not r.killed and not r.not_run:
            console.print(f"[red]SURVIVED[/red] {r.mutant.id} ({r.dtype}): {escape(r.mutant.description)}")


def short_mismatch(detail: str, limit: int = 80) -> str:
    """A comparison's first line in short: ``output: 3/12 off, |error| 0.4 > tol 2e-07``;
    other lines cut to ``limit``."""
    counts = re.match(r"(.+?): (\d+) of (\d+) elements differ beyond tolerance", detail)
    worst = re.search(r"\|error\| (\S+) > tol (\S+?)[ ,(]", detail)
    if counts and worst:
        return f"{counts[1]}: {counts[2]}/{counts[3]} off, |error| {worst[1]} > tol {worst[2]}"
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"


def print_record_table(console, counts: dict, manifest: dict, out: Path) -> None:
    """The cases recorded per layer and dtype, and the size of the two files."""
    from rich.table import Table

    table = Table(title=f"Recorded to {out}")
    for column in ("layer", "dtype", "cases"):
        table.add_column(column, justify="right" if column == "cases" else "left")
    for (layer, dtype), n in counts.items():
        table.add_row(layer, dtype, str(n))
    console.print(table)
    sizes = ", ".join(
        f"{name} {(out / name).stat().st_size / 1024:.0f} KB" for name in (golden.MANIFEST, golden.ARRAYS)
    )
    console.print(f"{len(manifest['cases'])} cases: {sizes}.")


def print_bench_table(console, result: dict) -> None:
    """:func:`scratch_rnn.bench.benchmark`'s medians, ratios and shares of the GEMM roof, a row per configuration."""
    from rich.table import Table

    names = [n for n in bench.AGAINST if any(n in e["median_seconds"] for e in result["results"])]
    title = (
        f"Inference time (ms), {result['dtype']}, return_sequences=True, {result['threads']} thread(s), "
        f"medians of {result['repeats']} interleaved samples"
    )
    t = Table(title=title)
    t.add_column("layer")
    t.add_column("B, T, F, U")
    t.add_column("scratch", justify="right")
    headings = {"torch": "torch", "keras_eager": "Keras eager", "keras_predict": "Keras predict"}
    headings["scratch_split"] = "split"  # scratch, its batch split across the threads
    headings["scratch_numba"] = "compiled"  # scratch on the compiled loop, forced
    headings["scratch_numpy"] = "NumPy only"  # scratch without any extra: NumPy kernels, NumPy's BLAS
    for name in names:
        t.add_column(headings[name], justify="right")
    if "torch" in names:
        t.add_column("scratch/torch", justify="right")
    forced = [n for n in ("scratch_numba", "scratch_numpy") if n in names and "torch" in names]
    for name in forced:
        t.add_column(f"{headings[name]}/torch", justify="right")
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
        row += [f"{m[name] / m['torch']:.2f}" if m.get(name) else "-" for name in forced]
        if "keras_eager" in names:
            row.append(f"{1 / e['ratios']['scratch/keras_eager']:.0f}x")
        row += [f"{e['gflops']:.1f}", f"{e['roof_fractions']['scratch']:.0%}"]
        if "torch" in names:
            row.append(f"{e['roof_fractions']['torch']:.0%}")
        t.add_row(*row)
    console.print(t)


def bench_summary(result: dict) -> str:
    """The roof, the machine, the versions and the load, under the bench table."""
    m = result["machine"]
    blas = ", ".join(
        f"{b['internal_api']} {b['version']} ({b['architecture']}, {b['num_threads']} threads)" for b in m["blas"]
    )
    lines = [
        f"GEMM roof: {result['gemm']['gflops']:.0f} GF/s "
        f"({result['dtype']} {result['gemm']['size']}^3 matmul, median).",
        f"Machine: {m['cpu']}, {m['cores']} cores; BLAS: {blas}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        f"scratch: SCRATCH_RNN_BACKEND={result.get('backend', 'auto')} (auto: the compiled loop where it measured"
        " faster, when numba is installed; numpy: the NumPy kernels; numba: the compiled loop);"
        f" SCRATCH_RNN_BLAS={result.get('products', 'numpy')} (auto: MKL's packed products from 2 Mflop a step,"
        " when the mkl extra is installed; numpy: NumPy's BLAS).",
        f"Load average at start / end: {_load(result['load_average_start'])} / {_load(result['load_average_end'])}"
        " (a shared machine: high load inflates every column).",
    ]
    if m["openblas_env"]:
        lines.append(f"Note: {m['openblas_env']} is set; unset both for benchmarking (see --help).")
    return "\n".join(lines)


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def _load(values) -> str:
    return "?" if values is None else " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
