"""Every cause the oracle can name, as data: ``STRUCTURES`` (what a wrong result computes, read
on exact probes: its term map, branch table, weights or updates), ``PATTERNS`` (bugs recognised
by the evidence a judge kept: a result's values, a result of the wrong shape, two identical calls
that disagree) and ``VERDICTS`` (defects the judges decide themselves), one record each; every
``Diagnosis`` has exactly one home.

A **pattern** is another admissible set for a result: the set the result would fall in had the
candidate made that bug (a transpose, a mean, a missing block of the sum, ...). ``diagnose``
(``_diagnosis``) tries every pattern that reads the evidence and applies to the result, and keeps
every one the whole result fits (each pattern's first fitting alternative: its alternatives come
most specific first). The rules that name a cause are these, and nothing else decides:

0. **Structure first** (``_structure``, ``_explain``): where a structural reading of the wrong
   result exists, it is made on probes whose every value is exact in every arithmetic. A
   difference from the contract read there names the cause, exactly, before any pattern; the
   contract itself there withdraws every structural pattern (a scale fitted on a 1x1x1
   counterexample is contradicted), leaving rounding and value-dependent causes; a reading that
   cannot be made (not (bi)linear or element-wise on the probes) says so and names nothing.
1. **Refinement**: a kind that another fitting alternative ``refines`` is dropped (a sign flip
   is a scale of -1: where both fit, the sign flip is named).
2. **Clarity**: a cause is named on a case only when exactly one kind fits and its fit is not
   ``unclear`` (too few elements for its fitted constants, dims that coincide for a factor, one
   row for a per-column offset). Otherwise the finding stays ``mismatch`` (``nan``) and lists the
   candidates, in ``Diagnosis`` order.
3. **Probes** (``_probes``): each candidate is run again on a probe case chosen for it
   (``probe`` data: normal values, ties, or sides past a block edge). A probe that fits it again
   (the same fitted constant, where it has one) confirms it; one that does not fit, or that
   passes where the pattern predicts a failure (every pattern but a ``rounding`` one), withdraws
   it. A ``stateful`` pattern (one that shows only across calls) is also probed for when the
   counterexample explains nothing (a shrunk case may have lost the gradient that shows it).
4. **Structure beats rounding** (``decide``): of several survivors, a single one that is not
   ``rounding`` is named: a structural fit lands on exact values; rounding noise does not. A
   call whose every value is exact in bfloat16, float16 and TF32 (small integers) is never
   given a rounding cause (``exact_in_any_arithmetic``).
5. **Advice is re-judged** (``_explain``): a rounding cause offers an option that declares its
   arithmetic only once the check, judged again under it on the same case, passes; otherwise
   it says what would (accumulate in float32). A fused step whose own piece fails on the same
   data takes the piece's explanation, or names no rounding cause of its own (``_probes``).

Each kind has one record, so the registry's order decides nothing: candidates are listed in
``Diagnosis`` order, and a test permutes the registry and sees the same verdicts. A new diagnosis
is one ``Diagnosis`` member, one record here and its bug in ``tests/zoo.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np

from ... import bounds
from ...bounds import Arithmetic, Bound
from .._contract import AXES
from .._diagnoses import Diagnosis
from .._settings import Settings
from ..judging import Case, expect, expected_under, numpy_matmul
from . import _fitted, _hints
from ._structure import (
    Reader,
    read_branch_table,
    read_loss_weights,
    read_step_parts,
    read_step_update,
    read_term_map,
    read_update,
)

# --------------------------------------------------------------------------------------------
# The records.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Alternative:
    """One admissible set a pattern proposes for a result.

    Attributes:
      detail: the bug in words, for this case.
      bound: the admissible set; a radius of inf admits anything there (an unwritten region).
      unclear: why this case cannot tell the pattern from others ("one row: any per-column
        offset fits"), or "" when it can.
      value: the pattern's fitted constant, if it has one: a probe confirms the pattern when
        it fits the same constant again.
      probe: the probe data that shows it, where not the pattern's (``Pattern.probe``).
      refines: other kinds this alternative is a special case of, besides the pattern's (lr
        rounded to float32 is float32 arithmetic in one place).
      declares: the options that declare the arithmetic it fits (``(field, value)`` pairs):
        offered only once a re-judging under them accepts the result (``_explain``).
    """

    detail: str
    bound: Bound
    unclear: str = ""
    value: float | None = None
    probe: str | None = None
    refines: tuple[Diagnosis, ...] = ()
    declares: tuple[tuple[str, str], ...] = ()


#: The evidence a pattern reads: a result outside its bound (``values``: finite;
#: ``nonfinite``: with NaN or infinity), a result of the wrong ``shape``, or the difference of two
#: identical calls that disagree (``repeat``).
VALUES, NONFINITE, SHAPE, REPEAT = "values", "nonfinite", "shape", "repeat"

#: The judges' verdict each kind of evidence comes with: what a pattern may replace.
EVIDENCE_OF: dict[Diagnosis, frozenset[str]] = {
    Diagnosis.MISMATCH: frozenset({VALUES}),
    Diagnosis.NAN: frozenset({NONFINITE}),
    Diagnosis.WRONG_SHAPE: frozenset({SHAPE}),
    Diagnosis.NONDETERMINISTIC: frozenset({REPEAT}),
}


@dataclasses.dataclass(frozen=True)
class Context:
    """What a pattern sees: ``actual``, the failing result (float64; for ``REPEAT`` evidence the
    second call's result, ``earlier`` the first's), its name, the call, the options, the right
    admissible set ``right`` and the ``evidence`` it comes from."""

    name: str
    actual: np.ndarray
    case: Case
    options: Settings
    right: Bound
    evidence: str = VALUES
    #: the first of two calls that disagree (``REPEAT`` evidence), else None.
    earlier: np.ndarray | None = None

    @property
    def arith(self) -> Arithmetic:
        return self.options.arithmetic()

    @property
    def origin(self) -> np.ndarray:
        """Where a scaled bug starts from: ``w`` for ``w_new`` and ``b`` for ``b_new`` (the bug
        is in the step ``w_new - w``), zero for every other result."""
        if self.name in _UPDATED:
            return self.case.arrays[_UPDATED[self.name]].astype(np.float64)
        return np.zeros_like(self.right.center)

    def base(
        self,
        case: Case | None = None,
        arith: Arithmetic | None = None,
        tie: float | bool | None = True,
    ) -> Bound:
        """The right admissible set of this result for another call, arithmetic or tie
        (``tie=True``: the pinned one). Float bounds even in exact mode: a bug computes its wrong
        answer with roundings of its own."""
        pinned = self.options.tie if tie is True else tie
        return expect(
            case or self.case,
            arith or self.arith,
            tie=pinned,
            matmul=numpy_matmul,
            reduction=self.options.loss_reduction,
        )[self.name]

    def moved(self, factor: float) -> Bound:
        """The right result with its part past ``origin`` multiplied by ``factor``."""
        origin, center = self.origin, self.right.center
        moved_center = origin + (center - origin) * factor
        rounding = bounds.gamma(2, self.arith.u_out) * np.abs(moved_center)
        return Bound(moved_center, self.right.radius * max(1.0, abs(factor)) + rounding)


#: A pattern's admissible sets for one failing result, most specific first.
Alternatives = Callable[[Context], Iterator[Alternative]]


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A bug recognised by the evidence a judge kept.

    Attributes:
      kind: the diagnosis it names (one record per kind).
      results: the result names it is tried on (``output``, ``L``/``loss``, ``dL_do``,
        ``dL_dx``, ``dL_dw``, ``dL_db``, ``w_new``, ``b_new``).
      alternatives: its admissible sets for one failing result, most specific first.
      functions: the checks it is tried in (None: any that returns one of ``results``).
      reads: the evidence it reads (``VALUES``, ``NONFINITE``, ``SHAPE``, ``REPEAT``).
      probe: the data that shows it on a probe case: ``"normal"`` values, ``"ties"``, or
        ``"blocks"`` (normal values with sides past a block edge, ``_probes.BLOCKS_SHAPE``).
      refines: the kinds it is a special case of; when both fit, this one is named.
      rounding: a rounding effect: it fits within a widened bound rather than on exact values,
        a probe may pass although it is there, and a structural survivor beats it (``decide``).
      stateful: it shows only across calls: probed for after a failure nothing explains.
    """

    kind: Diagnosis
    results: frozenset[str]
    alternatives: Alternatives
    functions: frozenset[str] | None = None
    reads: frozenset[str] = frozenset({VALUES})
    probe: str = "normal"
    refines: tuple[Diagnosis, ...] = ()
    rounding: bool = False
    stateful: bool = False

    def applies(self, name: str, function: str, evidence: str) -> bool:
        return (
            name in self.results
            and (self.functions is None or function in self.functions)
            and evidence in self.reads
        )


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A defect the judges decide themselves, from how calls behave rather than from a
    result's values.

    Attributes:
      kind: the diagnosis.
      decided_by: where it is decided (a function of ``judging``).
      stateful: it shows only across calls (two calls that disagree): probed for after a
        failure nothing explains, as a stateful pattern is.
    """

    kind: Diagnosis
    decided_by: str
    stateful: bool = False


# --------------------------------------------------------------------------------------------
# The patterns' admissible sets.
# --------------------------------------------------------------------------------------------

_ALL = frozenset({"output", "L", "loss", "dL_do", "dL_dx", "dL_dw", "dL_db", "w_new", "b_new"})
_MATRICES = frozenset({"output", "dL_do", "dL_dx", "dL_dw", "w_new"})

#: The updated parameters, each by the parameter it starts from.
_UPDATED = {"w_new": "w", "b_new": "b"}
_STEPS = frozenset(_UPDATED)


def _tie_conventions(ctx: Context) -> Iterator[Alternative]:
    tie = ctx.options.tie
    if tie is None:
        return
    for convention, value in bounds.TIE_CONVENTIONS.items():
        if value != tie:
            yield Alternative(
                f"ties take {value:+g} (the {convention} convention), but the pinned "
                f"convention {ctx.options.tie_convention} gives {tie:+g}",
                ctx.base(tie=value),
            )


def _transposed(ctx: Context) -> Iterator[Alternative]:
    """A square result transposed (by its values), or a non-square one (by its shape alone);
    or the transpose re-read row-major into the right shape (``.reshape(I, O)`` where ``.T``
    belongs: the shape is right, the elements scrambled)."""
    center = ctx.right.center
    if ctx.evidence == SHAPE:
        flipped = center.ndim == 2 and ctx.actual.shape == center.shape[::-1]
        if flipped and center.shape[0] != center.shape[1]:
            infinite = np.full(center.shape[::-1], np.inf)
            yield Alternative("the result is transposed", Bound(center.T, infinite))
        return
    if center.ndim != 2 or min(center.shape) < 2:
        return
    if center.shape[0] == center.shape[1]:
        yield Alternative("the result is transposed", Bound(center.T, ctx.right.radius.T))
        return
    rows, cols = center.shape
    reread = Bound(center.T.reshape(rows, cols), ctx.right.radius.T.reshape(rows, cols))
    yield Alternative(
        f"the result is its transpose re-read row-major as ({rows}, {cols}): .reshape where .T "
        "belongs (the elements scrambled, the shape right)",
        reread,
    )


def _sign_flip(ctx: Context) -> Iterator[Alternative]:
    ascent = {"w_new": " (w + lr * dL_dw)", "b_new": " (b + lr * dL_db)"}
    text = "the sign is flipped" + ascent.get(ctx.name, "")
    yield Alternative(text, ctx.moved(-1.0), value=-1.0)


def _dims(case: Case) -> dict[str, int]:
    """N, I and O as far as ``case``'s arrays tell them."""
    dims: dict[str, int] = {}
    for array_name, array in case.arrays.items():
        for label, size in zip(AXES[array_name], array.shape, strict=True):
            dims[label] = size
    return dims


