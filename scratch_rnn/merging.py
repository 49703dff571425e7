"""Keras's merge layers: several inputs of the same shape (up to broadcasting) combined into one.

``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum`` combine elementwise,
``Concatenate`` joins along an axis and ``Dot`` takes batchwise dot products. Each is called on a
list of arrays, ``layer([a, b], mask=[mask_a, None])``, and has no weights.

Masks follow Keras 3 (``keras/src/layers/merging/``), where a merge layer reads the masks attached
to its inputs; here they are the ``mask`` list, one ``(batch, ...)`` boolean array (or None) per
input, shaped like that input without its last axis (``(batch, timesteps)`` for
``(batch, timesteps, features)``):

* the output mask of the elementwise layers is the logical **OR** of the input masks, and None as
  soon as one input has none (Keras's ``Merge.compute_mask``);
* ``Add``, ``Subtract`` and ``Average`` ignore masks in their values; ``Multiply`` treats a masked
  element as 1 and, when every input has a mask, zeroes the elements masked in all of them;
  ``Maximum`` and ``Minimum`` take a masked element from the running result (so a step masked in one
  input is the other input's), as Keras's ``_apply_merge_op_and_or_mask``;
* ``Concatenate``'s output mask is the masks (all True for an input without one), broadcast over
  the features, concatenated along ``axis`` and reduced with ``any`` over the last axis;
* ``Dot`` returns no mask.

Inputs of different ranks are expanded at axis 1 until their ranks agree, as Keras does; masks on
such inputs are refused (not implemented).
"""

from __future__ import annotations

import numpy as np

from scratch_rnn.checks import as_numeric, boolean
from scratch_rnn.layer import WeightlessLayer

#: Keras's ``backend.epsilon()``: the smallest norm ``Dot(normalize=True)`` divides by.
EPSILON = 1e-7


def _elementwise_shape(shape1, shape2, shapes):
    """Keras's ``Merge._compute_elemwise_op_output_shape`` (shapes without the batch axis), right-aligned."""
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2) :], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1 or j == 1:
            out.append(j if i == 1 else i)
        elif i != j:
            raise ValueError(f"Argument `inputs`: inputs have incompatible shapes {shapes} (no broadcast).")
        else:
            out.append(i)
    return tuple(out)


