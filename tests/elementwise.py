"""What the element-wise readings' tests share (tests/test_branches.py, test_weights.py,
test_updates.py, test_readings.py): the dtypes, the probes' dims, and a candidate's function
called the way the oracle calls it (cast to the dtype, the result handed back in float64)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verify import bounds
from verify.oracle.explaining import _readings

DTYPES = ["float64", "float32", "bfloat16", "float16"]
#: The probes' dims: N = 5, O = 4 (N*O = 20).
N, O_ = 5, 4

Fn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def dtype_of(name: str) -> np.dtype:
    return bounds.numpy_dtype(name)


def as_called(fn: Fn, dtype: str) -> _readings.Call:
    """The oracle's side: cast to the dtype, call, hand back float64 (a probe that is not
    exact in the dtype fails the test: every probe value must be)."""
    dt = dtype_of(dtype)

    def call(output: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        o, t = output.astype(dt), target.astype(dt)
        assert np.array_equal(o.astype(np.float64), output), "probe not exact in the dtype"
        assert np.array_equal(t.astype(np.float64), target), "probe not exact in the dtype"
        with np.errstate(all="ignore"):
            result = fn(o, t)
        return None if result is None else np.asarray(result).astype(np.float64)

    return call


def scalar(x: np.ndarray, value: float) -> np.ndarray:
    """``value`` in ``x``'s dtype."""
    return np.asarray(value, x.dtype)
