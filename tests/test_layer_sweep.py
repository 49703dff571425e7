"""The harness's sweep of the non-recurrent layers (``verify(layer="Conv1D")``, ``scratch-rnn verify --layer core``).

The engine passes every layer's sweep in both dtypes; candidates with a planted bug fail it, by their values;
the candidate interface hands multi-input layers lists (inputs and masks); what the recurrent sweep takes and
these layers do not is refused by name. The strategies themselves are checked without Keras.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from scratch_rnn.cli import main
from scratch_rnn.testing import verify
from scratch_rnn.testing.case import CORE_LAYERS, MULTI_INPUT, LayerCase
from scratch_rnn.testing.layer_strategies import STRATEGIES, layer_cases, weight_shapes
from scratch_rnn.testing.runners import core_engine_candidate, engine_core_layer, run_core

SEED = 20261126


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", CORE_LAYERS)
def test_the_engine_passes_each_layer_sweep(layer, dtype):
    report = verify(layer=layer, max_examples=15, seed=SEED, dtype=dtype, shrink_seconds=0)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples + report.skipped == 15 and report.examples >= 12
    assert report.max_margin <= 1.0
    assert report.reference.startswith("keras 3")


@pytest.mark.keras
@pytest.mark.parametrize("layer", ["Concatenate", "Attention", "Dot"])
def test_the_engine_through_the_candidate_interface_passes(layer):
    report = verify(core_engine_candidate(layer), layer=layer, max_examples=15, seed=SEED, shrink_seconds=0)
    assert report.ok, "\n".join(map(str, report.failures))


# --- a planted bug fails the sweep, by its values --------------------------------------------------------


def permute_ignoring_dims(config, weights, x, mask=None):
    """Reads Permute's ``dims`` as the order to *take* the axes from, i.e. applies the inverse permutation."""
    dims = [0, *config["dims"]]
    return np.ascontiguousarray(np.transpose(x, np.argsort(dims)))


def embedding_off_by_one(config, weights, ids, mask=None):
    """Looks ids up one row too far (1-based ids), wrapping at the end of the table."""
    return weights[0][(ids + 1) % weights[0].shape[0]]


def concatenate_reversed(config, weights, inputs, mask=None):
    """Concatenates the inputs in reverse order."""
    return np.concatenate(inputs[::-1], axis=config["axis"])


def layer_norm_without_epsilon(config, weights, x, mask=None):
    """Keras's LayerNormalization over the last axis, but with epsilon left out of the variance."""
    axes = config["axis"] if isinstance(config["axis"], (list, tuple)) else [config["axis"]]  # Keras's: a list
    if [a % x.ndim for a in axes] != [x.ndim - 1] or config["rms_scaling"]:
        return core_engine_candidate("LayerNormalization")(config, weights, x, mask)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (x - mean) / np.sqrt(var)
    weights = list(weights)
    if config["scale"]:
        y = y * weights.pop(0)
    if config["center"]:
        y = y + weights.pop(0)
    return y.astype(x.dtype)


def gaussian_noise_at_inference(config, weights, x, mask=None):
    """Adds its noise at inference too (Keras adds it only in training)."""
    rng = np.random.default_rng(config["seed"])
    return (x + rng.normal(0, config["stddev"], x.shape)).astype(x.dtype)


@pytest.mark.keras
@pytest.mark.parametrize(
    "layer, candidate",
    [
        ("GaussianNoise", gaussian_noise_at_inference),
        ("Permute", permute_ignoring_dims),
        ("Embedding", embedding_off_by_one),
        ("Concatenate", concatenate_reversed),
        ("LayerNormalization", layer_norm_without_epsilon),
    ],
)
def test_a_planted_bug_fails_the_sweep(layer, candidate):
    report = verify(candidate, layer=layer, max_examples=100, seed=SEED, shrink_seconds=5)
    assert not report.ok and len(report.failures) == 1
    failure = str(report.failures[0])
    assert f"Mismatch for {layer}(" in failure, failure
    assert "differ beyond tolerance" in failure or "but should be" in failure, failure  # values, or a shape
    assert "the candidate raised" not in failure
    assert f"reproduce with seed={SEED}" in failure


@pytest.mark.keras
def test_a_candidate_that_raises_or_returns_a_wrong_shape_fails_and_the_sweep_goes_on():
    def raises(config, weights, x, mask=None):
        raise RuntimeError("not implemented")

    report = verify(raises, layer="Flatten", max_examples=5, seed=SEED, shrink_seconds=0)
    assert not report.ok and "the candidate raised: RuntimeError: not implemented" in str(report.failures[0])

    def flat_wrong(config, weights, x, mask=None):
        return x.reshape(-1)

    report = verify(flat_wrong, layer="Flatten", max_examples=5, seed=SEED, shrink_seconds=0)
    assert not report.ok and "but should be" in str(report.failures[0])


# --- the candidate interface ---------------------------------------------------------------------------


