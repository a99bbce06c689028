"""The error model: when is a computed result "close enough" to the exact one.

A fixed rtol either hides bugs or raises false alarms as the summed dimension K grows, so every
float comparison in crosscheck is against a proved per-element bound instead (Higham, *Accuracy
and Stability of Numerical Algorithms*, 2nd ed., ch. 2-3). Model of one operation
(Higham (2.4) with flush-to-zero): ``fl(a op b) = (a op b)(1 + d) + e``, ``|d| <= u``,
``|e| <= tiny`` (the smallest normal number: a result below it may be flushed to zero).

**Dot products.** A length-K dot product ``sum_k a_k b_k`` (any summation order: sequential,
pairwise, blocked, FMA) whose inputs are rounded to a matmul input format (unit roundoff
``u_in``), whose products and sums are accumulated with unit roundoff ``u_acc`` and whose result
is stored with ``u_out`` satisfies::

    |computed - exact| <= c_K * m + (1 + c_K) * m_small + a_K
    c_K = (1 + u_in)^2 (1 + g_{pK}(u_acc) (1 + s_p)^2) (1 + u_out) - 1
    a_K = 2 p K * tiny_acc * (1 + g_{pK}(u_acc)) (1 + u_out) + tiny_out

with ``m = sum_k |a_k| |b_k|`` and ``g_n(u) = (1 + u)^n - 1`` (``rounding_growth``; Higham's
``gamma_n(u) = n u / (1 - n u)`` is at least as large, and infinite from ``n u >= 1``, which
a bfloat16 accumulation reaches at 256 terms). Why each factor:

- ``(1 + u_in)^2``: both factors rounded to TF32 / bfloat16 before the multiply; products of such
  inputs are exact in float32. TF32 is taken at ``u_in = 2^-10``, one whole ulp, because tensor
  cores reading float32 operands truncate rather than round.
- ``g_{pK}``: Higham (3.2)-(3.5), any order of ``pK`` products and ``pK - 1`` sums: each term
  picks up at most ``pK`` factors ``(1 + d)``, ``|d| <= u_acc``, and nothing else.
  ``p`` is the number of bfloat16 passes (TPU HIGH: 3, HIGHEST: 6; else 1): a pass splits
  ``x = hi + lo (+ mid)``, so the accumulator sums ``pK`` partial products whose magnitudes
  add up to at most ``(1 + s_p)^2 m``, ``s_p = 2^-6``
  (``|hi| + |mid| + |lo| <= (1 + 2^-7 + 2^-15) |x|``).
- ``(1 + u_out)``: an accumulator wider than the stored dtype (float32 accumulation of bfloat16,
  float64-then-cast) rounds once more at the end (harmless when no such rounding happens).
- ``m_small``: ``m`` restricted to the terms with an input below the compute format's smallest
  normal ``tiny_in``. XLA on CPU treats subnormal inputs as zero (DAZ), which loses the whole
  product ``|a_k b_k|`` however large the partner (1e-40 * 1e20 -> 0, not 1e-20); a term rounded
  rather than flushed errs by at most ``(1 + c_K)`` of it too.
- ``a_K``: each of the ``pK`` products and ``pK - 1`` sums may flush (``|e| <= tiny_acc``), later
  sums scale those errors by at most ``1 + g_{pK}``; the final store may flush once more
  (``tiny_out``, the storage dtype's smallest normal: 6.1e-5 for float16).

**The layer.** ``output = x @ w`` has K = I and ``m = |x| @ |w|``. ``dL_dx = dL_do @ w.T``
(K = O, ``m = |dL_do| @ |w|.T``) and ``dL_dw = x.T @ dL_do`` (K = N) are dot products too.
The loss ``sum |output - target|`` carries every output's radius, one rounding per difference
(``u_out``: a difference is stored, or kept wider, which is more accurate) and a sum of N*O terms:
``(1 + u_out)^2 (1 + g_{NO}(u_acc)) - 1`` on ``sum |output - target|``. The update
``w - lr * dL_dw`` rounds three times (lr cast to the dtype, the product, the difference), each
correctly rounded to the dtype even when computed in float32 first (double rounding through a
format with ``p' >= 2p + 2`` bits is innocuous for one operation: Figueroa 1995), so
``gamma_3(u_out)`` on ``|w| + |lr dL_dw|`` plus ``(3 + |lr|) tiny`` (subnormal w or dL_dw read
as zero, two flushes), and ``|lr|`` times the gradient's own
radius when the gradient was computed, not given.

**The bias.** ``output = x @ w + b`` adds one term per output, in whatever order: b may start
the accumulator (a GEMM's ``beta = 1``), join it at the end, or be added to ``x @ w`` after
that was stored. Any of these is a length-(I + 1) sum of the products and ``1 * b[j]`` (the
factor 1 is exact; charging ``u_in`` on b too only widens), plus at most one more store of
the intermediate ``x @ w``: ``(1 + c_{I+1})(1 + u_out) - 1`` on ``|x| @ |w| + |b|``, with
``a_{I+1} + tiny`` for the flushes (the extra store may flush) and a subnormal b read as zero
counted in ``m_small``. ``dL_db = sum_d dL_do[d, :]`` is a sum of N stored values, i.e. the
dot product of a column of ones with dL_do (exact products): ``c_N`` on ``sum_d |dL_do|``
covers any order, and a ``ones @ dL_do`` matmul whose inputs are rounded too. With +-1
upstreams its kinks contribute 1 each, as they contribute ``|x|`` to dL_dw; ``b_new`` is an
update like ``w_new``.

**Reductions.** A loss may be reduced by a divisor D (``REDUCTIONS``, PyTorch's words): ``L =
sum |output - target| / D`` with D = 1 (``sum``, the seed's), N*O (``mean``) or N
(``batchmean``), and then ``dL_do = sign(output - target) / D`` and every gradient downstream
is divided by D. A division by D (``division_error``) is done in any of these ways: one
correctly rounded ``q / D``, or ``q * fl(1/D)`` (the reciprocal rounded, then the product),
in the accumulation format or the storage format (D itself rounded to it first: a bfloat16
257 is 256), then stored: at most four roundings, each ``(1 + d) + e`` in the operation model,
with ``u`` and ``tiny`` the widest of the storage, accumulation and matmul-input formats' (the
largest unit roundoff, the largest smallest normal). While ``1/D >= 2 tiny``, D, the
reciprocal and ±1/D stored as dL_do are normal in every format: their roundings are relative
only (``|d| <= u``, no flush), D's in the denominator (``1 / (1 + d) - 1 <= u / (1 - u)``).
Hence::

    fl(q / D) = (q / D)(1 + theta) + eta     |theta| <= rho_D,  |eta| <= 2 tiny
    fl(±1 / D) = (±1 / D)(1 + theta)          (dL_do: no eta)
    rho_D = (1 + u / (1 - u))(1 + u)^3 - 1

Where ``1/D < 2 tiny`` the reciprocal may be subnormal, read as zero or flushed, and D may
overflow (float16 from 65520): each of the four steps may lose all of the quotient, but none
more than doubles it, so ``rho_D = 2^4 - 1`` (the bound then says little, which is the truth:
float16 past D = 2^13). D = 1 is no division: ``rho_1 = eta_1 = 0``.

- The loss: the sum's own bound (above), divided by D, with ``rho_D`` on the whole (the
  computed sum divided once, or each term divided before the sum: the same relative factor on
  non-negative terms) and ``eta`` per term (each term divided may flush), the sum's own flushes
  left undivided (a sum of divided terms flushes as a sum of whole ones). The float64 centre
  ``fsum / D`` rounds once more: ``2^-53`` on it.
- dL_do: ``±(1 + rho_D) / D`` off ties, radius ``(rho_D + 2^-53) / D`` (the centre's division);
  at a tie any value in [-1/D, 1/D], rounded.
- dL_dx, dL_dw, dL_db of the step: the dot products of ``sign / D`` (each value within
  ``rho_D`` of ±1/D, then the product rounds: ``c_K``), or of ``sign`` then divided once (``c_K``
  then ``rho_D`` and ``eta``): ``compound(c_K, rho_D)`` on ``m / D``, the flushes and ``eta``
  absolute, each kink's interval divided by D; the float64 centre adds ``2^-53`` to its own
  ``c_K``. The update and the identities follow from these bounds unchanged.

**Kinks.** Where ``|output - target|`` is within the forward bound (plus ``tiny``: a difference
below it may flush to zero and take the tie convention), the sign of dL_do is not determined by
the data: any value in [-1, 1] is admissible (at a true tie every subgradient is valid; near one,
rounding may flip the sign). Such an element is centred at 0 and contributes ``|w[i, j]|`` to
dL_dx[d, i]'s radius and ``|x[d, i]|`` to dL_dw[i, j]'s: exactly the admissible set.

**The reference's own error.** Centres are computed in float64 (by the loop reference or by numpy
float64, any order), so each radius also carries the float64 ``c_K`` of that computation.
Magnitudes are float64 sums of non-negative terms, so the computed magnitude ``m^`` satisfies
``m <= m^ / (1 - gamma_K(2^-53))``; radii are scaled by that factor. Radii and the comparison
``|actual - center| <= radius`` are themselves a handful of float64 operations: every radius is
widened by ``1 + 2^-46`` (more than 64 float64 roundings) so that the check is a proof.

**Ties.** At ``output == target`` every dL_do in [-1, 1] is a valid subgradient;
``TIE_CONVENTIONS`` names the three in use. A pinned convention replaces the interval by its value
only where the tie is certain: integer data whose products are exact in the dtype
(``exact_products``); near a tie rounding may still flip the sign.

**Not covered:** overflow (a result past the dtype's largest finite number is reported, not
absorbed: generated data keep every quantity of a step below ``safe_limit``), and matmul inputs
beyond the input format's range (float16 inputs past 65504).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

import reference

from ._params import gradient_name, ordered, output_magnitude, parameters

#: Unit roundoff (half an ulp of 1) of each storage format: round to nearest.
UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "bfloat16": 2.0**-8,
    "float16": 2.0**-11,
}

#: The rounding a matmul applies to its float32 inputs, by JAX precision setting.
#:   float32  - true float32 (CPU always; GPU at HIGHEST).
#:   bf16_6x  - six bfloat16 passes (hi + mid + lo): TPU HIGHEST. Split residual 2^-24 |x| per
#:              input, dropped mid*lo', lo*mid', lo*lo' ~ 2^-23 |x y|: 2^-22 per input covers both.
#:   bf16_3x  - three bfloat16 passes (x = hi + lo; hi*hi' + hi*lo' + lo*hi'): TPU HIGH. The
#:              split loses 2^-16 |x| per input and the dropped lo*lo' term 2^-16 |x y|, within
#:              (1 + 2^-15)^2 - 1.
#:   f16      - float16 inputs, float32 accumulation (a GPU half-precision matmul); the input
#:              format's range is float16's (``MATMUL_INPUT_TINY``).
#:   tf32     - TensorFloat-32 inputs (10 mantissa bits), float32 accumulation: GPU DEFAULT /
#:              HIGH. One ulp, 2^-10, not half: tensor cores may truncate float32 operands.
#:   bf16     - one bfloat16 pass (8 bits), float32 accumulation: TPU DEFAULT.
MATMUL_INPUT_ROUNDOFF: dict[str, float] = {
    "float32": 0.0,
    "bf16_6x": 2.0**-22,
    "bf16_3x": 2.0**-15,
    "f16": 2.0**-11,
    "tf32": 2.0**-10,
    "bf16": 2.0**-8,
}

#: How many partial products each multiply-add becomes (bfloat16 passes).
MATMUL_PASSES: dict[str, int] = {"bf16_6x": 6, "bf16_3x": 3}

#: Smallest normal number of each matmul input format that is narrower in range than float32.
MATMUL_INPUT_TINY: dict[str, float] = {"f16": 2.0**-14}

MatmulPrecision = Literal["float32", "bf16_6x", "bf16_3x", "f16", "tf32", "bf16"]

#: numpy's own dtypes; bfloat16 is ml_dtypes', imported when first asked for (``numpy_dtype``):
#: its import takes half a second, which every candidate's worker would pay at start.
_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
}

#: ``|hi| + |mid| + |lo| <= (1 + _SPLIT_GROWTH) |x|`` for a bfloat16 split (module docstring).
_SPLIT_GROWTH = 2.0**-6

#: Widening of every radius for the float64 arithmetic of the radius and the check itself.
_SLACK = 1.0 + 2.0**-46

#: Values of dL_do at a tie (output == target) by convention: the notebook's ``(o > t) * 2 - 1``,
#: ``jax.grad(jnp.abs)(0.0)`` and PyTorch's ``sign``. All are valid subgradients.
TIE_CONVENTIONS: dict[str, float] = {"seed": reference.TIE_CONVENTION, "jax": 1.0, "torch": 0.0}

#: Generated data keep every quantity one step forms below the dtype's largest finite number
#: divided by this (``safe_limit``): the model covers rounding and underflow, not overflow.
HEADROOM = 32.0


def dtype_name(dtype: Any) -> str:
    """The canonical name of a floating dtype the model covers, or a ValueError saying which are."""
    if isinstance(dtype, str) and dtype in UNIT_ROUNDOFF:
        return dtype  # a name: "bfloat16" needs no ml_dtypes import to be read
    name = np.dtype(dtype).name
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype must be one of {sorted(UNIT_ROUNDOFF)}, got {name}")
    return name


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for one of ``UNIT_ROUNDOFF``'s names (bfloat16 from ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(UNIT_ROUNDOFF)}, got {name!r}") from None


def finfo(name: str) -> Any:
    """``finfo`` of a dtype the model covers: numpy's, or ml_dtypes' for bfloat16."""
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.finfo(numpy_dtype(name))
    return np.finfo(numpy_dtype(name))


def smallest_normal(name: str) -> float:
    """The smallest positive normal number of a dtype the model covers (``tiny``)."""
    return float(finfo(name).smallest_normal)


def safe_limit(dtype: Any) -> float:
    """The largest magnitude any quantity of a checked step may reach: ``max / HEADROOM``."""
    return float(finfo(dtype_name(dtype)).max) / HEADROOM


def gamma(k: int, u: float) -> float:
    """``gamma_k(u) = k u / (1 - k u)``; infinite once ``k u >= 1`` (the bound says nothing)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    ku = k * u
    return math.inf if ku >= 1.0 else ku / (1.0 - ku)


