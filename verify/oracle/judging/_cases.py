"""The examples a check runs: a ``Case`` is the arguments of one call (numpy arrays in the
requested dtype, plus ``lr``), drawn by Hypothesis (``verify.strategies`` underneath) or fixed.

Three ways of drawing, one per kind of check (``_checks``):

- ``layer_cases``: any value kind and shape of ``strategies.layer_inputs`` (or exact-mode data),
  random non-unit upstream gradients for grad_x / grad_w and a random dL_dw for update;
- ``crossing_free_cases``: as above, and first with every target moved so that no output crosses
  it during the step (``without_crossing``: there the no-crossing identity is an equality);
- ``integer_cases``: integer data with half the targets tied, where outputs, ties and both
  gradients are exact in float32 and float64.

After a passing search, ``edge_cases`` run fixed shapes (1-sized dims, 129 and 257 sides).
A declared precondition on the sides (``--multiple-of``) rounds every shape up to it
(``meeting``).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ... import bounds
from ..._params import gradient, of, output_magnitude, term
from ..._params import output as layer_output
from ...strategies import (
    DIM_MENU,
    BiasLayerInputs,
    LayerInputs,
    LayerShape,
    exact_inputs,
    exact_layer_inputs,
    example_inputs,
    layer_inputs,
)
from .._contract import UPDATES, Signature
from .._settings import Settings


@dataclasses.dataclass(frozen=True)
class Case:
    """The arguments of one call: ``arrays`` in call order, ``lr`` where the check takes one.

    ``function`` names the check (a contract function, or a meta-check such as ``identities``);
    ``kind`` says how the values were made (``strategies.VALUE_KINDS``); ``shape`` is the
    layer's ``(N, I, O)`` the arrays were made for (None when unknown).
    """

    function: str
    arrays: dict[str, np.ndarray]
    lr: float | None = None
    kind: str = ""
    shape: tuple[int, int, int] | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters among the call's arrays, as one tree in call order: ``{"w": w}``
        or ``{"w": w, "b": b}`` for forward, step and the checks that compose them (the one
        parameter an ``update`` case steps)."""
        return of(self.arrays)

    def describe(self) -> str:
        """``grad_w(x: (5, 4), dL_do: (5, 3))``: the call, by shapes."""
        parts = [f"{name}: {tuple(a.shape)}" for name, a in self.arrays.items()]
        if self.lr is not None:
            parts.append(f"lr={self.lr!r}")
        return f"{self.function}({', '.join(parts)})"

    @property
    def learning_rate(self) -> float:
        """``lr`` as a float, for the checks that take one."""
        if self.lr is None:
            raise ValueError(f"{self.function} takes no lr")
        return float(self.lr)

    def replace(self, **arrays: np.ndarray) -> Case:
        return dataclasses.replace(self, arrays={**self.arrays, **arrays})

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis formats the shrunk case on its final replay, for a report the oracle
        # silences (it writes its own reproducer): by shapes, not by formatting and parsing
        # every array of the case and of the strategies that built it.
        printer.text(self.describe())


def make_case(
    signature: Signature,
    inputs: LayerInputs | BiasLayerInputs,
    upstream: np.ndarray,
    gradient: np.ndarray,
) -> Case:
    """The call ``signature`` describes, built from one drawn example.

    Args:
      inputs: ``x (N, I)``, the parameters (``inputs.params``: ``w (I, O)``, and ``b (O,)``
        for the layer with a bias), ``target (N, O)`` and ``lr``.
      upstream: a random non-unit ``dL_do (N, O)`` for grad_x, grad_w and grad_b.
      gradient: a random ``dL_dw (I, O)`` for update; its first row is ``dL_db (O,)``.
    """
    x, target = inputs.x, inputs.target
    # The loss functions get the output the layer would compute, rounded to the dtype, so a
    # target copied from it is an exact tie.
    output = layer_output(x, inputs.params).astype(x.dtype)
    named = {
        "x": x,
        **inputs.params,
        "target": target,
        "output": output,
        "dL_do": upstream,
        "dL_dw": gradient,
        "dL_db": gradient[0],
    }
    arrays = {name: named[name] for name in signature.arguments}
    lr = inputs.lr if signature.takes_lr else None
    return Case(signature.name, arrays, lr, inputs.kind, inputs.shape)


# --------------------------------------------------------------------------------------------
# Drawing cases.
# --------------------------------------------------------------------------------------------

