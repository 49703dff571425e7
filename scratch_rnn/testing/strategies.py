"""Hypothesis strategies for recurrent-layer equivalence cases (importable by other projects).

A :class:`Case` is everything needed to run one layer call on any
implementation: the Keras constructor config, the weights in Keras's layout and
order, the input, an optional mask and an optional initial state, and (for
``stateful`` layers) where the input is split into two consecutive calls.

Weights are random, distinct (``unique=True``, so no matrix equals its own
transpose) and include random biases: Keras's constant initialisers cannot
reveal a transpose or a gate swap. ``features == units`` is drawn on purpose,
as square kernels are where a forgotten transpose still has the right shape.
Elements are bounded float32 values (no NaN, no infinities, no subnormals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratch_rnn import activations

LAYERS = ("SimpleRNN",)
MAX_UNITS = 8
MAX_FEATURES = 8
MAX_BATCH = 4
MAX_TIMESTEPS = 12


@dataclass
class Case:
    """One layer call (or two consecutive calls, for a stateful layer) to run everywhere."""

    layer: str
    config: dict                      # Keras constructor kwargs, dtype included
    weights: list                     # Keras layout and order, in the config's dtype
    x: np.ndarray                     # (batch, timesteps, features)
    mask: np.ndarray | None = None    # (batch, timesteps) bool
    initial_state: list | None = None  # one (batch, size) array per state
    split: int | None = None          # stateful: call on x[:, :split], then x[:, split:]
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


def elements(bound: float):
    return st.floats(-bound, bound, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def float_arrays(dtype, shape, bound=1.0, unique=True):
    """Bounded float32-representable values, cast to ``dtype`` exactly; distinct by default."""
    return hnp.arrays(np.float32, shape, elements=elements(bound), unique=unique).map(lambda a: a.astype(dtype))


def simple_rnn_configs(dtype="float32", allow_stateful=True):
    """Every SimpleRNN option that affects inference."""
    return st.fixed_dictionaries({
        "units": st.integers(1, MAX_UNITS),
        "activation": st.sampled_from(activations.RECURRENT),
        "use_bias": st.booleans(),
        "return_sequences": st.booleans(),
        "return_state": st.booleans(),
        "go_backwards": st.booleans(),
        "stateful": st.booleans() if allow_stateful else st.just(False),
        "unroll": st.booleans(),
        "zero_output_for_mask": st.booleans(),
        "dtype": st.just(np.dtype(dtype).name),
    })


CONFIGS = {"SimpleRNN": simple_rnn_configs}


def keras_weight_shapes(layer: str, config: dict, features: int) -> list[tuple]:
    """Keras's weight shapes, in ``get_weights()`` order."""
    u = config["units"]
    if layer == "SimpleRNN":
        return [(features, u), (u, u)] + ([(u,)] if config["use_bias"] else [])
    raise ValueError(f"Unknown layer {layer!r}; expected one of {LAYERS}.")


def state_sizes(layer: str, config: dict) -> list[int]:
    return [config["units"]]


def masks(batch: int, timesteps: int):
    """None, a random mask, or one whose first steps are masked (before any output exists)."""
    leading = st.lists(st.integers(0, timesteps), min_size=batch, max_size=batch).map(
        lambda ks: np.arange(timesteps)[None, :] >= np.array(ks)[:, None]
    )
    return st.one_of(st.none(), hnp.arrays(np.bool_, (batch, timesteps)), leading)


@st.composite
def cases(draw, layer: str = "SimpleRNN", dtype="float32", allow_stateful=True):
    """A full :class:`Case` for ``layer`` in ``dtype``."""
    if layer not in CONFIGS:
        raise ValueError(f"Argument `layer` must be one of {sorted(CONFIGS)}, got {layer!r}.")
    config = draw(CONFIGS[layer](dtype, allow_stateful), label="config")
    u = config["units"]
    features = draw(st.one_of(st.just(u), st.integers(1, MAX_FEATURES)), label="features")  # square kernels too
    batch = draw(st.integers(1, MAX_BATCH), label="batch")
    min_t = 2 if config["stateful"] else 1
    timesteps = draw(st.integers(min_t, MAX_TIMESTEPS), label="timesteps")
    weights = [draw(float_arrays(dtype, shape), label="weight") for shape in keras_weight_shapes(layer, config, features)]
    x = draw(float_arrays(dtype, (batch, timesteps, features), bound=2.0), label="x")
    mask = draw(masks(batch, timesteps), label="mask")
    initial_state = draw(
        st.one_of(st.none(), st.tuples(*[float_arrays(dtype, (batch, s), unique=False)
                                         for s in state_sizes(layer, config)]).map(list)),
        label="initial_state",
    )
    split = draw(st.integers(1, timesteps - 1), label="split") if config["stateful"] else None
    return Case(layer, config, weights, x, mask, initial_state, split)
