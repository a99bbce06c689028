"""``examples/triton_layer.py``'s masked matmul with one edge bug each, as kernel authors write
them, run in Triton's interpreter on torch tensors; forward, grad_x and grad_w run the kernel.

- ``FlooredGrid``: the grid is ``M // BLOCK_M`` by ``N // BLOCK_N``: the last partial block of
  rows and columns is never written (it keeps whatever ``torch.empty`` held).
- ``UnmaskedDepth``: the loads are masked at M and N but not at K: the last partial K step
  reads past each row of a (into the next row, or past the buffer) and past the last rows of b.
- ``SkippedPartialDepth``: the K loop runs ``K // BLOCK_K`` steps: the last partial step's
  products are missing from every sum.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")

# After TRITON_INTERPRET is set: Triton reads it when a kernel is decorated.
import triton
import triton.language as tl

BLOCK_M = BLOCK_N = BLOCK_K = 32


@triton.jit
def _kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    MASK_DEPTH: tl.constexpr,
    FLOOR_DEPTH: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    accumulator = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    steps = K // BLOCK_K if FLOOR_DEPTH else tl.cdiv(K, BLOCK_K)
    for k in range(0, steps):
        depth = k * BLOCK_K + tl.arange(0, BLOCK_K)
        a_mask = rows[:, None] < M
        b_mask = cols[None, :] < N
        if MASK_DEPTH:
            a_mask = a_mask & (depth[None, :] < K)
            b_mask = b_mask & (depth[:, None] < K)
        a = tl.load(
            a_ptr + rows[:, None] * stride_am + depth[None, :] * stride_ak, mask=a_mask, other=0.0
        )
        b = tl.load(
            b_ptr + depth[:, None] * stride_bk + cols[None, :] * stride_bn, mask=b_mask, other=0.0
        )
        accumulator += tl.dot(a, b, input_precision="ieee")
    tl.store(
        c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn,
        accumulator.to(c_ptr.dtype.element_ty),
        mask=(rows[:, None] < M) & (cols[None, :] < N),
    )


def matmul(a, b, *, floored=False, masked=True, floored_depth=False):
    (rows, depth), columns = a.shape, b.shape[1]
    c = torch.empty((rows, columns), dtype=a.dtype)
    blocks = (lambda n, size: n // size) if floored else triton.cdiv
    grid = (blocks(rows, BLOCK_M), blocks(columns, BLOCK_N))
    if 0 in grid:
        return c  # Triton refuses an empty grid; the floored kernel would write nothing
    _kernel[grid](
        a, b, c, rows, columns, depth,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K,
        MASK_DEPTH=masked, FLOOR_DEPTH=floored_depth,
    )  # fmt: skip
    return c


class _Layer:
    bug: ClassVar[dict[str, bool]] = {}

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array)

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
