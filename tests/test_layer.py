"""verify._layer (and the jax.grad oracle beside it) cross-checked against the loop reference.

Float mode: every result must lie in the error model's admissible set around the loop
reference's float64 result (``verify.bounds``, kink-aware). Exact mode: bit for bit.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from tests import helpers
from tests.conftest import examples, few_shapes
from tests.helpers import assert_bitwise, assert_within, describe_call
from verify import bounds
from verify._padding import (
    bucketed,
    padded_autodiff_step,
    padded_chain,
    padded_forward,
    padded_grad_w,
    padded_grad_x,
    padded_l1_loss,
    padded_loss_grad,
    padded_step,
    padded_update,
)
from verify.strategies import (
    BiasLayerInputs,
    LayerInputs,
    exact_layer_inputs,
    layer_inputs,
    layer_shapes,
    upstream_gradients,
)

DTYPES = (np.float32, np.float64)

# The Hypothesis tests call the jitted functions through shape buckets (verify._padding): each
# example is zero-padded to one of a few dozen shapes, so the jitted functions compile a few
# dozen times instead of once per example, and every result is cropped back and compared,
# unpadded, against the loop reference. Padding is exact (tests/test_padding.py proves it bit
# for bit against the unpadded calls); the unpadded verify.step is exercised there, by the seed
# table, the precision settings, the few-hundred exact test and test_bounds / the oracle.

# Ties and the chain are about values, not shapes: a short menu keeps their compiles few
# (each distinct shape compiles every jitted function once).
TIE_SHAPES = layer_shapes(dims=(1, 3, 16, 129))
CHAIN_SHAPES = layer_shapes(dims=(1, 2, 5, 16, 31), max_size=1 << 12)


def loop_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The bounds' float64 centres from the loop reference, so the reference is cross-checked."""
    return reference.forward(a, b)


@jax.jit
def autodiff_loss_grad(output, target):
    """dL_do by jax.grad of sum |output - target| with respect to output (+1 at ties)."""
    return jax.grad(lambda o: jax.numpy.sum(jax.numpy.abs(o - target)))(output)


#: The same, element-wise on bucketed shapes (the padded positions are cropped away).
padded_autodiff_loss_grad = bucketed(autodiff_loss_grad, lambda output, target: output)


def float_cases() -> st.SearchStrategy[LayerInputs]:
    return st.sampled_from(DTYPES).flatmap(lambda dtype: layer_inputs(dtype=dtype))


def full_precision(case: LayerInputs) -> bounds.Arithmetic:
    return bounds.arithmetic(case.x.dtype)


def step_call(case: LayerInputs, name: str = "step") -> str:
    return describe_call(name, x=case.x, w=case.w, target=case.target) + f" lr={case.lr}"


def assert_step_within(result, case: LayerInputs, arith: bounds.Arithmetic, name: str) -> None:
    __tracebackhide__ = True
    helpers.assert_step_within(result, case, arith, step_call(case, name))


# ------------------------------------------------------------------------------------------
# The seed table: the notebook's numbers from all three implementations.
# ------------------------------------------------------------------------------------------


def test_seed_table_from_all_three() -> None:
    from verify.tools.walkthrough import (
        SEED_DL_DW,
        SEED_DL_DX,
        SEED_LOSS,
        SEED_LOSS_UPDATED,
        SEED_LR,
        seed_data,
    )

    data = seed_data()
    steps = {
        "reference": reference.step(data.x, data.w, data.true_value, SEED_LR),
        "verify": verify.step(data.x, data.w, data.true_value, SEED_LR),
        "jax.grad": verify.autodiff_step(data.x, data.w, data.true_value, SEED_LR),
    }
    for name, result in steps.items():
        assert float(result.loss) == SEED_LOSS, name
        # The gradients are integers: exact in any order, so bitwise.
        np.testing.assert_array_equal(np.asarray(result.dL_dx), SEED_DL_DX, err_msg=name)
        np.testing.assert_array_equal(np.asarray(result.dL_dw), SEED_DL_DW, err_msg=name)
        loss_updated = reference.l1_loss(
            reference.forward(data.x, np.asarray(result.w_new)), data.true_value
        )
        assert loss_updated == SEED_LOSS_UPDATED, name


