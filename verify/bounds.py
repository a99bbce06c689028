"""The error model: when is a computed result "close enough" to the exact one.

A fixed rtol either hides bugs or raises false alarms as the summed dimension K grows, so every
float comparison in crosscheck is against a proved per-element bound instead (Higham, *Accuracy
and Stability of Numerical Algorithms*, 2nd ed., section 3.1).

**Dot products.** A length-K dot product computed with any summation order (sequential, pairwise,
blocked, FMA), inputs rounded to a matmul input format with unit roundoff ``u_in``, products and
sums accumulated with unit roundoff ``u_acc`` and the result stored with ``u_out``, satisfies::

    |computed - exact| <= c_K * sum_k |a_k| |b_k| + (2K + 1) * tiny
    c_K = (1 + u_in)^2 (1 + gamma_K(u_acc)) (1 + u_out) - 1,    gamma_K(u) = K u / (1 - K u)

``(1 + u_in)^2``: both factors rounded to TF32 / bfloat16 before the multiply (products of such
inputs are exact in float32, so nothing else changes). ``gamma_K``: Higham's Lemma 3.1 for any
order of K products and K - 1 additions. ``(1 + u_out)``: an accumulator wider than the stored
dtype (float32 accumulation of bfloat16, float64-then-cast) rounds once more at the end. ``tiny``
(the smallest normal number): each of the at most 2K operations may underflow, and XLA on CPU
flushes subnormals to zero, losing up to ``tiny`` each.

**The layer.** ``output = x @ w`` has K = I and magnitude ``|x| @ |w|``. The loss
``sum |output - target|`` carries every output's error plus N*O + 1 more roundings on the sum.
``dL_dx = dL_do @ w.T`` (K = O, magnitude ``|dL_do| @ |w|.T``) and ``dL_dw = x.T @ dL_do``
(K = N) are dot products too. The update ``w - lr * dL_dw`` rounds three times (lr cast to the
dtype, the product, the difference): ``gamma_3(u)`` on ``|w| + |lr dL_dw|``, plus
``|lr|`` times the gradient's own radius when the gradient was computed, not given.

**Kinks.** Where ``|output - target|`` is within the forward bound, the sign of dL_do is not
determined by the data: any value in [-1, 1] is admissible (at a true tie every subgradient is
valid; near one, rounding may flip the sign). Such an element is centred at 0 and contributes
``|w[i, j]|`` to dL_dx[d, i]'s radius and ``|x[d, i]|`` to dL_dw[i, j]'s: exactly the admissible set.

**The reference's own error.** Centres are computed in float64 (by the loop reference or by numpy
float64, any order), so each radius also carries the float64 c_K of that computation.
Magnitudes are float64 sums of non-negative terms, so the computed magnitude ``m^`` satisfies
``m <= m^ / (1 - gamma_K(2^-53))``; radii are scaled by that factor.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import ml_dtypes
import numpy as np

#: Unit roundoff (half an ulp of 1) of each storage format: round to nearest.
UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "bfloat16": 2.0**-8,
    "float16": 2.0**-11,
}

#: The rounding a matmul applies to its float32 inputs, by JAX precision setting.
#:   float32  - true float32 (CPU always; GPU at HIGHEST).
#:   tf32     - TensorFloat-32 inputs (10 mantissa bits), float32 accumulation: GPU DEFAULT / HIGH.
#:   bf16     - one bfloat16 pass (8 bits), float32 accumulation: TPU DEFAULT.
#:   bf16_3x  - three bfloat16 passes (x = hi + lo; hi*hi' + hi*lo' + lo*hi'): TPU HIGH. The
#:              split loses 2^-16 |x| per input and the dropped lo*lo' term 2^-16 |x y|, within
#:              (1 + 2^-15)^2 - 1.
#:   bf16_6x  - six passes (hi + mid + lo): TPU HIGHEST, float32 up to 2^-23 per input.
MATMUL_INPUT_ROUNDOFF: dict[str, float] = {
    "float32": 0.0,
    "bf16_6x": 2.0**-23,
    "bf16_3x": 2.0**-15,
    "tf32": 2.0**-11,
    "bf16": 2.0**-8,
}

MatmulPrecision = Literal["float32", "bf16_6x", "bf16_3x", "tf32", "bf16"]

_DTYPES = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float16": np.dtype(np.float16),
}


def dtype_name(dtype: Any) -> str:
    """The canonical name of a floating dtype the model covers, or a ValueError saying which are."""
    name = np.dtype(dtype).name
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype must be one of {sorted(UNIT_ROUNDOFF)}, got {name}")
    return name


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for one of ``UNIT_ROUNDOFF``'s names (bfloat16 from ml_dtypes)."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}") from None


def gamma(k: int, u: float) -> float:
    """``gamma_k(u) = k u / (1 - k u)``; infinite once ``k u >= 1`` (the bound says nothing)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    ku = k * u
    return math.inf if ku >= 1.0 else ku / (1.0 - ku)


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """How a computation rounds: the three unit roundoffs of the dot-product model above.

    Attributes:
      name: a label for reports, e.g. ``"float32"`` or ``"float32 (tf32 matmul)"``.
      dtype: storage dtype name of inputs and results.
      u_out: unit roundoff of every stored result.
      u_in: rounding of matmul inputs on top of their storage format (0 for true float32).
      u_acc: unit roundoff of accumulation in matmuls and sums.
      tiny: smallest normal number of the storage dtype (the underflow / flush-to-zero term).
    """

    name: str
    dtype: str
    u_out: float
    u_in: float
    u_acc: float
    tiny: float

    def dot(self, k: int) -> float:
        """``c_K``, the relative coefficient of a length-k dot product (module docstring)."""
        if k == 0:
            return 0.0
        return (1 + self.u_in) ** 2 * (1 + gamma(k, self.u_acc)) * (1 + self.u_out) - 1

    def sum(self, k: int) -> float:
        """The relative coefficient of a k-term sum (no input rounding)."""
        if k == 0:
            return 0.0
        return (1 + gamma(k, self.u_acc)) * (1 + self.u_out) - 1

    def underflow(self, k: int) -> float:
        """The absolute term for k products and k - 1 additions that may flush to zero."""
        return (2 * k + 1) * self.tiny


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
    return Arithmetic(
        name=label,
        dtype=name,
        u_out=UNIT_ROUNDOFF[name],
        u_in=MATMUL_INPUT_ROUNDOFF[matmul_precision],
        u_acc=UNIT_ROUNDOFF[accumulate_name],
        tiny=float(np.finfo(numpy_dtype(name)).smallest_normal),
    )


