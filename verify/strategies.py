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
- ``huge``: Gaussian data scaled by a power of two up to ``bounds.safe_limit`` (1/32 of the
  dtype's overflow threshold) for the loss, the gradients and the update alike.
- ``tiny``: x and w around the square root of the smallest normal number, so products land
  around it: some underflow, some are flushed to zero by XLA on CPU.
- ``subnormal``: a third of x subnormal against large w. XLA on CPU reads subnormal inputs as
  zero (DAZ) and loses the whole product; ``verify.bounds`` covers that (its ``m_small`` term),
  which is why these are generated on purpose.

With ``bias=True`` a bias b of shape ``(O,)`` is drawn like w for the same kind (integers,
Gaussian at the outputs' scale, spread over decades, cancelling ``x @ w``'s first row, around the
smallest normal, partly subnormal) and the targets sit around ``x @ w + b``: ties are made on
purpose through the bias too.

Every kind is scaled (by a power of two) so that nothing one step forms overflows the dtype:
the error model covers rounding and underflow, not overflow.

Large arrays are filled from a numpy generator seeded by Hypothesis (element-wise drawing of a
4,000-element array is slow and mostly constant); the shapes, kinds and seeds still shrink.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, NamedTuple, overload

import ml_dtypes
import numpy as np
from hypothesis import strategies as st

from ._params import names_for, ordered, output_magnitude, output_mass
from ._params import output as layer_output
from .bounds import numpy_dtype, safe_limit

#: Dimensions the shape strategies draw from (see module docstring).
DIM_MENU: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 127, 128, 129, 257)

#: Learning rates: the notebook's 0.01 (not a binary fraction) and powers of two.
LEARNING_RATES: tuple[float, ...] = (0.01, 0.5, 2.0**-4, 1.0, 0.1)

#: Learning rates for exact mode: powers of two keep ``w - lr * dL_dw`` exact.
EXACT_LEARNING_RATES: tuple[float, ...] = (1.0, 0.5, 2.0**-4, 2.0**-6)

VALUE_KINDS: tuple[str, ...] = (
    "integers",
    "normal",
    "wide",
    "cancellation",
    "huge",
    "tiny",
    "subnormal",
)


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

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters as one tree: ``{"w": w}``."""
        return {"w": self.w}


class BiasLayerInputs(NamedTuple):
    """One example of the layer with a bias: ``x (N, I)``, ``w (I, O)``, ``b (O,)``,
    ``target (N, O)`` around ``x @ w + b``, ``lr`` and how it was made."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    target: np.ndarray
    lr: float
    kind: str

    @property
    def shape(self) -> LayerShape:
        return LayerShape(self.x.shape[0], self.x.shape[1], self.w.shape[1])

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters as one tree: ``{"w": w, "b": b}``."""
        return {"w": self.w, "b": self.b}


#: The inputs of one example, by the layer's parameters (``_params.names_for``).
_INPUTS: dict[tuple[str, ...], type[LayerInputs] | type[BiasLayerInputs]] = {
    ("w",): LayerInputs,
    ("w", "b"): BiasLayerInputs,
}


def inputs_of(
    x: np.ndarray, params: dict[str, np.ndarray], target: np.ndarray, lr: float, kind: str
) -> LayerInputs | BiasLayerInputs:
    """The inputs of one example from the parameter tree: ``LayerInputs`` for ``{"w": w}``,
    ``BiasLayerInputs`` for ``{"w": w, "b": b}`` (``.params`` gives the tree back)."""
    params = ordered(params)
    return _INPUTS[tuple(params)](x, **params, target=target, lr=lr, kind=kind)


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


def _check_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype of ``dtype``, or a ValueError naming the dtypes the model covers."""
    try:
        name = np.dtype(dtype).name
    except TypeError as err:
        raise ValueError(f"dtype must be a floating dtype the model covers, got {dtype!r}") from err
    return numpy_dtype(name)


