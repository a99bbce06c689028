"""The loop reference: the seed notebook's dense layer, L1 loss and SGD step, auditable by eye.

Same names and signatures as ``verify``, so either can stand in for the other::

    forward(x, w) -> output                     (N, I) @ (I, O) -> (N, O)
    forward(x, w, b) -> output                  x @ w + b, b of shape (O,) broadcast over N
    l1_loss(output, target) -> L                sum |output - target|
    loss_grad(output, target) -> dL_do          +1 above, -1 otherwise (the notebook's tie)
    grad_x(dL_do, w) -> dL_dx                   dL_do @ w.T, shape (N, I)
    grad_w(x, dL_do) -> dL_dw                   x.T @ dL_do, shape (I, O)
    grad_b(dL_do) -> dL_db                      dL_do summed over the batch, shape (O,)
    update(w, dL_dw, lr) -> w_new               w - lr * dL_dw (the same for b, dL_db)
    step(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)
    step(x, w, b, target, lr) -> (loss, dL_dx, dL_dw, dL_db, w_new, b_new)

This package never imports JAX: it is the ground truth the JAX code is checked against.
"""

from . import _fast as fast
from ._layer import (
    BIAS_STEP_ARGUMENTS,
    STEP_ARGUMENTS,
    BiasStepResult,
    ChainResult,
    StepResult,
    chain,
    forward,
    grad_b,
    grad_w,
    grad_x,
    l1_loss,
    loss_grad,
    step,
    step_arguments,
    update,
)

#: ``loss`` is the oracle's name for ``l1_loss``; both are provided.
loss = l1_loss

#: The notebook's value of dL_do at a tie (output == target).
TIE_CONVENTION = -1.0

__all__ = [
    "BIAS_STEP_ARGUMENTS",
    "STEP_ARGUMENTS",
    "TIE_CONVENTION",
    "BiasStepResult",
    "ChainResult",
    "StepResult",
    "chain",
    "fast",
    "forward",
    "grad_b",
    "grad_w",
    "grad_x",
    "l1_loss",
    "loss",
    "loss_grad",
    "step",
    "step_arguments",
    "update",
]
