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
framework's L1 sum (or the ``loss`` given, or for ``torch_linear`` the one loss module the
module holds), ``loss_grad``, ``grad_x`` and ``grad_w`` are its
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

The loss's reduction is read where the adapter can read it and the oracle judges the loss,
loss_grad and step under it (``Adapted.reduction``; the ``reduction`` option overrules it): a
torch loss says its own (``nn.L1Loss()``'s ``reduction``, ``'mean'``; ``F.l1_loss``'s
default, ``'mean'``; the ``reduction=`` a ``functools.partial`` gives); any other loss is
measured on ones (2, 3) against zeros (6: a sum, 1: a mean over N*O, 3: a sum divided by N).
The adapter's note (``Adapted.notes``, printed by the report) says which loss it took and how
it read the reduction, or that it could not (then it is judged as the sum).

A module given to the oracle as it is (``python -m verify check model.py:layer``, no adapter)
goes through ``framework_layer``: checked as the layer (forward, grad_x, grad_w), with no
optimizer assumed, so update and step are not checked until an adapter above names one.

An adapter remembers the module it was built in: held by a top-level name there, it is loaded
again in the oracle's worker process (``verify.check(candidate)``, the pytest fixture); built
inside a function, it is checked in the calling process. Importing this module imports no
framework: each adapter imports its own (extras ``torch``, ``equinox``, ``flax``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..messages import ContractError
from ._common import LAYOUTS, Adapted

__all__ = [
    "LAYOUTS",
    "Adapted",
    "equinox_linear",
    "flax_linear",
    "framework_layer",
    "torch_linear",
]


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
    ``bias``, or those of its one Linear: ``self.fc = nn.Linear(I, O)``, a ``Sequential``) as a
    candidate; with a bias b (O,), the layer with a bias.

    Args:
      module: the template; its weight (``module.weight``, or its one Linear's) is (O, I) =
        w.T in layout ``out_in``.
      optimizer: ``optimizer(params, lr=lr)`` -> a ``torch.optim.Optimizer``; default
        ``torch.optim.SGD`` (``w_new = w - lr * dL_dw``).
      loss: ``loss(output, target)``; default the one loss module ``module`` holds
        (``self.criterion = nn.L1Loss()``), else ``F.l1_loss(output, target,
        reduction="sum")``; its reduction is read from it (module docstring).
      layout: ``out_in`` (torch.nn.Linear) or ``in_out`` (a module storing w as it is).

    Raises:
      ContractError: a parameter besides weight and bias (its Linear's, for a module that
        holds one), a weight that is not (O, I) in ``layout``, a bias that is not (O,), or a
        loss whose reduction is none of ``bounds.REDUCTIONS`` (``reduction="none"``).
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
      loss: ``loss(output, target)``, jittable; default ``jnp.sum(jnp.abs(output - target))``;
        its reduction is measured (module docstring).
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
      loss: ``loss(output, target)``, jittable; default ``jnp.sum(jnp.abs(output - target))``;
        its reduction is measured (module docstring).
      layout: ``in_out`` (nnx.Linear) or ``out_in``.

    Raises:
      ContractError: a parameter besides kernel and bias, or a kernel that is not (I, O) in
        ``layout``.
    """
    from ._jax import flax_linear as build

    return build(module, optimizer, loss, layout, _home())


#: What a module given as it is provides: the layer's own functions, with no loss nor optimizer
#: (and grad_b where it has a bias).
LAYER_FUNCTIONS = ("forward", "grad_x", "grad_w", "grad_b")


def framework_layer(module: Any) -> tuple[Adapted, str] | None:
    """A PyTorch, Equinox or Flax NNX module given as it is (as SPEC) as the dense layer, and
    a note saying what is left unchecked; None when ``module`` is no such module (it is then
    read as any implementation). The caller (``as_candidate``) asks only for an object that
    does not spell out the contract's functions itself.

    Adapted: ``forward(x, w) = x @ w`` (N, O) by the module's own call (``forward(x, w, b) =
    x @ w + b`` where it has a bias b (O,)), ``grad_x(dL_do, w) = dL_do @ w.T`` (N, I),
    ``grad_w(x, dL_do) = x.T @ dL_do`` (I, O) and, with a bias, ``grad_b(dL_do)`` = dL_do
    summed over the batch (O,), by the framework's autodiff, for x (N, I), w (I, O), dL_do
    (N, O). No optimizer is assumed, so ``update`` and ``step`` are not provided (the note says
    how to add them with the adapter).

    Accepted: a ``torch.nn.Linear(I, O)`` (with or without its bias), or a torch module whose
    only parameters are those of its one Linear (a ``torch.nn.Sequential`` of it); an
    ``eqx.nn.Linear(I, O)``; an ``nnx.Linear(I, O)``.

    Raises:
      ContractError: a module that is not one Linear (no parameter, or others): the message
        names the adapter to use instead.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(module, torch.nn.Module):
        return _torch_layer(module, torch)
    equinox = sys.modules.get("equinox")
    if equinox is not None and isinstance(module, equinox.Module):
        return _equinox_layer(module, equinox)
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(module, nnx.Module):
        return _flax_layer(module, nnx)
    return None


