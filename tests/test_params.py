"""The parameter tree (``verify._params``): the names of a step's results, the order, the shape
checks, and each parameter's part in the output and its gradient against the formulas written
out by hand."""

from __future__ import annotations

import numpy as np
import pytest

import reference
from verify import _params

RNG = np.random.default_rng(7)
X, W, B = RNG.standard_normal((5, 3)), RNG.standard_normal((3, 4)), RNG.standard_normal(4)
DL_DO = RNG.standard_normal((5, 4))


def test_the_tree_of_the_optional_bias() -> None:
    assert _params.parameters(W) == {"w": W}
    assert list(_params.parameters(W, B)) == ["w", "b"]
    assert _params.names_for(False) == _params.names_for(None) == ("w",)
    assert _params.names_for(True) == ("w", "b")


def test_the_step_results_are_named_after_the_parameters() -> None:
    assert _params.step_fields(("w",)) == reference.StepResult._fields
    assert _params.step_fields({"w": W, "b": B}) == reference.BiasStepResult._fields


def test_ordered_puts_a_sorted_tree_back_in_call_order() -> None:
    """jax.tree functions rebuild dicts with sorted keys: b before w."""
    assert list(_params.ordered({"b": B, "w": W})) == ["w", "b"]
    with pytest.raises(ValueError, match=r"got the keys \['b', 'v'\]"):
        _params.ordered({"v": W, "b": B})
    with pytest.raises(ValueError, match=r"got the keys \['b'\]"):
        _params.ordered({"b": B})


def test_of_picks_the_parameters_among_a_calls_arrays() -> None:
    arrays = {"x": X, "w": W, "b": B, "target": DL_DO}
    assert list(_params.of(arrays)) == ["w", "b"]
    assert list(_params.of({"dL_do": DL_DO, "w": W})) == ["w"]


def test_check_shape_names_the_bias_and_passes_w() -> None:
    _params.check_shape("w", (3, 4), (3, 4))
    _params.check_shape("b", (4,), (3, 4))
    message = r"b has shape \(3,\), but w has shape \(3, 4\): b must be \(O,\) with O = 4"
    with pytest.raises(ValueError, match=message):
        _params.check_shape("b", (3,), (3, 4))
    with pytest.raises(ValueError, match=r"b has shape \(1, 4\)"):
        _params.check_shape("b", (1, 4), (3, 4))


def test_each_parameters_part_is_its_formula() -> None:
    np.testing.assert_array_equal(_params.output(X, {"w": W}), X @ W)
    np.testing.assert_array_equal(_params.output(X, {"w": W, "b": B}), X @ W + B)
    magnitude = _params.output_magnitude(X, {"w": W, "b": B})
    np.testing.assert_array_equal(magnitude, np.abs(X) @ np.abs(W) + np.abs(B))
    # How far sum |output| moves when a parameter moves by r: |x| @ r summed, N r summed for b.
    assert _params.output_mass(X, "w", np.abs(W)) == float((np.abs(X) @ np.abs(W)).sum())
    assert _params.output_mass(X, "b", np.abs(B)) == 5 * float(np.abs(B).sum())
    np.testing.assert_array_equal(_params.gradient("w", X, DL_DO), X.T @ DL_DO)
    np.testing.assert_array_equal(_params.gradient("b", X, DL_DO), DL_DO.sum(axis=0))
    np.testing.assert_array_equal(_params.term("b", X, B), B)


def test_the_gradients_are_the_references() -> None:
    """Each parameter's gradient is the loop reference's grad_w / grad_b."""
    np.testing.assert_allclose(_params.gradient("w", X, DL_DO), reference.grad_w(X, DL_DO))
    np.testing.assert_allclose(_params.gradient("b", X, DL_DO), reference.grad_b(DL_DO))
