"""``python -m verify``: the seed notebook's example, by all three implementations side by side.

Rebuilds the notebook's data with its own legacy draws (``np.random.seed(0)``, ``randint``,
``uniform``), runs one step with the loop reference, the jitted hand-written JAX layer and
``jax.grad``, prints every quantity of the notebook from each, and a one-line verdict. Then the
same layer with a bias (``SEED_BIAS``, the layer people write), by the same three, and its
verdict.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple, TextIO

import numpy as np

import reference

from .. import bounds
from ..messages import ExitCode

#: The notebook's learning rate (``w - dL_dw * .01``).
SEED_LR = 0.01

#: The notebook's printed results, the first acceptance test.
SEED_LOSS = 41.578510114266535
SEED_LOSS_UPDATED = 38.088094755935614
SEED_DL_DX = ((3.0, 0.0), (3.0, 2.0), (3.0, 2.0))
SEED_DL_DW = ((-2.0, 10.0, -10.0, 10.0), (-4.0, 4.0, -4.0, 4.0))

#: A bias for the seed's layer (O = 4): binary fractions, so x @ w + b is exact in any order,
#: and no output lands on its target (uniform draws are never such fractions).
SEED_BIAS = (0.5, -0.5, 0.25, -0.25)


class SeedData(NamedTuple):
    x: np.ndarray  # (3, 2) integers in [0, 5)
    w: np.ndarray  # (2, 4) integers in [-1, 2)
    true_value: np.ndarray  # (3, 4) uniform in [-1, 1)


def seed_data() -> SeedData:
    """The notebook's x, w and true_value, from its legacy ``np.random.seed(0)`` draws."""
    num_data, input_features, output_features = 3, 2, 4
    state = np.random.RandomState(0)  # the legacy stream np.random.seed(0) drives
    x = state.randint(5, size=(num_data, input_features))
    w = state.randint(-1, 2, size=(input_features, output_features))
    true_value = state.uniform(-1, 1, (num_data, output_features))
    return SeedData(x.astype(np.float64), w.astype(np.float64), true_value)


class Quantities(NamedTuple):
    """The notebook's quantities for one implementation."""

    output: np.ndarray
    L: float
    dL_do: np.ndarray
    dL_dx: np.ndarray
    dL_dw: np.ndarray
    w_updated: np.ndarray
    L_updated: float


def reference_quantities(data: SeedData) -> Quantities:
    output = reference.forward(data.x, data.w)
    result = reference.step(data.x, data.w, data.true_value, SEED_LR)
    return Quantities(
        output=output,
        L=result.loss,
        dL_do=reference.loss_grad(output, data.true_value),
        dL_dx=result.dL_dx,
        dL_dw=result.dL_dw,
        w_updated=result.w_new,
        L_updated=reference.l1_loss(reference.forward(data.x, result.w_new), data.true_value),
    )


def jax_quantities(data: SeedData) -> Quantities:
    import verify

    output = verify.forward(data.x, data.w)
    result = verify.step(data.x, data.w, data.true_value, SEED_LR)
    return _as_numpy(
        output,
        result,
        verify.loss_grad(output, data.true_value),
        verify.l1_loss(verify.forward(data.x, result.w_new), data.true_value),
    )


def autodiff_quantities(data: SeedData) -> Quantities:
    import jax
    import jax.numpy as jnp

    import verify

    result = verify.autodiff_step(data.x, data.w, data.true_value, SEED_LR)
    output = jnp.matmul(data.x, data.w, precision="highest")
    # dL_do from autodiff too: the gradient of the loss with respect to the output itself.
    dL_do = jax.grad(lambda o: jnp.sum(jnp.abs(o - data.true_value)))(output)
    L_updated = verify.l1_objective(data.x, result.w_new, data.true_value)
    return _as_numpy(output, result, dL_do, L_updated)


def _as_numpy(output, result, dL_do, L_updated) -> Quantities:
    return Quantities(
        output=np.asarray(output),
        L=float(result.loss),
        dL_do=np.asarray(dL_do),
        dL_dx=np.asarray(result.dL_dx),
        dL_dw=np.asarray(result.dL_dw),
        w_updated=np.asarray(result.w_new),
        L_updated=float(L_updated),
    )


class BiasQuantities(NamedTuple):
    """The quantities of one step of the layer with a bias, for one implementation."""

    output: np.ndarray
    L: float
    dL_do: np.ndarray
    dL_dx: np.ndarray
    dL_dw: np.ndarray
    dL_db: np.ndarray
    w_updated: np.ndarray
    b_updated: np.ndarray
    L_updated: float