# ------------------------------------------------------------------------------------------
# Float mode: within the error model.
# ------------------------------------------------------------------------------------------


@examples(150)
@given(case=float_cases())
def test_step_within_bound(case: LayerInputs) -> None:
    arith = full_precision(case)
    assert_step_within(
        padded_step(case.x, case.w, case.target, case.lr), case, arith, "verify.step"
    )


@examples(150)
@given(case=float_cases())
def test_autodiff_step_within_bound(case: LayerInputs) -> None:
    arith = full_precision(case)
    result = padded_autodiff_step(case.x, case.w, case.target, case.lr)
    assert_step_within(result, case, arith, "autodiff_step")


@examples(100)
@given(case=float_cases())
def test_reference_step_within_float64_bound(case: LayerInputs) -> None:
    # The loop reference against the model with numpy's float64 matmul as the centre: the loops
    # computed in float64 in their own order, numpy in BLAS order, both within gamma_K(2^-53).
    expected = bounds.step_bounds(case.x, case.w, case.target, case.lr, bounds.FLOAT64)
    result = reference.step(case.x, case.w, case.target, case.lr)
    call = step_call(case, "reference.step")
    assert_within("loss", result.loss, expected.loss, call)
    assert_within("dL_dx", result.dL_dx, expected.dL_dx, call)
    assert_within("dL_dw", result.dL_dw, expected.dL_dw, call)
    assert_within("w_new", result.w_new, expected.w_new, call)


@examples(100)
@given(case=float_cases(), data=st.data())
def test_pieces_within_bound(case: LayerInputs, data: st.DataObject) -> None:
    arith = full_precision(case)
    x, w, target = case.x, case.w, case.target
    n, _, o = case.shape
    output = padded_forward(x, w)
    assert_within(
        "output",
        output,
        bounds.forward_bound(x, w, arith, matmul=loop_matmul),
        describe_call("forward", x=x, w=w),
    )
    # loss and loss_grad on the same (output, target) pair the implementation sees
    output_np = np.asarray(output)
    exact_output = bounds.Bound(output_np.astype(np.float64), np.zeros(output_np.shape))
    assert_within(
        "L",
        padded_l1_loss(output_np, target),
        bounds.loss_bound(exact_output, target, arith),
        describe_call("l1_loss", output=output_np, target=target),
    )
    # The sign is determined wherever |output - target| exceeds what flush-to-zero can erase
    # (XLA on CPU flushes subnormals inside operations); below that, [-1, 1] is admissible.
    determined = np.abs(output_np.astype(np.float64) - target) > arith.tiny
    jax_dL_do = np.asarray(padded_loss_grad(output_np, target))
    np.testing.assert_array_equal(
        jax_dL_do[determined], reference.loss_grad(output_np, target)[determined]
    )
    assert np.all(np.abs(jax_dL_do) <= 1)
    # non-unit upstream gradients: a bug that ignores or rescales dL_do must not survive
    dL_do = data.draw(upstream_gradients((n, o), dtype=case.x.dtype), label="dL_do")
    assert_within(
        "dL_dx",
        padded_grad_x(dL_do, w),
        bounds.grad_x_bound(dL_do, w, arith, matmul=loop_matmul),
        describe_call("grad_x", dL_do=dL_do, w=w),
    )
    assert_within(
        "dL_dw",
        padded_grad_w(x, dL_do),
        bounds.grad_w_bound(x, dL_do, arith, matmul=loop_matmul),
        describe_call("grad_w", x=x, dL_do=dL_do),
    )
    dL_dw = np.asarray(padded_grad_w(x, dL_do))
    assert_within(
        "w_new",
        padded_update(w, dL_dw, case.lr),
        bounds.update_bound(w, dL_dw, case.lr, arith),
        describe_call("update", w=w, dL_dw=dL_dw) + f" lr={case.lr}",
    )


