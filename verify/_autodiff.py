"""The independent oracle: ``jax.value_and_grad`` of the L1 loss, with respect to x, w (and b).

Nothing here is hand-derived; JAX differentiates ``sum |x @ w - target|`` itself. At a tie
``jax.grad(jnp.abs)(0.0)`` is +1 (the JVP is ``select(x >= 0, g, -g)``; ``bounds.TIE_CONVENTIONS
["jax"]``), where the hand-written layer and the notebook take -1; both are valid subgradients.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

import reference

from ._inputs import StepOf, learning_rate, real
from ._layer import (
    DEFAULT_PRECISION,
    BiasStepResult,
    ChainResult,
    Precision,
    StepResult,
    step_result,
)
from ._params import Params, parameters


def l1_objective(
    x, w, target, precision: Precision = DEFAULT_PRECISION, *, b=None
) -> Float[Array, ""]:
    """``L(x, w) = sum |x @ w - target|`` (``L(x, w, b) = sum |x @ w + b - target|`` with a
    bias of shape ``(O,)``), the function ``jax.grad`` differentiates."""
    return tree_objective(x, parameters(w, b), target, precision)


#: How each parameter enters the output, as ``jnp`` writes it: ``x @ w``, ``b`` per row.
_TERMS: dict[str, Callable[[Array, Array, Precision], Array]] = {
    "w": lambda x, w, precision: jnp.matmul(x, w, precision=precision),
    "b": lambda x, b, precision: b[None, :],
}


def tree_objective(
    x, params: Params, target, precision: Precision = DEFAULT_PRECISION
) -> Float[Array, ""]:
    """``l1_objective`` of the parameter tree ``{"w": w}`` or ``{"w": w, "b": b}``: what
    ``jax.grad`` differentiates with respect to x and every parameter at once."""
    terms = (_TERMS[name](x, value, precision) for name, value in params.items())
    output = functools.reduce(operator.add, terms)
    return jnp.sum(jnp.abs(output - target))


@partial(jax.jit, static_argnames="precision")
def _autodiff_step(
    x: Float[ArrayLike, "N I"],
    w: Float[ArrayLike, "I O"],
    *args: ArrayLike,
    precision: Precision = DEFAULT_PRECISION,
) -> StepResult | BiasStepResult:
    """``(L, dL_dx, dL_dw, w - lr * dL_dw)`` with every gradient from ``jax.value_and_grad``;
    with a bias (``autodiff_step(x, w, b, target, lr)``) ``(L, dL_dx, dL_dw, dL_db,
    w - lr * dL_dw, b - lr * dL_db)`` of ``sum |x @ w + b - target|``.

    Inputs as ``verify.step``'s (``_inputs``: integers promoted to a float dtype, complex
    rejected): x ``(N, I)``, w ``(I, O)``, b ``(O,)``, target ``(N, O)``, lr a scalar;
    ``precision`` the matmul precision, as ``verify.step``'s.
    """
    b, target, lr = reference.step_arguments("autodiff_step", args, {})
    params = parameters(w, b)
    x, *values, target = real(x=x, **params, target=target)
    params = dict(zip(params, values, strict=True))
    lr = learning_rate(lr)
    loss, (dL_dx, grads) = jax.value_and_grad(tree_objective, argnums=(0, 1))(
        x, params, target, precision
    )
    rate = lr.astype(params["w"].dtype)
    new = jax.tree.map(lambda value, grad: value - rate * grad, params, grads)
    return step_result(loss, dL_dx, grads, new)


#: ``autodiff_step(x, w, target, lr)`` or ``autodiff_step(x, w, b, target, lr)``.
autodiff_step = StepOf(_autodiff_step)


@partial(jax.jit, static_argnames="precision")
def autodiff_chain(x, w1, w2, target, *, precision: Precision = DEFAULT_PRECISION) -> ChainResult:
    """``jax.value_and_grad`` through ``h = x @ w1``, ``output = h @ w2`` for x, w1, h and w2."""
    x, w1, w2, target = real(x=x, w1=w1, w2=w2, target=target)

    def objective(x, w1, w2):
        h = jnp.matmul(x, w1, precision=precision)
        return jnp.sum(jnp.abs(jnp.matmul(h, w2, precision=precision) - target))

    loss, (dL_dx, dL_dw1, dL_dw2) = jax.value_and_grad(objective, argnums=(0, 1, 2))(x, w1, w2)
    h = jnp.matmul(x, w1, precision=precision)
    dL_dh = jax.grad(lambda h: jnp.sum(jnp.abs(jnp.matmul(h, w2, precision=precision) - target)))(h)
    return ChainResult(loss=loss, dL_dx=dL_dx, dL_dw1=dL_dw1, dL_dh=dL_dh, dL_dw2=dL_dw2)