def rounding_growth(k: int, u: float) -> float:
    """``(1 + u)^k - 1``: how far k roundings ``x (1 + d_1) ... (1 + d_k)``, ``|d_i| <= u``, can
    move a value, relatively. A sum or dot product's terms only ever gain such factors (no
    divisions), so this is their exact worst case; Higham's ``gamma_k`` bounds it from above
    only while ``k u < 1`` (Lemma 3.1), but a bfloat16 accumulation of 256 terms is past that,
    and there the model must still say how far (``e - 1``: about 172%), not give up."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return math.expm1(k * math.log1p(u))


def compound(*relative: float) -> float:
    """``(1 + r_1) (1 + r_2) ... - 1``, computed without forming ``1 + r`` in float64 (where an
    ``r`` below 2^-53 would vanish: ``1 + 2^-53 == 1``); accurate to a few ulps, which the
    radii's ``_SLACK`` covers. One factor is returned as it is: ``(1 + r) - 1 = r`` exactly."""
    if len(relative) == 1:
        return relative[0]
    return math.expm1(math.fsum(math.log1p(r) for r in relative))


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """How a computation rounds: the unit roundoffs and underflow thresholds of the model above.

    Attributes:
      name: a label for reports, e.g. ``"float32"`` or ``"float32 (tf32 matmul)"``.
      dtype: storage dtype name of inputs and results.
      u_out: unit roundoff of every stored result.
      u_in: rounding of matmul inputs on top of their storage format (0 for true float32).
      u_acc: unit roundoff of accumulation in matmuls and sums.
      tiny: smallest normal number of the storage dtype (the flush-to-zero of a stored result).
      tiny_acc: smallest normal of the accumulation format (a flushed product or partial sum);
        default ``tiny``.
      tiny_in: inputs below this are treated as zero by the matmul (DAZ); default ``tiny_acc``.
      passes: partial products per multiply-add (bfloat16 multi-pass precisions; else 1).
    """

    name: str
    dtype: str
    u_out: float
    u_in: float
    u_acc: float
    tiny: float
    tiny_acc: float | None = None
    tiny_in: float | None = None
    passes: int = 1

    @property
    def acc_tiny(self) -> float:
        """``tiny_acc``, defaulting to ``tiny``."""
        return self.tiny if self.tiny_acc is None else self.tiny_acc

    @property
    def input_tiny(self) -> float:
        """``tiny_in``, defaulting to the accumulation format's smallest normal."""
        return self.acc_tiny if self.tiny_in is None else self.tiny_in

    def dot(self, k: int) -> float:
        """``c_K``, the relative coefficient of a length-k dot product (module docstring)."""
        if k == 0:
            return 0.0
        split = (1 + _SPLIT_GROWTH) ** 2 if self.passes > 1 else 1.0
        accumulate = rounding_growth(self.passes * k, self.u_acc) * split
        return compound(self.u_in, self.u_in, accumulate, self.u_out)

    def sum(self, k: int) -> float:
        """The relative coefficient of a k-term sum of stored values (no input rounding)."""
        if k == 0:
            return 0.0
        return compound(rounding_growth(k, self.u_acc), self.u_out)

    def underflow(self, k: int) -> float:
        """``a_K``: the absolute term for the flushes of a length-k dot product (or k-term sum)."""
        terms = self.passes * k
        growth = (1 + rounding_growth(terms, self.u_acc)) * (1 + self.u_out)
        return 2 * terms * self.acc_tiny * growth + self.tiny


