"""The layer as a Flax NNX module: a correct implementation to copy, and to check with

    python -m verify check examples/flax_layer.py

written the way Flax users write it: ``nnx.Linear`` without a bias (its kernel is ``(I, O)``,
so ``w`` itself), the loss ``sum |model(x) - target|``, gradients from ``nnx.value_and_grad``
(and ``jax.grad`` for dL_dx), the SGD step on the kernel. Matmuls ask for ``"highest"``
precision (JAX's default may be TF32 on a GPU). Needs ``pip install -e ".[flax]"``.
Shapes: x (N, I), w (I, O), target and output (N, O).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _model(w: jax.Array) -> nnx.Linear:
    """An ``nnx.Linear(I, O, use_bias=False)`` whose kernel is ``w``."""
    i, o = w.shape
    model = nnx.Linear(
        i,
        o,
        use_bias=False,
        precision="highest",
        dtype=w.dtype,
        param_dtype=w.dtype,
        rngs=nnx.Rngs(0),
    )
    model.kernel.value = w
    return model


@jax.jit
def forward(x, w):
    return _model(w)(x)


@jax.jit
def loss(output, target):
    return jnp.sum(jnp.abs(output - target))


@jax.jit
def step(x, w, target, lr):
    """``(L, dL_dx, dL_dw, w_new)`` with NNX's gradients and a plain SGD step on the kernel."""
    model = _model(w)

    def objective(model: nnx.Linear, x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.abs(model(x) - target))

    value, grads = nnx.value_and_grad(objective)(model, x)
    dL_dx = jax.grad(objective, argnums=1)(model, x)
    dL_dw = grads.kernel.value
    w_new = model.kernel.value - jnp.asarray(lr, dL_dw.dtype) * dL_dw
    return value, dL_dx, dL_dw, w_new
