"""The oracle's verdicts: one per function, gathered in a Report that prints, serialises and raises.

A ``Report`` is what ``verify.check`` returns. ``report.passed`` says whether every provided
function agreed with the reference; ``report.raise_on_failure()`` raises an AssertionError that
carries ``report.summary()``, for use inside a user's own pytest; ``report.to_dict()`` is the
``--json`` document (with the versions of python, numpy, jax, the backend and its devices).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import platform
import sys
from typing import Any

import numpy as np

from ... import bounds
from .._diagnoses import Diagnosis
from .._settings import Settings, multiples_text
from ..judging import Case


@dataclasses.dataclass
class FunctionReport:
    """The verdict on one function (or on the ``identities`` of loss, gradient and update).

    Attributes:
      function: the contract name.
      status: ``"pass"``, ``"fail"`` or ``"skip"``.
      examples: calls made, shrinking included.
      worst_ratio: the largest error seen, as a multiple of its bound (<= 1 passes).
      diagnosis: the ``Diagnosis`` on failure.
      detail: the diagnosis in words.
      message: ``dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06) [grad_w(...)]``.
      traceback: the candidate's own traceback (trimmed) when it raised.
      case: the minimal counterexample (hypothesis-shrunk).
      repro: the reproducer script for this failure.
      where: which elements of the failing result are wrong ("rows 128..256 of 257 (the
        rest right)"), for an element-wise failure.
      errors: ``|error| / bound`` per element of the failing 2-D result, for the heatmap.
      picture: the reproducer's heatmap of ``errors`` (``errors.png``), or why there is none.
      note: why a check was skipped, or how many of its cases could not be judged.
      seconds: how long the check took (wall clock), where it ran, its reproducer included.
      calls: the candidate's calls the check made (its search, shrinking and probes).
      candidate_seconds: the wall time of those calls (``candidate.timed_calls``): the
        candidate's own; the rest of ``seconds`` is crosscheck's.
      probe_calls: the calls its explanation made after the search (probes, structural
        readings, re-judging), part of ``calls``.
    """

    function: str
    status: str
    examples: int = 0
    worst_ratio: float = 0.0
    diagnosis: Diagnosis | None = None
    detail: str | None = None
    message: str | None = None
    traceback: str | None = None
    case: Case | None = None
    repro: str | None = None
    note: str | None = None
    seconds: float | None = None
    where: str | None = None
    errors: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    picture: str | None = None
    calls: int = 0
    candidate_seconds: float = 0.0
    probe_calls: int = 0

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def counterexample(self) -> str:
        """The minimal counterexample in one line: the call by shapes, the value kind, lr."""
        if self.case is None:
            return ""
        text = self.case.describe()
        return f"{text}, {self.case.kind} values" if self.case.kind else text

    def headline(self) -> str:
        """The finding in one line: ``transposed - dL_dw has shape (2, 1), but should be ...``
        (a failure), why it was skipped, or ``pass``."""
        if self.status == "skip":
            return f"skipped: {self.note}"
        if self.status == "pass":
            worst = _ratio(self.worst_ratio)
            return f"pass ({self.examples} examples, worst error / bound {worst})"
        return f"{self.diagnosis} - {self.detail}"

    def lines(self) -> list[str]:
        ratio = "-" if self.status == "skip" else _ratio(self.worst_ratio)
        head = (
            f"  {self.function:<11} {self.status.upper():<5} {self.examples:>5} examples"
            f"   worst error / bound {ratio}"
        )
        if self.status == "skip":
            return [f"  {self.function:<11} SKIP   ({self.note})"]
        if self.status == "pass":
            return [head] + ([f"      note: {self.note}"] if self.note else [])
        lines = [head, f"      diagnosis: {self.diagnosis} - {self.detail}"]
        if self.probe_calls:
            calls = f"{self.probe_calls} probe call" + ("s" if self.probe_calls != 1 else "")
            lines.append(f"      explained with {calls} after the search")
        if self.message:
            lines.append(f"      {self.message}")
        if self.where:
            lines.append(f"      wrong: {self.where}")
        if self.traceback:
            evidence = self.diagnosis.evidence if self.diagnosis else "candidate traceback"
            lines += [f"      {evidence}:"]
            lines += [f"        {line}" for line in self.traceback.splitlines()]
        if self.case is not None:
            lines.append(f"      minimal counterexample: {self.counterexample()}")
        if self.repro:
            lines.append(f"      reproduce: python {self.repro}")
        if self.picture:
            lines.append(f"      heatmap: {self.picture}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "status": self.status,
            "examples": self.examples,
            "worst_ratio": _json_float(self.worst_ratio),
            "diagnosis": self.diagnosis,
            "diagnosis_meaning": None if self.diagnosis is None else self.diagnosis.meaning,
            "detail": self.detail,
            "message": self.message,
            "where": self.where,
            "traceback": self.traceback,
            "counterexample": self.counterexample() or None,
            "shapes": None
            if self.case is None
            else {name: list(a.shape) for name, a in self.case.arrays.items()},
            "repro": self.repro,
            "heatmap": self.picture,
            "probe_calls": self.probe_calls,
            "note": self.note,
            "seconds": self.seconds,
            "candidate_calls": self.calls,
            "candidate_seconds": self.candidate_seconds,
            "crosscheck_seconds": None
            if self.seconds is None
            else max(0.0, self.seconds - self.candidate_seconds),
        }


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Whose time a run's wall time was: loading the candidate, the candidate's own calls,
    and crosscheck's work (drawing cases, the reference, the bounds, explaining, reproducers).

    Attributes:
      wall: seconds from loading the candidate to the report.
      loading: of them, starting the candidate's first worker and loading it there.
      checks_wall: of them, the checks' (``run_all``), up to ``jobs`` at once.
      jobs: checks that ran at once.
      calls: the candidate's calls, over every check.
      candidate: their wall time, summed over the checks (``FunctionReport.candidate_seconds``).
      crosscheck: with one job, the wall time neither loading nor the candidate's calls took
        (``loading + candidate + crosscheck == wall``); with several, the rest of each check's
        time summed over the checks, plus the run's time outside loading and the checks (so
        ``candidate + crosscheck`` exceeds ``checks_wall`` by what ran at once).
    """

    wall: float
    loading: float
    checks_wall: float
    jobs: int
    calls: int
    candidate: float
    crosscheck: float

    def line(self) -> str:
        """``14.5 s: loading 0.9 s, your code 9.8 s in 1,890 calls, crosscheck 3.8 s``."""
        split = f"your code {self.candidate:.1f} s in {self.calls:,} calls"
        if self.jobs == 1:
            return (
                f"{self.wall:.1f} s: loading {self.loading:.1f} s, {split}, crosscheck "
                f"{self.crosscheck:.1f} s"
            )
        return (
            f"{self.wall:.1f} s: loading {self.loading:.1f} s, checks {self.checks_wall:.1f} s "
            f"on {self.jobs} workers at once; summed over the checks: {split}, crosscheck "
            f"{self.crosscheck:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall,
            "loading_seconds": self.loading,
            "checks_wall_seconds": self.checks_wall,
            "jobs": self.jobs,
            "candidate_calls": self.calls,
            "candidate_seconds": self.candidate,
            "crosscheck_seconds": self.crosscheck,
        }


