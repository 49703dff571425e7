"""Saved Keras files -> scratch models, without TensorFlow: :func:`load_model` and :func:`load_weights`; and
back: :func:`save_model` and :func:`save_weights` write Keras 3 ``.keras`` and ``.weights.h5`` files (the
section "writing" at the end; the configs come from :mod:`scratch_rnn.keras_config`).

Three formats are read (Keras's own source is the spec: ``keras/src/saving/saving_lib.py`` and
``keras/src/legacy/saving/legacy_h5_format.py``):

* a Keras 3 ``.keras`` archive: a zip of ``config.json`` (the model), ``metadata.json``
  (``keras_version``) and ``model.weights.h5``;
* a Keras 3 ``.weights.h5`` file (``model.save_weights``, and the ``model.weights.h5`` of an
  archive): one HDF5 group per object of the model's tracking tree, keyed by *class* and occurrence,
  not by the layer's configured name: the second ``Dense`` of a model is ``layers/dense_1/vars/0``
  (kernel) and ``layers/dense_1/vars/1`` (bias), an LSTM's kernel ``layers/lstm/cell/vars/0``, a
  ``Bidirectional``'s ``layers/bidirectional/forward_layer/cell/vars/0``;
* a legacy HDF5 model (``.h5``, written by Keras 2 / ``tf_keras`` or by Keras 3's
  ``keras.saving.save_model(m, "m.h5")``): root attributes ``model_config`` (JSON),
  ``keras_version`` and ``backend``; weights under ``model_weights/<layer name>/`` listed, in order,
  by each group's ``weight_names`` attribute; layers are matched by order, as Keras does. A legacy
  weights file (``save_weights("w.h5")``) is the same tree at the root.

A file may come from anyone, so nothing in it runs: nothing is unpickled, a config is JSON, and a layer
is built only from :data:`scratch_rnn.keras_convert.KERAS_CLASSES`. A ``Lambda`` layer, a class from a
module outside Keras or registered by a user (``registered_name``), or a layer the engine lacks is a
ValueError naming the layer, its class and the file. So is a damaged file: a truncated archive, a
missing weight, a weight whose shape or dtype does not match the config, an HDF5 link, external or
virtual dataset, a dataset or zip member declaring far more bytes than it stores (checked before
anything is read), and more than ``max_bytes`` of weights in all.

h5py is imported only by the functions that read or write a file (``pip install 'scratch-rnn[h5]'``):
``import scratch_rnn`` stays NumPy-only.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import zipfile
import zlib

import numpy as np

from scratch_rnn import models
from scratch_rnn.checks import check_dtype
from scratch_rnn.core_layers import Activation, Dropout, Masking
from scratch_rnn.keras_convert import KERAS_CLASSES, from_config, model_from_config
from scratch_rnn.layer import Layer
from scratch_rnn.models import Input, Sequential
from scratch_rnn.rnn import BaseRNN
from scratch_rnn.wrappers import Bidirectional, TimeDistributed

#: The most weight bytes a file may make the loader read, unless ``max_bytes`` says otherwise (4 GiB).
MAX_BYTES = 1 << 32

#: The most bytes ``config.json`` or ``metadata.json`` may inflate to.
MAX_JSON_BYTES = 64 << 20

#: A zip member or HDF5 dataset above this many bytes must not declare more than :data:`ZIP_MAX_EXPANSION`
#: (:data:`H5_MAX_EXPANSION`) times the bytes it stores. Keras writes both uncompressed (1:1); a re-zipped
#: archive of float weights inflates ~1.1:1; a bomb of zeros, ~1000:1 (DEFLATE's limit is ~1032:1).
EXPANSION_FLOOR = 1 << 20
ZIP_MAX_EXPANSION = 100
H5_MAX_EXPANSION = 1000

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_WEIGHTS_MEMBER = "model.weights.h5"

#: Model classes a config may name; everything else at the top level is refused.
_SEQUENTIAL = "Sequential"
_FUNCTIONAL = ("Functional", "Model")

#: Config keys naming the first layer's input shape in Keras 3 and Keras 2.
_BATCH_SHAPE_KEYS = ("batch_shape", "batch_input_shape")


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - the test extra installs h5py
        raise ImportError(
            "Keras .keras and .h5 files are read and written with h5py: pip install 'scratch-rnn[h5]'"
        ) from err
    return h5py


# --- the public functions ---------------------------------------------------------------------------------


def load_model(path, *, max_bytes: int = MAX_BYTES, dtype=None):
    """A scratch model, weights included, from a Keras ``.keras`` archive or legacy ``.h5`` model file.

    Keras 3 and Keras 2 (``tf_keras``) files are read without TensorFlow or Keras; see the module
    docstring for the formats. ``max_bytes`` bounds the weights the file may make the loader read.
    ``dtype`` (``"float32"`` or ``"float64"``; None: as saved) makes the model compute in that dtype:
    every float dtype of the config (layers' dtype policies, float inputs) is rewritten before the
    layers are built (:func:`with_float_dtype`), and the weights are cast as they are assigned (a
    float64 twin of a float32 model is the harness's oracle). Integer inputs (token ids) stay integers.
    Anything that cannot be loaded exactly (a layer the engine lacks, a ``Lambda``, a custom class,
    a damaged file) is a ValueError naming the file; nothing in the file is executed.
    """
    path = os.fspath(path)
    dtype = None if dtype is None else check_dtype(dtype).name
    kind = _sniff(path)
    if kind == "zip":
        with _open_archive(path) as archive:
            config = with_float_dtype(_read_json(archive, "config.json", path), dtype)
            metadata = _read_json(archive, "metadata.json", path) if "metadata.json" in archive.namelist() else {}
            version = str(metadata.get("keras_version", "3")) if isinstance(metadata, dict) else "3"
            model = _model_from_config(config, path, version)
            if _WEIGHTS_MEMBER not in archive.namelist():
                if _has_weights(model):
                    raise ValueError(f"File {path!r} is a .keras archive without {_WEIGHTS_MEMBER}: no weights.")
                return model
            with _member(archive, _WEIGHTS_MEMBER, path) as member:
                h5py = _h5py()
                where = f"{path} ({_WEIGHTS_MEMBER})"
                with _h5_errors(where), h5py.File(member, "r") as f:
                    _assign(model, _read_keras3(f, model, where, max_bytes))
        return model
    h5py = _h5py()
    with _h5_errors(path), h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(
                f"File {path!r} holds weights only (no `model_config`): build the model, then call "
                "model.load_weights(path)."
            )
        config = with_float_dtype(_parse_json(_attr(f.attrs["model_config"]), path, "model_config"), dtype)
        version = _attr(f.attrs.get("keras_version", "1"))
        model = _model_from_config(config, path, version)
        if "model_weights" not in f:
            raise ValueError(f"File {path!r} has a model config but no `model_weights` group.")
        _assign(model, _read_legacy(f["model_weights"], model, path, max_bytes))
    return model


def load_weights(model, path, *, max_bytes: int = MAX_BYTES) -> None:
    """Set ``model``'s weights from a Keras 3 ``.weights.h5`` file (or ``.keras`` archive) or a legacy
    HDF5 weights or model file; also ``model.load_weights(path)``.

    The model must be built (an ``Input``). All or nothing: a file that does not fit the model
    (a weight missing, too many, a shape that differs) is a ValueError naming the file, and the model
    keeps its weights.
    """
    path = os.fspath(path)
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: give it an Input before loading weights from {path!r}.")
    kind = _sniff(path)
    h5py = _h5py()
    if kind == "zip":
        with _open_archive(path) as archive, _member(archive, _WEIGHTS_MEMBER, path) as member:
            where = f"{path} ({_WEIGHTS_MEMBER})"
            with _h5_errors(where), h5py.File(member, "r") as f:
                per_layer = _read_keras3(f, model, where, max_bytes)
    else:
        with _h5_errors(path), h5py.File(path, "r") as f:
            if "layer_names" in f.attrs or "layer_names0" in f.attrs:
                per_layer = _read_legacy(f, model, path, max_bytes)
            elif "model_weights" in f:
                per_layer = _read_legacy(f["model_weights"], model, path, max_bytes)
            else:
                per_layer = _read_keras3(f, model, path, max_bytes)
    model.set_weights([w for weights in per_layer for w in weights])


#: Keras 3's serialised dtype policies whose ``name`` a float dtype rewrite replaces.
_FLOAT_POLICIES = ("DTypePolicy", "FloatDTypePolicy")


def with_float_dtype(config, dtype):
    """A Keras model (or layer) config with every float dtype set to ``dtype``; ``config`` itself when
    ``dtype`` is None. A ``"dtype"`` that names a float type (``"float32"``, ``"float16"``,
    ``"mixed_float16"``, ...) and the ``name`` of a ``DTypePolicy`` are replaced; integer and bool
    dtypes (an ``Input`` of token ids) are kept. Nothing is modified in place."""
    if dtype is None:
        return config
    if isinstance(config, dict):
        inner = config.get("config")
        if config.get("class_name") in _FLOAT_POLICIES and isinstance(inner, dict) and _float_name(inner.get("name")):
            return {**config, "config": {**inner, "name": dtype}}
        return {
            key: dtype if key == "dtype" and _float_name(value) else with_float_dtype(value, dtype)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [with_float_dtype(value, dtype) for value in config]
    return config


def _float_name(name) -> bool:
    return isinstance(name, str) and name.startswith(("float", "bfloat", "mixed_"))


# --- file kinds, zip members, JSON ------------------------------------------------------------------------


def _sniff(path: str) -> str:
    """``"zip"`` or ``"hdf5"`` from the file's first bytes, else a ValueError."""
    if os.path.isdir(path):
        raise ValueError(
            f"{path!r} is a directory (a TensorFlow SavedModel?): scratch_rnn reads .keras archives and .h5 files."
        )
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise ValueError(f"Cannot read {path!r}: {err}") from None
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head == _HDF5_MAGIC:
        return "hdf5"
    raise ValueError(f"File {path!r} is neither a .keras archive (zip) nor an HDF5 file (.h5): first bytes {head!r}.")


def _open_archive(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"File {path!r} is not a readable .keras archive (truncated or corrupt?): {err}") from None


def _check_member(archive: zipfile.ZipFile, name: str, path: str, limit: int) -> zipfile.ZipInfo:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"File {path!r} is a zip without {name!r}: not a Keras .keras archive.") from None
    if info.flag_bits & 0x1:
        raise ValueError(f"Member {name!r} of {path!r} is encrypted.")
    if info.file_size > limit:
        raise ValueError(f"Member {name!r} of {path!r} declares {info.file_size} bytes, more than the {limit} allowed.")
    if info.file_size > EXPANSION_FLOOR and info.file_size > ZIP_MAX_EXPANSION * max(info.compress_size, 1):
        raise ValueError(
            f"Member {name!r} of {path!r} declares {info.file_size} bytes but stores {info.compress_size}: "
            "refusing a decompression bomb."
        )
    return info


def _read_json(archive: zipfile.ZipFile, name: str, path: str):
    """A JSON member, read with a hard cap on the bytes it may inflate to."""
    _check_member(archive, name, path, MAX_JSON_BYTES)
    try:
        with archive.open(name) as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as err:
        raise ValueError(f"Member {name!r} of {path!r} cannot be read (truncated or corrupt?): {err}") from None
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"Member {name!r} of {path!r} inflates beyond {MAX_JSON_BYTES} bytes.")
    return _parse_json(data, path, name)