#: The accumulations a result of each dtype may declare, default first: float32 for the half
#: dtypes (what PyTorch and XLA do for matmuls and sums), or the dtype itself (numpy's
#: ``sum`` of bfloat16 / float16 values, a kernel accumulating in half precision).
ACCUMULATIONS: dict[str, tuple[str, ...]] = {
    "float64": ("float64",),
    "float32": ("float32",),
    "bfloat16": ("float32", "bfloat16"),
    "float16": ("float32", "float16"),
}


def accumulation_of(dtype: Any, accumulation: str | None) -> str | None:
    """``arithmetic``'s ``accumulate`` for a declared ``accumulation`` of ``dtype``: None for
    the dtype's default (``ACCUMULATIONS``), else the name; a ValueError names the choices."""
    name = dtype_name(dtype)
    allowed = ACCUMULATIONS[name]
    if accumulation is None or accumulation == allowed[0]:
        return None
    if accumulation not in allowed:
        raise ValueError(
            f"accumulation must be one of {list(allowed)} for dtype {name}, got {accumulation!r}"
        )
    return accumulation


def arithmetic(
    dtype: Any,
    matmul_precision: MatmulPrecision = "float32",
    *,
    accumulate: Any | None = None,
) -> Arithmetic:
    """The arithmetic of an implementation that stores ``dtype`` and multiplies at a precision.

    Args:
      dtype: storage dtype (float64, float32, bfloat16, float16).
      matmul_precision: rounding of float32 matmul inputs (``MATMUL_INPUT_ROUNDOFF``); only
        meaningful for float32 storage.
      accumulate: accumulation dtype. Default: float64 for float64, else float32, which is what
        XLA does for bfloat16 / float16 matmuls and sums; pass the storage dtype to model an
        implementation that accumulates in half precision (the bound then grows as K * 2^-11).
    """
    name = dtype_name(dtype)
    if matmul_precision not in MATMUL_INPUT_ROUNDOFF:
        raise ValueError(
            f"matmul_precision must be one of {sorted(MATMUL_INPUT_ROUNDOFF)}, "
            f"got {matmul_precision!r}"
        )
    if matmul_precision != "float32" and name != "float32":
        raise ValueError(
            f"matmul_precision {matmul_precision!r} describes float32 matmuls, got dtype {name}"
        )
    default_accumulate = "float64" if name == "float64" else "float32"
    accumulate_name = default_accumulate if accumulate is None else dtype_name(accumulate)
    label = name if matmul_precision == "float32" else f"{name} ({matmul_precision} matmul)"
    if accumulate is not None:
        label += f", {accumulate_name} accumulation"
    tiny_acc = smallest_normal(accumulate_name)
    return Arithmetic(
        name=label,
        dtype=name,
        u_out=UNIT_ROUNDOFF[name],
        u_in=MATMUL_INPUT_ROUNDOFF[matmul_precision],
        u_acc=UNIT_ROUNDOFF[accumulate_name],
        tiny=smallest_normal(name),
        tiny_acc=tiny_acc,
        tiny_in=max(tiny_acc, MATMUL_INPUT_TINY.get(matmul_precision, 0.0)),
        passes=MATMUL_PASSES.get(matmul_precision, 1),
    )


#: The reference's own arithmetic: float64 everywhere.
FLOAT64 = arithmetic("float64")


class Reduction(NamedTuple):
    """How a loss reduces its N*O terms ``|output - target|``: ``L = sum / D`` (module
    docstring, "Reductions").

    Attributes:
      name: PyTorch's word (``reduction=`` of ``F.l1_loss``; ``batchmean`` is ``kl_div``'s).
      divides_by: D in the contract's letters: ``1``, ``N*O`` or ``N``.
      words: the loss in words, for messages: "a sum", "a mean over N*O", ...
      divisor: ``(N, O) -> D``.
    """

    name: str
    divides_by: str
    words: str
    divisor: Callable[[int, int], int]


