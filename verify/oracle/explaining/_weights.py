"""The weight table of the loss (``loss_weights``). The loss is read as ``L = sum_p w_p
phi(output_p - target_p)``, every probe with exact residuals on targets that move from probe to
probe. First all residuals +1 (the total T). Where a probe of one row and one of one column each
resolve a single element (``_resolves``: ``2 k gamma_{k+3}(u) < 1`` for k = O and k = N; k <= 9
in bfloat16, 30 in float16), +1 on one row at a time (N calls; none when N = 1) and on one
column at a time (O calls; none when O = 1) give the weights as rank one, ``w_ij = R_i C_j / T``
(the mean, a column, a row, all but a row), snapped to named constants; phi is read at the
element of largest estimated weight, alone at +1, -2 and +0.5 (|r| gives 1 : 2 : 0.5, r^2 1 : 4
: 0.25, Huber 0.5 : 1.5 : 0.125, a signed r 1 : -2 : 0.5: linearity in |r| and its sign); one
more probe puts distinct magnitudes with mixed signs on every element; then the reading is
*verified* on every probe. If it fails (or rows are too long to resolve one element), ``L = max
|r|`` is tried on every probe (the row probes are not additive), then every element is read
alone (N*O calls, for at most ``MAX_ONE_AT_A_TIME`` elements; phi from 2 more where a counting
element had not been found) and verified.
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

**Limits.** The loss is known on its probes: a phi that agrees with
``|r|`` at 0.25 ... 3.5 passes; ``max`` and ``sum`` agree when N*O = 1; a weight off by less than
its probe's bound (about ``gamma_{k+3}(u) k`` of one element, k the row, column or N*O terms)
is read as the named one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ... import bounds
from ._readings import (
    FLOAT64_SLACK,
    Call,
    Constant,
    Difference,
    dim_words,
    name_constant,
    name_in,
    no_result,
    region,
)

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
        summed), ``max``, ``norm`` (a matrix norm of it), or ``""`` where L is neither.
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
    return abs(probe.value - exact) <= bound * FLOAT64_SLACK


def _snap(estimate: np.ndarray, rel: float, dims: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Estimated weights as named constants (``name_in`` within ``rel``), zero below ``rel``
    of the largest; False where some weight is not a named constant (kept as estimated)."""
    largest = float(np.max(np.abs(estimate), initial=0.0))
    distinct, inverse = np.unique(estimate, return_inverse=True)
    snapped = np.zeros_like(distinct)
    exact = True
    for k, value in enumerate(distinct.tolist()):
        if abs(value) <= rel * largest:
            continue
        spread = rel * abs(value)
        named = name_in(value - spread, value + spread, *dims, digits=2)
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
            return Difference("zero", "L is 0: no |output - target| is summed", 0.0)
        if c.value == -1.0:
            return Difference("sign_flip", "L is -sum |output - target|: the sign is flipped", -1)
        if mean is not None and mean.sign > 0:
            return Difference(
                "mean",
                f"L is the mean over {dim_words(mean)} (every weight {c.symbol()} = {c.number()})",
                c.value,
            )
        return Difference("scaled", f"L is {c.symbol()} x the sum (every weight {c.number()})",
                          c.value)  # fmt: skip
    over = f" averaged over {dim_words(mean)} = {mean.den}" if mean and mean.sign > 0 else ""
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
            how = f"averages output - target over {dim_words(mean)} = {mean.den}"
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


#: Norms of the (N, O) residual ``r = output - target`` taken for the L1 loss, each with the
#: function that computes it and the number of terms its rounding grows with: numpy's
#: ``np.linalg.norm`` of a 2-D array is a matrix norm, not the sum of |r|.
_NORMS: tuple[tuple[str, Callable[[np.ndarray], float]], ...] = (
    (
        "L is the largest column sum of |output - target|, not the sum over every element "
        "(np.linalg.norm(output - target, ord=1) of a 2-D array: an induced matrix norm)",
        lambda r: float(np.abs(r).sum(axis=0).max()),
    ),
    (
        "L is the largest row sum of |output - target|, not the sum over every element "
        "(np.linalg.norm(output - target, ord=np.inf) of a 2-D array)",
        lambda r: float(np.abs(r).sum(axis=1).max()),
    ),
    (
        "L is sqrt(sum (output - target)^2), the Frobenius norm, not the L1 loss "
        "(np.linalg.norm(output - target) of a 2-D array)",
        lambda r: float(np.sqrt(np.sum(r * r))),
    ),
)


def _norm_of(probes: Sequence[_LossProbe], u: float, tiny: float) -> str | None:
    """The words of the one matrix norm every probe's L is (within the rounding of a sum of
    every element and a square root), or None."""
    terms = max((p.residual.size for p in probes), default=1)

    def within(value: float, expected: float, p: _LossProbe) -> bool:
        slack = bounds.gamma(terms + 4, u) * float(np.sum(np.abs(p.residual))) + terms * tiny
        return abs(value - expected) <= slack

    for words, norm in _NORMS:
        expected = [norm(p.residual) for p in probes]
        # A norm that is the sum on these dims (a row sum with N = 1) says nothing here.
        sums = [float(np.sum(np.abs(p.residual))) for p in probes]
        same_as_sum = all(within(s, e, p) for s, e, p in zip(sums, expected, probes, strict=True))
        if not same_as_sum and all(
            within(p.value, e, p) for e, p in zip(expected, probes, strict=True)
        ):
            return words
    return None


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
        return LossTable(len(prober.probes), (no_result("the loss"),))
    except _NonFinite as error:
        text = f"L is {error.value} with {error.what}"
        return LossTable(len(prober.probes), (Difference("nan", text),))


#: The most elements read one at a time (one call each) when the rows and columns do not give
#: the weights: the probe budget of a loss whose sides the counterexample grew.
MAX_ONE_AT_A_TIME = 160


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
    norm = _norm_of(prober.probes, u, tiny)
    if norm is not None:
        return LossTable(len(prober.probes), (Difference("wrong_loss", norm),), "norm")
    if n * o > MAX_ONE_AT_A_TIME:
        text = (
            f"L is not read as a weighted sum of its rows and columns; its {n * o} elements are "
            f"not read one at a time (more than {MAX_ONE_AT_A_TIME})"
        )
        return LossTable(len(prober.probes), (Difference("not_weighted_sum", text),), "")
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
