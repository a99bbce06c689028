"""Three explanations of a wrong result by its structure, in plain numpy: a **branch table** for
``loss_grad``, a **weight table** for the loss, and a **per-parameter fit** of an SGD step. Each
names a bug by what the values do (which branch, which elements, which parameter, which
constant), never by a name that only half fits.

**1. loss_grad (``loss_grad_table``).** ``probe_scenarios`` lists K = 19 pairs (output, target),
exact in every dtype the error model covers (at most 3 significant bits, normal numbers even in
float16): 8 with output > target, their 8 mirror images with output < target and 3 ties
(output = target = 1.25, -0.75, 0). Within each branch ``|output - target|`` takes 0.25, 0.5,
0.75 (below 1), 2.5, 3, 3.5 (above 1: a squared error's or a Huber gradient's shape shows) and
a near tie ``2^e`` (``e`` = -40, -30, -30, -14 for float64, float32, bfloat16, float16: below
the epsilons people add), with output and target of both signs and of opposite signs
(``sign(output)`` and ``sign(target)`` part ways). Call k gives position p = i * O + j the
scenario ``(p + k) mod K``: after K calls every position has seen every scenario, so the table
is read per position (a bug in one column or one row shows), and every call mixes scenarios.
Two more calls check that the function is element-wise: every position at scenario 0, then
position p at scenario ``(7 p + 3) mod K`` (other neighbours, another mix); a value that moved
says the function is not element-wise, and that is then all it says. **Calls: K + 2 = 21**,
whatever N and O.

Positions whose 19 values agree form a group (one group: no position dependence); each group's
branches (output > target, output < target, ties) are read as a constant, ``k (output -
target)`` or ``k clip(output - target, -1, 1)``, else split by the near tie, by the sign of
output or of target into parts that are, else "varies". A model fits when one k lies within
every element's tolerance ``2 gamma_6(u) |v| + 2 tiny``: a value the candidate computed with
up to four roundings (a constant such as 1/(N*O), a product, a cast through float32), read by at
most two float64 operations of ours, and possibly flushed or subnormal (the absolute term).
Fitted constants are named by the dims (``dim_constants``: -1/(N*O), 1/N, 2, ...) when the
interval of k holds one. Where both branches are ``+c`` / ``-c``, the ties are judged against
``c`` times the contract: the pinned convention's ``c * tie``, or (unpinned) anything in
``[-|c|, |c|]``.

**2. The loss (``loss_weights``).** The loss is read as ``L = sum_p w_p phi(output_p -
target_p)``, every probe with exact residuals on targets that move from probe to probe. First
all residuals +1 (the total T). Where a probe of one row and one of one column each resolve a
single element (``_resolves``: ``2 k gamma_{k+3}(u) < 1`` for k = O and k = N; k <= 9 in
bfloat16, 30 in float16), +1 on one row at a time (N calls; none when N = 1) and on one column
at a time (O calls; none when O = 1) give the weights as rank one, ``w_ij = R_i C_j / T`` (the
mean, a column, a row, all but a row), snapped to named constants; phi is read at the element
of largest estimated weight, alone at +1, -2 and +0.5 (|r| gives 1 : 2 : 0.5, r^2 1 : 4 :
0.25, Huber 0.5 : 1.5 : 0.125, a signed r 1 : -2 : 0.5: linearity in |r| and its sign); one
more probe puts distinct magnitudes with mixed signs on every element; then the reading is
*verified* on every probe. If it fails (or rows are too long to resolve one element), ``L =
max |r|`` is tried on every probe (the row probes are not additive), then every element is read
alone (N*O calls; phi from 2 more where a counting element had not been found) and verified.
**Calls: N + O + 5** (a dim of 1 saves its probes); **N*O + 4 + ...** where the weights are not
rank one or the dims are past ``_resolves``.

Every decision is a bound, never a tolerance picked by eye: a hypothesis (exact named weights,
``phi``) fits when, in **every** probe, ``|L - S| <= gamma_{K+3}(u) sum |w_p phi(r_p)| +
(K + 3) tiny`` for its exact value ``S`` (float64, ``math.fsum``) of K non-zero terms: any
summation order (Higham 3.1), one rounding for the weight (1/N is not exact in binary), one for
its product or division, one for ``phi`` (``|output - target|`` is exact on these data; the
squares and halves are too), flushes included. A weight that is not a named constant is used
as estimated and the bound is widened by its estimation error: such a reading is reported with
``exact=False``. phi's ratios are taken from one element alone (``2 gamma_4(u)`` each side).

**3. The step (``parameter_updates``).** No calls: the parameters, their gradients and the new
values are given. For each parameter ``s = p - p_new`` (float64) is fitted as ``c * m`` by
interval intersection. With ``|s - c m| <= gamma_n(u) (|p| + |base| + |c m|) + A`` (the update's
n roundings and ``A = (n + |lr|) tiny`` for flushes) and ``|c m| <= |s - base| + |s - base - c
m|``, every element gives ``|s - base - c m| <= (gamma_n (|p| + |base| + |s - base|) + A) / (1 -
gamma_n)``, an interval of c (elements with m = 0 must lie within that radius). The contract
is checked on the error model's own bound, ``gamma_3(u) (|p| + |lr g|) + (3 + |lr|) tiny``.
Models: ``m = lr g`` (a scaled step, n = 4: the scale's own rounding), a weight decay ``m = lr
p`` on ``base = lr g`` (n = 5, lambda > 0), Adam's first step ``m = lr sign(g)`` (n = 16; where
that fails, widened by ``1e-7 / |g|`` for its eps and 2^-12 for ``1 - beta2`` rounded in
float32, then ``exact=False``).

A constant is **named only where the data single it out**: the interval holds it and no other
decimal as short (``_short``, ``_singles_out``): 1 significant digit, 2 only in an interval
narrower than 1e-3 relatively (2-digit decimals are 1% to 10% apart), ``lr`` (lr applied
twice) only with no shorter decimal beside it, 0 only within 0.1. [0.070, 0.133] names nothing
(0.07, 0.08, 0.09 and 0.1 are all in it); [0.144, 0.256] names 0.2. A step small against the
parameter's rounding gives a wide interval, and is said as such ("c in [lo, hi]: too wide to
name c"), or as its middle with the interval where it is narrow but holds no short decimal;
both ``exact=False``.

A reading of **all parameters at once** (lr applied twice, one scale, one sign step, clipping)
needs one parameter's own interval to single it out and the others to agree with it (their
intervals meet): an intersection of intervals that each hold several decimals singles one out
by chance. Clipping by the **global norm** is one ``c = max_norm / G``, ``G = ||(dL_dw,
dL_db)||`` (float64): the candidate's own norm and division (the squares and sums, ``K + 2 P``
roundings for K elements in P parameters, in the error model's default accumulation,
``bounds.ACCUMULATIONS``: float32 for bfloat16 and float16; then the norm stored, its square
root, max_norm cast and the division in the dtype: ``delta``) put max_norm in ``[c_lo G (1 -
delta'), c_hi G (1 + delta')]``, ``delta' = delta / (1 - delta)``; where no short max_norm lies
there, the interval is widened above by torch's ``+ 1e-6`` on the norm and a fit that needs it
is ``exact=False``. Per-parameter clipping has ``c_p = max_norm / ||g_p||`` for every
parameter whose update is not right, one short max_norm for all, and every right one with
``||g_p|| <= max_norm``. Where a scale is a decimal with fewer digits than the max_norm the
scale is named first (the simpler reading); every other reading that is singled out too is
said after it ("or ...: not told apart here").

**Limits: what it cannot tell apart.** loss_grad is known on the 19 scenarios only: a
threshold between them, or an epsilon below ``2^e``, is invisible, and an epsilon is located
only between ``2^e`` and 0.25; a normalisation whose denominator is the same on every input
(``seed / sum |seed| = seed / (N*O)``) *is* a mean and is named so; with N*O = 1 no mean, no
position and no neighbour can show. The loss is known on its probes: a phi that agrees with
``|r|`` at 0.25 ... 3.5 passes; ``max`` and ``sum`` agree when N*O = 1; a weight off by less than
its probe's bound (about ``gamma_{k+3}(u) k`` of one element, k the row, column or N*O terms)
is read as the named one. A step: a weight decay with ``lr lambda |p|`` below the update's
rounding is not seen (lambda = 0.01 in bfloat16 at lr = 0.05), nor any step below it (p_new = p
is then "not updated, or a step of at most ..."); in half precision with a small lr, b's four
elements rarely pin c down, so global and per-parameter clipping are read from w alone and may
both be said, or only the scale of w named; a scale and a clip whose max_norm is as short are
both said; the sign step and a scaled step agree where every ``|g|`` is equal; with one
parameter, global and per-parameter clipping are one reading; a c equal to lr is read as lr
applied twice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from ... import bounds

#: ``call(output, target)``: the candidate's function on float64 arrays exactly representable
#: in the dtype (the caller casts them), its result as float64, or None where it gave none.
Call = Callable[[np.ndarray, np.ndarray], np.ndarray | None]

#: The vocabulary of ``Difference.kind``.
KINDS: dict[str, str] = {
    "sign_flip": "the sign is flipped",
    "scaled": "every value times one constant",
    "mean": "every value times 1/N, 1/O or 1/(N*O): a mean where the contract sums",
    "flipped_mean": "the sign flipped and a mean: -1/N, -1/O or -1/(N*O) times the right value",
    "wrong_loss": "another loss's value or gradient (squared error, Huber, max, no abs)",
    "tie_convention": "ties take another value than the pinned convention (or leave [-1, 1])",
    "nan": "NaN or infinity where the contract is finite",
    "epsilon": "an epsilon moves the branch point: sign(output - target +- eps)",
    "branch": "a branch of loss_grad returns the wrong value (no scale of the contract)",
    "ignores_input": "the result ignores the target or the output",
    "partial": "only some elements (a column, a row) are right, summed or weighted",
    "not_elementwise": "loss_grad's value at one position depends on the other positions",
    "not_weighted_sum": "L is no weighted sum of a function of output - target, nor a max",
    "no_result": "a probe call gave no result (raised, or returned the wrong shape)",
    "scaled_step": "p - p_new = c * lr * dL_dp for a c other than 1",
    "weight_decay": "p - p_new = lr * (dL_dp + lambda * p)",
    "normalized_step": "p - p_new = c * lr * sign(dL_dp): an adaptive optimizer's first step",
    "clipped_global_norm": "every step scaled by max_norm / ||(all gradients)||",
    "clipped_norm": "each parameter's step scaled by max_norm / ||its gradient||",
    "update": "an update that fits none of the known alternatives",
}

_FLOAT64_SLACK = 1.0 + 2.0**-40


@dataclasses.dataclass(frozen=True)
class Difference:
    """One explained difference from the contract.

    Attributes:
      kind: one of ``KINDS``.
      text: the explanation in words, one line.
      value: the fitted constant (a scale, a tie value, lambda, max_norm), if any.
      parameter: which parameter an update difference is about (None: all, or not an update).
      exact: the reading holds within the rounding bound of the named formula; False where it
        holds only within a widened bound (an estimated constant, an absorbed epsilon).
    """

    kind: str
    text: str
    value: float | None = None
    parameter: str | None = None
    exact: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")


# --------------------------------------------------------------------------------------------
# Constants named by the dims.
# --------------------------------------------------------------------------------------------


class Reading(NamedTuple):
    """``sign * num / den`` (or ``sign * num`` with ``times``, num a dim), with the dim labels
    of ``den`` (or of ``num``)."""

    sign: int
    num: int
    den: int
    labels: tuple[str, ...] = ()
    times: bool = False

    def fraction(self) -> Fraction:
        return Fraction(self.sign * self.num, self.den)

    def render(self, label: str, plus: bool = False) -> str:
        sign = "-" if self.sign < 0 else ("+" if plus and self.sign > 0 else "")
        if self.sign == 0:
            return "0"
        if self.times:
            return f"{sign}{label}"
        if self.den == 1:
            return f"{sign}{self.num}"
        wrapped = f"({label})" if "*" in label else label
        return f"{sign}{self.num}/{wrapped}"


@dataclasses.dataclass(frozen=True)
class Constant:
    """A fitted constant: its value and, where it is one, its readings by the dims (first the
    simplest); a plain short decimal has none."""

    value: float
    readings: tuple[Reading, ...] = ()

    def number(self, plus: bool = False) -> str:
        """The value as a number: ``+1/20``, ``-1``, ``0``, ``0.5``."""
        if self.readings:
            f = self.readings[0].fraction()
            if f == 0:
                return "0"
            text = str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
            return ("+" if plus and f > 0 else "") + text
        return _num(self.value, plus)

    def symbol(self, plus: bool = False) -> str:
        """The value by the dims: ``1/(N*O)``, ``-1/N (= -1/O here)``; else ``number``."""
        names: list[str] = []
        for reading in self.readings:
            for label in reading.labels or ("",):
                name = reading.render(label, plus)
                if name not in names:
                    names.append(name)
        if not names:
            return self.number(plus)
        rest = f" (= {' = '.join(names[1:])} here)" if len(names) > 1 else ""
        return names[0] + rest

    def mean(self) -> Reading | None:
        """The reading ``+-1/F`` for a dim product F > 1, if the value is one."""
        for reading in self.readings:
            if reading.num == 1 and reading.den > 1 and not reading.times:
                return reading
        return None

    def reading(self, num: int, den_label: str | None = None) -> Reading | None:
        """The reading with numerator ``num`` (and a dim ``den_label`` among its labels;
        ``""`` for den 1), if any."""
        for reading in self.readings:
            if reading.times or reading.num != num:
                continue
            if den_label is None or (den_label == "" and reading.den == 1):
                return reading
            if den_label in reading.labels:
                return reading
        return None


def _dim_words(reading: Reading) -> str:
    """The dims of a reading's divisor: ``N*O``, or ``O = N*O`` where they coincide."""
    return " = ".join(reading.labels)


