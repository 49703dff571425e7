"""The one boundary between Keras's weight layout and the seed's.

Keras stores a recurrent layer's input kernel as ``(input_dim, units)`` and
computes ``x @ kernel``; the seed notebook (and this engine) stores
``Wx (units, input_dim)`` and computes ``Wx @ x``. Every conversion between the
two happens here, one named tensor at a time, each shape asserted before it is
copied (the habit of nanoGPT's ``from_pretrained``). No other module transposes.

=======================  ===============================  ================================
Keras weight             Keras shape                      seed attribute (shape)
=======================  ===============================  ================================
``kernel`` (recurrent)   ``(input_dim, G*units)``         ``Wx (G*units, input_dim)``
``recurrent_kernel``     ``(units, G*units)``             ``Wh (G*units, units)``
``bias`` (recurrent)     ``(G*units,)``                   ``b (G*units,)``
``bias`` (GRU, reset     ``(2, 3*units)``                 ``b (2, 3*units)``
after)
``kernel`` (Dense)       ``(input_dim, units)``           ``W (units, input_dim)``
``bias`` (Dense)         ``(units,)``                     ``b (units,)``
``embeddings``           ``(input_dim, output_dim)``      ``embeddings (input_dim, output_dim)``
=======================  ===============================  ================================

``G`` is the number of stacked gate blocks: 1 for SimpleRNN, 4 for LSTM (i, f, c, o),
3 for GRU (z, r, h); the blocks keep Keras's order, so only kernels are transposed.
``Bidirectional`` lists its forward layer's weights then its backward layer's;
``TimeDistributed`` lists its wrapped layer's.

Turning Keras objects and configs into scratch layers is one row up, in
:mod:`scratch_rnn.keras_convert`; this module knows weights only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratch_rnn.checks import as_numeric


@dataclass(frozen=True)
class WeightSpec:
    """One weight: its Keras name and shape, the seed attribute holding it, whether they differ by a transpose,
    and whether Keras trains it (``BatchNormalization``'s moving statistics are not: summary's split)."""

    keras_name: str
    attr: str
    keras_shape: tuple
    transpose: bool
    trainable: bool = True

    @property
    def seed_shape(self) -> tuple:
        return tuple(reversed(self.keras_shape)) if self.transpose else self.keras_shape

    def to_seed(self, keras_array: np.ndarray) -> np.ndarray:
        return keras_array.T if self.transpose else keras_array

    def to_keras(self, seed_array: np.ndarray) -> np.ndarray:
        return seed_array.T if self.transpose else seed_array


def get_weights(layer) -> list[np.ndarray]:
    """The layer's weights in Keras's layout and order (copies)."""
    if not layer.built:
        return []
    return [np.array(spec.to_keras(getattr(layer, spec.attr))) for spec in layer.weight_spec()]


def build_from_weights(layer, weights) -> None:
    """Check that ``weights`` is a list; build an unbuilt ``layer`` from its first array's shape."""
    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"Argument `weights` must be a list of arrays, got {type(weights).__name__}.")
    if layer.built:
        return
    if not weights:
        raise ValueError(f"Argument `weights` is empty; cannot build layer {layer.name!r} from it.")
    first = as_numeric(weights[0], "weights[0]")
    if first.ndim < 1:
        raise ValueError(f"Argument `weights[0]` must be the kernel, shape (input_dim, ...), got {first.shape}.")
    layer.build(layer.input_shape_from_weights(first.shape), initialize=False)


def set_weights(layer, weights) -> None:
    """Copy ``weights`` (Keras layout and order) into the layer's seed-layout attributes.

    An unbuilt layer is first built from the shape of the first array (Keras's
    kernel: ``(input_dim, ...)``). Every array's count, shape and type is checked.
    """
    build_from_weights(layer, weights)
    assign_weights(layer, weights)


def assign_weights(layer, weights) -> None:
    """Check ``weights`` against the layer's :class:`WeightSpec` list (count, shapes, types), then set them all."""
    specs = layer.weight_spec()
    if len(weights) != len(specs):
        names = [s.keras_name for s in specs]
        raise ValueError(
            f"Argument `weights` for layer {layer.name!r} must hold {len(specs)} arrays {names}, got {len(weights)}."
        )
    converted = []
    for i, (spec, value) in enumerate(zip(specs, weights)):
        array = as_numeric(value, f"weights[{i}] ({spec.keras_name})")
        if array.shape != spec.keras_shape:
            raise ValueError(
                f"Argument `weights[{i}]` ({spec.keras_name}) of layer {layer.name!r} must have "
                f"Keras shape {spec.keras_shape}, got {array.shape}."
            )
        converted.append(np.array(spec.to_seed(array), dtype=layer.dtype, order="C"))  # a copy, as Keras keeps
    for spec, array in zip(specs, converted):  # all checked before any is assigned
        setattr(layer, spec.attr, array)
