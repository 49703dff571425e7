"""Golden vectors: Keras's outputs recorded once, checked anywhere, TensorFlow and Keras not needed.

:func:`record` draws cases with the strategies of :mod:`scratch_rnn.testing.strategies`,
runs real Keras on each and writes a recording: a directory holding ``manifest.json``
(the format and its version, the versions recorded with, and per case its Keras config,
``get_config()`` and the names, shapes and dtypes of its arrays) and ``arrays.npz``
(weights in Keras's layout, inputs, masks, initial states, outputs and a stateful case's
carried state, one ``.npy`` entry per array, read with ``allow_pickle=False``).
:func:`load` validates a recording and :func:`check` compares the engine, or a candidate,
with it under the tolerances :mod:`~scratch_rnn.testing.tolerance` derives, with NumPy only.
The same seed draws the same cases (with the same Hypothesis and scratch_rnn). A port in
another language can read the same files: the format is specified in ``docs/golden.md``.

Nothing here prints or parses arguments: ``scratch-rnn record`` and ``scratch-rnn check``
are :mod:`scratch_rnn.cli`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scratch_rnn.testing.case import LAYERS, Case
from scratch_rnn.testing.check import CaseResult, Failure, Report, check_against
from scratch_rnn.testing.errors import one_line

FORMAT = "scratch-rnn-golden"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
DTYPES = ("float32", "float64")


class GoldenFileError(ValueError):
    """A recording that is missing, corrupt, or whose manifest and arrays do not match; the message says which."""


@dataclass
class GoldenCase:
    """One recorded case: the :class:`Case` to run and what Keras returned for it."""

    id: str
    case: Case
    keras_config: dict
    output_names: list[str]
    outputs: list[np.ndarray]
    carried_state: list[np.ndarray] | None = None


@dataclass
class Recording:
    """A loaded, validated recording: its directory, its manifest and its cases."""

    path: Path
    manifest: dict
    cases: list[GoldenCase]

    @property
    def recorded_with(self) -> dict:
        return self.manifest.get("recorded_with", {})


@dataclass
class GoldenCheck:
    """The result of :func:`check`: one :class:`~scratch_rnn.testing.verify.Report` per layer and dtype."""

    path: Path
    recorded_with: dict
    candidate: str
    reports: list[Report] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.reports) and all(r.ok for r in self.reports)

    @property
    def failures(self) -> list[Failure]:
        return [f for r in self.reports for f in r.failures]


# --- recording -------------------------------------------------------------------------


def record(path, layers=LAYERS, examples: int = 6, seed: int = 0, dtypes=DTYPES, on_case=None) -> dict:
    """Record ``examples`` cases per layer and dtype, run on real Keras, into the directory ``path``.

    Writes ``path/arrays.npz`` then ``path/manifest.json`` (the format of
    ``docs/golden.md``), each through a temporary file, and returns the manifest.
    ``on_case(golden_case, result)`` is called per recorded case with the
    engine's :class:`~scratch_rnn.testing.verify.CaseResult` against Keras, so a
    caller can report where the engine disagrees (the case is recorded anyway:
    the recording is Keras's truth). Keras 3 (the ``keras`` package) is recorded,
    whatever ``$SCRATCH_RNN_REFERENCE`` says.
    """
    from hypothesis import __version__ as hypothesis_version

    from scratch_rnn.testing.runners import import_keras
    from scratch_rnn.version import __version__ as scratch_rnn_version

    layers, dtypes = _choices(layers, LAYERS, "layers"), _choices(dtypes, DTYPES, "dtypes")
    if not isinstance(examples, int) or examples < 1:
        raise ValueError(f"Argument `examples` must be a positive int, got {examples!r}.")
    keras = import_keras("keras")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    arrays, entries = {}, []
    for layer in layers:
        for dtype in dtypes:
            for golden, result in _draw(layer, dtype, examples, seed, keras, first_index=len(entries)):
                entry = _case_entry(golden)
                entries.append(entry)
                arrays.update(_case_arrays(golden))
                if on_case is not None:
                    on_case(golden, result)
    for entry in entries:
        entry["arrays"] = {
            name: {"shape": list(arrays[name].shape), "dtype": arrays[name].dtype.name} for name in _array_names(entry)
        }
    digest = _write_atomic(path / ARRAYS, lambda f: np.savez_compressed(f, **arrays))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "recorded_with": {
            "keras": keras.__version__,
            "tensorflow": sys.modules["tensorflow"].__version__,
            "numpy": np.__version__,
            "hypothesis": hypothesis_version,
            "scratch_rnn": scratch_rnn_version,
            "python": platform.python_version(),
        },
        "recording": {
            "seed": seed,
            "examples": examples,
            "layers": list(layers),
            "dtypes": list(dtypes),
            "command": _command(path, layers, dtypes, examples, seed),
        },
        "arrays": {"file": ARRAYS, "sha256": digest},
        "cases": entries,
    }
    manifest = _jsonable(manifest, "manifest")
    text = _manifest_text(manifest)
    _write_atomic(path / MANIFEST, lambda f: f.write(text.encode("utf-8")))
    return manifest


def _manifest_text(manifest: dict) -> str:
    """Indented JSON with each case on one compact line: readable, and a re-recording diffs case by case."""
    head = [f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in manifest.items() if k != "cases"]
    cases = ",\n".join("  " + json.dumps(c, separators=(",", ":"), allow_nan=False) for c in manifest["cases"])
    return "{\n" + ",\n".join([*head, f' "cases": [\n{cases}\n ]']) + "\n}\n"


def _draw(layer, dtype, examples, seed, keras, first_index):
    """``examples`` (GoldenCase, the engine's CaseResult) pairs for one layer and dtype, reproducibly drawn."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed

    from scratch_rnn.testing.hypothesis_internals import seed_only
    from scratch_rnn.testing.strategies import cases, recurrent_config

    kept, dropped, draws = [], 0, 20 * examples + 20

    class Enough(Exception):
        """Raised once ``examples`` cases are kept: drawing a case costs tens of milliseconds."""

    @hypothesis_seed(zlib.crc32(f"{seed}/{layer}/{dtype}".encode()))
    @settings(
        max_examples=draws,
        derandomize=False,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        print_blob=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(layer, dtype))
    def collect(case):
        nonlocal dropped
        if len(kept) == examples:  # Hypothesis replays the "failing" case once more: still enough
            raise Enough
        if min(*case.x.shape, recurrent_config(layer, case.config)["units"]) < 2:
            return  # degenerate: cannot reveal a transpose, a gate swap, the time or batch axis mixed up
        if case.split is not None and sum(g.case.split is not None for g, _ in kept) >= -(-examples // 3):
            return  # Hypothesis's first, small draws favour stateful ones (two timesteps at least): balance them
        golden = _run_keras(f"case{first_index + len(kept):04d}", case, keras)
        result = check_against(case, lambda: (golden.output_names, golden.outputs, golden.keras_config))
        if result.skipped:  # not a case anyone compares (exact result not finite or too large)
            dropped += 1
            return
        kept.append((golden, result))
        if len(kept) == examples:
            raise Enough

    try:
        with seed_only():
            collect()
    except Enough:
        pass
    if len(kept) < examples:
        raise RuntimeError(
            f"Only {len(kept)} of {examples} {layer} {dtype} cases could be recorded from {draws} "
            f"draws ({dropped} of them had a non-finite or too large exact result)."
        )
    return kept


def _run_keras(case_id: str, case: Case, keras) -> GoldenCase:
    """Keras's outputs for ``case`` and, for a stateful case, its states after the first call."""
    from scratch_rnn.testing.runners import keras_layer, output_names, returns_both_directions, run_layer

    keras.backend.clear_session()  # Keras's layer-name counters restart: the same case gets the same keras_config
    layer = keras_layer(case, keras)
    chunks = case.chunks()
    names, outputs, carried = [], [], None
    for i, chunk in enumerate(chunks):
        outs = run_layer(layer, [chunk])[1]
        names += output_names(len(outs), len(chunks), i, returns_both_directions(layer))
        outputs += outs
        if i == 0 and case.split is not None:
            carried = [np.array(keras.ops.convert_to_numpy(s)) for s in layer.states]
    return GoldenCase(case_id, case, layer.get_config(), names, outputs, carried)


def _case_entry(golden: GoldenCase) -> dict:
    c, i = golden.case, golden.id

    def names(role, items):
        return None if items is None else [f"{i}/{role}/{k}" for k in range(len(items))]

    return {
        "id": i,
        "layer": c.layer,
        "dtype": c.dtype.name,
        "config": _jsonable(c.config, f"{i} config"),
        "keras_config": _jsonable(golden.keras_config, f"{i} keras_config"),
        "split": c.split,
        "weights": names("weights", c.weights),
        "x": f"{i}/x",
        "mask": None if c.mask is None else f"{i}/mask",
        "initial_state": names("initial_state", c.initial_state),
        "outputs": names("outputs", golden.outputs),
        "output_names": list(golden.output_names),
        "carried_state": names("carried_state", golden.carried_state),
    }


def _case_arrays(golden: GoldenCase) -> dict:
    c, i = golden.case, golden.id
    arrays = {f"{i}/x": c.x}
    if c.mask is not None:
        arrays[f"{i}/mask"] = np.asarray(c.mask, dtype=np.bool_)
    for role, items in (
        ("weights", c.weights),
        ("initial_state", c.initial_state),
        ("outputs", golden.outputs),
        ("carried_state", golden.carried_state),
    ):
        for k, a in enumerate(items or []):
            arrays[f"{i}/{role}/{k}"] = a
    return {name: np.ascontiguousarray(a, dtype=np.asarray(a).dtype.newbyteorder("<")) for name, a in arrays.items()}


def _array_names(entry: dict) -> list[str]:
    """Every array name a case entry refers to, in a fixed order."""
    names = list(entry["weights"]) + [entry["x"]]
    names += [entry["mask"]] if entry["mask"] is not None else []
    for role in ("initial_state", "outputs", "carried_state"):
        names += list(entry[role] or [])
    return names


def _jsonable(value, where: str):
    """``value`` with tuples as lists and NumPy scalars as Python numbers; anything JSON cannot hold is refused."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: dict keys must be strings, got {sorted(map(repr, value))}.")
        return {k: _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{k}]") for k, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        raise TypeError(f"{where}: {value!r} cannot be written to JSON.")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{where}: a {type(value).__name__} ({value!r:.60}) cannot be written to JSON.")


def _write_atomic(path: Path, write) -> str:
    """Write through a temporary file in the same directory, then rename; the sha256 of what was written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        digest = _sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _command(path, layers, dtypes, examples, seed) -> str:
    layer_args = "" if tuple(layers) == LAYERS else "".join(f" --layer {layer}" for layer in layers)
    dtype_arg = " --dtype both" if tuple(dtypes) == DTYPES else f" --dtype {dtypes[0]}"
    return f"scratch-rnn record --out {path}{layer_args}{dtype_arg} --examples {examples} --seed {seed}"


def _choices(values, allowed, argument):
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"Argument `{argument}` must be a non-empty list of {list(allowed)}, got {list(values)}.")
    return values


# --- loading and checking --------------------------------------------------------------


def load(path) -> Recording:
    """Read and validate a recording (a directory, or its ``manifest.json``) without TensorFlow or Keras.

    Everything is checked before anything runs: the format and its version,
    every case's fields, every array present with its recorded shape and
    dtype, no array left over, and the archive's sha256. Any problem is a
    :class:`GoldenFileError` naming the file and what is wrong.
    """
    manifest_path = _manifest_path(Path(path))
    manifest = _read_manifest(manifest_path)
    arrays_path = manifest_path.parent / manifest["arrays"]["file"]
    if not arrays_path.is_file():
        raise GoldenFileError(f"{arrays_path}: not found; {manifest_path.name} refers to it for every array.")
    try:
        npz = np.load(arrays_path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise GoldenFileError(
            f"{arrays_path}: not a readable .npz archive ({one_line(err)}); the file may be truncated or corrupt."
        ) from None
    with npz:
        available = set(npz.files)
        cases, used = [], set()
        for index, entry in enumerate(manifest["cases"]):
            cases.append(_load_case(entry, index, npz, available, arrays_path, manifest_path))
            used.update(entry["arrays"])
    extra = sorted(available - used)
    if extra:
        raise GoldenFileError(
            f"{arrays_path}: holds {len(extra)} arrays that {manifest_path.name} does not list "
            f"(first: {extra[0]!r}); the two files come from different recordings."
        )
    digest = _sha256(arrays_path)
    if digest != manifest["arrays"]["sha256"]:
        raise GoldenFileError(
            f"{arrays_path}: sha256 {digest[:12]}... does not match the "
            f"{manifest['arrays']['sha256'][:12]}... recorded in {manifest_path.name}: its values "
            "changed since recording, or the two files come from different recordings."
        )
    return Recording(manifest_path.parent, manifest, cases)


def _manifest_path(path: Path) -> Path:
    manifest = path / MANIFEST if path.is_dir() else path
    if not manifest.is_file():
        where = f"{path} has no {MANIFEST}" if path.is_dir() else f"{path}: not found"
        raise GoldenFileError(
            f"{where}; expected a recording made by `scratch-rnn record` (a directory holding {MANIFEST} and {ARRAYS})."
        )
    return manifest


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GoldenFileError(f"{path}: not valid JSON ({err}).") from None
    except OSError as err:
        raise GoldenFileError(f"{path}: cannot be read ({one_line(err)}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise GoldenFileError(f'{path}: not a {FORMAT} manifest (its "format" is {got!r}, expected {FORMAT!r}).')
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise GoldenFileError(
            f"{path}: format version {version!r} is not supported; this scratch_rnn reads "
            f"version {FORMAT_VERSION}. Re-record with `scratch-rnn record`."
        )
    arrays = manifest.get("arrays")
    if not (
        isinstance(arrays, dict)
        and isinstance(arrays.get("file"), str)
        and isinstance(arrays.get("sha256"), str)
        and arrays["file"]
        and Path(arrays["file"]).name == arrays["file"]
    ):
        raise GoldenFileError(
            f'{path}: "arrays" must be {{"file": <a file name beside the manifest>, '
            f'"sha256": <hex digest>}}, got {arrays!r:.200}.'
        )
    cases = manifest.get("cases")
    if not isinstance(cases, list) or not cases:
        raise GoldenFileError(f'{path}: "cases" must be a non-empty list, got {cases!r:.80}.')
    ids = [c.get("id") if isinstance(c, dict) else None for c in cases]
    duplicates = sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1})
    if duplicates:
        raise GoldenFileError(
            f"{path}: case ids must be unique; {duplicates[0]!r} appears {ids.count(duplicates[0])} times."
        )
    return manifest


#: Each case entry's fields and the JSON types they may hold.
_FIELDS = {
    "id": (str,),
    "layer": (str,),
    "dtype": (str,),
    "config": (dict,),
    "keras_config": (dict,),
    "split": (int, type(None)),
    "weights": (list,),
    "x": (str,),
    "mask": (str, type(None)),
    "initial_state": (list, type(None)),
    "outputs": (list,),
    "output_names": (list,),
    "carried_state": (list, type(None)),
    "arrays": (dict,),
}


def _load_case(entry, index, npz, available, arrays_path: Path, manifest_path: Path) -> GoldenCase:
    where = f"{manifest_path}: case {index}"

    def fail(problem):
        raise GoldenFileError(f"{where}: {problem}")

    if not isinstance(entry, dict):
        fail(f"must be an object, got {type(entry).__name__}.")
    for key, types in _FIELDS.items():
        if key not in entry:
            fail(f"the field {key!r} is missing.")
        if not isinstance(entry[key], types) or isinstance(entry[key], bool):
            fail(f"the field {key!r} must be {' or '.join(t.__name__ for t in types)}, got {entry[key]!r:.80}.")
    where = f"{manifest_path}: case {entry['id']!r}"
    for role in ("weights", "initial_state", "outputs", "output_names", "carried_state"):
        if not all(isinstance(n, str) for n in entry[role] or []):
            fail(f'"{role}" must be a list of strings, got {entry[role]!r:.80}.')
    if entry["layer"] not in LAYERS:
        fail(f'"layer" must be one of {list(LAYERS)}, got {entry["layer"]!r}.')
    if entry["dtype"] not in DTYPES:
        fail(f'"dtype" must be one of {list(DTYPES)}, got {entry["dtype"]!r}.')
    if len(entry["outputs"]) != len(entry["output_names"]) or not entry["outputs"]:
        fail(
            f'"outputs" ({len(entry["outputs"])}) and "output_names" ({len(entry["output_names"])}) '
            "must be non-empty lists of the same length."
        )
    names = _array_names(entry)
    if sorted(names) != sorted(entry["arrays"]):
        fail(
            f'"arrays" must describe exactly the arrays the case names; it lists {sorted(entry["arrays"])}, '
            f"the case names {sorted(names)}."
        )
    missing = [n for n in names if n not in available]
    if missing and len(missing) == len(names):
        fail(
            f"listed in {manifest_path.name}, but {arrays_path.name} holds none of its arrays "
            f"(first missing: {missing[0]!r}); the two files come from different recordings."
        )
    if missing:
        fail(f"the array {missing[0]!r} is missing from {arrays_path}.")
    arrays = {}
    for name in names:
        spec = entry["arrays"][name]
        if not (isinstance(spec, dict) and isinstance(spec.get("shape"), list) and isinstance(spec.get("dtype"), str)):
            fail(f'arrays[{name!r}] must be {{"shape": [...], "dtype": "..."}}, got {spec!r:.80}.')
        try:
            array = npz[name]
        except Exception as err:  # a damaged entry: bad CRC, a truncated .npy, an object array
            raise GoldenFileError(
                f"{arrays_path}: the array {name!r} cannot be read ({one_line(err)}); the file is corrupt."
            ) from None
        if list(array.shape) != spec["shape"] or array.dtype.name != spec["dtype"]:
            fail(
                f"the array {name!r} in {arrays_path.name} has shape {list(array.shape)} and dtype "
                f"{array.dtype.name}, but the manifest records shape {spec['shape']} and dtype {spec['dtype']}."
            )
        arrays[name] = array.astype(array.dtype.newbyteorder("="), copy=False)
    _check_roles(entry, arrays, fail)

    def get(role):
        return None if entry[role] is None else [arrays[n] for n in entry[role]]

    case = Case(
        entry["layer"],
        entry["config"],
        get("weights"),
        arrays[entry["x"]],
        None if entry["mask"] is None else arrays[entry["mask"]],
        get("initial_state"),
        entry["split"],
    )
    return GoldenCase(
        entry["id"], case, entry["keras_config"], list(entry["output_names"]), get("outputs"), get("carried_state")
    )


def _check_roles(entry, arrays, fail) -> None:
    """What each array is for fixes its dtype and rank; a stateful split fits the input."""
    dtype = entry["dtype"]
    x = arrays[entry["x"]]
    if x.ndim != 3:
        fail(f'"x" must be (batch, timesteps, features), got shape {list(x.shape)}.')
    float_names = [
        entry["x"],
        *entry["weights"],
        *(entry["initial_state"] or []),
        *entry["outputs"],
        *(entry["carried_state"] or []),
    ]
    for name in float_names:
        if arrays[name].dtype.name != dtype:
            fail(f"the array {name!r} has dtype {arrays[name].dtype.name}, but the case's dtype is {dtype}.")
    if entry["mask"] is not None:
        mask = arrays[entry["mask"]]
        if mask.dtype != np.bool_ or mask.shape != x.shape[:2]:
            fail(
                f'"mask" must be bool of shape {list(x.shape[:2])} (batch, timesteps), '
                f"got {mask.dtype.name} {list(mask.shape)}."
            )
    from scratch_rnn.testing.case import keras_weight_shapes, state_sizes

    try:
        weight_shapes = keras_weight_shapes(entry["layer"], entry["config"], x.shape[-1])
        sizes = state_sizes(entry["layer"], entry["config"])
    except Exception as err:  # the engine cannot build the config: unknown options, missing keys
        fail(f'"config" is not a {entry["layer"]} config scratch_rnn can build ({one_line(err)}).')
    shapes = [list(arrays[n].shape) for n in entry["weights"]]
    if shapes != [list(s) for s in weight_shapes]:
        fail(
            f'"weights" have shapes {shapes}, but the config on {x.shape[-1]} features needs '
            f"{[list(s) for s in weight_shapes]}."
        )
    for role in ("initial_state", "carried_state"):
        if entry[role] is not None:
            shapes = [list(arrays[n].shape) for n in entry[role]]
            if shapes != [[x.shape[0], size] for size in sizes]:
                fail(f'"{role}" has shapes {shapes}, but the layer takes {[[x.shape[0], s] for s in sizes]}.')
    split = entry["split"]
    if split is not None and not 1 <= split < x.shape[1]:
        fail(f'"split" must be between 1 and timesteps - 1 = {x.shape[1] - 1}, got {split}.')
    if (split is None) != (entry["carried_state"] is None):
        fail('"carried_state" must be given exactly when "split" is (a stateful case).')


def check(path, candidate=None, layers=None, ids=None, on_case=None) -> GoldenCheck:
    """Check the engine (``candidate=None``) or ``candidate`` against the recording at ``path``.

    Needs neither TensorFlow nor Keras. The recording is validated first
    (:func:`load`; a :class:`GoldenFileError` otherwise). Each case is compared
    as :func:`~scratch_rnn.testing.verify.check_against` compares a live Keras
    run, under the same derived tolerances. A stateful case runs the engine
    statefully; a candidate gets the recorded ``carried_state`` as its second
    call's initial state. ``layers`` and ``ids`` select cases (a ValueError if
    they select none); ``on_case(golden_case, result)`` is called after each.
    """
    recording = load(path)
    selected = [
        g for g in recording.cases if (layers is None or g.case.layer in layers) and (ids is None or g.id in ids)
    ]
    if ids is not None:
        unknown = sorted(set(ids) - {g.id for g in recording.cases})
        if unknown:
            raise ValueError(f"Argument `ids`: {unknown} are not cases of {recording.path / MANIFEST}.")
    if not selected:
        raise ValueError(f"No recorded case in {recording.path / MANIFEST} matches layers={layers} and ids={ids}.")
    name = "scratch_rnn engine" if candidate is None else getattr(candidate, "__qualname__", repr(candidate))
    result = GoldenCheck(recording.path, recording.recorded_with, name)
    reports = {}
    for golden in selected:
        key = (golden.case.layer, golden.case.dtype.name)
        if key not in reports:
            reports[key] = Report(
                layer=key[0],
                dtype=key[1],
                candidate=name,
                seed=recording.manifest.get("recording", {}).get("seed", -1),
                reference=f"recorded keras {recording.recorded_with.get('keras', '?')}",
            )
        outcome = _check_one(golden, candidate)
        reports[key].record(outcome)
        if not outcome.ok and not outcome.skipped:
            reports[key].failures.append(
                Failure(
                    f"{golden.id}: {outcome.message()}",
                    f"recorded case {golden.id} in {recording.path / MANIFEST}; "
                    f"to rerun it alone, add --case {golden.id}",
                )
            )
        if on_case is not None:
            on_case(golden, outcome)
    result.reports = list(reports.values())
    return result


def _check_one(golden: GoldenCase, candidate=None) -> CaseResult:
    """One recorded case against the engine or ``candidate``."""
    if candidate is not None and golden.carried_state is not None:
        candidate = _carrying(candidate, golden.carried_state)
    return check_against(golden.case, lambda: (golden.output_names, golden.outputs, golden.keras_config), candidate)


def _carrying(candidate, carried):
    """``candidate`` for a stateful case: its second call starts from the state Keras carried over."""
    calls = []

    def call(config, weights, x, mask=None, initial_state=None):
        if calls:
            initial_state = [s.copy() for s in carried]
        calls.append(None)
        return candidate(config, weights, x, mask, initial_state)

    call.__qualname__ = getattr(candidate, "__qualname__", repr(candidate))
    return call
