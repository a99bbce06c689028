"""The branch table of loss_grad (``loss_grad_table``): what it returns where output > target,
where output < target and at ties, against +1 / -1 / the tie convention. ``probe_scenarios``
lists K = 19 pairs (output, target), exact in every dtype the error model covers (at most 3
significant bits, normal numbers even in float16): 8 with output > target, their 8 mirror images
with output < target and 3 ties (output = target = 1.25, -0.75, 0). Within each branch ``|output
- target|`` takes 0.25, 0.5, 0.75 (below 1), 2.5, 3, 3.5 (above 1: a squared error's or a Huber
gradient's shape shows) and a near tie ``2^e`` (``e`` = -40, -30, -30, -14 for float64, float32,
bfloat16, float16: below the epsilons people add), with output and target of both signs and of
opposite signs (``sign(output)`` and ``sign(target)`` part ways). Call k gives position p = i *
O + j the scenario ``(p + k) mod K``: after K calls every position has seen every scenario, so
the table is read per position (a bug in one column or one row shows), and every call mixes
scenarios. Two more calls check that the function is element-wise: every position at scenario 0,
then position p at scenario ``(7 p + 3) mod K`` (other neighbours, another mix); a value that
moved says the function is not element-wise, and that is then all it says. **Calls: K + 2 =
21**, whatever N and O.

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

**Limits.** loss_grad is known on the 19 scenarios only: a
threshold between them, or an epsilon below ``2^e``, is invisible, and an epsilon is located
only between ``2^e`` and 0.25; a normalisation whose denominator is the same on every input
(``seed / sum |seed| = seed / (N*O)``) *is* a mean and is named so; with N*O = 1 no mean, no
position and no neighbour can show.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ... import bounds
from ._readings import (
    Call,
    Constant,
    Difference,
    dim_words,
    name_constant,
    name_in,
    no_result,
    number_text,
    region,
)

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
            return _Model(form, lo, hi, name_in(lo, hi, *dims, digits=3))
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
        return model.named.number(plus=True) if model.named else number_text(model.k, plus=True)
    if model.form in ("linear", "clipped"):
        return _formula_text(model.form, model.named, model.k)
    if model.form == "nan":
        return "NaN"
    shown = ", ".join(number_text(v, plus=True) for v in model.values[:4])
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
    above, below = group.above.model, group.below.model
    if above is None or below is None or above.form != below.form:
        return None
    if above.form not in ("linear", "clipped"):
        return None
    lo, hi = max(above.low, below.low), min(above.high, below.high)
    if lo > hi:
        return None
    tie = group.tie.constant()
    if tie is None or not tie.contains(0.0):
        return None
    return _Model(above.form, lo, hi, name_in(lo, hi, *dims, digits=3))


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
                    f"{dim_words(reading)} = {reading.den}{sign_words}"
                )
        return f"loss_grad returns {formula}: a multiple of output - target (a squared error's)"
    if k is not None and k.reading(1, "") is not None:
        return f"loss_grad returns {formula}: the smooth L1 / Huber gradient (beta = 1){sign_words}"
    reading = k.mean() if k is not None else None
    if reading is not None:
        return (
            f"loss_grad returns {formula}: the gradient of the smooth L1 loss's mean over "
            f"{dim_words(reading)} = {reading.den} (F.smooth_l1_loss's default){sign_words}"
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
                f"({pinned}) gives {number_text(tie, plus=True)}{scaled}",
                constant.k if constant is not None else None,
            )
        ]
    limit = abs(c) * (1 + 2 * tol) + 2 * tiny
    if np.all(np.abs(values) <= limit):
        return []
    outside = f"[-{number_text(abs(c))}, {number_text(abs(c))}]" if c != 1.0 else "[-1, 1]"
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
            f"every value x {c.symbol()} = {c.number()} (a mean over {dim_words(mean)})"
        )
    if mean is not None:
        return "flipped_mean", (
            f"the sign is flipped and divided by {dim_words(mean)} = {mean.den}"
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
            f"loss_grad returns {number_text(value, plus=True)} where output {relation} target by "
            f"only {near_size}{at_ties}, {number_text(-value, plus=True)} where by {rest_size} or "
            "more: "
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
    above, below = group.above.constant(), group.below.constant()
    tie_checked = True
    if above is not None and below is not None:
        if above.contains(1.0) and below.contains(-1.0):
            scale = Constant(1.0)
        else:
            lo, hi = max(above.low, -below.high), min(above.high, -below.low)
            named = name_in(lo, hi, *dims, digits=3) if lo <= hi else None
            if lo <= hi:
                scale = named or Constant(0.5 * (lo + hi))
                kind, words = _scale_text(scale)
                flipped = number_text(-scale.value, plus=True) if named is None else _negate(scale)
                differences.append(
                    Difference(
                        kind,
                        f"loss_grad returns {scale.number(plus=True)} where output > target and "
                        f"{flipped} "
                        f"where output < target: {words}",
                        scale.value,
                        exact=named is not None,
                    )
                )
            else:
                wrong = []
                if not above.contains(1.0):
                    wrong.append("output > target should give +1")
                if not below.contains(-1.0):
                    wrong.append("output < target should give -1")
                differences.append(
                    Difference(
                        "branch",
                        f"loss_grad returns {_model_text(above)} where output > target and "
                        f"{_model_text(below)} where output < target: {' and '.join(wrong)}",
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
            return BranchTable(calls, (no_result("loss_grad"),))
        table[positions, which] = result
    for which in (np.zeros(size, int), (7 * positions + 3) % count):
        result = _probe(call, scenarios, which, n, o)
        calls += 1
        if result is None:
            return BranchTable(calls, (no_result("loss_grad"),))
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
