"""The per-step product on Intel MKL's packed matrices, used when the ``mkl`` extra is installed (#14).

Why: every step of a recurrent layer multiplies the same weights by a new state. A BLAS ``gemm`` call
re-packs both operands into its blocked layout every time; MKL can pack the constant one once per call
(``cblas_?gemm_pack``) and reuse it at every step (``cblas_?gemm_compute``), as oneDNN's RNNs (PyTorch's LSTM
on the CPU) do. Measured on this project's 2-core AVX-512 VM, one thread, against NumPy's OpenBLAS 0.3.31
(docs/performance.md, "MKL's packed products"): from 2 Mflop the packed product took 1.12-1.47x less time at
the bench shapes' step products (below 1 Mflop more), and a split LSTM call at 256x50x128x256 went from 1.18x
to 1.03x PyTorch's time.

What it is: :func:`recurrent_product` returns ``product(x, out)`` for a constant ``weights`` matrix, either
``out = weights @ x`` (``left``: the LSTM and GRU kernels' columns) or ``out = x @ weights`` (rows: SimpleRNN).
It is MKL's packed product when :func:`chosen` says so, else ``np.dot``, so a kernel calls it the same way
either way. MKL runs on one thread per calling thread: a call's parallelism is the engine's batch split
(:mod:`scratch_rnn.parallel`), which measured faster than MKL's own threads (45 against 36 ms for that LSTM).
When the engine is the first in the process to load MKL it selects MKL's sequential threading layer
(``MKL_Set_Threading_Layer``): no OpenMP runtime, nothing for a forked child to inherit; when something else
initialised MKL first (a NumPy built on MKL), its layer stays and each product sets one thread for itself
(``MKL_Set_Num_Threads_Local(1)``, the caller's setting restored after). A split call computes the same bits
as the unsplit one (MKL's single-threaded product computes each column of the batch in the same order whatever
the batch size; ``tests/test_mkl.py`` checks it).

Selection: ``SCRATCH_RNN_BLAS`` unset or ``auto`` takes MKL when the ``mkl`` package is installed and the
product has at least :data:`AUTO_MIN_FLOPS` flops (below, the ctypes call and packing cost more than they
save); ``numpy`` never; ``mkl`` always (an ImportError naming the extra if MKL is missing). :func:`using`
overrides it for a block. float32 and float64 only (``sgemm``/``dgemm``); other dtypes take ``np.dot``.
MKL is found through the ``mkl`` distribution's files (the wheel puts ``libmkl_rt`` in the environment's
``lib``), else ``ctypes.util.find_library``, and loaded at the first product that uses it, never by
``import scratch_rnn``.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import functools
import os
import threading

import numpy as np

from scratch_rnn import checks

#: The environment variable choosing the per-step product: ``auto`` (default), ``numpy`` or ``mkl``.
ENV = "SCRATCH_RNN_BLAS"
CHOICES = ("auto", "numpy", "mkl")
#: ``auto`` packs only a product of at least this many flops (``2 * M * K * N``), measured
#: (docs/performance.md): at 32x32 @ 32x128 (0.26 Mflop) MKL took 3.2 us against OpenBLAS's 2.0.
AUTO_MIN_FLOPS = 1 << 21

# CBLAS enumerations (mkl_cblas.h)
_ROW_MAJOR, _NO_TRANS, _TRANS, _PACKED, _A_MATRIX, _B_MATRIX = 101, 111, 112, 151, 161, 162
_SEQUENTIAL = 1  # MKL_THREADING_SEQUENTIAL (mkl_service.h)

_CHOICE = checks.EnvironmentChoice(ENV, CHOICES)
_LOCK = threading.Lock()
#: The batch that chooses between MKL and ``np.dot`` (:func:`choosing_for`), when it is not the product's own.
_CHOOSING_BATCH: contextvars.ContextVar[int | None] = contextvars.ContextVar("scratch_rnn_mkl_batch", default=None)


def choice() -> str:
    """The product asked for: :func:`using`'s, else ``SCRATCH_RNN_BLAS``'s (``auto`` when unset)."""
    return _CHOICE.get()


def using(name: str):
    """Products made inside the block (in this thread or task) follow ``name`` (``auto``, ``numpy`` or
    ``mkl``), whatever ``SCRATCH_RNN_BLAS`` says."""
    return _CHOICE.using(name)


@functools.cache
def library_path() -> str | None:
    """Where ``libmkl_rt`` is: in the ``mkl`` distribution's files, else on the linker's path; None if nowhere."""
    import importlib.metadata

    try:
        files = importlib.metadata.distribution("mkl").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        name = file.name
        if name.startswith("libmkl_rt.so") or (name.startswith("mkl_rt") and name.endswith(".dll")):
            path = os.path.normpath(str(file.locate()))
            if os.path.exists(path):
                return path
    return ctypes.util.find_library("mkl_rt")


def available() -> bool:
    """Whether MKL's runtime library can be found (not loaded)."""
    return library_path() is not None


