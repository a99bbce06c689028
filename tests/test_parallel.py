"""One run's shapes and its checks at once: the shape pool every check draws from (few
compiles, the edge shapes and distinct dims kept), and ``jobs`` (each function on one worker,
checks that share a worker never at once, the same report for any N)."""

from __future__ import annotations

import collections
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from tests import zoo
from verify.oracle._contract import FUNCTIONS
from verify.oracle.candidate._calls import StartError
from verify.oracle.front._report import FunctionReport
from verify.oracle.front._workers import Workers, owners, run_checks
from verify.oracle.judging._cases import (
    EDGE_SHAPES,
    FIXED_SHAPES,
    shape_pool,
    sub_shapes,
)
from verify.oracle.judging._checks import CHECKS
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


#: A check's report's times (``FunctionReport.to_dict``): all that differs between runs.
TIMES = {"seconds", "candidate_seconds", "crosscheck_seconds"}


def test_any_number_of_jobs_gives_the_same_report_in_the_registrys_order() -> None:
    reports = [
        verify.check(zoo.MeanGradW, max_examples=10, seed=1, repro_dir=None, jobs=jobs)
        for jobs in (1, 3)
    ]
    assert [r.jobs for r in reports] == [1, 3]
    # Each function is called on one worker: the run's distinct calls are the same however
    # many workers it uses (a worker per check compiled the shapes again).
    assert reports[0].compiles == reports[1].compiles
    # Everything but how long each check took is the same (its calls to the candidate too).
    one, three = (
        [{k: v for k, v in f.items() if k not in TIMES} for f in r.to_dict()["functions"]]
        for r in reports
    )
    assert one == three
    # grad_b is a check of a layer with a bias only: no item of this one.
    assert [f["function"] for f in one] == [name for name in CHECKS if name != "grad_b"]
    assert reports[0]["grad_w"].diagnosis == "mean_instead_of_sum"


def test_checks_that_finish_out_of_order_are_reported_in_order() -> None:
    checks = list(CHECKS.values())
    another_ran = threading.Event()

    def run(check) -> FunctionReport:
        if check.name == "forward":
            # The first check finishes last, and only once another thread ran a check.
            assert another_ran.wait(10), "no check ran alongside the first"
        else:
            another_ran.set()
        return FunctionReport(check.name, "pass")

    reports = run_checks(checks, 4, run)
    assert sorted(reports) == sorted(CHECKS)


def test_one_job_runs_the_checks_in_order() -> None:
    order: list[str] = []

    def run(check) -> FunctionReport:
        order.append(check.name)
        return FunctionReport(check.name, "pass")

    reports = run_checks(list(CHECKS.values()), 1, run)
    assert order == list(CHECKS) and sorted(reports) == sorted(CHECKS)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.frozensets(st.integers(0, 3), min_size=1), min_size=1, max_size=9),
    st.integers(1, 5),
)
def test_checks_that_share_a_worker_never_run_at_once(
    workers_used: list[frozenset[int]], jobs: int
) -> None:
    checks = [CHECKS[name] for name in list(CHECKS)[: len(workers_used)]]
    uses = {check.name: used for check, used in zip(checks, workers_used, strict=True)}
    lock = threading.Lock()
    running: dict[str, frozenset[int]] = {}
    clashes: list[tuple[str, str]] = []

    def run(check) -> FunctionReport:
        with lock:
            clashes.extend(
                (check.name, o) for o, used in running.items() if used & uses[check.name]
            )
            running[check.name] = uses[check.name]
        time.sleep(0.002)
        with lock:
            del running[check.name]
        return FunctionReport(check.name, "pass")

    reports = run_checks(checks, jobs, run, lambda check: uses[check.name])
    assert clashes == [] and sorted(reports) == sorted(uses)


def test_a_check_waits_for_its_worker_to_start() -> None:
    changed = threading.Condition()
    ready = threading.Event()
    order: list[str] = []

    def uses(check) -> frozenset[int] | None:
        if check.name == "forward":
            return frozenset({1}) if ready.is_set() else None  # worker 1 still starting
        return frozenset({0})

    def run(check) -> FunctionReport:
        order.append(check.name)
        if check.name == "loss":
            with changed:
                ready.set()
                changed.notify_all()
        return FunctionReport(check.name, "pass")

    checks = [CHECKS["forward"], CHECKS["loss"]]
    reports = run_checks(checks, 2, run, uses, changed)
    assert order == ["loss", "forward"] and sorted(reports) == ["forward", "loss"]


