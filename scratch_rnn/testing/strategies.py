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

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratch_rnn import activations
from scratch_rnn.testing.case import (  # noqa: F401  (re-exported: the strategies' vocabulary)
    LAYERS,
    RECURRENT,
    Case,
    keras_weight_shapes,
    recurrent_config,
    state_sizes,
)

MAX_UNITS = 8
MAX_FEATURES = 8
MAX_BATCH = 4
MAX_TIMESTEPS = 12


def elements(bound: float):
    return st.floats(-bound, bound, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def float_arrays(dtype, shape, bound=1.0, unique=True):
    """Bounded float32-representable values, cast to ``dtype`` exactly; distinct by default."""
    return hnp.arrays(np.float32, shape, elements=elements(bound), unique=unique).map(lambda a: a.astype(dtype))


def _keras2_unrolled_zero_output(config: dict) -> dict:
    """Keras 2's unrolled loop raises ValueError for zero_output_for_mask without return_sequences when masked."""
    if config["unroll"] and not config["return_sequences"]:
        return {**config, "zero_output_for_mask": False}
    return config


#: Where a reference differs from Keras 3 (which the engine follows), the sweep leaves the
#: difference out for that reference: activations it does not draw, and a function that moves a
#: config away from combinations the reference cannot run. tests/test_reference_differences.py
#: shows each one.
KNOWN_DIFFERENCES = {
    "keras": {},
    "tf_keras": {
        # Keras 2's hard_sigmoid is clip(0.2x + 0.5, 0, 1); Keras 3's is relu6(x + 3) / 6.
        "activations": ("hard_sigmoid",),
        "config": _keras2_unrolled_zero_output,
    },
}


def activation_names(reference="keras"):
    left_out = KNOWN_DIFFERENCES[reference].get("activations", ())
    return tuple(a for a in activations.RECURRENT if a not in left_out)


def recurrent_configs(layer: str, dtype="float32", allow_stateful=True, reference="keras"):
    """Every option of ``layer`` (SimpleRNN, LSTM, GRU) that affects inference."""
    names = activation_names(reference)
    options = {
        "units": st.integers(1, MAX_UNITS),
        "activation": st.sampled_from(names),
        "use_bias": st.booleans(),
        "return_sequences": st.booleans(),
        "return_state": st.booleans(),
        "go_backwards": st.booleans(),
        "stateful": st.booleans() if allow_stateful else st.just(False),
        "unroll": st.booleans(),
        "zero_output_for_mask": st.booleans(),
        "dtype": st.just(np.dtype(dtype).name),
    }
    if layer in ("LSTM", "GRU"):
        options["recurrent_activation"] = st.sampled_from(names)
    if layer == "GRU":
        options["reset_after"] = st.booleans()
    return st.fixed_dictionaries(options).map(KNOWN_DIFFERENCES[reference].get("config", dict))


def bidirectional_configs(dtype="float32", allow_stateful=True, reference="keras"):
    """A Bidirectional wrapper (config in Keras's serialised form) around any recurrent layer."""
    inner = st.sampled_from(RECURRENT).flatmap(
        lambda name: recurrent_configs(name, dtype, allow_stateful, reference).map(
            lambda config: {"class_name": name, "config": _bidirectional_inner(config)}
        )
    )
    return st.fixed_dictionaries(
        {
            "layer": inner,
            "merge_mode": st.sampled_from(["concat", "sum", "mul", "ave", None]),
            "dtype": st.just(np.dtype(dtype).name),
        }
    )


def _bidirectional_inner(config: dict) -> dict:
    """What Keras's Bidirectional can run: the wrapped layer goes forwards (Keras refuses
    ``go_backwards=True`` there) and, when stateful, does not return states (Keras 3's
    ``Bidirectional.compute_mask`` raises TypeError for ``stateful`` with ``return_state``)."""
    return {**config, "go_backwards": False, "return_state": config["return_state"] and not config["stateful"]}


#: The flags of a recurrent config: ``fixed`` may pin each to a bool.
FLAGS = ("use_bias", "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")


def check_fixed(layer: str, fixed, for_candidate: bool, reference: str = "keras") -> dict:
    """``fixed`` (options a sweep pins) checked against ``layer``'s configs before any case is drawn:
    a ValueError naming the option, not an error from deep inside Hypothesis."""
    if fixed is None:
        return {}
    if not isinstance(fixed, dict):
        raise ValueError(f"Argument `fixed` must be a dict of config options, got {type(fixed).__name__}.")
    if layer == "Bidirectional":
        options = {"layer", "merge_mode"}
    else:
        options = {"units", "activation", *FLAGS}
        options |= {"recurrent_activation"} if layer in ("LSTM", "GRU") else set()
        options |= {"reset_after"} if layer == "GRU" else set()
    if "dtype" in fixed:
        raise ValueError("Argument `fixed` may not pin `dtype`: choose the lane with the `dtype` argument.")
    unknown = sorted(set(fixed) - options)
    if unknown:
        raise ValueError(
            f"Argument `fixed` names options {unknown} that {layer} configs do not have; expected some of "
            f"{sorted(options)}."
        )
    for key, value in fixed.items():
        if key in (*FLAGS, "reset_after") and not isinstance(value, bool):
            raise ValueError(f"Argument `fixed`: option `{key}` must be a bool, got {value!r}.")
        if key == "units" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_UNITS):
            raise ValueError(f"Argument `fixed`: option `units` must be an int in [1, {MAX_UNITS}], got {value!r}.")
        if key in ("activation", "recurrent_activation") and value not in activation_names(reference):
            raise ValueError(
                f"Argument `fixed`: option `{key}` must be one of {list(activation_names(reference))}, got {value!r}."
            )
        if key == "merge_mode" and value not in ("concat", "sum", "mul", "ave", None):
            raise ValueError(
                f"Argument `fixed`: option `merge_mode` must be concat, sum, mul, ave or None, got {value!r}."
            )
    if for_candidate and fixed.get("stateful"):
        raise ValueError(
            "Argument `fixed` may not pin `stateful=True` for a candidate: a candidate is called once per call and "
            "keeps no state between them (the engine's own sweep covers stateful layers)."
        )
    return dict(fixed)


