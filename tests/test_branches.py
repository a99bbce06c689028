"""verify.oracle.explaining._branches: the branch table of loss_grad on hand-built bugs: each bug,
in every dtype where it is visible, gets exactly its own explanation (kind and text), a right
implementation none (a seeded Hypothesis property), and the probes cost what the module
docstring says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.elementwise import DTYPES, O_, Fn, N, as_called, dtype_of, scalar
from verify import bounds
from verify.oracle.explaining import _branches

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
    call = as_called(CONVENTIONS[convention], dtype)
    tie = bounds.TIE_CONVENTIONS[convention]
    pinned = _branches.loss_grad_table(call, N, O_, dtype_of(dtype), tie=tie)
    free = _branches.loss_grad_table(call, N, O_, dtype_of(dtype), tie=None)
    assert pinned.differences == free.differences == ()
    assert pinned.lines() == []
    assert pinned.calls == free.calls == 21  # K = 19 scenarios + 2 element-wise checks
    assert pinned.elementwise and len(pinned.rows) == 1


def _near(dtype: str) -> str:
    return f"{2.0 ** _branches._NEAR_EXPONENT[dtype]:.3g}"


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
        lambda o, t: seed(o, t) / scalar(o, o.size),
        -1.0,
        "mean",
        "loss_grad returns +1/20 where output > target and -1/20 where output < target: every "
        "value x 1/(N*O) = 1/20 (a mean over N*O)",
    ),
    (
        "mean over N",
        lambda o, t: torch_like(o, t) / scalar(o, o.shape[0]),
        None,
        "mean",
        "loss_grad returns +1/5 where output > target and -1/5 where output < target: every "
        "value x 1/N = 1/5 (a mean over N)",
    ),
    (
        # The from-scratch book's np.sign(y_true - y_pred) / outputs / samples: one explanation.
        "flipped mean (book)",
        lambda o, t: np.sign(t - o) / scalar(o, o.shape[1]) / scalar(o, o.shape[0]),
        None,
        "flipped_mean",
        "loss_grad returns -1/20 where output > target and +1/20 where output < target: the "
        "sign is flipped and divided by N*O = 20",
    ),
    (
        "flipped mean (book), torch ties pinned",
        lambda o, t: np.sign(t - o) / scalar(o, o.shape[1]) / scalar(o, o.shape[0]),
        0.0,
        "flipped_mean",
        "loss_grad returns -1/20 where output > target and +1/20 where output < target: the "
        "sign is flipped and divided by N*O = 20",
    ),
    (
        "squared error",
        lambda o, t: scalar(o, 2) * (o - t),
        None,
        "wrong_loss",
        "loss_grad returns 2 (output - target): the squared error's gradient",
    ),
    (
        "squared error, mean",
        lambda o, t: scalar(o, 2) * (o - t) / scalar(o, o.size),
        -1.0,
        "wrong_loss",
        "loss_grad returns 2 (output - target) / (N*O): the gradient of the squared error's mean "
        "over N*O = 20",
    ),
    (
        "huber",
        lambda o, t: np.clip(o - t, scalar(o, -1), scalar(o, 1)),
        -1.0,
        "wrong_loss",
        "loss_grad returns clip(output - target, -1, 1): the smooth L1 / Huber gradient (beta = 1)",
    ),
    (
        "epsilon added",
        lambda o, t: np.sign(o - t + scalar(o, 1e-3)),
        None,
        "epsilon",
        "loss_grad returns +1 where output < target by only {near} (and at ties), -1 where by "
        "0.25 or more: sign(output - target + eps) with eps between {near} and 0.25 (an epsilon "
        "added before the sign)",
    ),
    (
        "epsilon added, seed pinned",
        lambda o, t: np.sign(o - t + scalar(o, 1e-3)),
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
    table = _branches.loss_grad_table(as_called(fn, dtype), N, O_, dtype_of(dtype), tie=tie)
    assert [(d.kind, d.text) for d in table.differences] == [(kind, text.format(near=_near(dtype)))]
    assert table.calls == 21


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_grad_mean_with_a_tie_of_its_own(dtype: str) -> None:
    """torch's sign / (N*O) under the pinned seed convention: two separate facts."""
    table = _branches.loss_grad_table(
        as_called(lambda o, t: torch_like(o, t) / scalar(o, o.size), dtype), N, O_, dtype_of(dtype),
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

    table = _branches.loss_grad_table(
        as_called(normalized, dtype), N, O_, dtype_of(dtype), tie=None
    )
    assert not table.elementwise and table.rows == ()
    assert [d.kind for d in table.differences] == ["not_elementwise"]
    assert table.differences[0].text.startswith(
        "loss_grad is not element-wise: the value at one position depends on the others (at "
    )


def test_loss_grad_normalized_by_a_constant_sum_is_a_mean() -> None:
    """What it cannot tell apart: seed / sum |seed| divides by N*O on every input (the seed
    convention has no zeros), so it *is* a mean over N*O, element-wise."""
    table = _branches.loss_grad_table(
        as_called(lambda o, t: seed(o, t) / np.sum(np.abs(seed(o, t))), "float32"),
        N, O_, np.dtype(np.float32), tie=-1.0,
    )  # fmt: skip
    assert [d.kind for d in table.differences] == ["mean"]


def test_loss_grad_table_lines_and_other_dims() -> None:
    table = _branches.loss_grad_table(
        as_called(lambda o, t: np.concatenate([seed(o, t)[:, :1], 0 * o[:, 1:]], 1), "float32"),
        N, O_, np.dtype(np.float32), tie=-1.0,
    )  # fmt: skip
    assert table.table_lines() == [
        "column 0: +1 where output > target, -1 where output < target, -1 at ties",
        "columns 1..3: 0 where output > target, 0 where output < target, 0 at ties",
    ]
    # A dim of 1: N*O = O, said as such.
    book = _branches.loss_grad_table(
        as_called(lambda o, t: np.sign(t - o) / scalar(o, o.size), "float32"), 1, 3,
        np.dtype(np.float32), tie=None,
    )  # fmt: skip
    assert book.lines() == [
        "loss_grad returns -1/3 where output > target and +1/3 where output < target: the sign "
        "is flipped and divided by O = N*O = 3"
    ]


def test_loss_grad_no_result() -> None:
    table = _branches.loss_grad_table(lambda o, t: None, N, O_, np.dtype(np.float32), tie=None)
    assert [d.kind for d in table.differences] == ["no_result"] and table.calls == 1
    wrong_shape = _branches.loss_grad_table(lambda o, t: o.T, N, O_, np.dtype(np.float32), tie=None)
    assert [d.kind for d in wrong_shape.differences] == ["no_result"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_probe_scenarios_are_exact_and_cover_the_branches(dtype: str) -> None:
    scenarios = _branches.probe_scenarios(dtype)
    dt = dtype_of(dtype)
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
    table = _branches.loss_grad_table(
        as_called(CONVENTIONS[convention], dtype), n, o, dtype_of(dtype), tie=tie
    )
    assert table.differences == ()


ACCUMULATE = {
    "dtype": lambda r: r.sum(dtype=r.dtype),
    "float32": lambda r: r.astype(np.float32).sum().astype(r.dtype),
    "sequential": lambda r: np.add.accumulate(r.ravel(), dtype=r.dtype)[-1],
    "reversed": lambda r: np.add.accumulate(r.ravel()[::-1], dtype=r.dtype)[-1],
}
