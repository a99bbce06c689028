"""Calling a candidate safely: a worker thread with a timeout, errors caught, results as numpy.

Why a thread and not a subprocess: the candidate's arrays (jax, torch, numpy) and its compile
caches stay in one process, so a jitted implementation compiles each shape once, and nothing
needs pickling. The price: Python cannot kill a thread, so a call that hangs past the timeout
is abandoned, still running, in a daemon thread (it ends with the process) and the oracle stops
calling that function. A candidate that hangs while holding the GIL in C code would hang the
oracle too; none of numpy, JAX or PyTorch does that.
"""

from __future__ import annotations

import dataclasses
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np

#: Frames of the candidate's own traceback kept in a report.
TRACEBACK_FRAMES = 6


@dataclasses.dataclass(frozen=True)
class CallResult:
    """How one call ended: a value, an exception (with its trimmed traceback), or a timeout."""

    value: Any = None
    error: str | None = None  # "TypeError: ..." one line
    traceback: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


def call_with_timeout(
    function: Callable[..., Any], args: Sequence[Any], timeout: float
) -> CallResult:
    """``function(*args)`` in a daemon thread; at most ``timeout`` seconds of waiting."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function(*args)
        except BaseException as err:  # a candidate's SystemExit must not end the oracle
            box["error"] = err

    worker = threading.Thread(target=target, name="crosscheck-candidate", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return CallResult(timed_out=True)
    if "error" in box:
        err = box["error"]
        return CallResult(error=_one_line(err), traceback=trimmed_traceback(err))
    return CallResult(value=box.get("value"))


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def trimmed_traceback(err: BaseException) -> str:
    """The candidate's own frames (the worker's frame dropped), at most ``TRACEBACK_FRAMES``."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # [0] is call_with_timeout's target
    frames = frames[-TRACEBACK_FRAMES:]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(err), err)
    return "".join(lines).rstrip()


def to_numpy(value: Any) -> np.ndarray:
    """A private numpy copy of any array-like result: numpy, jax, torch (detached, on the CPU)."""
    if hasattr(value, "detach") and callable(value.detach):
        value = value.detach()
    if hasattr(value, "cpu") and callable(value.cpu):
        value = value.cpu()
    try:
        if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
            # Tensor.__array__ predates numpy 2's copy keyword (a DeprecationWarning).
            return np.array(value.numpy(), copy=True)
        return np.array(value, copy=True)
    except TypeError:
        # torch.bfloat16 has no numpy twin: widen (exactly) to float32 and narrow back.
        if hasattr(value, "float") and str(getattr(value, "dtype", "")).endswith("bfloat16"):
            return np.array(value.float(), copy=True).astype(ml_dtypes.bfloat16)
        raise