def _parse_json(data, path: str, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"`{what}` of {path!r} is not valid JSON: {err}") from None


class _Window(io.RawIOBase):
    """A read-only, seekable view of bytes ``[start, start + size)`` of an open file: a stored
    (uncompressed) zip member that h5py reads in place, without a copy of the member in memory."""

    def __init__(self, f, start: int, size: int):
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(view[:n]) if n else 0
        self._pos += got
        return got


class _member:
    """The weights member of an archive as a file object for h5py: a window on the archive file when
    stored, else zipfile's own stream (seekable, slower)."""

    def __init__(self, archive: zipfile.ZipFile, name: str, path: str):
        self.info = _check_member(archive, name, path, 1 << 62)
        self.archive, self.path, self.files = archive, path, []

    def __enter__(self):
        info = self.info
        if info.compress_type == zipfile.ZIP_STORED:
            f = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
            self.files.append(f)
            f.seek(info.header_offset)
            header = f.read(30)
            if len(header) != 30 or header[:4] != _ZIP_MAGIC:
                raise ValueError(f"Member {info.filename!r} of {self.path!r}: bad local header (corrupt archive).")
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_length + extra_length
            if start + info.file_size > os.fstat(f.fileno()).st_size:
                raise ValueError(f"Member {info.filename!r} of {self.path!r} is truncated.")
            return _Window(f, start, info.file_size)
        stream = self.archive.open(info)
        self.files.append(stream)
        return stream

    def __exit__(self, *exc):
        for f in self.files:
            f.close()