_LIB = None


def library():
    """``libmkl_rt``, loaded once, with the argument types of the functions used here declared."""
    global _LIB
    with _LOCK:
        if _LIB is None:
            path = library_path()
            if path is None:
                raise ImportError(
                    f"{ENV}=mkl asks for MKL's packed products, but MKL is not installed: "
                    "pip install 'scratch-rnn[mkl]', or unset the variable to use NumPy's BLAS."
                )
            try:
                lib = _declared(ctypes.CDLL(path))
            except (OSError, AttributeError) as err:  # not loadable, or an MKL without the packed API
                raise ImportError(f"MKL's runtime {path} could not be used: {err}") from err
            # Sequential MKL (no OpenMP runtime at all), unless something in the process initialised MKL first:
            # then its threading layer stays, and each product runs on one thread of it (PackedProduct.bind).
            lib.sequential = lib.MKL_Set_Threading_Layer(_SEQUENTIAL) == _SEQUENTIAL
            _LIB = lib
        return _LIB


def _declared(lib):
    """``lib`` with the argument types of the functions used here declared (AttributeError if one is missing)."""
    i, p, size = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
    for prefix, scalar in (("s", ctypes.c_float), ("d", ctypes.c_double)):
        get_size = getattr(lib, f"cblas_{prefix}gemm_pack_get_size")
        get_size.argtypes, get_size.restype = [i, i, i, i], size
        getattr(lib, f"cblas_{prefix}gemm_pack").argtypes = [i, i, i, i, i, i, scalar, p, i, p]
        compute = getattr(lib, f"cblas_{prefix}gemm_compute")
        compute.argtypes, compute.restype = [i, i, i, i, i, i, p, i, p, i, scalar, p, i], None
    lib.MKL_Set_Num_Threads_Local.argtypes, lib.MKL_Set_Num_Threads_Local.restype = [i], i
    lib.MKL_Set_Threading_Layer.argtypes, lib.MKL_Set_Threading_Layer.restype = [i], i
    return lib


@functools.cache
def _usable() -> bool:
    """Whether MKL loads (``auto``'s question, asked once): a broken install makes ``auto`` use NumPy's BLAS;
    only ``SCRATCH_RNN_BLAS=mkl`` reports it (the ImportError of :func:`library`)."""
    try:
        library()
    except ImportError:
        return False
    return True


def chosen(flops: int, dtype) -> bool:
    """Whether a product of ``flops`` flops in ``dtype`` runs on MKL (see the module docstring)."""
    name = choice()
    if name == "numpy" or np.dtype(dtype) not in (np.float32, np.float64):
        return False
    if name == "mkl":
        library()  # the ImportError, if MKL is missing
        return True
    return flops >= AUTO_MIN_FLOPS and available() and _usable()


