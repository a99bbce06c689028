"""Self-checks of the error model (``verify.bounds``): no false positive, sensitivity, tightness,
kinks, precision diagnosis.

- No false positive: correct implementations with different summation orders and tie
  conventions (numpy, blocked einsum in reverse block order, float64-then-cast, reversed K,
  torch's 0 at ties, ``verify.step`` at every precision setting, ``verify.autodiff_step``) stay
  inside the bound for every dtype, on every value kind of ``verify.strategies``.
- Sensitivity: TF32-rounded matmul inputs are flagged at float32 and accepted under
  ``arithmetic("float32", "tf32")``; float16 accumulation is flagged under
  ``arithmetic("float16")``; a few ulps beyond the model's radius is flagged at small K.
- Tightness: the worst error / bound over random data is below 1 and above a floor the model
  predicts (printed; run with ``-s`` to see the numbers).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from tests.conftest import examples
from verify import bounds
from verify.strategies import (
    BiasLayerInputs,
    LayerInputs,
    LayerShape,
    example_inputs,
    layer_inputs,
    layer_shapes,
)

DTYPES = ("float64", "float32", "bfloat16", "float16")

#: Shapes for the jitted functions: few, so that each compiles once per dtype (1-sized dims,
#: primes, past 128, very unequal).
JIT_SHAPES = (
    LayerShape(1, 1, 1),
    LayerShape(3, 129, 2),
    LayerShape(31, 7, 13),
    LayerShape(257, 4, 1),
    LayerShape(8, 16, 64),
)

Step = Callable[[np.ndarray, np.ndarray, np.ndarray, float], Sequence[Any]]

#: Examples run by the no-false-positive checks, by check (``run_counted`` reads it).
EXAMPLES_RUN: Counter[str] = Counter()


def run_counted(check: Callable[[], None], key: str, asked: int) -> None:
    """Run ``check``, a Hypothesis test counting its examples under ``key``, and fail unless it
    ran at least half of the ``asked`` examples (``examples(asked)``): a no-false-positive
    check whose strategy yields next to nothing would pass while proving nothing."""
    before = EXAMPLES_RUN[key]
    check()
    ran, floor = EXAMPLES_RUN[key] - before, max(1, examples(asked).max_examples // 2)
    assert ran >= floor, f"{key}: {ran} examples run, fewer than {floor}"


# ------------------------------------------------------------------------------------------
# Correct implementations with different orders, accumulations and tie conventions.
# ------------------------------------------------------------------------------------------


def _accumulator(dtype: np.dtype) -> np.dtype:
    """float64 for float64, else float32: what XLA and numpy's float16 matmul accumulate in."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` accumulated in ``_accumulator``, stored in a's dtype."""
    acc = _accumulator(a.dtype)
    return (a.astype(acc) @ b.astype(acc)).astype(a.dtype)


def numpy_step(x, w, target, lr, *, tie: float = -1.0) -> tuple[Any, ...]:
    """The seed's step in numpy, in the storage dtype (float32 accumulation for half types)."""
    dtype = x.dtype
    output = _matmul(x, w)
    difference = output - target
    loss = np.abs(difference).astype(_accumulator(dtype)).sum().astype(dtype)
    dL_do = np.where(difference > 0, 1.0, np.where(difference < 0, -1.0, tie)).astype(dtype)
    dL_dx = _matmul(dL_do, w.T)
    dL_dw = _matmul(x.T, dL_do)
    w_new = (w - dtype.type(lr) * dL_dw).astype(dtype)
    return loss, dL_dx, dL_dw, w_new


def torch_ties_step(x, w, target, lr) -> tuple[Any, ...]:
    """``numpy_step`` with PyTorch's 0 at ties (``sign``)."""
    return numpy_step(x, w, target, lr, tie=0.0)


def _blocked(a: np.ndarray, b: np.ndarray, block: int = 7) -> np.ndarray:
    """``a @ b`` as einsum partial products over K-blocks, added in reverse block order, in the
    accumulator; stored in a's dtype."""
    acc = _accumulator(a.dtype)
    total = np.zeros((a.shape[0], b.shape[1]), acc)
    for start in reversed(range(0, a.shape[1], block)):
        part = np.einsum(
            "ik,kj->ij",
            a[:, start : start + block].astype(acc),
            b[start : start + block].astype(acc),
        )
        total = total + part
    return total.astype(a.dtype)


def blocked_step(x, w, target, lr) -> tuple[Any, ...]:
    """Blocked einsum in reverse block order; the loss summed row by row, last row first."""
    dtype = x.dtype
    output = _blocked(x, w)
    terms = np.abs(output - target).astype(_accumulator(dtype))
    loss = sum(terms[::-1].sum(axis=1)).astype(dtype)
    dL_do = np.where(output > target, 1.0, -1.0).astype(dtype)
    dL_dw = _blocked(x.T, dL_do)
    return loss, _blocked(dL_do, w.T), dL_dw, (w - dtype.type(lr) * dL_dw).astype(dtype)


def float64_step(x, w, target, lr) -> tuple[Any, ...]:
    """Everything in float64 (signs from the float64 output), each result cast at the end."""
    dtype = x.dtype
    x64, w64, t64 = (a.astype(np.float64) for a in (x, w, target))
    output = x64 @ w64
    dL_do = np.where(output > t64, 1.0, -1.0)
    dL_dw = x64.T @ dL_do
    loss = np.abs(output - t64).sum()
    dL_dx = dL_do @ w64.T
    # The update from the stored gradient, in float64 with lr as given, cast once.
    w_new = (w64 - lr * dL_dw.astype(dtype).astype(np.float64)).astype(dtype)
    return dtype.type(loss), dL_dx.astype(dtype), dL_dw.astype(dtype), w_new


def reversed_step(x, w, target, lr) -> tuple[Any, ...]:
    """K summed last to first (sequential cumulative sums), jax.grad's +1 at ties."""
    dtype = x.dtype
    acc = _accumulator(dtype)

    def sequential(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        products = a.astype(acc)[:, ::-1, None] * b.astype(acc)[None, ::-1, :]
        return np.add.accumulate(products, axis=1)[:, -1].astype(dtype)

    output = sequential(x, w)
    dL_do = np.where(output >= target, 1.0, -1.0).astype(dtype)
    terms = np.abs(output - target).astype(acc).ravel()[::-1]
    loss = np.add.accumulate(terms)[-1].astype(dtype) if terms.size else dtype.type(0)
    dL_dw = sequential(x.T, dL_do)
    return loss, sequential(dL_do, w.T), dL_dw, (w - dtype.type(lr) * dL_dw).astype(dtype)


NUMPY_IMPLEMENTATIONS: dict[str, Step] = {
    "numpy": numpy_step,
    "torch_ties": torch_ties_step,
    "blocked_einsum": blocked_step,
    "float64_then_cast": float64_step,
    "reversed": reversed_step,
}


def _jax(fn: Callable[..., Any], **kwargs: Any) -> Step:
    def run(x, w, target, lr):
        return tuple(np.asarray(v) for v in fn(x, w, target, lr, **kwargs))

    return run


#: verify.step at every precision it accepts (all float32 on CPU), and jax.grad's step.
JAX_IMPLEMENTATIONS: dict[str, Step] = {
    **{f"verify.step[{p}]": _jax(verify.step, precision=p) for p in ("default", "high", "highest")},
    "verify.autodiff_step": _jax(verify.autodiff_step),
}


def step_ratios(case: LayerInputs, result: Sequence[Any], arith: bounds.Arithmetic) -> dict:
    """Worst error / bound per output of one step, and w_new against the step's own dL_dw."""
    expected = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith)
    ratios = {
        field: bound.worst(np.asarray(value).astype(np.float64))
        for field, bound, value in zip(
            reference.StepResult._fields,
            expected.results(),
            result,
            strict=True,
        )
    }
    own = bounds.update_bound(case.w, np.asarray(result[2]).astype(np.float64), case.lr, arith)
    ratios["w_new_vs_own_dL_dw"] = own.worst(np.asarray(result[3]).astype(np.float64))
    return ratios