def factors(case: Case) -> list[tuple[str, int, str]]:
    """Candidate factors of a mean, by value: ``(label, value, unclear)`` for ``N*O``, ``N``,
    ``O``, ``I``, ``N*I``; products that coincide on this case's dims are one factor, labelled
    with all their names and unclear (N = N*O when O = 1)."""
    dims = _dims(case)
    products = {"N*O": ("N", "O"), "N": ("N",), "O": ("O",), "I": ("I",), "N*I": ("N", "I")}
    by_value: dict[int, list[str]] = {}
    for label, parts in products.items():
        if all(p in dims for p in parts):
            value = math.prod(dims[p] for p in parts)
            if value > 1:
                by_value.setdefault(value, []).append(label)
    found = []
    for value, labels in by_value.items():
        if len(labels) == 1:
            found.append((labels[0], value, ""))
        else:
            same = " = ".join(labels)
            found.append((f"{labels[0]} (= {' = '.join(labels[1:])} here)", value, f"{same}"))
    return found


def _mean(ctx: Context) -> Iterator[Alternative]:
    for label, value, unclear in factors(ctx.case):
        yield Alternative(
            f"the result is 1/{label} = 1/{value} of the sum: a mean where the L1 loss sums",
            ctx.moved(1.0 / value),
            f"{unclear} on this case" if unclear else "",
        )


