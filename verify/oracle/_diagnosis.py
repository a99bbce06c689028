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
import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import ml_dtypes
import numpy as np

from .. import bounds
from ..bounds import Arithmetic, Bound
from ..messages import explain
from . import _fitted
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
    WRONG_LOSS = (
        "wrong_loss",
        "the result belongs to another loss (squared error, smooth L1 / Huber), not the L1 loss",
    )
    BIAS = "bias", "the output carries a bias term: output - x @ w is constant down each column"
    WEIGHT_DECAY = (
        "weight_decay",
        "the update decays the weights: w_new = w - lr * (dL_dw + lambda * w)",
    )
    SCALED_STEP = (
        "scaled_step",
        "the step w - w_new is c * lr * dL_dw for a c other than 1 (a first momentum or "
        "Nesterov step, a clipped gradient, lr applied twice)",
    )
    NORMALIZED_STEP = (
        "normalized_step",
        "the step w - w_new is about lr * sign(dL_dw): an adaptive optimizer such as Adam",
    )
    ACCUMULATED_GRADIENT = (
        "accumulated_gradient",
        "a second identical call adds the gradient again: gradients accumulate across calls "
        "(zero_grad forgotten?)",
    )
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
    candidates = hypotheses(name, case, options, actual)
    while True:
        try:
            hypothesis = next(candidates)
        except StopIteration:
            break
        except Exception:  # a fit that cannot be made on this result: no further hypotheses
            break
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


