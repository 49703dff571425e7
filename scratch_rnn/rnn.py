"""The recurrent layer base: argument checks, states, and the one time loop.

A concrete layer (``SimpleRNN``, ...) supplies only its weights
(:meth:`RNN.weight_spec`), the input projection of every timestep at once
(:meth:`RNN.project`) and its step (:meth:`RNN.step`). Everything Keras's
``RNN`` layer and ``backend.rnn`` do around the step lives here, once:
go_backwards, masks, ``zero_output_for_mask``, initial and stateful states,
``return_sequences`` and ``return_state``.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import initializers
from scratch_rnn.layer import Layer, as_numeric, check_shape


def recurrence(step, z, states, mask=None, *, go_backwards=False, return_sequences=False,
               zero_output_for_mask=False, unroll=False):
    """Run ``step`` over time, as Keras's ``backend.rnn`` does.

    Args:
        step: ``step(z_t, states) -> (output, new_states)``, ``z_t`` ``(B, G)``, output ``(B, U)``.
        z: ``(T, B, G)`` time-major input projection of every timestep.
        states: list of ``(B, S)`` initial states.
        mask: ``(T, B)`` bool or None. At a masked step the states are carried
            over unchanged and the output repeats the previous step's output
            (zeros before the first unmasked step), or is zeros if ``zero_output_for_mask``.

    Returns:
        ``(last_output (B, U), outputs (B, T, U) or None, final_states)``. With
        ``go_backwards`` the steps run from ``T-1`` down to 0 and ``outputs`` is in
        that processing order, as in Keras.

    ``unroll`` reproduces one difference of Keras's unrolled loop (TensorFlow
    backend, ``backend/tensorflow/rnn.py``): with ``zero_output_for_mask`` and a
    mask it carries the previous output through masked steps like the plain
    mode, then zeros ``outputs`` where the mask *in input order* is False, even
    when ``go_backwards`` has put ``outputs`` in reversed order. Without
    ``go_backwards`` this equals the symbolic loop.
    """
    zero_at_step = zero_output_for_mask and not unroll
    T = z.shape[0]
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    outputs = None
    prev = None
    for i, t in enumerate(order):
        out, new_states = step(z[t], states)                          # (B, U), [(B, S), ...]
        if mask is not None:
            m = mask[t][:, None]                                       # (B, 1)
            states = [np.where(m, new, old) for new, old in zip(new_states, states)]
            if zero_at_step:
                out = np.where(m, out, 0)
            else:
                out = np.where(m, out, 0 if prev is None else prev)
        else:
            states = new_states
        if return_sequences:
            if outputs is None:
                outputs = np.empty((out.shape[0], T, out.shape[1]), out.dtype)  # (B, T, U)
            outputs[:, i] = out
        prev = out
    if unroll and zero_output_for_mask and mask is not None:
        last_t = order[-1]
        prev = np.where(mask[last_t][:, None], prev, 0)
        if outputs is not None:
            outputs = np.where(mask.T[:, :, None], outputs, 0)        # (B, T, 1): mask in input order
    return prev, outputs, states


class RNN(Layer):
    """Base for recurrent layers; see :class:`scratch_rnn.SimpleRNN` for the call contract."""

    def __init__(self, units, *, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(
                f"Received an invalid value for argument `units`, expected a positive integer, got {units!r}."
            )
        self.units = int(units)
        for flag in ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                     "zero_output_for_mask"):
            value = locals()[flag]
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"Received an invalid value for argument `{flag}`, expected a bool, got {value!r}.")
            setattr(self, flag, bool(value))
        for rate_name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(
                    f"Received an invalid value for argument `{rate_name}`, expected a float in [0, 1], got {rate!r}."
                )
        # Dropout is applied only in training; at inference (all this engine does) it is the identity.
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.states: list[np.ndarray] | None = None  # kept between calls when stateful

    # --- what a concrete layer supplies --------------------------------------------------
    @property
    def state_size(self) -> list[int]:
        return [self.units]

    def project(self, x_tm: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``(T, B, F)`` inputs -> ``(T, B, G)`` input projections (bias included)."""
        raise NotImplementedError

    def step(self, z_t: np.ndarray, states: list[np.ndarray]):  # pragma: no cover - abstract
        raise NotImplementedError

    # --- building ----------------------------------------------------------------------
    def build(self, input_shape, initialize=True):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects inputs (batch, timesteps, features), got shape {input_shape}.")
        super().build(input_shape)
        if initialize:
            self.initialize_weights(np.random.default_rng(self.seed))

    @property
    def input_dim(self) -> int:
        return self.input_shape[-1]

    def compute_output_shape(self, input_shape):
        batch, timesteps = input_shape[0], input_shape[1]
        out = (batch, timesteps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [out] + [(batch, size) for size in self.state_size]
        return out

    def compute_mask(self, inputs, mask):
        return mask if self.return_sequences else None

    # --- calling -----------------------------------------------------------------------
    def reset_state(self):
        """Zero the carried states of a stateful layer (Keras's ``reset_state``)."""
        if self.states is not None:
            self.states = [np.zeros_like(s) for s in self.states]

    reset_states = reset_state

    def _check_inputs(self, x):
        x = as_numeric(x, "x", self.dtype)
        if x.ndim != 3:
            raise ValueError(
                f"Argument `x` of {self.name!r} must be 3-D (batch, timesteps, features), got shape {x.shape}."
            )
        if x.shape[1] == 0:
            raise ValueError(f"Argument `x` of {self.name!r} must have at least one timestep, got shape {x.shape}.")
        if not self.built:
            self.build((None, None, x.shape[2]))
        elif x.shape[2] != self.input_dim:
            raise ValueError(
                f"Argument `x` of {self.name!r} must have {self.input_dim} features (the built kernel's "
                f"input_dim): expected shape (batch, timesteps, {self.input_dim}), got {x.shape}."
            )
        return x

    def _initial_states(self, initial_state, batch):
        expected = [(batch, size) for size in self.state_size]
        if initial_state is None:
            if self.stateful and self.states is not None:
                if self.states[0].shape[0] != batch:
                    raise ValueError(
                        f"Layer {self.name!r} is stateful with batch size {self.states[0].shape[0]}; "
                        f"argument `x` has batch size {batch}. Call reset_state() on a new layer for a new batch size."
                    )
                return list(self.states)
            return [np.zeros(shape, self.dtype) for shape in expected]
        given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(given) != len(expected):
            raise ValueError(
                f"Argument `initial_state` of {self.name!r} must hold {len(expected)} array(s) of shapes "
                f"{expected}, got {len(given)}."
            )
        states = []
        for i, (state, shape) in enumerate(zip(given, expected)):
            state = as_numeric(state, f"initial_state[{i}]", self.dtype)
            check_shape(state, shape, f"initial_state[{i}]")
            states.append(state)
        return states

    def __call__(self, x, mask=None, initial_state=None):
        """Run the layer on ``x`` ``(batch, timesteps, features)``; see the class docstring."""
        x = self._check_inputs(x)
        batch, timesteps, _ = x.shape
        if mask is not None:
            mask = as_numeric(mask, "mask")
            check_shape(mask, (batch, timesteps), "mask")
            mask = mask.astype(bool).T                                  # (T, B)
        states = self._initial_states(initial_state, batch)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf in x propagate silently, as in Keras
            z = self.project(x.transpose(1, 0, 2))                      # (T, B, G)
            last, outputs, states = recurrence(
                self.step, z, states, mask, go_backwards=self.go_backwards,
                return_sequences=self.return_sequences, zero_output_for_mask=self.zero_output_for_mask,
                unroll=self.unroll,
            )
        if self.stateful:
            self.states = [s.copy() for s in states]
        output = outputs if self.return_sequences else last
        if self.return_state:
            return [output, *states]
        return output

    #: The constructor argument that names each Keras weight's initialiser.
    INITIALIZER_ARGUMENTS = {"kernel": "kernel_initializer", "recurrent_kernel": "recurrent_initializer",
                             "bias": "bias_initializer"}

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this layer, unbuilt (``type(layer)(**config)``), as Keras's do."""
        return {
            "name": self.name, "dtype": self.dtype.name, "units": self.units,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask, "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
            **{argument: initializers.name_of(self.initializers[weight])
               for weight, argument in self.INITIALIZER_ARGUMENTS.items()},
        }
