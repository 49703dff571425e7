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

import contextlib
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scratch_rnn.keras_convert import from_config
from scratch_rnn.testing.case import LAYERS, Case
from scratch_rnn.testing.check import CaseResult, Failure, Report, check_against, check_timeout
from scratch_rnn.testing.errors import one_line
from scratch_rnn.testing.model_verify import InputSpec, ModelCase, check_model_case
from scratch_rnn.testing.tolerance import check_precision

FORMAT = "scratch-rnn-golden"
#: A recording of one saved model (``scratch-rnn record --model``): the same files, other keys.
MODEL_FORMAT = "scratch-rnn-golden-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
DTYPES = ("float32", "float64")
#: The dtypes an array may have: a case's float dtype, and bool for masks.
ARRAY_DTYPES = (*DTYPES, "bool")
#: The dtypes a model's input may have (token ids are integers), and so its recorded arrays.
MODEL_INPUT_DTYPES = (*DTYPES, "int32", "int64")
MODEL_ARRAY_DTYPES = (*MODEL_INPUT_DTYPES, "bool")
#: The most dimensions a model's input or output may have, batch included.
MODEL_MAX_RANK = 5

#: Limits :func:`load` enforces before reading what they bound (docs/golden.md, "What a reader may trust").
#: The shipped recording (48 cases) is a 120 KB manifest and 160 KB of arrays.
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_ARRAY_BYTES = 64 * 2**20  # one array's data, from its declared shape and dtype
MAX_TOTAL_BYTES = 256 * 2**20  # every array's data together
MAX_DEPTH = 32  # JSON nesting: a manifest is about 10 deep
#: The most a .npy entry may hold beyond its data: magic, version, header length and NumPy's largest header.
NPY_HEADER_MAX = 12 + 10_000
#: The most an archive may hold beyond its arrays' data: zip headers per entry, the directory's end.
ZIP_OVERHEAD_PER_ARRAY, ZIP_OVERHEAD = 1024, 64 * 1024


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


def record(
    path, layers=LAYERS, examples: int = 6, seed: int = 0, dtypes=DTYPES, on_case=None, force: bool = False
) -> dict:
    """Record ``examples`` cases per layer and dtype, run on real Keras, into the directory ``path``.

    Writes ``path/arrays.npz`` then ``path/manifest.json`` (the format of
    ``docs/golden.md``), each through a fresh temporary file in ``path`` (``mkstemp``:
    created, never followed if planted) renamed over the target, and returns the manifest.
    ``path`` must be new, empty or hold a recording already (see :func:`check_output_directory`),
    unless ``force``.
    ``on_case(golden_case, result)`` is called per recorded case with the
    engine's :class:`~scratch_rnn.testing.verify.CaseResult` against Keras, so a
    caller can report where the engine disagrees (the case is recorded anyway:
    the recording is Keras's truth). Keras 3 (the ``keras`` package) is recorded,
    whatever ``$SCRATCH_RNN_REFERENCE`` says.
    """
    from scratch_rnn.testing.runners import import_keras

    layers, dtypes = _choices(layers, LAYERS, "layers"), _choices(dtypes, DTYPES, "dtypes")
    examples, seed = _check_count_and_seed(examples, seed)
    path = check_output_directory(path, force)
    keras = import_keras("keras")
    path.mkdir(parents=True, exist_ok=True)
    arrays, entries = {}, []
    for layer in layers:
        for dtype in dtypes:
            drawn = _draw(layer, dtype, examples, seed, keras, first_index=len(entries))
            _add_cases(drawn, _case_entry, _case_arrays, entries, arrays, on_case)
    command = _command(path, layers, dtypes, examples, seed)
    recording = {"seed": seed, "examples": examples, "layers": list(layers), "dtypes": list(dtypes), "command": command}
    return _write_recording(path, _LAYER, keras, recording, {}, entries, arrays)


def _add_cases(drawn, entry_of, arrays_of, entries: list, arrays: dict, on_case) -> None:
    """Add the drawn ``(case, result)`` pairs to ``entries`` and ``arrays``, telling ``on_case``."""
    for golden, result in drawn:
        entries.append(entry_of(golden))
        arrays.update(arrays_of(golden))
        if on_case is not None:
            on_case(golden, result)


def _check_count_and_seed(examples, seed) -> tuple[int, int]:
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"Argument `examples` must be a positive int, got {examples!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"Argument `seed` must be an int, got {seed!r}.")
    return examples, int(seed)


def _write_recording(path: Path, fmt, keras, recording: dict, head: dict, entries: list, arrays: dict) -> dict:
    """Write ``arrays.npz``, then ``manifest.json`` (format ``fmt``, the versions recorded with,
    ``recording``, the extra top-level keys ``head``, the arrays' file and digest, and ``entries``,
    each given its ``"arrays"`` specs); return the manifest."""
    from hypothesis import __version__ as hypothesis_version

    from scratch_rnn.version import __version__ as scratch_rnn_version

    for entry in entries:
        entry["arrays"] = {
            name: {"shape": list(arrays[name].shape), "dtype": arrays[name].dtype.name}
            for name in fmt.array_names(entry)
        }
    digest = _write_atomic(path / ARRAYS, lambda f: np.savez_compressed(f, **arrays))
    manifest = {
        "format": fmt.name,
        "format_version": FORMAT_VERSION,
        "recorded_with": {
            "keras": keras.__version__,
            "tensorflow": sys.modules["tensorflow"].__version__,
            "numpy": np.__version__,
            "hypothesis": hypothesis_version,
            "scratch_rnn": scratch_rnn_version,
            "python": platform.python_version(),
        },
        "recording": recording,
        **head,
        "arrays": {"file": ARRAYS, "sha256": digest},
        "cases": entries,
    }
    manifest = _jsonable(manifest, "manifest")
    text = _manifest_text(manifest)
    _write_atomic(path / MANIFEST, lambda f: f.write(text.encode("utf-8")))
    return manifest


