"""``Input`` and ``Sequential``: stacks of layers with Keras's call, weights and ``summary()``."""

from __future__ import annotations

import contextlib

import numpy as np

from scratch_rnn.checks import as_numeric, positive_int
from scratch_rnn.layer import BUILD_LOCK, Layer, auto_name, unchanged_on_error


class Input:
    """The input of a model: ``shape`` without the batch, or the full ``batch_shape``.

    ``Input(shape=(2, 10), batch_size=8)`` is ``Input(batch_shape=(8, 2, 10))``.
    """

    def __init__(self, shape=None, batch_size=None, batch_shape=None, name=None):
        if (shape is None) == (batch_shape is None):
            raise ValueError("Give exactly one of `shape` and `batch_shape` to Input.")
        given, argument = (batch_shape, "batch_shape") if batch_shape is not None else (shape, "shape")
        if not isinstance(given, (tuple, list)):
            raise ValueError(
                f"Argument `{argument}` of Input must be a tuple of non-negative ints or None, got {given!r}."
            )
        if batch_shape is not None:
            if batch_size is not None:
                raise ValueError("Give `batch_size` only with `shape`; `batch_shape` already includes it.")
            self.batch_shape = tuple(batch_shape)
        else:
            if batch_size is not None:
                positive_int(batch_size, "batch_size")
            self.batch_shape = (batch_size, *tuple(shape))
        if not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)
            for d in self.batch_shape
        ):
            raise ValueError(
                f"Argument `{argument}` of Input must hold non-negative ints or None, got {tuple(given)!r}."
            )
        self.name = name if name is not None else auto_name("InputLayer")

    @property
    def shape(self):
        return self.batch_shape

    def __repr__(self):
        return f"Input(batch_shape={self.batch_shape})"


class Sequential:
    """A linear stack of layers; an optional leading :class:`Input` builds every layer at once.

    Masks flow as in Keras: each layer receives the mask its predecessor computes
    (a recurrent layer passes its mask on only with ``return_sequences``).
    """

    def __init__(self, layers=(), name=None):
        self.name = name if name is not None else auto_name("Sequential")
        self.input: Input | None = None
        self.layers: list[Layer] = []
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, Input):
            if self.layers or self.input is not None:
                raise ValueError("An Input can only be the first entry of a Sequential model.")
            self.input = layer
            return
        if isinstance(layer, Sequential):
            raise ValueError(
                f"Model {layer.name!r} cannot be a layer of a Sequential model: nested models are not supported; "
                "add its layers instead."
            )
        if not isinstance(layer, Layer):
            raise ValueError(f"Sequential takes scratch_rnn layers, got {type(layer).__name__}.")
        if getattr(layer, "return_state", False):
            raise ValueError(
                f"Layer {layer.name!r} has return_state=True: it returns a list, and a Sequential "
                "model needs one output per layer."
            )
        if self.layers and getattr(self.layers[-1], "merge_mode", "concat") is None:
            raise ValueError(
                f"Layer {self.layers[-1].name!r} has merge_mode=None: it returns a list [forward, backward], "
                f"and the next layer ({layer.name!r}) takes one input."
            )
        self.layers.append(layer)
        if self.input is not None:
            self._output_shapes()  # builds the new layer on the known input shape

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    def _output_shapes(self) -> list:
        """Each layer's output shape, building unbuilt layers on the way."""
        shape = self.input.batch_shape if self.input is not None else self.layers[0].input_shape
        shapes = []
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            elif layer.input_shape[-1] is not None and shape[-1] is not None and layer.input_shape[-1] != shape[-1]:
                raise ValueError(
                    f"Layer {layer.name!r} was built for inputs with {layer.input_shape[-1]} features, but in model "
                    f"{self.name!r} it receives shape {shape} (a layer used twice, or built elsewhere?)."
                )
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def __call__(self, x, mask=None):
        """Run every layer in order; returns the last layer's output."""
        x = as_numeric(x, "x")
        if self.input is not None:
            expected = self.input.batch_shape
            if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], x.shape[1:])):
                raise ValueError(
                    f"Argument `x` of model {self.name!r} must have shape {('batch', *expected[1:])}, got {x.shape}."
                )
        for layer in self.layers:
            x, mask = layer(x, mask=mask), layer.compute_mask(x, mask)
        return x

    def predict(self, x, batch_size=None):
        """``self(x)``, optionally in chunks of ``batch_size`` samples (stateless models)."""
        x = as_numeric(x, "x")
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batch_size")
        if batch_size is None or len(x) <= batch_size:
            return self(x)
        return np.concatenate([self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    # --- weights -----------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Every layer's weights, in Keras's order; all or nothing, like a layer's ``set_weights``."""
        if not isinstance(weights, (list, tuple)):
            raise ValueError(f"Argument `weights` must be a list of arrays, got {type(weights).__name__}.")
        weights = list(weights)
        if not self.built:
            raise ValueError(f"Model {self.name!r} is not built: give it an Input or call it first.")
        counts = [len(layer.weight_spec()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(
                f"Argument `weights` for model {self.name!r} must hold {sum(counts)} arrays, got {len(weights)}."
            )
        start = 0
        with BUILD_LOCK, contextlib.ExitStack() as guard:
            for layer in self.layers:
                guard.enter_context(unchanged_on_error(layer))
            for layer, n in zip(self.layers, counts):
                layer.set_weights(weights[start : start + n])
                start += n

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"Model {self.name!r} is not built: give it an Input or call it first.")
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> None:
        """Print each layer's name (type), output shape and parameter count, then the totals."""
        if not self.built and self.input is None:
            raise ValueError(f"Model {self.name!r} is not built: give it an Input or call it first.")
        shapes = self._output_shapes()
        width = 65
        cols = (29, 26)

        def row(a, b, c):
            # Long names or shapes overflow their column, but a space always separates the columns.
            return f" {a:<{cols[0] - 2}} {b:<{cols[1] - 1}} {c:<{width - sum(cols)}}"

        def fmt_shape(shape):
            if isinstance(shape, list):
                return ", ".join(fmt_shape(s) for s in shape)
            return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")

        lines = [f'Model: "{self.name}"', "_" * width, row("Layer (type)", "Output Shape", "Param #"), "=" * width]
        for layer, shape in zip(self.layers, shapes):
            lines.append(row(f"{layer.name} ({type(layer).__name__})", fmt_shape(shape), str(layer.count_params())))
            lines.append(" " * width)
        nbytes = sum(w.nbytes for layer in self.layers for w in layer.get_weights())
        trainable = [layer for layer in self.layers if layer.trainable]
        t_params = sum(layer.count_params() for layer in trainable)
        t_bytes = sum(w.nbytes for layer in trainable for w in layer.get_weights())
        total = self.count_params()
        lines += [
            "=" * width,
            f"Total params: {total} ({nbytes:.2f} Byte)",
            f"Trainable params: {t_params} ({t_bytes:.2f} Byte)",
            f"Non-trainable params: {total - t_params} ({nbytes - t_bytes:.2f} Byte)",
            "_" * width,
        ]
        print_fn("\n".join(lines))
