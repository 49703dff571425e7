"""The non-recurrent layers of the PyTorch port (:mod:`scratch_rnn.ports.to_torch`): each scratch layer as a
``torch.nn.Module`` computing the engine's (Keras's) equations with the same operations in the same order.

The rules, next to their code below: Dense's ``W (units, input_dim)`` is ``nn.Linear.weight`` as it is (the seed
layout); Conv1D's Keras kernel ``(k, in/groups, filters)`` is ``nn.Conv1d.weight`` ``(filters, in/groups, k)``
(a transpose of axes 0 and 2), its ``same``/``causal`` padding added explicitly (TensorFlow's split: the extra
step on the right; causal: all on the left); pooling windows padded as TensorFlow pads them, an average counting
real steps only; Keras 3's ``hard_sigmoid`` is ``relu6(x + 3) / 6``; masks enter GlobalAveragePooling1D, the
merges and the attentions exactly as the engine lets them. torch is imported when a module is first built.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from scratch_rnn import activations
from scratch_rnn.attention import MASKED_SCORE_OFFSET, AdditiveAttention, Attention
from scratch_rnn.convolutional import Conv1D
from scratch_rnn.core_layers import Activation, Dense, Dropout, Embedding, Masking
from scratch_rnn.merging import EPSILON, Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from scratch_rnn.normalization import BatchNormalization, LayerNormalization
from scratch_rnn.pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from scratch_rnn.regularization import GaussianDropout, GaussianNoise, SpatialDropout1D
from scratch_rnn.reshaping import Flatten, Permute, RepeatVector, Reshape

#: The layers computed as the identity at inference (Keras's training-only noise and dropout).
IDENTITY = (Dropout, SpatialDropout1D, GaussianNoise, GaussianDropout)
#: The merge layers whose output mask is the OR of their inputs' (Concatenate's is its own, Dot has none).
MERGES = (Add, Subtract, Average, Multiply, Maximum, Minimum, Concatenate, Dot)
#: Every non-recurrent layer the port converts.
SUPPORTED = (
    Dense, Embedding, Masking, Activation, *IDENTITY, *MERGES, Conv1D, LayerNormalization, BatchNormalization,
    GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D, AveragePooling1D, RepeatVector, Flatten, Reshape,
    Permute, Attention, AdditiveAttention,
)  # fmt: skip


def torch_dtype(dtype):
    import torch

    return {"bool": torch.bool, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64,
            "int32": torch.int32, "int64": torch.int64}[np.dtype(dtype).name]  # fmt: skip


@functools.cache
def _torch():
    """The helpers every module shares, defined once torch is imported."""
    import torch

    def activation(name: str):
        """Keras's activation ``name`` in torch, the formula the engine and Keras 3 use."""
        return {
            "linear": lambda x: x,
            "tanh": torch.tanh,
            "relu": torch.relu,
            "sigmoid": torch.sigmoid,
            "hard_sigmoid": lambda x: torch.clamp(x + 3, 0, 6) / 6,  # Keras 3's relu6(x + 3) / 6
            "softmax": lambda x: torch.softmax(x, dim=-1),
        }[name]

    def cast(x, dtype):
        """A float ``x`` in ``dtype`` (a layer computes in its dtype, as Keras casts its input)."""
        x = torch.as_tensor(x)
        return x.to(dtype) if torch.is_floating_point(x) and x.dtype != dtype else x

    def constant(array):
        """A NumPy weight as a frozen ``nn.Parameter`` (moves with ``.to()``, casts with ``.double()``)."""
        return torch.nn.Parameter(torch.from_numpy(np.array(array, order="C")), requires_grad=False)

    return torch, activation, cast, constant


def convert(layer):
    """The module of one non-recurrent scratch layer (the caller checked it is in :data:`SUPPORTED`)."""
    return _classes()[_kind(layer)](layer)


def _kind(layer) -> str:
    for cls in (AdditiveAttention, *SUPPORTED):  # AdditiveAttention is an Attention: its own first
        if isinstance(layer, cls):
            return "Identity" if isinstance(layer, IDENTITY) else cls.__name__
    raise KeyError(type(layer).__name__)  # pragma: no cover - checked by the caller


