"""What a judge finds: a ``Finding`` per defective call, and the one comparison of a result with
its admissible set (``check_result``).

Messages are ``messages.explain``'s::

    dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06) [grad_w(x: (5, 4), dL_do: (5, 3))]

with where the wrong elements are (``region``: "rows 128..256 of 257"). A judge says *that* a
result is wrong (``mismatch``, ``nan``, ``wrong_shape``, two calls that differ by more than the
bound allows: ``repeated``) and keeps the evidence (the result's values, both calls' results);
the explaining wing names the cause from it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import ml_dtypes
import numpy as np

from ... import bounds
from ...bounds import Bound
from ...messages import explain, number
from .._diagnoses import Diagnosis
from ._cases import Case


@dataclasses.dataclass(frozen=True)
class Suspect:
    """A bug pattern a failing result fits that is not (yet) told apart from the others.

    Attributes:
      kind: the diagnosis it would name.
      detail: the bug in words, on the case it was fitted on.
      value: its fitted constant, if it has one: a probe confirms it when it fits the same again.
      probe: the probe data that shows it (``"normal"``, ``"ties"``, ``"blocks"``).
      unclear: why the case cannot pin it down ("one row: any per-column offset fits"), or "".
      rounding: a rounding effect, which a probe may pass although it is there.
    """

    kind: Diagnosis
    detail: str
    value: float | None = None
    probe: str = "normal"
    unclear: str = ""
    rounding: bool = False


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
        (the kind is then ``mismatch`` until a probe confirms one), or the one named.
      unclear: why this case cannot tell them apart ("one row: any per-column offset fits").
      where: which elements are wrong ("rows 128..256 of 257 (the rest right)"), if known.
      value: the named pattern's fitted constant, if it has one.
      result: the name of the failing result (``dL_dw``), where one is judged.
      nonfinite: the result has NaN or infinity where the right one is finite.
      errors: ``|error| / bound`` per element of a failing 2-D result, for the reproducer's
        heatmap: NaN where the result is NaN or infinite, inf where a finite value is wrong
        under a bound of 0 (exact mode).
      actual: the evidence of a wrong result: its values (float64; as returned for a wrong
        shape), which the explaining wing reads.
      repeat: the evidence of two calls that disagree: both calls' results, by result name.
      probe_calls: the calls the explanation made (probes, structural readings, re-judging).
    """

    kind: Diagnosis
    detail: str
    message: str = ""
    ratio: float = float("inf")
    traceback: str | None = None
    candidates: tuple[Suspect, ...] = ()
    unclear: str = ""
    where: str = ""
    value: float | None = None
    result: str = ""
    nonfinite: bool = False
    errors: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    actual: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    repeat: tuple[dict[str, np.ndarray | str], dict[str, np.ndarray | str]] | None = (
        dataclasses.field(default=None, repr=False, compare=False)
    )
    probe_calls: int = 0

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


def mantissa_bits(dtype: np.dtype) -> int | None:
    """Explicit mantissa bits of a float dtype (bfloat16: 7), None for non-floats."""
    if dtype == np.dtype(bounds.numpy_dtype("bfloat16")):
        return 7
    if dtype.kind != "f":
        return None
    return int(np.finfo(dtype).nmant)


