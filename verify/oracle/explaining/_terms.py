"""The term map: which products of input elements a (bi)linear result actually sums.

The results of the layer that are (bi)linear in their inputs are fixed by the products they sum::

    forward  output[n, o] = sum_i x[n, i] * w[i, o]  (+ b[o])   "ni,io->no"
    grad_x   dL_dx[n, i]  = sum_o dL_do[n, o] * w[i, o]          "no,io->ni"
    grad_w   dL_dw[i, o]  = sum_n x[n, i] * dL_do[n, o]          "ni,no->io"
    grad_b   dL_db[o]     = sum_n dL_do[n, o]                    "no->o" (linear)

``term_map`` recovers, with exact small-integer probes, the map a candidate actually computes and
states a bug as its difference from the contract: terms missing, added k times, paired with
the wrong element of the other operand (or the other operand transposed), scaled; offsets; an
all-zero result; or that the result is not (bi)linear on the probes, and then nothing else.

**Labels.** In a spec ``"LL,RR->OO"`` the left operand shares label ``a`` with the result, the
right one ``c``, and ``k`` is contracted (forward: a = n, k = i, c = o; grad_b has no c).

**Probes.** One operand, the *sparse* one, holds one nonzero per value f of its free label, at
``k = pattern[f]``; the other, the *dense* one, is nonzero everywhere. Under the contract every
result element then receives exactly one product (left sparse: element (a, c) gets
``left[a, pattern[a]] * right[pattern[a], c]``), and a product the candidate forms with a
support element and *any* dense element shows. A pattern is read with

- a *count* probe (16 on the support, ones on the dense side): element r reads 16 times the
  total weight ``c_r`` of its products: 1 under the contract, 0 missing, 2 added twice, 0.5...;
- *digit* probes: the base-16 digits of each support element's number on the sparse side (dense
  side ones), then of each dense element's flat index on the dense side (support ones):
  element r reads ``c_r * digit`` of the element each side gave its product;

and the whole map by one *zero* probe (both operands 0): the constant part ``o`` (a bias, a
stray +0.1). A product's two elements are thus read as integers, without assuming where.

Patterns are scrambled: ``pattern[f] = ks[((f + j*S) * m + s) mod len(ks)]`` with ``m`` and its
inverse far from 0 and from 1, 2, 3 times a unit modulo len(ks): the sparse side's free index
and k are not correlated, so a condition on one (n >= 128) is not the same set of probed terms
as a condition on the other (i >= 128), as on a diagonal. ``ceil(K/S)`` patterns probe every
k (``ks`` = 0..K-1); every value of the other two labels is probed in every pattern.

**Verification.** The decoded map predicts a probe with random small signed integers (sparse
side in +-1 on the union of up to 4 patterns' supports, dense side in +-1..+-3). An element
whose prediction fails, or whose reads are not one product's, is *not decoded* and is
never described as decoded. When one is, four probes test (bi)linearity: f(L, 0) and f(0, R)
must be the constant part, f(-L, R) and f(L, -R) its mirror (one probe for grad_b); if one
fails the map is ``not_linear`` and nothing else is claimed. If they pass, the other operand is
made the sparse one when that design probes every k within ``max_calls``, and the reading with
fewer undecoded elements is kept: a misplaced read of the sparse operand gives one support
element two products, which the other design reads as one each.

**Exactness.** In a digit probe an element sums, under the contract, one product ``digit * 1``
and zeros: every partial sum a candidate can form, in any order or blocking, is 0 or the digit.
Digits are < 16, the count probe's product 16, and a verification element sums at most 4
products of |value| <= 3: at most 12. Integers up to 256 are exact in bfloat16 (8
significant bits), up to 2048 in float16 and TF32 (11 bits): every probe value is exact in
float64, float32, bfloat16, float16, and in a float32 candidate that rounds its matmul inputs
to bfloat16 or TF32 or accumulates in bfloat16. A weight with at most 4 significant bits (2, 3,
15, 0.5, -1, 0.75: terms added k times, halving, a sign) keeps ``weight * digit`` within 8
bits: still exact. Then every read is exact integer arithmetic: a digit is accepted only when
``v - o == c * digit`` to the bit, the verification only when it matches to the bit. The
caller's expected offset (b) should be small integers for the same reason.

Only a constant the candidate brings itself that no short binary float holds (a division by
N*O, a stray 0.1; a weight beside a nonzero b) makes its results inexact, by the candidate's
own rounding. There, and only there, a read allows that rounding: of the value, of the offset
and of the weight's reading (16 * weight + o) times the digit, at bfloat16's precision (2^-7
for two roundings: a float32 candidate may round inside) when that bound stays below a
quarter of the gap ``|c|`` between neighbouring integers, so the integer read is unique; else
at the dtype's (float32's at least); else the element is not decoded (a weight 1/130 beside
b = 3 in bfloat16: 3 + d/130 rounds to steps of 2^-6). A short weight reading beside a
nonzero constant part is trusted to be exact only when bfloat16's rounding blurs it by less
than 2^-5 (a 4-bit value's nearest neighbour is 2^-4 away); such a reading is snapped to the
one dims constant or 4-bit value within its blur, at the dtype's precision first, and left as
read when two are. The verification allows the same bound. A constant is named by the dims
(``-1/(N*O)``) within one rounding in the dtype (float32 inside float64), and written in the
fewest digits some float format rounds back to it (bfloat16's 0.10009765625 is 0.1); an offset
differs from the expected one beyond the dtype's rounding of b.

**Budget.** With S the size of the sparse operand's free label, K the contracted size, D the
dense operand's size and P = ceil(K / S) patterns::

    calls = 1 + P * (1 + digits16(S) + digits16(D)) + ceil(P / 4)

(digits16(n): the base-16 digits of n - 1, 0 for n = 1; a linear map has no dense side, its
digits16(D) is 0), for the cheaper of the two designs (left sparse on ties; ``planned_calls``).
Only when some element is not decoded: + 4 (bi)linearity probes (1 for grad_b) + the other
design's calls when it probes every k within ``max_calls``. Sides 515: 1 + (1 + 3 + 5) + 1 = 11
calls; forward at (130, 131, 133): 1 + (1 + 4 + 2) + 1 = 9; (515, 515, 4): 1 + (1 + 3 + 3) + 1
= 9. A result small next to K (batch 1 and one output) needs about K / max(N, O) patterns,
a few calls each: ``max_calls`` (default 48) caps P so that the map and its (bi)linearity
probes fit; then only P * S values of k are probed (``TermMap.covered``), a quarter of them at
each end of 0..K-1 (where a blocked loop's first and partial last blocks are), the rest evenly
between, and a bound between two probed values is stated with the values left open
(``i >= 512 (i = 411..511 undetermined)``). Memory and time are O((digits) * N * O) per probe.

**Descriptions.** A deviation is a set of probed terms; its region is the rule on the labels'
values with the fewest bounds, then the fewest labels (a bound, an interval, a conjunction of
bounds on two or three labels, or everywhere) that holds on every term of the set and on no
term that contradicts it (a term that fits both the contract and the deviation, a diagonal
element of a transpose, may fall either side). Two rules the probes cannot tell apart are both
named; when none fits, the count and each label's range. Misplaced terms are grouped by how
each index of the product relates to the term's labels (``label + d`` or ``d - label``); a
group is named when a rule gives its region or it holds a quarter of them, the rest are
counted as in no simple pattern.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import ml_dtypes
import numpy as np

#: call(left, right) -> the candidate's result as float64, None when the call failed. The caller
#: builds the full call (other arguments, e.g. b, fixed) around it; right is None for grad_b.
Call = Callable[[np.ndarray, np.ndarray | None], np.ndarray | None]

BASE = 16
#: patterns per verification probe (its elements then sum at most this many products)
CHUNK = 4
DEFAULT_MAX_CALLS = 48
_SPARSE_VALUES = np.array([-1.0, 1.0])
_DENSE_VALUES = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
#: the relative rounding of two bfloat16 operations: the noise allowed where a value is inexact
_COARSE = 2.0**-7
#: the count probe's value on the sparse side: 16 times the weight is read, so an inexact
#: offset's rounding blurs the weight 16 times less (16 * 15 = 240 is still exact in bfloat16)
_COUNT = 16.0
#: undecoded reasons
_READS, _VERIFY, _UNCHECKED, _HIDDEN, _ROUNDING = 1, 2, 3, 4, 5


@dataclasses.dataclass(frozen=True)
class Contract:
    """One (bi)linear result: its name, einsum spec, operands' names and, when the contract has
    one, the name of its expected constant part (forward: ``"b[o]"``)."""

    result: str
    spec: str
    left: str
    right: str | None
    offset: str | None = None


CONTRACTS: dict[str, Contract] = {
    "forward": Contract("output", "ni,io->no", "x", "w", "b[o]"),
    "grad_x": Contract("dL_dx", "no,io->ni", "dL_do", "w"),
    "grad_w": Contract("dL_dw", "ni,no->io", "x", "dL_do"),
    "grad_b": Contract("dL_db", "no->o", "dL_do", None),
}


@dataclasses.dataclass(frozen=True)
class Difference:
    """One way the candidate's map differs from the contract.

    ``kind``: missing, extra (terms added k times), misplaced, scattered (misplaced in no simple
    pattern), transposed, scaled, offset, zero, not_linear, not_decoded, failed. ``value``: the
    weight or offset, when there is one. ``fraction``: the share of the probed terms (offsets: of
    the result's elements) it holds on.
    """

    kind: str
    text: str
    value: float | None
    fraction: float


@dataclasses.dataclass(frozen=True)
class TermMap:
    """The map a candidate computes, as its differences from the contract.

    ``status``: ``contract`` (no difference), ``decoded`` (differences, every element decoded),
    ``not_decoded`` (some elements not decoded: their difference says so; the others are
    described), ``not_linear`` or ``failed`` (one difference says why; nothing else claimed).
    ``terms``: probed terms (one per result element and pattern); ``covered``: the values of
    the contracted label probed, of ``contracted``.
    """

    contract: Contract
    status: str
    differences: tuple[Difference, ...]
    calls: int
    terms: int = 0
    covered: int = 0
    contracted: int = 0
    #: whether an expected constant part was given (the formula shows it)
    offset: bool = False

    def lines(self) -> list[str]:
        """The description: a head line, then one line per difference."""
        verdict = {
            "contract": "the contract's map on the probes",
            "decoded": "differs",
            "not_decoded": "not decoded everywhere",
            "not_linear": "no term map",
            "failed": "no term map",
        }[self.status]
        probed = f"{self.calls} call" + ("s" if self.calls != 1 else "")
        if self.terms:
            probed = f"{self.terms} probed terms, " + probed
        if self.covered < self.contracted:
            k = _roles(self.contract).k
            probed += f"; {k} probed at {self.covered} of its {self.contracted} values"
        colon = ":" if self.differences else ""
        head = f"{_formula(self.contract, self.offset)}: {verdict} ({probed}){colon}"
        return [head, *(f"  - {d.text}" for d in self.differences)]


# --- labels, names ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Roles:
    """A spec's labels: each operand's, the result's, and the roles a, k, c (c "" if linear)."""

    left: str
    right: str
    result: str
    a: str
    k: str
    c: str
    labels: str  # every label once, in order of first appearance


def _roles(contract: Contract) -> _Roles:
    inputs, result = contract.spec.split("->")
    left, _, right = inputs.partition(",")
    (k,) = [label for label in left if label not in result]
    (a,) = [label for label in left if label in result]
    c = "".join(label for label in right if label in result)
    labels = "".join(dict.fromkeys(left + right + result))
    return _Roles(left, right, result, a, k, c, labels)


def _element(name: str, labels: Sequence[str]) -> str:
    return f"{name}[{', '.join(labels)}]"


def _product(contract: Contract, roles: _Roles) -> str:
    """The contract's term: ``x[n, i] * w[i, o]`` (linear: ``dL_do[n, o]``)."""
    left = _element(contract.left, roles.left)
    if contract.right is None:
        return left
    return f"{left} * {_element(contract.right, roles.right)}"


def _formula(contract: Contract, offset: bool) -> str:
    roles = _roles(contract)
    bias = f" + {contract.offset}" if contract.offset and offset else ""
    return (
        f"{_element(contract.result, roles.result)} = sum_{roles.k} "
        f"{_product(contract, roles)}{bias}"
    )


def _dims_constants(sizes: Mapping[str, int]) -> list[tuple[float, str]]:
    """``(value, name)`` for +-p and +-1/p, p a product of distinct dims (p > 1)."""
    named: list[tuple[float, str]] = []
    labels = sorted(sizes, key=lambda label: "nio".find(label))
    for count in range(1, len(labels) + 1):
        for subset in itertools.combinations(labels, count):
            product = math.prod(sizes[label] for label in subset)
            if product <= 1:
                continue
            name = "*".join(label.upper() for label in subset)
            inverse = f"1/({name})" if count > 1 else f"1/{name}"
            for sign, text in ((1, ""), (-1, "-")):
                named.append((float(sign * product), f"{text}{name}"))
                named.append((sign / product, f"{text}{inverse}"))
    return named


def _number(value: float, sign: str = "", within: float = 0.0) -> str:
    """``value`` in the fewest significant digits that some float format a candidate may
    compute in (float64, float32, bfloat16, float16) rounds back to it: a bfloat16 0.1
    (0.10009765625) is ``0.1``, a float32 weight 1 + 2^-20 is ``1.000001``, not ``1``."""
    # no 1e+02 for 100, but no 39 digits for float32's largest either
    whole = len(str(int(abs(value)))) if 1 <= abs(value) < 1e6 else 1
    for shown in range(1, 18):
        text = f"{value:{sign}.{max(shown, whole)}g}"
        if _rounds_to(float(text), value) or abs(float(text) - value) <= within:
            return text
    return text


def _rounds_to(decimal: float, value: float) -> bool:
    formats = [np.float64, np.float32, ml_dtypes.bfloat16]
    if abs(decimal) <= 65504:
        formats.append(np.float16)
    with np.errstate(over="ignore"):  # past bfloat16's largest: inf, which equals no value
        return any(float(np.asarray(decimal, dtype)) == value for dtype in formats)


def dims_name(value: float, sizes: Mapping[str, int], rel_tol: float = 2.0**-20) -> str:
    """``value`` named by the dims when it is +-(a product of them) or its inverse, within
    ``rel_tol``: ``-1/(N*O)``, ``1/N``, ``N*O``; a short binary value as a number (``2``,
    ``0.5``, ``-1``, with the dims' name beside it when one matches, ``0.5 (= 1/N)``); any other
    value in the fewest digits a float format rounds back to it (``0.3``, ``1.000001``).
    ``sizes``: ``{"n": N, "i": I, "o": O}``."""
    matches = list(
        dict.fromkeys(
            name
            for target, name in _dims_constants(sizes)
            if abs(value - target) <= rel_tol * abs(target)
        )
    )
    # a plain number (an integer, a few eighths) reads better than its dims' name
    plain = abs(value) <= 16 and value * 8 == round(value * 8)
    if plain:
        return _number(value) + (f" (= {matches[0]})" if matches else "")
    if len(matches) > 1:
        values = {target for target, name in _dims_constants(sizes) if name in matches[:2]}
        why = "the dims are equal" if len(values) == 1 else "the dtype cannot tell them apart"
        return f"{' or '.join(matches[:2])} ({why})"
    if matches:
        return matches[0]
    return _number(value)


def _times(weight: float) -> str | None:
    """``twice`` for 2, ``3 times``...: a positive integer weight > 1 is a term added k times."""
    if weight >= 2 and weight == round(weight) and weight <= 64:
        return "twice" if weight == 2 else f"{int(weight)} times"
    return None


# --- plans ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A design: which operand is sparse, and its patterns (per pattern: the k of each value of
    the sparse operand's free label, an (S,) int array)."""

    sparse: str  # "left" or "right"
    patterns: tuple[np.ndarray, ...]
    full: int  # the patterns that cover every k
    sparse_digits: int
    dense_digits: int

    @property
    def calls(self) -> int:
        return _cost(len(self.patterns), self.sparse_digits, self.dense_digits)


def _cost(patterns: int, sparse_digits: int, dense_digits: int) -> int:
    return patterns * (1 + sparse_digits + dense_digits) + math.ceil(patterns / CHUNK)


def _digits(count: int) -> int:
    """Base-16 digits of the numbers 0..count-1 (0 when there is only one)."""
    return 0 if count <= 1 else len(np.base_repr(count - 1, BASE))


def _scramble(size: int) -> tuple[int, int]:
    """A multiplier m coprime with ``size`` whose multiples j*m and j*m^-1 (j = 1, 2, 3) stay
    far from 0 modulo size, and a shift: consecutive k are far apart in the free index."""
    if size <= 2:
        return 1, 0

    def spread(m: int) -> int:
        inverse = pow(m, -1, size)
        return min(min(j * x % size, -j * x % size) for x in (m, inverse) for j in (1, 2, 3))

    centre = round(size * 0.618)
    candidates = [
        m for m in range(max(1, centre - 64), min(size, centre + 64)) if math.gcd(m, size) == 1
    ]
    best = max(candidates, key=lambda m: (spread(m), -abs(m - centre)))
    return best, size // 3


def _operand_labels(roles: _Roles, sparse: str) -> tuple[str, str, str]:
    """(sparse operand's labels, dense operand's labels, the sparse one's free label)."""
    if sparse == "left":
        return roles.left, roles.right, roles.a
    return roles.right, roles.left, roles.c


def _plan(roles: _Roles, sizes: Mapping[str, int], sparse: str, patterns: int | None) -> _Plan:
    _, dense_labels, free = _operand_labels(roles, sparse)
    free_size, k_size = sizes[free], sizes[roles.k]
    full = math.ceil(k_size / free_size)
    count = full if patterns is None else max(1, min(patterns, full))
    ks = _sample(k_size, count * free_size)
    m, s = _scramble(len(ks))
    made = tuple(
        ks[((np.arange(free_size) + j * free_size) * m + s) % len(ks)] for j in range(count)
    )
    dense = math.prod(sizes[label] for label in dense_labels)
    dense_digits = _digits(dense) if dense_labels else 0
    return _Plan(sparse, made, full, _digits(free_size), dense_digits)


def _sample(size: int, count: int) -> np.ndarray:
    """``count`` values of 0..size-1 to probe (all when count >= size): a quarter from each
    end, where a blocked loop's first and partial last blocks are, the rest evenly between."""
    if count >= size:
        return np.arange(size)
    end = count // 4
    middle = np.linspace(end, size - end - 1, count - 2 * end).round().astype(np.int64)
    return np.concatenate([np.arange(end), middle, np.arange(size - end, size)])


def _fit(roles: _Roles, sizes: Mapping[str, int], plan: _Plan, budget: int) -> _Plan | None:
    """``plan`` with as many patterns as ``budget`` calls allow (None: not even one)."""
    per = (plan.sparse_digits, plan.dense_digits)
    fitting = [p for p in range(1, plan.full + 1) if _cost(p, *per) <= budget]
    if not fitting:
        return None
    return _plan(roles, sizes, plan.sparse, max(fitting))


def _designs(roles: _Roles, sizes: Mapping[str, int]) -> list[_Plan]:
    """Every design with all its patterns, the cheapest first (left sparse on ties)."""
    sides = ("left", "right") if roles.right else ("left",)
    return sorted((_plan(roles, sizes, side, None) for side in sides), key=lambda p: p.calls)


def _checks(roles: _Roles) -> int:
    """The (bi)linearity probes run when some element is not decoded."""
    return 4 if roles.right else 1


def _first(roles: _Roles, sizes: Mapping[str, int], max_calls: int) -> _Plan:
    best = _designs(roles, sizes)[0]
    fitted = _fit(roles, sizes, best, max_calls - 1 - _checks(roles))
    return fitted if fitted is not None else _plan(roles, sizes, best.sparse, 1)


def planned_calls(
    contract: Contract, sizes: Mapping[str, int], max_calls: int = DEFAULT_MAX_CALLS
) -> int:
    """The calls ``term_map`` makes when every element decodes (the budget formula)."""
    roles = _roles(contract)
    return 1 + _first(roles, sizes, max_calls).calls


# --- calls ------------------------------------------------------------------------------------


class _Stop(Exception):
    """A probe that ends the map: a failed call, a wrong shape, NaN."""

    def __init__(self, status: str, difference: Difference) -> None:
        super().__init__(difference.text)
        self.status = status
        self.difference = difference


@dataclasses.dataclass
class _Prober:
    """Makes the calls and counts them; a failed call or a NaN ends the map (``_Stop``)."""

    call: Call
    contract: Contract
    roles: _Roles
    sizes: Mapping[str, int]
    dtype: np.dtype
    calls: int = 0

    def __call__(self, left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
        """The result of ``call`` on the operands (float64, cast to dtype), flattened (E,)."""
        self.calls += 1
        cast = None if right is None else right.astype(self.dtype)
        got = self.call(left.astype(self.dtype), cast)
        shape = tuple(self.sizes[label] for label in self.roles.result)
        if got is None:
            text = f"a call failed: no term map of {self.contract.result}"
            raise _Stop("failed", Difference("failed", text, None, 1.0))
        result = np.asarray(got, dtype=np.float64)
        if result.shape != shape:
            text = f"a call returned shape {result.shape}, not {shape}: no term map"
            raise _Stop("failed", Difference("failed", text, None, 1.0))
        bad = ~np.isfinite(result).reshape(-1)
        if bad.any():
            where = _extent(
                _result_values(self.roles, self.sizes), bad, self.roles.result, self.sizes
            )
            text = (
                f"{_not_linear(self.contract)}: NaN or inf in {bad.sum()} of {bad.size} "
                f"elements of a probe{where}"
            )
            raise _Stop("not_linear", Difference("not_linear", text, None, float(bad.mean())))
        return result.reshape(-1)


def _not_linear(contract: Contract) -> str:
    operands = contract.left if contract.right is None else f"{contract.left} and {contract.right}"
    kind = "linear" if contract.right is None else "(bi)linear"
    return f"{contract.result} is not a {kind} map of {operands} on the probes"


def _place(
    labels: str,
    sizes: Mapping[str, int],
    free: str,
    k: str,
    pattern: np.ndarray,
    values: np.ndarray,
) -> np.ndarray:
    """An operand (float64) holding ``values[f]`` at free = f, k = pattern[f], zeros elsewhere."""
    out = np.zeros(tuple(sizes[label] for label in labels))
    f = np.arange(len(pattern))
    out[tuple(f if label == free else pattern for label in labels)] = values
    return out


def _ask(
    prober: _Prober, sparse: str, sparse_operand: np.ndarray, dense: np.ndarray | None
) -> np.ndarray:
    if sparse == "left":
        return prober(sparse_operand, dense)
    assert dense is not None
    return prober(dense, sparse_operand)


def _result_values(roles: _Roles, sizes: Mapping[str, int]) -> np.ndarray:
    """(E, len(result)) the result labels' values of each flattened element."""
    shape = tuple(sizes[label] for label in roles.result)
    return np.indices(shape).reshape(len(shape), -1).T


# --- reading ----------------------------------------------------------------------------------


def _short(values: np.ndarray, bits: int = 4) -> np.ndarray:
    """Whether each value has at most ``bits`` significant bits (0 included): with 4, times a
    digit < 16 it stays within bfloat16's 8."""
    mantissa, _ = np.frexp(np.abs(values))
    scaled = mantissa * 2.0**bits
    return scaled == np.rint(scaled)


def _blur(weight: np.ndarray, o: np.ndarray, rel: float = _COARSE) -> np.ndarray:
    """How far a weight read beside a constant part can be from the candidate's: two roundings
    (``rel``, bfloat16's by default) of the count probe's value, 16 * weight + o."""
    return rel * (np.abs(weight) + np.abs(o) / _COUNT)


def _fine(dtype: np.dtype) -> float:
    """Two roundings in ``dtype``, or in float32 inside a float64 candidate (never coarser
    than bfloat16's)."""
    return min(_COARSE, max(2 * float(np.finfo(dtype).eps), 2.0**-20))


def _tolerance(
    shifted: np.ndarray,
    o: np.ndarray,
    weight: np.ndarray,
    factor: np.ndarray,
    fine: float,
    trusted: np.ndarray,
) -> np.ndarray:
    """How far a value read (less the offset, ``shifted``) may be from ``weight * factor``.

    0 when weight and offset are short and the weight's reading is trusted (exact). Else the
    rounding of the value, of the offset and of the weight's reading times ``factor``: at
    bfloat16's precision (a candidate that rounds inside) when that bound is below a quarter
    of the gap ``|weight|`` between neighbouring integers, so the integer read is unique; else
    at the dtype's (``fine``);
    else -1, no read fits: the candidate's own rounding leaves the integer undetermined.
    """
    exact = _short(weight) & _short(o) & trusted
    gap = np.abs(weight) / 4
    coarse = _COARSE * (np.abs(shifted) + 2 * np.abs(o)) + np.abs(factor) * _blur(weight, o)
    close = fine * (np.abs(shifted) + 2 * np.abs(o)) + np.abs(factor) * _blur(weight, o, fine)
    bound = np.where(coarse < gap, coarse, np.where(close < gap, close, -1.0))
    return np.where(exact, 0.0, bound)


def _weights(
    count: np.ndarray, o: np.ndarray, constants: np.ndarray, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Each element's total weight from the count probe (``_COUNT`` on the support), and
    whether its reading can be trusted to be exact.

    A weight within the dtype's resolution of a dims constant is that constant (float32's
    1/515 is 1/N). Beside a constant part the candidate's own rounding of ``16 * weight + o``
    may blur the reading (o not short, or the weight not short and o not 0): it is snapped to
    the one dims constant or 4-bit value within two roundings in the dtype, else within two
    bfloat16 roundings; two candidates within reach (1/130 and 2^-7 beside a bias of 3 in
    bfloat16) leave it as read. A short reading beside a constant part is trusted to be
    exact only when bfloat16's rounding blurs it by less than 2^-5 (a 4-bit value's nearest
    neighbour is 2^-4 away): else a weight 1/130 may read 2^-7.
    """
    raw = (count - o) / _COUNT
    blurred = (~_short(o) | (~_short(raw) & (o != 0))) & (raw != 0)
    mantissa, exponent = np.frexp(raw)
    candidates = [np.ldexp(np.rint(mantissa * 16), exponent - 4)]
    candidates += [np.full(raw.shape, value) for value in np.unique(constants)]
    table = np.stack(candidates)  # (C, E)
    distance = np.abs(table - raw)
    nearest = table[distance.argmin(0), np.arange(raw.size)]
    weight = raw.copy()
    settled = ~blurred
    for reach in (_blur(raw, o, _fine(dtype)), _blur(raw, o)):
        inside = distance <= reach
        # distinct values within reach (the 4-bit rounding may equal a dims constant)
        alone = inside.sum(0) - (inside[0] & np.any(inside[1:] & (table[1:] == table[0]), 0))
        take = ~settled & (alone == 1)
        weight = np.where(take, nearest, weight)
        settled |= take
    # an exact reading (no constant part to blur it) within the dtype's rounding of a dims
    # constant: float32's 1/515
    if len(table) > 1:
        gaps = distance[1:]
        closest = table[1:][gaps.argmin(0), np.arange(raw.size)]
        named = ~blurred & (raw != 0) & (gaps.min(0) <= _resolution(dtype) * np.abs(raw))
        weight = np.where(named, closest, weight)
    trusted = (o == 0) | (_blur(raw, o) <= 2.0**-5 * np.abs(raw))
    return weight, trusted


def _resolution(dtype: np.dtype) -> float:
    """A constant's resolution: one rounding in the dtype, or in float32 inside a float64
    candidate."""
    return max(float(np.finfo(dtype).eps), 2.0**-20)


def _read(
    values: np.ndarray,
    o: np.ndarray,
    weight: np.ndarray,
    count: int,
    fine: float,
    trusted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each element's element number from its digit probes ``values`` (D, E).

    Returns (ids (E,), -1 where no product or not read; ok (E,); blurred (E,): some digit's
    rounding could not be resolved, ``_tolerance`` -1): the digits are integers in 0..15
    within ``_tolerance``, the number is < count; an element without product reads the offset
    on every probe.
    """
    has = weight != 0
    if values.shape[0] == 0:
        return np.where(has, 0, -1), np.ones(has.shape, bool), np.zeros(has.shape, bool)
    shifted = values - o
    digit = np.clip(np.nan_to_num(np.rint(shifted / np.where(has, weight, 1.0))), -1, BASE)
    tolerance = _tolerance(shifted, o, weight, digit, fine, trusted)
    fits = np.abs(shifted - digit * weight) <= tolerance
    blurred = has & np.any(tolerance < 0, axis=0)
    in_range = (digit >= 0) & (digit < BASE)
    ids = (digit.astype(np.int64) * (BASE ** np.arange(len(digit), dtype=np.int64))[:, None]).sum(0)
    ok_with = np.all(fits & in_range, axis=0) & (ids < count)
    ok_without = np.all(shifted == 0, axis=0)
    ok = np.where(has, ok_with, ok_without)
    return np.where(has & ok, ids, -1), ok, blurred


@dataclasses.dataclass(frozen=True)
class _Pattern:
    """One pattern's reading, per result element (E,)."""

    weight: np.ndarray  # 0: no product
    free: np.ndarray  # the sparse element's free index (expected one where none)
    dense: np.ndarray  # the dense element's flat index (0 where none)
    has: np.ndarray  # a product was read
    why: np.ndarray  # 0 decoded, else why not: _READS, _VERIFY, _UNCHECKED, _HIDDEN
    trusted: np.ndarray  # the weight's reading is exact where weight and offset are short


def _read_pattern(
    prober: _Prober,
    roles: _Roles,
    sizes: Mapping[str, int],
    plan: _Plan,
    pattern: np.ndarray,
    o: np.ndarray,
    constants: np.ndarray,
) -> _Pattern:
    sparse_labels, dense_labels, free = _operand_labels(roles, plan.sparse)
    dense_shape = tuple(sizes[label] for label in dense_labels)
    ones = np.ones(len(pattern))
    support = _place(sparse_labels, sizes, free, roles.k, pattern, ones)
    dense_ones = np.ones(dense_shape) if dense_labels else None
    count = _ask(prober, plan.sparse, _COUNT * support, dense_ones)
    numbers = np.arange(len(pattern))
    sparse_reads = [
        _ask(
            prober,
            plan.sparse,
            _place(sparse_labels, sizes, free, roles.k, pattern, digit),
            dense_ones,
        )
        for digit in _digit_values(numbers, plan.sparse_digits)
    ]
    dense_numbers = np.arange(math.prod(dense_shape)).reshape(dense_shape)
    dense_reads = [
        _ask(prober, plan.sparse, support, digit)
        for digit in _digit_values(dense_numbers, plan.dense_digits)
    ]
    weight, trusted = _weights(count, o, constants, prober.dtype)
    fine = _fine(prober.dtype)
    reads = (_stack(sparse_reads, o), _stack(dense_reads, o))
    free_id, ok_sparse, blur_sparse = _read(reads[0], o, weight, len(pattern), fine, trusted)
    dense_id, ok_dense, blur_dense = _read(reads[1], o, weight, dense_numbers.size, fine, trusted)
    ok = ok_sparse & ok_dense
    failed = np.where(blur_sparse | blur_dense, _ROUNDING, _READS)
    has = (weight != 0) & ok
    # no product read beside an inexact offset large enough that its rounding would swallow a
    # product of the pattern's typical weight: "missing" would be a guess
    # (with none read, _missing says how light a hidden one would be)
    typical = np.median(np.abs(weight[has])) if has.any() else 0.0
    hidden = ok & ~has & (_COARSE * np.abs(o) >= _COUNT * typical / 4) & has.any()
    expected = _result_values(roles, sizes)[:, roles.result.index(free)]
    return _Pattern(
        weight=weight,
        free=np.where(has, free_id, expected),
        dense=np.where(has, dense_id, 0),
        has=has,
        why=np.where(ok, np.where(hidden, _HIDDEN, 0), failed),
        trusted=trusted,
    )


def _digit_values(numbers: np.ndarray, digits: int) -> list[np.ndarray]:
    return [(numbers // BASE**j) % BASE for j in range(digits)]


def _stack(reads: list[np.ndarray], o: np.ndarray) -> np.ndarray:
    return np.stack(reads) if reads else np.zeros((0, o.size))


# --- verification -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Sample:
    """A verification probe: its operands (float64) and the candidate's result (E,)."""

    left: np.ndarray
    right: np.ndarray | None
    value: np.ndarray


def _verify(
    prober: _Prober,
    roles: _Roles,
    sizes: Mapping[str, int],
    plan: _Plan,
    read: list[_Pattern],
    o: np.ndarray,
    rng: np.random.Generator,
) -> tuple[list[_Pattern], _Sample]:
    """Each chunk of patterns predicted on random signed integers; an element whose prediction
    fails is marked not decoded in each of the chunk's patterns."""
    sparse_labels, dense_labels, free = _operand_labels(roles, plan.sparse)
    dense_shape = tuple(sizes[label] for label in dense_labels)
    checked = list(read)
    first: _Sample | None = None
    for start in range(0, len(read), CHUNK):
        chunk = range(start, min(start + CHUNK, len(read)))
        dense = rng.choice(_DENSE_VALUES, dense_shape) if dense_labels else None
        sparse = np.zeros(tuple(sizes[label] for label in sparse_labels))
        predicted = o.copy()
        comparable = np.ones(o.shape, bool)
        exact = _short(o)
        smallest = np.full(o.shape, np.inf)
        spread = np.zeros(o.shape)  # sum of |product| * (|weight| + |o| / 16)
        for p in chunk:
            values = rng.choice(_SPARSE_VALUES, len(plan.patterns[p]))
            sparse += _place(sparse_labels, sizes, free, roles.k, plan.patterns[p], values)
            piece = read[p]
            partner = 1.0 if dense is None else dense.reshape(-1)[piece.dense]
            product = values[piece.free] * partner
            predicted += np.where(piece.has, piece.weight * product, 0.0)
            spread += np.where(piece.has, np.abs(product) * _blur(piece.weight, o, 1.0), 0.0)
            comparable &= piece.why == 0
            exact &= _short(piece.weight) & (piece.trusted | ~piece.has)
            smallest = np.where(piece.has, np.minimum(smallest, np.abs(piece.weight)), smallest)
        got = _ask(prober, plan.sparse, sparse, dense)
        if first is None:
            left, right = (sparse, dense) if plan.sparse == "left" else (dense, sparse)
            assert left is not None
            first = _Sample(left, right, got)
        # as _tolerance: the rounding of an inexact weight or offset, at bfloat16's precision
        # where it leaves the integer unique, else the dtype's; elements with no product read
        # are fl(0 + o) = o exactly
        fine = _fine(prober.dtype)
        size = np.abs(predicted - o) + 2 * np.abs(o) + spread
        coarse, close = _COARSE * size, fine * size
        bound = np.where(coarse < smallest / 4, coarse, np.where(close < smallest / 4, close, -1.0))
        tolerance = np.where(exact, 0.0, np.where(np.isfinite(smallest), bound, 0.0))
        wrong = comparable & (np.abs(got - predicted) > tolerance)
        for p in chunk:
            # a reading the union could not check (another pattern's is not decoded) is not
            # described either
            why = np.where(wrong, _VERIFY, read[p].why)
            why = np.where(~comparable & (why == 0), _UNCHECKED, why)
            checked[p] = dataclasses.replace(read[p], why=why, has=read[p].has & (why == 0))
    assert first is not None
    return checked, first


def _linear_failure(
    prober: _Prober, contract: Contract, sample: _Sample, o: np.ndarray
) -> str | None:
    """Why the result is not (bi)linear on the probes, or None when these checks pass."""
    if sample.right is not None:
        if not np.array_equal(prober(sample.left, np.zeros_like(sample.right)), o):
            return f"it changes with {contract.left} while {contract.right} is 0"
        if not np.array_equal(prober(np.zeros_like(sample.left), sample.right), o):
            return f"it changes with {contract.right} while {contract.left} is 0"
    # rounding to nearest is symmetric: a (bi)linear candidate's mirror is exact where the
    # constant part is 0; beside one, up to the rounding of the sums (bfloat16's at worst)
    mirrors = [(contract.left, -sample.left, sample.right)]
    if sample.right is not None:
        mirrors.append((contract.right or "", sample.left, -sample.right))
    for name, left, right in mirrors:
        mirror = prober(left, right)
        spread = np.abs(sample.value) + np.abs(mirror) + 2 * np.abs(o)
        tolerance = np.where(o == 0, 0.0, _COARSE * spread)
        if np.any(np.abs((mirror - o) + (sample.value - o)) > tolerance):
            return f"negating {name} does not negate it"
    return None


# --- the probed terms -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Terms:
    """Every probed term (one per result element and pattern), T of them.

    ``values`` (T, L): each label's value (the result's labels from the element, k from the
    sparse element of its product, or the expected one where there is none); ``observed``
    (T, Q): the indices of the product's left then right element, -1 where none; ``weight``
    (T,); ``has`` (T,) a product read; ``why`` (T,) 0 decoded, else why not.
    """

    values: np.ndarray
    observed: np.ndarray
    weight: np.ndarray
    has: np.ndarray
    why: np.ndarray
    covered: int

    @property
    def decoded(self) -> np.ndarray:
        return self.why == 0


def _terms(roles: _Roles, sizes: Mapping[str, int], plan: _Plan, read: list[_Pattern]) -> _Terms:
    _, dense_labels, free = _operand_labels(roles, plan.sparse)
    dense_shape = tuple(sizes[label] for label in dense_labels)
    elements = _result_values(roles, sizes)
    values, observed = [], []
    for pattern, piece in zip(plan.patterns, read, strict=True):
        k = pattern[piece.free]
        index = {label: elements[:, roles.result.index(label)] for label in roles.result}
        index[roles.k] = k
        values.append(np.stack([index[label] for label in roles.labels], axis=1))
        sparse_index = {free: piece.free, roles.k: k}
        unravelled = np.unravel_index(piece.dense, dense_shape) if dense_labels else ()
        dense_index = dict(zip(dense_labels, unravelled, strict=True))
        left, right = (
            (sparse_index, dense_index) if plan.sparse == "left" else (dense_index, sparse_index)
        )
        positions = [left[label] for label in roles.left] + [right[label] for label in roles.right]
        seen = np.stack(positions, axis=1)
        observed.append(np.where(piece.has[:, None], seen, -1))
    covered = len(np.unique(np.concatenate(plan.patterns)))
    return _Terms(
        values=np.concatenate(values),
        observed=np.concatenate(observed),
        weight=np.concatenate([piece.weight for piece in read]),
        has=np.concatenate([piece.has for piece in read]),
        why=np.concatenate([piece.why for piece in read]),
        covered=covered,
    )


def _run(
    prober: _Prober,
    roles: _Roles,
    sizes: Mapping[str, int],
    plan: _Plan,
    o: np.ndarray,
    constants: np.ndarray,
    rng: np.random.Generator,
) -> tuple[_Terms, _Sample]:
    read = [_read_pattern(prober, roles, sizes, plan, p, o, constants) for p in plan.patterns]
    checked, sample = _verify(prober, roles, sizes, plan, read, o, rng)
    return _terms(roles, sizes, plan, checked), sample


# --- regions ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Region:
    """Where a deviation holds: ``everywhere``, a ``rule`` ("i >= 512"), or neither (then
    ``extent``: "on 37 of 515 probed terms (n in 128..129 of 130)")."""

    everywhere: bool
    rule: str | None
    extent: str


def _bound_text(label: str, lo: tuple[int, int] | None, hi: tuple[int, int] | None) -> str:
    """One label's bounds; each is (value, farthest value the probes allow) for lo (the lowest
    value in, the lowest it could be) and hi (the highest in, the highest it could be)."""
    if lo is not None and hi is not None:
        if lo[0] == hi[0] and lo[1] == lo[0] and hi[1] == hi[0]:
            return f"{label} = {lo[0]}"
        text = f"{lo[0]} <= {label} < {hi[0] + 1}"
        return text + _gaps(label, lo, hi)
    if lo is not None:
        return f"{label} >= {lo[0]}" + _gaps(label, lo, None)
    assert hi is not None
    if hi[0] == 0 and hi[1] == 0:
        return f"{label} = 0"
    return f"{label} < {hi[0] + 1}" + _gaps(label, None, hi)


def _gaps(label: str, lo: tuple[int, int] | None, hi: tuple[int, int] | None) -> str:
    """Where the probes leave a bound open: ``(n = 125..127 undetermined)``."""

    def span(first: int, last: int) -> str:
        return f"{label} = {first}" if first == last else f"{label} = {first}..{last}"

    notes = []
    if lo is not None and lo[1] < lo[0]:
        notes.append(span(lo[1], lo[0] - 1))
    if hi is not None and hi[1] > hi[0]:
        notes.append(span(hi[0] + 1, hi[1]))
    return f" ({' and '.join(notes)} undetermined)" if notes else ""


def _rule(
    values: np.ndarray,
    names: str,
    required: np.ndarray,
    forbidden: np.ndarray,
    subset: tuple[int, ...],
) -> tuple[str, int] | None:
    """The box of ``required`` on the labels ``subset``, with every bound no forbidden term
    needs dropped, and its number of bounds; None when a forbidden term is inside."""
    lo = values[required].min(0)
    hi = values[required].max(0)
    bad = values[forbidden]

    def admits(bounds: list[tuple[int, str]]) -> np.ndarray:
        inside = np.ones(len(bad), bool)
        for column, side in bounds:
            inside &= bad[:, column] >= lo[column] if side == "lo" else bad[:, column] <= hi[column]
        return inside

    kept = [(column, side) for column in subset for side in ("lo", "hi")]
    if admits(kept).any():
        return None
    for bound in list(kept):
        trial = [b for b in kept if b != bound]
        if not admits(trial).any():
            kept = trial
    parts = []
    for column in subset:
        sides: dict[str, tuple[int, int]] = {}
        for side in ("lo", "hi"):
            if (column, side) not in kept:
                continue
            others = admits([b for b in kept if b != (column, side)])
            if side == "lo":
                below = bad[others & (bad[:, column] < lo[column]), column]
                sides[side] = (int(lo[column]), int(below.max()) + 1)
            else:
                above = bad[others & (bad[:, column] > hi[column]), column]
                sides[side] = (int(hi[column]), int(above.min()) - 1)
        if sides:
            parts.append(_bound_text(names[column], sides.get("lo"), sides.get("hi")))
    return " and ".join(parts), len(kept)


def _extent(values: np.ndarray, members: np.ndarray, names: str, sizes: Mapping[str, int]) -> str:
    """Each label's range over ``members``, where it is not the label's whole range."""
    if not members.any():
        return ""
    chosen = values[members]
    parts = []
    for column, label in enumerate(names):
        lo, hi = int(chosen[:, column].min()), int(chosen[:, column].max())
        if (lo, hi) != (0, sizes[label] - 1):
            parts.append(f"{label} in {lo}..{hi} of {sizes[label]}")
    return f" ({', '.join(parts)})" if parts else ""


def _region(
    values: np.ndarray,
    names: str,
    sizes: Mapping[str, int],
    required: np.ndarray,
    forbidden: np.ndarray,
    unit: str = "probed terms",
) -> _Region:
    """The simplest rule that holds on every ``required`` term and on no ``forbidden`` one."""
    extent = f"on {required.sum()} of {len(required)} {unit}" + _extent(
        values, required, names, sizes
    )
    if not forbidden.any():
        return _Region(True, None, extent)
    # the fewest bounds, then the fewest labels: a half-line (i >= 512, where a blocked loop's
    # partial block is) is simpler than a point (n = 191) that selects the same probed terms
    found: dict[str, tuple[int, int]] = {}
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(range(len(names)), size):
            rule = _rule(values, names, required, forbidden, subset)
            if rule is not None:
                found.setdefault(rule[0], (rule[1], size))
    if not found:
        return _Region(False, None, extent)
    best = min(found.values())
    rules = [text for text, rank in found.items() if rank == best]
    if len(rules) > 1:
        also = " or ".join(rules[1:])
        return _Region(False, f"{rules[0]} (the probes cannot tell it from {also})", extent)
    return _Region(False, rules[0], extent)


# --- descriptions -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Context:
    contract: Contract
    roles: _Roles
    sizes: Mapping[str, int]
    dtype: np.dtype
    sparse: str

    @property
    def result(self) -> str:
        return _element(self.contract.result, self.roles.result)

    def name(self, value: float) -> str:
        return dims_name(value, self.sizes, _resolution(self.dtype))

    def number(self, value: float, sign: str = "", within: float = 0.0) -> str:
        return _number(value, sign, within)


def _expression(label: str | None, delta: int, reflected: bool = False, size: int = 0) -> str:
    """``i - 512``, ``o + 1``; reflected: ``O - 1 - o`` (``size`` the axis's), ``7 - o``; no
    label: the constant ``7``."""
    if label is None:
        return str(delta)
    if reflected:
        head = f"{label.upper()} - 1" if delta == size - 1 else str(delta)
        return f"{head} - {label}"
    if delta == 0:
        return label
    return f"{label} + {delta}" if delta > 0 else f"{label} - {-delta}"


def _missing(ctx: _Context, terms: _Terms, o: np.ndarray) -> list[Difference]:
    missing = terms.decoded & ~terms.has
    if not missing.any():
        return []
    # with no product read anywhere there is no typical weight to tell a missing term from one
    # too light to show beside the constant part (16 * weight lost in its rounding): say so
    hidden = 0.0 if terms.has.any() else _COARSE * float(np.abs(o).max()) / _COUNT
    caveat = f" (or weighs each under {hidden:.2g}, lost in the rounding of the constant"
    caveat = caveat + " part)" if hidden else ""
    region = _region(terms.values, ctx.roles.labels, ctx.sizes, missing, ~missing)
    product = _product(ctx.contract, ctx.roles)
    if region.everywhere:
        text = f"{ctx.result} lacks every term {product}"
    elif region.rule:
        text = f"{ctx.result} lacks {product} for {region.rule}"
    else:
        text = f"{ctx.result} lacks {product} {region.extent}"
    return [Difference("missing", text + caveat, 0.0, float(missing.mean()))]


def _weighted(ctx: _Context, terms: _Terms, same: np.ndarray) -> list[Difference]:
    """Terms read where the contract puts them, with a weight other than 1."""
    weighted = terms.decoded & terms.has & same & (terms.weight != 1)
    found = []
    for weight in np.unique(terms.weight[weighted]):
        members = weighted & (terms.weight == weight)
        region = _region(terms.values, ctx.roles.labels, ctx.sizes, members, ~members)
        times = _times(float(weight))
        fraction = float(members.mean())
        # A whole result k times over is a scale (2 * (x @ w)); terms added again in a region
        # are extra (a partial sum added twice).
        if times and not region.everywhere:
            if region.rule:
                text = f"the terms {region.rule} are added {times}"
            else:
                text = f"terms are added {times} {region.extent}"
            found.append(Difference("extra", text, float(weight), fraction))
            continue
        name = ctx.name(float(weight))
        if region.everywhere:
            text = f"every term x {name}"
        elif region.rule:
            text = f"every term with {region.rule} x {name}"
        else:
            text = f"terms are scaled x {name} {region.extent}"
        found.append(Difference("scaled", text, float(weight), fraction))
    return found


def _signatures(terms: _Terms, members: np.ndarray, contract_labels: list[int]) -> np.ndarray:
    """Per member term, each observed index as an expression of one of the term's labels:
    ``label + delta`` (column < L), ``delta - label`` (L <= column < 2L, a reflection) or the
    constant ``delta`` (column 2L: one row for every term, a row copied down), the one whose
    delta is the most common among the members; on ties the contract's label, then the
    constant (``x[7, i]`` rather than ``x[i - 36, i]`` where only i = 43 is probed).
    Returns (M, 2Q) int: the Q expression columns, then the Q deltas."""
    values = terms.values[members].T  # (L, M): rows are contiguous
    observed = terms.observed[members].T
    count, positions = values.shape[1], len(observed)
    both = np.concatenate([values, -values, np.zeros((1, count), values.dtype)])
    constant = len(both) - 1
    columns = np.empty((positions, count), np.int64)
    deltas = np.empty((positions, count), np.int64)
    everyone = np.arange(count)
    for j in range(positions):
        delta = observed[j] - both
        score = np.empty(delta.shape, np.int64)
        for column, row in enumerate(delta):
            shifted = row - row.min()
            tie = 2 * (column == contract_labels[j]) + (column == constant)
            score[column] = np.bincount(shifted)[shifted] * 4 + tie
        best = score.argmax(0)
        columns[j] = best
        deltas[j] = delta[best, everyone]
    return np.concatenate([columns, deltas]).T


def _relations(
    terms: _Terms, members: np.ndarray, contract_labels: list[int], rounds: int
) -> np.ndarray:
    """``_signatures`` of ``members``, a group at a time: the largest group's relations are
    chosen among all members, the next among the members it leaves, and so on (``rounds``
    groups, the rest as the last round gives them). A relation is chosen by how often its
    delta occurs; counted among every member, a small group's (a wrapped row: x[129, i] with
    dL_do[0, o]) is one that other groups' terms happen to share (``18 - i``), not its own
    (``n - 129``)."""
    indices = np.flatnonzero(members)
    signature = np.empty((len(indices), 2 * len(contract_labels)), np.int64)
    left = np.ones(len(indices), bool)
    for _ in range(rounds):
        mask = np.zeros_like(members)
        mask[indices[left]] = True
        found = _signatures(terms, mask, contract_labels)
        signature[left] = found
        ids = _group_ids(found)
        placed = np.flatnonzero(left)[ids == np.bincount(ids).argmax()]
        left[placed] = False
        if not left.any():
            break
    return signature


def _group_ids(table: np.ndarray) -> np.ndarray:
    """Equal rows of an int table (M, C) share an id (0..groups-1): the columns as digits of
    one int64 key (compressed when it would overflow), then one sort."""
    key = np.zeros(len(table), np.int64)
    radix = 1
    for column in table.T:
        digit = column - column.min()
        span = int(digit.max()) + 1
        if radix * span >= 2**62:
            _, key = np.unique(key, return_inverse=True)
            radix = int(key.max()) + 1
        key = key * span + digit
        radix *= span
    _, ids = np.unique(key, return_inverse=True)
    return ids.reshape(-1)


def _predict(terms: _Terms, columns: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """(T, Q) the indices an expression signature gives every term."""
    constant = np.zeros((len(terms.values), 1), terms.values.dtype)
    both = np.concatenate([terms.values, -terms.values, constant], axis=1)
    return both[:, columns] + deltas


def _misplaced(ctx: _Context, terms: _Terms, same: np.ndarray, limit: int = 4) -> list[Difference]:
    """Terms whose product pairs other elements than the contract's, grouped by how; a group
    is named when a rule gives its region or it is a quarter of them, the rest counted."""
    roles = ctx.roles
    misplaced = terms.decoded & terms.has & ~same
    if not misplaced.any():
        return []
    positions = roles.left + roles.right
    contract_labels = [roles.labels.index(label) for label in positions]
    signature = _relations(terms, misplaced, contract_labels, limit)
    _, weight_group = np.unique(terms.weight[misplaced], return_inverse=True)
    group_of = _group_ids(np.concatenate([signature, weight_group.reshape(-1, 1)], axis=1))
    counts = np.bincount(group_of)
    indices = np.flatnonzero(misplaced)
    found = []
    named = np.zeros(len(terms.weight), bool)
    q = len(positions)
    for g in np.argsort(-counts, kind="stable")[:limit]:
        members = np.zeros(len(terms.weight), bool)
        members[indices[group_of == g]] = True
        row = signature[np.flatnonzero(group_of == g)[0]]
        columns, deltas = row[:q], row[q:]
        weight = float(terms.weight[members][0])
        fits = terms.decoded & terms.has & (terms.weight == weight)
        fits &= np.all(terms.observed == _predict(terms, columns, deltas), axis=1)
        region = _region(terms.values, roles.labels, ctx.sizes, members, ~fits)
        if region.rule is None and not region.everywhere and counts[g] * 4 < len(indices):
            continue
        named |= members
        found.append(_misplaced_text(ctx, columns, deltas, weight, region, float(members.mean())))
    rest = misplaced & ~named
    if rest.any():
        found.append(_scattered(ctx, terms, rest))
    return found


def _scattered(ctx: _Context, terms: _Terms, rest: np.ndarray) -> Difference:
    """Misplaced terms in no simple pattern: which indices differ, how many, where."""
    roles, contract = ctx.roles, ctx.contract
    positions = roles.left + roles.right
    expected = terms.values[:, [roles.labels.index(label) for label in positions]]
    differs = np.any(terms.observed[rest] != expected[rest], axis=0)
    shown = ["?" if d else label for d, label in zip(differs, positions, strict=True)]
    summed = _element(contract.left, shown[: len(roles.left)])
    if contract.right is not None:
        summed += f" * {_element(contract.right, shown[len(roles.left) :])}"
    count = f"on {rest.sum()} of {len(rest)} probed terms"
    extent = _extent(terms.values, rest, roles.labels, ctx.sizes)
    text = f"{ctx.result} sums {summed} (? other than the contract's) in no simple pattern, "
    return Difference("scattered", text + count + extent, None, float(rest.mean()))


def _misplaced_text(
    ctx: _Context,
    labels: np.ndarray,
    deltas: np.ndarray,
    weight: float,
    region: _Region,
    fraction: float,
) -> Difference:
    roles, contract = ctx.roles, ctx.contract
    names, width = roles.labels, len(roles.labels)
    positions = roles.left + roles.right
    exprs = [
        _expression(
            names[column % width] if column < 2 * width else None,
            int(delta),
            column >= width,
            ctx.sizes[positions[j]],
        )
        for j, (column, delta) in enumerate(zip(labels, deltas, strict=True))
    ]
    left_exprs, right_exprs = exprs[: len(roles.left)], exprs[len(roles.left) :]
    contract_exprs = list(roles.left + roles.right)
    sparse_first = ctx.sparse == "left"
    span = slice(0, len(roles.left)) if sparse_first else slice(len(roles.left), None)
    anchor_kept = exprs[span] == contract_exprs[span]
    where = (
        "" if region.everywhere else f" for {region.rule}" if region.rule else f" {region.extent}"
    )
    scale = "" if weight == 1 else f" x {ctx.name(weight)}"
    kind = "misplaced"
    if contract.right is not None and anchor_kept:
        anchor_name, partner_name = (
            (contract.left, contract.right) if sparse_first else (contract.right, contract.left)
        )
        anchor_labels = roles.left if sparse_first else roles.right
        partner_labels = roles.right if sparse_first else roles.left
        partner = right_exprs if sparse_first else left_exprs
        if sorted(partner) == sorted(partner_labels) and list(partner) != list(partner_labels):
            kind = "transposed"
            text = (
                f"{partner_name}'s indices are swapped: {_element(partner_name, partner)} "
                f"where {_element(partner_name, partner_labels)} belongs"
            )
        else:
            text = (
                f"{_element(anchor_name, anchor_labels)} is paired with "
                f"{_element(partner_name, partner)}"
            )
    else:
        summed = _element(contract.left, left_exprs)
        if contract.right is not None:
            summed += f" * {_element(contract.right, right_exprs)}"
        text = f"{ctx.result} sums {summed} (not {_product(contract, roles)})"
    return Difference(kind, text + scale + where, weight, fraction)


def _undecoded(ctx: _Context, terms: _Terms) -> list[Difference]:
    found = []
    result_columns = [ctx.roles.labels.index(label) for label in ctx.roles.result]
    for why, what in (
        (_READS, ("sums", "sum", "more than one product: not decoded")),
        (
            _VERIFY,
            (
                "does",
                "do",
                "not sum the product its probes read (the verification disagrees): not decoded",
            ),
        ),
        (
            _UNCHECKED,
            (
                "is",
                "are",
                "not verified (their element is not decoded in another pattern of the "
                "same verification probe): not described",
            ),
        ),
        (
            _ROUNDING,
            (
                "is",
                "are",
                "not decoded: beside the constant part the candidate's rounding is coarser "
                "than the weight lets a digit be read",
            ),
        ),
        (
            _HIDDEN,
            (
                "reads",
                "read",
                "no product, but the rounding of the constant part could hide one: not decoded",
            ),
        ),
    ):
        members = terms.why == why
        if not members.any():
            continue
        first = terms.values[np.flatnonzero(members)[0], result_columns]
        example = f"e.g. {ctx.contract.result}[{', '.join(str(int(v)) for v in first)}]"
        region = _region(terms.values, ctx.roles.labels, ctx.sizes, members, ~members)
        if region.everywhere:
            text = f"every probed element ({example}) {what[0]} {what[2]}"
        elif region.rule:
            text = f"the probed elements with {region.rule} ({example}) {what[1]} {what[2]}"
        else:
            count = f"{members.sum()} of {len(members)} probed elements"
            ranges = _extent(terms.values, members, ctx.roles.labels, ctx.sizes)
            inner = f"{example}; {ranges[2:-1]}" if ranges else example
            text = f"{count} ({inner}) {what[1]} {what[2]}"

        found.append(Difference("not_decoded", text, None, float(members.mean())))
    return found


def _offsets(ctx: _Context, o: np.ndarray, expected: np.ndarray) -> list[Difference]:
    """The constant part (zero inputs) against the expected one."""
    roles, sizes = ctx.roles, ctx.sizes
    difference = o - expected
    # read exactly: what differs is the candidate's, beyond its rounding of b in the dtype
    # (float32's at least)
    blur = _fine(ctx.dtype) * (np.abs(o) + np.abs(expected))
    noise = np.where(_short(o) & _short(expected), 0.0, blur)
    off = np.abs(difference) > noise
    if not off.any():
        return []
    fraction = float(off.mean())
    name = ctx.contract.offset or "the expected offset"
    result = ctx.contract.result
    if np.any(expected != 0):
        if np.all(np.abs(o) <= noise):
            return [Difference("offset", f"{result} lacks the offset {name}", 0.0, fraction)]
        nonzero = expected != 0
        ratio = float(np.median(o[nonzero] / expected[nonzero]))
        if np.all(np.abs(o - ratio * expected) <= 2 * noise):
            times = _times(ratio)
            text = (
                f"{name} is added {times}"
                if times and ratio == round(ratio)
                else f"{name} x {ctx.name(ratio)}"
            )
            return [Difference("offset", text, ratio, fraction)]
    values = _result_values(roles, sizes)
    first = float(difference[0])
    if np.all(np.abs(difference - first) <= 2 * noise):
        shown = ctx.number(first, "+", float(blur.max()))
        return [Difference("offset", f"{shown} on every element", first, fraction)]
    found = _offset_groups(ctx, difference, noise, off, values)
    if found is not None:
        return found
    extent = _extent(values, off, roles.result, sizes)
    text = (
        f"the constant part differs from the contract's on {off.sum()} of {off.size} "
        f"elements{extent}"
    )
    return [Difference("offset", text, None, fraction)]


def _offset_groups(
    ctx: _Context, difference: np.ndarray, noise: np.ndarray, off: np.ndarray, values: np.ndarray
) -> list[Difference] | None:
    """Up to three offsets, each on a region a rule gives; else offsets that depend on one
    result label only (+c[o] per column); None when neither fits."""
    roles, sizes = ctx.roles, ctx.sizes
    # values within the constant part's rounding (twice the noise) are one offset
    step = 2 * float(noise.max())
    rounded = np.where(off, np.rint(difference / step) if step else difference, 0.0)
    distinct = np.unique(rounded[off])
    if len(distinct) <= 3:
        found = []
        for value in distinct:
            members = off & (rounded == value)
            region = _region(values, roles.result, sizes, members, ~members, "elements")
            if region.rule is None:
                break
            middle = float(np.median(difference[members]))
            shown = ctx.number(middle, "+", float(noise[members].max()))
            text = f"{shown} on the elements {region.rule}"
            found.append(Difference("offset", text, middle, float(members.mean())))
        else:
            return found
    shape = tuple(sizes[label] for label in roles.result)
    if len(shape) != 2:
        return None
    grid = difference.reshape(shape)
    slack = (2 * noise).reshape(shape)
    for axis, label in enumerate(roles.result):
        line = np.take(grid, [0], axis=1 - axis)
        if np.all(np.abs(grid - line) <= slack):
            vector = line.reshape(-1)
            shown = ", ".join(ctx.number(v) for v in vector[:4])
            shown += ", ..." if len(vector) > 4 else ""
            text = f"+c[{label}] per {('row', 'column')[axis]} (c = {shown})"
            return [Difference("offset", text, None, float(off.mean()))]
    return None


def _describe(
    ctx: _Context, terms: _Terms, o: np.ndarray, expected: np.ndarray
) -> tuple[Difference, ...]:
    roles = ctx.roles
    if terms.decoded.all() and not terms.has.any() and not np.any(o):
        text = f"no term is computed: {ctx.contract.result} is all zeros"
        return (Difference("zero", text, 0.0, 1.0),)
    positions = roles.left + roles.right
    contract_values = terms.values[:, [roles.labels.index(label) for label in positions]]
    same = np.all(terms.observed == contract_values, axis=1)
    return (
        *_missing(ctx, terms, o),
        *_weighted(ctx, terms, same),
        *_misplaced(ctx, terms, same),
        *_offsets(ctx, o, expected),
        *_undecoded(ctx, terms),
    )


# --- the map ----------------------------------------------------------------------------------


def term_map(
    call: Call,
    contract: Contract,
    sizes: Mapping[str, int],
    dtype: np.dtype | type,
    *,
    offset: np.ndarray | float | None = None,
    max_calls: int = DEFAULT_MAX_CALLS,
    seed: int = 0,
) -> TermMap:
    """The map ``call`` computes for ``contract``, as its differences from it.

    ``sizes``: ``{"n": N, "i": I, "o": O}`` (the labels of the spec); ``dtype``: the operands'
    dtype (numpy, or ``ml_dtypes.bfloat16``); ``offset``: the expected constant part (b,
    broadcast to the result; None: 0), small integers keep every probe exact; ``max_calls``
    caps the patterns (see the module's budget); ``seed``: the verification's values.
    """
    roles = _roles(contract)
    sizes = {label: int(sizes[label]) for label in roles.labels}
    dtype = np.dtype(dtype)
    shape = tuple(sizes[label] for label in roles.result)
    expected = np.zeros(math.prod(shape))
    if offset is not None:
        expected = np.broadcast_to(np.asarray(offset, np.float64), shape).reshape(-1).copy()
    prober = _Prober(call, contract, roles, sizes, dtype)
    constants = np.array([value for value, _ in _dims_constants(sizes)])
    rng = np.random.default_rng(seed)
    first = _first(roles, sizes, max_calls)
    ctx = _Context(contract, roles, sizes, dtype, first.sparse)
    try:
        zeros = [
            np.zeros(tuple(sizes[label] for label in labels))
            for labels in (roles.left, roles.right)
        ]
        o = prober(zeros[0], zeros[1] if roles.right else None)
        terms, sample = _run(prober, roles, sizes, first, o, constants, rng)
        if not terms.decoded.all():
            reason = _linear_failure(prober, contract, sample, o)
            if reason is not None:
                text = f"{_not_linear(contract)}: {reason}"
                difference = Difference("not_linear", text, None, 1.0)
                return TermMap(contract, "not_linear", (difference,), prober.calls)
            for design in _designs(roles, sizes):
                if design.sparse == first.sparse:
                    continue
                plan = _fit(roles, sizes, design, max_calls - prober.calls)
                if plan is None or len(plan.patterns) < plan.full:
                    continue  # fewer k probed: it would drop what the first design saw
                other, _ = _run(prober, roles, sizes, plan, o, constants, rng)
                if (~other.decoded).mean() < (~terms.decoded).mean():
                    terms, ctx = other, dataclasses.replace(ctx, sparse=plan.sparse)
    except _Stop as stop:
        return TermMap(contract, stop.status, (stop.difference,), prober.calls)
    differences = _describe(ctx, terms, o, expected)
    status = "decoded" if differences else "contract"
    if not terms.decoded.all():
        status = "not_decoded"
    return TermMap(
        contract,
        status,
        differences,
        prober.calls,
        terms=len(terms.weight),
        covered=terms.covered,
        contracted=sizes[roles.k],
        offset=offset is not None,
    )