#: Sides for the second half of the drawn shapes: 1 and the neighbours of 128, where kernels block.
EDGE_DIMS: tuple[int, ...] = (1, 2, 3, 5, 127, 128, 129, 257)

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

#: Shapes every pool holds besides the edges: the smallest, each side 1 or 2 (a factor of N, I
#: or O, a transpose of a non-square matrix, a broadcast over a 1-sized dim), the smallest whose
#: three dims differ (a mean over N, O or N*O and any transpose told apart), and one side past
#: a block of 128 with the others 1 (the smallest shapes of a blocking bug). Shrinking needs no
#: more small shapes: a failure is narrowed to its smallest sides outside the pool (``_search``).
FIXED_SHAPES: tuple[tuple[int, int, int], ...] = (
    (1, 1, 1),
    (2, 1, 1),
    (1, 2, 1),
    (1, 1, 2),
    (2, 2, 2),
    (1, 2, 3),
    (3, 1, 2),
    (3, 2, 4),
    (129, 1, 1),
    (1, 129, 1),
    (1, 1, 129),
)

#: Shapes each run draws for its pool, besides the fixed ones and ``EDGE_SHAPES``, half from
#: ``strategies.DIM_MENU`` and half from ``EDGE_DIMS`` (as ``layer_shapes`` draws them).
DRAWN_SHAPES = 8

#: The largest ``N * I * O`` of a drawn shape (the loop reference's cost per matmul).
MAX_SIZE = 1 << 16


#: The run's shapes (``shape_pool``), smallest first.
Pool = tuple[LayerShape, ...]

#: Where a search draws its shapes from (``pool_shapes``, ``sub_shapes``).
Shapes = st.SearchStrategy[LayerShape]


def _draw_shape(rng: np.random.Generator, dims: tuple[int, ...]) -> LayerShape:
    """One shape as ``strategies.layer_shapes(dims=dims)`` draws it: each side from ``dims``
    while ``N * I * O <= MAX_SIZE``, then the sides in a random order."""
    sides: list[int] = []
    for _ in range(3):
        room = MAX_SIZE // max(1, int(np.prod(sides)))
        sides.append(int(rng.choice([d for d in dims if d <= room] or [dims[0]])))
    n, i, o = (sides[k] for k in rng.permutation(3))
    return LayerShape(n, i, o)


def tile_shapes(tiles: tuple[int, ...]) -> tuple[LayerShape, ...]:
    """For each declared block size T (``--tile``): sides T-1, T, T+1 and 2T+1 in each of N, I
    and O, the other two sides 2 and 3. A partial last block (T+1, 2T+1) is met in every axis,
    and a whole one (T-1, T) beside it, while each shape stays cheap for the loop reference."""
    found: list[LayerShape] = []
    for tile in tiles:
        for side in (tile - 1, tile, tile + 1, 2 * tile + 1):
            for shape in ((side, 2, 3), (3, side, 2), (2, 3, side)):
                if LayerShape(*shape) not in found:
                    found.append(LayerShape(*shape))
    return tuple(found)


#: No precondition on the sides: every ``(N, I, O)`` is checked (``Settings.multiples``).
ANY_SIDES = (1, 1, 1)

#: Whole blocks of a declared precondition, per side: the pool's smallest shapes (up to 3 of
#: a side) in units of the declared multiples (``block_shapes``), as ``FIXED_SHAPES`` are in
#: units of one.
BLOCKS: tuple[tuple[int, int, int], ...] = FIXED_SHAPES[:7]