def _num(value: float, plus: bool = False) -> str:
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):+d}" if plus else f"{int(value)}"
    return f"{value:+.4g}" if plus else f"{value:.4g}"


@functools.lru_cache(maxsize=64)
def dim_constants(n: int, o: int) -> tuple[Constant, ...]:
    """Constants named by the dims, simplest first: 0, +-1, +-1/F, +-2, +-2/F (F > 2), +-F,
    for F in N, O, N*O (> 1). Readings that coincide on these dims are one constant with all
    of them (1/N = 1/O when N = O)."""
    factors: dict[int, list[str]] = {}
    for label, size in (("N", n), ("O", o), ("N*O", n * o)):
        if size > 1:
            factors.setdefault(size, []).append(label)
    readings = [Reading(0, 0, 1)]
    for sign in (1, -1):
        readings.append(Reading(sign, 1, 1))
    for sign in (1, -1):
        readings += [Reading(sign, 1, f, tuple(labels)) for f, labels in factors.items()]
    for sign in (1, -1):
        readings.append(Reading(sign, 2, 1))
    for sign in (1, -1):
        readings += [Reading(sign, 2, f, tuple(ls)) for f, ls in factors.items() if f > 2]
    for sign in (1, -1):
        readings += [Reading(sign, f, 1, tuple(ls), times=True) for f, ls in factors.items()]
    by_value: dict[Fraction, list[Reading]] = {}
    for reading in readings:
        by_value.setdefault(reading.fraction(), []).append(reading)
    return tuple(Constant(float(v), tuple(rs)) for v, rs in by_value.items())


def name_constant(value: float, n: int, o: int, *, rel: float = 1e-9) -> Constant:
    """``value`` by the dims (``dim_constants``) where one is within ``rel`` of it, else as a
    plain number: ``name_constant(-0.05, 5, 4).symbol() == "-1/(N*O)"``."""
    return _name_in(value - rel * abs(value), value + rel * abs(value), n, o) or Constant(value)


def short_decimal(lo: float, hi: float, digits: int = 2) -> float | None:
    """The decimal with the fewest significant digits (at most ``digits``) in ``[lo, hi]``,
    nearest the middle; 0 where the interval holds 0."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return None
    if lo <= 0.0 <= hi:
        return 0.0
    mid = 0.5 * (lo + hi)
    for d in range(1, digits + 1):
        step = 10.0 ** (math.floor(math.log10(abs(mid))) - d + 1)
        base = round(mid / step)
        found = []
        for k in (-1, 0, 1):
            candidate = float(f"{(base + k) * step:.{d}g}")
            if lo <= candidate <= hi:
                found.append(candidate)
        if found:
            return min(found, key=lambda c: abs(c - mid))
    return None


def _digits(value: float) -> int:
    for d in range(1, 18):
        if float(f"{value:.{d - 1}e}") == value:
            return d
    return 17


def _name_in(lo: float, hi: float, n: int, o: int, digits: int = 2) -> Constant | None:
    """The dims constant in ``[lo, hi]`` where it is the only one there, else the shortest
    decimal in it (a number, no reading: where 1/N and 1/O both fit, neither is named)."""
    if not (lo <= hi):
        return None
    found = [c for c in dim_constants(n, o) if lo <= c.value <= hi]
    if len(found) == 1:
        return found[0]
    decimal = short_decimal(lo, hi, digits)
    return None if decimal is None else Constant(decimal)


# --------------------------------------------------------------------------------------------
# Regions of an (N, O) array, in words.
# --------------------------------------------------------------------------------------------


def _indices(word: str, indices: Iterable[Any]) -> str:
    items = [int(i) for i in indices]
    if len(items) == 1:
        return f"{word} {items[0]}"
    if items == list(range(items[0], items[-1] + 1)):
        return f"{word}s {items[0]}..{items[-1]}"
    shown = ", ".join(str(i) for i in items[:8])
    return f"{word}s {shown}" + (f" and {len(items) - 8} more" if len(items) > 8 else "")


def region(mask: np.ndarray) -> tuple[str, str]:
    """A boolean (N, O) mask in words, and where the rest is: ``("column 0", "in the other
    columns")``, ``("rows 1..4", "in the other rows")``, ``("positions (0, 0), (2, 1)",
    "elsewhere")``."""
    mask = np.asarray(mask, bool)
    if mask.all():
        return "every position", "nowhere"
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    rectangle = np.array_equal(mask, np.outer(rows, cols))
    if rectangle and rows.all():
        return _indices("column", np.flatnonzero(cols)), "in the other columns"
    if rectangle and cols.all():
        return _indices("row", np.flatnonzero(rows)), "in the other rows"
    if rectangle and rows.sum() == 1 and cols.sum() == 1:
        return f"position ({int(np.argmax(rows))}, {int(np.argmax(cols))})", "elsewhere"
    if rectangle:
        rows_words = _indices("row", np.flatnonzero(rows))
        return f"{rows_words} of {_indices('column', np.flatnonzero(cols))}", "elsewhere"
    positions = list(zip(*np.nonzero(mask), strict=True))
    shown = ", ".join(f"({int(i)}, {int(j)})" for i, j in positions[:6])
    more = f" and {len(positions) - 6} more" if len(positions) > 6 else ""
    return f"position{'s' if len(positions) > 1 else ''} {shown}{more}", "elsewhere"


# --------------------------------------------------------------------------------------------
# 1. The branch table of loss_grad.
# --------------------------------------------------------------------------------------------

#: log2 of the near tie's |output - target| by dtype (module docstring).
_NEAR_EXPONENT = {"float64": -40, "float32": -30, "bfloat16": -30, "float16": -14}

_BRANCH_WORDS = {"above": "where output > target", "below": "where output < target"}


class Scenario(NamedTuple):
    """One probe value pair; ``near``: ``|output - target|`` is the near tie ``2^e``."""

    output: float
    target: float
    near: bool = False

    @property
    def residual(self) -> float:
        return self.output - self.target

    @property
    def branch(self) -> str:
        r = self.residual
        return "above" if r > 0 else "below" if r < 0 else "tie"


def probe_scenarios(dtype: Any) -> tuple[Scenario, ...]:
    """The K = 19 (output, target) pairs of the branch probes (module docstring)."""
    tiny = 2.0 ** _NEAR_EXPONENT[bounds.dtype_name(dtype)]
    above = [
        Scenario(1.5, 1.0),
        Scenario(-0.5, -0.75),
        Scenario(0.25, -0.5),
        Scenario(3.0, 0.5),
        Scenario(-1.0, -4.0),
        Scenario(2.0, -1.5),
        Scenario(3 * tiny, 2 * tiny, True),
        Scenario(-2 * tiny, -3 * tiny, True),
    ]
    below = [Scenario(s.target, s.output, s.near) for s in above]
    ties = [Scenario(1.25, 1.25), Scenario(-0.75, -0.75), Scenario(0.0, 0.0)]
    return (*above, *below, *ties)


class _Model(NamedTuple):
    """How one branch (or part of one) reads: ``constant`` / ``linear`` (k r) / ``clipped``
    (k clip(r, -1, 1)) with k in ``[low, high]``, ``nan``, or ``varies``."""

    form: str
    low: float = math.nan
    high: float = math.nan
    named: Constant | None = None
    values: tuple[float, ...] = ()

    def contains(self, value: float) -> bool:
        return self.form == "constant" and self.low <= value <= self.high

    @property
    def k(self) -> float:
        return self.named.value if self.named is not None else 0.5 * (self.low + self.high)


class _Branch(NamedTuple):
    """A branch's reading: one model, or parts (condition words, model) of a split."""

    model: _Model | None
    split: str = ""
    parts: tuple[tuple[str, _Model], ...] = ()

    def constant(self) -> _Model | None:
        return self.model if self.model is not None and self.model.form == "constant" else None


