"""The layer in PyTorch, gradients by hand: a correct implementation to copy, and to check with

    python -m verify check examples/torch_manual.py:layer

Needs the optional extra: ``pip install torch==2.13.0`` (CPU wheel). ``asarray`` turns the
oracle's numpy inputs into tensors (on ``DEVICE``); results may be tensors on any device, the
oracle detaches and copies them back. Shapes: x (N, I), w (I, O), target and output (N, O).
"""

from __future__ import annotations

import numpy as np
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class ManualLayer:
    """Forward, loss, hand-written backward and SGD update on torch tensors."""

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        # torch.from_numpy knows no bfloat16: go through float32, which holds it exactly.
        dtype = _DTYPES[array.dtype.name]
        return torch.from_numpy(
            np.asarray(array, dtype=np.float32 if dtype == torch.bfloat16 else array.dtype)
        ).to(DEVICE, dtype)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``output = x @ w``."""
        return x @ w

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``L = sum |output - target|``."""
        return (output - target).abs().sum()

    def loss_grad(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``dL_do = sign(output - target)``: 0 at ties (PyTorch's convention, valid)."""
        return torch.sign(output - target)

    def grad_x(self, dL_do: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``dL_dx = dL_do @ w.T``."""
        return dL_do @ w.T

    def grad_w(self, x: torch.Tensor, dL_do: torch.Tensor) -> torch.Tensor:
        """``dL_dw = x.T @ dL_do``."""
        return x.T @ dL_do

    def update(self, w: torch.Tensor, dL_dw: torch.Tensor, lr: float) -> torch.Tensor:
        """``w_new = w - lr * dL_dw`` (out of place: ``w -= ...`` would change the caller's w)."""
        return w - lr * dL_dw

    def step(self, x, w, target, lr):
        """``(L, dL_dx, dL_dw, w_new)``."""
        output = self.forward(x, w)
        dL_do = self.loss_grad(output, target)
        dL_dw = self.grad_w(x, dL_do)
        return self.loss(output, target), self.grad_x(dL_do, w), dL_dw, self.update(w, dL_dw, lr)


layer = ManualLayer()