def _scale_words(value: float, case: Case) -> str:
    """``2x``, or ``N = 5 times`` where the constant is a dim of the case."""
    for label, size, _ in factors(case):
        if math.isclose(value, size, rel_tol=1e-9):
            return f"{label} = {size} times"
    return f"{value:.6g}x"


def _scaled(ctx: Context) -> Iterator[Alternative]:
    right = ctx.right
    if not np.any(ctx.actual):
        return  # a zero result is no scale of the right one (``_missing_terms`` weighs it)
    for fit in _fitted.scaled_fits(
        ctx.actual, right.center, ctx.origin, right.center - ctx.origin, right.radius,
        u=ctx.arith.u_out, excluded=(1.0,),
    ):  # fmt: skip
        yield Alternative(
            f"the result is {_scale_words(fit.value, ctx.case)} the right one",
            fit.bound,
            "one element: any constant fits" if fit.ambiguous else "",
            fit.value,
        )


def _wrong_losses(ctx: Context) -> Iterator[Alternative]:
    """The L1 loss's result computed for another loss: ``L`` (of ``loss`` or ``step``) and
    ``dL_do`` (of ``loss_grad``), each summed or averaged over the N*O elements.

    ``r = output - target``; when ``output`` is the step's own ``x @ w`` it is known to the
    forward bound ``rho``, which moves ``sum r^2`` by at most ``sum (2 |r| + rho) rho`` and
    ``sum huber(r)`` by ``sum rho`` (its slope is at most 1).
    """
    arith = ctx.arith
    a = {key: value.astype(np.float64) for key, value in ctx.case.arrays.items()}
    if "output" in a:
        output = Bound(a["output"], np.zeros_like(a["output"]))
    else:
        output = bounds.forward_bound(a["x"], a["w"], arith, matmul=numpy_matmul)
    r, rho = output.center - a["target"], output.radius
    count = r.size
    mean = f"mean over N*O = {count}"
    huber = np.where(np.abs(r) < 1.0, 0.5 * r * r, np.abs(r) - 0.5)
    if ctx.name == "dL_do":
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
            yield Alternative(text, Bound(value, radius))
        return
    squared, spread_squared = r * r, (2 * np.abs(r) + rho) * rho
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
        yield Alternative(f"L is {text}", Bound(np.asarray(loss_value), np.asarray(loss_radius)))


def _shifted_pairs(ctx: Context) -> Iterator[Alternative]:
    """The loss with output's rows (or columns) paired with target's neighbours: ``sum |output[
    n] - target[n + 1]|`` (a sequence model's next-token shift), the last pair dropped or the
    first wrapped around (``np.roll``)."""
    a = {key: value.astype(np.float64) for key, value in ctx.case.arrays.items()}
    if "output" not in a or a["output"].ndim != 2:
        return
    output, target = a["output"], a["target"]
    arith = ctx.arith
    for axis, label in ((0, "row n"), (1, "column o")):
        size = output.shape[axis]
        if size < 2:
            continue
        index = "n" if axis == 0 else "o"
        for shift in (1, -1):
            kept = slice(0, size - 1) if shift == 1 else slice(1, size)
            moved = slice(1, size) if shift == 1 else slice(0, size - 1)
            take = (kept, slice(None)) if axis == 0 else (slice(None), kept)
            give = (moved, slice(None)) if axis == 0 else (slice(None), moved)
            sign = "+" if shift == 1 else "-"
            for terms, words in (
                (np.abs(output[take] - target[give]), "the last pair dropped"),
                (np.abs(output - np.roll(target, -shift, axis=axis)), "wrapped around"),
            ):
                value = float(np.sum(terms))
                radius = (arith.sum(terms.size) + bounds.gamma(2, arith.u_out)) * value + (
                    arith.underflow(terms.size)
                )
                yield Alternative(
                    f"L pairs output's {label} with target's {index} {sign} 1 ({words}): "
                    "output and target are shifted against each other",
                    Bound(np.asarray(value), np.asarray(radius)),
                )


def _bias(ctx: Context) -> Iterator[Alternative]:
    if "b" in ctx.case.arrays:
        return  # the layer has a bias: its output carries one (twice: ``_bias_twice``)
    for fit in _fitted.column_offset_fits(ctx.actual, ctx.right, u=ctx.arith.u_out):
        yield Alternative(
            f"output - x @ w is the same down each column (up to {fit.value:.3g}): "
            + _hints.BIAS_TERM,
            fit.bound,
            "one row: any per-column offset fits" if fit.ambiguous else "",
        )


def _bias_twice(ctx: Context) -> Iterator[Alternative]:
    """The call's results had b been added twice (``x @ w + b + b``): the output, and the
    loss and gradients of a step computed from that output."""
    b = ctx.case.arrays.get("b")
    if b is None or not np.any(b):
        return
    doubled = (2 * b.astype(np.float64)).astype(b.dtype)
    yield Alternative(
        f"{ctx.name} is what output = x @ w + 2 b gives: b is added twice (in forward and again "
        "in the step, or a bias folded into x @ w and added once more)",
        ctx.base(ctx.case.replace(b=doubled)),
    )


