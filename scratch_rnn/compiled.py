"""The time loop's compiled twin (numba), used when the ``fast`` extra is installed (#14).

Why: a NumPy step pays about ten ufunc dispatches and as many passes over memory; here a whole
sequence runs in one compiled call (per batch slice: :func:`run` splits a large batch across threads itself,
one call a slice that does not hold the GIL). Every step multiplies the state and the step's inputs together
(``[h, x_t] @ [Wh; Wx]^T``; GRU with ``reset_after`` the two apart) into a preallocated buffer, on MKL's packed
weights (:mod:`scratch_rnn.mkl`) or with numba's ``np.dot`` (SciPy's BLAS), then ONE fused pass over the gates
applies every activation and updates the states in place, masks included, on 16 float32 lanes where the CPU has
AVX-512 (:func:`wide_vectors`). The fused pass is compiled with
``error_model="numpy"`` (the default Python model puts a zero-division branch in every division,
which stops LLVM's vectoriser) and ``fastmath={"contract", "nsz"}`` (fused multiply-adds); the default
activations are constants in their own entry points (``lstm_default``, ...), as an argument LLVM if-converts
every activation into every element. :func:`packed_instructions` counts the packed (SIMD) instructions of a loop,
:func:`vector_registers` their widths.

Activations. numba's ``math.tanh``/``math.exp`` are scalar libm calls (not vectorised), so in
float32 ``tanh`` and ``sigmoid`` are computed here in float32 arithmetic, branch-free (8 lanes on ymm, 16 on zmm):

* ``exp(y)`` (:func:`exp_parts`): ``y = k ln2 + r`` (Cody-Waite, ``|r| <= ln2/2``), ``exp(r) = 1 + t`` from a
  degree-6 polynomial, ``2^k`` built in the exponent bits (an int32 viewed as float32), and the result as
  ``hi + lo`` with ``lo`` the rounding error of ``hi``;
* ``tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1))`` for ``|x| >= 0.625`` (there ``tanh > 0.55``: no
  cancellation), an odd degree-11 polynomial below; ``|x|`` clamped at 9.1 (above 9.02 tanh rounds to 1);
* ``sigmoid(x) = n / (1 + E)``, ``E = exp(-|x|)``, ``n = 1`` for ``x >= 0`` and ``E`` below, the quotient
  corrected once for ``lo`` and for the rounding of ``1 + E`` (FMA residual: the relative accuracy holds down
  to the subnormals, where ``E`` is scaled by 2^-64 in two exact steps); ``|x|`` clamped at 104.

Their error over all 2^32 float32 inputs (``benchmarks/activation_ulps.py``, :data:`MAX_ULPS`,
docs/performance.md) is within the harness's ``ACTIVATION_ULPS`` (2). float64 keeps the exact path
(``math.tanh``, ``math.exp``: libm, scalar). relu, linear and hard_sigmoid are exact formulas.

Selection (:func:`loop_for`): ``SCRATCH_RNN_BACKEND`` unset or ``auto`` runs the compiled loop when
numba is installed, the layer is a SimpleRNN, LSTM or GRU with options it covers (all but Keras's
``unroll`` quirk with ``zero_output_for_mask``) and it measured faster there (:func:`chosen_by_auto`), else the
NumPy kernels; ``numpy`` turns it off; ``numba`` requires numba and runs it at every size. numba is imported,
and the loops compiled (``cache=True``: once per machine), at the first call that uses them, never by
``import scratch_rnn``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import threading

import numpy as np

from scratch_rnn import activations, checks, mkl, parallel
from scratch_rnn.rnn import Workspace

#: The environment variable choosing the backend: ``auto`` (default), ``numpy`` or ``numba``.
ENV = "SCRATCH_RNN_BACKEND"
BACKENDS = ("auto", "numpy", "numba")
#: The flags of every compiled function: FMA contraction and no signed-zero care; no ``nnan``/``ninf``
#: (NaN and Inf propagate as in NumPy) and no ``arcp``/``reassoc`` (each operation rounds as written).
FASTMATH = {"contract", "nsz"}

# --- float32 activations, computed in float32 (plain Python here; jitted by _jit) -----------------
# Every constant is a np.float32: a Python float would promote the arithmetic to float64 (4 lanes, not 8).
_F = np.float32
LOG2E, LN2_HI, LN2_LO = _F(1.4426950408889634), _F(0.693359375), _F(-2.12194440e-4)  # Cody-Waite: k * LN2_HI exact
ROUND = _F(12582912.0)  # 1.5 * 2^23: (y + ROUND) - ROUND rounds y to an integer (no reassociation allowed)
# (expm1(r) - r) / r^2 on |r| <= ln2 / 2, degree 4 (weighted least squares on Chebyshev nodes): 0.09 ulp
_P0, _P1, _P2, _P3, _P4 = map(
    _F, (0.5, 0.16666516661643982, 0.04166626185178757, 0.008369151502847672, 0.0013946446124464273)
)
# (tanh(x) / x - 1) / x^2 as a polynomial in z = x^2 on |x| < TANH_SMALL, degree 5: 0.03 ulp
_T0, _T1, _T2, _T3, _T4, _T5 = map(
    _F,
    (
        -0.3333333134651184,
        0.1333320587873459,
        -0.05394672974944115,
        0.021700628101825714,
        -0.00817736703902483,
        0.0021430270280689,
    ),
)
TANH_SMALL = _F(0.625)  # below, the odd polynomial; above, 1 - 2 / (exp(2|x|) + 1) (no cancellation: tanh > 0.55)
TANH_CLAMP = _F(9.1)  # float32 tanh rounds to 1 above 9.02
SIGMOID_CLAMP = _F(104.0)  # float32 sigmoid(-104) = 6.8e-46 rounds to 0
_ONE, _TWO, _ZERO, _TWO_M64 = _F(1), _F(2), _F(0), _F(2.0**-64)


def exp_parts(y, bias):
    """``exp(y) * 2^(bias - 127)`` as ``hi + lo`` (``lo`` the rounding error of ``hi``), float32 ``y`` in
    [-104, 19]: ``y = k ln2 + r``, ``exp(r) = 1 + t`` from the degree-6 polynomial, ``2^k`` built in the exponent
    bits (``k + bias`` must stay in [1, 254]: callers pass ``bias`` 127, or 191 and scale by 2^-64 for subnormals)."""
    kf = (y * LOG2E + ROUND) - ROUND
    r = y - kf * LN2_HI  # exact (FMA; kf has at most 8 bits, LN2_HI 9)
    r = r - kf * LN2_LO
    t = r * r * (_P0 + r * (_P1 + r * (_P2 + r * (_P3 + r * _P4)))) + r
    s = np.int32((np.int32(kf) + bias) << 23).view(np.float32)  # 2^(k + bias - 127), exactly
    hi = s * t + s  # one FMA: s (1 + t) rounded once
    lo = s * t + (s - hi)  # s - hi is exact (Sterbenz): lo is hi's rounding error, rounded
    return hi, lo


def tanh_f32(x):
    a = abs(x)
    a = TANH_CLAMP if a > TANH_CLAMP else a  # NaN stays NaN
    hi, _ = exp_parts(a + a, 127)
    big = _ONE - _TWO / (hi + _ONE)  # 2 / (e^2a + 1) < 0.45: its rounding errors shrink against 1
    z = a * a
    small = a * (z * (_T0 + z * (_T1 + z * (_T2 + z * (_T3 + z * (_T4 + z * _T5)))))) + a
    return math.copysign(small if a < TANH_SMALL else big, x)


def sigmoid_f32(x):
    """``n / (1 + E)``, ``E = exp(-|x|)`` as ``hi + lo``, ``n`` = 1 (x >= 0) or ``E``; the quotient corrected for
    ``lo`` and for the rounding of ``1 + hi`` (two-sum) by one residual step with the exact FMA residual."""
    a = abs(x)
    a = SIGMOID_CLAMP if a > SIGMOID_CLAMP else a
    hi, lo = exp_parts(-a, 127 + 64)
    hi = hi * _TWO_M64  # exact, or one rounding into the subnormals
    lo = lo * _TWO_M64
    d = _ONE + hi
    err = (hi - (d - _ONE)) + lo  # 1 + E = d + err
    inv = _ONE / d
    pos = x >= 0  # NaN: False, and hi is NaN
    n = _ONE if pos else hi
    nlo = _ZERO if pos else lo
    q = n * inv
    res = ((n - q * d) + nlo) - q * err  # n + nlo - q (d + err), the first term exact (FMA)
    return res * inv + q


def tanh_f64(x):
    return math.tanh(x)


def sigmoid_f64(x):
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


def tanh_(x):  # pragma: no cover - a stub: _jit overloads it with tanh_f32 or tanh_f64 by the type of x
    raise NotImplementedError


def sigmoid_(x):  # pragma: no cover - a stub, as tanh_
    raise NotImplementedError


#: The activations' codes in the loops (an int argument: LLVM unswitches the fused loop on it, one
#: vectorised copy per activation; a function argument would specialise too, but defeats numba's cache).
CODES = {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3, "hard_sigmoid": 4}


def activate(code, x):
    """Activation ``code`` of ``x``, in ``x``'s type (the ``np.float32`` constants promote to float64 with it)."""
    if code == 0:
        return tanh_(x)
    if code == 1:
        return sigmoid_(x)
    if code == 2:
        return np.float32(0) if x < 0 else x  # NaN stays NaN
    if code == 3:
        return x
    y = x + np.float32(3)  # hard_sigmoid, Keras 3's relu6(x + 3) / 6
    y = np.float32(0) if y < 0 else y
    y = np.float32(6) if y > 6 else y
    return y / np.float32(6)


