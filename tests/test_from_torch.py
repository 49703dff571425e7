"""from_torch: PyTorch modules -> scratch models computing what PyTorch computes (issue #13, item 2).

Every case runs the real PyTorch module (``eval()``) on random non-symmetric weights and biases (uniform in
[-0.8, 0.8], so gates are far from saturation) and compares it and the converted model with the float64
engine's output on the same converted weights, under the tolerance derived for that case
(:func:`scratch_rnn.testing.model_verify.derive_model`: weights, inputs and activations perturbed by the
dtype's rounding; ``docs/tolerances.md``). Shapes are square (features = units) and rectangular; both
dtypes. The planted bugs at the end (the GRU's gate blocks not reordered, ``b_hh`` dropped, a weight changed
after conversion) show that the comparison fails when the conversion is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DTYPES, require

from scratch_rnn.ports import from_torch as from_torch_module
from scratch_rnn.ports.from_torch import from_torch
from scratch_rnn.testing.compare import assert_close
from scratch_rnn.testing.model_verify import ModelCase, derive_model

torch = require("torch")
nn = torch.nn

#: The largest margin (|error| / derived tolerance) seen by the tests, reported by the last test.
MARGINS: list[float] = []


def torch_dtype(dtype: str):
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def randomized(module, dtype: str, seed: int):
    """``module`` in ``dtype`` and ``eval()`` mode, every parameter uniform in [-0.8, 0.8]."""
    gen = torch.Generator().manual_seed(seed)
    module = module.to(torch_dtype(dtype)).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 1.6 - 0.8)
    return module


def run_torch(modules, x, return_sequences: bool = True) -> np.ndarray:
    """What a PyTorch user computes with ``modules`` in order: a recurrent module passes ``output`` on; the
    last one, with ``return_sequences=False``, its final hidden state (both directions concatenated)."""
    recurrent = [i for i, m in enumerate(modules) if isinstance(m, nn.RNNBase)]
    y = torch.from_numpy(x)
    with torch.no_grad():
        for i, m in enumerate(modules):
            if not isinstance(m, nn.RNNBase):
                y = m(y)
                continue
            out, h = m(y)
            h = h[0] if isinstance(m, nn.LSTM) else h
            if return_sequences or i != recurrent[-1]:
                y = out
            else:
                y = torch.cat([h[-2], h[-1]], -1) if m.bidirectional else h[-1]
    return y.numpy()


def assert_agrees(module, x, expected, dtype: str, context: str, **options) -> None:
    """``from_torch(module)`` and PyTorch's ``expected`` both within the derived tolerance of the float64
    engine on the converted weights; the converted model keeps ``dtype``."""
    __tracebackhide__ = True
    model = from_torch(module, **options)
    actual = model(x)
    oracle_model = from_torch(module, dtype="float64", **options)
    case = ModelCase(inputs=[x], specs=[])
    (oracle,), (tol,) = derive_model(oracle_model, oracle_model.get_weights(), case, dtype)
    for name, value in (("from_torch output", actual), ("PyTorch output", expected)):
        assert_close(value, oracle.astype(dtype), tol, name=name, context=context)
        err = np.abs(value.astype(np.float64) - oracle)
        MARGINS.append(float(np.max(err / np.maximum(tol, np.finfo(float).tiny))))


RECURRENT = {
    "RNN-tanh": lambda i, h, **kw: nn.RNN(i, h, nonlinearity="tanh", **kw),
    "RNN-relu": lambda i, h, **kw: nn.RNN(i, h, nonlinearity="relu", **kw),
    "LSTM": lambda i, h, **kw: nn.LSTM(i, h, **kw),
    "GRU": lambda i, h, **kw: nn.GRU(i, h, **kw),
}

#: (features, units): square and rectangular both ways.
SHAPES = [(4, 4), (3, 6), (7, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(RECURRENT))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_recurrent_modules_compute_what_torch_computes(kind, bidirectional, bias, dtype):
    for j, (features, units) in enumerate(SHAPES):
        num_layers = 1 + j % 2
        module = RECURRENT[kind](
            features, units, num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=True
        )
        module = randomized(module, dtype, seed=j)
        x = np.random.default_rng(j).uniform(-1, 1, (3, 5 + j, features)).astype(dtype)
        for return_sequences in (True, False):
            context = (
                f"{kind} {features}->{units} layers={num_layers} bi={bidirectional} bias={bias} seq={return_sequences}"
            )
            expected = run_torch([module], x, return_sequences)
            assert_agrees(module, x, expected, dtype, context, return_sequences=return_sequences)


def test_the_layers_mirror_the_module_options():
    module = nn.GRU(3, 5, num_layers=2, bidirectional=True, bias=False, batch_first=True)
    model = from_torch(module, return_sequences=False)
    first, second = model.layers
    assert type(first).__name__ == type(second).__name__ == "Bidirectional"
    assert first.merge_mode == "concat" and first.return_sequences and not second.return_sequences
    inner = first.forward_layer
    assert type(inner).__name__ == "GRU" and inner.reset_after and not inner.use_bias and inner.units == 5
    assert model.input.batch_shape == (None, None, 3) and model.input.dtype == np.float32
    relu = from_torch(nn.RNN(2, 3, nonlinearity="relu")).layers[0]
    assert type(relu).__name__ == "SimpleRNN" and relu.activation.__name__ == "relu"


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_first_false_takes_the_batch_first_transpose(dtype):
    module = randomized(nn.LSTM(3, 4, num_layers=2, bidirectional=True), dtype, seed=5)  # batch_first=False
    x_time_major = np.random.default_rng(5).uniform(-1, 1, (6, 2, 3)).astype(dtype)  # (T, B, F)
    expected = run_torch([module], x_time_major).transpose(1, 0, 2)
    assert_agrees(module, np.ascontiguousarray(x_time_major.transpose(1, 0, 2)), expected, dtype, "time-major")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_sequential_text_classifier(dtype):
    """Embedding -> GRU (2 layers, bidirectional) -> LSTM -> Linear -> Softmax, the GRU's output sequence
    feeding the LSTM, the LSTM's final state the head."""
    modules = [
        nn.Embedding(20, 6, padding_idx=0),
        nn.GRU(6, 5, num_layers=2, bidirectional=True, batch_first=True, dropout=0.3),
        nn.LSTM(10, 4, batch_first=True),
        nn.Dropout(0.5),
        nn.Linear(4, 3),
        nn.Softmax(dim=-1),
    ]
    sequential = randomized(nn.Sequential(*modules), dtype, seed=7)
    ids = np.random.default_rng(7).integers(0, 20, (4, 9))
    ids[0, -3:] = 0  # padding_idx: a plain lookup of row 0 (no mask), as in PyTorch
    expected = run_torch(list(sequential), ids, return_sequences=False)
    assert_agrees(sequential, ids, expected, dtype, "text classifier", return_sequences=False)
    assert from_torch(sequential).input.dtype == np.int32


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_layers_on_sequences_and_nested_sequentials(dtype):
    inner = nn.Sequential(nn.Linear(5, 5), nn.Tanh())
    sequential = randomized(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), inner, nn.Linear(5, 2), nn.Sigmoid()), dtype, 8)
    x = np.random.default_rng(8).uniform(-1, 1, (2, 4, 3)).astype(dtype)
    expected = run_torch(list(sequential[:2]) + list(inner) + list(sequential[3:]), x)
    assert_agrees(sequential, x, expected, dtype, "linear stack", input_shape=(None, 3))
    dense = randomized(nn.Linear(6, 3, bias=False), dtype, 9)
    x2 = np.random.default_rng(9).uniform(-1, 1, (5, 6)).astype(dtype)
    assert_agrees(dense, x2, run_torch([dense], x2), dtype, "Linear(bias=False)")


