"""crosscheck's JAX side: the hand-written jitted layer, the jax.grad oracle, the error model,
the strategies, and the oracle that checks other implementations.

Same names and signatures as ``reference`` (the loop reference)::

    forward(x, w) -> output                     (N, I) @ (I, O) -> (N, O)
    forward(x, w, b) -> output                  x @ w + b, b of shape (O,)
    l1_loss(output, target) -> L                sum |output - target|   (also ``loss``)
    loss_grad(output, target) -> dL_do          +1 above, -1 otherwise (the notebook's tie)
    grad_x(dL_do, w) -> dL_dx                   dL_do @ w.T, shape (N, I)
    grad_w(x, dL_do) -> dL_dw                   x.T @ dL_do, shape (I, O)
    grad_b(dL_do) -> dL_db                      dL_do summed over the batch, shape (O,)
    update(w, dL_dw, lr) -> w_new               w - lr * dL_dw (the same for b, dL_db)
    step(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)      fused and jitted
    step(x, w, b, target, lr) -> (loss, dL_dx, dL_dw, dL_db, w_new, b_new)

``autodiff_step`` is the same step with both gradients from ``jax.value_and_grad``;
``sharded_step`` splits it over a device mesh; ``check`` checks any other implementation.

The public names are listed once, in ``__init__.pyi``; each is imported on first use
(Scientific Python's SPEC 1, ``lazy_loader``), so ``import verify`` and the oracle's worker
process do not pay for JAX until JAX is used.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