#: The reductions a loss may declare, the seed's first: ``sum`` (D = 1), ``mean`` over all N*O
#: elements, ``batchmean`` (the sum over every output divided by the batch size N).
REDUCTIONS: dict[str, Reduction] = {
    reduction.name: reduction
    for reduction in (
        Reduction("sum", "1", "a sum", lambda n, o: 1),
        Reduction("mean", "N*O", "a mean over N*O", lambda n, o: n * o),
        Reduction("batchmean", "N", "a sum divided by N", lambda n, o: n),
    )
}


def reduction_divisor(reduction: str, num_data: int, output_features: int) -> int:
    """D of ``L = sum |output - target| / D`` and ``dL_do = sign(output - target) / D`` for a
    reduction of ``REDUCTIONS`` and a batch of shape (N, O): 1 (sum), N*O (mean), N
    (batchmean); a ValueError names the reductions."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    return REDUCTIONS[reduction].divisor(num_data, output_features)


def _divisor(reduction: str, shape: tuple[int, ...]) -> int:
    """``reduction_divisor`` of a batch of this shape, (N, O); a sum of any shape is 1."""
    if reduction == "sum":
        return 1
    if len(shape) != 2:
        raise ValueError(f"a {reduction} reduction needs a batch (N, O), got shape {shape}")
    return reduction_divisor(reduction, *shape)


def division_error(divisor: int, arith: Arithmetic) -> tuple[float, float]:
    """``(rho_D, eta_D)`` of one division by D in ``arith``: ``fl(q / D) = (q / D)(1 + theta)
    + eta`` with ``|theta| <= rho_D``, ``|eta| <= eta_D = 2 tiny``; ±1/D itself is stored
    within ``rho_D`` relatively, with no ``eta`` (module docstring, "Reductions").

    ``rho_D = (1 + u / (1 - u))(1 + u)^3 - 1`` (D rounded, in the denominator; the reciprocal
    or quotient, the product, the store) while ``1/D >= 2 tiny`` (``u``, ``tiny`` the widest
    of the storage, accumulation and matmul-input formats'), else ``2^4 - 1``. D = 1 divides
    nothing: ``(0, 0)``.
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    if divisor == 1:
        return 0.0, 0.0
    u = max(arith.u_out, arith.u_acc)
    tiny = max(arith.tiny, arith.acc_tiny, arith.input_tiny)
    if 2 * divisor * tiny > 1:
        return 15.0, 2 * tiny  # each of the four steps may lose the quotient or double it
    return compound(gamma(1, u), rounding_growth(3, u)), 2 * tiny


Matmul = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _numpy_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)


class Bound(NamedTuple):
    """The admissible set of a result: ``|actual - center| <= radius``, element by element."""

    center: np.ndarray
    radius: np.ndarray

    def ratio(self, actual: Any) -> np.ndarray:
        """``|actual - center| / radius`` per element: <= 1 inside the bound.

        0/0 (exact agreement under a zero radius) is 0; a NaN anywhere in ``actual`` is inf.
        """
        actual = np.asarray(actual, dtype=np.float64)
        error = np.abs(actual - self.center)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(error == 0, 0.0, error / self.radius)
        return np.where(np.isnan(actual) | np.isnan(ratio), np.inf, ratio)

    def worst(self, actual: Any) -> float:
        """The largest ``ratio`` (0 for an empty result): <= 1 when ``actual`` is inside."""
        ratio = self.ratio(actual)
        return float(ratio.max()) if ratio.size else 0.0


def _magnitude_factor(k: int) -> float:
    # A float64 sum of k non-negative terms may come out low by gamma_k(2^-53) at most.
    return 1.0 / (1.0 - gamma(k, UNIT_ROUNDOFF["float64"])) if k else 1.0


def _small_magnitude(a: np.ndarray, b: np.ndarray, tiny_in: float) -> np.ndarray | float:
    """``m_small``: ``|a| @ |b|`` over the terms whose input a DAZ matmul may treat as zero.

    Each such term is counted once or twice (both inputs small), never missed.
    """
    small_a, small_b = np.abs(a) < tiny_in, np.abs(b) < tiny_in
    if not (small_a.any() or small_b.any()):
        return 0.0
    return (np.abs(a) * small_a) @ np.abs(b) + np.abs(a) @ (np.abs(b) * small_b)


def _dot_radius(
    magnitude: np.ndarray,
    k: int,
    arith: Arithmetic,
    small: np.ndarray | float = 0.0,
    stores: int = 0,
    divisor: int = 1,
) -> np.ndarray:
    """Radius of a length-k dot product against a float64 centre of the same inputs; ``stores``
    more roundings (and flushes) of an intermediate result, on both sides: ``x @ w`` stored
    before a bias is added to it (module docstring, "The bias"). With a ``divisor`` D, of the
    dot product divided by D (``magnitude`` and ``small`` undivided): each factor ±1/D stored
    within ``rho_D``, or the result divided once (``division_error``), and the float64 centre's
    own division (module docstring, "Reductions")."""
    rho, eta = division_error(divisor, arith)
    divided = divisor != 1
    coefficient = compound(arith.dot(k), *(arith.u_out,) * stores, *(rho,) * divided)
    own = compound(FLOAT64.dot(k), *(FLOAT64.u_out,) * (stores + divided))
    relative = ((coefficient + own) * magnitude + (1 + coefficient) * small) / divisor
    flushes = arith.underflow(k) + stores * arith.tiny + eta
    return (relative * _magnitude_factor(k) + flushes) * _SLACK


class _Term(NamedTuple):
    """One parameter's term of ``output = x @ w + b`` for the forward bound: its float64 value,
    its magnitude, the part of that a DAZ matmul may lose (``m_small``), and how many terms of
    the sum it brings (I products, or b itself)."""

    center: np.ndarray
    magnitude: np.ndarray
    small: np.ndarray | float
    length: int


def _weight_term(x: np.ndarray, w: np.ndarray, arith: Arithmetic, matmul: Matmul) -> _Term:
    small = _small_magnitude(x, w, arith.input_tiny)
    center = np.asarray(matmul(x, w), dtype=np.float64)
    return _Term(center, np.abs(x) @ np.abs(w), small, x.shape[1])


def _bias_term(x: np.ndarray, b: np.ndarray, arith: Arithmetic, matmul: Matmul) -> _Term:
    # The factor 1 of 1 * b[j] is exact; a subnormal b may be read as zero (DAZ).
    magnitude = np.abs(b)
    return _Term(b, magnitude, magnitude * (magnitude < arith.input_tiny), 1)


#: Each parameter's term of the output, by name (``_params.AXES``).
_TERMS: dict[str, Callable[[np.ndarray, np.ndarray, Arithmetic, Matmul], _Term]] = {
    "w": _weight_term,
    "b": _bias_term,
}


def forward_bound(
    x: Any, w: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul, b: Any = None
) -> Bound:
    """The bound on ``output = x @ w``: centre ``x @ w`` (float64), radius ``c_I |x| @ |w|``.

    With a bias b of shape ``(O,)``, the bound on ``output = x @ w + b``: centre
    ``x @ w + b``, radius ``((1 + c_{I+1})(1 + u_out) - 1) (|x| @ |w| + |b|)`` (module
    docstring, "The bias"). ``tree_forward_bound`` takes the parameters as one tree.

    Shapes: x ``(N, I)``, w ``(I, O)``; ``matmul`` computes the float64 centre (numpy by
    default; the tests pass the loop reference).
    """
    return tree_forward_bound(x, parameters(w, b), arith, matmul=matmul)


