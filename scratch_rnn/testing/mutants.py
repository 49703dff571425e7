"""A gallery of planted porting bugs ("mutants"): proof that a green :func:`verify` run means something.

Each :class:`Mutant` is a realistic mistake of someone porting a Keras layer,
behind the candidate interface ``candidate(config, weights, x, mask=None,
initial_state=None)`` (a non-recurrent layer's: ``candidate(config, weights, inputs,
mask=None, **call_options)``, registered with :func:`layer_mutant`), so
:func:`~scratch_rnn.testing.verify.verify` checks it exactly as it checks a real port.
A mutant is the scratch engine with the bug planted *around* it, never in it:

* at the candidate boundary (:func:`mutant`), wherever the bug can be said that way: the weights
  (a kernel read in the wrong layout, a bias dropped, gate blocks in the wrong
  order), the config (an option ignored), the call's arguments (a mask or a state
  ignored) or the outputs (a sequence in the wrong order, the wrong step returned);
* otherwise on one fresh engine instance running its readable ``project``/``step``
  (``layer.fast = False``) with one attribute replaced (:func:`patched_mutant`): a
  different ``step`` or activation. Nothing global is patched.

:func:`kill_table` runs every mutant through ``verify`` and returns whether each was
caught ("killed") and after how many cases; ``scratch-rnn verify --mutants`` prints it
(:mod:`scratch_rnn.cli`). Nothing here prints.

Port mutants (:func:`port_mutant`) are bugs planted in a converter (:mod:`scratch_rnn.ports`) rather than
around the engine: the converted PyTorch module or ONNX session, one conversion rule broken. They join the
gallery only when asked for (``mutants(port="torch")``, ``scratch-rnn verify --mutants --port torch``), are
registered by the modules in :data:`PORT_MUTANT_MODULES` (imported when first asked for, so the gallery
never imports a framework), and name the packages they need (``requires``): without one, :func:`kill`
returns a row that was not run and says why, instead of failing.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import time
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scratch_rnn import activations
from scratch_rnn.keras_convert import from_config
from scratch_rnn.testing.case import CORE_LAYERS
from scratch_rnn.testing.runners import core_engine_candidate, engine_candidate

#: The seed of :func:`kill_table` unless one is given: the table is the same on every run.
DEFAULT_SEED = 20260


@dataclass(frozen=True)
class Mutant:
    """A planted bug: its name, the layer it is a port of, what the porter did, and the buggy candidate."""

    name: str
    layer: str
    description: str
    candidate: Callable
    references: tuple = ("keras", "tf_keras")  # the references it is a bug against
    port: str = ""  # the converter it is planted in ("torch", "onnx"); "" for a bug around the engine
    requires: tuple = ()  # the packages its candidate imports (a port's framework)

    @property
    def id(self) -> str:
        return f"{self.port}/{self.layer}:{self.name}" if self.port else f"{self.layer}:{self.name}"

    def missing(self) -> list[str]:
        """The packages of :attr:`requires` that are not installed."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]


GALLERY: list[Mutant] = []

#: The port each module of port mutants plants bugs in; a module is imported the first time its port's
#: mutants are asked for (:func:`mutants`), never with the gallery. A new converter adds its row here.
PORT_MUTANT_MODULES: dict[str, str] = {
    "torch": "scratch_rnn.testing.torch_mutants",
    "onnx": "scratch_rnn.testing.onnx_mutants",
}


def _register(m: Mutant) -> None:
    if any(g.port == m.port and g.layer == m.layer and g.name == m.name for g in GALLERY):
        raise ValueError(f"Mutant {m.id} is registered twice.")
    GALLERY.append(m)