class PackedProduct:
    """``out = weights @ x`` (``left``) or ``out = x @ weights`` with ``weights`` packed once by MKL.

    ``x`` and ``out`` must be C-contiguous arrays of ``weights``' dtype with the product's shapes (``n`` the
    free dimension, the batch); :meth:`bind` checks them once and returns the product as a call with no
    arguments (the kernels bind their fixed buffers once a call: a pointer costs about a microsecond to read).
    """

    def __init__(
        self, weights: np.ndarray, n: int, left: bool, into: np.ndarray | None = None, transposed: bool = False
    ):
        lib = library()
        weights = np.ascontiguousarray(weights)
        self.dtype, self.left, self.n = weights.dtype, left, n
        prefix = "s" if weights.dtype == np.float32 else "d"
        # transposed: ``weights`` holds the matrix's transpose, and MKL transposes it as it packs (no copy first)
        rows, cols = weights.shape[::-1] if transposed else weights.shape
        # left: (M, K) @ (K, n) -> (M, n), the A operand packed; right: (n, K) @ (K, N) -> (n, N), B packed
        self.m, self.k, self.N = (rows, cols, n) if left else (n, rows, cols)
        identifier = _A_MATRIX if left else _B_MATRIX
        size = packed_size((rows, cols), n, left, weights.dtype)
        if into is not None and into.dtype == weights.dtype and into.ndim == 1 and into.size >= size:
            self.packed = into[:size]  # the caller's buffer, kept between calls
        else:
            self.packed = np.empty(size, weights.dtype)  # kept alive
        getattr(lib, f"cblas_{prefix}gemm_pack")(
            _ROW_MAJOR, identifier, _TRANS if transposed else _NO_TRANS, self.m, self.N, self.k, 1.0,
            weights.ctypes.data, weights.shape[1], self.packed.ctypes.data,
        )  # fmt: skip
        self.x_shape = (self.k, self.N) if left else (self.m, self.k)
        self.out_shape = (self.m, self.N)
        self._compute = getattr(lib, f"cblas_{prefix}gemm_compute")
        self._threads = lib.MKL_Set_Num_Threads_Local
        self._sequential = lib.sequential

    def bind(self, x: np.ndarray, out: np.ndarray):
        """The product of ``x`` into ``out`` as a call with no arguments (both buffers kept alive by it)."""
        for name, array, shape in (("x", x, self.x_shape), ("out", out, self.out_shape)):
            if array.shape != shape or array.dtype != self.dtype or not array.flags.c_contiguous:
                raise ValueError(
                    f"Received an invalid value for argument `{name}`, expected a C-contiguous {self.dtype} array "
                    f"of shape {shape}, got shape {array.shape}, dtype {array.dtype}, "
                    f"C-contiguous {array.flags.c_contiguous}."
                )
        a, b = (self.packed, x) if self.left else (x, self.packed)
        transa, transb = (_PACKED, _NO_TRANS) if self.left else (_NO_TRANS, _PACKED)
        args = (_ROW_MAJOR, transa, transb, self.m, self.N, self.k)
        args += (a.ctypes.data, self.k, b.ctypes.data, self.N, 0.0, out.ctypes.data, self.N)
        compute, threads = self._compute, self._threads
        keep = (x, out, self.packed)
        if self._sequential:  # MKL's sequential layer: one thread already

            def product():
                keep  # noqa: B018 - the buffers must outlive the call
                compute(*args)

            return product

        def product():
            keep  # noqa: B018 - the buffers must outlive the call
            previous = threads(1)  # one thread: the call's parallelism is the batch split
            try:
                compute(*args)
            finally:
                threads(previous)

        return product

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        self.bind(x, out)()


