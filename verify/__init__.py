"""crosscheck's JAX side: the hand-written jitted layer, the jax.grad oracle, the error model
and the strategies.

Same names and signatures as ``reference`` (the loop reference)::

    forward(x, w) -> output                     (N, I) @ (I, O) -> (N, O)
    l1_loss(output, target) -> L                sum |output - target|
    loss_grad(output, target) -> dL_do          +1 above, -1 otherwise (the notebook's tie)
    grad_x(dL_do, w) -> dL_dx                   dL_do @ w.T, shape (N, I)
    grad_w(x, dL_do) -> dL_dw                   x.T @ dL_do, shape (I, O)
    update(w, dL_dw, lr) -> w_new               w - lr * dL_dw
    step(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)      fused and jitted

``autodiff_step`` is the same step with both gradients from ``jax.value_and_grad``.
"""

from . import bounds, strategies
from ._autodiff import autodiff_chain, autodiff_step, l1_objective
from ._cache import enable_compilation_cache
from ._exact import ExactReport, check_exact
from ._layer import (
    DEFAULT_PRECISION,
    TIE_CONVENTION,
    ChainResult,
    StepResult,
    chain,
    forward,
    grad_w,
    grad_x,
    l1_loss,
    loss_grad,
    step,
    update,
)
from ._oracle import check
from ._report import Report
from ._sharded import DATA_AXIS, MODEL_AXIS, sharded_step, step_mesh

#: ``loss`` is the oracle's name for ``l1_loss``; both are provided.
loss = l1_loss

__all__ = [
    "DATA_AXIS",
    "DEFAULT_PRECISION",
    "MODEL_AXIS",
    "TIE_CONVENTION",
    "ChainResult",
    "ExactReport",
    "Report",
    "StepResult",
    "autodiff_chain",
    "autodiff_step",
    "bounds",
    "chain",
    "check",
    "check_exact",
    "enable_compilation_cache",
    "forward",
    "grad_w",
    "grad_x",
    "l1_loss",
    "l1_objective",
    "loss",
    "loss_grad",
    "sharded_step",
    "step",
    "step_mesh",
    "strategies",
    "update",
]
