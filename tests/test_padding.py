"""Shape buckets (verify._padding) are exact: padded calls equal unpadded calls bit for bit.

The Hypothesis suites in test_layer call the jitted layer through buckets; these tests are what
lets them: on exact-mode data every summation order gives the same bits, so any difference
between a padded and an unpadded call would be a contribution of the padding itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from tests.conftest import examples, few_shapes
from tests.helpers import assert_bitwise, describe_call
from verify import _padding
from verify._padding import (
    BUCKETS,
    bucket,
    pad,
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
from verify.strategies import LayerInputs, exact_layer_inputs

FIELDS = reference.StepResult._fields

#: Every bucket edge and its neighbours, and past the last bucket.
EDGE_DIMS = (1, 2, 31, 32, 33, 127, 128, 129, 257, 513)
#: A few shapes, every side on every edge in one of them: each distinct shape compiles the
#: unpadded step and pieces once (the padded ones compile per bucket).
EDGE_SHAPES = few_shapes(EDGE_DIMS, max_size=1 << 16)


def test_bucket_is_the_first_bucket_at_least_the_side() -> None:
    sides = (0, 1, 8, 9, 32, 33, 128, 129, 512)
    assert [bucket(s) for s in sides] == [0, 32, 32, 32, 32, 128, 128, 512, 512]
    # Past the last bucket: the next multiple of it.
    assert bucket(513) == 1024
    assert bucket(1024) == 1024
    assert bucket(1025) == 1536
    assert bucket(5, buckets=(4, 16)) == 16
    with pytest.raises(ValueError, match="size must be >= 0"):
        bucket(-1)


def test_pad_puts_the_array_in_the_corner_of_zeros() -> None:
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3) + 1
    padded = pad(a)
    assert padded.shape == (32, 32)
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:2, :3], a)
    assert np.count_nonzero(padded) == a.size
    with pytest.raises(ValueError, match="cannot pad"):
        _padding.pad_to(a, (1, 8))


def assert_same_bits(padded, unpadded, fields, call: str) -> None:
    __tracebackhide__ = True
    for field in fields:
        assert_bitwise(field, getattr(padded, field), getattr(unpadded, field), call)


@examples(40)
@given(
    case=st.sampled_from((np.float32, np.float64)).flatmap(
        lambda dtype: exact_layer_inputs(dtype=dtype, shapes=EDGE_SHAPES)
    )
)
def test_padded_step_equals_unpadded_bit_for_bit(case: LayerInputs) -> None:
    """padded_step == verify.step and padded_autodiff_step == autodiff_step, every bit, and both
    equal the loop reference's float64 twin (exact on exact-mode data)."""
    x, w, target, lr = case.x, case.w, case.target, case.lr
    call = describe_call("step", x=x, w=w, target=target) + f" lr={lr}"
    unpadded = verify.step(x, w, target, lr)
    assert_same_bits(padded_step(x, w, target, lr), unpadded, FIELDS, "padded " + call)
    assert_same_bits(reference.fast.step(x, w, target, lr), unpadded, FIELDS, "fast " + call)
    assert_same_bits(
        padded_autodiff_step(x, w, target, lr),
        verify.autodiff_step(x, w, target, lr),
        FIELDS,
        "padded autodiff " + call,
    )


@examples(40)
@given(
    case=exact_layer_inputs(dtype=np.float32, shapes=EDGE_SHAPES),
    data=st.data(),
)
def test_padded_pieces_equal_unpadded_bit_for_bit(case: LayerInputs, data: st.DataObject) -> None:
    x, w, target, lr = case.x, case.w, case.target, case.lr
    n, _, o = case.shape
    # An integer upstream gradient (not only +-1): products and sums stay exact.
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    dL_do = np.random.default_rng(seed).integers(-3, 4, size=(n, o)).astype(np.float32)
    output = np.asarray(verify.forward(x, w))
    dL_dw = x.T @ dL_do  # integers: exact in float32
    pairs = {
        "output": (padded_forward(x, w), output),
        "L": (padded_l1_loss(output, target), verify.l1_loss(output, target)),
        "dL_do": (padded_loss_grad(output, target), verify.loss_grad(output, target)),
        "dL_dx": (padded_grad_x(dL_do, w), verify.grad_x(dL_do, w)),
        "dL_dw": (padded_grad_w(x, dL_do), verify.grad_w(x, dL_do)),
        "w_new": (padded_update(w, dL_dw, lr), verify.update(w, dL_dw, lr)),
    }
    for name, (padded, unpadded) in pairs.items():
        assert_bitwise(name, padded, unpadded, describe_call(name, x=x, w=w, dL_do=dL_do))