#: The reference's own arithmetic: float64 everywhere.
FLOAT64 = arithmetic("float64")

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
        return np.where(np.isnan(actual), np.inf, ratio)


def _magnitude_factor(k: int) -> float:
    # A float64 sum of k non-negative terms may come out low by gamma_k(2^-53) at most.
    return 1.0 / (1.0 - gamma(k, UNIT_ROUNDOFF["float64"])) if k else 1.0


def _dot_radius(magnitude: np.ndarray, k: int, arith: Arithmetic) -> np.ndarray:
    """Radius of a length-k dot product against a float64 centre of the same inputs."""
    coefficient = (arith.dot(k) + FLOAT64.dot(k)) * _magnitude_factor(k)
    return coefficient * magnitude + arith.underflow(k)


def forward_bound(x: Any, w: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul) -> Bound:
    """The bound on ``output = x @ w``: centre ``x @ w`` (float64), radius ``c_I |x| @ |w|``.

    Shapes: x ``(N, I)``, w ``(I, O)``; ``matmul`` computes the float64 centre (numpy by
    default; the tests pass the loop reference).
    """
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    center = np.asarray(matmul(x64, w64), dtype=np.float64)
    return Bound(center, _dot_radius(np.abs(x64) @ np.abs(w64), x64.shape[1], arith))


def grad_x_bound(dL_do: Any, w: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul) -> Bound:
    """The bound on ``dL_dx = dL_do @ w.T`` for a given upstream: radius ``c_O |dL_do| @ |w|.T``."""
    upstream, w64 = np.asarray(dL_do, np.float64), np.asarray(w, np.float64)
    center = np.asarray(matmul(upstream, w64.T), dtype=np.float64)
    return Bound(center, _dot_radius(np.abs(upstream) @ np.abs(w64).T, w64.shape[1], arith))


def grad_w_bound(x: Any, dL_do: Any, arith: Arithmetic, *, matmul: Matmul = _numpy_matmul) -> Bound:
    """The bound on ``dL_dw = x.T @ dL_do`` for a given upstream: radius ``c_N |x|.T @ |dL_do|``."""
    x64, upstream = np.asarray(x, np.float64), np.asarray(dL_do, np.float64)
    center = np.asarray(matmul(x64.T, upstream), dtype=np.float64)
    return Bound(center, _dot_radius(np.abs(x64).T @ np.abs(upstream), x64.shape[0], arith))


