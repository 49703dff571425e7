"""The round trip of issue #13: Keras file -> ``scratch_rnn.load_model`` -> ``to_torch`` -> ``from_torch`` ->
``model.save`` (``.keras``) -> real Keras, to the same outputs; and PyTorch -> Keras -> PyTorch.

* The model zoo of ``tests/test_model_zoo.py`` (every model, built and saved by Keras 3, random weights): each
  weight goes through transposes, block swaps and ``b_ih + b_hh`` sums with ``b_hh = 0``, all exact in float
  arithmetic, so the weights Keras loads at the end must equal the original model's bit for bit, and Keras's
  predictions must be identical (same weights, same Keras).
* A PyTorch module fine-tuned after ``to_torch`` comes back with its *new* weights: Keras then predicts what the
  PyTorch module predicts (derived tolerance) and no longer what the original model did.
* Plain PyTorch -> ``from_torch`` -> ``.keras`` -> ``to_torch(path)`` -> PyTorch: the original module's outputs.
* Planted bugs (a GRU's blocks not swapped back, the recurrent bias dropped on the way back) fail the round trip.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import require

import scratch_rnn as sr
from scratch_rnn.ports import from_torch as from_torch_module
from scratch_rnn.ports.from_torch import from_torch
from scratch_rnn.testing.compare import assert_close
from scratch_rnn.testing.model_verify import ModelCase, derive_model

torch = require("torch")
pytest.importorskip("h5py")
sys.path.insert(0, str(Path(__file__).parent))
import test_model_zoo as zoo  # noqa: E402  (its builders: the models Keras saves)

from scratch_rnn.ports.to_torch import to_torch  # noqa: E402


def feed(inputs):
    return inputs if len(inputs) > 1 else inputs[0]


def as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def keras_load(keras, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a layer left unbuilt or a variable not loaded fails the test
        return keras.saving.load_model(path)


def zoo_model(keras, tmp_path, name):
    model, inputs = zoo.KERAS3[name](keras, np.random.default_rng(20261126))
    zoo.randomize_model(model, np.random.default_rng(2))
    model.save(tmp_path / "keras.keras")
    return model, inputs


def round_trip(keras, tmp_path, module_change=None):
    """``keras.keras`` -> load_model -> to_torch (then ``module_change(module)``) -> from_torch -> save -> Keras."""
    module = to_torch(sr.load_model(tmp_path / "keras.keras"))
    if module_change is not None:
        module_change(module)
    from_torch(module).save(tmp_path / "back.keras")
    return module, keras_load(keras, tmp_path / "back.keras")


@pytest.mark.parametrize("name", sorted(zoo.KERAS3))
def test_the_zoo_round_trips_through_pytorch_to_identical_keras_outputs(keras, tmp_path, name):
    model, inputs = zoo_model(keras, tmp_path, name)
    _, again = round_trip(keras, tmp_path)
    original, back = model.get_weights(), again.get_weights()
    assert len(back) == len(original)
    for i, (w, v) in enumerate(zip(original, back)):
        assert_close(np.asarray(v), np.asarray(w), 0.0, name=f"weight[{i}]", context=name)
    expected = as_list(model.predict(feed(inputs), verbose=0))
    for i, (e, a) in enumerate(zip(expected, as_list(again.predict(feed(inputs), verbose=0)))):
        assert_close(a, e, 0.0, name=f"output[{i}]", context=f"{name}: Keras -> PyTorch -> Keras", equal_nan=True)


@pytest.mark.parametrize("name", sorted(zoo.KERAS2))
def test_keras2_files_round_trip_through_pytorch_into_keras3(tf_keras, keras, tmp_path, name):
    """A Keras 2 (tf_keras) .h5 -> load_model -> to_torch -> from_torch -> .keras -> Keras 3: Keras 3 predicts
    what Keras 2 did, within the tolerance derived for the case."""
    model, inputs = zoo.KERAS2[name](tf_keras, np.random.default_rng(20261126))
    zoo.randomize_model(model, np.random.default_rng(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy format's warning
        model.save(tmp_path / "keras2.h5")
    from_torch(to_torch(sr.load_model(tmp_path / "keras2.h5"))).save(tmp_path / "back.keras")
    actual = np.asarray(keras_load(keras, tmp_path / "back.keras")(inputs[0]))
    oracle = sr.load_model(tmp_path / "back.keras", dtype="float64")
    (o,), (tol,) = derive_model(oracle, oracle.get_weights(), ModelCase(inputs=list(inputs), specs=[]), "float32")
    assert_close(actual, o.astype("float32"), tol, name="Keras 3, after the round trip", context=name)
    assert_close(np.asarray(model(inputs[0])), o.astype("float32"), tol, name="Keras 2, the original", context=name)


def nudge_parameters(module, seed=3):
    """A stand-in for fine-tuning: every trainable-looking parameter moved by up to 0.05."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_((torch.rand(p.shape, generator=gen, dtype=p.dtype) - 0.5) * 0.1)


