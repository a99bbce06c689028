"""optax transformations other than plain SGD, as ``update(w, dL_dw, lr)``: a fresh optimizer
state per call (its first step), ``optax.apply_updates`` for the step."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax


class OptaxUpdate:
    def make(self, lr: float) -> optax.GradientTransformation:
        return optax.sgd(lr)

    def update(self, w: np.ndarray, dL_dw: np.ndarray, lr: float):
        optimizer = self.make(lr)
        w, dL_dw = jnp.asarray(w), jnp.asarray(dL_dw)
        updates, _ = optimizer.update(dL_dw, optimizer.init(w), w)
        return optax.apply_updates(w, updates)


class Nesterov(OptaxUpdate):
    def make(self, lr: float) -> optax.GradientTransformation:
        return optax.sgd(lr, momentum=0.9, nesterov=True)


class Adam(OptaxUpdate):
    def make(self, lr: float) -> optax.GradientTransformation:
        return optax.adam(lr)


class DecayedWeights(OptaxUpdate):
    def make(self, lr: float) -> optax.GradientTransformation:
        return optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(lr))
