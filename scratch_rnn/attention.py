"""Keras's dot-product ``Attention`` (Luong) and ``AdditiveAttention`` (Bahdanau), at inference.

Both are called on a list ``[query, value]`` or ``[query, value, key]`` (``key`` defaults to ``value``)
with an optional ``mask=[query_mask, value_mask]``; the output mask is the query mask, as in Keras.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import checks
from scratch_rnn.checks import as_numeric, boolean
from scratch_rnn.keras_layout import WeightSpec
from scratch_rnn.layer import Layer

SCORE_MODES = ("dot", "concat")

#: What Keras subtracts from a masked score (65504 in float16, which this engine does not compute in).
MASKED_SCORE_OFFSET = 1.0e9


def _softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Attention(Layer):
    """Keras's ``Attention``: dot-product (Luong-style) or concat attention.

    Equations (``q (B, Tq, dim)``, ``k (B, Tv, dim)``, ``v (B, Tv, dv)``)::

        scores = q @ k.T                                           # "dot": (B, Tq, Tv)
        scores = scores * scale                                    # only with use_scale
        scores = concat_score_weight * sum(tanh(scale * (q[:, :, None] + k[:, None])), -1)  # "concat"
        allowed[b, i, j] = value_mask[b, j] and (j <= i if use_causal_mask)
        scores = where(allowed, scores, scores - 1e9)              # Keras subtracts, it does not overwrite
        weights = softmax(scores, -1)                              # (B, Tq, Tv), the attention scores
        out = weights @ v                                          # (B, Tq, dv)
        out = where(query_mask[..., None], out, 0)                 # query-masked steps are zeros

    (``concat`` without ``use_scale`` omits ``scale``.)

    Weights (Keras's layout and order, scalars of shape ``()``, initialised to 1): ``scale`` (with
    ``use_scale``), then ``concat_score_weight`` (with ``score_mode="concat"``).

    Args:
        use_scale: whether ``scale`` exists.
        score_mode: ``"dot"`` (default) or ``"concat"``.
        dropout: float in [0, 1], dropout of the attention weights in training only (accepted).
        seed: the dropout seed (accepted).
        dtype: ``"float32"`` (default) or ``"float64"``.

    Call arguments:
        inputs: ``[query, value]`` or ``[query, value, key]``, each 3-D.
        mask: None or ``[query_mask (B, Tq), value_mask (B, Tv)]`` (either may be None; a third entry is
            accepted and ignored, as in Keras).
        return_attention_scores: also return ``weights``: ``(out, weights)``, a tuple as Keras returns.
        use_causal_mask: step ``i`` of the query attends to value steps ``<= i`` only.
        training: None or False; True is refused when ``dropout > 0`` (it would drop weights).
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, dtype="float32", name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.use_scale = boolean(use_scale, "use_scale")
        if score_mode not in SCORE_MODES:
            raise ValueError(
                f"Received an invalid value for argument `score_mode`, expected one of {list(SCORE_MODES)}, "
                f"got {score_mode!r}."
            )
        self.score_mode = score_mode
        self.dropout = checks.rate(dropout, "dropout")
        self.seed = checks.seed(seed)
        self.initializers = {"scale": _ones, "concat_score_weight": _ones}

    INITIALIZER_ARGUMENTS = {"scale": "scale", "concat_score_weight": "concat_score_weight"}

    # --- weights and shapes ----------------------------------------------------------------------
    def weight_spec(self):
        spec = []
        if self.use_scale:
            spec.append(WeightSpec("scale", "scale", (), transpose=False))
        if self.score_mode == "concat":
            spec.append(WeightSpec("concat_score_weight", "concat_score_weight", (), transpose=False))
        return spec

    def input_shape_from_weights(self, first_weight_shape):
        return ((None, None, None), (None, None, None))

    def _set_weights(self, weights):
        if not self.built and self.weight_spec():  # scalar weights: nothing in them to build from
            self.build(self.input_shape_from_weights(()), initialize=False)
        super()._set_weights(weights)

    def compute_output_shape(self, input_shape):
        query_shape, value_shape = input_shape[0], input_shape[1]
        return (*query_shape[:-1], value_shape[-1])

    def compute_mask(self, inputs, mask=None):
        self._check_lists(inputs, mask)
        if mask is None or mask[0] is None:
            return None
        return np.asarray(mask[0])

    # --- the computation ----------------------------------------------------------------------
    def _check_lists(self, inputs, mask):
        cls = type(self).__name__
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(
                f"Argument `inputs` of {cls} {self.name!r} must be a list [query, value] or [query, value, key], "
                f"got {type(inputs).__name__}"
                + (f" of length {len(inputs)}." if isinstance(inputs, (list, tuple)) else ".")
            )
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ValueError(
                f"Argument `mask` of {cls} {self.name!r} must be None or a list [query_mask, value_mask], "
                f"got {type(mask).__name__}" + (f" of length {len(mask)}." if isinstance(mask, (list, tuple)) else ".")
            )

    def _inputs(self, inputs, mask):
        self._check_lists(inputs, mask)
        names = ("query", "value", "key")
        arrays = [as_numeric(a, f"inputs[{i}] ({names[i]})", self.dtype) for i, a in enumerate(inputs)]
        for i, a in enumerate(arrays):
            if a.ndim != 3:
                raise ValueError(
                    f"Argument `inputs[{i}]` ({names[i]}) of {self.name!r} must be 3-D (batch, steps, dim), "
                    f"got shape {a.shape}."
                )
        q, v = arrays[0], arrays[1]
        k = arrays[2] if len(arrays) > 2 else v
        if not (q.shape[0] == v.shape[0] == k.shape[0]) or k.shape[1] != v.shape[1] or k.shape[2] != q.shape[2]:
            raise ValueError(
                f"{self.name!r}: query {q.shape}, value {v.shape} and key {k.shape} must share the batch size, "
                "key and value the number of steps, query and key the last dimension."
            )
        q_mask = v_mask = None
        if mask is not None:
            q_mask = None if mask[0] is None else as_numeric(mask[0], "mask[0] (query_mask)") != 0
            v_mask = None if mask[1] is None else as_numeric(mask[1], "mask[1] (value_mask)") != 0
            for name, m, want in (
                ("mask[0] (query_mask)", q_mask, q.shape[:2]),
                ("mask[1] (value_mask)", v_mask, v.shape[:2]),
            ):
                if m is not None:
                    checks.check_shape(m, want, name)
        self.ensure_built(tuple((None, *a.shape[1:]) for a in arrays))
        return q, v, k, q_mask, v_mask

    def scores(self, q, k):
        """The unmasked scores ``(B, Tq, Tv)`` (see the class docstring)."""
        if self.score_mode == "dot":
            s = q @ k.swapaxes(-2, -1)  # (B, Tq, dim) @ (B, dim, Tv) -> (B, Tq, Tv)
            return s * self.scale if self.use_scale else s
        summed = q[:, :, None, :] + k[:, None, :, :]  # (B, Tq, Tv, dim)
        if self.use_scale:
            summed = self.scale * summed
        return self.concat_score_weight * np.tanh(summed).sum(axis=-1)

    def call(self, inputs, mask=None, return_attention_scores=False, use_causal_mask=False, training=None):
        return_attention_scores = boolean(return_attention_scores, "return_attention_scores")
        use_causal_mask = boolean(use_causal_mask, "use_causal_mask")
        if training not in (None, False) and self.dropout > 0:
            raise ValueError(
                f"Argument `training`={training!r} of {self.name!r}: scratch_rnn computes at inference only; "
                f"dropout={self.dropout} of the attention weights in training is not implemented."
            )
        q, v, k, q_mask, v_mask = self._inputs(inputs, mask)
        scores = self.scores(q, k)  # (B, Tq, Tv)
        allowed = None if v_mask is None else v_mask[:, None, :]  # (B, 1, Tv)
        if use_causal_mask:
            causal = np.tril(np.ones(scores.shape[-2:], dtype=bool))[None]  # (1, Tq, Tv): j <= i
            allowed = causal if allowed is None else allowed & causal
        if allowed is not None:
            scores = np.where(allowed, scores, scores - self.dtype.type(MASKED_SCORE_OFFSET))
        weights = _softmax(scores)  # (B, Tq, Tv)
        out = weights @ v  # (B, Tq, dv)
        if q_mask is not None:
            out = np.where(q_mask[..., None], out, self.dtype.type(0))
        return (out, weights) if return_attention_scores else out

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "trainable": self.trainable,
            "use_scale": self.use_scale,
            "score_mode": self.score_mode,
            "dropout": self.dropout,
            "seed": self.seed,
        }


