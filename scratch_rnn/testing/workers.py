"""A sweep split into units of work: run in parallel processes (``--workers``) or across CI jobs (``--shard``).

A sweep of ``examples`` cases per layer and dtype is cut into *blocks* of at most :data:`BLOCK` cases
(:func:`plan`); a :class:`Unit` is one ``(layer, dtype, block)``. Block 0 draws its cases from the
sweep's seed, as one unsplit run always did; block ``b > 0`` draws from a seed of its own
(:func:`scratch_rnn.testing.verify.block_seed`) and leaves out Hypothesis's simplest case, which every
seed starts with, so no two blocks check the same case. The blocks depend on the seed, ``examples``
and :data:`BLOCK` only: one process, two workers or three CI shards run the same units, and the merged
report is the same.

:func:`shard` gives shard ``k`` of ``n`` every ``n``-th unit (disjoint, together all of them, each
with a mix of layers). :func:`run_units` runs units in this process (``workers=1``) or in a pool of
``workers`` processes (``concurrent.futures.ProcessPoolExecutor``, *spawn* start: TensorFlow does not
survive a fork after its import); each worker imports Keras once and runs many units. A worker that
dies (a candidate calling ``os._exit``, a segfault) or stalls (no case finished for ``stall_seconds``:
it is killed) fails its unit in the report; it is never dropped. :func:`merge_reports` folds the units'
:class:`~scratch_rnn.testing.check.Report` objects into one per layer and dtype.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from scratch_rnn.testing.check import Failure, Report

#: Cases per block: small enough for two workers to share a 4-layer sweep evenly, large enough that a
#: block's fixed costs (a Hypothesis run, the first Keras build of a shape) stay small against its cases.
BLOCK = 25
#: A worker with a unit running and no case finished for this long is taken as hung and killed
#: (``run_units(stall_seconds=...)``; the CLI uses twice ``--timeout`` plus this).
STALL_SECONDS = 120.0


@dataclass(frozen=True)
class Unit:
    """One block of a sweep: ``examples`` cases of ``layer`` in ``dtype``, block ``block`` of the sweep."""

    layer: str
    dtype: str
    block: int
    examples: int

    @property
    def key(self) -> tuple:
        return (self.layer, self.dtype, self.block)

    def describe(self) -> str:
        return f"{self.layer} {self.dtype} block {self.block} ({self.examples} cases)"


@dataclass
class UnitResult:
    """What one unit gave: its report (a failure in it if the worker crashed or hung), and its seconds."""

    unit: Unit
    report: Report
    seconds: float = 0.0
    worker: str = ""  # "main", or the worker process's pid
    error: str = ""  # the worker crashed or hung: said here and as the report's failure


def plan(layers, dtypes, examples: int, block_size: int = BLOCK) -> list[Unit]:
    """The units of a sweep of ``examples`` cases per layer and dtype, in blocks of ``block_size``."""
    for name, value in (("examples", examples), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Argument `{name}` must be a positive int, got {value!r}.")
    blocks = math.ceil(examples / block_size)
    return [
        Unit(layer, dtype, b, min(block_size, examples - b * block_size))
        for layer in layers
        for dtype in dtypes
        for b in range(blocks)
    ]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)`` with ``1 <= K <= N``; a ValueError naming ``--shard`` otherwise."""
    parts = str(text).split("/")
    try:
        k, n = (int(p) for p in parts)
    except ValueError:
        k = n = 0
    if len(parts) != 2 or not 1 <= k <= n:
        raise ValueError(f"Argument `--shard` must be K/N with 1 <= K <= N (e.g. 2/4), got {text!r}.")
    return k, n


