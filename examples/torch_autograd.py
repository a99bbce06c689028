"""The layer in PyTorch with autograd and ``l1_loss(reduction="sum")``, to copy and to check with

    python -m verify check examples/torch_autograd.py:layer

``reduction="sum"`` matters: PyTorch's default, "mean", divides L and every gradient by N*O
(the oracle diagnoses that as ``mean_instead_of_sum``, and accepts it declared: ``--reduction
mean``). Needs ``pip install torch==2.13.0``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class AutogradLayer:
    """Loss and step through torch.autograd; the gradients w.r.t. x and w come from backward()."""

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        dtype = _DTYPES[array.dtype.name]
        wide = np.float32 if dtype == torch.bfloat16 else array.dtype
        return torch.from_numpy(np.asarray(array, dtype=wide)).to(dtype)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x @ w

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output, target, reduction="sum")

    def step(self, x: torch.Tensor, w: torch.Tensor, target: torch.Tensor, lr: float):
        """``(L, dL_dx, dL_dw, w - lr * dL_dw)`` with both gradients from ``backward()``."""
        x = x.detach().clone().requires_grad_(True)
        w_leaf = w.detach().clone().requires_grad_(True)
        loss = F.l1_loss(x @ w_leaf, target, reduction="sum")
        loss.backward()
        with torch.no_grad():
            w_new = w_leaf - lr * w_leaf.grad
        return loss.detach(), x.grad, w_leaf.grad, w_new


layer = AutogradLayer()
