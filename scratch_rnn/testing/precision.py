"""Candidates that compute as a reduced-precision GPU port does, on the CPU: the proof of ``precision=``.

A GPU running a port in "float32" rarely multiplies in float32. With TF32 on (PyTorch's default for
cuDNN), a GEMM rounds its float32 OPERANDS to TF32's 10-bit mantissa and accumulates in float32; under
bfloat16 or float16 autocast the operands are bfloat16 (7 bits) or float16 (10 bits, and float16's
range: overflow beyond 65504, subnormals below 2^-14). The harness's ``precision=`` derives the
tolerance of that computation (:mod:`scratch_rnn.testing.tolerance`); the candidates here compute it,
so the claim "a TF32 port passes ``precision="tf32"`` and fails ``"float32"``" is tested without a GPU.

How. The scratch engine's readable ``project``/``step`` (``fast=False``) computes every product of a
recurrent layer as ``x @ Wx.T`` and ``h @ Wh.T`` (and GRU's ``(r * h) @ Wh_h.T``). The layer's two
kernels are replaced by :class:`RoundedOperands` views, an ``ndarray`` subclass whose
``__array_ufunc__`` intercepts ``np.matmul`` (``@``): both operands are rounded to the precision
(:func:`round_to`) and multiplied in float32. So the inputs, the initial state and every step's state
are rounded where they enter a product, as on the GPU, while the sums with the bias, the gates'
elementwise products and the activations stay float32: the layer's equations are not rewritten.
Only this instance is changed; nothing global is patched.

``round_to`` rounds to nearest, ties to even, on the float32 bit pattern (TF32, bfloat16) or through
NumPy's float16 (which rounds the same way and has float16's range and subnormals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratch_rnn.keras_convert import from_config
from scratch_rnn.testing.tolerance import PRECISIONS, check_precision
from scratch_rnn.testing.torch_candidates import layer_kind

#: The layers the emulating candidates implement (the recurrent ones and their wrapper).
EMULATED_LAYERS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")


def round_to(a: np.ndarray, precision: str) -> np.ndarray:
    """``a`` (float32) rounded to ``precision``'s mantissa, returned as float32.

    TF32 keeps 10 of float32's 23 mantissa bits, bfloat16 7 (both keep float32's exponent, so
    float32's range); float16 has 10 bits and its own range. Round to nearest, ties to even; NaN
    stays NaN, infinities stay infinite, and a value rounding past the largest finite number of a
    float32-range format becomes inf, as the hardware's conversion does.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Argument `precision` must be one of {list(PRECISIONS)}, got {precision!r}.")
    a = np.asarray(a, np.float32)
    if precision == "float32":
        return a.copy()
    if precision == "float16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16).astype(np.float32)
    drop = 23 - PRECISIONS[precision].mantissa_bits  # float32 mantissa bits to clear
    bits = a.view(np.uint32)
    lsb = (bits >> np.uint32(drop)) & np.uint32(1)  # the last kept bit: ties go to even
    rounded = (bits + np.uint32((1 << (drop - 1)) - 1) + lsb) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return np.where(np.isnan(a), a, rounded.view(np.float32))


class RoundedOperands(np.ndarray):
    """A float32 weight whose products round both operands to ``precision`` first (see the module doc).

    Only ``np.matmul`` (``@``) is intercepted; every other operation sees a plain array and returns one.
    Views (``.T``, slices) keep the class and the precision.
    """

    precision: str = "float32"

    def __new__(cls, weight: np.ndarray, precision: str):
        view = np.asarray(weight, np.float32).view(cls)
        view.precision = precision
        return view

    def __array_finalize__(self, obj):
        self.precision = getattr(obj, "precision", "float32")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(a).view(np.ndarray) if isinstance(a, RoundedOperands) else a for a in inputs]
        if ufunc is np.matmul and method == "__call__":
            a, b = (round_to(np.asarray(x, np.float32), self.precision) for x in plain)
            out = kwargs.pop("out", None)
            out = tuple(o.view(np.ndarray) if isinstance(o, RoundedOperands) else o for o in out) if out else None
            return np.matmul(a, b, **kwargs, **({"out": out} if out else {}))  # float32 accumulation
        return getattr(ufunc, method)(*plain, **kwargs)


def emulate(layer, precision: str):
    """Make the scratch recurrent ``layer`` (or a Bidirectional's two) compute its products in ``precision``:
    its kernels become :class:`RoundedOperands` and it runs its readable step. Returns ``layer``."""
    from scratch_rnn.rnn import BaseRNN

    rnns = (layer.forward_layer, layer.backward_layer) if hasattr(layer, "forward_layer") else (layer,)
    for rnn in rnns:
        if not isinstance(rnn, BaseRNN) or rnn.compute_dtype != np.float32:
            raise ValueError(
                f"Argument `layer` must be a float32 scratch recurrent layer to emulate {precision}, got {rnn!r}."
            )
        for name in ("Wx", "Wh"):
            setattr(rnn, name, RoundedOperands(getattr(rnn, name), precision))
        rnn.fast = False
    return layer


