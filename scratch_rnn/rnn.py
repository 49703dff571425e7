"""The recurrent layer base: argument checks, states, and the one time loop.

A concrete layer (``SimpleRNN``, ...) supplies only its weights
(:meth:`BaseRNN.weight_spec`), the input projection of every timestep at once
(:meth:`BaseRNN.project`) and its step (:meth:`BaseRNN.step`), both in a readable
reference form, and the same two in a fast form (:meth:`BaseRNN.kernel`, a
:class:`Kernel`: derived weights, preallocated buffers, in-place operations;
the kernels live in :mod:`scratch_rnn.kernels`). A call runs the fast form
unless ``layer.fast`` is False. SimpleRNN and GRU build theirs from a
projection and a step (:class:`ProjectedKernel`); LSTM folds the projection
into its step.
Everything Keras's ``RNN`` layer and ``backend.rnn`` do around the step lives
here, once, in :func:`recurrence`: go_backwards, masks, ``zero_output_for_mask``,
initial and stateful states, ``return_sequences`` and ``return_state``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from scratch_rnn import activations, checks, initializers, mkl, parallel
from scratch_rnn.checks import as_numeric, boolean, check_shape, positive_int, rate
from scratch_rnn.layer import Layer

#: The inputs are projected (or, for LSTM, stacked) one chunk of timesteps at a time, a chunk holding at most
#: this many elements ``(steps, Kernel.width, B)`` and at most ``CHUNK_STEPS`` steps: memory does not grow with the
#: timesteps, and the chunk is still in cache when the steps read it (measured: as fast as one projection
#: of every step at the small shapes, up to 11% faster at the large ones).
CHUNK_ELEMENTS = 1 << 18
CHUNK_STEPS = 128


class Workspace:
    """Scratch arrays kept from one call to the next (each layer keeps one per thread).

    A call that finds its buffers here allocates nothing but its outputs. Measured: fresh
    scratch arrays of a few hundred KB each call can put glibc's heap into a cycle of
    trimming and page-faulting them back (168 page faults a call for SimpleRNN at
    32x100x16x32, 694 for LSTM at 64x100x32x64), which made those calls 35-80% slower.
    What is kept is one input chunk (at most :data:`CHUNK_ELEMENTS` elements) and two sets
    of states, for the last batch size a thread used; it goes with the layer (or the thread).
    """

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.in_use = False  # a call is running on these buffers

    def empty(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """The array called ``name``, of ``shape`` and ``dtype``, with whatever it last held."""
        array = self.arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self.arrays[name] = np.empty(shape, dtype)
        return array


class Kernel:
    """A layer's fast form for one call: its buffers, its input stage and its step.

    :func:`recurrence` drives a kernel one chunk of timesteps at a time::

        kernel.start(states, chunk, workspace)   # buffers for chunks of up to `chunk` steps; initial states
        for each chunk of n steps:
            kernel.load(x, n)           # x: the chunk's inputs, (n, F, B) (columns) or (n, B, F) (rows), a view
            for j in range(n):
                kernel.step(j)          # state(j) -> state(j + 1)
            kernel.carry(n)             # state(n) becomes state(0) of the next chunk

    ``state(j)`` is the list of state arrays before step ``j`` of the chunk (``j = 0 .. n``),
    views into the kernel's buffers; ``state(j + 1)[output_index]`` is step ``j``'s output
    (``output_index`` is 0 but for stacked cells). A step never
    writes ``state(j)``, so the loop can still carry a masked sample's old states over.

    The fast forms of LSTM and GRU keep the seed's column convention: a state is ``(S, B)``,
    one column per sample, and a step computes ``Wh @ H`` with the seed-layout weights, so
    every gate is a contiguous block of rows and every operation runs on contiguous memory.
    SimpleRNN has no gates to slice: it keeps the batch in rows, ``(B, S)``, as its outputs
    are laid out (``columns = False``).

    A kernel may hold its first state scaled by ``1 / output_scale`` (LSTM holds ``2h``,
    which saves a multiplication per step); the loop scales outputs and that state back
    at the end. Each layer's ``project`` and ``step`` are the readable reference of its
    kernel (``tests/test_fast_path.py`` holds them equal).
    """

    #: Rows of one timestep's input buffer (the projection's ``G``, or LSTM's ``U + F + 1``): sizes the chunks.
    width: int
    columns: bool = True
    output_scale: float = 1.0
    #: Which state is the step's output: 0 for a layer; a stack of cells outputs its last cell's first state.
    output_index: int = 0

    def start(self, states: list[np.ndarray], chunk: int, workspace: Workspace) -> None:  # pragma: no cover
        """Take the buffers (``workspace.empty``) and copy the initial ``states`` in (they are only read)."""
        raise NotImplementedError

    def load(self, x: np.ndarray, n: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, j: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self, j: int) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def carry(self, n: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ProjectedKernel(Kernel):
    """A kernel made of an input projection and a step (SimpleRNN, GRU, the reference forms).

    Args:
        gates: ``G``, the size of one timestep's input projection.
        project_into: ``project_into(x, out)`` writes the projections of ``n`` timesteps,
            bias included, into ``out``: ``x`` ``(n, F, B)`` -> ``out`` ``(n, G, B)``
            (``(n, B, F)`` -> ``(n, B, G)`` in rows). ``x`` is a strided view of the input.
        step_into: ``step_into(z, states, new_states)`` computes one timestep from ``z``
            (one timestep of ``project_into``'s output) and ``states`` into ``new_states``
            (never the same arrays as ``states``); ``new_states[output_index]`` is the step's output.
        columns: whether arrays are ``(size, B)`` (True) or ``(B, size)``.
        on_start: optional ``on_start(states)``, called with the initial states before the first step
            (a kernel may choose its form from them, as GRU's does near the largest float).
        output_index: which state is the step's output (see :attr:`Kernel.output_index`).
    """

    def __init__(
        self,
        gates: int,
        project_into: Callable,
        step_into: Callable,
        columns: bool = True,
        on_start=None,
        output_index: int = 0,
    ):
        self.width, self.project_into, self.step_into, self.columns = gates, project_into, step_into, columns
        self.on_start, self.output_index = on_start, output_index

    def start(self, states, chunk, workspace):
        if self.on_start is not None:
            self.on_start(states)
        batch = states[0].shape[1] if self.columns else states[0].shape[0]
        shape = (chunk, self.width, batch) if self.columns else (chunk, batch, self.width)
        self.z = workspace.empty("z", shape, states[0].dtype)
        self.buffers = [
            [workspace.empty(f"state {k} {i}", s.shape, s.dtype) for i, s in enumerate(states)] for k in range(2)
        ]  # even / odd steps
        for buffer, state in zip(self.buffers[0], states):
            np.copyto(buffer, state)

    def load(self, x, n):
        self.project_into(x, self.z[:n])

    def step(self, j):
        self.step_into(self.z[j], self.buffers[j & 1], self.buffers[~j & 1])

    def state(self, j):
        return self.buffers[j & 1]

    def carry(self, n):
        if n & 1:
            self.buffers.reverse()


def reference_kernel(layer: BaseRNN) -> Kernel:
    """The layer's readable ``project`` and ``step`` behind the :class:`Kernel` interface (rows):
    what a call runs when ``layer.fast`` is False."""

    def project_into(x, out):
        out[...] = layer.project(x)  # (n, B, F) -> (n, B, G)

    def step_into(z, states, new_states):
        for new, value in zip(new_states, layer.step(z, states)[1]):
            new[...] = value

    return ProjectedKernel(layer.Wx.shape[0], project_into, step_into, columns=False)


def recurrence(
    kernel: Kernel,
    x,
    states,
    mask=None,
    *,
    go_backwards=False,
    return_sequences=False,
    zero_output_for_mask=False,
    unroll=False,
    chunk_elements=None,
    workspace=None,
    out=None,
):
    """Run ``kernel`` over time, as Keras's ``backend.rnn`` runs a cell.

    Args:
        kernel: the layer's :class:`Kernel`.
        x: ``(B, T, F)`` inputs.
        states: list of ``(B, S)`` initial states (read, never written).
        mask: ``(T, B)`` bool or None. At a masked step the states are carried
            over unchanged and the output repeats the previous step's output
            (zeros before the first unmasked step), or is zeros if ``zero_output_for_mask``.
        chunk_elements: the largest input chunk, ``steps * kernel.width * B`` (default :data:`CHUNK_ELEMENTS`).
        workspace: a :class:`Workspace` to take scratch buffers from (default: fresh ones).
            The returned arrays are never views of it.
        out: with ``return_sequences``, an array ``(B, T, U)`` to write ``outputs`` into (a split call's
            rows of the whole output, :meth:`BaseRNN._loop`); default: a new one.

    Returns:
        ``(last_output (B, U), outputs (B, T, U) or None, final_states)``; ``U`` is the size of
        state ``kernel.output_index``. With
        ``go_backwards`` the steps run from ``T-1`` down to 0 and ``outputs`` is in
        that processing order, as in Keras.

    ``unroll`` reproduces one difference of Keras's unrolled loop (TensorFlow
    backend, ``backend/tensorflow/rnn.py``): with ``zero_output_for_mask`` and a
    mask it carries the previous output through masked steps like the plain
    mode, then zeros ``outputs`` where the mask *in input order* is False, even
    when ``go_backwards`` has put ``outputs`` in reversed order. Without
    ``go_backwards`` this equals the symbolic loop.

    Memory: besides ``outputs``, the kernel's fixed set of buffers (one input chunk,
    two sets of states), so nothing grows with ``T`` when ``return_sequences`` is False.
    """
    batch, T, _ = x.shape
    k = kernel.output_index  # the state that is the output
    units = states[k].shape[1]
    columns = kernel.columns

    def oriented(a):  # (B, S) <-> the kernel's layout
        return a.T if columns else a

    if go_backwards:
        x = x[:, ::-1]  # processing order (a view)
    if mask is not None:
        kept = mask[::-1] if go_backwards else mask  # (T, B) in processing order
        kept = kept[:, None, :] if columns else kept[:, :, None]  # (T, 1, B) or (T, B, 1)
        dropped = ~kept
    zero_at_step = zero_output_for_mask and not unroll
    chunk = max(1, min(T, CHUNK_STEPS, (chunk_elements or CHUNK_ELEMENTS) // max(1, kernel.width * batch)))
    workspace = Workspace() if workspace is None else workspace
    kernel.start([oriented(s) for s in states], chunk, workspace)
    outputs = (np.empty((batch, T, units), x.dtype) if out is None else out) if return_sequences else None
    if mask is not None:  # the previous output
        last = workspace.empty("last", oriented(states[k]).shape, x.dtype)
        last.fill(0)
    else:
        last = None
    for start in range(0, T, chunk):
        n = min(chunk, T - start)
        x_chunk = x[:, start : start + n]  # (B, n, F), a view
        kernel.load(x_chunk.transpose(1, 2, 0) if columns else x_chunk.transpose(1, 0, 2), n)
        for j in range(n):
            i = start + j
            kernel.step(j)
            new = kernel.state(j + 1)
            out = new[k]
            if mask is not None:
                for new_state, state in zip(new, kernel.state(j)):
                    np.copyto(new_state, state, where=dropped[i])  # masked samples keep their states
                if zero_at_step:
                    np.copyto(last, out)
                    np.copyto(last, 0, where=dropped[i])
                else:
                    np.copyto(last, out, where=kept[i])  # masked samples repeat their output
                out = last
            if outputs is not None:
                outputs[:, i] = oriented(out)  # (B, U)
        kernel.carry(n)
    states = [np.array(oriented(s), order="C") for s in kernel.state(0)]  # (B, S) each, copies
    last = states[k] if mask is None else np.array(oriented(last), order="C")
    if kernel.output_scale != 1:  # exact: a power of two (LSTM's, whose output is state 0)
        states[0] *= kernel.output_scale
        if last is not states[0]:  # with a mask: its own array
            last *= kernel.output_scale
        if outputs is not None:
            outputs *= kernel.output_scale
    if unroll and zero_output_for_mask and mask is not None:
        last_t = 0 if go_backwards else T - 1
        last = np.where(mask[last_t][:, None], last, 0)
        if outputs is not None:
            np.copyto(outputs, 0, where=~mask.T[:, :, None])  # (B, T, 1): mask in input order
    return last, outputs, states


def time_major_option(value) -> bool:
    """Keras 2's ``time_major``: only False, inputs ``(batch, timesteps, features)``, is implemented."""
    if value is not False and not (isinstance(value, np.bool_) and not value):
        raise ValueError(
            "Received an invalid value for argument `time_major`, expected False (scratch_rnn takes inputs "
            f"(batch, timesteps, features); time-major inputs are not implemented), got {value!r}."
        )
    return False