class _h5_errors:
    """h5py's errors on a damaged file (OSError, KeyError, ...) as a ValueError naming the file."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, (OSError, RuntimeError)):
            raise ValueError(f"File {self.where!r} cannot be read as HDF5 (truncated or corrupt?): {err}") from None
        return False


def _attr(value):
    """An HDF5 attribute as str (h5py gives bytes for old files, str for new) or a list of str."""
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray):
        return [_attr(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_attr(v) for v in value]
    return value


def _list_attr(group, name: str) -> list[str]:
    """Keras's ``load_attributes_from_hdf5_group``: an attribute too big for one HDF5 attribute is split
    into ``name0``, ``name1``, ..."""
    if name in group.attrs:
        return [str(v) for v in _attr(group.attrs[name])]
    values, i = [], 0
    while f"{name}{i}" in group.attrs:
        values += [str(v) for v in _attr(group.attrs[f"{name}{i}"])]
        i += 1
    return values


# --- config -> model --------------------------------------------------------------------------------------


def _check_safe(obj, path: str, name: str = "?") -> None:
    """Refuse anything in a config that would need code from outside Keras: a dict naming a ``module``
    outside Keras, a ``registered_name`` of a user's class, or a serialised function or lambda.
    ``name`` is the layer the dict belongs to, for the message."""
    if isinstance(obj, list):
        for item in obj:
            _check_safe(item, path, name)
        return
    if not isinstance(obj, dict):
        return
    inner = obj.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        name = inner["name"]
    class_name = obj.get("class_name")
    if class_name is not None:
        module, registered = obj.get("module"), obj.get("registered_name")
        if class_name in _CODE_CLASSES or (module is not None and not _keras_module(module)):
            raise ValueError(
                f"Layer {name!r} in {path!r} is of class {class_name!r} (module {module!r}): it would run code "
                "from the file or from outside Keras, so scratch_rnn refuses it."
            )
        if registered is not None and registered != class_name:
            raise ValueError(
                f"Layer {name!r} in {path!r} is of class {class_name!r} registered as {registered!r}: a custom, "
                "registered class, not one of Keras's, so scratch_rnn refuses it."
            )
    for value in obj.values():
        _check_safe(value, path, name)


#: Classes whose config carries code (Python bytecode or a function's name): refused wherever they appear.
_CODE_CLASSES = ("Lambda", "__lambda__", "function", "TFOpLambda", "SlicingOpLambda")


def _keras_module(module) -> bool:
    return isinstance(module, str) and module.split(".")[0] in ("keras", "tf_keras")


def _model_from_config(config, path: str, version: str):
    """The scratch model of a Keras model config (a ``{"class_name", "config"}`` dict), layers built
    on the model's input shape without drawing weights (the file's are assigned next)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"The model config in {path!r} is not a Keras model config: {str(config)[:100]!r}.")
    _check_safe(config, path)
    kind = config["class_name"]
    if kind in _FUNCTIONAL:
        return _functional_from_config(config, path, version)
    if kind != _SEQUENTIAL:
        raise ValueError(
            f"The model in {path!r} is of class {kind!r}: scratch_rnn loads Sequential and functional models "
            "(a subclassed model's code is not in the file)."
        )
    body = config.get("config", {})
    layer_configs = body if isinstance(body, list) else body.get("layers", [])  # Keras 2.0 wrote a list
    name = body.get("name") if isinstance(body, dict) else None
    batch_shape, layers, input_options = None, [], {}
    for entry in layer_configs:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ValueError(f"A layer entry of the model in {path!r} is not a Keras layer config: {entry!r:.100}.")
        cls, layer_config = entry.get("class_name"), dict(entry["config"])
        if cls == "InputLayer":
            if layers:
                raise ValueError(f"The model in {path!r} has an InputLayer after its first layer.")
            batch_shape = _batch_shape(layer_config, batch_shape)
            input_options = _input_options(layer_config)
            continue
        if not layers:
            batch_shape = _batch_shape(layer_config, batch_shape)
        if cls not in KERAS_CLASSES:
            raise ValueError(
                f"Layer {layer_config.get('name', '?')!r} in {path!r} is of class {cls!r}, which scratch_rnn does "
                f"not implement; supported: {sorted(KERAS_CLASSES)}."
            )
        layers.append(_layer(cls, layer_config, path, version))
    if not layers:
        raise ValueError(f"The model in {path!r} has no layers.")
    if batch_shape is None and isinstance(body, dict):
        batch_shape = body.get("build_input_shape") or (layer_configs[0].get("build_config") or {}).get("input_shape")
    if batch_shape is None:
        raise ValueError(
            f"The model in {path!r} has no input shape (it was saved unbuilt), so its weights cannot be placed."
        )
    try:
        batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        _build(layers, batch_shape)
        return Sequential([Input(batch_shape=batch_shape, **input_options), *layers], name=name)
    except (ValueError, TypeError) as err:
        raise ValueError(f"The model in {path!r} cannot be built: {err}") from None