def check_result(
    name: str, actual: np.ndarray | str, bound: Bound, case: Case, dtype: str
) -> tuple[float, Finding | None]:
    """The worst ratio of ``actual`` to its bound, and a Finding if it is not admissible.

    ``actual`` is a result converted to numpy, or the reason it could not be (``_invoke``);
    ``dtype`` the one requested. A result of the wrong shape is ``wrong_shape`` and one outside
    its bound ``mismatch`` (``nan`` where it is not finite), each with its values as evidence
    for the explaining wing.
    """
    call = case.describe()
    if isinstance(actual, str):
        return np.inf, Finding(Diagnosis.WRONG_DTYPE, f"{name} is a {actual} [{call}]")
    want = bound.center.shape
    if actual.shape != want:
        return np.inf, Finding(
            Diagnosis.WRONG_SHAPE,
            f"{name} has shape {actual.shape}, but should be {want} [{call}]",
            result=name,
            actual=actual,
        )
    requested = bounds.numpy_dtype(dtype)
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
    is_nonfinite = bool(nonfinite.any())
    return worst, Finding(
        Diagnosis.NAN if is_nonfinite else Diagnosis.MISMATCH,
        f"{name} has NaN or infinity where it should be finite"
        if is_nonfinite
        else f"{name} is outside its error bound",
        message=element_message(name, values, bound, first, call),
        ratio=worst,
        where=region(wrong),
        result=name,
        nonfinite=is_nonfinite,
        errors=np.where(np.isfinite(values), ratio, np.nan) if ratio.ndim == 2 else None,
        actual=values,
    )


def same_bits(first: np.ndarray | str, second: np.ndarray | str) -> bool:
    """Whether two results are the same bits (a deterministic call repeats itself exactly)."""
    if isinstance(first, str) or isinstance(second, str):
        return True  # not comparable here; check_result names the conversion failure
    return (
        first.shape == second.shape
        and first.dtype == second.dtype
        and first.tobytes() == second.tobytes()
    )


def ulps(first: np.ndarray, second: np.ndarray, dtype: str) -> np.ndarray:
    """``|first - second|`` per element in units in the last place of ``dtype`` at the larger
    magnitude of the two (``ulp(v) = 2^(e - p)`` for ``2^e <= |v| < 2^(e+1)``, p the dtype's
    mantissa bits; subnormals at the smallest exponent). 0 where the two are equal (two NaN
    included), inf where only one is NaN or infinite."""
    info = ml_dtypes.finfo(bounds.numpy_dtype(dtype))
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    with np.errstate(all="ignore"):
        _, exponent = np.frexp(np.maximum(np.abs(a), np.abs(b)))  # |v| = m 2^exponent, m < 1
        ulp = np.ldexp(1.0, np.maximum(exponent - 1, info.minexp) - info.nmant)
        count = np.abs(a - b) / ulp
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.where(same, 0.0, np.where(np.isfinite(count), count, np.inf))


def _differ(first: np.ndarray, second: np.ndarray, bitwise: bool) -> np.ndarray:
    """Where two results of one shape differ: in value (two NaN agree), or with ``bitwise`` in
    the sign of a zero too (NaN payloads aside: no framework's determinism promises them)."""
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if bitwise:
        differ |= (a == b) & (np.signbit(a) != np.signbit(b))  # 0.0 and -0.0
    return differ


def ulps_text(count: float) -> str:
    """A count of ulps in words: ``2``, ``0.5``, ``3.1e+04``."""
    return "inf" if np.isinf(count) else f"{count:.2g}"


