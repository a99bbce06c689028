"""One call of a candidate, on the side that holds it: the arguments through its ``asarray``,
the call, the results converted to numpy, the arguments read back; every ending an ``Outcome``.

Used in the candidate's own process (``_worker``) and, for a candidate that cannot be loaded
again by name, in the oracle's (``_calls.InProcessCaller``). Nothing here judges a result.
"""

from __future__ import annotations

import dataclasses
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._contract import Signature

#: Frames of the candidate's own traceback kept in a report.
TRACEBACK_FRAMES = 6


@dataclasses.dataclass(frozen=True)
class Returned:
    """A call returned. ``results``: one numpy array per result of the signature, or a string
    saying why that result is not an array; ``echoed``: the array arguments as the call left
    them (None where they cannot be read back), to see a change made in place; ``notes``: the
    distinct warnings raised while the results were converted."""

    results: tuple[np.ndarray | str, ...]
    echoed: tuple[np.ndarray | None, ...]
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Failed:
    """A call ended without results.

    ``kind``: ``raised`` (detail: ``"TypeError: ..."``, with the candidate's trimmed traceback),
    ``malformed`` (it returned the wrong structure, e.g. a step that is not four results),
    ``timed_out`` or ``crashed`` (detail: the exit code or signal and its last words).
    """

    kind: str
    detail: str
    traceback: str | None = None


Outcome = Returned | Failed


def invoke(
    function: Callable[..., Any],
    signature: Signature,
    arrays: Sequence[np.ndarray],
    lr: float | None,
    asarray: Callable[[Any], Any] | None = None,
) -> Outcome:
    """``function(*arrays, lr)`` on private copies (through ``asarray``), results as numpy."""
    try:
        passed = [asarray(a.copy()) if asarray else a.copy() for a in arrays]
        value = function(*passed, *([] if lr is None else [lr]))
        with warnings.catch_warnings(record=True) as raised:
            # Converting a result warns once per result (a ComplexWarning, a torch deprecation);
            # the oracle reports each distinct one once instead.
            warnings.simplefilter("always")
            results = _results(signature, value)
            echoed = tuple(_readable(p) for p in passed)
        if isinstance(results, Failed):
            return results
        notes = tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in raised))
        return Returned(results, echoed, notes)
    except BaseException as err:  # a candidate's SystemExit or KeyboardInterrupt is a verdict
        return Failed("raised", one_line(err), trimmed_traceback(err))


def _results(signature: Signature, value: Any) -> tuple[np.ndarray | str, ...] | Failed:
    count = len(signature.results)
    if count == 1:
        return (array_or_reason(value),)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != count:
        length = len(value) if isinstance(value, Sequence) else "not a sequence"
        return Failed(
            "malformed",
            f"{signature.name} must return ({', '.join(signature.results)}), "
            f"got {type(value).__name__} ({length})",
        )
    return tuple(array_or_reason(v) for v in value)


def array_or_reason(value: Any) -> np.ndarray | str:
    """``to_numpy(value)`` if it is a numeric array, else why not (a ``wrong_dtype`` verdict)."""
    try:
        array = to_numpy(value)
    except Exception as err:
        return f"{type(value).__name__}, which numpy.asarray cannot convert ({one_line(err)})"
    # An array of dtype bfloat16 is ml_dtypes' (imported by whoever made it).
    if array.dtype.kind not in "biufc" and array.dtype.name != "bfloat16":
        return f"{type(value).__name__}, which numpy reads as dtype {array.dtype}"
    return array


def _readable(value: Any) -> np.ndarray | None:
    try:
        return to_numpy(value)
    except Exception:
        return None


def one_line(err: BaseException) -> str:
    """``"TypeError: first line of the message"``."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def trimmed_traceback(err: BaseException) -> str:
    """The candidate's own frames (the oracle's dropped), at most ``TRACEBACK_FRAMES``."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename != __file__]
    lines = traceback.format_list(frames[-TRACEBACK_FRAMES:])
    lines += traceback.format_exception_only(type(err), err)
    return "".join(lines).rstrip()


def to_numpy(value: Any) -> np.ndarray:
    """A private numpy copy of any array-like result: numpy, jax (waited for), torch (detached,
    on the CPU), tinygrad and anything else with a ``numpy()`` method (realized)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu() if callable(getattr(value, "detach", None)) else value
        if str(getattr(value, "dtype", "")).endswith("bfloat16"):
            # torch.bfloat16 has no numpy twin: widen (exactly) to float32 and narrow back.
            import ml_dtypes

            return np.array(value.float().numpy(), copy=True).astype(ml_dtypes.bfloat16)
        # Tensor.__array__ predates numpy 2's copy keyword (a DeprecationWarning).
        return np.array(value.numpy(), copy=True)
    as_numpy = getattr(value, "numpy", None)
    if callable(as_numpy) and not isinstance(value, np.generic):
        return np.array(as_numpy(), copy=True)
    return np.array(value, copy=True)
