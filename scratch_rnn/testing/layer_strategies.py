"""Hypothesis strategies for the non-recurrent layers: one :class:`~scratch_rnn.testing.case.LayerCase` each.

Shared by :func:`scratch_rnn.verify` (``layer="Conv1D"``, ..., or ``scratch-rnn verify --layer core``)
and the tests. Each strategy draws the options that change what the layer computes at inference
(the config), shapes (square ones on purpose: a transposed kernel or a swapped axis of equal sizes
still has the right shape), random distinct weights in Keras's layout (their shapes from the
engine's Keras boundary, ``weight_spec()``), inputs, and masks where the layer takes them.

As :mod:`~scratch_rnn.testing.strategies`: bounded float32-representable elements, no NaN, no
infinities, no subnormals. Options not drawn: training-only ones (initialisers, regularisers,
constraints, dropout rates, which are 0 here), and BatchNormalization's ``renorm``.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratch_rnn.testing.case import CORE_LAYERS, LayerCase
from scratch_rnn.testing.strategies import float_arrays

MAX_BATCH = 3
MAX_STEPS = 8
MAX_FEATURES = 6

ACTIVATIONS = (None, "linear", "tanh", "relu", "sigmoid")
ELEMENTWISE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
DATA_FORMATS = ("channels_last", "channels_first")


def unweighted(layer: str, config: dict, input_shapes):
    """The scratch layer for ``config``, built on ``input_shapes`` without drawing weights."""
    from scratch_rnn.keras_convert import from_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LayerNormalization's rms_scaling deprecation, as Keras's
        scratch = from_config(layer, config)
    scratch.build(input_shapes, initialize=False)
    return scratch


def weight_shapes(layer: str, config: dict, input_shapes) -> list[tuple]:
    """Keras's weight shapes in ``get_weights()`` order, as the engine's Keras boundary declares them."""
    return [spec.keras_shape for spec in unweighted(layer, config, input_shapes).weight_spec()]


def draw_weights(draw, layer: str, config: dict, input_shapes, dtype) -> list:
    """Random distinct weights for ``layer``; BatchNormalization's ``moving_variance`` non-negative."""
    weights = []
    for spec in unweighted(layer, config, input_shapes).weight_spec():
        if spec.keras_name == "moving_variance":
            positive = st.floats(0, 2, width=32, allow_subnormal=False)
            array = draw(hnp.arrays(np.float32, spec.keras_shape, elements=positive), label="moving_variance")
            weights.append(array.astype(dtype))
        else:
            weights.append(draw(float_arrays(dtype, spec.keras_shape), label=spec.keras_name))
    return weights


def steps_masks(draw, batch: int, steps: int, keep_one: bool = False):
    """A ``(batch, steps)`` bool mask; ``keep_one``: every row keeps a step (a masked mean over nothing is
    Keras's 0/0, NaN, which the sweep does not compare)."""
    mask = draw(hnp.arrays(np.bool_, (batch, steps)), label="mask")
    if keep_one:
        rows = ~mask.any(axis=1)
        mask[rows, draw(st.integers(0, steps - 1), label="kept step")] = True
    return mask


def _dtype(dtype) -> str:
    return np.dtype(dtype).name


def inputs(draw, dtype, shape, scale=2.0):
    return draw(float_arrays(dtype, tuple(shape), bound=scale), label="input")


@st.composite
def dense_cases(draw, dtype="float32", with_mask=True):
    units = draw(st.integers(1, MAX_FEATURES), label="units")
    config = {
        "units": units,
        "activation": draw(st.sampled_from(ACTIVATIONS), label="activation"),
        "use_bias": draw(st.booleans(), label="use_bias"),
        "dtype": _dtype(dtype),
    }
    features = draw(st.one_of(st.just(units), st.integers(1, MAX_FEATURES)), label="features")
    batch = draw(st.integers(1, MAX_BATCH), label="batch")
    rank3 = draw(st.booleans(), label="sequence input")
    shape = (batch, draw(st.integers(1, MAX_STEPS), label="steps"), features) if rank3 else (batch, features)
    weights = draw_weights(draw, "Dense", config, shape, dtype)
    mask = steps_masks(draw, batch, shape[1]) if rank3 and with_mask and draw(st.booleans(), label="masked") else None
    return LayerCase("Dense", config, weights, inputs(draw, dtype, shape), mask)


