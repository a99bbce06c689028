"""One place that compares a result with its admissible set and says what is wrong with it.

Messages are ``messages.explain``'s::

    dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06) [grad_w(x: (5, 4), dL_do: (5, 3))]

and a failure is named by trying the bugs people make, in order, each as another admissible set
that the whole result must fit: transposed, sign flipped, a mean where the L1 loss sums (1/N,
1/O, 1/(N*O)), scaled, the upstream dL_do ignored / reduced to its sign / clipped, a loop bound
one short (a slice missing), the wrong tie convention (when one is pinned), and reduced precision
(TF32, bfloat16, float16 arithmetic where float32 was asked for: ``bounds.less_precise``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import ml_dtypes
import numpy as np

from .. import bounds
from ..bounds import Arithmetic, Bound
from ..messages import explain
from ._cases import Case
from ._contract import AXES
from ._expect import expect, numpy_matmul
from ._options import Options


class Diagnosis(enum.StrEnum):
    """Every verdict the oracle gives on a failing check; ``meaning`` says it in words."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Diagnosis:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    TRANSPOSED = "transposed", "the result is the transpose of the right one"
    MEAN_INSTEAD_OF_SUM = (
        "mean_instead_of_sum",
        "the result is divided by N, O or N*O: a mean where the L1 loss sums",
    )
    SCALED = "scaled", "the result is a multiple of the right one"
    SIGN_FLIP = "sign_flip", "the sign is flipped"
    UPSTREAM_IGNORED = (
        "upstream_ignored",
        "the upstream gradient dL_do is ignored, reduced to its sign or clipped",
    )
    OFF_BY_ONE = "off_by_one", "a loop bound is off: a slice of the sum or of the result is missing"
    TIE_CONVENTION = "tie_convention", "ties take another convention than the pinned one"
    REDUCED_PRECISION = (
        "reduced_precision",
        "consistent with lower-precision arithmetic than was asked for",
    )
    WRONG_SHAPE = "wrong_shape", "the result has the wrong shape"
    WRONG_DTYPE = "wrong_dtype", "the result has the wrong dtype (or is not an array)"
    NAN = "nan", "the result has NaN or infinity where the right one is finite"
    INPUT_MUTATED = "input_mutated", "an input array was changed in place"
    NONDETERMINISTIC = "nondeterministic", "two calls on the same input disagree"
    RAISED = "raised", "the call raised an exception"
    TIMED_OUT = "timed_out", "the call did not return within the timeout"
    CRASHED = "crashed", "the candidate's process ended during the call (an exit or a signal)"
    CONVEXITY = (
        "convexity",
        "the loss, gradient and update break convexity or the no-crossing identity",
    )
    INCONSISTENT = "inconsistent", "the fused step disagrees with the implementation's own pieces"
    MISMATCH = "mismatch", "the result is outside its error bound and no known bug pattern fits"

    @property
    def evidence(self) -> str:
        """What a Finding's ``traceback`` holds for this diagnosis."""
        return "candidate's last output" if self is Diagnosis.CRASHED else "candidate traceback"


FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclasses.dataclass(frozen=True)
class Finding:
    """A defect in one call.

    Attributes:
      kind: the diagnosis.
      detail: the diagnosis in words, for this case.
      message: the element-level ``messages.explain`` line, if there is one.
      ratio: the worst error as a multiple of its bound.
      traceback: the candidate's own traceback, if it raised.
      ambiguous: the case's dims coincide (e.g. N = N*O when O = 1), so a factor-shaped
        diagnosis may name the wrong dim: worth re-testing on a shape with distinct dims.
    """

    kind: Diagnosis
    detail: str
    message: str = ""
    ratio: float = float("inf")
    traceback: str | None = None
    ambiguous: bool = False