@pytest.mark.parametrize("precision", ["highest", "high", "default"])
def test_precision_settings_on_this_backend(precision: str) -> None:
    """Each precision setting is within the bound of the arithmetic it claims on this backend."""
    claimed = {
        ("cpu", "highest"): "float32",
        ("cpu", "high"): "float32",
        ("cpu", "default"): "float32",
        ("gpu", "highest"): "float32",
        ("gpu", "high"): "tf32",
        ("gpu", "default"): "tf32",
        ("tpu", "highest"): "bf16_6x",
        ("tpu", "high"): "bf16_3x",
        ("tpu", "default"): "bf16",
    }[(jax.default_backend(), precision)]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 129)).astype(np.float32)
    w = rng.standard_normal((129, 31)).astype(np.float32)
    target = (x.astype(np.float64) @ w + rng.standard_normal((64, 31))).astype(np.float32)
    case = LayerInputs(x, w, target, 0.01, "normal")
    arith = bounds.arithmetic(np.float32, claimed)
    result = verify.step(x, w, target, 0.01, precision=precision)
    assert_step_within(result, case, arith, f"verify.step(precision={precision!r})")


# ------------------------------------------------------------------------------------------
# Exact mode: integer data, half-integer targets, power-of-two lr -> bit for bit.
# ------------------------------------------------------------------------------------------


def exact_cases(max_size: int = 1 << 16) -> st.SearchStrategy[LayerInputs]:
    shapes = layer_shapes(max_size=max_size)
    return st.sampled_from(DTYPES).flatmap(lambda d: exact_layer_inputs(dtype=d, shapes=shapes))


def assert_steps_bitwise(result, expected, case: LayerInputs, name: str) -> None:
    __tracebackhide__ = True
    call = step_call(case, name)
    for field in ("loss", "dL_dx", "dL_dw", "w_new"):
        assert_bitwise(field, getattr(result, field), getattr(expected, field), call)


@examples(150)
@given(case=exact_cases())
def test_exact_mode_bitwise(case: LayerInputs) -> None:
    expected = reference.step(case.x, case.w, case.target, case.lr)
    assert_steps_bitwise(
        padded_step(case.x, case.w, case.target, case.lr), expected, case, "verify.step"
    )
    assert_steps_bitwise(
        padded_autodiff_step(case.x, case.w, case.target, case.lr), expected, case, "autodiff_step"
    )
    assert_bitwise(
        "output", padded_forward(case.x, case.w), reference.forward(case.x, case.w), "forward"
    )


@pytest.mark.slow
def test_exact_mode_bitwise_at_a_few_hundred() -> None:
    """One step at 300 x 257 x 211 against the loops themselves (26 million multiply-adds), in
    every dtype: the loops run once (on Python floats, they give the same exact values for
    float32 and float64 data) and every dtype's step must equal them."""
    rng = np.random.default_rng(300)
    x = rng.integers(-4, 5, size=(300, 257)).astype(np.float64)
    w = rng.integers(-4, 5, size=(257, 211)).astype(np.float64)
    output = x @ w
    target = output + rng.choice([-1.5, -0.5, 0.5, 1.5], size=output.shape)
    lr = 2.0**-6
    expected = reference.step(x, w, target, lr)
    for dtype in DTYPES:
        typed = [a.astype(dtype) for a in (x, w, target)]
        case = LayerInputs(*typed, lr, "exact")
        assert_steps_bitwise(reference.fast.step(*typed, lr), expected, case, "reference.fast")
        assert_steps_bitwise(verify.step(*typed, lr), expected, case, "verify.step")
        assert_steps_bitwise(verify.autodiff_step(*typed, lr), expected, case, "autodiff_step")