@st.composite
def embedding_cases(draw, dtype="float32", with_mask=True):
    output_dim = draw(st.integers(1, MAX_FEATURES), label="output_dim")
    input_dim = draw(st.one_of(st.just(output_dim), st.integers(1, 10)), label="input_dim")
    config = {
        "input_dim": input_dim,
        "output_dim": output_dim,
        "mask_zero": draw(st.booleans(), label="mask_zero"),
        "dtype": _dtype(dtype),
    }
    batch, steps = draw(st.integers(1, MAX_BATCH), label="batch"), draw(st.integers(1, MAX_STEPS), label="steps")
    ids = draw(hnp.arrays(np.int32, (batch, steps), elements=st.integers(0, input_dim - 1)), label="ids")
    weights = draw_weights(draw, "Embedding", config, (batch, steps), dtype)
    return LayerCase("Embedding", config, weights, ids)


@st.composite
def conv1d_cases(draw, dtype="float32", with_mask=True):
    groups = draw(st.sampled_from([1, 2, 3]), label="groups")
    kernel = draw(st.integers(1, 4), label="kernel_size")
    strides = draw(st.integers(1, 3), label="strides")
    dilation = 1 if strides > 1 else draw(st.integers(1, 3), label="dilation_rate")  # Keras: not both > 1
    padding = draw(st.sampled_from(["valid", "same", "causal"]), label="padding")
    span = dilation * (kernel - 1) + 1
    data_format = draw(st.sampled_from(DATA_FORMATS), label="data_format")
    config = {
        "filters": groups * draw(st.integers(1, 3), label="filters per group"),
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding,
        "data_format": data_format,
        "dilation_rate": dilation,
        "groups": groups,
        "activation": draw(st.sampled_from(ACTIVATIONS), label="activation"),
        "use_bias": draw(st.booleans(), label="use_bias"),
        "dtype": _dtype(dtype),
    }
    channels = draw(
        st.one_of(st.just(config["filters"]), st.integers(1, 2).map(lambda c: c * groups)), label="channels"
    )  # in == out channels: square per-tap kernels too
    steps = draw(st.integers(span if padding == "valid" else 1, MAX_STEPS + 2), label="steps")
    batch = draw(st.integers(1, MAX_BATCH), label="batch")
    shape = (batch, steps, channels) if data_format == "channels_last" else (batch, channels, steps)
    weights = draw_weights(draw, "Conv1D", config, shape, dtype)
    return LayerCase("Conv1D", config, weights, inputs(draw, dtype, shape))


def _shape(draw, min_rank=2, max_rank=4, max_size=5):
    ndim = draw(st.integers(min_rank, max_rank), label="rank")
    return (draw(st.integers(1, MAX_BATCH), label="batch"),) + tuple(
        draw(st.lists(st.integers(1, max_size), min_size=ndim - 1, max_size=ndim - 1), label="shape")
    )


@st.composite
def layer_normalization_cases(draw, dtype="float32", with_mask=True):
    shape = _shape(draw)
    ndim = len(shape)
    axes = draw(st.lists(st.integers(1, ndim - 1), min_size=1, max_size=ndim - 1, unique=True), label="axes")
    axis = draw(st.sampled_from([axes, axes[0], [a - ndim for a in axes], -1]), label="axis")
    config = {
        "axis": axis,
        "epsilon": draw(st.sampled_from([1e-3, 1e-6, 0.5]), label="epsilon"),
        "center": draw(st.booleans(), label="center"),
        "scale": draw(st.booleans(), label="scale"),
        "rms_scaling": draw(st.booleans(), label="rms_scaling"),
        "dtype": _dtype(dtype),
    }
    weights = draw_weights(draw, "LayerNormalization", config, shape, dtype)
    scale = draw(st.sampled_from([0.125, 2.0, 16.0]), label="input scale")
    masked = ndim == 3 and with_mask and draw(st.booleans(), label="masked")
    mask = steps_masks(draw, shape[0], shape[1]) if masked else None  # passed through, changes nothing
    return LayerCase("LayerNormalization", config, weights, inputs(draw, dtype, shape, scale), mask)