def _mantissa_bits(dtype: np.dtype) -> int | None:
    if dtype == np.dtype(ml_dtypes.bfloat16):
        return 7
    if dtype.kind != "f":
        return None
    return int(np.finfo(dtype).nmant)


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
        return np.inf, Finding(
            Diagnosis.WRONG_SHAPE, f"{name} has shape {actual.shape}, but should be {want} [{call}]"
        )
    requested = bounds.numpy_dtype(options.dtype)
    bits, wanted_bits = _mantissa_bits(actual.dtype), _mantissa_bits(requested)
    if bits is None or wanted_bits is None or bits < wanted_bits:
        return np.inf, Finding(
            Diagnosis.WRONG_DTYPE,
            f"{name} has dtype {actual.dtype}, but should be {requested.name} "
            f"(or a wider float) [{call}]",
        )
    values = actual.astype(np.float64)
    ratio = bound.ratio(values)
    nonfinite = ~np.isfinite(values) & np.isfinite(bound.center)
    if nonfinite.any():
        index = tuple(int(i) for i in np.argwhere(nonfinite)[0]) if nonfinite.ndim else ()
        message = element_message(name, values, bound, index, call)
        if _float16_overflow(case, bound, options):
            return np.inf, Finding(
                Diagnosis.REDUCED_PRECISION,
                f"{name} overflows where float16 arithmetic would (|values| past "
                f"{FLOAT16_MAX:g}): consistent with computing in float16",
                message,
            )
        return np.inf, Finding(
            Diagnosis.NAN, f"{name} has NaN or infinity where it should be finite", message
        )
    worst = float(ratio.max(initial=0.0))
    if worst <= 1.0:
        return worst, None
    message = element_message(name, values, bound, _worst_index(ratio), call)
    found = diagnose(name, values, case, options)
    return worst, Finding(found.kind, found.detail, message, worst, ambiguous=found.ambiguous)


def _float16_overflow(case: Case, bound: Bound, options: Options) -> bool:
    if options.dtype not in ("float32", "float64"):
        return False
    largest = max(float(np.max(np.abs(a), initial=0.0)) for a in case.arrays.values())
    largest = max(largest, float(np.max(np.abs(bound.center), initial=0.0)))
    a = case.arrays
    if "x" in a and "w" in a:
        product = np.abs(a["x"].astype(np.float64)) @ np.abs(a["w"].astype(np.float64))
        largest = max(largest, float(product.max(initial=0.0)))
    return largest > FLOAT16_MAX / 2


# --------------------------------------------------------------------------------------------
# Hypotheses: each another admissible set; the first the whole result fits names the bug.
# --------------------------------------------------------------------------------------------


class Hypothesis(NamedTuple):
    """A known bug: its diagnosis, its description, its admissible set (built lazily), and
    whether the description may name the wrong dim (``Finding.ambiguous``)."""

    kind: Diagnosis
    detail: str
    make: Callable[[], Bound | None]
    ambiguous: bool = False


def diagnose(name: str, actual: np.ndarray, case: Case, options: Options) -> Hypothesis:
    """The first hypothesis ``actual`` fits, else ``Diagnosis.MISMATCH``."""
    for hypothesis in hypotheses(name, case, options):
        try:
            alternative = hypothesis.make()
        except Exception:  # a hypothesis that cannot be formed here (an empty slice, ...)
            continue
        if alternative is None or alternative.center.shape != actual.shape:
            continue
        with np.errstate(all="ignore"):
            fits = bool(np.all(alternative.ratio(actual) <= 1.0))
        if fits:
            return hypothesis
    return Hypothesis(
        Diagnosis.MISMATCH,
        f"{name} is outside its error bound; no known bug pattern fits",
        lambda: None,
    )


def _dims(case: Case) -> dict[str, int]:
    """N, I and O as far as ``case``'s arrays tell them."""
    dims: dict[str, int] = {}
    for array_name, array in case.arrays.items():
        for label, size in zip(AXES[array_name], array.shape, strict=True):
            dims[label] = size
    return dims


class _Factor(NamedTuple):
    label: str  # "N*O", or "N (= N*O here)" when dims coincide
    value: int
    ambiguous: bool