def bias_quantities(data: SeedData, b: np.ndarray) -> dict[str, BiasQuantities]:
    """``step(x, w, b, true_value, lr)`` by the loops, the jitted layer and ``jax.grad``."""
    import jax
    import jax.numpy as jnp

    import verify

    found: dict[str, tuple[Any, Any, Any, Any]] = {}
    output = reference.forward(data.x, data.w, b)
    loops = reference.step(data.x, data.w, b, data.true_value, SEED_LR)
    found["loop reference"] = (
        output,
        loops,
        reference.loss_grad(output, data.true_value),
        reference.l1_loss(reference.forward(data.x, loops.w_new, loops.b_new), data.true_value),
    )
    output = verify.forward(data.x, data.w, b)
    jitted = verify.step(data.x, data.w, b, data.true_value, SEED_LR)
    found["jitted JAX"] = (
        output,
        jitted,
        verify.loss_grad(output, data.true_value),
        verify.l1_loss(verify.forward(data.x, jitted.w_new, jitted.b_new), data.true_value),
    )
    autodiff = verify.autodiff_step(data.x, data.w, b, data.true_value, SEED_LR)
    autodiff_output = jnp.matmul(data.x, data.w, precision="highest") + b[None, :]
    found["jax.grad"] = (
        autodiff_output,
        autodiff,
        # dL_do from autodiff too: the gradient of the loss with respect to the output itself.
        jax.grad(lambda o: jnp.sum(jnp.abs(o - data.true_value)))(autodiff_output),
        verify.l1_objective(data.x, autodiff.w_new, data.true_value, b=autodiff.b_new),
    )
    return {
        name: BiasQuantities(
            output=np.asarray(out),
            L=float(result.loss),
            dL_do=np.asarray(dL_do),
            dL_dx=np.asarray(result.dL_dx),
            dL_dw=np.asarray(result.dL_dw),
            dL_db=np.asarray(result.dL_db),
            w_updated=np.asarray(result.w_new),
            b_updated=np.asarray(result.b_new),
            L_updated=float(L_updated),
        )
        for name, (out, result, dL_do, L_updated) in found.items()
    }


#: Quantities of the step with a bias that are exact in any order: binary fractions of the
#: seed's size (output) and integers (the signs and the gradients): compared bit for bit.
BIAS_EXACT_FIELDS = ("output", "dL_do", "dL_dx", "dL_dw", "dL_db")


def compare_bias(results: dict[str, BiasQuantities], data: SeedData, b: np.ndarray) -> list[str]:
    """Disagreements between the three steps with a bias: the exact quantities bit for bit,
    L, w_updated, b_updated and L_updated within their float64 error bounds around the loops'
    (``verify.bounds``, b included)."""
    loops = results["loop reference"]
    expected = bounds.step_bounds(data.x, data.w, data.true_value, SEED_LR, bounds.FLOAT64, b=b)
    problems = []
    for name, got in results.items():
        for field in BIAS_EXACT_FIELDS:
            if not np.array_equal(getattr(got, field), getattr(loops, field)):
                problems.append(f"{field}: {name} differs from the loop reference")
        for field, bound in (
            ("L", expected.loss),
            ("w_updated", expected.w_new),
            ("b_updated", expected.b_new),
        ):
            assert bound is not None  # b given: every result has its bound
            if not np.all(bound.ratio(getattr(got, field)) <= 1):
                problems.append(f"{name}: {field} is outside its float64 error bound")
        updated = bounds.loss_bound(
            bounds.forward_bound(data.x, got.w_updated, bounds.FLOAT64, b=got.b_updated),
            data.true_value,
            bounds.FLOAT64,
        )
        if not updated.ratio(got.L_updated) <= 1:
            problems.append(f"{name}: L_updated is outside its float64 error bound")
    return problems


def _format(value: object) -> list[str]:
    if isinstance(value, float):
        return [repr(value)]
    array = np.asarray(value)
    text = np.array2string(array, precision=6, suppress_small=False, floatmode="maxprec")
    return text.splitlines()


