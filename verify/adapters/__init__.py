"""Framework modules as candidates: a PyTorch, Equinox or Flax NNX linear layer (bias off) and
the optimizer from its own ecosystem become the contract's seven functions, with the weight
layout handled here, once::

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

A module with any parameter besides its weight (a bias), or whose weight is not a matrix of
(in_features, out_features) in the layout, is a ``ContractError`` at once. ``layout`` is for a
module of your own that stores w the other way round.

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

from ..oracle import ContractError
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
    """A ``torch.nn.Linear(I, O, bias=False)`` (or any module whose one parameter is
    ``weight``) as a candidate.

    Args:
      module: the template; ``module.weight`` is (O, I) = w.T in layout ``out_in``.
      optimizer: ``optimizer(params, lr=lr)`` -> a ``torch.optim.Optimizer``; default
        ``torch.optim.SGD`` (``w_new = w - lr * dL_dw``).
      loss: ``loss(output, target)``; default ``F.l1_loss(output, target, reduction="sum")``.
      layout: ``out_in`` (torch.nn.Linear) or ``in_out`` (a module storing w as it is).

    Raises:
      ContractError: a bias or other parameter, or a weight that is not (O, I) in ``layout``.
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
    """An ``eqx.nn.Linear(I, O, use_bias=False)`` (called on one row, batched with
    ``jax.vmap``) and an optax optimizer as a candidate.

    Args:
      module: the template; ``module.weight`` is (O, I) = w.T in layout ``out_in``.
      optimizer: ``optimizer(lr)`` -> an ``optax.GradientTransformation``; default
        ``optax.sgd``; the update is applied with ``eqx.apply_updates``.
      loss: ``loss(output, target)``, jittable; default ``jnp.sum(jnp.abs(output - target))``.
      layout: ``out_in`` (eqx.nn.Linear) or ``in_out``.

    Raises:
      ContractError: a bias or other array, or a weight that is not (O, I) in ``layout``.
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
    """An ``nnx.Linear(I, O, use_bias=False)`` and an optax optimizer as a candidate.

    Args:
      module: the template; ``module.kernel`` is (I, O) = w in layout ``in_out``. Its
        ``precision``, ``dtype`` and ``dot_general`` are kept.
      optimizer: ``optimizer(lr)`` -> an ``optax.GradientTransformation``; default
        ``optax.sgd``; applied to the module's ``nnx.Param`` state, as ``nnx.Optimizer`` does.
      loss: ``loss(output, target)``, jittable; default ``jnp.sum(jnp.abs(output - target))``.
      layout: ``in_out`` (nnx.Linear) or ``out_in``.

    Raises:
      ContractError: a bias or other parameter, or a kernel that is not (I, O) in ``layout``.
    """
    from ._jax import flax_linear as build

    return build(module, optimizer, loss, layout, _home())


#: What a module given as it is provides: the layer's own functions, with no loss nor optimizer.
LAYER_FUNCTIONS = ("forward", "grad_x", "grad_w")


def framework_layer(module: Any) -> tuple[Adapted, str] | None:
    """A PyTorch, Equinox or Flax NNX module given as it is (as SPEC) as the dense layer, and
    a note saying what is left unchecked; None when ``module`` is no such module (it is then
    read as any implementation). The caller (``as_candidate``) asks only for an object that
    does not spell out the contract's functions itself.

    Adapted: ``forward(x, w) = x @ w`` (N, O) by the module's own call, ``grad_x(dL_do, w) =
    dL_do @ w.T`` (N, I) and ``grad_w(x, dL_do) = x.T @ dL_do`` (I, O) by the framework's
    autodiff, for x (N, I), w (I, O), dL_do (N, O). No optimizer is assumed, so ``update`` and
    ``step`` are not provided (the note says how to add them with the adapter).

    Accepted: a ``torch.nn.Linear(I, O, bias=False)``, or a torch module whose only parameter
    is the weight of its one Linear (a ``torch.nn.Sequential`` of it); an
    ``eqx.nn.Linear(I, O, use_bias=False)``; an ``nnx.Linear(I, O, use_bias=False)``.

    Raises:
      ContractError: a module with a bias (the contract has no bias yet), or one that is not
        one Linear (no parameter, or others): the message names the adapter to use instead.
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
    names = [name for name, _ in module.named_parameters()]
    linears = [name for name, sub in module.named_modules() if isinstance(sub, torch.nn.Linear)]
    prefix = f"{linears[0]}." if len(linears) == 1 and linears[0] else ""
    if len(linears) == 1:
        _refuse_a_bias(module, names, f"{prefix}bias", "torch.nn.Linear(I, O, bias=False)")
    if len(linears) != 1 or names != [f"{prefix}weight"]:
        raise _not_a_layer(module, "a torch.nn.Module", names, "torch_linear")
    from ._torch import torch_linear as build

    return _layer(build(module, None, None, "out_in", None, f"{prefix}weight"), "torch_linear")


def _equinox_layer(module: Any, equinox: Any) -> tuple[Adapted, str]:
    import jax

    leaves = jax.tree_util.tree_leaves_with_path(equinox.filter(module, equinox.is_array))
    names = [jax.tree_util.keystr(path).lstrip(".") for path, _ in leaves]
    _refuse_a_bias(module, names, "bias", "eqx.nn.Linear(I, O, use_bias=False, key=...)")
    if names != ["weight"]:
        raise _not_a_layer(module, "an equinox.Module", names, "equinox_linear")
    from ._jax import equinox_linear as build

    return _layer(build(module, None, None, "out_in", None), "equinox_linear")


def _flax_layer(module: Any, nnx: Any) -> tuple[Adapted, str]:
    params = nnx.state(module, nnx.Param)
    names = [".".join(str(k) for k in path) for path, _ in nnx.to_flat_state(params)]
    _refuse_a_bias(module, names, "bias", "nnx.Linear(I, O, use_bias=False, rngs=...)")
    if names != ["kernel"]:
        raise _not_a_layer(module, "a flax.nnx.Module", names, "flax_linear")
    from ._jax import flax_linear as build

    return _layer(build(module, None, None, "in_out", None), "flax_linear")


def _refuse_a_bias(module: Any, names: list[str], bias: str, build: str) -> None:
    if bias in names:
        raise ContractError(
            f"{type(module).__name__} has a bias ({bias}); the contract's layer has none yet "
            f"(output = x @ w): build it with {build}"
        )


def _not_a_layer(module: Any, kind: str, names: list[str], adapter: str) -> ContractError:
    return ContractError(
        f"{type(module).__name__} is {kind} but not one dense layer (its parameters: {names}); "
        f"the oracle checks output = x @ w: for a module whose one parameter is its weight, "
        f"check verify.adapters.{adapter}(module, optimizer, layout=...) held by a top-level "
        "name, else write the contract's functions (forward, grad_x, grad_w, ...)"
    )


def _layer(adapted: Adapted, adapter: str) -> tuple[Adapted, str]:
    functions = {name: getattr(adapted, name) for name in LAYER_FUNCTIONS}
    label = adapted.label.rpartition(" with ")[0] or adapted.label
    note = (
        f"{label} was given as it is: checked as the dense layer (forward, grad_x and grad_w "
        "by its framework's autodiff). No optimizer is assumed, so update and step are not "
        f"checked: to check them, check verify.adapters.{adapter}(module, optimizer) held by "
        "a top-level name (e.g. candidate = ... in your file, SPEC file.py:candidate)"
    )
    return Adapted(label, functions, getattr(adapted, "asarray", None), None), note
