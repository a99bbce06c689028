"""reference/: the loop reference against the notebook, numpy, its fast twin and bad input."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

import reference
from tests.conftest import examples
from tests.helpers import assert_bitwise, assert_within, describe_call
from verify import bounds
from verify.strategies import LayerInputs, exact_layer_inputs, layer_shapes


def test_never_imports_jax() -> None:
    """The ground truth must not share code with what it checks."""
    for path in Path(reference.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name.split(".")[0] in ("jax", "jaxlib", "verify") for name in names), (
                path
            )


def test_notebook_cells() -> None:
    """The notebook's printed intermediate arrays, cell by cell."""
    x = np.array([[4, 0], [3, 3], [3, 1]])
    w = np.array([[0, 1, -1, 1], [-1, -1, -1, 1]])
    output = reference.forward(x, w)
    np.testing.assert_array_equal(output, [[0, 4, -4, 4], [-3, 0, -6, 6], [-1, 2, -4, 4]])
    dL_do = np.array([[1, 1, -1, 1], [-1, 1, -1, 1], [-1, 1, -1, 1]], dtype=float)
    np.testing.assert_array_equal(reference.grad_x(dL_do, w), [[3, 0], [3, 2], [3, 2]])
    np.testing.assert_array_equal(reference.grad_w(x, dL_do), [[-2, 10, -10, 10], [-4, 4, -4, 4]])
    np.testing.assert_array_equal(
        reference.update(w, reference.grad_w(x, dL_do), 0.01),
        w - reference.grad_w(x, dL_do) * 0.01,
    )


@examples(60)
@given(case=exact_layer_inputs(dtype=np.float64, shapes=layer_shapes(max_size=1 << 14)))
def test_fast_twin_is_bitwise_on_exact_data(case: LayerInputs) -> None:
    """reference.fast (float64 BLAS) equals the loops bit for bit where the data is exact."""
    assert reference.fast.exactness_margin(case.x, case.w, case.target) > 0
    loops = reference.step(case.x, case.w, case.target, case.lr)
    fast = reference.fast.step(case.x, case.w, case.target, case.lr)
    call = describe_call("reference.fast.step", x=case.x, w=case.w, target=case.target)
    for field in loops._fields:
        assert_bitwise(field, getattr(fast, field), getattr(loops, field), call)