def assert_inside(case: LayerInputs, result: Sequence[Any], arith: bounds.Arithmetic, name: str):
    __tracebackhide__ = True
    ratios = step_ratios(case, result, arith)
    bad = {field: r for field, r in ratios.items() if not r <= 1.0}
    if bad:
        n, i, o = case.shape
        raise AssertionError(
            f"{name} on {case.kind} data {case.x.dtype} (N, I, O) = ({n}, {i}, {o}), lr={case.lr}: "
            f"error / bound {bad} under {arith.name}"
        )


# ------------------------------------------------------------------------------------------
# No false positive.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_implementations_inside_bound(dtype: str) -> None:
    """Five summation orders / tie conventions, every value kind, shapes up to 257."""

    @examples(150)
    @given(layer_inputs(dtype=bounds.numpy_dtype(dtype), shapes=layer_shapes(max_size=1 << 14)))
    def check(case: LayerInputs) -> None:
        EXAMPLES_RUN[f"numpy {dtype}"] += 1
        arith = bounds.arithmetic(dtype)
        for name, implementation in NUMPY_IMPLEMENTATIONS.items():
            assert_inside(case, implementation(case.x, case.w, case.target, case.lr), arith, name)

    run_counted(check, f"numpy {dtype}", 150)


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_implementations_inside_bound(dtype: str) -> None:
    """``verify.step`` at default / high / highest and ``verify.autodiff_step``."""

    @examples(100)
    @given(layer_inputs(dtype=bounds.numpy_dtype(dtype), shapes=st.sampled_from(JIT_SHAPES)))
    def check(case: LayerInputs) -> None:
        EXAMPLES_RUN[f"jax {dtype}"] += 1
        arith = bounds.arithmetic(dtype)
        for name, implementation in JAX_IMPLEMENTATIONS.items():
            assert_inside(case, implementation(case.x, case.w, case.target, case.lr), arith, name)

    run_counted(check, f"jax {dtype}", 100)


def test_every_reduced_precision_bound_contains_the_float32_one() -> None:
    """A result inside the float32 bound is inside every reduced-precision bound: the model's
    coefficients grow with u_in, u_acc and passes, never shrink."""
    base = bounds.arithmetic("float32")
    for k in (1, 2, 129, 4096):
        for candidate in bounds.precision_candidates("float32")[1:]:
            assert candidate.dot(k) >= base.dot(k), (candidate.name, k)
            assert candidate.underflow(k) >= base.underflow(k), (candidate.name, k)


# ------------------------------------------------------------------------------------------
# Kinks: exact ties and near ties with every tie convention.
# ------------------------------------------------------------------------------------------


def _near_ties(case: LayerInputs, rng: np.random.Generator) -> LayerInputs:
    """Targets one ulp either side of the exact output (or on it): signs rounding may flip."""
    exact = (case.x.astype(np.float64) @ case.w.astype(np.float64)).astype(case.x.dtype)
    direction = rng.choice([-np.inf, np.inf], size=exact.shape).astype(case.x.dtype)
    nudged = np.nextafter(exact, direction) if case.x.dtype != ml_dtypes.bfloat16 else exact
    target = np.where(rng.random(exact.shape) < 0.5, exact, nudged).astype(case.x.dtype)
    return case._replace(target=target)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_and_near_ties_with_every_convention(dtype: str) -> None:
    """The seed's -1 (verify.step), jax.grad's +1 (autodiff_step, reversed), torch's 0."""
    tie_data = layer_inputs(
        dtype=bounds.numpy_dtype(dtype),
        shapes=st.sampled_from(JIT_SHAPES),
        kinds=("integers", "normal", "cancellation"),
        tie_fraction=1.0,
    )
    conventions = {
        "verify.step (-1)": JAX_IMPLEMENTATIONS["verify.step[highest]"],
        "verify.autodiff_step (+1)": JAX_IMPLEMENTATIONS["verify.autodiff_step"],
        "torch_ties (0)": torch_ties_step,
        "reversed (+1)": reversed_step,
    }

    @examples(30)
    @given(tie_data, st.integers(0, 2**32 - 1), st.booleans())
    def check(case: LayerInputs, seed: int, near: bool) -> None:
        EXAMPLES_RUN[f"ties {dtype}"] += 1
        if near:
            case = _near_ties(case, np.random.default_rng(seed))
        arith = bounds.arithmetic(dtype)
        for name, implementation in conventions.items():
            assert_inside(case, implementation(case.x, case.w, case.target, case.lr), arith, name)

    run_counted(check, f"ties {dtype}", 30)


def test_tie_conventions_differ_and_are_all_admitted() -> None:
    """On exact ties the three conventions give three different dL_dw, all inside the bound."""
    x = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]], np.float32)
    w = np.array([[1.0, -1.0, 2.0], [0.5, 0.0, 1.0]], np.float32)
    target = (x @ w).astype(np.float32)  # every element a tie, including signed zeros
    case = LayerInputs(x, w, target, 0.5, "integers")
    results = {
        name: implementation(x, w, target, 0.5)
        for name, implementation in (
            ("-1", JAX_IMPLEMENTATIONS["verify.step[highest]"]),
            ("+1", JAX_IMPLEMENTATIONS["verify.autodiff_step"]),
            ("0", torch_ties_step),
        )
    }
    dL_dw = {name: np.asarray(r[2]) for name, r in results.items()}
    assert not np.array_equal(dL_dw["-1"], dL_dw["+1"])
    assert not np.array_equal(dL_dw["0"], dL_dw["+1"])
    assert bounds.step_bounds(x, w, target, 0.5, bounds.arithmetic("float32")).kinks.all()
    for name, result in results.items():
        assert_inside(case, result, bounds.arithmetic("float32"), f"tie convention {name}")


# ------------------------------------------------------------------------------------------
# Sensitivity: reduced precision and small errors are caught.
# ------------------------------------------------------------------------------------------


def round_mantissa(a: np.ndarray, bits: int) -> np.ndarray:
    """float32 ``a`` rounded to ``bits`` explicit mantissa bits, to nearest even (TF32: 10)."""
    raw = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - bits
    half = np.uint64(1 << (drop - 1))
    odd = (raw >> np.uint64(drop)) & np.uint64(1)
    rounded = ((raw + half - np.uint64(1) + odd) >> np.uint64(drop)) << np.uint64(drop)
    return rounded.astype(np.uint32).view(np.float32)


