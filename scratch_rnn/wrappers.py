"""Wrappers over a layer: ``Bidirectional`` (a recurrent layer run forwards and backwards, outputs
merged) and ``TimeDistributed`` (a layer applied to every timestep)."""

from __future__ import annotations

import inspect

import numpy as np

from scratch_rnn import keras_layout
from scratch_rnn.checks import as_numeric
from scratch_rnn.layer import Layer
from scratch_rnn.rnn import BaseRNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _clone(layer: BaseRNN, name: str, **changes) -> BaseRNN:
    """A fresh, unbuilt layer from ``layer``'s config, as Keras's serialise/deserialise round trip makes."""
    return type(layer)(**{**layer.get_config(), "name": name, **changes})


def merge_directions(y, y_rev, merge_mode, concatenate) -> list:
    """The two directions' outputs (``y_rev`` back in time order) merged as ``merge_mode`` says: one output,
    or both for ``None``. ``concatenate(parts)`` joins along the last axis; the other modes are operators, so
    this serves any array type (the engine's NumPy, :mod:`scratch_rnn.ports.to_torch`'s tensors)."""
    if merge_mode == "concat":
        return [concatenate([y, y_rev])]  # (..., 2U)
    if merge_mode == "sum":
        return [y + y_rev]
    if merge_mode == "ave":
        return [(y + y_rev) / 2]
    if merge_mode == "mul":
        return [y * y_rev]
    return [y, y_rev]