def tree_forward_bound(
    x: Any, params: Mapping[str, Any], arith: Arithmetic, *, matmul: Matmul = _numpy_matmul
) -> Bound:
    """``forward_bound`` of the parameter tree ``{"w": w}`` or ``{"w": w, "b": b}``: the sum of
    every parameter's term (I products of x and w, and b), a length-(I + 1) dot product with
    one more store of ``x @ w`` per term added to it (module docstring, "The bias").

    Shapes: x ``(N, I)``, w ``(I, O)``, b ``(O,)``; result ``(N, O)``.
    """
    x64 = np.asarray(x, np.float64)
    terms = [
        _TERMS[name](x64, np.asarray(value, np.float64), arith, matmul)
        for name, value in ordered(params).items()
    ]
    center = functools.reduce(operator.add, (term.center for term in terms))
    magnitude = functools.reduce(operator.add, (term.magnitude for term in terms))
    small = functools.reduce(operator.add, (term.small for term in terms))
    length = sum(term.length for term in terms)
    radius = _dot_radius(magnitude, length, arith, small, stores=len(terms) - 1)
    return Bound(center, np.broadcast_to(radius, center.shape).copy())


def grad_x_bound(dL_do: Any, w: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul) -> Bound:
    """The bound on ``dL_dx = dL_do @ w.T`` for a given upstream: radius ``c_O |dL_do| @ |w|.T``.

    Shapes: dL_do ``(N, O)``, w ``(I, O)``; result ``(N, I)``.
    """
    upstream, w64 = np.asarray(dL_do, np.float64), np.asarray(w, np.float64)
    center = np.asarray(matmul(upstream, w64.T), dtype=np.float64)
    small = _small_magnitude(upstream, w64.T, arith.input_tiny)
    magnitude = np.abs(upstream) @ np.abs(w64).T
    return Bound(center, _dot_radius(magnitude, w64.shape[1], arith, small))


def grad_w_bound(x: Any, dL_do: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul) -> Bound:
    """The bound on ``dL_dw = x.T @ dL_do`` for a given upstream: radius ``c_N |x|.T @ |dL_do|``.

    Shapes: x ``(N, I)``, dL_do ``(N, O)``; result ``(I, O)``.
    """
    x64, upstream = np.asarray(x, np.float64), np.asarray(dL_do, np.float64)
    center = np.asarray(matmul(x64.T, upstream), dtype=np.float64)
    small = _small_magnitude(x64.T, upstream, arith.input_tiny)
    magnitude = np.abs(x64).T @ np.abs(upstream)
    return Bound(center, _dot_radius(magnitude, x64.shape[0], arith, small))


def grad_b_bound(dL_do: Any, arith: Arithmetic) -> Bound:
    """The bound on ``dL_db = sum_d dL_do[d, :]`` for a given upstream: radius
    ``c_N sum_d |dL_do[d, :]|`` (a column of ones dotted with dL_do, module docstring).

    Shapes: dL_do ``(N, O)``; result ``(O,)``.
    """
    upstream = np.asarray(dL_do, np.float64)
    magnitude = np.abs(upstream)
    small = (magnitude * (magnitude < arith.input_tiny)).sum(axis=0)
    return Bound(
        upstream.sum(axis=0), _dot_radius(magnitude.sum(axis=0), upstream.shape[0], arith, small)
    )


def loss_bound(output: Bound, target: Any, arith: Arithmetic, *, reduction: str = "sum") -> Bound:
    """The bound on ``L = sum |output - target|`` when ``output`` is itself only known to a bound.

    With ``S = sum |center - target| + sum radius`` (an upper bound on ``sum |output - target|``
    for any output inside its bound): ``|L^ - L| <= sum radius + c S + a_NO + 2 NO tiny``,
    ``c = (1 + u_out)^2 (1 + g_{NO}(u_acc)) - 1`` (one rounding per difference, the sum, the
    store). The float64 centre rounds each difference once and is then summed correctly
    (``math.fsum``): ``2^-52 S`` more.

    With a ``reduction`` of divisor D (``reduction_divisor``), the bound on ``L = sum |output -
    target| / D``: ``(R (1 + rho_D) + (rho_D + 2^-53) S) / D + a_NO (1 + rho_D) + NO eta_D (1 +
    c)``, R the sum's radius without its flushes ``a_NO`` (module docstring, "Reductions").
    Shapes: output and target ``(N, O)``.
    """
    target64 = np.asarray(target, np.float64)
    terms = np.abs(output.center - target64)
    count = terms.size
    center = float(math.fsum(terms.ravel().tolist()))
    spread = float(output.radius.sum()) * _magnitude_factor(count)
    magnitude = (center + spread) * _magnitude_factor(count)
    growth = rounding_growth(count, arith.u_acc)
    coefficient = compound(arith.u_out, arith.u_out, growth)
    # Per difference: a subnormal target read as zero (DAZ) and a flushed difference.
    differences = 2 * count * max(arith.tiny, arith.acc_tiny)
    relative = spread + (coefficient + 2 * UNIT_ROUNDOFF["float64"]) * magnitude
    divisor = _divisor(reduction, terms.shape)
    if divisor == 1:
        radius = relative + (differences + arith.underflow(count))
        return Bound(np.asarray(center), np.asarray(radius * _SLACK))
    summed = relative + differences
    rho, eta = division_error(divisor, arith)
    own = UNIT_ROUNDOFF["float64"]  # the centre's division
    divided = (summed * (1 + rho) + (rho + own) * magnitude) / divisor
    radius = divided + arith.underflow(count) * (1 + rho) + count * eta * (1 + coefficient)
    return Bound(np.asarray(center / divisor), np.asarray(radius * _SLACK))


def update_bound(w: Any, dL_dw: Bound | Any, lr: float, arith: Arithmetic) -> Bound:
    """The bound on ``w_new = w - lr * dL_dw``; ``dL_dw`` may be a value or a Bound.

    Three roundings (lr to the dtype, the product, the difference): ``gamma_3(u_out)`` on
    ``|w| + |lr| |dL_dw|``, flushes and DAZ (``(3 + |lr|) tiny``); a gradient known only to a radius
    adds ``|lr| * radius``; the float64 centre's two roundings add ``gamma_2(2^-53)``.
    Shapes: w and dL_dw ``(I, O)``, or b and dL_db ``(O,)`` (``b_new``); lr a scalar.
    """
    w64 = np.asarray(w, np.float64)
    if isinstance(dL_dw, Bound):
        grad = dL_dw
    else:
        grad = Bound(np.asarray(dL_dw, np.float64), np.zeros_like(w64))
    step_size = abs(float(lr))
    center = w64 - float(lr) * grad.center
    magnitude = np.abs(w64) + step_size * (np.abs(grad.center) + grad.radius)
    coefficient = gamma(3, arith.u_out) + gamma(2, UNIT_ROUNDOFF["float64"])
    # w or dL_dw read as zero when subnormal (DAZ: tiny and |lr| tiny), the product and the
    # difference flushed (tiny each).
    flushes = (3 + step_size) * max(arith.tiny, arith.acc_tiny)
    radius = step_size * grad.radius + coefficient * magnitude + flushes
    return Bound(center, radius * _SLACK)


