"""Keras's recurrent API in full: the cells, ``StackedRNNCells`` and the ``RNN(cell)`` layer.

A cell is one timestep: ``output, new_states = cell(x_t, states)``. The step math is not
written here: each cell holds a recurrent layer configured like it (``LSTMCell(4)`` holds an
``LSTM(4)`` of the same name and options) and runs that layer's readable ``project`` and
``step`` on one timestep, so each equation has one home (:mod:`scratch_rnn.simple_rnn`,
:mod:`scratch_rnn.lstm`, :mod:`scratch_rnn.gru`). ``RNN(cell)`` is a
:class:`scratch_rnn.rnn.BaseRNN`: the same time loop (masks, ``go_backwards``, states,
``stateful``), running a single cell's layer kernel (the fast one unless ``fast`` is False)
or, for stacked cells, every cell's step in order.
"""

from __future__ import annotations

import numpy as np

from scratch_rnn import keras_layout
from scratch_rnn.checks import as_numeric, check_shape
from scratch_rnn.gru import GRU
from scratch_rnn.layer import Layer
from scratch_rnn.lstm import LSTM
from scratch_rnn.rnn import BaseRNN, Kernel, ProjectedKernel, reference_kernel, time_major_option
from scratch_rnn.simple_rnn import SimpleRNN

#: The options of a recurrent layer that belong to the ``RNN`` layer, not to its cell.
_LOOP_OPTIONS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")


class Cell(Layer):
    """Base of the built-in cells: one step of :attr:`LAYER`, with that layer's weights.

    A cell's weights are its layer's (Keras's names, order and layout: ``kernel``,
    ``recurrent_kernel``, ``bias``); ``cell.layer`` holds them (``cell.layer.Wx``, ...).
    """

    #: The recurrent layer whose ``project`` and ``step`` the cell runs.
    LAYER: type[BaseRNN]

    def __init__(
        self,
        units,
        activation="tanh",
        *,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        name=None,
        dtype="float32",
        trainable=True,
        **kwargs,
    ):
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)  # training-only options
        self.layer = self.LAYER(
            units,
            activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name=self.name,  # given, so that no layer name is used up
            dtype=self.dtype,
            trainable=trainable,
            **self._layer_options,
        )

    _layer_options: dict = {}  # a cell's own options (LSTM's recurrent_activation, ...), set before __init__

    @property
    def units(self) -> int:
        return self.layer.units

    @property
    def state_size(self):
        """Keras's: an int for a one-state cell, ``[units, units]`` for LSTMCell (``[h, c]``)."""
        sizes = self.layer.state_size
        return sizes[0] if len(sizes) == 1 else list(sizes)

    @property
    def output_size(self) -> int:
        return self.units

    @property
    def flat_state_size(self) -> list[int]:
        return list(self.layer.state_size)

    # --- weights: the layer's ----------------------------------------------------------
    def build(self, input_shape, initialize=True):
        if len(input_shape) != 2:
            raise ValueError(f"{type(self).__name__} expects inputs (batch, features), got shape {input_shape}.")
        if not self.layer.built:
            self.layer.build((input_shape[0], None, input_shape[1]), initialize)
        super().build(input_shape, initialize=False)

    def input_shape_from_weights(self, first_weight_shape):
        return (None, first_weight_shape[0])  # kernel (input_dim, ...)

    def sublayers(self):
        return [self.layer]

    def weight_spec(self):
        return self.layer.weight_spec()

    def get_weights(self):
        return self.layer.get_weights()

    def _set_weights(self, weights):
        keras_layout.build_from_weights(self, weights)
        self.layer._set_weights(weights)

    # --- one step ----------------------------------------------------------------------
    def step(self, x, states):
        """The readable step on checked arrays: ``x (B, F)``, ``states`` a list of ``(B, S)`` ->
        ``(output (B, U), new_states)``, the layer's ``project`` then ``step`` on one timestep."""
        z = self.layer.project(x[None])[0]  # (1, B, F) -> (1, B, G) -> (B, G)
        return self.layer.step(z, states)

    def call(self, x, states):
        """One timestep: ``x (batch, features)``, ``states`` the cell's states (a list, or one array
        for a one-state cell) -> ``(output (batch, units), new_states)``; ``new_states`` is a list,
        or one array when ``states`` was one array (as in Keras)."""
        x = as_numeric(x, "x", self.dtype)
        if x.ndim != 2:
            raise ValueError(f"Argument `x` of {self.name!r} must be 2-D (batch, features), got shape {x.shape}.")
        self.ensure_built((None, x.shape[1]))
        check_shape(x, (None, self.layer.input_dim), "x")
        is_list = isinstance(states, (list, tuple))
        given = list(states) if is_list else [states]
        sizes = self.flat_state_size
        if len(given) != len(sizes):
            raise ValueError(
                f"Argument `states` of {self.name!r} must hold {len(sizes)} array(s) of sizes {sizes}, "
                f"got {len(given)}."
            )
        arrays = []
        for i, (state, size) in enumerate(zip(given, sizes)):
            state = as_numeric(state, f"states[{i}]", self.dtype)
            check_shape(state, (x.shape[0], size), f"states[{i}]")
            arrays.append(state)
        output, new_states = self.step(x, arrays)
        if not is_list and len(new_states) == 1:
            return output, new_states[0]
        return output, list(new_states)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self) -> dict:
        """Keras's cell config: the layer's, without the options of the time loop."""
        config = {key: value for key, value in self.layer.get_config().items() if key not in _LOOP_OPTIONS}
        return {**config, "name": self.name}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, units={self.units}, built={self.built}>"