def test_the_oracles_own_error_in_a_check_is_raised() -> None:
    def run(check) -> FunctionReport:
        raise RuntimeError(f"defect in {check.name}")

    with pytest.raises(RuntimeError, match="defect in"):
        run_checks(list(CHECKS.values()), 3, run, lambda check: frozenset({0}))


def test_the_fused_step_and_the_pieces_are_shared_out_by_compile_weight() -> None:
    seed = [name for name in FUNCTIONS if name != "grad_b"]  # the layer without a bias
    assert owners(seed, 1) == dict.fromkeys(seed, 0)
    two = owners(seed, 2)
    by_worker = {k: {f for f, owner in two.items() if owner == k} for k in (0, 1)}
    assert by_worker == {
        0: {"step", "grad_x", "update"},
        1: {"forward", "loss", "loss_grad", "grad_w"},
    }
    with_bias = owners(FUNCTIONS, 2)
    by_worker = {k: {f for f, owner in with_bias.items() if owner == k} for k in (0, 1)}
    assert by_worker == {
        0: {"step", "grad_x", "grad_b"},
        1: {"forward", "loss", "loss_grad", "grad_w", "update"},
    }
    assert sorted(owners(FUNCTIONS, 8).values()) == list(range(8))  # one each
    assert owners(["grad_w"], 3) == {"grad_w": 0}
    with pytest.raises(ValueError, match="workers"):
        owners(FUNCTIONS, 0)


class _Recording:
    """A fake caller: records which process each function's calls reached."""

    def __init__(self, index: int, calls: list[tuple[int, str]]) -> None:
        self.name, self.index, self.calls = "fake", index, calls
        self.provided = frozenset(FUNCTIONS)
        self.load_notes: tuple[str, ...] = ()
        self.bias = False
        self.reduction = None
        self.notes: collections.Counter[str] = collections.Counter()
        self.compiles = 0
        self.closed = False

    def call(self, function: str, arrays: object, lr: object) -> str:
        self.calls.append((self.index, function))
        return function

    def close(self) -> None:
        self.closed = True


def test_workers_call_each_function_on_its_owner_only() -> None:
    calls: list[tuple[int, str]] = []
    started: list[_Recording] = []
    counter = iter(range(1, 10))
    workers = Workers(
        _Recording(0, calls),
        lambda: _Recording(next(counter), calls),  # type: ignore[arg-type,return-value]
        2,
        started,  # type: ignore[arg-type]
    )
    for _ in range(3):
        for function in FUNCTIONS:
            workers.call(function, [], None)
    reached = {f: {k for k, g in calls if g == f} for f in FUNCTIONS}
    assert reached == {f: {k} for f, k in owners(FUNCTIONS, 2).items()}
    assert workers.uses(["step", "forward"]) == {0, 1}
    workers.close()
    assert all(caller.closed for caller in started)


def test_a_worker_that_cannot_start_leaves_its_functions_to_the_first() -> None:
    calls: list[tuple[int, str]] = []

    def fails() -> _Recording:
        raise StartError("no room")

    workers = Workers(_Recording(0, calls), fails, 2, [])  # type: ignore[arg-type]
    for function in FUNCTIONS:
        workers.call(function, [], None)
    assert {k for k, _ in calls} == {0}
    assert workers.uses(FUNCTIONS) == {0}


def test_a_gradient_never_zeroed_gets_the_same_verdicts_on_any_number_of_jobs() -> None:
    """A candidate with state: a check's calls are never interleaved with another check's on
    its worker, so grad_w's report is the same on any number of jobs. (What the other checks
    see of the state differs: on three workers the fused step's own grad_w accumulates in
    another process than grad_w's calls; their verdicts and diagnoses do not.)"""
    reports = [
        verify.check(zoo.AccumulatingGradW, max_examples=10, seed=0, repro_dir=None, jobs=jobs)
        for jobs in (1, 3)
    ]
    one, three = (
        {
            f["function"]: {k: v for k, v in f.items() if k not in TIMES}
            for f in r.to_dict()["functions"]
        }
        for r in reports
    )
    assert one["grad_w"] == three["grad_w"]
    assert one["grad_w"]["diagnosis"] == "accumulated_gradient"
    verdicts = [
        {name: (f["status"], f["diagnosis"]) for name, f in r.items()} for r in (one, three)
    ]
    assert verdicts[0] == verdicts[1]