def _bias_axis(ctx: Context) -> Iterator[Alternative]:
    """b broadcast along the batch axis: ``x @ w + b[:, None]`` (N == O; N == 1 broadcasts to
    (O, O)), and dL_db summed over O (``dL_do.sum(axis=1)``, shape (N,))."""
    a = ctx.case.arrays
    arith = ctx.arith
    if ctx.name == "output" and "b" in a:
        x, w, b = (a[k].astype(np.float64) for k in ("x", "w", "b"))
        n, o = x.shape[0], w.shape[1]
        if n == 1 and o > 1 and ctx.actual.shape == (o, o):
            shape_words = f"(1, O) + (O, 1) broadcasts to {(o, o)}"
        elif n == o and n > 1 and ctx.actual.shape == (n, o):
            shape_words = "N == O, so numpy broadcasts it without an error"
        else:
            return
        product = bounds.forward_bound(x, w, arith, matmul=numpy_matmul)
        center = product.center + b[:, None]
        radius = np.broadcast_to(product.radius.max(initial=0.0), center.shape)
        rounding = bounds.gamma(2, arith.u_out) * (np.abs(product.center) + np.abs(b[:, None]))
        yield Alternative(
            f"output = x @ w + b[:, None]: b is added per example, not per output feature "
            f"({shape_words})",
            Bound(center, radius + rounding + arith.tiny),
        )
    elif ctx.name == "dL_db" and "dL_do" in a:
        upstream = a["dL_do"].astype(np.float64)
        n, o = upstream.shape
        if ctx.actual.shape != (n,) or (n == o and n == 1):
            return
        words = "N == O, so the shape is right" if n == o else f"shape (N,) = {(n,)}, not (O,)"
        yield Alternative(
            f"dL_db = dL_do.sum(axis=1): the sum runs over the outputs, not over the batch "
            f"({words})",
            bounds.grad_b_bound(upstream.T, arith),
        )


def _bias_not_updated(ctx: Context) -> Iterator[Alternative]:
    """b_new = b (tried on b_new alone: ``origin`` is b)."""
    b = ctx.origin
    yield Alternative(
        "b_new = b: the step updates w only (b left out of the parameters, or its update "
        "computed and dropped)",
        Bound(b, np.zeros(b.shape)),
    )


#: A weight decay below this multiple of the unit roundoff of float32 (or of the dtype, if
#: coarser), relative to the gradient it is added to, changes the update by less than rounding
#: the gradient to float32 would: no optimizer's setting, but the trace of another scalar bug.
_DECAY_FLOOR = 2.0


def _weight_decay(ctx: Context) -> Iterator[Alternative]:
    lr = ctx.case.learning_rate
    if lr == 0:
        return
    w = ctx.origin
    gradient = (w - ctx.right.center) / lr
    u = max(ctx.arith.u_out, bounds.UNIT_ROUNDOFF["float32"])
    floor = _DECAY_FLOOR * u * float(np.max(np.abs(gradient), initial=0.0))
    # The decay is fitted as lambda in lr * lambda * w: users write lambda as a short decimal.
    for fit in _fitted.scaled_fits(
        ctx.actual, ctx.right.center, ctx.right.center, -lr * w, ctx.right.radius,
        u=ctx.arith.u_out,
    ):  # fmt: skip
        if fit.value <= 0 or fit.value * float(np.max(np.abs(w), initial=0.0)) <= floor:
            continue  # a decay grows the weights' pull to zero, and is not below rounding
        yield Alternative(
            f"w_new = w - lr * (dL_dw + lambda * w) with lambda = {fit.value:.3g}: weight "
            f"decay of about {fit.value:.2g} ({_hints.WEIGHT_DECAY})?",
            fit.bound,
            "one element: any decay fits" if fit.ambiguous else "",
            fit.value,
        )


def _step_hint(scale: float, lr: float) -> str:
    if math.isclose(scale, lr, rel_tol=1e-6):
        return ": lr applied twice?"
    if hint := _hints.step_hint(scale):
        return f": {hint}"
    if 0.0 < scale < 1.0:
        return ": a clipped gradient norm or a rescaled lr?"
    return ""


#: Narrower dtypes a scalar may be passed through, per requested dtype.
_NARROWER: dict[str, tuple[str, ...]] = {
    "float64": ("float32", "bfloat16", "float16"),
    "float32": ("bfloat16", "float16"),
    "bfloat16": (),
    "float16": (),
}


def _scaled_step(ctx: Context) -> Iterator[Alternative]:
    lr = ctx.case.learning_rate
    if lr == 0:
        return
    # lr through a narrower argument or constant: w - narrow(lr) * dL_dw, no fitted constant.
    for narrow in _NARROWER[ctx.options.dtype]:
        rounded = float(np.asarray(lr, bounds.numpy_dtype(narrow)))
        if rounded != lr and rounded != 0:
            yield Alternative(
                f"lr was used as {rounded:.12g}, {narrow}({lr!r}): lr passed through a "
                f"{narrow} argument or constant",
                ctx.moved(rounded / lr),
                refines=(Diagnosis.REDUCED_PRECISION,),
            )
    right = ctx.right
    for fit in _fitted.scaled_fits(
        ctx.actual, right.center, ctx.origin, right.center - ctx.origin, right.radius,
        u=ctx.arith.u_out, excluded=(1.0,),
    ):  # fmt: skip
        yield Alternative(
            f"w - w_new = {fit.value:.3g} * lr * dL_dw" + _step_hint(fit.value, lr),
            fit.bound,
            "one element: any constant fits" if fit.ambiguous else "",
            fit.value,
        )


def _normalized_step(ctx: Context) -> Iterator[Alternative]:
    lr = ctx.case.learning_rate
    if lr == 0:
        return
    gradient_name = "dL_db" if ctx.name == "b_new" else "dL_dw"
    if ctx.case.function == "update":
        given = ctx.case.arrays[gradient_name].astype(np.float64)
        grad = Bound(given, np.zeros_like(given))
    else:
        expected = expected_under(ctx.case, ctx.options, ctx.arith)
        grad = expected[gradient_name]
    for fit in _fitted.normalized_fits(ctx.actual, ctx.origin, grad, lr, u=ctx.arith.u_out):
        if fit.value <= 0:
            continue  # an adaptive step moves against the gradient, as SGD does
        text = (
            "w - w_new = lr * sign(dL_dw): the first step of an adaptive optimizer such as "
            "Adam (lr * g / (|g| + eps))"
            if fit.value == 1.0
            else f"w - w_new = {fit.value:.3g} * lr * sign(dL_dw): the first step of an "
            "adaptive optimizer (Adam's is 1 * lr * sign(g), RMSprop's 1 / sqrt(1 - alpha))"
        )
        unclear = "too few distinct gradients: any step size fits" if fit.ambiguous else ""
        yield Alternative(text, fit.bound, unclear, fit.value)