class SimpleRNNCell(Cell):
    """Keras's ``SimpleRNNCell``: one step of :class:`scratch_rnn.SimpleRNN`.

    Equations (``x (B, F)``, ``h (B, U)``)::

        h_t = activation(x_t @ Wx.T + h_{t-1} @ Wh.T + b)      # output = new state

    Args:
        units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
        dropout, recurrent_dropout, seed, dtype: as :class:`scratch_rnn.SimpleRNN`'s.

    Call arguments:
        x: ``(batch, features)``; states: ``[h]`` (or ``h``), ``(batch, units)``.
    """

    LAYER = SimpleRNN


class _GatedCell(Cell):
    """Base of LSTMCell and GRUCell: the options of :class:`scratch_rnn.rnn.GatedRNN` a cell takes."""

    def __init__(self, units, activation="tanh", *, recurrent_activation="sigmoid", implementation=2, **kwargs):
        self._layer_options = {
            **self._layer_options,  # the subclass's own, set first
            "recurrent_activation": recurrent_activation,
            "implementation": implementation,
        }
        super().__init__(units, activation, **kwargs)

    @property
    def implementation(self) -> int:
        return self.layer.implementation


class LSTMCell(_GatedCell):
    """Keras's ``LSTMCell``: one step of :class:`scratch_rnn.LSTM` (states ``[h, c]``).

    Equations (``x (B, F)``, ``h, c (B, U)``; gate blocks i, f, c, o)::

        i, f, g, o = split(x_t @ Wx.T + h_{t-1} @ Wh.T + b, 4)          # 4 x (B, U)
        c_t = rec_act(f) * c_{t-1} + rec_act(i) * act(g)
        h_t = rec_act(o) * act(c_t)                                     # output h_t, states [h_t, c_t]

    Args:
        as :class:`scratch_rnn.LSTM`'s cell options: ``units``, ``activation``,
        ``recurrent_activation``, ``use_bias``, the initialisers, ``unit_forget_bias``,
        ``dropout``, ``recurrent_dropout``, ``seed``, ``implementation`` (1 or 2, accepted), ``dtype``.

    Call arguments:
        x: ``(batch, features)``; states: ``[h, c]``, each ``(batch, units)``.
    """

    LAYER = LSTM

    def __init__(self, units, activation="tanh", *, unit_forget_bias=True, **kwargs):
        self._layer_options = {"unit_forget_bias": unit_forget_bias}
        super().__init__(units, activation, **kwargs)


class GRUCell(_GatedCell):
    """Keras's ``GRUCell``: one step of :class:`scratch_rnn.GRU` (both ``reset_after`` forms).

    Equations (``reset_after=True``; ``x (B, F)``, ``h (B, U)``; gate blocks z, r, h)::

        xz, xr, xh = split(x_t @ Wx.T + bx, 3);   hz, hr, hh = split(h_{t-1} @ Wh.T + bh, 3)
        z = rec_act(xz + hz);   r = rec_act(xr + hr);   n = act(xh + r * hh)
        h_t = z * h_{t-1} + (1 - z) * n

    Args:
        as :class:`scratch_rnn.GRU`'s cell options: ``units``, ``activation``,
        ``recurrent_activation``, ``use_bias``, the initialisers, ``reset_after``,
        ``dropout``, ``recurrent_dropout``, ``seed``, ``implementation`` (1 or 2, accepted), ``dtype``.

    Call arguments:
        x: ``(batch, features)``; states: ``[h]`` (or ``h``), ``(batch, units)``.
    """

    LAYER = GRU

    def __init__(self, units, activation="tanh", *, reset_after=True, **kwargs):
        self._layer_options = {"reset_after": reset_after}
        super().__init__(units, activation, **kwargs)