def _input_options(layer_config: dict) -> dict:
    """The ``name`` and ``dtype`` of a Sequential's ``InputLayer``, kept so that a model saved again writes
    the same ``InputLayer`` (token ids stay int32). A dtype the engine does not compute in (float16) is left
    out: the layers cast their input to their own dtype anyway."""
    options = {}
    if isinstance(layer_config.get("name"), str):
        options["name"] = layer_config["name"]
    dtype = layer_config.get("dtype")
    dtype = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
    except TypeError:
        kind = None
    if kind in ("i", "u", "b") or dtype in ("float32", "float64"):
        options["dtype"] = dtype
    return options


def _batch_shape(layer_config: dict, found):
    for key in _BATCH_SHAPE_KEYS:
        if layer_config.get(key) is not None:
            return layer_config[key]
    return found


def _layer(cls: str, config: dict, path: str, version: str) -> Layer:
    """One scratch layer from a Keras layer config, Keras 2's defaults filled in where Keras 3's differ."""
    if not version.startswith("3") and cls == "GRU":
        config.setdefault("reset_after", False)  # Keras 2 before 2.1 had no reset_after: its GRU was False's
    if cls == "Bidirectional" and not version.startswith("3"):
        for key in ("layer", "backward_layer"):
            inner = config.get(key)
            if isinstance(inner, dict) and inner.get("class_name") == "GRU" and isinstance(inner.get("config"), dict):
                inner["config"] = {"reset_after": False, **inner["config"]}
    try:
        return from_config(cls, config)
    except ValueError as err:
        raise ValueError(f"{err} (in {path!r})") from None