def emulating_candidate(precision: str):
    """A verify candidate ``candidate(config, weights, x, mask=None, initial_state=None)``: the scratch engine
    computing its products in ``precision`` (:func:`emulate`), for a float32 case of :data:`EMULATED_LAYERS`.
    Its layer is read from the config as the PyTorch port's candidates read it (its Keras name, else its options)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Argument `precision` must be one of {list(PRECISIONS)}, got {precision!r}.")

    def candidate(config, weights, x, mask=None, initial_state=None):
        scratch = from_config(layer_kind(config, EMULATED_LAYERS), config)
        scratch.set_weights(weights)
        return emulate(scratch, precision)(x, mask=mask, initial_state=initial_state)

    candidate.__name__ = candidate.__qualname__ = f"emulated {precision}"
    return candidate


def emulating_model_candidate(precision: str):
    """A ``verify --model`` candidate ``candidate(model_file, inputs) -> outputs``: the file loaded by
    :func:`scratch_rnn.saving.load_model`, every top-level recurrent layer (and Bidirectional) computing its
    products in ``precision`` (:func:`emulate`). The other layers' products (Dense, ...) stay float32: the
    emulation errs on the side of fewer rounded products."""
    if precision not in PRECISIONS:
        raise ValueError(f"Argument `precision` must be one of {list(PRECISIONS)}, got {precision!r}.")

    def candidate(model_file, inputs):
        from scratch_rnn.rnn import BaseRNN
        from scratch_rnn.saving import load_model

        model = load_model(model_file)
        for layer in model.layers:
            if isinstance(layer, BaseRNN) or isinstance(getattr(layer, "forward_layer", None), BaseRNN):
                emulate(layer, precision)
        return model(inputs if len(inputs) > 1 else inputs[0])

    candidate.__name__ = candidate.__qualname__ = f"emulated {precision} model"
    return candidate


#: ``--candidate scratch_rnn.testing.precision:tf32`` and the others (layers), ``...:tf32_model`` (``--model``).
float32 = emulating_candidate("float32")
tf32 = emulating_candidate("tf32")
bfloat16 = emulating_candidate("bfloat16")
float16 = emulating_candidate("float16")
tf32_model = emulating_model_candidate("tf32")
bfloat16_model = emulating_model_candidate("bfloat16")
float16_model = emulating_model_candidate("float16")


# --- the survey: every case's margin, not only the first failure's ---------------------------------


@dataclass
class Survey:
    """How one candidate's margins fall on ``cases`` generated float32 cases under one precision's tolerance."""

    candidate: str
    layer: str
    precision: str  # the tolerance's (precision=)
    margins: list[float] = field(default_factory=list)
    skipped: int = 0
    #: Under float32: how many failing cases each least precision explains (``"none"``: no standard one).
    explained: dict = field(default_factory=dict)

    @property
    def cases(self) -> int:
        return len(self.margins)

    @property
    def over(self) -> int:
        """Cases over the tolerance (margin > 1)."""
        return sum(m > 1 for m in self.margins)

    def percentile(self, q: float) -> float:
        """An observed margin at percentile ``q`` (0-100), as :meth:`Report.margin_percentile`."""
        if not self.margins:
            return 0.0
        return float(np.percentile(np.asarray(self.margins), q, method="higher"))


def survey(
    candidate, layer: str = "GRU", examples: int = 120, seed: int = 0, precisions=("float32",), reference="keras"
) -> list[Survey]:
    """Run ``candidate`` on ``examples`` generated float32 ``layer`` cases and compare each under every one of
    ``precisions``' tolerances; one :class:`Survey` per precision. Unlike :func:`verify`, every case is run
    (a failing one does not stop the run, and nothing is shrunk): the distribution of margins is the result,
    as in the GPU table of docs/precision.md. Keras runs once per case; the candidate once per precision.
    """
    from hypothesis import HealthCheck, Phase, assume, given, settings
    from hypothesis import seed as hypothesis_seed

    from scratch_rnn.testing.check import check_against, keras_outputs
    from scratch_rnn.testing.runners import import_keras
    from scratch_rnn.testing.strategies import cases

    for p in precisions:
        check_precision(p, "float32")
    keras = import_keras(reference)
    name = getattr(candidate, "__qualname__", repr(candidate))
    rows = {p: Survey(name, layer, p) for p in precisions}
    strategy = cases(layer, "float32", allow_stateful=False, reference=reference)

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        expected = keras_outputs(case, keras)
        results = {p: check_against(case, lambda: expected, candidate, timeout=None, precision=p) for p in precisions}
        if any(r.skipped for r in results.values()):
            for row in rows.values():
                row.skipped += 1
            assume(False)
        for p, result in results.items():
            rows[p].margins.append(result.margin)
            if not result.ok:
                key = result.explained_by or "none"
                rows[p].explained[key] = rows[p].explained.get(key, 0) + 1

    run()
    return list(rows.values())