def _upstream_ignored(ctx: Context) -> Iterator[Alternative]:
    if "dL_do" not in ctx.case.arrays:
        return
    upstream = ctx.case.arrays["dL_do"].astype(np.float64)
    variants = [
        ("dL_do is ignored (as if all ones)", np.ones_like(upstream)),
        ("only the sign of dL_do is used", np.sign(upstream)),
        ("dL_do is clipped to [-1, 1]", np.clip(upstream, -1.0, 1.0)),
    ]
    for text, replaced in variants:
        if not np.array_equal(replaced, upstream):
            yield Alternative(text, ctx.base(ctx.case.replace(dL_do=replaced)))


def declaring(reduced: Arithmetic) -> tuple[str, str] | None:
    """The option that declares ``reduced`` as ``(field, value)`` (``("matmul_precision",
    "tf32")``, ``("accumulation", "bfloat16")``), or None where no option does."""
    precisions = list(bounds.MATMUL_INPUT_ROUNDOFF)[1:] if reduced.dtype == "float32" else []
    for precision in precisions:
        if bounds.arithmetic("float32", precision) == reduced:  # type: ignore[arg-type]
            return "matmul_precision", precision
    for accumulation in bounds.ACCUMULATIONS[reduced.dtype][1:]:
        if bounds.arithmetic(reduced.dtype, accumulate=accumulation) == reduced:
            return "accumulation", accumulation
    return None


def spelled(option: tuple[str, str]) -> str:
    """``--matmul-precision tf32 (matmul_precision='tf32')``: an option on both surfaces."""
    field, value = option
    return f"--{field.replace('_', '-')} {value} ({field}={value!r})"


def exact_in_any_arithmetic(case: Case) -> bool:
    """Whether every value the call's contract forms is an integer of at most 256 in magnitude
    (every input, product and partial sum): exact in bfloat16 (8 significant bits), float16 and
    TF32 arithmetic too, so that no rounding explains a wrong result there."""
    arrays = [a.astype(np.float64) for name, a in case.arrays.items()]
    if not arrays or not all(np.all(a == np.round(a)) for a in arrays):
        return False
    largest = max(float(np.max(np.abs(a), initial=0.0)) for a in arrays)
    sizes = max(max(a.shape, default=1) for a in arrays)
    # A product of two inputs summed over the longest axis bounds every partial sum.
    return largest * largest * sizes <= 256 and case.lr is None


def _reduced_precision(ctx: Context) -> Iterator[Alternative]:
    """The bound of each less precise arithmetic than the declared one; where several fit (a
    float32 matmul with tf32 or float16 inputs rounds alike, 10 bits each), one alternative
    names them all, with the options that declare them (``declares``), which the explanation
    re-judges before offering any. Never on a call whose every value is exact in them."""
    if exact_in_any_arithmetic(ctx.case):
        return
    declared = ctx.arith
    fitting = []
    for reduced in bounds.less_precise(declared):
        bound = ctx.base(arith=reduced)
        with np.errstate(all="ignore"):
            if bound.center.shape == ctx.actual.shape and bool(
                np.all(bound.ratio(ctx.actual) <= 1.0)
            ):
                fitting.append((reduced, bound))
    if not fitting:
        return
    names = " or ".join(reduced.name for reduced, _ in fitting)
    options = tuple(option for reduced, _ in fitting if (option := declaring(reduced)))
    yield Alternative(
        f"fits the bound of {names} arithmetic, not of {declared.name}",
        fitting[0][1],
        declares=options,
    )


FLOAT16_MAX = float(np.finfo(np.float16).max)


def _lower_precision(ctx: Context) -> Iterator[Alternative]:
    """A finite result within a less precise arithmetic's bound (``_reduced_precision``), or a
    non-finite one where float16 would overflow (``_float16_overflow``)."""
    if ctx.evidence == NONFINITE:
        yield from _float16_overflow(ctx)
    else:
        yield from _reduced_precision(ctx)


def _float16_overflow(ctx: Context) -> Iterator[Alternative]:
    """Infinity or NaN where float16 arithmetic would overflow (``|values|`` past its max)."""
    if ctx.options.dtype not in ("float32", "float64"):
        return
    a = ctx.case.arrays
    largest = max(float(np.max(np.abs(v.astype(np.float64)), initial=0.0)) for v in a.values())
    largest = max(largest, float(np.max(np.abs(ctx.right.center), initial=0.0)))
    if "x" in a and "w" in a:
        product = np.abs(a["x"].astype(np.float64)) @ np.abs(a["w"].astype(np.float64))
        largest = max(largest, float(product.max(initial=0.0)))
    if largest > FLOAT16_MAX / 2:
        yield Alternative(
            f"{ctx.name} overflows where float16 arithmetic would (|values| past "
            f"{FLOAT16_MAX:g}): consistent with computing in float16",
            Bound(ctx.right.center, np.full_like(ctx.right.center, np.inf)),
        )


#: Block sizes kernels use (and where a partial last block is skipped).
BLOCKS: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)

#: Which axis each function sums over, and which argument axes carry it.
_CONTRACTIONS: dict[str, list[tuple[str, str, list[tuple[str, int]]]]] = {
    "forward": [("i", "I", [("x", 1), ("w", 0)])],
    "grad_x": [("j", "O", [("dL_do", 1), ("w", 1)])],
    "grad_w": [("d", "N", [("x", 0), ("dL_do", 0)])],
    "grad_b": [("d", "N", [("dL_do", 0)])],
    "loss": [
        ("d", "N", [("output", 0), ("target", 0)]),
        ("j", "O", [("output", 1), ("target", 1)]),
    ],
    "step": [
        ("d", "N", [("x", 0), ("target", 0)]),
        ("i", "I", [("x", 1), ("w", 0)]),
        ("j", "O", [("w", 1), ("b", 0), ("target", 1)]),
    ],
}


