"""The independent oracle: ``jax.value_and_grad`` of the L1 loss, with respect to x, w (and b).

Nothing here is hand-derived; JAX differentiates ``sum |x @ w - target|`` itself. At a tie
``jax.grad(jnp.abs)(0.0)`` is +1 (the JVP is ``select(x >= 0, g, -g)``; ``bounds.TIE_CONVENTIONS
["jax"]``), where the hand-written layer and the notebook take -1; both are valid subgradients.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._inputs import LrChecked, StepOf, learning_rate, real
from ._layer import DEFAULT_PRECISION, BiasStepResult, ChainResult, Precision, StepResult


def l1_objective(
    x, w, target, precision: Precision = DEFAULT_PRECISION, *, b=None
) -> Float[Array, ""]:
    """``L(x, w) = sum |x @ w - target|`` (``L(x, w, b) = sum |x @ w + b - target|`` with a
    bias of shape ``(O,)``), the function ``jax.grad`` differentiates."""
    output = jnp.matmul(x, w, precision=precision)
    if b is not None:
        output = output + b[None, :]
    return jnp.sum(jnp.abs(output - target))


@partial(jax.jit, static_argnames="precision")
def _autodiff_step(
    x: Float[ArrayLike, "N I"],
    w: Float[ArrayLike, "I O"],
    target: Float[ArrayLike, "N O"],
    lr: ArrayLike,
    *,
    precision: Precision = DEFAULT_PRECISION,
) -> StepResult:
    """``(L, dL_dx, dL_dw, w - lr * dL_dw)`` with both gradients from ``jax.value_and_grad``.

    Inputs as ``verify.step``'s (``_inputs``: integers promoted to a float dtype, complex
    rejected).

    Args:
      x: ``(N, I)``.
      w: ``(I, O)``.
      target: ``(N, O)``.
      lr: scalar.
      precision: the matmul precision, as ``verify.step``'s.
    """
    x, w, target = real(x=x, w=w, target=target)
    lr = learning_rate(lr)
    loss, (dL_dx, dL_dw) = jax.value_and_grad(l1_objective, argnums=(0, 1))(x, w, target, precision)
    return StepResult(loss, dL_dx, dL_dw, w - lr.astype(w.dtype) * dL_dw)


@partial(jax.jit, static_argnames="precision")
def _autodiff_bias_step(
    x: Float[ArrayLike, "N I"],
    w: Float[ArrayLike, "I O"],
    b: Float[ArrayLike, " O"],
    target: Float[ArrayLike, "N O"],
    lr: ArrayLike,
    *,
    precision: Precision = DEFAULT_PRECISION,
) -> BiasStepResult:
    """``(L, dL_dx, dL_dw, dL_db, w - lr * dL_dw, b - lr * dL_db)``, all three gradients from
    ``jax.value_and_grad`` of ``sum |x @ w + b - target|``; shapes as ``verify.step``'s."""
    x, w, b, target = real(x=x, w=w, b=b, target=target)
    lr = learning_rate(lr)

    def objective(x, w, b):
        return l1_objective(x, w, target, precision, b=b)

    loss, (dL_dx, dL_dw, dL_db) = jax.value_and_grad(objective, argnums=(0, 1, 2))(x, w, b)
    rate = lr.astype(w.dtype)
    return BiasStepResult(loss, dL_dx, dL_dw, dL_db, w - rate * dL_dw, b - rate * dL_db)


#: ``autodiff_step(x, w, target, lr)`` or ``autodiff_step(x, w, b, target, lr)``.
autodiff_step = StepOf(
    LrChecked(_autodiff_step, position=3), LrChecked(_autodiff_bias_step, position=4)
)


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