def check_output_directory(path, force: bool = False) -> Path:
    """``path`` as :func:`record` and :func:`record_model` may write to it: a new or empty directory, or one
    that already holds a recording (its ``manifest.json`` says ``"format": "scratch-rnn-golden"`` or
    ``"scratch-rnn-golden-model"``); any other directory only with ``force``, which replaces ``manifest.json``
    and ``arrays.npz`` there and leaves the rest. A ValueError otherwise, before anything is written."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError(f"Argument `path` (--out) must name a directory, got {path!r}.")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: not a directory; a recording is a directory holding {MANIFEST} and {ARRAYS}.")
    if path.is_dir() and not force:
        present = sorted(p.name for p in path.iterdir())
        if present and not _holds_recording(path):
            shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
            raise ValueError(
                f"{path}: not empty ({shown}) and holds no {FORMAT} recording; record into a new or empty "
                f"directory, or force it (--force, force=True) to replace {MANIFEST} and {ARRAYS} there."
            )
    return path


def _holds_recording(path: Path) -> bool:
    """Whether ``path/manifest.json`` is a regular file whose JSON says it is a recording."""
    manifest = path / MANIFEST
    try:
        if not manifest.is_file() or manifest.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        content = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(content, dict) and content.get("format") in (FORMAT, MODEL_FORMAT)


def _manifest_text(manifest: dict) -> str:
    """Indented JSON with each case on one compact line: readable, and a re-recording diffs case by case."""
    head = [f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in manifest.items() if k != "cases"]
    cases = ",\n".join("  " + json.dumps(c, separators=(",", ":"), allow_nan=False) for c in manifest["cases"])
    return "{\n" + ",\n".join([*head, f' "cases": [\n{cases}\n ]']) + "\n}\n"


def _draw(layer, dtype, examples, seed, keras, first_index):
    """``examples`` (GoldenCase, the engine's CaseResult) pairs for one layer and dtype, reproducibly drawn."""
    from scratch_rnn.testing.strategies import cases, recurrent_config

    def keep(case, kept):
        if min(*case.x.shape, recurrent_config(layer, case.config)["units"]) < 2:
            return None  # degenerate: cannot reveal a transpose, a gate swap, the time or batch axis mixed up
        if case.split is not None and sum(g.case.split is not None for g, _ in kept) >= -(-examples // 3):
            return None  # Hypothesis's first, small draws favour stateful ones (two timesteps at least): balance them
        golden = _run_keras(f"case{first_index + len(kept):04d}", case, keras)
        if not all(np.isfinite(a).all() for a in [*golden.outputs, *(golden.carried_state or [])]):
            return _DROPPED  # Keras overflowed on the way: a recording holds finite values only
        result = check_against(case, lambda: (golden.output_names, golden.outputs, golden.keras_config))
        if result.skipped:  # not a case anyone compares (exact result not finite or too large)
            return _DROPPED
        return golden, result

    return _collect(cases(layer, dtype), f"{seed}/{layer}/{dtype}", examples, keep, f"{layer} {dtype}")


#: What a ``keep`` function of :func:`_collect` returns for a case it drops for its values.
_DROPPED = object()


def _collect(strategy, seed_key: str, examples: int, keep, what: str) -> list:
    """The first ``examples`` items ``keep(drawn, kept)`` returns for draws of ``strategy``, reproducibly: a
    Hypothesis ``@given`` run seeded with ``crc32(seed_key)``, without the database, shrinking or the
    constants of local modules. ``keep`` returns None to pass a draw over, :data:`_DROPPED` to drop it for
    its values (counted in the error when too few are kept: a RuntimeError)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed

    from scratch_rnn.testing.hypothesis_internals import seed_only

    kept, dropped, draws = [], 0, 20 * examples + 20

    class Enough(Exception):
        """Raised once ``examples`` cases are kept: drawing a case costs tens of milliseconds."""

    @hypothesis_seed(zlib.crc32(seed_key.encode()))
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
    @given(drawn=strategy)
    def collect(drawn):
        nonlocal dropped
        if len(kept) == examples:  # Hypothesis replays the "failing" case once more: still enough
            raise Enough
        item = keep(drawn, kept)
        if item is _DROPPED:
            dropped += 1
        elif item is not None:
            kept.append(item)
        if len(kept) == examples:
            raise Enough

    try:
        with seed_only():
            collect()
    except Enough:
        pass
    if len(kept) < examples:
        raise RuntimeError(
            f"Only {len(kept)} of {examples} {what} cases could be recorded from {draws} "
            f"draws ({dropped} of them had a non-finite or too large exact or Keras result)."
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
    """Write through a temporary file in the same directory, then rename; the sha256 of what was written.

    The temporary file is ``mkstemp``'s: a fresh name, created with ``O_EXCL``, so a file or symlink
    planted in the directory is never opened, followed or overwritten. ``os.replace`` then replaces
    ``path`` itself, a symlink included, never what a symlink points to.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # mkstemp's 0600, widened to what open() would have given
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
        digest = _sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _command(path, layers, dtypes, examples, seed, model=None) -> str:
    layer_args = "" if tuple(layers) == LAYERS else "".join(f" --layer {layer}" for layer in layers)
    dtype_arg = " --dtype both" if tuple(dtypes) == DTYPES else f" --dtype {dtypes[0]}"
    model_arg = "" if model is None else f" --model {model}"
    return f"scratch-rnn record{model_arg} --out {path}{layer_args}{dtype_arg} --examples {examples} --seed {seed}"


def _choices(values, allowed, argument):
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"Argument `{argument}` must be a non-empty list of {list(allowed)}, got {list(values)}.")
    return values


# --- loading and checking --------------------------------------------------------------


def load(path) -> Recording:
    """Read and validate a recording (a directory, or its ``manifest.json``) without TensorFlow or Keras.

    Everything is checked before anything runs, and each size before what it bounds is read: the
    manifest's size, nesting, keys and types; every case's fields; its ``config`` and ``keras_config``,
    both buildable by the engine and agreeing on every option that changes the result and on the
    case's dtype; every array's declared shape and dtype, and the archive's and each entry's size
    against them, then each ``.npy`` header against them before its data is read; every value
    finite; no array missing or left over; the archive's sha256. Nothing is unpickled. Any problem
    is a :class:`GoldenFileError` naming the file and what is wrong (docs/golden.md, "What a
    reader may trust").
    """
    return _load(path, _LAYER)


def _load(path, fmt) -> Recording:
    """:func:`load` for the format ``fmt`` (:data:`_LAYER` or :data:`_MODEL`)."""
    manifest_path = _manifest_path(Path(path))
    manifest = _read_manifest(manifest_path, fmt)
    for index, entry in enumerate(manifest["cases"]):
        fmt.check_entry(entry, _check_fields(entry, index, manifest_path, fmt), manifest)
    specs = {name: spec for entry in manifest["cases"] for name, spec in entry["arrays"].items()}
    total = sum(_nbytes(spec) for spec in specs.values())
    if total > MAX_TOTAL_BYTES:
        raise GoldenFileError(
            f"{manifest_path}: its arrays take {total} bytes together, more than the {MAX_TOTAL_BYTES} "
            "a recording may hold."
        )
    arrays_path = manifest_path.parent / manifest["arrays"]["file"]
    if not arrays_path.is_file():
        raise GoldenFileError(f"{arrays_path}: not found; {manifest_path.name} refers to it for every array.")
    limit = total + total // 1000 + sum(ZIP_OVERHEAD_PER_ARRAY + 2 * len(n) for n in specs) + ZIP_OVERHEAD
    size = arrays_path.stat().st_size
    if size > limit:
        raise GoldenFileError(
            f"{arrays_path}: {size} bytes, more than the {limit} that the arrays {manifest_path.name} lists "
            "can take in a zip archive; it holds something else."
        )
    with _open_archive(arrays_path) as (archive, entries):
        cases, used = [], set()
        for entry in manifest["cases"]:
            fail = _failing(f"{manifest_path}: case {entry['id']!r}")
            arrays = _read_case(entry, fmt.array_names(entry), archive, entries, arrays_path, manifest_path, fail)
            cases.append(fmt.build_case(entry, arrays, fail, manifest))
            used.update(entry["arrays"])
    extra = sorted(set(entries) - used)
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
    if path.exists() and not path.is_dir() and not path.is_file():
        raise GoldenFileError(
            f"{path}: not a directory; expected a recording made by `scratch-rnn record` "
            f"(a directory holding {MANIFEST} and {ARRAYS})."
        )
    manifest = path / MANIFEST if path.is_dir() else path
    if not manifest.is_file():
        where = f"{path} has no {MANIFEST}" if path.is_dir() else f"{path}: not found"
        raise GoldenFileError(
            f"{where}; expected a recording made by `scratch-rnn record` (a directory holding {MANIFEST} and {ARRAYS})."
        )
    return manifest


#: A manifest's top-level keys, and its ``recording`` object's (``seed`` required, the rest optional).
_TOP_LEVEL = ("format", "format_version", "recorded_with", "recording", "arrays", "cases")
_RECORDING = {"seed": (int,), "examples": (int,), "layers": (list,), "dtypes": (list,), "command": (str,)}


def _read_manifest(path: Path, fmt) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise GoldenFileError(
                f"{path}: {size} bytes, more than the {MAX_MANIFEST_BYTES} a {fmt.name} manifest may take."
            )
        manifest = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except RecursionError:
        manifest = None  # nested too deeply for Python's parser: reported below
    except GoldenFileError:
        raise
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, NaN or Infinity, an integer too long
        raise GoldenFileError(f"{path}: not valid JSON ({one_line(err)}).") from None
    except OSError as err:
        raise GoldenFileError(f"{path}: cannot be read ({one_line(err)}).") from None
    if manifest is None or _too_deep(manifest):
        raise GoldenFileError(f"{path}: nested more than {MAX_DEPTH} levels deep; not a {fmt.name} manifest.")
    if not isinstance(manifest, dict) or manifest.get("format") != fmt.name:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        hint = _OTHER_FORMAT_HINTS.get(got, "") if got != fmt.name else ""
        raise GoldenFileError(
            f'{path}: not a {fmt.name} manifest (its "format" is {got!r:.80}, expected {fmt.name!r}){hint}.'
        )
    version = manifest.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise GoldenFileError(
            f"{path}: format version {version!r:.80} is not supported; this scratch_rnn reads "
            f"version {FORMAT_VERSION}. Re-record with `scratch-rnn record`."
        )
    unknown = [k for k in manifest if k not in fmt.top_level]
    missing = [k for k in fmt.top_level if k not in manifest]
    if unknown or missing:
        problem = (
            f"unknown top-level key {unknown[0]!r:.80}" if unknown else f"the top-level key {missing[0]!r} is missing"
        )
        raise GoldenFileError(f"{path}: {problem}; a {fmt.name} manifest has exactly {list(fmt.top_level)}.")
    recorded_with = manifest.get("recorded_with")
    if not isinstance(recorded_with, dict) or not all(isinstance(v, str) for v in recorded_with.values()):
        raise GoldenFileError(
            f'{path}: "recorded_with" must be an object of version strings, got {recorded_with!r:.80}.'
        )
    _check_recording(manifest.get("recording"), path, fmt.recording)
    fmt.check_head(manifest, path)
    arrays = manifest.get("arrays")
    if not (
        isinstance(arrays, dict)
        and set(arrays) == {"file", "sha256"}
        and isinstance(arrays["file"], str)
        and isinstance(arrays["sha256"], str)
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


def _no_constant(name: str):
    """``json.loads``'s ``parse_constant``: the format's JSON holds no NaN or Infinity."""
    raise ValueError(f"{name} is not allowed in a recording's manifest")


def _too_deep(value) -> bool:
    """Whether JSON ``value`` nests more than :data:`MAX_DEPTH` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _check_recording(recording, path: Path, schema: dict) -> None:
    """``recording``: how the file was made (keys and types of ``schema``); its ``seed`` names the cases in a
    report."""
    if not isinstance(recording, dict):
        raise GoldenFileError(f'{path}: "recording" must be an object, got {recording!r:.80}.')
    for key, value in recording.items():
        if key not in schema:
            raise GoldenFileError(f'{path}: "recording" has an unknown key {key!r:.80}; it may hold {list(schema)}.')
        types = schema[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise GoldenFileError(
                f'{path}: "recording.{key}" must be {" or ".join(t.__name__ for t in types)}, got {value!r:.80}.'
            )
    if "seed" not in recording:
        raise GoldenFileError(f'{path}: "recording.seed" is missing; it names the cases in a report.')


#: Each case entry's fields and the JSON types they may hold; a case has exactly these.
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

#: The options that change what a recurrent layer computes: ``config`` and ``keras_config`` must agree on
#: each (a Bidirectional's ``merge_mode`` and both directions' too). Initialisers, dropout and names do not.
_OPTIONS = (
    "dtype",
    "merge_mode",
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "zero_output_for_mask",
    "reset_after",
)


def _failing(where: str):
    """``fail(problem)``: raise a :class:`GoldenFileError` saying ``where: problem``."""

    def fail(problem):
        raise GoldenFileError(f"{where}: {problem}")

    return fail


def _check_fields(entry, index, manifest_path: Path, fmt):
    """A case entry is an object with exactly the fields of ``fmt`` in their JSON types, and its ``arrays``
    describe exactly the arrays it names, each spec checked; returns ``fail`` naming the case by id."""
    fail = _failing(f"{manifest_path}: case {index}")
    if not isinstance(entry, dict):
        fail(f"must be an object, got {type(entry).__name__}.")
    for key, types in fmt.fields.items():
        if key not in entry:
            fail(f"the field {key!r} is missing.")
        if not isinstance(entry[key], types) or isinstance(entry[key], bool):
            fail(f"the field {key!r} must be {' or '.join(t.__name__ for t in types)}, got {entry[key]!r:.80}.")
    unknown = [k for k in entry if k not in fmt.fields]
    if unknown:
        fail(f"unknown field {unknown[0]!r:.80}; a case has exactly the fields {list(fmt.fields)}.")
    fail = _failing(f"{manifest_path}: case {entry['id']!r}")
    if entry["dtype"] not in DTYPES:
        fail(f'"dtype" must be one of {list(DTYPES)}, got {entry["dtype"]!r}.')
    for key, types in fmt.fields.items():
        if list in types and not all(isinstance(n, str) for n in entry[key] or []):
            fail(f'"{key}" must be a list of strings, got {entry[key]!r:.80}.')
    names = fmt.array_names(entry)
    if sorted(names) != sorted(entry["arrays"]):
        fail(
            f'"arrays" must describe exactly the arrays the case names; it lists {sorted(entry["arrays"])}, '
            f"the case names {sorted(names)}."
        )
    for name in names:
        _check_spec(name, entry["arrays"][name], fail, fmt)
    return fail


def _check_layer_entry(entry, fail, manifest) -> None:
    """One layer case entry's ``layer``, outputs, ``config`` and ``keras_config``; nothing of the archive read."""
    if entry["layer"] not in LAYERS:
        fail(f'"layer" must be one of {list(LAYERS)}, got {entry["layer"]!r}.')
    if len(entry["outputs"]) != len(entry["output_names"]) or not entry["outputs"]:
        fail(
            f'"outputs" ({len(entry["outputs"])}) and "output_names" ({len(entry["output_names"])}) '
            "must be non-empty lists of the same length."
        )
    _check_configs(entry, fail)


def _check_spec(name: str, spec, fail, fmt) -> None:
    """An array's declared ``{"shape", "dtype"}``: at most ``fmt.max_rank`` non-negative dims, one of
    ``fmt.array_dtypes``, a bounded size."""
    if not (
        isinstance(spec, dict)
        and set(spec) == {"shape", "dtype"}
        and isinstance(spec["shape"], list)
        and isinstance(spec["dtype"], str)
    ):
        fail(f'arrays[{name!r}] must be {{"shape": [...], "dtype": "..."}}, got {spec!r:.80}.')
    shape = spec["shape"]
    if len(shape) > fmt.max_rank or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        fail(
            f"arrays[{name!r}]: the shape must be a list of at most {fmt.max_rank} non-negative ints, "
            f"got {shape!r:.80}."
        )
    if spec["dtype"] not in fmt.array_dtypes:
        fail(f"arrays[{name!r}]: the dtype must be one of {list(fmt.array_dtypes)}, got {spec['dtype']!r:.80}.")
    if _nbytes(spec) > MAX_ARRAY_BYTES:
        fail(
            f"the array {name!r} would take {_nbytes(spec)} bytes ({shape} {spec['dtype']}), more than the "
            f"{MAX_ARRAY_BYTES} one array may."
        )


def _nbytes(spec: dict) -> int:
    """The bytes of data a (checked) array spec declares."""
    return math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize


def _check_configs(entry, fail) -> None:
    """``config`` and ``keras_config`` both build an engine layer; both are in the case's dtype and agree on
    every option that changes the result (:data:`_OPTIONS`), so a bad file is never taken for a wrong engine."""
    options = {}
    for key in ("config", "keras_config"):
        try:
            options[key] = _computed_options(from_config(entry["layer"], entry[key]))
        except Exception as err:  # unknown options, missing keys, wrong types: the file's fault
            fail(f'"{key}" is not a {entry["layer"]} config scratch_rnn can build ({one_line(err)}).')
    for key, value in options["config"].items():
        if key.rpartition(".")[2] == "dtype" and value != entry["dtype"]:
            fail(f"\"config\" has `{key}` {value!r}, but the case's dtype (its arrays' dtype) is {entry['dtype']!r}.")
    ours, theirs = options["config"], options["keras_config"]
    for key in dict.fromkeys([*ours, *theirs]):
        if ours.get(key, "<absent>") != theirs.get(key, "<absent>"):
            fail(
                f"config and keras_config disagree on `{key}`: {ours.get(key, '<absent>')!r} vs "
                f"{theirs.get(key, '<absent>')!r}."
            )


def _computed_options(layer) -> dict:
    """The :data:`_OPTIONS` an (unbuilt) engine layer computes with; a Bidirectional's directions as
    ``layer.<option>`` and ``backward_layer.<option>``, with their class as ``layer.class_name``."""
    options = {}
    for key, value in layer.get_config().items():
        if hasattr(value, "get_config"):  # a wrapped layer
            options[f"{key}.class_name"] = type(value).__name__
            options.update({f"{key}.{k}": v for k, v in _computed_options(value).items()})
        elif key in _OPTIONS:
            options[key] = value
    return options


@contextlib.contextmanager
def _open_archive(arrays_path: Path):
    """The zip archive and its entries by array name (``<name>.npy``); nothing decompressed yet."""
    try:
        archive = zipfile.ZipFile(arrays_path)
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile) as err:
        raise GoldenFileError(
            f"{arrays_path}: not a readable .npz archive ({one_line(err)}); the file may be truncated or corrupt."
        ) from None
    with archive:
        entries = {}
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise GoldenFileError(
                    f"{arrays_path}: the entry {info.filename!r:.120} is not named '<array>.npy'; an .npz "
                    "archive stores each array as a .npy entry."
                )
            name = info.filename[: -len(".npy")]
            if name in entries:
                raise GoldenFileError(f"{arrays_path}: the entry {info.filename!r:.120} appears more than once.")
            entries[name] = info
        yield archive, entries


def _read_case(entry, names, archive, entries, arrays_path: Path, manifest_path: Path, fail) -> dict:
    """A checked case entry's arrays ``names`` read from the archive, each finite."""
    missing = [n for n in names if n not in entries]
    if missing and len(missing) == len(names):
        fail(
            f"listed in {manifest_path.name}, but {arrays_path.name} holds none of its arrays "
            f"(first missing: {missing[0]!r}); the two files come from different recordings."
        )
    if missing:
        fail(f"the array {missing[0]!r} is missing from {arrays_path}.")
    arrays = {n: _read_array(archive, entries[n], n, entry["arrays"][n], arrays_path, fail) for n in names}
    for name, array in arrays.items():
        if array.dtype != np.bool_ and not np.isfinite(array).all():
            fail(f"the array {name!r} holds NaN or infinity; every value of a recorded case is finite.")
    return arrays


def _layer_case(entry, arrays, fail, manifest) -> GoldenCase:
    """A layer case from its checked entry and arrays."""
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


def _read_array(archive, info, name: str, spec: dict, arrays_path: Path, fail) -> np.ndarray:
    """One ``.npy`` entry, its sizes checked before decompressing and its header before its data is read."""
    shape, dtype, nbytes = spec["shape"], spec["dtype"], _nbytes(spec)
    entry = f"{arrays_path}: the entry {info.filename!r}"
    if info.file_size > nbytes + NPY_HEADER_MAX:
        raise GoldenFileError(
            f"{entry} inflates to {info.file_size} bytes, but the {shape} {dtype} array the manifest declares "
            f"takes {nbytes} (and a header of at most {NPY_HEADER_MAX}); refused before decompressing it."
        )
    try:
        with archive.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
            except ValueError as err:
                raise GoldenFileError(f"{entry} is not a .npy file ({one_line(err)}).") from None
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(f)
            else:
                raise GoldenFileError(f"{entry} is a .npy file of version {version}; this reader takes 1.0 and 2.0.")
            got_shape, fortran_order, got_dtype = header
            if list(got_shape) != shape or got_dtype.name != dtype:
                fail(
                    f"the array {name!r} in {arrays_path.name} has shape {list(got_shape)} and dtype "
                    f"{got_dtype.name}, but the manifest records shape {shape} and dtype {dtype}."
                )
            data_size = info.file_size - f.tell()
            if data_size != nbytes:
                raise GoldenFileError(
                    f"{entry} holds {data_size} bytes after its .npy header, but a {shape} {dtype} array "
                    f"takes {nbytes}."
                )
            data = f.read(nbytes)
            f.read()  # the end of the entry: its CRC is checked
    except GoldenFileError:
        raise
    except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zlib.error, zipfile.BadZipFile) as err:
        raise GoldenFileError(
            f"{arrays_path}: the array {name!r} cannot be read ({one_line(err)}); the file is corrupt."
        ) from None
    if len(data) != nbytes:
        raise GoldenFileError(f"{entry} ends after {len(data)} of its {nbytes} bytes of data; the file is corrupt.")
    if dtype == "bool" and np.frombuffer(data, np.uint8).max(initial=0) > 1:
        raise GoldenFileError(f"{entry} holds bool bytes other than 0 and 1.")
    array = np.frombuffer(data, dtype=got_dtype).reshape(shape, order="F" if fortran_order else "C")
    return np.array(array, dtype=got_dtype.newbyteorder("="), order="C")


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


