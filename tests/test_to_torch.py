"""The Keras → PyTorch port (``scratch_rnn.to_torch``), proven by the harness: every layer swept against real
Keras through the port's candidates (masks and initial states on, float32 and float64), the model zoo through
``verify_model``, every refusal by name, every converter mutant killed, the fused and stepwise paths equal, and
``import scratch_rnn`` still without torch."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from helpers import assert_outputs_close, randomize, require

import scratch_rnn
from scratch_rnn.testing.case import CORE_LAYERS, LAYERS

torch = require("torch")

from scratch_rnn.ports.to_torch import UnsupportedLayerError, to_torch  # noqa: E402
from scratch_rnn.testing import torch_candidates  # noqa: E402

DTYPES = ("float32", "float64")


def run(module, *arrays, **kwargs):
    """A converted module called on NumPy arrays (None passes), its outputs as NumPy arrays."""
    args = [None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    with torch.no_grad():
        out = module(*args, **kwargs)
    return [o.numpy() for o in out] if isinstance(out, list) else out.numpy()


# --- the harness's sweeps, with the port as the candidate ----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", LAYERS)
def test_the_port_passes_the_recurrent_sweep(keras, layer, dtype):
    from scratch_rnn.testing.verify import verify

    report = verify(torch_candidates.layer, layer=layer, max_examples=20, seed=13, dtype=dtype)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples >= 15 and report.max_margin <= 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", CORE_LAYERS)
def test_the_port_passes_the_core_layer_sweep(keras, layer, dtype):
    from scratch_rnn.testing.verify import verify

    report = verify(torch_candidates.core_layer, layer=layer, max_examples=10, seed=13, dtype=dtype)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples >= 5 and report.max_margin <= 1


def test_a_port_with_a_planted_difference_fails_the_sweep(keras):
    """The sweep catches a port off by one weight entry (the check behind the green rows above)."""
    from scratch_rnn.testing.verify import verify

    def off(scratch):
        module = to_torch(scratch)
        with torch.no_grad():
            module.weight("weight_hh_l0")[0, 0] += 0.01
        return module

    report = verify(torch_candidates.for_layer("LSTM", off), layer="LSTM", max_examples=20, seed=13, shrink_seconds=0)
    assert not report.ok and report.max_margin > 1


# --- the model zoo through verify_model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_files(keras, tmp_path_factory):
    """The Keras 3 zoo models (tests/test_model_zoo.py's builders), random weights, saved as .keras."""
    import test_model_zoo as zoo

    folder = tmp_path_factory.mktemp("torch_zoo")
    rng = np.random.default_rng(20261126)
    files = {}
    for name, build in zoo.KERAS3.items():
        model, _ = build(keras, rng)
        zoo.randomize_model(model, rng)
        files[name] = folder / f"{name}.keras"
        model.save(files[name])
    return files


ZOO = [
    "classifier", "classifier_sequential", "seq2seq", "autoencoder", "conv_gru_valid", "conv_gru_causal",
    "two_inputs", "masked_concat", "attention", "additive_attention", "stacked_cells_norm",
]  # fmt: skip
ZOO_FLOAT64 = ("classifier", "seq2seq", "masked_concat", "stacked_cells_norm")


@pytest.mark.parametrize(
    "name, dtype", [(n, "float32") for n in ZOO] + [(n, "float64") for n in ZOO_FLOAT64], ids=lambda v: str(v)
)
def test_the_port_passes_verify_model_on_the_zoo(zoo_files, name, dtype):
    from scratch_rnn.testing.model_verify import verify_model

    candidate = torch_candidates.model if dtype == "float32" else torch_candidates.model_float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's warning of a softmax over one score (Attention on one step)
        report = verify_model(zoo_files[name], candidate, max_examples=8, seed=1, dtype=dtype)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples > 0 and report.max_margin <= 1


def test_verify_model_catches_a_port_with_one_wrong_weight(zoo_files):
    from scratch_rnn.testing.model_verify import verify_model

    def one_wrong(model_file, inputs):
        module = to_torch(model_file)
        with torch.no_grad():
            [p for p in module.parameters() if p.dim() == 2][-1][0, 0] += 0.01  # the Dense kernel
            return module([torch.from_numpy(x) for x in inputs][0]).numpy()

    report = verify_model(zoo_files["classifier"], one_wrong, max_examples=10, seed=1, shrink_seconds=0)
    assert not report.ok and report.max_margin > 1


def test_a_file_path_converts_as_the_loaded_model(zoo_files):
    path = zoo_files["two_inputs"]
    engine = scratch_rnn.load_model(path)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (3, *(d or 5 for d in t.shape[1:]))).astype("float32") for t in engine.inputs]
    expected = engine(inputs)
    with torch.no_grad():
        actual = to_torch(str(path))([torch.from_numpy(x) for x in inputs]).numpy()
    assert_outputs_close(actual, expected, context="to_torch(path)")


def test_a_live_keras_model_converts_through_from_keras(keras, rng):
    model = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.GRU(4, return_sequences=True), keras.layers.Dense(2)]
    )
    randomize(model, rng)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    assert_outputs_close(run(to_torch(model), x), model(x), context="to_torch(a Keras model)")