def test_loops_are_float64_accurate() -> None:
    """On random float64 data the loops sit inside the float64 bound around numpy's matmul."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((31, 64)), rng.standard_normal((64, 13))
    dL_do = rng.standard_normal((31, 13))
    arith = bounds.FLOAT64
    assert_within("output", reference.forward(x, w), bounds.forward_bound(x, w, arith), "forward")
    assert_within(
        "dL_dx", reference.grad_x(dL_do, w), bounds.grad_x_bound(dL_do, w, arith), "grad_x"
    )
    assert_within(
        "dL_dw", reference.grad_w(x, dL_do), bounds.grad_w_bound(x, dL_do, arith), "grad_w"
    )


def test_upstream_is_not_assumed_unit() -> None:
    x = np.array([[1.0, 2.0]])
    w = np.array([[3.0], [5.0]])
    dL_do = np.array([[0.25]])
    np.testing.assert_array_equal(reference.grad_x(dL_do, w), [[0.75, 1.25]])
    np.testing.assert_array_equal(reference.grad_w(x, dL_do), [[0.25], [0.5]])


def test_chain_is_the_product() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, size=(5, 4)).astype(float)
    w1 = rng.integers(-3, 4, size=(4, 3)).astype(float)
    w2 = rng.integers(-3, 4, size=(3, 2)).astype(float)
    target = x @ w1 @ w2 + 0.5
    result = reference.chain(x, w1, w2, target)
    dL_do = reference.loss_grad(x @ w1 @ w2, target)
    np.testing.assert_array_equal(result.dL_dh, dL_do @ w2.T)
    np.testing.assert_array_equal(result.dL_dw1, x.T @ (dL_do @ w2.T))
    np.testing.assert_array_equal(result.dL_dx, (dL_do @ w2.T) @ w1.T)
    np.testing.assert_array_equal(result.dL_dw2, (x @ w1).T @ dL_do)


def test_ties_take_the_notebooks_minus_one() -> None:
    output = np.array([[0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(
        reference.loss_grad(output, np.array([[-0.0, 1.0, 3.0]])), [[-1.0, -1.0, -1.0]]
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: reference.forward(np.ones((3, 2)), np.ones((3, 4))),
            ValueError,
            r"w has shape \(3, 4\), but x has shape \(3, 2\): w must be \(I, O\) with I = 2",
        ),
        (
            lambda: reference.forward(np.ones(3), np.ones((3, 4))),
            ValueError,
            r"x must be a 2-D array \(N, I\), got shape \(3,\)",
        ),
        (
            lambda: reference.forward(np.ones((1, 2, 3)), np.ones((3, 4))),
            ValueError,
            r"x must be a 2-D array \(N, I\), got shape \(1, 2, 3\)",
        ),
        (
            lambda: reference.grad_x(np.ones((3, 4)), np.ones((2, 5))),
            ValueError,
            r"w has shape \(2, 5\), but dL_do has shape \(3, 4\)",
        ),
        (
            lambda: reference.grad_w(np.ones((3, 2)), np.ones((4, 4))),
            ValueError,
            r"dL_do has shape \(4, 4\), but x has shape \(3, 2\)",
        ),
        (
            lambda: reference.l1_loss(np.ones((3, 4)), np.ones((4, 3))),
            ValueError,
            r"target has shape \(4, 3\), but should match output \(3, 4\)",
        ),
        (
            lambda: reference.update(np.ones((2, 4)), np.ones((2, 4)), np.ones(2)),
            ValueError,
            r"lr must be a scalar, got shape \(2,\)",
        ),
        (
            lambda: reference.update(np.ones((2, 4)), np.ones((2, 4)), float("nan")),
            ValueError,
            r"lr = nan: must be finite",
        ),
        (
            lambda: reference.step(np.ones((3, 2)), np.ones((2, 4)), np.ones((3, 5)), 0.1),
            ValueError,
            r"target has shape \(3, 5\), but should be \(N, O\) = \(3, 4\)",
        ),
        (
            lambda: reference.forward(np.array([[1.0, np.inf]]), np.ones((2, 1))),
            ValueError,
            r"x\[0, 1\] = inf: the reference needs finite values",
        ),
        (
            lambda: reference.loss_grad(np.array([[np.nan]]), np.zeros((1, 1))),
            ValueError,
            r"output\[0, 0\] = nan",
        ),
        (
            lambda: reference.forward(np.array([["a"]]), np.ones((1, 1))),
            TypeError,
            r"x must hold real numbers \(bool, int or float\), got dtype <U1",
        ),
        (
            lambda: reference.forward([[1.0, 2.0], [3.0]], np.ones((2, 1))),
            ValueError,
            r"x must be a 2-D array",
        ),
    ],
    ids=[
        "forward-inner",
        "forward-rank1",
        "forward-rank3",
        "grad_x",
        "grad_w",
        "loss",
        "lr-shape",
        "lr-nan",
        "step-target",
        "inf",
        "nan",
        "strings",
        "ragged",
    ],
)
def test_bad_input_names_the_argument(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_bfloat16_inputs_are_read_exactly() -> None:
    import ml_dtypes

    x = np.array([[1.5, -2.0]], dtype=ml_dtypes.bfloat16)
    w = np.array([[3.0], [0.25]], dtype=ml_dtypes.bfloat16)
    np.testing.assert_array_equal(reference.forward(x, w), [[4.0]])


def test_empty_dimensions_keep_their_shape() -> None:
    assert reference.forward(np.ones((2, 0)), np.ones((0, 3))).tolist() == [[0.0] * 3] * 2
    assert reference.grad_x(np.ones((2, 3)), np.ones((0, 3))).shape == (2, 0)
    assert reference.grad_w(np.ones((2, 0)), np.ones((2, 3))).shape == (0, 3)


def test_exact_matmul_float32_path_is_exact_and_guarded() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-8, 9, size=(40, 300)).astype(np.float64)
    b = rng.integers(-8, 9, size=(300, 7)).astype(np.float64)
    np.testing.assert_array_equal(reference.fast.exact_matmul(a, b), a @ b)
    # Past 2^24 float32 cannot hold an odd sum: the float64 path must take over.
    big, three = np.full((1, 300), 65537.0), np.full((300, 1), 3.0)
    big[0, -1] = 65538.0
    exact_sum = 300 * 196611.0 + 3.0  # odd, above 2^24
    np.testing.assert_array_equal(reference.fast.exact_matmul(big, three), [[exact_sum]])
    assert float((big.astype(np.float32) @ three.astype(np.float32))[0, 0]) != exact_sum
    # Non-integers are never routed through float32.
    frac = a + 0.1
    np.testing.assert_array_equal(reference.fast.exact_matmul(frac, b), frac @ b)


@examples(30)
@given(case=exact_layer_inputs(dtype=np.float32, shapes=layer_shapes(max_size=1 << 12)))
def test_fast_twin_takes_float32_and_a_known_output(case: LayerInputs) -> None:
    """float32 inputs (kept, not copied) and an output handed in give the loops' bits."""
    loops = reference.step(case.x, case.w, case.target, case.lr)
    output = case.x.astype(np.float64) @ case.w.astype(np.float64)
    call = describe_call("reference.fast.step", x=case.x, w=case.w, target=case.target)
    for given_output in (None, output):
        fast = reference.fast.step(case.x, case.w, case.target, case.lr, output=given_output)
        for field in loops._fields:
            assert_bitwise(field, getattr(fast, field), getattr(loops, field), call)


