"""The equivalence sweep: Hypothesis-generated cases, each run on real Keras and on a candidate.

A candidate is the scratch engine (``candidate=None``) or any callable
``candidate(config, weights, x, mask=None, initial_state=None)`` taking the
Keras layer's ``get_config()`` dict and ``get_weights()`` list (Keras layout)
and returning what the Keras layer call returns. For the non-recurrent layers
(:data:`~scratch_rnn.testing.case.CORE_LAYERS`) it is
``candidate(config, weights, inputs, mask=None, **call_options)``: ``inputs`` one
array, or a list of arrays for the multi-input layers (with ``mask`` a list, one
mask or None per input), and ``call_options`` Attention's ``use_causal_mask`` and
``return_attention_scores``.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import seed as hypothesis_seed

from scratch_rnn.testing.case import CORE_LAYERS
from scratch_rnn.testing.check import (  # noqa: F401  (re-exported)
    CaseResult,
    Failure,
    Report,
    check_against,
    check_case,
    check_layer_case,
    check_timeout,
    float64_config,
    keras_outputs,
)
from scratch_rnn.testing.hypothesis_internals import seed_only, shrink_time_limit
from scratch_rnn.testing.runners import default_reference, import_keras
from scratch_rnn.testing.strategies import LAYERS, cases, check_fixed
from scratch_rnn.testing.tolerance import check_precision

#: The most cases one sweep may ask for: a typo such as ``--examples 1000000000000`` is refused.
MAX_EXAMPLES = 1_000_000


class CaseMismatch(AssertionError):
    pass


class _CandidateHung(BaseException):
    """A candidate did not return within the timeout: leave the Hypothesis run at once.

    A ``BaseException`` that is not an ``Exception``, ``SystemExit`` or ``GeneratorExit``, so Hypothesis
    does not take it for a failure to shrink (which would call the hung candidate again), and lets it out.
    """

    def __init__(self, result: CaseResult):
        super().__init__(result.error)
        self.result = result


def verify(
    candidate=None,
    layer: str = "SimpleRNN",
    max_examples: int = 100,
    seed: int | None = None,
    dtype: str = "float32",
    reference: str | None = None,
    on_example=None,
    shrink_seconds: float = 60.0,
    fixed: dict | None = None,
    with_mask: bool = True,
    with_initial_state: bool = True,
    fast: bool = True,
    timeout: float | None = 60.0,
    precision: str = "float32",
    block: int = 0,
) -> Report:
    """Check ``candidate`` (default: the scratch engine) against Keras on ``max_examples`` generated cases.

    Returns a :class:`Report`; a mismatch is shrunk by Hypothesis to a minimal
    case and reported with the seed and Hypothesis blob that reproduce it.
    ``on_example(result)`` is called after each case (progress bars).
    Each case calls Keras (tens of milliseconds), so shrinking a failure is
    capped at ``shrink_seconds`` (Hypothesis's own cap is five minutes);
    ``shrink_seconds=0`` reports the first failing case as generated.
    ``fixed``, ``with_mask`` and ``with_initial_state`` narrow the cases to what a
    port supports (see :func:`scratch_rnn.testing.strategies.cases`).
    ``reference`` is ``"keras"`` (Keras 3) or ``"tf_keras"`` (Keras 2), default
    ``$SCRATCH_RNN_REFERENCE`` or ``"keras"``; against Keras 2 the sweep leaves out
    the known semantic differences (:data:`scratch_rnn.testing.strategies.KNOWN_DIFFERENCES`).
    ``fast=False`` sweeps the engine's readable ``project``/``step`` instead of its fast kernels
    (``candidate=None`` only).

    A candidate runs in a worker thread: whatever it raises (``SystemExit`` and ``KeyboardInterrupt``
    included) is a failed case, and a case it has not finished after ``timeout`` seconds (None: no
    limit) is a failure that ends the sweep there, unshrunk, since a hung candidate is not called
    again. A Ctrl-C of the harness still stops it. The engine (``candidate=None``) runs inline.

    ``precision`` (``"float32"``, ``"tf32"``, ``"float16"`` or ``"bfloat16"``; float32 cases only) is the
    precision of the candidate's products the tolerances allow for (docs/precision.md): a GPU port with
    TF32 on passes ``"tf32"``, not ``"float32"``. A failing float32 case says the least precision under
    which it would agree, or that no standard precision explains it.

    ``block`` (0, the default: the whole sweep) is for a sweep split into blocks of cases run apart
    (``scratch-rnn verify --workers``, ``--shard``; :mod:`scratch_rnn.testing.workers`): block ``b > 0``
    draws its cases from its own seed :func:`block_seed` ``(seed, b)``, and leaves out Hypothesis's simplest
    case, which every seed generates first and block 0 already checked. The report keeps ``seed``.
    """
    if layer in CORE_LAYERS:
        return verify_layer(
            candidate, layer, max_examples, seed, dtype, reference, on_example, shrink_seconds, fixed, with_mask,
            with_initial_state, fast, timeout, precision,
            block=block,
        )  # fmt: skip
    if layer not in LAYERS:
        raise ValueError(f"Argument `layer` must be one of {[*LAYERS, *CORE_LAYERS]}, got {layer!r}.")
    timeout = check_sweep_arguments(candidate, max_examples, seed, dtype, timeout, precision)
    check_block(block, seed)
    if candidate is not None and not fast:
        raise ValueError("Argument `fast=False` chooses the engine's readable step; it does not apply to a candidate.")
    fixed = check_fixed(layer, fixed, for_candidate=candidate is not None, reference=reference or default_reference())
    reference = default_reference() if reference is None else reference
    keras = import_keras(reference)
    seed = random.getrandbits(32) if seed is None else int(seed)
    if candidate is None:
        name = "scratch_rnn engine" if fast else "scratch_rnn engine (reference step)"
    else:
        name = getattr(candidate, "__qualname__", repr(candidate))
    report = Report(
        layer, np.dtype(dtype).name, name, seed, reference=f"{reference} {keras.__version__}", precision=precision
    )

    strategy = cases(
        layer,
        dtype,
        allow_stateful=candidate is None,
        fixed=fixed,
        with_mask=with_mask,
        with_initial_state=with_initial_state,
        reference=reference,
    )
    return sweep(
        strategy,
        lambda case: check_case(case, keras, candidate, fast, timeout, precision),
        report,
        seed,
        max_examples,
        shrink_seconds,
        on_example,
        block,
    )


def verify_layer(
    candidate, layer, max_examples, seed, dtype, reference, on_example, shrink_seconds, fixed, with_mask,
    with_initial_state, fast, timeout, precision="float32",
    block=0,
) -> Report:  # fmt: skip
    """:func:`verify` for a non-recurrent layer (:data:`~scratch_rnn.testing.case.CORE_LAYERS`): cases from
    :mod:`scratch_rnn.testing.layer_strategies`, each checked by
    :func:`~scratch_rnn.testing.check.check_layer_case`. Keras 3 is the only reference (Keras 2's
    merge, attention and normalization layers differ in masks and options); ``fixed``,
    ``with_initial_state=False`` and ``fast=False`` are the recurrent sweep's and are refused here."""
    from scratch_rnn.testing.layer_strategies import layer_cases

    timeout = check_sweep_arguments(candidate, max_examples, seed, dtype, timeout, precision)
    check_block(block, seed)
    if fixed:
        raise ValueError(f"Argument `fixed` pins recurrent options; {layer} sweeps draw every option of theirs.")
    if not with_initial_state:
        raise ValueError(f"Argument `with_initial_state` applies to the recurrent layers; {layer} takes none.")
    if not fast:
        raise ValueError(f"Argument `fast=False` chooses a recurrent layer's readable step; {layer} has none.")
    reference = default_reference() if reference is None else reference
    if reference != "keras":
        raise ValueError(f"Argument `reference`: {layer} is swept against Keras 3 only ('keras'), got {reference!r}.")
    keras = import_keras(reference)
    seed = random.getrandbits(32) if seed is None else int(seed)
    name = "scratch_rnn engine" if candidate is None else getattr(candidate, "__qualname__", repr(candidate))
    report = Report(
        layer, np.dtype(dtype).name, name, seed, reference=f"{reference} {keras.__version__}", precision=precision
    )
    return sweep(
        layer_cases(layer, dtype, with_mask),
        lambda case: check_layer_case(case, keras, candidate, timeout, precision),
        report,
        seed,
        max_examples,
        shrink_seconds,
        on_example,
        block,
    )


def check_block(block, seed) -> None:
    """``block`` checked: an int >= 0, and a block after the first only of a sweep with a ``seed``."""
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 0:
        raise ValueError(f"Argument `block` must be an int >= 0, got {block!r}.")
    if block and seed is None:
        raise ValueError("Argument `block`: a block of a sweep is drawn from the sweep's seed; pass `seed`.")


def block_seed(seed: int, block: int) -> int:
    """The Hypothesis seed of block ``block`` of a sweep drawn from ``seed``: ``seed`` itself for block 0 (a
    sweep of one block is the sweep it always was), else 32 bits of SHA-256 of both, so every block has a
    seed of its own and two sweeps' blocks do not share one by arithmetic (``seed + block`` would)."""
    if block == 0:
        return int(seed)
    digest = hashlib.sha256(f"scratch-rnn sweep {int(seed)} block {int(block)}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def check_sweep_arguments(candidate, max_examples, seed, dtype, timeout, precision="float32"):
    """The arguments every sweep takes, checked before anything runs; returns the checked ``timeout``."""
    if dtype not in ("float32", "float64", np.float32, np.float64, np.dtype("float32"), np.dtype("float64")):
        raise ValueError(f"Argument `dtype` must be 'float32' or 'float64', got {dtype!r}.")
    if candidate is not None and not callable(candidate):
        raise ValueError(f"Argument `candidate` must be None (the engine) or a callable, got {candidate!r:.80}.")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or not 1 <= max_examples <= MAX_EXAMPLES:
        raise ValueError(f"Argument `max_examples` must be an int in [1, {MAX_EXAMPLES}], got {max_examples!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"Argument `seed` must be an int or None, got {seed!r}.")
    check_precision(precision, dtype)
    return check_timeout(timeout)


def sweep(
    strategy, check_one, report: Report, seed: int, max_examples: int, shrink_seconds: float, on_example=None,
    block: int = 0,
):  # fmt: skip
    """Run ``check_one(case) -> CaseResult`` on ``max_examples`` cases drawn from ``strategy`` and fill
    ``report``: the first failing case is shrunk (for at most ``shrink_seconds``) and reported with its
    reproducer; a case that timed out ends the run unshrunk. Shared by the layer and the model sweeps.

    Block ``b > 0`` of a sweep (see :func:`verify`) runs from :func:`block_seed` and rejects its first
    draw: with no database and no explicit examples, Hypothesis's first call is always the simplest case
    (its ``zero_data``), the same whatever the seed, so block 0 alone checks it and blocks stay disjoint."""
    failed = []  # the first failing case, once there is one
    calls = []  # one entry per call of the test function (block > 0 rejects the first)
    phases = [p for p in Phase if shrink_seconds > 0 or p not in (Phase.shrink, Phase.explain)]

    @hypothesis_seed(block_seed(seed, block))
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        print_blob=True,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(case=strategy)
    def run(case):
        calls.append(None)
        assume(block == 0 or len(calls) > 1)  # block > 0: the simplest case is block 0's
        result = check_one(case)
        if not failed:  # once a case fails, Hypothesis replays shrunk variants of it: not new cases
            report.record(result)
            if on_example is not None:
                on_example(result)
            if not result.ok and not result.skipped:
                failed.append(result)
        if result.timed_out:
            raise _CandidateHung(result)
        assume(not result.skipped)
        if not result.ok:
            mismatch = CaseMismatch(result.message())
            mismatch.explained_by = result.explained_by  # the reported (shrunk) case's diagnosis
            raise mismatch

    try:
        with shrink_time_limit(shrink_seconds), seed_only():
            run()
    except CaseMismatch as err:
        notes = "\n".join(getattr(err, "__notes__", []))
        reproducer = f"reproduce with {_seed_and_block(seed, block)}\n{notes}"
        report.failures.append(Failure(str(err), reproducer, getattr(err, "explained_by", None)))
    except _CandidateHung as hung:
        first = failed[0]  # the hung case itself, or the failing case whose shrunk variant hung
        stop = "the sweep stopped at this case" if first is hung.result else f"shrinking stopped: {hung.result.error}"
        reproducer = f"reproduce with {_seed_and_block(seed, block)}; unshrunk, {stop}"
        report.failures.append(Failure(first.message(), reproducer, first.explained_by))
    return report


def _seed_and_block(seed: int, block: int) -> str:
    """How a failure's reproducer names where its case came from: the seed, and the block of a split sweep."""
    if block == 0:
        return f"seed={seed} (CLI: --seed {seed})"
    return f"seed={seed}, block={block} (CLI: --seed {seed} with the same --examples: block {block} of that sweep)"