# --- the loops (plain Python here; jitted by _jit) ------------------------------------------------
# A call's whole sequence (or a batch slice's, scratch_rnn.parallel) is ONE compiled call that does not hold the
# GIL: each step's inputs are multiplied inside the loop, not projected before it. SimpleRNN, LSTM and GRU (reset
# before) fold the input into the step's product, as the NumPy LSTM kernel does: ``[h, x_t] @ [Wh; Wx]^T``, with
# ``hx`` (B, U + F) holding the state in its first U columns and step t's inputs in the rest (copied in before
# the product). GRU (reset after) multiplies them apart (see gru_after_loop). Measured (CPU time, one thread, LSTM
# 32x100x16x32): 0.69 ms folded against 0.98 with a projection before the loop, whose product has K = F = 16.
# Arguments: x (B, T, F); ``products`` the step's weight matrices (C-contiguous; empty, never read, when packed),
# then ``gemm`` and the matrices packed for it (:func:`_product`); bias (gates, U); the states, updated in place
# (``hx``, and c (B, U));
# g a (B, gates, U) buffer (the gate as its own axis: with an offset ``k * U + j`` numba's negative-index
# wraparound made LLVM load every gate but the first with gathers, 6 ``vgatherqps`` in the LSTM pass);
# ``io`` = (mask (B, T) bool in processing order, read only if has_mask; last (B, U) the previous output (masks);
# out (B, T, U), written at [:, i] if sequences); ``flags`` = (has_mask, zero_output_for_mask, go_backwards,
# sequences); the activations' codes.


