"""``python -m verify``: the seed notebook's example, by all three implementations side by side.

Rebuilds the notebook's data with its own legacy draws (``np.random.seed(0)``, ``randint``,
``uniform``), runs one step with the loop reference, the jitted hand-written JAX layer and
``jax.grad``, prints every quantity of the notebook from each, and a one-line verdict.
"""

from __future__ import annotations

import sys
from typing import NamedTuple, TextIO

import numpy as np

#: The notebook's learning rate (``w - dL_dw * .01``).
SEED_LR = 0.01

#: The notebook's printed results, the first acceptance test.
SEED_LOSS = 41.578510114266535
SEED_LOSS_UPDATED = 38.088094755935614
SEED_DL_DX = ((3.0, 0.0), (3.0, 2.0), (3.0, 2.0))
SEED_DL_DW = ((-2.0, 10.0, -10.0, 10.0), (-4.0, 4.0, -4.0, 4.0))


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
    import reference

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
    print("  " + "   ".join(label.ljust(w) for (label, _), w in zip(blocks, width, strict=True)), file=out)
    for row in range(max(len(lines) for _, lines in blocks)):
        cells = [lines[row] if row < len(lines) else "" for _, lines in blocks]
        print("  " + "   ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)), file=out)


def compare(results: dict[str, Quantities]) -> list[str]:
    """Disagreements between the implementations and with the notebook's printed numbers.

    The seed has no ties (true_value is continuous), so every quantity must agree bit for bit in
    float64: the integer ones are exact and the sums are formed in the same order.
    """
    problems = []
    names = list(results)
    first = results[names[0]]
    for name in names[1:]:
        for field in Quantities._fields:
            a, b = np.asarray(getattr(first, field)), np.asarray(getattr(results[name], field))
            if a.shape != b.shape or not np.array_equal(a, b):
                problems.append(f"{field}: {names[0]} and {name} differ")
    for name, got in results.items():
        if got.L != SEED_LOSS:
            problems.append(f"{name}: L = {got.L!r}, but the notebook printed {SEED_LOSS!r}")
        if got.L_updated != SEED_LOSS_UPDATED:
            problems.append(
                f"{name}: L_updated = {got.L_updated!r}, but the notebook printed {SEED_LOSS_UPDATED!r}"
            )
        if not np.array_equal(got.dL_dx, SEED_DL_DX):
            problems.append(f"{name}: dL_dx differs from the notebook's")
        if not np.array_equal(got.dL_dw, SEED_DL_DW):
            problems.append(f"{name}: dL_dw differs from the notebook's")
    return problems


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
    print("crosscheck: the seed notebook's dense layer, L1 loss and one SGD step (lr = 0.01)", file=out)
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
    problems = compare(results)
    for problem in problems:
        print(f"  MISMATCH {problem}", file=out)
    if problems:
        print(f"\nverdict: FAIL, {len(problems)} mismatch(es)", file=out)
        return 1
    print(
        f"\nverdict: OK, all three agree bit for bit with the notebook "
        f"(L = {SEED_LOSS!r} -> L_updated = {SEED_LOSS_UPDATED!r})",
        file=out,
    )
    return 0
