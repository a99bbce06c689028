"""verify._inputs: one input policy for every public function of the JAX layer, jitted, padded and
sharded. Integers and bools are promoted to a float dtype (never truncated or overflowed),
complex is rejected naming the argument, lr must be a finite real scalar (checked on the host,
propagated under the caller's own jit), NaN and inf in arrays propagate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference
import verify

# The issue's example: w = I and lr = 0.5 make an integer update truncate w_new back to w.
X = np.array([[1, 2], [3, 4]])
W = np.eye(2, dtype=np.int64)
TARGET = np.zeros((2, 2), dtype=np.int64)  # no ties: every output is > 0
LR = 0.5


def _sharded(x: Any, w: Any, target: Any, lr: Any) -> Any:
    return verify.sharded_step(x, w, target, lr, mesh=verify.step_mesh(1, 1))


def _chain(x: Any, w: Any, target: Any) -> Any:
    return verify.chain(x, w, w, target)


def _padded_chain(x: Any, w: Any, target: Any) -> Any:
    return verify.padded_chain(x, w, w, target)


def _autodiff_chain(x: Any, w: Any, target: Any) -> Any:
    return verify.autodiff_chain(x, w, w, target)


def _reference_chain(x: Any, w: Any, target: Any) -> Any:
    return reference.chain(x, w, w, target)


#: name -> (verify's function, reference's, argument names; ``lr`` last where it takes one).
FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any], tuple[str, ...]]] = {
    "forward": (verify.forward, reference.forward, ("x", "w")),
    "l1_loss": (verify.l1_loss, reference.l1_loss, ("output", "target")),
    "loss_grad": (verify.loss_grad, reference.loss_grad, ("output", "target")),
    "grad_x": (verify.grad_x, reference.grad_x, ("dL_do", "w")),
    "grad_w": (verify.grad_w, reference.grad_w, ("x", "dL_do")),
    "update": (verify.update, reference.update, ("w", "dL_dw", "lr")),
    "step": (verify.step, reference.step, ("x", "w", "target", "lr")),
    "autodiff_step": (verify.autodiff_step, reference.step, ("x", "w", "target", "lr")),
    "padded_step": (verify.padded_step, reference.step, ("x", "w", "target", "lr")),
    "padded_autodiff_step": (
        verify.padded_autodiff_step,
        reference.step,
        ("x", "w", "target", "lr"),
    ),
    "sharded_step": (_sharded, reference.step, ("x", "w", "target", "lr")),
    "chain": (_chain, _reference_chain, ("x", "w", "target")),
    "autodiff_chain": (_autodiff_chain, _reference_chain, ("x", "w", "target")),
    "padded_chain": (_padded_chain, _reference_chain, ("x", "w", "target")),
}

#: Integer values for every argument name (``output`` is x @ w, ``dL_do`` non-unit).
VALUES: dict[str, np.ndarray] = {
    "x": X,
    "w": W,
    "target": TARGET,
    "output": X @ W,
    "dL_do": np.array([[2, -1], [0, 3]]),
    "dL_dw": np.array([[4, 4], [6, 6]]),
}


def _arguments(names: tuple[str, ...], dtype: Any, lr: Any = LR) -> list[Any]:
    return [lr if name == "lr" else VALUES[name].astype(dtype) for name in names]


def _leaves(result: Any) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tuple(np.atleast_1d(result)))]


def _results(result: Any) -> list[np.ndarray]:
    if isinstance(result, tuple):
        return [np.asarray(value, np.float64) for value in result]
    return [np.asarray(result, np.float64)]


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.bool_], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_integer_and_bool_inputs_are_promoted_to_float_never_truncated(name: str, dtype) -> None:
    function, loop, names = FUNCTIONS[name]
    arguments = _arguments(names, dtype)
    got, want = function(*arguments), loop(*arguments)
    for value in jax.tree_util.tree_leaves(got):
        assert jnp.issubdtype(jnp.result_type(value), jnp.floating), (name, value)
    # Small integers, lr = 0.5: every result is exact in float32 and equals the loop reference.
    for got_value, want_value in zip(_results(got), _results(want), strict=True):
        np.testing.assert_array_equal(got_value, want_value, err_msg=name)


def test_the_issues_integer_step_updates_w() -> None:
    w_new = verify.step(X.astype(np.int32), W.astype(np.int32), TARGET, LR).w_new
    np.testing.assert_array_equal(w_new, [[-1, -2], [-3, -2]])
    assert w_new.dtype == jax.dtypes.canonicalize_dtype(np.float64)


def test_int8_forward_does_not_overflow() -> None:
    x, w = np.full((2, 200), 100, np.int8), np.ones((200, 1), np.int8)
    np.testing.assert_array_equal(verify.forward(x, w), [[20000], [20000]])


def test_a_float_partner_keeps_its_dtype() -> None:
    # JAX's promotion: int with float16 is float16 (the float's width wins), float32 stays.
    x, w = np.array([[1, 2]]), np.array([[1.5], [2.0]], np.float16)
    assert verify.forward(x, w).dtype == np.float16
    assert verify.forward(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("name", FUNCTIONS)
def test_complex_inputs_are_rejected_naming_the_argument(name: str) -> None:
    function, _, names = FUNCTIONS[name]
    for position, argument in enumerate(names):
        if argument == "lr":
            continue
        arguments = _arguments(names, np.float32)
        arguments[position] = arguments[position].astype(np.complex64)
        shown = {"w": "w1"}.get(argument, argument) if "chain" in name else argument
        with pytest.raises(TypeError, match=rf"^{shown} must hold real numbers .* complex64"):
            function(*arguments)


@pytest.mark.parametrize("name", [n for n, (_, _, names) in FUNCTIONS.items() if "lr" in names])
@pytest.mark.parametrize(
    ("lr", "error", "message"),
    [
        (float("nan"), ValueError, r"lr = nan: must be finite"),
        (np.float32("inf"), ValueError, r"lr = inf: must be finite"),
        (-np.inf, ValueError, r"lr = -inf: must be finite"),
        (1j, TypeError, r"lr must hold real numbers .* complex"),
        (np.ones(2), ValueError, r"lr must be a scalar, got shape \(2,\)"),
    ],
    ids=["nan", "inf", "-inf", "complex", "vector"],
)
def test_lr_must_be_a_finite_real_scalar(name: str, lr: Any, error: type, message: str) -> None:
    function, _, names = FUNCTIONS[name]
    with pytest.raises(error, match=message):
        function(*_arguments(names, np.float32, lr=lr))


@pytest.mark.parametrize("lr", [1, True, np.float16(0.5), np.array(0.25)], ids=repr)
def test_integer_bool_and_numpy_lr_are_accepted(lr: Any) -> None:
    w_new = verify.update(W.astype(np.float32), VALUES["dL_dw"].astype(np.float32), lr)
    np.testing.assert_array_equal(w_new, reference.update(W, VALUES["dL_dw"], float(lr)))


def test_lr_under_the_callers_jit_is_traced_and_propagates() -> None:
    # Documented: a traced lr cannot be checked without a device sync; NaN reaches w_new.
    stepped = jax.jit(lambda lr: verify.step(X, W, TARGET, lr).w_new)
    assert np.isnan(np.asarray(stepped(jnp.nan))).all()
    np.testing.assert_array_equal(stepped(LR), [[-1, -2], [-3, -2]])


def test_nan_and_inf_propagate_as_documented() -> None:
    x = np.array([[np.nan, 1.0], [1.0, 2.0]], np.float32)
    output = np.asarray(verify.forward(x, np.eye(2, dtype=np.float32)))
    assert np.isnan(output[0]).all() and np.isfinite(output[1]).all()
    output = np.array([[np.inf, np.nan, 1.0, np.inf]], np.float32)
    target = np.array([[1.0, 0.0, np.inf, np.inf]], np.float32)
    dL_do = np.asarray(verify.loss_grad(output, target))
    # +inf - 1 > 0: +1; NaN: NaN; 1 - inf < 0: -1; inf - inf is NaN: NaN, never a tie's -1.
    np.testing.assert_array_equal(dL_do[0, [0, 2]], [1.0, -1.0])
    assert np.isnan(dL_do[0, [1, 3]]).all()
    assert np.isinf(verify.l1_loss(output[:, :1], target[:, :1]))


def test_the_checked_functions_are_still_the_jitted_ones() -> None:
    assert verify.step.__name__ == "step" and "fused SGD step" in (verify.step.__doc__ or "")
    spec = jax.ShapeDtypeStruct((2, 2), np.float32)
    scalar = jax.ShapeDtypeStruct((), np.float32)
    compiled = verify.step.lower(spec, spec, spec, scalar).compile()
    x, w, target = (np.asarray(a, np.float32) for a in (X, W, TARGET))
    for got, want in zip(
        compiled(x, w, target, np.float32(LR)), verify.step(x, w, target, LR), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    # One compile per shape, none per learning rate: the jit cache behind the lr check.
    verify.update.clear_cache()
    assert verify.update._cache_size() == 0
    verify.update(w, w, 0.5)
    verify.update(w, w, 0.25)
    assert verify.update._cache_size() == 1
    verify.update(np.ones((3, 2), np.float32), np.ones((3, 2), np.float32), 0.5)
    assert verify.update._cache_size() == 2
