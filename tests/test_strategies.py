"""Meta-tests of ``verify.strategies``: arguments are checked, exact mode is exact, ties and the
adversarial kinds really are produced, nothing overflows."""

from __future__ import annotations

import hashlib
import re

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from tests.conftest import examples
from verify import bounds
from verify.strategies import (
    DIM_MENU,
    VALUE_KINDS,
    BiasLayerInputs,
    LayerInputs,
    LayerShape,
    _make_inputs,
    exact_inputs,
    exact_layer_inputs,
    exact_mode_fits,
    inputs_of,
    layer_inputs,
    layer_shapes,
    upstream_gradients,
)

DTYPES = ("float64", "float32", "bfloat16", "float16")

#: sha256 of x, w and target of ``example_inputs((31, 7, 13), kind="normal", seed=7)``, taken
#: before the bias existed: any change to the no-bias stream shows here.
NO_BIAS_DIGEST = "dbe37ebdcf1222fc"


# ------------------------------------------------------------------------------------------
# Argument validation: a ValueError naming the argument and what it got.
# ------------------------------------------------------------------------------------------

BAD_CALLS = {
    "layer_shapes(max_side=0)": (lambda: layer_shapes(max_side=0), "max_side"),
    "layer_shapes(max_size=-1)": (lambda: layer_shapes(max_size=-1), "max_size"),
    "layer_shapes(dims=(0,))": (lambda: layer_shapes(dims=(0,)), "dims"),
    "layer_shapes(dims=(300,), max_side=257)": (
        lambda: layer_shapes(dims=(300,), max_side=257),
        "max_side",
    ),
    "layer_inputs(dtype=int64)": (lambda: layer_inputs(dtype=np.int64), "dtype"),
    "layer_inputs(dtype='banana')": (lambda: layer_inputs(dtype="banana"), "dtype"),
    "layer_inputs(kinds=())": (lambda: layer_inputs(kinds=()), "kinds"),
    "layer_inputs(kinds=('gaussian',))": (lambda: layer_inputs(kinds=("gaussian",)), "kinds"),
    "layer_inputs(kinds='normal')": (lambda: layer_inputs(kinds="normal"), "kinds"),
    "layer_inputs(tie_fraction=1.5)": (lambda: layer_inputs(tie_fraction=1.5), "tie_fraction"),
    "layer_inputs(learning_rates=())": (lambda: layer_inputs(learning_rates=()), "learning_rates"),
    "layer_inputs(learning_rates=(nan,))": (
        lambda: layer_inputs(learning_rates=(float("nan"),)),
        "learning_rates",
    ),
    "exact_layer_inputs(dtype=float16)": (lambda: exact_layer_inputs(dtype=np.float16), "exact"),
    "exact_layer_inputs(magnitude=0)": (lambda: exact_layer_inputs(magnitude=0), "magnitude"),
    "exact_layer_inputs(learning_rates=(0.01,))": (
        lambda: exact_layer_inputs(learning_rates=(0.01,)),
        "powers of two",
    ),
    "exact_inputs(shape=(2, 0, 3))": (lambda: exact_inputs((2, 0, 3), seed=0), "shape[1]"),
    "exact_inputs(shape=(2, 3))": (lambda: exact_inputs((2, 3), seed=0), "shape"),
    "exact_inputs(lr=0.1)": (lambda: exact_inputs((2, 2, 2), seed=0, lr=0.1), "powers of two"),
    "exact_inputs(too big)": (
        lambda: exact_inputs((2, 2**20, 2), seed=0, magnitude=8),
        "not exact",
    ),
    "upstream_gradients((0, 3))": (lambda: upstream_gradients((0, 3)), "shape[0]"),
    "upstream_gradients([2, 3])": (lambda: upstream_gradients([2, 3]), "shape"),
}


@pytest.mark.parametrize("call", list(BAD_CALLS))
def test_bad_arguments_are_refused_eagerly(call: str) -> None:
    make, needle = BAD_CALLS[call]
    with pytest.raises(ValueError, match=re.escape(needle)):
        make()


# ------------------------------------------------------------------------------------------
# Shapes.
# ------------------------------------------------------------------------------------------


