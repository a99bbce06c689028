"""Exact mode at any size: a step checked bit for bit against the float64 reference.

On exact-mode data (integer x and w in [-magnitude, magnitude], target = x @ w + a half-integer,
lr a power of two; ``strategies.exact_mode_fits``) every product, partial sum, loss and update is
exactly representable in float32, so a correct step returns the exact values whatever its
summation order, blocking, threading or matmul precision (the integers are exact in TF32 and
bfloat16 too). The exact values come from ``reference.fast`` (float64 BLAS, exact below 2^53;
cross-checked against the loop reference on small shapes in the tests), so 2048^3 is checked in
seconds where the loops would take hours.

With ``bias=True`` the step is ``step(x, w, b, target, lr)`` with an integer b in
[-magnitude, magnitude] (drawn from a stream of the seed of its own, so the data without a bias
are the same), the targets moved with it: x @ w + b, dL_db (integers up to N) and b_new (a
multiple of lr) are exact too, and all six results are compared with ``reference.fast.step``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import reference

from ._projected import compare_projected, step_products
from .messages import explain
from .strategies import LayerInputs, exact_case

#: ``step``'s outputs, in order (with a bias: ``BIAS_FIELDS``).
FIELDS = reference.StepResult._fields
BIAS_FIELDS = reference.BiasStepResult._fields


class ExactReport(NamedTuple):
    """The outcome of ``check_exact``.

    ``mismatches`` maps each field to how many of its elements differ from the exact value
    (0 everywhere: bit for bit), ``first`` describes the first differing element, if any.
    """

    shape: tuple[int, int, int]
    mismatches: dict[str, int]
    first: str | None
    step_seconds: float
    #: the oracle's side: the exact results (or projections of them) and the comparison
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


def _compare_field(
    field: str, got: np.ndarray, want: np.ndarray, call: str | None
) -> tuple[int, str | None]:
    """How many elements of ``got`` differ from ``want``, and the first (``compare_exact``)."""
    if got.shape != want.shape:
        shape = f"{field} has shape {got.shape}, but should be {want.shape}"
        return max(want.size, 1), (f"{shape} [{call}]" if call else shape)
    # Compared in their own dtypes: numpy widens both to a common float exactly, element by
    # element, instead of copying 2048^2 results to float64 first.
    differ = got != want
    count = int(np.count_nonzero(differ))
    if not count:
        return 0, None
    index = tuple(int(k) for k in np.unravel_index(int(np.argmax(differ)), differ.shape))
    return count, explain(field, float(got[index]), float(want[index]), index=index, call=call)


def compare_exact(
    result: Any, expected: Any, call: str | None = None, fields: tuple[str, ...] = FIELDS
) -> tuple[dict[str, int], str | None]:
    """Count, per field, the elements of ``result`` that differ from ``expected`` (float64), and
    explain the first (``messages.explain``, ``[call]`` appended).

    +0.0 == -0.0; NaN never equals anything; a wrong shape counts every element. ``fields``:
    the results' names (``BIAS_FIELDS`` for a step with a bias).
    """
    mismatches: dict[str, int] = {}
    first: str | None = None
    for field, got, want in zip(fields, result, expected, strict=True):
        mismatches[field], message = _compare_field(field, _real(got), _real(want), call)
        first = first or message
    return mismatches, first


def compare_generated(
    result: Any, case: LayerInputs, output: np.ndarray, call: str | None = None
) -> tuple[dict[str, int], str | None]:
    """``compare_exact`` against the exact step on exact-mode data made with ``output = x @ w``
    (``strategies.exact_case``), without computing dL_dx and dL_dw: the loss against its exact
    sum, the three matrices by random projections (``_projected``, O(N I + I O + N O) work); a
    matrix that cannot be projected (not integral, out of its bound, wrong shape) is compared
    with ``reference.fast.step``'s, computed once."""
    x, w, target, lr = case.x, case.w, case.target, case.lr
    loss, dL_do = reference.fast.loss_and_upstream(output, target, np.float32)
    products = step_products(x, w, dL_do, lr)
    got = {field: _real(value) for field, value in zip(FIELDS, result, strict=True)}
    # One float64 buffer for the three matrices in turn (fresh 32 MB arrays cost page faults).
    buffer = np.empty(max(product.shape[0] * product.shape[1] for product in products.values()))
    counts = {
        field: compare_projected(field, got[field], product, call, out=buffer)
        for field, product in products.items()
    }
    counts["loss"] = _compare_field("loss", got["loss"], np.asarray(loss), call)
    full: reference.StepResult | None = None
    mismatches: dict[str, int] = {}
    first: str | None = None
    for field in FIELDS:
        counted = counts[field]
        if counted is None:
            if full is None:
                full = reference.fast.step(x, w, target, lr, output=output)
            counted = _compare_field(field, got[field], _real(getattr(full, field)), call)
        mismatches[field] = counted[0]
        first = first or counted[1]
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
    bias: bool = False,
) -> ExactReport:
    """Run ``step_fn(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)`` on exact-mode data of
    ``shape = (N, I, O)`` and compare every element with the exact result; with ``bias``,
    ``step_fn(x, w, b, target, lr) -> (loss, dL_dx, dL_dw, dL_db, w_new, b_new)`` (module
    docstring), every element compared with ``reference.fast.step``'s.

    On generated data the matrices are compared through random projections
    (``compare_generated``, ``_projected``): no matmul of the oracle's beyond the one that
    places the targets, and a differing element is missed with probability at most 2^-64 (per
    wrong row); the counts and the first differing element are those of a full comparison.
    Given ``inputs``, ``reference.fast.step`` computes every element.

    Args:
      step_fn: the step under test (``verify.step``, a user's step, ...); its results may be
        anything ``numpy.asarray`` takes. Results are read back (``np.asarray``) inside the
        timing, so asynchronous dispatch is waited for.
      shape: ``(N, I, O)``: num_data, input_features, output_features.
      seed: the data's seed (``strategies.exact_inputs``).
      magnitude: as ``strategies.exact_inputs``.
      lr: as ``strategies.exact_inputs``.
      dtype: as ``strategies.exact_inputs``.
      inputs: use these instead of generating (then without ``shape``).
      bias: check the step of the layer with a bias b (O,).

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
    if bias:
        return _check_exact_bias(step_fn, case, output, seed, magnitude, inputs_seconds)
    start = time.perf_counter()
    result = tuple(np.asarray(value) for value in step_fn(case.x, case.w, case.target, case.lr))
    step_seconds = time.perf_counter() - start
    if len(result) != len(FIELDS):
        raise ValueError(f"step_fn must return {FIELDS}, got {len(result)} values")
    n, i, o = case.x.shape[0], case.x.shape[1], case.w.shape[1]
    call = (
        f"step(x: {case.x.shape}, w: {case.w.shape}, target: {case.target.shape}, lr={case.lr!r})"
    )
    start = time.perf_counter()
    if output is None:
        expected = reference.fast.step(case.x, case.w, case.target, case.lr)
        mismatches, first = compare_exact(result, expected, call)
    else:
        mismatches, first = compare_generated(result, case, output, call)
    reference_seconds = time.perf_counter() - start
    return ExactReport(
        (n, i, o), mismatches, first, step_seconds, reference_seconds, inputs_seconds
    )


#: The largest magnitude of an exact float32 integer (every sum and output stays below it).
_FLOAT32_INTEGERS = 2.0**24


def _check_exact_bias(
    step_fn: Callable[..., Any],
    case: LayerInputs,
    output: np.ndarray | None,
    seed: int,
    magnitude: int,
    inputs_seconds: float,
) -> ExactReport:
    """``check_exact`` of ``step_fn(x, w, b, target, lr)`` (module docstring)."""
    start = time.perf_counter()
    (n, i), o = case.x.shape, case.w.shape[1]
    # A fourth child of the seed: the first three (x, w, the offsets) are those without b.
    stream = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    b = stream.integers(-magnitude, magnitude + 1, size=o).astype(case.x.dtype)
    if i * magnitude**2 + magnitude + 1.5 >= _FLOAT32_INTEGERS / 2:
        raise ValueError(
            f"shape={(n, i, o)!r}, magnitude={magnitude}: x @ w + b would not be exact in float32"
        )
    target = (case.target.astype(np.float64) + b).astype(case.x.dtype)
    inputs_seconds += time.perf_counter() - start
    start = time.perf_counter()
    result = tuple(np.asarray(value) for value in step_fn(case.x, case.w, b, target, case.lr))
    step_seconds = time.perf_counter() - start
    if len(result) != len(BIAS_FIELDS):
        raise ValueError(f"step_fn must return {BIAS_FIELDS}, got {len(result)} values")
    call = (
        f"step(x: {case.x.shape}, w: {case.w.shape}, b: {b.shape}, target: {target.shape}, "
        f"lr={case.lr!r})"
    )
    start = time.perf_counter()
    expected = reference.fast.step(case.x, case.w, b, target, case.lr, output=output)
    mismatches, first = compare_exact(result, expected, call, BIAS_FIELDS)
    reference_seconds = time.perf_counter() - start
    return ExactReport(
        (n, i, o), mismatches, first, step_seconds, reference_seconds, inputs_seconds
    )