def implementation_option(value) -> int:
    """LSTM's and GRU's ``implementation``, 1 or 2: two orderings of the same products (Keras's
    kernel tuning), the same values at inference."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value not in (1, 2):
        raise ValueError(f"Received an invalid value for argument `implementation`, expected 1 or 2, got {value!r}.")
    return int(value)


def use_cudnn_option(value):
    """LSTM's and GRU's ``use_cudnn``: "auto", True or False, which kernel Keras runs on a GPU; the
    engine has one path, computing the same equations, whatever it says."""
    if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, str) and value == "auto")):
        raise ValueError(
            f"Received an invalid value for argument `use_cudnn`, expected one of ['auto', True, False], got {value!r}."
        )
    return value if isinstance(value, str) else bool(value)


class BaseRNN(Layer):
    """Base for recurrent layers; see :class:`scratch_rnn.SimpleRNN` for the call contract.

    It takes the options every recurrent layer shares (``units``, ``activation``, ``use_bias``,
    the initialisers, the call flags, dropout, ``seed``); each layer adds its own (LSTM's
    ``recurrent_activation`` and ``unit_forget_bias``, GRU's ``reset_after``). Options after
    ``activation`` are keyword-only. Keras 2's ``time_major`` is accepted at its only implemented
    value, False. Keras's ``RNN(cell)`` layer (:mod:`scratch_rnn.cells`) is a subclass too: it runs
    its cells' steps on the same loop.

    ``fast`` (an attribute, not a constructor argument, so that configs stay Keras's) chooses
    what a call runs: the layer's fast :meth:`kernel` (True, the default) or its readable
    :meth:`project` and :meth:`step` (False), through the same loop, masks and states. Set
    ``layer.fast = False`` to step through the equations in a debugger.
    """

    #: Run the fast kernel (True) or the readable ``project``/``step`` (False).
    fast: bool = True

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
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        seed=None,
        time_major=False,
        **kwargs,
    ):
        super().__init__(**kwargs)  # name, dtype, trainable, the training-only options
        self.time_major = time_major_option(time_major)
        self.units = positive_int(units, "units")
        self.activation = activations.get(activation, "activation", activations.RECURRENT)
        self.use_bias = boolean(use_bias, "use_bias")
        self.initializers = {
            "kernel": initializers.get(kernel_initializer, "kernel_initializer"),
            "recurrent_kernel": initializers.get(recurrent_initializer, "recurrent_initializer"),
            "bias": initializers.get(bias_initializer, "bias_initializer"),
        }
        self._loop_options(return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask)
        # Dropout is applied only in training; at inference (all this engine does) it is the identity.
        self.dropout = rate(dropout, "dropout")
        self.recurrent_dropout = rate(recurrent_dropout, "recurrent_dropout")
        self.seed = checks.seed(seed)

    def _loop_options(self, return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask):
        """Check and keep the options of the time loop (Keras's ``RNN`` layer's), and start with no states."""
        self.return_sequences = boolean(return_sequences, "return_sequences")
        self.return_state = boolean(return_state, "return_state")
        self.go_backwards = boolean(go_backwards, "go_backwards")
        self.stateful = boolean(stateful, "stateful")
        self.unroll = boolean(unroll, "unroll")
        self.zero_output_for_mask = boolean(zero_output_for_mask, "zero_output_for_mask")
        self.states: list[np.ndarray] | None = None  # kept between calls when stateful
        self._threads = threading.local()  # each thread's Workspace (see _workspace)

    # --- what a concrete layer supplies --------------------------------------------------
    @property
    def state_size(self) -> list[int]:
        return [self.units]

    @property
    def flat_state_size(self) -> list[int]:
        """The size of every state array the loop carries, in order (``state_size`` flattened)."""
        return self.state_size

    @property
    def compute_dtype(self) -> np.dtype:
        """The dtype the loop runs in: inputs and initial states are cast to it."""
        return self.dtype

    def project(self, x_tm: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``(T, B, F)`` inputs -> ``(T, B, G)`` input projections (bias included)."""
        raise NotImplementedError

    def step(self, z_t: np.ndarray, states: list[np.ndarray]):  # pragma: no cover - abstract
        """The readable reference step: ``z_t`` ``(B, G)`` (from :meth:`project`) and states ->
        ``(output, new_states)``."""
        raise NotImplementedError

    def kernel(self, batch: int) -> Kernel:  # pragma: no cover - abstract
        """The fast form of :meth:`project` and :meth:`step` for a batch of ``batch`` rows (see :class:`Kernel`);
        each layer's lives in :mod:`scratch_rnn.kernels`."""
        raise NotImplementedError

    def reference_kernel(self) -> Kernel:
        """What a call runs when ``fast`` is False: the readable :meth:`project` and :meth:`step`."""
        return reference_kernel(self)

    def compiled_loop(self, batch: int, timesteps: int = 1):
        """The whole time loop in compiled code for this layer on ``batch`` rows of ``timesteps`` (``loop(x, states,
        mask, **options)``, returning what :func:`recurrence` returns), or None to run the kernels: SimpleRNN, LSTM
        and GRU return :func:`scratch_rnn.compiled.loop_for`'s when numba is installed (a fast call runs it)."""
        return None

    # --- building ----------------------------------------------------------------------
    def build(self, input_shape, initialize=True):
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects inputs (batch, timesteps, features), got shape {input_shape}."
            )
        super().build(input_shape, initialize)

    def weight_rng(self) -> np.random.Generator:
        # NumPy takes non-negative seeds; Keras takes any integer: a negative one is folded in.
        return np.random.default_rng(None if self.seed is None else self.seed % 2**64)

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
        x = as_numeric(x, "x", self.compute_dtype)
        if x.ndim != 3:
            raise ValueError(
                f"Argument `x` of {self.name!r} must be 3-D (batch, timesteps, features), got shape {x.shape}."
            )
        if x.shape[1] == 0:
            raise ValueError(f"Argument `x` of {self.name!r} must have at least one timestep, got shape {x.shape}.")
        self.ensure_built((None, None, x.shape[2]))
        if x.shape[2] != self.input_dim:
            raise ValueError(
                f"Argument `x` of {self.name!r} must have {self.input_dim} features (the built kernel's "
                f"input_dim): expected shape (batch, timesteps, {self.input_dim}), got {x.shape}."
            )
        return x

    def _initial_states(self, initial_state, batch):
        expected = [(batch, size) for size in self.flat_state_size]
        if initial_state is None:
            if self.stateful and self.states is not None:
                if self.states[0].shape[0] != batch:
                    raise ValueError(
                        f"Layer {self.name!r} is stateful with batch size {self.states[0].shape[0]}; "
                        f"argument `x` has batch size {batch}. Call reset_state() on a new layer for a new batch size."
                    )
                return list(self.states)
            return [np.zeros(shape, self.compute_dtype) for shape in expected]
        given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(given) != len(expected):
            raise ValueError(
                f"Argument `initial_state` of {self.name!r} must hold {len(expected)} array(s) of shapes "
                f"{expected}, got {len(given)}."
            )
        states = []
        for i, (state, shape) in enumerate(zip(given, expected)):
            state = as_numeric(state, f"initial_state[{i}]", self.compute_dtype)
            check_shape(state, shape, f"initial_state[{i}]")
            states.append(state)
        return states

    def _workspace(self) -> Workspace:
        """This thread's scratch buffers for this layer (see :class:`Workspace`); fresh ones when the
        thread's are in use, i.e. the call re-entered the layer (from a signal handler, say)."""
        workspace = getattr(self._threads, "workspace", None)
        if workspace is None:
            workspace = self._threads.workspace = Workspace()
        return Workspace() if workspace.in_use else workspace

    def __getstate__(self):
        """Pickling and copying leave the per-thread scratch buffers behind (a ``threading.local``
        cannot be pickled, and a copy must not share them)."""
        state = dict(vars(self))
        del state["_threads"]
        return state

    def __setstate__(self, state):
        vars(self).update(state)
        self._threads = threading.local()

    def _recurrence(self, x, states, mask, out=None, batch=None, loop=None):
        """:func:`recurrence` on this layer's kernel and this thread's workspace, or the compiled ``loop``
        (:meth:`compiled_loop`'s, chosen by :meth:`_loop` for the whole batch). ``batch``: the whole call's batch
        size, which chooses between MKL's products and ``np.dot`` in the kernels (:func:`~scratch_rnn.mkl.choosing_for`,
        default ``x``'s): a split call's slices run what the whole batch chose, so that they compute the same bits."""
        batch = x.shape[0] if batch is None else batch
        workspace = self._workspace()
        workspace.in_use = True
        try:
            with np.errstate(invalid="ignore", over="ignore"), mkl.choosing_for(batch):  # NaN/Inf propagate
                options = dict(
                    go_backwards=self.go_backwards,
                    return_sequences=self.return_sequences,
                    zero_output_for_mask=self.zero_output_for_mask,
                    unroll=self.unroll,
                    workspace=workspace,
                    out=out,
                )
                if loop is not None:  # the whole sequence in compiled code (scratch_rnn.compiled)
                    return loop(x, states, mask, **options)
                kernel = self.kernel(x.shape[0]) if self.fast else self.reference_kernel()
                return recurrence(kernel, x, states, mask, **options)
        finally:
            workspace.in_use = False

    def _loop(self, x, states, mask):
        """The compiled loop when it runs for this batch (it splits the batch across threads itself, one compiled
        call a slice); else :meth:`_recurrence` on the whole batch, or on slices of it in several threads when the
        batch is large (:mod:`scratch_rnn.parallel`). A kernel may pick its form from its initial states near the
        largest float (LSTM's folded gates, GRU's update); a split call must pick what the unsplit one
        would for every row, so it runs only when every initial state is finite and at most half of it."""
        batch, timesteps, _ = x.shape
        loop = self.compiled_loop(batch, timesteps) if self.fast else None
        if loop is not None:
            return self._recurrence(x, states, mask, loop=loop)
        n = parallel.split_count(batch, self._step_flops_per_row, self._products_on_one_thread)
        if n == 1 or not all(np.all(np.abs(s) <= np.finfo(s.dtype).max / 2) for s in states):
            return self._recurrence(x, states, mask)
        outputs = np.empty((batch, timesteps, self.units), x.dtype) if self.return_sequences else None

        def run(rows):  # a slice of the batch, on the NumPy kernels as the whole batch chose
            part = None if mask is None else mask[:, rows]
            into = None if outputs is None else outputs[rows]
            return self._recurrence(x[rows], [s[rows] for s in states], part, into, batch)

        parts = parallel.map_slices(run, batch, n)
        last = np.concatenate([p[0] for p in parts])
        finals = [np.concatenate([p[2][i] for p in parts]) for i in range(len(states))]
        return last, outputs, finals

    def _products_on_one_thread(self, flops: int) -> bool:
        """Whether this layer's fast kernels run a step's products of ``flops`` flops on one thread split or not
        (MKL's sequential packed products, :mod:`scratch_rnn.mkl`): then only a split reaches the other cores."""
        return self.fast and mkl.chosen(flops, self.dtype)

    def _step_flops_per_row(self) -> int:
        """The flops of one sample's matrix products in one step: two per weight (a multiply and an add), kept
        for the layer as built (``count_params`` takes microseconds, too long to ask on every call)."""
        cached = vars(self).get("_step_flops")
        if cached is None or cached[0] is not self.input_shape:
            cached = self._step_flops = (self.input_shape, 2 * self.count_params())
        return cached[1]

    def call(self, x, mask=None, initial_state=None):
        """Run the layer on ``x`` ``(batch, timesteps, features)``; see the class docstring."""
        x = self._check_inputs(x)
        batch, timesteps, _ = x.shape
        if mask is not None:
            mask = as_numeric(mask, "mask")
            check_shape(mask, (batch, timesteps), "mask")
            mask = mask.astype(bool).T  # (T, B)
        states = self._initial_states(initial_state, batch)
        last, outputs, states = self._loop(x, states, mask)
        if self.stateful:
            self.states = [s.copy() for s in states]
        output = outputs if self.return_sequences else last
        if self.return_state:
            if any(output is s for s in states):  # no mask, no sequence: Keras returns two tensors, not one
                output = output.copy()
            return [output, *states]
        return output

    #: The constructor argument that names each Keras weight's initialiser.
    def get_config(self) -> dict:
        """Constructor arguments that rebuild this layer, unbuilt (``type(layer)(**config)``), as Keras's do."""
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "units": self.units,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "activation": activations.name_of(self.activation),
            "use_bias": self.use_bias,
            **{
                argument: initializers.name_of(self.initializers[weight])
                for weight, argument in self.INITIALIZER_ARGUMENTS.items()
                if weight in self.initializers
            },
        }


class GatedRNN(BaseRNN):
    """Base of the gated layers, LSTM and GRU: the gates' ``recurrent_activation``, and Keras's
    ``implementation`` and ``use_cudnn``, which change how Keras computes, never what."""

    def __init__(
        self,
        units,
        activation="tanh",
        *,
        recurrent_activation="sigmoid",
        implementation=2,
        use_cudnn="auto",
        **kwargs,
    ):
        super().__init__(units, activation, **kwargs)
        # Both change how Keras computes, never what: accepted, checked, not in get_config() (as in Keras).
        self.implementation = implementation_option(implementation)
        self.use_cudnn = use_cudnn_option(use_cudnn)
        self.recurrent_activation = activations.get(recurrent_activation, "recurrent_activation", activations.RECURRENT)

    def get_config(self) -> dict:
        return {**super().get_config(), "recurrent_activation": activations.name_of(self.recurrent_activation)}