def _side_by_side(name: str, columns: list[tuple[str, object]], out: TextIO) -> None:
    blocks = [(label, _format(value)) for label, value in columns]
    width = [max(len(label), *(len(line) for line in lines)) for label, lines in blocks]
    print(f"\n{name}", file=out)
    print(
        "  " + "   ".join(label.ljust(w) for (label, _), w in zip(blocks, width, strict=True)),
        file=out,
    )
    for row in range(max(len(lines) for _, lines in blocks)):
        cells = [lines[row] if row < len(lines) else "" for _, lines in blocks]
        print("  " + "   ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)), file=out)


#: Quantities that are integers in the seed: exact in any order, so compared bit for bit.
EXACT_FIELDS = ("output", "dL_do", "dL_dx", "dL_dw")


def compare(results: dict[str, Quantities], data: SeedData) -> list[str]:
    """Disagreements between the implementations and with the notebook's printed numbers.

    The integer quantities must agree bit for bit. L, w_updated and L_updated are float64 sums
    whose order may differ by backend; they must lie within the float64 error bound
    (``verify.bounds``) of the notebook's values. On CPU they agree bit for bit as well.
    """
    problems = []
    for name, got in results.items():
        for field in EXACT_FIELDS:
            expected = np.asarray(getattr(results["loop reference"], field))
            if not np.array_equal(np.asarray(getattr(got, field)), expected):
                problems.append(f"{field}: {name} differs from the loop reference")
        if not np.array_equal(got.dL_dx, SEED_DL_DX):
            problems.append(f"{name}: dL_dx differs from the notebook's")
        if not np.array_equal(got.dL_dw, SEED_DL_DW):
            problems.append(f"{name}: dL_dw differs from the notebook's")
        exact_output = bounds.Bound(np.asarray(got.output, np.float64), np.zeros(got.output.shape))
        loss = bounds.loss_bound(exact_output, data.true_value, bounds.FLOAT64)
        loss_ok = loss.ratio(got.L) <= 1 and abs(got.L - SEED_LOSS) <= loss.radius
        if not loss_ok:
            problems.append(f"{name}: L = {got.L!r}, but the notebook printed {SEED_LOSS!r}")
        w_new = bounds.update_bound(data.w, got.dL_dw, SEED_LR, bounds.FLOAT64)
        if not np.all(w_new.ratio(got.w_updated) <= 1):
            problems.append(f"{name}: w_updated is outside the float64 bound of w - lr * dL_dw")
        updated = bounds.loss_bound(
            bounds.forward_bound(data.x, got.w_updated, bounds.FLOAT64),
            data.true_value,
            bounds.FLOAT64,
        )
        if abs(got.L_updated - SEED_LOSS_UPDATED) > updated.radius:
            problems.append(
                f"{name}: L_updated = {got.L_updated!r}, "
                f"but the notebook printed {SEED_LOSS_UPDATED!r}"
            )
    return problems


def _bitwise(results: dict[str, Quantities]) -> bool:
    return all(
        got.L == SEED_LOSS and got.L_updated == SEED_LOSS_UPDATED for got in results.values()
    ) and all(
        np.array_equal(got.w_updated, results["loop reference"].w_updated)
        for got in results.values()
    )


def main(out: TextIO = sys.stdout) -> int:
    """Print the walk-through; 0 if all three implementations and the notebook agree."""
    import jax

    jax.config.update("jax_enable_x64", True)  # the notebook's numbers are float64
    data = seed_data()
    results = {
        "loop reference": reference_quantities(data),
        "jitted JAX": jax_quantities(data),
        "jax.grad": autodiff_quantities(data),
    }
    print(
        "crosscheck: the seed notebook's dense layer, L1 loss and one SGD step (lr = 0.01)",
        file=out,
    )
    print(f"backend: {jax.default_backend()}, float64", file=out)
    _side_by_side("x (num_data=3, input_features=2)", [("", data.x)], out)
    _side_by_side("w (input_features=2, output_features=4)", [("", data.w)], out)
    _side_by_side("true_value", [("", data.true_value)], out)
    for field in Quantities._fields:
        _side_by_side(field, [(name, getattr(q, field)) for name, q in results.items()], out)
    print(
        "\ntie convention (dL_do where output == target): loop reference -1 (the notebook's "
        "(o > t) * 2 - 1), jitted JAX -1 (same), jax.grad +1 (d|u|/du at 0); "
        "the seed has no ties, so all three agree",
        file=out,
    )
    problems = compare(results, data)
    for problem in problems:
        print(f"  MISMATCH {problem}", file=out)
    if problems:
        print(f"\nverdict: FAIL, {len(problems)} mismatch(es)", file=out)
        return ExitCode.DEFECT
    how = "bit for bit" if _bitwise(results) else "within the float64 error bound"
    print(
        f"\nverdict: OK, all three agree {how} with the notebook "
        f"(L = {SEED_LOSS!r} -> L_updated = {SEED_LOSS_UPDATED!r})",
        file=out,
    )
    return _bias_variant(data, out)


def _bias_variant(data: SeedData, out: TextIO) -> int:
    """The seed's layer with a bias b (O,): output = x @ w + b, dL_db = dL_do summed over the
    batch, b_updated = b - lr * dL_db, by the same three implementations."""
    b = np.array(SEED_BIAS)
    results = bias_quantities(data, b)
    print(
        "\n--- the same layer with a bias b (output_features=4): output = x @ w + b ---", file=out
    )
    _side_by_side("b", [("", b)], out)
    for field in BiasQuantities._fields:
        _side_by_side(field, [(name, getattr(q, field)) for name, q in results.items()], out)
    problems = compare_bias(results, data, b)
    for problem in problems:
        print(f"  MISMATCH {problem}", file=out)
    if problems:
        print(f"\nverdict with a bias: FAIL, {len(problems)} mismatch(es)", file=out)
        return ExitCode.DEFECT
    loops = results["loop reference"]
    same = all(
        got.L == loops.L
        and got.L_updated == loops.L_updated
        and np.array_equal(got.w_updated, loops.w_updated)
        and np.array_equal(got.b_updated, loops.b_updated)
        for got in results.values()
    )
    how = "bit for bit" if same else "within the float64 error bound"
    print(
        f"\nverdict with a bias: OK, all three agree {how} "
        f"(L = {loops.L!r} -> L_updated = {loops.L_updated!r})",
        file=out,
    )
    return ExitCode.OK