def test_fast_twin_leaves_float32_blas_for_data_it_would_round() -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((6, 5)) + 0.5).astype(np.float32)  # not integers
    w = rng.integers(-3, 4, size=(5, 4)).astype(np.float32)
    target = rng.standard_normal((6, 4))
    fast = reference.fast.step(x, w, target, 0.5)
    output = x.astype(np.float64) @ w.astype(np.float64)
    dL_do = np.where(output > target, 1.0, -1.0)
    np.testing.assert_array_equal(fast.dL_dw, x.astype(np.float64).T @ dL_do)
    np.testing.assert_array_equal(fast.dL_dx, dL_do @ w.astype(np.float64).T)
    with pytest.raises(ValueError, match="output has shape"):
        reference.fast.step(x, w, target, 0.5, output=np.zeros((4, 6)))


# ------------------------------------------------------------------------------------------
# The bias: forward(x, w, b), grad_b, update on (O,), step(x, w, b, target, lr).
# ------------------------------------------------------------------------------------------


def test_bias_by_hand() -> None:
    """The notebook's x and w with a bias, every number worked out by hand."""
    x = np.array([[4, 0], [3, 3], [3, 1]])
    w = np.array([[0, 1, -1, 1], [-1, -1, -1, 1]])
    b = np.array([1.0, -2.0, 0.0, 3.0])
    np.testing.assert_array_equal(
        reference.forward(x, w, b), [[1, 2, -4, 7], [-2, -2, -6, 9], [0, 0, -4, 7]]
    )
    # output > 0 = target where +1; the tie at output[2, 0] = output[2, 1] = 0 takes -1.
    result = reference.step(x, w, b, np.zeros((3, 4)), 0.5)
    assert isinstance(result, reference.BiasStepResult)
    assert result.loss == 44.0
    np.testing.assert_array_equal(result.dL_db, [-1, -1, -3, 3])
    np.testing.assert_array_equal(result.b_new, [1.5, -1.5, 1.5, 1.5])
    np.testing.assert_array_equal(result.dL_dw, [[-2, -2, -10, 10], [-4, -4, -4, 4]])
    # Without b the step is the seed's, of the seed's type.
    assert type(reference.step(x, w, np.zeros((3, 4)), 0.5)) is reference.StepResult


def test_grad_b_sums_any_upstream_over_the_batch() -> None:
    dL_do = np.array([[0.25, -3.0], [1.5, 2.0], [-0.5, 0.125]])
    np.testing.assert_array_equal(reference.grad_b(dL_do), [1.25, -0.875])
    assert reference.grad_b(np.zeros((0, 3))).shape == (3,)


