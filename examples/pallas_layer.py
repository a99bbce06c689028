"""The layer's three matmuls as one blocked Pallas kernel, checked before any accelerator::

    python -m verify check examples/pallas_layer.py                     # float32
    python -m verify check examples/pallas_layer.py --dtype bfloat16

``forward``, ``grad_x`` and ``grad_w`` run ``matmul``, a ``pl.pallas_call`` over a grid of
(BLOCK_M, BLOCK_N) output blocks with a loop over K in steps of BLOCK_K (the grid's last axis,
accumulating into the output block, as the Pallas TPU matmul does). On a TPU it is compiled;
anywhere else it runs in Pallas's interpreter (``interpret=True``), which fills what a block
reads past an array's end with NaN, so that a kernel reading padding is caught on a CPU. The
remaining functions are plain ``jax.numpy``.

Blocks of 32 make the oracle's shapes (sides up to 257) meet partial blocks in every axis
(127, 128, 129, 257 rows), and keep the interpreted grid small: a full check takes about a
minute on one CPU core (docs/kernels.md). Shapes: x (N, I), w (I, O), output and target (N, O).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

#: Rows and columns of one output block, and the depth of one step over K.
BLOCK_M = BLOCK_N = BLOCK_K = 32

#: Compiled on a TPU, where the grid runs in order and the output block stays resident across
#: the K steps; interpreted elsewhere (CPU, and GPUs, whose grid runs in parallel).
INTERPRET = jax.default_backend() != "tpu"


def _matmul_kernel(a_ref, b_ref, o_ref, *, depth: int):
    """``o += a_k @ b_k`` for the grid's K step k; zeroes ``o`` at the first."""
    k = pl.program_id(2)

    @pl.when(k == 0)
    def _start():
        o_ref[...] = jnp.zeros_like(o_ref)

    # The last K step reads past the depth when BLOCK_K does not divide it: those columns of a
    # and rows of b are padding (NaN in the interpreter, anything on a device): zero them.
    a_columns = k * BLOCK_K + jax.lax.broadcasted_iota(jnp.int32, a_ref.shape, 1)
    b_rows = k * BLOCK_K + jax.lax.broadcasted_iota(jnp.int32, b_ref.shape, 0)
    a = jnp.where(a_columns < depth, a_ref[...], 0)
    b = jnp.where(b_rows < depth, b_ref[...], 0)
    o_ref[...] += jnp.dot(a, b, preferred_element_type=o_ref.dtype)


@jax.jit
def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b`` for a (M, K) and b (K, N), by the blocked kernel; the result in a's dtype.

    Half-precision inputs accumulate in float32 (the output block is float32, rounded once at
    the end), as XLA's own matmul does.
    """
    (rows, depth), columns = a.shape, b.shape[1]
    accumulator = jnp.promote_types(a.dtype, jnp.float32)
    # cdiv, not //: a floored grid never writes the last partial block of rows or columns.
    grid = (pl.cdiv(rows, BLOCK_M), pl.cdiv(columns, BLOCK_N), pl.cdiv(depth, BLOCK_K))
    product = pl.pallas_call(
        functools.partial(_matmul_kernel, depth=depth),
        out_shape=jax.ShapeDtypeStruct((rows, columns), accumulator),
        grid=grid,
        in_specs=[
            pl.BlockSpec((BLOCK_M, BLOCK_K), lambda i, j, k: (i, k)),
            pl.BlockSpec((BLOCK_K, BLOCK_N), lambda i, j, k: (k, j)),
        ],
        out_specs=pl.BlockSpec((BLOCK_M, BLOCK_N), lambda i, j, k: (i, j)),
        interpret=INTERPRET,
    )(a, b)
    return product.astype(a.dtype)


def forward(x: jax.Array, w: jax.Array) -> jax.Array:
    """``output = x @ w``, (N, O)."""
    return matmul(x, w)


def grad_x(dL_do: jax.Array, w: jax.Array) -> jax.Array:
    """``dL_dx = dL_do @ w.T``, (N, I)."""
    return matmul(dL_do, w.T)


def grad_w(x: jax.Array, dL_do: jax.Array) -> jax.Array:
    """``dL_dw = x.T @ dL_do``, (I, O)."""
    return matmul(x.T, dL_do)


@jax.jit
def loss(output: jax.Array, target: jax.Array) -> jax.Array:
    """``L = sum |output - target|`` (a sum, not a mean), accumulated in at least float32."""
    accumulator = jnp.promote_types(output.dtype, jnp.float32)
    return jnp.sum(jnp.abs(output - target), dtype=accumulator).astype(output.dtype)


@jax.jit
def loss_grad(output: jax.Array, target: jax.Array) -> jax.Array:
    """``dL_do = +1 where output > target, else -1`` (the seed's -1 at ties), (N, O)."""
    return jnp.where(output > target, 1, -1).astype(output.dtype)


@jax.jit
def update(w: jax.Array, dL_dw: jax.Array, lr: float) -> jax.Array:
    """``w_new = w - lr * dL_dw``."""
    return w - jnp.asarray(lr, w.dtype) * dL_dw


def step(x: jax.Array, w: jax.Array, target: jax.Array, lr: float):
    """One SGD step, the matmuls by the kernel: ``(L, dL_dx, dL_dw, w_new)``."""
    output = forward(x, w)
    dL_do = loss_grad(output, target)
    dL_dw = grad_w(x, dL_do)
    return loss(output, target), grad_x(dL_do, w), dL_dw, update(w, dL_dw, lr)
