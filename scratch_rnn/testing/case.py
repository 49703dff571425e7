"""One equivalence case and the facts about layers it needs; NumPy only (no Hypothesis, no Keras).

Shared by the generated sweep (:mod:`scratch_rnn.testing.strategies`), the comparison of
one case (:mod:`scratch_rnn.testing.check`) and recorded golden vectors, which are
checked where only NumPy is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RECURRENT = ("SimpleRNN", "LSTM", "GRU")
LAYERS = RECURRENT + ("Bidirectional",)

#: The non-recurrent layers the harness sweeps (:mod:`scratch_rnn.testing.layer_strategies`), each a
#: :class:`LayerCase`; ``verify --layer core`` sweeps them all, ``--layer all`` only :data:`LAYERS`.
CORE_LAYERS = (
    "Dense",
    "Embedding",
    "Conv1D",
    "LayerNormalization",
    "BatchNormalization",
    "Attention",
    "AdditiveAttention",
    "Concatenate",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Dot",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "RepeatVector",
    "Reshape",
    "Permute",
    "Flatten",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
)

#: The layers taking a list of inputs (and a list of masks, one per input, each may be None).
MULTI_INPUT = ("Attention", "AdditiveAttention", "Concatenate", "Add", "Subtract", "Multiply", "Average")
MULTI_INPUT += ("Maximum", "Minimum", "Dot")


@dataclass
class Case:
    """One layer call (or two consecutive calls, for a stateful layer) to run everywhere."""

    layer: str
    config: dict  # Keras constructor kwargs, dtype included
    weights: list  # Keras layout and order, in the config's dtype
    x: np.ndarray  # (batch, timesteps, features)
    mask: np.ndarray | None = None  # (batch, timesteps) bool
    initial_state: list | None = None  # one (batch, size) array per state
    split: int | None = None  # stateful: call on x[:, :split], then x[:, split:]
    notes: dict = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config.get("dtype", "float32"))

    def chunks(self):
        """``(x, mask, initial_state)`` for each consecutive call."""
        if self.split is None:
            return [(self.x, self.mask, self.initial_state)]
        s = self.split
        m1, m2 = (None, None) if self.mask is None else (self.mask[:, :s], self.mask[:, s:])
        return [(self.x[:, :s], m1, self.initial_state), (self.x[:, s:], m2, None)]

    def describe(self) -> str:
        shapes = f"x{self.x.shape}"
        if self.mask is not None:
            shapes += f", mask{self.mask.shape} ({int((~self.mask).sum())} masked)"
        if self.initial_state is not None:
            shapes += ", initial_state" + "".join(str(s.shape) for s in self.initial_state)
        if self.split is not None:
            shapes += f", stateful calls split at t={self.split}"
        return f"{self.layer}({self.config}) on {shapes}"


@dataclass
class LayerCase:
    """One call of a non-recurrent layer: ``layer(inputs, mask=mask, **call_options)``.

    ``inputs`` is one array, or a list of them for the layers of :data:`MULTI_INPUT`; ``mask`` is
    None, a ``(batch, steps)`` bool array, or (multi-input) a list with one mask or None per input.
    Keras receives the masks attached to its input tensors, as its functional graph passes them.
    ``call_options`` are call arguments other than the mask (Attention's ``use_causal_mask`` and
    ``return_attention_scores``).
    """

    layer: str
    config: dict  # Keras constructor kwargs, dtype included
    weights: list  # Keras layout and order, in the config's dtype
    inputs: object  # an array, or a list of arrays (multi-input layers)
    mask: object = None  # None, an array, or a list of arrays / None (multi-input layers)
    call_options: dict = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.config.get("dtype", "float32"))

    @property
    def multi(self) -> bool:
        return isinstance(self.inputs, list)

    def input_list(self) -> list:
        return list(self.inputs) if self.multi else [self.inputs]

    def mask_list(self) -> list:
        """One mask (or None) per input."""
        if self.mask is None:
            return [None] * len(self.input_list())
        return list(self.mask) if self.multi else [self.mask]

    def describe(self) -> str:
        shapes = ", ".join(f"{x.dtype}{x.shape}" if x.dtype.kind in "iu" else f"x{x.shape}" for x in self.input_list())
        masks = [m for m in self.mask_list() if m is not None]
        if masks:
            shapes += ", mask " + " ".join(
                f"{m.shape} ({int((~m).sum())} masked)" if m is not None else "None" for m in self.mask_list()
            )
        options = f" called with {self.call_options}" if self.call_options else ""
        return f"{self.layer}({self.config}) on {shapes}{options}"


def recurrent_config(layer: str, config: dict) -> dict:
    """The config of the recurrent layer itself (inside a Bidirectional, the wrapped one)."""
    return config["layer"]["config"] if layer == "Bidirectional" else config


def unweighted_layer(layer: str, config: dict, features: int):
    """The scratch layer for ``config``, built for ``features`` inputs without drawing weights
    (:func:`scratch_rnn.testing.runners.engine_layer` makes one with a case's weights)."""
    from scratch_rnn.keras_convert import from_config

    scratch = from_config(layer, config)
    scratch.build((None, None, features), initialize=False)
    return scratch


def keras_weight_shapes(layer: str, config: dict, features: int) -> list[tuple]:
    """Keras's weight shapes in ``get_weights()`` order, as the engine's Keras boundary declares them."""
    return [spec.keras_shape for spec in unweighted_layer(layer, config, features).weight_spec()]


def state_sizes(layer: str, config: dict) -> list[int]:
    """One size per initial-state array the layer takes (both directions for a Bidirectional)."""
    inner = recurrent_config(layer, config)
    n = {"LSTM": 2}.get(config["layer"]["class_name"] if layer == "Bidirectional" else layer, 1)
    return [inner["units"]] * n * (2 if layer == "Bidirectional" else 1)
