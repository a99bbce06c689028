"""One run's shapes and its checks at once: the shape pool every check draws from (few
compiles, the edge shapes and distinct dims kept), and ``jobs`` (the same report for any N)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given

import verify
from tests import zoo
from verify.oracle._cases import (
    EDGE_SHAPES,
    FIXED_SHAPES,
    shape_pool,
    sub_shapes,
)
from verify.oracle._check import run_checks
from verify.oracle._checks import CHECKS
from verify.oracle._report import FunctionReport
from verify.strategies import LayerShape


@pytest.mark.parametrize("seed", [0, 1, 2, None])
def test_the_pool_holds_small_edge_and_distinct_dim_shapes_smallest_first(seed: int | None) -> None:
    pool = shape_pool(seed)
    assert pool[0] == (1, 1, 1)  # where a shrunk pool index ends
    assert set(FIXED_SHAPES) | set(EDGE_SHAPES) <= set(pool)
    sizes = [n * i * o for n, i, o in pool]
    assert sizes == sorted(sizes)
    assert len(set(pool)) == len(pool) == 23
    drawn = set(pool) - set(FIXED_SHAPES) - set(EDGE_SHAPES)
    assert drawn and all(len(set(shape)) == 3 for shape in drawn)
    assert all(n * i * o <= 1 << 16 for n, i, o in pool)


def test_the_pool_is_the_seeds() -> None:
    assert shape_pool(0) == shape_pool(0)
    assert shape_pool(0) != shape_pool(1)


@given(sub_shapes((129, 1, 5)))
def test_sub_shapes_keep_each_side_at_most_the_failing_ones(shape: LayerShape) -> None:
    n, i, o = shape
    assert n in (1, 2, 129) and i == 1 and o in (1, 2, 5)


@pytest.mark.parametrize(
    ("mutant", "function", "call"),
    [
        (zoo.MeanGradW, "grad_w", "grad_w(x: (2, 1), dL_do: (2, 1))"),
        (zoo.BlockedGradW, "grad_w", "grad_w(x: (129, 1), dL_do: (129, 1))"),
        (zoo.MeanStep, "step", "step(x: (2, 1), w: (1, 1), target: (2, 1), lr=0.01)"),
    ],
    ids=["factor-of-N", "past-128", "fused-step"],
)
def test_a_failure_narrows_to_the_sides_it_needs(mutant: type, function: str, call: str) -> None:
    """The pool's smallest failing shape may carry sides the bug does not need; narrowing
    ends where a free search does (each side 1 unless the bug needs it)."""
    report = verify.check(mutant, functions=[function], max_examples=25, seed=0, repro_dir=None)
    assert report[function].case is not None
    assert report[function].case.describe() == call, report.summary()


def test_a_run_compiles_each_shape_once_per_function_and_worker() -> None:
    # One worker: every call of a function is on a pool shape (or the probe), so the run's
    # distinct calls are at most the pool's size per function.
    report = verify.check(zoo.Correct, max_examples=30, seed=0, repro_dir=None, jobs=1)
    report.raise_on_failure()
    assert report.jobs == 1
    assert 0 < report.compiles <= 7 * len(shape_pool(0))


def test_any_number_of_jobs_gives_the_same_report_in_the_registrys_order() -> None:
    reports = [
        verify.check(zoo.MeanGradW, max_examples=10, seed=1, repro_dir=None, jobs=jobs)
        for jobs in (1, 3)
    ]
    assert [r.jobs for r in reports] == [1, 3]
    # Everything but how long each check took (FunctionReport.seconds) is the same.
    one, three = (
        [{k: v for k, v in f.items() if k != "seconds"} for f in r.to_dict()["functions"]]
        for r in reports
    )
    assert one == three
    assert [f["function"] for f in one] == list(CHECKS)
    assert reports[0]["grad_w"].diagnosis == "mean_instead_of_sum"


def test_checks_that_finish_out_of_order_are_reported_in_order() -> None:
    checks = list(CHECKS.values())
    another_ran = threading.Event()

    def run(check, caller) -> FunctionReport:
        if check.name == "forward":
            # The first check finishes last, and only once another thread ran a check.
            assert another_ran.wait(10), "no check ran alongside the first"
        else:
            another_ran.set()
        return FunctionReport(check.name, "pass", caller)

    callers = [0]
    reports = run_checks(checks, callers, lambda: 1, 4, run)  # type: ignore[arg-type]
    assert sorted(reports) == sorted(CHECKS)
    assert sorted(callers) == [0, 1, 1, 1]  # the first caller, and one started per thread


def test_one_job_runs_the_checks_in_order_on_one_caller() -> None:
    order: list[str] = []

    def run(check, caller) -> FunctionReport:
        order.append(check.name)
        return FunctionReport(check.name, "pass", caller)

    callers = [0]
    reports = run_checks(list(CHECKS.values()), callers, lambda: 1, 1, run)  # type: ignore[arg-type]
    assert order == list(CHECKS) and callers == [0]
    assert {r.examples for r in reports.values()} == {0}


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_bad_jobs_name_themselves(jobs: object) -> None:
    with pytest.raises(ValueError, match="jobs"):
        verify.check(zoo.Correct, jobs=jobs)  # type: ignore[arg-type]


def test_the_default_jobs_follow_crosscheck_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from verify.oracle._check import default_jobs

    monkeypatch.setenv("CROSSCHECK_JOBS", "3")
    assert default_jobs() == 3
    monkeypatch.setenv("CROSSCHECK_JOBS", "0")
    with pytest.raises(ValueError, match="CROSSCHECK_JOBS"):
        default_jobs()
    monkeypatch.delenv("CROSSCHECK_JOBS")
    assert default_jobs() >= 1


def test_an_old_hypothesis_runs_the_checks_one_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hypothesis

    monkeypatch.setattr(hypothesis, "__version__", "6.100.0")
    report = verify.check(zoo.Correct, functions=["forward", "loss"], max_examples=3, jobs=2)
    assert report.jobs == 1 and report.passed
