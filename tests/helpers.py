"""The tests' comparison helpers, in the project's one message style (``messages.explain``).

``assert_within`` fails with ``dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06)
[grad_w(x: (5, 4), dL_do: (5, 3))]``: the element, the value, the centre of the admissible set,
its radius, and the call that produced it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

import reference
from verify import bounds
from verify.bounds import Bound
from verify.messages import explain

#: The checkout: a fresh process imports crosscheck from here.
ROOT = Path(__file__).resolve().parents[1]


def run_python(
    *argv: str, cwd: Path | str = ROOT, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *argv`` in a fresh process, as a user's shell runs it (this checkout importable,
    none of the test session's JAX settings), its output captured."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def describe_call(function: str, **arrays: Any) -> str:
    shapes = ", ".join(f"{name}: {np.shape(value)}" for name, value in arrays.items())
    return f"{function}({shapes})"


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def assert_within(name: str, actual: Any, bound: Bound, call: str) -> float:
    """Assert ``|actual - bound.center| <= bound.radius`` everywhere; return the worst ratio."""
    __tracebackhide__ = True
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != bound.center.shape:
        raise AssertionError(
            f"{name} has shape {actual.shape}, but should be {bound.center.shape} [{call}]"
        )
    ratio = np.asarray(bound.ratio(actual))
    if ratio.size == 0:
        return 0.0
    worst = _index(int(np.argmax(ratio)), ratio.shape)
    if ratio[worst] > 1.0:
        raise AssertionError(
            explain(
                name,
                float(actual[worst]),
                float(bound.center[worst]),
                index=worst,
                bound=float(bound.radius[worst]),
                call=call,
            )
        )
    return float(ratio[worst])


def assert_bitwise(name: str, actual: Any, expected: Any, call: str) -> None:
    """Assert exact equality (values and shape; +0.0 == -0.0) for exact-mode results."""
    __tracebackhide__ = True
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{name} has shape {actual.shape}, but should be {expected.shape} [{call}]"
        )
    differ = actual != expected
    if differ.any():
        worst = _index(int(np.argmax(differ)), differ.shape)
        count = f"{int(differ.sum())} of {differ.size} elements differ"
        raise AssertionError(
            explain(name, float(actual[worst]), float(expected[worst]), index=worst, call=call)
            + f"; {count}"
        )


def assert_step_within(result: Any, case: Any, arith: Any, call: str) -> None:
    """Every output of one step ``(loss, dL_dx, dL_dw, w_new)`` inside its kink-aware bound
    around the loop reference, and w_new consistent with the step's own dL_dw; with a bias
    (``case.b``), ``(loss, dL_dx, dL_dw, dL_db, w_new, b_new)`` and b_new against its own dL_db.

    ``case`` has ``x``, ``w``, ``target``, ``lr`` and maybe ``b`` (a ``strategies.LayerInputs``
    or ``BiasLayerInputs``); ``arith`` is the ``bounds.Arithmetic`` the step claims.
    """
    __tracebackhide__ = True
    b = getattr(case, "b", None)
    expected = bounds.step_bounds(
        case.x, case.w, case.target, case.lr, arith, matmul=reference.forward, b=b
    )
    fields = (reference.StepResult if b is None else reference.BiasStepResult)._fields
    for field, bound in zip(fields, expected.results(), strict=True):
        assert_within(field, getattr(result, field), bound, call)
    own_update = bounds.update_bound(case.w, np.asarray(result.dL_dw), case.lr, arith)
    assert_within("w_new", result.w_new, own_update, call + " vs its own dL_dw")
    if b is not None:
        own_bias = bounds.update_bound(b, np.asarray(result.dL_db), case.lr, arith)
        assert_within("b_new", result.b_new, own_bias, call + " vs its own dL_db")