def _finish_row(h, U, b, i, kept, zero_out, last, out, sequences):
    """With a mask, row ``b``'s output after step ``i``: ``h[b, :U]`` where kept, else the previous output (or
    zeros, ``zero_output_for_mask``), kept in ``last``. Unmasked outputs are written in the fused pass. (Indexing,
    no row views: a view costs two reference-count calls, per row and step. The loops also unpack ``io`` and
    ``flags`` once a call: an array taken out of a tuple costs a reference count too, which at 16 rows and 32
    units made the whole call 28% slower.)"""
    if kept:
        for j in range(U):
            last[b, j] = h[b, j]
    elif zero_out:
        for j in range(U):
            last[b, j] = 0
    if sequences:
        for j in range(U):
            out[b, i, j] = last[b, j]


def _product(a, W, gemm, packed, out):
    """``out = a @ W``: MKL's packed product (``gemm`` its ``cblas_?gemm_compute``, ``packed`` W packed for it) when
    ``packed`` has elements, else ``np.dot`` (SciPy's BLAS); every operand C-contiguous, as :func:`run` makes them."""
    m, k = a.shape
    n = out.shape[1]
    if packed.size == 0:
        np.dot(a, W, out)
    elif m > 0:
        gemm(101, 111, 151, m, n, k, a.ctypes, k, packed.ctypes, n, 0.0, out.ctypes, n)  # row-major, B packed


#: The vector width the loops ask LLVM's vectoriser for, in bits (a function attribute, see :func:`wide_vectors`).
VECTOR_BITS = 512


def wide_vectors():  # pragma: no cover - a stub: _jit lowers it (_lower_wide_vectors); never run as Python
    """In compiled code: the calling function's loops are vectorised up to :data:`VECTOR_BITS` bits wide.

    LLVM tunes most AVX-512 CPUs to prefer 256-bit vectors (its ``prefer-256-bit``), and numba compiles for the
    host with that tuning, so the fused pass ran on 8 float32 lanes. The loops call this first, which gives their
    own function LLVM's ``"prefer-vector-width"`` attribute, as clang's ``-mprefer-vector-width=512`` would, for
    these functions only: numba's process-wide ``NUMBA_CPU_FEATURES`` would change every other library's code.
    A CPU without AVX-512 is unaffected (the width is capped by its registers); the arithmetic is the same per
    element, so the results are bit for bit those of 8 lanes. Measured (LSTM, 2 threads, scratch/PyTorch):
    0.90 -> 0.70 at 32x100x16x32, 0.94 -> 0.85 at 64x200x64x128, 82% -> 86% of the GEMM roof at 256x50x128x256."""


def _load_inputs(x, hx, i, U, backwards):
    """Step ``i``'s inputs (``x[:, i]``, or ``x[:, T - 1 - i]`` going backwards) into ``hx[:, U:]``."""
    B, T, F = x.shape
    t = T - 1 - i if backwards else i
    for b in range(B):
        for k in range(F):
            hx[b, U + k] = x[b, t, k]


def simple_rnn_loop(x, products, gemm, packed, bias, hx, g, io, flags, act):
    wide_vectors()
    B, T, _ = x.shape
    U = g.shape[1]
    (W,) = products
    mask, last, out = io
    has_mask, zero_out, backwards, sequences = flags
    direct = sequences and not has_mask  # the outputs written in the fused pass (with a mask: _finish_row)
    for i in range(T):
        _load_inputs(x, hx, i, U, backwards)
        _product(hx, W, gemm, packed[0], g)  # (B, U + F) @ (U + F, U)
        for b in range(B):
            kept = not has_mask or mask[b, i]
            if kept:
                for j in range(U):
                    hn = activate(act, g[b, j] + bias[j])
                    hx[b, j] = hn
                    if direct:
                        out[b, i, j] = hn
            if has_mask:
                _finish_row(hx, U, b, i, kept, zero_out, last, out, sequences)


def lstm_loop(x, products, gemm, packed, bias, hx, c, g, io, flags, act, ract):
    wide_vectors()
    B, T, _ = x.shape
    U = c.shape[1]
    (W,) = products
    mask, last, out = io
    has_mask, zero_out, backwards, sequences = flags
    direct = sequences and not has_mask  # the outputs written in the fused pass (with a mask: _finish_row)
    flat = g.reshape((B, 4 * U))  # a view, once a call
    for i in range(T):
        _load_inputs(x, hx, i, U, backwards)
        _product(hx, W, gemm, packed[0], flat)  # (B, U + F) @ (U + F, 4U): gates i, f, c, o
        for b in range(B):
            kept = not has_mask or mask[b, i]
            if kept:
                for j in range(U):  # the fused pass: four gates, the carry and the output
                    ig = activate(ract, g[b, 0, j] + bias[0, j])
                    fg = activate(ract, g[b, 1, j] + bias[1, j])
                    cc = activate(act, g[b, 2, j] + bias[2, j])
                    og = activate(ract, g[b, 3, j] + bias[3, j])
                    cn = fg * c[b, j] + ig * cc
                    c[b, j] = cn
                    hn = og * activate(act, cn)
                    hx[b, j] = hn
                    if direct:
                        out[b, i, j] = hn
            if has_mask:
                _finish_row(hx, U, b, i, kept, zero_out, last, out, sequences)