class Bidirectional(Layer):
    """Keras's ``Bidirectional`` wrapper: a forward and a backward copy of a recurrent layer.

    Equations::

        y_fw = forward_layer(x)                       # (B, T, U) or (B, U)
        y_bw = backward_layer(x)                      # go_backwards: processes x[:, T-1], ..., x[:, 0]
        y_bw = y_bw[:, ::-1]                          # only with return_sequences: back to time order
        y    = concat([y_fw, y_bw], -1) | y_fw + y_bw | y_fw * y_bw | (y_fw + y_bw) / 2 | [y_fw, y_bw]

    As in Keras, the forward layer is a fresh copy of ``layer`` named ``forward_<name>``
    and, unless ``backward_layer`` is given, the backward layer is a fresh copy with
    ``go_backwards`` flipped, named ``backward_<name>``: neither reuses ``layer``'s
    weights. Both get ``zero_output_for_mask = return_sequences``, so masked steps
    of a returned sequence are zeros.

    Args:
        layer: a scratch recurrent layer (``SimpleRNN``, ``LSTM``, ``GRU``).
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"`` or None (return ``[y_fw, y_bw]``).
        backward_layer: optional recurrent layer used as is for the backward direction; it must
            have the opposite ``go_backwards`` and the same ``stateful``, ``return_sequences``
            and ``return_state`` as ``layer``.
        dtype: the wrapper's own dtype (default ``"float32"``, as in Keras): the input is cast to
            it before the inner layers (which cast to theirs) and the merged output is cast to it;
            returned states keep the inner layers' dtype, as in Keras.
        name: the layer's name.

    Call arguments:
        x: ``(batch, timesteps, features)``.
        mask: ``(batch, timesteps)`` bool, given to both directions.
        initial_state: a list whose first half goes to the forward layer, the second half
            to the backward one (``[h_fw, c_fw, h_bw, c_bw]`` for an LSTM).

    Returns:
        The merged output; with ``return_state``, ``[output, *forward_states, *backward_states]``
        (``[y_fw, y_bw, *forward_states, *backward_states]`` when ``merge_mode`` is None).
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, *, name=None, dtype="float32", **kwargs):
        if not isinstance(layer, BaseRNN):
            raise ValueError(
                "Received an invalid value for argument `layer`, expected a scratch_rnn recurrent layer "
                f"(SimpleRNN, LSTM, GRU), got {layer!r}."
            )
        if backward_layer is not None and not isinstance(backward_layer, BaseRNN):
            raise ValueError(
                "Received an invalid value for argument `backward_layer`, expected a scratch_rnn recurrent "
                f"layer or None, got {backward_layer!r}."
            )
        if not (merge_mode is None or (isinstance(merge_mode, str) and merge_mode in MERGE_MODES)):
            raise ValueError(
                f"Received an invalid value for argument `merge_mode`, expected one of {list(MERGE_MODES)}, "
                f"got {merge_mode!r}."
            )
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.forward_layer = _clone(layer, f"forward_{layer.name.removeprefix('forward_')}")
        if backward_layer is None:
            self.backward_layer = _clone(layer, f"backward_{layer.name.removeprefix('backward_')}", go_backwards=True)
        else:
            self.backward_layer = backward_layer
        self._verify_layer_config()
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state

    def _verify_layer_config(self):
        fw, bw = self.forward_layer, self.backward_layer
        if fw.go_backwards == bw.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` values, got "
                f"forward_layer.go_backwards={fw.go_backwards} and backward_layer.go_backwards={bw.go_backwards}."
            )
        for attribute in ("stateful", "return_sequences", "return_state"):
            if getattr(fw, attribute) != getattr(bw, attribute):
                raise ValueError(
                    f"Forward layer and backward layer are expected to have the same value for attribute "
                    f"`{attribute}`, got {getattr(fw, attribute)} for the forward layer and "
                    f"{getattr(bw, attribute)} for the backward layer."
                )

    @property
    def fast(self) -> bool:
        """Whether both directions run their fast kernels; setting it sets both (see :attr:`BaseRNN.fast`)."""
        return self.forward_layer.fast and self.backward_layer.fast

    @fast.setter
    def fast(self, value: bool) -> None:
        self.forward_layer.fast = self.backward_layer.fast = bool(value)

    # --- weights: the forward layer's, then the backward layer's (Keras's order) ----------
    def build(self, input_shape, initialize=True):
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                direction.build(input_shape, initialize)
        super().build(input_shape, initialize=False)

    def sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def weight_spec(self):
        return self.forward_layer.weight_spec() + self.backward_layer.weight_spec()

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _set_weights(self, weights):
        keras_layout.build_from_weights(self, weights)
        n_fw, n_bw = len(self.forward_layer.weight_spec()), len(self.backward_layer.weight_spec())
        if len(weights) != n_fw + n_bw:
            raise ValueError(
                f"Argument `weights` for layer {self.name!r} must hold {n_fw + n_bw} arrays "
                f"({n_fw} forward, then {n_bw} backward), got {len(weights)}."
            )
        self.forward_layer.set_weights(list(weights[:n_fw]))
        self.backward_layer.set_weights(list(weights[n_fw:]))

    # --- shapes and masks ---------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], shape[1:]
        if self.merge_mode == "concat":
            outputs = [(*shape[:-1], 2 * shape[-1])]
        elif self.merge_mode is None:
            outputs = [shape, shape]
        else:
            outputs = [shape]
        outputs += states + states
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_mask(self, inputs, mask):
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            masks += [None] * (2 * len(self.forward_layer.state_size))
        return masks[0] if len(masks) == 1 else masks

    # --- calling ------------------------------------------------------------------------
    @property
    def states(self):
        fw, bw = self.forward_layer.states, self.backward_layer.states
        return fw + bw if fw is not None and bw is not None else None

    def reset_state(self):
        """Zero the carried states of both directions (stateful layers)."""
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    reset_states = reset_state

    def _split_initial_state(self, initial_state):
        if initial_state is None:
            return None, None
        n = len(self.forward_layer.state_size) + len(self.backward_layer.state_size)
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != n:
            if isinstance(initial_state, (list, tuple)):
                got = f"{len(initial_state)} arrays"
            else:
                got = type(initial_state).__name__
            raise ValueError(
                f"Argument `initial_state` of {self.name!r} must be a list of {n} arrays, the forward "
                f"layer's states then the backward layer's, got {got}."
            )
        half = n // 2
        return list(initial_state[:half]), list(initial_state[half:])

    def call(self, x, mask=None, initial_state=None):
        """Run both directions on ``x`` ``(batch, timesteps, features)`` and merge; see the class docstring."""
        x = as_numeric(x, "x", self.dtype)
        forward_state, backward_state = self._split_initial_state(initial_state)
        y = self.forward_layer(x, mask=mask, initial_state=forward_state)
        y_rev = self.backward_layer(x, mask=mask, initial_state=backward_state)
        self.ensure_built(self.forward_layer.input_shape)
        states = []
        if self.return_state:
            states = y[1:] + y_rev[1:]  # not cast, as in Keras
            y, y_rev = y[0], y_rev[0]
        y = y.astype(self.dtype, copy=False)  # (B, T, U) or (B, U)
        y_rev = y_rev.astype(self.dtype, copy=False)
        if self.return_sequences:
            y_rev = np.flip(y_rev, axis=1).copy()  # (B, T, U): back to time order
        outputs = merge_directions(y, y_rev, self.merge_mode, lambda parts: np.concatenate(parts, axis=-1))
        outputs += states
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "merge_mode": self.merge_mode,
            "layer": self.forward_layer,
            "backward_layer": self.backward_layer,
        }

    def __repr__(self):
        return (
            f"<Bidirectional name={self.name!r}, layer={type(self.forward_layer).__name__}, "
            f"merge_mode={self.merge_mode!r}, built={self.built}>"
        )


class TimeDistributed(Layer):
    """Keras's ``TimeDistributed``: the same layer applied to every timestep.

    Equations::

        y[:, t] = layer(x[:, t])          # x (batch, timesteps, ...) -> y (batch, timesteps, ...)

    computed as one call of ``layer`` on the ``(batch * timesteps, ...)`` reshaped input.

    Args:
        layer: a non-recurrent scratch layer (``Dense``, ``Activation``, ``Dropout``, ...).
        dtype: the wrapper's dtype (default ``"float32"``, as in Keras): float inputs are cast
            to it before ``layer`` (which casts to its own); the output has ``layer``'s dtype.

    Call arguments:
        x: ``(batch, timesteps, ...)``.
        mask: optional ``(batch, timesteps, ...)``; checked, given to ``layer`` reshaped as its input
            is, ``(batch * timesteps, ...)``, when ``layer.call`` takes a mask (as Keras gives each
            timestep's slice), and passed through unchanged to the next layer (Keras 3's output mask).
    """

    def __init__(self, layer, dtype="float32", name=None, **kwargs):
        if not isinstance(layer, Layer) or isinstance(layer, (BaseRNN, Bidirectional, TimeDistributed)):
            raise ValueError(
                "Received an invalid value for argument `layer`, expected a non-recurrent scratch_rnn layer "
                f"(Dense, Activation, Dropout, ...), got {layer!r}."
            )
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.layer = layer

    @staticmethod
    def _child_shape(input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                "TimeDistributed expects inputs with at least 3 dimensions (batch, timesteps, ...), "
                f"got shape {input_shape}."
            )
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape, initialize=True):
        child_shape = self._child_shape(input_shape)
        if not self.layer.built:
            self.layer.build(child_shape, initialize)
        super().build(input_shape, initialize=False)

    def sublayers(self):
        return [self.layer]

    def input_shape_from_weights(self, first_weight_shape):
        child = self.layer.input_shape_from_weights(first_weight_shape)
        return (child[0], None, *child[1:])

    def weight_spec(self):
        return self.layer.weight_spec()

    def get_weights(self):
        return self.layer.get_weights()

    def _set_weights(self, weights):
        self.layer._set_weights(weights)
        if not self.built:
            super().build((None, None, *self.layer.input_shape[1:]), initialize=False)

    def count_params(self) -> int:
        return self.layer.count_params()

    def compute_output_shape(self, input_shape):
        child_out = self.layer.compute_output_shape(self._child_shape(input_shape))
        return (child_out[0], input_shape[1], *child_out[1:])

    def call(self, x, mask=None):
        x = as_numeric(x, "x")
        if x.dtype.kind == "f":
            x = x.astype(self.dtype, copy=False)
        self._child_shape(x.shape)
        batch, timesteps = x.shape[:2]
        if mask is not None:
            mask = as_numeric(mask, "mask")
            if mask.ndim < 2 or mask.shape[:2] != (batch, timesteps):
                raise ValueError(
                    f"Argument `mask` of {self.name!r} must start with the input's (batch, timesteps) = "
                    f"{(batch, timesteps)}, got shape {mask.shape}."
                )
        self.ensure_built((None, *x.shape[1:]))
        kwargs = {}
        if mask is not None and "mask" in inspect.signature(self.layer.call).parameters:  # Keras's _call_has_mask_arg
            kwargs["mask"] = mask.reshape(batch * timesteps, *mask.shape[2:])  # (B*T, ...): each step's mask
        y = self.layer(x.reshape(batch * timesteps, *x.shape[2:]), **kwargs)  # (B*T, ...)
        return y.reshape(batch, timesteps, *y.shape[1:])  # (B, T, ...)

    def compute_mask(self, inputs, mask):
        """Keras 3's: the input's mask passes through (``supports_masking``, no mask of the wrapped layer)."""
        return mask

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "layer": self.layer}

    def __repr__(self):
        return f"<TimeDistributed name={self.name!r}, layer={type(self.layer).__name__}, built={self.built}>"
