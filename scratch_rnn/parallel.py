"""Every core for a large batch: how many threads a recurrent layer's call splits its batch across.

A recurrent layer's samples are independent, so a call with a large batch can run its time loop on
slices of the batch in several threads at once: NumPy's ufuncs and BLAS release the GIL while they
compute. Each thread runs the whole sequence on its rows with its own scratch buffers (the layer's
per-thread :class:`~scratch_rnn.rnn.Workspace`), so the threads meet once per call, not once per
step. The thread count comes from, first to last:

* :func:`threads` ``(n)``, a context manager (``model.predict(x, threads=n)`` uses it), for the
  calls made inside it, in this thread (a ``contextvars`` setting, so other threads are unaffected);
* :func:`set_num_threads` ``(n)``, for the process;
* the environment variable ``SCRATCH_RNN_THREADS``;
* the machine (:func:`default_threads`): with threadpoolctl installed (the ``fast`` extra) and no BLAS thread
  variable in the environment, the cores this process may run on (``os.sched_getaffinity``, else
  ``os.cpu_count``); with one of ``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS`` set, the cores over that many BLAS threads, at least 1; else 1, no split (BLAS takes
  every core itself and the engine cannot lower it).

A call splits only when the batch is large enough to pay (:func:`split_count`, measured in
``docs/performance.md``, "Threads"). A split run computes the same bits as the unsplit one where BLAS
computes each row of a product independently of the others and takes the same path for a slice as for the
whole batch. OpenBLAS does, with two exceptions, both summing in another order (an ulp or so): a one-row
product is a matrix-vector product (the policy keeps 8 rows a thread), and on SkylakeX a product of up to
about 10^6 multiply-adds takes a small-matrix kernel, so a slice below that size and a batch above it
differ (the policy can split such a call: GRU(64, reset_after=False) on 384 features at batch 400, an ulp).
``tests/test_threads.py`` forces splits of small batches and checks the bits, and that case's tolerance.

BLAS has threads of its own: a split run with a multi-threaded BLAS asks for ``threads x BLAS threads``
threads, more than the cores, and took 1.06-1.5x the time of BLAS's threads alone here (docs/performance.md),
while a split with BLAS on one thread beat BLAS's threads alone at the large shapes. So with threadpoolctl
installed and no BLAS thread variable set (:func:`limits_blas`), a split call lowers every BLAS pool to
``max(1, cores // n)`` threads for an ``n``-way split while it runs (never raising one), and puts them back
after: process-wide, counted, so that the last of several concurrent split calls restores them, not the first
to finish (:func:`blas_limited`). A user who manages BLAS's threads sets one of its variables: the engine then
leaves BLAS alone (and splits across the cores BLAS leaves, as above); ``SCRATCH_RNN_THREADS=1`` turns the
split off. Libraries whose threads threadpoolctl sets per calling thread (MKL, OpenBLAS built on OpenMP) are
left alone, as is OpenBLAS while another Python thread holds it in a ``threadpool_limits`` block (threadpoolctl
ignores the others' settings then). threadpoolctl is imported at the first split, never by ``import scratch_rnn``.

Each slice of a split runs pinned to one of the caller's cores while it runs (:data:`PIN_SLICES`; off with
``SCRATCH_RNN_PIN=0``): unpinned, a pool thread woken after the process idled lands on the waking thread's
core and the two slices share it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from scratch_rnn.checks import positive_int

#: The environment variable giving the default thread count.
ENV = "SCRATCH_RNN_THREADS"

#: A call splits only if each thread gets at least this many samples (rows of the batch)...
MIN_ROWS = 8
#: ... and, with ``n`` threads, at least ``(n - 1) * MIN_STEP_FLOPS`` flops of matrix products per timestep.
#: Why per timestep: the GIL. Each step is a dozen NumPy calls whose Python side (a few microseconds each) holds
#: the GIL, and only the computing inside them runs in parallel; so a thread's step must compute for longer than
#: the other threads' Python sides take. Measured on 2 cores (docs/performance.md, "Threads", "The default"), idle
#: machine, medians, the NumPy kernels split in two with BLAS on one thread against the call unsplit with BLAS on
#: both cores (the other default): at 5-25 Mflop per thread and step LSTM and GRU took 0.69-1.47x the time (15
#: of 19 above 1x; 64x200x64x128, 128x50x64x128, 256x50x64x128), from 38 Mflop 0.64-0.93x (14 of 14). SimpleRNN
#: lost at most shapes (1.41x at 512x20x128x256, 50 Mflop): OpenBLAS's threads parallelise its one product well.
#: The split's time is bimodal: some calls run both threads on one core and take one thread's time or more
#: (pinning the two threads to two cores removed that mode: LSTM 128x50x64x128 6.9 ms against 12.8 median).
#: It was 4 Mflop when the comparison was against one thread (the default did not split).
#: The ``n - 1`` is the model's extrapolation beyond two threads (not measured: this machine has 2 cores).
MIN_STEP_FLOPS = 1 << 25
#: ... or ``(n - 1) * MIN_STEP_FLOPS_SEQUENTIAL`` when the call's products run on one thread whether it splits or
#: not (MKL's packed products, :mod:`scratch_rnn.mkl`): unsplit, such a call leaves the other cores idle. Measured
#: (docs/performance.md, "MKL's packed products"), 2 cores, idle, MKL products: split in two against unsplit,
#: LSTM 64x200x64x128 (6.3 Mflop a thread and step) 13.2 against 20.7 ms, 128x50x64x128 6.2 against 10.3, GRU
#: 128x50x64x128 7.4 against 9.1, SimpleRNN 128x50x64x128 (3.2 Mflop) 3.0 against 3.6, 256x50x128x256 10.6 against 17.5.
MIN_STEP_FLOPS_SEQUENTIAL = 1 << 22

#: Run each slice of a split on one core of the caller's while it runs (``os.sched_setaffinity``, Linux; each
#: thread's own setting restored after). On, because unpinned a split's time is bimodal: a pool thread woken after
#: the process was idle is placed on the waking thread's core (Linux's wake-affine placement), both slices share
#: one core until the load balancer moves one, and the call takes one thread's time or more. Measured on the
#: 2-core VM, idle, each call after 0.25 s of rest (docs/performance.md, "The default"): LSTM 64x200x64x128 24 ms
#: unpinned (23 back to back), 15 pinned (14); SimpleRNN 256x50x128x256 21 (21) against 12 (11). The cost: while a
#: split runs its slices cannot leave their cores, so another process busy on one of them delays the call (off:
#: ``scratch_rnn.parallel.PIN_SLICES = False``, or ``SCRATCH_RNN_PIN=0`` in the environment).
PIN_SLICES = os.environ.get("SCRATCH_RNN_PIN", "1").strip() != "0"

_global: int | None = None  # set_num_threads
_local: contextvars.ContextVar[int | None] = contextvars.ContextVar("scratch_rnn_threads", default=None)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@functools.cache
def machine_threads() -> int:
    """The cores this process may run on (read once)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