@dataclass(frozen=True)
class _Format:
    """What differs between the two kinds of recording: the format's name, the manifest's top-level keys,
    ``recording``'s keys, a case's fields, the arrays' dtypes and ranks, and the functions that check the
    format's own top-level keys (``check_head(manifest, path)``) and a case entry (``check_entry(entry,
    fail, manifest)``), list a case's array names and build a case from its checked arrays
    (``build_case(entry, arrays, fail, manifest)``)."""

    name: str
    top_level: tuple
    recording: dict
    fields: dict
    array_dtypes: tuple
    max_rank: int
    check_head: object
    check_entry: object
    array_names: object
    build_case: object


_LAYER = _Format(
    FORMAT,
    _TOP_LEVEL,
    _RECORDING,
    _FIELDS,
    ARRAY_DTYPES,
    3,
    lambda manifest, path: None,
    _check_layer_entry,
    _array_names,
    _layer_case,
)


def check(
    path, candidate=None, layers=None, ids=None, on_case=None, timeout: float | None = 60.0, precision: str = "float32"
) -> GoldenCheck:
    """Check the engine (``candidate=None``) or ``candidate`` against the recording at ``path``.

    Needs neither TensorFlow nor Keras. The recording is validated first
    (:func:`load`; a :class:`GoldenFileError` otherwise). Each case is compared
    as :func:`~scratch_rnn.testing.verify.check_against` compares a live Keras
    run, under the same derived tolerances. A stateful case runs the engine
    statefully; a candidate gets the recorded ``carried_state`` as its second
    call's initial state. ``layers`` and ``ids`` select cases (a ValueError if
    they select none); ``on_case(golden_case, result)`` is called after each.

    A candidate runs in a worker thread: whatever it raises (``SystemExit`` and
    ``KeyboardInterrupt`` included) fails that case; a case it has not finished
    after ``timeout`` seconds (None: no limit) fails, and the check stops there,
    since a hung candidate is not called again.

    ``precision`` is the candidate's products' precision (docs/precision.md); it applies to the float32
    cases, the float64 ones are checked as always. A failing float32 case is diagnosed.
    """
    timeout = _check_candidate(candidate, "candidate(config, weights, x, mask=None, initial_state=None)", timeout)
    check_precision(precision)
    recording = load(path)
    selected = _select(recording, ids, lambda g: layers is None or g.case.layer in layers, f"layers={layers} and ")
    return _run_checks(
        recording,
        selected,
        candidate,
        lambda g: (g.case.layer, g.case.dtype.name),
        lambda g: _check_one(g, candidate, timeout, precision),
        on_case,
        precision,
    )


