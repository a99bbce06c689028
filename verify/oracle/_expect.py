"""What each call must produce: the admissible set of every result, as ``bounds.Bound``s
computed around the loop reference (``reference.forward`` makes every centre)::

    forward(x, w)             output = x @ w              radius c_I |x| @ |w|
    loss(output, target)      L      = sum |output - target|
    loss_grad(output, target) dL_do  = sign(output - target), any value in [-1, 1] at a tie
    grad_x(dL_do, w)          dL_dx  = dL_do @ w.T        radius c_O |dL_do| @ |w|.T
    grad_w(x, dL_do)          dL_dw  = x.T @ dL_do        radius c_N |x|.T @ |dL_do|
    update(w, dL_dw, lr)      w_new  = w - lr * dL_dw
    step(x, w, target, lr)    (loss, dL_dx, dL_dw, w_new), kink-aware (``bounds.step_bounds``)

In exact mode (integer data, half-integer targets, lr a power of two) every radius is 0: the
result must equal the reference exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import reference

from .. import bounds
from ..bounds import Arithmetic, Bound
from ._cases import Case
from ._contract import FUNCTIONS


def loop_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` by the loop reference (the ground truth of every verdict)."""
    return reference.forward(a, b)


def numpy_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64 numpy: for diagnoses, which only weigh hypotheses."""
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


#: Per function: ``(arrays in float64, lr, arithmetic, pinned tie, matmul) -> result bounds``.
_BOUNDS: dict[str, Callable[..., tuple[Bound, ...]]] = {
    "forward": lambda a, lr, arith, tie, mm: (
        bounds.forward_bound(a["x"], a["w"], arith, matmul=mm),
    ),
    "loss": lambda a, lr, arith, tie, mm: (
        bounds.loss_bound(Bound(a["output"], np.zeros_like(a["output"])), a["target"], arith),
    ),
    "loss_grad": lambda a, lr, arith, tie, mm: (
        bounds.loss_grad_bound(a["output"], a["target"], arith, tie),
    ),
    "grad_x": lambda a, lr, arith, tie, mm: (
        bounds.grad_x_bound(a["dL_do"], a["w"], arith, matmul=mm),
    ),
    "grad_w": lambda a, lr, arith, tie, mm: (
        bounds.grad_w_bound(a["x"], a["dL_do"], arith, matmul=mm),
    ),
    "update": lambda a, lr, arith, tie, mm: (bounds.update_bound(a["w"], a["dL_dw"], lr, arith),),
    "step": lambda a, lr, arith, tie, mm: bounds.step_bounds(
        a["x"], a["w"], a["target"], lr, arith, matmul=mm, tie=tie
    ).results(),
}


def expect(
    case: Case,
    arith: Arithmetic,
    *,
    tie: float | None = None,
    exact: bool = False,
    matmul: bounds.Matmul = loop_matmul,
) -> dict[str, Bound]:
    """The admissible set of every result of ``case``'s call, by result name (``FUNCTIONS``)."""
    if case.function not in _BOUNDS:
        raise ValueError(f"function must be one of {sorted(_BOUNDS)}, got {case.function!r}")
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in case.arrays.items()}
    found = _BOUNDS[case.function](arrays, case.lr, arith, tie, matmul)
    if exact:
        # Exact-mode data make every correct result equal to the reference's float64 centre.
        found = tuple(Bound(b.center, np.zeros_like(b.radius)) for b in found)
    return dict(zip(FUNCTIONS[case.function].results, found, strict=True))