# ------------------------------------------------------------------------------------------
# Ties: legal inputs, generated on purpose.
# ------------------------------------------------------------------------------------------


def test_tie_conventions_are_the_documented_ones() -> None:
    output = np.array([[0.0, 1.0, -2.0, 0.0]])
    target = np.array([[0.0, 1.0, -2.0, -0.0]])
    assert np.all(reference.loss_grad(output, target) == reference.TIE_CONVENTION)
    assert np.all(np.asarray(verify.loss_grad(output, target)) == verify.TIE_CONVENTION)
    assert np.all(np.asarray(autodiff_loss_grad(output, target)) == 1.0)


@examples(100)
@given(
    case=st.sampled_from(DTYPES).flatmap(
        lambda d: layer_inputs(dtype=d, shapes=TIE_SHAPES, kinds=("integers",), tie_fraction=0.5)
    )
)
def test_ties_admissible_and_no_false_alarm(case: LayerInputs) -> None:
    """At a tie dL_do may be anything in [-1, 1]; elsewhere all three agree on the sign.

    Integer data: outputs are exact, so ``output == target`` is a true tie (signed zeros
    included), and jax.grad (+1) and the notebook (-1) disagree there without either being wrong.
    """
    output = reference.forward(case.x, case.w)
    ties = output == case.target
    jax_output = np.asarray(padded_forward(case.x, case.w))
    np.testing.assert_array_equal(jax_output, output)
    jax_dL_do = np.asarray(padded_autodiff_loss_grad(jax_output, case.target))
    for name, dL_do in {
        "reference": reference.loss_grad(output, case.target),
        "verify": np.asarray(padded_loss_grad(jax_output, case.target)),
        "jax.grad": jax_dL_do,
    }.items():
        assert np.all(np.abs(dL_do[ties]) <= 1), name
        np.testing.assert_array_equal(
            dL_do[~ties], np.sign(output - case.target)[~ties], err_msg=name
        )
    arith = full_precision(case)
    assert_step_within(
        padded_step(case.x, case.w, case.target, case.lr), case, arith, "verify.step"
    )
    assert_step_within(
        padded_autodiff_step(case.x, case.w, case.target, case.lr), case, arith, "autodiff_step"
    )


# ------------------------------------------------------------------------------------------
# The two exact identities, in exact arithmetic: L is convex in w, so a step along a
# subgradient g lowers it by at most lr ||g||^2, and linear while no output crosses its target.
# ------------------------------------------------------------------------------------------


def _loss_at(case: LayerInputs, w: np.ndarray) -> float:
    return reference.l1_loss(reference.forward(case.x, w), case.target)


@examples(80)
@given(case=exact_cases(max_size=1 << 14))
def test_convexity_and_no_crossing_identity(case: LayerInputs) -> None:
    """L(w - lr g) >= L(w) - lr ||g||^2 for a subgradient g; equality when nothing crosses.

    Exact-mode data keeps every quantity a short dyadic rational, so both sides are computed
    without rounding and compared with no tolerance at all.
    """
    for name, step in (("verify.step", padded_step), ("autodiff_step", padded_autodiff_step)):
        result = step(case.x, case.w, case.target, case.lr)
        dL_dw = np.asarray(result.dL_dw, dtype=np.float64)
        loss = _loss_at(case, case.w)
        assert float(result.loss) == loss, name
        decrease = case.lr * float(np.sum(dL_dw * dL_dw))
        assert _loss_at(case, np.asarray(result.w_new)) >= loss - decrease, name
        # A learning rate small enough that no output moves by 0.5 (the smallest |output -
        # target| in exact mode): nothing crosses, so the first-order model is exact.
        movement = float(np.abs(case.x.astype(np.float64) @ dL_dw).max(initial=0.0))
        small_lr = 2.0 ** -(int(np.ceil(np.log2(max(movement, 1.0)))) + 2)
        w_small = np.asarray(padded_update(case.w, result.dL_dw, small_lr))
        small_decrease = small_lr * float(np.sum(dL_dw * dL_dw))
        assert _loss_at(case, w_small) == loss - small_decrease, name