def _fresh(cell):
    """An unbuilt copy of ``cell`` (Keras's serialise/deserialise round trip)."""
    if isinstance(cell, StackedRNNCells):
        return StackedRNNCells([_fresh(each) for each in cell.cells], name=cell.name, dtype=cell.dtype.name)
    return type(cell)(**cell.get_config())


class StackedRNNCells(Layer):
    """Keras's ``StackedRNNCells``: cells run one after the other within each timestep.

    Equations (cells ``c_1 .. c_n``, any sizes)::

        y_0 = x_t
        y_k, states_k = c_k(y_{k-1}, states_k(t-1))       # k = 1 .. n
        output = y_n;   states = [states_1, ..., states_n]

    Weights: each cell's, in order (``kernel``, ``recurrent_kernel``, ``bias`` of the first
    cell, then of the second, ...). ``state_size`` is ``[c.state_size for c in cells]``
    (``[[u1, u1], u2]`` for an LSTMCell then a GRUCell); the loop carries the flat
    concatenation ``[h1, c1, h2]``.

    Args:
        cells: a non-empty list of scratch cells (``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``)
            sharing one dtype.
        dtype: Keras's default ``"float32"``; the cells compute in their own dtype, but, as in Keras,
            the stack's input and states are cast to this one at every step first (float64 cells in a
            float32 stack see float32-rounded inputs and states).
    """

    def __init__(self, cells, *, name=None, dtype="float32", trainable=True, **kwargs):
        if not isinstance(cells, (list, tuple)) or not cells or not all(isinstance(cell, Cell) for cell in cells):
            raise ValueError(
                "Received an invalid value for argument `cells`, expected a non-empty list of scratch_rnn cells "
                f"(SimpleRNNCell, LSTMCell, GRUCell), got {cells!r:.200}."
            )
        dtypes = sorted({cell.dtype.name for cell in cells})
        if len(dtypes) > 1:
            raise ValueError(
                f"Received an invalid value for argument `cells`: cells of different dtypes {dtypes} are not "
                "implemented; give every cell the same dtype."
            )
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.cells = list(cells)

    @property
    def state_size(self) -> list:
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self) -> int:
        return self.cells[-1].output_size

    @property
    def flat_state_size(self) -> list[int]:
        return [size for cell in self.cells for size in cell.flat_state_size]

    @property
    def compute_dtype(self) -> np.dtype:
        return self.cells[0].dtype

    def build(self, input_shape, initialize=True):
        if len(input_shape) != 2:
            raise ValueError(f"StackedRNNCells expects inputs (batch, features), got shape {input_shape}.")
        shape = tuple(input_shape)
        for cell in self.cells:  # each cell takes the previous one's output
            if not cell.built:
                cell.build(shape, initialize)
            shape = (shape[0], cell.output_size)
        super().build(input_shape, initialize=False)

    def input_shape_from_weights(self, first_weight_shape):
        return (None, first_weight_shape[0])

    def sublayers(self):
        return list(self.cells)

    def weight_spec(self):
        return [spec for cell in self.cells for spec in cell.weight_spec()]

    def get_weights(self):
        return [w for cell in self.cells for w in cell.get_weights()]

    def _set_weights(self, weights):
        keras_layout.build_from_weights(self, weights)
        counts = [len(cell.weight_spec()) for cell in self.cells]
        if len(weights) != sum(counts):
            raise ValueError(
                f"Argument `weights` for layer {self.name!r} must hold {sum(counts)} arrays (each cell's, in order: "
                f"{counts}), got {len(weights)}."
            )
        start = 0
        for cell, n in zip(self.cells, counts):
            cell._set_weights(list(weights[start : start + n]))
            start += n

    def step(self, x, states):
        """The cells' readable steps in order: ``x (B, F)``, the flat states -> ``(output, new flat states)``."""
        if self.dtype != self.compute_dtype:  # Keras casts the stack's inputs and states to its dtype each step
            x = x.astype(self.dtype).astype(self.compute_dtype)
            states = [s.astype(self.dtype).astype(self.compute_dtype) for s in states]
        new_states, start = [], 0
        for cell in self.cells:
            n = len(cell.flat_state_size)
            x, cell_states = cell.step(x, states[start : start + n])  # (B, U_k)
            new_states += cell_states
            start += n
        return x, new_states

    def call(self, x, states):
        """One timestep: ``x (batch, features)``, ``states`` one entry per cell (each as that cell
        takes it) -> ``(output (batch, output_size), new_states)``, one entry per cell."""
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            raise ValueError(
                f"Argument `states` of {self.name!r} must hold one entry per cell ({len(self.cells)}), "
                f"got {states!r:.80}."
            )
        x = as_numeric(x, "x", self.dtype)  # as Keras: to the stack's dtype, then each cell's
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            x, cell_states = cell(x, cell_states)
            new_states.append(cell_states)
        return x, new_states

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "cells": [_fresh(cell) for cell in self.cells]}

    def __repr__(self):
        return (
            f"<StackedRNNCells name={self.name!r}, cells={[type(c).__name__ for c in self.cells]}, built={self.built}>"
        )