def _factors(case: Case) -> list[_Factor]:
    """Candidate factors of a mean, by value: ``N*O``, ``N``, ``O``, ``I``, ``N*I``; products
    that coincide on this case's dims are one factor, labelled with all their names."""
    dims = _dims(case)
    products = {
        "N*O": ("N", "O"),
        "N": ("N",),
        "O": ("O",),
        "I": ("I",),
        "N*I": ("N", "I"),
    }
    by_value: dict[int, list[str]] = {}
    for label, parts in products.items():
        if all(p in dims for p in parts):
            value = int(np.prod([dims[p] for p in parts]))
            if value > 1:
                by_value.setdefault(value, []).append(label)
    return [
        _Factor(
            labels[0] if len(labels) == 1 else f"{labels[0]} (= {' = '.join(labels[1:])} here)",
            value,
            len(labels) > 1,
        )
        for value, labels in by_value.items()
    ]


#: Which axis each function sums over, and which argument axes carry it.
_CONTRACTIONS: dict[str, list[tuple[str, str, list[tuple[str, int]]]]] = {
    "forward": [("i", "I", [("x", 1), ("w", 0)])],
    "grad_x": [("j", "O", [("dL_do", 1), ("w", 1)])],
    "grad_w": [("d", "N", [("x", 0), ("dL_do", 0)])],
    "loss": [
        ("d", "N", [("output", 0), ("target", 0)]),
        ("j", "O", [("output", 1), ("target", 1)]),
    ],
    "step": [
        ("d", "N", [("x", 0), ("target", 0)]),
        ("i", "I", [("x", 1), ("w", 0)]),
        ("j", "O", [("w", 1), ("target", 1)]),
    ],
}


def _sliced_cases(case: Case) -> Iterator[tuple[str, Case]]:
    """The same call with one summed axis cut short: range(K - 1), range(1, K), range(128)."""
    for index, dim, members in _CONTRACTIONS.get(case.function, []):
        size = case.arrays[members[0][0]].shape[members[0][1]]
        cuts: list[tuple[slice, str]] = []
        if size >= 1:
            cuts.append(
                (slice(0, size - 1), f"the loop over {index} stops one short (range({dim} - 1))")
            )
            if size >= 2:
                cuts.append(
                    (slice(1, size), f"the loop over {index} starts at 1 (range(1, {dim}))")
                )
        if size > 128:
            cuts.append((slice(0, 128), f"only the first 128 of {dim} = {size} terms are summed"))
        for cut, text in cuts:
            arrays = {}
            for array_name, axis in members:
                array = case.arrays[array_name]
                arrays[array_name] = array[(slice(None),) * axis + (cut,)]
            yield text, case.replace(**arrays)


def _untouched(bound: Bound, fill: np.ndarray) -> Iterator[tuple[str, Bound]]:
    """The result with its last row / column (or everything past 128) never written."""
    if bound.center.ndim != 2:
        return
    rows, cols = bound.center.shape
    regions: list[tuple[str, tuple[slice, slice]]] = []
    if rows >= 2:
        regions.append(("the last row is never computed (a loop bound one short)", np.s_[-1:, :]))
    if cols >= 2:
        regions.append(
            ("the last column is never computed (a loop bound one short)", np.s_[:, -1:])
        )
    if rows > 128:
        regions.append((f"rows past 128 of {rows} are never computed", np.s_[128:, :]))
    if cols > 128:
        regions.append((f"columns past 128 of {cols} are never computed", np.s_[:, 128:]))
    for text, region in regions:
        center = bound.center.copy()
        center[region] = fill[region]
        yield text, Bound(center, bound.radius)


def _given(bound: Bound) -> Bound:
    return bound


