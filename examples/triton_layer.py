"""The layer's three matmuls as one masked Triton kernel on torch tensors, checked on a CPU::

    python -m verify check examples/triton_layer.py                     # float32
    python -m verify check examples/triton_layer.py --dtype float16

``forward``, ``grad_x`` and ``grad_w`` run ``matmul``: one Triton program per (BLOCK_M,
BLOCK_N) output block, a loop over K in steps of BLOCK_K, every load and the store masked at
the arrays' ends, ``tl.dot`` accumulating in float32. Without a CUDA device the kernel runs in
Triton's interpreter (``TRITON_INTERPRET=1``, set here before Triton is imported, unless set
already), in numpy on the CPU. The remaining functions are plain torch.

Blocks of 32 (``tl.dot`` needs at least 16) make the oracle's shapes meet partial blocks in
every axis; a full check takes about a minute interpreted (docs/kernels.md). Needs
``pip install -e ".[triton]"`` (Triton and the CPU wheel of PyTorch).
"""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# After TRITON_INTERPRET is set: Triton reads it when a kernel is decorated.
import triton
import triton.language as tl

#: Rows and columns of one program's output block, and the depth of one step of its K loop.
BLOCK_M = BLOCK_N = BLOCK_K = 32

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

#: Triton's interpreter does not support bfloat16 (``tl.dot`` multiplies the raw bit patterns,
#: triton-lang/triton#11584, and its casts lose subnormals): interpreted, bfloat16 inputs go to
#: the kernel as float32 (exactly), and the float32 result is rounded once by torch.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _matmul_kernel(
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
    ACCUMULATOR: tl.constexpr,
):
    """``c[rows, cols] = a[rows, :] @ b[:, cols]`` for this program's block, summed in
    ACCUMULATOR."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    accumulator = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACCUMULATOR)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        depth = k * BLOCK_K + tl.arange(0, BLOCK_K)
        # Masked at both ends: rows/cols past M/N and, in the last step, depth past K read 0,
        # so a partial block adds nothing that is not in the arrays.
        a = tl.load(
            a_ptr + rows[:, None] * stride_am + depth[None, :] * stride_ak,
            mask=(rows[:, None] < M) & (depth[None, :] < K),
            other=0.0,
        )
        b = tl.load(
            b_ptr + depth[:, None] * stride_bk + cols[None, :] * stride_bn,
            mask=(depth[:, None] < K) & (cols[None, :] < N),
            other=0.0,
        )
        # ieee: full float32 products (a GPU would otherwise use TF32 for float32 inputs).
        accumulator += tl.dot(a, b, input_precision="ieee", out_dtype=ACCUMULATOR)
    tl.store(
        c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn,
        accumulator.to(c_ptr.dtype.element_ty),
        mask=(rows[:, None] < M) & (cols[None, :] < N),
    )


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for a (M, K) and b (K, N) (any strides: ``w.T`` is a view), in a's dtype.

    Half-precision inputs are summed in float32 and rounded once, by torch, at the end (the
    interpreter's own float32 -> bfloat16 store does not round to nearest).
    """
    dtype = a.dtype
    if INTERPRETED and dtype == torch.bfloat16:
        a, b = a.float(), b.float()
    (rows, depth), columns = a.shape, b.shape[1]
    c = torch.empty(
        (rows, columns), dtype=torch.promote_types(a.dtype, torch.float32), device=a.device
    )
    # cdiv, not //: a floored grid never writes the last partial block of rows or columns.
    grid = (triton.cdiv(rows, BLOCK_M), triton.cdiv(columns, BLOCK_N))
    _matmul_kernel[grid](
        a,
        b,
        c,
        rows,
        columns,
        depth,
        a.stride(0),
        a.stride(1),
        b.stride(0),
        b.stride(1),
        c.stride(0),
        c.stride(1),
        BLOCK_M=BLOCK_M,
        BLOCK_N=BLOCK_N,
        BLOCK_K=BLOCK_K,
        # Sums in float32, as cuBLAS does for half inputs; float64 in float64.
        ACCUMULATOR=tl.float64 if a.dtype == torch.float64 else tl.float32,
    )
    return c.to(dtype)


def asarray(array: np.ndarray) -> torch.Tensor:
    """The oracle's numpy arrays as torch tensors on the kernel's device."""
    if array.dtype == np.dtype(ml_dtypes.bfloat16):  # numpy has no torch.bfloat16 twin
        return torch.from_numpy(array.astype(np.float32)).to(DEVICE, torch.bfloat16)
    return torch.from_numpy(array).to(DEVICE)


def forward(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``output = x @ w``, (N, O)."""
    return matmul(x, w)


def grad_x(dL_do: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``dL_dx = dL_do @ w.T``, (N, I)."""
    return matmul(dL_do, w.T)


def grad_w(x: torch.Tensor, dL_do: torch.Tensor) -> torch.Tensor:
    """``dL_dw = x.T @ dL_do``, (I, O)."""
    return matmul(x.T, dL_do)


def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``L = sum |output - target|`` (a sum, not a mean), accumulated in at least float32."""
    accumulator = torch.promote_types(output.dtype, torch.float32)
    return (output - target).abs().sum(dtype=accumulator).to(output.dtype)


def loss_grad(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``dL_do = +1 where output > target, else -1`` (the seed's -1 at ties), (N, O)."""
    return torch.where(output > target, 1.0, -1.0).to(output.dtype)


def update(w: torch.Tensor, dL_dw: torch.Tensor, lr: float) -> torch.Tensor:
    """``w_new = w - lr * dL_dw``."""
    return w - lr * dL_dw


def step(x: torch.Tensor, w: torch.Tensor, target: torch.Tensor, lr: float):
    """One SGD step, the matmuls by the kernel: ``(L, dL_dx, dL_dw, w_new)``."""
    output = forward(x, w)
    dL_do = loss_grad(output, target)
    dL_dw = grad_w(x, dL_do)
    return loss(output, target), grad_x(dL_do, w), dL_dw, update(w, dL_dw, lr)
