"""Exact mode's comparison of the step's three matrices by random projections (Freivalds).

A result ``R`` equals the exact ``F`` element for element exactly when ``R @ v == F @ v`` for
every ``v``. For one ``v`` with integer entries drawn uniformly from ``[0, 2^b)``, a row of ``R``
that differs from ``F``'s passes with probability at most ``2^-b`` (its error ``e`` is not zero,
and ``e . v = 0`` fixes one entry of ``v`` given the others); ``k`` independent columns of ``V``
make it ``2^-kb``, and ``CONFIDENCE_BITS`` sets ``k``. ``F @ V`` costs two thin products (``F =
dL_do @ w.T`` gives ``dL_do @ (w.T @ V)``), so the step's matrices are checked in O(N I + I O + N
O) work instead of the two matmuls that computing ``dL_dx`` and ``dL_dw`` costs: the oracle's
share of ``check_exact`` at 2048^3 drops from two matmuls plus a comparison to a few passes over
the results.

Every product is exact. The exact matrices are integers in units of ``unit`` (1 for the
gradients, ``min(lr, 1)`` for ``w_new``) bounded by ``bound``; a result that is not (a fraction,
NaN, inf, or too large) is wrong and is left to the full reference (``None``), so both sides of
every projection are sums of integers below 2^53 in float64, exact in any order.

The rows and the columns that fail their projections locate the differing elements; that block
is computed exactly and compared element by element, so the counts and the first differing
element are those of a full comparison (``_exact.compare_exact``), unless a wrong row or column
passed every projection (probability at most ``2^-CONFIDENCE_BITS`` each). The projections are
drawn from fresh entropy after the candidate has returned, so no candidate can aim at them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .messages import explain

#: A wrong row (or column) of a result passes all of its projections with probability at most
#: 2^-CONFIDENCE_BITS.
CONFIDENCE_BITS = 64

#: The widest entries a projection draws (more need no more columns; fewer when the sums would
#: leave float64's exact integers).
MAX_ENTRY_BITS = 24

#: The fewest bits per entry worth projecting with; below, the full reference decides.
MIN_ENTRY_BITS = 8

#: Integers float64 holds exactly (every partial sum must stay below).
FLOAT64_EXACT = 2.0**53


@dataclasses.dataclass(frozen=True)
class Product:
    """An exact matrix of the step, in integer units:
    ``F / unit = factor * (a @ b) + base / unit``.

    ``a`` ``(m, K)`` and ``b`` ``(K, n)`` hold integers (the data, or dL_do's +-1), at most
    ``a_max`` and ``b_max`` in magnitude; ``base`` ``(m, n)`` integers at most ``base_max``, or
    None; ``factor`` an integer; ``unit`` a power of two at most 1.
    """

    a: np.ndarray
    b: np.ndarray
    a_max: float
    b_max: float
    factor: float = 1.0
    base: np.ndarray | None = None
    base_max: float = 0.0
    unit: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.a.shape[0], self.b.shape[1]

    @property
    def bound(self) -> float:
        """The largest ``|F / unit|`` can be."""
        inner = self.a.shape[1] * self.a_max * self.b_max * abs(self.factor)
        return inner + self.base_max / self.unit

    def right(self, v: np.ndarray) -> np.ndarray:
        """``(F / unit) @ v``, exactly."""
        projected = self.factor * (self.a @ (self.b @ v))
        return projected if self.base is None else projected + (self.base @ v) / self.unit

    def left(self, u: np.ndarray) -> np.ndarray:
        """``u.T @ (F / unit)``, exactly."""
        projected = self.factor * ((u.T @ self.a) @ self.b)
        return projected if self.base is None else projected + (u.T @ self.base) / self.unit

    def block(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``(F / unit)[rows][:, columns]``, exactly."""
        exact = self.factor * (self.a[rows] @ self.b[:, columns])
        if self.base is None:
            return exact
        return exact + self.base[np.ix_(rows, columns)] / self.unit


def step_products(x: np.ndarray, w: np.ndarray, dL_do: np.ndarray, lr: float) -> dict[str, Product]:
    """The step's matrices on exact-mode data (integer ``x``, ``w``; ``dL_do`` +-1; ``lr`` a
    power of two): ``dL_dx = dL_do @ w.T``, ``dL_dw = x.T @ dL_do``, ``w_new = w - lr dL_dw``
    (in units of ``min(lr, 1)``: ``-(lr / unit) x.T @ dL_do + w / unit``)."""
    x_max, w_max = _largest(x), _largest(w)
    x64, w64, upstream = (np.asarray(a, dtype=np.float64) for a in (x, w, dL_do))
    unit = min(float(lr), 1.0)
    return {
        "dL_dx": Product(upstream, w64.T, 1.0, w_max),
        "dL_dw": Product(x64.T, upstream, x_max, 1.0),
        "w_new": Product(x64.T, upstream, x_max, 1.0, -float(lr) / unit, w64, w_max, unit),
    }


def _largest(a: np.ndarray) -> float:
    """``max |a|`` without a temporary array (NaN if a holds one; 0 if empty)."""
    return max(float(a.max()), -float(a.min())) if a.size else 0.0


def _entry_bits(terms: int, magnitude: float) -> int:
    """Bits per entry that keep a sum of ``terms`` products ``magnitude * entry`` exact."""
    room = FLOAT64_EXACT / (max(terms, 1) * max(magnitude, 1.0))
    # Two bits spare: a sum plus another of the same size (base @ v) stays below 2^52.
    return min(MAX_ENTRY_BITS, max(0, math.floor(math.log2(room)) - 2))


def _draws(
    rng: np.random.Generator, length: int, terms: int, magnitude: float
) -> np.ndarray | None:
    """``(length, k)`` integer entries for projections summing ``terms`` products of
    ``magnitude``, enough columns for ``CONFIDENCE_BITS``; None when too few bits fit."""
    bits = _entry_bits(terms, magnitude)
    if bits < MIN_ENTRY_BITS:
        return None
    columns = -(-CONFIDENCE_BITS // bits)
    return rng.integers(0, 1 << bits, size=(length, columns)).astype(np.float64)


#: Rows per pass of the integrality test (a small scratch instead of a whole copy).
CHUNK_ROWS = 256


def _integral_within(a: np.ndarray, bound: float) -> bool:
    """Whether every element of ``a`` is an integer of magnitude at most ``bound`` (NaN and
    inf are not), a chunk of rows at a time."""
    scratch = np.empty((min(CHUNK_ROWS, a.shape[0]), a.shape[1]), a.dtype)
    for start in range(0, a.shape[0], CHUNK_ROWS):
        chunk = a[start : start + CHUNK_ROWS]
        rounded = np.rint(chunk, out=scratch[: chunk.shape[0]])
        if not np.array_equal(rounded, chunk) or not _largest(chunk) <= bound:
            return False
    return True


def _in_units(result: np.ndarray, product: Product, out: np.ndarray) -> np.ndarray | None:
    """``result / unit`` in float64 (written to ``out``, a buffer reused across the step's
    matrices: each fresh 32 MB array costs its page faults) if it could be exact (integers
    inside ``bound``), else None: a result that is not is wrong somewhere, and the full
    comparison counts it."""
    if result.shape != product.shape:
        return None
    scaled = out.reshape(-1)[: result.size].reshape(result.shape)
    np.copyto(scaled, result)
    if product.unit != 1.0:
        scaled *= 1 / product.unit  # a power of two: exact
    with np.errstate(invalid="ignore"):
        return scaled if _integral_within(scaled, product.bound) else None


def compare_projected(
    field: str,
    result: np.ndarray,
    product: Product,
    call: str | None = None,
    rng: np.random.Generator | None = None,
    out: np.ndarray | None = None,
) -> tuple[int, str | None] | None:
    """How many elements of ``result`` differ from the exact matrix ``product``, and the first
    (``messages.explain``), found by projections; None when ``result`` is not integral in
    ``product.unit`` and inside its bound, or the shape is too large to project exactly (then
    the full comparison decides). ``out``: a float64 buffer of at least ``result.size``
    elements to work in.
    """
    rng = np.random.default_rng() if rng is None else rng
    out = np.empty(result.size, np.float64) if out is None else out
    scaled = _in_units(result, product, out)
    if scaled is None:
        return None
    m, n = product.shape
    # Both sides' sums: n (or m) terms, each at most the bound times an entry.
    magnitude = max(product.bound, product.a_max, product.b_max, 1.0)
    right = _draws(rng, n, max(n, product.a.shape[1]), magnitude)
    left = _draws(rng, m, max(m, product.a.shape[1]), magnitude)
    if right is None or left is None:
        return None
    rows = np.flatnonzero(np.any(scaled @ right != product.right(right), axis=1))
    if not rows.size:
        return 0, None
    columns = np.flatnonzero(np.any(left.T @ scaled != product.left(left), axis=0))
    if not columns.size:
        columns = np.arange(n)  # a row failed: look at all of it
    got, want = scaled[np.ix_(rows, columns)], product.block(rows, columns)
    differ = got != want
    if not np.any(differ):
        # A differing element's column passed every projection: look at the whole rows.
        columns = np.arange(n)
        got, want = scaled[rows], product.block(rows, columns)
        differ = got != want
    count = int(np.count_nonzero(differ))
    r, c = np.unravel_index(int(np.argmax(differ)), differ.shape)
    index = (int(rows[r]), int(columns[c]))
    unit = product.unit
    message = explain(
        field, float(got[r, c]) * unit, float(want[r, c]) * unit, index=index, call=call
    )
    return count, message