@pytest.mark.parametrize("shape", [(3, 5, 2), (9, 33, 7), (130, 4, 31)], ids=str)
def test_padded_positions_contribute_exact_zeros(shape: tuple[int, int, int]) -> None:
    """On the raw padded results: everything outside the real block is exactly 0, and the real
    block equals the unpadded step. Every padded target is a tie (0 == 0), where loss_grad alone
    would give -1: the mask is what makes dL_do 0 there."""
    n, i, o = shape
    case = verify.strategies.exact_inputs(shape, seed=sum(shape))
    big = tuple(bucket(s) for s in shape)
    x, w, target = (
        _padding.pad_to(case.x, (big[0], big[1])),
        _padding.pad_to(case.w, (big[1], big[2])),
        _padding.pad_to(case.target, (big[0], big[2])),
    )
    raw = _padding._masked_step(x, w, target, case.lr, np.int32(n), np.int32(o))
    unpadded = verify.step(case.x, case.w, case.target, case.lr)
    assert float(raw.loss) == float(unpadded.loss)
    for field, rows, cols in (("dL_dx", n, i), ("dL_dw", i, o), ("w_new", i, o)):
        value = np.asarray(getattr(raw, field))
        outside = np.ones(value.shape, dtype=bool)
        outside[:rows, :cols] = False
        assert np.all(value[outside] == 0), field
        assert_bitwise(field, value[:rows, :cols], getattr(unpadded, field), str(shape))
    # Without the mask, the padded ties take the notebook's -1.
    dL_do = np.asarray(verify.loss_grad(np.asarray(verify.forward(x, w)), target))
    assert np.all(dL_do[n:, :] == -1.0)


def test_non_finite_values_stay_in_the_real_block() -> None:
    """inf meeting a padded zero makes NaN in a padded position (inf * 0); the mask keeps it out
    of the loss and the gradients, so padded and unpadded agree NaN for NaN."""
    x = np.array([[1.0, np.inf], [2.0, 3.0]], dtype=np.float32)
    w = np.array([[1.0, -1.0, 2.0], [0.5, 1.0, -2.0]], dtype=np.float32)
    target = np.zeros((2, 3), dtype=np.float32)
    padded = padded_step(x, w, target, 0.5)
    unpadded = verify.step(x, w, target, 0.5)
    for field in FIELDS:
        np.testing.assert_array_equal(
            np.asarray(getattr(padded, field)), np.asarray(getattr(unpadded, field)), err_msg=field
        )


@pytest.mark.parametrize("autodiff", [False, True], ids=["chain", "autodiff_chain"])
@pytest.mark.parametrize("shape", [(1, 9, 3, 1), (13, 5, 17, 33)], ids=str)
def test_padded_chain_equals_unpadded(shape: tuple[int, int, int, int], autodiff: bool) -> None:
    n, i, h, o = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-3, 4, size=(n, i)).astype(np.float64)
    w1 = rng.integers(-3, 4, size=(i, h)).astype(np.float64)
    w2 = rng.integers(-3, 4, size=(h, o)).astype(np.float64)
    target = x @ w1 @ w2 + rng.choice([-1.5, -0.5, 0.5, 1.5], size=(n, o))
    unpadded = (verify.autodiff_chain if autodiff else verify.chain)(x, w1, w2, target)
    padded = padded_chain(x, w1, w2, target, autodiff=autodiff)
    assert_same_bits(padded, unpadded, unpadded._fields, str(shape))


def test_buckets_are_few_on_the_strategies_menu() -> None:
    """The point of it: the strategies' 15 sides fall into len(BUCKETS) padded sides."""
    menu = verify.strategies.DIM_MENU
    assert {bucket(d) for d in menu} <= set(BUCKETS)
    assert len({bucket(d) for d in menu}) == len(BUCKETS)
