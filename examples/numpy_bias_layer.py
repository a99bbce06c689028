"""The layer with a bias in plain numpy, as people write it: a correct implementation to copy,
and to check with

    python -m verify check examples/numpy_bias_layer.py

Shapes: x (N, I), w (I, O), b (O,), target and output (N, O). ``forward`` takes three
parameters and ``step`` five, which is how the oracle knows the layer has a bias (``--bias``
says so for a layer it cannot inspect). Sums accumulate in at least float32, as in
``numpy_layer.py``.
"""

from __future__ import annotations

import numpy as np


def _accumulator(dtype: np.dtype) -> np.dtype:
    return np.promote_types(dtype, np.float32)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``output = x @ w + b``, b broadcast over the batch: shape (N, O)."""
    return x @ w + b


def loss(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``L = sum_{d, j} |output[d, j] - target[d, j]|`` (a sum, not a mean)."""
    return np.abs(output - target).sum(dtype=_accumulator(output.dtype)).astype(output.dtype)


def loss_grad(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``dL_do = +1 where output > target, else -1`` (the notebook's -1 at ties), shape (N, O)."""
    return np.where(output > target, 1, -1).astype(output.dtype)


def grad_x(dL_do: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``dL_dx = dL_do @ w.T``, shape (N, I); dL_do is any upstream gradient."""
    return dL_do @ w.T


def grad_w(x: np.ndarray, dL_do: np.ndarray) -> np.ndarray:
    """``dL_dw = x.T @ dL_do``, shape (I, O)."""
    return x.T @ dL_do


def grad_b(dL_do: np.ndarray) -> np.ndarray:
    """``dL_db = dL_do`` summed over the batch (every example's output j moves with b[j]),
    shape (O,)."""
    return dL_do.sum(axis=0, dtype=_accumulator(dL_do.dtype)).astype(dL_do.dtype)


def update(p: np.ndarray, dL_dp: np.ndarray, lr: float) -> np.ndarray:
    """``p_new = p - lr * dL_dp`` for w and b alike: a new array, p is left as it was."""
    return p - np.asarray(lr, dtype=p.dtype) * dL_dp


def step(x: np.ndarray, w: np.ndarray, b: np.ndarray, target: np.ndarray, lr: float):
    """One SGD step: ``(L, dL_dx, dL_dw, dL_db, w_new, b_new)``."""
    output = forward(x, w, b)
    dL_do = loss_grad(output, target)
    dL_dw, dL_db = grad_w(x, dL_do), grad_b(dL_do)
    return (
        loss(output, target),
        grad_x(dL_do, w),
        dL_dw,
        dL_db,
        update(w, dL_dw, lr),
        update(b, dL_db, lr),
    )
