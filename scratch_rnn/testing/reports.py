"""Machine-readable results for CI: a JSON report (``--report-json``), JUnit XML (``--junit-xml``), and the
merge of sharded runs' JSON reports (``scratch-rnn merge``).

The JSON document (schema ``scratch-rnn-report``, :data:`VERSION`; every field in docs/ci.md)::

    {"schema": "scratch-rnn-report", "version": 1, "command": "verify", "arguments": {...},
     "environment": {"scratch_rnn": ..., "keras": ..., "tensorflow": ..., "numpy": ..., ...},
     "sweep": {...what makes two shards parts of one sweep...} or null, "shard": {"index": 2, "count": 3} or null,
     "units": [{"layer", "dtype", "block", "examples", "seconds", "worker", "error", "report": {...}}],
     "reports": [{...one per layer and dtype...}], "ok": true, "exit_code": 0, "seconds": 12.5}

A report holds every field of :class:`~scratch_rnn.testing.check.Report` (cases run, skipped, weak,
worst errors, ``max_margin``, failures with their reproducers, ...) and ``ok``; a float that is not
finite (a margin of inf for a candidate that raised) is written as the string ``"inf"`` or ``"nan"``,
since JSON has no such numbers. Both files are written whether the run passed or not.

Keras-free: the versions are read from the installed packages' metadata, nothing is
imported, so ``scratch-rnn check`` writes them where TensorFlow is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import socket
import sys
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

from scratch_rnn.testing.check import Failure, Report
from scratch_rnn.testing.workers import Unit, UnitResult, merge_reports, plan, shard

SCHEMA = "scratch-rnn-report"
VERSION = 1
#: The packages whose versions a report records (None when not installed).
PACKAGES = ("scratch_rnn", "keras", "tensorflow", "tf_keras", "numpy", "hypothesis")


class ReportFileError(ValueError):
    """A JSON report that cannot be read or merged; the message names the file and the problem."""


def environment() -> dict:
    """The versions that decide a sweep's result, read from package metadata (nothing imported)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {**versions, "python": platform.python_version(), "platform": platform.platform()}


# --- reports as JSON ----------------------------------------------------------------------------


def _number(value):
    """A float JSON can hold: non-finite ones as ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _unnumber(value):
    return float(value) if value in ("inf", "-inf", "nan") else value


def report_to_dict(report: Report) -> dict:
    """Every field of ``report`` (failures as ``{"message", "reproducer", "explained_by"}``), plus ``ok``."""
    out = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if f.name == "failures":
            value = [{"message": x.message, "reproducer": x.reproducer, "explained_by": x.explained_by} for x in value]
        elif isinstance(value, list):
            value = [_number(float(v)) if isinstance(v, float) else v for v in value]
        else:
            value = _number(float(value)) if isinstance(value, float) else value
        out[f.name] = value
    out["ok"] = report.ok
    return out


def report_from_dict(data: dict, where: str = "report") -> Report:
    """The :class:`Report` :func:`report_to_dict` wrote; fields it does not know are ignored, so a newer
    scratch_rnn's extra fields do not stop an older merge."""
    try:
        kwargs = {f.name: data[f.name] for f in dataclasses.fields(Report) if f.name in data}
        kwargs["failures"] = [
            Failure(x["message"], x["reproducer"], x.get("explained_by")) for x in data.get("failures", [])
        ]
        for name, value in kwargs.items():
            if isinstance(value, list) and name != "failures":
                kwargs[name] = [_unnumber(v) for v in value]
            elif name.startswith("max_"):
                kwargs[name] = float(_unnumber(value))
        return Report(**kwargs)
    except (KeyError, TypeError, AttributeError) as err:
        raise ReportFileError(f"{where}: not a report written by scratch-rnn ({type(err).__name__}: {err}).") from None


def unit_to_dict(result: UnitResult) -> dict:
    u = result.unit
    return {
        "layer": u.layer,
        "dtype": u.dtype,
        "block": u.block,
        "examples": u.examples,
        "seconds": round(result.seconds, 3),
        "worker": result.worker,
        "error": result.error,
        "report": report_to_dict(result.report),
    }