@pytest.mark.parametrize("name", ["classifier", "seq2seq", "conv_gru_valid", "stacked_cells_norm"])
def test_weights_changed_in_pytorch_come_back_to_keras(keras, tmp_path, name):
    model, inputs = zoo_model(keras, tmp_path, name)
    if name == "stacked_cells_norm":  # BatchNormalization's moving variance must stay positive
        change = lambda m: [p.clamp_(min=0.1) if "moving_variance" in n else None for n, p in m.named_parameters()]  # noqa: E731
        module, again = round_trip(keras, tmp_path, lambda m: (nudge_parameters(m), change(m)))
    else:
        module, again = round_trip(keras, tmp_path, nudge_parameters)
    with torch.no_grad():
        tuned = as_list(
            module([torch.from_numpy(x) for x in inputs] if len(inputs) > 1 else torch.from_numpy(inputs[0]))
        )
    actual = as_list(again(feed(inputs)))
    oracle = sr.load_model(tmp_path / "back.keras", dtype="float64")
    oracles, tols = derive_model(oracle, oracle.get_weights(), ModelCase(inputs=list(inputs), specs=[]), "float32")
    for i, (a, t, o, tol) in enumerate(zip(actual, tuned, oracles, tols)):
        assert_close(a, o.astype("float32"), tol, name=f"Keras output[{i}]", context=name, equal_nan=True)
        assert_close(t, o.astype("float32"), tol, name=f"PyTorch output[{i}]", context=name, equal_nan=True)
    before = as_list(model.predict(feed(inputs), verbose=0))[0]
    with pytest.raises(AssertionError):  # the tuned weights arrived: the original model's outputs are gone
        assert_close(actual[0], before, tols[0], equal_nan=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pytorch_to_keras_to_pytorch(keras, tmp_path, dtype):
    nn = torch.nn
    torch.manual_seed(4)
    module = nn.Sequential(
        nn.Embedding(30, 6),
        nn.GRU(6, 7, num_layers=2, bidirectional=True, batch_first=True),
        nn.LSTM(14, 5, batch_first=True),
        nn.Linear(5, 3),
    )
    module = module.to({"float32": torch.float32, "float64": torch.float64}[dtype]).eval()
    ids = np.random.default_rng(4).integers(0, 30, (4, 9))
    from_torch(module).save(tmp_path / "m.keras")
    keras_model = keras_load(keras, tmp_path / "m.keras")
    back = to_torch(tmp_path / "m.keras")
    with torch.no_grad():
        x = torch.from_numpy(ids)
        out, _ = module[2](module[1](module[0](x))[0])
        expected = module[3](out).numpy()
        actual = back(x).numpy()
    oracle = sr.load_model(tmp_path / "m.keras", dtype="float64")
    (o,), (tol,) = derive_model(oracle, oracle.get_weights(), ModelCase(inputs=[ids], specs=[]), dtype)
    assert_close(expected, o.astype(dtype), tol, name="PyTorch (original)", context=dtype)
    assert_close(actual, o.astype(dtype), tol, name="PyTorch (round trip)", context=dtype)
    assert_close(np.asarray(keras_model(ids)), o.astype(dtype), tol, name="Keras", context=dtype)


# --- planted bugs in the way back --------------------------------------------------------------------------


def test_planted_gru_blocks_not_swapped_back_fail_the_round_trip(keras, tmp_path, monkeypatch):
    model, inputs = zoo_model(keras, tmp_path, "conv_gru_valid")
    monkeypatch.setattr(from_torch_module, "_gru_order", lambda w: w)
    _, again = round_trip(keras, tmp_path)
    with pytest.raises(AssertionError, match="output"):
        assert_close(again.predict(inputs[0], verbose=0), model.predict(inputs[0], verbose=0), 1e-4)


def test_planted_recurrent_bias_dropped_fails_the_round_trip(keras, tmp_path, monkeypatch):
    """to_torch writes b_hh = 0, so dropping it on the way back shows only once PyTorch has changed it."""
    _, inputs = zoo_model(keras, tmp_path, "classifier")
    real = from_torch_module.keras_rnn_weights

    def without_b_hh(kind, get, reset_after, dtype):
        return real(kind, lambda n: get("bias_ih") * 0 if n == "bias_hh" else get(n), reset_after, dtype)

    monkeypatch.setattr(from_torch_module, "keras_rnn_weights", without_b_hh)
    module, again = round_trip(keras, tmp_path, nudge_parameters)
    with torch.no_grad():
        tuned = module(torch.from_numpy(inputs[0])).numpy()
    oracle = sr.load_model(tmp_path / "back.keras", dtype="float64")
    (_,), (tol,) = derive_model(oracle, oracle.get_weights(), ModelCase(inputs=list(inputs), specs=[]), "float32")
    with pytest.raises(AssertionError, match="output"):
        assert_close(np.asarray(again(inputs[0])), tuned, tol)


def test_a_to_torch_layer_and_options_are_refused_by_name():
    layer = sr.LSTM(3)
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=r"Module of type Recurrent \(from to_torch\) is not a model"):
        from_torch(to_torch(layer))
    model = sr.Sequential([sr.Input((4, 2)), sr.LSTM(3)])
    with pytest.raises(ValueError, match=r"made by to_torch.*`input_shape` and `return_sequences`"):
        from_torch(to_torch(model), return_sequences=False)
