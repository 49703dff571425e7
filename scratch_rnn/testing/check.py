"""Checking one case: the candidate against a reference under the case's derived tolerance.

NumPy only: no Hypothesis, and Keras only when :func:`check_case` is given it, so recorded
golden vectors (:mod:`scratch_rnn.testing.golden`) are checked where neither is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratch_rnn.testing import tolerance
from scratch_rnn.testing.case import Case
from scratch_rnn.testing.compare import TensorComparison, compare_outputs
from scratch_rnn.testing.errors import one_line
from scratch_rnn.testing.runners import (
    call_with_timeout,
    engine_core_layer,
    engine_layer,
    keras_core_layer,
    keras_layer,
    run_candidate,
    run_core,
    run_core_candidate,
    run_keras_core,
    run_layer,
)

#: A compared case is counted as weakly checked when some output's tolerance exceeds this
#: fraction of the output's scale (``max tol / max |Keras|``): ill-conditioned cases (linear or
#: relu recurrences amplifying float32 rounding) where the derived tolerance is rightly loose,
#: and which therefore constrain a candidate little.
WEAK = 0.1


@dataclass
class CaseResult:
    case: Case
    comparisons: list[TensorComparison] = field(default_factory=list)
    error: str = ""  # the candidate raised (or did not return: see timed_out)
    skipped: str = ""  # outside the finite range the sweep checks (see check_case)
    timed_out: bool = False  # the candidate did not return within the timeout; ``error`` says so
    precision: str = "float32"  # the products' precision the tolerance was derived for (tolerance.PRECISIONS)
    explained_by: str | None = None  # a failing case: the least looser precision it agrees under (see diagnose)
    diagnosis: str = ""  # a failing float32 case: that precision, or that no standard precision explains it

    @property
    def ok(self) -> bool:
        return not self.error and not self.skipped and all(c.ok for c in self.comparisons)

    @property
    def max_abs_error(self) -> float:
        """The worst |candidate - reference| over the outputs; inf when nothing could be compared (it raised)."""
        if self.error:
            return np.inf
        return max((c.max_abs_error for c in self.comparisons), default=0.0)

    @property
    def weak(self) -> bool:
        """Compared, but some tensor's tolerance exceeds :data:`WEAK` of its scale: a loose check."""
        return any(c.tol_ratio > WEAK for c in self.comparisons)

    @property
    def max_rel_error(self) -> float:
        if self.error:
            return np.inf
        return max((c.max_rel_error for c in self.comparisons if not np.isnan(c.max_rel_error)), default=0.0)

    @property
    def margin(self) -> float:
        """The worst |error| / tolerance; > 1 when the case failed, inf when a shape or dtype differed or
        nothing could be compared (the candidate raised or did not return)."""
        if self.error:
            return np.inf
        return max((c.margin for c in self.comparisons), default=0.0)

    def message(self) -> str:
        lines = [f"Mismatch for {self.case.describe()}"]
        if self.timed_out:
            lines.append(f"  {self.error}")
        elif self.error:
            lines.append(f"  the candidate raised: {self.error}")
        lines += [f"  {c}" for c in self.comparisons if not c.ok]
        if self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        return "\n".join(lines)


@dataclass
class Failure:
    """A (shrunk) failing case: what differed and how to reproduce it."""

    message: str
    reproducer: str
    #: The least precision the failing case agrees under (:func:`diagnose`); None when none does, or when the
    #: case was not diagnosed (float64, the candidate raised). The message says it in words.
    explained_by: str | None = None

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
    weak: int = 0
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_margin: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    precision: str = "float32"  # the products' precision the tolerances model (tolerance.PRECISIONS)
    margins: list[float] = field(default_factory=list)  # every compared case's margin, in order

    def margin_percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the compared cases' margins, an observed one (no interpolation,
        so an inf margin stays inf); 0 with no case compared."""
        if not self.margins:
            return 0.0
        return float(np.percentile(np.asarray(self.margins, np.float64), q, method="higher"))

    @property
    def ok(self) -> bool:
        return not self.failures and self.examples > 0

    def record(self, result: CaseResult) -> None:
        """Count a compared case and fold it into the worst-case numbers, a failing one included: a failing
        row then shows a margin above 1 (inf for a shape or dtype mismatch, or a candidate that raised).
        :func:`~scratch_rnn.testing.verify.verify` records the cases up to the first failing one, not
        Hypothesis's shrink replays of it."""
        if result.skipped:
            self.skipped += 1
            return
        self.examples += 1
        self.weak += result.weak
        self.max_abs_error = max(self.max_abs_error, result.max_abs_error)
        self.max_rel_error = max(self.max_rel_error, result.max_rel_error)
        self.max_margin = max(self.max_margin, result.margin)
        self.margins.append(result.margin)