@st.composite
def batch_normalization_cases(draw, dtype="float32", with_mask=True):
    shape = _shape(draw)
    ndim = len(shape)
    config = {
        "axis": draw(st.integers(-(ndim - 1), ndim - 1).filter(lambda a: a % ndim != 0), label="axis"),
        "epsilon": draw(st.sampled_from([1e-3, 1e-5, 0.5]), label="epsilon"),
        "center": draw(st.booleans(), label="center"),
        "scale": draw(st.booleans(), label="scale"),
        "dtype": _dtype(dtype),
    }
    weights = draw_weights(draw, "BatchNormalization", config, shape, dtype)
    masked = ndim == 3 and with_mask and draw(st.booleans(), label="masked")  # (batch, steps) of (B, T, F)
    mask = steps_masks(draw, shape[0], shape[1]) if masked else None
    return LayerCase("BatchNormalization", config, weights, inputs(draw, dtype, shape), mask)


def _attention_cases(layer):
    @st.composite
    def attention_cases(draw, dtype="float32", with_mask=True):
        if layer == "Attention":
            config = {
                "use_scale": draw(st.booleans(), label="use_scale"),
                "score_mode": draw(st.sampled_from(["dot", "concat"]), label="score_mode"),
            }
        else:
            config = {"use_scale": draw(st.booleans(), label="use_scale")}
        config["dtype"] = _dtype(dtype)
        batch = draw(st.integers(1, MAX_BATCH), label="batch")
        tq, tv = (draw(st.integers(1, 5), label=name) for name in ("Tq", "Tv"))
        dim = draw(st.one_of(st.just(tq), st.integers(1, 5)), label="dim")
        with_key = draw(st.booleans(), label="with key")
        dv = draw(st.integers(1, 5), label="value dim") if with_key else dim
        shapes = [(batch, tq, dim), (batch, tv, dv)] + ([(batch, tv, dim)] if with_key else [])
        weights = draw_weights(draw, layer, config, shapes, dtype)
        scale = draw(st.sampled_from([0.5, 2.0]), label="input scale")
        xs = [inputs(draw, dtype, shape, scale) for shape in shapes]
        mask = None
        if with_mask:
            kind = draw(st.sampled_from(["none", "query", "value", "both"]), label="masks")
            if kind != "none":
                mask = [
                    steps_masks(draw, batch, tq) if kind in ("query", "both") else None,
                    steps_masks(draw, batch, tv) if kind in ("value", "both") else None,
                ]
        options = {
            "use_causal_mask": draw(st.booleans(), label="use_causal_mask"),
            "return_attention_scores": draw(st.booleans(), label="return_attention_scores"),
        }
        return LayerCase(layer, config, weights, xs, mask, options)

    return attention_cases


