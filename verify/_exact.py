"""Exact mode at any size: a step checked bit for bit against the float64 reference.

On exact-mode data (integer x and w in [-magnitude, magnitude], target = x @ w + a half-integer,
lr a power of two; ``strategies.exact_mode_fits``) every product, partial sum, loss and update is
exactly representable in float32, so a correct step returns the exact values whatever its
summation order, blocking, threading or matmul precision (the integers are exact in TF32 and
bfloat16 too). The exact values come from ``reference.fast`` (float64 BLAS, exact below 2^53;
cross-checked against the loop reference on small shapes in the tests), so 2048^3 is checked in
seconds where the loops would take hours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import reference

from .messages import explain
from .strategies import LayerInputs, exact_case

#: ``step``'s outputs, in order.
FIELDS = reference.StepResult._fields


class ExactReport(NamedTuple):
    """The outcome of ``check_exact``.

    ``mismatches`` maps each field to how many of its elements differ from the exact value
    (0 everywhere: bit for bit), ``first`` describes the first differing element, if any.
    """

    shape: tuple[int, int, int]
    mismatches: dict[str, int]
    first: str | None
    step_seconds: float
    reference_seconds: float
    #: making the inputs (0.0 when they were given)
    inputs_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.mismatches.values())

    def raise_for_mismatch(self) -> None:
        """Raise AssertionError naming the first differing element unless ``ok``."""
        __tracebackhide__ = True
        if not self.ok:
            counts = ", ".join(f"{f}: {c}" for f, c in self.mismatches.items() if c)
            raise AssertionError(f"{self.first}; elements that differ: {counts}")


def _real(value: Any) -> np.ndarray:
    """``value`` as a float32 or float64 array (other dtypes, bfloat16 included, as float64)."""
    array = np.asarray(value)
    if array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float64)


def compare_exact(
    result: Any, expected: Any, call: str | None = None
) -> tuple[dict[str, int], str | None]:
    """Count, per field, the elements of ``result`` that differ from ``expected`` (float64), and
    explain the first (``messages.explain``, ``[call]`` appended).

    +0.0 == -0.0; NaN never equals anything; a wrong shape counts every element.
    """
    mismatches: dict[str, int] = {}
    first: str | None = None
    for field, got, want in zip(FIELDS, result, expected, strict=True):
        got_a, want_a = _real(got), _real(want)
        if got_a.shape != want_a.shape:
            mismatches[field] = max(want_a.size, 1)
            shape = f"{field} has shape {got_a.shape}, but should be {want_a.shape}"
            first = first or (f"{shape} [{call}]" if call else shape)
            continue
        # Compared in their own dtypes: numpy widens both to a common float exactly, element by
        # element, instead of copying 2048^2 results to float64 first.
        differ = got_a != want_a
        mismatches[field] = int(np.count_nonzero(differ))
        if mismatches[field] and first is None:
            index = tuple(int(k) for k in np.unravel_index(int(np.argmax(differ)), differ.shape))
            got64, want64 = float(got_a[index]), float(want_a[index])
            first = explain(field, got64, want64, index=index, call=call)
    return mismatches, first


def check_exact(
    step_fn: Callable[..., Any],
    shape: tuple[int, int, int] | None = None,
    *,
    seed: int = 0,
    magnitude: int = 4,
    lr: float = 2.0**-4,
    dtype: Any = np.float32,
    inputs: LayerInputs | None = None,
) -> ExactReport:
    """Run ``step_fn(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)`` on exact-mode data of
    ``shape = (N, I, O)`` and compare every element with the exact result.

    Args:
      step_fn: the step under test (``verify.step``, a user's step, ...); its results may be
        anything ``numpy.asarray`` takes. Results are read back (``np.asarray``) inside the
        timing, so asynchronous dispatch is waited for.
      shape: ``(N, I, O)``: num_data, input_features, output_features.
      seed: the data's seed (``strategies.exact_inputs``).
      magnitude, lr, dtype: as ``strategies.exact_inputs``.
      inputs: use these instead of generating (then without ``shape``).

    Returns:
      An ``ExactReport``; ``report.raise_for_mismatch()`` turns a mismatch into an assertion.
    """
    if (inputs is None) == (shape is None):
        raise ValueError("check_exact needs a shape (N, I, O) or inputs, not both")
    start = time.perf_counter()
    output = None
    if inputs is None:
        # The exact output the targets were placed around is kept for the reference: one
        # matmul fewer (2048^3 spends its time in matmuls).
        case, output = exact_case(shape, seed=seed, magnitude=magnitude, lr=lr, dtype=dtype)  # type: ignore[arg-type]
    else:
        case = inputs
    inputs_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = tuple(np.asarray(value) for value in step_fn(case.x, case.w, case.target, case.lr))
    step_seconds = time.perf_counter() - start
    start = time.perf_counter()
    expected = reference.fast.step(case.x, case.w, case.target, case.lr, output=output)
    reference_seconds = time.perf_counter() - start
    if len(result) != len(FIELDS):
        raise ValueError(f"step_fn must return {FIELDS}, got {len(result)} values")
    n, i, o = case.x.shape[0], case.x.shape[1], case.w.shape[1]
    call = (
        f"step(x: {case.x.shape}, w: {case.w.shape}, target: {case.target.shape}, lr={case.lr!r})"
    )
    mismatches, first = compare_exact(result, expected, call)
    return ExactReport(
        (n, i, o), mismatches, first, step_seconds, reference_seconds, inputs_seconds
    )
