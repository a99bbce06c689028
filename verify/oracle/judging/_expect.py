"""What each call must produce: the admissible set of every result, as ``bounds.Bound``s
computed around the loop reference (``reference.forward`` makes every centre)::

    forward(x, w)             output = x @ w              radius c_I |x| @ |w|
    loss(output, target)      L      = sum |output - target|
    loss_grad(output, target) dL_do  = sign(output - target), any value in [-1, 1] at a tie
    grad_x(dL_do, w)          dL_dx  = dL_do @ w.T        radius c_O |dL_do| @ |w|.T
    grad_w(x, dL_do)          dL_dw  = x.T @ dL_do        radius c_N |x|.T @ |dL_do|
    grad_b(dL_do)             dL_db  = sum_d dL_do[d, :]  radius c_N sum_d |dL_do[d, :]|
    update(w, dL_dw, lr)      w_new  = w - lr * dL_dw     (and b_new = b - lr * dL_db)
    step(x, w, target, lr)    (loss, dL_dx, dL_dw, w_new), kink-aware (``bounds.step_bounds``)

With a bias b ``(O,)``: ``forward(x, w, b)``, output = x @ w + b, and ``step(x, w, b, target,
lr)``, (loss, dL_dx, dL_dw, dL_db, w_new, b_new) (``bounds``, "The bias").

With a declared reduction of divisor D (``bounds.REDUCTIONS``: 1 for sum, N*O for mean, N for
batchmean), ``L = sum |output - target| / D`` and ``dL_do = sign(output - target) / D``, for
``loss``, ``loss_grad`` and the fused ``step`` (whose gradients and updates follow from the
divided dL_do); grad_x, grad_w, grad_b and update take their upstream as given and are the same
under every reduction.

In exact mode (integer data, half-integer targets, lr a power of two) every radius is 0: the
result must equal the reference exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import reference

from ... import bounds
from ..._params import of
from ...bounds import Arithmetic, Bound
from .._contract import signature_for
from .._settings import Settings
from ._cases import Case


def loop_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` by the loop reference (the ground truth of every verdict)."""
    return reference.forward(a, b)


def numpy_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64 numpy: for diagnoses, which only weigh hypotheses."""
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


#: Per function: ``(arrays in float64, lr, arithmetic, pinned tie, matmul, reduction) ->
#: result bounds``.
_BOUNDS: dict[str, Callable[..., tuple[Bound, ...]]] = {
    "forward": lambda a, lr, arith, tie, mm, reduction: (
        bounds.tree_forward_bound(a["x"], of(a), arith, matmul=mm),
    ),
    "loss": lambda a, lr, arith, tie, mm, reduction: (
        bounds.loss_bound(
            Bound(a["output"], np.zeros_like(a["output"])),
            a["target"],
            arith,
            reduction=reduction,
        ),
    ),
    "loss_grad": lambda a, lr, arith, tie, mm, reduction: (
        bounds.loss_grad_bound(a["output"], a["target"], arith, tie, reduction=reduction),
    ),
    "grad_x": lambda a, lr, arith, tie, mm, reduction: (
        bounds.grad_x_bound(a["dL_do"], a["w"], arith, matmul=mm),
    ),
    "grad_w": lambda a, lr, arith, tie, mm, reduction: (
        bounds.grad_w_bound(a["x"], a["dL_do"], arith, matmul=mm),
    ),
    "grad_b": lambda a, lr, arith, tie, mm, reduction: (bounds.grad_b_bound(a["dL_do"], arith),),
    "update": lambda a, lr, arith, tie, mm, reduction: (_update_bound(a, lr, arith),),
    "step": lambda a, lr, arith, tie, mm, reduction: bounds.tree_step_bounds(
        a["x"], of(a), a["target"], lr, arith, matmul=mm, tie=tie, reduction=reduction
    ).results(),
}


def _update_bound(arrays: dict[str, np.ndarray], lr: float, arith: Arithmetic) -> Bound:
    """The parameter and its gradient in call order: w and dL_dw, or b and dL_db."""
    parameter, gradient = arrays.values()
    return bounds.update_bound(parameter, gradient, lr, arith)


def expect(
    case: Case,
    arith: Arithmetic,
    *,
    tie: float | None = None,
    exact: bool = False,
    matmul: bounds.Matmul = loop_matmul,
    reduction: str = "sum",
) -> dict[str, Bound]:
    """The admissible set of every result of ``case``'s call, by result name (its signature's,
    ``_contract.signature_for``), the loss and dL_do divided by the ``reduction``'s D
    (``bounds.REDUCTIONS``: ``Settings.loss_reduction``)."""
    if case.function not in _BOUNDS:
        raise ValueError(f"function must be one of {sorted(_BOUNDS)}, got {case.function!r}")
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in case.arrays.items()}
    found = _BOUNDS[case.function](arrays, case.lr, arith, tie, matmul, reduction)
    if exact:
        # Exact-mode data make every correct result equal to the reference's float64 centre.
        found = tuple(Bound(b.center, np.zeros_like(b.radius)) for b in found)
    results = signature_for(case.function, tuple(case.arrays)).results
    return dict(zip(results, found, strict=True))


def expected_under(
    case: Case, options: Settings, arith: Arithmetic | None = None
) -> dict[str, Bound]:
    """``expect`` under a run's settings (its arithmetic unless ``arith`` is given, its tie
    convention and reduction) with numpy's matmul: the centres an explanation fits its readings
    against (the judge's own call keeps the loop reference and exact mode)."""
    return expect(
        case,
        options.arithmetic() if arith is None else arith,
        tie=options.tie,
        matmul=numpy_matmul,
        reduction=options.loss_reduction,
    )