def hypotheses(name: str, case: Case, options: Options) -> Iterator[Hypothesis]:
    """The known bugs, most specific first, as lazily built admissible sets for ``name``.

    A pinned tie convention goes first: the other conventions differ from it only at ties, so a
    result that fits one of them is explained best by it (on one tied element it would also
    look like a sign flip).
    """
    arith = options.arithmetic()
    tie = options.tie

    def base(c: Case = case, a: Arithmetic = arith, t: float | None = tie) -> Bound:
        # Diagnoses weigh hypotheses with the float bounds even in exact mode: a bug computes
        # its wrong answer with roundings of its own.
        return expect(c, a, tie=t, matmul=numpy_matmul)[name]

    right = base()
    center, radius = right.center, right.radius
    is_update = name == "w_new"
    w = case.arrays["w"].astype(np.float64) if is_update else np.zeros_like(center)

    def moved(factor: float) -> Bound:
        # For w_new the bug is in the step w_new - w, not in w.
        return Bound(w + (center - w) * factor, radius * max(1.0, abs(factor)))

    if tie is not None:
        for convention, value in bounds.TIE_CONVENTIONS.items():
            if value != tie:
                yield Hypothesis(
                    Diagnosis.TIE_CONVENTION,
                    f"ties take {value:+g} (the {convention} convention), but the pinned "
                    f"convention {options.tie_convention} gives {tie:+g}",
                    partial(base, t=value),
                )
    if center.ndim == 2 and center.shape[0] == center.shape[1]:
        yield Hypothesis(
            Diagnosis.TRANSPOSED, "the result is transposed", lambda: Bound(center.T, radius.T)
        )
    yield Hypothesis(
        Diagnosis.SIGN_FLIP,
        "the sign is flipped" + (" (w + lr * dL_dw)" if is_update else ""),
        lambda: moved(-1.0),
    )
    for factor in _factors(case):
        yield Hypothesis(
            Diagnosis.MEAN_INSTEAD_OF_SUM,
            f"the result is 1/{factor.label} = 1/{factor.value} of the sum: a mean where the L1 "
            "loss sums",
            partial(moved, 1.0 / factor.value),
            factor.ambiguous,
        )
    for factor in _factors(case):
        yield Hypothesis(
            Diagnosis.SCALED,
            f"the result is {factor.label} = {factor.value} times the right one",
            partial(moved, float(factor.value)),
            factor.ambiguous,
        )
    if "dL_do" in case.arrays:
        upstream = case.arrays["dL_do"].astype(np.float64)
        variants = [
            ("dL_do is ignored (as if all ones)", np.ones_like(upstream)),
            ("only the sign of dL_do is used", np.sign(upstream)),
            ("dL_do is clipped to [-1, 1]", np.clip(upstream, -1.0, 1.0)),
        ]
        for text, replaced in variants:
            yield Hypothesis(
                Diagnosis.UPSTREAM_IGNORED, text, partial(base, case.replace(dL_do=replaced))
            )
    # Dropping one of K terms moves a result by about 1/K of its magnitude, and so does a
    # bfloat16 / float16 accumulation, which correct numpy code does (it sums those dtypes in
    # their own precision): that rounding explanation goes before the missing slice. A
    # reduced *matmul* precision (TF32, bf16 passes) is an accelerator's doing; on the same
    # evidence a missing slice is the likelier bug, so those come after it.
    reduced = bounds.less_precise(arith)
    accumulation = [a for a in reduced if a.u_acc > bounds.UNIT_ROUNDOFF["float32"]]
    for reduced_arith in accumulation:
        yield _reduced(reduced_arith, arith, base)
    for text, sliced in _sliced_cases(case):
        yield Hypothesis(Diagnosis.OFF_BY_ONE, text, partial(base, sliced))
    for text, alternative in _untouched(right, w):
        yield Hypothesis(Diagnosis.OFF_BY_ONE, text, partial(_given, alternative))
    for reduced_arith in reduced:
        if reduced_arith not in accumulation:
            yield _reduced(reduced_arith, arith, base)


def _reduced(reduced: Arithmetic, declared: Arithmetic, base: Callable[..., Bound]) -> Hypothesis:
    return Hypothesis(
        Diagnosis.REDUCED_PRECISION,
        f"fits the bound of {reduced.name} arithmetic, not of {declared.name}",
        partial(base, a=reduced),
    )
