"""One place that compares a result with its admissible set and says what is wrong with it.

Messages are ``messages.explain``'s::

    dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06) [grad_w(x: (5, 4), dL_do: (5, 3))]

with where the wrong elements are (``region``: "rows 128..256 of 257"), and a cause named by
``diagnose``: a short loop over the registry of bug patterns (``_patterns.PATTERNS``) that keeps
every pattern the whole result fits, and names one only where the evidence tells it apart from
the others. An exception inside a pattern is the oracle's own defect and propagates: it is never
turned into a weaker diagnosis.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import bounds
from ..bounds import Bound
from ..messages import explain
from ._cases import Case
from ._expect import expect, numpy_matmul
from ._options import Options
from ._patterns import (
    PATTERNS,
    Alternative,
    Context,
    Diagnosis,
    Pattern,
    mantissa_bits,
    refined,
)

__all__ = ["Candidate", "Diagnosed", "Diagnosis", "Finding", "check_result", "diagnose"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A pattern that fits a failing result but is not (yet) told apart from the others."""

    kind: Diagnosis
    detail: str
    value: float | None = None
    probe: str = "normal"
    unclear: str = ""
    may_pass: bool = False


@dataclasses.dataclass(frozen=True)
class Finding:
    """A defect in one call.

    Attributes:
      kind: the diagnosis.
      detail: the diagnosis in words, for this case.
      message: the element-level ``messages.explain`` line, if there is one.
      ratio: the worst error as a multiple of its bound.
      traceback: the candidate's own traceback, if it raised.
      candidates: the patterns the result fits: several that this case could not tell apart
        (the kind is then ``mismatch`` until a probe confirms one: ``_probes``), or the one
        named.
      unclear: why this case cannot tell them apart ("one row: any per-column offset fits").
      where: which elements are wrong ("rows 128..256 of 257 (the rest right)"), if known.
      value: the named pattern's fitted constant, if it has one.
      result: the name of the failing result (``dL_dw``), where one is judged.
      nonfinite: the result has NaN or infinity where the right one is finite.
      errors: ``|error| / bound`` per element of a failing 2-D result (inf where it is not
        finite), for the reproducer's heatmap.
    """

    kind: Diagnosis
    detail: str
    message: str = ""
    ratio: float = float("inf")
    traceback: str | None = None
    candidates: tuple[Candidate, ...] = ()
    unclear: str = ""
    where: str = ""
    value: float | None = None
    result: str = ""
    nonfinite: bool = False
    errors: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ambiguous(self) -> bool:
        """Whether candidates wait to be told apart on a probe (a named finding keeps its one
        candidate, for a probe to confirm on a small counterexample)."""
        return bool(self.candidates) and self.kind in (Diagnosis.MISMATCH, Diagnosis.NAN)


def element_message(
    name: str, actual: np.ndarray, bound: Bound, index: tuple[int, ...], call: str
) -> str:
    """``messages.explain`` of one element of ``actual`` against ``bound``."""
    return explain(
        name,
        float(np.asarray(actual, np.float64)[index]),
        float(bound.center[index]),
        index=index,
        bound=float(bound.radius[index]),
        call=call,
    )


