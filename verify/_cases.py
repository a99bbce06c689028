"""One example for one function of the contract, how it is drawn, and what it must produce.

A ``Case`` is the arguments of one call (numpy arrays in the requested dtype, plus ``lr``).
``expect`` turns it into the admissible set of every result, as ``bounds.Bound``s computed
around the loop reference (``reference.forward`` is the matmul that makes every centre):

    forward(x, w)            output  = x @ w              radius c_I |x| @ |w|
    loss(output, target)     L       = sum |output - target|
    loss_grad(output, target) dL_do  = sign(output - target), any value in [-1, 1] at a tie
    grad_x(dL_do, w)         dL_dx   = dL_do @ w.T        radius c_O |dL_do| @ |w|.T
    grad_w(x, dL_do)         dL_dw   = x.T @ dL_do        radius c_N |x|.T @ |dL_do|
    update(w, dL_dw, lr)     w_new   = w - lr * dL_dw
    step(x, w, target, lr)   (loss, dL_dx, dL_dw, w_new), kink-aware (``bounds.step_bounds``)

In exact mode (integer data, half-integer targets, lr a power of two) every radius is 0: the
result must equal the reference exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference

from . import bounds
from .bounds import Arithmetic, Bound
from .strategies import (
    LayerInputs,
    LayerShape,
    exact_inputs,
    exact_layer_inputs,
    example_inputs,
    layer_inputs,
    layer_shapes,
    upstream_gradients,
)

#: The arguments of each function, in call order (``lr`` follows where the function takes it).
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "forward": ("x", "w"),
    "loss": ("output", "target"),
    "loss_grad": ("output", "target"),
    "grad_x": ("dL_do", "w"),
    "grad_w": ("x", "dL_do"),
    "update": ("w", "dL_dw"),
    "step": ("x", "w", "target"),
    "identities": ("x", "w", "target"),
    "consistency": ("x", "w", "target"),
}
TAKES_LR = frozenset({"update", "step", "identities", "consistency"})

#: The names of each function's results.
RESULTS: dict[str, tuple[str, ...]] = {
    "forward": ("output",),
    "loss": ("L",),
    "loss_grad": ("dL_do",),
    "grad_x": ("dL_dx",),
    "grad_w": ("dL_dw",),
    "update": ("w_new",),
    "step": ("loss", "dL_dx", "dL_dw", "w_new"),
}

#: Values of dL_do at a tie, by ``--tie-convention``.
TIE_CONVENTIONS: dict[str, float] = {"seed": -1.0, "jax": 1.0, "torch": 0.0}


@dataclasses.dataclass(frozen=True)
class Options:
    """How to check: the input dtype, exact mode, a pinned tie convention, the declared matmul
    precision (``bounds.MATMUL_INPUT_ROUNDOFF``) and the per-call timeout in seconds."""

    dtype: str = "float32"
    exact: bool = False
    tie_convention: str | None = None
    matmul_precision: str = "float32"
    timeout: float = 60.0

    def __post_init__(self) -> None:
        bounds.numpy_dtype(self.dtype)  # names the accepted dtypes when wrong
        if self.tie_convention is not None and self.tie_convention not in TIE_CONVENTIONS:
            raise ValueError(
                f"tie_convention must be one of {sorted(TIE_CONVENTIONS)} or None, "
                f"got {self.tie_convention!r}"
            )
        if self.exact and self.dtype not in ("float32", "float64"):
            raise ValueError(f"exact mode needs dtype float32 or float64, got {self.dtype}")
        if self.exact and self.matmul_precision != "float32":
            raise ValueError("exact mode is bitwise: it takes no reduced matmul_precision")
        self.arithmetic()  # checks matmul_precision against dtype
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")

    @property
    def tie(self) -> float | None:
        """The pinned value of dL_do at a tie, or None (any value in [-1, 1])."""
        return None if self.tie_convention is None else TIE_CONVENTIONS[self.tie_convention]

    def arithmetic(self) -> Arithmetic:
        return bounds.arithmetic(self.dtype, self.matmul_precision)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Case:
    """The arguments of one call: ``arrays`` in call order, ``lr`` where the function takes it."""

    function: str
    arrays: dict[str, np.ndarray]
    lr: float | None = None
    kind: str = ""

    @property
    def args(self) -> list[Any]:
        values: list[Any] = list(self.arrays.values())
        return [*values, self.lr] if self.function in TAKES_LR else values

    def describe(self) -> str:
        """``grad_w(x: (5, 4), dL_do: (5, 3))``: the call, by shapes."""
        parts = [f"{name}: {tuple(a.shape)}" for name, a in self.arrays.items()]
        if self.function in TAKES_LR:
            parts.append(f"lr={self.lr!r}")
        return f"{self.function}({', '.join(parts)})"

    @property
    def learning_rate(self) -> float:
        """``lr`` as a float, for the functions that take one."""
        if self.lr is None:
            raise ValueError(f"{self.function} takes no lr")
        return float(self.lr)

    def replace(self, **arrays: np.ndarray) -> Case:
        return dataclasses.replace(self, arrays={**self.arrays, **arrays})


# --------------------------------------------------------------------------------------------
# Drawing cases.
# --------------------------------------------------------------------------------------------


def _integer_upstream(shape: tuple[int, int], dtype: np.dtype) -> st.SearchStrategy[np.ndarray]:
    # Exact mode needs exact products: small non-unit integers, never all +-1.
    return st.integers(0, 2**32 - 1).map(
        lambda seed: np.random.default_rng(seed).integers(-3, 4, size=shape).astype(dtype)
    )


def make_case(
    function: str, inputs: LayerInputs, upstream: np.ndarray, gradient: np.ndarray
) -> Case:
    """The call of ``function`` built from one drawn example.

    Args:
      inputs: ``x (N, I)``, ``w (I, O)``, ``target (N, O)``, ``lr``.
      upstream: a random non-unit ``dL_do (N, O)`` for grad_x and grad_w.
      gradient: a random ``dL_dw (I, O)`` for update.
    """
    x, w, target = inputs.x, inputs.w, inputs.target
    # The loss functions get the output the layer would compute, rounded to the dtype, so a
    # target copied from it is an exact tie.
    output = (x.astype(np.float64) @ w.astype(np.float64)).astype(x.dtype)
    named = {
        "x": x,
        "w": w,
        "target": target,
        "output": output,
        "dL_do": upstream,
        "dL_dw": gradient,
    }
    arrays = {name: named[name] for name in ARGUMENTS[function]}
    lr = inputs.lr if function in TAKES_LR else None
    return Case(function, arrays, lr, inputs.kind)


#: Sides for the second half of the shapes: 1 and the neighbours of 128, where kernels block.
EDGE_DIMS: tuple[int, ...] = (1, 2, 3, 5, 127, 128, 129, 257)


def shapes() -> st.SearchStrategy[LayerShape]:
    """``strategies.layer_shapes()``, or (as often) shapes made of 1s, small sides and sides
    around 128: a bug that only shows past a block of 128 must not hide behind small draws."""
    return st.one_of(layer_shapes(), layer_shapes(dims=EDGE_DIMS))


#: Fixed shapes every check also runs, whatever the search drew: a bug that only shows past a
#: block of 128 (in any of N, I, O) or on 1-sized dims is found independently of how a
#: Hypothesis version happens to explore (seen: 25 examples of one version missed N > 128).
EDGE_SHAPES: tuple[tuple[int, int, int], ...] = (
    (1, 1, 1),
    (129, 3, 2),
    (2, 129, 3),
    (3, 2, 129),
    (257, 1, 5),
)


def edge_cases(function: str, options: Options) -> list[Case]:
    """One case of ``function`` per ``EDGE_SHAPES`` entry (integer data with ties; exact data
    in exact mode); identities get cases where nothing crosses its target."""
    dtype = bounds.numpy_dtype(options.dtype)
    cases = []
    for index, shape in enumerate(EDGE_SHAPES):
        rng = np.random.default_rng(index)
        n, i, o = shape
        if options.exact:
            inputs = exact_inputs(shape, seed=index, dtype=dtype)
            upstream = rng.integers(-3, 4, size=(n, o)).astype(dtype)
            gradient = rng.integers(-3, 4, size=(i, o)).astype(dtype)
        else:
            inputs = example_inputs(shape, kind="integers", dtype=dtype, seed=index)
            upstream = (rng.standard_normal((n, o)) * 3).astype(dtype)
            gradient = (rng.standard_normal((i, o)) * 3).astype(dtype)
        case = make_case(function, inputs, upstream, gradient)
        cases.append(without_crossing(case) if function == "identities" else case)
    return cases


def case_strategy(function: str, options: Options) -> st.SearchStrategy[Case]:
    """Cases for ``function``: ``strategies.layer_inputs`` (or the exact ones) and upstreams."""
    dtype = bounds.numpy_dtype(options.dtype)
    if options.exact:
        base = exact_layer_inputs(dtype=dtype, shapes=shapes())

        def upstream(shape: tuple[int, int]) -> st.SearchStrategy[np.ndarray]:
            return _integer_upstream(shape, dtype)

    else:
        base = layer_inputs(dtype=dtype, shapes=shapes())

        def upstream(shape: tuple[int, int]) -> st.SearchStrategy[np.ndarray]:
            return upstream_gradients(shape, dtype=dtype)

    def with_upstreams(inputs: LayerInputs) -> st.SearchStrategy[Case]:
        n, i, o = inputs.shape
        return st.builds(
            make_case, st.just(function), st.just(inputs), upstream((n, o)), upstream((i, o))
        )

    if function == "consistency":
        # Integer data: outputs, ties and both gradients are exact in float32 and float64, so
        # the fused step and the composed pieces must agree on them bit for bit.
        base = layer_inputs(dtype=dtype, shapes=shapes(), kinds=("integers",), tie_fraction=0.5)
    cases = base.flatmap(with_upstreams)
    if function == "identities":
        # Cases where no output can cross its target go first: there the no-crossing identity
        # is an equality that any wrong gradient or update breaks.
        return st.one_of(cases.map(without_crossing), cases)
    return cases


def without_crossing(case: Case) -> Case:
    """``case`` with each target placed so that no output crosses it during the step.

    With ``s`` the side each drawn target was on, ``dL_dw = x.T @ -s`` and the step's move of
    the outputs ``delta = lr * x @ x.T @ s``, the target goes to ``output + s * margin`` with
    ``margin = 2 |delta| + slack``: the loss then falls by exactly ``lr ||dL_dw||^2``, about half
    of itself, far above rounding. ``slack`` (``64 u (|x| @ |w| + |delta|)``) keeps every element
    clear of its kink after the target is rounded to the dtype. Cases where this overflows or
    underflows are returned unchanged.
    """
    x, w, target = (case.arrays[n] for n in ("x", "w", "target"))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    u = bounds.UNIT_ROUNDOFF[bounds.dtype_name(x.dtype)]
    tiny = bounds.smallest_normal(bounds.dtype_name(x.dtype))
    with np.errstate(all="ignore"):
        output = x64 @ w64
        side = np.where(target.astype(np.float64) >= output, 1.0, -1.0)
        delta = case.learning_rate * (x64 @ (x64.T @ side))
        slack = 64 * u * (np.abs(x64) @ np.abs(w64) + np.abs(delta)) + 1e4 * tiny
        new_target = (output + side * (2 * np.abs(delta) + slack)).astype(target.dtype)
        # Every quantity of the step at w and at w_new must stay inside the dtype's range
        # (1/32 of its largest, as strategies.layer_inputs keeps them).
        gradient = np.abs(x64.T @ side)
        w_reach = np.abs(w64) + case.learning_rate * gradient
        largest = max(
            float(np.sum(np.abs(new_target.astype(np.float64) - output))),
            float(np.sum(np.abs(x64) @ w_reach + np.abs(new_target.astype(np.float64)))),
            float(np.max(w_reach, initial=0.0)),
        )
    limit = float(np.finfo(np.float32 if x.dtype.name == "bfloat16" else x.dtype).max) / 32
    fits = np.isfinite(largest) and largest < limit and np.all(np.isfinite(delta))
    if not fits or not np.any(delta):
        return case
    return dataclasses.replace(case.replace(target=new_target), kind=f"{case.kind}, no crossing")


# --------------------------------------------------------------------------------------------
# What each call must produce.
# --------------------------------------------------------------------------------------------


def loop_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` by the loop reference (the ground truth of every verdict)."""
    return reference.forward(a, b)