def _cuts(
    index: str, dim: str, size: int, tiles: tuple[int, ...] = ()
) -> Iterator[tuple[slice, str]]:
    """The ways a loop over ``index`` in ``range(size)`` is cut short, each with its words: a
    term missing at either end, the partial last block of a block size skipped (``BLOCKS`` and
    the declared ``tiles``), or only the first block summed."""
    stops: dict[int, list[int]] = {}
    for block in sorted({*BLOCKS, *tiles}):
        if block < size:
            stops.setdefault(block * (size // block), []).append(block)
            stops.setdefault(block, [])
    declared = {stop for stop, blocks in stops.items() if set(blocks) & set(tiles)}
    if size - 1 in declared:
        # One past a declared tile: the partial block of one is the likelier reading.
        yield (
            slice(0, size - 1),
            f"the sum over {index} stops at {size - 1} of {dim} = {size}: the partial last "
            f"block of the declared tile is skipped (or the loop stops one short)",
        )
    if size >= 2:
        yield slice(0, size - 1), f"the loop over {index} stops one short (range({dim} - 1))"
        yield slice(1, size), f"the loop over {index} starts at 1 (range(1, {dim}))"
    for stop, blocks in sorted(stops.items()):
        if stop in (size - 1, size):
            continue
        if blocks:
            sizes = ", ".join(str(b) for b in blocks)
            yield (
                slice(0, stop),
                f"the sum over {index} stops at {stop} of {dim} = {size}: the partial last "
                f"block is skipped (blocks of {sizes})",
            )
        else:
            yield slice(0, stop), f"only the first {stop} of {dim} = {size} terms are summed"


def _missing_terms(ctx: Context) -> Iterator[Alternative]:
    """The same call with one summed axis cut short (``_cuts``); a result that is zero
    everywhere fits any cut that skips the whole sum, so it is a candidate only, for a probe
    with sides past a block edge."""
    case = ctx.case
    if case.function in _CONTRACTIONS and not np.any(ctx.actual) and np.any(ctx.right.center):
        yield Alternative(
            "the result is zero: no term of the sum is added (a loop over K // block full "
            "blocks, with K < block?)",
            Bound(np.zeros_like(ctx.right.center), np.zeros_like(ctx.right.radius)),
            "a zero result fits every bug that skips the whole sum",
            probe="blocks",
        )
    for index, dim, members in _CONTRACTIONS.get(case.function, []):
        size = case.arrays[members[0][0]].shape[members[0][1]]
        for cut, text in _cuts(index, dim, size, ctx.options.tile):
            arrays = {}
            for array_name, axis in members:
                if array_name not in case.arrays:
                    continue  # b, on the layer without one
                array = case.arrays[array_name]
                arrays[array_name] = array[(slice(None),) * axis + (cut,)]
            yield Alternative(text, ctx.base(case.replace(**arrays)))


def _trailing_regions(
    shape: tuple[int, ...], tiles: tuple[int, ...] = ()
) -> Iterator[tuple[str, np.ndarray]]:
    """The last row or column, everything past a block edge (``BLOCKS`` and the declared
    ``tiles``), and both at once (a floored 2-D grid leaves the last rows and the last columns:
    an L), of a 2-D result, as masks with their words."""
    if len(shape) != 2:
        return
    starts: list[list[int]] = []
    for size in shape:
        found = {size - 1} if size >= 2 else set()
        found |= {block * (size // block) for block in {*BLOCKS, *tiles} if block < size}
        starts.append(sorted((s for s in found if 0 < s < size), reverse=True))
    rows, cols = shape
    row_mask = np.arange(rows)[:, None] >= np.array(starts[0] or [rows])[None, :]
    col_mask = np.arange(cols)[:, None] >= np.array(starts[1] or [cols])[None, :]
    for k, start in enumerate(starts[0]):
        yield f"rows {start}..{rows - 1} of {rows}", np.broadcast_to(row_mask[:, k : k + 1], shape)
    for k, start in enumerate(starts[1]):
        yield f"columns {start}..{cols - 1} of {cols}", np.broadcast_to(col_mask[None, :, k], shape)
    for r, row_start in enumerate(starts[0]):
        for c, col_start in enumerate(starts[1]):
            both = row_mask[:, r : r + 1] | col_mask[None, :, c]
            words = (
                f"rows {row_start}..{rows - 1} and columns {col_start}..{cols - 1} of "
                f"({rows}, {cols})"
            )
            yield words, both


def _cut_short(ctx: Context) -> Iterator[Alternative]:
    """A summed axis cut short (``_missing_terms``), then a trailing region of the result never
    computed (``_zero_region``)."""
    yield from _missing_terms(ctx)
    yield from _zero_region(ctx)


def _zero_region(ctx: Context) -> Iterator[Alternative]:
    """A result right everywhere but a trailing region left at zero (or, for ``w_new``, at
    ``w``): a loop over the result that stops short."""
    fill = ctx.origin
    for words, region in _trailing_regions(ctx.right.center.shape, ctx.options.tile):
        center = np.where(region, fill, ctx.right.center)
        start = "w" if ctx.name == "w_new" else "zero"
        yield Alternative(
            f"{words} are never computed (left at {start}): a loop over the result that stops "
            "short",
            Bound(center, ctx.right.radius),
        )


def _unwritten(ctx: Context) -> Iterator[Alternative]:
    """NaN or infinity in a trailing region only, the rest right: memory never written (a grid
    of ``N // block`` tiles, a store masked too much). A result that is non-finite everywhere
    is a candidate only, for a probe with sides past a block edge."""
    nonfinite = ~np.isfinite(ctx.actual)
    if nonfinite.all() and ctx.actual.ndim == 2:
        yield Alternative(
            "nothing is written (NaN or infinity everywhere): a grid of N // block tiles, "
            "with N < block?",
            Bound(ctx.right.center, np.full_like(ctx.right.radius, np.inf)),
            "a result that is NaN everywhere fits a computed NaN as well",
            probe="blocks",
        )
        return
    for words, region in _trailing_regions(ctx.right.center.shape, ctx.options.tile):
        if not np.array_equal(nonfinite, region):
            continue
        radius = np.where(region, np.inf, ctx.right.radius)
        yield Alternative(
            f"{words} are never written (NaN or infinity there, the rest right): a grid that "
            "stops at the last full block, or a store masked too much?",
            Bound(ctx.right.center, radius),
        )


def _stale_weights(ctx: Context) -> Iterator[Alternative]:
    """dL_dx = dL_do @ w_new.T: a fused step that updates w before the backward pass."""
    a = {name: array.astype(np.float64) for name, array in ctx.case.arrays.items()}
    step = bounds.step_bounds(
        a["x"], a["w"], a["target"], ctx.case.learning_rate, ctx.arith,
        matmul=numpy_matmul, tie=ctx.options.tie, reduction=ctx.options.loss_reduction,
    )  # fmt: skip
    w_new = step.w_new.center
    stale = bounds.grad_x_bound(step.dL_do, w_new, ctx.arith, matmul=numpy_matmul)
    at_w = bounds.grad_x_bound(step.dL_do, a["w"], ctx.arith, matmul=numpy_matmul)
    # The kinks' share of the right radius (a tie's dL_do is anything in [-1, 1]) holds for
    # w_new as for w, up to the step: |w_new| <= |w| + |lr dL_dw|.
    kinks = np.maximum(step.dL_dx.radius - at_w.radius, 0.0)
    growth = 1.0 + float(np.max(np.abs(w_new - a["w"]) / np.maximum(np.abs(a["w"]), 1e-300)))
    yield Alternative(
        "dL_dx = dL_do @ w_new.T: the fused step updates w before it computes dL_dx",
        Bound(stale.center, stale.radius + kinks * min(growth, 2.0) + step.w_new.radius.sum()),
    )


#: What one more call adds to each result where gradients accumulate.
_ONE_MORE = {
    "w_new": "lr * dL_dw further",
    "b_new": "lr * dL_db further",
    "dL_dx": "one more dL_dx",
    "dL_dw": "one more dL_dw",
    "dL_db": "one more dL_db",
}


def _accumulated(ctx: Context) -> Iterator[Alternative]:
    """The second of two identical calls adds one right gradient to the first (a ``.grad``
    never zeroed: ``second = first + g``, whatever earlier calls left in ``first``).

    ``ctx.actual`` is the second call's result, ``ctx.earlier`` the first's. ``second - first``
    is held to the gradient's bound (for ``w_new``, ``first - second`` to ``lr * dL_dw``'s),
    widened by the rounding of both results (``u_out |first| + u_out |second|``). Only where the
    gradient is known not to be zero does "one more gradient" differ from noise: at a kink the
    bound admits anything small, a jitter included.
    """
    if ctx.earlier is None or ctx.earlier.shape != ctx.actual.shape:
        return
    first, second, right = ctx.earlier, ctx.actual, ctx.right
    if first.shape != right.center.shape:
        return  # a wrong shape twice, differently: no gradient to see
    if ctx.name in _UPDATED:
        w = ctx.case.arrays[_UPDATED[ctx.name]].astype(np.float64)
        added, gradient = first - second, Bound(w - right.center, 2 * right.radius)
    else:
        added, gradient = second - first, Bound(right.center, right.radius)
    rounding = ctx.arith.u_out * (np.abs(first) + np.abs(second)) * 2
    widened = Bound(gradient.center, gradient.radius + rounding)
    nonzero = np.abs(widened.center) > widened.radius
    if not (np.all(np.isfinite(added)) and np.any(nonzero & (added != 0))):
        return
    # second = first + added (first - added for an update), added inside the widened gradient.
    sign = -1.0 if ctx.name in _UPDATED else 1.0
    yield Alternative(
        f"{ctx.name} by {_ONE_MORE[ctx.name]}",
        Bound(first + sign * widened.center, widened.radius),
    )


# --------------------------------------------------------------------------------------------
# The registries.
# --------------------------------------------------------------------------------------------

#: A constant multiple of the result (or of the step, for w_new).
_SCALES = (Diagnosis.SCALED, Diagnosis.SCALED_STEP)

#: Every pattern, one per kind (the order decides nothing: the module docstring's rules do).
PATTERNS: tuple[Pattern, ...] = (
    Pattern(Diagnosis.TIE_CONVENTION, _ALL, _tie_conventions, probe="ties"),
    Pattern(Diagnosis.TRANSPOSED, _MATRICES, _transposed, reads=frozenset({VALUES, SHAPE})),
    Pattern(Diagnosis.SIGN_FLIP, _ALL, _sign_flip, refines=_SCALES),
    Pattern(Diagnosis.MEAN_INSTEAD_OF_SUM, _ALL, _mean, refines=_SCALES),
    Pattern(Diagnosis.WRONG_LOSS, frozenset({"L", "loss", "dL_do"}), _wrong_losses),
    Pattern(
        Diagnosis.MISPLACED_TERMS,
        frozenset({"L"}),
        _shifted_pairs,
        functions=frozenset({"loss"}),
    ),
    Pattern(Diagnosis.BIAS, frozenset({"output"}), _bias, functions=frozenset({"forward"})),
    Pattern(
        Diagnosis.BIAS_TWICE,
        frozenset({"output", "loss", "dL_dx", "dL_dw", "dL_db"}),
        _bias_twice,
        functions=frozenset({"forward", "step"}),
    ),
    Pattern(
        Diagnosis.BIAS_AXIS,
        frozenset({"output", "dL_db"}),
        _bias_axis,
        functions=frozenset({"forward", "grad_b"}),
        reads=frozenset({VALUES, SHAPE}),
    ),
    Pattern(
        Diagnosis.BIAS_NOT_UPDATED,
        frozenset({"b_new"}),
        _bias_not_updated,
        functions=frozenset({"step"}),
        refines=_SCALES,
    ),
    Pattern(Diagnosis.WEIGHT_DECAY, _STEPS, _weight_decay),
    Pattern(Diagnosis.NORMALIZED_STEP, _STEPS, _normalized_step),
    Pattern(Diagnosis.SCALED_STEP, _STEPS, _scaled_step),
    Pattern(Diagnosis.SCALED, _ALL - _STEPS, _scaled),
    Pattern(Diagnosis.UPSTREAM_IGNORED, frozenset({"dL_dx", "dL_dw", "dL_db"}), _upstream_ignored),
    Pattern(Diagnosis.STALE_WEIGHTS, frozenset({"dL_dx"}), _stale_weights, frozenset({"step"})),
    Pattern(Diagnosis.OFF_BY_ONE, _ALL, _cut_short),
    Pattern(
        Diagnosis.REDUCED_PRECISION,
        _ALL,
        _lower_precision,
        reads=frozenset({VALUES, NONFINITE}),
        rounding=True,
    ),
    Pattern(Diagnosis.UNWRITTEN, _MATRICES, _unwritten, reads=frozenset({NONFINITE})),
    Pattern(
        Diagnosis.ACCUMULATED_GRADIENT,
        frozenset(_ONE_MORE),
        _accumulated,
        reads=frozenset({REPEAT}),
        stateful=True,
    ),
)

#: Every verdict the judges decide themselves.
VERDICTS: tuple[Verdict, ...] = (
    Verdict(
        Diagnosis.WRONG_SHAPE, "judging._findings.check_result (and _invoke: a malformed reply)"
    ),
    Verdict(Diagnosis.WRONG_DTYPE, "judging._findings.check_result"),
    Verdict(Diagnosis.NAN, "judging._findings.check_result: a non-finite result"),
    Verdict(Diagnosis.MISMATCH, "judging._findings.check_result: a result outside its bound"),
    Verdict(Diagnosis.INPUT_MUTATED, "judging._judge.judge_function"),
    Verdict(Diagnosis.NONDETERMINISTIC, "judging._judge.judge_function", stateful=True),
    Verdict(Diagnosis.RAISED, "judging._judge.failure"),
    Verdict(Diagnosis.TIMED_OUT, "judging._judge.failure"),
    Verdict(Diagnosis.CRASHED, "judging._judge.failure"),
    Verdict(Diagnosis.CONVEXITY, "judging._judge.judge_identities"),
    Verdict(Diagnosis.INCONSISTENT, "judging._judge.judge_consistency"),
)


def refined(fitted: list[tuple[Pattern, Alternative]]) -> list[Diagnosis]:
    """The distinct kinds of ``fitted``, without those that another fitting alternative
    refines (a sign flip is a scale of -1: where both fit, the scale adds nothing)."""
    general = {kind for p, a in fitted for kind in (*p.refines, *a.refines)}
    kinds: list[Diagnosis] = []
    for pattern, _ in fitted:
        if pattern.kind not in kinds and pattern.kind not in general:
            kinds.append(pattern.kind)
    return kinds


@dataclasses.dataclass(frozen=True)
class Structure:
    """A structural reading of a failing result, made on probes (``_structure``): what the
    candidate actually computes, against the contract.

    Attributes:
      function: the check whose result it reads.
      results: the results it reads (a wrong one of these is read).
      read: the reading (probe calls, then the difference from the contract, named).
      names: the causes only a structural reading names (each cause has one home: a pattern,
        a verdict, or these); it also names causes whose pattern exists (a map with every term
        times 0.5 is ``scaled``).
    """

    function: str
    results: frozenset[str]
    read: Reader
    names: frozenset[Diagnosis] = frozenset()


#: The causes only a term map names (misplaced terms have a pattern too: a loss's shifted
#: pairs).
_TERMS = frozenset({Diagnosis.EXTRA_TERMS, Diagnosis.NOT_COMPUTED, Diagnosis.OFFSET})

#: Every structural reading, by the check and results it reads (rule 0 of the docstring: an
#: exact difference read here names the cause before any pattern).
STRUCTURES: tuple[Structure, ...] = (
    Structure("forward", frozenset({"output"}), read_term_map, _TERMS),
    Structure("grad_x", frozenset({"dL_dx"}), read_term_map, _TERMS),
    Structure("grad_w", frozenset({"dL_dw"}), read_term_map, _TERMS),
    Structure("grad_b", frozenset({"dL_db"}), read_term_map, _TERMS),
    Structure(
        "loss_grad", frozenset({"dL_do"}), read_branch_table, frozenset({Diagnosis.WRONG_BRANCH})
    ),
    Structure("loss", frozenset({"L"}), read_loss_weights),
    Structure("update", frozenset({"w_new", "b_new"}), read_update),
    Structure("step", frozenset({"w_new", "b_new"}), read_step_update),
    Structure("step", frozenset({"loss", "dL_dx", "dL_dw", "dL_db"}), read_step_parts),
)


def structure_of(function: str, result: str) -> Structure | None:
    """The structural reading of ``result`` of check ``function``, if the registry has one."""
    return next((s for s in STRUCTURES if s.function == function and result in s.results), None)


#: The patterns by kind: each kind has one.
BY_KIND: dict[Diagnosis, Pattern] = {pattern.kind: pattern for pattern in PATTERNS}

#: Kinds that only show across calls: probed for after a failure nothing explains.
STATEFUL: frozenset[Diagnosis] = frozenset(
    {pattern.kind for pattern in PATTERNS if pattern.stateful}
    | {verdict.kind for verdict in VERDICTS if verdict.stateful}
)


def decide(survivors: list[Diagnosis]) -> list[Diagnosis]:
    """The kinds left to name among those a probe did not contradict (rule 4): a single one
    that is not ``rounding`` beats every rounding one; otherwise all of them."""
    structural = [kind for kind in survivors if not BY_KIND[kind].rounding]
    return structural if len(survivors) > 1 and len(structural) == 1 else survivors


def in_order(kinds: list[Diagnosis]) -> list[Diagnosis]:
    """``kinds`` in ``Diagnosis`` order: how candidates are listed, whatever the registry's."""
    order = list(Diagnosis)
    return sorted(kinds, key=order.index)


__all__ = [
    "EVIDENCE_OF",
    "PATTERNS",
    "VERDICTS",
    "Alternative",
    "Context",
    "Pattern",
    "Verdict",
    "decide",
    "declaring",
    "in_order",
]