def check_timeout(timeout) -> float | None:
    """``timeout``, the seconds a candidate may take on one case, checked: a positive finite number, or None
    (no limit)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, np.integer, np.floating)):
        raise ValueError(f"Argument `timeout` must be a positive number of seconds or None, got {timeout!r:.80}.")
    if not (np.isfinite(timeout) and timeout > 0):
        raise ValueError(f"Argument `timeout` must be a positive number of seconds or None, got {timeout!r}.")
    return float(timeout)


def check_case(
    case: Case, keras, candidate=None, fast: bool = True, timeout: float | None = None, precision: str = "float32"
) -> CaseResult:
    """Run ``case`` on Keras and on the candidate; compare under the case's derived tolerance."""
    return check_against(case, lambda: keras_outputs(case, keras), candidate, fast, timeout, precision)


def keras_outputs(case: Case, keras):
    """``(names, outputs, config)``: what the Keras layer of ``case`` returns, and its ``get_config()``."""
    import tensorflow as tf

    reference = keras_layer(case, keras)
    # Keras 2 takes initial states only as tensors; Keras 3 takes either.
    chunks = [(x, m, None if s is None else [tf.constant(a) for a in s]) for x, m, s in case.chunks()]
    names, expected = run_layer(reference, chunks)
    return names, expected, reference.get_config()


def check_against(
    case: Case, reference, candidate=None, fast: bool = True, timeout: float | None = None, precision: str = "float32"
) -> CaseResult:
    """Compare the candidate with ``reference() -> (names, outputs, keras_config)`` under the derived tolerance.

    ``precision`` names the products' precision the tolerance models (:data:`tolerance.PRECISIONS`); a
    failing float32 case is diagnosed (:func:`diagnose`).

    The candidate is the scratch engine when ``candidate`` is None: its fast kernels, or its
    readable ``project``/``step`` with ``fast=False``, run here. A foreign candidate runs in a
    worker thread (:func:`outputs_or_failed`): whatever it raises,
    ``SystemExit`` and ``KeyboardInterrupt`` included, is the case's ``error``, and one that has
    not returned after ``timeout`` seconds (None: no limit) is a failure with ``timed_out`` set.

    ``reference`` runs Keras (:func:`check_case`) or returns recorded outputs
    (:mod:`scratch_rnn.testing.golden`); it is called only for a case that is compared.
    A case whose exact (float64) result is not finite, or so large that float
    arithmetic may overflow on the way (beyond ``sqrt(finfo(dtype).max)``), is
    not compared but marked ``skipped``: unbounded activations (linear, relu)
    in LSTM and GRU gates can grow without limit, and there both sides rightly
    give inf or NaN. NaN/Inf propagation is tested separately.

    A case can also overflow on the way to a finite result: a Bidirectional half
    beyond the dtype's range before a ``mul`` merge with a tiny other half, an LSTM
    carry that overflows. Keras then gives inf or NaN where the exact result is
    finite. Such a case is skipped only if the engine, run in the case's own dtype,
    overflows there too; a reference that alone is not finite is compared (and fails).
    """
    oracle_config = float64_config(case)

    def run_oracle(weights, chunks, jitter=None):
        # the readable project/step, jittered or not: the fast kernels are what the candidate runs, and an
        # oracle on them would fold a kernel's own error into the tolerance (the jittered runs' distance to it)
        layer = engine_layer(case, config=oracle_config, weights=weights, fast=False)
        if jitter is not None:
            tolerance.jitter_activations(layer, jitter)
        return run_layer(layer, chunks)[1]

    tolerance.check_precision(precision, case.dtype)
    result = CaseResult(case, precision=precision)
    derived = derived_or_skipped(result, lambda: tolerance.derive(case, run_oracle, precision=precision), case.dtype)
    if derived is None:
        return result
    oracle, tols = derived
    names, expected, config = reference()
    if not all(np.isfinite(np.asarray(e)).all() for e in expected):
        with np.errstate(invalid="ignore", over="ignore"):
            _, own = run_layer(engine_layer(case, config=case.config, fast=fast), case.chunks())
        if not all(np.isfinite(o).all() for o in own):
            result.skipped = f"overflows in {case.dtype} on the way to a finite exact result"
            return result
    if candidate is None:
        ran = outputs_or_failed(result, lambda: run_layer(engine_layer(case, config=config, fast=fast), case.chunks()))
    else:
        ran = outputs_or_failed(result, lambda: run_candidate(candidate, config, case), timeout, in_thread=True)
    if ran is not None:
        result.comparisons = compare_outputs(ran[1], expected, tols, names)
        diagnose(
            result, ran[1], expected, names, lambda p: tolerance.derive(case, run_oracle, precision=p)[1], case.dtype
        )
    return result