def exact_products(x: Any, w: Any, dtype: Any, b: Any = None) -> bool:
    """Whether ``x @ w`` (``+ b``) is exact in ``dtype`` in any summation order: integers whose
    partial sums (at most ``|x| @ |w| + |b|``) fit the dtype's significand."""
    return _exact_sums(x, parameters(w, b), dtype)


def _exact_sums(x: Any, params: Mapping[str, Any], dtype: Any) -> bool:
    """``exact_products`` of the parameter tree."""
    arrays = (np.asarray(a, np.float64) for a in (x, *params.values()))
    if not all(np.all(a == np.round(a)) for a in arrays):
        return False
    digits = int(finfo(dtype_name(dtype)).nmant) + 1
    return bool(output_magnitude(x, params).max(initial=0.0) < 2.0**digits)


def loss_grad_bound(
    output: Any,
    target: Any,
    arith: Arithmetic,
    tie: float | None = None,
    *,
    reduction: str = "sum",
) -> Bound:
    """The bound on ``dL_do = sign(output - target)``: exact off ties; at a tie the pinned
    ``tie`` value, else any value in [-1, 1] (centre 0, radius 1).

    ``output`` and ``target`` are values of the dtype, so the sign of their difference is exact in
    any arithmetic; a difference below the smallest normal may flush to zero and counts as a tie
    (whatever is pinned). With a ``reduction`` of divisor D, the bound on ``sign(output -
    target) / D``: each value ±1/D (or the tie's, divided) within ``rho_D`` of it, and the
    float64 centre's division (module docstring, "Reductions"). Shapes: output and target
    ``(N, O)``.
    """
    difference = np.asarray(output, np.float64) - np.asarray(target, np.float64)
    exact_ties = difference == 0
    near_ties = np.abs(difference) < 2 * arith.tiny
    center = np.where(near_ties, 0.0, np.sign(difference))
    radius = np.where(near_ties, 1.0, 0.0)
    if tie is not None:
        center = np.where(exact_ties, tie, center)
        radius = np.where(exact_ties, 0.0, radius)
    divisor = _divisor(reduction, difference.shape)
    if divisor == 1:
        return Bound(center, radius)
    # Every value that may be nonzero rounds: ±1/D, or anything in [-1/D, 1/D] at a tie.
    rho = division_error(divisor, arith)[0] + UNIT_ROUNDOFF["float64"]
    rounding = np.where((center != 0) | (radius != 0), rho, 0.0)
    return Bound(center / divisor, (radius + rounding) / divisor * _SLACK)


class StepBounds(NamedTuple):
    """Bounds on everything one SGD step produces, and where dL_do is not determined.

    ``grads`` and ``updates`` hold every parameter's, by its name in the tree (``dL_dw`` and
    ``w_new`` under ``"w"``, ``dL_db`` and ``b_new`` under ``"b"``), in call order; the
    properties name them as ``StepResult`` / ``BiasStepResult`` do. With a reduction of
    divisor D the loss, dL_do and every gradient are divided by D.
    """

    output: Bound
    loss: Bound
    dL_do: np.ndarray  # +-1/D where the sign is determined, 0 at kinks (D: the reduction's)
    kinks: np.ndarray  # bool (N, O): |output - target| within the forward bound
    dL_dx: Bound
    grads: dict[str, Bound]
    updates: dict[str, Bound]
    #: each gradient's radius from rounding alone (its kinks' intervals left out), by result
    #: name (``dL_dx``, ``dL_dw``, ``dL_db``): how far a correct computation from one given
    #: dL_do, tie values included, may be from the exact value.
    rounding: dict[str, np.ndarray]

    @property
    def dL_dw(self) -> Bound:
        return self.grads["w"]

    @property
    def w_new(self) -> Bound:
        return self.updates["w"]

    @property
    def dL_db(self) -> Bound | None:
        """With a bias only (else None)."""
        return self.grads.get("b")

    @property
    def b_new(self) -> Bound | None:
        """With a bias only (else None)."""
        return self.updates.get("b")

    def results(self) -> tuple[Bound, ...]:
        """The bounds of ``step``'s results, in ``StepResult`` order (loss, dL_dx, dL_dw, w_new),
        or with a bias in ``BiasStepResult`` order (loss, dL_dx, dL_dw, dL_db, w_new, b_new):
        every gradient, then every update (``_params.step_fields``)."""
        return (self.loss, self.dL_dx, *self.grads.values(), *self.updates.values())


def step_bounds(
    x: Any,
    w: Any,
    target: Any,
    lr: float,
    arith: Arithmetic,
    *,
    matmul: Matmul = _numpy_matmul,
    tie: float | None = None,
    b: Any = None,
    reduction: str = "sum",
) -> StepBounds:
    """Bounds on ``step(x, w, target, lr)`` computed in ``arith``, kink-aware (module docstring);
    with a bias ``b``, on ``step(x, w, b, target, lr)``, dL_db and b_new included.

    Shapes: x ``(N, I)``, w ``(I, O)``, b ``(O,)``, target ``(N, O)``; lr a scalar. With ``tie``
    None any tie convention (the seed's -1, jax.grad's +1, torch's 0, anything in [-1, 1]) is
    inside the bounds; a pinned ``tie`` value applies where the tie is certain
    (``exact_products``). A ``reduction`` (``REDUCTIONS``) divides the loss and dL_do by its D,
    and so every gradient (module docstring, "Reductions"). ``tree_step_bounds`` takes the
    parameters as one tree.
    """
    return tree_step_bounds(
        x, parameters(w, b), target, lr, arith, matmul=matmul, tie=tie, reduction=reduction
    )


class _Upstream(NamedTuple):
    """The step's dL_do as the gradients' bounds read it: ``signs`` ±1 where the sign is
    determined, 0 at kinks (the tie's value where one is pinned and certain), ``kinks`` 1 where
    any value in [-1, 1] is admissible, and the ``divisor`` D that divides both."""

    signs: np.ndarray
    kinks: np.ndarray
    divisor: int

    @property
    def values(self) -> np.ndarray:
        """dL_do's centre: ``signs / D``."""
        return self.signs / self.divisor


def _weight_gradient(
    x: np.ndarray, upstream: _Upstream, arith: Arithmetic, matmul: Matmul
) -> tuple[Bound, np.ndarray]:
    """dL_dw and its radius from rounding alone: N products of ``|x| <= |x|`` and ``|dL_do|
    <= 1/D``, plus each kink's whole interval ``[-|x|, |x|] / D``. ±1/D and 0 are never small
    inputs (``division_error`` covers a subnormal 1/D): m_small comes from x alone."""
    num_data, divisor = upstream.signs.shape[0], upstream.divisor
    ones = np.ones_like(upstream.signs)
    x_small = np.abs(x) * (np.abs(x) < arith.input_tiny)
    center = grad_w_bound(x, upstream.values, arith, matmul=matmul).center
    rounding = _dot_radius(np.abs(x).T @ ones, num_data, arith, x_small.T @ ones, divisor=divisor)
    kinks = (np.abs(x).T @ upstream.kinks) / divisor * _magnitude_factor(num_data) * _SLACK
    return Bound(center, rounding + kinks), rounding