# ------------------------------------------------------------------------------------------
# The two-layer chain (the notebook's closing note).
# ------------------------------------------------------------------------------------------


@examples(60)
@given(
    case=exact_layer_inputs(dtype=np.float64, shapes=CHAIN_SHAPES, magnitude=3),
    hidden=st.sampled_from((1, 3, 17)),
    seed=st.integers(0, 2**32 - 1),
)
def test_chain_exact(case: LayerInputs, hidden: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w1 = case.x, case.w
    w2 = rng.integers(-3, 4, size=(w1.shape[1], hidden)).astype(np.float64)
    output = x @ w1 @ w2
    target = output + rng.choice([-1.5, -0.5, 0.5, 1.5], size=output.shape)
    expected = reference.chain(x, w1, w2, target)
    # The chain is the product: dL_dw1 = x.T @ (dL_do @ w2.T).
    dL_do = reference.loss_grad(output, target)
    np.testing.assert_array_equal(expected.dL_dw1, reference.grad_w(x, reference.grad_x(dL_do, w2)))
    call = describe_call("chain", x=x, w1=w1, w2=w2, target=target)
    for name, result in (
        ("verify.chain", padded_chain(x, w1, w2, target)),
        ("autodiff_chain", padded_chain(x, w1, w2, target, autodiff=True)),
    ):
        for field in expected._fields:
            assert_bitwise(
                field, getattr(result, field), getattr(expected, field), f"{name} {call}"
            )


@examples(60)
@given(
    case=st.sampled_from(DTYPES).flatmap(
        lambda d: layer_inputs(dtype=d, shapes=CHAIN_SHAPES, tie_fraction=0.0)
    ),
    hidden=st.sampled_from((1, 3, 17)),
    seed=st.integers(0, 2**32 - 1),
)
def test_chain_within_bound(case: LayerInputs, hidden: int, seed: int) -> None:
    """Float mode: every gradient of the two-layer chain inside ``bounds.chain_bounds``.

    The targets are re-drawn around the chain's own output, some copied from it (near ties,
    which the kink-aware bound must absorb), so the chain meets its kinks.
    """
    rng = np.random.default_rng(seed)
    x, w1 = case.x, case.w
    w2 = rng.standard_normal((w1.shape[1], hidden)).astype(x.dtype)
    output = x.astype(np.float64) @ w1 @ w2
    # One target in eight copied from the output (a near tie), the rest one |output| away.
    signs = rng.choice([0.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0], size=output.shape)
    offsets = signs * np.maximum(np.abs(output), 1)
    target = (output + offsets).astype(x.dtype)
    arith = full_precision(case)
    expected = bounds.chain_bounds(x, w1, w2, target, arith, matmul=loop_matmul)
    call = describe_call("chain", x=x, w1=w1, w2=w2, target=target)
    for name, result in (
        ("verify.chain", padded_chain(x, w1, w2, target)),
        ("autodiff_chain", padded_chain(x, w1, w2, target, autodiff=True)),
    ):
        for field in ("loss", "dL_dx", "dL_dw1", "dL_dh", "dL_dw2"):
            assert_within(field, getattr(result, field), getattr(expected, field), f"{name} {call}")
    reference_result = reference.chain(x, w1, w2, target)
    float64_bounds = bounds.chain_bounds(x, w1, w2, target, bounds.FLOAT64)
    for field in ("loss", "dL_dx", "dL_dw1", "dL_dh", "dL_dw2"):
        assert_within(
            field, getattr(reference_result, field), getattr(float64_bounds, field), "reference"
        )


def test_chain_bound_catches_a_broken_chain_rule() -> None:
    """dL_dw1 without the second layer's factor (x.T @ dL_do summed, not x.T @ dL_dh) fails."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 31)).astype(np.float32)
    w1 = rng.standard_normal((31, 5)).astype(np.float32)
    w2 = rng.standard_normal((5, 17)).astype(np.float32)
    output = x.astype(np.float64) @ w1 @ w2
    target = (output + rng.choice([-1.0, 1.0], size=output.shape)).astype(np.float32)
    expected = bounds.chain_bounds(x, w1, w2, target, bounds.arithmetic(np.float32))
    good = verify.chain(x, w1, w2, target)
    assert expected.dL_dw1.worst(np.asarray(good.dL_dw1)) <= 1
    dL_do = np.asarray(verify.loss_grad(output.astype(np.float32), target))
    broken = x.T @ (dL_do @ np.ones((17, 5), np.float32))  # w2 dropped from the chain
    assert expected.dL_dw1.worst(broken) > 1


# ------------------------------------------------------------------------------------------
# Bad inputs: clear errors at trace time; non-finite values propagate (documented).
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: verify.forward(np.ones((3, 2)), np.ones((3, 4))),
            r"w has shape \(3, 4\), but x has shape \(3, 2\)",
        ),
        (
            lambda: verify.forward(np.ones(3), np.ones((3, 4))),
            r"x must be a 2-D array \(N, I\), got shape \(3,\)",
        ),
        (
            lambda: verify.grad_x(np.ones((3, 4)), np.ones((2, 5))),
            r"w has shape \(2, 5\), but dL_do has shape \(3, 4\)",
        ),
        (
            lambda: verify.grad_w(np.ones((3, 2)), np.ones((4, 4))),
            r"dL_do has shape \(4, 4\), but x has shape \(3, 2\)",
        ),
        (
            lambda: verify.l1_loss(np.ones((3, 4)), np.ones((4, 3))),
            r"target has shape \(4, 3\), but should match output \(3, 4\)",
        ),
        (
            lambda: verify.update(np.ones((2, 4)), np.ones((4, 2)), 0.1),
            r"dL_dw has shape \(4, 2\), but should match w \(2, 4\)",
        ),
        (
            lambda: verify.update(np.ones((2, 4)), np.ones((2, 4)), np.ones(2)),
            r"lr must be a scalar, got shape \(2,\)",
        ),
        (
            lambda: verify.step(np.ones((3, 2)), np.ones((2, 4)), np.ones((3, 5)), 0.1),
            r"target has shape \(3, 5\), but should be \(N, O\) = \(3, 4\)",
        ),
    ],
    ids=[
        "forward-inner",
        "forward-rank",
        "grad_x",
        "grad_w",
        "loss",
        "update",
        "update-lr",
        "step-target",
    ],
)
def test_bad_shapes_name_the_argument(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_non_finite_values_propagate() -> None:
    """verify cannot raise on values under jit: NaN and inf propagate to every result they touch."""
    x = np.array([[1.0, np.nan], [2.0, 3.0]])
    w = np.ones((2, 2))
    target = np.zeros((2, 2))
    result = verify.step(x, w, target, 0.1)
    assert np.isnan(result.loss)
    assert np.isnan(np.asarray(verify.loss_grad(verify.forward(x, w), target))[0]).all()
    assert np.isnan(np.asarray(result.dL_dw)).any()
    assert np.isfinite(np.asarray(verify.forward(x, w))[1]).all()  # the clean row stays clean
    inf_target = np.array([[np.inf, 0.0], [0.0, 0.0]])
    assert np.isinf(verify.l1_loss(np.zeros((2, 2)), inf_target))


# ------------------------------------------------------------------------------------------
# The bias: verify.forward(x, w, b), grad_b, step(x, w, b, target, lr), and jax.grad for dL/db.
# ------------------------------------------------------------------------------------------

#: A few shapes, every side 1, 3, 16 and 129 in one of them: the biased steps are called
#: unpadded, and each shape compiles them once per dtype, shared by the tests below.
BIAS_SHAPES = few_shapes((1, 3, 16, 129), max_size=1 << 12)
BIAS_DTYPES = ("float64", "float32", "bfloat16", "float16")


def bias_cases(**kwargs) -> st.SearchStrategy[BiasLayerInputs]:
    return st.sampled_from(BIAS_DTYPES).flatmap(
        lambda dtype: layer_inputs(
            dtype=bounds.numpy_dtype(dtype), shapes=BIAS_SHAPES, bias=True, **kwargs
        )
    )


def bias_call(case: BiasLayerInputs, name: str) -> str:
    shapes = describe_call(name, x=case.x, w=case.w, b=case.b, target=case.target)
    return f"{shapes} lr={case.lr} {case.kind} {case.x.dtype}"


@examples(80)
@given(case=bias_cases())
def test_bias_step_within_bound(case: BiasLayerInputs) -> None:
    """verify.step and jax.grad's step with a bias, every kind and dtype, inside the model."""
    arith = bounds.arithmetic(case.x.dtype)
    for name, step in (("verify.step", verify.step), ("autodiff_step", verify.autodiff_step)):
        result = step(case.x, case.w, case.b, case.target, case.lr)
        assert type(result) is verify.BiasStepResult
        helpers.assert_step_within(result, case, arith, bias_call(case, name))
    output = verify.forward(case.x, case.w, case.b)
    bound = bounds.forward_bound(case.x, case.w, arith, b=case.b, matmul=loop_matmul)
    assert_within("output", output, bound, bias_call(case, "forward"))


@examples(40)
@given(case=bias_cases())
def test_reference_bias_step_within_float64_bound(case: BiasLayerInputs) -> None:
    typed = [np.asarray(a, np.float64) for a in (case.x, case.w, case.b, case.target)]
    result = reference.step(*typed, case.lr)
    helpers.assert_step_within(result, case, bounds.FLOAT64, bias_call(case, "reference.step"))


@examples(60)
@given(
    case=st.sampled_from(DTYPES).flatmap(lambda d: exact_layer_inputs(dtype=d, shapes=BIAS_SHAPES)),
    seed=st.integers(0, 2**16),
)
def test_bias_exact_mode_bitwise(case: LayerInputs, seed: int) -> None:
    """Integer b on exact-mode data, targets moved with it (still no ties): the loops, the fast
    twin, verify.step and jax.grad agree bit for bit on all six results."""
    b = np.random.default_rng(seed).integers(-4, 5, size=case.w.shape[1]).astype(case.x.dtype)
    target = (case.target + b).astype(case.x.dtype)
    expected = reference.step(case.x, case.w, b, target, case.lr)
    call = describe_call("step", x=case.x, w=case.w, b=b, target=target) + f" lr={case.lr}"
    for name, result in (
        ("reference.fast", reference.fast.step(case.x, case.w, b, target, case.lr)),
        ("verify.step", verify.step(case.x, case.w, b, target, case.lr)),
        ("autodiff_step", verify.autodiff_step(case.x, case.w, b, target, case.lr)),
    ):
        for field in reference.BiasStepResult._fields:
            assert_bitwise(field, getattr(result, field), getattr(expected, field), name + call)


@examples(60)
@given(case=bias_cases(kinds=("integers",), tie_fraction=0.5))
def test_bias_ties_take_each_convention(case: BiasLayerInputs) -> None:
    """Ties made through x @ w + b == target: verify.step takes the seed's -1 and jax.grad +1
    exactly where the tie is certain, and dL_db counts them so."""
    arith = bounds.arithmetic(case.x.dtype)
    for name, step, tie in (
        ("verify.step", verify.step, bounds.TIE_CONVENTIONS["seed"]),
        ("autodiff_step", verify.autodiff_step, bounds.TIE_CONVENTIONS["jax"]),
    ):
        expected = bounds.step_bounds(
            case.x, case.w, case.target, case.lr, arith, tie=tie, b=case.b
        )
        result = step(case.x, case.w, case.b, case.target, case.lr)
        assert_within("dL_db", result.dL_db, expected.dL_db, bias_call(case, name))


@examples(30)
@given(data=st.data(), shape=st.sampled_from([(1, 1), (7, 3), (129, 16)]))
def test_grad_b_takes_any_upstream(data: st.DataObject, shape: tuple[int, int]) -> None:
    dL_do = data.draw(upstream_gradients(shape, dtype=np.float32))
    bound = bounds.grad_b_bound(dL_do, bounds.arithmetic("float32"))
    assert_within("dL_db", verify.grad_b(dL_do), bound, describe_call("grad_b", dL_do=dL_do))
    np.testing.assert_array_equal(bound.center, reference.grad_b(dL_do))


def test_bias_step_is_one_computation_of_three_matmuls_and_the_column_sum() -> None:
    """Fused: the bias adds one reduction (dL_db) to the loss's, and no matmul."""
    x, w, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32), np.ones(4, np.float32)
    target = np.zeros((3, 4), np.float32)
    biased = verify.step.lower(x, w, b, target, 0.5).as_text()
    plain = verify.step.lower(x, w, target, 0.5).as_text()
    assert biased.count("dot_general") == plain.count("dot_general") == 3
    assert biased.count("reduce") == plain.count("reduce") + 1