@pytest.mark.keras
def test_multi_input_layers_get_lists_of_inputs_and_masks():
    seen = []

    def add(config, weights, inputs, mask=None):
        assert isinstance(inputs, list) and all(isinstance(x, np.ndarray) for x in inputs)
        assert mask is None or (isinstance(mask, list) and len(mask) == len(inputs))
        assert weights == [] and "name" in config and "dtype" in config  # Keras's get_config()
        seen.append(mask is not None)
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x  # NumPy broadcasting, as Keras's add
        return total

    report = verify(add, layer="Add", max_examples=30, seed=SEED, shrink_seconds=0)
    assert report.ok, "\n".join(map(str, report.failures))
    assert any(seen) and not all(seen)  # cases with and without masks


@pytest.mark.keras
def test_attention_candidates_get_the_call_options_and_return_the_scores_when_asked():
    options = []

    def attention(config, weights, inputs, mask=None, use_causal_mask=False, return_attention_scores=False):
        options.append((use_causal_mask, return_attention_scores))
        return core_engine_candidate("Attention")(
            config,
            weights,
            inputs,
            mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
        )

    report = verify(attention, layer="Attention", max_examples=20, seed=SEED, shrink_seconds=0)
    assert report.ok, "\n".join(map(str, report.failures))
    assert len(set(options)) == 4  # every combination drawn

    def scores_forgotten(config, weights, inputs, mask=None, **call_options):
        out = core_engine_candidate("Attention")(config, weights, inputs, mask, **call_options)
        return out[0] if isinstance(out, (list, tuple)) else out

    report = verify(scores_forgotten, layer="Attention", max_examples=20, seed=SEED, shrink_seconds=0)
    assert not report.ok


# --- what these sweeps refuse -------------------------------------------------------------------------------


@pytest.mark.keras
@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"fixed": {"units": 2}}, "fixed"),
        ({"with_initial_state": False}, "with_initial_state"),
        ({"fast": False}, "fast=False"),
        ({"reference": "tf_keras"}, "reference"),
        ({"max_examples": 0}, "max_examples"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_recurrent_only_arguments_are_refused_by_name(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        verify(layer="Dense", **kwargs)


def test_an_unknown_layer_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="`layer`.*Conv1D"):
        verify(layer="Conv2D")
    with pytest.raises(ValueError, match="`layer`"):
        layer_cases("Conv2D")


@pytest.mark.keras
def test_the_command_line_sweeps_one_layer_and_refuses_a_candidate_for_core(capsys):
    code = main(["verify", "--layer", "Permute", "--examples", "5", "--dtype", "float32", "--seed", "1"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "Permute" in out and "All cases agree with Keras" in out, out
    code = main(["verify", "--layer", "core", "--candidate", "numpy:transpose"])
    assert code == 2


# --- the strategies, without Keras ---------------------------------------------------------------------------


def test_every_core_layer_has_a_strategy():
    assert set(STRATEGIES) == set(CORE_LAYERS)
    assert set(MULTI_INPUT) <= set(CORE_LAYERS)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", CORE_LAYERS)
def test_generated_cases_fit_the_engine(layer, dtype):
    """Every drawn case: weights of Keras's shapes in the dtype, inputs and masks of the right form, and the
    engine runs on it (so a Keras mismatch in the sweep is a value, never a malformed case)."""

    @settings(max_examples=10, deadline=None)
    @given(case=layer_cases(layer, dtype))
    def check(case: LayerCase):
        assert case.layer == layer and case.config["dtype"] == dtype
        assert case.multi == (layer in MULTI_INPUT)
        shapes = [x.shape for x in case.input_list()]
        assert [w.shape for w in case.weights] == weight_shapes(layer, case.config, shapes if case.multi else shapes[0])
        assert all(w.dtype == dtype for w in case.weights)
        assert all(x.dtype == dtype or (layer == "Embedding" and x.dtype.kind == "i") for x in case.input_list())
        steps_axis = 2 if case.config.get("data_format") == "channels_first" else 1  # (batch, features, steps)
        for x, m in zip(case.input_list(), case.mask_list()):
            assert m is None or (m.dtype == bool and m.shape == (x.shape[0], x.shape[steps_axis]))
        with np.errstate(all="ignore"):
            names, outputs = run_core(engine_core_layer(case), case.inputs, case.mask, case.call_options)
        assert len(names) == len(outputs) >= 1 and all(o.dtype == dtype for o in outputs)

    check()


def test_a_layer_case_describes_itself():
    case = LayerCase(
        "Add",
        {"dtype": "float32"},
        [],
        [np.zeros((2, 3, 4), "float32"), np.ones((2, 3, 4), "float32")],
        [np.array([[True, False, True], [True, True, True]]), None],
    )
    assert case.describe() == "Add({'dtype': 'float32'}) on x(2, 3, 4), x(2, 3, 4), mask (2, 3) (1 masked) None"
    assert case.mask_list()[1] is None and case.dtype == np.float32
