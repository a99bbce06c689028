"""The Hypothesis search of one check: draw cases (``Check.cases``), judge each
(``Check.judge``), shrink the first defect to a minimal counterexample, then run the fixed edge
cases, and name an ambiguous factor on a probe shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from .. import bounds
from ..strategies import LayerInputs
from ._calls import Caller
from ._cases import Case, Pool, Shapes, make_case, pool_shapes, shape_pool, sub_shapes
from ._checks import Check
from ._diagnosis import Diagnosis, Finding
from ._options import Options
from ._report import FunctionReport

#: (check, examples run so far, max_examples) -> None, called after every example.
Progress = Callable[[str, int, int], None]


class _Defect(Exception):
    """Raised inside the search on any defect; always from one line, so that Hypothesis treats
    every defect of a check as one bug and shrinks to the smallest case that shows any."""


@dataclasses.dataclass
class _State:
    examples: int = 0
    worst: float = 0.0
    last: tuple[Case, Finding] | None = None
    timed_out: tuple[Case, Finding] | None = None


def search(
    check: Check,
    caller: Caller,
    options: Options,
    max_examples: int,
    seed_value: int | None,
    progress: Progress | None = None,
    pool: Pool | None = None,
) -> FunctionReport:
    """Run ``check`` on up to ``max_examples`` drawn cases and the edge cases; its verdict.

    ``pool``: the run's shapes, shared by its checks (default ``shape_pool(seed_value)``). A
    failure is shrunk twice: on the pool by Hypothesis, then narrowed (``_narrow``) to the
    smallest sides that still fail.
    """
    state = _State()
    pool = shape_pool(seed_value) if pool is None else pool
    _hypothesis(
        check, caller, options, pool_shapes(pool), max_examples, seed_value, state, progress
    )
    if state.last is None:
        # The search passed: the fixed edge shapes run too (no Hypothesis shrinking: they
        # are small already; a failure is narrowed below).
        for edge in check.edges(options):
            state.examples += 1
            ratio, edge_finding = check.run(caller, edge, options)
            if edge_finding is not None:
                state.last = (edge, edge_finding)
                break
            state.worst = max(state.worst, ratio)
    if state.last is not None and state.timed_out is None:
        _narrow(check, caller, options, seed_value, state, progress)
    if state.last is None:
        return FunctionReport(check.name, "pass", state.examples, state.worst)
    case, finding = state.timed_out or state.last
    if finding.ambiguous and check.ambiguity_probe:
        finding = _disambiguate(check, caller, finding, options)
    return FunctionReport(
        check.name,
        "fail",
        state.examples,
        max(state.worst, finding.ratio),
        diagnosis=finding.kind,
        detail=finding.detail,
        message=finding.message or None,
        traceback=finding.traceback,
        case=case,
    )


#: Examples of the narrowing search (only after a failure; at most 27 shapes).
NARROW_EXAMPLES = 30


def _narrow(
    check: Check,
    caller: Caller,
    options: Options,
    seed_value: int | None,
    state: _State,
    progress: Progress | None,
) -> None:
    """Search again on the failing case's sub-shapes (each side 1, 2 or its own,
    ``_cases.sub_shapes``), where Hypothesis shrinks each side on its own, and keep what it
    finds: the pool holds few shapes, so its smallest failing one may have sides that the
    defect does not need (``(2, 2, 1)`` where ``(2, 1, 1)`` fails too)."""
    assert state.last is not None  # a failure to narrow
    shape = state.last[0].shape
    if shape is None or max(shape) == 1:
        return
    narrowed = _State()
    _hypothesis(
        check,
        caller,
        options,
        sub_shapes(shape),
        NARROW_EXAMPLES,
        seed_value,
        narrowed,
        progress,
    )
    state.examples += narrowed.examples
    if narrowed.timed_out is not None:
        state.timed_out = narrowed.timed_out
    if narrowed.last is not None:
        state.last = narrowed.last


def _hypothesis(
    check: Check,
    caller: Caller,
    options: Options,
    shapes: Shapes,
    max_examples: int,
    seed_value: int | None,
    state: _State,
    progress: Progress | None,
) -> None:
    """One Hypothesis search of ``check`` on cases of ``shapes``: its examples, worst ratio
    and the shrunk failure (if any) go to ``state``."""

    def body(case: Case) -> None:
        if state.timed_out is not None:
            # Never call a hung function again: it may still be running.
            raise _Defect(state.timed_out[1].kind)
        state.examples += 1
        if progress is not None:
            progress(check.name, state.examples, max_examples)
        ratio, finding = check.run(caller, case, options)
        if finding is None:
            # No hypothesis.target() here: hill-climbing on the ratio collapses the search onto
            # a few early shapes (measured: a bug past 128 rows went unseen in 40 examples).
            state.worst = max(state.worst, ratio)
            return
        state.last = (case, finding)
        if finding.kind is Diagnosis.TIMED_OUT:
            state.timed_out = (case, finding)
        raise _Defect(finding.kind)

    config = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    test = config(given(check.cases(options, shapes))(body))
    if seed_value is not None:
        test = seed(seed_value)(test)
    try:
        test()
    except Exception:
        # _Defect after shrinking, or Hypothesis' Flaky when the candidate is not
        # deterministic: either way the last defect recorded is the one to report.
        if state.last is None:
            raise


#: A probe shape with N, I, O all different (and no factor of another): it tells a mean over
#: N from one over O or N*O when the minimal counterexample has equal dims.
PROBE_SHAPE = (5, 3, 4)


def probe_case(check: Check, dtype: str) -> Case:
    """A fixed case of ``PROBE_SHAPE``: normal data, targets 1 away from the outputs, lr 1/16."""
    rng = np.random.default_rng(20260)
    n, i, o = PROBE_SHAPE
    np_dtype = bounds.numpy_dtype(dtype)
    x = rng.standard_normal((n, i)).astype(np_dtype)
    w = rng.standard_normal((i, o)).astype(np_dtype)
    output = x.astype(np.float64) @ w.astype(np.float64)
    target = (output + rng.choice([-1.0, 1.0], size=(n, o))).astype(np_dtype)
    inputs = LayerInputs(x, w, target, 2.0**-4, "normal (probe)")
    upstream = (rng.standard_normal((n, o)) * 3).astype(np_dtype)
    gradient = (rng.standard_normal((i, o)) * 3).astype(np_dtype)
    return make_case(check.signature, inputs, upstream, gradient)


def _disambiguate(check: Check, caller: Caller, finding: Finding, options: Options) -> Finding:
    """Name the factor of a mean or scale on ``PROBE_SHAPE`` when the counterexample's dims
    made it ambiguous (e.g. N = N*O when O = 1); keep ``finding`` if the probe disagrees."""
    try:
        _, probe = check.run(caller, probe_case(check, options.dtype), options)
    except Exception:  # the probe only refines a verdict already reached
        return finding
    if probe is None or probe.kind != finding.kind or probe.ambiguous:
        return finding
    n, i, o = PROBE_SHAPE
    detail = f"{probe.detail} (told apart on N={n}, I={i}, O={o})"
    return dataclasses.replace(finding, detail=detail, ambiguous=False)