class _Merge(WeightlessLayer):
    """The shared part of the merge layers: the inputs list, its masks, shapes and the OR of the masks."""

    #: How many inputs the layer takes: at least ``MIN_INPUTS``, exactly ``EXACT_INPUTS`` if set.
    MIN_INPUTS = 1
    EXACT_INPUTS: int | None = None

    def __init__(self, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)

    def _check_count(self, n: int) -> None:
        if self.EXACT_INPUTS is not None and n != self.EXACT_INPUTS:
            raise ValueError(
                f"Argument `inputs` of {self.name!r}: a `{type(self).__name__}` layer should be called on exactly "
                f"{self.EXACT_INPUTS} inputs, got {n}."
            )
        if n < self.MIN_INPUTS:
            raise ValueError(
                f"Argument `inputs` of {self.name!r}: a `{type(self).__name__}` layer should be called on a list of "
                f"at least {self.MIN_INPUTS} input(s), got {n}."
            )

    def _inputs(self, inputs, mask):
        """``inputs`` as arrays in the layer's dtype and ``mask`` as a list of bool arrays or None, checked."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                f"Argument `inputs` of {self.name!r} must be a list of arrays (a merge layer takes several), "
                f"got {type(inputs).__name__}."
            )
        self._check_count(len(inputs))
        xs = []
        for i, x in enumerate(inputs):
            x = as_numeric(x, f"inputs[{i}]", self.dtype)
            if x.ndim < 1:
                raise ValueError(f"Argument `inputs[{i}]` of {self.name!r} must have a batch axis, got a scalar.")
            xs.append(x)
        if len({x.shape[0] for x in xs}) > 1:
            raise ValueError(
                f"Argument `inputs` of {self.name!r}: cannot merge tensors with different batch sizes, got shapes "
                f"{[x.shape for x in xs]}."
            )
        if mask is None:
            return xs, [None] * len(xs)
        if not isinstance(mask, (list, tuple)) or len(mask) != len(xs):
            got = f"{len(mask)} masks" if isinstance(mask, (list, tuple)) else type(mask).__name__
            raise ValueError(
                f"Argument `mask` of {self.name!r} must be None or a list of {len(xs)} masks (one per input, "
                f"None allowed), got {got}."
            )
        masks = []
        for i, (x, m) in enumerate(zip(xs, mask)):
            if m is not None:
                m = as_numeric(m, f"mask[{i}]").astype(bool)
                if m.shape != x.shape[:-1] or x.ndim < 2:
                    raise ValueError(
                        f"Argument `mask[{i}]` of {self.name!r} must have the shape of inputs[{i}] without its last "
                        f"axis, {x.shape[:-1]}, got {m.shape}."
                    )
            masks.append(m)
        if len({x.ndim for x in xs}) > 1 and any(m is not None for m in masks):
            raise ValueError(
                f"Argument `mask` of {self.name!r}: masks on inputs of different ranks ({[x.shape for x in xs]}) "
                "are not supported by scratch_rnn."
            )
        return xs, masks

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        self._check_count(len(shapes))
        out = shapes[0][1:]
        for shape in shapes[1:]:
            out = _elementwise_shape(out, shape[1:], shapes)
        batch = {s[0] for s in shapes} - {None}
        return (batch.pop() if len(batch) == 1 else None, *out)

    def compute_mask(self, inputs, mask):
        """The OR of the input masks; None if any input has none (Keras's ``Merge.compute_mask``)."""
        if mask is None or (isinstance(mask, (list, tuple)) and any(m is None for m in mask)):
            return None  # before the inputs are read: a functional graph passes symbolic ones
        _, masks = self._inputs(inputs, mask)
        if any(m is None for m in masks):
            return None
        return np.logical_or.reduce(np.broadcast_arrays(*masks))

    def call(self, inputs, mask=None):
        """Merge ``inputs`` (a list of arrays); ``mask`` a list of masks or None. See the class docstring."""
        xs, masks = self._inputs(inputs, mask)
        self.compute_output_shape([x.shape for x in xs])  # Keras's build: incompatible shapes refused
        self.ensure_built([(None, *x.shape[1:]) for x in xs])
        rank = max(x.ndim for x in xs)
        xs = [x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]) for x in xs]  # expand at axis 1
        return np.asarray(self._merge(xs, masks), dtype=self.dtype)

    def _merge(self, xs, masks):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}


