"""The Hypothesis search of one check: draw cases (``Check.cases``), judge each
(``Check.judge``), shrink the first defect to a minimal counterexample, narrow it to its
smallest sides, then run the fixed edge cases. It says *that* a check fails and on which case;
the explaining wing says why."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from .._diagnoses import Diagnosis
from .._settings import Settings
from ..candidate import Caller
from ._cases import Case, Pool, Shapes, pool_shapes, shape_pool, sub_shapes
from ._checks import Check
from ._findings import Finding, noting_repeats, ulps_text
from ._judge import NotJudged

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
    not_judged: int = 0
    why_not: str = ""
    #: An exception of the oracle's own while judging: re-raised after the search, whatever
    #: defect Hypothesis reports (it may report another one and swallow this).
    error: Exception | None = None

    def judge(self, check: Check, caller: Caller, case: Case, options: Settings) -> Finding | None:
        """Judge one case: a Finding, or None when it passes or cannot be judged."""
        self.examples += 1
        try:
            ratio, finding = check.run(caller, case, options)
        except NotJudged as why:
            self.not_judged += 1
            self.why_not = str(why)
            return None
        if finding is None:
            self.worst = max(self.worst, ratio)
        return finding

    def searched(self, apart: float = 0.0) -> Searched:
        """What the search found (the timeout first: a hung function is never called again);
        ``apart``: the largest difference in ulps of two identical calls that passed."""
        return Searched(
            self.examples,
            self.worst,
            self.not_judged,
            self.why_not,
            self.timed_out or self.last,
            apart,
        )


@dataclasses.dataclass(frozen=True)
class Searched:
    """What a search found.

    Attributes:
      examples: the cases judged, shrinking and narrowing included.
      worst: the largest error seen among the cases that passed, as a multiple of its bound.
      not_judged: the cases that could not be judged (``_judge.NotJudged``), and why.
      failure: the minimal counterexample and its finding, if the check fails.
      apart: the largest difference, in ulps of the dtype, between two identical calls of a
        case that passed (0: every call repeated itself exactly).
    """

    examples: int
    worst: float
    not_judged: int
    why_not: str
    failure: tuple[Case, Finding] | None
    apart: float = 0.0

    @property
    def judged_nothing(self) -> bool:
        """No case could be judged: a skip, not a pass."""
        return self.failure is None and self.not_judged == self.examples

    @property
    def note(self) -> str | None:
        """How many cases could not be judged, and why, and whether two calls on one input
        differed within the bound (None when there is nothing to say)."""
        if self.judged_nothing:
            return f"not judged: {self.why_not}"
        notes = []
        if self.not_judged:
            notes.append(f"{self.not_judged} of {self.examples} cases not judged: {self.why_not}")
        if self.apart:
            notes.append(
                f"not bitwise reproducible: the two calls differ by up to "
                f"{ulps_text(self.apart)} ulp, within the bound"
            )
        return "; ".join(notes) or None


def search(
    check: Check,
    caller: Caller,
    options: Settings,
    max_examples: int,
    seed_value: int | None,
    progress: Progress | None = None,
    pool: Pool | None = None,
) -> Searched:
    """Run ``check`` on up to ``max_examples`` drawn cases and the edge cases: what it found.

    ``pool``: the run's shapes, shared by its checks (default ``shape_pool(seed_value)``). A
    failure is shrunk twice: on the pool by Hypothesis, then narrowed (``_narrow``) to the
    smallest sides that still fail.
    """
    state = _State()
    if pool is None:
        pool = shape_pool(seed_value, tiles=options.tile, multiples=options.multiples)
    with noting_repeats() as repeats:
        _hypothesis(
            check, caller, options, pool_shapes(pool), max_examples, seed_value, state, progress
        )
        if state.last is None:
            # The search passed: the fixed edge shapes run too (no Hypothesis shrinking: they
            # are small already; a failure is narrowed below).
            for edge in check.edges(options):
                edge_finding = state.judge(check, caller, edge, options)
                if edge_finding is not None:
                    state.last = (edge, edge_finding)
                    break
        if state.last is not None and state.timed_out is None:
            _narrow(check, caller, options, seed_value, state, progress)
    return state.searched(repeats.ulps)


#: Examples of the narrowing search (only after a failure; at most 27 shapes).
NARROW_EXAMPLES = 30


def _narrow(
    check: Check,
    caller: Caller,
    options: Settings,
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
    if shape is None or tuple(shape) == options.multiples:
        return
    narrowed = _State()
    _hypothesis(
        check,
        caller,
        options,
        sub_shapes(shape, options.multiples),
        NARROW_EXAMPLES,
        seed_value,
        narrowed,
        progress,
    )
    state.examples += narrowed.examples
    state.not_judged += narrowed.not_judged
    if narrowed.timed_out is not None:
        state.timed_out = narrowed.timed_out
    if narrowed.last is not None:
        state.last = narrowed.last


def _hypothesis(
    check: Check,
    caller: Caller,
    options: Settings,
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
        if progress is not None:
            progress(check.name, state.examples + 1, max_examples)
        # No hypothesis.target() on the ratio: hill-climbing collapses the search onto a few
        # early shapes (measured: a bug past 128 rows went unseen in 40 examples).
        try:
            finding = state.judge(check, caller, case, options)
        except Exception as err:
            state.error = err
            raise
        if finding is None:
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
        if state.error is not None:
            raise state.error from None
        if state.last is None:
            raise
