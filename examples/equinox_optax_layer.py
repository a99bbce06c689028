"""The layer as an Equinox module, trained by an optax optimiser: a correct implementation to copy,
and to check with

    python -m verify check examples/equinox_optax_layer.py

written the way Equinox and optax users write it: ``eqx.nn.Linear`` without a bias (its weight is
``(O, I)``, so ``w = weight.T``), the loss ``sum |model(x) - target|`` over the batch with
``jax.vmap``, gradients from ``eqx.filter_value_and_grad`` (and ``jax.grad`` for dL_dx), the SGD
step from ``optax.sgd(lr)``. Matmuls ask for ``"highest"`` precision (JAX's default may be TF32
on a GPU). Needs ``pip install -e ".[equinox]"``. Shapes: x (N, I), w (I, O), target (N, O).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax


def _model(w: jax.Array) -> eqx.nn.Linear:
    """An ``eqx.nn.Linear(I, O, use_bias=False)`` holding ``w`` (its weight is ``w.T``)."""
    i, o = w.shape
    model = eqx.nn.Linear(i, o, use_bias=False, key=jax.random.key(0))
    return eqx.tree_at(lambda m: m.weight, model, jnp.asarray(w).T)


def _loss(model: eqx.nn.Linear, x: jax.Array, target: jax.Array) -> jax.Array:
    with jax.default_matmul_precision("highest"):
        return jnp.sum(jnp.abs(jax.vmap(model)(x) - target))


@jax.jit
def forward(x, w):
    with jax.default_matmul_precision("highest"):
        return jax.vmap(_model(w))(x)


@jax.jit
def loss(output, target):
    return jnp.sum(jnp.abs(output - target))


@jax.jit
def step(x, w, target, lr):
    """``(L, dL_dx, dL_dw, w_new)``: Equinox gradients, one ``optax.sgd`` update."""
    model = _model(w)
    value, grads = eqx.filter_value_and_grad(_loss)(model, x, target)
    dL_dx = jax.grad(_loss, argnums=1)(model, x, target)
    optimiser = optax.sgd(lr)
    updates, _ = optimiser.update(grads, optimiser.init(model))
    trained = eqx.apply_updates(model, updates)
    return value, dL_dx, grads.weight.T, trained.weight.T
