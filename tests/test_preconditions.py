"""A declared precondition on the sides (``multiple_of``, ``--multiple-of``): a kernel that
requires its sides to be multiples of its block passes where it is declared, checked at several
multiples and at the declared tiles' edges that meet it, and fails without it, with a hint that
names the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import verify
from tests import zoo
from verify.oracle.front.cli import main

#: The block of ``BlockedLayer``'s matmul.
BLOCK = 32


def blocked_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a (M, K) @ b (K, N)`` by blocks of ``BLOCK``, as the Triton matmul tutorial's older
    version: partial blocks of M and N are cut to fit (its masks), but K must be whole blocks
    (its ``assert K % BLOCK_SIZE_K == 0``)."""
    m, k = a.shape
    n = b.shape[1]
    assert k % BLOCK == 0, f"K = {k} is not a multiple of BLOCK_SIZE_K = {BLOCK}"
    out = np.empty((m, n), a.dtype)
    for row in range(0, m, BLOCK):
        for column in range(0, n, BLOCK):
            acc = np.zeros((min(BLOCK, m - row), min(BLOCK, n - column)), a.dtype)
            for depth in range(0, k, BLOCK):
                acc += (
                    a[row : row + BLOCK, depth : depth + BLOCK]
                    @ b[depth : depth + BLOCK, column : column + BLOCK]
                )
            out[row : row + BLOCK, column : column + BLOCK] = acc
    return out


class BlockedLayer(zoo.Correct):
    """The layer's three matmuls by ``blocked_matmul``: forward sums over I, grad_x over O,
    grad_w over N, so each requires its own side to be a multiple of 32."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int, int]] = []

    def forward(self, x, w):
        self.shapes.append((x.shape[0], *w.shape))
        return blocked_matmul(x, w)

    def grad_x(self, dL_do, w):
        return blocked_matmul(dL_do, np.ascontiguousarray(w.T))

    def grad_w(self, x, dL_do):
        return blocked_matmul(np.ascontiguousarray(x.T), dL_do)


MATMULS = ["forward", "grad_x", "grad_w"]


def test_a_blocked_kernel_passes_where_its_sides_are_declared() -> None:
    report = verify.check(BlockedLayer, multiple_of=32, max_examples=10, seed=0, repro_dir=None)
    report.raise_on_failure()
    assert report.checked == 9  # every check: its step is composed of the blocked pieces
    header = report.summary().splitlines()[1]
    assert header == (
        "  shapes: N, I, O multiples of 32 (--multiple-of 32): no other shape is checked"
    )
    assert report.to_dict()["options"]["multiple_of"] == 32


def test_it_is_checked_at_several_multiples_and_at_the_tiles_edges_that_meet_them() -> None:
    layer = BlockedLayer()
    verify.check(
        layer,
        functions=["forward"],
        multiple_of=32,
        tile=(64,),
        max_examples=20,
        seed=0,
        repro_dir=None,
        isolate=False,
    ).raise_on_failure()
    shapes = set(layer.shapes)
    assert all(side % 32 == 0 for shape in shapes for side in shape), shapes
    for k in range(3):  # one, two and three blocks in every side
        assert {32, 64, 96} <= {shape[k] for shape in shapes}, k
    # The tile of 64's edges in N: 63 and 64 meet 32 as 64, 65 as 96, 129 as 160 (the
    # fixed edge cases run after a passing search).
    assert {(64, 32, 32), (96, 32, 32), (160, 32, 32)} <= shapes


def test_without_the_declaration_it_fails_and_the_hint_names_the_option() -> None:
    report = verify.check(BlockedLayer, functions=MATMULS, max_examples=10, seed=0, repro_dir=None)
    assert not report.passed
    # Each matmul refuses its own summed side alone: forward I, grad_x O, grad_w N.
    for function, side in (("forward", "I"), ("grad_x", "O"), ("grad_w", "N")):
        verdict = report[function]
        assert verdict.diagnosis == "raised", verdict.lines()
        detail = verdict.detail or ""
        assert "raised AssertionError" in detail and f"(on {side} = 1; it runs where" in detail
        assert (
            "if the kernel requires multiples of a block, declare it: --multiple-of "
            f"{side}=32 (multiple_of='{side}=32'; re-judged under it on N=32, I=96, O=160: it "
            "passes there)"
        ) in detail, detail


class ThreeRowsGradW(zoo.Correct):
    """The notebook's own bug: grad_w sums the first 3 rows (its global num_data), so it
    raises below N = 3 and runs, wrong, on any larger N."""

    def grad_w(self, x, dL_do):
        return sum(np.outer(x[d], dL_do[d]) for d in range(3)).astype(x.dtype)


def test_a_declaration_that_would_only_move_the_failure_is_not_offered() -> None:
    verdict = verify.check(ThreeRowsGradW, functions=["grad_w"], max_examples=10, repro_dir=None)[
        "grad_w"
    ]
    assert verdict.diagnosis == "raised", verdict.lines()
    detail = verdict.detail or ""
    assert "it runs where they are multiples of 8, but its result is wrong there too" in detail
    assert "no declaration makes it pass" in detail
    assert "declare it" not in detail


def test_one_side_declared_leaves_the_others_to_fail() -> None:
    report = verify.check(
        BlockedLayer, functions=MATMULS, multiple_of="I=32", max_examples=10, repro_dir=None
    )
    assert report["forward"].passed, report["forward"].lines()
    assert "--multiple-of I=32,O=32" in (report["grad_x"].detail or "")
    assert "--multiple-of N=32,I=32" in (report["grad_w"].detail or "")


def test_a_call_that_raises_on_any_shape_gets_no_hint() -> None:
    verdict = verify.check(zoo.RaisesGradX, functions=["grad_x"], max_examples=10, repro_dir=None)[
        "grad_x"
    ]
    assert verdict.diagnosis == "raised" and "--multiple-of" not in (verdict.detail or "")


def test_the_command_line_takes_sides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["tests.test_preconditions:BlockedLayer", "--functions", "grad_w,forward"]
    argv += ["--max-examples", "5", "--repro-dir", str(tmp_path)]
    assert main([*argv, "--multiple-of", "i=32, n=32"]) == 0
    out = capsys.readouterr().out
    assert "shapes: N, I multiples of 32 (--multiple-of N=32,I=32)" in out
    assert main([*argv, "--multiple-of", "K=32"]) == 2
    assert "expected a multiple like 32, or sides like N=128,I=32" in capsys.readouterr().err
