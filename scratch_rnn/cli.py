"""``scratch-rnn``: the command line.

``scratch-rnn verify`` runs the Hypothesis sweep of the scratch engine (or of a
``--candidate``) against the installed Keras and prints a table (``--mutants``:
the planted-bug gallery and its kill table instead); ``record`` and
``check`` write and check golden vectors. The exit status is 0 when every case
agreed, 1 on any mismatch, 2 on bad arguments or a missing harness dependency.
"""

from __future__ import annotations

import argparse
import sys

from scratch_rnn import bench

LAYERS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")
REFERENCES = ("keras", "tf_keras")
DTYPES = {"float32": ["float32"], "float64": ["float64"], "both": ["float32", "float64"]}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratch-rnn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="prove the engine equals Keras on generated cases")
    verify.add_argument(
        "--examples", type=_positive_int, default=100, metavar="N", help="cases per layer and dtype (default 100)"
    )
    verify.add_argument(
        "--seed", type=int, default=None, metavar="S", help="Hypothesis seed (default: random, printed)"
    )
    verify.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="both",
        help="float32 (noise-floor tolerance), float64 (near machine precision) or both (default)",
    )
    verify.add_argument("--layer", choices=[*LAYERS, "all"], default="all", help="layer to sweep (default all)")
    verify.add_argument(
        "--reference",
        choices=REFERENCES,
        default=None,
        help="keras (Keras 3) or tf_keras (Keras 2); default $SCRATCH_RNN_REFERENCE or keras",
    )
    verify.add_argument(
        "--candidate",
        metavar="MODULE:FUNCTION",
        default=None,
        help="verify candidate(config, weights, x, mask, initial_state) instead of the engine; "
        "a candidate implements one layer, so pair it with --layer",
    )
    bench.add_parser(sub)
    try:
        from scratch_rnn.testing import golden
        from scratch_rnn.testing.mutants import add_mutants_option
    except ImportError:  # no harness extra: record, check and --mutants are unavailable
        return parser
    add_mutants_option(verify)
    golden.add_record_parser(sub)
    golden.add_check_parser(sub)
    return parser


def run_verify(args) -> int:
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from scratch_rnn.testing.candidates import CandidateError, load_candidate
        from scratch_rnn.testing.check import print_reports
        from scratch_rnn.testing.runners import import_keras
        from scratch_rnn.testing.verify import verify

        keras = import_keras(args.reference)
    except ImportError as err:
        extra = "keras2" if args.reference == "tf_keras" else "verify"
        print(
            f"scratch-rnn verify needs the harness extra: pip install 'scratch-rnn[{extra}]' ({err})", file=sys.stderr
        )
        return 2
    if getattr(args, "mutants", False) and args.candidate is not None:
        print("scratch-rnn verify: --mutants runs the planted-bug gallery, not a --candidate", file=sys.stderr)
        return 2
    try:
        candidate = None if args.candidate is None else load_candidate(args.candidate)
    except CandidateError as err:
        print(f"scratch-rnn verify: {err}", file=sys.stderr)
        return 2
    if candidate is not None and args.layer == "all":
        print("scratch-rnn verify: a --candidate implements one layer; name it with --layer", file=sys.stderr)
        return 2
    console = Console()
    if not console.is_terminal:  # logs and pipes: a fixed width wide enough for the table, no live bars
        console = Console(width=120)
    console.print(
        f"Reference: {keras.__name__} {keras.__version__} on TensorFlow {__import__('tensorflow').__version__}"
    )
    if getattr(args, "mutants", False):
        from scratch_rnn.testing.mutants import run_mutants

        return run_mutants(args, console)
    reports = []
    layers = LAYERS if args.layer == "all" else [args.layer]
    for layer in layers:
        for dtype in DTYPES[args.dtype]:
            with Progress(
                TextColumn(f"{layer} {dtype}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("cases"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            ) as progress:
                task = progress.add_task("verify", total=args.examples)
                reports.append(
                    verify(
                        candidate,
                        layer=layer,
                        max_examples=args.examples,
                        seed=args.seed,
                        dtype=dtype,
                        reference=args.reference,
                        on_example=lambda _result, task=task: progress.advance(task),
                    )
                )
    print_reports(console, reports, "scratch_rnn vs Keras", seeds=True)
    ok = all(r.ok for r in reports)
    console.print("[green]All cases agree with Keras.[/green]" if ok else "[red]Mismatch: see above.[/red]")
    return 0 if ok else 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "verify":
        return run_verify(args)
    if args.command == "bench":
        return bench.run(args)
    if args.command in ("record", "check"):
        from scratch_rnn.testing import golden

        return golden.run_record(args) if args.command == "record" else golden.run_check(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