def _targets_near(
    output: np.ndarray,
    rng: np.random.Generator,
    dtype: np.dtype,
    *,
    tie_fraction: float,
    typical: float = 1.0,
) -> np.ndarray:
    """Targets around ``output``: some exactly equal (ties), the rest offset by +-[0.5, 1.5]
    times ``max(|output|, typical)`` (or a thousandth of it: near ties)."""
    offsets = rng.choice([-1.5, -1.0, -0.5, 0.5, 1.0, 1.5], size=output.shape)
    scale = np.maximum(np.abs(output), typical) * rng.choice([1.0, 1e-3], size=output.shape)
    target = output + offsets * scale
    ties = rng.random(output.shape) < tie_fraction
    target = np.where(ties, output, target)
    # A tie at zero is met with either sign: -0.0 == +0.0, but a sign-bit test is not.
    zero_ties = ties & (output == 0)
    target = np.where(zero_ties & (rng.random(output.shape) < 0.5), -0.0, target)
    return target.astype(dtype)


def _range_exponent(
    x: np.ndarray, params: dict[str, np.ndarray], dtype: np.dtype, lr: float
) -> float:
    """``log2`` of the room below overflow: scaling x and w by ``2^e`` each (and b, which is in
    the outputs' units, by ``2^2e``) keeps every quantity a step forms at most
    ``bounds.safe_limit(dtype)`` (1/32 of its largest finite number).

    The quantities: the loss (at most ``4 sum |x @ w + b|`` with these targets, quadratic in
    the scale: every parameter's ``_params.output_mass``), dL_dw (column sums of ``|x|``, times
    ``1 + |lr|`` for the update) and dL_dx (row sums of ``|w|``), linear. Partial sums of a
    matmul never exceed its ``|x| @ |w|``; dL_db is at most N, whatever the scale.
    """
    limit = safe_limit(dtype)
    quadratic = sum(4.0 * output_mass(x, name, value) for name, value in params.items())
    w = params["w"]
    linear = max(
        float(np.abs(x).sum(axis=0).max(initial=0.0)) * (1 + abs(lr)),
        float(np.abs(w).sum(axis=1).max(initial=0.0)),
    )
    # In log space: limit / quadratic itself may overflow float64.
    room = [(np.log2(limit) - np.log2(quadratic)) / 2] if quadratic > 0 else []
    room += [np.log2(limit) - np.log2(linear)] if linear > 0 else []
    return float(min(room, default=0.0))


def _bias_values(
    kind: str, x: np.ndarray, w: np.ndarray, dtype: np.dtype, rng: np.random.Generator
) -> np.ndarray:
    """b ``(O,)`` in float64 for one value kind, in the units of ``x @ w`` (module docstring)."""
    return np.asarray(_bias_draw(kind, x, w, dtype, rng), dtype=np.float64)


