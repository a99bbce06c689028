"""verify.oracle.explaining._fitted: a bug with a constant of its own is recognised with that
constant named, for results computed the way frameworks compute them (float32, rounding at every
step), and a result that merely has noise on it is not explained away by a fit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import examples
from verify import bounds
from verify.oracle.explaining import _fitted

F32 = bounds.arithmetic("float32")
U = F32.u_out


def test_short_decimals() -> None:
    assert _fitted.short_decimals(1.9000001) == [2.0, 1.9]
    assert _fitted.short_decimals(0.00012345) == [1e-4, 1.2e-4, 1.23e-4]
    assert _fitted.short_decimals(0.0) == []


def test_least_squares() -> None:
    model = np.array([1.0, 2.0, 0.0])
    assert _fitted.least_squares(3 * model, model) == pytest.approx(3.0)
    assert _fitted.least_squares(model, np.zeros(3)) is None


def _weights(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    rows, cols = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    grad = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    lr = draw(st.sampled_from((0.01, 0.5, 2.0**-4, 1.0, 0.1)))
    return w, grad, lr


def _right(w: np.ndarray, grad: np.ndarray, lr: float) -> bounds.Bound:
    return bounds.update_bound(w.astype(np.float64), grad.astype(np.float64), lr, F32)


@st.composite
def updates(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    return _weights(draw)


def _fits(fits, actual: np.ndarray) -> list[float]:
    return [fit.value for fit in fits if fit.bound.worst(actual) <= 1.0]


@examples(60)
@given(updates(), st.sampled_from((1e-4, 5e-4, 0.01, 0.3)))
def test_weight_decay_is_fitted_with_its_lambda(update, decay: float) -> None:
    w, grad, lr = update
    f32 = np.float32
    actual = (w - f32(lr) * (grad + f32(decay) * w)).astype(np.float64)  # SGD(weight_decay)
    right = _right(w, grad, lr)
    w64 = w.astype(np.float64)
    fits = _fitted.scaled_fits(actual, right.center, right.center, -lr * w64, right.radius, u=U)
    assert decay in _fits(fits, actual)


@examples(60)
@given(updates(), st.sampled_from((1.9, 1.5, 0.5, 3.0)))
def test_a_scaled_step_is_fitted_with_its_factor(update, scale: float) -> None:
    w, grad, lr = update
    f32 = np.float32
    actual = (w - f32(lr) * (grad + f32(scale - 1) * grad)).astype(np.float64)  # Nesterov-like
    right = _right(w, grad, lr)
    w64 = w.astype(np.float64)
    fits = _fitted.scaled_fits(
        actual, right.center, w64, right.center - w64, right.radius, u=U, excluded=(1.0,)
    )
    assert scale in _fits(fits, actual)


@examples(60)
@given(updates())
def test_an_adam_first_step_is_a_normalized_step(update) -> None:
    w, grad, lr = update
    f32 = np.float32
    m_hat = (f32(0.1) * grad) / f32(0.1)
    v_hat = (f32(0.001) * grad * grad) / f32(0.001)
    actual = (w - f32(lr) * m_hat / (np.sqrt(v_hat) + f32(1e-8))).astype(np.float64)
    grad_bound = bounds.Bound(grad.astype(np.float64), np.zeros(grad.shape))
    fits = _fitted.normalized_fits(actual, w.astype(np.float64), grad_bound, lr, u=U)
    assert 1.0 in _fits(fits, actual)


@examples(40)
@given(updates())
def test_a_bias_is_fitted_per_column(update) -> None:
    x, w, _ = update
    w = w.T.copy()  # (I, O) for x (N, I)
    bias = np.linspace(-0.5, 0.5, w.shape[1]).astype(np.float32) + np.float32(0.125)
    actual = (x @ w + bias).astype(np.float64)
    right = bounds.forward_bound(x.astype(np.float64), w.astype(np.float64), F32)
    fits = list(_fitted.column_offset_fits(actual, right, u=U))
    assert fits and all(fit.bound.worst(actual) <= 1.0 for fit in fits)
    assert fits[0].value == pytest.approx(float(np.abs(bias).max()), rel=1e-5)


def test_noise_is_not_explained_by_a_fit() -> None:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    grad = rng.standard_normal((4, 5)).astype(np.float32)
    right = _right(w, grad, 0.1)
    actual = right.center + rng.standard_normal(w.shape) * 1e-3
    w64 = w.astype(np.float64)
    decay = _fitted.scaled_fits(actual, right.center, right.center, -0.1 * w64, right.radius, u=U)
    scaled = _fitted.scaled_fits(
        actual, right.center, w64, right.center - w64, right.radius, u=U, excluded=(1.0,)
    )
    grad_bound = bounds.Bound(grad.astype(np.float64), np.zeros(grad.shape))
    normalized = _fitted.normalized_fits(actual, w64, grad_bound, 0.1, u=U)
    assert _fits(decay, actual) == _fits(scaled, actual) == _fits(normalized, actual) == []
    offsets = _fitted.column_offset_fits(actual, right, u=U)
    assert _fits(offsets, actual) == []


def test_one_element_fits_are_ambiguous() -> None:
    w = np.array([[2.0]])
    right = bounds.Bound(np.array([[1.5]]), np.array([[1e-7]]))
    actual = np.array([[1.0]])
    fits = list(_fitted.scaled_fits(actual, right.center, right.center, -w, right.radius, u=U))
    assert fits and all(fit.ambiguous for fit in fits)