def _check_candidate(candidate, signature: str, timeout) -> float | None:
    """A ValueError unless ``candidate`` is None or callable; ``timeout`` checked (:func:`check_timeout`)."""
    if candidate is not None and not callable(candidate):
        raise ValueError(
            f"Argument `candidate` must be None (the engine) or a callable {signature}, got {candidate!r:.80}."
        )
    return check_timeout(timeout)


def _select(recording: Recording, ids, keep, what: str = "") -> list:
    """The recorded cases ``keep(case)`` keeps whose id is in ``ids`` (None: any); a ValueError for an
    unknown id, or when none is left."""
    selected = [g for g in recording.cases if keep(g) and (ids is None or g.id in ids)]
    if ids is not None:
        unknown = sorted(set(ids) - {g.id for g in recording.cases})
        if unknown:
            raise ValueError(f"Argument `ids`: {unknown} are not cases of {recording.path / MANIFEST}.")
    if not selected:
        raise ValueError(f"No recorded case in {recording.path / MANIFEST} matches {what}ids={ids}.")
    return selected


def _run_checks(
    recording: Recording, selected: list, candidate, key_of, check_one, on_case, precision: str = "float32"
) -> GoldenCheck:
    """Run ``check_one(case) -> CaseResult`` on each selected case, in a :class:`Report` per ``key_of(case)``
    (a ``(layer or model, dtype)`` pair), each failure with how to rerun its case; a case that timed out
    ends the run."""
    name = "scratch_rnn engine" if candidate is None else getattr(candidate, "__qualname__", repr(candidate))
    result = GoldenCheck(recording.path, recording.recorded_with, name)
    reports = {}
    for done, golden in enumerate(selected, start=1):
        key = key_of(golden)
        if key not in reports:
            reports[key] = Report(
                layer=key[0],
                dtype=key[1],
                candidate=name,
                seed=recording.manifest.get("recording", {}).get("seed", -1),
                reference=f"recorded keras {recording.recorded_with.get('keras', '?')}",
                precision=lane_precision(precision, key[1]),
            )
        outcome = check_one(golden)
        reports[key].record(outcome)
        if not outcome.ok and not outcome.skipped:
            stopped = (
                f"; the check stopped there, {len(selected) - done} later cases not run" if outcome.timed_out else ""
            )
            reports[key].failures.append(
                Failure(
                    f"{golden.id}: {outcome.message()}",
                    f"recorded case {golden.id} in {recording.path / MANIFEST}; "
                    f"to rerun it alone, add --case {golden.id}{stopped}",
                    outcome.explained_by,
                )
            )
        if on_case is not None:
            on_case(golden, outcome)
        if outcome.timed_out:
            break
    result.reports = list(reports.values())
    return result