def loss_bound(output: Bound, target: Any, arith: Arithmetic) -> Bound:
    """The bound on ``L = sum |output - target|`` when ``output`` is itself only known to a bound.

    ``|L^ - L| <= sum radius + c_{NO+1} (sum |center - target| + sum radius)``, plus the float64
    centre's own summation error.
    """
    target64 = np.asarray(target, np.float64)
    terms = np.abs(output.center - target64)
    count = terms.size + 1  # N*O additions and the subtraction inside each term
    center = float(math.fsum(terms.ravel().tolist()))  # correctly rounded: no centre error
    spread = float(output.radius.sum()) * _magnitude_factor(terms.size)
    radius = spread + arith.sum(count) * (center + spread) * _magnitude_factor(count)
    radius += arith.underflow(count) + UNIT_ROUNDOFF["float64"] * center
    return Bound(np.asarray(center), np.asarray(radius))


def update_bound(
    w: Any, dL_dw: Bound | Any, lr: float, arith: Arithmetic
) -> Bound:
    """The bound on ``w_new = w - lr * dL_dw``; ``dL_dw`` may be a value or a Bound.

    Three roundings (lr to the dtype, the product, the difference): ``gamma_3(u)`` on
    ``|w| + |lr| |dL_dw|``; a gradient known only to a radius adds ``|lr| * radius``.
    """
    w64 = np.asarray(w, np.float64)
    grad = dL_dw if isinstance(dL_dw, Bound) else Bound(np.asarray(dL_dw, np.float64), np.zeros_like(w64))
    step_size = abs(float(lr))
    center = w64 - float(lr) * grad.center
    magnitude = np.abs(w64) + step_size * (np.abs(grad.center) + grad.radius)
    coefficient = gamma(3, arith.u_out) + gamma(2, UNIT_ROUNDOFF["float64"])
    radius = step_size * grad.radius + coefficient * magnitude + 2 * arith.tiny
    return Bound(center, radius)


class StepBounds(NamedTuple):
    """Bounds on everything one SGD step produces, and where dL_do is not determined."""

    output: Bound
    loss: Bound
    dL_do: np.ndarray  # +-1 where the sign is determined, 0 at kinks
    kinks: np.ndarray  # bool (N, O): |output - target| within the forward bound
    dL_dx: Bound
    dL_dw: Bound
    w_new: Bound


def step_bounds(
    x: Any,
    w: Any,
    target: Any,
    lr: float,
    arith: Arithmetic,
    *,
    matmul: Matmul = _numpy_matmul,
) -> StepBounds:
    """Bounds on ``step(x, w, target, lr)`` computed in ``arith``, kink-aware (module docstring).

    Shapes: x ``(N, I)``, w ``(I, O)``, target ``(N, O)``; lr a scalar.
    """
    x64, w64, target64 = (np.asarray(a, np.float64) for a in (x, w, target))
    output = forward_bound(x64, w64, arith, matmul=matmul)
    difference = output.center - target64
    kinks = np.abs(difference) <= output.radius
    dL_do = np.where(kinks, 0.0, np.sign(difference))
    # Every element, kink or not, contributes |dL_do| <= 1 to the rounding magnitude; a kink
    # also contributes its whole admissible interval [-|w|, |w|] (or [-|x|, |x|]).
    ones = np.ones_like(dL_do)
    kink_weight = kinks.astype(np.float64)
    num_data, output_features = dL_do.shape
    dx = grad_x_bound(dL_do, w64, arith, matmul=matmul)
    dx_radius = _dot_radius(ones @ np.abs(w64).T, output_features, arith)
    dx_radius = dx_radius + (kink_weight @ np.abs(w64).T) * _magnitude_factor(output_features)
    dw = grad_w_bound(x64, dL_do, arith, matmul=matmul)
    dw_radius = _dot_radius(np.abs(x64).T @ ones, num_data, arith)
    dw_radius = dw_radius + (np.abs(x64).T @ kink_weight) * _magnitude_factor(num_data)
    dL_dw = Bound(dw.center, dw_radius)
    return StepBounds(
        output=output,
        loss=loss_bound(output, target64, arith),
        dL_do=dL_do,
        kinks=kinks,
        dL_dx=Bound(dx.center, dx_radius),
        dL_dw=dL_dw,
        w_new=update_bound(w64, dL_dw, lr, arith),
    )