@examples(50)
@given(layer_shapes(max_size=4096))
def test_shapes_come_from_the_menu_and_respect_max_size(shape: LayerShape) -> None:
    assert all(side in DIM_MENU for side in shape)
    assert shape.num_data * shape.input_features * shape.output_features <= 4096


# ------------------------------------------------------------------------------------------
# Exact mode: exact in float32, bit for bit against the loops.
# ------------------------------------------------------------------------------------------


def _float32_numpy_step(case: LayerInputs) -> tuple:
    """The seed's step in float32 numpy: any order, any blocking (BLAS sgemm)."""
    x, w, target = case.x, case.w, case.target
    output = x @ w
    dL_do = np.where(output > target, np.float32(1), np.float32(-1))
    dL_dw = x.T @ dL_do
    loss = np.abs(output - target).sum(dtype=np.float32)
    return loss, dL_do @ w.T, dL_dw, w - np.float32(case.lr) * dL_dw


@examples(40)
@given(exact_layer_inputs(dtype=np.float32, shapes=layer_shapes(max_size=1 << 12)))
def test_exact_inputs_are_exact_in_float32(case: LayerInputs) -> None:
    """Loop reference (float64, left to right) == float32 numpy (BLAS order), bit for bit."""
    loops = reference.step(case.x, case.w, case.target, case.lr)
    single = _float32_numpy_step(case)
    for field, want, got in zip(("loss", "dL_dx", "dL_dw", "w_new"), loops, single, strict=True):
        np.testing.assert_array_equal(np.asarray(got, np.float64), np.asarray(want), err_msg=field)
    # No ties: half-integer targets never meet integer outputs.
    assert not (case.x.astype(np.float64) @ case.w.astype(np.float64) == case.target).any()
    assert bounds.dtype_name(case.x.dtype) == "float32"


def test_exact_mode_fits_limits() -> None:
    assert exact_mode_fits((2048, 2048, 2048), 4, 2.0**-6)
    assert not exact_mode_fits((4096, 8, 4096), 4, 1.0)  # loss 1.5 * 2^24 > 2^23
    assert not exact_mode_fits((8, 2**20, 8), 4, 1.0)  # |output| up to 2^24


# ------------------------------------------------------------------------------------------
# Ties, kinds, ranges.
# ------------------------------------------------------------------------------------------


@examples(30)
@given(layer_inputs(dtype=np.float32, kinds=("integers",), tie_fraction=1.0))
def test_integer_kind_makes_exact_ties(case: LayerInputs) -> None:
    """tie_fraction=1: every target equals the exact output (integers: real ties, not near)."""
    exact = case.x.astype(np.float64) @ case.w.astype(np.float64)
    assert (exact == case.target).all()


def test_tie_fraction_is_the_share_of_ties() -> None:
    """Over many examples the share of exact ties is tie_fraction (binomial: 4 sigma)."""
    ties = total = 0
    for seed in range(40):
        case = _draw("integers", (16, 5, 8), np.dtype(np.float32), seed, tie_fraction=0.3)
        exact = case.x.astype(np.float64) @ case.w.astype(np.float64)
        ties += int((exact == case.target).sum())
        total += exact.size
    # A target offset by 1e-3 * 0.5 can land on an integer output only if the output is 0 and
    # the offset underflows: never. So ties come from tie_fraction alone.
    sigma = (0.3 * 0.7 / total) ** 0.5
    assert abs(ties / total - 0.3) < 4 * sigma


def test_signed_zero_ties_are_produced() -> None:
    found = False
    for seed in range(50):
        case = _draw("integers", (8, 3, 4), np.dtype(np.float32), seed, tie_fraction=1.0)
        zero = (case.target == 0) & np.signbit(case.target)
        found |= bool(zero.any())
    assert found


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kind_is_finite_and_clear_of_overflow(dtype: str) -> None:
    """Every kind, every dtype: finite inputs, and the step's largest quantity under 1/16 of
    the dtype's largest finite number (the generator aims at 1/32)."""
    np_dtype = bounds.numpy_dtype(dtype)
    biggest = float(ml_dtypes.finfo(np_dtype).max)
    for kind in VALUE_KINDS:
        for seed, shape in enumerate([(1, 1, 1), (31, 7, 13), (3, 257, 2), (257, 4, 1)]):
            case = _draw(kind, shape, np_dtype, seed)
            for name in ("x", "w", "target"):
                assert np.isfinite(getattr(case, name).astype(np.float64)).all(), (kind, name)
            x, w = np.abs(case.x.astype(np.float64)), np.abs(case.w.astype(np.float64))
            loss = float(np.abs(x @ w).sum() + np.abs(case.target.astype(np.float64)).sum())
            assert loss < biggest / 16, (kind, shape, loss)