def _build(layers: list[Layer], batch_shape: tuple) -> None:
    """Build every layer on its input shape without drawing weights: the file's replace them."""
    shape = batch_shape
    for layer in layers:
        layer.build(shape, initialize=False)
        shape = layer.compute_output_shape(shape)


def _functional_from_config(config: dict, path: str, version: str = "3"):
    """A functional model through :func:`scratch_rnn.keras_convert.model_from_config` (its layers from
    :data:`KERAS_CLASSES` only; the config was checked by :func:`_check_safe` first). It passes masks as
    the Keras that saved it did (``metadata.json``'s ``keras_version``: :data:`scratch_rnn.models.KERAS_SEMANTICS`)."""
    body = config.get("config")
    saved_by = version if str(version).count(".") >= 1 and str(version).startswith("3.") else None
    try:
        return model_from_config(body, keras_version=saved_by)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"The functional model in {path!r} cannot be built: {err}") from None


def _weights_of(layer) -> list:
    """The layer's :class:`~scratch_rnn.keras_layout.WeightSpec` list; none for an ``Input``."""
    return layer.weight_spec() if isinstance(layer, Layer) else []


def _has_weights(model) -> bool:
    return any(_weights_of(layer) for layer in model.layers)


# --- weights ------------------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case``: ``SimpleRNN`` -> ``simple_rnn``, ``LSTM`` -> ``lstm``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_keys(model) -> list[str]:
    """The key of each of ``model.layers`` under ``layers/`` in a Keras 3 weights file: its class in snake
    case, ``_1``, ``_2``, ... for later layers of the same class (saving_lib's ``_get_unique_name``)."""
    used: dict[str, int] = {}
    keys = []
    for layer in model.layers:  # a functional model's include its Inputs, Keras's InputLayers
        base = _snake("InputLayer" if isinstance(layer, Input) else type(layer).__name__)
        used[base] = used[base] + 1 if base in used else 0
        keys.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return keys


