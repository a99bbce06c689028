"""An Equinox ``Linear`` with its bias left on (the default ``use_bias=True``)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


class BiasOn:
    def forward(self, x: np.ndarray, w: np.ndarray):
        linear = eqx.nn.Linear(w.shape[0], w.shape[1], key=jax.random.key(0))  # bias on
        linear = eqx.tree_at(lambda layer: layer.weight, linear, jnp.asarray(w).T)
        return jax.vmap(linear)(jnp.asarray(x))
