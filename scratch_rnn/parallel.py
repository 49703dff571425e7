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
* the machine: the cores this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``) over the
  threads BLAS was told to use by its environment variables (``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``,
  ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), at least 1 (:func:`default_threads`). Without them BLAS takes
  every core itself, so the default is 1: no split.

A call splits only when the batch is large enough to pay (:func:`split_count`, measured in
``docs/performance.md``, "Threads"). A split run computes the same bits as the unsplit one where BLAS
computes each row of a product independently of the others and takes the same path for a slice as for the
whole batch. OpenBLAS does, with two exceptions, both summing in another order (an ulp or so): a one-row
product is a matrix-vector product (the policy keeps 8 rows a thread), and on SkylakeX a product of up to
about 10^6 multiply-adds takes a small-matrix kernel, so a slice below that size and a batch above it
differ (the policy can split such a call: GRU(64, reset_after=False) at batch 400, 1.2e-7 at most).
``tests/test_threads.py`` forces splits of small batches and checks the bits, and that case's tolerance.

BLAS has threads of its own: a split run with a multi-threaded BLAS asks for ``threads x BLAS
threads`` threads, more than the cores, and took 1.06-1.5x the time of BLAS's threads alone here
(docs/performance.md). The engine does not change BLAS's setting (it depends on NumPy only); with
``threads > 1`` limit BLAS to one thread: ``OPENBLAS_NUM_THREADS=1`` before the process starts (then the
default uses every core) or ``threadpoolctl.threadpool_limits(1, user_api="blas")``, as ``scratch-rnn bench``
does.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
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
#: the other threads' Python sides take. Measured on 2 cores (docs/performance.md, "Threads"), split in two with
#: BLAS on one thread, idle machine: from about 4 Mflop per thread and step a call took 0.5-0.95x the time of one
#: thread, but GRU up to 1.08x at middle shapes (1.2x with another process busy); below 2 Mflop up to 5x longer.
#: The ``n - 1`` is the model's extrapolation beyond two threads (not measured: this machine has 2 cores).
MIN_STEP_FLOPS = 1 << 22

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


@functools.cache
def default_threads() -> int:
    """The machine's default: its cores over BLAS's threads as its environment sets them (read once);
    1 when it does not set them (BLAS then uses every core) or sets them in a form other than one integer."""
    for name in BLAS_ENV:
        text = os.environ.get(name, "").strip()
        if text:
            return max(1, machine_threads() // int(text)) if text.isdigit() and int(text) > 0 else 1
    return 1


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


def split_count(batch: int, step_flops_per_row) -> int:
    """How many threads a call with ``batch`` rows should split them across: the most, up to
    :func:`get_num_threads`, that give each thread :data:`MIN_ROWS` rows and, with ``n`` threads,
    ``(n - 1) * MIN_STEP_FLOPS`` flops a step; 1 means no split. ``step_flops_per_row()`` is the flops of one
    row's matrix products in one step (a callable: only asked when the batch is large enough to split)."""
    n = min(get_num_threads(), batch // MIN_ROWS)
    if n <= 1:
        return 1
    per_row = step_flops_per_row()
    while n > 1 and (batch // n) * per_row < (n - 1) * MIN_STEP_FLOPS:
        n -= 1
    return n


def row_slices(batch: int, n: int) -> list[slice]:
    """``n`` contiguous slices of ``range(batch)``, sizes differing by at most one."""
    size, extra = divmod(batch, n)
    bounds = [0]
    for i in range(n):
        bounds.append(bounds[-1] + size + (i < extra))
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there, but its executor would believe them
    idle and queue slices that never run. The child starts a pool of its own on its first split."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


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
    slices = row_slices(batch, n)
    pool = _executor(n - 1)
    futures = [pool.submit(contextvars.copy_context().run, fn, rows) for rows in slices[1:]]
    results, error = [], None
    try:
        results.append(fn(slices[0]))
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
