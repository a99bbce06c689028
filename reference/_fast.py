"""The same layer with float64 numpy matmuls: an exact reference for exact-mode data.

The loop form in ``_layer`` is the definition; this is its fast twin for shapes where loops take
too long (2048^3 is 8.6e9 multiply-adds). On exact-mode data (integer x and w, half-integer
target, lr a power of two) every product and partial sum is a dyadic rational with fewer than
53 significant bits, so float64 arithmetic is exact in any summation order and the result equals
the loop form bit for bit. ``exactness_margin`` says how far below 2^53 the data stays; the tests
cross-check this module against the loops on small shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layer import StepResult

#: Integers up to this magnitude are exact in float64.
FLOAT64_EXACT_INTEGER = 2.0**53


#: Integers up to this magnitude are exact in float32.
FLOAT32_EXACT_INTEGER = 2.0**24


def _is_integral(a: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(a))) and bool(np.array_equal(a, np.rint(a)))


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64, computed in float32 BLAS (about 2x faster) whenever that is exact.

    It is exact when a and b hold integers and ``K * max|a| * max|b| < 2^24``: every product
    and every partial sum, in any order, is then an integer below 2^24 (float32's exact range).
    Otherwise the product is computed in float64, exact below 2^53.
    """
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inner = a64.shape[-1]
    largest = float(np.max(np.abs(a64), initial=0.0)) * float(np.max(np.abs(b64), initial=0.0))
    if inner * largest < FLOAT32_EXACT_INTEGER and _is_integral(a64) and _is_integral(b64):
        return (a64.astype(np.float32) @ b64.astype(np.float32)).astype(np.float64)
    return a64 @ b64


def _float64_matrix(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {array.shape}")
    return array.astype(np.float64)


def step(x: Any, w: Any, target: Any, lr: float) -> StepResult:
    """``reference.step`` with BLAS matmuls (exact on exact-mode data, see module doc).

    Shapes: x ``(N, I)``, w ``(I, O)``, target ``(N, O)``; ties take the notebook's -1.
    """
    x64, w64, target64 = (
        _float64_matrix("x", x),
        _float64_matrix("w", w),
        _float64_matrix("target", target),
    )
    if w64.shape[0] != x64.shape[1]:
        raise ValueError(f"w has shape {w64.shape}, but x has shape {x64.shape}")
    output = exact_matmul(x64, w64)
    if target64.shape != output.shape:
        raise ValueError(f"target has shape {target64.shape}, but should be {output.shape}")
    loss = float(np.abs(output - target64).sum())
    dL_do = np.where(output > target64, 1.0, -1.0)
    dL_dw = exact_matmul(x64.T, dL_do)
    return StepResult(loss, exact_matmul(dL_do, w64.T), dL_dw, w64 - dL_dw * float(lr))


def exactness_margin(x: Any, w: Any, target: Any) -> float:
    """Bits to spare below 2^53 for the largest quantity ``step`` forms (negative: not exact).

    Bounds each result by the sum of magnitudes it is formed from: |x| @ |w| for the output,
    sum |output - target| for the loss, |dL_do| @ |w|.T and |x|.T @ |dL_do| for the gradients.
    The target's half-integers need one extra bit.
    """
    x_abs = np.abs(np.asarray(x, dtype=np.float64))
    w_abs = np.abs(np.asarray(w, dtype=np.float64))
    output_bound = x_abs @ w_abs
    loss_bound = float((output_bound + np.abs(np.asarray(target, dtype=np.float64))).sum())
    largest = max(
        loss_bound,
        float(x_abs.sum(axis=0).max(initial=0.0)),
        float(w_abs.sum(axis=1).max(initial=0.0)),
        1.0,
    )
    return 52.0 - float(np.log2(largest))