def mutant(layer: str, name: str, description: str, references=("keras", "tf_keras")):
    """Register ``port(engine, config, weights, x, mask, initial_state)`` as a mutant of ``layer``.

    ``engine`` is the correct scratch engine behind the candidate interface
    (:func:`~scratch_rnn.testing.runners.engine_candidate`); the port calls it with
    whatever the buggy port would have computed with.
    """

    def register(port):
        engine = engine_candidate(layer)

        def candidate(config, weights, x, mask=None, initial_state=None):
            return port(engine, config, weights, x, mask, initial_state)

        candidate.__name__ = candidate.__qualname__ = f"mutant {layer}:{name}"
        candidate.__doc__ = description
        _register(Mutant(name, layer, description, candidate, tuple(references)))
        return port

    return register


def patched_mutant(layer: str, name: str, description: str, references=("keras", "tf_keras")):
    """Register ``patch(instance)`` as a mutant of ``layer``: a fresh engine instance running its readable
    ``project``/``step`` with ``patch`` applied to it alone (:func:`readable_engine`), for a bug that cannot
    be planted at the candidate boundary."""

    def register(patch):
        def port(engine, config, weights, x, mask, initial_state):
            return readable_engine(layer, config, weights, patch)(x, mask=mask, initial_state=initial_state)

        mutant(layer, name, description, references)(port)
        return patch

    return register


def layer_mutant(layer: str, name: str, description: str):
    """Register ``port(engine, config, weights, inputs, mask, **call_options)`` as a mutant of the
    non-recurrent ``layer`` (one of :data:`~scratch_rnn.testing.case.CORE_LAYERS`); ``engine`` is the
    correct engine behind that layer's candidate interface
    (:func:`~scratch_rnn.testing.runners.core_engine_candidate`). A bug against Keras 3 only, the
    sweep's one reference for these layers."""

    def register(port):
        engine = core_engine_candidate(layer)

        def candidate(config, weights, inputs, mask=None, **call_options):
            return port(engine, config, weights, inputs, mask, **call_options)

        candidate.__name__ = candidate.__qualname__ = f"mutant {layer}:{name}"
        candidate.__doc__ = description
        _register(Mutant(name, layer, description, candidate, ("keras",)))
        return port

    return register


def port_mutant(port: str, layer: str, name: str, description: str, requires=(), references=("keras",)):
    """Register ``candidate`` (a whole buggy port behind ``layer``'s candidate interface, recurrent or not)
    as a mutant of the converter ``port``; ``requires`` names the packages it imports when called. Called
    from the port's module in :data:`PORT_MUTANT_MODULES`."""
    if port not in PORT_MUTANT_MODULES:
        raise ValueError(f"Argument `port` must be one of {sorted(PORT_MUTANT_MODULES)}, got {port!r}.")

    def register(candidate):
        def named(*args, **kwargs):
            return candidate(*args, **kwargs)

        named.__name__ = named.__qualname__ = f"mutant {port}/{layer}:{name}"
        named.__doc__ = description
        _register(Mutant(name, layer, description, named, tuple(references), port, tuple(requires)))
        return candidate

    return register


def ports() -> list[str]:
    """The converters that have port mutants: ``--port``'s choices for ``--mutants``."""
    return sorted(PORT_MUTANT_MODULES)


def mutants(layer: str | None = None, reference: str = "keras", port: str | None = None) -> list[Mutant]:
    """The gallery (or the mutants of one ``layer``; ``"core"``: of the non-recurrent layers; ``"all"``
    or None: every one) that are bugs against ``reference``.

    ``port`` None: the bugs around the engine (the gallery proper); a port's name (``"torch"``): the bugs
    planted in that converter, whether or not its framework is installed (see :meth:`Mutant.missing`)."""
    if port is not None:
        if port not in PORT_MUTANT_MODULES:
            raise ValueError(f"Argument `port` must be None or one of {ports()}, got {port!r}.")
        importlib.import_module(PORT_MUTANT_MODULES[port])  # registers them, once
    return [
        m
        for m in GALLERY
        if (layer in (None, "all", m.layer) or (layer == "core" and m.layer in CORE_LAYERS))
        and reference in m.references
        and m.port == (port or "")
    ]


