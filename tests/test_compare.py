"""The comparison helper must fail when it should: every check shown catching a planted difference."""

import numpy as np
import pytest

from scratch_rnn.testing import assert_close, compare_outputs, compare_tensor


def test_identical_arrays_pass_with_zero_margin():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = compare_tensor(a, a.copy(), 0.0)
    assert r.ok and r.max_abs_error == 0 and r.margin == 0


def test_relative_error_is_normwise_max_error_over_max_reference():
    expected = np.array([[1.0, -2000.0], [0.0, 5.0]])
    actual = expected.copy()
    actual[1, 0] = 0.5  # next to a zero: elementwise relative error is infinite
    r = compare_tensor(actual, expected, 1.0)
    assert r.ok and r.max_abs_error == 0.5
    assert r.max_rel_error == 0.5 / 2000.0
    actual[0, 1] = np.nan  # a NaN is an infinite error, relative too
    assert compare_tensor(actual, expected, 1.0).max_rel_error == np.inf
    tiny = compare_tensor(np.array([1e-45, 0.0]), np.zeros(2), 1e-40)
    assert tiny.ok and np.isnan(tiny.max_rel_error)  # against all zeros: undefined, not infinite


def test_tolerance_ratio_says_how_loose_a_check_was():
    from scratch_rnn.testing.check import WEAK, CaseResult

    expected = np.array([1.0, -2000.0])
    tight = compare_tensor(expected.copy(), expected, np.array([1e-3, 1e-2]))
    loose = compare_tensor(expected.copy(), expected, np.array([1.0, 300.0]))
    assert tight.tol_ratio == 1e-2 / 2000 and loose.tol_ratio == 300 / 2000
    assert compare_tensor(np.zeros(3), np.zeros(3), 0.0).tol_ratio == 0  # exact: not loose at all
    assert compare_tensor(np.zeros(3), np.zeros(3), 1e-9).tol_ratio == 1e-9  # against zeros: the slack itself
    assert compare_tensor(np.zeros(3), np.zeros(3), 0.5).tol_ratio > WEAK
    assert tight.tol_ratio < WEAK < loose.tol_ratio
    assert not CaseResult(case=None, comparisons=[tight]).weak
    assert CaseResult(case=None, comparisons=[tight, loose]).weak


def test_report_rows_skip_undefined_relative_errors():
    from scratch_rnn.testing.check import CaseResult

    result = CaseResult(
        case=None,
        comparisons=[
            compare_tensor(np.array([1e-45]), np.zeros(1), 1e-40),
            compare_tensor(np.array([1.5]), np.array([2.0]), 1.0),
        ],
    )
    assert result.max_rel_error == 0.25


def test_shape_mismatch_fails_even_when_broadcastable():
    r = compare_tensor(np.zeros((1, 3), np.float32), np.zeros((2, 3), np.float32), 1.0)
    assert not r.ok and "shape (1, 3), but should be (2, 3)" in r.problem


def test_dtype_mismatch_fails_even_when_values_equal():
    r = compare_tensor(np.zeros(3, np.float64), np.zeros(3, np.float32), 1.0)
    assert not r.ok and "dtype float64, but should be float32" in r.problem


def test_non_array_fails():
    r = compare_tensor([0.0, 0.0], np.zeros(2), 1.0)
    assert not r.ok and "numpy array" in r.problem


def test_value_beyond_tolerance_names_the_worst_element():
    expected = np.zeros((2, 3))
    actual = expected.copy()
    actual[1, 2] = 1e-3
    actual[0, 0] = 1e-6
    r = compare_tensor(actual, expected, 1e-5, name="output")
    assert not r.ok
    assert "worst at index (1, 2)" in r.problem and "1 of 6 elements" in r.problem
    assert r.margin == pytest.approx(100)


def test_elementwise_tolerance_is_used_per_element_and_never_broadcast():
    expected = np.zeros(3)
    actual = np.array([0.5, 0.0, 0.0])
    assert compare_tensor(actual, expected, np.array([1.0, 0.0, 0.0])).ok
    assert not compare_tensor(actual, expected, np.array([0.0, 1.0, 1.0])).ok
    with pytest.raises(ValueError, match="tol"):
        compare_tensor(actual, expected, np.ones(2))


