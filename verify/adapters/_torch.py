"""``torch_linear``: a ``torch.nn.Linear(I, O, bias=False)`` and a ``torch.optim`` optimizer as
the contract's functions, computed by PyTorch (the module's forward through
``torch.func.functional_call``, autograd, the optimizer's ``step``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..oracle import ContractError
from ._common import Adapted, check_weight, only_weight, stored

_NAME = "torch_linear"


def _l1_sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target, reduction="sum")


def torch_linear(
    module: Any,
    optimizer: Callable[..., Any] | None,
    loss: Callable[[Any, Any], Any] | None,
    layout: str,
    home: str | None,
    weight_name: str = "weight",
) -> Adapted:
    """The seven functions of ``module``, whose one parameter is named ``weight_name`` (dotted
    name: ``0.weight`` is the weight of a ``torch.nn.Sequential``'s one Linear)."""
    if not isinstance(module, torch.nn.Module):
        raise ContractError(f"{_NAME}: module must be a torch.nn.Module, got {type(module)!r}")
    names = [name for name, _ in module.named_parameters()]
    only_weight(_NAME, names, weight_name, "torch.nn.Linear(in_features, out_features, bias=False)")
    owner = module.get_submodule(weight_name.rpartition(".")[0])
    features = (getattr(owner, "in_features", None), getattr(owner, "out_features", None))
    template: Any = module.get_parameter(weight_name)
    check_weight(_NAME, "module.weight", tuple(template.shape), features, layout)
    to_weight = stored(layout)
    step_with = optimizer or torch.optim.SGD
    loss_of = loss or _l1_sum
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
    label = f"{module!r} with {getattr(step_with, '__name__', repr(step_with))}"
    return Adapted(label, functions, asarray, home)
