"""A Flax NNX ``nnx.Linear`` and ``optax.sgd`` checked as they are, without writing the
contract's functions (``verify.adapters`` turns them into the seven, ``kernel`` = w)::

    python -m verify check examples/flax_module.py:candidate

Compare ``flax_layer.py``, the same by hand. ``precision="highest"``: JAX's default float32
matmul may be TF32 on a GPU. Needs ``pip install -e ".[flax]"``.
"""

from __future__ import annotations

import optax
from flax import nnx

import verify.adapters

model = nnx.Linear(8, 4, use_bias=False, precision="highest", rngs=nnx.Rngs(0))
candidate = verify.adapters.flax_linear(model, optax.sgd)
