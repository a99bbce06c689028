"""verify.oracle.explaining._terms: the term map of every (bi)linear result.

A correct candidate's map is the contract's in every dtype and at every edge size, within the
stated budget; each class of bug, built at block edges as a kernel would make it, gets its exact
description; a result that is not (bi)linear gets that verdict and no other claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.oracle.explaining._terms import (
    CONTRACTS,
    DEFAULT_MAX_CALLS,
    TermMap,
    dims_name,
    planned_calls,
    term_map,
)

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float64), np.dtype(np.float32), BF16, np.dtype(np.float16)]
Fn = Callable[[np.ndarray, np.ndarray | None], object]


def as_call(fn: Fn) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray | None]:
    """The oracle's side: the candidate's result as float64, None when it gave none."""

    def call(left: np.ndarray, right: np.ndarray | None) -> np.ndarray | None:
        got = fn(left, right)
        return None if got is None else np.asarray(got, dtype=np.float64)

    return call


def native(dtype: np.dtype) -> bool:
    """float16 matmul in numpy is a slow loop: such candidates compute in float32 and cast
    back, as a user's float16 layer on a CPU does; the others compute in their dtype."""
    return dtype != np.float16


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if native(a.dtype):
        return a @ b
    return (a.astype(np.float32) @ b.astype(np.float32)).astype(a.dtype)


def correct(name: str) -> Fn:
    """The contract's function, written as a user would."""
    return {
        "forward": lambda x, w: matmul(x, w),
        "grad_x": lambda d, w: matmul(d, w.T),
        "grad_w": lambda x, d: matmul(x.T, d),
        "grad_b": lambda d, _: d.astype(np.float32).sum(0).astype(d.dtype),
    }[name]


def sizes_of(n: int, i: int, o: int, name: str) -> dict[str, int]:
    return {"n": n, "o": o} if name == "grad_b" else {"n": n, "i": i, "o": o}


def probe(fn: Fn, name: str, sizes: dict[str, int], dtype=np.float32, **kw) -> TermMap:
    return term_map(as_call(fn), CONTRACTS[name], sizes, dtype, **kw)


def described(found: TermMap) -> list[str]:
    return [d.text for d in found.differences]


# --- a correct candidate is the contract ------------------------------------------------------

SHAPES = [
    (1, 1, 1),
    (1, 7, 1),
    (2, 1, 3),
    (3, 5, 1),
    (127, 128, 129),
    (128, 129, 127),
    (129, 127, 128),
    (257, 5, 257),
    (515, 515, 4),
    (4, 515, 515),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_correct_candidate_is_the_contract(name, shape, dtype):
    sizes = sizes_of(*shape, name)
    found = probe(correct(name), name, sizes, dtype)
    assert found.status == "contract", found.lines()
    assert found.differences == ()
    assert found.calls == planned_calls(CONTRACTS[name], sizes) <= DEFAULT_MAX_CALLS
    k = {"forward": "i", "grad_x": "o", "grad_w": "n", "grad_b": "n"}[name]
    assert found.contracted == sizes[k]
    capped = formula(name, sizes) > DEFAULT_MAX_CALLS - (1 if name == "grad_b" else 4)
    assert (found.covered < found.contracted) == capped


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), BF16], ids=str)
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_correct_candidate_at_sides_515(name, dtype):
    sizes = sizes_of(515, 515, 515, name)
    found = probe(correct(name), name, sizes, dtype)
    assert found.status == "contract", found.lines()
    linear = name == "grad_b"
    # 1 zero probe + count + digits of 515 + digits of 515^2 (none for grad_b) + verification
    assert found.calls == 1 + 1 + 3 + (0 if linear else 5) + 1
    assert found.covered == 515


def test_the_bias_is_the_expected_offset():
    b = np.array([0.0, 1.0, 2.0, 3.0, -1.0])
    found = probe(
        lambda x, w: x @ w + b.astype(x.dtype), "forward", sizes_of(7, 6, 5, ""), offset=b
    )
    assert found.status == "contract", found.lines()
    assert found.lines()[0].startswith("output[n, o] = sum_i x[n, i] * w[i, o] + b[o]: ")