def _bias_gradient(
    x: np.ndarray, upstream: _Upstream, arith: Arithmetic, matmul: Matmul
) -> tuple[Bound, np.ndarray]:
    """dL_db and its radius from rounding alone: a sum of N values of magnitude <= 1/D each,
    plus each kink's whole interval [-1, 1] / D."""
    num_data, divisor = upstream.signs.shape[0], upstream.divisor
    ones = np.ones_like(upstream.signs).sum(axis=0)
    rounding = _dot_radius(ones, num_data, arith, divisor=divisor)
    kinks = upstream.kinks.sum(axis=0) / divisor * _magnitude_factor(num_data) * _SLACK
    return Bound(grad_b_bound(upstream.values, arith).center, rounding + kinks), rounding


def _input_gradient(
    w: np.ndarray, upstream: _Upstream, arith: Arithmetic, matmul: Matmul
) -> tuple[Bound, np.ndarray]:
    """dL_dx and its radius from rounding alone: O products of ``|dL_do| <= 1/D`` and ``|w|``,
    plus each kink's whole interval ``[-|w|, |w|] / D``; m_small comes from w alone."""
    output_features, divisor = upstream.signs.shape[1], upstream.divisor
    ones = np.ones_like(upstream.signs)
    w_small = np.abs(w) * (np.abs(w) < arith.input_tiny)
    center = grad_x_bound(upstream.values, w, arith, matmul=matmul).center
    rounding = _dot_radius(
        ones @ np.abs(w).T, output_features, arith, ones @ w_small.T, divisor=divisor
    )
    kinks = (upstream.kinks @ np.abs(w).T) / divisor * _magnitude_factor(output_features)
    return Bound(center, rounding + kinks * _SLACK), rounding


#: Each parameter's gradient bound (and its radius from rounding alone) for the step's dL_do,
#: by name.
_GRADIENTS: dict[
    str, Callable[[np.ndarray, _Upstream, Arithmetic, Matmul], tuple[Bound, np.ndarray]]
] = {
    "w": _weight_gradient,
    "b": _bias_gradient,
}


def tree_step_bounds(
    x: Any,
    params: Mapping[str, Any],
    target: Any,
    lr: float,
    arith: Arithmetic,
    *,
    matmul: Matmul = _numpy_matmul,
    tie: float | None = None,
    reduction: str = "sum",
) -> StepBounds:
    """``step_bounds`` of the parameter tree ``{"w": w}`` or ``{"w": w, "b": b}``: the output
    over every parameter (``tree_forward_bound``), dL_dx, and every parameter's gradient and
    update (``StepBounds.grads``, ``StepBounds.updates``), the loss and dL_do divided by the
    ``reduction``'s D.

    Shapes: x ``(N, I)``, w ``(I, O)``, b ``(O,)``, target ``(N, O)``; lr a scalar.
    """
    x64, target64 = np.asarray(x, np.float64), np.asarray(target, np.float64)
    params64 = {name: np.asarray(value, np.float64) for name, value in ordered(params).items()}
    w64 = params64["w"]
    output = tree_forward_bound(x64, params64, arith, matmul=matmul)
    difference = output.center - target64
    # A computed difference below tiny may flush to zero and take the tie convention, and a
    # subnormal target may be read as zero (DAZ): either needs |output - target| < 2 tiny.
    kinks = np.abs(difference) <= output.radius + 2 * max(arith.tiny, arith.acc_tiny)
    dL_do = np.where(kinks, 0.0, np.sign(difference))
    if tie is not None:
        certain = (difference == 0) & _exact_sums(x64, params64, arith.dtype)
        dL_do = np.where(certain, tie, dL_do)
        kinks = kinks & ~certain
    # Every element, kink or not, contributes |dL_do| <= 1/D to the rounding magnitude; a kink
    # also contributes its whole admissible interval [-|w|, |w|] / D (or [-|x|, |x|] / D).
    upstream = _Upstream(dL_do, kinks.astype(np.float64), _divisor(reduction, dL_do.shape))
    dL_dx, dx_rounding = _input_gradient(w64, upstream, arith, matmul)
    found = {name: _GRADIENTS[name](x64, upstream, arith, matmul) for name in params64}
    grads = {name: bound for name, (bound, _) in found.items()}
    return StepBounds(
        output=output,
        loss=loss_bound(output, target64, arith, reduction=reduction),
        dL_do=upstream.values,
        kinks=kinks,
        dL_dx=dL_dx,
        grads=grads,
        updates={
            name: update_bound(value, grads[name], lr, arith) for name, value in params64.items()
        },
        rounding={"dL_dx": dx_rounding}
        | {gradient_name(name): radius for name, (_, radius) in found.items()},
    )


def product_bound(
    a: Bound, b: Bound, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul
) -> Bound:
    """The bound on ``a @ b`` computed in ``arith`` from operands known only to their bounds.

    With ``|a^ - a| <= ra`` and ``|b^ - b| <= rb`` elementwise,
    ``|fl(a^ @ b^) - a @ b| <= c_K (|a| + ra) @ (|b| + rb) + ra @ |b| + |a| @ rb + ra @ rb``
    (plus the flush-to-zero terms of ``_dot_radius``): the rounding of the computed product and
    the propagation of the operands' own errors. Shapes: a ``(M, K)``, b ``(K, P)``.
    """
    a_mag = np.abs(a.center) + a.radius
    b_mag = np.abs(b.center) + b.radius
    k = a.center.shape[1]
    # An operand that may be below the input format's smallest normal may be read as zero.
    a_small = a_mag * ((np.abs(a.center) - a.radius) < arith.input_tiny)
    b_small = b_mag * ((np.abs(b.center) - b.radius) < arith.input_tiny)
    small = a_small @ b_mag + a_mag @ b_small
    rounding = _dot_radius(a_mag @ b_mag, k, arith, small)
    propagated = (a.radius @ b_mag + np.abs(a.center) @ b.radius) * _magnitude_factor(k) * _SLACK
    center = np.asarray(matmul(a.center, b.center), dtype=np.float64)
    return Bound(center, rounding + propagated)


def _known(value: np.ndarray) -> Bound:
    """An operand known exactly: radius 0."""
    return Bound(value, np.zeros_like(value))


class ChainBounds(NamedTuple):
    """Bounds on the two-layer chain ``h = x @ w1``, ``output = h @ w2`` (``reference.chain``)."""

    h: Bound
    output: Bound
    loss: Bound
    kinks: np.ndarray
    dL_dx: Bound
    dL_dw1: Bound
    dL_dh: Bound
    dL_dw2: Bound