def hypotheses(
    name: str, case: Case, options: Options, actual: np.ndarray | None = None
) -> Iterator[Hypothesis]:
    """The known bugs, most specific first, as lazily built admissible sets for ``name``.

    A pinned tie convention goes first: the other conventions differ from it only at ties, so a
    result that fits one of them is explained best by it (on one tied element it would also
    look like a sign flip). Bugs with a constant of their own (a weight decay, a bias) are
    fitted to ``actual`` (``_fitted``) and come after the fixed factors.
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
        # For w_new the bug is in the step w_new - w, not in w. Applying the factor rounds
        # (sign / 20 is not exact in float32, where sign itself was).
        moved_center = w + (center - w) * factor
        rounding = bounds.gamma(2, arith.u_out) * np.abs(moved_center)
        return Bound(moved_center, radius * max(1.0, abs(factor)) + rounding)

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
    yield from _wrong_losses(name, case, arith)
    if actual is not None:
        yield from _fitted_hypotheses(name, case, options, right, actual)
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


def accepting_option(reduced: Arithmetic) -> str:
    """The option that declares ``reduced`` (``--matmul-precision tf32``, ``--accumulation
    bfloat16``), or why none does."""
    precisions = list(bounds.MATMUL_INPUT_ROUNDOFF)[1:] if reduced.dtype == "float32" else []
    for precision in precisions:
        if bounds.arithmetic("float32", precision) == reduced:  # type: ignore[arg-type]
            return (
                f"--matmul-precision {precision} (matmul_precision={precision!r}) would accept it"
            )
    for accumulation in bounds.ACCUMULATIONS[reduced.dtype][1:]:
        if bounds.arithmetic(reduced.dtype, accumulate=accumulation) == reduced:
            return f"--accumulation {accumulation} (accumulation={accumulation!r}) would accept it"
    return f"no option accepts it: {reduced.dtype} results computed in {reduced.name}"


def _reduced(reduced: Arithmetic, declared: Arithmetic, base: Callable[..., Bound]) -> Hypothesis:
    return Hypothesis(
        Diagnosis.REDUCED_PRECISION,
        f"fits the bound of {reduced.name} arithmetic, not of {declared.name}: "
        + accepting_option(reduced),
        partial(base, a=reduced),
    )


# --------------------------------------------------------------------------------------------
# Another loss: squared error or smooth L1 where the L1 loss was meant.
# --------------------------------------------------------------------------------------------


def _huber(r: np.ndarray) -> np.ndarray:
    """Smooth L1 with beta = 1 (PyTorch's ``smooth_l1_loss``, optax's ``huber_loss``)."""
    return np.where(np.abs(r) < 1.0, 0.5 * r * r, np.abs(r) - 0.5)


def _wrong_losses(name: str, case: Case, arith: Arithmetic) -> Iterator[Hypothesis]:
    """The L1 loss's result computed for another loss: ``L`` (of ``loss`` or ``step``) and
    ``dL_do`` (of ``loss_grad``), each summed or averaged over the N*O elements.

    ``r = output - target``; when ``output`` is the step's own ``x @ w`` it is known to the
    forward bound ``rho``, which moves ``sum r^2`` by at most ``sum (2 |r| + rho) rho`` and
    ``sum huber(r)`` by ``sum rho`` (its slope is at most 1).
    """
    if name not in ("L", "loss", "dL_do"):
        return
    a = {key: value.astype(np.float64) for key, value in case.arrays.items()}
    if "output" in a:
        output = Bound(a["output"], np.zeros_like(a["output"]))
    else:
        output = bounds.forward_bound(a["x"], a["w"], arith, matmul=numpy_matmul)
    r, rho = output.center - a["target"], output.radius
    count = r.size
    mean = f"mean over N*O = {count}"
    if name == "dL_do":
        gradients = [
            ("2 (output - target): the gradient of the squared error (MSE)", 2 * r),
            ("output - target: the gradient of half the squared error", r),
            (
                f"2 (output - target) / (N*O): the gradient of the {mean} squared error",
                2 * r / count,
            ),
            ("clip(output - target, -1, 1): the gradient of smooth L1 / Huber", np.clip(r, -1, 1)),
            (
                f"clip(output - target, -1, 1) / (N*O): the gradient of the {mean} smooth L1 "
                "(F.smooth_l1_loss's default)",
                np.clip(r, -1, 1) / count,
            ),
        ]
        for text, value in gradients:
            radius = bounds.gamma(3, arith.u_out) * np.abs(value) + 2 * arith.tiny
            yield Hypothesis(Diagnosis.WRONG_LOSS, text, partial(_given, Bound(value, radius)))
        return
    squared, spread_squared = r * r, (2 * np.abs(r) + rho) * rho
    huber = _huber(r)
    losses = [
        ("the squared error sum (output - target)^2, not the L1 loss", squared, spread_squared, 1),
        (f"the {mean} squared error (MSE), not the L1 loss", squared, spread_squared, count),
        ("half the squared error, not the L1 loss", 0.5 * squared, 0.5 * spread_squared, 1),
        ("the smooth L1 / Huber loss (beta = 1), not the L1 loss", huber, rho, 1),
        (f"the {mean} smooth L1 loss (F.smooth_l1_loss's default)", huber, rho, count),
    ]
    for text, terms, spread, divisor in losses:
        magnitude = float(np.sum(np.abs(terms)) + np.sum(spread))
        loss_value = float(np.sum(terms)) / divisor
        loss_radius = (
            float(np.sum(spread))
            + (arith.sum(count) + bounds.gamma(4, arith.u_out)) * magnitude
            + arith.underflow(count)
        ) / divisor
        yield Hypothesis(
            Diagnosis.WRONG_LOSS,
            f"L is {text}",
            partial(_given, Bound(np.asarray(loss_value), np.asarray(loss_radius))),
        )


# --------------------------------------------------------------------------------------------
# Bugs with a constant of their own, fitted to the result (``_fitted``).
# --------------------------------------------------------------------------------------------


def _step_hint(scale: float, lr: float) -> str:
    if math.isclose(scale, lr, rel_tol=1e-6):
        return ": lr applied twice?"
    if 1.0 < scale <= 2.0:
        return (
            f": a first Nesterov step with momentum {scale - 1:.3g} moves (1 + momentum) * lr "
            "* dL_dw (SGD(momentum=..., nesterov=True), optax.sgd(..., nesterov=True))?"
        )
    if 0.0 < scale < 1.0:
        return ": a clipped gradient norm or a rescaled lr?"
    return ""


def _fitted_hypotheses(
    name: str, case: Case, options: Options, right: Bound, actual: np.ndarray
) -> Iterator[Hypothesis]:
    """Weight decay, a scaled or normalized step (``w_new``), a bias (``forward``'s output)."""
    arith = options.arithmetic()
    u = arith.u_out
    if name == "output" and case.function == "forward":
        for fit in _fitted.column_offset_fits(actual, right, u=u):
            yield Hypothesis(
                Diagnosis.BIAS,
                f"output - x @ w is the same down each column (up to {fit.value:.3g}): a bias "
                "term (nn.Linear(bias=True), eqx.nn.Linear(use_bias=True))?",
                partial(_given, fit.bound),
                fit.ambiguous,
            )
    if name != "w_new":
        return
    w = case.arrays["w"].astype(np.float64)
    lr = case.learning_rate
    if lr == 0:
        return
    # The decay is fitted as lambda in lr * lambda * w: users write lambda as a short decimal.
    for fit in _fitted.scaled_fits(actual, right.center, right.center, -lr * w, right.radius, u=u):
        yield Hypothesis(
            Diagnosis.WEIGHT_DECAY,
            f"w_new = w - lr * (dL_dw + lambda * w) with lambda = {fit.value:.3g}: weight decay "
            f"of about {fit.value:.2g} (SGD(weight_decay=...), optax.add_decayed_weights)?",
            partial(_given, fit.bound),
            fit.ambiguous,
        )
    for fit in _fitted.scaled_fits(
        actual, right.center, w, right.center - w, right.radius, u=u, excluded=(1.0,)
    ):
        yield Hypothesis(
            Diagnosis.SCALED_STEP,
            f"w - w_new = {fit.value:.3g} * lr * dL_dw" + _step_hint(fit.value, lr),
            partial(_given, fit.bound),
            fit.ambiguous,
        )
    if case.function == "update":
        dL_dw = case.arrays["dL_dw"].astype(np.float64)
        grad = Bound(dL_dw, np.zeros_like(dL_dw))
    else:
        grad = expect(case, arith, tie=options.tie, matmul=numpy_matmul)["dL_dw"]
    for fit in _fitted.normalized_fits(actual, w, grad, lr, u=u):
        text = (
            "w - w_new = lr * sign(dL_dw): the first step of an adaptive optimizer such as "
            "Adam (lr * g / (|g| + eps))"
            if fit.value == 1.0
            else f"w - w_new = {fit.value:.3g} * lr * sign(dL_dw): the first step of an "
            "adaptive optimizer (Adam's is 1 * lr * sign(g), RMSprop's 1 / sqrt(1 - alpha))"
        )
        yield Hypothesis(Diagnosis.NORMALIZED_STEP, text, partial(_given, fit.bound), fit.ambiguous)
