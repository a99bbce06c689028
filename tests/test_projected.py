"""Exact mode's projected comparison (``verify._projected``, ``_exact.compare_generated``): the
same mismatch counts and first differing element as the full element-by-element comparison
against ``reference.fast``, for correct results and for every way a result can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from tests.conftest import examples
from verify import _projected
from verify._exact import FIELDS, compare_exact, compare_generated
from verify.strategies import exact_case

#: How a result is spoiled: each is a bug some candidate has (an off-by-one element, a row of
#: another example, a mean, NaN, inf, a fraction, an overflow, a transpose, a sign).
SPOILS = (
    "none",
    "one element +1 unit",
    "a few elements -1 unit",
    "a whole row +1 unit",
    "scaled by 2",
    "NaN",
    "inf",
    "half a unit",
    "too large",
    "transposed",
    "negated",
)

#: Exact-mode shapes, small enough for the full reference in a test.
shapes = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40))


def _spoil(value: np.ndarray, how: str, unit: float, rng: np.random.Generator) -> np.ndarray:
    spoiled = np.array(value, dtype=np.float32)
    flat = spoiled.reshape(-1)
    if how == "one element +1 unit":
        flat[rng.integers(flat.size)] += unit
    elif how == "a few elements -1 unit":
        flat[rng.choice(flat.size, size=min(3, flat.size), replace=False)] -= unit
    elif how == "a whole row +1 unit":
        spoiled[rng.integers(spoiled.shape[0])] += unit
    elif how == "scaled by 2":
        spoiled *= 2
    elif how == "NaN":
        flat[rng.integers(flat.size)] = np.nan
    elif how == "inf":
        flat[rng.integers(flat.size)] = np.inf
    elif how == "half a unit":
        flat[rng.integers(flat.size)] += unit / 2
    elif how == "too large":
        flat[rng.integers(flat.size)] = 2.0**30
    elif how == "transposed":
        spoiled = spoiled.T.copy()
    elif how == "negated":
        spoiled = -spoiled
    return spoiled


@examples(60)
@given(
    shape=shapes,
    seed=st.integers(0, 2**16),
    field=st.sampled_from(FIELDS[1:]),
    how=st.sampled_from(SPOILS),
)
def test_projected_comparison_equals_the_full_one(
    shape: tuple[int, int, int], seed: int, field: str, how: str
) -> None:
    case, output = exact_case(shape, seed=seed)
    correct = reference.fast.step(case.x, case.w, case.target, case.lr, output=output)
    unit = case.lr if field == "w_new" else 1.0
    spoiled = _spoil(getattr(correct, field), how, unit, np.random.default_rng(seed))
    result = correct._replace(**{field: spoiled})
    call = "step(...)"
    assert compare_generated(result, case, output, call) == compare_exact(result, correct, call)


@pytest.mark.parametrize("field", FIELDS[1:])
def test_a_one_unit_error_is_found_at_2048(field: str) -> None:
    """At the size exact mode is for: one element one unit off, among 4M, is counted and
    named, and nothing else is."""
    n = 2048
    case, output = exact_case((n, n, 64) if field == "dL_dx" else (64, n, n), seed=1)
    result = list(verify.step(case.x, case.w, case.target, case.lr))
    target_value = np.array(result[FIELDS.index(field)])
    target_value[17, 1029] += case.lr if field == "w_new" else 1.0
    result[FIELDS.index(field)] = target_value
    mismatches, first = compare_generated(result, case, output)
    assert mismatches == {f: int(f == field) for f in FIELDS}
    assert first is not None and first.startswith(f"{field}[17, 1029]")


def test_entries_keep_every_sum_below_float64s_exact_integers() -> None:
    for terms, magnitude in [(1, 1.0), (2048, 2.0**13), (2**20, 2.0**23), (7, 3.5)]:
        bits = _projected._entry_bits(terms, magnitude)
        assert 2 * terms * magnitude * 2.0**bits < _projected.FLOAT64_EXACT
        assert bits <= _projected.MAX_ENTRY_BITS


def test_sums_too_wide_to_project_exactly_go_to_the_full_comparison() -> None:
    rng = np.random.default_rng(0)
    assert _projected._draws(rng, 2, 2**30, 2.0**32) is None  # 2^62 before any entry
    drawn = _projected._draws(rng, 5, 2048, 2.0**13)
    assert drawn is not None and drawn.shape[0] == 5
    bits = _projected._entry_bits(2048, 2.0**13)
    assert drawn.shape[1] * bits >= _projected.CONFIDENCE_BITS and drawn.max() < 2**bits


def test_a_result_that_is_not_integral_or_is_out_of_bound_is_not_projected() -> None:
    case, output = exact_case((4, 3, 5), seed=0)
    _, dL_do = reference.fast.loss_and_upstream(output, case.target, np.float32)
    product = _projected.step_products(case.x, case.w, dL_do, case.lr)["dL_dw"]
    exact = reference.fast.step(case.x, case.w, case.target, case.lr).dL_dw
    assert _projected.compare_projected("dL_dw", exact, product) == (0, None)
    for spoiled in (exact + 0.25, exact * np.inf, exact + product.bound + 1, exact[:2]):
        assert _projected.compare_projected("dL_dw", spoiled, product) is None


def test_check_exact_projects_generated_data_and_is_complete_on_given_inputs() -> None:
    """Generated data go through projections, given inputs through ``reference.fast``: both
    give the same verdict on the same wrong step."""

    def off_by_one(x, w, target, lr):
        loss, dL_dx, dL_dw, w_new = verify.step(x, w, target, lr)
        dL_dw = np.array(dL_dw)
        dL_dw[0, 0] += 1
        return loss, dL_dx, dL_dw, w_new

    generated = verify.check_exact(off_by_one, (32, 16, 8), seed=4)
    case, _ = exact_case((32, 16, 8), seed=4)
    given_inputs = verify.check_exact(off_by_one, inputs=case)
    assert (
        generated.mismatches
        == given_inputs.mismatches
        == {
            "loss": 0,
            "dL_dx": 0,
            "dL_dw": 1,
            "w_new": 0,
        }
    )
    assert generated.first == given_inputs.first
