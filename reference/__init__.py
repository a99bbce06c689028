"""The loop reference: the seed notebook's dense layer, L1 loss and SGD step, auditable by eye.

Same names and signatures as ``verify``, so either can stand in for the other::

    forward(x, w) -> output                     (N, I) @ (I, O) -> (N, O)
    l1_loss(output, target) -> L                sum |output - target|
    loss_grad(output, target) -> dL_do          +1 above, -1 otherwise (the notebook's tie)
    grad_x(dL_do, w) -> dL_dx                   dL_do @ w.T, shape (N, I)
    grad_w(x, dL_do) -> dL_dw                   x.T @ dL_do, shape (I, O)
    update(w, dL_dw, lr) -> w_new               w - lr * dL_dw
    step(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)

This package never imports JAX: it is the ground truth the JAX code is checked against.
"""

from . import _fast as fast
from ._layer import (
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

#: ``loss`` is the oracle's name for ``l1_loss``; both are provided.
loss = l1_loss

#: The notebook's value of dL_do at a tie (output == target).
TIE_CONVENTION = -1.0

__all__ = [
    "TIE_CONVENTION",
    "ChainResult",
    "StepResult",
    "chain",
    "fast",
    "forward",
    "grad_w",
    "grad_x",
    "l1_loss",
    "loss",
    "loss_grad",
    "step",
    "update",
]