def lane_precision(precision: str, dtype) -> str:
    """The precision a case of ``dtype`` is checked at: ``precision`` for float32; float32 (today's model)
    for the float64 lane, which a reduced-precision port does not compute in."""
    return precision if str(dtype) == "float32" else "float32"


def _check_one(
    golden: GoldenCase, candidate=None, timeout: float | None = None, precision: str = "float32"
) -> CaseResult:
    """One recorded case against the engine or ``candidate``."""
    if candidate is not None and golden.carried_state is not None:
        candidate = _carrying(candidate, golden.carried_state)
    return check_against(
        golden.case,
        lambda: (golden.output_names, golden.outputs, golden.keras_config),
        candidate,
        timeout=timeout,
        precision=lane_precision(precision, golden.case.dtype.name),
    )


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


# --- whole models ----------------------------------------------------------------------


class ModelMismatchError(ValueError):
    """The model file given to :func:`check_model` is not the one the recording was made from (its sha256)."""


@dataclass
class GoldenModelCase:
    """One recorded model input: the :class:`~scratch_rnn.testing.model_verify.ModelCase` and Keras's outputs."""

    id: str
    dtype: str
    case: ModelCase
    outputs: list[np.ndarray]


def record_model(
    model, path, examples: int = 6, seed: int = 0, dtypes=DTYPES, on_case=None, force: bool = False
) -> dict:
    """Record ``examples`` inputs per dtype for the saved Keras model ``model`` (a ``.keras`` or ``.h5`` file),
    with Keras's outputs on each, into the directory ``path``; returns the manifest.

    The inputs fit the model (:func:`~scratch_rnn.testing.model_verify.model_cases`: ids inside an
    ``Embedding``'s vocabulary, ``mask_zero`` padding, ``Masking`` values), with a batch of two or more and
    every free axis (timesteps) of two or more, drawn reproducibly from ``seed``. ``dtype="float64"`` cases
    run Keras with the model's float dtypes rewritten, as :func:`~scratch_rnn.testing.model_verify.verify_model`
    does. The format is :data:`MODEL_FORMAT` (``docs/golden.md``, "Recording your own model"): the model
    file's sha256, its inputs' specs and outputs' names, and per case its inputs and Keras's outputs, written
    as :func:`record` writes (the same rule for ``path``, the same atomic writes). The engine is checked on
    each case too (``on_case(golden_model_case, result)``), and must be able to load the model: its float64
    twin derives the tolerances when checking. A ValueError for a file Keras or the engine cannot load.
    """
    from scratch_rnn.saving import load_model
    from scratch_rnn.testing.model_verify import input_specs, keras_in_dtype, keras_outputs, model_cases, output_names
    from scratch_rnn.testing.runners import import_keras

    dtypes = _choices(dtypes, DTYPES, "dtypes")
    examples, seed = _check_count_and_seed(examples, seed)
    model_file = check_model_file(model)
    path = check_output_directory(path, force)
    digest = _sha256(Path(model_file))
    keras = import_keras("keras")
    keras_model = keras.saving.load_model(model_file, compile=False)
    specs = input_specs(keras_model)
    unusable = [s for s in specs if s.dtype not in MODEL_INPUT_DTYPES or len(s.shape) >= MODEL_MAX_RANK]
    if unusable:
        raise ValueError(
            f"{model_file}: the input {unusable[0].name!r} is {unusable[0].dtype} of shape {unusable[0].shape}; a "
            f"recording holds inputs of {list(MODEL_INPUT_DTYPES)} with at most {MODEL_MAX_RANK} dimensions."
        )
    names = output_names(keras_model)
    try:
        oracle = load_model(model_file, dtype="float64")
    except ValueError as err:
        raise ValueError(
            f"scratch_rnn cannot load {model_file} ({one_line(err)}), and checking a recording derives its "
            "tolerances from the engine's float64 twin of the model."
        ) from None
    weights = [np.asarray(w) for w in keras_model.get_weights()]
    path.mkdir(parents=True, exist_ok=True)
    arrays, entries = {}, []
    for dtype in dtypes:
        keras_run, engine = keras_in_dtype(keras, keras_model, dtype), load_model(model_file, dtype=dtype)

        def keep(case, kept, keras_run=keras_run, engine=engine, dtype=dtype):
            free = [x.shape[a] for s, x in zip(specs, case.inputs) for a, d in enumerate(s.shape, 1) if d is None]
            if min([case.inputs[0].shape[0], *free]) < 2:
                return None  # one sample or one step cannot reveal the batch or time axis mixed up
            expected = keras_outputs(keras_run, case)
            if not all(np.isfinite(o).all() for o in expected):
                return _DROPPED  # Keras overflowed on the way: a recording holds finite values only
            result = check_model_case(case, lambda: expected, oracle, weights, dtype, names, engine)
            if result.skipped:
                return _DROPPED
            return GoldenModelCase(f"case{len(entries) + len(kept):04d}", dtype, case, expected), result

        drawn = _collect(model_cases(specs, dtype), f"{seed}/model/{dtype}", examples, keep, dtype)
        _add_cases(drawn, _model_entry, _model_arrays, entries, arrays, on_case)
    command = _command(path, LAYERS, dtypes, examples, seed, model=model_file)
    recording = {"seed": seed, "examples": examples, "dtypes": list(dtypes), "command": command}
    head = {
        "model": {
            "file": Path(model_file).name,
            "sha256": digest,
            "name": keras_model.name,
            "inputs": [vars(spec) | {"shape": list(spec.shape)} for spec in specs],
            "outputs": names,
        }
    }
    return _write_recording(path, _MODEL, keras, recording, head, entries, arrays)