def document(
    command: str,
    arguments: dict,
    reports: list[Report],
    units: list[UnitResult] | None = None,
    sweep: dict | None = None,
    shard_of: tuple[int, int] | None = None,
    seconds: float = 0.0,
    exit_code: int | None = None,
) -> dict:
    """The JSON report of one run (see the module docstring). ``units`` default to the reports themselves
    (``check``, ``verify --model``: one unit per layer or model and dtype, no blocks)."""
    ok = bool(reports) and all(r.ok for r in reports)
    if units is None:
        units = [UnitResult(Unit(r.layer, r.dtype, 0, r.examples), r) for r in reports]
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "command": command,
        "arguments": {k: v for k, v in arguments.items() if _jsonable(v)},
        "environment": environment(),
        "sweep": sweep,
        "shard": None if shard_of is None else {"index": shard_of[0], "count": shard_of[1]},
        "units": [unit_to_dict(u) for u in units],
        "reports": [report_to_dict(r) for r in reports],
        "ok": ok,
        "exit_code": (0 if ok else 1) if exit_code is None else exit_code,
        "seconds": round(seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def write_json(path, doc: dict) -> None:
    """Write ``doc`` to ``path`` (its directory created), atomically: a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    os.replace(partial, path)


def read_json(path) -> dict:
    """A JSON report, checked to be one this version reads; a :class:`ReportFileError` otherwise."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ReportFileError(f"{path}: cannot read a JSON report ({err}).") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ReportFileError(f'{path}: not a scratch-rnn report (no "schema": "{SCHEMA}").')
    if doc.get("version") != VERSION:
        raise ReportFileError(f"{path}: report version {doc.get('version')!r}; this scratch-rnn reads {VERSION}.")
    return doc


# --- merging shards -------------------------------------------------------------------------------


@dataclasses.dataclass
class Merged:
    """The shards of one sweep merged: every unit in plan order, and one report per layer and dtype."""

    sweep: dict
    count: int
    units: list[UnitResult]
    reports: list[Report]
    documents: list[dict]

    @property
    def ok(self) -> bool:
        return bool(self.reports) and all(r.ok for r in self.reports)


def merge_documents(docs: list[dict], paths: list[str] | None = None) -> Merged:
    """Merge the JSON reports of the ``count`` shards of one ``verify`` sweep.

    Refused (a :class:`ReportFileError` naming the file): a report that is not a sharded verify's, shards
    of different sweeps (seed, examples, layers, dtypes, candidate, reference, ...), different shard
    counts, a shard given twice, a shard missing, or a shard whose units are not the ones its index
    gives (a truncated or edited file). A missing shard is an error, never a green merge.
    """
    paths = paths or [f"report {i + 1}" for i in range(len(docs))]
    if not docs:
        raise ReportFileError("No report to merge.")
    by_index = {}
    for doc, path in zip(docs, paths):
        if doc.get("command") != "verify" or not doc.get("shard") or not doc.get("sweep"):
            raise ReportFileError(f"{path}: not a sharded verify report (run scratch-rnn verify --shard K/N).")
        first, first_path = docs[0], paths[0]
        for key in sorted(set(first["sweep"]) | set(doc["sweep"])):
            if first["sweep"].get(key) != doc["sweep"].get(key):
                raise ReportFileError(
                    f"{path} is from another sweep than {first_path}: {key} {doc['sweep'].get(key)!r} "
                    f"against {first['sweep'].get(key)!r}."
                )
        index, count = doc["shard"]["index"], doc["shard"]["count"]
        if count != first["shard"]["count"]:
            raise ReportFileError(f"{path} is shard {index}/{count}; {first_path} is of {first['shard']['count']}.")
        if index in by_index:
            raise ReportFileError(f"Shard {index}/{count} given twice: {by_index[index][1]} and {path}.")
        by_index[index] = (doc, path)
    count = docs[0]["shard"]["count"]
    missing = [k for k in range(1, count + 1) if k not in by_index]
    if missing:
        raise ReportFileError(
            f"Shard(s) {', '.join(f'{k}/{count}' for k in missing)} missing: a merge needs all {count} "
            f"(got {', '.join(paths)})."
        )
    sweep = docs[0]["sweep"]
    units = plan(sweep["layers"], sweep["dtypes"], sweep["examples"], sweep["block_size"])
    results = {}
    for k in range(1, count + 1):
        doc, path = by_index[k]
        expected = [u.key for u in shard(units, k, count)]
        got = [(u["layer"], u["dtype"], u["block"]) for u in doc["units"]]
        if got != expected:
            raise ReportFileError(
                f"{path}: shard {k}/{count} should hold {len(expected)} units of the sweep, holds {len(got)} "
                f"({'different ones' if len(got) == len(expected) else 'a partial run?'})."
            )
        for u in doc["units"]:
            unit = Unit(u["layer"], u["dtype"], u["block"], u["examples"])
            report = report_from_dict(u["report"], f"{path}: unit {unit.describe()}")
            results[unit.key] = UnitResult(unit, report, u.get("seconds", 0.0), u.get("worker", ""), u.get("error", ""))
    ordered = [results[u.key] for u in units]
    try:
        reports = merge_reports([r.report for r in ordered])
    except ValueError as err:
        raise ReportFileError(str(err)) from None
    return Merged(sweep, count, ordered, reports, [by_index[k][0] for k in range(1, count + 1)])


# --- JUnit XML ---------------------------------------------------------------------------------------


def junit_xml(doc: dict) -> ET.ElementTree:
    """JUnit XML of a JSON report: one ``testsuite`` for the run, one ``testcase`` per layer (or model)
    and dtype, named ``LAYER DTYPE`` in class ``scratch_rnn.COMMAND``; a failing one holds a ``failure``
    (each failing case's message and reproducer), one whose worker crashed or hung an ``error``. The
    subset GitHub's, GitLab's and Jenkins's readers share (``testsuites`` > ``testsuite`` > ``testcase``)."""
    command = doc["command"]
    seconds_of, errors_of = {}, {}
    for u in doc["units"]:
        key = (u["layer"], u["dtype"])
        seconds_of[key] = seconds_of.get(key, 0.0) + float(u.get("seconds") or 0.0)
        if u.get("error"):
            errors_of.setdefault(key, []).append(f"{u['layer']} {u['dtype']} block {u['block']}: {u['error']}")
    cases, failures, errors = [], 0, 0
    for r in doc["reports"]:
        key = (r["layer"], r["dtype"])
        case = ET.Element(
            "testcase",
            classname=f"scratch_rnn.{command.replace(' --', '_').replace(' ', '_')}",
            name=f"{r['layer']} {r['dtype']}",
            time=f"{seconds_of.get(key, 0.0):.3f}",
        )
        summary = (
            f"{r['candidate']} vs {r['reference']}: {r['examples']} cases, {r['skipped']} skipped, {r['weak']} weak, "
            f"max |err| {r['max_abs_error']}, max err/tol {r['max_margin']}, seed {r['seed']}"
        )
        if key in errors_of:
            errors += 1
            text = "\n".join(errors_of[key])
            ET.SubElement(case, "error", message=errors_of[key][0], type="WorkerError").text = text
        elif not r["ok"]:
            failures += 1
            texts = [f"{f['message']}\n{f['reproducer']}" for f in r["failures"]] or ["no case was checked"]
            first = texts[0].splitlines()[0]
            ET.SubElement(case, "failure", message=first, type="Mismatch").text = "\n\n".join(texts)
        ET.SubElement(case, "system-out").text = summary
        cases.append(case)
    total = f"{float(doc.get('seconds') or 0.0):.3f}"
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors), "skipped": "0"}
    root = ET.Element("testsuites", name=f"scratch-rnn {command}", time=total, **counts)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"scratch-rnn {command}",
        time=total,
        timestamp=doc.get("finished", ""),
        hostname=socket.gethostname(),
        **counts,
    )
    properties = ET.SubElement(suite, "properties")
    facts = {**{f"sweep.{k}": v for k, v in (doc.get("sweep") or {}).items()}, **doc["environment"]}
    if doc.get("shard"):
        facts["shard"] = f"{doc['shard']['index']}/{doc['shard']['count']}"
    for name, value in facts.items():
        ET.SubElement(properties, "property", name=str(name), value=str(value))
    suite.extend(cases)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path, doc: dict) -> None:
    """Write :func:`junit_xml` of ``doc`` to ``path`` (its directory created), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    junit_xml(doc).write(partial, encoding="utf-8", xml_declaration=True)
    os.replace(partial, path)


def arguments_of(namespace) -> dict:
    """An argparse namespace as the report's ``arguments`` (the command line as parsed), ``argv`` added."""
    return {**{k: v for k, v in vars(namespace).items() if not callable(v)}, "argv": sys.argv[1:]}
