"""The same layer with float64 numpy matmuls: an exact reference for exact-mode data.

The loop form in ``_layer`` is the definition; this is its fast twin for shapes where loops take
too long (2048^3 is 8.6e9 multiply-adds). On exact-mode data (integer x and w, half-integer
target, lr a power of two) every product and partial sum is a dyadic rational with fewer than
53 significant bits, so float64 arithmetic is exact in any summation order and the result equals
the loop form bit for bit. ``exactness_margin`` says how far below 2^53 the data stays; the tests
cross-check this module against the loops on small shapes.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np

from ._layer import BiasStepResult, StepResult, step_arguments

#: Integers up to this magnitude are exact in float32.
FLOAT32_EXACT_INTEGER = 2.0**24


def _is_integral(a: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(a))) and bool(np.array_equal(a, np.rint(a)))


def _integers(a: np.ndarray) -> bool:
    """Whether every element of the finite array ``a`` is an integer."""
    return bool(np.array_equal(a, np.rint(a)))


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


def _float_matrix(name: str, value: Any) -> np.ndarray:
    """``value`` as a 2-D float32 or float64 array: float32 is kept (no copy; every float32 is
    a float64 and numpy widens it exactly where it meets one), anything else becomes float64."""
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {array.shape}")
    if array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float64)


def _largest_magnitude(a: np.ndarray) -> float:
    """``max |a|`` without a temporary array (NaN if a holds one; 0 if empty)."""
    if not a.size:
        return 0.0
    return max(float(a.max()), -float(a.min()))


def _matmul_dtype(x: np.ndarray, w: np.ndarray) -> type[np.floating]:
    """float32 when all three of a step's matmuls are exact in float32 BLAS, else float64.

    With integer x and w and dL_do = +-1, every product and partial sum is an integer at most
    ``I max|x| max|w|`` (output), ``N max|x|`` (dL_dw) or ``O max|w|`` (dL_dx); below 2^24
    float32 holds them all exactly (``exact_matmul``'s rule, decided once for the step). A NaN
    or infinity fails the comparison: float64 then.
    """
    (n, i), o = x.shape, w.shape[1]
    x_max, w_max = _largest_magnitude(x), _largest_magnitude(w)
    largest = max(i * x_max * w_max, n * x_max, o * w_max)
    # Finite already (largest < 2^24): only integrality is left to see.
    if largest < FLOAT32_EXACT_INTEGER and _integers(x) and _integers(w):
        return np.float32
    return np.float64


def loss_and_upstream(
    output: np.ndarray, target: np.ndarray, dtype: type[np.floating] = np.float64
) -> tuple[float, np.ndarray]:
    """``L = sum |output - target|`` (float64, exact for float32 or float64 operands whose
    differences are exact) and ``dL_do`` in ``dtype``: +1 where ``output > target``, else -1
    (ties, as the seed, and NaN). Shapes: output and target ``(N, O)``."""
    # Differences in float64 (exact for float32 operands), made absolute in place; comparisons
    # are exact in any dtype.
    difference = np.subtract(output, target, dtype=np.float64)
    loss = float(np.abs(difference, out=difference).sum())
    # 2 [output > target] - 1, in place: 6 ms at 2048^2 where np.where with scalar branches
    # takes 36 ms.
    dL_do = np.greater(output, target).astype(dtype)
    dL_do *= 2
    dL_do -= 1
    return loss, dL_do


@overload
def step(
    x: Any, w: Any, target: Any, lr: float, /, *, output: np.ndarray | None = None
) -> StepResult: ...
@overload
def step(
    x: Any, w: Any, b: Any, target: Any, lr: float, /, *, output: np.ndarray | None = None
) -> BiasStepResult: ...
def step(
    x: Any, w: Any, *args: Any, output: np.ndarray | None = None, **kwargs: Any
) -> StepResult | BiasStepResult:
    """``reference.step`` with BLAS matmuls (exact on exact-mode data, see module doc):
    ``step(x, w, target, lr)`` or ``step(x, w, b, target, lr)``.

    Shapes: x ``(N, I)``, w ``(I, O)``, b ``(O,)``, target ``(N, O)``; ties take the notebook's
    -1. With a bias, ``output = x @ w + b`` (the addition in float64, exact where ``x @ w`` and
    b are integers below 2^53), ``dL_db = sum_d dL_do[d, :]`` and ``b_new = b - lr * dL_db``.
    ``output``: ``x @ w`` (exactly, in float32 or float64, without b) when the caller has it
    already, as exact-mode data are made from it (``strategies.exact_case``): it saves one of
    the three matmuls.

    At 2048^3 the time goes to the matmuls and to memory traffic, so x and w are cast once for
    all three matmuls, transposes stay views (BLAS reads them as they are), and float32 inputs
    are widened element by element inside each operation rather than copied up front.
    """
    b, target, lr = step_arguments("step", args, kwargs)
    x_in, w_in, target_in = (
        _float_matrix("x", x),
        _float_matrix("w", w),
        _float_matrix("target", target),
    )
    if w_in.shape[0] != x_in.shape[1]:
        raise ValueError(f"w has shape {w_in.shape}, but x has shape {x_in.shape}")
    dtype = _matmul_dtype(x_in, w_in)
    x_m, w_m = x_in.astype(dtype, copy=False), w_in.astype(dtype, copy=False)
    shape = (x_in.shape[0], w_in.shape[1])
    if output is None:
        output = x_m @ w_m  # exact in its dtype (float32 only where every sum is an integer)
    elif output.shape != shape:
        raise ValueError(f"output has shape {output.shape}, but x @ w has shape {shape}")
    if target_in.shape != shape:
        raise ValueError(f"target has shape {target_in.shape}, but should be {shape}")
    b_in = None if b is None else _bias_vector(b, shape[1])
    if b_in is not None:
        output = np.add(output, b_in, dtype=np.float64)
    loss, dL_do = loss_and_upstream(output, target_in, dtype)
    dL_dw = (x_m.T @ dL_do).astype(np.float64, copy=False)
    dL_dx = (dL_do @ w_m.T).astype(np.float64, copy=False)
    w_new = dL_dw * -float(lr)
    w_new += w_in
    if b_in is None:
        return StepResult(loss, dL_dx, dL_dw, w_new)
    dL_db = dL_do.sum(axis=0, dtype=np.float64)
    b_new = dL_db * -float(lr)
    b_new += b_in
    return BiasStepResult(loss, dL_dx, dL_dw, dL_db, w_new, b_new)


def _bias_vector(b: Any, output_features: int) -> np.ndarray:
    """``b`` as a float64 vector of shape ``(O,)``, or a ValueError naming its shape."""
    array = np.asarray(b, dtype=np.float64)
    if array.shape != (output_features,):
        raise ValueError(f"b has shape {array.shape}, but should be (O,) = ({output_features},)")
    return array


def exactness_margin(x: Any, w: Any, target: Any, b: Any = None) -> float:
    """Bits to spare below 2^53 for the largest quantity ``step`` forms (negative: not exact).

    Bounds each result by the sum of magnitudes it is formed from: |x| @ |w| (+ |b|) for the
    output, sum |output - target| for the loss, |dL_do| @ |w|.T and |x|.T @ |dL_do| for the
    gradients, N for dL_db. The target's half-integers need one extra bit.
    """
    x_abs = np.abs(np.asarray(x, dtype=np.float64))
    w_abs = np.abs(np.asarray(w, dtype=np.float64))
    output_bound = x_abs @ w_abs
    if b is not None:
        output_bound = output_bound + np.abs(np.asarray(b, dtype=np.float64))
    loss_bound = float((output_bound + np.abs(np.asarray(target, dtype=np.float64))).sum())
    largest = max(
        loss_bound,
        float(x_abs.sum(axis=0).max(initial=0.0)),
        float(w_abs.sum(axis=1).max(initial=0.0)),
        float(x_abs.shape[0]) if b is not None else 1.0,
        1.0,
    )
    return 52.0 - float(np.log2(largest))