# --- helpers: how a buggy port sees the weights, the outputs, the steps ------------------------


def row_major(keras_kernel: np.ndarray) -> np.ndarray:
    """What the engine must be given so that its seed-layout kernel is ``keras_kernel`` *reshaped*, not transposed.

    A port storing ``Wx (G*units, input_dim)`` that loads Keras's ``kernel (input_dim, G*units)``
    with ``reshape`` reads the buffer in row-major order: the shapes always fit, and when
    ``input_dim == G*units`` the result is the untransposed kernel (the classic bug).
    """
    rows, cols = keras_kernel.shape  # (F, G*U) or (U, G*U)
    return keras_kernel.reshape(cols, rows).T  # engine transposes -> reshape(cols, rows)


def permute_gates(weights: list, gates: int, order) -> list:
    """Every weight's gate blocks (along the last axis, ``G*units`` wide) in ``order``."""
    return [np.concatenate([np.split(w, gates, axis=-1)[k] for k in order], axis=-1) for w in weights]


def _split_outputs(out, return_state: bool):
    """``(output, states)`` of a layer's return value."""
    return (out[0], list(out[1:])) if return_state else (out, [])


def _join_outputs(output, states: list):
    return [output, *states] if states else output


def readable_engine(layer: str, config: dict, weights: list, patch):
    """A fresh engine layer running its readable ``project``/``step``, with ``patch(instance)`` applied to it alone."""
    scratch = from_config(layer, config)
    scratch.set_weights(weights)
    patch(scratch)
    scratch.fast = False  # this instance runs its readable step, patched
    return scratch


def keras2_hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """Keras 2's ``hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)`` (Keras 3's is ``relu6(x + 3) / 6``)."""
    return np.clip(x * x.dtype.type(0.2) + x.dtype.type(0.5), 0, 1)


def _kernel_not_transposed(engine, config, weights, x, mask, initial_state):
    """Keras's ``kernel`` loaded with reshape (:func:`row_major`); a layout bug of every recurrent layer."""
    return engine(config, [row_major(weights[0]), *weights[1:]], x, mask, initial_state)


def _recurrent_kernel_not_transposed(engine, config, weights, x, mask, initial_state):
    """Keras's ``recurrent_kernel`` loaded with reshape (:func:`row_major`)."""
    return engine(config, [weights[0], row_major(weights[1]), *weights[2:]], x, mask, initial_state)


# --- SimpleRNN -----------------------------------------------------------------------------------

mutant(
    "SimpleRNN",
    "kernel-not-transposed",
    "loads Keras's kernel (input_dim, units) into Wx (units, input_dim) with reshape, not transpose",
)(_kernel_not_transposed)
mutant(
    "SimpleRNN",
    "recurrent-kernel-not-transposed",
    "copies Keras's recurrent_kernel (units, units) into Wh as is: Wh = recurrent_kernel, not its transpose",
)(_recurrent_kernel_not_transposed)


@mutant("SimpleRNN", "bias-dropped", "never loads the bias: b stays zero")
def _simple_rnn_bias_dropped(engine, config, weights, x, mask, initial_state):
    return engine(config, [weights[0], weights[1], *[np.zeros_like(w) for w in weights[2:]]], x, mask, initial_state)


@mutant("SimpleRNN", "go-backwards-ignored", "accepts go_backwards but always runs t = 0 .. T-1")
def _simple_rnn_go_backwards_ignored(engine, config, weights, x, mask, initial_state):
    return engine({**config, "go_backwards": False}, weights, x, mask, initial_state)


