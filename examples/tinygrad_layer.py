"""The layer in tinygrad, gradients by ``backward()``: a correct implementation to copy, and to
check with

    python -m verify check examples/tinygrad_layer.py:layer

Needs ``pip install -e ".[tinygrad]"`` and, for tinygrad's CPU device, clang on PATH. Results
are lazy tinygrad Tensors; the oracle realizes them (``.numpy()``) in the worker process, under
the call's timeout. tinygrad keeps thread-bound state (a SQLite cache), which is why the worker
calls every function from its main thread. Shapes: x (N, I), w (I, O), target and output (N, O).
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor, dtypes

_DTYPES = {"float64": dtypes.float64, "float32": dtypes.float32, "float16": dtypes.float16}


class TinygradLayer:
    """Forward and loss on tinygrad Tensors; the step's gradients from ``loss.backward()``."""

    def asarray(self, array: np.ndarray) -> Tensor:
        if array.dtype.name == "bfloat16":  # numpy has no bfloat16: through float32, exactly
            return Tensor(array.astype(np.float32)).cast(dtypes.bfloat16)
        return Tensor(array, dtype=_DTYPES[array.dtype.name])

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``output = x @ w``."""
        return x @ w

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """``L = sum |output - target|`` (a sum, not a mean)."""
        return (output - target).abs().sum()

    def step(self, x: Tensor, w: Tensor, target: Tensor, lr: float):
        """``(L, dL_dx, dL_dw, w - lr * dL_dw)`` with both gradients from ``backward()``."""
        loss = (x @ w - target).abs().sum()
        loss.backward()
        assert x.grad is not None and w.grad is not None  # backward() fills both
        return loss, x.grad, w.grad, w - w.grad * lr


layer = TinygradLayer()