def tf32_step(x, w, target, lr) -> tuple[Any, ...]:
    """numpy_step whose float32 matmuls read their inputs as TF32 (10 mantissa bits)."""

    def tf32_matmul(a, b):
        return round_mantissa(a, 10) @ round_mantissa(b, 10)

    output = tf32_matmul(x, w)
    dL_do = np.where(output > target, 1.0, -1.0).astype(np.float32)
    dL_dw = tf32_matmul(x.T, dL_do)
    loss = np.abs(output - target).sum(dtype=np.float32)
    w_new = w - np.float32(lr) * dL_dw
    return loss, tf32_matmul(dL_do, w.T), dL_dw, w_new


def _normal_case(shape: tuple[int, int, int], seed: int, dtype: Any = np.float32) -> LayerInputs:
    rng = np.random.default_rng(seed)
    n, i, o = shape
    x = rng.standard_normal((n, i)).astype(dtype)
    w = rng.standard_normal((i, o)).astype(dtype)
    output = x.astype(np.float64) @ w.astype(np.float64)
    target = (output + rng.choice([-1.0, 1.0], size=output.shape)).astype(dtype)
    return LayerInputs(x, w, target, 0.01, "normal")


def test_tf32_matmul_flagged_at_float32_and_diagnosed() -> None:
    """TF32 input rounding (2^-11 relative) is far outside the float32 bound (K 2^-24) and
    inside the tf32 one; the diagnosis names it."""
    for seed in range(3):
        case = _normal_case((16, 64, 16), seed)
        result = tf32_step(case.x, case.w, case.target, case.lr)
        assert max(step_ratios(case, result, bounds.arithmetic("float32")).values()) > 1.0
        assert_inside(case, result, bounds.arithmetic("float32", "tf32"), "tf32_step")
        diagnosis = bounds.diagnose_step(case.x, case.w, case.target, case.lr, result)
        assert not diagnosis.ok
        assert "float32 (tf32 matmul)" in diagnosis.consistent, diagnosis.message
        assert "float32" not in diagnosis.consistent
        assert "consistent with" in diagnosis.message


@pytest.mark.parametrize("kind", ["normal", "wide", "cancellation", "huge", "tiny", "subnormal"])
def test_tf32_matmul_accepted_under_tf32(kind: str) -> None:
    """The declared reduced precision admits the TF32 emulation on every value kind."""

    @examples(10)
    @given(layer_inputs(dtype=np.float32, kinds=(kind,), shapes=st.sampled_from(JIT_SHAPES)))
    def check(case: LayerInputs) -> None:
        EXAMPLES_RUN["tf32 accepted"] += 1
        result = tf32_step(case.x, case.w, case.target, case.lr)
        assert_inside(case, result, bounds.arithmetic("float32", "tf32"), "tf32_step")

    run_counted(check, "tf32 accepted", 10)