@mutant(
    "SimpleRNN",
    "backwards-sequence-in-input-order",
    "with go_backwards, flips the returned sequence back to input order (Keras returns processing order)",
)
def _simple_rnn_backwards_sequence_in_input_order(engine, config, weights, x, mask, initial_state):
    out = engine(config, weights, x, mask, initial_state)
    if not (config["go_backwards"] and config["return_sequences"]):
        return out
    y, states = _split_outputs(out, config["return_state"])
    return _join_outputs(np.flip(y, axis=1).copy(), states)  # (B, T, U), t = 0 first


@mutant("SimpleRNN", "mask-ignored", "accepts a mask but runs every step")
def _simple_rnn_mask_ignored(engine, config, weights, x, mask, initial_state):
    return engine(config, weights, x, None, initial_state)


@mutant(
    "SimpleRNN",
    "masked-output-repeats-initial-state",
    "starts the 'previous output' at the initial state: masked steps before the first "
    "unmasked one output h0 instead of zeros",
)
def _simple_rnn_masked_output_repeats_initial_state(engine, config, weights, x, mask, initial_state):
    out = engine(config, weights, x, mask, initial_state)
    if mask is None or initial_state is None or config["zero_output_for_mask"]:
        return out  # h0 = 0, or masked outputs zeroed anyway
    y, states = _split_outputs(out, config["return_state"])
    kept = np.asarray(mask, bool)  # (B, T)
    if config["go_backwards"]:
        kept = kept[:, ::-1]  # processing order
    before_first = np.cumsum(kept, axis=1) == 0  # (B, T): no unmasked step yet
    h0 = np.asarray(initial_state[0], y.dtype)  # (B, U)
    if config["return_sequences"]:
        y = np.where(before_first[:, :, None], h0[:, None, :], y)  # (B, T, U)
    else:
        y = np.where(before_first[:, -1:], h0, y)  # (B, U): rows masked at every step
    return _join_outputs(y, states)


@mutant(
    "SimpleRNN",
    "keras2-hard-sigmoid",
    "implements hard_sigmoid as Keras 2's clip(0.2 x + 0.5, 0, 1) instead of Keras 3's relu6(x + 3) / 6",
    references=("keras",),
)
def _simple_rnn_keras2_hard_sigmoid(engine, config, weights, x, mask, initial_state):
    # clip(0.2 a + 0.5) = relu6(1.2 a + 3) / 6, and a = x @ kernel + h @ recurrent_kernel + bias is linear
    # in the weights: Keras 3's hard_sigmoid on weights scaled by 1.2 is exactly Keras 2's on the originals.
    if config["activation"] == "hard_sigmoid":
        weights = [w * w.dtype.type(1.2) for w in weights]
    return engine(config, weights, x, mask, initial_state)


# --- LSTM ----------------------------------------------------------------------------------------

mutant(
    "LSTM",
    "kernel-not-transposed",
    "loads Keras's kernel (input_dim, 4*units) into Wx (4*units, input_dim) with reshape, not transpose",
)(_kernel_not_transposed)


@mutant("LSTM", "gates-i-f-swapped", "reads the gate blocks as f, i, c, o (Keras's order is i, f, c, o)")
def _lstm_gates_i_f_swapped(engine, config, weights, x, mask, initial_state):
    return engine(config, permute_gates(weights, 4, [1, 0, 2, 3]), x, mask, initial_state)


@mutant("LSTM", "gates-c-o-swapped", "reads the gate blocks as i, f, o, c (Keras's order is i, f, c, o)")
def _lstm_gates_c_o_swapped(engine, config, weights, x, mask, initial_state):
    return engine(config, permute_gates(weights, 4, [0, 1, 3, 2]), x, mask, initial_state)


@mutant(
    "LSTM",
    "states-c-h-order",
    "keeps its states as (c, h), TF1's LSTMStateTuple order: initial_state and returned states "
    "in the wrong order (Keras's is [h, c])",
)
def _lstm_states_c_h_order(engine, config, weights, x, mask, initial_state):
    out = engine(config, weights, x, mask, None if initial_state is None else initial_state[::-1])
    y, states = _split_outputs(out, config["return_state"])
    return _join_outputs(y, states[::-1])


