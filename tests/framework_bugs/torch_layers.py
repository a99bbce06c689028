"""PyTorch layers with an optimizer other than plain SGD, a gradient never zeroed, or a bias
the optimizer is not given.

Each is a ``torch.nn.Linear(bias=False)`` holding ``w.T`` (PyTorch stores ``(out, in)``), the
loss ``F.l1_loss(reduction="sum")`` and a ``torch.optim`` optimizer, as a training script would.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SGDLayer:
    """``step`` and ``update`` through ``torch.optim.SGD(**options)`` (a fresh optimizer per call:
    its first step). Subclasses name the options."""

    options: ClassVar[dict[str, Any]] = {}

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array))

    def _linear(self, w: torch.Tensor) -> nn.Linear:
        linear = nn.Linear(w.shape[0], w.shape[1], bias=False, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.T)
        return linear

    def optimizer(self, parameters, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(parameters, lr=lr, **self.options)

    def update(self, w: torch.Tensor, dL_dw: torch.Tensor, lr: float) -> torch.Tensor:
        linear = self._linear(w)
        linear.weight.grad = dL_dw.T.clone()
        self.optimizer(linear.parameters(), lr).step()
        return linear.weight.detach().T

    def step(self, x: torch.Tensor, w: torch.Tensor, target: torch.Tensor, lr: float):
        linear = self._linear(w)
        optimizer = self.optimizer(linear.parameters(), lr)
        x = x.clone().requires_grad_(True)
        optimizer.zero_grad()
        loss = F.l1_loss(linear(x), target, reduction="sum")
        loss.backward()
        dL_dw = linear.weight.grad.T.clone()
        optimizer.step()
        return loss.detach(), x.grad, dL_dw, linear.weight.detach().T


class WeightDecay(SGDLayer):
    options: ClassVar[dict[str, Any]] = {"weight_decay": 1e-4}


class Nesterov(SGDLayer):
    options: ClassVar[dict[str, Any]] = {"momentum": 0.9, "nesterov": True}


class Adam(SGDLayer):
    def optimizer(self, parameters, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=lr)


class NoZeroGrad(SGDLayer):
    """One module and optimizer per shape, kept between calls, and ``zero_grad()`` forgotten:
    ``backward()`` adds each call's gradient to the last."""

    def __init__(self) -> None:
        self.modules: dict[tuple, tuple[nn.Linear, torch.optim.Optimizer]] = {}

    def step(self, x: torch.Tensor, w: torch.Tensor, target: torch.Tensor, lr: float):
        key = (tuple(w.shape), w.dtype)
        if key not in self.modules:
            linear = self._linear(w)
            self.modules[key] = (linear, self.optimizer(linear.parameters(), lr))
        linear, optimizer = self.modules[key]
        with torch.no_grad():
            linear.weight.copy_(w.T)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = x.clone().requires_grad_(True)
        loss = F.l1_loss(linear(x), target, reduction="sum")
        loss.backward()
        dL_dw = linear.weight.grad.T.clone()
        optimizer.step()
        return loss.detach(), x.grad, dL_dw, linear.weight.detach().T.clone()


class BiasOn:
    """``nn.Linear(I, O)`` with PyTorch's default ``bias=True`` (initialised at random)."""

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)
        linear = nn.Linear(w.shape[0], w.shape[1], dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.T)
            return linear(x)


class BiasLeftOutOfTheOptimizer:
    """``nn.Linear(I, O)`` with its bias, and ``SGD([linear.weight], lr)``: the optimizer is
    handed the weight alone (``[model.weight]`` where ``model.parameters()`` was meant), so the
    bias gets its gradient and is never stepped."""

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array))

    def _linear(self, w: torch.Tensor, b: torch.Tensor) -> nn.Linear:
        linear = nn.Linear(w.shape[0], w.shape[1], dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.T)
            linear.bias.copy_(b)
        return linear

    def forward(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._linear(w, b)(x)

    def step(self, x, w, b, target, lr: float):
        linear = self._linear(w, b)
        optimizer = torch.optim.SGD([linear.weight], lr=lr)
        x = x.clone().requires_grad_(True)
        optimizer.zero_grad()
        loss = F.l1_loss(linear(x), target, reduction="sum")
        loss.backward()
        dL_dw, dL_db = linear.weight.grad.T.clone(), linear.bias.grad.clone()
        optimizer.step()
        return loss.detach(), x.grad, dL_dw, dL_db, linear.weight.detach().T, linear.bias.detach()
