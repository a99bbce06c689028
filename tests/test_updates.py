"""verify.oracle.explaining._updates: the update of each parameter fitted on its own: a bug of
b is named as b's, clipping by the global norm with its norm, a right update none (a seeded
Hypothesis property)."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.elementwise import DTYPES, dtype_of
from verify.oracle.explaining import _updates

# --------------------------------------------------------------------------------------------
# The updates
# --------------------------------------------------------------------------------------------

LR = 0.05

#: A learning rate per dtype whose steps stand well clear of the parameters' rounding: in half
#: precision a step of lr = 0.05 on |w| ~ 1 is a few ulps, and no constant can be named from it.
LRS = {"float64": LR, "float32": LR, "bfloat16": 0.5, "float16": 0.5}


def _data(dtype: str, scale: float = 3.0, seed_: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed_)
    dt = dtype_of(dtype)
    return {
        "w": rng.normal(size=(6, 4)).astype(dt),
        "g": (rng.normal(size=(6, 4)) * scale).astype(dt),
        "b": rng.normal(size=(4,)).astype(dt),
        "gb": (rng.normal(size=(4,)) * scale).astype(dt),
    }


def _sgd(p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    return (p - np.asarray(lr, p.dtype) * g).astype(p.dtype)


def _tree(a: dict[str, np.ndarray], w_new: np.ndarray, b_new: np.ndarray | None = None) -> dict:
    tree = {"w": (a["w"], a["g"], w_new)}
    if b_new is not None:
        tree["b"] = (a["b"], a["gb"], b_new)
    return {k: tuple(np.asarray(x, np.float64) for x in v) for k, v in tree.items()}


def _fit(tree: dict, dtype: str, lr: float | None = None) -> _updates.UpdateFit:
    return _updates.parameter_updates(tree, LRS[dtype] if lr is None else lr, dtype_of(dtype))


def _norm(*arrays: np.ndarray) -> float:
    return math.sqrt(sum(float(np.sum(np.square(a.astype(np.float64)))) for a in arrays))


@pytest.mark.parametrize("dtype", DTYPES)
def test_right_updates_with_and_without_b(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    with_b = _fit(_tree(a, _sgd(a["w"], a["g"], lr), _sgd(a["b"], a["gb"], lr)), dtype)
    without = _fit(_tree(a, _sgd(a["w"], a["g"], lr)), dtype)
    assert with_b.differences == without.differences == () and with_b.calls == 0
    assert [f.right for f in with_b.parameters] == [True, True]


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_with_a_tenth_of_lr_names_b_only(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    fit = _fit(_tree(a, _sgd(a["w"], a["g"], lr), _sgd(a["b"], a["gb"], lr * 0.1)), dtype)
    assert [(d.kind, d.parameter, d.value, d.exact) for d in fit.differences] == [
        ("scaled_step", "b", 0.1, True)
    ]
    assert fit.lines() == [
        "b - b_new = 0.1 * lr * dL_db (a parameter group giving b lr * 0.1?); w's update is right"
    ]


@pytest.mark.parametrize(
    ("dtype", "lr", "decay"),
    [("float64", LR, 0.01), ("float32", LR, 0.01), ("bfloat16", 0.5, 0.2), ("float16", 0.5, 0.1)],
)
def test_weight_decay_on_w_only(dtype: str, lr: float, decay: float) -> None:
    a = _data(dtype)
    t = dtype_of(dtype).type
    w_new = (a["w"] - t(lr) * (a["g"] + t(decay) * a["w"])).astype(a["w"].dtype)
    fit = _fit(_tree(a, w_new, _sgd(a["b"], a["gb"], lr)), dtype, lr)
    assert [(d.kind, d.parameter, d.value) for d in fit.differences] == [
        ("weight_decay", "w", decay)
    ]
    assert fit.lines() == [
        f"w - w_new = lr * (dL_dw + {decay} * w): weight decay (lambda = {decay}) on w "
        "(SGD(weight_decay=...), optax.add_decayed_weights)?; b's update is right"
    ]


def test_weight_decay_below_rounding_is_not_seen() -> None:
    """What it cannot tell: lambda = 0.01 moves a bfloat16 step by less than its rounding."""
    a = _data("bfloat16")
    t = ml_dtypes.bfloat16
    w_new = (a["w"] - t(LR) * (a["g"] + t(0.01) * a["w"])).astype(a["w"].dtype)
    assert _fit(_tree(a, w_new, _sgd(a["b"], a["gb"], LR)), "bfloat16", LR).differences == ()


def _decayed(a: dict[str, np.ndarray], lr: float, decay: float) -> np.ndarray:
    t = a["w"].dtype.type
    return (a["w"] - t(lr) * (a["g"] + t(decay) * a["w"])).astype(a["w"].dtype)


def test_a_decay_too_small_at_this_lr_is_named_at_another() -> None:
    """float32, lr = 0.01: lambda = 1e-4 moves w by 1e-6 of itself, a few of its roundings, and
    its interval holds 8e-5 to 1.2e-4; the same step at lr = 0.5 narrows it to 1e-4 alone."""
    a = _data("float32")
    once = _fit(_tree(a, _decayed(a, 0.01, 1e-4)), "float32", 0.01)
    [wide] = once.differences
    assert (wide.kind, wide.value, wide.exact) == ("weight_decay", None, False)
    assert not _updates.named(once)
    again = _tree(a, _decayed(a, 0.5, 1e-4))
    twice = _updates.parameter_updates(
        _tree(a, _decayed(a, 0.01, 1e-4)), 0.01, np.float32, again=(again, 0.5)
    )
    [named] = twice.differences
    assert (named.kind, named.value, named.exact) == ("weight_decay", 1e-4, True)
    assert _updates.named(twice)
    assert "weight decay (lambda = 0.0001) on w" in named.text


def test_a_constant_that_changes_with_lr_keeps_the_first_reading() -> None:
    """A scale the second lr contradicts (0.1 at lr = 0.01, 2 at lr = 0.5: no one constant)
    narrows nothing: the first step's too-wide interval is said as it was."""
    a = _data("bfloat16")
    first = _tree(a, _sgd(a["w"], a["g"], 0.001))
    once = _fit(first, "bfloat16", 0.01)
    again = _tree(a, _sgd(a["w"], a["g"], 1.0))
    twice = _updates.parameter_updates(first, 0.01, ml_dtypes.bfloat16, again=(again, 0.5))
    assert twice.parameters[0].scale == once.parameters[0].scale
    assert twice.lines() == once.lines()
    assert "too wide to name c" in twice.lines()[0]