def _vars_groups(layer: Layer, prefix: str) -> list[tuple[str, Layer]]:
    """The ``vars`` groups of ``layer`` under ``prefix``, in the layer's weight order, with the (sub)layer
    whose weights each holds."""
    if isinstance(layer, Bidirectional):
        return _vars_groups(layer.forward_layer, f"{prefix}/forward_layer") + _vars_groups(
            layer.backward_layer, f"{prefix}/backward_layer"
        )
    if isinstance(layer, TimeDistributed):
        return _vars_groups(layer.layer, f"{prefix}/layer")
    if isinstance(layer, (Dropout, Masking, Activation, Input)) or not _weights_of(layer):
        return []
    cells = getattr(getattr(layer, "cell", None), "cells", None)
    if isinstance(layer, BaseRNN) and cells is not None:  # RNN(StackedRNNCells): each cell's, keyed by class
        used: dict[str, int] = {}
        groups = []
        for cell in cells:
            base = _snake(type(cell).__name__)
            used[base] = used[base] + 1 if base in used else 0
            key = base if used[base] == 0 else f"{base}_{used[base]}"
            groups.append((f"{prefix}/cell/cells/{key}/vars", cell))
        return groups
    if isinstance(layer, BaseRNN):  # a recurrent layer: its weights belong to its cell
        return [(f"{prefix}/cell/vars", layer)]
    return [(f"{prefix}/vars", layer)]


def _read_keras3(f, model, where: str, max_bytes: int) -> list[list[np.ndarray]]:
    """Each layer's weights from a Keras 3 weights file, checked against the model before any is read."""
    budget = _Budget(max_bytes, where)
    plan = []  # (layer, [(dataset, spec)])
    for layer, key in zip(model.layers, _keras3_keys(model)):
        datasets = []
        for group_path, owner in _vars_groups(layer, f"layers/{key}"):
            specs = owner.weight_spec()
            group = _group(f, group_path, where, layer)
            names = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if names != [str(i) for i in range(len(specs))]:
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) expects {len(specs)} weights in "
                    f"{group_path!r} of {where!r}, found {len(names)} ({names[:8]})."
                )
            for i, spec in enumerate(specs):
                datasets.append((_dataset(group, str(i), f"{group_path}/{i}", where, layer, spec, budget), spec))
        plan.append((layer, datasets))
    return [[_read(ds, where) for ds, _ in datasets] for _, datasets in plan]