def test_bias_step_is_the_seed_step_plus_the_bias_loop() -> None:
    """step(x, w, b, ...) is forward(x, w, b) fed through the same pieces: dL_dx and dL_dw are
    the seed's on the biased output, dL_db is grad_b of its dL_do, b_new is update(b, ...)."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((7, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    target = rng.standard_normal((7, 4))
    result = reference.step(x, w, b, target, 0.01)
    output = reference.forward(x, w, b)
    np.testing.assert_array_equal(output, reference.forward(x, w) + b)  # one rounding each
    dL_do = reference.loss_grad(output, target)
    np.testing.assert_array_equal(result.dL_db, reference.grad_b(dL_do))
    np.testing.assert_array_equal(result.dL_dw, reference.grad_w(x, dL_do))
    np.testing.assert_array_equal(result.dL_dx, reference.grad_x(dL_do, w))
    np.testing.assert_array_equal(result.b_new, reference.update(b, result.dL_db, 0.01))
    np.testing.assert_array_equal(result.b_new, b - 0.01 * dL_do.sum(axis=0))
    keywords = reference.step(x, w, b=b, target=target, lr=0.01)
    np.testing.assert_array_equal(keywords.b_new, result.b_new)


@examples(40)
@given(case=exact_layer_inputs(dtype=np.float64, shapes=layer_shapes(max_size=1 << 14)))
def test_fast_twin_is_bitwise_with_a_bias(case: LayerInputs) -> None:
    """reference.fast with an integer bias equals the loops bit for bit (exact-mode data)."""
    b = np.arange(case.w.shape[1], dtype=np.float64) % 7 - 3
    assert reference.fast.exactness_margin(case.x, case.w, case.target, b) > 0
    loops = reference.step(case.x, case.w, b, case.target, case.lr)
    fast = reference.fast.step(case.x, case.w, b, case.target, case.lr)
    call = describe_call("reference.fast.step", x=case.x, w=case.w, b=b, target=case.target)
    assert loops._fields == fast._fields == reference.BiasStepResult._fields
    for field in loops._fields:
        assert_bitwise(field, getattr(fast, field), getattr(loops, field), call)


def test_bias_loops_are_float64_accurate() -> None:
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((31, 64)), rng.standard_normal((64, 13)), rng.standard_normal(13)
    dL_do = rng.standard_normal((31, 13))
    arith = bounds.FLOAT64
    assert_within(
        "output", reference.forward(x, w, b), bounds.forward_bound(x, w, arith, b=b), "forward"
    )
    assert_within("dL_db", reference.grad_b(dL_do), bounds.grad_b_bound(dL_do, arith), "grad_b")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: reference.forward(np.ones((3, 2)), np.ones((2, 4)), np.ones(3)),
            ValueError,
            r"b has shape \(3,\), but w has shape \(2, 4\): b must be \(O,\) with O = 4",
        ),
        (
            lambda: reference.forward(np.ones((3, 2)), np.ones((2, 4)), np.ones((1, 4))),
            ValueError,
            r"b must be a 1-D array \(O,\), got shape \(1, 4\)",
        ),
        (
            lambda: reference.forward(np.ones((3, 2)), np.ones((2, 4)), np.array([1, 2, 3, 1j])),
            TypeError,
            r"b must hold real numbers \(bool, int or float\), got dtype complex128",
        ),
        (
            lambda: reference.forward(np.ones((3, 2)), np.ones((2, 1)), np.array([np.nan])),
            ValueError,
            r"b\[0\] = nan: the reference needs finite values",
        ),
        (
            lambda: reference.grad_b(np.ones(3)),
            ValueError,
            r"dL_do must be a 2-D array \(N, O\), got shape \(3,\)",
        ),
        (
            lambda: reference.update(np.ones(4), np.ones(3), 0.1),
            ValueError,
            r"dL_dw has shape \(3,\), but should match w \(4,\)",
        ),
        (
            lambda: reference.step(np.ones((3, 2)), np.ones((2, 4)), np.ones((3, 4))),
            TypeError,
            r"step\(\) takes \(x, w, target, lr\) or \(x, w, b, target, lr\), got 3 arguments",
        ),
        (
            lambda: reference.step(np.ones((3, 2)), np.ones((2, 4)), np.ones((3, 4)), bias=0.1),
            TypeError,
            r"step\(\) got an unexpected or repeated argument 'bias'",
        ),
        (
            lambda: reference.fast.step(
                np.ones((3, 2)), np.ones((2, 4)), np.ones(5), np.ones((3, 4)), 0.1
            ),
            ValueError,
            r"b has shape \(5,\), but should be \(O,\) = \(4,\)",
        ),
    ],
    ids=[
        "forward-b-size",
        "forward-b-rank",
        "forward-b-complex",
        "forward-b-nan",
        "grad_b",
        "update-1d",
        "step-count",
        "step-keyword",
        "fast-b",
    ],
)
def test_bad_bias_input_names_the_argument(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()
