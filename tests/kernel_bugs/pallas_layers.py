"""``examples/pallas_layer.py``'s blocked matmul with one edge bug each, as kernel authors write
them; forward, grad_x and grad_w run the kernel (the rest of the contract is not needed).

- ``FlooredGrid``: the grid is ``rows // BLOCK_M`` (and columns likewise), so the last partial
  block of rows and columns is never written: those elements keep what the output buffer
  held (NaN in the interpreter).
- ``UnmaskedDepth``: the last K step's padding (past the depth) is not zeroed, so the padding
  the interpreter fills with NaN flows into every output element whenever BLOCK_K does not
  divide K.
- ``SkippedPartialDepth``: the K grid is ``depth // BLOCK_K``: the last partial K step never
  runs, and its products are missing from the sum (no NaN: a wrong value).
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

BLOCK_M = BLOCK_N = BLOCK_K = 32


def _kernel(a_ref, b_ref, o_ref, *, depth: int, masked: bool):
    k = pl.program_id(2)

    @pl.when(k == 0)
    def _start():
        o_ref[...] = jnp.zeros_like(o_ref)

    a, b = a_ref[...], b_ref[...]
    if masked:
        a_columns = k * BLOCK_K + jax.lax.broadcasted_iota(jnp.int32, a_ref.shape, 1)
        b_rows = k * BLOCK_K + jax.lax.broadcasted_iota(jnp.int32, b_ref.shape, 0)
        a = jnp.where(a_columns < depth, a, 0)
        b = jnp.where(b_rows < depth, b, 0)
    o_ref[...] += jnp.dot(a, b, preferred_element_type=o_ref.dtype)


@functools.partial(jax.jit, static_argnames=("floored", "masked", "floored_depth"))
def matmul(a, b, *, floored=False, masked=True, floored_depth=False):
    (rows, depth), columns = a.shape, b.shape[1]
    blocks = (lambda n, size: n // size) if floored else pl.cdiv
    k_steps = depth // BLOCK_K if floored_depth else pl.cdiv(depth, BLOCK_K)
    grid = (blocks(rows, BLOCK_M), blocks(columns, BLOCK_N), k_steps)
    return pl.pallas_call(
        functools.partial(_kernel, depth=depth, masked=masked),
        out_shape=jax.ShapeDtypeStruct((rows, columns), a.dtype),
        grid=grid,
        in_specs=[
            pl.BlockSpec((BLOCK_M, BLOCK_K), lambda i, j, k: (i, k)),
            pl.BlockSpec((BLOCK_K, BLOCK_N), lambda i, j, k: (k, j)),
        ],
        out_specs=pl.BlockSpec((BLOCK_M, BLOCK_N), lambda i, j, k: (i, j)),
        interpret=True,
    )(a, b)


class _Layer:
    bug: ClassVar[dict[str, bool]] = {}

    def forward(self, x, w):
        return matmul(x, w, **self.bug)

    def grad_x(self, dL_do, w):
        return matmul(dL_do, w.T, **self.bug)

    def grad_w(self, x, dL_do):
        return matmul(x.T, dL_do, **self.bug)


class FlooredGrid(_Layer):
    bug: ClassVar[dict[str, bool]] = {"floored": True}


class UnmaskedDepth(_Layer):
    bug: ClassVar[dict[str, bool]] = {"masked": False}


class SkippedPartialDepth(_Layer):
    bug: ClassVar[dict[str, bool]] = {"floored_depth": True}