def _read_legacy(group, model, where: str, max_bytes: int) -> list[list[np.ndarray]]:
    """Each layer's weights from a legacy HDF5 weights group, matched by order as Keras does
    (``legacy_h5_format.load_weights_from_hdf5_group``)."""
    budget = _Budget(max_bytes, where)
    version = str(_attr(group.attrs.get("keras_version", "1")))
    if version.startswith("1"):
        raise ValueError(f"File {where!r} was written by Keras {version}: Keras 1 weights are not supported.")
    saved = []
    for name in _list_attr(group, "layer_names"):
        layer_group = _group(group, name, where, None)
        weight_names = _list_attr(layer_group, "weight_names")
        if weight_names:
            saved.append((name, layer_group, weight_names))
    layers = [layer for layer in model.layers if _weights_of(layer)]
    if len(saved) != len(layers):
        raise ValueError(
            f"File {where!r} holds weights for {len(saved)} layers ({[s[0] for s in saved]}), but model "
            f"{model.name!r} has {len(layers)} layers with weights ({[layer.name for layer in layers]})."
        )
    plan = []
    for layer, (name, layer_group, weight_names) in zip(layers, saved):
        specs = layer.weight_spec()
        if len(weight_names) != len(specs):
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) expects {len(specs)} weights, but {where!r} "
                f"holds {len(weight_names)} for layer {name!r}: {weight_names}."
            )
        plan.append(
            [
                _dataset(layer_group, wn, f"{name}/{wn}", where, layer, spec, budget)
                for wn, spec in zip(weight_names, specs)
            ]
        )
    read = iter([[_read(ds, where) for ds in datasets] for datasets in plan])
    return [next(read) if _weights_of(layer) else [] for layer in model.layers]  # one entry per model layer


def _h5_member(parent, name: str, label: str, where: str, kind: str, owner: str, missing: str):
    """``parent[name]``, checked to be a hard link to a ``kind`` (``"group"`` or ``"dataset"``); ``missing``
    is the error when there is none, ``owner`` what the error of a wrong kind adds after ``label``."""
    h5py = _h5py()
    link = parent.get(name, getlink=True)
    if link is None:
        raise ValueError(missing)
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"File {where!r}: {label!r} is a {type(link).__name__}, not allowed in a weights file.")
    member = parent[name]
    if not isinstance(member, h5py.Group if kind == "group" else h5py.Dataset):
        raise ValueError(f"File {where!r}: {label!r}{owner} is not a {kind}.")
    return member


def _group(parent, name: str, where: str, layer):
    owner = f" for layer {layer.name!r} ({type(layer).__name__})" if layer is not None else ""
    missing = f"File {where!r} has no group {name!r}{owner}: a weight is missing."
    return _h5_member(parent, name, name, where, "group", owner, missing)


class _Budget:
    """The bytes the weights may take in all: checked as each dataset is declared, before any is read."""

    def __init__(self, max_bytes: int, where: str):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes <= 0:
            raise ValueError(
                f"Received an invalid value for argument `max_bytes`, expected a positive integer, got {max_bytes!r}."
            )
        self.left, self.limit, self.where = int(max_bytes), int(max_bytes), where

    def take(self, nbytes: int, what: str) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise ValueError(
                f"File {self.where!r}: the weights up to {what!r} take more than max_bytes={self.limit} bytes."
            )


def _dataset(group, name: str, label: str, where: str, layer, spec, budget: _Budget):
    """The dataset ``name`` of ``group`` for weight ``spec`` of ``layer``: shape, dtype, storage and
    byte budget checked before it is read."""
    owner = f"weight {spec.keras_name!r} of layer {layer.name!r} ({type(layer).__name__})"
    missing = f"File {where!r} has no dataset {label!r}: {owner} is missing."
    ds = _h5_member(group, name, label, where, "dataset", f" ({owner})", missing)
    if ds.external or ds.is_virtual:
        raise ValueError(f"File {where!r}: {label!r} ({owner}) is an external or virtual dataset, not allowed.")
    if ds.dtype.kind != "f" or ds.dtype.itemsize not in (2, 4, 8):
        raise ValueError(f"File {where!r}: {label!r} ({owner}) has dtype {ds.dtype}, expected a float.")
    if tuple(ds.shape) != tuple(spec.keras_shape):
        raise ValueError(
            f"File {where!r}: {label!r} ({owner}) has shape {tuple(ds.shape)}, but the model's config implies "
            f"{tuple(spec.keras_shape)}."
        )
    declared = math.prod(ds.shape) * ds.dtype.itemsize
    budget.take(declared, label)
    stored = ds.id.get_storage_size()
    if declared > EXPANSION_FLOOR and declared > H5_MAX_EXPANSION * stored:
        raise ValueError(
            f"File {where!r}: {label!r} ({owner}) declares {declared} bytes but stores {stored}: "
            "refusing a decompression or shape bomb."
        )
    return ds


