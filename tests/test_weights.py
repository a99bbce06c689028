"""verify.oracle.explaining._weights: the weight table of the loss on hand-built bugs: each is
read with its own weights and phi, a right loss shows none (a seeded Hypothesis property)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.elementwise import DTYPES, O_, Fn, N, as_called, dtype_of, scalar
from tests.test_branches import seed
from verify import bounds
from verify.oracle.explaining import _branches, _weights

# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------


def _abs(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.abs(o - t)


def _huber(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    r = np.abs(o - t)
    return np.where(r < 1, scalar(o, 0.5) * r * r, r - scalar(o, 0.5)).astype(o.dtype)


def _sum(x: np.ndarray) -> np.ndarray:
    return x.sum(dtype=x.dtype)


#: (name, loss, kind, text, form); kind None: right.
LOSS_BUGS: list[tuple[str, Fn, str | None, str, str]] = [
    ("sum", lambda o, t: _sum(_abs(o, t)), None, "", "abs"),
    (
        "mean over N",
        lambda o, t: _sum(_abs(o, t)) / scalar(o, o.shape[0]),
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
    table = _weights.loss_weights(as_called(fn, dtype), N, O_, dtype_of(dtype))
    expected = [] if kind is None else [(kind, text)]
    assert [(d.kind, d.text) for d in table.differences] == expected
    assert table.form == form and table.exact
    assert table.calls == N + O_ + 5  # total, rows, columns, one element x 3, the check


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_loss_of_zero_is_nothing_summed(dtype: str) -> None:
    table = _weights.loss_weights(
        as_called(lambda o, t: o.sum() * 0, dtype), N, O_, dtype_of(dtype)
    )
    assert [(d.kind, d.text) for d in table.differences] == [
        ("zero", "L is 0: no |output - target| is summed")
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_weights_not_rank_one_reads_every_element(dtype: str) -> None:
    table = _weights.loss_weights(
        as_called(lambda o, t: _sum(_abs(o, t)) - _abs(o, t)[2, 1], dtype), N, O_, dtype_of(dtype)
    )
    assert table.lines() == ["L weights |output - target| by 1 except position (2, 1) (weight 0)"]
    assert table.calls == N + O_ + 5 + N * O_
    assert table.weights is not None and table.weights[2, 1] == 0 and table.weights.sum() == 19


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_weights_rank_one_estimate_on_an_element_that_does_not_count(dtype: str) -> None:
    """A checkerboard: rows and columns say 1/2 everywhere, and (0, 0), where the estimate
    points, has weight 0; phi is then read where the one-hot weights say an element counts."""
    board = (np.add.outer(np.arange(N), np.arange(O_)) % 2).astype(bool)
    table = _weights.loss_weights(
        as_called(lambda o, t: _sum(np.where(board, _abs(o, t), 0).astype(o.dtype)), dtype),
        N, O_, dtype_of(dtype),
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
    table = _weights.loss_weights(
        as_called(lambda a, b: _sum(_abs(a, b)) - _abs(a, b)[0, 0], dtype), n, o, dtype_of(dtype)
    )
    assert table.lines() == ["L weights |output - target| by 1 except position (0, 0) (weight 0)"]
    assert table.calls == n * o + 4


def test_loss_not_a_weighted_sum() -> None:
    table = _weights.loss_weights(
        as_called(lambda o, t: np.abs(_sum(o - t)), "float32"), N, O_, np.dtype(np.float32)
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
    assert _weights.loss_weights(as_called(f32_sum, "bfloat16"), 6, 7, bf16).differences == ()
    mean = _weights.loss_weights(as_called(f32_mean, "bfloat16"), 6, 7, bf16)
    assert mean.lines() == ["L is the mean over N*O (every weight 1/(N*O) = 1/42)"]


def test_loss_nan_and_no_result() -> None:
    f32 = np.dtype(np.float32)
    nan = _weights.loss_weights(lambda o, t: np.array(np.nan), N, O_, f32)
    assert nan.lines() == ["L is nan with every residual +1"] and nan.calls == 1
    none = _weights.loss_weights(lambda o, t: None, N, O_, f32)
    assert [d.kind for d in none.differences] == ["no_result"]


# --------------------------------------------------------------------------------------------
# A right implementation shows no difference (seeded property).
# --------------------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)


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
    table = _weights.loss_weights(
        as_called(lambda o_, t_: ACCUMULATE[order](np.abs(o_ - t_)), dtype), n, o, dtype_of(dtype)
    )
    assert table.differences == ()
    u = bounds.UNIT_ROUNDOFF[dtype]
    if _weights._resolves(n, u) and _weights._resolves(o, u):
        assert table.calls == 5 + (n if n > 1 else 0) + (o if o > 1 else 0)
    else:  # rows too long for one element to show: every element read alone
        assert table.calls == n * o + 4


@settings(derandomize=True, max_examples=40, deadline=None)
@given(n=dims, o=dims, dtype=st.sampled_from(DTYPES))
def test_property_bugs_keep_their_kind(n: int, o: int, dtype: str) -> None:
    """Across dims: a flip stays a flip; a mean is one only where N*O > 1; the squared error
    is named whatever the dims; column 0 alone is a bug only where O > 1."""
    dt = dtype_of(dtype)
    flipped = _branches.loss_grad_table(
        as_called(lambda a, b: -seed(a, b), dtype), n, o, dt, tie=-1.0
    )
    assert [d.kind for d in flipped.differences] == ["sign_flip"]
    mean = _branches.loss_grad_table(
        as_called(lambda a, b: seed(a, b) / scalar(a, a.size), dtype), n, o, dt, tie=-1.0
    )
    assert [d.kind for d in mean.differences] == (["mean"] if n * o > 1 else [])
    squared = _weights.loss_weights(
        as_called(lambda a, b: _sum((a - b) * (a - b)), dtype), n, o, dt
    )
    assert [d.kind for d in squared.differences] == ["wrong_loss"]
    assert squared.form == "squared"
    column = _weights.loss_weights(as_called(lambda a, b: _sum(_abs(a, b)[:, 0]), dtype), n, o, dt)
    expected = ["L sums |output - target| over column 0 only"] if o > 1 else []
    assert column.lines() == expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("order", "words"),
    [(1, "largest column sum"), (np.inf, "largest row sum"), (None, "Frobenius norm")],
    ids=["ord=1", "ord=inf", "frobenius"],
)
def test_a_matrix_norm_taken_for_the_l1_loss_is_named(dtype: str, order, words: str) -> None:
    """np.linalg.norm of the 2-D residual is a matrix norm, not the sum of |r|: each of the
    three people reach for is read as itself, in every dtype."""
    table = _weights.loss_weights(
        as_called(lambda o, t: np.asarray(np.linalg.norm(o - t, ord=order)), dtype),
        N,
        O_,
        dtype_of(dtype),
    )
    assert [d.kind for d in table.differences] == ["wrong_loss"]
    assert words in table.lines()[0] and table.form == "norm"
