"""Hypothesis strategies for the layer's shapes and inputs, for crosscheck's tests and yours.

Every strategy takes keyword-only options, checks them eagerly, and draws from a small menu of
dimensions: each distinct shape costs one XLA compile per function, and compile time, not
arithmetic, dominates small-shape runs. The menu still covers what breaks layers: 1-sized dims
(broadcasting bugs), primes (blocking remainders), 128 and its neighbours (where XLA and BLAS
change strategy), and very unequal shapes.

Values come in kinds, drawn per example:

- ``integers``: small integers; outputs are exact, so ties (output == target) are exact ties,
  including signed zeros, and every implementation must meet them.
- ``normal`` / ``wide``: Gaussian data at one scale, or with magnitudes spread over many decades;
  targets near the outputs, some copied from the float64 output and rounded to the dtype (near
  ties, which the kink-aware bound must absorb).
- ``cancellation``: pairs of rows of w that cancel, so ``x @ w`` is small next to ``|x| @ |w|``.

Large arrays are filled from a numpy generator seeded by Hypothesis (element-wise drawing of a
4,000-element array is slow and mostly constant); the shapes, kinds and seeds still shrink.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

from .bounds import numpy_dtype

#: Dimensions the shape strategies draw from (see module docstring).
DIM_MENU: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 127, 128, 129, 257)

#: Learning rates: the notebook's 0.01 (not a binary fraction) and powers of two.
LEARNING_RATES: tuple[float, ...] = (0.01, 0.5, 2.0**-4, 1.0, 0.1)

#: Learning rates for exact mode: powers of two keep ``w - lr * dL_dw`` exact.
EXACT_LEARNING_RATES: tuple[float, ...] = (1.0, 0.5, 2.0**-4, 2.0**-6)

VALUE_KINDS: tuple[str, ...] = ("integers", "normal", "wide", "cancellation")


class LayerShape(NamedTuple):
    """``(N, I, O)``: num_data, input_features, output_features."""

    num_data: int
    input_features: int
    output_features: int


class LayerInputs(NamedTuple):
    """One example: ``x (N, I)``, ``w (I, O)``, ``target (N, O)``, ``lr`` and how it was made."""

    x: np.ndarray
    w: np.ndarray
    target: np.ndarray
    lr: float
    kind: str

    @property
    def shape(self) -> LayerShape:
        return LayerShape(self.x.shape[0], self.x.shape[1], self.w.shape[1])


def _check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def layer_shapes(
    *, max_side: int = 257, max_size: int = 1 << 16, dims: tuple[int, ...] = DIM_MENU
) -> st.SearchStrategy[LayerShape]:
    """Shapes ``(N, I, O)`` with every side from ``dims`` and ``N * I * O <= max_size``.

    Args:
      max_side: the largest any one dimension may be.
      max_size: the largest ``N * I * O`` (multiply-adds of one matmul; the loop reference's
        cost), so a dim past 128 comes with small partners: very unequal shapes.
      dims: the menu of sides (each distinct shape is one compile).
    """
    _check_positive_int("max_side", max_side)
    _check_positive_int("max_size", max_size)
    menu = tuple(sorted({_check_positive_int("dims[...]", d) for d in dims if d <= max_side}))
    if not menu:
        raise ValueError(f"no dimension in dims={dims} is <= max_side={max_side}")

    @st.composite
    def draw_shape(draw: st.DrawFn) -> LayerShape:
        sides: list[int] = []
        for _ in range(3):
            room = max_size // max(1, int(np.prod(sides)))
            sides.append(draw(st.sampled_from([d for d in menu if d <= room] or [menu[0]])))
        # Any of the three may carry the big side: permute so shrinking goes toward (1, 1, 1).
        order = draw(st.permutations(range(3)))
        return LayerShape(*(sides[k] for k in order))

    return draw_shape()


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _targets_near(
    output: np.ndarray, rng: np.random.Generator, dtype: np.dtype, *, tie_fraction: float
) -> np.ndarray:
    """Targets around ``output``: some exactly equal (ties), the rest offset by +-[0.5, 1.5]."""
    offsets = rng.choice([-1.5, -1.0, -0.5, 0.5, 1.0, 1.5], size=output.shape)
    scale = np.maximum(np.abs(output), 1.0) * rng.choice([1.0, 1e-3], size=output.shape)
    target = output + offsets * scale
    ties = rng.random(output.shape) < tie_fraction
    target = np.where(ties, output, target)
    # A tie at zero is met with either sign: -0.0 == +0.0, but a sign-bit test is not.
    zero_ties = ties & (output == 0)
    target = np.where(zero_ties & (rng.random(output.shape) < 0.5), -0.0, target)
    return target.astype(dtype)


def _make_inputs(
    kind: str, shape: LayerShape, dtype: np.dtype, seed: int, lr: float, tie_fraction: float
) -> LayerInputs:
    rng = _rng(seed)
    n, i, o = shape
    if kind == "integers":
        x = rng.integers(-4, 5, size=(n, i)).astype(np.float64)
        w = rng.integers(-3, 4, size=(i, o)).astype(np.float64)
        x[rng.random(n) < 0.2] = 0.0  # zero rows make zero outputs: signed-zero ties
    elif kind == "normal":
        scale = float(rng.choice([1.0, 1e-2, 1e2]))
        x = rng.standard_normal((n, i)) * scale
        w = rng.standard_normal((i, o))
    elif kind == "wide":
        x = rng.standard_normal((n, i)) * 10.0 ** rng.integers(-3, 4, size=(n, i))
        w = rng.standard_normal((i, o)) * 10.0 ** rng.integers(-3, 4, size=(i, o))
    elif kind == "cancellation":
        x = rng.standard_normal((n, i)) * 1e2
        w = rng.standard_normal((i, o)) * 1e2
        half = i // 2
        # x[:, 2k+1] ~ x[:, 2k] and w[2k+1] = -w[2k]: each pair contributes ~0 from big terms.
        x[:, 1 : 2 * half : 2] = x[:, 0 : 2 * half : 2] * (1 + 1e-3 * rng.standard_normal((n, half)))
        w[1 : 2 * half : 2] = -w[0 : 2 * half : 2]
    else:
        raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")
    x, w = x.astype(dtype), w.astype(dtype)
    output = x.astype(np.float64) @ w.astype(np.float64)
    target = _targets_near(output, rng, dtype, tie_fraction=tie_fraction)
    return LayerInputs(x, w, target, lr, kind)


def layer_inputs(
    *,
    dtype: Any = np.float32,
    shapes: st.SearchStrategy[LayerShape] | None = None,
    kinds: tuple[str, ...] = VALUE_KINDS,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    tie_fraction: float = 0.2,
) -> st.SearchStrategy[LayerInputs]:
    """Inputs ``(x, w, target, lr)`` for one step, in ``dtype``, with ties made on purpose.

    Args:
      dtype: float64, float32, bfloat16 or float16.
      shapes: a strategy of ``LayerShape`` (default ``layer_shapes()``).
      kinds: value kinds to draw from (module docstring).
      learning_rates: the menu of lr.
      tie_fraction: expected share of targets set equal to the output.
    """
    np_dtype = numpy_dtype(np.dtype(dtype).name)
    unknown = set(kinds) - set(VALUE_KINDS)
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {VALUE_KINDS}, got {kinds!r}")
    if not 0.0 <= tie_fraction <= 1.0:
        raise ValueError(f"tie_fraction must be in [0, 1], got {tie_fraction!r}")
    return st.builds(
        _make_inputs,
        kind=st.sampled_from(kinds),
        shape=shapes if shapes is not None else layer_shapes(),
        dtype=st.just(np_dtype),
        seed=st.integers(0, 2**32 - 1),
        lr=st.sampled_from(learning_rates),
        tie_fraction=st.just(tie_fraction),
    )


def _make_exact_inputs(
    shape: LayerShape, dtype: np.dtype, seed: int, lr: float, magnitude: int
) -> LayerInputs:
    rng = _rng(seed)
    n, i, o = shape
    x = rng.integers(-magnitude, magnitude + 1, size=(n, i)).astype(np.float64)
    w = rng.integers(-magnitude, magnitude + 1, size=(i, o)).astype(np.float64)
    output = x @ w
    # Half-integer offsets: never a tie, and |output - target| <= 1.5 keeps the loss small.
    target = output + rng.choice([-1.5, -0.5, 0.5, 1.5], size=output.shape)
    return LayerInputs(x.astype(dtype), w.astype(dtype), target.astype(dtype), lr, "exact")


def exact_layer_inputs(
    *,
    dtype: Any = np.float32,
    shapes: st.SearchStrategy[LayerShape] | None = None,
    magnitude: int = 4,
    learning_rates: tuple[float, ...] = EXACT_LEARNING_RATES,
) -> st.SearchStrategy[LayerInputs]:
    """Exact-mode inputs: integer x and w in [-magnitude, magnitude], half-integer targets.

    Every product, sum and update is then exact in float32 as long as ``I * magnitude^2``,
    ``N * magnitude`` and the loss (at most ``1.5 * N * O``) stay below 2^23; the strategy
    refuses shapes and magnitudes that could break that, so any two correct implementations
    agree bit for bit. Learning rates are powers of two.
    """
    np_dtype = numpy_dtype(np.dtype(dtype).name)
    if np_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"exact mode needs float32 or float64, got {np_dtype.name}")
    _check_positive_int("magnitude", magnitude)
    for lr in learning_rates:
        mantissa, _ = np.frexp(lr)
        if lr <= 0 or mantissa != 0.5:
            raise ValueError(f"exact-mode learning rates must be powers of two, got {lr!r}")

    def fits(shape: LayerShape) -> bool:
        n, i, o = shape
        limit = 2**23
        return i * magnitude**2 < limit and n * magnitude < limit and 1.5 * n * o < limit

    return st.builds(
        _make_exact_inputs,
        shape=(shapes if shapes is not None else layer_shapes()).filter(fits),
        dtype=st.just(np_dtype),
        seed=st.integers(0, 2**32 - 1),
        lr=st.sampled_from(learning_rates),
        magnitude=st.just(magnitude),
    )


def upstream_gradients(
    shape: tuple[int, int], *, dtype: Any = np.float32
) -> st.SearchStrategy[np.ndarray]:
    """Random non-unit upstream gradients ``dL_do`` of ``shape`` (N, O).

    A bug that ignores or rescales its upstream input survives a test whose upstream is all +-1.
    """
    np_dtype = numpy_dtype(np.dtype(dtype).name)
    return st.integers(0, 2**32 - 1).map(
        lambda seed: (_rng(seed).standard_normal(shape) * 3.0).astype(np_dtype)
    )
