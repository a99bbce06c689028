"""The cause of a judge's finding, by the evidence it kept and nothing else (no calls):
``named``. A short loop over the registry (``diagnose``) keeps every pattern the evidence fits,
and the registry's rules (``_patterns``) say when one is named. An exception inside a pattern is
the oracle's own defect and propagates: it is never turned into a weaker diagnosis.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...bounds import Bound
from .._contract import signature_for
from .._diagnoses import Diagnosis
from .._settings import Settings
from ..judging import Case, Finding, Suspect, expected_under, mantissa_bits
from ._patterns import (
    EVIDENCE_OF,
    NONFINITE,
    PATTERNS,
    REPEAT,
    SHAPE,
    VALUES,
    Alternative,
    Context,
    Pattern,
    in_order,
    refined,
)

__all__ = ["Diagnosed", "diagnose", "fits", "listed", "named"]


def fits(alternative: Bound, actual: np.ndarray) -> bool:
    """Whether every element of ``actual`` is inside ``alternative`` (an infinite radius admits
    anything there, NaN included)."""
    if alternative.center.shape != actual.shape:
        return False
    with np.errstate(all="ignore"):
        inside = alternative.ratio(actual) <= 1.0
    return bool(np.all(inside | np.isinf(alternative.radius)))


@dataclasses.dataclass(frozen=True)
class Diagnosed:
    """What ``diagnose`` found: the first fitting alternative of each pattern the evidence
    fits."""

    fitted: tuple[tuple[Pattern, Alternative], ...]
    nonfinite: bool

    def kinds(self) -> list[Diagnosis]:
        """The distinct kinds that fit, without those a more specific fitting kind refines, in
        ``Diagnosis`` order."""
        return in_order(refined(list(self.fitted)))

    def candidates(self) -> tuple[Suspect, ...]:
        """One suspect per kind that fits (``kinds``)."""
        alternatives = {
            pattern.kind: (pattern, alternative) for pattern, alternative in self.fitted
        }
        found = []
        for kind in self.kinds():
            pattern, alternative = alternatives[kind]
            found.append(
                Suspect(
                    kind,
                    alternative.detail,
                    alternative.value,
                    alternative.probe or pattern.probe,
                    alternative.unclear,
                    pattern.rounding,
                )
            )
        return tuple(found)

    def finding(self, name: str) -> Finding:
        """A named cause where exactly one kind fits and the case is clear about it; otherwise
        ``mismatch`` (``nan`` for a non-finite result) with the candidates listed, for probes to
        tell apart (even a fit without constants may coincide on a case of one element)."""
        candidates = self.candidates()
        if len(candidates) == 1 and not candidates[0].unclear:
            only = candidates[0]
            return Finding(only.kind, only.detail, value=only.value, candidates=candidates)
        if candidates:
            unclear = "; ".join(c.unclear for c in candidates if c.unclear) or "several fit"
            kind = Diagnosis.NAN if self.nonfinite else Diagnosis.MISMATCH
            return Finding(
                kind,
                f"{name} is outside its error bound; it fits {listed(candidates)} on this case "
                f"({unclear}), not yet told apart",
                candidates=candidates,
                unclear=unclear,
            )
        if self.nonfinite:
            return Finding(Diagnosis.NAN, f"{name} has NaN or infinity where it should be finite")
        return Finding(
            Diagnosis.MISMATCH, f"{name} is outside its error bound; no known bug pattern fits"
        )


def listed(candidates: tuple[Suspect, ...]) -> str:
    """``scaled (the result is 2x the right one) or bias (...)``."""
    return " or ".join(f"{c.kind} ({c.detail})" for c in candidates)


def diagnose(
    name: str,
    actual: np.ndarray,
    case: Case,
    options: Settings,
    *,
    evidence: str | None = None,
    earlier: np.ndarray | None = None,
) -> Diagnosed:
    """Every pattern of the registry that reads ``evidence`` (default: ``VALUES``, or
    ``NONFINITE`` for a result with NaN or infinity), applies to ``name`` and that ``actual``
    fits (``earlier``: the first call's result, for ``REPEAT`` evidence).

    The patterns are weighed against the float bounds even in exact mode: a bug computes its
    wrong answer with roundings of its own.
    """
    nonfinite = not bool(np.all(np.isfinite(actual)))
    if evidence is None:
        evidence = NONFINITE if nonfinite else VALUES
    right = expected_under(case, options)[name]
    context = Context(name, actual, case, options, right, evidence, earlier)
    fitted = []
    for pattern in PATTERNS:
        if not pattern.applies(name, case.function, evidence):
            continue
        for alternative in pattern.alternatives(context):
            if fits(alternative.bound, actual):
                fitted.append((pattern, alternative))
                break
    return Diagnosed(tuple(fitted), nonfinite)


def _as_float(actual: np.ndarray) -> np.ndarray | None:
    """A returned array's values as float64, or None when they are not numbers."""
    if actual.dtype.kind not in "biuf" and mantissa_bits(actual.dtype) is None:
        return None
    return actual.astype(np.float64)


def named(finding: Finding, case: Case, options: Settings) -> Finding:
    """``finding`` with its cause named from the evidence the judge kept, where a pattern of
    the registry reads it; otherwise as it is.

    A result outside its bound keeps its element message, ratio, region and heatmap, and takes
    the named cause (or the candidates not yet told apart). A result of the wrong shape whose
    shape and values are one pattern's own (a transpose; b broadcast along the wrong axis) is
    named with no probe, as its shape decides it. Two calls that disagree are named where the
    second adds one right gradient to the first.
    """
    evidence = EVIDENCE_OF.get(finding.kind, frozenset())
    if VALUES in evidence or NONFINITE in evidence:
        if finding.actual is None:
            return finding
        explained = diagnose(finding.result, finding.actual, case, options).finding(finding.result)
        return dataclasses.replace(
            finding,
            kind=explained.kind,
            detail=explained.detail,
            value=explained.value,
            candidates=explained.candidates,
            unclear=explained.unclear,
        )
    if SHAPE in evidence and finding.actual is not None:
        return _named_by_shape(finding, case, options)
    if REPEAT in evidence and finding.repeat is not None:
        return _named_by_repeat(finding, case, options)
    return finding


def _named_by_shape(finding: Finding, case: Case, options: Settings) -> Finding:
    assert finding.actual is not None  # see named
    actual = finding.actual
    values = _as_float(actual)
    if values is None:
        values = np.full(actual.shape, np.nan)  # only a shape alone can name it
    explained = diagnose(finding.result, values, case, options, evidence=SHAPE).finding(
        finding.result
    )
    if explained.kind in (Diagnosis.MISMATCH, Diagnosis.NAN):
        return finding
    want = expected_under(case, options)[finding.result].center.shape
    return dataclasses.replace(
        finding,
        kind=explained.kind,
        detail=f"{finding.result} has shape {actual.shape}, but should be {want}: "
        f"{explained.detail} [{case.describe()}]",
        value=explained.value,
    )


def _named_by_repeat(finding: Finding, case: Case, options: Settings) -> Finding:
    assert finding.repeat is not None  # see named
    first, second = finding.repeat
    for name in signature_for(case.function, tuple(case.arrays)).results:
        one, two = first[name], second[name]
        if isinstance(one, str) or isinstance(two, str) or one.shape != two.shape:
            continue
        earlier, later = _as_float(one), _as_float(two)
        if earlier is None or later is None:
            continue
        explained = diagnose(name, later, case, options, evidence=REPEAT, earlier=earlier).finding(
            name
        )
        if explained.kind is Diagnosis.ACCUMULATED_GRADIENT:
            return dataclasses.replace(
                finding,
                kind=explained.kind,
                detail=f"a second identical call of {case.describe()} moved {explained.detail}: "
                "gradients accumulate across calls (zero_grad / optimizer.zero_grad() "
                "forgotten, or a gradient buffer kept between calls)",
            )
    return finding