def check_model_file(model) -> str:
    """``model`` as the path of an existing file, else a ValueError naming the argument."""
    if not isinstance(model, (str, os.PathLike)) or not os.path.isfile(model):
        raise ValueError(f"Argument `model` (--model) must be a saved Keras model file, got {model!r:.200}.")
    return os.fspath(model)


def _model_entry(golden: GoldenModelCase) -> dict:
    i = golden.id
    return {
        "id": i,
        "dtype": golden.dtype,
        "inputs": [f"{i}/inputs/{k}" for k in range(len(golden.case.inputs))],
        "outputs": [f"{i}/outputs/{k}" for k in range(len(golden.outputs))],
        "padding": list(golden.case.padding),
    }


def _model_arrays(golden: GoldenModelCase) -> dict:
    named = {f"{golden.id}/inputs/{k}": x for k, x in enumerate(golden.case.inputs)}
    named.update({f"{golden.id}/outputs/{k}": o for k, o in enumerate(golden.outputs)})
    return {name: np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for name, a in named.items()}


def load_model_recording(path) -> Recording:
    """Read and validate a model recording (:data:`MODEL_FORMAT`) as :func:`load` does a layer recording,
    with NumPy only: the same bounds and checks, and the model's own keys (its sha256, input specs and
    output names) with each case's inputs fitting those specs (dtype, rank, fixed sizes, one batch size,
    one size per free axis, ids inside the vocabulary) and its outputs the case's dtype and batch."""
    return _load(path, _MODEL)