@st.composite
def merge_cases(draw, layer="Add", dtype="float32", with_mask=True):
    n = 2 if layer == "Subtract" else draw(st.integers(1, 3), label="inputs")
    batch, steps = draw(st.integers(1, MAX_BATCH), label="batch"), draw(st.integers(1, MAX_STEPS), label="steps")
    features = draw(st.one_of(st.just(steps), st.integers(1, MAX_FEATURES)), label="features")
    config = {"dtype": _dtype(dtype)}
    shapes = [[batch, steps, features] for _ in range(n)]
    if layer == "Concatenate":
        config["axis"] = draw(st.sampled_from([-1, 1, 2]), label="axis")
        for shape in shapes:
            shape[config["axis"]] = draw(st.integers(1, 4), label="size along axis")
    elif draw(st.booleans(), label="broadcast"):  # Keras broadcasts a size-1 axis of the elementwise merges
        broadcast = list(shapes[-1])
        broadcast[draw(st.sampled_from([1, 2]), label="broadcast axis")] = 1
        if layer not in ("Add", "Average") or sum(size > 1 for size in broadcast) != 1:
            shapes[-1] = broadcast
        # else: Keras 3's TensorFlow ops.add takes an input with one axis > 1 for a bias (tf.nn.bias_add) and
        # adds it along axis 1 or -1, whichever has that size: (2, 1, 1) + (2, 2, 1) adds along the steps
        # (docs/harness.md, "Keras's own bug"); the sweep does not draw it
    xs = [inputs(draw, dtype, shape) for shape in shapes]
    mask = None
    if with_mask and draw(st.booleans(), label="masked"):
        mask = [
            steps_masks(draw, batch, s[1]) if draw(st.booleans(), label="mask this input") else None for s in shapes
        ]
        if all(m is None for m in mask):
            mask = None
    return LayerCase(layer, config, [], xs, mask)


@st.composite
def dot_cases(draw, dtype="float32", with_mask=True):
    axes = draw(st.sampled_from([1, 2, -1, (1, 2), (2, 1), (1, 1), (-1, -2)]), label="axes")
    batch, n, k = (draw(st.integers(1, 4), label=name) for name in ("batch", "n", "k"))  # square when n == k
    pair = (axes, axes) if isinstance(axes, int) else axes
    shape1, shape2 = [batch, n, n], [batch, n, n]
    shape1[pair[0]], shape2[pair[1]] = k, k
    config = {"axes": axes, "normalize": draw(st.booleans(), label="normalize"), "dtype": _dtype(dtype)}
    return LayerCase("Dot", config, [], [inputs(draw, dtype, shape1), inputs(draw, dtype, shape2)])


def _global_pooling_cases(layer):
    @st.composite
    def global_pooling_cases(draw, dtype="float32", with_mask=True):
        data_format = draw(st.sampled_from(DATA_FORMATS), label="data_format")
        config = {"data_format": data_format, "keepdims": draw(st.booleans(), label="keepdims"), "dtype": _dtype(dtype)}
        batch, steps = draw(st.integers(1, MAX_BATCH), label="batch"), draw(st.integers(1, MAX_STEPS), label="steps")
        features = draw(st.one_of(st.just(steps), st.integers(1, MAX_FEATURES)), label="features")
        shape = (batch, steps, features) if data_format == "channels_last" else (batch, features, steps)
        mask = None
        if with_mask and draw(st.booleans(), label="masked"):
            mask = steps_masks(draw, batch, steps, keep_one=True)
        return LayerCase(layer, config, [], inputs(draw, dtype, shape), mask)

    return global_pooling_cases


def _window_pooling_cases(layer):
    @st.composite
    def window_pooling_cases(draw, dtype="float32", with_mask=True):
        pool_size = draw(st.integers(1, 4), label="pool_size")
        padding = draw(st.sampled_from(["valid", "same"]), label="padding")
        data_format = draw(st.sampled_from(DATA_FORMATS), label="data_format")
        config = {
            "pool_size": pool_size,
            "strides": draw(st.none() | st.integers(1, 4), label="strides"),
            "padding": padding,
            "data_format": data_format,
            "dtype": _dtype(dtype),
        }
        batch = draw(st.integers(1, MAX_BATCH), label="batch")
        steps = draw(st.integers(pool_size if padding == "valid" else 1, MAX_STEPS + 2), label="steps")
        features = draw(st.one_of(st.just(steps), st.integers(1, MAX_FEATURES)), label="features")
        shape = (batch, steps, features) if data_format == "channels_last" else (batch, features, steps)
        return LayerCase(layer, config, [], inputs(draw, dtype, shape))

    return window_pooling_cases