def _worst_index(ratio: np.ndarray) -> tuple[int, ...]:
    return (
        tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        if ratio.ndim
        else ()
    )


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted indices as runs ``(first, last)`` of consecutive values."""
    runs: list[tuple[int, int]] = []
    for index in indices.tolist():
        if runs and index == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _spans(what: str, indices: np.ndarray, size: int) -> str:
    runs = _runs(indices)
    if len(runs) > 3:
        return f"{len(indices)} of {size} {what}"
    text = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)
    singular = what[:-1] if len(indices) == 1 else what
    return f"{singular} {text} of {size}"


def region(wrong: np.ndarray) -> str:
    """Where the ``True`` elements of a 2-D mask are, in words: ``rows 128..256 of 257``,
    ``columns 0, 2 of 4``, ``rows 0..3, columns 8..15 of (4, 16)``, or a count; "" for a scalar
    or an empty mask."""
    if wrong.ndim != 2 or not wrong.any():
        return ""
    if wrong.all():
        return "every element"
    rows, cols = np.flatnonzero(wrong.any(axis=1)), np.flatnonzero(wrong.any(axis=0))
    n, o = wrong.shape
    rectangle = np.zeros_like(wrong)
    rectangle[np.ix_(rows, cols)] = True
    if np.array_equal(rectangle, wrong):
        if cols.size == o:
            text = _spans("rows", rows, n)
        elif rows.size == n:
            text = _spans("columns", cols, o)
        else:
            text = f"{_spans('rows', rows, n)} x {_spans('columns', cols, o)}"
    else:
        full_rows, full_cols = np.flatnonzero(wrong.all(axis=1)), np.flatnonzero(wrong.all(axis=0))
        cross = np.zeros_like(wrong)
        cross[full_rows, :] = True
        cross[:, full_cols] = True
        if np.array_equal(cross, wrong):
            # Whole rows and whole columns: the L a floored 2-D grid leaves.
            text = f"{_spans('rows', full_rows, n)} and {_spans('columns', full_cols, o)}"
        else:
            text = (
                f"{int(wrong.sum())} of {wrong.size} elements, in {_spans('rows', rows, n)} and "
                f"{_spans('columns', cols, o)}"
            )
    return f"{text} (the rest right)"


def check_result(
    name: str, actual: np.ndarray | str, bound: Bound, case: Case, options: Options
) -> tuple[float, Finding | None]:
    """The worst ratio of ``actual`` to its bound, and a Finding if it is not admissible.

    ``actual`` is a result converted to numpy, or the reason it could not be (``_invoke``).
    """
    call = case.describe()
    if isinstance(actual, str):
        return np.inf, Finding(Diagnosis.WRONG_DTYPE, f"{name} is a {actual} [{call}]")
    want = bound.center.shape
    if actual.shape != want:
        if len(want) == 2 and actual.shape == want[::-1] and want[0] != want[1]:
            return np.inf, Finding(
                Diagnosis.TRANSPOSED,
                f"{name} has shape {actual.shape}, but should be {want}: the result is "
                f"transposed [{call}]",
            )
        reshaped = _reshaped(name, actual, case, options)
        if reshaped is not None:
            # The shape is that bug's own and its values fit it: decided, as a transpose is
            # by its shape, with no probe (where the bug does not broadcast, it raises).
            return np.inf, dataclasses.replace(
                reshaped,
                detail=f"{reshaped.detail}: {name} has shape {actual.shape}, but should be "
                f"{want} [{call}]",
                result=name,
                candidates=(),
            )
        return np.inf, Finding(
            Diagnosis.WRONG_SHAPE, f"{name} has shape {actual.shape}, but should be {want} [{call}]"
        )
    requested = bounds.numpy_dtype(options.dtype)
    bits, wanted_bits = mantissa_bits(actual.dtype), mantissa_bits(requested)
    if bits is None or wanted_bits is None or bits < wanted_bits:
        return np.inf, Finding(
            Diagnosis.WRONG_DTYPE,
            f"{name} has dtype {actual.dtype}, but should be {requested.name} "
            f"(or a wider float) [{call}]",
        )
    values = actual.astype(np.float64)
    ratio = bound.ratio(values)
    nonfinite = ~np.isfinite(values) & np.isfinite(bound.center)
    worst = np.inf if nonfinite.any() else float(ratio.max(initial=0.0))
    if worst <= 1.0:
        return worst, None
    wrong = nonfinite | (ratio > 1.0)
    first = (
        tuple(int(i) for i in np.argwhere(nonfinite)[0])
        if nonfinite.any() and nonfinite.ndim
        else _worst_index(ratio)
    )
    message = element_message(name, values, bound, first, call)
    found = diagnose(name, values, case, options)
    return worst, dataclasses.replace(
        found.finding(name),
        message=message,
        ratio=worst,
        where=region(wrong),
        result=name,
        nonfinite=bool(nonfinite.any()),
        errors=np.where(nonfinite, np.inf, ratio) if ratio.ndim == 2 else None,
    )


# --------------------------------------------------------------------------------------------
# The cause: every pattern the result fits, and whether the case tells them apart.
# --------------------------------------------------------------------------------------------


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
    """What ``diagnose`` found: the first alternative of each pattern the result fits, in the
    registry's order."""

    fitted: tuple[tuple[Pattern, Alternative], ...]
    nonfinite: bool

    def kinds(self) -> list[Diagnosis]:
        """The distinct kinds that fit, without those a more specific fitting kind refines."""
        return refined(list(self.fitted))

    def candidates(self) -> tuple[Candidate, ...]:
        """One candidate per kind that fits (``kinds``), from its first fitting alternative."""
        kinds = self.kinds()
        found: dict[Diagnosis, Candidate] = {}
        for pattern, alternative in self.fitted:
            if pattern.kind in kinds and pattern.kind not in found:
                found[pattern.kind] = Candidate(
                    pattern.kind,
                    alternative.detail,
                    alternative.value,
                    alternative.probe or pattern.probe,
                    alternative.unclear,
                    pattern.may_pass,
                )
        return tuple(found.values())

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


def listed(candidates: tuple[Candidate, ...]) -> str:
    """``scaled (the result is 2x the right one) or bias (...)``."""
    return " or ".join(f"{c.kind} ({c.detail})" for c in candidates)


def _reshaped(name: str, actual: np.ndarray, case: Case, options: Options) -> Finding | None:
    """The cause of a result of the wrong shape, where a pattern that ``reshapes`` names it
    (b broadcast along the wrong axis); None: a plain ``wrong_shape``."""
    if actual.dtype.kind not in "biuf" and mantissa_bits(actual.dtype) is None:
        return None
    values = actual.astype(np.float64)
    if not np.all(np.isfinite(values)):
        return None
    found = diagnose(name, values, case, options, reshaped=True).finding(name)
    return found if found.kind not in (Diagnosis.MISMATCH, Diagnosis.NAN) else None


def diagnose(
    name: str, actual: np.ndarray, case: Case, options: Options, *, reshaped: bool = False
) -> Diagnosed:
    """Every pattern of the registry that applies to ``name`` and that ``actual`` fits
    (``reshaped``: a result of the wrong shape, which only patterns that ``reshape`` try).

    The patterns are weighed against the float bounds even in exact mode: a bug computes its
    wrong answer with roundings of its own.
    """
    nonfinite = not bool(np.all(np.isfinite(actual)))
    right = expect(case, options.arithmetic(), tie=options.tie, matmul=numpy_matmul)[name]
    context = Context(name, actual, case, options, right)
    fitted = []
    for pattern in PATTERNS:
        if not pattern.applies(name, case.function, nonfinite, reshaped):
            continue
        for alternative in pattern.alternatives(context):
            if fits(alternative.bound, actual):
                fitted.append((pattern, alternative))
                break
    return Diagnosed(tuple(fitted), nonfinite)