#: The keys of a model recording's ``model`` object, and of each of its ``inputs`` (an ``InputSpec``).
_MODEL_KEYS = ("file", "sha256", "name", "inputs", "outputs")
_SPEC_KEYS = tuple(InputSpec.__dataclass_fields__)


def _check_model_head(manifest: dict, path: Path) -> None:
    """The ``model`` object: the file's name and sha256, the model's name, its inputs' specs, its outputs' names."""
    fail = _failing(f'{path}: "model"')
    model = manifest["model"]
    if not isinstance(model, dict) or sorted(model) != sorted(_MODEL_KEYS):
        fail(f"must be an object with exactly the keys {list(_MODEL_KEYS)}, got {model!r:.120}.")
    digest = model["sha256"]
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        fail(f'"sha256" must be 64 lowercase hex digits, got {digest!r:.80}.')
    if not isinstance(model["file"], str) or not isinstance(model["name"], str):
        fail(f'"file" and "name" must be strings, got {model["file"]!r:.80} and {model["name"]!r:.80}.')
    outputs = model["outputs"]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(n, str) for n in outputs):
        fail(f'"outputs" must be a non-empty list of names, got {outputs!r:.80}.')
    inputs = model["inputs"]
    if not isinstance(inputs, list) or not inputs:
        fail(f'"inputs" must be a non-empty list of input specs, got {inputs!r:.80}.')
    for k, spec in enumerate(inputs):
        if not isinstance(spec, dict) or sorted(spec) != sorted(_SPEC_KEYS):
            fail(f"inputs[{k}] must be an object with exactly the keys {list(_SPEC_KEYS)}, got {spec!r:.120}.")
        shape, vocabulary, mask_value = spec["shape"], spec["vocabulary"], spec["mask_value"]
        if not (
            isinstance(spec["name"], str)
            and isinstance(shape, list)
            and len(shape) < MODEL_MAX_RANK
            and all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 1) for d in shape)
            and spec["dtype"] in MODEL_INPUT_DTYPES
            and (vocabulary is None or (isinstance(vocabulary, int) and not isinstance(vocabulary, bool)))
            and isinstance(spec["mask_zero"], bool)
            and (mask_value is None or (isinstance(mask_value, (int, float)) and not isinstance(mask_value, bool)))
        ):
            fail(
                f"inputs[{k}] must name an input, its shape without the batch (at most {MODEL_MAX_RANK - 1} "
                f"positive sizes or null), a dtype of {list(MODEL_INPUT_DTYPES)}, an int or null vocabulary, a "
                f"bool mask_zero and a number or null mask_value; got {spec!r:.200}."
            )
        if vocabulary is not None and (vocabulary < 1 or np.dtype(spec["dtype"]).kind not in "iu"):
            fail(f"inputs[{k}]: a vocabulary (ids fed to an Embedding) must be positive, of integer ids.")