@dataclasses.dataclass
class Report:
    """Every verdict on one implementation, and how it was checked."""

    implementation: str
    settings: Settings
    functions: list[FunctionReport]
    environment: dict[str, Any] = dataclasses.field(default_factory=dict)
    isolated: bool = True
    notes: dict[str, int] = dataclasses.field(default_factory=dict)
    #: distinct calls (function, shapes, dtypes) per worker process, summed: what a jitted
    #: candidate compiles in the run (``candidate.compile_key``).
    compiles: int = 0
    #: checks run at once (``verify.check(jobs=...)``).
    jobs: int = 1
    #: what loading the candidate noted: a notebook's skipped magics, a framework module
    #: adapted as the layer and what of it is not checked.
    load_notes: tuple[str, ...] = ()
    #: the contract's functions the implementation does not define (grad_b only on a layer
    #: with a bias): their checks do not run.
    undefined: tuple[str, ...] = ()
    #: whose time the run's was (None: a report of some checks of a longer run, a pytest
    #: item's).
    timing: Timing | None = None

    @property
    def checked(self) -> int:
        """How many checks ran (skipped ones do not count)."""
        return sum(f.status != "skip" for f in self.functions)

    @property
    def passed(self) -> bool:
        """At least one check ran, and none failed: a report that checked nothing is no pass."""
        return self.checked > 0 and all(f.passed for f in self.functions)

    @property
    def failures(self) -> list[FunctionReport]:
        return [f for f in self.functions if not f.passed]

    def __getitem__(self, function: str) -> FunctionReport:
        for report in self.functions:
            if report.function == function:
                return report
        raise KeyError(
            f"no verdict on {function!r}; checked: {[f.function for f in self.functions]}"
        )

    def summary(self) -> str:
        settings = self.settings
        mode = "exact" if settings.exact else settings.dtype
        extras = []
        if settings.matmul_precision != "float32":
            extras.append(f"{settings.matmul_precision} matmul")
        if bounds.accumulation_of(settings.dtype, settings.accumulation):
            extras.append(f"{settings.accumulation} accumulation")
        if settings.tie_convention:
            extras.append(f"ties pinned to {settings.tie_convention}")
        if settings.bias:
            extras.append("with bias")
        if settings.deterministic:
            extras.append("deterministic")
        if settings.loss_reduction != "sum":
            reduction = bounds.REDUCTIONS[settings.loss_reduction]
            extras.append(f"reduction {reduction.name} ({reduction.words})")
        extra = f", {', '.join(extras)}" if extras else ""
        lines = [
            f"crosscheck: {self.implementation} ({mode}{extra}, up to {settings.max_examples} "
            f"examples per function, seed {settings.seed})"
        ]
        if settings.multiples != (1, 1, 1):
            lines.append(
                f"  shapes: {multiples_text(settings.multiples)} (--multiple-of "
                f"{settings.multiple_of}): no other shape is checked"
            )
        if not self.isolated:
            lines.append("  in-process: the candidate can affect this verdict")
        if self.undefined:
            lines.append(f"  not defined, so not checked: {', '.join(self.undefined)}")
        lines += [f"  note: {note}" for note in self.load_notes]
        for function in self.functions:
            lines += function.lines()
        for note, count in self.notes.items():
            lines.append(f"  note: converting the candidate's results warned: {note} ({count}x)")
        failed, checked = len(self.failures), self.checked
        if not checked:
            lines.append("nothing was checked.")
        elif failed:
            lines.append(f"{failed} of {checked} checks failed.")
        else:
            lines.append(f"all {checked} checks passed.")
        if self.timing is not None and checked:  # nothing checked: no time to split
            lines.append(self.timing.line())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def raise_on_failure(self) -> None:
        """Raise an AssertionError carrying ``summary()`` if any function failed."""
        __tracebackhide__ = True
        if not self.passed:
            raise AssertionError(self.summary())

    def to_dict(self) -> dict[str, Any]:
        return {
            "implementation": self.implementation,
            "passed": self.passed,
            "options": self.settings.described(),
            "max_examples": self.settings.max_examples,
            "seed": self.settings.seed,
            "isolated": self.isolated,
            "checked": self.checked,
            "functions": [f.to_dict() for f in self.functions],
            "notes": self.notes,
            "load_notes": list(self.load_notes),
            "undefined": list(self.undefined),
            "compiles": self.compiles,
            "jobs": self.jobs,
            "timing": None if self.timing is None else self.timing.to_dict(),
            "environment": self.environment,
        }


def environment() -> dict[str, Any]:
    """Versions of python, numpy, jax, hypothesis (and torch when loaded); JAX's backend and
    devices where this process has JAX loaded already (an in-process candidate, a test suite).

    The oracle itself never imports JAX for this: the import and the backend's start took
    about a second of every ``python -m verify check``, for a numpy or C candidate too, and a
    candidate in a worker runs on that worker's devices, not on these.
    """
    import hypothesis

    found: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "jax": _version("jax"),
        "hypothesis": hypothesis.__version__,
    }
    if "torch" in sys.modules:
        found["torch"] = getattr(sys.modules["torch"], "__version__", "?")
    jax = sys.modules.get("jax")
    if jax is None:
        found["backend"] = "not loaded in the oracle's process"
        found["devices"] = []
        return found
    try:
        found["backend"] = jax.default_backend()
        found["devices"] = [str(d) for d in jax.devices()]
    except Exception as err:  # a broken accelerator setup must not break the report
        found["backend"] = f"unavailable: {err}"
    return found


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