def numpy_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64 numpy: for diagnoses, which only weigh hypotheses."""
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


def _f64(case: Case) -> dict[str, np.ndarray]:
    return {name: np.asarray(a, dtype=np.float64) for name, a in case.arrays.items()}


def _exact_products(x: np.ndarray, w: np.ndarray, dtype: str) -> bool:
    """Whether ``x @ w`` is exact in ``dtype`` in any order: integers with small partial sums."""
    digits = np.finfo(bounds.numpy_dtype(dtype)).nmant + 1 if dtype != "bfloat16" else 8
    integral = bool(np.all(x == np.round(x)) and np.all(w == np.round(w)))
    if not integral:
        return False
    magnitude = np.abs(x) @ np.abs(w)
    return bool(magnitude.max(initial=0.0) < 2.0**digits)


def _loss_grad_bound(
    output: np.ndarray, target: np.ndarray, arith: Arithmetic, tie: float | None
) -> Bound:
    """dL_do: exactly sign(output - target) off ties; at a tie the pinned value, else [-1, 1].

    output and target are values of the dtype, so the sign of their difference is exact in any
    arithmetic; a difference below the smallest normal may flush to zero and counts as a tie.
    """
    difference = output - target
    exact_ties = difference == 0
    near_ties = np.abs(difference) < 2 * arith.tiny
    center = np.sign(difference)
    radius = np.where(near_ties, 1.0, 0.0)
    center = np.where(near_ties, 0.0, center)
    if tie is not None:
        center = np.where(exact_ties, tie, center)
        radius = np.where(exact_ties, 0.0, radius)
    return Bound(center, radius)


def _pinned_step(
    x: np.ndarray,
    w: np.ndarray,
    target: np.ndarray,
    lr: float,
    arith: Arithmetic,
    dtype: str,
    tie: float,
    matmul: Any,
) -> bounds.StepBounds:
    """``step_bounds`` with a pinned tie value where a tie is certain (exact integer products)."""
    sb = bounds.step_bounds(x, w, target, lr, arith, matmul=matmul)
    certain = (sb.output.center - target == 0) & _exact_products(x, w, dtype)
    dL_do = np.where(certain, tie, sb.dL_do)
    kinks = (sb.kinks & ~certain).astype(np.float64)
    ones = np.ones_like(dL_do)
    slack = 1 + 1e-12  # the float64 sums of the kink intervals below round too
    dx = Bound(
        bounds.grad_x_bound(dL_do, w, arith, matmul=matmul).center,
        bounds.grad_x_bound(ones, w, arith).radius + (kinks @ np.abs(w).T) * slack,
    )
    dw = Bound(
        bounds.grad_w_bound(x, dL_do, arith, matmul=matmul).center,
        bounds.grad_w_bound(x, ones, arith).radius + (np.abs(x).T @ kinks) * slack,
    )
    return sb._replace(dL_do=dL_do, dL_dx=dx, dL_dw=dw, w_new=bounds.update_bound(w, dw, lr, arith))


def expect(
    case: Case,
    arith: Arithmetic,
    *,
    tie: float | None = None,
    exact: bool = False,
    matmul: Any = loop_matmul,
) -> dict[str, Bound]:
    """The admissible set of every result of ``case``'s call, by result name (``RESULTS``)."""
    a = _f64(case)
    function = case.function
    if function == "forward":
        found = {"output": bounds.forward_bound(a["x"], a["w"], arith, matmul=matmul)}
    elif function == "loss":
        output = Bound(a["output"], np.zeros_like(a["output"]))
        found = {"L": bounds.loss_bound(output, a["target"], arith)}
    elif function == "loss_grad":
        found = {"dL_do": _loss_grad_bound(a["output"], a["target"], arith, tie)}
    elif function == "grad_x":
        found = {"dL_dx": bounds.grad_x_bound(a["dL_do"], a["w"], arith, matmul=matmul)}
    elif function == "grad_w":
        found = {"dL_dw": bounds.grad_w_bound(a["x"], a["dL_do"], arith, matmul=matmul)}
    elif function == "update":
        found = {"w_new": bounds.update_bound(a["w"], a["dL_dw"], case.learning_rate, arith)}
    elif function == "step":
        x, w, target, lr = a["x"], a["w"], a["target"], case.learning_rate
        if tie is None:
            sb = bounds.step_bounds(x, w, target, lr, arith, matmul=matmul)
        else:
            sb = _pinned_step(x, w, target, lr, arith, arith.dtype, tie, matmul)
        found = {"loss": sb.loss, "dL_dx": sb.dL_dx, "dL_dw": sb.dL_dw, "w_new": sb.w_new}
    else:
        raise ValueError(f"function must be one of {sorted(RESULTS)}, got {function!r}")
    if exact:
        # Exact-mode data make every correct result equal to the reference's float64 centre.
        found = {k: Bound(b.center, np.zeros_like(b.radius)) for k, b in found.items()}
    return found