def diagnose(result: CaseResult, actual, expected, names, tolerances_for, dtype) -> None:
    """Say, for a failing float32 ``result`` whose outputs were compared, which standard precision explains it.

    The precisions looser than ``result.precision`` are tried in :data:`tolerance.PRECISIONS`'s order
    (float32 < tf32 < float16 < bfloat16: TF32 and float16 keep 10 mantissa bits, float16 adds its
    underflow; bfloat16 keeps 7); ``tolerances_for(precision)`` derives that precision's tolerances.
    The first one under which every output agrees is the least precision that explains the difference,
    ``result.explained_by``: a port computing its products at that precision differs this much, a bug
    need not be near it. None agreeing: "no standard precision explains this difference". A case that
    raised is not diagnosed (nothing was compared), nor a float64 one (``dtype``: no reduced precision
    applies); one whose outputs differ in number, shape or dtype is unexplained without deriving anything.
    """
    if result.ok or result.error or np.dtype(dtype) != np.float32:
        return
    if any(c.margin == np.inf and "elements differ" not in c.problem for c in result.comparisons if not c.ok):
        result.diagnosis = "no standard precision explains this difference (the outputs' number, shape or dtype)"
        return
    order = list(tolerance.PRECISIONS)
    margin = result.margin
    for precision in order[order.index(result.precision) + 1 :]:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            comparisons = compare_outputs(actual, expected, tolerances_for(precision), names)
        margin = max((c.margin for c in comparisons), default=0.0)
        if all(c.ok for c in comparisons):
            result.explained_by = precision
            result.diagnosis = (
                f"agrees under precision={precision!r} (margin {margin:.3g}): the difference of a port whose "
                f"products round their operands to {precision}, not necessarily a bug (--precision {precision})"
            )
            return
    result.diagnosis = (
        f"no standard precision explains this difference (margin {margin:.3g} even under precision={order[-1]!r})"
    )


def derived_or_skipped(result: CaseResult, derive, dtype):
    """``derive() -> (oracle, tolerances)`` run for a case; None after marking ``result`` when the float64
    engine raised (an error) or the exact result is not finite or beyond ``sqrt(finfo(dtype).max)``
    (skipped: both sides may rightly overflow there)."""
    try:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            oracle, tols = derive()
    except Exception as err:  # the engine itself failed on the case: report it, do not crash the sweep
        result.error = "the float64 oracle (the scratch engine) raised " + one_line(err)
        return None
    limit = np.sqrt(np.finfo(dtype).max)
    if not all(
        np.isfinite(o).all() and np.abs(o).max(initial=0) <= limit and np.isfinite(t).all()
        for o, t in zip(oracle, tols)
    ):
        result.skipped = f"exact result not finite or beyond {limit:.3g}"
        return None
    return oracle, tols


def outputs_or_failed(result: CaseResult, run, timeout: float | None = None, in_thread: bool = False):
    """``run()``'s outputs, or None after recording on ``result`` what went wrong. The engine runs
    inline (``in_thread=False``: what it raises fails the case); a foreign candidate runs in a worker
    thread (:func:`~scratch_rnn.testing.runners.call_with_timeout`): whatever it raises, ``SystemExit``
    and ``KeyboardInterrupt`` included, fails the case, and one that has not returned after ``timeout``
    seconds fails it with ``timed_out`` set."""
    if not in_thread:
        try:
            return run()
        except Exception as err:  # the engine raising is a reported failure, never a crash
            result.error = one_line(err)
            return None
    kind, value = call_with_timeout(run, timeout)
    if kind == "timeout":
        result.error, result.timed_out = f"the candidate did not return within {value:g} s", True
        return None
    if kind == "error":  # whatever it raised, SystemExit and KeyboardInterrupt included: a failure
        result.error = candidate_error(value)
        return None
    return value