def float16_accumulating_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` for float16 x, w with every partial sum rounded to float16, left to right."""
    total = np.zeros((x.shape[0], w.shape[1]), np.float16)
    for k in range(x.shape[1]):
        total = (total + np.outer(x[:, k], w[k]).astype(np.float16)).astype(np.float16)
    return total


def test_float16_accumulation_flagged_and_diagnosed() -> None:
    """Accumulating K = 257 positive terms in float16 errs by ~K 2^-12 m: flagged under the
    default (float32-accumulating) float16 model, inside the float16-accumulation one."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, (8, 257)).astype(np.float16)
    w = rng.uniform(0.5, 1.0, (257, 4)).astype(np.float16) / np.float16(64)
    output = float16_accumulating_forward(x, w).astype(np.float64)
    assert bounds.forward_bound(x, w, bounds.arithmetic("float16")).worst(output) > 1.0
    half = bounds.arithmetic("float16", accumulate="float16")
    assert bounds.forward_bound(x, w, half).worst(output) <= 1.0
    diagnosis = bounds.diagnose_precision(
        lambda arith: bounds.forward_bound(x, w, arith), output, dtype="float16"
    )
    assert diagnosis.consistent == (half.name,), diagnosis.message
    # The correct (float32-accumulating) result is within the default model.
    assert bounds.forward_bound(x, w, bounds.arithmetic("float16")).worst(_matmul(x, w)) <= 1.0


def _sequential_sum(terms: np.ndarray, dtype: Any) -> float:
    """Left-to-right sum rounding to ``dtype`` after every addition (stagnation included)."""
    total = np.zeros((), dtype=dtype)
    for term in terms.astype(dtype):
        total = (total + term).astype(dtype)
    return float(total)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("count", [255, 256, 300, 2048])
def test_half_accumulation_is_bounded_past_k_u_equal_1(dtype: str, count: int) -> None:
    """Higham's gamma_K is infinite from K u >= 1 (K = 256 in bfloat16); the model's
    ``(1 + u)^K - 1`` is not, and still holds a stagnating half-precision sum: 2048 ones
    summed in bfloat16 stop at 256."""
    u = bounds.UNIT_ROUNDOFF[dtype]
    assert math.isinf(bounds.gamma(count, u)) == (count * u >= 1)
    growth = bounds.rounding_growth(count, u)
    assert math.isfinite(growth) and growth <= bounds.gamma(count, u)
    np_dtype = bounds.numpy_dtype(dtype)
    rng = np.random.default_rng(count)
    for output in (np.ones((1, count)), rng.uniform(0.5, 2.0, (1, count))):
        output = output.astype(np_dtype)
        target = np.zeros_like(output)
        half = bounds.arithmetic(dtype, accumulate=dtype)
        bound = bounds.loss_bound(
            bounds.Bound(output.astype(np.float64), np.zeros(output.shape)), target, half
        )
        assert math.isfinite(float(bound.radius))
        assert bound.worst(_sequential_sum(output.ravel(), np_dtype)) <= 1.0


def test_compound_keeps_relative_errors_below_float64_epsilon() -> None:
    # 1 + 2^-53 == 1 in float64: (1 + u)(1 + u) - 1 formed directly would give 0.
    assert bounds.compound(2.0**-53) == 2.0**-53
    assert bounds.compound(2.0**-53, 2.0**-53) >= 2.0**-52
    assert bounds.FLOAT64.dot(1) >= 2.0**-52


def _ulps_beyond(dtype: str, k: int, smallest_output: float) -> int:
    """Ulps by which a correct result moved is sure to be flagged, from the model alone.

    Positive data: ``|value| = m >= smallest_output`` and ``ulp(v) > u |v|``. A correct result
    is within ``(c_K + c64_K) m + a_K`` of the centre (the float64 centre errs too) and so is the
    radius, so ``n`` ulps with ``n u m (1 - c_K) > 2 ((c_K + c64_K) m + a_K)`` are outside.
    """
    arith = bounds.arithmetic(dtype)
    c = arith.dot(k) + bounds.FLOAT64.dot(k)
    edge = 2 * (c + arith.underflow(k) / smallest_output) * (1 + 2.0**-40)
    return math.floor(edge / (arith.u_out * (1 - arith.dot(k)))) + 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_few_ulps_beyond_the_bound_is_flagged(dtype: str, k: int) -> None:
    """At small K the bound admits only a few ulps: an output moved by a few is caught."""
    np_dtype = bounds.numpy_dtype(dtype)
    rng = np.random.default_rng(k)
    x = rng.uniform(0.5, 1.0, (16, k)).astype(np_dtype)
    w = rng.uniform(0.5, 1.0, (k, 16)).astype(np_dtype)
    correct = np.asarray(verify.forward(x, w))
    bound = bounds.forward_bound(x, w, bounds.arithmetic(dtype))
    n = _ulps_beyond(dtype, k, smallest_output=0.25 * k)
    # "A few": c_K ~ (K + 1) u_out (float32) or ~ u_out (half types, float32 accumulation),
    # doubled for float64 whose centre errs as much as the result.
    assert n <= 4 * (k + 1) + 1, n
    assert bound.worst(correct.astype(np.float64)) <= 1.0
    for direction in (np.inf, -np.inf):
        moved = correct.copy()
        for _ in range(n):
            moved = np.nextafter(moved, np.asarray(direction, np_dtype)).astype(np_dtype)
        assert (bound.ratio(moved.astype(np.float64)) > 1.0).all(), (dtype, k, n)


def test_rescaled_gradient_is_not_a_rounding_effect() -> None:
    """A factor-N bug fits no precision: the diagnosis says so."""
    case = _normal_case((16, 8, 4), 1)
    loss, dL_dx, dL_dw, w_new = numpy_step(case.x, case.w, case.target, case.lr)
    diagnosis = bounds.diagnose_step(
        case.x, case.w, case.target, case.lr, (loss, dL_dx, dL_dw / np.float32(16), w_new)
    )
    assert diagnosis.consistent == ()
    assert "not a rounding effect" in diagnosis.message


def test_correct_result_is_diagnosed_ok() -> None:
    case = _normal_case((16, 8, 4), 2)
    result = JAX_IMPLEMENTATIONS["verify.step[highest]"](case.x, case.w, case.target, case.lr)
    diagnosis = bounds.diagnose_step(case.x, case.w, case.target, case.lr, result)
    assert diagnosis.ok, diagnosis.message
    assert diagnosis.message.startswith("within the float32 bound")


# ------------------------------------------------------------------------------------------
# The parts of the model that were wrong before, pinned.
# ------------------------------------------------------------------------------------------


def test_flushed_subnormal_inputs_are_covered() -> None:
    """XLA on CPU reads subnormal inputs as zero: 1e-40 * 1e20 gives 0, not 1e-20."""
    x = np.array([[1e-40, 1e-40]], np.float32)
    w = np.array([[1e20], [1e20]], np.float32)
    output = np.asarray(verify.forward(x, w)).astype(np.float64)
    bound = bounds.forward_bound(x, w, bounds.arithmetic("float32"))
    assert bound.worst(output) <= 1.0
    assert bound.worst(x.astype(np.float64) @ w.astype(np.float64)) <= 1.0


def test_loss_counts_the_rounding_of_each_difference() -> None:
    """bfloat16 differences are stored (rounded at 2^-8) before the float32 sum: three of
    1 + 2^-8 + 2^-12 each round up to 1 + 2^-7, and the sum rounds up again: 0.6% high, past
    a model that counted only the sum's roundings (u_out L), inside one that counts both."""
    output = np.ones((1, 3), ml_dtypes.bfloat16)
    target = np.full((1, 3), -(2.0**-8 + 2.0**-12), ml_dtypes.bfloat16)
    differences = output - target  # bfloat16 arithmetic: each rounded
    loss = differences.astype(np.float32).sum(dtype=np.float32).astype(ml_dtypes.bfloat16)
    exact = float(np.sum(output.astype(np.float64) - target.astype(np.float64)))
    assert float(loss) - exact > bounds.UNIT_ROUNDOFF["bfloat16"] * exact * 1.5
    given_output = bounds.Bound(output.astype(np.float64), np.zeros((1, 3)))
    assert bounds.loss_bound(given_output, target, bounds.arithmetic("bfloat16")).worst(loss) <= 1


# ------------------------------------------------------------------------------------------
# Tightness: the worst error / bound over random data.
# ------------------------------------------------------------------------------------------


def _exact_errors(output: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|output - a @ b|`` with ``a @ b`` exact (Fractions), the error rounded once."""
    fa = [[Fraction(float(v)) for v in row] for row in a.astype(np.float64)]
    fb = [[Fraction(float(v)) for v in row] for row in b.astype(np.float64).T]
    rows = []
    for r, out_row in zip(fa, output.astype(np.float64), strict=True):
        exact = [sum(p * q for p, q in zip(r, c, strict=True)) for c in fb]
        rows.append(
            [float(abs(Fraction(float(o)) - e)) for o, e in zip(out_row, exact, strict=True)]
        )
    return np.array(rows)


TIGHTNESS_K = (1, 7, 64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bound_is_tight_on_random_data(dtype: str) -> None:
    """Worst |verify.forward - exact| / radius over positive random data, per K.

    Floor from the model: positive data makes |output| = m; the last rounding of some output
    among hundreds errs by >= u_out/2 |output| in the direction of the error accumulated
    before it, so the worst ratio is at least (u_out / 2) / (c_K + c64_K); half of that is
    asserted. Ceiling: the bound itself, 1.
    """
    np_dtype = bounds.numpy_dtype(dtype)
    arith = bounds.arithmetic(dtype)
    rng = np.random.default_rng(2024)
    worst = {}
    for k in TIGHTNESS_K:
        x = rng.uniform(0.5, 1.0, (16, k)).astype(np_dtype)
        w = rng.uniform(0.5, 1.0, (k, 24)).astype(np_dtype)
        output = np.asarray(verify.forward(x, w)).astype(np.float64)
        bound = bounds.forward_bound(x, w, arith)
        ratio = float(np.max(_exact_errors(output, x, w) / bound.radius))
        floor = arith.u_out / 4 / (arith.dot(k) + bounds.FLOAT64.dot(k))
        worst[k] = ratio
        assert floor < ratio < 1.0, (dtype, k, ratio, floor)
    print(
        f"\ntightness {dtype}: worst error/bound by K "
        + str({k: f"{r:.3g}" for k, r in worst.items()})
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_worst_ratio_on_generated_data(dtype: str) -> None:
    """Worst error / bound of verify.step per output over normal data without ties (gradients
    at ties sit on the edge of the admissible set by design): printed, below 1, above 0."""
    np_dtype = bounds.numpy_dtype(dtype)
    arith = bounds.arithmetic(dtype)
    worst = dict.fromkeys(reference.StepResult._fields, 0.0)
    for seed, shape in enumerate(JIT_SHAPES[1:]):
        case = _normal_case(tuple(shape), seed, np_dtype)
        result = JAX_IMPLEMENTATIONS["verify.step[highest]"](case.x, case.w, case.target, case.lr)
        for field, ratio in step_ratios(case, result, arith).items():
            if field in worst:
                worst[field] = max(worst[field], ratio)
    print(f"\nworst ratio {dtype}: " + str({f: f"{r:.3g}" for f, r in worst.items()}))
    assert 0.0 < max(worst.values()) < 1.0


# ------------------------------------------------------------------------------------------
# The bias: x @ w + b in any order, dL_db as a sum, b_new as an update.
# ------------------------------------------------------------------------------------------


def _sign(output: np.ndarray, target: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.where(output > target, 1.0, -1.0).astype(dtype)


def _bias_tail(x, w, b, target, lr, output) -> tuple[Any, ...]:
    """The rest of a step from its stored output: the seed's gradients, dL_db summed in the
    accumulator, both updates in the dtype."""
    dtype = x.dtype
    acc = _accumulator(dtype)
    loss = np.abs(output - target).astype(acc).sum().astype(dtype)
    dL_do = _sign(output, target, dtype)
    dL_dw = _matmul(x.T, dL_do)
    dL_db = dL_do.astype(acc).sum(axis=0).astype(dtype)
    rate = dtype.type(lr)
    return (
        loss,
        _matmul(dL_do, w.T),
        dL_dw,
        dL_db,
        (w - rate * dL_dw).astype(dtype),
        (b - rate * dL_db).astype(dtype),
    )


def bias_added_after_store(x, w, b, target, lr) -> tuple[Any, ...]:
    """``x @ w`` stored in the dtype, then ``+ b`` in the dtype: two roundings to the dtype."""
    return _bias_tail(x, w, b, target, lr, (_matmul(x, w) + b).astype(x.dtype))


def bias_starts_the_accumulator(x, w, b, target, lr) -> tuple[Any, ...]:
    """b first, then the products summed last to first in the accumulator (a GEMM with
    beta = 1), stored once; dL_db as a matmul of a row of ones with dL_do."""
    dtype = x.dtype
    acc = _accumulator(dtype)
    products = x.astype(acc)[:, ::-1, None] * w.astype(acc)[None, ::-1, :]
    terms = np.concatenate(
        [np.broadcast_to(b.astype(acc), (x.shape[0], 1, w.shape[1])), products], 1
    )
    output = np.add.accumulate(terms, axis=1)[:, -1].astype(dtype)
    loss, dL_dx, dL_dw, _, w_new, _ = _bias_tail(x, w, b, target, lr, output)
    dL_db = _matmul(np.ones((1, x.shape[0]), dtype), _sign(output, target, dtype))[0]
    return loss, dL_dx, dL_dw, dL_db, w_new, (b - dtype.type(lr) * dL_db).astype(dtype)


def bias_in_float64_then_cast(x, w, b, target, lr) -> tuple[Any, ...]:
    """Everything in float64, each result cast once at the end."""
    dtype = x.dtype
    x64, w64, b64, t64 = (a.astype(np.float64) for a in (x, w, b, target))
    output = x64 @ w64 + b64
    dL_do = np.where(output > t64, 1.0, -1.0)
    dL_dw, dL_db = x64.T @ dL_do, dL_do.sum(axis=0)
    return (
        dtype.type(np.abs(output - t64).sum()),
        (dL_do @ w64.T).astype(dtype),
        dL_dw.astype(dtype),
        dL_db.astype(dtype),
        (w64 - lr * dL_dw.astype(dtype).astype(np.float64)).astype(dtype),
        (b64 - lr * dL_db.astype(dtype).astype(np.float64)).astype(dtype),
    )


BiasStep = Callable[..., Sequence[Any]]

BIAS_IMPLEMENTATIONS: dict[str, BiasStep] = {
    "added_after_store": bias_added_after_store,
    "starts_the_accumulator": bias_starts_the_accumulator,
    "float64_then_cast": bias_in_float64_then_cast,
    "verify.step": lambda *args: tuple(np.asarray(v) for v in verify.step(*args)),
    "verify.autodiff_step": lambda *args: tuple(np.asarray(v) for v in verify.autodiff_step(*args)),
}


def bias_step_ratios(case: BiasLayerInputs, result: Sequence[Any], arith: bounds.Arithmetic):
    """Worst error / bound per result of a step with a bias, and each update against the
    step's own gradient."""
    expected = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith, b=case.b)
    values = [np.asarray(v).astype(np.float64) for v in result]
    fields = reference.BiasStepResult._fields
    ratios = {
        f: bound.worst(v) for f, bound, v in zip(fields, expected.results(), values, strict=True)
    }
    ratios["w_new_vs_own"] = bounds.update_bound(case.w, values[2], case.lr, arith).worst(values[4])
    ratios["b_new_vs_own"] = bounds.update_bound(case.b, values[3], case.lr, arith).worst(values[5])
    return ratios


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_implementations_inside_bound(dtype: str) -> None:
    """The bias added after the store, starting the accumulator, in float64; verify.step and
    jax.grad's: every kind of ``layer_inputs(bias=True)`` inside the model."""

    @examples(60)
    @given(
        layer_inputs(dtype=bounds.numpy_dtype(dtype), shapes=st.sampled_from(JIT_SHAPES), bias=True)
    )
    def check(case: BiasLayerInputs) -> None:
        EXAMPLES_RUN[f"bias {dtype}"] += 1
        arith = bounds.arithmetic(dtype)
        args = (case.x, case.w, case.b, case.target, case.lr)
        for name, implementation in BIAS_IMPLEMENTATIONS.items():
            ratios = bias_step_ratios(case, implementation(*args), arith)
            bad = {field: r for field, r in ratios.items() if not r <= 1.0}
            assert not bad, (name, case.kind, case.shape, case.lr, bad)

    run_counted(check, f"bias {dtype}", 60)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 3])
def test_bias_forward_a_few_ulps_beyond_is_flagged(dtype: str, k: int) -> None:
    """The extra addition widens the radius by one rounding, not more: an output moved by a
    few ulps is still caught, and the correct one (added after the store, or in the
    accumulator) is inside."""
    np_dtype = bounds.numpy_dtype(dtype)
    arith = bounds.arithmetic(dtype)
    rng = np.random.default_rng(k)
    x = rng.uniform(0.5, 1.0, (16, k)).astype(np_dtype)
    w = rng.uniform(0.5, 1.0, (k, 16)).astype(np_dtype)
    b = rng.uniform(0.5, 1.0, 16).astype(np_dtype)
    bound = bounds.forward_bound(x, w, arith, b=b)
    correct = np.asarray(verify.forward(x, w, b))
    assert bound.worst(correct.astype(np.float64)) <= 1.0
    assert bound.worst((_matmul(x, w) + b).astype(np_dtype).astype(np.float64)) <= 1.0
    # Positive data: |output| = m >= 0.25 k + 0.5, and the radius is c m + a with
    # c = (1 + c_{k+1})(1 + u) - 1 plus the float64 centre's own; n ulps past 2 radii are out.
    c = bounds.compound(arith.dot(k + 1), arith.u_out) + bounds.compound(
        bounds.FLOAT64.dot(k + 1), 2.0**-53
    )
    smallest = 0.25 * k + 0.5
    edge = 2 * (c + (arith.underflow(k + 1) + arith.tiny) / smallest) * (1 + 2.0**-40)
    n = math.floor(edge / (arith.u_out * (1 - arith.dot(k + 1)))) + 1
    # "A few": c ~ (k + 3) u_out at float64 (k + 1 terms, two stores), doubled because the
    # float64 centre errs as much as the result; one more store than the seed's forward.
    assert n <= 4 * (k + 3) + 1, n
    for direction in (np.inf, -np.inf):
        moved = correct.copy()
        for _ in range(n):
            moved = np.nextafter(moved, np.asarray(direction, np_dtype)).astype(np_dtype)
        assert (bound.ratio(moved.astype(np.float64)) > 1.0).all(), (dtype, k, n)


def test_bias_bugs_are_outside_the_bound() -> None:
    """dL_db as a mean over the batch, or ignoring the upstream gradient, and b not updated:
    each is outside the model, on data without ties (a sign that is certain)."""
    case = example_inputs((16, 8, 4), kind="normal", seed=3, tie_fraction=0.0, lr=0.5, bias=True)
    arith = bounds.arithmetic("float32")
    expected = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith, b=case.b)
    result = bias_added_after_store(case.x, case.w, case.b, case.target, case.lr)
    dL_db = result[3].astype(np.float64)
    assert expected.dL_db.worst(dL_db) <= 1.0
    assert expected.dL_db.worst(dL_db / 16) > 1.0
    assert expected.b_new.worst(case.b.astype(np.float64)) > 1.0
    upstream = np.random.default_rng(0).standard_normal((16, 4))
    given_upstream = bounds.grad_b_bound(upstream, arith)
    assert given_upstream.worst(upstream.sum(axis=0).astype(np.float32)) <= 1.0
    assert given_upstream.worst(np.full(4, 16.0)) > 1.0  # the sum of +1s, not of dL_do


def test_subnormal_bias_read_as_zero_is_covered() -> None:
    """XLA on CPU reads a subnormal b as zero in the addition: within the bound either way."""
    x, w = np.zeros((2, 1), np.float32), np.ones((1, 3), np.float32)
    b = np.array([1e-40, -3e-39, 0.0], np.float32)
    bound = bounds.forward_bound(x, w, bounds.arithmetic("float32"), b=b)
    assert bound.worst(np.asarray(verify.forward(x, w, b)).astype(np.float64)) <= 1.0
    assert bound.worst(np.zeros((2, 3))) <= 1.0
    assert bound.worst(np.broadcast_to(b.astype(np.float64), (2, 3))) <= 1.0


def test_exact_products_see_the_bias() -> None:
    x, w = np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]])
    assert bounds.exact_products(x, w, "float32", np.array([5.0]))
    assert not bounds.exact_products(x, w, "float32", np.array([0.5]))
    assert not bounds.exact_products(x, w, "bfloat16", np.array([2.0**9]))  # 11 + 512 > 2^8


def test_without_a_bias_the_bounds_are_unchanged() -> None:
    """b=None is the seed's model: four results, and the same radii as a call without it."""
    case = _normal_case((16, 8, 4), 4)
    arith = bounds.arithmetic("float32")
    plain = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith)
    assert len(plain.results()) == 4 and plain.dL_db is None and plain.b_new is None
    same = bounds.forward_bound(case.x, case.w, arith, b=None)
    np.testing.assert_array_equal(same.radius, plain.output.radius)


def test_the_tree_forms_are_the_forms_with_b() -> None:
    """``tree_step_bounds`` / ``tree_forward_bound`` of ``{"w": w, "b": b}`` (in any key order)
    are ``step_bounds`` / ``forward_bound`` with ``b=``, bit for bit, every parameter's
    gradient and update under its name."""
    case = example_inputs((16, 8, 4), kind="normal", seed=4, bias=True)
    arith = bounds.arithmetic("float32")
    by_keyword = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith, b=case.b)
    sorted_keys = {"b": case.b, "w": case.w}  # as jax.tree rebuilds a dict
    tree = bounds.tree_step_bounds(case.x, sorted_keys, case.target, case.lr, arith)
    assert list(tree.grads) == list(tree.updates) == ["w", "b"]
    assert tree.dL_db is tree.grads["b"] and tree.b_new is tree.updates["b"]
    for got, want in zip(tree.results(), by_keyword.results(), strict=True):
        np.testing.assert_array_equal(got.center, want.center)
        np.testing.assert_array_equal(got.radius, want.radius)
    output = bounds.tree_forward_bound(case.x, case.params, arith)
    np.testing.assert_array_equal(output.radius, by_keyword.output.radius)
    with pytest.raises(ValueError, match="params must be"):
        bounds.tree_forward_bound(case.x, {"b": case.b}, arith)


def test_the_bias_radius_is_one_more_term_and_one_more_store() -> None:
    """The forward bound over the tree: a length-(I + 1) sum with one more store of x @ w, as
    the module docstring derives it, and the seed's length-I dot product without a bias."""
    case = example_inputs((3, 5, 2), kind="normal", seed=1, bias=True)
    arith = bounds.arithmetic("float32")
    magnitude = np.abs(case.x.astype(np.float64)) @ np.abs(case.w) + np.abs(case.b)
    coefficient = bounds.compound(arith.dot(6), arith.u_out)
    own = bounds.compound(bounds.FLOAT64.dot(6), bounds.FLOAT64.u_out)
    flushes = arith.underflow(6) + arith.tiny
    factor = 1 / (1 - bounds.gamma(6, 2.0**-53))
    expected = ((coefficient + own) * magnitude * factor + flushes) * (1 + 2.0**-46)
    got = bounds.forward_bound(case.x, case.w, arith, b=case.b).radius
    np.testing.assert_array_equal(got, expected)
    plain = np.abs(case.x.astype(np.float64)) @ np.abs(case.w)
    coefficient, own = arith.dot(5), bounds.FLOAT64.dot(5)
    factor = 1 / (1 - bounds.gamma(5, 2.0**-53))
    expected = ((coefficient + own) * plain * factor + arith.underflow(5)) * (1 + 2.0**-46)
    np.testing.assert_array_equal(bounds.forward_bound(case.x, case.w, arith).radius, expected)


# ------------------------------------------------------------------------------------------
# Reductions: a loss divided by D (mean over N*O, batchmean over N) and every gradient with it.
# ------------------------------------------------------------------------------------------

#: Divisors for the exhaustive checks: small primes and composites, N*O of the edge shapes,
#: powers of two, past a bfloat16 / float16 significand (D itself rounds) and past float16's
#: 1/D >= 2 tiny (2^13) and its largest finite number (65504).
DIVISORS = (2, 3, 6, 7, 129, 257, 771, 1000, 2049, 4096, 8191, 8192, 16384, 65535, 70000)


def _every_value(dtype: Any) -> np.ndarray:
    """Every finite value of a 16-bit format, in float64."""
    values = np.arange(1 << 16, dtype=np.uint16).view(dtype)
    with np.errstate(invalid="ignore"):  # bfloat16's NaNs cast with a warning
        as_float64 = values.astype(np.float64)
    return as_float64[np.isfinite(as_float64)]


def _flushed(values: np.ndarray, dtype: Any) -> np.ndarray:
    """``values`` stored in ``dtype`` with subnormals flushed to zero (XLA on CPU), in float64."""
    stored = np.asarray(values).astype(dtype).astype(np.float64)
    return np.where(np.abs(stored) < bounds.smallest_normal(bounds.dtype_name(dtype)), 0.0, stored)


def _quotients(q: np.ndarray, divisor: int, dtype: Any) -> dict[str, np.ndarray]:
    """``q / D`` stored in ``dtype``, every way a correct implementation divides: correctly
    rounded (a float64 quotient rounded once more is innocuous: Figueroa), in float32 then
    stored, by a float32 reciprocal, by the dtype's reciprocal, by D rounded to the dtype (a
    bfloat16 257 is 256), and flushed to zero at each step (XLA on CPU). In float64."""
    f32, stored = np.float32, np.asarray(q).astype(dtype)
    with np.errstate(all="ignore"):  # float16's 65535 and 70000 overflow: 1 / inf = 0
        rounded_d = np.asarray(divisor, np.float64).astype(dtype)
        reciprocal = np.asarray(1.0 / divisor).astype(dtype)
        found = {
            "correctly rounded": (q / divisor).astype(dtype),
            "float32 then stored": (stored.astype(f32) / f32(divisor)).astype(dtype),
            "float32 reciprocal": (stored.astype(f32) * f32(1.0 / divisor)).astype(dtype),
            "dtype reciprocal": (stored * reciprocal).astype(dtype),
            "D rounded to the dtype": (stored / rounded_d).astype(dtype),
            "reciprocal of D rounded": (stored * (dtype.type(1) / rounded_d)).astype(dtype),
        }
        flushed = _flushed(_flushed(q, dtype) * _flushed(reciprocal, dtype), dtype)
    return {name: value.astype(np.float64) for name, value in found.items()} | {
        "flushed to zero": flushed
    }


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_division_is_within_its_model_for_every_value(dtype: str) -> None:
    """Exhaustive: every finite bfloat16 / float16 q, divided by each of ``DIVISORS`` in each
    way (``_quotients``), lands within ``rho_D |q| / D + eta_D`` of ``q / D``: compared as
    ``|c D - q| <= rho_D |q| + eta_D D``, exact in float64 (c and q have at most 11 bits, D at
    most 17). The worst is at least 0.4 of the bound (two roundings of the four the model
    allows) wherever 1/D is normal."""
    np_dtype = bounds.numpy_dtype(dtype)
    q = _every_value(np_dtype)
    arith = bounds.arithmetic(dtype)
    assert bounds.division_error(1, arith) == (0.0, 0.0)  # a sum divides nothing
    for divisor in DIVISORS:
        rho, eta = bounds.division_error(divisor, arith)
        worst = 0.0
        for way, quotient in _quotients(q, divisor, np_dtype).items():
            error = np.abs(quotient * divisor - q)
            allowed = rho * np.abs(q) + eta * divisor
            ratio = float(np.max(np.where(error == 0, 0.0, error / allowed)))
            assert ratio <= 1.0, (dtype, divisor, way, ratio)
            worst = max(worst, ratio)
        if 2 * divisor * bounds.smallest_normal(dtype) <= 1:
            assert worst > 0.4, (dtype, divisor, worst)


def _exact_relative(values: np.ndarray, divisors: np.ndarray) -> np.ndarray:
    """``|v D - 1|`` for float64 values v with at most 24 significant bits and D < 2^24: v D
    has at most 48 bits, exact in float64."""
    return np.abs(values * divisors - 1.0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_one_over_d_is_stored_within_rho_for_every_divisor(dtype: str) -> None:
    """Exhaustive over D = 2 .. 2^17: ±1/D stored as dL_do (from float64, from a float32
    reciprocal, as 1 over D rounded to the dtype, flushed to zero) is within ``rho_D / D`` of
    1/D with no absolute term: its rounding is relative only while 1/D >= 2 tiny."""
    np_dtype = bounds.numpy_dtype(dtype)
    arith = bounds.arithmetic(dtype)
    divisors = np.arange(2, (1 << 17) + 1, dtype=np.float64)
    rho = np.array([bounds.division_error(int(d), arith)[0] for d in divisors])
    with np.errstate(all="ignore"):
        stored = {
            "from float64": (1.0 / divisors).astype(np_dtype),
            "from float32": (np.float32(1) / divisors.astype(np.float32)).astype(np_dtype),
            "1 / D rounded": np_dtype.type(1) / divisors.astype(np_dtype),
        }
    stored = {name: value.astype(np.float64) for name, value in stored.items()}
    stored["flushed to zero"] = _flushed(1.0 / divisors, np_dtype)
    for way, value in stored.items():
        ratio = _exact_relative(value, divisors) / rho
        assert float(ratio.max()) <= 1.0, (dtype, way, divisors[int(np.argmax(ratio))])


def test_one_over_d_in_float64_within_rho() -> None:
    """float64's ±1/D, exactly (Fractions): correctly rounded, and 1 / fl(D) for D past 2^53
    does not arise here; D = 2 .. 5000 and the N*O of the largest shapes."""
    arith = bounds.FLOAT64
    for divisor in [*range(2, 5001), 257 * 5, 129 * 129, 3 * 131073]:
        rho = bounds.division_error(divisor, arith)[0]
        error = abs(Fraction(1.0 / divisor) * divisor - 1)
        assert error <= Fraction(rho), divisor


def test_the_reductions_divide_by_one_n_o_and_n() -> None:
    assert [bounds.reduction_divisor(r, 5, 3) for r in bounds.REDUCTIONS] == [1, 15, 5]
    assert bounds.REDUCTIONS["mean"].words == "a mean over N*O"
    assert bounds.REDUCTIONS["batchmean"].divides_by == "N"
    with pytest.raises(ValueError, match="reduction must be one of"):
        bounds.reduction_divisor("none", 5, 3)


def _divided(values: np.ndarray, divisor: int, dtype: np.dtype, how: str) -> np.ndarray:
    """``values / D`` in ``dtype``: by a correctly rounded division, or by the dtype's
    reciprocal."""
    if how == "reciprocal":
        return (values.astype(dtype) * np.asarray(1.0 / divisor).astype(dtype)).astype(dtype)
    return (values.astype(np.float64) / divisor).astype(dtype)


def reduced_loss(output, target, divisor: int, how: str) -> Any:
    """L = sum |output - target| / D, in one of the ways a correct implementation takes:
    ``after`` (summed in the accumulator, divided there, stored), ``stored`` (the sum stored,
    divided in the dtype), ``terms`` (each term divided in the dtype, then summed),
    ``float64`` (all in float64, cast), ``mean`` (numpy's mean in the accumulator)."""
    dtype = output.dtype
    acc = _accumulator(dtype)
    terms = np.abs(output - target)
    if how == "after":
        return (terms.astype(acc).sum() / acc.type(divisor)).astype(dtype)
    if how == "stored":
        return _divided(terms.astype(acc).sum().astype(dtype), divisor, dtype, "reciprocal")
    if how == "terms":
        return _divided(terms, divisor, dtype, "division").astype(acc).sum().astype(dtype)
    if how == "float64":
        difference = output.astype(np.float64) - target.astype(np.float64)
        return dtype.type(np.abs(difference).sum() / divisor)
    return (terms.astype(acc).mean() * (terms.size / divisor)).astype(dtype)


def reduced_step(x, w, target, lr, *, divisor: int, where: str, tie: float = -1.0):
    """The step under a reduction of divisor D: ``upstream`` divides dL_do (the pieces' way:
    loss_grad returns sign / D), ``result`` divides each gradient after its matmul (a fused
    step), ``float64`` computes everything in float64 and casts; the loss ``after``."""
    dtype = x.dtype
    output = _matmul(x, w)
    difference = output - target
    signs = np.where(difference > 0, 1.0, np.where(difference < 0, -1.0, tie))
    loss = reduced_loss(output, target, divisor, "after")
    if where == "float64":
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        dL_do = signs / divisor
        dL_dw = (x64.T @ dL_do).astype(dtype)
        dL_dx = (dL_do @ w64.T).astype(dtype)
    elif where == "upstream":
        dL_do = _divided(signs, divisor, dtype, "division")
        dL_dw, dL_dx = _matmul(x.T, dL_do), _matmul(dL_do, w.T)
    else:
        sign = signs.astype(dtype)
        dL_dw = _divided(_matmul(x.T, sign), divisor, dtype, "reciprocal")
        dL_dx = _divided(_matmul(sign, w.T), divisor, dtype, "division")
    return loss, dL_dx, dL_dw, (w - dtype.type(lr) * dL_dw).astype(dtype)


def _jax_mean_step(x, w, target, lr) -> tuple[Any, ...]:
    """jax.value_and_grad of ``jnp.mean(jnp.abs(x @ w - target))`` (a mean over N*O), and SGD:
    XLA's own order and its own division (the gradient of the mean)."""
    import jax
    import jax.numpy as jnp

    def loss(w, x):
        return jnp.mean(jnp.abs(x @ w - target))

    value, (dL_dw, dL_dx) = jax.value_and_grad(loss, argnums=(0, 1))(w, x)
    return tuple(np.asarray(v) for v in (value, dL_dx, dL_dw, w - lr * dL_dw))


def _reduced_ratios(case: LayerInputs, result: Sequence[Any], reduction: str) -> dict:
    arith = bounds.arithmetic(case.x.dtype)
    expected = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith, reduction=reduction)
    fields = reference.StepResult._fields
    return {
        field: bound.worst(np.asarray(value).astype(np.float64))
        for field, bound, value in zip(fields, expected.results(), result, strict=True)
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduced_losses_and_steps_inside_bound(dtype: str) -> None:
    """mean and batchmean: the loss divided in each way (``reduced_loss``), the step's
    gradients divided before or after their matmuls or in float64 (``reduced_step``), with
    the three tie conventions, on every value kind and shapes up to 257, inside the bounds of
    the declared reduction."""
    np_dtype = bounds.numpy_dtype(dtype)
    arith = bounds.arithmetic(dtype)
    data = layer_inputs(dtype=np_dtype, shapes=layer_shapes(max_size=1 << 12), tie_fraction=0.3)

    @examples(60)
    @given(data, st.sampled_from(["mean", "batchmean"]), st.sampled_from([-1.0, 0.0, 1.0]))
    def check(case: LayerInputs, reduction: str, tie: float) -> None:
        EXAMPLES_RUN[f"reduced {dtype}"] += 1
        n, _, o = case.shape
        divisor = bounds.reduction_divisor(reduction, n, o)
        output = _matmul(case.x, case.w)
        given_output = bounds.Bound(output.astype(np.float64), np.zeros(output.shape))
        loss = bounds.loss_bound(given_output, case.target, arith, reduction=reduction)
        for how in ("after", "stored", "terms", "float64", "mean"):
            value = reduced_loss(output, case.target, divisor, how)
            assert loss.worst(np.float64(value)) <= 1.0, (how, reduction, case.shape)
        for where in ("upstream", "result", "float64"):
            result = reduced_step(
                case.x, case.w, case.target, case.lr, divisor=divisor, where=where, tie=tie
            )
            ratios = _reduced_ratios(case, result, reduction)
            assert max(ratios.values()) <= 1.0, (where, reduction, case.kind, case.shape, ratios)

    run_counted(check, f"reduced {dtype}", 60)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_jax_grad_of_a_mean_inside_the_mean_bound(dtype: str) -> None:
    """``jax.value_and_grad`` of ``jnp.mean``: XLA's own sums and division, +1 at ties."""

    @examples(30)
    @given(
        layer_inputs(
            dtype=bounds.numpy_dtype(dtype), shapes=st.sampled_from(JIT_SHAPES), tie_fraction=0.3
        )
    )
    def check(case: LayerInputs) -> None:
        EXAMPLES_RUN[f"jax mean {dtype}"] += 1
        ratios = _reduced_ratios(case, _jax_mean_step(case.x, case.w, case.target, case.lr), "mean")
        assert max(ratios.values()) <= 1.0, (case.kind, case.shape, ratios)

    run_counted(check, f"jax mean {dtype}", 30)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_stagnating_half_precision_mean_is_bounded(dtype: str) -> None:
    """The mean of 4096 ones, each term divided by D in the dtype then summed in the dtype, or
    summed in the dtype then divided: both sums stagnate (bfloat16 at 256 terms, float16 at
    2048) as ``test_half_accumulation_is_bounded_past_k_u_equal_1``'s do, and the model of the
    mean under half accumulation holds both."""
    np_dtype = bounds.numpy_dtype(dtype)
    half = bounds.arithmetic(dtype, accumulate=dtype)
    output = np.ones((16, 256), np_dtype)
    target = np.zeros_like(output)
    bound = bounds.loss_bound(
        bounds.Bound(output.astype(np.float64), np.zeros(output.shape)),
        target,
        half,
        reduction="mean",
    )
    divisor = output.size
    per_term = _sequential_sum((output.astype(np.float64) / divisor).ravel(), np_dtype)
    summed = np.asarray(_sequential_sum(output.ravel(), np_dtype))
    after = float((summed / divisor).astype(np_dtype))
    assert max(per_term, after) <= 0.5  # they did stagnate: the model is not idle here
    assert bound.worst(per_term) <= 1.0 and bound.worst(after) <= 1.0


def test_a_reduction_other_than_the_declared_one_is_outside() -> None:
    """Under mean, a sum (D = 1) and a batchmean (D = N, with O = 3) are far outside, for the
    loss, dL_do and every gradient of the step; under batchmean, a mean is."""
    case = _normal_case((16, 8, 3), 4)
    n, _, o = case.shape
    for declared, actual in (("mean", "sum"), ("mean", "batchmean"), ("batchmean", "mean")):
        divisor = bounds.reduction_divisor(actual, n, o)
        result = reduced_step(
            case.x, case.w, case.target, case.lr, divisor=divisor, where="upstream"
        )
        ratios = _reduced_ratios(case, result, declared)
        assert all(ratios[f] > 100 for f in ("loss", "dL_dx", "dL_dw")), (declared, ratios)
        output = _matmul(case.x, case.w)
        dL_do = _divided(np.sign(output - case.target), divisor, case.x.dtype, "division")
        arith = bounds.arithmetic("float32")
        bound = bounds.loss_grad_bound(output, case.target, arith, reduction=declared)
        assert bound.worst(dL_do.astype(np.float64)) > 100


def test_power_of_two_divisors_bound_the_exact_result() -> None:
    """A power-of-two D divides exactly: the bound still holds it, and stays small (a few
    roundings of the dtype, not more)."""
    case = _normal_case((4, 8, 4), 5)
    arith = bounds.arithmetic("float32")
    expected = bounds.step_bounds(case.x, case.w, case.target, case.lr, arith, reduction="mean")
    result = reduced_step(case.x, case.w, case.target, case.lr, divisor=16, where="upstream")
    assert max(_reduced_ratios(case, result, "mean").values()) <= 1.0
    relative = expected.dL_dw.radius / np.maximum(np.abs(expected.dL_dw.center), 1e-30)
    assert float(np.median(relative)) < 64 * arith.u_out * 8