def gru_after_loop(x, products, gemm, packed, bias, hx, xt, g, gx, io, flags, act, ract):
    """Two products a step, the state's and the input's apart (Keras's reset after the product multiplies the
    state's part of the candidate alone, ``r * (h Wh + bh)``; folding both into one product would need zero
    blocks, and 0 * inf is NaN): ``h @ Wh`` (U, 3U) into ``g`` and ``x_t @ Wx`` (F, 3U) into ``gx``, ``xt``
    (B, F) holding ``x_t``, ``hx`` (B, U) the state. bias (4, U): z's and r's input plus recurrent bias, the
    candidate's recurrent bias, its input bias."""
    wide_vectors()
    B, T, _ = x.shape
    U = g.shape[2]
    Wh, Wx = products
    mask, last, out = io
    has_mask, zero_out, backwards, sequences = flags
    direct = sequences and not has_mask  # the outputs written in the fused pass (with a mask: _finish_row)
    flat, flat_x = g.reshape((B, 3 * U)), gx.reshape((B, 3 * U))
    for i in range(T):
        _load_inputs(x, xt, i, 0, backwards)
        _product(hx, Wh, gemm, packed[0], flat)  # (B, U) @ (U, 3U)
        _product(xt, Wx, gemm, packed[1], flat_x)  # (B, F) @ (F, 3U)
        for b in range(B):
            kept = not has_mask or mask[b, i]
            if kept:
                for j in range(U):
                    zg = activate(ract, (gx[b, 0, j] + g[b, 0, j]) + bias[0, j])
                    rg = activate(ract, (gx[b, 1, j] + g[b, 1, j]) + bias[1, j])
                    hh = activate(act, (gx[b, 2, j] + bias[3, j]) + rg * (g[b, 2, j] + bias[2, j]))
                    hn = zg * hx[b, j] + (np.float32(1) - zg) * hh
                    hx[b, j] = hn
                    if direct:
                        out[b, i, j] = hn
            if has_mask:
                _finish_row(hx, U, b, i, kept, zero_out, last, out, sequences)


def gru_before_loop(x, products, gemm, packed, bias, hx, rhx, g, zg, gh, io, flags, act, ract):
    """Two products a step, each with the input folded in: ``[h, x_t] @ Wzr`` (U + F, 2U) for gates z and r, then
    ``[r * h, x_t] @ Wh`` (U + F, U) for the candidate (Keras's reset before the product); bias (3, U)."""
    wide_vectors()
    B, T, _ = x.shape
    U = g.shape[2]
    Wzr, Wh = products
    mask, last, out = io
    has_mask, zero_out, backwards, sequences = flags
    direct = sequences and not has_mask  # the outputs written in the fused pass (with a mask: _finish_row)
    flat = g.reshape((B, 2 * U))
    for i in range(T):
        _load_inputs(x, hx, i, U, backwards)
        _load_inputs(x, rhx, i, U, backwards)
        _product(hx, Wzr, gemm, packed[0], flat)  # (B, U + F) @ (U + F, 2U): gates z, r
        for b in range(B):
            for j in range(U):
                zg[b, j] = activate(ract, g[b, 0, j] + bias[0, j])
                rhx[b, j] = activate(ract, g[b, 1, j] + bias[1, j]) * hx[b, j]  # reset before the product
        _product(rhx, Wh, gemm, packed[1], gh)  # (B, U + F) @ (U + F, U)
        for b in range(B):
            kept = not has_mask or mask[b, i]
            if kept:
                for j in range(U):
                    hh = activate(act, gh[b, j] + bias[2, j])
                    hn = zg[b, j] * hx[b, j] + (np.float32(1) - zg[b, j]) * hh
                    hx[b, j] = hn
                    if direct:
                        out[b, i, j] = hn
            if has_mask:
                _finish_row(hx, U, b, i, kept, zero_out, last, out, sequences)


# The default activations as constants: LLVM then compiles one straight, vectorised pass (with the codes as
# arguments it unswitches the loop on them, measured 30% slower for LSTM at 32x100x16x32). Each takes the
# generic loop's arguments and ignores the codes; the ``*_inline`` names are the generic loops, inlined (_jit).
simple_rnn_inline, lstm_inline, gru_after_inline, gru_before_inline = (
    simple_rnn_loop,
    lstm_loop,
    gru_after_loop,
    gru_before_loop,
)


def simple_rnn_default(x, products, gemm, packed, bias, hx, g, io, flags, act):
    simple_rnn_inline(x, products, gemm, packed, bias, hx, g, io, flags, 0)


def lstm_default(x, products, gemm, packed, bias, hx, c, g, io, flags, act, ract):
    lstm_inline(x, products, gemm, packed, bias, hx, c, g, io, flags, 0, 1)


def gru_after_default(x, products, gemm, packed, bias, hx, xt, g, gx, io, flags, act, ract):
    gru_after_inline(x, products, gemm, packed, bias, hx, xt, g, gx, io, flags, 0, 1)


def gru_before_default(x, products, gemm, packed, bias, hx, rhx, g, zg, gh, io, flags, act, ract):
    gru_before_inline(x, products, gemm, packed, bias, hx, rhx, g, zg, gh, io, flags, 0, 1)


LOOPS = (simple_rnn_loop, lstm_loop, gru_after_loop, gru_before_loop)
DEFAULTS = (simple_rnn_default, lstm_default, gru_after_default, gru_before_default)


def tanh_f32_array(x, out):
    for i in range(x.size):
        out[i] = tanh_f32(x[i])


def sigmoid_f32_array(x, out):
    for i in range(x.size):
        out[i] = sigmoid_f32(x[i])


ARRAYS = (tanh_f32_array, sigmoid_f32_array)  # the activations over an array, for their accuracy scans
_PYTHON = {fn.__name__: fn for fn in (*LOOPS, *DEFAULTS, *ARRAYS)}