def _draw(
    kind: str, shape: tuple[int, int, int], dtype: np.dtype, seed: int, tie_fraction: float = 0.2
) -> LayerInputs:
    """One example of a kind without Hypothesis (the strategies' own maker, seeded)."""
    return _make_inputs(kind, LayerShape(*shape), dtype, seed, 0.01, tie_fraction)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_subnormal_kind_has_subnormals_and_huge_and_tiny_are_extreme(dtype: str) -> None:
    np_dtype = bounds.numpy_dtype(dtype)
    info = ml_dtypes.finfo(np_dtype)
    tiny = float(info.smallest_normal)
    sub = _draw("subnormal", (31, 7, 13), np_dtype, 0).x.astype(np.float64)
    assert ((sub != 0) & (np.abs(sub) < tiny)).any()
    huge = _draw("huge", (31, 7, 13), np_dtype, 0)
    assert np.abs(huge.x.astype(np.float64)).max() > float(info.max) ** 0.25
    small = _draw("tiny", (31, 7, 13), np_dtype, 0)
    products = np.abs(small.x.astype(np.float64)) @ np.abs(small.w.astype(np.float64))
    assert products.min() < 1e3 * tiny


def test_cancellation_kind_cancels() -> None:
    """x @ w small next to |x| @ |w|: the relative bound is loose, the absolute error is not."""
    case = _draw("cancellation", (8, 64, 8), np.dtype(np.float32), 0)
    x, w = case.x.astype(np.float64), case.w.astype(np.float64)
    assert np.median(np.abs(x @ w) / (np.abs(x) @ np.abs(w))) < 1e-2


@examples(10)
@given(st.data())
def test_upstream_gradients_are_not_unit(data: st.DataObject) -> None:
    dL_do = data.draw(upstream_gradients((5, 3), dtype=np.float32))
    assert dL_do.shape == (5, 3) and dL_do.dtype == np.float32
    assert not np.isin(np.abs(dL_do), [0.0, 1.0]).all()


def test_example_inputs_match_the_strategy_kinds() -> None:
    from verify.strategies import example_inputs

    case = example_inputs((3, 4, 5), kind="integers", seed=1, tie_fraction=1.0)
    assert case.x.shape == (3, 4) and case.w.shape == (4, 5) and case.target.shape == (3, 5)
    np.testing.assert_array_equal(case.target, case.x.astype(np.float64) @ case.w)  # all ties
    with pytest.raises(ValueError, match="kind must be one of"):
        example_inputs((1, 1, 1), kind="gaussian")
    with pytest.raises(ValueError, match=r"shape\[1\] must be a positive int"):
        example_inputs((1, 0, 1))


# ------------------------------------------------------------------------------------------
# bias=True: b drawn like w, ties through x @ w + b, nothing overflows, the seed's draws kept.
# ------------------------------------------------------------------------------------------


def _draw_bias(
    kind: str, shape: tuple[int, int, int], dtype: np.dtype, seed: int, tie_fraction: float = 0.2
) -> BiasLayerInputs:
    return _make_inputs(kind, LayerShape(*shape), dtype, seed, 0.01, tie_fraction, bias=True)


@examples(30)
@given(layer_inputs(dtype=np.float32, kinds=("integers",), tie_fraction=1.0, bias=True))
def test_integer_kind_makes_exact_ties_through_the_bias(case: BiasLayerInputs) -> None:
    """tie_fraction=1: every target equals x @ w + b exactly, and b is not all zero."""
    x64, w64 = case.x.astype(np.float64), case.w.astype(np.float64)
    assert case.b.shape == (case.w.shape[1],) and case.b.dtype == np.float32
    assert (x64 @ w64 + case.b.astype(np.float64) == case.target).all()