# --- the two recurrent paths ---------------------------------------------------------------------------------

FUSABLE = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu"}),
    ("LSTM", {}),
    ("LSTM", {"use_bias": False}),
    ("GRU", {}),
    ("GRU", {"use_bias": False}),
]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("name, options", FUSABLE, ids=[f"{n}-{o}" for n, o in FUSABLE])
def test_the_fused_and_the_stepwise_paths_agree(name, options, go_backwards, rng):
    """PyTorch's nn.RNN/LSTM/GRU and the port's own loop, on the same parameters, return the same outputs
    and states (float64: to rounding), with and without an initial state; square and rectangular kernels."""
    for features, units in ((4, 4), (3, 5)):
        layer = getattr(scratch_rnn, name)(
            units, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype="float64", **options
        )
        layer.build((None, None, features))
        randomize(layer, rng)
        fused, stepwise = to_torch(layer), to_torch(layer, fused=False)
        assert fused.fused and not stepwise.fused
        x = rng.standard_normal((3, 6, features))
        states = [rng.standard_normal((3, units)) for _ in range(2 if name == "LSTM" else 1)]
        for initial in (None, states):
            expected = run(stepwise, x, None, initial_state=initial and [torch.from_numpy(s) for s in initial])
            actual = run(fused, x, None, initial_state=initial and [torch.from_numpy(s) for s in initial])
            assert_outputs_close(actual, expected, context=f"{name} fused vs stepwise", tol=1e-12)
            assert_outputs_close(actual, layer(x, initial_state=initial), context=f"{name} vs engine", tol=1e-12)


def test_the_agreement_check_fails_on_a_planted_difference(rng):
    layer = scratch_rnn.GRU(4, return_sequences=True, dtype="float64")
    layer.build((None, None, 3))
    randomize(layer, rng)
    fused, stepwise = to_torch(layer), to_torch(layer, fused=False)
    with torch.no_grad():
        stepwise.weight("bias_hh_l0")[5] += 1e-9  # one entry of b_hn, the bias inside r * (...)
    x = rng.standard_normal((2, 5, 3))
    with pytest.raises(AssertionError, match="differ"):
        assert_outputs_close(run(fused, x), run(stepwise, x), tol=1e-12)


def test_a_mask_runs_the_stepwise_loop_and_no_mask_the_fused_module(rng):
    layer = scratch_rnn.LSTM(3, return_sequences=True)
    layer.build((None, None, 2))
    randomize(layer, rng)
    module = to_torch(layer)
    calls = []
    module.rnn.register_forward_hook(lambda *_: calls.append(1))
    x = rng.standard_normal((2, 5, 2)).astype("float32")
    mask = np.array([[False, True, True, False, True], [True] * 5])
    assert_outputs_close(run(module, x, mask), layer(x, mask=mask), context="masked")
    assert calls == []
    assert_outputs_close(run(module, x), layer(x), context="unmasked")
    assert calls == [1]


@pytest.mark.parametrize(
    "name, options",
    [("SimpleRNN", {"activation": "sigmoid"}), ("LSTM", {"recurrent_activation": "hard_sigmoid"}),
     ("GRU", {"reset_after": False}), ("GRU", {"activation": "relu"})],
)  # fmt: skip
def test_what_pytorch_cannot_fuse_runs_stepwise(name, options, rng):
    """Non-default activations and GRU reset_after=False: computed (not refused) by the stepwise loop."""
    layer = getattr(scratch_rnn, name)(4, return_sequences=True, **options)
    layer.build((None, None, 3))
    randomize(layer, rng)
    module = to_torch(layer)
    assert not module.fused
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    assert_outputs_close(run(module, x), layer(x), context=f"{name} {options}")


# --- a real module: parameters, dtypes ------------------------------------------------------------------------


def test_the_module_holds_real_parameters_that_move_and_cast(rng):
    model = scratch_rnn.Sequential(
        [scratch_rnn.Input((None, 3)), scratch_rnn.Bidirectional(scratch_rnn.GRU(4)), scratch_rnn.Dense(2)]
    )
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    module = to_torch(model)
    params = list(module.parameters())
    assert params and all(isinstance(p, torch.nn.Parameter) for p in params)
    assert sum(p.numel() for p in params) == model.count_params()  # GRU: b_ih, b_hh are Keras's two bias rows
    assert not module.training
    x = rng.standard_normal((2, 5, 3))
    double = module.double()
    assert all(p.dtype == torch.float64 for p in double.parameters())
    out = run(double, x)
    assert out.dtype == np.float64
    assert_outputs_close(out.astype(np.float32), model(x.astype(np.float32)), context=".double()")


# --- refusals, by name ----------------------------------------------------------------------------------------


def test_stateful_is_refused_by_name():
    layer = scratch_rnn.LSTM(3, stateful=True)
    layer.build((2, 4, 3))
    with pytest.raises(UnsupportedLayerError, match="'lstm.*stateful=True"):
        to_torch(layer)
    bidirectional = scratch_rnn.Bidirectional(scratch_rnn.GRU(2, stateful=True))
    bidirectional.build((2, 4, 3))
    with pytest.raises(UnsupportedLayerError, match="stateful=True"):
        to_torch(bidirectional)