def stacked_kernel(stack: StackedRNNCells, input_dim: int) -> Kernel:
    """The loop's kernel for stacked cells (rows): the input as is, then every cell's readable step.
    The states are the cells' flat states; the output is the last cell's first state."""

    def project_into(x, out):
        out[...] = x  # (n, B, F): each cell projects its own input in its step

    def step_into(z, states, new_states):
        _, values = stack.step(z, states)
        for new, value in zip(new_states, values):
            new[...] = value

    last = len(stack.flat_state_size) - len(stack.cells[-1].flat_state_size)
    return ProjectedKernel(input_dim, project_into, step_into, columns=False, output_index=last)


class RNN(BaseRNN):
    """Keras's ``RNN`` layer: a cell (or a list of cells, stacked) run over the timesteps.

    Equations::

        output_t, states_t = cell(x_t, states_{t-1})            # t = 0 .. T-1 (T-1 .. 0 with go_backwards)

    with Keras's masks, ``go_backwards``, ``stateful``, ``initial_state``, ``return_sequences``,
    ``return_state`` and ``zero_output_for_mask``, on the loop the recurrent layers share
    (:func:`scratch_rnn.rnn.recurrence`). ``RNN(LSTMCell(u))`` computes what ``LSTM(u)`` does,
    with the cell's layer's fast kernel (``fast``, as the layers have it); stacked cells run
    their readable steps.

    Weights: the cell's (``kernel``, ``recurrent_kernel``, ``bias``; stacked cells: each cell's in order).

    Args:
        cell: a scratch cell (``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``), a ``StackedRNNCells``,
            or a list of cells (stacked).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask:
            as :class:`scratch_rnn.SimpleRNN`'s.
        time_major: only False (Keras 2's option): inputs are ``(batch, timesteps, features)``.
        dtype: the layer's (default ``"float32"``, as Keras's): inputs are cast to it, then to the
            cell's, which the loop computes in; outputs and states are cast back to it.

    Call arguments:
        x: ``(batch, timesteps, features)``; mask: ``(batch, timesteps)``.
        initial_state: the cell's states: ``[h, c]`` for an LSTMCell; for stacked cells one entry
            per cell (``[[h1, c1], h2]``, Keras's form) or the flat list ``[h1, c1, h2]``.

    Returns:
        ``(batch, units)`` or ``(batch, timesteps, units)``; with ``return_state``
        ``[output, *states]``, for stacked cells one entry per cell (a list of that cell's states,
        or an array where the initial state gave one, as Keras returns them).
    """

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        *,
        time_major=False,
        name=None,
        dtype="float32",
        trainable=True,
        **kwargs,
    ):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        if not isinstance(cell, (Cell, StackedRNNCells)):
            raise ValueError(
                "Received an invalid value for argument `cell`, expected a scratch_rnn cell (SimpleRNNCell, "
                f"LSTMCell, GRUCell, StackedRNNCells) or a list of cells, got {cell!r:.200}."
            )
        Layer.__init__(self, name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.time_major = time_major_option(time_major)
        self._loop_options(return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask)
        self.cell = cell

    @property
    def stacked(self) -> bool:
        return isinstance(self.cell, StackedRNNCells)

    @property
    def units(self) -> int:
        return self.cell.output_size

    @property
    def state_size(self) -> list:
        """Keras's: ``[s]`` for a cell whose ``state_size`` is an int, else the cell's list."""
        size = self.cell.state_size
        return [size] if isinstance(size, int) else list(size)

    @property
    def flat_state_size(self) -> list[int]:
        return self.cell.flat_state_size

    @property
    def compute_dtype(self) -> np.dtype:
        return self.cell.compute_dtype if self.stacked else self.cell.dtype

    # --- weights: the cell's --------------------------------------------------------------
    def build(self, input_shape, initialize=True):
        if len(input_shape) != 3:
            raise ValueError(f"RNN expects inputs (batch, timesteps, features), got shape {input_shape}.")
        if not self.cell.built:
            self.cell.build((input_shape[0], input_shape[2]), initialize)
        Layer.build(self, input_shape, initialize=False)

    def sublayers(self):
        return [self.cell]

    def weight_spec(self):
        return self.cell.weight_spec()

    def get_weights(self):
        return self.cell.get_weights()

    def _set_weights(self, weights):
        keras_layout.build_from_weights(self, weights)
        self.cell._set_weights(weights)

    # --- the loop -------------------------------------------------------------------------
    def kernel(self, batch):
        return stacked_kernel(self.cell, self.input_dim) if self.stacked else self.cell.layer.kernel(batch)

    def reference_kernel(self):
        return stacked_kernel(self.cell, self.input_dim) if self.stacked else reference_kernel(self.cell.layer)

    def _flat_initial_state(self, initial_state):
        """``initial_state`` as the flat list the loop carries, and for stacked cells which cells' states
        were given as a list (Keras returns each cell's states in the form it was given)."""
        n_cells = len(self.cell.cells) if self.stacked else 1
        as_list = [True] * n_cells
        if initial_state is None or not self.stacked or not isinstance(initial_state, (list, tuple)):
            return initial_state, as_list
        flat = []
        if len(initial_state) != len(self.cell.cells):  # the flat form [h1, c1, h2]
            flat = list(initial_state)
        else:
            for i, (cell, entry) in enumerate(zip(self.cell.cells, initial_state)):
                if isinstance(entry, (list, tuple)):
                    flat += list(entry)
                else:
                    as_list[i] = len(cell.flat_state_size) != 1
                    flat.append(entry)
        # Keras casts the given states to the StackedRNNCells' dtype, then the cells compute in theirs.
        flat = [as_numeric(s, f"initial_state[{i}]", self.cell.dtype) for i, s in enumerate(flat)]
        return flat, as_list

    def call(self, x, mask=None, initial_state=None):
        """Run the cell over ``x`` ``(batch, timesteps, features)``; see the class docstring."""
        x = as_numeric(x, "x", self.dtype)  # Keras casts to the layer's dtype, then the cell to its own
        flat, as_list = self._flat_initial_state(initial_state)
        result = super().call(x, mask=mask, initial_state=flat)
        outputs = result if isinstance(result, list) else [result]
        outputs = [np.asarray(a).astype(self.dtype, copy=False) for a in outputs]
        if not self.return_state:
            return outputs[0]
        output, states = outputs[0], outputs[1:]
        if not self.stacked:
            return [output, *states]
        grouped, start = [], 0
        for cell, is_list in zip(self.cell.cells, as_list):
            n = len(cell.flat_state_size)
            grouped.append(list(states[start : start + n]) if is_list else states[start])
            start += n
        return [output, *grouped]

    def compute_output_shape(self, input_shape):
        batch, timesteps = input_shape[0], input_shape[1]
        out = (batch, timesteps, self.units) if self.return_sequences else (batch, self.units)
        if not self.return_state:
            return out
        states = [(batch, s) if isinstance(s, int) else [(batch, each) for each in s] for s in self.state_size]
        return [out, *states]

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    def get_config(self):
        """Keras's config; ``cell`` is an unbuilt copy of the cell, so the config rebuilds an unbuilt layer."""
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "cell": _fresh(self.cell),
        }

    def __repr__(self):
        return f"<RNN name={self.name!r}, cell={type(self.cell).__name__}, built={self.built}>"