def candidate_error(err: BaseException) -> str:
    """What a candidate raised, on one line; an exit or an interrupt says it came from the candidate."""
    text = one_line(err)
    if isinstance(err, SystemExit):
        return f"{text} (the candidate exited; it must return the layer's outputs instead)"
    if isinstance(err, KeyboardInterrupt):
        return f"{text} (raised inside the candidate, not a Ctrl-C of the harness)"
    return text


def float64_config(case: Case) -> dict:
    """``case.config`` in float64, a wrapped layer's included."""
    config = {**case.config, "dtype": "float64"}
    if "layer" in config:
        config["layer"] = {**config["layer"], "config": {**config["layer"]["config"], "dtype": "float64"}}
    return config


# --- non-recurrent layers ---------------------------------------------------------------------------


def core_dot_length(case) -> int:
    """The longest sum one output element of a non-recurrent layer takes, plus one (a bias): the largest
    non-batch axis of any input, or the largest fan-in of a weight (all its axes but the last: a Conv1D
    kernel's ``kernel_size * channels / groups``)."""
    axes = [size for x in case.input_list() for size in x.shape[1:]]
    fans = [int(np.prod(w.shape[:-1])) for w in case.weights if w.ndim >= 2]
    return 1 + max([*axes, *fans, 1])


def derive_core(case, run_oracle, seed: int = 0, precision: str = "float32"):
    """``(oracle_outputs, tolerances)`` of a :class:`~scratch_rnn.testing.case.LayerCase`: the float64
    engine on the case's exact values and on perturbed copies (:func:`tolerance.derive_from_runs`);
    integer inputs (ids) and masks are left alone."""
    weights = [w.astype(np.float64) for w in case.weights]
    inputs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in case.input_list()]

    def perturb_inputs(jitter, u):
        return [jitter(x, u) if x.dtype.kind == "f" else x for x in inputs]

    return tolerance.derive_from_runs(
        run_oracle, weights, inputs, perturb_inputs, core_dot_length(case), case.dtype, seed, precision
    )


def check_layer_case(
    case, keras, candidate=None, timeout: float | None = None, precision: str = "float32"
) -> CaseResult:
    """Run a non-recurrent ``case`` (a :class:`~scratch_rnn.testing.case.LayerCase`) on Keras and on the
    candidate (default: the engine) and compare under the case's derived tolerance.

    A candidate is ``candidate(config, weights, inputs, mask=None, **call_options)``: Keras's
    ``get_config()``, ``get_weights()``, the input array (a list for the multi-input layers, with a
    list of masks), and call options such as Attention's ``use_causal_mask``; it returns what the
    Keras layer call returns. A case whose exact result is not finite is skipped, as in
    :func:`check_against`.
    """
    oracle_config = {**case.config, "dtype": "float64"}
    masks = case.mask_list()

    def run_oracle(weights, inputs, jitter=None):
        layer = engine_core_layer(case, config=oracle_config, weights=weights)
        if jitter is not None and callable(getattr(layer, "activation", None)):
            activation = layer.activation
            layer.activation = lambda a: jitter(activation(a))  # this instance only: TF's activations' ulps
        feed, mask = (inputs, None if case.mask is None else masks) if case.multi else (inputs[0], masks[0])
        return [np.asarray(o, np.float64) for o in run_core(layer, feed, mask, case.call_options)[1]]

    tolerance.check_precision(precision, case.dtype)
    result = CaseResult(case, precision=precision)
    derived = derived_or_skipped(result, lambda: derive_core(case, run_oracle, precision=precision), case.dtype)
    if derived is None:
        return result
    oracle, tols = derived
    reference = keras_core_layer(case, keras)
    names, expected = run_keras_core(reference, case, keras)
    config = reference.get_config()
    if candidate is None:
        ran = outputs_or_failed(
            result, lambda: run_core(engine_core_layer(case, config=config), case.inputs, case.mask, case.call_options)
        )
    else:
        ran = outputs_or_failed(result, lambda: run_core_candidate(candidate, config, case), timeout, in_thread=True)
    if ran is not None:
        result.comparisons = compare_outputs(ran[1], expected, tols, names)
        diagnose(result, ran[1], expected, names, lambda p: derive_core(case, run_oracle, precision=p)[1], case.dtype)
    return result
