"""Attention and AdditiveAttention against Keras 3: score modes, scales, key or not, masks (query, value,
causal), attention scores, output masks, both dtypes, random weights; parameter counts; refusals."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, assert_outputs_close
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch_rnn
from scratch_rnn.attention import AdditiveAttention, Attention
from scratch_rnn.testing.compare import assert_close


def _twins(keras, name, shapes, dtype, rng, **kwargs):
    k = getattr(keras.layers, name)(dtype=dtype, **kwargs)
    k.build([list(s) for s in shapes])
    weights = [rng.standard_normal(w.shape) + 0.5 for w in k.get_weights()]
    k.set_weights(weights)
    ours = getattr(scratch_rnn.attention, name)(dtype=dtype, **kwargs)
    if weights:
        ours.set_weights(k.get_weights())
    return k, ours


def _mask(rng, batch, steps):
    m = rng.random((batch, steps)) < 0.7
    m[0] = False  # a row with everything masked: Keras's subtraction, not an overwrite, decides it
    return m


CONFIGS = [
    ("Attention", {}),
    ("Attention", {"use_scale": True}),
    ("Attention", {"score_mode": "concat"}),
    ("Attention", {"score_mode": "concat", "use_scale": True}),
    ("AdditiveAttention", {}),
    ("AdditiveAttention", {"use_scale": False}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "options"), CONFIGS, ids=str)
@pytest.mark.parametrize("with_key", [False, True])
@pytest.mark.parametrize("steps", [(4, 4), (3, 5)], ids=["square", "rectangular"])
def test_attention_equals_keras(keras, rng, dtype, name, options, with_key, steps):
    tq, tv = steps
    q = rng.standard_normal((3, tq, 4)).astype(dtype)
    v = rng.standard_normal((3, tv, 6 if with_key else 4)).astype(dtype)
    inputs = [q, v] + ([rng.standard_normal((3, tv, 4)).astype(dtype)] if with_key else [])
    k, ours = _twins(keras, name, [x.shape for x in inputs], dtype, rng, **options)
    assert_outputs_close(ours(inputs), k(inputs), context=f"{name} {options}")
    assert ours.count_params() == k.count_params()
    for mask in ([None, _mask(rng, 3, tv)], [_mask(rng, 3, tq), None], [_mask(rng, 3, tq), _mask(rng, 3, tv)]):
        for causal in (False, True):
            expected = k(inputs, mask=mask, return_attention_scores=True, use_causal_mask=causal)
            actual = ours(inputs, mask=mask, return_attention_scores=True, use_causal_mask=causal)
            assert isinstance(actual, tuple)
            assert_outputs_close(actual, expected, context=f"{name} {options} causal={causal}")
            out_mask = getattr(k(inputs, mask=mask), "_keras_mask", None)
            ours_mask = ours.compute_mask(inputs, mask)
            assert (ours_mask is None) == (out_mask is None)
            if out_mask is not None:
                np.testing.assert_array_equal(ours_mask, np.asarray(out_mask))


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # Tv = 1
@settings(max_examples=60)
@given(data=st.data())
def test_attention_property(keras, data):
    name, options = data.draw(st.sampled_from(CONFIGS), label="config")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    batch, tq, tv, dim, dv = (data.draw(st.integers(1, 5), label=n) for n in ("batch", "Tq", "Tv", "dim", "dv"))
    with_key = data.draw(st.booleans(), label="with_key")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    scale = data.draw(st.sampled_from([0.1, 1.0, 3.0]), label="input scale")
    q = (rng.standard_normal((batch, tq, dim)) * scale).astype(dtype)
    v = (rng.standard_normal((batch, tv, dv if with_key else dim)) * scale).astype(dtype)
    inputs = [q, v] + ([(rng.standard_normal((batch, tv, dim)) * scale).astype(dtype)] if with_key else [])
    mask = data.draw(st.sampled_from([None, "query", "value", "both"]), label="mask")
    masks = None
    if mask is not None:
        masks = [
            rng.random((batch, tq)) < 0.6 if mask in ("query", "both") else None,
            rng.random((batch, tv)) < 0.6 if mask in ("value", "both") else None,
        ]
    causal = data.draw(st.booleans(), label="use_causal_mask")
    k, ours = _twins(keras, name, [x.shape for x in inputs], dtype, rng, **options)
    expected = k(inputs, mask=masks, return_attention_scores=True, use_causal_mask=causal)
    actual = ours(inputs, mask=masks, return_attention_scores=True, use_causal_mask=causal)
    assert_outputs_close(actual, expected, context=f"{name} {options} mask={mask} causal={causal}")


@pytest.mark.parametrize("name", ["Attention", "AdditiveAttention"])
def test_from_keras(keras, rng, name):
    k = getattr(keras.layers, name)(use_scale=True, dropout=0.1)
    q, v = rng.standard_normal((2, 3, 4)).astype("float32"), rng.standard_normal((2, 5, 4)).astype("float32")
    k.build([q.shape, v.shape])
    k.set_weights([w + rng.standard_normal(w.shape) for w in k.get_weights()])
    ours = scratch_rnn.from_keras(k)
    assert type(ours).__name__ == name
    assert_outputs_close(ours([q, v]), k([q, v], training=False))


# --- without Keras ----------------------------------------------------------------------------------


def test_attention_by_hand():
    q = np.array([[[1.0, 0.0]]])
    v = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    out, weights = Attention(dtype="float64")([q, v], return_attention_scores=True)
    e = np.exp([1.0, 0.0])
    assert_close(weights[0, 0], e / e.sum(), 1e-15, "attention scores")
    out = Attention(dtype="float64")([q, v], mask=[None, np.array([[False, True]])])
    assert_close(out, np.array([[[0.0, 1.0]]]), 0.0, "output with the first value masked")


def test_weights_and_counts():
    layer = Attention(use_scale=True, score_mode="concat")
    layer([np.ones((1, 2, 3)), np.ones((1, 4, 3))])
    assert [s.keras_name for s in layer.weight_spec()] == ["scale", "concat_score_weight"]
    assert layer.count_params() == 2 and layer.get_weights()[0].shape == ()
    additive = AdditiveAttention()
    additive([np.ones((1, 2, 3)), np.ones((1, 4, 3))])
    assert additive.count_params() == 3 and "score_mode" not in additive.get_config()


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: Attention(score_mode="general"), "score_mode"),
        (lambda: Attention(use_scale="yes"), "use_scale"),
        (lambda: Attention(dropout=1.5), "dropout"),
        (lambda: Attention(seed=1.5), "seed"),
        (lambda: AdditiveAttention(dropout=-0.1), "dropout"),
        (lambda: AdditiveAttention(score_mode="general"), "score_mode"),  # Keras checks it, then ignores it
        (lambda: AdditiveAttention(dtype="float16"), "dtype"),
    ],
)
def test_refused_arguments(make, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        make()


def test_refused_calls():
    q, v = np.ones((2, 3, 4)), np.ones((2, 5, 4))
    layer = Attention(dropout=0.5)
    with pytest.raises(ValueError, match="`inputs`"):
        layer(q)
    with pytest.raises(ValueError, match="`inputs`"):
        layer([q])
    with pytest.raises(ValueError, match="`mask`"):
        layer([q, v], mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="query_mask"):
        layer([q, v], mask=[np.ones((2, 5), bool), None])
    with pytest.raises(ValueError, match="value_mask"):
        layer([q, v], mask=[None, np.ones((2, 3), bool)])
    with pytest.raises(ValueError, match="last dimension"):
        layer([q, np.ones((2, 5, 3)), np.ones((2, 5, 2))])
    with pytest.raises(ValueError, match="3-D"):
        layer([q[0], v])
    with pytest.raises(ValueError, match="`training`"):
        layer([q, v], training=True)
    with pytest.raises(ValueError, match="use_causal_mask"):
        layer([q, v], use_causal_mask="yes")
    assert Attention()([q, v], training=True).shape == (2, 3, 4)  # no dropout: training changes nothing