def meeting(shape: tuple[int, int, int], multiples: tuple[int, int, int]) -> LayerShape:
    """``shape`` with each side rounded up to its multiple (``--multiple-of``): the nearest
    shape the candidate's declared precondition allows."""
    return LayerShape(*(-(-side // m) * m for side, m in zip(shape, multiples, strict=True)))


def block_shapes(multiples: tuple[int, int, int]) -> tuple[LayerShape, ...]:
    """``BLOCKS`` in units of ``multiples``: 1, 2 and 3 whole blocks in each side, three
    distinct sides among them (a mean over N, O or N*O told apart); none without a
    precondition."""
    if multiples == ANY_SIDES:
        return ()
    return tuple(
        LayerShape(*(count * m for count, m in zip(blocks, multiples, strict=True)))
        for blocks in BLOCKS
    )


def largest_size(multiples: tuple[int, int, int]) -> int:
    """The largest ``N * I * O`` a checked shape may have: ``MAX_SIZE``, or 8 whole blocks of a
    declared precondition (two in each side) where that is more, so that every precondition is
    checked at several multiples (``Settings.multiple_of`` bounds the blocks' size)."""
    return max(MAX_SIZE, 8 * multiples[0] * multiples[1] * multiples[2])


def meeting_all(
    shapes: Iterable[tuple[int, int, int]], multiples: tuple[int, int, int]
) -> list[LayerShape]:
    """``shapes`` that meet ``multiples`` (each rounded up: ``meeting``), in their order,
    without repeats and without those past ``largest_size``; unchanged without a
    precondition."""
    if multiples == ANY_SIDES:
        return [LayerShape(*shape) for shape in shapes]
    limit = largest_size(multiples)
    met = (meeting(shape, multiples) for shape in shapes)
    return [s for s in dict.fromkeys(met) if s[0] * s[1] * s[2] <= limit]


def shape_pool(
    seed: int | None,
    drawn: int = DRAWN_SHAPES,
    tiles: tuple[int, ...] = (),
    multiples: tuple[int, int, int] = ANY_SIDES,
) -> Pool:
    """The shapes one run draws its cases from, shared by every check.

    A jitted candidate compiles once per function and distinct shape, so the run's compiles are
    bounded by the pool's size (23 shapes) instead of the hundreds of shapes a free search
    draws. The pool holds, smallest first, ``FIXED_SHAPES`` (1s and 2s, distinct dims, one
    side past 128), ``EDGE_SHAPES`` (1-sized dims, 129 and 257 sides) and ``drawn`` shapes with
    three distinct dims, drawn from ``seed`` (None: fresh each run) half from
    ``strategies.DIM_MENU`` and half from ``EDGE_DIMS``.
    Values are drawn afresh for every example, so each shape is tried on many value sets.
    Declared block sizes add ``tile_shapes(tiles)``. A declared precondition on the sides
    (``multiples``, ``--multiple-of``) rounds every side up to its multiple (``meeting_all``:
    a declared tile's edges stay where they meet it) and adds 1, 2 and 3 whole blocks of
    each side (``block_shapes``).
    """
    rng = np.random.default_rng(seed)
    fixed = {LayerShape(*s) for s in (*FIXED_SHAPES, *EDGE_SHAPES, *tile_shapes(tiles))}
    extra: set[LayerShape] = set()
    while len(extra) < drawn:
        shape = _draw_shape(rng, DIM_MENU if len(extra) % 2 == 0 else EDGE_DIMS)
        if len(set(shape)) == 3 and shape not in fixed:
            extra.add(shape)
    pool = meeting_all((*block_shapes(multiples), *fixed, *extra), multiples)
    return tuple(sorted(pool, key=lambda s: (s[0] * s[1] * s[2], s)))


def pool_shapes(pool: Pool) -> st.SearchStrategy[LayerShape]:
    """A shape of the run's ``pool`` (``shape_pool``), each as likely; shrinks toward the
    pool's first shapes (the smallest)."""
    return st.sampled_from(pool)


def sub_shapes(
    shape: tuple[int, int, int], multiples: tuple[int, int, int] = ANY_SIDES
) -> st.SearchStrategy[LayerShape]:
    """Shapes no larger than ``shape`` in any side, each side 1, 2 or ``shape``'s own (one or
    two whole blocks of a declared multiple: ``--multiple-of``), drawn side by side: each side
    shrinks on its own toward the smallest, as in a free search (``_search`` narrows a failure
    found on a pool shape with these; at most 27 shapes, only on failure).
    """
    sides = [sorted({m, min(2 * m, side), side}) for side, m in zip(shape, multiples, strict=True)]
    return st.tuples(*(st.sampled_from(s) for s in sides)).map(lambda s: LayerShape(*s))


def _upstream(seed: int, shape: tuple[int, int], dtype: np.dtype, exact: bool) -> np.ndarray:
    """A random non-unit upstream array of ``shape`` from ``seed``: ``3 N(0, 1)`` (as
    ``strategies.upstream_gradients`` draws it), or small integers in exact mode, where products
    must stay exact (never all +-1)."""
    rng = np.random.default_rng(seed)
    if exact:
        return rng.integers(-3, 4, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 3.0).astype(dtype)


def _with_upstreams(
    signature: Signature,
    base: st.SearchStrategy[LayerInputs] | st.SearchStrategy[BiasLayerInputs],
    options: Settings,
) -> st.SearchStrategy[Case]:
    """``base``'s inputs with a random ``dL_do (N, O)`` and ``dL_dw (I, O)``, drawn as two
    seeds beside the inputs (one strategy for every draw: building one per draw, as a flatmap
    does, costs Hypothesis a validation of each new strategy every example)."""
    dtype = bounds.numpy_dtype(options.dtype)

    def case(inputs: LayerInputs | BiasLayerInputs, upstream_seed: int, gradient_seed: int) -> Case:
        n, i, o = inputs.shape
        upstream = _upstream(upstream_seed, (n, o), dtype, options.exact)
        gradient = _upstream(gradient_seed, (i, o), dtype, options.exact)
        # update is the same function for every parameter: the cases take turns (the
        # gradient's seed decides, so that no draw is added to the search).
        if signature.name == "update":
            parameters = options.parameters
            signature_of = UPDATES[parameters[gradient_seed % len(parameters)]]
            return make_case(signature_of, inputs, upstream, gradient)
        return make_case(signature, inputs, upstream, gradient)

    seeds = st.integers(0, 2**32 - 1)
    return st.builds(case, base, seeds, seeds)


def layer_cases(signature: Signature, options: Settings, shapes: Shapes) -> st.SearchStrategy[Case]:
    """``strategies.layer_inputs`` (or exact-mode data) of ``shapes``, with random upstreams."""
    dtype = bounds.numpy_dtype(options.dtype)
    base: st.SearchStrategy[LayerInputs] | st.SearchStrategy[BiasLayerInputs]
    if options.exact:
        base = exact_layer_inputs(dtype=dtype, shapes=shapes)
        # Each parameter exact-mode data lack (b) is drawn after them, from a seed of its own.
        for name in options.parameters[1:]:
            base = st.builds(_EXACT_PARAMETERS[name], base, st.integers(0, 2**32 - 1))
    else:
        base = layer_inputs(dtype=dtype, shapes=shapes, bias=_bias(options))
    return _with_upstreams(signature, base, options)


def _bias(options: Settings) -> bool:
    """The layer's bias as the strategies' ``bias`` keyword takes it."""
    return bool(options.bias)


def with_exact_bias(inputs: LayerInputs, seed: int) -> BiasLayerInputs:
    """Exact-mode inputs with an integer bias in [-4, 4], the targets moved with it: still
    half-integers off ``x @ w + b`` (never a tie), every result still exact."""
    o = inputs.w.shape[1]
    dtype = inputs.x.dtype
    b = np.random.default_rng(seed).integers(-4, 5, size=o).astype(dtype)
    target = (inputs.target.astype(np.float64) + b).astype(dtype)
    return BiasLayerInputs(inputs.x, inputs.w, b, target, inputs.lr, inputs.kind)


#: Exact-mode inputs with one more parameter, by its name: ``(inputs, seed) -> inputs``.
_EXACT_PARAMETERS: dict[str, Callable[[Any, int], Any]] = {"b": with_exact_bias}


def crossing_free_cases(
    signature: Signature, options: Settings, shapes: Shapes
) -> st.SearchStrategy[Case]:
    """``layer_cases``, with cases where no output can cross its target first: there the
    no-crossing identity is an equality that any wrong gradient or update breaks."""
    cases = layer_cases(signature, options, shapes)
    clear = functools.partial(without_crossing, reduction=options.loss_reduction)
    return st.one_of(cases.map(clear), cases)


def integer_cases(
    signature: Signature, options: Settings, shapes: Shapes
) -> st.SearchStrategy[Case]:
    """Integer data with half the targets tied: outputs, ties and both gradients are exact in
    float32 and float64, however they are computed."""
    dtype = bounds.numpy_dtype(options.dtype)
    base = layer_inputs(
        dtype=dtype, shapes=shapes, kinds=("integers",), tie_fraction=0.5, bias=_bias(options)
    )
    return _with_upstreams(signature, base, options)


def edge_cases(
    signature: Signature,
    options: Settings,
    transform: Callable[[Case, Settings], Case] | None = None,
) -> list[Case]:
    """One case per ``EDGE_SHAPES`` entry and per shape of the declared tiles
    (``tile_shapes``: a partial block of each is met whatever the search drew), integer data
    with ties (exact data in exact mode), each passed through ``transform`` (e.g.
    ``crossing_free``) with the options when given. Under a declared precondition on the
    sides, the shapes that meet it (``meeting_all``)."""
    dtype = bounds.numpy_dtype(options.dtype)
    cases = []
    shapes = meeting_all((*EDGE_SHAPES, *tile_shapes(options.tile)), options.multiples)
    for index, shape in enumerate(shapes):
        rng = np.random.default_rng(index)
        n, i, o = shape
        inputs: LayerInputs | BiasLayerInputs
        if options.exact:
            inputs = exact_inputs(shape, seed=index, dtype=dtype)
            for name in options.parameters[1:]:
                inputs = _EXACT_PARAMETERS[name](inputs, index)
            upstream = rng.integers(-3, 4, size=(n, o)).astype(dtype)
            gradient = rng.integers(-3, 4, size=(i, o)).astype(dtype)
        else:
            inputs = example_inputs(
                shape, kind="integers", dtype=dtype, seed=index, bias=_bias(options)
            )
            upstream = (rng.standard_normal((n, o)) * 3).astype(dtype)
            gradient = (rng.standard_normal((i, o)) * 3).astype(dtype)
        case = make_case(signature, inputs, upstream, gradient)
        cases.append(transform(case, options) if transform else case)
    return cases


def crossing_free(case: Case, options: Settings) -> Case:
    """``without_crossing`` under the options' reduction (an edge case's transform)."""
    return without_crossing(case, reduction=options.loss_reduction)


def without_crossing(case: Case, *, reduction: str = "sum") -> Case:
    """``case`` with each target placed so that no output crosses it during the step.

    With ``s`` the side each drawn target was on, ``dL_dw = x.T @ -s / D`` (D the
    ``reduction``'s divisor, ``bounds.reduction_divisor``) and the step's move of the outputs
    ``delta = lr * x @ x.T @ s / D`` (with a bias, ``+ lr * sum_d s[d, :] / D``: b moves by
    ``lr * sum_d s / D``), the target goes to ``output + s * margin`` with
    ``margin = 2 |delta| + slack``: the loss then falls by exactly ``lr ||g||^2`` (the sum over
    every parameter), about half of itself, far above rounding. ``slack``
    (``64 u (|x| @ |w| + |b| + |delta|)``) keeps every element clear of its kink after the
    target is rounded to the dtype. Cases where this overflows or
    underflows are returned unchanged.
    """
    x, target = case.arrays["x"], case.arrays["target"]
    params = case.params
    x64 = x.astype(np.float64)
    u = bounds.UNIT_ROUNDOFF[bounds.dtype_name(x.dtype)]
    tiny = bounds.smallest_normal(bounds.dtype_name(x.dtype))
    with np.errstate(all="ignore"):
        output = layer_output(x64, params)
        side = np.where(target.astype(np.float64) >= output, 1.0, -1.0)
        # Each parameter moves by lr times its gradient for the upstream -side / D, and every
        # output with it by lr times that move's term: lr x @ x.T @ side / D (and through b,
        # lr sum_d side[d, j] / D).
        lr = case.learning_rate
        divisor = bounds.reduction_divisor(reduction, *side.shape)
        moves = {name: gradient(name, x64, side / divisor) for name in params}
        delta = functools.reduce(
            operator.add, (lr * term(name, x64, move) for name, move in moves.items())
        )
        steps = {name: lr * np.abs(move) for name, move in moves.items()}
        magnitude = output_magnitude(x64, params)
        slack = 64 * u * (magnitude + np.abs(delta)) + 1e4 * tiny
        new_target = (output + side * (2 * np.abs(delta) + slack)).astype(target.dtype)
        # Every quantity of the step at w and at w_new must stay inside bounds.safe_limit, as
        # strategies.layer_inputs keeps them.
        reach = {name: np.abs(value) + steps[name] for name, value in params.items()}
        largest = max(
            float(np.sum(np.abs(new_target.astype(np.float64) - output))),
            float(np.sum(np.abs(x64) @ reach["w"] + np.abs(new_target.astype(np.float64)))),
            float(np.max(reach["w"], initial=0.0)),
            float(np.sum(output_magnitude(x64, reach))),
        )
    fits = np.isfinite(largest) and largest < bounds.safe_limit(x.dtype)
    if not fits or not np.any(delta) or not np.all(np.isfinite(delta)):
        return case
    return dataclasses.replace(case.replace(target=new_target), kind=f"{case.kind}, no crossing")
