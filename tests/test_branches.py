"""verify.oracle.explaining._branches on hand-built bugs: each bug, in every dtype where it is
visible, gets exactly its own explanation (kind and text), a right implementation none (a
seeded Hypothesis property), and the probes cost what the module docstring says."""

from __future__ import annotations

import math
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import bounds
from verify.oracle.explaining import _branches as br

DTYPES = ["float64", "float32", "bfloat16", "float16"]
#: The probes' dims: N = 5, O = 4 (N*O = 20).
N, O_ = 5, 4

Fn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _dtype(name: str) -> np.dtype:
    return bounds.numpy_dtype(name)


def _caller(fn: Fn, dtype: str) -> br.Call:
    """The oracle's side: cast to the dtype, call, hand back float64."""
    dt = _dtype(dtype)

    def call(output: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        o, t = output.astype(dt), target.astype(dt)
        assert np.array_equal(o.astype(np.float64), output), "probe not exact in the dtype"
        assert np.array_equal(t.astype(np.float64), target), "probe not exact in the dtype"
        with np.errstate(all="ignore"):
            result = fn(o, t)
        return None if result is None else np.asarray(result).astype(np.float64)

    return call


def _one(x: np.ndarray, value: float) -> np.ndarray:
    return np.asarray(value, x.dtype)


# --------------------------------------------------------------------------------------------
# loss_grad
# --------------------------------------------------------------------------------------------


def seed(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(o > t, 1, -1).astype(o.dtype)


def jax_like(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(o >= t, 1, -1).astype(o.dtype)


def torch_like(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.sign(o - t)


CONVENTIONS: dict[str, Fn] = {"seed": seed, "jax": jax_like, "torch": torch_like}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_right_loss_grad_pinned_and_unpinned(dtype: str, convention: str) -> None:
    call = _caller(CONVENTIONS[convention], dtype)
    tie = bounds.TIE_CONVENTIONS[convention]
    pinned = br.loss_grad_table(call, N, O_, _dtype(dtype), tie=tie)
    free = br.loss_grad_table(call, N, O_, _dtype(dtype), tie=None)
    assert pinned.differences == free.differences == ()
    assert pinned.lines() == []
    assert pinned.calls == free.calls == 21  # K = 19 scenarios + 2 element-wise checks
    assert pinned.elementwise and len(pinned.rows) == 1


def _near(dtype: str) -> str:
    return f"{2.0 ** br._NEAR_EXPONENT[dtype]:.3g}"


#: (name, function, pinned tie, kind, text); ``{near}`` is the dtype's near tie.
GRAD_BUGS: list[tuple[str, Fn, float | None, str, str]] = [
    (
        "flipped",
        lambda o, t: -seed(o, t),
        -1.0,
        "sign_flip",
        "loss_grad returns -1 where output > target and +1 where output < target: the sign is "
        "flipped",
    ),
    (
        "mean over N*O",
        lambda o, t: seed(o, t) / _one(o, o.size),
        -1.0,
        "mean",
        "loss_grad returns +1/20 where output > target and -1/20 where output < target: every "
        "value x 1/(N*O) = 1/20 (a mean over N*O)",
    ),
    (
        "mean over N",
        lambda o, t: torch_like(o, t) / _one(o, o.shape[0]),
        None,
        "mean",
        "loss_grad returns +1/5 where output > target and -1/5 where output < target: every "
        "value x 1/N = 1/5 (a mean over N)",
    ),
    (
        # The from-scratch book's np.sign(y_true - y_pred) / outputs / samples: one explanation.
        "flipped mean (book)",
        lambda o, t: np.sign(t - o) / _one(o, o.shape[1]) / _one(o, o.shape[0]),
        None,
        "flipped_mean",
        "loss_grad returns -1/20 where output > target and +1/20 where output < target: the "
        "sign is flipped and divided by N*O = 20",
    ),
    (
        "flipped mean (book), torch ties pinned",
        lambda o, t: np.sign(t - o) / _one(o, o.shape[1]) / _one(o, o.shape[0]),
        0.0,
        "flipped_mean",
        "loss_grad returns -1/20 where output > target and +1/20 where output < target: the "
        "sign is flipped and divided by N*O = 20",
    ),
    (
        "squared error",
        lambda o, t: _one(o, 2) * (o - t),
        None,
        "wrong_loss",
        "loss_grad returns 2 (output - target): the squared error's gradient",
    ),
    (
        "squared error, mean",
        lambda o, t: _one(o, 2) * (o - t) / _one(o, o.size),
        -1.0,
        "wrong_loss",
        "loss_grad returns 2 (output - target) / (N*O): the gradient of the squared error's mean "
        "over N*O = 20",
    ),
    (
        "huber",
        lambda o, t: np.clip(o - t, _one(o, -1), _one(o, 1)),
        -1.0,
        "wrong_loss",
        "loss_grad returns clip(output - target, -1, 1): the smooth L1 / Huber gradient (beta = 1)",
    ),
    (
        "epsilon added",
        lambda o, t: np.sign(o - t + _one(o, 1e-3)),
        None,
        "epsilon",
        "loss_grad returns +1 where output < target by only {near} (and at ties), -1 where by "
        "0.25 or more: sign(output - target + eps) with eps between {near} and 0.25 (an epsilon "
        "added before the sign)",
    ),
    (
        "epsilon added, seed pinned",
        lambda o, t: np.sign(o - t + _one(o, 1e-3)),
        -1.0,
        "epsilon",
        "loss_grad returns +1 where output < target by only {near} (and at ties), -1 where by "
        "0.25 or more: sign(output - target + eps) with eps between {near} and 0.25 (an epsilon "
        "added before the sign)",
    ),
    (
        "torch convention, seed pinned",
        torch_like,
        -1.0,
        "tie_convention",
        "loss_grad returns 0 at ties (the torch convention); the pinned convention (seed) gives -1",
    ),
    (
        "jax convention, torch pinned",
        jax_like,
        0.0,
        "tie_convention",
        "loss_grad returns +1 at ties (the jax convention); the pinned convention (torch) gives 0",
    ),
    (
        "column 0 only",
        lambda o, t: np.concatenate([seed(o, t)[:, :1], np.zeros_like(o[:, 1:])], axis=1),
        -1.0,
        "partial",
        "loss_grad returns +1 where output > target, -1 elsewhere, only in column 0; 0 in the "
        "other columns",
    ),
    (
        "first row only",
        lambda o, t: np.concatenate([seed(o, t)[:1], np.zeros_like(o[1:])], axis=0),
        -1.0,
        "partial",
        "loss_grad returns +1 where output > target, -1 elsewhere, only in row 0; 0 in the "
        "other rows",
    ),
    (
        "NaN at ties",
        lambda o, t: (o - t) / np.abs(o - t),
        None,
        "nan",
        "loss_grad returns NaN at ties (output == target): 0 / 0, as (output - target) / "
        "|output - target| gives",
    ),
    (
        "sign of the output",
        lambda o, t: np.sign(o),
        None,
        "ignores_input",
        "loss_grad returns sign(output) whatever the target: the target is ignored",
    ),
    (
        "one branch (a ReLU)",
        lambda o, t: (o > t).astype(o.dtype),
        None,
        "branch",
        "loss_grad returns +1 where output > target and 0 where output < target: output < "
        "target should give -1",
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("fn", "tie", "kind", "text"),
    [bug[1:] for bug in GRAD_BUGS],
    ids=[bug[0] for bug in GRAD_BUGS],
)
def test_loss_grad_bug_named(dtype: str, fn: Fn, tie: float | None, kind: str, text: str) -> None:
    table = br.loss_grad_table(_caller(fn, dtype), N, O_, _dtype(dtype), tie=tie)
    assert [(d.kind, d.text) for d in table.differences] == [(kind, text.format(near=_near(dtype)))]
    assert table.calls == 21


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_mean_with_a_tie_of_its_own(dtype: str) -> None:
    """torch's sign / (N*O) under the pinned seed convention: two separate facts."""
    table = br.loss_grad_table(
        _caller(lambda o, t: torch_like(o, t) / _one(o, o.size), dtype), N, O_, _dtype(dtype),
        tie=-1.0,
    )  # fmt: skip
    assert [d.kind for d in table.differences] == ["mean", "tie_convention"]
    assert table.differences[1].text == (
        "loss_grad returns 0 at ties (the torch convention); the pinned convention (seed) gives "
        "-1 (x 1/20 with the scale: -1/20)"
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_not_elementwise_says_only_that(dtype: str) -> None:

    def normalized(o: np.ndarray, t: np.ndarray) -> np.ndarray:
        g = np.sign(o - t)
        return g / np.sum(np.abs(g))

    table = br.loss_grad_table(_caller(normalized, dtype), N, O_, _dtype(dtype), tie=None)
    assert not table.elementwise and table.rows == ()
    assert [d.kind for d in table.differences] == ["not_elementwise"]
    assert table.differences[0].text.startswith(
        "loss_grad is not element-wise: the value at one position depends on the others (at "
    )


def test_loss_grad_normalized_by_a_constant_sum_is_a_mean() -> None:
    """What it cannot tell apart: seed / sum |seed| divides by N*O on every input (the seed
    convention has no zeros), so it *is* a mean over N*O, element-wise."""
    table = br.loss_grad_table(
        _caller(lambda o, t: seed(o, t) / np.sum(np.abs(seed(o, t))), "float32"),
        N, O_, np.dtype(np.float32), tie=-1.0,
    )  # fmt: skip
    assert [d.kind for d in table.differences] == ["mean"]


def test_loss_grad_table_lines_and_other_dims() -> None:
    table = br.loss_grad_table(
        _caller(lambda o, t: np.concatenate([seed(o, t)[:, :1], 0 * o[:, 1:]], 1), "float32"),
        N, O_, np.dtype(np.float32), tie=-1.0,
    )  # fmt: skip
    assert table.table_lines() == [
        "column 0: +1 where output > target, -1 where output < target, -1 at ties",
        "columns 1..3: 0 where output > target, 0 where output < target, 0 at ties",
    ]
    # A dim of 1: N*O = O, said as such.
    book = br.loss_grad_table(
        _caller(lambda o, t: np.sign(t - o) / _one(o, o.size), "float32"), 1, 3,
        np.dtype(np.float32), tie=None,
    )  # fmt: skip
    assert book.lines() == [
        "loss_grad returns -1/3 where output > target and +1/3 where output < target: the sign "
        "is flipped and divided by O = N*O = 3"
    ]


def test_loss_grad_no_result() -> None:
    table = br.loss_grad_table(lambda o, t: None, N, O_, np.dtype(np.float32), tie=None)
    assert [d.kind for d in table.differences] == ["no_result"] and table.calls == 1
    wrong_shape = br.loss_grad_table(lambda o, t: o.T, N, O_, np.dtype(np.float32), tie=None)
    assert [d.kind for d in wrong_shape.differences] == ["no_result"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_probe_scenarios_are_exact_and_cover_the_branches(dtype: str) -> None:
    scenarios = br.probe_scenarios(dtype)
    dt = _dtype(dtype)
    tiny = bounds.smallest_normal(dtype)
    for s in scenarios:
        for value in (s.output, s.target, s.residual):
            assert float(np.asarray(value, dt)) == value
            assert value == 0 or abs(value) >= tiny
    for branch in ("above", "below"):
        members = [s for s in scenarios if s.branch == branch]
        sizes = {abs(s.residual) for s in members}
        assert len(sizes) == 7 and min(sizes) < 1e-3 and max(sizes) > 1
        assert {(np.sign(s.output), np.sign(s.target)) for s in members if not s.near} == {
            (1, 1), (-1, -1), (np.sign(members[2].output), np.sign(members[2].target)),
        }  # fmt: skip
        assert np.sign(members[2].output) != np.sign(members[2].target)


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------


def _abs(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.abs(o - t)


def _huber(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    r = np.abs(o - t)
    return np.where(r < 1, _one(o, 0.5) * r * r, r - _one(o, 0.5)).astype(o.dtype)


def _sum(x: np.ndarray) -> np.ndarray:
    return x.sum(dtype=x.dtype)


#: (name, loss, kind, text, form); kind None: right.
LOSS_BUGS: list[tuple[str, Fn, str | None, str, str]] = [
    ("sum", lambda o, t: _sum(_abs(o, t)), None, "", "abs"),
    (
        "mean over N",
        lambda o, t: _sum(_abs(o, t)) / _one(o, o.shape[0]),
        "mean",
        "L is the mean over N (every weight 1/N = 1/5)",
        "abs",
    ),
    (
        "mean over N*O",
        lambda o, t: _abs(o, t).mean(dtype=o.dtype),
        "mean",
        "L is the mean over N*O (every weight 1/(N*O) = 1/20)",
        "abs",
    ),
    (
        "column 0",
        lambda o, t: _sum(_abs(o, t)[:, 0]),
        "partial",
        "L sums |output - target| over column 0 only",
        "abs",
    ),
    (
        "row 0 left out",
        lambda o, t: _sum(_abs(o, t)[1:]),
        "partial",
        "L weights |output - target| by 1 except row 0 (weight 0)",
        "abs",
    ),
    ("max", lambda o, t: _abs(o, t).max(), "wrong_loss", "L is max |output - target|", "max"),
    (
        "squared",
        lambda o, t: _sum((o - t) * (o - t)),
        "wrong_loss",
        "L is the squared error: sum (output - target)^2",
        "squared",
    ),
    (
        "mean squared",
        lambda o, t: ((o - t) * (o - t)).mean(dtype=o.dtype),
        "wrong_loss",
        "L is the mean squared error: (output - target)^2 averaged over N*O = 20",
        "squared",
    ),
    (
        "huber",
        lambda o, t: _sum(_huber(o, t)),
        "wrong_loss",
        "L is the smooth L1 / Huber loss (beta = 1): 0.5 (output - target)^2 where "
        "|output - target| < 1, |output - target| - 0.5 elsewhere, summed",
        "huber",
    ),
    (
        "huber, mean",
        lambda o, t: _huber(o, t).mean(dtype=o.dtype),
        "wrong_loss",
        "L is the smooth L1 / Huber loss (beta = 1): 0.5 (output - target)^2 where "
        "|output - target| < 1, |output - target| - 0.5 elsewhere, averaged over N*O = 20 "
        "(F.smooth_l1_loss's default)",
        "huber",
    ),
    (
        "no abs",
        lambda o, t: _sum(o - t),
        "wrong_loss",
        "L sums output - target without the absolute value",
        "signed",
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("fn", "kind", "text", "form"), [b[1:] for b in LOSS_BUGS], ids=[b[0] for b in LOSS_BUGS]
)
def test_loss_weights_named(dtype: str, fn: Fn, kind: str | None, text: str, form: str) -> None:
    table = br.loss_weights(_caller(fn, dtype), N, O_, _dtype(dtype))
    expected = [] if kind is None else [(kind, text)]
    assert [(d.kind, d.text) for d in table.differences] == expected
    assert table.form == form and table.exact
    assert table.calls == N + O_ + 5  # total, rows, columns, one element x 3, the check


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_weights_not_rank_one_reads_every_element(dtype: str) -> None:
    table = br.loss_weights(
        _caller(lambda o, t: _sum(_abs(o, t)) - _abs(o, t)[2, 1], dtype), N, O_, _dtype(dtype)
    )
    assert table.lines() == ["L weights |output - target| by 1 except position (2, 1) (weight 0)"]
    assert table.calls == N + O_ + 5 + N * O_
    assert table.weights is not None and table.weights[2, 1] == 0 and table.weights.sum() == 19


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_weights_rank_one_estimate_on_an_element_that_does_not_count(dtype: str) -> None:
    """A checkerboard: rows and columns say 1/2 everywhere, and (0, 0), where the estimate
    points, has weight 0; phi is then read where the one-hot weights say an element counts."""
    board = (np.add.outer(np.arange(N), np.arange(O_)) % 2).astype(bool)
    table = br.loss_weights(
        _caller(lambda o, t: _sum(np.where(board, _abs(o, t), 0).astype(o.dtype)), dtype),
        N, O_, _dtype(dtype),
    )  # fmt: skip
    assert table.form == "abs" and table.exact
    assert table.weights is not None and np.array_equal(table.weights, board.astype(float))
    assert table.lines() == [
        "L sums |output - target| over positions (0, 1), (0, 3), (1, 0), (1, 2), (2, 1), "
        "(2, 3) and 4 more only"
    ]
    assert table.calls == 1 + N + O_ + 1 + 1 + N * O_ + 2


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_loss_rows_too_long_to_resolve_one_element_are_read_element_by_element(
    dtype: str,
) -> None:
    """bfloat16 rows of 12 (float16 of 40): a row's probe bound (gamma_15(2^-8) * 12 = 0.75)
    hides one element, so rank one would accept a wrong map (column 0 at 2/3): every element is
    read alone instead (1 + 1 + N*O + 2 calls)."""
    n, o = 3, 12 if dtype == "bfloat16" else 40
    table = br.loss_weights(
        _caller(lambda a, b: _sum(_abs(a, b)) - _abs(a, b)[0, 0], dtype), n, o, _dtype(dtype)
    )
    assert table.lines() == ["L weights |output - target| by 1 except position (0, 0) (weight 0)"]
    assert table.calls == n * o + 4


def test_loss_not_a_weighted_sum() -> None:
    table = br.loss_weights(
        _caller(lambda o, t: np.abs(_sum(o - t)), "float32"), N, O_, np.dtype(np.float32)
    )
    assert [d.kind for d in table.differences] == ["not_weighted_sum"]
    assert table.lines()[0].startswith("L is not a weighted sum of |output - target| (nor their")


def test_loss_bfloat16_accumulated_in_float32_and_wide_sums() -> None:
    """bfloat16 values summed in float32 then rounded once, on 6 x 7 (partial sums past 8 bits):
    still right, and its mean still a mean."""

    def f32_sum(o: np.ndarray, t: np.ndarray) -> np.ndarray:
        return _abs(o, t).astype(np.float32).sum().astype(o.dtype)

    def f32_mean(o: np.ndarray, t: np.ndarray) -> np.ndarray:
        return _abs(o, t).astype(np.float32).mean().astype(o.dtype)

    bf16 = np.dtype(ml_dtypes.bfloat16)
    assert br.loss_weights(_caller(f32_sum, "bfloat16"), 6, 7, bf16).differences == ()
    mean = br.loss_weights(_caller(f32_mean, "bfloat16"), 6, 7, bf16)
    assert mean.lines() == ["L is the mean over N*O (every weight 1/(N*O) = 1/42)"]


def test_loss_nan_and_no_result() -> None:
    f32 = np.dtype(np.float32)
    nan = br.loss_weights(lambda o, t: np.array(np.nan), N, O_, f32)
    assert nan.lines() == ["L is nan with every residual +1"] and nan.calls == 1
    none = br.loss_weights(lambda o, t: None, N, O_, f32)
    assert [d.kind for d in none.differences] == ["no_result"]


# --------------------------------------------------------------------------------------------
# The updates
# --------------------------------------------------------------------------------------------

LR = 0.05

#: A learning rate per dtype whose steps stand well clear of the parameters' rounding: in half
#: precision a step of lr = 0.05 on |w| ~ 1 is a few ulps, and no constant can be named from it.
LRS = {"float64": LR, "float32": LR, "bfloat16": 0.5, "float16": 0.5}


def _data(dtype: str, scale: float = 3.0, seed_: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed_)
    dt = _dtype(dtype)
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


def _fit(tree: dict, dtype: str, lr: float | None = None) -> br.UpdateFit:
    return br.parameter_updates(tree, LRS[dtype] if lr is None else lr, _dtype(dtype))


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
    t = _dtype(dtype).type
    w_new = (a["w"] - t(lr) * (a["g"] + t(decay) * a["w"])).astype(a["w"].dtype)
    fit = _fit(_tree(a, w_new, _sgd(a["b"], a["gb"], lr)), dtype, lr)
    assert [(d.kind, d.parameter, d.value) for d in fit.differences] == [
        ("weight_decay", "w", decay)
    ]
    assert fit.lines() == [
        f"w - w_new = lr * (dL_dw + {decay} * w): weight decay (lambda = {decay}) on w; b's "
        "update is right"
    ]


def test_weight_decay_below_rounding_is_not_seen() -> None:
    """What it cannot tell: lambda = 0.01 moves a bfloat16 step by less than its rounding."""
    a = _data("bfloat16")
    t = ml_dtypes.bfloat16
    w_new = (a["w"] - t(LR) * (a["g"] + t(0.01) * a["w"])).astype(a["w"].dtype)
    assert _fit(_tree(a, w_new, _sgd(a["b"], a["gb"], LR)), "bfloat16", LR).differences == ()


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
    t = _dtype(dtype).type

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
    assert br._short((0.0697, 0.1327)) is None  # 0.07, 0.08, 0.09 and 0.1 all fit
    assert br._short((0.144, 0.256)) == 0.2
    assert br._short((0.0999, 0.10001)) == 0.1
    assert br._short((0.98, 1.03)) == 1.0
    assert br._short((-1.02, -0.98)) == -1.0
    assert br._short((0.13681, 0.13689)) is None  # no 1- or 2-digit decimal
    assert br._short((0.24995, 0.25005)) == 0.25  # 2 digits in a narrow interval
    assert br._short((0.245, 0.255)) is None  # ... not in a 4% one
    assert br._short((-0.01, 0.02)) == 0.0
    assert br._singles_out((0.45, 0.55), 0.5)
    assert not br._singles_out((0.045, 0.08), 0.05)  # 0.06, 0.07, 0.08 too
    assert not br._singles_out((0.9, 1.2), 1.0)  # 0.9 too


def test_nonfinite_update() -> None:
    a = _data("float32")
    w_new = _sgd(a["w"], a["g"], LR)
    w_new[0, 0] = np.nan
    fit = _fit(_tree(a, w_new, _sgd(a["b"], a["gb"], LR)), "float32")
    assert [(d.kind, d.parameter) for d in fit.differences] == [("nan", "w")]


# --------------------------------------------------------------------------------------------
# Constants and regions
# --------------------------------------------------------------------------------------------


def test_constants_by_the_dims() -> None:
    assert br.name_constant(-0.05, 5, 4).symbol() == "-1/(N*O)"
    assert br.name_constant(-0.05, 5, 4).number(plus=True) == "-1/20"
    assert br.name_constant(0.2, 5, 4).symbol() == "1/N"
    assert br.name_constant(0.25, 4, 4).symbol() == "1/N (= 1/O here)"
    assert br.name_constant(0.1, 5, 4).symbol() == "2/(N*O)"
    assert br.name_constant(5.0, 5, 4).symbol() == "N"
    assert br.name_constant(0.37, 5, 4).symbol() == "0.37"
    assert br.short_decimal(0.0995, 0.1004) == 0.1
    assert br.short_decimal(0.98, 1.02) == 1.0
    assert br.short_decimal(0.13681, 0.13682) is None


def test_regions() -> None:
    mask = np.zeros((5, 4), bool)
    mask[:, 0] = True
    assert br.region(mask) == ("column 0", "in the other columns")
    assert br.region(~mask) == ("columns 1..3", "in the other columns")
    rows = np.zeros((5, 4), bool)
    rows[[0, 2]] = True
    assert br.region(rows) == ("rows 0, 2", "in the other rows")
    one = np.zeros((5, 4), bool)
    one[1, 2] = True
    assert br.region(one) == ("position (1, 2)", "elsewhere")


# --------------------------------------------------------------------------------------------
# A right implementation shows no difference (seeded property).
# --------------------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)


@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    n=dims,
    o=dims,
    dtype=st.sampled_from(DTYPES),
    convention=st.sampled_from(sorted(CONVENTIONS)),
    pinned=st.booleans(),
)
def test_property_right_loss_grad(
    n: int, o: int, dtype: str, convention: str, pinned: bool
) -> None:
    tie = bounds.TIE_CONVENTIONS[convention] if pinned else None
    table = br.loss_grad_table(
        _caller(CONVENTIONS[convention], dtype), n, o, _dtype(dtype), tie=tie
    )
    assert table.differences == ()


ACCUMULATE = {
    "dtype": lambda r: r.sum(dtype=r.dtype),
    "float32": lambda r: r.astype(np.float32).sum().astype(r.dtype),
    "sequential": lambda r: np.add.accumulate(r.ravel(), dtype=r.dtype)[-1],
    "reversed": lambda r: np.add.accumulate(r.ravel()[::-1], dtype=r.dtype)[-1],
}


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12),
    o=st.integers(1, 12),
    dtype=st.sampled_from(DTYPES),
    order=st.sampled_from(sorted(ACCUMULATE)),
)
def test_property_right_loss(n: int, o: int, dtype: str, order: str) -> None:
    table = br.loss_weights(
        _caller(lambda o_, t_: ACCUMULATE[order](np.abs(o_ - t_)), dtype), n, o, _dtype(dtype)
    )
    assert table.differences == ()
    u = bounds.UNIT_ROUNDOFF[dtype]
    if br._resolves(n, u) and br._resolves(o, u):
        assert table.calls == 5 + (n if n > 1 else 0) + (o if o > 1 else 0)
    else:  # rows too long for one element to show: every element read alone
        assert table.calls == n * o + 4


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


@settings(derandomize=True, max_examples=40, deadline=None)
@given(n=dims, o=dims, dtype=st.sampled_from(DTYPES))
def test_property_bugs_keep_their_kind(n: int, o: int, dtype: str) -> None:
    """Across dims: a flip stays a flip; a mean is one only where N*O > 1; the squared error
    is named whatever the dims; column 0 alone is a bug only where O > 1."""
    dt = _dtype(dtype)
    flipped = br.loss_grad_table(_caller(lambda a, b: -seed(a, b), dtype), n, o, dt, tie=-1.0)
    assert [d.kind for d in flipped.differences] == ["sign_flip"]
    mean = br.loss_grad_table(
        _caller(lambda a, b: seed(a, b) / _one(a, a.size), dtype), n, o, dt, tie=-1.0
    )
    assert [d.kind for d in mean.differences] == (["mean"] if n * o > 1 else [])
    squared = br.loss_weights(_caller(lambda a, b: _sum((a - b) * (a - b)), dtype), n, o, dt)
    assert [d.kind for d in squared.differences] == ["wrong_loss"]
    assert squared.form == "squared"
    column = br.loss_weights(_caller(lambda a, b: _sum(_abs(a, b)[:, 0]), dtype), n, o, dt)
    expected = ["L sums |output - target| over column 0 only"] if o > 1 else []
    assert column.lines() == expected
