"""``torch_linear``: a ``torch.nn.Linear(I, O)`` (with its default bias, or ``bias=False``) and a
``torch.optim`` optimizer as the contract's functions, computed by PyTorch (the module's forward
through ``torch.func.functional_call``, autograd, the optimizer's ``step``).

The loss is the one given, else the one loss module the module holds (``self.criterion =
nn.L1Loss()``), else the L1 sum; its reduction is read from the loss (``loss_and_reduction``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..messages import ContractError
from ._common import (
    PROBE,
    Adapted,
    check_bias,
    check_weight,
    known_reduction,
    loss_note,
    measure_reduction,
    stored,
    weight_and_bias,
)

_NAME = "torch_linear"


def _l1_sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target, reduction="sum")


def _name(loss: Any) -> str:
    """A loss as a note names it: a module by its repr, a function by its name."""
    if isinstance(loss, torch.nn.Module):
        return repr(loss)
    if isinstance(loss, functools.partial):
        keywords = ", ".join(f"{key}={value!r}" for key, value in loss.keywords.items())
        return f"partial({_name(loss.func)}, {keywords})"
    return getattr(loss, "__qualname__", None) or repr(loss)


def _declared(loss: Any) -> tuple[Any, str] | None:
    """A loss's own word for its reduction and where it was read: a loss module's
    ``reduction`` (``nn.L1Loss()``: 'mean'), the ``reduction=`` a partial gives, a function's
    default (``F.l1_loss``: 'mean'); None where it declares none."""
    if isinstance(loss, torch.nn.Module) and isinstance(getattr(loss, "reduction", None), str):
        return loss.reduction, f"whose reduction is {loss.reduction!r}"
    if isinstance(loss, functools.partial) and "reduction" in loss.keywords:
        return loss.keywords["reduction"], f"given reduction={loss.keywords['reduction']!r}"
    function = loss.func if isinstance(loss, functools.partial) else loss
    try:
        parameter = inspect.signature(function).parameters.get("reduction")
    except (TypeError, ValueError):
        return None
    if parameter is not None and isinstance(parameter.default, str):
        return parameter.default, f"whose default reduction is {parameter.default!r}"
    return None


def loss_and_reduction(
    module: torch.nn.Module, loss: Callable[[Any, Any], Any] | None
) -> tuple[Callable[[Any, Any], Any], str, tuple[str, ...]]:
    """The loss the adapter computes with, its reduction (``bounds.REDUCTIONS``) and the note
    saying what was taken: ``loss`` where given, else the one loss module ``module`` holds
    (``self.criterion = nn.L1Loss()``), else the L1 sum (no note). The reduction is the loss's
    own word where it has one (``_declared``), else measured on ones ``PROBE`` against zeros
    (``L = 6 / D``); a loss that says neither is judged as the sum, and the note says so."""
    source = f"the loss given, {_name(loss)}"
    if loss is None:
        held = [
            (name, sub)
            for name, sub in module.named_modules()
            if isinstance(sub, torch.nn.modules.loss._Loss)
        ]
        if len(held) != 1:
            return _l1_sum, "sum", ()
        name, loss = held[0]
        source = f"the module's {name}, {_name(loss)}"
    declared = _declared(loss)
    if declared is not None:
        word, how = declared
        reduction = known_reduction(_NAME, word, source)
        return loss, reduction, (loss_note(source, reduction, how),)

    def loss_of_probe() -> Any:
        with torch.no_grad():
            return loss(torch.ones(PROBE), torch.zeros(PROBE))

    reduction, notes = measure_reduction(source, loss_of_probe)
    return loss, reduction, notes


def weight_of(module: torch.nn.Module) -> str:
    """The dotted name of ``module``'s weight: ``weight`` where it has one of its own (a
    ``torch.nn.Linear``, or a module that stores its weight itself), else its one Linear's
    (``fc.weight`` for ``self.fc = nn.Linear(...)``, ``0.weight`` in a ``Sequential``); with no
    Linear or several, ``weight`` (``weight_and_bias`` then names what is there)."""
    if "weight" in dict(module.named_parameters()):
        return "weight"
    linears = [name for name, sub in module.named_modules() if isinstance(sub, torch.nn.Linear)]
    return f"{linears[0]}.weight" if len(linears) == 1 and linears[0] else "weight"


def torch_linear(
    module: Any,
    optimizer: Callable[..., Any] | None,
    loss: Callable[[Any, Any], Any] | None,
    layout: str,
    home: str | None,
) -> Adapted:
    """The contract's functions of ``module``: a Linear, or a module whose only parameters are
    those of its one Linear (``weight_of``), its bias, if it has one, beside its weight."""
    if not isinstance(module, torch.nn.Module):
        raise ContractError(f"{_NAME}: module must be a torch.nn.Module, got {type(module)!r}")
    names = [name for name, _ in module.named_parameters()]
    weight_name = weight_of(module)
    prefix = weight_name.rpartition(".")[0]
    bias_name = f"{prefix}.bias" if prefix else "bias"
    with_bias = weight_and_bias(_NAME, names, weight_name, bias_name)
    owner = module.get_submodule(prefix)
    features = (getattr(owner, "in_features", None), getattr(owner, "out_features", None))
    template: Any = module.get_parameter(weight_name)
    check_weight(_NAME, f"module.{weight_name}", tuple(template.shape), features, layout)
    if with_bias:
        bias: Any = module.get_parameter(bias_name)
        check_bias(_NAME, f"module.{bias_name}", tuple(bias.shape), features[1])
    to_weight = stored(layout)
    step_with = optimizer or torch.optim.SGD
    loss_of, reduction, notes = loss_and_reduction(module, loss)
    device = template.device

    def call(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # The module's own forward, with the oracle's weight in place of its parameter.
        return functional_call(module, {weight_name: weight}, (x,))

    def asarray(array: np.ndarray) -> torch.Tensor:
        if array.dtype == np.dtype(ml_dtypes.bfloat16):  # numpy has no torch.bfloat16 twin
            return torch.from_numpy(array.astype(np.float32)).to(device, torch.bfloat16)
        return torch.from_numpy(array).to(device)

    def forward(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return call(x, to_weight(w))

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loss_of(output, target)

    def loss_grad(output: torch.Tensor, target: torch.Tensor) -> Any:
        output = output.detach().clone().requires_grad_(True)
        loss_of(output, target).backward()
        return output.grad

    def grad_x(dL_do: torch.Tensor, w: torch.Tensor) -> Any:
        # A linear layer's Jacobian in x does not depend on x: the VJP at x = 0 is dL_do @ w.T.
        x = torch.zeros((dL_do.shape[0], w.shape[0]), dtype=w.dtype, device=w.device)
        x.requires_grad_(True)
        call(x, to_weight(w)).backward(dL_do)
        return x.grad

    def grad_w(x: torch.Tensor, dL_do: torch.Tensor) -> torch.Tensor:
        # ... nor its Jacobian in w on w: the VJP at w = 0 is x.T @ dL_do.
        zero = torch.zeros((x.shape[1], dL_do.shape[1]), dtype=x.dtype, device=x.device)
        weight = to_weight(zero).clone().requires_grad_(True)
        call(x, weight).backward(dL_do)
        return to_weight(weight.grad)

    def optimise(weight: torch.nn.Parameter, lr: float) -> torch.Tensor:
        step_with([weight], lr=lr).step()
        return to_weight(weight.detach())

    def update(w: torch.Tensor, dL_dw: torch.Tensor, lr: float) -> torch.Tensor:
        weight = torch.nn.Parameter(to_weight(w).detach().clone())
        weight.grad = to_weight(dL_dw).detach().clone()
        return optimise(weight, lr)

    def step(x: torch.Tensor, w: torch.Tensor, target: torch.Tensor, lr: float) -> tuple:
        x = x.detach().clone().requires_grad_(True)
        weight = torch.nn.Parameter(to_weight(w).detach().clone())
        value = loss_of(call(x, weight), target)
        value.backward()
        assert weight.grad is not None  # backward() just set it
        dL_dw = to_weight(weight.grad.detach().clone())
        return value.detach(), x.grad, dL_dw, optimise(weight, lr)

    functions: dict[str, Callable[..., Any]] = {
        "forward": forward,
        "loss": loss_fn,
        "loss_grad": loss_grad,
        "grad_x": grad_x,
        "grad_w": grad_w,
        "update": update,
        "step": step,
    }
    if with_bias:
        names_of = (weight_name, bias_name)
        functions = _with_bias(module, names_of, to_weight, step_with, loss_of, functions)
    label = f"{_named(module, owner)} with {getattr(step_with, '__name__', repr(step_with))}"
    return Adapted(label, functions, asarray, home, reduction=reduction, notes=notes)


def _named(module: torch.nn.Module, linear: torch.nn.Module) -> str:
    """``module`` in one line, for a report: its repr, or for a module holding its Linear,
    ``Net holding Linear(in_features=3, out_features=4, bias=True)``."""
    return repr(module) if module is linear else f"{type(module).__name__} holding {linear!r}"


def _with_bias(
    module: Any,
    names: tuple[str, str],
    to_weight: Callable[[Any], Any],
    step_with: Callable[..., Any],
    loss_of: Callable[[Any, Any], Any],
    functions: dict[str, Callable[..., Any]],
) -> dict[str, Callable[..., Any]]:
    """The functions of the layer with a bias: forward(x, w, b), grad_b, step(x, w, b, target,
    lr); update takes b as w (the optimizer's step on a parameter of shape (O,)). The rest are
    the module's without its bias, which their results do not depend on."""

    weight_name, bias_name = names

    def call(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return functional_call(module, {weight_name: weight, bias_name: bias}, (x,))

    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return call(x, to_weight(w), b)

    def grad_x(dL_do: torch.Tensor, w: torch.Tensor) -> Any:
        x = torch.zeros((dL_do.shape[0], w.shape[0]), dtype=w.dtype, device=w.device)
        x.requires_grad_(True)
        zero_bias = torch.zeros(w.shape[1], dtype=w.dtype, device=w.device)
        call(x, to_weight(w), zero_bias).backward(dL_do)
        return x.grad

    def grad_w(x: torch.Tensor, dL_do: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros((x.shape[1], dL_do.shape[1]), dtype=x.dtype, device=x.device)
        weight = to_weight(zero).clone().requires_grad_(True)
        zero_bias = torch.zeros(dL_do.shape[1], dtype=x.dtype, device=x.device)
        call(x, weight, zero_bias).backward(dL_do)
        return to_weight(weight.grad)

    def grad_b(dL_do: torch.Tensor) -> Any:
        # The VJP in b, at any x and w (zero, one input feature): dL_do summed over the batch.
        n, o = dL_do.shape
        x = torch.zeros((n, 1), dtype=dL_do.dtype, device=dL_do.device)
        weight = to_weight(torch.zeros((1, o), dtype=dL_do.dtype, device=dL_do.device))
        bias = torch.zeros(o, dtype=dL_do.dtype, device=dL_do.device).requires_grad_(True)
        call(x, weight, bias).backward(dL_do)
        return bias.grad

    def update(p: torch.Tensor, dL_dp: torch.Tensor, lr: float) -> torch.Tensor:
        # w (I, O) in the module's layout, or b (O,) as it is: one step of the optimizer.
        layout = to_weight if p.ndim == 2 else (lambda t: t)
        parameter = torch.nn.Parameter(layout(p).detach().clone())
        parameter.grad = layout(dL_dp).detach().clone()
        step_with([parameter], lr=lr).step()
        return layout(parameter.detach())

    def step(
        x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, target: torch.Tensor, lr: float
    ) -> tuple:
        x = x.detach().clone().requires_grad_(True)
        weight = torch.nn.Parameter(to_weight(w).detach().clone())
        bias = torch.nn.Parameter(b.detach().clone())
        value = loss_of(call(x, weight, bias), target)
        value.backward()
        assert weight.grad is not None and bias.grad is not None  # backward() just set them
        dL_dw, dL_db = to_weight(weight.grad.detach().clone()), bias.grad.detach().clone()
        # One optimizer over both, as a model's parameters() hands it both.
        step_with([weight, bias], lr=lr).step()
        w_new, b_new = to_weight(weight.detach()), bias.detach()
        return value.detach(), x.grad, dL_dw, dL_db, w_new, b_new

    return {
        **functions,
        "forward": forward,
        "grad_x": grad_x,
        "grad_w": grad_w,
        "grad_b": grad_b,
        "update": update,
        "step": step,
    }
