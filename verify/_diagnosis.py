"""One place that compares a result with its admissible set and says what is wrong with it.

Messages have one style::

    dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06) [grad_w(x: (5, 4), dL_do: (5, 3))]

and a failure is named by trying the bugs people make, in order, each as another admissible set
that the whole result must fit: transposed, sign flipped, a mean where the L1 loss sums (1/N,
1/O, 1/(N*O)), scaled, the upstream dL_do ignored / reduced to its sign / clipped, a loop bound
one short (a slice missing), the wrong tie convention (when one is pinned), and reduced precision
(TF32, bfloat16, float16 arithmetic where float32 was asked for).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import ml_dtypes
import numpy as np

from . import bounds
from ._calls import to_numpy
from ._cases import TIE_CONVENTIONS, Case, Options, expect, numpy_matmul
from .bounds import Arithmetic, Bound

#: Every diagnosis the oracle gives, with a one-line meaning (the report's vocabulary).
KINDS: dict[str, str] = {
    "transposed": "the result is the transpose of the right one",
    "mean_instead_of_sum": "the result is divided by N, O or N*O: a mean where the L1 loss sums",
    "scaled": "the result is a multiple of the right one",
    "sign_flip": "the sign is flipped",
    "upstream_ignored": "the upstream gradient dL_do is ignored, reduced to its sign or clipped",
    "off_by_one": "a loop bound is off: a slice of the sum or of the result is missing",
    "tie_convention": "ties take another convention than the pinned one",
    "reduced_precision": "consistent with lower-precision arithmetic than was asked for",
    "wrong_shape": "the result has the wrong shape",
    "wrong_dtype": "the result has the wrong dtype (or is not an array)",
    "nan": "the result has NaN or infinity where the right one is finite",
    "input_mutated": "an input array was changed in place",
    "nondeterministic": "two calls on the same input disagree",
    "raised": "the call raised an exception",
    "timed_out": "the call did not return within the timeout",
    "convexity": "the loss, gradient and update break convexity or the no-crossing identity",
    "inconsistent": "the fused step disagrees with the implementation's own pieces",
    "mismatch": "the result is outside its error bound and no known bug pattern fits",
}

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclasses.dataclass(frozen=True)
class Finding:
    """A defect in one call: its kind (``KINDS``), an explanation, the element-level message,
    the worst error as a multiple of its bound, and the candidate's traceback if it raised."""

    kind: str
    detail: str
    message: str = ""
    ratio: float = float("inf")
    traceback: str | None = None


def _mantissa_bits(dtype: np.dtype) -> int | None:
    if dtype == np.dtype(ml_dtypes.bfloat16):
        return 7
    if dtype.kind != "f":
        return None
    return int(np.finfo(dtype).nmant)


def _format(value: float) -> str:
    return f"{value:.8g}"


def element_message(
    name: str, actual: np.ndarray, bound: Bound, index: tuple[int, ...], call: str
) -> str:
    """``name[index] = actual, but should be centre (bound radius) [call]``."""
    where = f"{name}[{', '.join(map(str, index))}]" if index else name
    value = float(np.asarray(actual, np.float64)[index])
    center, radius = float(bound.center[index]), float(bound.radius[index])
    return (
        f"{where} = {_format(value)}, but should be {_format(center)} (bound {radius:.2g}) [{call}]"
    )


def _worst_index(ratio: np.ndarray) -> tuple[int, ...]:
    return (
        tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        if ratio.ndim
        else ()
    )


def check_result(
    name: str, raw: Any, bound: Bound, case: Case, options: Options
) -> tuple[float, Finding | None]:
    """The worst ratio of ``raw`` to its bound, and a Finding if it is not admissible."""
    call = case.describe()
    try:
        actual = to_numpy(raw)
    except Exception as err:
        return np.inf, Finding(
            "wrong_dtype",
            f"{name} is a {type(raw).__name__}, which numpy.asarray cannot convert "
            f"({err}) [{call}]",
        )
    want = bound.center.shape
    if actual.shape != want:
        if len(want) == 2 and actual.shape == want[::-1] and want[0] != want[1]:
            return np.inf, Finding(
                "transposed",
                f"{name} has shape {actual.shape}, but should be {want}: the result is "
                f"transposed [{call}]",
            )
        return np.inf, Finding(
            "wrong_shape", f"{name} has shape {actual.shape}, but should be {want} [{call}]"
        )
    requested = bounds.numpy_dtype(options.dtype)
    bits, wanted_bits = _mantissa_bits(actual.dtype), _mantissa_bits(requested)
    if bits is None or wanted_bits is None or bits < wanted_bits:
        return np.inf, Finding(
            "wrong_dtype",
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
                "reduced_precision",
                f"{name} overflows where float16 arithmetic would (|values| past "
                f"{FLOAT16_MAX:g}): consistent with computing in float16",
                message,
            )
        return np.inf, Finding(
            "nan", f"{name} has NaN or infinity where it should be finite", message
        )
    worst = float(ratio.max(initial=0.0))
    if worst <= 1.0:
        return worst, None
    index = _worst_index(ratio)
    message = element_message(name, values, bound, index, call)
    kind, detail = diagnose(name, values, case, options)
    return worst, Finding(kind, detail, message, worst)


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