@st.composite
def reshaping_cases(draw, layer="Reshape", dtype="float32", with_mask=True):
    rank = 1 if layer == "RepeatVector" else draw(st.integers(1, 3), label="rank without batch")
    dims = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank), label="dims"))
    shape = (draw(st.integers(1, MAX_BATCH), label="batch"), *dims)
    config = {"dtype": _dtype(dtype)}
    if layer == "RepeatVector":
        config["n"] = draw(st.integers(1, 4), label="n")
    elif layer == "Flatten":
        config["data_format"] = draw(st.sampled_from(DATA_FORMATS), label="data_format")
    elif layer == "Permute":
        config["dims"] = tuple(draw(st.permutations(range(1, rank + 1)), label="dims"))
    else:
        size = int(np.prod(dims))
        first = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]), label="first")
        targets = [(first, size // first), (first, -1), (-1, first), (size,)]
        if rank == 3:
            targets.append(tuple(reversed(dims)))  # same sizes, other order: a transpose would not fit
        config["target_shape"] = draw(st.sampled_from(targets), label="target_shape")
    return LayerCase(layer, config, [], inputs(draw, dtype, shape))


@st.composite
def noise_cases(draw, layer="GaussianNoise", dtype="float32", with_mask=True):
    """``SpatialDropout1D``, ``GaussianNoise``, ``GaussianDropout``: the identity at inference, masks passed on;
    swept so that a port that applies its noise outside training fails."""
    argument = "stddev" if layer == "GaussianNoise" else "rate"
    config = {argument: draw(st.floats(0, 1), label=argument), "seed": draw(st.integers(0, 9)), "dtype": _dtype(dtype)}
    batch, steps = draw(st.integers(1, MAX_BATCH), label="batch"), draw(st.integers(1, MAX_STEPS), label="steps")
    shape = (batch, steps, draw(st.integers(1, MAX_FEATURES), label="features"))
    mask = steps_masks(draw, batch, steps) if with_mask and draw(st.booleans(), label="masked") else None
    return LayerCase(layer, config, [], inputs(draw, dtype, shape), mask)


def _with_layer(strategy, layer):
    def cases(dtype="float32", with_mask=True):
        return strategy(layer, dtype, with_mask)

    return cases


#: ``STRATEGIES[layer](dtype, with_mask)``: the strategy of :class:`LayerCase` for each of
#: :data:`~scratch_rnn.testing.case.CORE_LAYERS`.
STRATEGIES = {
    "Dense": dense_cases,
    "Embedding": embedding_cases,
    "Conv1D": conv1d_cases,
    "LayerNormalization": layer_normalization_cases,
    "BatchNormalization": batch_normalization_cases,
    "Attention": _attention_cases("Attention"),
    "AdditiveAttention": _attention_cases("AdditiveAttention"),
    **{name: _with_layer(merge_cases, name) for name in (*ELEMENTWISE, "Concatenate")},
    "Dot": dot_cases,
    "GlobalAveragePooling1D": _global_pooling_cases("GlobalAveragePooling1D"),
    "GlobalMaxPooling1D": _global_pooling_cases("GlobalMaxPooling1D"),
    "MaxPooling1D": _window_pooling_cases("MaxPooling1D"),
    "AveragePooling1D": _window_pooling_cases("AveragePooling1D"),
    **{name: _with_layer(reshaping_cases, name) for name in ("RepeatVector", "Reshape", "Permute", "Flatten")},
    **{name: _with_layer(noise_cases, name) for name in ("SpatialDropout1D", "GaussianNoise", "GaussianDropout")},
}
assert set(STRATEGIES) == set(CORE_LAYERS), sorted(set(STRATEGIES) ^ set(CORE_LAYERS))


def layer_cases(layer: str, dtype="float32", with_mask: bool = True):
    """The strategy of :class:`LayerCase` for ``layer``, one of :data:`~scratch_rnn.testing.case.CORE_LAYERS`."""
    if layer not in STRATEGIES:
        raise ValueError(f"Argument `layer` must be one of {list(CORE_LAYERS)}, got {layer!r}.")
    return STRATEGIES[layer](dtype=dtype, with_mask=with_mask)