def _torch_layer(module: Any, torch: Any) -> tuple[Adapted, str]:
    from ._torch import torch_linear as build
    from ._torch import weight_of

    names = [name for name, _ in module.named_parameters()]
    linears = [name for name, sub in module.named_modules() if isinstance(sub, torch.nn.Linear)]
    prefix = weight_of(module).removesuffix("weight")
    if len(linears) != 1 or names not in (
        [f"{prefix}weight"],
        [f"{prefix}weight", f"{prefix}bias"],
    ):
        raise _not_a_layer(module, "a torch.nn.Module", names, "torch_linear")
    return _layer(build(module, None, None, "out_in", None), "torch_linear")


def _equinox_layer(module: Any, equinox: Any) -> tuple[Adapted, str]:
    import jax

    leaves = jax.tree_util.tree_leaves_with_path(equinox.filter(module, equinox.is_array))
    names = [jax.tree_util.keystr(path).lstrip(".") for path, _ in leaves]
    if names not in (["weight"], ["weight", "bias"]):
        raise _not_a_layer(module, "an equinox.Module", names, "equinox_linear")
    from ._jax import equinox_linear as build

    return _layer(build(module, None, None, "out_in", None), "equinox_linear")


def _flax_layer(module: Any, nnx: Any) -> tuple[Adapted, str]:
    params = nnx.state(module, nnx.Param)
    names = [".".join(str(k) for k in path) for path, _ in nnx.to_flat_state(params)]
    if sorted(names) not in (["kernel"], ["bias", "kernel"]):
        raise _not_a_layer(module, "a flax.nnx.Module", names, "flax_linear")
    from ._jax import flax_linear as build

    return _layer(build(module, None, None, "in_out", None), "flax_linear")


def _not_a_layer(module: Any, kind: str, names: list[str], adapter: str) -> ContractError:
    return ContractError(
        f"{type(module).__name__} is {kind} but not one dense layer (its parameters: {names}); "
        "the oracle checks output = x @ w (+ b): for a module whose parameters are its weight "
        f"and bias, check verify.adapters.{adapter}(module, optimizer, layout=...) held by a "
        "top-level name, else write the contract's functions (forward, grad_x, grad_w, ...)"
    )


def _layer(adapted: Adapted, adapter: str) -> tuple[Adapted, str]:
    functions = {name: getattr(adapted, name) for name in LAYER_FUNCTIONS if hasattr(adapted, name)}
    label = adapted.label.rpartition(" with ")[0] or adapted.label
    note = (
        f"{label} was given as it is: checked as the dense layer (forward, grad_x, grad_w and "
        "grad_b where it has a bias, by its framework's autodiff). No optimizer is assumed, so "
        "update and step are not checked: to check them, check "
        f"verify.adapters.{adapter}(module, optimizer) held by a top-level name (e.g. "
        "candidate = ... in your file, SPEC file.py:candidate)"
    )
    return Adapted(label, functions, getattr(adapted, "asarray", None), None), note