Hypothesis = tuple[str, str, Callable[[], Bound | None]]


def diagnose(name: str, actual: np.ndarray, case: Case, options: Options) -> tuple[str, str]:
    """``(kind, detail)`` of the first hypothesis ``actual`` fits, else ``("mismatch", ...)``."""
    for kind, detail, make in hypotheses(name, case, options):
        try:
            alternative = make()
        except Exception:  # a hypothesis that cannot be formed here (an empty slice, ...)
            continue
        if alternative is None or alternative.center.shape != actual.shape:
            continue
        with np.errstate(all="ignore"):
            fits = bool(np.all(alternative.ratio(actual) <= 1.0))
        if fits:
            return kind, detail
    return "mismatch", f"{name} is outside its error bound; no known bug pattern fits"


def _dims(case: Case) -> dict[str, int]:
    """N, I and O as far as ``case``'s arrays tell them."""
    axes = {
        "x": ("N", "I"),
        "w": ("I", "O"),
        "target": ("N", "O"),
        "output": ("N", "O"),
        "dL_do": ("N", "O"),
        "dL_dw": ("I", "O"),
    }
    dims: dict[str, int] = {}
    for array_name, array in case.arrays.items():
        for label, size in zip(axes[array_name], array.shape, strict=True):
            dims[label] = size
    return dims


def _factors(case: Case) -> list[tuple[str, int]]:
    """Candidate factors of a mean, by value: ``[("N = N*O", 3), ("O", 4), ...]``."""
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
        (labels[0] if len(labels) == 1 else f"{labels[0]} (= {' = '.join(labels[1:])} here)", value)
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


def _reduced_arithmetics(options: Options) -> list[tuple[str, Arithmetic]]:
    """Arithmetics less precise than the declared one (``bounds.precision_candidates``)."""
    declared = options.arithmetic()
    pool = list(bounds.precision_candidates(options.dtype))
    names = [a.name for a in pool]
    later = pool[names.index(declared.name) + 1 :] if declared.name in names else []
    if options.dtype == "float64":
        # float64 asked for, float32 computed (a framework's default dtype leaking in).
        u = bounds.UNIT_ROUNDOFF["float32"]
        tiny = bounds.smallest_normal("float32")
        later.append(bounds.Arithmetic("float32", "float64", u, u, u, tiny))
    return [(a.name, a) for a in later]


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
        for convention, value in TIE_CONVENTIONS.items():
            if value != tie:
                yield (
                    "tie_convention",
                    f"ties take {value:+g} (the {convention} convention), but the pinned "
                    f"convention {options.tie_convention} gives {tie:+g}",
                    partial(base, t=value),
                )
    if center.ndim == 2 and center.shape[0] == center.shape[1]:
        yield "transposed", "the result is transposed", lambda: Bound(center.T, radius.T)
    yield (
        "sign_flip",
        "the sign is flipped" + (" (w + lr * dL_dw)" if is_update else ""),
        (lambda: moved(-1.0)),
    )
    for label, k in _factors(case):
        yield (
            "mean_instead_of_sum",
            f"the result is 1/{label} = 1/{k} of the sum: a mean where the L1 loss sums",
            partial(moved, 1.0 / k),
        )
    for label, k in _factors(case):
        yield "scaled", f"the result is {label} = {k} times the right one", partial(moved, float(k))
    if "dL_do" in case.arrays:
        upstream = case.arrays["dL_do"].astype(np.float64)
        variants = [
            ("dL_do is ignored (as if all ones)", np.ones_like(upstream)),
            ("only the sign of dL_do is used", np.sign(upstream)),
            ("dL_do is clipped to [-1, 1]", np.clip(upstream, -1.0, 1.0)),
        ]
        for text, replaced in variants:
            yield "upstream_ignored", text, partial(base, case.replace(dL_do=replaced))
    # Dropping one of K terms moves a result by about 1/K of its magnitude, and so does a
    # bfloat16 / float16 accumulation, which correct numpy code does (it sums those dtypes in
    # their own precision): that rounding explanation goes before the missing slice. A
    # reduced *matmul* precision (TF32, bf16 passes) is an accelerator's doing; on the same
    # evidence a missing slice is the likelier bug, so those come after it.
    reduced = _reduced_arithmetics(options)
    accumulation = [(label, a) for label, a in reduced if a.u_acc > bounds.UNIT_ROUNDOFF["float32"]]
    for label, reduced_arith in accumulation:
        yield (
            "reduced_precision",
            f"fits the bound of {label} arithmetic, not of {arith.name}",
            partial(base, a=reduced_arith),
        )
    for text, sliced in _sliced_cases(case):
        yield "off_by_one", text, partial(base, sliced)
    for text, alternative in _untouched(right, w):
        yield "off_by_one", text, partial(_given, alternative)
    for label, reduced_arith in reduced:
        if (label, reduced_arith) not in accumulation:
            yield (
                "reduced_precision",
                f"fits the bound of {label} arithmetic, not of {arith.name}",
                partial(base, a=reduced_arith),
            )