@mutant(
    "LSTM",
    "first-step-returned",
    "without return_sequences, returns outputs[:, 0] (the first step processed) instead of the last",
)
def _lstm_first_step_returned(engine, config, weights, x, mask, initial_state):
    if config["return_sequences"]:
        return engine(config, weights, x, mask, initial_state)
    out = engine({**config, "return_sequences": True}, weights, x, mask, initial_state)
    y, states = _split_outputs(out, config["return_state"])
    return _join_outputs(y[:, 0].copy(), states)  # (B, U)


@patched_mutant(
    "LSTM",
    "keras2-hard-sigmoid",
    "implements hard_sigmoid as Keras 2's clip(0.2 x + 0.5, 0, 1) instead of Keras 3's relu6(x + 3) / 6",
    references=("keras",),
)
def _lstm_keras2_hard_sigmoid(lstm):
    # h = o * activation(c) is not linear in the weights (as SimpleRNN's is): swap the function itself
    for attribute in ("activation", "recurrent_activation"):
        if activations.name_of(getattr(lstm, attribute)) == "hard_sigmoid":
            setattr(lstm, attribute, keras2_hard_sigmoid)


# --- GRU -----------------------------------------------------------------------------------------

mutant(
    "GRU",
    "recurrent-kernel-not-transposed",
    "loads Keras's recurrent_kernel (units, 3*units) into Wh (3*units, units) with reshape, not transpose",
)(_recurrent_kernel_not_transposed)


@mutant(
    "GRU",
    "recurrent-bias-row-dropped",
    "with reset_after, uses only row 0 of Keras's bias (2, 3*units): the recurrent bias bh is lost",
)
def _gru_recurrent_bias_row_dropped(engine, config, weights, x, mask, initial_state):
    if config["use_bias"] and config["reset_after"]:
        bias = weights[2].copy()
        bias[1] = 0  # (2, 3U): input row kept, recurrent row gone
        weights = [weights[0], weights[1], bias]
    return engine(config, weights, x, mask, initial_state)


@mutant("GRU", "gates-z-r-swapped", "reads the gate blocks as r, z, h (Keras's order is z, r, h)")
def _gru_gates_z_r_swapped(engine, config, weights, x, mask, initial_state):
    return engine(config, permute_gates(weights, 3, [1, 0, 2]), x, mask, initial_state)


@mutant(
    "GRU",
    "reset-after-flipped",
    "applies the reset gate on the other side of the matmul than reset_after says (the bias "
    "rows summed or padded to fit)",
)
def _gru_reset_after_flipped(engine, config, weights, x, mask, initial_state):
    if config["use_bias"]:
        bias = weights[2]
        if config["reset_after"]:
            bias = bias[0] + bias[1]  # (2, 3U) -> (3U,): exact for z and r
        else:
            bias = np.stack([bias, np.zeros_like(bias)])  # (3U,) -> (2, 3U): exact for z and r
        weights = [weights[0], weights[1], bias]
    return engine({**config, "reset_after": not config["reset_after"]}, weights, x, mask, initial_state)


def _gru_step_update_inverted(self, z_t, states):
    """GRU's step, written with ``h_t = (1 - z_t) * h_{t-1} + z_t * hh_t``
    (Keras: ``z_t * h_{t-1} + (1 - z_t) * hh_t``)."""
    h = states[0]  # (B, U)
    u = self.units
    x_z, x_r, x_h = np.split(z_t, 3, axis=-1)  # 3 x (B, U)
    if self.reset_after:
        inner = h @ self.Wh.T  # (B, 3U)
        if self.use_bias:
            inner = inner + self.b[1]
        h_z, h_r, h_h = np.split(inner, 3, axis=-1)
        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        hh = self.activation(x_h + r * h_h)
    else:
        inner = h @ self.Wh[: 2 * u].T  # (B, 2U)
        z = self.recurrent_activation(x_z + inner[:, :u])
        r = self.recurrent_activation(x_r + inner[:, u:])
        hh = self.activation(x_h + (r * h) @ self.Wh[2 * u :].T)
    h = (1 - z) * h + z * hh  # the bug
    return h, [h]