#: BLAS's thread settings, in the order OpenBLAS reads them (MKL's last).
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _blas_env() -> str | None:
    """The first BLAS thread variable set in the environment (its name), else None."""
    return next((name for name in BLAS_ENV if os.environ.get(name, "").strip()), None)


@functools.cache
def limits_blas() -> bool:
    """Whether a split call lowers BLAS's threads while it runs (read once): threadpoolctl is installed (found,
    not imported) and no BLAS thread variable is set (a user who sets one manages BLAS)."""
    return _blas_env() is None and importlib.util.find_spec("threadpoolctl") is not None


@functools.cache
def default_threads() -> int:
    """The machine's default (read once): its cores when a split call can lower BLAS's threads
    (:func:`limits_blas`); else its cores over BLAS's threads as its environment sets them, and 1 when it does
    not set them (BLAS then uses every core) or sets them in a form other than one integer."""
    name = _blas_env()
    if name is not None:
        text = os.environ[name].strip()
        return max(1, machine_threads() // int(text)) if text.isdigit() and int(text) > 0 else 1
    return machine_threads() if limits_blas() else 1


def check_threads(value, argument: str = "threads") -> int:
    """``value`` as a thread count (a positive integer), else a ValueError naming ``argument``."""
    return positive_int(value, argument)


def get_num_threads() -> int:
    """The thread count a call made here would split a large batch across (see the module docstring)."""
    value = _local.get()
    if value is not None:
        return value
    if _global is not None:
        return _global
    text = os.environ.get(ENV, "").strip()
    if text:
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number <= 0:
            raise ValueError(
                f"Received an invalid value for environment variable `{ENV}`, expected a positive integer, "
                f"got {text!r}."
            )
        return number
    return default_threads()


def set_num_threads(n) -> None:
    """Set the process's thread count (``n`` a positive integer), or None to go back to the default
    (``SCRATCH_RNN_THREADS``, else :func:`default_threads`)."""
    global _global
    _global = None if n is None else check_threads(n, "n")


@contextlib.contextmanager
def threads(n):
    """Run the calls made inside the block, in this thread, on up to ``n`` threads each
    (``n`` a positive integer; None leaves the setting as it is)."""
    if n is None:
        yield
        return
    token = _local.set(check_threads(n, "threads"))
    try:
        yield
    finally:
        _local.reset(token)


#: A call whose time loop is compiled (scratch_rnn.compiled) runs each slice's whole sequence in one call that does
#: not hold the GIL: the threads meet once a call, so it splits when each thread gets :data:`MIN_ROWS` rows and, with
#: ``n`` threads, ``(n - 1) * MIN_CALL_ELEMENTS`` gate elements (rows x timesteps x the step product's columns).
MIN_CALL_ELEMENTS = 3 << 14


def split_count_whole(batch: int, elements_per_row: int) -> int:
    """How many threads a compiled call (:mod:`scratch_rnn.compiled`) on ``batch`` rows splits them across:
    the most, up to :func:`get_num_threads`, that give each thread :data:`MIN_ROWS` rows and ``(n - 1) *``
    :data:`MIN_CALL_ELEMENTS` gate elements, ``elements_per_row`` a row's over the call; 1 means no split."""
    n = batch // MIN_ROWS
    if n <= 1:  # before asking the settings: the small calls this loop is for must not pay for them
        return 1
    return _fewer(min(get_num_threads(), n), batch, elements_per_row, MIN_CALL_ELEMENTS)


def _fewer(n: int, batch: int, per_row: int, minimum: int) -> int:
    """``n`` lowered until each of ``n`` threads gets ``(n - 1) * minimum`` of the work (``per_row`` a row's)."""
    while n > 1 and (batch // n) * per_row < (n - 1) * minimum:
        n -= 1
    return max(n, 1)


def split_count(batch: int, step_flops_per_row, sequential_products=None) -> int:
    """How many threads a call with ``batch`` rows should split them across: the most, up to
    :func:`get_num_threads`, that give each thread :data:`MIN_ROWS` rows and, with ``n`` threads,
    ``(n - 1) * MIN_STEP_FLOPS`` flops a step (:data:`MIN_STEP_FLOPS_SEQUENTIAL` when
    ``sequential_products(flops)`` says a step's products of ``flops`` flops run on one thread anyway); 1 means no
    split. ``step_flops_per_row()`` is the flops of one row's matrix products in one step (a callable: only asked
    when the batch is large enough to split)."""
    n = min(get_num_threads(), batch // MIN_ROWS)
    if n <= 1:
        return 1
    per_row = step_flops_per_row()
    sequential = sequential_products is not None and sequential_products(batch * per_row)
    return _fewer(n, batch, per_row, MIN_STEP_FLOPS_SEQUENTIAL if sequential else MIN_STEP_FLOPS)


def row_slices(batch: int, n: int) -> list[slice]:
    """``n`` contiguous slices of ``range(batch)``, sizes differing by at most one."""
    size, extra = divmod(batch, n)
    bounds = [0]
    for i in range(n):
        bounds.append(bounds[-1] + size + (i < extra))
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


# --- BLAS's threads while a split call runs ------------------------------------------------------
#: SciPy's BLAS, which the compiled loop's ``np.dot`` calls (scratch_rnn.compiled): loaded after the scan of the
#: libraries, it would be missed, and a split of the compiled loop with it on 2 threads took 20-40x the time.
SCIPY_BLAS = "scipy.linalg.cython_blas"


class _BlasState:
    """The process's BLAS limit (under ``_blas_lock``): how many split calls run (``users``), the process-wide
    BLAS libraries (``pools``, threadpoolctl's controllers; its scan takes about 2 ms, so it is kept, and made
    again once when SciPy's BLAS appears), and ``lowered``: ``{filepath: [pool, count before, count set]}``."""

    users = 0
    pools: list | None = None
    scipy_seen = False
    lowered: dict = {}


_blas = _BlasState()
_blas_lock = threading.Lock()


def _set_blas_threads(pool, count: int) -> None:
    """``pool.set_num_threads(count)``. threadpoolctl (3.6 on) lets one Python thread at a time set OpenBLAS's
    pthreads count, the first to set it, until that thread clears it; a split's first and last calls may be
    different threads, so a call that took that role gives it back at once."""
    shared = getattr(type(pool), "_SHARED_STATE", None)
    owner = getattr(shared, "controlling_thread", False)
    pool.set_num_threads(count)
    if owner is None or (owner is not False and not owner.is_alive()):
        type(pool).clear_controlling_thread()


def _blas_pools() -> list:
    """threadpoolctl's controllers of the process-wide BLAS libraries loaded (the cached scan, or a new one
    when SciPy's BLAS was loaded since)."""
    scipy_loaded = SCIPY_BLAS in sys.modules
    if _blas.pools is None or (scipy_loaded and not _blas.scipy_seen):
        import threadpoolctl

        pools = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
        _blas.pools = [pool for pool in pools if _process_wide(pool)]
        _blas.scipy_seen = scipy_loaded
    return _blas.pools


def _process_wide(pool) -> bool:
    """Whether ``pool``'s thread count is the process's (OpenBLAS on its own threads, BLIS, FlexiBLAS), which the
    limiter lowers and restores. Not MKL's nor OpenBLAS-on-OpenMP's: threadpoolctl sets those for the calling
    thread only (the engine's MKL products already run on one thread per calling thread, scratch_rnn.mkl)."""
    return not (pool.internal_api == "mkl" or getattr(pool, "threading_layer", None) == "openmp")


def _lower_blas(n: int) -> None:
    """One more split call, ``n`` threads: every BLAS pool down to ``max(1, cores // n)`` threads if it has
    more (the first call saves each pool's count; a later one may lower it further, never raise it)."""
    with _blas_lock:
        _blas.users += 1  # first: whatever fails below, blas_limited's release counts this call out
        if _blas.users == 1:
            _blas.lowered = {}
            pools = _blas_pools()
        else:
            pools = _blas.pools
        target = max(1, machine_threads() // n)
        for pool in pools:
            count = pool.num_threads
            if count is None or count <= target:
                continue
            _set_blas_threads(pool, target)
            now = pool.num_threads
            if now != count:  # not when threadpoolctl ignored the call (another thread holds OpenBLAS)
                _blas.lowered.setdefault(pool.filepath, [pool, count, now])[2] = now


def _restore_blas() -> None:
    """Every pool a split lowered back to its count before, unless something else changed it meanwhile."""
    for pool, count, lowered in _blas.lowered.values():
        if pool.num_threads == lowered:
            _set_blas_threads(pool, count)
    _blas.lowered = {}


def _release_blas() -> None:
    """One split call fewer; the last restores BLAS's threads."""
    with _blas_lock:
        _blas.users -= 1
        if _blas.users == 0:
            _restore_blas()


@contextlib.contextmanager
def blas_limited(n: int):
    """BLAS's threads lowered for an ``n``-way split while the block runs (see the module docstring; every
    split call, :func:`map_slices`, runs in one when :func:`limits_blas`). Usable from several threads at once:
    BLAS's counts come back when the last block ends."""
    try:
        _lower_blas(n)
        yield
    finally:
        _release_blas()


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there, but its executor would believe them
    idle and queue slices that never run. The child starts a pool of its own on its first split. BLAS's
    threads, if a split was running in the parent when it forked, go back to what they were: the calls that
    lowered them do not exist in the child, so none of them would restore them."""
    global _pool, _pool_lock, _blas_lock
    _pool, _pool_lock, _blas_lock = None, threading.Lock(), threading.Lock()
    if _blas.users:
        _blas.users = 0
        _restore_blas()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool, with at least ``workers`` threads (made, or replaced by a larger one, on demand)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            # The old pool is dropped, not shut down: a call may be submitting to it; once unreferenced,
            # its idle threads exit (ThreadPoolExecutor wakes them when it is collected).
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="scratch_rnn")
        return _pool


def map_slices(fn, batch: int, n: int) -> list:
    """``[fn(rows) for rows in row_slices(batch, n)]``, the first slice in this thread and the others in the
    shared pool at the same time, each in a copy of this thread's context (``contextvars`` settings such as
    :func:`threads` and ``scratch_rnn.compiled.using`` apply to every slice). Waits for every slice before
    returning or raising (the first error)."""
    with blas_limited(n) if limits_blas() else contextlib.nullcontext():
        return _map(fn, row_slices(batch, n))


def _pinned(fn, cpu: int):
    """``fn`` run with the calling thread on core ``cpu`` only, its own affinity restored after. Where the
    system refuses to pin (a sandbox, a core taken away meanwhile: OSError), ``fn`` runs unpinned: pinning is
    a speed-up, never a reason for a call to fail."""

    def run(rows):
        saved = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            return fn(rows)
        try:
            return fn(rows)
        finally:
            os.sched_setaffinity(0, saved)

    return run


def _map(fn, slices: list) -> list:
    """:func:`map_slices`'s work, with BLAS as it is."""
    fns = [fn] * len(slices)
    if PIN_SLICES and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:
            fns = [_pinned(fn, cpus[i % len(cpus)]) for i in range(len(slices))]
    pool = _executor(len(slices) - 1)
    futures = [pool.submit(contextvars.copy_context().run, f, rows) for f, rows in zip(fns[1:], slices[1:])]
    results, error = [], None
    try:
        results.append(fns[0](slices[0]))
    except BaseException as err:
        error = err
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as err:
            error = error or err
    if error is not None:
        raise error
    return results