def configs(layer: str, dtype="float32", allow_stateful=True, reference="keras"):
    if layer not in LAYERS:
        raise ValueError(f"Argument `layer` must be one of {list(LAYERS)}, got {layer!r}.")
    if reference not in KNOWN_DIFFERENCES:
        raise ValueError(f"Argument `reference` must be one of {sorted(KNOWN_DIFFERENCES)}, got {reference!r}.")
    if layer == "Bidirectional":
        return bidirectional_configs(dtype, allow_stateful, reference)
    return recurrent_configs(layer, dtype, allow_stateful, reference)


def masks(batch: int, timesteps: int, kind: str = "random", go_backwards: bool = False):
    """A ``(batch, timesteps)`` bool mask: ``random``, or ``leading``: each row's first *processed*
    steps masked (the last ones in time with ``go_backwards``), before any output exists."""
    if kind == "random":
        return hnp.arrays(np.bool_, (batch, timesteps))
    leading = st.lists(st.integers(0, timesteps), min_size=batch, max_size=batch).map(
        lambda ks: np.arange(timesteps)[None, :] >= np.array(ks)[:, None]
    )
    return leading.map(lambda m: m[:, ::-1].copy()) if go_backwards else leading


@st.composite
def cases(
    draw,
    layer: str = "SimpleRNN",
    dtype="float32",
    allow_stateful=True,
    fixed=None,
    with_mask=True,
    with_initial_state=True,
    reference="keras",
):
    """A full :class:`Case` for ``layer`` in ``dtype``.

    ``fixed`` pins config options (e.g. ``{"reset_after": True}`` for a port that
    implements one GRU variant); ``with_mask`` / ``with_initial_state`` = False never
    draw those arguments. Narrowing is for ports that support less than Keras:
    what is pinned is then not verified, so say so where the port is documented.
    ``reference`` leaves out that reference's :data:`KNOWN_DIFFERENCES`.
    """
    config = draw(configs(layer, dtype, allow_stateful, reference), label="config")
    if fixed:
        unknown = set(fixed) - set(config)
        if unknown:
            raise ValueError(
                f"Argument `fixed` names options {sorted(unknown)} that {layer} configs do not have; "
                f"expected some of {sorted(config)}."
            )
        config.update(fixed)
    inner = recurrent_config(layer, config)
    u = inner["units"]
    features = draw(st.one_of(st.just(u), st.integers(1, MAX_FEATURES)), label="features")  # square kernels too
    batch = draw(st.integers(1, MAX_BATCH), label="batch")
    min_t = 2 if inner["stateful"] else 1
    timesteps = draw(st.integers(min_t, MAX_TIMESTEPS), label="timesteps")
    # Whether to pass a mask and an initial state is decided before the large arrays are drawn:
    # decided after them, Hypothesis's choices lean heavily towards "none" (measured: a mask in 27%
    # of cases, an initial state in 19%; drawn here, 52% and 39%).
    mask_kind = draw(st.sampled_from(["none", "random", "leading"]), label="mask kind") if with_mask else "none"
    # A leading mask (first processed steps masked) comes with an initial state two times in three:
    # the outputs before the first unmasked step are zeros, not h0, and only that pair can tell.
    either = st.sampled_from([True, True, False]) if mask_kind == "leading" else st.booleans()
    has_initial_state = draw(either, label="initial state?") if with_initial_state else False
    weights = [
        draw(float_arrays(dtype, shape), label="weight") for shape in keras_weight_shapes(layer, config, features)
    ]
    x = draw(float_arrays(dtype, (batch, timesteps, features), bound=2.0), label="x")
    go_backwards = inner["go_backwards"]
    mask = None if mask_kind == "none" else draw(masks(batch, timesteps, mask_kind, go_backwards), label="mask")
    initial_state = (
        draw(
            st.tuples(*[float_arrays(dtype, (batch, s), unique=False) for s in state_sizes(layer, config)]).map(list),
            label="initial_state",
        )
        if has_initial_state
        else None
    )
    split = draw(st.integers(1, timesteps - 1), label="split") if inner["stateful"] else None
    return Case(layer, config, weights, x, mask, initial_state, split)