# --- compiling, once per process (numba's on-disk cache: once per machine) ------------------------
_JIT: dict | None = None
_JIT_LOCK = threading.Lock()  # two threads' first calls must not set the functions up twice


def _jit() -> dict:
    """The jitted functions by name; imports numba and compiles lazily (the first call per signature)."""
    with _JIT_LOCK:
        return _JIT if _JIT is not None else _set_up()


def _set_up() -> dict:
    """Import numba and jit every function (compiling waits for each signature's first call)."""
    global _JIT
    import numba

    def scalar(fn):
        return numba.njit(inline="always", fastmath=FASTMATH, error_model="numpy")(fn)

    namespace = globals()
    for fn in (
        exp_parts,
        _finish_row,
        _product,
        _load_inputs,
        activate,
        tanh_f32,
        sigmoid_f32,
        tanh_f64,
        sigmoid_f64,
    ):
        namespace[fn.__name__] = scalar(fn)  # the loops and activate call these by their global names
    for stub, f32, f64 in ((tanh_, tanh_f32, tanh_f64), (sigmoid_, sigmoid_f32, sigmoid_f64)):
        _by_type(numba, stub, namespace[f32.__name__], namespace[f64.__name__])
    _lower_wide_vectors()  # before the loops that call it are jitted
    for fn in LOOPS:
        namespace[fn.__name__.replace("_loop", "_inline")] = scalar(fn)
    jitted = {}
    for fn in (*LOOPS, *DEFAULTS, *ARRAYS):
        jitted[fn.__name__] = numba.njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")(fn)
    _JIT = jitted
    return _JIT


def _lower_wide_vectors() -> None:
    """Make :func:`wide_vectors` in compiled code add the attribute to the function that calls it (lowered in
    place: the call is not a function of its own, whose attribute would not reach the caller's loops)."""
    from numba.core import types
    from numba.extending import lower_builtin, type_callable

    @type_callable(wide_vectors)
    def typer(context):
        return lambda: types.none

    @lower_builtin(wide_vectors)
    def lower(context, builder, signature, args):
        # llvmlite's FunctionAttributes.add accepts only its list of enum attributes; a string attribute is
        # written into the IR as given, so it goes into the set directly. Should a later llvmlite refuse it, the
        # loops compile on the CPU's preferred width, as before (tests/test_compiled.py sees that on AVX-512).
        with contextlib.suppress(AttributeError, TypeError):
            set.add(builder.function.attributes, f'"prefer-vector-width"="{VECTOR_BITS}"')
        return context.get_dummy_value()


def _by_type(numba, stub, f32, f64) -> None:
    """Make ``stub`` in compiled code ``f32`` for a float32 argument and ``f64`` otherwise."""
    from numba.extending import overload

    @overload(stub)
    def choose(x):
        return (lambda x: f32(x)) if x == numba.types.float32 else (lambda x: f64(x))


def warm_up() -> None:
    """Import numba, compile (or load from the cache) nothing yet, and load SciPy's BLAS, which numba's
    ``np.dot`` calls: a caller limiting BLAS threads (threadpoolctl) then limits that library too."""
    _jit()
    import scipy.linalg.cython_blas  # noqa: F401


# --- selection ------------------------------------------------------------------------------------
_BACKEND = checks.EnvironmentChoice(ENV, BACKENDS)


def backend() -> str:
    """The backend asked for: :func:`using`'s, else ``SCRATCH_RNN_BACKEND``'s: ``auto`` (unset), ``numpy``
    or ``numba``."""
    return _BACKEND.get()


def using(name: str):
    """Calls inside the block (in this thread or task) run backend ``name`` (``auto``, ``numpy`` or ``numba``),
    whatever ``SCRATCH_RNN_BACKEND`` says: how ``scratch-rnn bench`` times both in one run."""
    return _BACKEND.using(name)


@functools.cache
def available() -> bool:
    """Whether numba and SciPy are installed (found, not imported; asked once a process): numba's ``np.dot`` needs
    SciPy's BLAS."""
    return all(importlib.util.find_spec(name) is not None for name in ("numba", "scipy"))


def enabled() -> bool:
    """Whether calls run the compiled loop: ``numba`` in :func:`backend`, or ``auto`` with numba installed."""
    chosen = backend()
    if chosen == "numba" and not available():
        raise ImportError(
            f"{ENV}=numba asks for the compiled time loop, but numba or SciPy (its np.dot's BLAS) is not "
            "installed: pip install 'scratch-rnn[fast]', or unset the variable to run the NumPy engine."
        )
    return chosen == "numba" or (chosen == "auto" and available())


#: The layers that have a compiled loop, by the ``kind`` their ``compiled_loop`` passes.
KINDS = ("simple_rnn", "lstm", "gru")


def supports(layer, kind: str) -> bool:
    """Whether the compiled loop covers ``layer`` of ``kind``: float32/float64, any of the engine's recurrent
    activations, every call option but Keras's unrolled ``zero_output_for_mask`` quirk (see
    :func:`~scratch_rnn.rnn.recurrence`), which the NumPy kernels reproduce."""
    return (
        kind in KINDS
        and layer.dtype in (np.float32, np.float64)
        and not (layer.unroll and layer.zero_output_for_mask)
        and activations.name_of(layer.activation) in CODES
        and activations.name_of(getattr(layer, "recurrent_activation", activations.linear)) in CODES
    )