def tf32(a: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32's 10 stored mantissa bits (ties away: close enough here)."""
    bits = a.astype(np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def bf16_accumulate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A float32 matmul whose running sum is rounded to bfloat16 after every product."""
    acc = np.zeros((a.shape[0], b.shape[1]), BF16)
    for k in range(a.shape[1]):
        acc = (acc.astype(np.float32) + np.outer(a[:, k], b[k])).astype(BF16)
    return acc.astype(np.float32)


@pytest.mark.parametrize(
    "inner",
    [
        lambda a, b: a.astype(BF16).astype(np.float32) @ b.astype(BF16).astype(np.float32),
        lambda a, b: tf32(a) @ tf32(b),
        bf16_accumulate,
    ],
    ids=["bf16-inputs", "tf32-inputs", "bf16-accumulation"],
)
def test_float32_candidates_that_round_inside_are_exact(inner):
    for name, fn in {
        "forward": lambda x, w: inner(x, w),
        "grad_x": lambda d, w: inner(d, w.T),
        "grad_w": lambda x, d: inner(x.T, d),
    }.items():
        found = probe(fn, name, sizes_of(130, 129, 131, name))
        assert found.status == "contract", found.lines()


# --- bugs at block edges ----------------------------------------------------------------------


def blocked(a: np.ndarray, b: np.ndarray, tile: int, bug: str) -> np.ndarray:
    """a @ b by a K loop of ``tile``-sized blocks, with one of a kernel's bugs:
    ``skip`` the partial last block, ``misread`` it from block 0 of b, add the first block's
    partial sum ``twice``."""
    size = a.shape[1]
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        rows = b[start:stop]
        if stop - start < tile and bug == "skip":
            continue
        if stop - start < tile and bug == "misread":
            rows = b[: stop - start]
        out += a[:, start:stop].astype(np.float32) @ rows.astype(np.float32)
        if start == 0 and bug == "twice":
            out += a[:, start:stop].astype(np.float32) @ rows.astype(np.float32)
    return out


def kernel(name: str, tile: int, bug: str) -> Fn:
    return {
        "forward": lambda x, w: blocked(x, w, tile, bug),
        "grad_x": lambda d, w: blocked(d, w.T, tile, bug),
        "grad_w": lambda x, d: blocked(x.T, d, tile, bug),
        "grad_b": lambda d, _: blocked(np.ones((1, d.shape[0])), d, tile, bug)[0],
    }[name]


#: the contracted label, the result's description, the product
PARTS = {
    "forward": ("i", "output[n, o]", "x[n, i] * w[i, o]"),
    "grad_x": ("o", "dL_dx[n, i]", "dL_do[n, o] * w[i, o]"),
    "grad_w": ("n", "dL_dw[i, o]", "x[n, i] * dL_do[n, o]"),
    "grad_b": ("n", "dL_db[o]", "dL_do[n, o]"),
}

#: a K of two full blocks and a partial one, per tile (tile 512: 512 + 3)
EDGES = {16: 35, 32: 70, 64: 130, 128: 257, 512: 515}


def edge_sizes(name: str, size: int) -> dict[str, int]:
    """The contracted label at ``size``, the sparse operand's free label at least as large
    (one pattern), the remaining label small."""
    return {
        "forward": sizes_of(size, size, 3, name),
        "grad_x": sizes_of(size, 3, size, name),
        "grad_w": sizes_of(size, size, 3, name),
        "grad_b": sizes_of(size, 0, size, name),
    }[name]


@pytest.mark.parametrize("tile", list(EDGES))
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_k_loop_that_skips_the_partial_last_block(name, tile):
    size = EDGES[tile]
    k, result, product = PARTS[name]
    full = size - size % tile
    found = probe(kernel(name, tile, "skip"), name, edge_sizes(name, size))
    assert described(found) == [f"{result} lacks {product} for {k} >= {full}"]
    assert found.status == "decoded"
    assert found.differences[0].kind == "missing"
    assert found.differences[0].fraction == pytest.approx((size - full) / size)


@pytest.mark.parametrize("tile", list(EDGES))
@pytest.mark.parametrize("name", ["forward", "grad_x", "grad_w"])
def test_a_partial_last_block_that_reads_the_first_block_of_the_right_operand(name, tile):
    size = EDGES[tile]
    full = size - size % tile
    found = probe(kernel(name, tile, "misread"), name, edge_sizes(name, size))
    text = {
        "forward": f"x[n, i] is paired with w[i - {full}, o] for i >= {full}",
        "grad_x": f"dL_do[n, o] is paired with w[i, o - {full}] for o >= {full}",
        "grad_w": f"x[n, i] is paired with dL_do[n - {full}, o] for n >= {full}",
    }[name]
    assert described(found) == [text]
    assert found.differences[0].kind == "misplaced"


@pytest.mark.parametrize("tile", list(EDGES))
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_split_k_sum_that_adds_the_first_partial_twice(name, tile):
    k = PARTS[name][0]
    found = probe(kernel(name, tile, "twice"), name, edge_sizes(name, EDGES[tile]))
    assert described(found) == [f"the terms {k} < {tile} are added twice"]
    assert found.differences[0].kind == "extra"
    assert found.differences[0].value == 2


@pytest.mark.parametrize("tile", [16, 32, 64, 128, 512])
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_rows_past_the_last_full_block_zeroed(name, tile):
    """The result's first axis (forward: n, grad_w: i, grad_b: its only one) in blocks."""
    size = EDGES[tile]
    full = size - size % tile
    sizes = {
        "forward": sizes_of(size, 9, 5, name),
        "grad_x": sizes_of(size, 5, 9, name),
        "grad_w": sizes_of(9, size, 5, name),
        "grad_b": sizes_of(9, 0, size, name),
    }[name]

    def fn(left, right):
        got = np.array(correct(name)(left, right), np.float32)
        got[full:] = 0
        return got

    _, result, product = PARTS[name]
    row = result[result.index("[") + 1]
    found = probe(fn, name, sizes)
    assert described(found) == [f"{result} lacks {product} for {row} >= {full}"]


def test_columns_past_the_last_full_block_zeroed():
    def fn(x, w):
        got = x @ w
        got[:, 128:] = 0
        return got

    found = probe(fn, "forward", sizes_of(9, 129, 130, ""))
    assert described(found) == ["output[n, o] lacks x[n, i] * w[i, o] for o >= 128"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_stray_constant(name, dtype):
    def fn(left, right):
        got = correct(name)(left, right)
        return got + np.asarray(0.1, got.dtype)

    found = probe(fn, name, sizes_of(130, 129, 131, name), dtype)
    assert described(found) == ["+0.1 on every element"]
    assert found.differences[0].kind == "offset"
    assert found.differences[0].value == pytest.approx(0.1, rel=1e-2)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_half_of_every_term(name, dtype):
    def fn(left, right):
        got = correct(name)(left, right)
        return got * np.asarray(0.5, got.dtype)

    found = probe(fn, name, sizes_of(130, 129, 131, name), dtype)
    assert described(found) == ["every term x 0.5"]
    assert found.differences[0].kind == "scaled"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_the_sign_flipped_and_divided_by_n_times_o(name, dtype):
    sizes = sizes_of(130, 64, 9, name)

    def fn(left, right):
        got = np.asarray(correct(name)(left, right), np.float32)
        return (-got / np.float32(130 * 9)).astype(dtype)

    found = probe(fn, name, sizes, dtype)
    assert described(found) == ["every term x -1/(N*O)"]
    assert found.differences[0].value == pytest.approx(-1 / (130 * 9), rel=2**-7)


@pytest.mark.parametrize("dtype", [np.dtype(np.float64), np.dtype(np.float32)], ids=str)
def test_a_weight_a_rounding_away_from_one_is_not_written_one(dtype):
    """Exact probes see a weight 1 + 2^-20; its text shows the digits that tell it from 1."""
    found = probe(
        lambda x, w: (x @ w) * dtype.type(1 + 2**-20), "forward", sizes_of(7, 6, 5, ""), dtype
    )
    assert described(found) == ["every term x 1.000001"]


def test_a_stray_constant_inside_a_bfloat16_float32_candidate():
    """float32 operands, a bfloat16 kernel that adds 0.1 in bfloat16: the probes' integers stay
    exact, the inexact 0.1 is read within its rounding."""

    def fn(x, w):
        inner = (x.astype(BF16).astype(np.float32) @ w.astype(BF16).astype(np.float32)).astype(BF16)
        return (inner + BF16.type(0.1)).astype(np.float32)

    found = probe(fn, "forward", sizes_of(130, 129, 9, ""))
    assert described(found) == ["+0.1 on every element"]


def test_noise_is_not_linear():
    """A candidate that adds fresh noise on every call: the exact reads see it."""
    rng = np.random.default_rng(0)
    found = probe(
        lambda x, w: x @ w + 1e-4 * rng.normal(size=(x.shape[0], w.shape[1])),
        "forward",
        sizes_of(70, 70, 5, ""),
    )
    assert found.status == "not_linear"
    assert described(found) == [f"{NOT_LINEAR}: it changes with x while w is 0"]


def test_a_mean_for_the_bias_gradient():
    found = probe(lambda d, _: d.sum(0) / d.shape[0], "grad_b", sizes_of(130, 0, 129, ""))
    assert described(found) == ["every term x 1/N"]


def test_a_bias_gradient_never_computed():
    found = probe(lambda d, _: np.zeros(d.shape[1], d.dtype), "grad_b", sizes_of(70, 0, 9, ""))
    assert found.status == "decoded"
    assert described(found) == ["no term is computed: dL_db is all zeros"]
    assert found.differences[0].kind == "zero"


B = np.array([1.0, -2.0, 0.0, 3.0, 2.0, -1.0, 1.0, 1.0, 2.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("fn", "text"),
    [
        (lambda x, w: matmul(x, w), "output lacks the offset b[o]"),
        (lambda x, w: matmul(x, w) + (2 * B).astype(x.dtype), "b[o] is added twice"),
        (lambda x, w: matmul(x, w) + (B + 1).astype(x.dtype), "+1 on every element"),
        (
            lambda x, w: matmul(x, w) + np.roll(B, 1).astype(x.dtype),
            "+c[o] per column (c = 1, 3, -2, -3, ...)",
        ),
    ],
    ids=["missing", "twice", "plus-one", "shifted"],
)
def test_the_bias_against_the_expected_offset(fn, text, dtype):
    found = probe(fn, "forward", sizes_of(130, 129, 9, ""), dtype, offset=B)
    assert described(found) == [text]
    assert found.differences[0].kind == "offset"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_mean_beside_the_bias(dtype):
    """(x @ w) / N + b: the candidate rounds each weight 1/130 beside b (up to 3). float32 and
    float64 resolve it; bfloat16 and float16 round 3 + d/130 to a step of 2^-6 or 2^-9, a
    step the weight cannot be told through: those elements are not decoded, the column with
    b = 0 is."""

    def fn(x, w):
        mean = np.asarray(matmul(x, w), np.float32) / np.float32(130)
        return (mean + B.astype(np.float32)).astype(dtype)

    found = probe(fn, "forward", sizes_of(130, 64, 9, ""), dtype, offset=B)
    if dtype in (np.float32, np.float64):
        assert described(found) == ["every term x 1/N"]
        return
    assert found.status == "not_decoded"
    assert described(found) == [
        "every term with o = 2 x 1/N",
        "1040 of 1170 probed elements (e.g. output[0, 0]) are not decoded: beside the "
        "constant part the candidate's rounding is coarser than the weight lets a digit be "
        "read",
    ]


def test_grad_x_with_w_untransposed():
    found = probe(lambda d, w: d @ w, "grad_x", sizes_of(64, 48, 48, ""))
    assert described(found) == ["w's indices are swapped: w[o, i] where w[i, o] belongs"]
    assert found.differences[0].kind == "transposed"


def test_forward_with_w_transposed():
    found = probe(lambda x, w: x @ w.T, "forward", sizes_of(130, 129, 129, ""), BF16)
    assert described(found) == ["w's indices are swapped: w[o, i] where w[i, o] belongs"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_grad_w_with_the_rows_of_x_shifted_by_one(dtype):
    """dL_dw = x[1:].T @ dL_do[:-1]: x's row n + 1 is paired with dL_do's row n."""
    found = probe(lambda x, d: matmul(x[1:].T, d[:-1]), "grad_w", sizes_of(130, 131, 5, ""), dtype)
    assert described(found) == [
        "dL_dw[i, o] lacks x[n, i] * dL_do[n, o] for n = 0",
        "x[n, i] is paired with dL_do[n - 1, o] for n >= 1",
    ]


def test_rows_rolled_round_say_the_wrapped_row_by_its_own_relation():
    """dL_dw = np.roll(x, 1, axis=0).T @ dL_do: row n + 1 of dL_do with x's row n, and the last
    row of x with dL_do's first. The wrapped row's relation is its own (n - 129), not one that
    other rows' terms happen to share (a constant 0 written 18 - i fits one probed term)."""
    found = probe(
        lambda x, d: matmul(np.roll(x, 1, axis=0).T, d), "grad_w", sizes_of(130, 131, 133, "")
    )
    assert described(found) == [
        "x[n, i] is paired with dL_do[n + 1, o] for n < 129",
        "x[n, i] is paired with dL_do[n - 129, o] for n >= 129",
    ]


def test_forward_with_the_rows_of_x_shifted():
    def fn(x, w):
        return np.concatenate([x[1:] @ w, np.zeros((1, w.shape[1]), x.dtype)])

    found = probe(fn, "forward", sizes_of(130, 129, 9, ""))
    assert described(found) == [
        "output[n, o] lacks x[n, i] * w[i, o] for n >= 129",
        "output[n, o] sums x[n + 1, i] * w[i, o] (not x[n, i] * w[i, o]) for n < 129",
    ]


def test_columns_reversed():
    found = probe(lambda x, w: (x @ w)[:, ::-1], "forward", sizes_of(70, 70, 33, ""))
    assert described(found) == ["x[n, i] is paired with w[i, O - 1 - o]"]


def test_a_scrambled_w_is_misplaced_in_no_simple_pattern():
    perm = np.random.default_rng(1).permutation(70)
    found = probe(lambda x, w: x @ w[perm], "forward", sizes_of(70, 70, 5, ""))
    moved = int(np.sum(perm != np.arange(70))) * 5
    assert described(found) == [
        f"output[n, o] sums x[n, i] * w[?, o] (? other than the contract's) in no simple "
        f"pattern, on {moved} of 350 probed terms"
    ]


def test_a_conjunction_of_two_bounds():
    """Only the columns from 2 on lose the partial last block: both bounds are named."""

    def fn(x, w):
        got = x @ w
        got[:, 2:] -= x[:, 128:] @ w[128:, 2:]
        return got

    found = probe(fn, "forward", sizes_of(130, 130, 5, ""))
    assert described(found) == ["output[n, o] lacks x[n, i] * w[i, o] for i >= 128 and o >= 2"]


def test_a_bound_the_probes_leave_open_is_stated_as_open():
    """Rows from 64 on lose the terms from 64 on. Each row is probed at one i: row 64 is
    probed at an i < 64, so whether its bound is n >= 64 or n >= 65 the probes cannot say."""

    def fn(x, w):
        got = x @ w
        got[64:] -= x[64:, 64:] @ w[64:]
        return got

    found = probe(fn, "forward", sizes_of(130, 130, 5, ""))
    assert described(found) == [
        "output[n, o] lacks x[n, i] * w[i, o] for n >= 65 (n = 64 undetermined) and i >= 64"
    ]


# --- what the map does not decode -------------------------------------------------------------

NOT_LINEAR = "output is not a (bi)linear map of x and w on the probes"


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda x, w: np.maximum(x @ w, 0), "negating x does not negate it"),
        (lambda x, w: x @ np.maximum(w, 0), "negating w does not negate it"),
        (lambda x, w: x @ w + x[:, : w.shape[1]], "it changes with x while w is 0"),
        (lambda x, w: x @ w + x[:, : w.shape[1]] ** 2, "it changes with x while w is 0"),
        (lambda x, w: x @ w + (w**2).sum(0), "it changes with w while x is 0"),
    ],
    ids=["relu", "relu-w", "plus-x", "plus-x-squared", "plus-w-squared"],
)
def test_a_result_that_is_not_bilinear(fn, why):
    found = probe(fn, "forward", sizes_of(130, 129, 9, ""))
    assert found.status == "not_linear"
    assert described(found) == [f"{NOT_LINEAR}: {why}"]


def test_nan_in_a_region():
    def fn(x, w):
        got = x @ w
        got[128:] = np.nan
        return got

    found = probe(fn, "forward", sizes_of(130, 129, 9, ""))
    assert found.status == "not_linear"
    assert described(found) == [
        f"{NOT_LINEAR}: NaN or inf in 18 of 1170 elements of a probe (n in 128..129 of 130)"
    ]
    assert found.calls == 1


def test_a_call_that_fails():
    found = probe(lambda x, w: None, "forward", sizes_of(3, 4, 5, ""))
    assert found.status == "failed"
    assert described(found) == ["a call failed: no term map of output"]


def test_a_wrong_shape():
    found = probe(lambda x, w: (x @ w).T, "forward", sizes_of(3, 4, 5, ""))
    assert found.status == "failed"
    assert described(found) == ["a call returned shape (5, 3), not (3, 5): no term map"]


def test_a_misread_of_the_sparse_operand_is_not_decoded_where_it_sums_two_products():
    """x's partial last block read from x's first block: each x[n, i < 3] is read twice (two
    products in one element), no x[n, i >= 512] is read. The other design would need 65
    patterns: the map says what it saw and marks the rest not decoded."""

    def fn(x, w):
        return x[:, :512] @ w[:512] + x[:, :3] @ w[512:]

    found = probe(fn, "forward", sizes_of(515, 515, 8, ""))
    assert found.status == "not_decoded"
    assert described(found) == [
        "output[n, o] lacks x[n, i] * w[i, o] for i >= 512",
        "the probed elements with i < 3 (e.g. output[68, 0]) sum more than one product: not "
        "decoded",
    ]
    assert found.calls == planned_calls(CONTRACTS["forward"], sizes_of(515, 515, 8, "")) + 4


def test_a_reading_the_verification_cannot_check_is_not_described():
    """Two patterns (N = 70 < I = 130) share a verification probe: where one pattern's element
    sums two products, the other pattern's reading of that element goes unchecked, and is
    withheld too."""

    def fn(x, w):
        return x[:, :128] @ w[:128] + x[:, :2] @ w[128:]

    found = probe(fn, "forward", sizes_of(70, 130, 3, ""))
    assert found.status == "not_decoded"
    assert described(found) == [
        "output[n, o] lacks x[n, i] * w[i, o] for i >= 128",
        "the probed elements with i < 2 (e.g. output[24, 0]) sum more than one product: not "
        "decoded",
        "the probed elements with 70 <= i < 72 (e.g. output[24, 0]) are not verified (their "
        "element is not decoded in another pattern of the same verification probe): not "
        "described",
    ]


def test_the_other_design_decodes_a_misread_of_the_sparse_operand():
    """At (130, 130, 130) both designs cost one pattern: x sparse reads x's misread as two
    products; w sparse reads it as one, which is kept."""

    def fn(x, w):
        return x[:, :128] @ w[:128] + x[:, :2] @ w[128:]

    found = probe(fn, "forward", sizes_of(130, 130, 130, ""))
    assert found.status == "decoded"
    assert described(found) == ["w[i, o] is paired with x[n, i - 128] for i >= 128"]


def test_a_small_result_probes_a_sample_of_k_with_both_ends():
    """Batch 1, one output, K = 515: P is capped; the ends of K are probed, so the partial last
    block still shows, with its first index left open between probed values."""
    sizes = sizes_of(1, 515, 1, "")
    found = probe(lambda x, w: x[:, :512] @ w[:512], "forward", sizes)
    assert found.calls <= DEFAULT_MAX_CALLS
    assert found.covered < 515
    assert described(found) == [
        "output[n, o] lacks x[n, i] * w[i, o] for i >= 512 (i = 411..511 undetermined)"
    ]
    assert "i probed at 10 of its 515 values" in found.lines()[0]


# --- budget -----------------------------------------------------------------------------------


def formula(name: str, sizes: dict[str, int]) -> int:
    """The docstring's budget, for the cheaper design, uncapped."""
    contract = CONTRACTS[name]
    inputs, result = contract.spec.split("->")
    left, _, right = inputs.partition(",")

    def digits(count: int) -> int:
        return 0 if count <= 1 else len(np.base_repr(count - 1, 16))

    costs = []
    for sparse, dense in ((left, right), (right, left)) if right else ((left, ""),):
        k = next(label for label in sparse if label not in result)
        free = next(label for label in sparse if label in result)
        patterns = math.ceil(sizes[k] / sizes[free])
        dense_digits = digits(math.prod(sizes[label] for label in dense)) if dense else 0
        per = 1 + digits(sizes[free]) + dense_digits
        costs.append(patterns * per + math.ceil(patterns / 4))
    return 1 + min(costs)


@pytest.mark.parametrize("shape", [*SHAPES, (130, 131, 133), (515, 515, 515)], ids=str)
@pytest.mark.parametrize("name", list(CONTRACTS))
def test_the_budget_formula(name, shape):
    sizes = sizes_of(*shape, name)
    uncapped = formula(name, sizes)
    assert planned_calls(CONTRACTS[name], sizes, max_calls=10**6) == uncapped
    planned = planned_calls(CONTRACTS[name], sizes)
    # capped so that the (bi)linearity probes still fit
    checks = 1 if name == "grad_b" else 4
    assert planned == uncapped if uncapped <= DEFAULT_MAX_CALLS - checks else planned < uncapped
    assert planned <= DEFAULT_MAX_CALLS - checks


def test_the_budget_at_the_brief_sizes():
    assert planned_calls(CONTRACTS["forward"], sizes_of(515, 515, 515, "")) == 11
    assert planned_calls(CONTRACTS["forward"], sizes_of(130, 131, 133, "")) == 9
    assert planned_calls(CONTRACTS["forward"], sizes_of(515, 515, 4, "")) == 9


SMALL_SHAPES = [(1, 1, 1), (2, 3, 1), (5, 4, 7), (17, 16, 15), (33, 65, 9), (40, 3, 70)]


@settings(derandomize=True, max_examples=30, deadline=None)
@given(
    name=st.sampled_from(list(CONTRACTS)),
    shape=st.sampled_from(SMALL_SHAPES),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_property_a_correct_candidate_is_the_contract_within_budget(name, shape, dtype, seed):
    sizes = sizes_of(*shape, name)
    found = probe(correct(name), name, sizes, dtype, seed=seed)
    assert found.status == "contract", found.lines()
    assert found.calls == planned_calls(CONTRACTS[name], sizes) <= formula(name, sizes)


# --- naming -----------------------------------------------------------------------------------


def test_name_constant():
    sizes = {"n": 130, "i": 64, "o": 9}
    assert dims_name(-1 / (130 * 9), sizes, 1e-6) == "-1/(N*O)"
    assert dims_name(1 / 130, sizes, 1e-6) == "1/N"
    assert dims_name(130 * 64, sizes, 1e-6) == "N*I"
    assert dims_name(2.0, sizes) == "2"
    assert dims_name(0.5, sizes) == "0.5"
    assert dims_name(0.5, {"n": 2, "o": 3}) == "0.5 (= 1/N)"
    assert dims_name(1 / 3, {"n": 3, "o": 3}, 1e-6) == "1/N or 1/O (the dims are equal)"
    assert dims_name(0.3, sizes) == "0.3"
    assert dims_name(100.0, sizes) == "100"
    assert dims_name(float(np.finfo(np.float32).max), sizes) == "3.4028235e+38"