def _clipped(a: dict[str, np.ndarray], max_norm: float, lr: float, eps: float = 0.0) -> tuple:
    dt = a["w"].dtype
    norm = np.sqrt(np.sum(a["g"] * a["g"]) + np.sum(a["gb"] * a["gb"]))
    c = min(np.asarray(1.0, dt), np.asarray(max_norm, dt) / (norm + np.asarray(eps, dt)))
    return _sgd(a["w"], (a["g"] * c).astype(dt), lr), _sgd(a["b"], (a["gb"] * c).astype(dt), lr)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_norm_clipping_binding(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    norm = _norm(a["g"], a["gb"])
    assert norm > 5  # max_norm 1.0 binds
    fit = _fit(_tree(a, *_clipped(a, 1.0, lr)), dtype)
    assert [(d.kind, d.value, d.parameter) for d in fit.differences] == [
        ("clipped_global_norm", 1.0, None)
    ]
    head = (
        "the step is clipped by the global gradient norm: scaled by 1.0 / ||(dL_dw, dL_db)|| = "
        f"1.0 / {norm:.3g} (max_norm 1.0)"
    )
    # In bfloat16, c = 1 / 14.1 is known to 1%: 0.07 is the only 1-digit decimal there too.
    also = " (or every step scaled by 0.07: not told apart here)" if dtype == "bfloat16" else ""
    assert fit.lines() == [head + also]


def test_global_norm_clipping_torch_epsilon_is_not_exact() -> None:
    a = _data("float64")
    fit = _fit(_tree(a, *_clipped(a, 0.5, LR, eps=1e-6)), "float64")
    assert [(d.kind, d.value, d.exact) for d in fit.differences] == [
        ("clipped_global_norm", 0.5, False)
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_norm_clipping_that_does_not_bind_passes(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype, scale=0.05)
    assert _norm(a["g"], a["gb"]) < 1.0
    assert _fit(_tree(a, *_clipped(a, 1.0, lr)), dtype).differences == ()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_global_norm_clipping_without_b(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    w_new, _ = _clipped({**a, "gb": np.zeros_like(a["gb"])}, 1.0, lr)
    fit = _fit(_tree(a, w_new), dtype)
    assert fit.lines() == [
        f"the step is clipped by the global gradient norm: scaled by 1.0 / ||dL_dw|| = 1.0 / "
        f"{_norm(a['g']):.3g} (max_norm 1.0; with one parameter, global and per-parameter "
        "clipping agree)"
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_parameter_norm_clipping(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    dt = a["w"].dtype
    one = np.asarray(1.0, dt)
    cw = one / np.sqrt(np.sum(a["g"] * a["g"]))
    cb = one / np.sqrt(np.sum(a["gb"] * a["gb"]))
    tree = _tree(
        a, _sgd(a["w"], (a["g"] * cw).astype(dt), lr), _sgd(a["b"], (a["gb"] * cb).astype(dt), lr)
    )
    fit = _fit(tree, dtype)
    assert [(d.kind, d.value) for d in fit.differences] == [("clipped_norm", 1.0)]
    assert fit.lines()[0].startswith(
        "each parameter's step is clipped by its own gradient norm (max_norm 1.0): dL_dw scaled "
        f"by 1.0 / ||dL_dw|| = 1.0 / {_norm(a['g']):.3g}, dL_db scaled by 1.0 / ||dL_db|| = "
        f"1.0 / {_norm(a['gb']):.3g}"
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_per_parameter_clipping_with_an_unclipped_bias(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    a["gb"] = (a["gb"] / 50).astype(a["gb"].dtype)
    dt = a["w"].dtype
    cw = np.asarray(1.0, dt) / np.sqrt(np.sum(a["g"] * a["g"]))
    fit = _fit(_tree(a, _sgd(a["w"], (a["g"] * cw).astype(dt), lr), _sgd(a["b"], a["gb"], lr)),
               dtype)  # fmt: skip
    assert fit.lines() == [
        "each parameter's step is clipped by its own gradient norm (max_norm 1.0): dL_dw scaled "
        f"by 1.0 / ||dL_dw|| = 1.0 / {_norm(a['g']):.3g}, dL_db unclipped (||dL_db|| = "
        f"{_norm(a['gb']):.3g} <= 1.0)"
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_first_step(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    t = dtype_of(dtype).type

    def adam(p: np.ndarray, g: np.ndarray) -> np.ndarray:
        m, v = g * t(0.1) / t(0.1), g * g * t(0.001) / t(0.001)  # bias-corrected first moments
        return (p - t(lr) * m / (np.sqrt(v) + t(1e-8))).astype(p.dtype)

    fit = _fit(_tree(a, adam(a["w"], a["g"]), adam(a["b"], a["gb"])), dtype)
    assert [(d.kind, d.value) for d in fit.differences] == [("normalized_step", 1.0)]
    assert fit.lines() == [
        "every parameter moves by lr * sign(its gradient): the first step of an adaptive "
        "optimizer such as Adam (lr * g / (sqrt(g^2) + eps))"
    ]
    one = _fit(_tree(a, adam(a["w"], a["g"]), _sgd(a["b"], a["gb"], lr)), dtype)
    assert [(d.kind, d.parameter) for d in one.differences] == [("normalized_step", "w")]
    assert one.lines()[0].endswith("; b's update is right")


@pytest.mark.parametrize("dtype", DTYPES)
def test_lr_squared(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    fit = _fit(_tree(a, _sgd(a["w"], a["g"], lr * lr), _sgd(a["b"], a["gb"], lr * lr)), dtype)
    assert [(d.kind, d.value) for d in fit.differences] == [("scaled_step", lr)]
    # In bfloat16, c = 0.5 = 7.0 / ||(dL_dw, dL_db)|| within the norm's bound: both are said.
    also = (
        " (or clipping by the global norm (max_norm 7.0): not told apart here)"
        if dtype == "bfloat16"
        else ""
    )
    assert fit.lines() == [
        "every parameter moves by lr * lr * its gradient: lr applied twice (w - w_new = lr * lr "
        "* dL_dw, b - b_new = lr * lr * dL_db)" + also
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_ascent_and_frozen_bias(dtype: str) -> None:
    lr = LRS[dtype]
    a = _data(dtype)
    ascent = _fit(_tree(a, _sgd(a["w"], a["g"], -lr), _sgd(a["b"], a["gb"], lr)), dtype)
    assert ascent.lines() == [
        "w_new = w + lr * dL_dw: the step ascends (the sign is flipped); b's update is right"
    ]
    frozen = _fit(_tree(a, _sgd(a["w"], a["g"], lr), a["b"]), dtype)
    assert frozen.lines() == ["b_new = b: b is not updated; w's update is right"]
    assert frozen.differences[0].parameter == "b"


def test_a_step_small_against_the_rounding_names_no_constant() -> None:
    """bfloat16, lr = 0.01: b's step 0.1 * lr * dL_db is a few ulps of b, its c anywhere in an
    interval holding several decimals: said as such, not named 0.1."""
    a = _data("bfloat16")
    fit = _fit(_tree(a, _sgd(a["w"], a["g"], 0.01), _sgd(a["b"], a["gb"], 0.001)), "bfloat16", 0.01)
    [difference] = fit.differences
    assert (difference.kind, difference.parameter, difference.value) == ("scaled_step", "b", None)
    assert not difference.exact
    assert difference.text.startswith("b - b_new = c * lr * dL_db with c in [")
    assert "too wide to name c (the step is small against the rounding of b)" in difference.text
    assert difference.text.endswith("; w's update is right")


def test_lr_squared_lost_to_rounding_is_no_update_with_its_caveat() -> None:
    """float16, lr = 0.01: lr * lr * g is below w's rounding, so w_new = w; said with how large
    a step could hide there."""
    a = _data("float16")
    tree = _tree(a, _sgd(a["w"], a["g"], 1e-4), _sgd(a["b"], a["gb"], 1e-4))
    [difference] = _fit(tree, "float16", 0.01).differences
    assert (difference.kind, difference.value) == ("scaled_step", 0.0)
    assert difference.text.startswith(
        "no parameter is updated: p_new = p (or a step of at most 0.0"
    )
    assert difference.text.endswith(" * lr * the gradient, below the rounding)")


def test_singled_out_decimals() -> None:
    assert _updates._short((0.0697, 0.1327)) is None  # 0.07, 0.08, 0.09 and 0.1 all fit
    assert _updates._short((0.144, 0.256)) == 0.2
    assert _updates._short((0.0999, 0.10001)) == 0.1
    assert _updates._short((0.98, 1.03)) == 1.0
    assert _updates._short((-1.02, -0.98)) == -1.0
    assert _updates._short((0.13681, 0.13689)) is None  # no 1- or 2-digit decimal
    assert _updates._short((0.24995, 0.25005)) == 0.25  # 2 digits in a narrow interval
    assert _updates._short((0.245, 0.255)) is None  # ... not in a 4% one
    assert _updates._short((-0.01, 0.02)) == 0.0
    assert _updates._singles_out((0.45, 0.55), 0.5)
    assert not _updates._singles_out((0.045, 0.08), 0.05)  # 0.06, 0.07, 0.08 too
    assert not _updates._singles_out((0.9, 1.2), 1.0)  # 0.9 too


def test_nonfinite_update() -> None:
    a = _data("float32")
    w_new = _sgd(a["w"], a["g"], LR)
    w_new[0, 0] = np.nan
    fit = _fit(_tree(a, w_new, _sgd(a["b"], a["gb"], LR)), "float32")
    assert [(d.kind, d.parameter) for d in fit.differences] == [("nan", "w")]


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_update_never_computed_is_all_zeros_not_a_decay(dtype: str) -> None:
    """w_new = 0 fits w - lr * (g + w / lr) within a half-precision step's rounding at a small
    lr; the zeros are the reading, before any model."""
    a = _data(dtype)
    fit = _fit(_tree(a, np.zeros_like(a["w"]), _sgd(a["b"], a["gb"], 0.01)), dtype, lr=0.01)
    assert [(d.kind, d.parameter, d.text) for d in fit.differences] == [
        ("zero", "w", "w_new is all zeros: never computed; b's update is right")
    ]


# --------------------------------------------------------------------------------------------
# A right implementation shows no difference (seeded property).
# --------------------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    seed_=st.integers(0, 2**16),
    lr=st.floats(1e-4, 2.0),
    scale=st.sampled_from([1e-3, 0.1, 1.0, 30.0]),
    bias=st.booleans(),
)
def test_property_right_update(dtype: str, seed_: int, lr: float, scale: float, bias: bool) -> None:
    lr = LRS[dtype]
    a = _data(dtype, scale, seed_)
    b_new = _sgd(a["b"], a["gb"], lr) if bias else None
    assert _fit(_tree(a, _sgd(a["w"], a["g"], lr), b_new), dtype, lr).differences == ()
