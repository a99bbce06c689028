"""An ``eqx.nn.Linear`` and ``optax.sgd`` checked as they are, without writing the contract's
functions (``verify.adapters`` turns them into the seven, ``weight`` = w.T, batched with
``jax.vmap``)::

    python -m verify check examples/equinox_module.py:candidate

Compare ``equinox_optax_layer.py``, the same by hand. Needs ``pip install -e ".[equinox]"``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import optax

import verify.adapters

model = eqx.nn.Linear(in_features=8, out_features=4, use_bias=False, key=jax.random.key(0))
candidate = verify.adapters.equinox_linear(model, optax.sgd)
