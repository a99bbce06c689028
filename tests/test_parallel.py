"""One run's shapes and its checks at once: the shape pool every check draws from (few
compiles, the edge shapes and distinct dims kept), and ``jobs`` (the same report for any N)."""

from __future__ import annotations

import threading
import time

import pytest

import verify
from tests import zoo
from verify.oracle._cases import EDGE_SHAPES, FIXED_SHAPES, SMALL_SIDES, shape_pool
from verify.oracle._check import run_checks
from verify.oracle._checks import CHECKS
from verify.oracle._report import FunctionReport


@pytest.mark.parametrize("seed", [0, 1, 2, None])
def test_the_pool_holds_small_edge_and_distinct_dim_shapes_smallest_first(seed: int | None) -> None:
    pool = shape_pool(seed)
    small = len(SMALL_SIDES) ** 3
    assert {max(shape) for shape in pool[:small]} == {1, 2}  # where a shrunk index ends
    assert pool[0] == (1, 1, 1)
    assert set(FIXED_SHAPES) | set(EDGE_SHAPES) <= set(pool)
    sizes = [n * i * o for n, i, o in pool[small:]]
    assert sizes == sorted(sizes)
    assert len(set(pool)) == len(pool) == 27
    drawn = set(pool[small:]) - set(FIXED_SHAPES) - set(EDGE_SHAPES)
    assert drawn and all(len(set(shape)) == 3 for shape in drawn)
    assert all(n * i * o <= 1 << 16 for n, i, o in pool)


def test_the_pool_is_the_seeds() -> None:
    assert shape_pool(0) == shape_pool(0)
    assert shape_pool(0) != shape_pool(1)


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
    one, three = (r.to_dict()["functions"] for r in reports)
    assert one == three
    assert [f["function"] for f in one] == list(CHECKS)
    assert reports[0]["grad_w"].diagnosis == "mean_instead_of_sum"


def test_checks_that_finish_out_of_order_are_reported_in_order() -> None:
    checks = list(CHECKS.values())
    threads: set[str] = set()

    def run(check, caller) -> FunctionReport:
        threads.add(threading.current_thread().name)
        time.sleep(0.05 if check.name == "forward" else 0.0)  # the first check finishes last
        return FunctionReport(check.name, "pass", caller)

    reports, callers = run_checks(checks, 0, lambda: 1, 4, run)  # type: ignore[arg-type]
    assert [r.function for r in reports] == list(CHECKS)
    assert sorted(callers) == [0, 1, 1, 1] and len(threads) == 4
    assert {r.examples for r in reports} <= {0, 1}


def test_one_job_runs_the_checks_in_order_on_one_caller() -> None:
    order: list[str] = []

    def run(check, caller) -> FunctionReport:
        order.append(check.name)
        return FunctionReport(check.name, "pass", caller)

    reports, callers = run_checks(list(CHECKS.values()), 0, lambda: 1, 1, run)  # type: ignore[arg-type]
    assert order == list(CHECKS) and callers == [0]
    assert {r.examples for r in reports} == {0}


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_bad_jobs_name_themselves(jobs: object) -> None:
    with pytest.raises(ValueError, match="jobs"):
        verify.check(zoo.Correct, jobs=jobs)  # type: ignore[arg-type]