def test_dtype_argument_converts_the_parameters():
    module = randomized(nn.LSTM(3, 4, batch_first=True), "float32", 10)
    model = from_torch(module, dtype="float64")
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert model(np.zeros((1, 2, 3))).dtype == np.float64


# --- refusals, each by name -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, match",
    [
        (lambda: nn.LSTM(3, 4, proj_size=2), r"proj_size=2"),
        (lambda: nn.Embedding(5, 3, max_norm=1.0), r"max_norm=1\.0"),
        (
            lambda: nn.Sequential(nn.Linear(3, 3), nn.Conv1d(3, 3, 1)),
            r"Module 1 is of type torch\.nn\.modules\.conv\.Conv1d",
        ),
        (lambda: nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Tanh(), nn.LayerNorm(3))), r"Module 1\.1 .*LayerNorm"),
        (lambda: nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=0)), r"Module 1 \(nn\.Softmax\) has dim=0"),
        (lambda: nn.Sequential(), r"empty nn\.Sequential"),
        (lambda: nn.LSTM(3, 4).half(), r"float16.*pass `dtype=`"),
        (lambda: nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3).double()), r"dtypes \['float32', 'float64'\]"),
    ],
    ids=["proj_size", "max_norm", "unknown", "nested-unknown", "softmax-dim", "empty", "float16", "mixed"],
)
def test_what_cannot_be_converted_is_refused_by_name(module, match):
    with pytest.raises(ValueError, match=match):
        from_torch(module())