class Add(_Merge):
    """Keras's ``Add``: ``y = x_1 + x_2 + ... + x_n`` elementwise (broadcasting), summed in that order.

    Call arguments:
        inputs: list of arrays ``(batch, ...)`` of the same shape up to broadcasting.
        mask: None or a list of ``(batch, ...)`` masks; not used in the values, OR-ed into the output mask.
    """

    def _merge(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Subtract(_Merge):
    """Keras's ``Subtract``: ``y = x_1 - x_2``, on exactly two inputs; masks as :class:`Add`."""

    EXACT_INPUTS = 2

    def _merge(self, xs, masks):
        return xs[0] - xs[1]


class Average(_Merge):
    """Keras's ``Average``: ``y = (x_1 + ... + x_n) / n`` elementwise; masks as :class:`Add`."""

    def _merge(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y / len(xs)


def _expanded(mask, x):
    """A ``(batch, ...)`` mask broadcast over the features of ``x (batch, ..., features)``."""
    return None if mask is None else np.broadcast_to(mask[..., None], x.shape)


class Multiply(_Merge):
    """Keras's ``Multiply``: ``y = x_1 * ... * x_n`` elementwise, masked elements counting as 1.

    Equations::

        x_i' = where(mask_i, x_i, 1)                 # (batch, ..., features), mask_i over the features
        y    = x_1' * ... * x_n'
        y    = where(mask_1 | ... | mask_n, y, 0)    # only when every input has a mask
    """

    def _merge(self, xs, masks):
        every = all(m is not None for m in masks)
        y, keep = None, None
        for x, m in zip(xs, masks):
            m = _expanded(m, x)
            if m is not None:
                x = np.where(m, x, self.dtype.type(1))
                if every:
                    keep = m if keep is None else keep | m
            y = x if y is None else y * x
        if every:
            y = np.where(keep, y, self.dtype.type(0))
        return y


class _Extremum(_Merge):
    """``Maximum`` and ``Minimum``: Keras's ``_apply_merge_op_and_or_mask``.

    Equations (running result ``y``, its mask ``k``, elementwise; masks over the features)::

        y = x_1;  k = mask_1
        x_i = where(mask_i, x_i, y)        # a masked element takes the running result
        y   = where(k, y, x_i)             # a masked running result takes the element
        k   = k | mask_i                   # None once an input has no mask
        y   = op(y, x_i)
    """

    OP = staticmethod(np.maximum)

    def _merge(self, xs, masks):
        y, keep = None, None
        for x, m in zip(xs, masks):
            m = _expanded(m, x)
            if y is None:
                y, keep = x, m
                continue
            if m is not None:
                x = np.where(m, x, y)
            if keep is not None:
                y = np.where(keep, y, x)
            keep = keep | m if (m is not None and keep is not None) else None
            y = self.OP(y, x)
        return y


class Maximum(_Extremum):
    """Keras's ``Maximum``: ``y = max(x_1, ..., x_n)`` elementwise; masked elements are skipped (see
    :class:`_Extremum`)."""

    OP = staticmethod(np.maximum)


class Minimum(_Extremum):
    """Keras's ``Minimum``: ``y = min(x_1, ..., x_n)`` elementwise; masked elements are skipped (see
    :class:`_Extremum`)."""

    OP = staticmethod(np.minimum)


def _int(value, argument: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected an integer, got {value!r}.")
    return int(value)


class Concatenate(_Merge):
    """Keras's ``Concatenate``: ``y = concat([x_1, ..., x_n], axis)``.

    Shapes: the inputs agree on every axis but ``axis``; ``(B, T, F1)`` and ``(B, T, F2)`` with
    ``axis=-1`` give ``(B, T, F1 + F2)``.

    Output mask (Keras's ``Concatenate.compute_mask``)::

        m_i  = broadcast(mask_i[..., None], x_i.shape)  or all True when input i has no mask
        mask = any(concat([m_1, ..., m_n], axis), axis=-1)      # None if no input has a mask

    Args:
        axis: integer, the axis to join along (default -1).
    """

    def __init__(self, axis=-1, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.axis = _int(axis, "axis")

    def _check_shapes(self, shapes):
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(
                f"Argument `inputs` of {self.name!r}: a `Concatenate` layer with axis={self.axis} requires inputs of "
                f"the same rank, at least {self.axis + 1 if self.axis >= 0 else -self.axis}, got shapes {shapes}."
            )
        axis = self.axis % rank
        for k in range(rank):
            if k != axis and len({s[k] for s in shapes} - {None}) > 1:
                raise ValueError(
                    f"Argument `inputs` of {self.name!r}: a `Concatenate` layer requires inputs with matching shapes "
                    f"except for the concatenation axis {self.axis}, got shapes {shapes}."
                )
        return axis

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        self._check_count(len(shapes))
        axis = self._check_shapes(shapes)
        sizes = [s[axis] for s in shapes]
        out = list(shapes[0])
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def compute_mask(self, inputs, mask):
        if mask is None or (isinstance(mask, (list, tuple)) and all(m is None for m in mask)):
            return None  # before the inputs are read: a functional graph passes symbolic ones
        xs, masks = self._inputs(inputs, mask)
        if all(m is None for m in masks):
            return None
        full = [
            np.ones(x.shape, bool) if m is None else np.broadcast_to(m[..., None], x.shape) for x, m in zip(xs, masks)
        ]
        return np.any(np.concatenate(full, axis=self.axis), axis=-1)

    def call(self, inputs, mask=None):
        xs, _ = self._inputs(inputs, mask)
        self.compute_output_shape([x.shape for x in xs])
        self.ensure_built([(None, *x.shape[1:]) for x in xs])
        return np.concatenate(xs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Keras's ``Dot``: batchwise dot products of two inputs along one axis of each.

    Equations (``a = axes[0]`` of ``x``, ``b = axes[1]`` of ``z``, sizes equal; batch axis ``n``)::

        x = x / max(||x||_a, 1e-7);  z = z / max(||z||_b, 1e-7)      # only with normalize
        y[n, i..., j...] = sum_k x[n, i..., k (at a)...] * z[n, j..., k (at b)...]

    ``x (B, X..., K)`` and ``z (B, K, Z...)`` give ``y (B, X..., Z...)``; an output of rank 1 becomes
    ``(B, 1)`` (two ``(B, K)`` inputs: one dot product per sample). The batch axis 0 cannot be an
    axis. No output mask.

    Args:
        axes: an integer (the same axis of both inputs) or a pair ``(axis_of_x, axis_of_z)``;
            negative axes count from the end of each input.
        normalize: whether to L2-normalise both inputs along their axis first (cosine similarity),
            as Keras does: ``x * min(1 / sqrt(sum(x^2)), 1e7)``.
    """

    EXACT_INPUTS = 2

    def __init__(self, axes, normalize=False, *, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(
                    "Received an invalid value for argument `axes`, expected an integer or a pair of integers, "
                    f"got {axes!r}."
                )
            self.axes = tuple(_int(a, "axes") for a in axes)
        else:
            self.axes = _int(axes, "axes")
        if 0 in (self.axes if isinstance(self.axes, tuple) else (self.axes,)):
            raise ValueError(
                f"Received an invalid value for argument `axes`, got {axes!r}: the batch axis 0 cannot be one."
            )
        self.normalize = boolean(normalize, "normalize")

    def _axes(self, shapes):
        pair = self.axes if isinstance(self.axes, tuple) else (self.axes, self.axes)
        resolved = []
        for shape, axis in zip(shapes, pair):
            if len(shape) < 2:
                raise ValueError(
                    f"Argument `inputs` of {self.name!r}: `Dot` needs inputs of rank >= 2, got shapes {shapes}."
                )
            if not -len(shape) <= axis < len(shape) or axis % len(shape) == 0:
                raise ValueError(
                    f"Argument `axes` of {self.name!r}: axis {axis} is out of range, or the batch axis, for an "
                    f"input of shape {shape}."
                )
            resolved.append(axis % len(shape))
        (a, b), (s1, s2) = resolved, shapes
        if s1[a] is not None and s2[b] is not None and s1[a] != s2[b]:
            raise ValueError(
                f"Argument `inputs` of {self.name!r}: incompatible input shapes: axis values {s1[a]} (at axis {a}) != "
                f"{s2[b]} (at axis {b}). Full input shapes: {s1}, {s2}."
            )
        return a, b

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        self._check_count(len(shapes))
        a, b = self._axes(shapes)
        out = [d for k, d in enumerate(shapes[0]) if k != a] + [d for k, d in enumerate(shapes[1]) if k not in (0, b)]
        return tuple(out) if len(out) > 1 else (*out, 1)

    def compute_mask(self, inputs, mask):
        return None

    def call(self, inputs, mask=None):
        xs, _ = self._inputs(inputs, None)  # masks do not enter a dot product, and no mask leaves it
        x, z = xs
        a, b = self._axes([x.shape, z.shape])
        self.ensure_built([(None, *x.shape[1:]), (None, *z.shape[1:])])
        if self.normalize:  # Keras's rsqrt: a zero vector gives inf, capped at 1 / epsilon, times 0: 0
            with np.errstate(divide="ignore"):
                x = x * np.minimum(
                    1 / np.sqrt(np.sum(np.square(x), axis=a, keepdims=True)), self.dtype.type(1 / EPSILON)
                )
                z = z * np.minimum(
                    1 / np.sqrt(np.sum(np.square(z), axis=b, keepdims=True)), self.dtype.type(1 / EPSILON)
                )
        x = np.moveaxis(x, a, -1)  # (B, X..., K)
        z = np.moveaxis(z, b, 1)  # (B, K, Z...)
        batch, k = x.shape[0], x.shape[-1]
        y = x.reshape(batch, -1, k) @ z.reshape(batch, k, -1)  # (B, prod X, prod Z)
        y = y.reshape(batch, *x.shape[1:-1], *z.shape[2:])  # (B, X..., Z...)
        return y.reshape(batch, 1) if y.ndim == 1 else y

    def get_config(self):
        axes = list(self.axes) if isinstance(self.axes, tuple) else self.axes
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}