def chain_bounds(
    x: Any, w1: Any, w2: Any, target: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul
) -> ChainBounds:
    """Bounds on ``chain(x, w1, w2, target)`` computed in ``arith``, kink-aware.

    ``h = x @ w1`` is a forward bound; ``output = h @ w2`` a product of an uncertain ``h``;
    ``dL_dh = dL_do @ w2.T`` is the second layer's dL_dx (kinks as in ``step_bounds``), and
    the first layer's gradients ``dL_dx = dL_dh @ w1.T``, ``dL_dw1 = x.T @ dL_dh`` are products
    of the uncertain ``dL_dh``; ``dL_dw2 = h.T @ dL_do`` carries h's radius and the kinks.
    Shapes: x ``(N, I)``, w1 ``(I, H)``, w2 ``(H, O)``, target ``(N, O)``.
    """
    x64, w1_64, w2_64, target64 = (np.asarray(a, np.float64) for a in (x, w1, w2, target))
    h = forward_bound(x64, w1_64, arith, matmul=matmul)
    output = product_bound(h, _known(w2_64), arith, matmul=matmul)
    difference = output.center - target64
    kinks = np.abs(difference) <= output.radius + 2 * max(arith.tiny, arith.acc_tiny)
    dL_do = np.where(kinks, 0.0, np.sign(difference))
    ones, kink_weight = np.ones_like(dL_do), kinks.astype(np.float64)
    output_features = dL_do.shape[1]
    w2_small = np.abs(w2_64) * (np.abs(w2_64) < arith.input_tiny)
    # dL_dh: the admissible set of dL_do is centre dL_do, radius 1 at kinks (0 elsewhere).
    dh = grad_x_bound(dL_do, w2_64, arith, matmul=matmul)
    dh_rounding = _dot_radius(ones @ np.abs(w2_64).T, output_features, arith, ones @ w2_small.T)
    dh_kinks = (kink_weight @ np.abs(w2_64).T) * _magnitude_factor(output_features) * _SLACK
    dL_dh = Bound(dh.center, dh_rounding + dh_kinks)
    # dL_do as a Bound: +-1 off the kinks, [-1, 1] (centre 0, radius 1) on them.
    upstream = Bound(dL_do, kink_weight)
    dL_dw2 = product_bound(Bound(h.center.T, h.radius.T), upstream, arith, matmul=matmul)
    return ChainBounds(
        h=h,
        output=output,
        loss=loss_bound(output, target64, arith),
        kinks=kinks,
        dL_dx=product_bound(dL_dh, _known(w1_64.T), arith, matmul=matmul),
        dL_dw1=product_bound(_known(x64.T), dL_dh, arith, matmul=matmul),
        dL_dh=dL_dh,
        dL_dw2=dL_dw2,
    )


# ------------------------------------------------------------------------------------------
# Precision diagnosis: which arithmetic a result is consistent with.
# ------------------------------------------------------------------------------------------

BoundOf = Callable[[Arithmetic], "Bound | Sequence[Bound]"]


def precision_candidates(dtype: Any) -> tuple[Arithmetic, ...]:
    """The arithmetics a result stored in ``dtype`` may have been computed in, most precise first.

    float32: true float32, then the reduced matmul precisions JAX's settings produce on TPU and
    GPU (``bf16_6x``, ``bf16_3x``, ``f16``, ``tf32``, ``bf16``). bfloat16 / float16: float32
    accumulation, then accumulation in the dtype itself. float64: float64, then float32 (a
    framework's default dtype leaking in), labelled ``float32``.
    """
    name = dtype_name(dtype)
    if name == "float32":
        precisions = ("float32", "bf16_6x", "bf16_3x", "f16", "tf32", "bf16")
        return tuple(arithmetic(name, p) for p in precisions)  # type: ignore[arg-type]
    if name == "float64":
        # Inputs rounded to float32, computed and stored in float32, read back exactly.
        u, tiny = UNIT_ROUNDOFF["float32"], smallest_normal("float32")
        return (arithmetic(name), Arithmetic("float32", name, u, u, u, tiny))
    return (arithmetic(name), arithmetic(name, accumulate=name))


def less_precise(arith: Arithmetic) -> tuple[Arithmetic, ...]:
    """The ``precision_candidates`` of ``arith``'s dtype that come after it: what a result that
    fails ``arith``'s bound may have been computed in instead."""
    pool = precision_candidates(arith.dtype)
    names = [candidate.name for candidate in pool]
    return pool[names.index(arith.name) + 1 :] if arith.name in names else ()


def worst_ratio(bounds: Bound | Sequence[Bound], actual: Any | Sequence[Any]) -> float:
    """The largest ``Bound.ratio`` over one bound and value, or matching sequences of them."""
    if isinstance(bounds, Bound):
        return bounds.worst(actual)
    if len(bounds) != len(actual):
        raise ValueError(f"actual has {len(actual)} results, but bounds has {len(bounds)}")
    return max((b.worst(a) for b, a in zip(bounds, actual, strict=True)), default=0.0)


class PrecisionDiagnosis(NamedTuple):
    """Worst error / bound per candidate arithmetic and what that says.

    ``ratios`` maps each candidate's name to its worst ratio (<= 1: consistent); ``consistent``
    lists the names that fit, most precise first; ``message`` says it in one line.
    """

    ratios: dict[str, float]
    consistent: tuple[str, ...]
    message: str

    @property
    def ok(self) -> bool:
        """True when the result fits the first (full-precision) candidate's bound."""
        first = next(iter(self.ratios))
        return self.ratios[first] <= 1.0


def diagnose_precision(
    bound_of: BoundOf,
    actual: Any | Sequence[Any],
    candidates: Sequence[Arithmetic] | None = None,
    *,
    dtype: Any = np.float32,
) -> PrecisionDiagnosis:
    """Test ``actual`` against each candidate's bound and say which precision it is consistent with.

    E.g. a float32 matmul that fails the float32 bound but fits the TF32 one gives
    ``"exceeds the float32 bound (37x); consistent with float32 (tf32 matmul), ..."``.
    """
    pool = precision_candidates(dtype) if candidates is None else tuple(candidates)
    if not pool:
        raise ValueError("candidates must name at least one Arithmetic, got none")
    ratios = {a.name: worst_ratio(bound_of(a), actual) for a in pool}
    consistent = tuple(name for name, r in ratios.items() if r <= 1.0)
    full = pool[0].name
    if ratios[full] <= 1.0:
        message = f"within the {full} bound (worst error {ratios[full]:.3g}x the bound)"
    elif consistent:
        message = f"exceeds the {full} bound ({ratios[full]:.3g}x); consistent with " + ", ".join(
            f"{name} ({ratios[name]:.3g}x)" for name in consistent
        )
    else:
        best = min(ratios, key=ratios.__getitem__)
        message = (
            f"exceeds the {full} bound ({ratios[full]:.3g}x) and every reduced-precision one "
            f"(closest: {best}, {ratios[best]:.3g}x): not a rounding effect"
        )
    return PrecisionDiagnosis(ratios, consistent, message)


def step_bound_of(
    x: Any, w: Any, target: Any, lr: float, *, matmul: Matmul = _numpy_matmul, b: Any = None
) -> Callable[[Arithmetic], tuple[Bound, ...]]:
    """``bound_of`` for a whole step: ``arith -> (loss, dL_dx, dL_dw, w_new)`` bounds (with a
    bias b: ``(loss, dL_dx, dL_dw, dL_db, w_new, b_new)``)."""

    def bound_of(arith: Arithmetic) -> tuple[Bound, ...]:
        return step_bounds(x, w, target, lr, arith, matmul=matmul, b=b).results()

    return bound_of


def diagnose_step(
    x: Any, w: Any, target: Any, lr: float, result: Sequence[Any], *, dtype: Any | None = None
) -> PrecisionDiagnosis:
    """``diagnose_precision`` for ``result = step(x, w, target, lr)`` (loss, dL_dx, dL_dw, w_new).

    ``dtype`` defaults to x's.
    """
    fields = reference.StepResult._fields
    if len(result) != len(fields):
        raise ValueError(f"result must be {fields}, got {len(result)} values")
    name = dtype_name(np.asarray(x).dtype if dtype is None else dtype)
    return diagnose_precision(step_bound_of(x, w, target, lr), tuple(result), dtype=name)