#: ``auto``'s choice between the compiled loop and the NumPy kernels (measured, docs/performance.md, "One compiled
#: call a slice", wall time on 2 cores, 8 shapes from 32x100x32x64 to 256x50x128x256). float32: wherever the step's
#: products run on MKL's packed weights (:mod:`scratch_rnn.mkl`; 0.44-1.02x the NumPy kernels' time on MKL, split
#: or not). On SciPy's BLAS (numba's ``np.dot``) while each of the step's products has at most ``AUTO_MAX_COLUMNS``
#: columns (LSTM and GRU up to 128 units: at 256 units 1.07-1.34x the NumPy kernels' time) and either the step is
#: small, ``batch * units`` at most ``AUTO_MAX_ELEMENTS``, or the call splits across threads: unsplit, with SciPy's
#: BLAS on its own threads, LSTM took 1.55x and GRU 1.16x the NumPy kernels' time at 64x200x64x128. float64: its
#: activations are libm's scalar calls; all three layers ran faster only while ``batch * units`` is at most
#: ``AUTO_MAX_ELEMENTS_FLOAT64`` (at 8x8; from 256 SimpleRNN and LSTM 1.1-2.7x slower, GRU still faster).
#: ``SCRATCH_RNN_BACKEND=numba``: at every size.
AUTO_MAX_COLUMNS = 512
AUTO_MAX_ELEMENTS = 1024
AUTO_MAX_ELEMENTS_FLOAT64 = 64


def _loop_name(layer, kind: str) -> str:
    return kind if kind != "gru" else "gru_after" if layer.reset_after else "gru_before"


def product_shapes(layer, name: str) -> list[tuple[int, int]]:
    """The (K, N) of each of the loop ``name``'s per-step products (:func:`step_stacks`' matrices, transposed)."""
    u, f = layer.units, layer.Wx.shape[1]
    return {
        "simple_rnn": [(u + f, u)],
        "lstm": [(u + f, 4 * u)],
        "gru_after": [(u, 3 * u), (f, 3 * u)],
        "gru_before": [(u + f, 2 * u), (u + f, u)],
    }[name]


def on_mkl(shapes, batch: int, dtype) -> bool:
    """Whether a call's per-step products of ``shapes`` (:func:`product_shapes`) on ``batch`` rows run on MKL's
    packed weights: asked once for the whole batch (``auto``'s choice and :func:`run` alike), so that a split
    call's slices compute what the unsplit call would."""
    return batch > 0 and mkl.chosen(2 * batch * sum(k * n for k, n in shapes), dtype)


def splits(shapes, batch: int, timesteps: int) -> int:
    """The threads a compiled call of ``shapes`` on ``batch`` rows of ``timesteps`` splits across."""
    return parallel.split_count_whole(batch, timesteps * sum(n for _, n in shapes))


def chosen_by_auto(layer, kind: str, batch: int, timesteps: int = 1) -> bool:
    """Whether ``auto`` runs the compiled loop for ``layer`` on ``batch`` rows of ``timesteps`` (see
    :data:`AUTO_MAX_COLUMNS`)."""
    if layer.dtype != np.float32:
        return batch * layer.units <= AUTO_MAX_ELEMENTS_FLOAT64
    shapes = product_shapes(layer, _loop_name(layer, kind))
    if on_mkl(shapes, batch, layer.dtype):
        return True
    if max(n for _, n in shapes) > AUTO_MAX_COLUMNS:
        return False
    return batch * layer.units <= AUTO_MAX_ELEMENTS or splits(shapes, batch, timesteps) > 1


def loop_for(layer, kind: str, batch: int, timesteps: int = 1):
    """The compiled whole-sequence loop for ``layer``, a SimpleRNN, LSTM or GRU as ``kind`` says, called on
    ``batch`` rows (``loop(x, states, mask, **options)``: :func:`run`'s arguments after ``kind``), or None when
    the NumPy kernels should run. A layer's ``compiled_loop`` calls this
    (:meth:`~scratch_rnn.rnn.BaseRNN.compiled_loop`)."""
    if not (enabled() and supports(layer, kind)):
        return None
    if backend() == "auto" and not chosen_by_auto(layer, kind, batch, timesteps):
        return None

    def loop(x, states, mask, **options):
        return run(layer, kind, x, states, mask, **options)

    return loop