def test_bias_is_drawn_and_moves_the_ties() -> None:
    """Across seeds b is nonzero, and ties sit on x @ w + b, not on x @ w."""
    moved = 0
    for seed in range(20):
        case = _draw_bias("integers", (8, 3, 4), np.dtype(np.float32), seed, tie_fraction=1.0)
        moved += int((case.x.astype(np.float64) @ case.w != case.target).sum())
    assert moved > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kind_with_a_bias_is_finite_and_clear_of_overflow(dtype: str) -> None:
    np_dtype = bounds.numpy_dtype(dtype)
    biggest = float(ml_dtypes.finfo(np_dtype).max)
    for kind in VALUE_KINDS:
        for seed, shape in enumerate([(1, 1, 1), (31, 7, 13), (3, 257, 2), (257, 4, 1)]):
            case = _draw_bias(kind, shape, np_dtype, seed)
            for name in ("x", "w", "b", "target"):
                assert np.isfinite(getattr(case, name).astype(np.float64)).all(), (kind, name)
            x, w = np.abs(case.x.astype(np.float64)), np.abs(case.w.astype(np.float64))
            b = np.abs(case.b.astype(np.float64))
            loss = float((x @ w + b).sum() + np.abs(case.target.astype(np.float64)).sum())
            assert loss < biggest / 16, (kind, shape, loss)
            assert shape[0] * 1.5 < biggest / 16  # |dL_db| <= N, |b_new| <= |b| + lr N


def test_bias_kinds_are_what_they_say() -> None:
    """Subnormal kind: some b subnormal; tiny: b around the smallest normal; cancellation:
    x @ w + b small next to |x| @ |w| + |b| on the row b undoes."""
    f32 = np.dtype(np.float32)
    tiny = float(ml_dtypes.finfo(f32).smallest_normal)
    sub = _draw_bias("subnormal", (31, 7, 13), f32, 0).b.astype(np.float64)
    assert ((sub != 0) & (np.abs(sub) < tiny)).any()
    small = np.abs(_draw_bias("tiny", (31, 7, 13), f32, 0).b.astype(np.float64))
    assert small.max() < 1e3 * tiny
    case = _draw_bias("cancellation", (8, 64, 8), f32, 0)
    x, w, b = (a.astype(np.float64) for a in (case.x, case.w, case.b))
    assert np.median(np.abs(x[0] @ w + b) / (np.abs(x[0]) @ np.abs(w) + np.abs(b))) < 1e-2


def test_no_bias_draws_are_the_seeds() -> None:
    """bias=False draws exactly what it drew before there was a bias (same seed, same bytes):
    the reports of checks without a bias stay byte-identical."""
    from verify.strategies import example_inputs

    plain = example_inputs((31, 7, 13), kind="normal", seed=7)
    assert type(plain) is LayerInputs
    again = _make_inputs("normal", LayerShape(31, 7, 13), np.dtype(np.float32), 7, 0.01, 0.2)
    for name in ("x", "w", "target"):
        assert getattr(plain, name).tobytes() == getattr(again, name).tobytes()
    digest = hashlib.sha256(b"".join(a.tobytes() for a in (plain.x, plain.w, plain.target)))
    assert digest.hexdigest()[:16] == NO_BIAS_DIGEST


def test_bias_option_is_checked() -> None:
    with pytest.raises(ValueError, match="bias must be True or False, got 1"):
        layer_inputs(bias=1)  # type: ignore[call-overload]


def test_the_inputs_hold_their_parameters_as_one_tree() -> None:
    """``.params`` is the tree; ``inputs_of`` builds the inputs back from it, in any key order."""
    plain = _make_inputs("normal", LayerShape(4, 3, 2), np.dtype(np.float32), 1, 0.01, 0.2)
    biased = _draw_bias("normal", (4, 3, 2), np.dtype(np.float32), 1)
    assert list(plain.params) == ["w"] and list(biased.params) == ["w", "b"]
    assert biased.params["b"] is biased.b
    again = inputs_of(biased.x, {"b": biased.b, "w": biased.w}, biased.target, 0.01, "normal")
    assert type(again) is BiasLayerInputs and again.b is biased.b and again.w is biased.w
    assert type(inputs_of(plain.x, plain.params, plain.target, 0.5, "x")) is LayerInputs
