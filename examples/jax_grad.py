"""The layer in plain JAX with ``jax.grad``: a correct implementation to copy, and to check with

    python -m verify check examples/jax_grad.py

Matmuls ask for ``precision="highest"``: JAX's default on GPUs may be TF32 and on TPUs one
bfloat16 pass, which the oracle reports as reduced precision (declare it with
``--matmul-precision tf32`` if that is what you want). float64 needs ``JAX_ENABLE_X64=1``.
Shapes: x (N, I), w (I, O), target and output (N, O).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PRECISION = "highest"


def l1_objective(x, w, target):
    """``L(x, w) = sum |x @ w - target|``: what jax.grad differentiates."""
    return jnp.sum(jnp.abs(jnp.matmul(x, w, precision=PRECISION) - target))


@jax.jit
def forward(x, w):
    return jnp.matmul(x, w, precision=PRECISION)


@jax.jit
def loss(output, target):
    return jnp.sum(jnp.abs(output - target))


@jax.jit
def loss_grad(output, target):
    """``dL_do`` by jax.grad of the loss in the output: +1 at ties (jnp.abs's convention)."""
    return jax.grad(loss)(output, target)


@jax.jit
def step(x, w, target, lr):
    """``(L, dL_dx, dL_dw, w - lr * dL_dw)`` with both gradients from ``jax.value_and_grad``."""
    value, (dL_dx, dL_dw) = jax.value_and_grad(l1_objective, argnums=(0, 1))(x, w, target)
    return value, dL_dx, dL_dw, w - jnp.asarray(lr, w.dtype) * dL_dw