@functools.cache
def _classes() -> dict:
    torch, activation, cast, constant = _torch()
    nn = torch.nn
    F = torch.nn.functional  # noqa: N806

    class Layer(nn.Module):
        """A converted layer: its dtype (a buffer-free record, for the weightless ones) and its activation."""

        def __init__(self, layer):
            super().__init__()
            self.dtype = torch_dtype(layer.dtype)

        def compute_dtype(self):
            weight = next(self.parameters(), None)
            return self.dtype if weight is None else weight.dtype  # .double() moves the weights, and the layer

    class TorchDense(Layer):
        def __init__(self, layer: Dense):
            super().__init__(layer)
            self.weight = constant(layer.W)  # (u, F): the seed layout is nn.Linear's
            self.bias = constant(layer.b) if layer.use_bias else None
            self.act = activations.name_of(layer.activation)

        def forward(self, x, mask=None):
            return activation(self.act)(F.linear(cast(x, self.weight.dtype), self.weight, self.bias))

    class TorchEmbedding(Layer):
        def __init__(self, layer: Embedding):
            super().__init__(layer)
            self.embeddings = constant(layer.embeddings)  # (input_dim, output_dim), Keras's layout

        def forward(self, x, mask=None):
            ids = torch.as_tensor(x).to(self.embeddings.device)
            if torch.is_floating_point(ids):
                ids = torch.trunc(ids)  # the engine's (and Keras's) cast of float ids
            ids = ids.long()
            ids = torch.where(ids < 0, ids + self.embeddings.shape[0], ids)  # [-input_dim, 0) counts from the end
            return F.embedding(ids, self.embeddings)

    class TorchMasking(Layer):
        def __init__(self, layer: Masking):
            super().__init__(layer)
            self.mask_value = layer.mask_value

        def keep(self, x):
            """``(x, keep)``: ``x`` in the layer's dtype and ``any(x != mask_value, -1)`` ``(batch, steps)``."""
            x = torch.as_tensor(x).to(self.dtype)
            return x, torch.any(x != torch.tensor(self.mask_value, dtype=self.dtype, device=x.device), dim=-1)

        def forward(self, x, mask=None):
            x, keep = self.keep(x)
            return torch.where(keep[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))

    class TorchActivation(Layer):
        def __init__(self, layer: Activation):
            super().__init__(layer)
            self.act = activations.name_of(layer.activation)

        def forward(self, x, mask=None):
            return activation(self.act)(cast(x, self.dtype))

    class Identity(Layer):
        """Dropout and the noise layers: the identity at inference."""

        def forward(self, x, mask=None):
            return x

    class TorchMerge(Layer):
        """Keras's merge layers (``merging.py``): the same operations in the same order, masks included."""

        def __init__(self, layer):
            super().__init__(layer)
            self.kind = type(layer).__name__
            self.axis = getattr(layer, "axis", -1)
            self.axes = getattr(layer, "axes", None)
            self.normalize = getattr(layer, "normalize", False)

        def forward(self, inputs, mask=None):
            xs = [cast(x, self.dtype) for x in inputs]
            if self.kind == "Concatenate":
                return torch.cat(xs, dim=self.axis)
            if self.kind == "Dot":
                return self.dot(*xs)
            masks = [None] * len(xs) if mask is None else list(mask)
            rank = max(x.dim() for x in xs)
            xs = [x.reshape(x.shape[0], *(1,) * (rank - x.dim()), *x.shape[1:]) for x in xs]  # expand at axis 1
            if self.kind in ("Add", "Average"):
                y = xs[0]
                for x in xs[1:]:
                    y = y + x
                return y / len(xs) if self.kind == "Average" else y
            if self.kind == "Subtract":
                return xs[0] - xs[1]
            expanded = [
                None if m is None else torch.as_tensor(m, device=x.device).bool()[..., None].expand(x.shape)
                for x, m in zip(xs, masks)
            ]
            one, zero = (torch.tensor(v, dtype=self.dtype, device=xs[0].device) for v in (1, 0))
            if self.kind == "Multiply":  # masked entries count as 1; every input masked there: 0
                every = all(m is not None for m in expanded)
                y = keep = None
                for x, m in zip(xs, expanded):
                    if m is not None:
                        x = torch.where(m, x, one)
                        if every:
                            keep = m if keep is None else keep | m
                    y = x if y is None else y * x
                return torch.where(keep, y, zero) if every else y
            op = torch.maximum if self.kind == "Maximum" else torch.minimum
            y = keep = None
            for x, m in zip(xs, expanded):  # a masked entry takes the other side's value
                if y is None:
                    y, keep = x, m
                    continue
                if m is not None:
                    x = torch.where(m, x, y)
                if keep is not None:
                    y = torch.where(keep, y, x)
                keep = keep | m if (m is not None and keep is not None) else None
                y = op(y, x)
            return y

        def dot(self, x, z):
            pair = self.axes if isinstance(self.axes, tuple) else (self.axes, self.axes)
            a, b = pair[0] % x.dim(), pair[1] % z.dim()
            if self.normalize:  # Keras's rsqrt capped at 1 / epsilon: a zero vector stays zero
                cap = torch.tensor(1 / EPSILON, dtype=x.dtype, device=x.device)
                x = x * torch.minimum(1 / torch.sqrt(torch.sum(torch.square(x), dim=a, keepdim=True)), cap)
                z = z * torch.minimum(1 / torch.sqrt(torch.sum(torch.square(z), dim=b, keepdim=True)), cap)
            x = torch.movedim(x, a, -1)  # (B, X..., K)
            z = torch.movedim(z, b, 1)  # (B, K, Z...)
            batch, k = x.shape[0], x.shape[-1]
            y = x.reshape(batch, -1, k) @ z.reshape(batch, k, -1)  # (B, prod X, prod Z)
            y = y.reshape(batch, *x.shape[1:-1], *z.shape[2:])
            return y.reshape(batch, 1) if y.dim() == 1 else y

    class TorchConv1D(Layer):
        def __init__(self, layer: Conv1D):
            super().__init__(layer)
            self.weight = constant(np.transpose(layer.kernel, (2, 1, 0)))  # Keras (k, in/g, f) -> (f, in/g, k)
            self.bias = constant(layer.bias) if layer.use_bias else None
            self.stride, self.dilation, self.groups = layer.strides, layer.dilation_rate, layer.groups
            self.kernel_size, self.padding = layer.kernel_size, layer.padding
            self.channels_first = layer.data_format == "channels_first"
            self.act = activations.name_of(layer.activation)

        def pads(self, steps: int) -> tuple[int, int]:
            span = self.dilation * (self.kernel_size - 1) + 1
            if self.padding == "valid":
                return 0, 0
            if self.padding == "causal":
                return span - 1, 0  # every pad step before the sequence
            total = max((math.ceil(steps / self.stride) - 1) * self.stride + span - steps, 0)
            return total // 2, total - total // 2  # TensorFlow's "same": the extra step on the right

        def forward(self, x, mask=None):
            x = cast(x, self.weight.dtype)
            if not self.channels_first:
                x = x.transpose(1, 2)  # (B, L, C) -> (B, C, L), PyTorch's layout
            x = F.pad(x, self.pads(x.shape[-1]))
            y = F.conv1d(x, self.weight, self.bias, stride=self.stride, dilation=self.dilation, groups=self.groups)
            y = activation(self.act)(y)  # (B, F, L_out)
            return y if self.channels_first else y.transpose(1, 2)

    class TorchLayerNormalization(Layer):
        def __init__(self, layer: LayerNormalization):
            super().__init__(layer)
            self.axes, self.epsilon, self.rms = list(layer.axes), layer.epsilon, layer.rms_scaling
            self.gamma = constant(layer.gamma) if (layer.scale or layer.rms_scaling) else None
            self.beta = constant(layer.beta) if (layer.center and not layer.rms_scaling) else None

        def broadcast(self, w, shape):
            """Keras's ``_broadcast``: the weight reshaped onto the normalized axes."""
            target = [1] * len(shape)
            for a in self.axes:
                target[a] = shape[a]
            return w.reshape(target)

        def forward(self, x, mask=None):
            dtype = self.gamma.dtype if self.gamma is not None else self.beta.dtype if self.beta is not None else None
            x = cast(x, dtype or self.dtype)
            axes = tuple(self.axes)
            mean = torch.mean(x, dim=axes, keepdim=True)
            var = torch.mean(torch.square(x - mean), dim=axes, keepdim=True)  # biased, as Keras
            inv = 1 / torch.sqrt(var + torch.tensor(self.epsilon, dtype=x.dtype, device=x.device))
            if self.rms:
                return x * inv * self.broadcast(self.gamma, x.shape)
            if self.gamma is not None:
                inv = inv * self.broadcast(self.gamma, x.shape)
            res = -mean * inv
            if self.beta is not None:
                res = res + self.broadcast(self.beta, x.shape)
            return x * inv + res

    class TorchBatchNormalization(Layer):
        def __init__(self, layer: BatchNormalization):
            super().__init__(layer)
            self.axis, self.epsilon = layer.axis, layer.epsilon
            self.gamma = constant(layer.gamma) if layer.scale else None
            self.beta = constant(layer.beta) if layer.center else None
            self.moving_mean, self.moving_variance = constant(layer.moving_mean), constant(layer.moving_variance)

        def forward(self, x, mask=None):
            x = cast(x, self.moving_mean.dtype)
            shape = [1] * x.dim()
            shape[self.axis] = x.shape[self.axis]  # the channels broadcast along `axis`
            eps = torch.tensor(self.epsilon, dtype=x.dtype, device=x.device)
            inv = 1 / torch.sqrt(self.moving_variance + eps)  # the moving statistics: inference
            if self.gamma is not None:
                inv = inv * self.gamma
            res = -self.moving_mean * inv
            if self.beta is not None:
                res = self.beta + res
            return x * inv.reshape(shape) + res.reshape(shape)

    class Pooling(Layer):
        def __init__(self, layer):
            super().__init__(layer)
            self.kind = type(layer).__name__
            self.channels_first = layer.data_format == "channels_first"
            self.keepdims = getattr(layer, "keepdims", False)
            self.pool_size = getattr(layer, "pool_size", None)
            self.strides = getattr(layer, "strides", None)
            self.padding = getattr(layer, "padding", None)

        def forward(self, x, mask=None):
            x = cast(x, self.dtype)
            if self.channels_first:
                x = x.transpose(1, 2)  # (B, T, F)
            if self.kind == "GlobalAveragePooling1D":
                if mask is None:
                    y = torch.mean(x, dim=1, keepdim=True)
                else:  # the kept steps' mean; every step masked: 0/0 = NaN, as in Keras
                    keep = torch.as_tensor(mask, device=x.device).bool()[:, :, None]  # (B, T, 1)
                    total = torch.sum(torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)), 1, True)
                    y = total / torch.sum(keep, dim=1, keepdim=True).to(x.dtype)
            elif self.kind == "GlobalMaxPooling1D":  # a mask is ignored, as in Keras 3
                y = torch.amax(x, dim=1, keepdim=True)
            else:
                y = self.windows(x)
                return y.transpose(1, 2) if self.channels_first else y
            y = y.transpose(1, 2) if self.channels_first else y  # (B, 1, F) or (B, F, 1)
            if self.keepdims:
                return y
            return y[:, :, 0] if self.channels_first else y[:, 0, :]

        def windows(self, x):
            """Max or average over windows of ``pool_size`` steps every ``strides``, padded as TensorFlow pads."""
            steps = x.shape[1]
            if self.padding == "same":
                steps_out = (steps - 1) // self.strides + 1
                pad_total = max((steps_out - 1) * self.strides + self.pool_size - steps, 0)
            else:
                steps_out, pad_total = (steps - self.pool_size) // self.strides + 1, 0
            left, right = pad_total // 2, pad_total - pad_total // 2
            is_max = self.kind == "MaxPooling1D"
            fill = -math.inf if is_max else 0.0  # the padding is never the maximum, adds nothing to a sum
            padded = F.pad(x.transpose(1, 2), (left, right), value=fill)  # (B, F, T + pad)
            windows = padded.unfold(-1, self.pool_size, self.strides)[:, :, :steps_out]  # (B, F, T_out, P)
            if is_max:
                return windows.amax(dim=-1).transpose(1, 2)  # (B, T_out, F)
            real = F.pad(torch.ones(1, 1, steps, dtype=x.dtype, device=x.device), (left, right))
            counts = real.unfold(-1, self.pool_size, self.strides)[0, 0, :steps_out].sum(-1)  # (T_out,): real steps
            return (windows.sum(dim=-1) / counts).transpose(1, 2)

    class Reshaping(Layer):
        def __init__(self, layer):
            super().__init__(layer)
            self.kind = type(layer).__name__
            self.n = getattr(layer, "n", None)
            self.target_shape = getattr(layer, "target_shape", None)
            self.dims = getattr(layer, "dims", None)
            self.channels_first = getattr(layer, "data_format", None) == "channels_first"

        def forward(self, x, mask=None):
            x = cast(x, self.dtype)
            if self.kind == "RepeatVector":
                return x[:, None, :].expand(x.shape[0], self.n, x.shape[1]).contiguous()  # (B, n, F)
            if self.kind == "Flatten":
                if self.channels_first and x.dim() > 1:
                    x = torch.movedim(x, 1, -1)  # (B, C, d1, ...) -> (B, d1, ..., C)
                return x.reshape(x.shape[0], math.prod(x.shape[1:]))
            if self.kind == "Reshape":
                return x.reshape(x.shape[0], *self.target_shape)
            return x.permute(0, *self.dims).contiguous()

    class TorchAttention(Layer):
        """Attention and AdditiveAttention: scores, the value and causal masks subtracting 1e9 (Keras does not
        overwrite), softmax, ``weights @ v``, query-masked steps zero."""

        def __init__(self, layer):
            super().__init__(layer)
            self.additive = isinstance(layer, AdditiveAttention)
            self.score_mode = getattr(layer, "score_mode", "dot")
            self.use_scale = layer.use_scale
            self.scale = constant(layer.scale) if layer.use_scale else None
            has_concat = not self.additive and self.score_mode == "concat"
            self.concat_score_weight = constant(layer.concat_score_weight) if has_concat else None

        def scores(self, q, k):
            if self.additive:
                t = torch.tanh(q[:, :, None, :] + k[:, None, :, :])  # (B, Tq, Tv, dim)
                return (self.scale * t if self.use_scale else t).sum(dim=-1)
            if self.score_mode == "dot":
                s = q @ k.transpose(-2, -1)  # (B, Tq, Tv)
                return s * self.scale if self.use_scale else s
            summed = q[:, :, None, :] + k[:, None, :, :]
            if self.use_scale:
                summed = self.scale * summed
            return self.concat_score_weight * torch.tanh(summed).sum(dim=-1)

        def forward(self, inputs, mask=None, return_attention_scores=False, use_causal_mask=False, training=None):
            xs = [cast(a, self.dtype) for a in inputs]
            q, v = xs[0], xs[1]
            k = xs[2] if len(xs) > 2 else v
            q_mask = v_mask = None
            if mask is not None:
                q_mask = None if mask[0] is None else torch.as_tensor(mask[0], device=q.device) != 0
                v_mask = None if mask[1] is None else torch.as_tensor(mask[1], device=q.device) != 0
            scores = self.scores(q, k)  # (B, Tq, Tv)
            allowed = None if v_mask is None else v_mask[:, None, :]
            if use_causal_mask:
                causal = torch.tril(torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device))[None]
                allowed = causal if allowed is None else allowed & causal
            if allowed is not None:
                offset = torch.tensor(MASKED_SCORE_OFFSET, dtype=scores.dtype, device=q.device)
                scores = torch.where(allowed, scores, scores - offset)
            e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
            weights = e / e.sum(dim=-1, keepdim=True)  # the engine's softmax
            out = weights @ v
            if q_mask is not None:
                out = torch.where(q_mask[..., None], out, torch.zeros((), dtype=out.dtype, device=out.device))
            return [out, weights] if return_attention_scores else out

    return {
        "Dense": TorchDense, "Embedding": TorchEmbedding, "Masking": TorchMasking, "Activation": TorchActivation,
        "Identity": Identity, "Conv1D": TorchConv1D, "LayerNormalization": TorchLayerNormalization,
        "BatchNormalization": TorchBatchNormalization, "Attention": TorchAttention,
        "AdditiveAttention": TorchAttention,
        **{cls.__name__: TorchMerge for cls in MERGES},
        **{cls.__name__: Pooling for cls in (GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D,
                                              AveragePooling1D)},
        **{cls.__name__: Reshaping for cls in (RepeatVector, Flatten, Reshape, Permute)},
    }  # fmt: skip