@pytest.mark.parametrize("tol", [np.nan, -1e-6, np.array([0.1, np.nan])])
def test_a_nan_or_negative_tolerance_is_refused(tol):
    with pytest.raises(ValueError, match="`tol` must hold non-negative numbers"):
        compare_tensor(np.zeros(2), np.zeros(2), tol)


def test_zero_tolerance_demands_exact_equality():
    assert not compare_tensor(np.array([np.nextafter(0.0, 1.0)]), np.array([0.0]), 0.0).ok


def test_nan_never_equals_nan_unless_asked():
    a = np.array([1.0, np.nan])
    r = compare_tensor(a, a.copy(), 1.0)
    assert not r.ok and r.margin == np.inf
    assert compare_tensor(a, a.copy(), 1.0, equal_nan=True).ok


def test_nan_against_a_number_fails_even_with_equal_nan():
    assert not compare_tensor(np.array([np.nan]), np.array([0.0]), 1e9, equal_nan=True).ok
    assert not compare_tensor(np.array([0.0]), np.array([np.nan]), 1e9, equal_nan=True).ok


def test_infinities_equal_only_with_the_same_sign():
    assert compare_tensor(np.array([np.inf]), np.array([np.inf]), 0.0).ok
    assert not compare_tensor(np.array([-np.inf]), np.array([np.inf]), 1e300).ok
    assert not compare_tensor(np.array([1e30]), np.array([np.inf]), 1e300).ok


def test_compare_outputs_fails_on_a_missing_state():
    out = [np.zeros(2)]
    results = compare_outputs(out, out + [np.zeros(2)], [0.0, 0.0], ["output", "state[0]"])
    assert not results[0].ok and "1 tensors, but should be 2" in results[0].problem


def test_assert_close_raises_with_name_and_context():
    with pytest.raises(AssertionError, match=r"state\[0\]: .* \[LSTM\(units=3\)\]"):
        assert_close(np.ones(2), np.zeros(2), 0.1, name="state[0]", context="LSTM(units=3)")


def test_output_names_say_which_tensor():
    from scratch_rnn.testing.runners import output_names

    assert output_names(3, 1, 0) == ["output", "state[0]", "state[1]"]
    assert output_names(2, 2, 1) == ["call 2 output", "call 2 state[0]"]
    assert output_names(4, 1, 0, split_directions=True) == ["forward output", "backward output", "state[0]", "state[1]"]


# --- the tests' own wrappers around assert_close (tests/helpers.py) ----------------------------


def test_outputs_close_checks_the_count_then_each_output_with_a_tolerance_scaling_with_the_reference():
    from helpers import assert_outputs_close

    expected = [np.array([1.0, 1000.0], np.float32), np.zeros(2, np.float32)]
    assert_outputs_close([e.copy() + np.float32(5e-6) for e in expected], expected, "within 1e-5 + 1e-5 |e|")
    assert_outputs_close([np.array([1.0, 1000.005], np.float32), expected[1]], expected, "relative at 1000")
    with pytest.raises(AssertionError, match=r"output\[1\]: .*worst at index \(0,\).*\[beyond\]"):
        assert_outputs_close([expected[0], np.array([1e-4, 0], np.float32)], expected, "beyond")
    with pytest.raises(AssertionError, match=r"1 outputs, but should be 2 \[a state missing\]"):
        assert_outputs_close(expected[:1], expected, "a state missing")


def test_outputs_close_is_strict_about_dtype_arrays_and_nan():
    from helpers import assert_golden, assert_outputs_close

    expected = np.array([0.5, np.nan], np.float32)
    with pytest.raises(AssertionError, match="dtype float64, but should be float32"):
        assert_outputs_close(expected.astype(np.float64), expected)
    with pytest.raises(AssertionError, match="expected a numpy array, got list"):
        assert_outputs_close([[0.5, 0.0]], [expected])  # a list of one output that is itself a list
    with pytest.raises(AssertionError, match="1 of 2 elements differ"):
        assert_outputs_close(expected.copy(), expected)  # NaN is not NaN ...
    assert_outputs_close(expected.copy(), expected, equal_nan=True)  # ... unless a test is about NaN
    with pytest.raises(AssertionError, match="dtype float64, but should be float32"):
        assert_golden(np.array([0.25]), [0.25])  # Keras's golden values are float32 outputs
    with pytest.raises(AssertionError, match=r"\|error\| 3.01e-06 > tol 1.25e-06"):
        assert_golden(np.array([0.250003], np.float32), [0.25])