class _Group(NamedTuple):
    mask: np.ndarray
    row: np.ndarray
    above: _Branch
    below: _Branch
    tie: _Branch


@dataclasses.dataclass(frozen=True)
class BranchRow:
    """One group of positions and what loss_grad returns there, per branch, in words."""

    region: str
    above: str
    below: str
    tie: str


@dataclasses.dataclass(frozen=True)
class BranchTable:
    """The branch table of one ``loss_grad``.

    Attributes:
      calls: probe calls made.
      differences: the explained differences from the contract (empty: it matches).
      elementwise: False where the value at a position depends on the others (then
        ``differences`` says only that, and ``rows`` is empty).
      rows: the table, one row per group of positions that behave alike.
    """

    calls: int
    differences: tuple[Difference, ...]
    elementwise: bool = True
    rows: tuple[BranchRow, ...] = ()

    def lines(self) -> list[str]:
        """The differences in words (none when loss_grad matches the contract)."""
        return [d.text for d in self.differences]

    def table_lines(self) -> list[str]:
        """The table in words, one line per group of positions."""
        return [
            f"{r.region}: {r.above} where output > target, {r.below} where output < target, "
            f"{r.tie} at ties"
            for r in self.rows
        ]


def _tolerance(u: float) -> float:
    return bounds.gamma(6, u)


def _interval(
    values: np.ndarray, model: np.ndarray, tol: float, tiny: float
) -> tuple[float, float] | None:
    """The k with ``|v - k m| <= 2 tol |v| + 2 tiny`` for every element, or None."""
    delta = 2 * tol * np.abs(values) + 2 * tiny
    zero = model == 0
    if np.any(np.abs(values[zero]) > delta[zero]):
        return None
    if not np.any(~zero):
        return -math.inf, math.inf
    v, d, m = values[~zero], delta[~zero], model[~zero]
    a, b = (v - d) / m, (v + d) / m
    lo, hi = float(np.max(np.minimum(a, b))), float(np.min(np.maximum(a, b)))
    return (lo, hi) if lo <= hi else None


def _fit(
    values: np.ndarray, residuals: np.ndarray, tol: float, tiny: float, dims: tuple[int, int]
) -> _Model | None:
    if np.all(np.isnan(values)):
        return _Model("nan")
    if not np.all(np.isfinite(values)):
        return None
    shapes = (
        ("constant", np.ones_like(residuals)),
        ("linear", residuals),
        ("clipped", np.clip(residuals, -1.0, 1.0)),
    )
    for form, model in shapes:
        found = _interval(values, model, tol, tiny)
        if found is not None:
            lo, hi = found
            return _Model(form, lo, hi, _name_in(lo, hi, *dims, digits=3))
    return None


def _split_key(split: str, s: Scenario) -> int:
    if split == "near":
        return int(s.near)
    return int(np.sign(s.output if split == "output" else s.target))


def _split_words(split: str, key: int, scenarios: Sequence[Scenario]) -> str:
    if split == "near":
        sizes = [abs(s.residual) for s in scenarios]
        return (
            f"if |output - target| <= {max(sizes):.3g}"
            if key
            else f"if |output - target| >= {min(sizes):.3g}"
        )
    relation = {1: ">", -1: "<", 0: "="}[key]
    return f"if {split} {relation} 0"


def _read_branch(
    values: np.ndarray,
    scenarios: Sequence[Scenario],
    tol: float,
    tiny: float,
    dims: tuple[int, int],
) -> _Branch:
    residuals = np.array([s.residual for s in scenarios])
    model = _fit(values, residuals, tol, tiny, dims)
    if model is not None:
        return _Branch(model)
    for split in ("near", "output", "target"):
        keys = np.array([_split_key(split, s) for s in scenarios])
        distinct = sorted(set(keys.tolist()), reverse=True)
        if len(distinct) < 2:
            continue
        parts = []
        for key in distinct:
            chosen = keys == key
            part = _fit(values[chosen], residuals[chosen], tol, tiny, dims)
            if part is None:
                break
            members = [s for s, c in zip(scenarios, chosen, strict=True) if c]
            parts.append((_split_words(split, key, members), part))
        else:
            return _Branch(None, split, tuple(parts))
    shown = tuple(dict.fromkeys(float(v) for v in values))
    return _Branch(_Model("varies", values=shown))


def _k_text(k: Constant | None, value: float) -> tuple[str, str]:
    """A coefficient as a prefix and a divisor: ``("2", " / (N*O)")``, ``("", "")`` for 1."""
    if k is not None and k.readings:
        reading = k.readings[0]
        sign = "-" if reading.sign < 0 else ""
        if reading.times:
            return f"{sign}{reading.labels[0]}", ""
        num = "" if reading.num == 1 else f"{reading.num}"
        if reading.den == 1:
            return (sign + num if num else sign), ""
        label = reading.labels[0]
        return (sign + num if num else sign), (f" / ({label})" if "*" in label else f" / {label}")
    if k is not None:
        return k.number(), ""
    return f"{value:.4g}", ""


def _formula_text(form: str, k: Constant | None, value: float) -> str:
    """``2 (output - target)``, ``clip(output - target, -1, 1) / (N*O)``."""
    prefix, divisor = _k_text(k, value)
    inner = "output - target" if form == "linear" else "clip(output - target, -1, 1)"
    if prefix in ("", "-") and not divisor:
        return f"{prefix}({inner})" if prefix == "-" and form == "linear" else f"{prefix}{inner}"
    if form == "linear":
        inner = f"({inner})"
    return f"{prefix} {inner}{divisor}" if prefix not in ("", "-") else f"{prefix}{inner}{divisor}"


def _model_text(model: _Model) -> str:
    if model.form == "constant":
        return model.named.number(plus=True) if model.named else _num(model.k, plus=True)
    if model.form in ("linear", "clipped"):
        return _formula_text(model.form, model.named, model.k)
    if model.form == "nan":
        return "NaN"
    shown = ", ".join(_num(v, plus=True) for v in model.values[:4])
    return f"values that vary ({shown}{', ...' if len(model.values) > 4 else ''})"


def _branch_text(branch: _Branch) -> str:
    if branch.model is not None:
        return _model_text(branch.model)
    return ", ".join(f"{_model_text(m)} {words}" for words, m in branch.parts)