def packed_size(shape: tuple, n: int, left: bool, dtype) -> int:
    """The elements MKL's packed form of a ``shape`` weight matrix takes (:class:`PackedProduct`'s arguments), with
    64 bytes to spare. MKL asks for about 8 MB even for a small matrix (2^21 floats for an (8, 24) one)."""
    lib, dtype = library(), np.dtype(dtype)
    rows, cols = shape
    m, N, k = (rows, n, cols) if left else (n, cols, rows)
    get_size = getattr(lib, f"cblas_{'s' if dtype == np.float32 else 'd'}gemm_pack_get_size")
    size = get_size(_A_MATRIX if left else _B_MATRIX, m, N, k)
    return -(-size // dtype.itemsize) + 64 // dtype.itemsize


_SCRATCH = threading.local()


def scratch(slot: int, size: int, dtype) -> np.ndarray:
    """This thread's packing buffer number ``slot``, of at least ``size`` elements of ``dtype``: kept between calls
    and shared by every layer (MKL's packed form takes about 8 MB even for a small matrix, so a buffer per layer
    would add up, and a fresh one a call costs the pages). A call uses a slot until it returns, then the next call
    made in this thread may reuse it."""
    buffers = vars(_SCRATCH).setdefault("buffers", {})
    key = (slot, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype)
    return buffer


def packed(weights: np.ndarray, n: int, into: np.ndarray | None = None, transposed: bool = False) -> np.ndarray:
    """``weights`` packed by MKL as the B operand of ``x @ weights``, ``x`` with ``n`` rows: for compiled code
    (:mod:`scratch_rnn.compiled`), which calls :func:`compute` on it in one MKL thread (:func:`one_thread`).
    ``into``: a 1-D buffer of at least :func:`packed_size` elements to pack into, kept by the caller between calls
    (a fresh buffer of MKL's 8 MB each call measured 100 us a pack against 8 reused: GRU 16x10x8x8 on MKL took
    336 us a call with fresh buffers, 59 with reused ones). ``transposed``: ``weights`` is the (N, K) transpose of
    the matrix, which MKL transposes as it packs: bit for bit the same product, without a transposed copy first
    (a (1024, 384) float32 stack: 0.23 ms against 0.72 to copy it transposed, then pack)."""
    return PackedProduct(weights, n, left=False, into=into, transposed=transposed).packed


def compute(dtype):
    """MKL's ``cblas_?gemm_compute`` for ``dtype`` (float32 or float64), a ctypes function."""
    return getattr(library(), f"cblas_{'s' if np.dtype(dtype) == np.float32 else 'd'}gemm_compute")


@functools.cache
def no_compute(dtype) -> object:
    """A ctypes function of ``cblas_?gemm_compute``'s type for ``dtype`` that does nothing: what compiled code is
    given (and never calls) when its products are ``np.dot``'s, so that both kinds of call share one signature."""
    scalar = ctypes.c_float if np.dtype(dtype) == np.float32 else ctypes.c_double
    i, p = ctypes.c_int, ctypes.c_void_p
    return ctypes.CFUNCTYPE(None, i, i, i, i, i, i, p, i, p, i, scalar, p, i)(lambda *args: None)


@contextlib.contextmanager
def one_thread():
    """MKL on one thread in this thread while the block runs (already so on MKL's sequential layer)."""
    lib = library()
    if lib.sequential:
        yield
        return
    previous = lib.MKL_Set_Num_Threads_Local(1)
    try:
        yield
    finally:
        lib.MKL_Set_Num_Threads_Local(previous)


@contextlib.contextmanager
def choosing_for(batch: int):
    """Products made inside the block choose MKL or ``np.dot`` as a product over ``batch`` rows would, whatever
    their own ``n``: a split call's slices take what the whole call chose, so that both compute the same bits
    (``BaseRNN._recurrence``, as it does for the compiled loop)."""
    token = _CHOOSING_BATCH.set(batch)
    try:
        yield
    finally:
        _CHOOSING_BATCH.reset(token)


def recurrent_product(weights: np.ndarray, n: int, left: bool = True):
    """``product(x, out)`` computing ``out = weights @ x`` (``left``) or ``x @ weights``, ``n`` the batch: MKL's
    packed product when :func:`chosen` for ``n`` rows (or :func:`choosing_for`'s), else ``np.dot``.

    With MKL, each ``(x, out)`` pair is bound once (:meth:`PackedProduct.bind`) and the binding kept by the
    arrays' identities: the kernels pass the same buffer objects at every step. The cache holds the arrays
    themselves, so an identity cannot be reused by another array while its binding is kept."""
    rows, cols = weights.shape
    if not chosen(2 * rows * cols * (_CHOOSING_BATCH.get() or n), weights.dtype):
        if left:
            return lambda x, out: np.dot(weights, x, out=out)
        return lambda x, out: np.dot(x, weights, out=out)
    packed = PackedProduct(weights, n, left)
    bound = {}

    def product(x, out):
        entry = bound.get((id(x), id(out)))
        if entry is None:
            if len(bound) >= 4096:  # a caller passing new views every step: do not grow without bound
                bound.clear()
            entry = bound[id(x), id(out)] = (packed.bind(x, out), x, out)
        entry[0]()

    return product
