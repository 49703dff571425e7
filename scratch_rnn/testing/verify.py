"""The equivalence sweep: Hypothesis-generated cases, each run on real Keras and on a candidate.

A candidate is the scratch engine (``candidate=None``) or any callable
``candidate(config, weights, x, mask=None, initial_state=None)`` taking the
Keras layer's ``get_config()`` dict and ``get_weights()`` list (Keras layout)
and returning what the Keras layer call returns.
"""

from __future__ import annotations

import contextlib
import random
import traceback
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import seed as hypothesis_seed

from scratch_rnn.testing import tolerance
from scratch_rnn.testing.compare import TensorComparison, compare_outputs
from scratch_rnn.testing.runners import default_reference, engine_layer, import_keras, keras_layer, run_candidate, run_layer
from scratch_rnn.testing.strategies import Case, cases


@dataclass
class CaseResult:
    case: Case
    comparisons: list[TensorComparison] = field(default_factory=list)
    error: str = ""    # the candidate raised
    skipped: str = ""  # outside the finite range the sweep checks (see check_case)

    @property
    def ok(self) -> bool:
        return not self.error and not self.skipped and all(c.ok for c in self.comparisons)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.comparisons), default=0.0)

    @property
    def margin(self) -> float:
        return max((c.margin for c in self.comparisons), default=0.0)

    def message(self) -> str:
        lines = [f"Mismatch for {self.case.describe()}"]
        if self.error:
            lines.append(f"  the candidate raised: {self.error}")
        lines += [f"  {c}" for c in self.comparisons if not c.ok]
        return "\n".join(lines)


class CaseMismatch(AssertionError):
    pass


@dataclass
class Failure:
    """A (shrunk) failing case: what differed and how to reproduce it."""

    message: str
    reproducer: str

    def __str__(self) -> str:
        return f"{self.message}\n{self.reproducer}"


@dataclass
class Report:
    layer: str
    dtype: str
    candidate: str
    seed: int
    reference: str = ""
    examples: int = 0
    skipped: int = 0
    max_abs_error: float = 0.0
    max_margin: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.examples > 0

    def record(self, result: CaseResult) -> None:
        if result.skipped:
            self.skipped += 1
            return
        self.examples += 1
        if result.ok:  # failing cases are reported as failures, not folded into the worst-case numbers
            self.max_abs_error = max(self.max_abs_error, result.max_abs_error)
            self.max_margin = max(self.max_margin, result.margin)


def check_case(case: Case, keras, candidate=None) -> CaseResult:
    """Run ``case`` on Keras and on the candidate; compare under the case's derived tolerance."""
    return check_against(case, lambda: keras_reference(case, keras), candidate)


def keras_reference(case: Case, keras):
    """``(names, outputs, config)``: what the Keras layer of ``case`` returns, and its ``get_config()``."""
    import tensorflow as tf

    reference = keras_layer(case, keras)
    # Keras 2 takes initial states only as tensors; Keras 3 takes either.
    chunks = [(x, m, None if s is None else [tf.constant(a) for a in s]) for x, m, s in case.chunks()]
    names, expected = run_layer(reference, chunks)
    return names, expected, reference.get_config()