def _unchanged(value: np.ndarray, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    return value


def _bias_draw(
    kind: str, x: np.ndarray, w: np.ndarray, dtype: np.dtype, rng: np.random.Generator
) -> Any:
    o = w.shape[1]
    typical = float(np.mean(np.abs(x) @ np.abs(w))) or 1.0
    if kind == "integers":
        return rng.integers(-3, 4, size=o).astype(np.float64)
    if kind in ("normal", "huge", "subnormal"):
        return rng.standard_normal(o) * typical
    if kind == "wide":
        return rng.standard_normal(o) * typical * 10.0 ** rng.integers(-3, 4, size=o)
    if kind == "cancellation":
        # b undoes the first example's output: x @ w + b is small next to |x| @ |w| + |b| there.
        return -(x[:1] @ w)[0] * (1 + 1e-3 * rng.standard_normal(o))
    if kind == "tiny":
        tiny = float(ml_dtypes.finfo(dtype).smallest_normal)
        return rng.standard_normal(o) * tiny * 2.0 ** rng.integers(-4, 5, size=o)
    raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")


def _subnormal_bias(b: np.ndarray, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """A third of b made subnormal: a bias read as zero (DAZ) must be within the bound too."""
    info = ml_dtypes.finfo(dtype)
    sub = rng.random(b.shape) < 1 / 3
    values = rng.uniform(-1, 1, size=b.shape) * float(info.smallest_subnormal)
    values *= 2.0 ** rng.integers(0, int(info.nmant), size=b.shape)
    return np.where(sub, values, b)


class _Drawn(NamedTuple):
    """How a parameter besides w is drawn (w comes with x, from ``_adversarial_values``)."""

    #: ``(kind, x, w, dtype, rng) -> values`` in float64, after x and w.
    values: Callable[[str, np.ndarray, np.ndarray, np.dtype, np.random.Generator], np.ndarray]
    #: Whether its term ``x @ w`` carries x: a scale of x moves it, or only the outputs' does.
    carries_x: bool
    #: ``(values, dtype, rng) -> values`` for the ``subnormal`` kind, after the scaling.
    subnormal: Callable[[np.ndarray, np.dtype, np.random.Generator], np.ndarray]


#: Every parameter's drawing (w with x; b like w for the same kind, in the outputs' units).
_DRAWN: dict[str, _Drawn] = {
    "w": _Drawn(lambda *_: np.empty(0), carries_x=True, subnormal=_unchanged),
    "b": _Drawn(_bias_values, carries_x=False, subnormal=_subnormal_bias),
}


def _adversarial_values(
    kind: str, n: int, i: int, o: int, dtype: np.dtype, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """x ``(N, I)`` and w ``(I, O)`` in float64 for one value kind (module docstring)."""
    info = ml_dtypes.finfo(dtype)
    if kind == "integers":
        x = rng.integers(-4, 5, size=(n, i)).astype(np.float64)
        w = rng.integers(-3, 4, size=(i, o)).astype(np.float64)
        x[rng.random(n) < 0.2] = 0.0  # zero rows make zero outputs: signed-zero ties
    elif kind in ("normal", "huge"):
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
        noise = 1 + 1e-3 * rng.standard_normal((n, half))
        x[:, 1 : 2 * half : 2] = x[:, 0 : 2 * half : 2] * noise
        w[1 : 2 * half : 2] = -w[0 : 2 * half : 2]
    elif kind == "tiny":
        # Products around the smallest normal: some underflow, some flush, some survive.
        root = np.sqrt(float(info.smallest_normal))
        x = rng.standard_normal((n, i)) * root * 2.0 ** rng.integers(-4, 5, size=(n, i))
        w = rng.standard_normal((i, o)) * root * 2.0 ** rng.integers(-4, 5, size=(i, o))
    elif kind == "subnormal":
        # Subnormal x against large w: a DAZ matmul loses whole products.
        x = rng.standard_normal((n, i))
        # Whole rows too: there the lost products are all of the output, not a sliver of it.
        sub = (rng.random((n, i)) < 1 / 3) | (rng.random((n, 1)) < 1 / 4)
        x[sub] = (
            rng.uniform(-1, 1, size=int(sub.sum()))
            * float(info.smallest_subnormal)
            * 2.0 ** (rng.integers(0, int(info.nmant), size=int(sub.sum())))
        )
        w = rng.standard_normal((i, o)) * 2.0 ** rng.integers(0, int(info.maxexp) // 2, size=(i, o))
    else:
        raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")
    return x, w


@overload
def example_inputs(
    shape: tuple[int, int, int],
    *,
    kind: str = ...,
    dtype: Any = ...,
    seed: int = ...,
    lr: float = ...,
    tie_fraction: float = ...,
    bias: Literal[False] = ...,
) -> LayerInputs: ...
@overload
def example_inputs(
    shape: tuple[int, int, int],
    *,
    kind: str = ...,
    dtype: Any = ...,
    seed: int = ...,
    lr: float = ...,
    tie_fraction: float = ...,
    bias: Literal[True],
) -> BiasLayerInputs: ...
@overload
def example_inputs(
    shape: tuple[int, int, int],
    *,
    kind: str = ...,
    dtype: Any = ...,
    seed: int = ...,
    lr: float = ...,
    tie_fraction: float = ...,
    bias: bool,
) -> LayerInputs | BiasLayerInputs: ...
def example_inputs(
    shape: tuple[int, int, int],
    *,
    kind: str = "normal",
    dtype: Any = np.float32,
    seed: int = 0,
    lr: float = 0.01,
    tie_fraction: float = 0.2,
    bias: bool = False,
) -> LayerInputs | BiasLayerInputs:
    """One example of ``layer_inputs``, outside Hypothesis: a fixed shape ``(N, I, O)``.

    For fixed probes (the oracle's edge shapes, multi-process workers, scripts) that need the
    same value kinds and ties as the strategies without drawing them. ``bias=True``: a
    ``BiasLayerInputs`` with b ``(O,)`` and targets around ``x @ w + b``.
    """
    if kind not in VALUE_KINDS:
        raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")
    sides = tuple(_check_positive_int(f"shape[{k}]", side) for k, side in enumerate(shape))
    if len(sides) != 3:
        raise ValueError(f"shape must be (N, I, O), got {shape!r}")
    if not 0.0 <= tie_fraction <= 1.0:
        raise ValueError(f"tie_fraction must be in [0, 1], got {tie_fraction!r}")
    np_dtype = numpy_dtype(np.dtype(dtype).name)
    return _make_inputs(kind, LayerShape(*sides), np_dtype, seed, lr, tie_fraction, bias)


def _make_inputs(
    kind: str,
    shape: LayerShape,
    dtype: np.dtype,
    seed: int,
    lr: float,
    tie_fraction: float,
    bias: bool = False,
) -> LayerInputs | BiasLayerInputs:
    """One example of ``layer_inputs``: x and w, every other parameter drawn after them from
    the same generator (so the layer without a bias draws what it drew before there was one),
    all scaled into range, then the targets around ``x @ w (+ b)``."""
    rng = _rng(seed)
    n, i, o = shape
    x, w = _adversarial_values(kind, n, i, o, dtype, rng)
    params = {"w": w}
    for name in names_for(bias)[1:]:
        params[name] = _DRAWN[name].values(kind, x, w, dtype, rng)
    room = _range_exponent(x, params, dtype, lr)
    # The outputs move by 2^(2e): x and each term's other factor by 2^e each (huge: as far as
    # the room allows; else down only where needed). Subnormal x must stay subnormal: there
    # only the parameters move, each by the whole 2^(2e).
    if kind == "subnormal":
        exponent, x_exponent = min(0, int(np.floor(room))), 0
    else:
        exponent = int(np.floor(room)) if (kind == "huge" or room < 0) else 0
        x, x_exponent = np.ldexp(x, exponent), exponent
    params = {
        name: np.ldexp(value, 2 * exponent - (x_exponent if _DRAWN[name].carries_x else 0))
        for name, value in params.items()
    }
    if kind == "subnormal":
        params = {name: _DRAWN[name].subnormal(value, dtype, rng) for name, value in params.items()}
    x = x.astype(dtype)
    params = {name: value.astype(dtype) for name, value in params.items()}
    x64 = x.astype(np.float64)
    # Ties through every parameter: targets equal to x @ w + b (exact for integers).
    output = layer_output(x64, params)
    magnitude = output_magnitude(x64, params)
    typical = 1.0 if kind == "integers" else float(np.mean(magnitude))
    target = _targets_near(output, rng, dtype, tie_fraction=tie_fraction, typical=typical)
    return inputs_of(x, params, target, lr, kind)


def _check_learning_rates(learning_rates: Any) -> tuple[float, ...]:
    rates = tuple(learning_rates) if isinstance(learning_rates, (tuple, list)) else None
    if not rates or not all(isinstance(r, (int, float)) and np.isfinite(r) for r in rates):
        raise ValueError(
            f"learning_rates must be a non-empty tuple of finite numbers, got {learning_rates!r}"
        )
    return tuple(float(r) for r in rates)


@overload
def layer_inputs(
    *,
    dtype: Any = ...,
    shapes: st.SearchStrategy[LayerShape] | None = ...,
    kinds: tuple[str, ...] = ...,
    learning_rates: tuple[float, ...] = ...,
    tie_fraction: float = ...,
    bias: Literal[False] = ...,
) -> st.SearchStrategy[LayerInputs]: ...
@overload
def layer_inputs(
    *,
    dtype: Any = ...,
    shapes: st.SearchStrategy[LayerShape] | None = ...,
    kinds: tuple[str, ...] = ...,
    learning_rates: tuple[float, ...] = ...,
    tie_fraction: float = ...,
    bias: Literal[True],
) -> st.SearchStrategy[BiasLayerInputs]: ...
@overload
def layer_inputs(
    *,
    dtype: Any = ...,
    shapes: st.SearchStrategy[LayerShape] | None = ...,
    kinds: tuple[str, ...] = ...,
    learning_rates: tuple[float, ...] = ...,
    tie_fraction: float = ...,
    bias: bool,
) -> st.SearchStrategy[LayerInputs] | st.SearchStrategy[BiasLayerInputs]: ...
def layer_inputs(
    *,
    dtype: Any = np.float32,
    shapes: st.SearchStrategy[LayerShape] | None = None,
    kinds: tuple[str, ...] = VALUE_KINDS,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    tie_fraction: float = 0.2,
    bias: bool = False,
) -> st.SearchStrategy[LayerInputs] | st.SearchStrategy[BiasLayerInputs]:
    """Inputs ``(x, w, target, lr)`` for one step, in ``dtype``, with ties made on purpose;
    ``bias=True``: ``(x, w, b, target, lr)`` (``BiasLayerInputs``), ties through ``x @ w + b``.

    Every quantity one step forms stays at most ``bounds.safe_limit(dtype)`` (the
    error model does not cover overflow): x and w are scaled by a power of two when needed.

    Args:
      dtype: float64, float32, bfloat16 or float16.
      shapes: a strategy of ``LayerShape`` (default ``layer_shapes()``).
      kinds: value kinds to draw from (module docstring).
      learning_rates: the menu of lr.
      tie_fraction: expected share of targets set equal to the output.
      bias: draw a bias b ``(O,)`` as well (module docstring).
    """
    np_dtype = _check_dtype(dtype)
    if not isinstance(bias, bool):
        raise ValueError(f"bias must be True or False, got {bias!r}")
    if isinstance(kinds, str) or not kinds or set(kinds) - set(VALUE_KINDS):
        raise ValueError(f"kinds must be a non-empty tuple from {VALUE_KINDS}, got {kinds!r}")
    if not isinstance(tie_fraction, (int, float)) or not 0.0 <= tie_fraction <= 1.0:
        raise ValueError(f"tie_fraction must be in [0, 1], got {tie_fraction!r}")
    rates = _check_learning_rates(learning_rates)
    drawn = {
        "kind": st.sampled_from(kinds),
        "shape": shapes if shapes is not None else layer_shapes(),
        "dtype": st.just(np_dtype),
        "seed": st.integers(0, 2**32 - 1),
        "lr": st.sampled_from(rates),
        "tie_fraction": st.just(float(tie_fraction)),
    }
    # One strategy for both layers: the overloads above say which inputs ``bias`` gives.
    return st.builds(partial(_make_inputs, bias=bias), **drawn)  # type: ignore[return-value]


def exact_mode_fits(shape: tuple[int, int, int], magnitude: int, lr: float) -> bool:
    """Whether exact-mode data of this shape, magnitude and lr is exact in float32.

    With integer ``|x|, |w| <= magnitude``, targets ``output +- {0.5, 1.5}`` and ``lr = 2^-k``:
    ``|output| <= I magnitude^2`` and targets need one bit below the integers, the loss is a
    sum of N*O half-integers at most 1.5 each, ``|dL_dw| <= N magnitude`` and
    ``|dL_dx| <= O magnitude`` are integers, and ``w_new`` is a multiple of ``lr`` at most
    ``magnitude + lr N magnitude``. Each must have at most 24 significant bits: below ``2^23``
    for the half-integers, ``2^24 lr`` for ``w_new``.
    """
    n, i, o = shape
    limit = 2.0**23
    return (
        i * magnitude**2 + 1.5 < limit
        and 1.5 * n * o < limit
        and max(n, o) * magnitude < limit
        and (magnitude + lr * n * magnitude) / lr < 2 * limit
    )


def exact_inputs(
    shape: tuple[int, int, int],
    *,
    seed: int,
    magnitude: int = 4,
    lr: float = 2.0**-4,
    dtype: Any = np.float32,
) -> LayerInputs:
    """One exact-mode example of ``shape`` ``(N, I, O)`` (any size; see ``exact_mode_fits``).

    x ``(N, I)`` and w ``(I, O)`` uniform integers in ``[-magnitude, magnitude]``; target
    ``(N, O)`` = ``x @ w`` plus a half-integer in {-1.5, -0.5, 0.5, 1.5} (never a tie).
    """
    return exact_case(shape, seed=seed, magnitude=magnitude, lr=lr, dtype=dtype)[0]


def exact_case(
    shape: tuple[int, int, int],
    *,
    seed: int,
    magnitude: int = 4,
    lr: float = 2.0**-4,
    dtype: Any = np.float32,
) -> tuple[LayerInputs, np.ndarray]:
    """``exact_inputs`` and the exact ``output = x @ w`` (float32, exact) its targets are placed
    around, which ``verify.check_exact`` hands to ``reference.fast.step`` (one matmul fewer)."""
    np_dtype = _check_dtype(dtype)
    if np_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"exact mode needs float32 or float64, got dtype {np_dtype.name}")
    sides = tuple(_check_positive_int(f"shape[{k}]", side) for k, side in enumerate(shape))
    if len(sides) != 3:
        raise ValueError(f"shape must be (N, I, O), got {shape!r}")
    _check_positive_int("magnitude", magnitude)
    _check_power_of_two(lr)
    if not exact_mode_fits(sides, magnitude, lr):
        raise ValueError(
            f"shape={shape!r}, magnitude={magnitude}, lr={lr!r} is not exact in float32 "
            "(exact_mode_fits explains the limits)"
        )
    return _exact_case(LayerShape(*sides), np_dtype, seed, lr, magnitude)


def _check_power_of_two(lr: Any) -> float:
    mantissa, _ = np.frexp(lr) if isinstance(lr, (int, float)) else (None, None)
    if mantissa != 0.5 or lr <= 0:
        raise ValueError(f"exact-mode learning rates must be powers of two, got {lr!r}")
    return float(lr)


#: Elements (x, w and target together) from which exact-mode data are drawn in threads.
PARALLEL_DRAW_SIZE = 1 << 20


def _make_exact_inputs(
    shape: LayerShape, dtype: np.dtype, seed: int, lr: float, magnitude: int
) -> LayerInputs:
    return _exact_case(shape, dtype, seed, lr, magnitude)[0]


def _exact_case(
    shape: LayerShape, dtype: np.dtype, seed: int, lr: float, magnitude: int
) -> tuple[LayerInputs, np.ndarray]:
    """Exact-mode inputs of ``shape`` and their exact ``output = x @ w`` (float32)."""
    n, i, o = shape
    # int8 draws, and their product in float32 BLAS: every product and partial sum is an
    # integer of at most I magnitude^2 < 2^23 (the shapes fit, ``exact_mode_fits``), exact in
    # float32. No float64 copies and no integrality test: cheap at 2048^2. x, w and the
    # offsets come from three streams of the seed, drawn at once when large (numpy fills an
    # array without holding the GIL: 32 ms instead of 50 at 2048^2 on two cores).
    draws = [
        (-magnitude, magnitude + 1, (n, i)),
        (-magnitude, magnitude + 1, (i, o)),
        (0, 4, (n, o)),  # offset indices
    ]
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)]

    def draw(stream: np.random.Generator, low: int, high: int, size: tuple[int, int]) -> Any:
        return stream.integers(low, high, size=size, dtype=np.int8)

    arguments = [(stream, *how) for stream, how in zip(streams, draws, strict=True)]
    if n * i + i * o + n * o >= PARALLEL_DRAW_SIZE:
        with concurrent.futures.ThreadPoolExecutor(len(draws)) as pool:
            x8, w8, indices = pool.map(lambda args: draw(*args), arguments)
    else:
        x8, w8, indices = (draw(*args) for args in arguments)
    x32, w32 = x8.astype(np.float32), w8.astype(np.float32)
    output = x32 @ w32
    # Half-integer offsets in {-1.5, -0.5, 0.5, 1.5}: never a tie, and |output - target| <= 1.5
    # keeps the loss small. output + offset has at most 24 significant bits: exact in float32.
    offsets = indices.astype(np.float32) - 1.5
    target = output + offsets
    x, w = (x32, w32) if dtype == np.float32 else (x8.astype(dtype), w8.astype(dtype))
    return LayerInputs(x, w, target.astype(dtype, copy=False), lr, "exact"), output


def exact_layer_inputs(
    *,
    dtype: Any = np.float32,
    shapes: st.SearchStrategy[LayerShape] | None = None,
    magnitude: int = 4,
    learning_rates: tuple[float, ...] = EXACT_LEARNING_RATES,
) -> st.SearchStrategy[LayerInputs]:
    """Exact-mode inputs: integer x and w in [-magnitude, magnitude], half-integer targets.

    Every product, sum and update is then exact in float32 (``exact_mode_fits``; shapes that
    could break it are filtered out), so any two correct implementations agree bit for bit,
    also with TF32 or bfloat16 matmul inputs while ``magnitude <= 256``. Learning rates are
    powers of two.
    """
    np_dtype = _check_dtype(dtype)
    if np_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"exact mode needs float32 or float64, got {np_dtype.name}")
    _check_positive_int("magnitude", magnitude)
    rates = tuple(_check_power_of_two(lr) for lr in _check_learning_rates(learning_rates))
    smallest = min(rates)

    def fits(shape: LayerShape) -> bool:
        return exact_mode_fits(shape, magnitude, smallest)

    return st.builds(
        _make_exact_inputs,
        shape=(shapes if shapes is not None else layer_shapes()).filter(fits),
        dtype=st.just(np_dtype),
        seed=st.integers(0, 2**32 - 1),
        lr=st.sampled_from(rates),
        magnitude=st.just(magnitude),
    )


def upstream_gradients(
    shape: tuple[int, int], *, dtype: Any = np.float32
) -> st.SearchStrategy[np.ndarray]:
    """Random non-unit upstream gradients ``dL_do`` of ``shape`` (N, O).

    A bug that ignores or rescales its upstream input survives a test whose upstream is all +-1.
    """
    np_dtype = _check_dtype(dtype)
    if not isinstance(shape, tuple) or len(shape) != 2:
        raise ValueError(f"shape must be a tuple (N, O), got {shape!r}")
    dims = (_check_positive_int("shape[0]", shape[0]), _check_positive_int("shape[1]", shape[1]))
    return st.integers(0, 2**32 - 1).map(
        lambda seed: (_rng(seed).standard_normal(dims) * 3.0).astype(np_dtype)
    )
