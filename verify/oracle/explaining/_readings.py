"""What the structural readings of a wrong result share (``_branches``, ``_weights``,
``_updates``): a ``Difference`` from the contract in words, constants named by the dims
(``1/(N*O)``, ``-1/N``: a mean, a sign flip and a mean) or as the shortest decimal an interval
holds, and regions of an (N, O) array in words. Plain numpy.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

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
    "zero": "the result is all zeros: nothing is computed",
}

FLOAT64_SLACK = 1.0 + 2.0**-40


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
        return number_text(self.value, plus)

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


def dim_words(reading: Reading) -> str:
    """The dims of a reading's divisor: ``N*O``, or ``O = N*O`` where they coincide."""
    return " = ".join(reading.labels)


def number_text(value: float, plus: bool = False) -> str:
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
    return name_in(value - rel * abs(value), value + rel * abs(value), n, o) or Constant(value)


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


def significant_digits(value: float) -> int:
    for d in range(1, 18):
        if float(f"{value:.{d - 1}e}") == value:
            return d
    return 17


def name_in(lo: float, hi: float, n: int, o: int, digits: int = 2) -> Constant | None:
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


def no_result(what: str) -> Difference:
    return Difference("no_result", f"{what} gave no result for a probe (it raised or returned "
                      "the wrong shape)")  # fmt: skip