def test_without_a_bias_the_step_is_the_seeds() -> None:
    x, w = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32)
    target = np.zeros((3, 4), np.float32)
    assert type(verify.step(x, w, target, 0.5)) is verify.StepResult
    assert type(verify.autodiff_step(x, w, target, 0.5)) is verify.StepResult
    assert verify.step.__name__ == "step" and "b_new" in (verify.step.__doc__ or "")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: verify.forward(np.ones((3, 2)), np.ones((2, 4)), np.ones(3)),
            ValueError,
            r"b has shape \(3,\), but w has shape \(2, 4\): b must be \(O,\) with O = 4",
        ),
        (
            lambda: verify.forward(np.ones((3, 2)), np.ones((2, 4)), np.ones((1, 4))),
            ValueError,
            r"b has shape \(1, 4\), but w has shape \(2, 4\): b must be \(O,\) with O = 4",
        ),
        (
            lambda: verify.step(np.ones((3, 2)), np.ones((2, 4)), np.ones(5), np.ones((3, 4)), 0.1),
            ValueError,
            r"b has shape \(5,\), but w has shape \(2, 4\)",
        ),
        (
            lambda: verify.step(np.ones((3, 2)), np.ones((2, 4)), np.ones(4), np.ones((3, 5)), 0.1),
            ValueError,
            r"target has shape \(3, 5\), but should be \(N, O\) = \(3, 4\)",
        ),
        (
            lambda: verify.grad_b(np.ones(3)),
            ValueError,
            r"dL_do must be a 2-D array \(N, O\), got shape \(3,\)",
        ),
        (
            lambda: verify.step(np.ones((3, 2)), np.ones((2, 4)), np.ones((3, 4))),
            TypeError,
            r"step\(\) takes \(x, w, target, lr\) or \(x, w, b, target, lr\), got 3 arguments",
        ),
        (
            lambda: verify.step(
                np.ones((3, 2)), np.ones((2, 4)), np.ones(4), np.ones((3, 4)), float("inf")
            ),
            ValueError,
            r"lr = inf: must be finite",
        ),
        (
            lambda: verify.forward(np.ones((3, 2)), np.ones((2, 4)), np.ones(4) * 1j),
            TypeError,
            r"b must hold real numbers \(bool, int or float\), got dtype complex",
        ),
    ],
    ids=[
        "forward-b-size",
        "forward-b-rank",
        "step-b",
        "step-target",
        "grad_b",
        "step-count",
        "step-lr",
        "forward-b-complex",
    ],
)
def test_bad_bias_input_names_the_argument(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()