def _ones(shape, dtype, rng):
    return np.ones(shape, dtype)


def _glorot_uniform_vector(shape, dtype, rng):
    """Keras's GlorotUniform on a vector ``(dim,)``: fan_in = fan_out = dim."""
    limit = np.sqrt(6.0 / (2 * shape[0]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class AdditiveAttention(Attention):
    """Keras's ``AdditiveAttention`` (Bahdanau-style): the same call as :class:`Attention`, other scores.

    Equations (``q (B, Tq, dim)``, ``k (B, Tv, dim)``)::

        scores[b, i, j] = sum_d scale[d] * tanh(q[b, i, d] + k[b, j, d])     # scale = 1 without use_scale

    then masking, softmax, ``weights @ v`` and the query mask exactly as :class:`Attention`.

    Weights: ``scale (dim,)`` with ``use_scale`` (Keras's default True; glorot-uniform initialised).

    Args:
        use_scale: whether ``scale`` exists (default True).
        dropout, seed: training-only, accepted.
        dtype: ``"float32"`` (default) or ``"float64"``.
    """

    def __init__(self, use_scale=True, dropout=0.0, seed=None, dtype="float32", name=None, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, dtype=dtype, name=name, **kwargs)
        self.initializers = {"scale": _glorot_uniform_vector}

    def weight_spec(self):
        if not self.use_scale:
            return []
        return [WeightSpec("scale", "scale", (self.input_shape[0][-1],), transpose=False)]

    def input_shape_from_weights(self, first_weight_shape):
        return ((None, None, first_weight_shape[0]), (None, None, None))

    def _set_weights(self, weights):
        Layer._set_weights(self, weights)  # built from the (dim,) scale

    def _inputs(self, inputs, mask):
        q, v, k, q_mask, v_mask = super()._inputs(inputs, mask)
        if self.use_scale and q.shape[-1] != self.scale.shape[0]:
            raise ValueError(
                f"Argument `inputs[0]` (query) of {self.name!r} must have last dimension {self.scale.shape[0]} "
                f"(the built scale's), got shape {q.shape}."
            )
        return q, v, k, q_mask, v_mask

    def scores(self, q, k):
        """``sum(scale * tanh(q[:, :, None] + k[:, None]), -1)``: ``(B, Tq, Tv)``."""
        t = np.tanh(q[:, :, None, :] + k[:, None, :, :])  # (B, Tq, Tv, dim)
        return (self.scale * t if self.use_scale else t).sum(axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