def shard(units: list[Unit], index: int, count: int) -> list[Unit]:
    """Shard ``index`` (1-based) of ``count``: every ``count``-th unit from the ``index``-th. The shards are
    disjoint and together hold every unit; consecutive units are one layer's blocks, so each shard gets
    a share of every layer (and of its cost)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"Argument `count` must be a positive int, got {count!r}.")
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= count:
        raise ValueError(f"Argument `index` must be an int in [1, {count}], got {index!r}.")
    return units[index - 1 :: count]


# --- merging ----------------------------------------------------------------------------------


def merge_reports(reports: list[Report]) -> list[Report]:
    """One :class:`Report` per ``(layer, dtype)``, in first-seen order: counts added, worst cases the
    worst of all, lists (failures, margins) concatenated in the given order. Fields naming the sweep
    (candidate, seed, reference, ...) must agree; a ValueError says which does not."""
    merged: dict[tuple, Report] = {}
    for report in reports:
        key = (report.layer, report.dtype)
        if key not in merged:
            merged[key] = _empty(report)
        _fold(merged[key], report)
    return list(merged.values())


def _empty(report: Report) -> Report:
    """A report of ``report``'s sweep, layer and dtype with nothing counted yet."""
    zero = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if isinstance(value, list):
            zero[f.name] = []
        elif f.name.startswith("max_") or f.name in ("examples", "skipped", "weak"):
            zero[f.name] = type(value)(0)
    return dataclasses.replace(report, **zero)


def _fold(into: Report, report: Report) -> None:
    """Add ``report`` into ``into`` field by field (see :func:`merge_reports`)."""
    for f in dataclasses.fields(report):
        mine, theirs = getattr(into, f.name), getattr(report, f.name)
        if isinstance(theirs, list):
            mine.extend(theirs)
        elif f.name.startswith("max_"):
            setattr(into, f.name, max(mine, theirs))
        elif f.name in ("examples", "skipped", "weak"):
            setattr(into, f.name, mine + theirs)
        elif mine != theirs:
            raise ValueError(
                f"Reports of {report.layer} {report.dtype} from different sweeps: {f.name} {mine!r} and {theirs!r}."
            )


def failed_unit(unit: Unit, seed: int, candidate: str, reference: str, problem: str, seconds: float) -> UnitResult:
    """A unit whose worker crashed or hung: a report holding that failure (so the run cannot be green)."""
    report = Report(unit.layer, unit.dtype, candidate, seed, reference=reference)
    reproducer = (
        f"rerun the sweep with --workers 1 to see it in one process; the unit was "
        f"{unit.describe()} of seed {seed} (CLI: --seed {seed} with the same --examples)"
    )
    report.failures.append(Failure(f"{unit.describe()}: {problem}", reproducer))
    return UnitResult(unit, report, seconds, error=problem)


def _identity_fields(report: Report) -> list[str]:
    """The fields naming the sweep (candidate, seed, reference, ...): those :func:`_fold` requires equal."""
    return [
        f.name
        for f in dataclasses.fields(report)
        if f.name not in ("layer", "dtype", "examples", "skipped", "weak")
        and not f.name.startswith("max_")
        and not isinstance(getattr(report, f.name), list)
    ]


def _align_failed(results: list[UnitResult]) -> None:
    """Give a crashed or hung unit's report the sweep's identity (the candidate's name, the reference's
    version, ...) as a finished unit of its layer and dtype (else of any) reported it, so they merge."""
    finished = [r.report for r in results if not r.error]
    for r in results:
        if r.error:
            same = [f for f in finished if (f.layer, f.dtype) == (r.unit.layer, r.unit.dtype)] or finished
            if same:
                for name in _identity_fields(r.report):
                    setattr(r.report, name, getattr(same[0], name))


# --- running ----------------------------------------------------------------------------------