# --- one call -------------------------------------------------------------------------------------
def run(
    layer,
    kind,
    x,
    states,
    mask=None,
    *,
    go_backwards=False,
    return_sequences=False,
    zero_output_for_mask=False,
    unroll=False,
    workspace=None,
    out=None,
):
    """What :func:`~scratch_rnn.rnn.recurrence` returns for ``layer``'s kernel, computed by the compiled loops:
    ``(last (B, U), outputs (B, T, U) or None, [final states (B, S)])``, none of them a view of ``workspace``
    (scratch buffers kept between calls). ``out``: an array ``(B, T, U)`` to write the outputs into.
    Memory does not grow with ``T``: each step's inputs are multiplied in that step (no projection of the sequence).
    A large batch is split across threads here (:func:`~scratch_rnn.parallel.split_count_whole`), one compiled call
    a slice, the MKL-or-``np.dot`` choice made once for the whole batch so that split and unsplit calls compute the
    same bits."""
    fns = _jit()
    dtype = x.dtype
    batch, T, features = x.shape
    u = layer.units
    act = CODES[activations.name_of(layer.activation)]
    ract = CODES[activations.name_of(getattr(layer, "recurrent_activation", activations.linear))]
    default = act == 0 and (kind == "simple_rnn" or ract == 1)  # the codes the *_default loops hold as constants
    name = _loop_name(layer, kind)
    loop = fns[f"{name}_{'default' if default else 'loop'}"]
    *stacks, bias = step_stacks(layer, name)  # the products' matrices transposed: see the MKL-or-np.dot choice
    workspace = Workspace() if workspace is None else workspace
    width = u if name == "gru_after" else u + features  # the state beside each step's inputs (see the loops)
    hx = workspace.empty("compiled hx", (batch, width), dtype)
    hx[:, :u] = states[0]
    c = np.array(states[1], dtype, order="C") if kind == "lstm" else None  # a copy: the loop updates it in place
    g = workspace.empty("compiled g", (batch, GATES[name], u), dtype)  # the gate as its own axis: see the loops
    if name == "simple_rnn":
        buffers = (hx, g.reshape(batch, u))
    elif name == "lstm":
        buffers = (hx, c, g)
    elif name == "gru_after":
        buffers = (hx, workspace.empty("compiled xt", (batch, features), dtype), g)
        buffers += (workspace.empty("compiled gx", g.shape, dtype),)
    else:
        rhx, zg, gh = (workspace.empty(f"compiled {n}", hx.shape[:1] + s, dtype) for n, s in
                       (("rhx", hx.shape[1:]), ("z", (u,)), ("gh", (u,))))  # fmt: skip
        buffers = (hx, rhx, g, zg, gh)
    has_mask, sequences = mask is not None, bool(return_sequences)
    masks = np.ascontiguousarray(mask.T[:, ::-1] if go_backwards else mask.T) if has_mask else _unused(bool, 2)
    last = np.zeros((batch, u), dtype)
    outputs = (np.empty((batch, T, u), dtype) if out is None else out) if sequences else _unused(dtype, 3)
    flags = (has_mask, bool(zero_output_for_mask), bool(go_backwards), sequences)
    codes = (act,) if name == "simple_rnn" else (act, ract)
    xs = np.ascontiguousarray(x)
    shapes = product_shapes(layer, name)
    n = splits(shapes, batch, T)
    slices = parallel.row_slices(batch, n) if n > 1 else [slice(0, batch)]
    packing = on_mkl(shapes, batch, dtype)
    gemm = mkl.compute(dtype) if packing else mkl.no_compute(dtype)
    # np.dot's operands are the stacks copied transposed; MKL transposes them as it packs, and the loop's
    # matrices are then never read (at 256x50x128x256 the transposed copy took 0.7 ms of a 32 ms call)
    matrices = [_unused(dtype, 2) if packing else np.ascontiguousarray(S.T) for S in stacks]
    packed = {}  # by a slice's row count: the matrices packed for MKL (into this thread's buffers), or empty
    for rows in slices:
        m = rows.stop - rows.start
        if m not in packed and packing:
            slots = range(len(packed) * len(stacks), (len(packed) + 1) * len(stacks))
            sizes = [mkl.packed_size(S.shape[::-1], m, False, dtype) for S in stacks]
            into = [mkl.scratch(k, size, dtype) for k, size in zip(slots, sizes)]
            packed[m] = tuple(mkl.packed(S, m, buffer, transposed=True) for S, buffer in zip(stacks, into))
        elif m not in packed:
            packed[m] = (_unused(dtype, 1),) * len(stacks)

    def call(rows):  # the whole sequence of some rows, in one call that does not hold the GIL
        io = (masks[rows] if has_mask else masks, last[rows], outputs[rows] if sequences else outputs)
        with mkl.one_thread() if packing else contextlib.nullcontext():
            loop(xs[rows], tuple(matrices), gemm, packed[rows.stop - rows.start], bias,
                 *(a[rows] for a in buffers), io, flags, *codes)  # fmt: skip

    if n > 1:
        parallel.map_slices(call, batch, n)
    else:
        call(slices[0])
    h = hx[:, :u].copy()
    finals = [h] if c is None else [h, c]
    return (h if not has_mask else last), (outputs if sequences else None), finals


@functools.cache
def _unused(dtype, ndim: int) -> np.ndarray:
    """An empty array for an argument a loop does not touch (no mask, no sequences; np.dot's products), shared.
    (Not read-only: numba types a read-only array apart, a second compiled signature.)"""
    return np.empty((0,) * ndim, dtype)


#: The gates of each loop's buffer ``g`` (GRU after: the state's product; its input's goes to ``gx``).
GATES = {"simple_rnn": 1, "lstm": 4, "gru_after": 3, "gru_before": 2}


