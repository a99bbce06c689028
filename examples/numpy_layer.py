"""The layer in plain numpy: a correct implementation to copy, and to check with

    python -m verify check examples/numpy_layer.py

Shapes: x (N, I), w (I, O), target and output (N, O). Every function returns the inputs' dtype,
so ``--dtype float16`` checks a float16 layer. Sums accumulate in at least float32, as XLA and
cuBLAS do: numpy would sum bfloat16 / float16 in their own precision, whose error grows with
N * O (the oracle reports that as reduced precision).
"""

from __future__ import annotations

import numpy as np


def forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``output = x @ w``, shape (N, O)."""
    return x @ w


def loss(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``L = sum_{d, j} |output[d, j] - target[d, j]|`` (a sum, not a mean)."""
    accumulator = np.promote_types(output.dtype, np.float32)
    return np.abs(output - target).sum(dtype=accumulator).astype(output.dtype)


def loss_grad(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``dL_do = +1 where output > target, else -1`` (the notebook's -1 at ties), shape (N, O)."""
    return np.where(output > target, 1, -1).astype(output.dtype)


def grad_x(dL_do: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``dL_dx = dL_do @ w.T``, shape (N, I); dL_do is any upstream gradient."""
    return dL_do @ w.T


def grad_w(x: np.ndarray, dL_do: np.ndarray) -> np.ndarray:
    """``dL_dw = x.T @ dL_do``, shape (I, O)."""
    return x.T @ dL_do


def update(w: np.ndarray, dL_dw: np.ndarray, lr: float) -> np.ndarray:
    """``w_new = w - lr * dL_dw``: a new array, w is left as it was."""
    return w - np.asarray(lr, dtype=w.dtype) * dL_dw


def step(x: np.ndarray, w: np.ndarray, target: np.ndarray, lr: float):
    """One SGD step: ``(L, dL_dx, dL_dw, w_new)``."""
    output = forward(x, w)
    dL_do = loss_grad(output, target)
    dL_dw = grad_w(x, dL_do)
    return loss(output, target), grad_x(dL_do, w), dL_dw, update(w, dL_dw, lr)