@patched_mutant(
    "GRU", "update-inverted", "writes the update as h = (1 - z) * h + z * hh instead of z * h + (1 - z) * hh"
)
def _gru_update_inverted(gru):
    gru.step = types.MethodType(_gru_step_update_inverted, gru)


@mutant(
    "GRU",
    "zero-output-for-mask-ignored",
    "ignores zero_output_for_mask: masked steps always repeat the previous output",
)
def _gru_zero_output_for_mask_ignored(engine, config, weights, x, mask, initial_state):
    return engine({**config, "zero_output_for_mask": False}, weights, x, mask, initial_state)


# --- Bidirectional -------------------------------------------------------------------------------


def _directions(engine, config, weights, x, mask, initial_state):
    """``(y_fw, y_bw, forward_states, backward_states)``: the engine's two directions, unmerged,
    ``y_bw`` in time order."""
    y_fw, y_bw, *states = engine({**config, "merge_mode": None}, weights, x, mask, initial_state)
    half = len(states) // 2
    return y_fw, y_bw, states[:half], states[half:]


def _merge(merge_mode, y_fw, y_bw, states: list):
    """Keras's Bidirectional merge of the two directions, then the states."""
    if merge_mode == "concat":
        outputs = [np.concatenate([y_fw, y_bw], axis=-1)]  # (..., 2U)
    elif merge_mode == "sum":
        outputs = [y_fw + y_bw]
    elif merge_mode == "ave":
        outputs = [(y_fw + y_bw) / 2]
    elif merge_mode == "mul":
        outputs = [y_fw * y_bw]
    else:
        outputs = [y_fw, y_bw]
    outputs += states
    return outputs[0] if len(outputs) == 1 else outputs


def _returns_sequences(config) -> bool:
    return config["layer"]["config"]["return_sequences"]


@mutant(
    "Bidirectional",
    "backward-sequence-not-reversed",
    "merges the backward layer's sequence as it comes, in processing order, without flipping it back",
)
def _bidirectional_backward_sequence_not_reversed(engine, config, weights, x, mask, initial_state):
    y_fw, y_bw, fw_states, bw_states = _directions(engine, config, weights, x, mask, initial_state)
    if _returns_sequences(config):
        y_bw = np.flip(y_bw, axis=1).copy()  # (B, T, U) back in processing order
    return _merge(config["merge_mode"], y_fw, y_bw, fw_states + bw_states)


