"""Tolerances derived per case from rounding-error analysis, not guessed.

Why this form. Computed in a floating type with unit roundoff ``u``, each
step's dot products of length ``n`` (features + units + 1) equal the exact
ones for weights perturbed by at most about ``n * u`` relative (the standard
backward error of a dot product), and every rounded input or state is off by
at most ``u`` relative. So two correct implementations differ from the exact
result, and from each other, by about what such perturbations do to the
output, which depends on the case: a saturated tanh forgets them, a linear
or relu recurrence with large weights amplifies them step after step.

Activations are rounded too, and libraries differ there by an ulp or two
(TensorFlow's float32 tanh and sigmoid are up to ~1.5 ulp off, NumPy's ~0.5):
harmless in itself, but a GRU's ``1 - z`` with ``z`` near 1 turns one ulp of
``z`` into a large relative error of the output. Weight perturbations cannot
model that (near saturation the activation's slope is ~0), so each activation's
*output* is perturbed as well.

How it is measured. The engine runs in float64 (the oracle, rounding ~1e-16)
on the case's exact values and on ``PERTURBATIONS`` copies whose weights are
scaled by ``1 + n*u*U(-1, 1)``, whose inputs and initial states are scaled
by ``1 + u*U(-1, 1)`` element-wise, and whose every activation output is scaled
by ``1 + ACTIVATION_ULPS*u*U(-1, 1)``. The sensitivity is the largest change any
perturbation makes to each output element. The tolerance is::

    tol = SAFETY * (sensitivity + n * u * row_scale + n * tiny)

where ``row_scale`` is the largest ``|output|`` along the last axis at that
position: a floor for elements whose sampled sensitivity happens to be
near zero; and ``tiny`` is the smallest normal number of the dtype
(1.2e-38 in float32): TensorFlow flushes subnormal results to zero on the
CPU and NumPy does not, so differences at that scale are not errors. Outputs
that must be exact (zeros at masked steps) get a zero tolerance. ``SAFETY``
covers the sampling of only a few perturbations; its value is checked against measured margins (README, "Tolerances").

Reduced precision (``precision=``, docs/precision.md). A GPU port computing "in float32" with TF32,
bfloat16 or float16 products rounds each product's OPERANDS (weights, inputs, states) to the reduced
mantissa, unit roundoff ``u_p``, and accumulates in float32. Its model: each weight is perturbed by
``2*u_p + n*u`` relative (its own rounding; the rounding of the state or input it multiplies, which is
a relative perturbation of the matching weight column; the float32 accumulation), inputs and initial
states by ``u_p``, activations as in float32 (:data:`ACTIVATION_ULPS`, measured: docs/precision.md).
The floor keeps float32's ``n * u * row_scale``, and float16 adds its underflow: an operand below
2^-14 is off by up to 2^-25 absolute, ``n * 2^-25 * operand_scale`` in the output. ``"float32"``
is the model above unchanged, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAFETY = 8.0
PERTURBATIONS = 4
#: Rounding of an activation's output, in units of ``u``: two ulps covers TensorFlow's ~1.5.
ACTIVATION_ULPS = 2.0


@dataclass(frozen=True)
class Precision:
    """How a GEMM's operands are rounded: kept mantissa bits, and whether float16's range applies."""

    name: str
    mantissa_bits: int
    #: Half the spacing of the format's subnormals: an operand's absolute error where it underflows
    #: (0 for the float32-range formats, whose underflow is float32's own, covered by ``tiny``).
    underflow: float = 0.0

    @property
    def u(self) -> float:
        """Unit roundoff of the operands: ``2**-(mantissa_bits + 1)``."""
        return 2.0 ** -(self.mantissa_bits + 1)


#: The precisions ``precision=`` accepts, from the strictest: float32 (today's), then by looser tolerance.
PRECISIONS = {
    "float32": Precision("float32", 23),
    "tf32": Precision("tf32", 10),
    "float16": Precision("float16", 10, underflow=2.0**-25),
    "bfloat16": Precision("bfloat16", 7),
}


def check_precision(precision, dtype="float32") -> str:
    """``precision`` checked: one of :data:`PRECISIONS`; anything but ``"float32"`` only for float32 cases
    (a float64 port has no reduced-precision products to model)."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"Argument `precision` must be one of {list(PRECISIONS)}, got {precision!r:.80}.")
    if precision != "float32" and np.dtype(dtype) != np.float32:
        raise ValueError(
            f"Argument `precision`={precision!r} models reduced-precision products of float32 computations; "
            f"it applies to dtype float32 only, got dtype {np.dtype(dtype).name}."
        )
    return precision