def test_a_subclass_or_a_hooked_module_is_refused_by_name():
    class MyLSTM(nn.LSTM):
        pass

    class LoRALinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    class MySequential(nn.Sequential):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"MyLSTM"):
        from_torch(MyLSTM(3, 4))
    with pytest.raises(ValueError, match=r"Module 1 is of type .*LoRALinear"):
        from_torch(nn.Sequential(nn.Linear(3, 3), LoRALinear(3, 2)))
    with pytest.raises(ValueError, match=r"Module `module` is of type .*MySequential"):
        from_torch(MySequential(nn.Linear(3, 3)))
    hooked = nn.Linear(3, 2)
    hooked.register_forward_hook(lambda module, args, out: out * 2)
    with pytest.raises(ValueError, match=r"Module 0 \(Linear\) has forward hooks"):
        from_torch(nn.Sequential(hooked))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"input_shape": (0, 3)}, r"`input_shape`.*got \(0, 3\)"),
        ({"input_shape": "3"}, r"`input_shape`"),
        ({"return_sequences": 1}, r"`return_sequences`.*got 1"),
        ({"dtype": "float16"}, r"`dtype`.*got 'float16'"),
    ],
)
def test_bad_arguments_name_the_argument(options, match):
    with pytest.raises(ValueError, match=match):
        from_torch(nn.GRU(3, 4), **options)
    with pytest.raises(ValueError, match=r"`module`.*torch\.nn\.Module"):
        from_torch(np.zeros(3))


def test_an_activation_first_needs_an_input_shape():
    with pytest.raises(ValueError, match=r"ReLU.*`input_shape=`"):
        from_torch(nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    assert from_torch(nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), input_shape=(3,)).input.batch_shape == (None, 3)


# --- planted bugs: the comparison fails when the conversion is wrong --------------------------------------


def planted_case(kind="GRU"):
    module = randomized(RECURRENT[kind](3, 4, batch_first=True), "float32", seed=11)
    x = np.random.default_rng(11).uniform(-1, 1, (2, 5, 3)).astype("float32")
    return module, x, run_torch([module], x)


def test_planted_gru_gate_order_bug_is_caught(monkeypatch):
    module, x, expected = planted_case()
    monkeypatch.setattr(from_torch_module, "_gru_order", lambda w: w)  # r, z, n copied as if z, r, h
    with pytest.raises(AssertionError, match="PyTorch output"):
        assert_agrees(module, x, expected, "float32", "planted: GRU blocks not reordered")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_planted_dropped_recurrent_bias_is_caught(monkeypatch, kind):
    module, x, expected = planted_case(kind)
    with torch.no_grad():
        module.bias_hh_l0.zero_()  # the converted model (and the oracle) never see b_hh ...
    with pytest.raises(AssertionError, match="PyTorch output"):
        assert_agrees(module, x, expected, "float32", f"planted: {kind} b_hh dropped")  # ... PyTorch's used it


def test_planted_weight_change_is_caught():
    module, x, expected = planted_case("LSTM")
    with torch.no_grad():
        module.weight_hh_l0[0, 1] += 1e-3
    with pytest.raises(AssertionError, match="PyTorch output"):
        assert_agrees(module, x, expected, "float32", "planted: one recurrent weight off by 1e-3")


def test_the_example_converts_saves_and_verifies(keras, tmp_path, capsys):
    """examples/torch_to_keras.py: a custom nn.Module's parts through from_torch, saved, verified against Keras."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "torch_to_keras.py"
    spec = importlib.util.spec_from_file_location("torch_to_keras", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(tmp_path / "classifier.keras", examples=5) == 0
    assert "ok=True" in capsys.readouterr().out
    net = randomized(example.Classifier(), "float32", seed=12)  # its forward, against the parts converted
    ids = np.random.default_rng(12).integers(0, 50, (3, 10))
    with torch.no_grad():
        expected = net(torch.from_numpy(ids)).numpy()
    parts = nn.Sequential(net.embedding, net.lstm, net.fc)
    assert_agrees(parts, ids, expected, "float32", "the example's classifier", return_sequences=False)


def test_margins_report():
    """Runs last in this module: the worst margin (|error| / derived tolerance) of the cases above, <= 1."""
    if not MARGINS:
        pytest.skip("run with the module's other tests")
    print(f"\nfrom_torch: {len(MARGINS)} comparisons, max margin {max(MARGINS):.3g}, "
          f"median {float(np.median(MARGINS)):.3g}")  # fmt: skip
    assert max(MARGINS) <= 1