@mutant(
    "Bidirectional",
    "backward-layer-runs-forwards",
    "copies the wrapped layer for the backward direction without setting go_backwards: "
    "both directions run forwards (the backward output is still flipped)",
)
def _bidirectional_backward_layer_runs_forwards(engine, config, weights, x, mask, initial_state):
    y_fw, _, fw_states, _ = _directions(engine, config, weights, x, mask, initial_state)
    n = len(weights) // 2
    bw_initial = None if initial_state is None else list(initial_state[len(initial_state) // 2 :]) * 2
    # The backward weights in the forward slot: that direction's output is the buggy backward layer's.
    y_bw, _, bw_states, _ = _directions(engine, config, weights[n:] * 2, x, mask, bw_initial)
    if _returns_sequences(config):
        y_bw = np.flip(y_bw, axis=1).copy()  # flipped as if it had run backwards
    return _merge(config["merge_mode"], y_fw, y_bw, fw_states + bw_states)


# --- non-recurrent layers ------------------------------------------------------------------------


@layer_mutant(
    "Dense", "kernel-not-transposed", "loads Keras's kernel (input_dim, units) into W (units, input_dim) with reshape"
)
def _dense_kernel_not_transposed(engine, config, weights, x, mask, **options):
    return engine(config, [row_major(weights[0]), *weights[1:]], x, mask, **options)


@layer_mutant(
    "Conv1D",
    "kernel-read-as-filters-in-k",
    "stores the kernel as (filters, in, kernel_size), PyTorch's layout, and loads Keras's (kernel_size, in, "
    "filters) into it with reshape",
)
def _conv1d_kernel_read_as_filters_in_k(engine, config, weights, x, mask, **options):
    k, c, f = weights[0].shape
    kernel = weights[0].reshape(f, c, k).transpose(2, 1, 0)  # what the port computes with, in Keras's layout
    return engine(config, [np.ascontiguousarray(kernel), *weights[1:]], x, mask, **options)


@layer_mutant(
    "Conv1D",
    "causal-padding-on-the-right",
    "pads causal convolutions with dilation * (kernel_size - 1) zeros after the sequence instead of before it",
)
def _conv1d_causal_padding_on_the_right(engine, config, weights, x, mask, **options):
    if config["padding"] != "causal":
        return engine(config, weights, x, mask, **options)
    (k,), (d,) = np.atleast_1d(config["kernel_size"]), np.atleast_1d(config["dilation_rate"])
    steps_axis = 1 if config["data_format"] == "channels_last" else 2
    pad = [(0, 0)] * 3
    pad[steps_axis] = (0, d * (k - 1))  # (B, L + d(k-1), C): zeros after the last step
    return engine({**config, "padding": "valid"}, weights, np.pad(x, pad), mask, **options)


@layer_mutant(
    "LayerNormalization",
    "variance-ddof-1",
    "normalizes by the unbiased variance (ddof=1, torch.var's default) where Keras uses the biased one",
)
def _layer_normalization_variance_ddof_1(engine, config, weights, x, mask, **options):
    axes = config["axis"] if isinstance(config["axis"], (list, tuple)) else [config["axis"]]
    n = int(np.prod([x.shape[a] for a in axes]))
    if n == 1:
        return engine(config, weights, x, mask, **options)  # ddof=1 over one element: the port's 0/0 aside
    # var_1 = var * n / (n - 1): the engine on s * x (s^2 = n / (n - 1)) normalizes s * (x - mean) by
    # sqrt(var_1 + eps); taking out s and putting back the shift (the engine's output on zeros) gives the bug
    s = x.dtype.type(np.sqrt(n / (n - 1)))
    shift = engine(config, weights, np.zeros_like(x), mask, **options)  # beta, broadcast (0 without center)
    return (engine(config, weights, x * s, mask, **options) - shift) / s + shift


@layer_mutant(
    "BatchNormalization",
    "gamma-beta-swapped",
    "reads Keras's weights as beta, gamma, ... (Keras's order is gamma, beta)",
)
def _batch_normalization_gamma_beta_swapped(engine, config, weights, x, mask, **options):
    if config["center"] and config["scale"]:
        weights = [weights[1], weights[0], *weights[2:]]
    return engine(config, weights, x, mask, **options)


@layer_mutant(
    "Attention", "value-mask-ignored", "applies the query mask but lets masked values take part in the softmax"
)
def _attention_value_mask_ignored(engine, config, weights, inputs, mask, **options):
    if mask is not None:
        mask = [mask[0], None, *mask[2:]]
    return engine(config, weights, inputs, mask, **options)


@layer_mutant(
    "GlobalAveragePooling1D", "mask-ignored", "averages over every step, masked ones included (Keras: the kept ones)"
)
def _global_average_pooling_mask_ignored(engine, config, weights, x, mask, **options):
    return engine(config, weights, x, None, **options)


@layer_mutant("Dot", "normalize-ignored", "accepts normalize=True but takes the dot product of the raw vectors")
def _dot_normalize_ignored(engine, config, weights, inputs, mask, **options):
    return engine({**config, "normalize": False}, weights, inputs, mask, **options)


# --- the kill table ------------------------------------------------------------------------------


@dataclass
class Kill:
    """How one mutant fared against :func:`verify`."""

    mutant: Mutant
    dtype: str
    seed: int
    killed: bool
    cases: int | None  # cases compared until the first failing one, that one included (None: survived)
    examples: int  # cases compared in all
    seconds: float
    detail: str = ""  # the failure's first line: the tensor that differed, or what the candidate raised
    raised: bool = False  # killed by an exception rather than by a value mismatch
    failure: str = ""  # the whole failure, with its reproducer
    not_run: str = ""  # why it was not run (a package it requires is missing); then neither killed nor survived


def kill(
    m: Mutant,
    max_examples: int = 100,
    seed: int = DEFAULT_SEED,
    dtype: str = "float32",
    reference: str = "keras",
    precision: str = "float32",
) -> Kill:
    """Run one mutant through :func:`verify` against ``reference`` (no shrinking: the first failing case is the kill).
    ``precision`` loosens the float32 tolerances for reduced-precision products (docs/precision.md): a bug
    must still be caught at ``"tf32"``.

    The reference is Keras 3 unless asked otherwise, whatever ``$SCRATCH_RNN_REFERENCE`` says:
    the gallery's bugs are bugs against the Keras the engine follows.
    """
    from scratch_rnn.testing.verify import verify

    missing = m.missing()
    if missing:
        return Kill(
            m, np.dtype(dtype).name, seed, killed=False, cases=None, examples=0, seconds=0.0,
            not_run=f"not run: {', '.join(missing)} not installed",
        )  # fmt: skip
    seen = {"compared": 0, "first": None}

    def on_example(result):
        if result.skipped:
            return
        seen["compared"] += 1
        if not result.ok and seen["first"] is None:
            seen["first"] = seen["compared"]

    start = time.perf_counter()
    report = verify(
        m.candidate,
        layer=m.layer,
        max_examples=max_examples,
        seed=seed,
        dtype=dtype,
        reference=reference,
        on_example=on_example,
        shrink_seconds=0,
        precision=precision,
    )
    seconds = time.perf_counter() - start
    row = Kill(
        m,
        report.dtype,
        report.seed,
        killed=bool(report.failures),
        cases=seen["first"],
        examples=seen["compared"],
        seconds=seconds,
    )
    if report.failures:
        failure = report.failures[0]
        lines = failure.message.splitlines()
        row.detail = lines[1].strip() if len(lines) > 1 else lines[0]
        row.raised = "the candidate raised" in failure.message
        row.failure = str(failure)
    return row


def kill_table(
    max_examples: int = 100,
    seed: int | None = DEFAULT_SEED,
    dtype: str = "float32",
    layer: str | None = None,
    on_row=None,
    reference: str = "keras",
    port: str | None = None,
    precision: str = "float32",
) -> list[Kill]:
    """Every mutant (of ``layer``, default all) run through :func:`verify`; one :class:`Kill` each.

    ``seed=None`` draws one seed for the whole table (each row records it). The default is a
    fixed seed: the rarest bug here (``masked-output-repeats-initial-state``) took 5 to 94
    cases to show at seeds 1-20, so at a random seed it can survive 100 cases.
    ``on_row(row)`` is called as each row is done (progress bars). ``port`` (``"torch"``) runs the bugs
    planted in that converter instead (:func:`mutants`); a row whose framework is missing is not run.
    """
    seed = random.getrandbits(32) if seed is None else int(seed)
    rows = []
    for m in mutants(layer, reference, port):
        rows.append(
            kill(m, max_examples=max_examples, seed=seed, dtype=dtype, reference=reference, precision=precision)
        )
        if on_row is not None:
            on_row(rows[-1])
    return rows