def check_against(case: Case, reference, candidate=None) -> CaseResult:
    """Compare the candidate with ``reference() -> (names, outputs, keras_config)`` under the derived tolerance.

    ``reference`` runs Keras (:func:`check_case`) or returns recorded outputs
    (:mod:`scratch_rnn.testing.golden`); it is called only for a case that is compared.
    A case whose exact (float64) result is not finite, or so large that float
    arithmetic may overflow on the way (beyond ``sqrt(finfo(dtype).max)``), is
    not compared but marked ``skipped``: unbounded activations (linear, relu)
    in LSTM and GRU gates can grow without limit, and there both sides rightly
    give inf or NaN. NaN/Inf propagation is tested separately.
    """
    oracle_config = float64_config(case)

    def run_oracle(weights, chunks, jitter=None):
        layer = engine_layer(case, config=oracle_config, weights=weights)
        if jitter is not None:
            tolerance.jitter_activations(layer, jitter)
        return run_layer(layer, chunks)[1]

    result = CaseResult(case)
    try:
        with np.errstate(invalid="ignore", over="ignore"):
            oracle, tols = tolerance.derive(case, run_oracle)
    except Exception as err:  # the engine itself failed on the case: report it, do not crash the sweep
        result.error = "the float64 oracle (the scratch engine) raised " + "".join(
            traceback.format_exception_only(err)).strip()
        return result
    limit = np.sqrt(np.finfo(case.dtype).max)
    if not all(np.isfinite(o).all() and np.abs(o).max(initial=0) <= limit and np.isfinite(t).all()
               for o, t in zip(oracle, tols)):
        result.skipped = f"exact result not finite or beyond {limit:.3g}"
        return result
    names, expected, config = reference()
    try:
        if candidate is None:
            _, actual = run_layer(engine_layer(case, config=config), case.chunks())
        else:
            _, actual = run_candidate(candidate, config, case)
    except Exception as err:  # a candidate that raises is a reported failure, never a crash
        result.error = "".join(traceback.format_exception_only(err)).strip()
        return result
    result.comparisons = compare_outputs(actual, expected, tols, names)
    return result


def float64_config(case: Case) -> dict:
    """``case.config`` in float64, a wrapped layer's included."""
    config = {**case.config, "dtype": "float64"}
    if "layer" in config:
        config["layer"] = {**config["layer"], "config": {**config["layer"]["config"], "dtype": "float64"}}
    return config


def verify(candidate=None, layer: str = "SimpleRNN", max_examples: int = 100, seed: int | None = None,
           dtype: str = "float32", reference: str | None = None, on_example=None,
           shrink_seconds: float = 60.0, fixed: dict | None = None, with_mask: bool = True,
           with_initial_state: bool = True) -> Report:
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
    """
    if np.dtype(dtype).name not in ("float32", "float64"):
        raise ValueError(f"Argument `dtype` must be 'float32' or 'float64', got {dtype!r}.")
    if not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"Argument `max_examples` must be a positive int, got {max_examples!r}.")
    reference = default_reference() if reference is None else reference
    keras = import_keras(reference)
    seed = random.getrandbits(32) if seed is None else int(seed)
    name = "scratch_rnn engine" if candidate is None else getattr(candidate, "__qualname__", repr(candidate))
    report = Report(layer, np.dtype(dtype).name, name, seed, reference=f"{reference} {keras.__version__}")

    phases = [p for p in Phase if shrink_seconds > 0 or p not in (Phase.shrink, Phase.explain)]

    @hypothesis_seed(seed)
    @settings(max_examples=max_examples, deadline=None, database=None, print_blob=True, phases=phases,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(case=cases(layer, dtype, allow_stateful=candidate is None, fixed=fixed, with_mask=with_mask,
                      with_initial_state=with_initial_state, reference=reference))
    def sweep(case):
        result = check_case(case, keras, candidate)
        report.record(result)
        if on_example is not None:
            on_example(result)
        assume(not result.skipped)
        if not result.ok:
            raise CaseMismatch(result.message())

    try:
        with _shrink_time_limit(shrink_seconds):
            sweep()
    except CaseMismatch as err:
        notes = "\n".join(getattr(err, "__notes__", []))
        reproducer = f"reproduce with seed={seed} (CLI: --seed {seed})\n{notes}"
        report.failures.append(Failure(str(err), reproducer))
    return report


@contextlib.contextmanager
def _shrink_time_limit(seconds: float):
    """Hypothesis has no public setting for how long it shrinks; its engine reads this module constant."""
    from hypothesis.internal.conjecture import engine

    previous = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if previous is None:  # a Hypothesis without the knob: keep its own limit
        yield
        return
    engine.MAX_SHRINKING_SECONDS = seconds
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = previous