def _model_specs(manifest: dict) -> list[InputSpec]:
    return [InputSpec(**{**spec, "shape": tuple(spec["shape"])}) for spec in manifest["model"]["inputs"]]


def _check_model_entry(entry, fail, manifest) -> None:
    """One model case entry: an input per model input (and its padding), an output per model output."""
    model = manifest["model"]
    if len(entry["inputs"]) != len(model["inputs"]) or len(entry["padding"]) != len(model["inputs"]):
        fail(
            f'"inputs" ({len(entry["inputs"])}) and "padding" ({len(entry["padding"])}) must list one entry per '
            f"model input ({len(model['inputs'])})."
        )
    if len(entry["outputs"]) != len(model["outputs"]):
        fail(f'"outputs" lists {len(entry["outputs"])} arrays, but the model has {len(model["outputs"])} outputs.')


def _model_array_names(entry: dict) -> list[str]:
    return [*entry["inputs"], *entry["outputs"]]


def _model_case(entry, arrays, fail, manifest) -> GoldenModelCase:
    """A model case from its checked entry and arrays: inputs fit the model's specs, outputs the case's dtype."""
    dtype, specs = entry["dtype"], _model_specs(manifest)
    inputs = [arrays[n] for n in entry["inputs"]]
    batch = inputs[0].shape[0] if inputs[0].ndim else 0
    free = {}
    for spec, name, x in zip(specs, entry["inputs"], inputs):
        wanted = spec.dtype if np.dtype(spec.dtype).kind in "iu" else dtype
        if x.dtype.name != wanted:
            fail(f"the input {name!r} has dtype {x.dtype.name}, but input {spec.name!r} takes {wanted} here.")
        if x.ndim != 1 + len(spec.shape) or batch < 1 or x.shape[0] != batch:
            fail(
                f"the input {name!r} has shape {list(x.shape)}, but input {spec.name!r} takes "
                f"(batch, {', '.join(map(str, spec.shape))}) with the case's one batch size {batch} >= 1."
            )
        for axis, (size, fixed) in enumerate(zip(x.shape[1:], spec.shape), start=1):
            if size != (free.setdefault(axis, size) if fixed is None else fixed) or size < 1:
                fail(f"the input {name!r} has {size} on axis {axis}, which the model's other inputs or spec fix.")
        if spec.vocabulary is not None and x.size and (x.min() < 0 or x.max() >= spec.vocabulary):
            fail(f"the input {name!r} holds ids outside [0, {spec.vocabulary}), the vocabulary of its Embedding.")
    outputs = [arrays[n] for n in entry["outputs"]]
    for name, o in zip(entry["outputs"], outputs):
        if o.dtype.name != dtype or o.ndim < 1 or o.shape[0] != batch:
            fail(f"the output {name!r} is {o.dtype.name} {list(o.shape)}; expected {dtype} with batch {batch}.")
    return GoldenModelCase(entry["id"], dtype, ModelCase(inputs, specs, list(entry["padding"])), outputs)


_MODEL = _Format(
    MODEL_FORMAT,
    ("format", "format_version", "recorded_with", "recording", "model", "arrays", "cases"),
    {"seed": (int,), "examples": (int,), "dtypes": (list,), "command": (str,)},
    {"id": (str,), "dtype": (str,), "inputs": (list,), "outputs": (list,), "padding": (list,), "arrays": (dict,)},
    MODEL_ARRAY_DTYPES,
    MODEL_MAX_RANK,
    _check_model_head,
    _check_model_entry,
    _model_array_names,
    _model_case,
)

#: What to do instead, when a recording of the other kind is given.
_OTHER_FORMAT_HINTS = {
    FORMAT: "; a layer recording is checked without --model (golden.check)",
    MODEL_FORMAT: "; a model recording is checked with --model PATH (golden.check_model)",
}


def check_model(
    path, model, candidate=None, ids=None, on_case=None, timeout: float | None = 60.0, precision: str = "float32"
) -> GoldenCheck:
    """Check the engine (``candidate=None``) or ``candidate(model_file, inputs) -> outputs`` against the model
    recording at ``path``, for the saved model file ``model``, with NumPy and h5py only.

    The recording is validated first (:func:`load_model_recording`; a :class:`GoldenFileError`), then
    ``model``'s sha256 must be the recorded one (a :class:`ModelMismatchError` naming both). The engine is
    the file loaded by :func:`scratch_rnn.load_model` in each case's dtype; the tolerances are derived as
    :func:`~scratch_rnn.testing.model_verify.verify_model` derives them, from the engine's float64 twin of
    the model (``load_model(model, dtype="float64")``). ``ids`` selects cases; ``on_case`` and ``timeout``
    and ``precision`` are :func:`check`'s. One report per dtype.
    """
    from scratch_rnn.saving import load_model

    timeout = _check_candidate(candidate, "candidate(model_file, inputs) -> outputs", timeout)
    check_precision(precision)
    model_file = check_model_file(model)
    recording = load_model_recording(path)
    recorded, digest = recording.manifest["model"]["sha256"], _sha256(Path(model_file))
    if digest != recorded:
        raise ModelMismatchError(
            f"{model_file}: sha256 {digest} is not the {recorded} recorded in {recording.path / MANIFEST}; "
            "this is not the model file the recording was made from (re-record it with scratch-rnn record --model)."
        )
    selected = _select(recording, ids, lambda g: True)
    oracle = load_model(model_file, dtype="float64")
    weights, names, engines = oracle.get_weights(), recording.manifest["model"]["outputs"], {}

    def check_one(golden: GoldenModelCase) -> CaseResult:
        if candidate is None and golden.dtype not in engines:
            engines[golden.dtype] = load_model(model_file, dtype=golden.dtype)
        return check_model_case(
            golden.case, lambda: golden.outputs, oracle, weights, golden.dtype, names, engines.get(golden.dtype),
            candidate, model_file, timeout, lane_precision(precision, golden.dtype),
        )  # fmt: skip

    model_name = recording.manifest["model"]["name"]
    return _run_checks(recording, selected, candidate, lambda g: (model_name, g.dtype), check_one, on_case, precision)
