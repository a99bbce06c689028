"""Framework modules as candidates: a PyTorch, Equinox or Flax NNX linear layer (with its default
bias, or without one) and the optimizer from its own ecosystem become the contract's functions,
with the weight layout handled here, once::

    # my_model.py
    import torch
    import verify.adapters

    model = torch.nn.Linear(64, 32, bias=False)
    candidate = verify.adapters.torch_linear(model, torch.optim.SGD)

    $ python -m verify check my_model.py:candidate      # in a worker process, like any SPEC

Every function computes with the framework: ``forward`` calls the module, ``loss`` is the
framework's L1 sum (or the ``loss`` given), ``loss_grad``, ``grad_x`` and ``grad_w`` are its
autodiff (vector-Jacobian products at the oracle's upstream ``dL_do``), ``update`` is one step
of the optimizer, ``step`` all of it from one backward pass. The module is a template: each
call uses a copy holding the oracle's w, whatever its shape, in the module's layout:

=================  ========================================  ==================  ===========
adapter            module                                    stores              w (I, O) is
=================  ========================================  ==================  ===========
``torch_linear``   ``torch.nn.Linear(I, O, bias=False)``     ``weight`` (O, I)   ``weight.T``
``equinox_linear`` ``eqx.nn.Linear(I, O, use_bias=False)``   ``weight`` (O, I)   ``weight.T``
``flax_linear``    ``nnx.Linear(I, O, use_bias=False)``      ``kernel`` (I, O)   ``kernel``
=================  ========================================  ==================  ===========

A module with a bias (its default: ``torch.nn.Linear(3, 4)``) is the layer with a bias:
``forward(x, w, b)``, ``grad_b``, ``step(x, w, b, target, lr)``, the optimizer stepping w and b
together (a weight decay decays both, as in training). A module with any other parameter, or
whose weight is not a matrix of (in_features, out_features) in the layout, is a
``ContractError`` at once. ``layout`` is for a
module of your own that stores w the other way round.

An adapter remembers the module it was built in: held by a top-level name there, it is loaded
again in the oracle's worker process (``verify.check(candidate)``, the pytest fixture); built
inside a function, it is checked in the calling process. Importing this module imports no
framework: each adapter imports its own (extras ``torch``, ``equinox``, ``flax``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._common import LAYOUTS, Adapted

__all__ = ["LAYOUTS", "Adapted", "equinox_linear", "flax_linear", "torch_linear"]


def _home() -> str | None:
    """The module that called the public adapter function (where the adapter is built)."""
    return sys._getframe(2).f_globals.get("__name__")


def torch_linear(
    module: Any,
    optimizer: Callable[..., Any] | None = None,
    *,
    loss: Callable[[Any, Any], Any] | None = None,
    layout: str = "out_in",
) -> Adapted:
    """A ``torch.nn.Linear(I, O)`` (or any module whose parameters are ``weight`` and maybe
    ``bias``) as a candidate; with a bias b (O,), the layer with a bias.

    Args:
      module: the template; ``module.weight`` is (O, I) = w.T in layout ``out_in``.
      optimizer: ``optimizer(params, lr=lr)`` -> a ``torch.optim.Optimizer``; default
        ``torch.optim.SGD`` (``w_new = w - lr * dL_dw``).
      loss: ``loss(output, target)``; default ``F.l1_loss(output, target, reduction="sum")``.
      layout: ``out_in`` (torch.nn.Linear) or ``in_out`` (a module storing w as it is).

    Raises:
      ContractError: a parameter besides weight and bias, a weight that is not (O, I) in
        ``layout``, or a bias that is not (O,).
    """
    from ._torch import torch_linear as build

    return build(module, optimizer, loss, layout, _home())


def equinox_linear(
    module: Any,
    optimizer: Callable[[Any], Any] | None = None,
    *,
    loss: Callable[[Any, Any], Any] | None = None,
    layout: str = "out_in",
) -> Adapted:
    """An ``eqx.nn.Linear(I, O)`` (called on one row, batched with ``jax.vmap``; with its
    default bias, the layer with a bias) and an optax optimizer as a candidate.

    Args:
      module: the template; ``module.weight`` is (O, I) = w.T in layout ``out_in``.
      optimizer: ``optimizer(lr)`` -> an ``optax.GradientTransformation``; default
        ``optax.sgd``; the update is applied with ``eqx.apply_updates``.
      loss: ``loss(output, target)``, jittable; default ``jnp.sum(jnp.abs(output - target))``.
      layout: ``out_in`` (eqx.nn.Linear) or ``in_out``.

    Raises:
      ContractError: an array besides weight and bias, or a weight that is not (O, I) in
        ``layout``.
    """
    from ._jax import equinox_linear as build

    return build(module, optimizer, loss, layout, _home())


def flax_linear(
    module: Any,
    optimizer: Callable[[Any], Any] | None = None,
    *,
    loss: Callable[[Any, Any], Any] | None = None,
    layout: str = "in_out",
) -> Adapted:
    """An ``nnx.Linear(I, O)`` (with its default bias, the layer with a bias) and an optax
    optimizer as a candidate.

    Args:
      module: the template; ``module.kernel`` is (I, O) = w in layout ``in_out``. Its
        ``precision``, ``dtype`` and ``dot_general`` are kept.
      optimizer: ``optimizer(lr)`` -> an ``optax.GradientTransformation``; default
        ``optax.sgd``; applied to the module's ``nnx.Param`` state, as ``nnx.Optimizer`` does.
      loss: ``loss(output, target)``, jittable; default ``jnp.sum(jnp.abs(output - target))``.
      layout: ``in_out`` (nnx.Linear) or ``out_in``.

    Raises:
      ContractError: a parameter besides kernel and bias, or a kernel that is not (I, O) in
        ``layout``.
    """
    from ._jax import flax_linear as build

    return build(module, optimizer, loss, layout, _home())