def test_a_layer_without_a_conversion_is_refused_by_name():
    cell = scratch_rnn.LSTMCell(3)
    cell.build((None, 2))
    with pytest.raises(UnsupportedLayerError, match=r"\(LSTMCell\): to_torch has no conversion"):
        to_torch(cell)


@pytest.mark.parametrize(
    "model, kwargs, argument",
    [(42, {}, "model"), (scratch_rnn.Sequential([scratch_rnn.Dense(2)]), {}, "model"), (None, {"fused": "yes"},
     "fused")],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name(model, kwargs, argument):
    if model is None:
        model = scratch_rnn.Dense(2)
        model.build((None, 3))
    with pytest.raises(ValueError, match=f"`{argument}`"):
        to_torch(model, **kwargs)


def test_a_wrong_initial_state_is_refused_by_name(rng):
    layer = scratch_rnn.LSTM(3)
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match="`initial_state` must hold 2"):
        run(to_torch(layer), rng.standard_normal((1, 4, 2)), None, initial_state=[torch.zeros(1, 3)])


def test_a_config_the_candidate_cannot_place_is_refused_by_name():
    with pytest.raises(ValueError, match="`config`"):
        torch_candidates.layer({"name": "my_layer"}, [], np.zeros((1, 2, 3)))


# --- the converter's mutants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_torch_port_mutant_is_killed(keras, dtype):
    from scratch_rnn.testing.mutants import kill_table

    rows = kill_table(max_examples=100, dtype=dtype, port="torch")
    assert {r.mutant.name for r in rows} == {
        "reorder-skipped", "b-hh-dropped", "forget-cell-swapped", "backward-not-re-reversed",
        "go-backwards-output-flipped",
    }  # fmt: skip
    for row in rows:
        assert row.killed and not row.raised and not row.not_run, (row.mutant.id, row.detail)


def test_port_mutants_join_only_when_asked_for():
    from scratch_rnn.testing.mutants import mutants

    assert all(not m.port for m in mutants()) and all(m.port == "torch" for m in mutants(port="torch"))
    assert all(m.requires == ("torch",) and m.id.startswith("torch/") for m in mutants(port="torch"))
    with pytest.raises(ValueError, match="`port`"):
        mutants(port="tensorflow")


def test_a_mutant_whose_framework_is_missing_is_not_run(monkeypatch, capsys, keras):
    """Its row says why; the gallery does not fail for it, but asking for it (--port) exits 2."""
    from scratch_rnn.cli import main
    from scratch_rnn.testing.mutants import Mutant, kill, mutants

    absent = Mutant("x", "GRU", "a bug", lambda *a, **k: None, ("keras",), "torch", ("no_such_package_h1",))
    row = kill(absent, max_examples=5)
    assert not row.killed and row.not_run == "not run: no_such_package_h1 not installed" and row.examples == 0
    monkeypatch.setattr(Mutant, "missing", lambda self: ["torch"] if self.port else [])
    assert main(["verify", "--mutants", "--port", "torch", "--dtype", "float32", "--examples", "3"]) == 2
    out = capsys.readouterr()
    assert "not run: torch not installed" in out.out and "pip install 'scratch-rnn[ports]'" in out.err
    assert len(mutants(port="torch")) == 5


# --- the command line ----------------------------------------------------------------------------------------


def test_verify_port_torch_sweeps_the_port(keras, capsys):
    from scratch_rnn.cli import main

    assert main(["verify", "--port", "torch", "--layer", "Bidirectional", "--dtype", "float64", "--examples", "5"]) == 0
    assert "to_torch" in capsys.readouterr().out


def test_verify_port_torch_runs_a_model(zoo_files, capsys):
    from scratch_rnn.cli import main

    code = main(["verify", "--port", "torch", "--model", str(zoo_files["seq2seq"]), "--examples", "4"])
    assert code == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "to_torch vs Keras" in out and "model float64" in out and "All cases agree with Keras." in out


def test_verify_port_with_a_candidate_is_refused(keras, capsys):
    from scratch_rnn.cli import main

    assert main(["verify", "--port", "torch", "--candidate", "json:loads", "--layer", "GRU"]) == 2
    assert "--port names the candidates" in capsys.readouterr().err


def test_verify_mutants_port_torch_prints_the_kill_table(keras, capsys):
    from scratch_rnn.cli import main

    assert main(["verify", "--mutants", "--port", "torch", "--dtype", "float32", "--layer", "GRU"]) == 0
    out = capsys.readouterr().out
    assert "torch/reorder-skipped" in out and "torch/b-hh-dropped" in out and "All 2 mutants killed" in out


# --- no torch on import --------------------------------------------------------------------------------------


def test_importing_scratch_rnn_and_the_port_does_not_import_torch():
    code = (
        "import sys, scratch_rnn, scratch_rnn.ports.to_torch, scratch_rnn.ports.torch_core; "
        "assert callable(scratch_rnn.to_torch); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stdout + result.stderr