def installed_reference(reference: str | None = None):
    """The reference Keras module's ``__name__`` and ``__version__``, and TensorFlow's version, read from the
    installed packages without importing them: with ``--workers`` the workers import Keras, and the main
    process importing it too would delay them by its import's seconds. An ImportError, as
    :func:`~scratch_rnn.testing.runners.import_keras` raises, when TensorFlow or the reference is missing."""
    import importlib.util
    import types
    from importlib import metadata

    from scratch_rnn.testing.runners import REFERENCES, default_reference

    reference = default_reference() if reference is None else reference
    if reference not in REFERENCES:
        raise ValueError(f"Argument `reference` must be one of {list(REFERENCES)}, got {reference!r}.")
    for module in ("tensorflow", reference):
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"No module named {module!r}", name=module)
    versions = {}
    for name, distributions in (("keras", (reference.replace("_", "-"),)), ("tf", ("tensorflow", "tensorflow-cpu"))):
        for distribution in distributions:
            try:
                versions[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                versions[name] = "?"
    return types.SimpleNamespace(__name__=reference, __version__=versions["keras"]), versions["tf"]


@dataclass(frozen=True)
class Job:
    """What the units of a sweep run: :func:`scratch_rnn.testing.verify.verify` with ``options`` (its keyword
    arguments shared by every unit, ``seed`` included and never None) and ``arguments_for(layer, dtype)``'s
    (those that depend on the unit, ``candidate`` among them). ``arguments_for`` must pickle (a module-level
    function, or a ``functools.partial`` of one) so that each worker rebuilds the candidate by name."""

    options: dict
    arguments_for: object = None
    name: str = "scratch_rnn engine"  # the candidate's name in a crashed unit's report

    def run(self, unit: Unit, on_example=None) -> Report:
        verify = importlib.import_module("scratch_rnn.testing.verify").verify  # looked up now: a patched one too
        kwargs = {**self.options, **(self.arguments_for(unit.layer, unit.dtype) if self.arguments_for else {})}
        candidate = kwargs.pop("candidate", None)
        if unit.block:
            kwargs["block"] = unit.block
        return verify(
            candidate, layer=unit.layer, dtype=unit.dtype, max_examples=unit.examples, on_example=on_example, **kwargs
        )


def run_units(
    units: list[Unit],
    job: Job,
    workers: int = 1,
    on_start=None,
    on_case=None,
    on_done=None,
    stall_seconds: float = STALL_SECONDS,
) -> list[UnitResult]:
    """Run ``units`` and return their results in the units' order.

    ``workers=1`` runs them here, one after the other; more runs them in that many processes. The
    callbacks, all called in this process and thread: ``on_start(unit)`` when a unit begins,
    ``on_case(unit)`` after each of its cases, ``on_done(result)`` when it ends (crashed ones included).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"Argument `workers` must be a positive int, got {workers!r}.")
    if not units:
        return []
    if workers == 1:
        return [_run_here(unit, job, on_start, on_case, on_done) for unit in units]
    return _Pool(units, job, min(workers, len(units)), on_start, on_case, on_done, stall_seconds).run()


def _run_here(unit, job, on_start, on_case, on_done) -> UnitResult:
    if on_start is not None:
        on_start(unit)
    start = time.perf_counter()
    report = job.run(unit, None if on_case is None else (lambda _result: on_case(unit)))
    result = UnitResult(unit, report, time.perf_counter() - start, worker="main")
    if on_done is not None:
        on_done(result)
    return result


# In a worker process: the queue its events go to (set by _init_worker).
_EVENTS = None


def _init_worker(events, reference, threads: int) -> None:
    """A worker's start: its event queue, Keras imported once (every unit then reuses it), and its
    share of the cores for BLAS and TensorFlow (``threads``), so that workers do not oversubscribe them."""
    global _EVENTS
    _EVENTS = events
    try:
        from threadpoolctl import threadpool_limits  # scipy's and scikit-learn's dependency; optional here

        threadpool_limits(threads)
    except ImportError:
        pass
    from scratch_rnn.testing.runners import import_keras

    import_keras(reference)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _run_in_worker(index: int, unit: Unit, job: Job) -> tuple[int, Report, float, str]:
    pid = str(os.getpid())
    _EVENTS.put(("start", index, pid))
    start = time.perf_counter()
    report = job.run(unit, lambda _result: _EVENTS.put(("case", index, pid)))
    return index, report, time.perf_counter() - start, pid


class _Pool:
    """Rounds of a process pool until every unit has a result.

    A round runs the units left in a fresh pool. When a worker dies the pool breaks
    (``BrokenProcessPool``) and takes the other workers' running units with it: if one unit was running
    it is the culprit and fails; if several were, each is rerun alone in a pool of one worker, where a
    death names its unit exactly. A unit with no finished case for ``stall_seconds`` is hung: its worker
    is killed (breaking the pool) and the unit fails. The units not started yet go to the next round.
    """

    def __init__(self, units, job, workers, on_start, on_case, on_done, stall_seconds):
        self.units, self.job, self.workers = units, job, workers
        self.on_start, self.on_case, self.on_done = on_start, on_case, on_done
        self.stall_seconds = stall_seconds
        self.results: dict[int, UnitResult] = {}
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.threads = max(1, cores // workers)

    def run(self) -> list[UnitResult]:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        todo, suspects = list(range(len(self.units))), []
        while todo or suspects:
            alone = bool(suspects)
            batch = suspects if alone else todo
            running, hung, rest = self._round(ctx, batch, 1 if alone else self.workers)
            for i in hung:
                self._fail(i, f"hung: no case finished in {self.stall_seconds:g} s; its worker was killed")
            if hung:  # the pool broke because a hung worker was killed: the others' units are not to blame
                rest, running = sorted(running + rest), []
            if alone or len(running) == 1:
                for i in running:
                    self._fail(i, "its worker process died while running it (crashed, or killed from outside)")
                running = []
            if alone:
                suspects = rest
            else:
                todo, suspects = rest, running
        results = [self.results[i] for i in range(len(self.units))]
        _align_failed(results)
        return results

    def _fail(self, i, problem: str) -> None:
        options = self.job.options
        reference = options.get("reference") or "keras"
        result = failed_unit(self.units[i], options["seed"], self.job.name, reference, problem, 0.0)
        self.results[i] = result
        if self.on_done is not None:
            self.on_done(result)

    def _round(self, ctx, batch, workers):
        """Run ``batch`` (unit indices) in a pool of ``workers``; ``(running, hung, not started)`` when
        the pool broke, ``([], [], [])`` when every unit finished."""
        events = ctx.SimpleQueue()  # a put is written at once: a worker's os._exit right after loses nothing
        started, last, pids, hung = set(), {}, {}, set()
        reference = self.job.options.get("reference")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(events, reference, self.threads))  # fmt: skip
        broken = False
        try:
            # the last units first: a plan lists its layers as given, and the last of LAYERS (Bidirectional) is
            # the slowest, so the short units fill the end and the workers finish together
            futures = {pool.submit(_run_in_worker, i, self.units[i], self.job) for i in reversed(batch)}
            while futures:
                done, futures = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                self._drain(events, started, last, pids)
                for future in done:
                    try:
                        i, report, seconds, pid = future.result()
                    except BrokenProcessPool as err:
                        broken = str(err) or "the process pool broke"
                        continue
                    self._drain(events, started, last, pids)  # its last cases, before its end
                    started.discard(i)
                    self.results[i] = UnitResult(self.units[i], report, seconds, worker=pid)
                    if self.on_done is not None:
                        self.on_done(self.results[i])
                now = time.monotonic()
                for i in list(started):
                    if i not in hung and now - last[i] > self.stall_seconds:
                        hung.add(i)
                        _kill(pids[i])
        finally:
            pool.shutdown(wait=not broken and not hung, cancel_futures=True)
            events.close()
        running = [i for i in batch if i in started and i not in self.results and i not in hung]
        rest = [i for i in batch if i not in started and i not in self.results and i not in hung]
        if broken and not running and not hung and len(rest) == len(batch):  # no worker got as far as a unit
            for i in rest:
                self._fail(i, f"no worker process could start: {broken}")
            rest = []
        return running, sorted(hung), rest

    def _drain(self, events, started, last, pids) -> None:
        """Take the workers' events: a unit started (``on_start``), a case finished (``on_case``)."""
        while not events.empty():
            kind, i, pid = events.get()
            last[i], pids[i] = time.monotonic(), pid
            if kind == "start":
                started.add(i)
                if self.on_start is not None:
                    self.on_start(self.units[i])
            elif self.on_case is not None:
                self.on_case(self.units[i])


def _kill(pid: str) -> None:
    try:
        os.kill(int(pid), signal.SIGKILL)
    except (ProcessLookupError, ValueError):
        pass