def _close(a: np.ndarray, b: np.ndarray, tol: float, tiny: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= 2 * tol * np.maximum(np.abs(a), np.abs(b)) + 2 * tiny
    return near | (np.isnan(a) & np.isnan(b)) | ((a == b) & np.isinf(a))


def _ignored_input(group: _Group, scenarios: Sequence[Scenario], tol: float, tiny: float) -> str:
    """``sign(output)`` (or ``-sign(target)``, ...) at every scenario, or ``""``."""
    for name, other in (("output", "target"), ("target", "output")):
        signs = np.sign([getattr(s, name) for s in scenarios])
        for sign, words in ((1.0, ""), (-1.0, "-")):
            if np.all(_close(group.row, sign * signs, tol, tiny)):
                return f"{words}sign({name}) whatever the {other}: the {other} is ignored"
    return ""


def _one_formula(group: _Group, tol: float, tiny: float, dims: tuple[int, int]) -> _Model | None:
    """One ``k r`` or ``k clip(r)`` with the same k in both branches and 0 at ties."""
    a, b = group.above.model, group.below.model
    if a is None or b is None or a.form != b.form or a.form not in ("linear", "clipped"):
        return None
    lo, hi = max(a.low, b.low), min(a.high, b.high)
    if lo > hi:
        return None
    tie = group.tie.constant()
    if tie is None or not tie.contains(0.0):
        return None
    return _Model(a.form, lo, hi, _name_in(lo, hi, *dims, digits=3))


def _wrong_loss_text(model: _Model) -> str:
    formula = _formula_text(model.form, model.named, model.k)
    k = model.named
    flipped = model.k < 0
    sign_words = " with the sign flipped" if flipped else ""
    if model.form == "linear":
        if k is not None and (reading := k.reading(2, "")) is not None:
            return f"loss_grad returns {formula}: the squared error's gradient{sign_words}"
        if k is not None and k.reading(1, "") is not None:
            return (
                f"loss_grad returns {formula}: the gradient of half the squared error{sign_words}"
            )
        for num, words in ((2, "the squared error's mean"), (1, "half the squared error's mean")):
            reading = k.reading(num) if k is not None else None
            if reading is not None and reading.den > 1:
                return (
                    f"loss_grad returns {formula}: the gradient of {words} over "
                    f"{_dim_words(reading)} = {reading.den}{sign_words}"
                )
        return f"loss_grad returns {formula}: a multiple of output - target (a squared error's)"
    if k is not None and k.reading(1, "") is not None:
        return f"loss_grad returns {formula}: the smooth L1 / Huber gradient (beta = 1){sign_words}"
    reading = k.mean() if k is not None else None
    if reading is not None:
        return (
            f"loss_grad returns {formula}: the gradient of the smooth L1 loss's mean over "
            f"{_dim_words(reading)} = {reading.den} (F.smooth_l1_loss's default){sign_words}"
        )
    return f"loss_grad returns {formula}: a multiple of the smooth L1 / Huber gradient"


def _convention_name(value: float) -> str:
    names = [name for name, v in bounds.TIE_CONVENTIONS.items() if v == value]
    return names[0] if names else ""


def _tie_differences(
    group: _Group,
    scale: Constant | None,
    tie: float | None,
    scenarios: Sequence[Scenario],
    dims: tuple[int, int],
    tol: float,
    tiny: float,
) -> list[Difference]:
    values = group.row[[s.branch == "tie" for s in scenarios]]
    if not np.all(np.isfinite(values)):
        some = "" if np.all(~np.isfinite(values)) else " at some ties"
        what = "NaN" if np.any(np.isnan(values)) else "infinity"
        return [
            Difference(
                "nan",
                f"loss_grad returns {what} at ties (output == target){some}: 0 / 0, as "
                "(output - target) / |output - target| gives",
            )
        ]
    c = 1.0 if scale is None else scale.value
    text = _branch_text(group.tie)
    constant = group.tie.constant()
    if tie is not None:
        want = c * tie
        if constant is not None and constant.contains(want):
            return []
        convention = ""
        if constant is not None and c != 0:
            name = _convention_name(constant.k / c)
            convention = f" (the {name} convention)" if name else ""
        pinned = _convention_name(tie) or "pinned"
        scaled = ""
        if scale is not None and c != 1.0:
            scaled = (
                f" (x {scale.number()} with the scale: "
                f"{name_constant(want, *dims).number(plus=True)})"
            )
        return [
            Difference(
                "tie_convention",
                f"loss_grad returns {text} at ties{convention}; the pinned convention "
                f"({pinned}) gives {_num(tie, plus=True)}{scaled}",
                constant.k if constant is not None else None,
            )
        ]
    limit = abs(c) * (1 + 2 * tol) + 2 * tiny
    if np.all(np.abs(values) <= limit):
        return []
    outside = f"[-{_num(abs(c))}, {_num(abs(c))}]" if c != 1.0 else "[-1, 1]"
    return [
        Difference(
            "tie_convention",
            f"loss_grad returns {text} at ties: outside {outside}, no subgradient",
            constant.k if constant is not None else None,
        )
    ]


def _scale_text(c: Constant) -> tuple[str, str]:
    """The kind and the words for ``+c`` above, ``-c`` below."""
    mean = c.mean()
    if c.value == -1.0:
        return "sign_flip", "the sign is flipped"
    if mean is not None and mean.sign > 0:
        return "mean", (
            f"every value x {c.symbol()} = {c.number()} (a mean over {_dim_words(mean)})"
        )
    if mean is not None:
        return "flipped_mean", (
            f"the sign is flipped and divided by {_dim_words(mean)} = {mean.den}"
        )
    return "scaled", f"every value x {c.symbol()}"


def _epsilon(group: _Group) -> tuple[Difference, float] | None:
    """``sign(output - target + eps)``: the near tie below the target takes +1 (or, with eps
    subtracted, the near tie above takes -1), the rest is right."""
    cases = ((group.above, group.below, 1.0, "<", "+", "added"),
             (group.below, group.above, -1.0, ">", "-", "subtracted"))  # fmt: skip
    for right, moved, value, relation, op, verb in cases:
        right_constant = right.constant()
        if right_constant is None or not right_constant.contains(value):
            continue
        if moved.split != "near" or len(moved.parts) != 2:
            continue
        (near_words, near), (rest_words, rest) = moved.parts
        if not (near.contains(value) and rest.contains(-value)):
            continue
        near_size = near_words.rpartition(" ")[2]
        rest_size = rest_words.rpartition(" ")[2]
        tie = group.tie.constant()
        at_ties = " (and at ties)" if tie is not None and tie.contains(value) else ""
        text = (
            f"loss_grad returns {_num(value, plus=True)} where output {relation} target by only "
            f"{near_size}{at_ties}, {_num(-value, plus=True)} where by {rest_size} or more: "
            f"sign(output - target {op} eps) with eps between {near_size} and {rest_size} "
            f"(an epsilon {verb} before the sign)"
        )
        return Difference("epsilon", text), value
    return None


def _explain_group(
    group: _Group,
    scenarios: Sequence[Scenario],
    tie: float | None,
    tol: float,
    tiny: float,
    dims: tuple[int, int],
) -> list[Difference]:
    if np.all(np.isnan(group.row)):
        return [Difference("nan", "loss_grad returns NaN everywhere")]
    ignored = _ignored_input(group, scenarios, tol, tiny)
    if ignored:
        return [Difference("ignores_input", f"loss_grad returns {ignored}")]
    formula = _one_formula(group, tol, tiny, dims)
    if formula is not None:
        return [Difference("wrong_loss", _wrong_loss_text(formula), formula.k)]
    differences: list[Difference] = []
    scale: Constant | None = None
    a, b = group.above.constant(), group.below.constant()
    tie_checked = True
    if a is not None and b is not None:
        if a.contains(1.0) and b.contains(-1.0):
            scale = Constant(1.0)
        else:
            lo, hi = max(a.low, -b.high), min(a.high, -b.low)
            named = _name_in(lo, hi, *dims, digits=3) if lo <= hi else None
            if lo <= hi:
                scale = named or Constant(0.5 * (lo + hi))
                kind, words = _scale_text(scale)
                differences.append(
                    Difference(
                        kind,
                        f"loss_grad returns {scale.number(plus=True)} where output > target and "
                        f"{_num(-scale.value, plus=True) if named is None else _negate(scale)} "
                        f"where output < target: {words}",
                        scale.value,
                        exact=named is not None,
                    )
                )
            else:
                wrong = []
                if not a.contains(1.0):
                    wrong.append("output > target should give +1")
                if not b.contains(-1.0):
                    wrong.append("output < target should give -1")
                differences.append(
                    Difference(
                        "branch",
                        f"loss_grad returns {_model_text(a)} where output > target and "
                        f"{_model_text(b)} where output < target: {' and '.join(wrong)}",
                    )
                )
    elif (found := _epsilon(group)) is not None:
        difference, value = found
        differences.append(difference)
        scale = Constant(1.0)
        tie_constant = group.tie.constant()
        tie_checked = not (tie_constant is not None and tie_constant.contains(value))
    else:
        differences.append(
            Difference(
                "branch",
                f"loss_grad returns, where output > target: {_branch_text(group.above)}; "
                f"where output < target: {_branch_text(group.below)} (the contract: +1 and -1)",
            )
        )
    if tie_checked:
        differences += _tie_differences(group, scale, tie, scenarios, dims, tol, tiny)
    return differences


def _negate(c: Constant) -> str:
    return Constant(-c.value, tuple(r._replace(sign=-r.sign) for r in c.readings)).number(True)


def _table_text(
    group: _Group, scenarios: Sequence[Scenario], tol: float, tiny: float, dims: tuple[int, int]
) -> str:
    ignored = _ignored_input(group, scenarios, tol, tiny)
    if ignored:
        return ignored.partition(" whatever")[0]
    formula = _one_formula(group, tol, tiny, dims)
    if formula is not None:
        return _formula_text(formula.form, formula.named, formula.k)
    above, below, tie = (_branch_text(b) for b in (group.above, group.below, group.tie))
    if all(b.constant() is not None for b in (group.above, group.below, group.tie)):
        if above == below == tie:
            return above
        if below == tie:
            return f"{above} where output > target, {below} elsewhere"
        if above == tie:
            return f"{above} where output >= target, {below} where output < target"
    return f"{above} where output > target, {below} where output < target, {tie} at ties"


def _probe(call: Call, scenarios: Sequence[Scenario], which: np.ndarray, n: int, o: int):
    output = np.array([scenarios[k].output for k in which], np.float64).reshape(n, o)
    target = np.array([scenarios[k].target for k in which], np.float64).reshape(n, o)
    result = call(output, target)
    if result is None:
        return None
    result = np.asarray(result, np.float64)
    return result.reshape(-1) if result.shape == (n, o) else None


def _no_result(what: str) -> Difference:
    return Difference("no_result", f"{what} gave no result for a probe (it raised or returned "
                      "the wrong shape)")  # fmt: skip


def loss_grad_table(call: Call, n: int, o: int, dtype: Any, *, tie: float | None) -> BranchTable:
    """The branch table of ``call`` (a ``loss_grad``) on (n, o) arrays of ``dtype``, against
    the contract +1 / -1 / ``tie`` (None: any value in [-1, 1] at a tie). Probes and their
    bounds: the module docstring."""
    name = bounds.dtype_name(dtype)
    u, tiny = bounds.UNIT_ROUNDOFF[name], bounds.smallest_normal(name)
    tol, dims = _tolerance(u), (n, o)
    scenarios = probe_scenarios(name)
    count, size = len(scenarios), n * o
    positions = np.arange(size)
    table = np.full((size, count), np.nan)
    calls = 0
    for k in range(count):
        which = (positions + k) % count
        result = _probe(call, scenarios, which, n, o)
        calls += 1
        if result is None:
            return BranchTable(calls, (_no_result("loss_grad"),))
        table[positions, which] = result
    for which in (np.zeros(size, int), (7 * positions + 3) % count):
        result = _probe(call, scenarios, which, n, o)
        calls += 1
        if result is None:
            return BranchTable(calls, (_no_result("loss_grad"),))
        expected = table[positions, which]
        moved = ~_close(result, expected, tol, tiny)
        if np.any(moved):
            p = int(np.flatnonzero(moved)[0])
            s = scenarios[which[p]]
            text = (
                "loss_grad is not element-wise: the value at one position depends on the others "
                f"(at ({p // o}, {p % o}), output = {s.output:g} and target = {s.target:g} gave "
                f"{result[p]:g} here and {expected[p]:g} among other values)"
            )
            return BranchTable(calls, (Difference("not_elementwise", text),), elementwise=False)
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    left = np.ones(size, bool)
    while np.any(left):
        row = table[int(np.argmax(left))]
        members = left & np.all(_close(table, row[None, :], tol, tiny), axis=1)
        groups.append((row, members))
        left &= ~members
    fitted = []
    for row, mask in groups:
        branches = []
        for branch in ("above", "below", "tie"):
            chosen = [s.branch == branch for s in scenarios]
            members_s = [s for s, c in zip(scenarios, chosen, strict=True) if c]
            branches.append(_read_branch(row[chosen], members_s, tol, tiny, dims))
        fitted.append(_Group(mask.reshape(n, o), row, *branches))
    explained = [_explain_group(g, scenarios, tie, tol, tiny, dims) for g in fitted]
    texts = [_table_text(g, scenarios, tol, tiny, dims) for g in fitted]
    rows = tuple(
        BranchRow(region(g.mask)[0], *(_branch_text(b) for b in (g.above, g.below, g.tie)))
        for g in fitted
    )
    if len(fitted) == 1:
        return BranchTable(calls, tuple(explained[0]), rows=rows)
    right = [i for i, e in enumerate(explained) if not e]
    wrong = [i for i, e in enumerate(explained) if e]
    if len(right) == 1 and len(wrong) == 1:
        words, other = region(fitted[right[0]].mask)
        text = f"loss_grad returns {texts[right[0]]}, only in {words}; {texts[wrong[0]]} {other}"
    else:
        text = "loss_grad depends on the position: " + "; ".join(
            f"{t} in {region(g.mask)[0]}" for t, g in zip(texts, fitted, strict=True)
        )
    return BranchTable(calls, (Difference("partial", text),), rows=rows)


# --------------------------------------------------------------------------------------------
# 2. The weight table of the loss.
# --------------------------------------------------------------------------------------------

_LOSS_TARGETS = (0.5, -1.25, 2.0, -0.75, 1.5, -2.5, 0.25, -1.0, 3.0, -0.5, 1.25)
_CHECK_MAGNITUDES = (0.25, 0.75, 1.25, 1.5, 1.75, 2.5, 3.0, 3.5, 0.5, 1.0, 2.0)


def _huber(r: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    return np.where(a < 1.0, 0.5 * r * r, a - 0.5)


class _Phi(NamedTuple):
    """A per-element function of r = output - target, and its values at 1, -2 and 0.5."""

    name: str
    function: Callable[[np.ndarray], np.ndarray]
    words: str

    def at(self, r: float) -> float:
        return float(self.function(np.array([r]))[0])


_PHIS = (
    _Phi("abs", np.abs, "|output - target|"),
    _Phi("squared", np.square, "(output - target)^2"),
    _Phi("huber", _huber, "huber(output - target)"),
    _Phi("signed", lambda r: r, "output - target"),
)
_ABS = _PHIS[0]


class _LossProbe(NamedTuple):
    residual: np.ndarray
    value: float
    what: str


class _NoResult(Exception):
    pass


class _NonFinite(Exception):
    def __init__(self, value: float, what: str) -> None:
        super().__init__(value, what)
        self.value, self.what = value, what


@dataclasses.dataclass(frozen=True)
class LossTable:
    """The weight table of one loss.

    Attributes:
      calls: probe calls made.
      differences: the explained differences from ``sum |output - target|`` (empty: it
        matches).
      form: ``abs``, ``squared``, ``huber``, ``signed`` (the function of output - target
        summed), ``max``, or ``""`` where L is neither.
      weights: the (N, O) weights of a weighted sum (as read: named constants where
        ``exact``), or None.
      exact: the reading holds within the rounding bound of the named sum in every probe.
    """

    calls: int
    differences: tuple[Difference, ...]
    form: str = ""
    weights: np.ndarray | None = dataclasses.field(default=None, compare=False)
    exact: bool = True

    def lines(self) -> list[str]:
        """The differences in words (none when the loss matches the contract)."""
        return [d.text for d in self.differences]


class _LossProber:
    def __init__(self, call: Call, n: int, o: int) -> None:
        self.call, self.n, self.o = call, n, o
        self.probes: list[_LossProbe] = []

    def ask(self, residual: np.ndarray, what: str) -> float:
        count = len(self.probes)
        cycle = np.array(_LOSS_TARGETS)
        target = cycle[(np.arange(self.n * self.o) + 3 * count) % len(cycle)].reshape(self.n, -1)
        result = self.call(target + residual, target)
        self.probes.append(_LossProbe(residual, math.nan, what))
        if result is None:
            raise _NoResult
        array = np.asarray(result, np.float64).reshape(-1)
        if array.size != 1:
            raise _NoResult
        value = float(array[0])
        self.probes[-1] = _LossProbe(residual, value, what)
        if not math.isfinite(value):
            raise _NonFinite(value, what)
        return value

    def one(self, p: tuple[int, int], value: float) -> np.ndarray:
        r = np.zeros((self.n, self.o))
        r[p] = value
        return r


def _identify_phi(s1: float, s2: float, s3: float, u: float) -> _Phi | None:
    """The ``phi`` whose ratios phi(-2) / phi(1) and phi(0.5) / phi(1) the one-element probes
    show, each side within ``gamma_4(u)`` (one weight, one phi, one product, one flush)."""
    if not (s1 != 0 and math.isfinite(s1) and math.isfinite(s2) and math.isfinite(s3)):
        return None
    g = 2 * bounds.gamma(4, u)
    for phi in _PHIS:
        one = phi.at(1.0)
        fits = all(
            abs(s - s1 * phi.at(r) / one) <= g * (abs(s) + abs(s1 * phi.at(r) / one))
            for s, r in ((s2, -2.0), (s3, 0.5))
        )
        if fits:
            return phi
    return None


def _probe_fits(
    probe: _LossProbe, weights: np.ndarray, phi: _Phi, u: float, tiny: float, widen: float
) -> bool:
    terms = weights * phi.function(probe.residual)
    count = int(np.count_nonzero(terms))
    exact = math.fsum(terms.ravel().tolist())
    magnitude = math.fsum(np.abs(terms).ravel().tolist())
    bound = (bounds.gamma(count + 3, u) + widen) * magnitude + (count + 3) * tiny
    return abs(probe.value - exact) <= bound * _FLOAT64_SLACK


def _snap(estimate: np.ndarray, rel: float, dims: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Estimated weights as named constants (``_name_in`` within ``rel``), zero below ``rel``
    of the largest; False where some weight is not a named constant (kept as estimated)."""
    largest = float(np.max(np.abs(estimate), initial=0.0))
    distinct, inverse = np.unique(estimate, return_inverse=True)
    snapped = np.zeros_like(distinct)
    exact = True
    for k, value in enumerate(distinct.tolist()):
        if abs(value) <= rel * largest:
            continue
        spread = rel * abs(value)
        named = _name_in(value - spread, value + spread, *dims, digits=2)
        if named is None:
            snapped[k], exact = value, False
        else:
            snapped[k] = named.value
    return snapped[inverse.reshape(estimate.shape)], exact


def _weights_rel(u: float, n: int, o: int) -> float:
    """How far a rank-one estimate ``R_i C_j / T`` of exact rank-one weights may be off: each
    probe within ``gamma_{k+3}(u)`` of its sum, ``(1 + g_O)(1 + g_N) / (1 - g_NO) - 1``."""
    g_row, g_col, g_all = (bounds.gamma(k + 3, u) for k in (o, n, n * o))
    return (1 + g_row) * (1 + g_col) / (1 - g_all) - 1


def _uniform_words(c: Constant, phi: _Phi) -> Difference | None:
    """The difference of a loss that weights every element by ``c``."""
    mean = c.mean()
    if phi.name == "abs":
        if c.value == 1.0:
            return None
        if c.value == 0.0:
            return Difference("partial", "L is 0: no |output - target| is summed", 0.0)
        if c.value == -1.0:
            return Difference("sign_flip", "L is -sum |output - target|: the sign is flipped", -1)
        if mean is not None and mean.sign > 0:
            return Difference(
                "mean",
                f"L is the mean over {_dim_words(mean)} (every weight {c.symbol()} = {c.number()})",
                c.value,
            )
        return Difference("scaled", f"L is {c.symbol()} x the sum (every weight {c.number()})",
                          c.value)  # fmt: skip
    over = f" averaged over {_dim_words(mean)} = {mean.den}" if mean and mean.sign > 0 else ""
    scaled = "" if c.value == 1.0 or over else f" x {c.number()}"
    if phi.name == "squared":
        if c.value == 0.5:
            text = "L is half the squared error: sum (output - target)^2 / 2"
        elif over:
            text = f"L is the mean squared error: (output - target)^2{over}"
        else:
            text = f"L is the squared error: sum (output - target)^2{scaled}"
    elif phi.name == "huber":
        text = (
            "L is the smooth L1 / Huber loss (beta = 1): 0.5 (output - target)^2 where "
            "|output - target| < 1, |output - target| - 0.5 elsewhere, "
            + (f"{over.strip()} (F.smooth_l1_loss's default)" if over else f"summed{scaled}")
        )
    else:
        how = f"sums output - target{scaled}"
        if mean is not None and over:
            how = f"averages output - target over {_dim_words(mean)} = {mean.den}"
        text = f"L {how} without the absolute value"
    return Difference("wrong_loss", text, c.value)


def _describe_loss(
    weights: np.ndarray, phi: _Phi, dims: tuple[int, int], exact: bool
) -> list[Difference]:
    values, counts = np.unique(weights, return_counts=True)
    if len(values) == 1:
        c = name_constant(float(values[0]), *dims)
        found = _uniform_words(c, phi)
        return [] if found is None else [dataclasses.replace(found, exact=exact)]
    differences = []
    if phi.name != "abs":
        differences.append(
            Difference("wrong_loss", f"L sums {phi.words}, not |output - target|", exact=exact)
        )
    major = float(values[int(np.argmax(counts))])
    if major == 0.0:
        nonzero = values[values != 0]
        parts = []
        for value in nonzero:
            c = name_constant(float(value), *dims)
            weight = "" if value == 1.0 else f" x {c.symbol()}"
            parts.append(f"{phi.words}{weight} over {region(weights == value)[0]}")
        text = f"L sums {' and '.join(parts)} only"
    else:
        c = name_constant(major, *dims)
        others = [
            f"{region(weights == v)[0]} (weight {name_constant(float(v), *dims).symbol()})"
            for v in values
            if v != major
        ]
        text = f"L weights {phi.words} by {c.symbol()} except {' and '.join(others)}"
    differences.append(Difference("partial", text, exact=exact))
    return differences


def _is_max(probes: Sequence[_LossProbe], u: float, tiny: float) -> bool:
    return all(
        abs(p.value - float(np.max(np.abs(p.residual))))
        <= bounds.gamma(2, u) * float(np.max(np.abs(p.residual))) + tiny
        for p in probes
    )


def loss_weights(call: Call, n: int, o: int, dtype: Any) -> LossTable:
    """The weight table of ``call`` (a loss: ``L`` from (n, o) output and target of
    ``dtype``) against ``sum |output - target|``. Probes and bounds: the module docstring."""
    name = bounds.dtype_name(dtype)
    u, tiny = bounds.UNIT_ROUNDOFF[name], bounds.smallest_normal(name)
    dims = (n, o)
    prober = _LossProber(call, n, o)
    try:
        return _loss_weights(prober, u, tiny, dims)
    except _NoResult:
        return LossTable(len(prober.probes), (_no_result("the loss"),))
    except _NonFinite as error:
        text = f"L is {error.value} with {error.what}"
        return LossTable(len(prober.probes), (Difference("nan", text),))


def _resolves(k: int, u: float) -> bool:
    """Whether a probe of k equal terms tells one term more or less: ``2 k gamma_{k+3}(u) <
    1`` (k <= 9 in bfloat16, 30 in float16, 2894 in float32)."""
    return 2 * k * bounds.gamma(k + 3, u) < 1


def _check_residuals(n: int, o: int) -> np.ndarray:
    magnitudes = np.array(_CHECK_MAGNITUDES)
    positions = np.arange(n * o)
    signs = np.where((positions + positions // o) % 2 == 0, 1.0, -1.0)
    return (magnitudes[(3 * positions + 1) % len(magnitudes)] * signs).reshape(n, o)


def _loss_weights(prober: _LossProber, u: float, tiny: float, dims: tuple[int, int]) -> LossTable:
    n, o = dims
    total = prober.ask(np.ones(dims), "every residual +1")
    phi: _Phi | None = None
    if _resolves(n, u) and _resolves(o, u):
        rows = np.array(
            [prober.ask(np.eye(n)[i][:, None] * np.ones(dims), f"row {i} at +1") for i in range(n)]
            if n > 1
            else [total]
        )
        cols = np.array(
            [
                prober.ask(np.eye(o)[j][None, :] * np.ones(dims), f"column {j} at +1")
                for j in range(o)
            ]
            if o > 1
            else [total]
        )
        estimate = np.outer(rows, cols) / total if total != 0 else np.zeros(dims)
        if not np.all(np.isfinite(estimate)):
            estimate = np.zeros(dims)
        # phi at the element of largest estimated weight; None while none is known to count.
        phi = None if np.any(estimate) else _ABS
        if phi is None:
            phi, unknown = _phi_at(prober, estimate, None, u)
            if unknown is not None:
                return LossTable(len(prober.probes), (unknown,))
        prober.ask(_check_residuals(n, o), "distinct residuals on every element")
        if phi is not None:
            # Accepted only with every weight named: an unnamed estimate is read again below,
            # one element at a time, far closer than the rank-one error.
            weights, exact = _snap(estimate / phi.at(1.0), _weights_rel(u, n, o), dims)
            if exact and all(_probe_fits(p, weights, phi, u, tiny, 0.0) for p in prober.probes):
                return _loss_table(prober, weights, phi, dims, exact)
    else:
        prober.ask(_check_residuals(n, o), "distinct residuals on every element")
    if _is_max(prober.probes, u, tiny):
        difference = Difference("wrong_loss", "L is max |output - target|")
        return LossTable(len(prober.probes), (difference,), "max")
    one_hot = np.zeros(dims)
    for index in np.ndindex(*dims):
        one_hot[index] = prober.ask(prober.one(index, 1.0), f"only {index} at +1")
    if phi is None:
        # No element was known to count (the estimate pointed at one that does not, or rows
        # and columns were too long to resolve one element): read phi where one does.
        phi, unknown = _phi_at(prober, one_hot, float(np.max(np.abs(one_hot))), u)
        if unknown is not None:
            return LossTable(len(prober.probes), (unknown,))
        phi = phi or _ABS  # no element counts: L is 0, whatever phi
    rel = 4 * bounds.gamma(4, u)
    weights, exact = _snap(one_hot / phi.at(1.0), rel, dims)
    widen = 0.0 if exact else rel
    failed = [p for p in prober.probes if not _probe_fits(p, weights, phi, u, tiny, widen)]
    if not failed:
        return _loss_table(prober, weights, phi, dims, exact)
    probe = failed[0]
    predicted = math.fsum((weights * phi.function(probe.residual)).ravel().tolist())
    text = (
        f"L is not a weighted sum of {phi.words} (nor their max): with {probe.what}, L = "
        f"{probe.value:.6g} where the weights read one element at a time give {predicted:.6g}"
    )
    return LossTable(len(prober.probes), (Difference("not_weighted_sum", text),), "")


def _phi_at(
    prober: _LossProber, weights: np.ndarray, at_one: float | None, u: float
) -> tuple[_Phi | None, Difference | None]:
    """phi from one element alone at +1, -2 and +0.5, at the element of largest ``weights``
    (``at_one``: its value at +1 where already read). ``(None, None)`` where that element does
    not count (L = 0 there); a ``not_weighted_sum`` difference where it counts but fits no
    phi."""
    i, j = np.unravel_index(int(np.argmax(np.abs(weights))), weights.shape)
    largest = (int(i), int(j))
    if at_one is None:
        at_one = prober.ask(prober.one(largest, 1.0), f"only {largest} at +1")
    if at_one == 0:
        return None, None
    at_two = prober.ask(prober.one(largest, -2.0), f"only {largest} at -2")
    at_half = prober.ask(prober.one(largest, 0.5), f"only {largest} at +0.5")
    phi = _identify_phi(at_one, at_two, at_half, u)
    if phi is not None:
        return phi, None
    text = (
        f"L is not a weighted sum of |output - target|: one element alone gives L = "
        f"{at_one:.4g}, {at_two:.4g}, {at_half:.4g} at output - target = 1, -2, 0.5 "
        "(|output - target| gives 1 : 2 : 0.5)"
    )
    return None, Difference("not_weighted_sum", text)


def _loss_table(
    prober: _LossProber, weights: np.ndarray, phi: _Phi, dims: tuple[int, int], exact: bool
) -> LossTable:
    differences = tuple(_describe_loss(weights, phi, dims, exact))
    return LossTable(len(prober.probes), differences, phi.name, weights, exact)


# --------------------------------------------------------------------------------------------
# 3. The update of each parameter.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParameterFit:
    """What one parameter's update fits: the contract, and the intervals of each alternative's
    constant (None: no constant fits).

    Attributes:
      name: the parameter (``w``, ``b``).
      right: ``p_new`` is within the error model's bound of ``p - lr * g``.
      scale: c with ``p - p_new = c * lr * g``.
      decay: lambda > 0 with ``p - p_new = lr * (g + lambda * p)``.
      sign: c with ``p - p_new = c * lr * sign(g)`` (Adam's first step: c = 1).
      sign_exact: ``sign`` holds without the eps / float32 widening.
      norm: ``||g||``.
    """

    name: str
    right: bool
    scale: tuple[float, float] | None
    decay: tuple[float, float] | None
    sign: tuple[float, float] | None
    sign_exact: bool
    norm: float


@dataclasses.dataclass(frozen=True)
class UpdateFit:
    """The fit of one step's updates, per parameter and together.

    Attributes:
      calls: probe calls made (0: the arrays are given).
      differences: the explained differences from ``p - lr * dL_dp`` (empty: it matches).
      parameters: each parameter's fit.
    """

    calls: int
    differences: tuple[Difference, ...]
    parameters: tuple[ParameterFit, ...] = ()

    def lines(self) -> list[str]:
        """The differences in words (none when every update matches the contract)."""
        return [d.text for d in self.differences]


def _gradient_name(name: str) -> str:
    return f"dL_d{name}"


def _step_interval(
    step: np.ndarray,
    base: np.ndarray,
    model: np.ndarray,
    p: np.ndarray,
    roundings: int,
    u: float,
    absolute: float,
    relative: np.ndarray | float = 0.0,
) -> tuple[float, float] | None:
    """The c with ``|step - base - c model|`` within the update's bound for every element
    (module docstring), ``relative`` of ``|c model|`` added (elements where it is 1/2 or more
    constrain nothing); None where none does."""
    g = bounds.gamma(roundings, u)
    rest = step - base
    relative = np.broadcast_to(np.asarray(relative, np.float64), step.shape)
    usable = relative < 0.5
    radius = g * (np.abs(p) + np.abs(base) + np.abs(rest)) + absolute + relative * np.abs(rest)
    radius = radius / (1 - g - np.where(usable, relative, 0.0))
    radius = radius * _FLOAT64_SLACK + 2.0**-52 * np.abs(step)
    zero = (model == 0) & usable
    if np.any(np.abs(rest[zero]) > radius[zero]):
        return None
    active = (model != 0) & usable
    if not np.any(active):
        return -math.inf, math.inf
    m, r, d = model[active], rest[active], radius[active]
    a, b = (r - d) / m, (r + d) / m
    lo, hi = float(np.max(np.minimum(a, b))), float(np.min(np.maximum(a, b)))
    return (lo, hi) if lo <= hi else None


def _fit_parameter(
    name: str, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], lr: float, u: float, tiny: float
) -> ParameterFit:
    p, g, new = (np.asarray(a, np.float64) for a in arrays)
    step = p - new
    lr_g = lr * g
    right_radius = bounds.gamma(3, u) * (np.abs(p) + np.abs(lr_g)) + (3 + abs(lr)) * tiny
    right = bool(
        np.all(np.abs(step - lr_g) <= right_radius * _FLOAT64_SLACK + 2.0**-52 * np.abs(step))
    )
    zero = np.zeros_like(p)
    absolute = (5 + abs(lr)) * tiny
    scale = _step_interval(step, zero, lr_g, p, 4, u, absolute)
    decay = _step_interval(step, lr_g, lr * p, p, 5, u, absolute)
    if decay is not None and decay[1] <= 0:
        decay = None
    elif decay is not None:
        decay = (max(decay[0], 0.0), decay[1])
    direction = lr * np.sign(g)
    sign = _step_interval(step, zero, direction, p, 16, u, absolute)
    sign_exact = sign is not None
    if sign is None:
        with np.errstate(divide="ignore"):
            widening = np.where(g != 0, 1e-7 / np.abs(g), np.inf) + 2.0**-12
        sign = _step_interval(step, zero, direction, p, 16, u, absolute, widening)
    norm = math.sqrt(math.fsum((g * g).ravel().tolist()))
    return ParameterFit(name, right, scale, decay, sign, sign_exact, norm)


def _intersect(intervals: Iterable[tuple[float, float] | None]) -> tuple[float, float] | None:
    lo, hi = -math.inf, math.inf
    for interval in intervals:
        if interval is None:
            return None
        lo, hi = max(lo, interval[0]), min(hi, interval[1])
    return (lo, hi) if lo <= hi else None


#: An interval "pins down" its constant (the wording of an unnamed fit) when at most this wide,
#: relative to its magnitude.
_DETERMINED = 0.25

#: A 2-digit decimal is named only from an interval this narrow, relatively: 2-digit decimals
#: are 1% to 10% apart, so a wider interval holds one by chance.
_TWO_DIGITS = 1e-3


Interval = tuple[float, float]


def _determined(interval: Interval | None) -> bool:
    """Whether ``interval`` pins its constant down (``_DETERMINED``; one holding 0 must be
    within 0.1 of it, against the contract's 1)."""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return False
    lo, hi = interval
    if lo <= 0.0 <= hi:
        return hi - lo <= 0.1
    return hi - lo <= _DETERMINED * max(abs(lo), abs(hi))


def _decimals(lo: float, hi: float, digits: int, limit: int = 3) -> list[float]:
    """The decimals of ``digits`` significant digits in ``[lo, hi]`` (0 < lo or hi < 0), up
    to ``limit + 1`` of them."""
    sign = 1.0
    if hi < 0:
        lo, hi, sign = -hi, -lo, -1.0
    found: list[float] = []
    for exponent in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1):
        step = 10.0 ** (exponent - digits + 1)
        first = max(math.floor(lo / step) - 1, 10 ** (digits - 1))
        last = min(math.ceil(hi / step) + 1, 10**digits - 1)
        for mantissa in range(first, last + 1):
            value = float(f"{mantissa * step:.{digits}g}")
            if lo <= value <= hi and value not in found:
                found.append(value)
                if len(found) > limit:
                    return [sign * v for v in found]
    return [sign * v for v in found]


def _singles_out(interval: Interval | None, value: float) -> bool:
    """Whether ``interval`` holds ``value`` and no other decimal as short as it: the data name
    it, not merely allow it."""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return False
    lo, hi = interval
    if not lo <= value <= hi:
        return False
    if value == 0.0:
        return hi - lo <= 0.1
    if lo <= 0.0 <= hi:
        return False
    digits = _digits(value)
    return all(_decimals(lo, hi, d) == [] for d in range(1, digits)) and _decimals(
        lo, hi, digits
    ) == [value]


def _short(interval: Interval | None) -> float | None:
    """The decimal a user would write that ``interval`` singles out: the only one of 1
    significant digit in it, else (in an interval narrower than ``_TWO_DIGITS``) the only one
    of 2; 0 where the interval holds 0 and is within 0.1 of it; None where it holds several."""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return None
    lo, hi = interval
    if lo <= 0.0 <= hi:
        return 0.0 if hi - lo <= 0.1 else None
    for digits in (1, 2):
        if digits == 2 and hi - lo > _TWO_DIGITS * max(abs(lo), abs(hi)):
            return None
        found = _decimals(lo, hi, digits)
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None


def _max_norm(c: tuple[float, float], norm: float, delta: float, eps: float) -> tuple[float, float]:
    """The max_norm interval of a clip that scaled by ``c`` a gradient of norm ``norm``, the
    candidate's norm and division within ``delta``, its norm plus up to ``eps``."""
    widen = delta / (1 - delta)
    return c[0] * norm * (1 - widen), c[1] * (norm + eps) * (1 + widen)


def _norm_delta(size: int, parameters: int, dtype: str) -> float:
    """The relative error of a candidate's clip coefficient ``max_norm / ||g||``: the squares
    and their sums (``size + 2 parameters`` roundings, a norm of per-parameter norms included)
    in the error model's default accumulation for the dtype (``bounds.ACCUMULATIONS``: float32
    for bfloat16 and float16), then the norm stored, its square root, max_norm cast and the
    division in the dtype (4 roundings)."""
    u = bounds.UNIT_ROUNDOFF[dtype]
    u_acc = bounds.UNIT_ROUNDOFF[bounds.ACCUMULATIONS[dtype][0]]
    return bounds.compound(bounds.gamma(size + 2 * parameters, u_acc), bounds.gamma(4, u))


def _clip_max_norm(
    cs: Sequence[tuple[float, float]], norms: Sequence[float], deltas: Sequence[float]
) -> tuple[float, bool] | None:
    """A short max_norm in every ``_max_norm`` interval (first without torch's + 1e-6, then
    with it), with whether it held without it."""
    for eps, exact in ((0.0, True), (1e-6, False)):
        found = _intersect(
            _max_norm(c, nm, d, eps) for c, nm, d in zip(cs, norms, deltas, strict=True)
        )
        value = _short(found)
        if value is not None and value > 0:
            return value, exact
    return None


def _right_words(fits: Sequence[ParameterFit], wrong: Sequence[str]) -> str:
    right = [f.name for f in fits if f.name not in wrong and f.right]
    if not right:
        return ""
    names = " and ".join(f"{n}'s" for n in right)
    return f"; {names} update{'s are' if len(right) > 1 else ' is'} right"


class _Reading(NamedTuple):
    """One reading of a step: the difference it names, and its short words as an
    alternative."""

    difference: Difference
    words: str


def _combined(readings: Sequence[_Reading]) -> Difference:
    """The first reading, the others said as alternatives the data do not tell apart."""
    first = readings[0].difference
    if len(readings) == 1:
        return first
    others = ", or ".join(r.words for r in readings[1:])
    return dataclasses.replace(first, text=f"{first.text} (or {others}: not told apart here)")


def _scale_reading(fit: ParameterFit, c: float, lr: float) -> _Reading:
    p, g = fit.name, _gradient_name(fit.name)
    if c == 0.0:
        small = _zero_words([fit], g)
        return _Reading(
            Difference("scaled_step", f"{p}_new = {p}: {p} is not updated{small}", 0.0, p),
            f"{p} not updated",
        )
    if c == -1.0:
        text = f"{p}_new = {p} + lr * {g}: the step ascends (the sign is flipped)"
        return _Reading(Difference("sign_flip", text, -1.0, p), f"{p}'s step ascending")
    hint = f" (a parameter group giving {p} lr * {c!r}?)" if 0 < c < 1 else ""
    return _Reading(
        Difference("scaled_step", f"{p} - {p}_new = {c!r} * lr * {g}{hint}", c, p),
        f"{p}'s step scaled by {c!r}",
    )


def _parameter_readings(fit: ParameterFit, lr: float) -> list[_Reading]:
    p, g = fit.name, _gradient_name(fit.name)
    readings = []
    scale = fit.scale
    if _singles_out(scale, lr):
        text = f"{p} - {p}_new = lr * lr * {g}: lr applied twice"
        readings.append(_Reading(Difference("scaled_step", text, lr, p), "lr applied twice"))
    elif (c := _short(scale)) is not None:
        readings.append(_scale_reading(fit, c, lr))
    decay = _short(fit.decay)
    if decay is not None and decay > 0:
        text = (
            f"{p} - {p}_new = lr * ({g} + {decay!r} * {p}): weight decay (lambda = {decay!r}) "
            f"on {p}"
        )
        words = f"weight decay {decay!r} on {p}"
        readings.append(_Reading(Difference("weight_decay", text, decay, p), words))
    sign = fit.sign
    if _singles_out(sign, 1.0):
        text = (
            f"{p} - {p}_new = lr * sign({g}): the first step of an adaptive optimizer such as "
            "Adam (lr * g / (sqrt(g^2) + eps))"
        )
        difference = Difference("normalized_step", text, 1.0, p, exact=fit.sign_exact)
        readings.append(_Reading(difference, f"a sign step of {p}"))
    return readings


def _parameter_difference(fit: ParameterFit, lr: float) -> Difference:
    p, g = fit.name, _gradient_name(fit.name)
    readings = _parameter_readings(fit, lr)
    if readings:
        return _combined(readings)
    models = [
        (fit.scale, "scaled_step", f"{p} - {p}_new = {{c}} * lr * {g}"),
        (fit.decay, "weight_decay", f"{p} - {p}_new = lr * ({g} + {{c}} * {p})"),
        (fit.sign, "normalized_step", f"{p} - {p}_new = {{c}} * lr * sign({g})"),
    ]
    fitting = [(i, k, f) for i, k, f in models if i is not None]
    pinned = [(i, k, f) for i, k, f in fitting if _determined(i) and not i[0] <= 0.0 <= i[1]]
    if pinned:
        (lo, hi), kind, form = pinned[0]
        value = 0.5 * (lo + hi)
        text = form.format(c=f"{value:.3g}") + f" (c in [{lo:.6g}, {hi:.6g}])"
        return Difference(kind, text, value, p, exact=False)
    if fitting:
        spans = " or ".join(
            form.format(c="c") + f" with c in [{i[0]:.3g}, {i[1]:.3g}]" for i, _, form in fitting
        )
        text = f"{spans}: too wide to name c (the step is small against the rounding of {p})"
        return Difference(fitting[0][1], text, None, p, exact=False)
    return Difference(
        "update",
        f"{p}_new is none of {p} - c * lr * {g}, a weight decay or a sign step: {p}'s update is "
        "wrong",
        parameter=p,
    )


def parameter_updates(
    params: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], lr: float, dtype: Any
) -> UpdateFit:
    """Fits each parameter's update ``(p, dL_dp, p_new)`` of one SGD step with ``lr`` in
    ``dtype``, then all of them together (clipping by the global or per-parameter norm, one
    scale, one sign step). Bounds: the module docstring."""
    name = bounds.dtype_name(dtype)
    u, tiny = bounds.UNIT_ROUNDOFF[name], bounds.smallest_normal(name)
    for pname, (_, _, new) in params.items():
        if not np.all(np.isfinite(np.asarray(new, np.float64))):
            text = f"{pname}_new has NaN or infinity"
            return UpdateFit(0, (Difference("nan", text, parameter=pname),))
    fits = tuple(_fit_parameter(p, arrays, lr, u, tiny) for p, arrays in params.items())
    if all(f.right for f in fits):
        return UpdateFit(0, (), fits)
    return UpdateFit(0, tuple(_together(fits, params, lr, name)), fits)


def _zero_words(fits: Sequence[ParameterFit], whose: str) -> str:
    """Where ``p_new = p`` could also be a step too small to show: how large it could be."""
    largest = max(
        (max(abs(f.scale[0]), abs(f.scale[1])) for f in fits if f.scale is not None),
        default=0.0,
    )
    if largest < 0.01:  # below any scale a step bug has (lr applied twice with lr = 0.01)
        return ""
    return f" (or a step of at most {largest:.2g} * lr * {whose}, below the rounding)"


def _together(
    fits: Sequence[ParameterFit],
    params: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    lr: float,
    dtype: str,
) -> list[Difference]:
    """The readings of every parameter at once (lr applied twice, clipping by the global or
    per-parameter norm, one scale, one sign step), else each wrong parameter's own.

    A reading of all parameters is made only where one parameter's own interval singles it
    out and the others agree with it (their intervals meet): an intersection of intervals that
    each hold several decimals singles one out by chance."""
    names = [f.name for f in fits]
    gradients = [_gradient_name(n) for n in names]
    sizes = dict(zip(names, (int(np.size(params[n][1])) for n in names), strict=True))
    all_wrong = not any(f.right for f in fits)
    one = len(fits) == 1
    common = _intersect(f.scale for f in fits)
    steps = ", ".join(f"{n} - {n}_new = {{c}} * {g}" for n, g in zip(names, gradients, strict=True))
    first: list[_Reading] = []
    clips: list[_Reading] = []
    simple: list[_Reading] = []
    max_norm_digits = 0
    if all_wrong and _singles_out(common, lr) and any(_singles_out(f.scale, lr) for f in fits):
        text = (
            f"{names[0]} - {names[0]}_new = lr * lr * {gradients[0]}: lr applied twice"
            if one
            else "every parameter moves by lr * lr * its gradient: lr applied twice ("
            + steps.format(c="lr * lr")
            + ")"
        )
        difference = Difference("scaled_step", text, lr, names[0] if one else None)
        first.append(_Reading(difference, "lr applied twice"))
    # Clipping by the global norm: one c < 1 for all, c = max_norm / G.
    if common is not None and common[1] < 1.0:
        norm = math.sqrt(math.fsum(f.norm**2 for f in fits))
        delta = _norm_delta(sum(sizes.values()), len(fits), dtype)
        clip = _clip_max_norm([common], [norm], [delta])
        own = [_clip_max_norm([f.scale], [norm], [delta]) for f in fits if f.scale is not None]
        if clip is not None and any(c is not None and c[0] == clip[0] for c in own):
            max_norm, exact = clip
            max_norm_digits = _digits(max_norm)
            together = f"||({', '.join(gradients)})||" if not one else f"||{gradients[0]}||"
            agree = "; with one parameter, global and per-parameter clipping agree" if one else ""
            text = (
                f"the step is clipped by the global gradient norm: scaled by {max_norm!r} / "
                f"{together} = {max_norm!r} / {norm:.3g} (max_norm {max_norm!r}{agree})"
            )
            difference = Difference("clipped_global_norm", text, max_norm, exact=exact)
            clips.append(
                _Reading(difference, f"clipping by the global norm (max_norm {max_norm!r})")
            )
    # Clipping per parameter: c_p = max_norm / ||g_p|| where the update is not right.
    binding = [f for f in fits if not f.right]
    free = [f for f in fits if f.right]
    scales = [f.scale for f in binding if f.scale is not None]
    if not one and binding and len(scales) == len(binding) and all(c[1] < 1.0 for c in scales):
        deltas = [_norm_delta(sizes[f.name], 1, dtype) for f in binding]
        norms = [f.norm for f in binding]
        clip = _clip_max_norm(scales, norms, deltas)
        own = [
            _clip_max_norm([c], [nm], [d]) for c, nm, d in zip(scales, norms, deltas, strict=True)
        ]
        unclipped = clip is not None and all(
            f.norm <= clip[0] * (1 + 2 * _norm_delta(sizes[f.name], 1, dtype)) for f in free
        )
        if clip is not None and unclipped and any(c is not None and c[0] == clip[0] for c in own):
            max_norm, exact = clip
            max_norm_digits = max(max_norm_digits, _digits(max_norm))
            parts = [
                f"{_gradient_name(f.name)} scaled by {max_norm!r} / ||{_gradient_name(f.name)}"
                f"|| = {max_norm!r} / {f.norm:.3g}"
                for f in binding
            ] + [
                f"{_gradient_name(f.name)} unclipped (||{_gradient_name(f.name)}|| = "
                f"{f.norm:.3g} <= {max_norm!r})"
                for f in free
            ]
            text = (
                f"each parameter's step is clipped by its own gradient norm (max_norm "
                f"{max_norm!r}): {', '.join(parts)}"
            )
            difference = Difference("clipped_norm", text, max_norm, exact=exact)
            clips.append(_Reading(difference, f"clipping per parameter (max_norm {max_norm!r})"))
    scale = _short(common) if all_wrong and not first else None
    if scale is not None and not any(_short(f.scale) == scale for f in fits):
        scale = None
    if scale is not None and one:
        simple.append(_scale_reading(fits[0], scale, lr))
    elif scale is not None and scale == 0.0:
        text = f"no parameter is updated: p_new = p{_zero_words(fits, 'the gradient')}"
        difference = Difference("scaled_step", text, 0.0)
        simple.append(_Reading(difference, "no update"))
    elif scale is not None and scale == -1.0:
        text = "every parameter ascends: p_new = p + lr * dL_dp (the sign is flipped)"
        simple.append(_Reading(Difference("sign_flip", text, -1.0), "every step ascending"))
    elif scale is not None:
        text = f"every parameter's step is scaled by {scale!r}: " + steps.format(
            c=f"{scale!r} * lr"
        )
        simple.append(
            _Reading(Difference("scaled_step", text, scale), f"every step scaled by {scale!r}")
        )
    signs = _intersect(f.sign for f in fits)
    if all_wrong and _singles_out(signs, 1.0) and any(_singles_out(f.sign, 1.0) for f in fits):
        exact = all(f.sign_exact for f in fits)
        if one:
            simple += [
                r
                for r in _parameter_readings(fits[0], lr)
                if r.difference.kind == "normalized_step"
            ]
        else:
            text = (
                "every parameter moves by lr * sign(its gradient): the first step of an adaptive "
                "optimizer such as Adam (lr * g / (sqrt(g^2) + eps))"
            )
            difference = Difference("normalized_step", text, 1.0, exact=exact)
            simple.append(_Reading(difference, "a sign step (Adam)"))
    simpler = scale is not None and clips and (scale == 0.0 or _digits(scale) < max_norm_digits)
    readings = first + (simple + clips if simpler else clips + simple)
    if readings:
        return [_combined(readings)]
    wrong = [f for f in fits if not f.right]
    differences = [_parameter_difference(f, lr) for f in wrong]
    suffix = _right_words(fits, [f.name for f in wrong])
    if suffix:
        last = differences[-1]
        differences[-1] = dataclasses.replace(last, text=last.text + suffix)
    return differences


__all__ = [
    "KINDS",
    "BranchRow",
    "BranchTable",
    "Call",
    "Constant",
    "Difference",
    "LossTable",
    "ParameterFit",
    "Reading",
    "Scenario",
    "UpdateFit",
    "dim_constants",
    "loss_grad_table",
    "loss_weights",
    "name_constant",
    "parameter_updates",
    "probe_scenarios",
    "region",
    "short_decimal",
]