def unit_roundoff(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


def dot_length(case) -> int:
    """The longest dot product in one step: features + units + 1 (the bias)."""
    from scratch_rnn.testing.case import recurrent_config

    return case.x.shape[-1] + recurrent_config(case.layer, case.config)["units"] + 1


def derive(case, run_oracle, seed: int = 0, precision: str = "float32"):
    """``(oracle_outputs, tolerances)`` for ``case`` in the case's dtype.

    ``run_oracle(weights, chunks, jitter=None) -> list of arrays`` runs the float64
    reference on the given float64 weights and ``(x, mask, initial_state)`` chunks,
    applying ``jitter(a) -> a'`` to every activation output when it is given
    (see :func:`jitter_activations`).
    """
    weights = [w.astype(np.float64) for w in case.weights]
    chunks = [
        (x.astype(np.float64), m, None if s is None else [a.astype(np.float64) for a in s]) for x, m, s in case.chunks()
    ]

    def perturb_chunks(jitter, u):
        return [(jitter(x, u), m, None if s is None else [jitter(a, u) for a in s]) for x, m, s in chunks]

    return derive_from_runs(run_oracle, weights, chunks, perturb_chunks, dot_length(case), case.dtype, seed, precision)


def derive_from_runs(
    run_oracle, weights, inputs, perturb_inputs, n: int, dtype, seed: int = 0, precision: str = "float32"
):
    """``(oracle_outputs, tolerances)`` for any computation (a layer case, a whole model).

    ``run_oracle(weights, inputs, jitter=None) -> list of arrays`` runs the float64 reference;
    ``perturb_inputs(jitter, u)`` returns ``inputs`` with every float perturbed by ``jitter(a, u)``
    (ids and masks left alone); ``n`` is the longest dot product of one step. ``precision`` names
    the products' operand rounding (:data:`PRECISIONS`; see the module doc).
    """
    p = PRECISIONS[check_precision(precision, dtype)]
    u = unit_roundoff(dtype)
    reduced = p.name != "float32"
    u_weight = 2 * p.u + n * u if reduced else n * u
    u_input = p.u if reduced else u
    tiny = float(np.finfo(dtype).tiny)
    rng = np.random.default_rng(seed)
    oracle = run_oracle(weights, inputs)

    def jitter(a, rel):
        return a * (1 + rel * rng.uniform(-1, 1, a.shape))

    sensitivity = [np.zeros_like(o) for o in oracle]
    for _ in range(PERTURBATIONS):
        p_weights = [jitter(w, u_weight) for w in weights]
        p_inputs = perturb_inputs(jitter, u_input)
        p_activations = lambda a: jitter(a, ACTIVATION_ULPS * u)  # noqa: E731
        for acc, out, ref in zip(sensitivity, run_oracle(p_weights, p_inputs, p_activations), oracle):
            np.maximum(acc, np.abs(out - ref), out=acc)
    floor = n * tiny
    if p.underflow:  # float16 operands underflowing: up to p.underflow absolute each, times the other operand
        floor += n * p.underflow * max([1.0, *(float(np.max(np.abs(w), initial=0)) for w in weights)])
    tolerances = []
    for ref, sens in zip(oracle, sensitivity):
        row_scale = np.max(np.abs(ref), axis=-1, keepdims=True)
        tolerances.append(SAFETY * (sens + n * u * row_scale + floor))
    return oracle, tolerances


def jitter_activations(layer, jitter) -> None:
    """Make ``layer`` (a scratch recurrent layer, or a Bidirectional's two) apply ``jitter`` to
    every activation output. The layer then runs its readable ``project``/``step`` (which call
    ``self.activation`` and ``self.recurrent_activation``), not its fast kernel; this changes only
    this instance, which the harness built for this one oracle run.
    """
    for rnn in readable_path(layer):
        for name in ("activation", "recurrent_activation"):
            if hasattr(rnn, name):
                fn = getattr(rnn, name)
                setattr(rnn, name, lambda a, fn=fn: jitter(fn(a)))


def readable_path(layer) -> list:
    """Make ``layer`` (a scratch recurrent layer, or a Bidirectional's two) run its readable ``project``/``step``
    instead of its fast kernels (this instance only); returns the recurrent layers it changed. Every oracle run
    takes this path, perturbed or not: with the unperturbed run on the fast kernels, a kernel's own error would
    be part of the perturbed runs' distance to it, and so of the tolerance that should catch it."""
    from scratch_rnn.rnn import BaseRNN

    rnns = [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]
    for rnn in rnns:
        assert isinstance(rnn, BaseRNN), f"expected a recurrent layer, got {rnn!r}"
        rnn.fast = False
    return rnns