def repeated(
    case: Case,
    results: Sequence[str],
    first: Sequence[np.ndarray | str],
    second: Sequence[np.ndarray | str],
    expected: Mapping[str, Bound],
    dtype: str,
    *,
    bitwise: bool = False,
) -> tuple[float, Finding | None]:
    """Two identical calls of ``case`` against each other: the largest difference of their
    results in ulps of ``dtype`` (0 when they agree), or a ``nondeterministic`` Finding.

    Two results inside one bound ``|r - center| <= radius`` differ by at most ``2 radius``, so
    a correct call that sums in another order each time (atomics, a set, a split K) may
    differ from itself by up to that: only a difference past it is a defect, at the element
    whose difference is largest in ulps, with the region past it (every difference, when
    ``bitwise``: ``--deterministic``). A result of another shape or dtype than the other
    call's, or than its bound's, has no bound here: any difference is one. Results that are
    not arrays are left to ``check_result``. The Finding keeps both calls' results (by result
    name) as evidence for the explaining wing, and, for a 2-D result, ``|first - second| /
    (2 radius)`` per element as its ``errors`` (past 1: the two cannot both be right).
    """
    call, apart = case.describe(), 0.0
    evidence = (dict(zip(results, first, strict=True)), dict(zip(results, second, strict=True)))
    for name, one, two in zip(results, first, second, strict=True):
        if isinstance(one, str) or isinstance(two, str) or same_bits(one, two):
            continue
        if one.shape != two.shape or one.dtype != two.dtype:
            return np.inf, Finding(
                Diagnosis.NONDETERMINISTIC,
                f"two calls of {call} on the same input returned different results: {name} "
                f"has shape {one.shape} and dtype {one.dtype} on the first, {two.shape} and "
                f"{two.dtype} on the second",
                result=name,
                repeat=evidence,
            )
        bound = expected[name]
        fits = one.shape == bound.center.shape and not bitwise
        limit = 2 * bound.radius if fits else np.zeros(one.shape)
        a, b = one.astype(np.float64), two.astype(np.float64)
        count = ulps(a, b, dtype)
        differ = _differ(a, b, bitwise)
        with np.errstate(all="ignore"):
            distance = np.where(differ, np.abs(a - b), 0.0)
            ratio = np.where(differ, distance / limit, 0.0)
        ratio = np.where(differ & ~np.isfinite(ratio), np.inf, ratio)
        beyond = ratio > 1.0
        if not beyond.any():
            apart = max(apart, float(count.max(initial=0.0)))
            continue
        index = _worst_index(np.where(beyond, count, -1.0))
        within = "" if bitwise else ", beyond the bound"
        why = "; --deterministic requires bit-identical results" if bitwise else ""
        return float(ratio.max()), Finding(
            Diagnosis.NONDETERMINISTIC,
            f"two calls of {call} on the same input returned different results: {name} "
            f"differs by up to {ulps_text(float(count[beyond].max()))} ulp{within}{why}",
            message=_apart_message(name, a, b, index, float(limit[index]), call),
            ratio=float(ratio.max()),
            where=region(beyond),
            result=name,
            errors=ratio if ratio.ndim == 2 and not bitwise else None,
            repeat=evidence,
        )
    return apart, None


def _apart_message(
    name: str,
    first: np.ndarray,
    second: np.ndarray,
    index: tuple[int, ...],
    limit: float,
    call: str,
) -> str:
    """``dL_dw[0, 1] = 0.53 on the second call, 0.52 on the first (apart by at most 2.4e-07)
    [grad_w(...)]``."""
    where = f"{name}[{', '.join(map(str, index))}]" if index else name
    allowed = f"apart by at most {limit:.2g}" if limit else "bit-identical required"
    return (
        f"{where} = {number(float(second[index]))} on the second call, "
        f"{number(float(first[index]))} on the first ({allowed}) [{call}]"
    )


class Repeats:
    """The largest difference, in ulps, between two identical calls that both passed, seen by
    the search this thread runs (``noting_repeats``): the note "not bitwise reproducible" of
    its check's report. Judges report to it through ``note_repeat`` (a judge returns a ratio
    and a Finding; a passing case's remark travels here)."""

    def __init__(self) -> None:
        self.ulps = 0.0


_REPEATS: contextvars.ContextVar[Repeats | None] = contextvars.ContextVar(
    "crosscheck_repeats", default=None
)


@contextlib.contextmanager
def noting_repeats() -> Iterator[Repeats]:
    """Collect ``note_repeat`` remarks of the judges called in this block, in this thread (the
    checks of a run search on threads of their own); probes and reproducers outside any such
    block remark to no one."""
    seen = Repeats()
    token = _REPEATS.set(seen)
    try:
        yield seen
    finally:
        _REPEATS.reset(token)


def note_repeat(count: float) -> None:
    """Two identical calls of a passing case differed by ``count`` ulps (``repeated``)."""
    seen = _REPEATS.get()
    if seen is not None:
        seen.ulps = max(seen.ulps, count)