def step_stacks(layer, name: str) -> tuple:
    """The loop ``name``'s weights as the TRANSPOSES of its per-step products' matrices, (N, K) each (a product is
    ``a @ S^T``), then its bias by gate (gates, U). SimpleRNN and LSTM: ``[Wh, Wx]`` (G, U + F), the state's
    columns first. GRU before: ``[Wh, Wx]`` of gates z and r (2U, U + F) and of the candidate (U, U + F). GRU after:
    the state's ``Wh`` (3U, U) and the input's ``Wx`` (3U, F) apart, bias ``bx + bh`` for z and r, then the
    candidate's ``bh`` and ``bx``. C-contiguous; MKL packs them transposing (:func:`mkl.packed`), and :func:`run`
    copies them transposed for ``np.dot`` (on a transposed view numba's ``np.dot`` measured 10x slower)."""
    Wx, Wh = layer.Wx, layer.Wh  # (G, F), (G, U)
    u, dtype = layer.units, layer.dtype
    G = Wx.shape[0]
    stack = lambda rows: np.concatenate([Wh[rows], Wx[rows]], axis=1)  # noqa: E731 - a new C-contiguous array
    if name in ("simple_rnn", "lstm"):
        bias = layer.b if layer.use_bias else np.zeros(G, dtype)
        return stack(slice(None)), bias if name == "simple_rnn" else bias.reshape(G // u, u)
    if name == "gru_before":
        bias = (layer.b if layer.use_bias else np.zeros(G, dtype)).reshape(3, u)
        return stack(slice(0, 2 * u)), stack(slice(2 * u, None)), bias
    bx, bh = (layer.b[0], layer.b[1]) if layer.use_bias else (np.zeros(G, dtype),) * 2
    bias = np.stack([bx[:u] + bh[:u], bx[u : 2 * u] + bh[u : 2 * u], bh[2 * u :], bx[2 * u :]])
    return np.ascontiguousarray(Wh), np.ascontiguousarray(Wx), bias


def packed_instructions(name: str = "lstm_loop", dtype=np.float32) -> dict[str, int]:
    """How many packed (SIMD) floating-point instructions the compiled loop ``name`` holds, by mnemonic, for its
    first signature with ``dtype`` arrays (a call must have compiled it): the check that the fused pass was
    vectorised."""
    counts: dict[str, int] = {}
    for mnemonic, _ in _packed(name, dtype):
        counts[mnemonic] = counts.get(mnemonic, 0) + 1
    return counts


def vector_registers(name: str = "lstm_loop", dtype=np.float32) -> dict[str, int]:
    """How many of the loop's packed multiply-adds (``vfm*``: the activations' polynomials) are on 128-, 256- and
    512-bit registers (``xmm``, ``ymm``, ``zmm``): the check that :func:`wide_vectors` reached the fused pass."""
    counts = dict.fromkeys(("xmm", "ymm", "zmm"), 0)
    for mnemonic, widest in _packed(name, dtype):
        counts[widest] += mnemonic.startswith("vfm")
    return counts


def _packed(name: str, dtype) -> list[tuple[str, str]]:
    """``(mnemonic, widest register)`` of each packed floating-point instruction of the loop ``name``. numba shows
    no assembly for code loaded from its cache, so this compiles a fresh, uncached copy."""
    import numba

    signatures = [s for s in _jit()[name].signatures if s[0].dtype == numba.from_dtype(np.dtype(dtype))]
    if not signatures:
        raise ValueError(
            f"Argument `name`: {name!r} has no compiled signature for {np.dtype(dtype).name}; call a layer first."
        )
    fresh = numba.njit(nogil=True, fastmath=FASTMATH, error_model="numpy")(_PYTHON[name])
    fresh.compile(signatures[0])
    found = []
    for line in fresh.inspect_asm(signatures[0]).splitlines():
        parts = line.split()
        if parts and parts[0].endswith(("ps", "pd")) and "mm" in line:  # on xmm / ymm / zmm registers
            found.append((parts[0], next(r for r in ("zmm", "ymm", "xmm") if r in line)))
    return found


# --- the activations' accuracy ----------------------------------------------------------------------
#: The float32 activations computed by a polynomial, and their float64 references.
APPROXIMATED = ("tanh", "sigmoid")
#: Their largest error in float32 ulps over all 2^32 float32 inputs, measured exhaustively by
#: ``benchmarks/activation_ulps.py`` (docs/performance.md); the tests check samples against it.
MAX_ULPS = {"tanh": 1.3320, "sigmoid": 1.0326}


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """``name`` of float32 ``x`` in float64 (NumPy's ``tanh``, the engine's overflow-free ``sigmoid``)."""
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        x = x.astype(np.float64)
    return np.tanh(x) if name == "tanh" else activations.sigmoid(x)


def approximation(name: str, x: np.ndarray) -> np.ndarray:
    """The compiled float32 activation ``name`` (:data:`APPROXIMATED`) of every element of float32 ``x`` (1-D)."""
    if name not in APPROXIMATED:
        raise ValueError(
            f"Received an invalid value for argument `name`, expected one of {list(APPROXIMATED)}, got {name!r:.100}."
        )
    x = np.ascontiguousarray(x, np.float32).reshape(-1)
    out = np.empty_like(x)
    _jit()[f"{name}_f32_array"](x, out)
    return out


def ulp_errors(name: str, x: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """|error| of ``values`` (default: :func:`approximation`) against the float64 :func:`reference`, in float32 ulps
    of the exact value (``2^(e - 24)`` for ``|y|`` in ``[2^(e-1), 2^e)``, at least the smallest subnormal 2^-149).
    NaN where the reference is NaN and the value is too (agreement); inf where exactly one is NaN."""
    x = np.ascontiguousarray(x, np.float32).reshape(-1)
    got = (approximation(name, x) if values is None else np.asarray(values, np.float32).reshape(-1)).astype(np.float64)
    exact = reference(name, x)
    _, exponent = np.frexp(exact)
    ulp = np.maximum(np.ldexp(1.0, exponent - 24), 2.0**-149)
    with np.errstate(invalid="ignore"):
        errors = np.abs(got - exact) / ulp
    errors[np.isnan(exact) != np.isnan(got)] = np.inf
    return errors


def max_ulp_error(name: str, start: int = 0, stop: int = 1 << 32, block: int = 1 << 24):
    """``(max error in ulps, the float32 input where it is, inputs checked)`` over the float32 bit patterns
    ``start .. stop - 1`` (all 2^32 by default: NaNs, infinities, zeros and subnormals included)."""
    worst, where, checked = 0.0, np.float32(0), 0
    for first in range(start, stop, block):
        bits = np.arange(first, min(first + block, stop), dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        errors = ulp_errors(name, x)
        agree = np.isnan(errors)  # NaN in, NaN out
        errors[agree] = 0
        i = int(np.argmax(errors))
        if errors[i] > worst:
            worst, where = float(errors[i]), x[i]
        checked += x.size
    return worst, where, checked