def _read(ds, where: str) -> np.ndarray:
    out = np.empty(ds.shape, dtype=ds.dtype)
    if out.size:
        try:
            ds.read_direct(out)
        except (OSError, RuntimeError, TypeError) as err:
            raise ValueError(f"File {where!r}: dataset {ds.name!r} cannot be read (truncated?): {err}") from None
    return out


def _assign(model, per_layer: list[list[np.ndarray]]) -> None:
    """Give each layer of a freshly built model its weights, dropping each array once it is copied (peak
    memory: the weights read plus one layer's copy)."""
    for i, layer in enumerate(model.layers):
        weights, per_layer[i] = per_layer[i], None
        if weights:
            layer.set_weights(weights)
        del weights


# --- writing: scratch models -> Keras 3 files ------------------------------------------------------------
# The writer mirrors the reader: the same tree of weights (``_keras3_keys``, ``_vars_groups``), the config
# from :mod:`scratch_rnn.keras_config` (the converse of ``keras_convert``).


def save_model(model, filepath) -> None:
    """Write ``model`` (a built scratch :class:`Sequential` or functional :class:`Model`) as a Keras 3
    ``.keras`` archive that ``keras.saving.load_model`` loads (safe mode) and predicts identically with, and
    that :func:`load_model` reads back; also ``model.save(filepath)``. No TensorFlow or Keras is needed
    (h5py writes the weights).

    The archive is what Keras 3 writes (``saving_lib.py``): ``metadata.json`` (``keras_version``: the
    version whose mask semantics the model follows, :data:`scratch_rnn.models.KERAS_SEMANTICS`),
    ``config.json`` (:func:`scratch_rnn.keras_config.model_config`) and ``model.weights.h5``, stored
    uncompressed. ``filepath`` must end in ``.keras``: a legacy ``.h5`` model is refused by name.
    """
    from scratch_rnn.keras_config import model_config

    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            f"Received an invalid value for argument `filepath`, expected a path ending in '.keras' (the legacy "
            f".h5 model format is not written), got {filepath!r}."
        )
    config = json.dumps(model_config(model))
    metadata = json.dumps(
        {"keras_version": getattr(model, "keras_version", models.DEFAULT_KERAS_VERSION), "date_saved": _now()}
    )
    weights = io.BytesIO()
    _write_weights(model, weights)
    with zipfile.ZipFile(filepath, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", metadata)
        archive.writestr("config.json", config)
        archive.writestr(_WEIGHTS_MEMBER, weights.getvalue())


def save_weights(model, filepath) -> None:
    """Write ``model``'s weights as a Keras 3 ``.weights.h5`` file (Keras's ``model.save_weights``), which a
    Keras model of the same architecture and :func:`load_weights` read; also ``model.save_weights(path)``."""
    filepath = os.fspath(filepath)
    if not filepath.endswith(".weights.h5"):
        raise ValueError(
            f"Received an invalid value for argument `filepath`, expected a path ending in '.weights.h5', "
            f"got {filepath!r}."
        )
    _write_weights(model, filepath)


def _now() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")


def _write_weights(model, target) -> None:
    """The Keras 3 weights tree of ``model`` into ``target`` (a path or a binary file object): one ``vars``
    group per object holding weights, at the paths :func:`_read_keras3` reads, datasets ``0``, ``1``, ... in
    the layer's weight order and Keras's layout."""
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built, so it has no weights to save: give it an Input first.")
    h5py = _h5py()
    with h5py.File(target, "w") as f:
        for layer, key in zip(model.layers, _keras3_keys(model)):
            for group_path, owner in _vars_groups(layer, f"layers/{key}"):
                group = f.create_group(group_path)
                group.attrs["name"] = owner.name
                for i, weight in enumerate(owner.get_weights()):
                    group.create_dataset(str(i), data=weight)


# ``model.load_weights(path)``, ``model.save(path)`` and ``model.save_weights(path)``, as in Keras: the methods
# are the models' (models.py), this module's functions behind them; models.py does not import the file
# loaders and writers (dependencies point down; docs/architecture.md).
models.WEIGHTS_READER = load_weights
models.MODEL_WRITER = save_model
models.WEIGHTS_WRITER = save_weights
