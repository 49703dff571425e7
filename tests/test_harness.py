"""The Keras equivalence properties in both dtype lanes, and the harness catching planted bugs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratch_rnn.testing import Case, check_case, verify
from scratch_rnn.testing.runners import default_reference, engine_candidate
from scratch_rnn.testing.strategies import LAYERS, cases


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", LAYERS)
@given(data=st.data())
def test_engine_equals_keras(keras, layer, dtype, data):
    """The sweep in both lanes, against $SCRATCH_RNN_REFERENCE (Keras 3 by default; tox -e tf_keras: Keras 2)."""
    case = data.draw(cases(layer, dtype, reference=default_reference()), label="case")
    result = check_case(case, keras)
    assert result.ok or result.skipped, result.message()


def square_case(rng, use_bias=True, dtype="float32", **config):
    """A SimpleRNN case with features == units: where a forgotten transpose still has the right shape."""
    u = 4
    weights = [rng.uniform(-1, 1, (u, u)), rng.uniform(-1, 1, (u, u))] + ([rng.uniform(-1, 1, u)] if use_bias else [])
    config = {"units": u, "use_bias": use_bias, "return_sequences": True, "dtype": dtype, **config}
    return Case("SimpleRNN", config, [w.astype(dtype) for w in weights], rng.uniform(-1, 1, (3, 5, u)).astype(dtype))


def mutant(change):
    """The engine behind the candidate interface, with ``change(weights)`` applied to Keras's weights first."""
    engine = engine_candidate("SimpleRNN")

    def candidate(config, weights, x, mask=None, initial_state=None):
        return engine(config, change(weights), x, mask, initial_state)

    return candidate


KERNEL_NOT_TRANSPOSED = mutant(lambda w: [w[0].T, *w[1:]])
RECURRENT_NOT_TRANSPOSED = mutant(lambda w: [w[0], w[1].T, *w[2:]])
BIAS_DROPPED = mutant(lambda w: [*w[:2], np.zeros_like(w[2])])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_correct_engine_passes_the_fixed_cases(keras, rng, dtype):
    result = check_case(square_case(rng, dtype=dtype), keras, engine_candidate("SimpleRNN"))
    assert result.ok, result.message()


@pytest.mark.parametrize(
    "bug",
    [KERNEL_NOT_TRANSPOSED, RECURRENT_NOT_TRANSPOSED, BIAS_DROPPED],
    ids=["kernel-not-transposed", "recurrent-not-transposed", "bias-dropped"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_planted_bugs_fail_the_comparison(keras, rng, bug, dtype):
    result = check_case(square_case(rng, dtype=dtype), keras, bug)
    assert not result.ok
    message = result.message()
    assert "Mismatch for SimpleRNN(" in message and "'units': 4" in message  # names the config
    assert "output:" in message and "worst at index" in message  # the tensor, the worst element


def test_a_candidate_that_raises_is_a_reported_failure(keras, rng):
    def broken(config, weights, x, mask=None, initial_state=None):
        raise RuntimeError("not implemented yet")

    result = check_case(square_case(rng), keras, broken)
    assert not result.ok and "RuntimeError: not implemented yet" in result.message()


def test_a_candidate_returning_the_wrong_dtype_fails(keras, rng):
    engine = engine_candidate("SimpleRNN")
    as_f64 = lambda *args: np.asarray(engine(*args), np.float64)  # noqa: E731
    result = check_case(square_case(rng), keras, as_f64)
    assert not result.ok and "dtype float64, but should be float32" in result.message()


@pytest.mark.keras  # verify runs the sweep against Keras
def test_verify_reports_a_planted_bug_with_a_reproducer():
    report = verify(BIAS_DROPPED, layer="SimpleRNN", max_examples=30, seed=3, shrink_seconds=5)
    assert not report.ok and len(report.failures) == 1
    failure = str(report.failures[0])
    assert "seed=3" in failure and "@reproduce_failure" in failure


@pytest.mark.keras  # verify runs the sweep against Keras
def test_verify_passes_the_engine_and_counts_cases():
    report = verify(None, layer="SimpleRNN", max_examples=15, seed=11)
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.examples + report.skipped >= 15 and report.max_margin <= 1.0


@pytest.mark.keras  # verify runs the sweep against Keras
@pytest.mark.local_constants
def test_a_seed_gives_the_same_cases_whatever_local_modules_are_imported(tmp_path, monkeypatch):
    # Hypothesis draws some values from literals in the source of local (not site-packages) modules:
    # without verify's guard, importing this module changes the cases seed 8 generates.
    def drawn():
        seen = []
        verify(
            None,
            layer="SimpleRNN",
            max_examples=12,
            seed=8,
            on_example=lambda result: seen.append(result.case.describe() + result.case.x.tobytes().hex()),
        )
        return seen

    before = drawn()
    (tmp_path / "scratch_rnn_literals.py").write_text(
        "LITERALS = " + repr([round(0.0137 * k - 1.5, 4) for k in range(200)] + list(range(1, 9))) + "\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("scratch_rnn_literals")
    assert drawn() == before


def test_verify_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`dtype`"):
        verify(dtype="float16")
    with pytest.raises(ValueError, match="`layer`"):
        verify(layer="ConvLSTM1D", max_examples=1)


def test_a_case_that_overflows_on_the_way_to_a_finite_result_is_skipped(keras):
    """Forward half ~1000^t (inf in float32 from step 13), backward half ~1e-45 (subnormal: TensorFlow
    flushes it to 0, NumPy does not), merged by 'mul': exactly ~1000^t * 1e-45, finite. Keras gives NaN
    (inf * 0), the engine inf; neither is wrong for float32, so the case is skipped, not failed."""
    from scratch_rnn.testing.check import keras_outputs

    inner = {"units": 1, "activation": "linear", "use_bias": False, "return_sequences": True, "dtype": "float32"}
    config = {"layer": {"class_name": "SimpleRNN", "config": inner}, "merge_mode": "mul", "dtype": "float32"}
    weights = [np.array([[1.0]]), np.array([[1000.0]]), np.array([[1e-45]]), np.array([[1e-3]])]
    case = Case("Bidirectional", config, [w.astype("float32") for w in weights], np.ones((1, 15, 1), "float32"))
    _, expected, _ = keras_outputs(case, keras)
    assert not np.isfinite(expected[0]).all()  # Keras overflowed on the way
    result = check_case(case, keras)
    assert result.skipped.startswith("overflows in float32 on the way") and not result.comparisons


def test_a_reference_that_alone_is_not_finite_is_compared_and_fails(rng):
    """The overflow skip needs the engine to overflow too: a NaN from the reference alone is a mismatch."""
    from scratch_rnn.testing.check import check_against

    case = square_case(rng)

    def nan_reference():
        return ["output"], [np.full((3, 5, 4), np.nan, "float32")], case.config

    result = check_against(case, nan_reference)
    assert not result.ok and not result.skipped
    assert "output" in result.message()


@pytest.mark.keras  # verify runs the sweep against Keras
def test_a_bug_in_the_engines_fast_kernels_fails_the_sweep(monkeypatch):
    """The float64 oracle runs the readable step, not the fast kernels the engine runs in both dtypes: a product
    off by 1e-3 in the kernels fails the sweep instead of widening its own tolerance."""
    from test_model_verify import plant_in_the_fast_kernels

    plant_in_the_fast_kernels(monkeypatch)
    for layer in ("SimpleRNN", "LSTM", "GRU"):
        report = verify(None, layer=layer, max_examples=10, seed=3, shrink_seconds=0)
        assert not report.ok and report.failures, layer
