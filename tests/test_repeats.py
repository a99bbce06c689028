"""Two calls on one input (``judging._findings.repeated``): correct code whose sums change order
from call to call passes with a note giving the difference in ulps; a difference past what two
results within the bound can differ by is ``nondeterministic``, with its size and where;
``deterministic`` requires bit-identical results; an accumulating gradient is still named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import verify
from tests import zoo
from verify.bounds import Bound
from verify.oracle._diagnoses import Diagnosis
from verify.oracle.front.cli import main
from verify.oracle.judging import Case
from verify.oracle.judging._findings import repeated, ulps
from verify.oracle.judging._search import Searched


class ShuffledSums(zoo.Correct):
    """A correct layer that adds the terms of every sum in a fresh random order on each call
    (as atomics, a split K or micrograd's set-ordered backward do): each result is within the
    bound, two calls differ by a few ulps (by many more where a sum cancels). Seeded, so that a
    run repeats itself: a sum of two terms, or of integers, is the same in any order, and the
    orders decide which cases show a difference."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(2026)

    def forward(self, x, w):
        order = self.rng.permutation(x.shape[1])
        return x[:, order] @ w[order, :]

    def loss(self, output, target):
        terms = np.abs(output - target).ravel()
        return np.sum(terms[self.rng.permutation(terms.size)])

    def grad_x(self, dL_do, w):
        order = self.rng.permutation(w.shape[1])
        return dL_do[:, order] @ w[:, order].T

    def grad_w(self, x, dL_do):
        order = self.rng.permutation(x.shape[0])
        return x[order].T @ dL_do[order]


class SecondCallOff(zoo.Correct):
    """forward whose every second call is 1e-3 too large: far past the bound of float32."""

    def __init__(self) -> None:
        self.calls = 0

    def forward(self, x, w):
        self.calls += 1
        output = x @ w
        return output * np.float32(1 + 1e-3) if self.calls % 2 == 0 else output


SUMS = ["forward", "loss", "grad_x", "grad_w"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sums_in_a_per_call_order_pass_with_the_difference_in_ulps(dtype: str) -> None:
    report = verify.check(
        ShuffledSums, functions=SUMS, dtype=dtype, max_examples=20, seed=0, repro_dir=None
    )
    report.raise_on_failure()
    for function in SUMS:
        note = report[function].note or ""
        found = re.search(
            r"not bitwise reproducible: the two calls differ by up to (\S+) ulp", note
        )
        assert found, (function, note)
        assert float(found[1]) > 0 and note.endswith("within the bound"), note


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deterministic_requires_bit_identical_results(dtype: str) -> None:
    report = verify.check(
        ShuffledSums,
        functions=["forward", "grad_w"],
        dtype=dtype,
        deterministic=True,
        max_examples=20,
        seed=0,
        repro_dir=None,
    )
    for function in ("forward", "grad_w"):
        verdict = report[function]
        assert verdict.diagnosis == "nondeterministic", verdict.lines()
        assert "--deterministic requires bit-identical results" in (verdict.detail or "")
        assert "bit-identical required" in (verdict.message or "")
    assert "deterministic" in report.summary().splitlines()[0]
    assert report.to_dict()["options"]["deterministic"] is True


def test_a_second_call_far_past_the_bound_is_nondeterministic_with_its_size() -> None:
    verdict = verify.check(
        SecondCallOff, functions=["forward"], max_examples=10, seed=0, repro_dir=None
    )["forward"]
    assert verdict.diagnosis == "nondeterministic", verdict.lines()
    # 1e-3 of a float32 value is 2^-10 / 2^-23 ~ 8e3 of its ulps (4e3 to 1.7e4 by where in
    # its binade the value sits).
    size = re.search(r"output differs by up to (\S+) ulp, beyond the bound", verdict.detail or "")
    assert size and 4e3 <= float(size[1]) <= 1.7e4, verdict.detail
    message = verdict.message or ""
    assert re.search(r"on the second call, .* on the first \(apart by at most", message)
    assert verdict.where, verdict.lines()


def test_an_accumulating_gradient_is_still_named_under_either_rule() -> None:
    for deterministic in (False, True):
        verdict = verify.check(
            zoo.AccumulatingGradW,
            functions=["grad_w"],
            deterministic=deterministic,
            max_examples=10,
            seed=0,
            repro_dir=None,
        )["grad_w"]
        assert verdict.diagnosis == "accumulated_gradient", verdict.lines()


def test_the_command_line_takes_deterministic(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    argv = ["tests.test_repeats:ShuffledSums", "--functions", "grad_w", "--max-examples", "5"]
    assert main([*argv, "--repro-dir", str(tmp_path), "--deterministic"]) == 1
    out = capsys.readouterr().out
    assert "(float32, deterministic," in out and "nondeterministic" in out


# --- the pure parts ---------------------------------------------------------------------------


def test_ulps_counts_units_in_the_last_place_of_the_dtype() -> None:
    one = np.array([1.0])
    for dtype, spacing in (("float64", 2.0**-52), ("float32", 2.0**-23), ("bfloat16", 2.0**-7)):
        assert ulps(one, one + spacing, dtype)[0] == 1
        assert ulps(one, one + 3 * spacing, dtype)[0] == 3
    # At the larger magnitude of the two: 2 - 2^-23 and 2 are half an ulp of 2 apart.
    assert ulps(np.array([2.0 - 2.0**-23]), np.array([2.0]), "float32")[0] == 0.5
    tiny = 2.0**-149  # float32's smallest subnormal: its ulp
    assert ulps(np.array([0.0]), np.array([3 * tiny]), "float32")[0] == 3
    pairs = np.array([0.0, np.nan, np.nan, np.inf]), np.array([-0.0, np.nan, 1.0, 1.0])
    assert ulps(*pairs, "float32").tolist() == [0.0, 0.0, np.inf, np.inf]


def _case() -> Case:
    x = np.ones((2, 2), np.float32)
    return Case("forward", {"x": x, "w": x}, shape=(2, 2, 2))


def _bound(radius: float) -> dict[str, Bound]:
    return {"output": Bound(np.full((2, 2), 2.0), np.full((2, 2), radius))}


def test_two_results_may_differ_by_twice_the_radius_and_no_more() -> None:
    first = np.full((2, 2), 2.0, np.float32)
    near = first.copy()
    near[1, 0] = np.nextafter(np.float32(2.0), np.float32(3.0))  # 2^-22 above: 1 ulp
    apart, finding = repeated(_case(), ["output"], [first], [near], _bound(2.0**-23), "float32")
    assert finding is None and apart == 1.0
    apart, finding = repeated(_case(), ["output"], [first], [near], _bound(2.0**-24), "float32")
    assert finding is not None and finding.kind is Diagnosis.NONDETERMINISTIC
    assert finding.ratio == 2.0 and finding.where == "row 1 of 2 x column 0 of 2 (the rest right)"
    assert finding.repeat is not None and finding.repeat[1]["output"] is near  # the evidence
    bitwise = repeated(_case(), ["output"], [first], [near], _bound(1.0), "float32", bitwise=True)
    assert bitwise[1] is not None and bitwise[1].ratio == np.inf


def test_signed_zeros_differ_only_bitwise_and_other_shapes_always() -> None:
    zero = np.zeros((2, 2), np.float32)
    bound = {"output": Bound(np.zeros((2, 2)), np.zeros((2, 2)))}
    assert repeated(_case(), ["output"], [zero], [-zero], bound, "float32") == (0.0, None)
    flipped = repeated(_case(), ["output"], [zero], [-zero], bound, "float32", bitwise=True)
    assert flipped[1] is not None
    other = repeated(_case(), ["output"], [zero], [np.zeros((4,), np.float32)], bound, "float32")
    assert other[1] is not None and "shape (2, 2)" in other[1].detail
    # A result that is no array is check_result's to name.
    assert repeated(_case(), ["output"], ["a list"], [zero], bound, "float32") == (0.0, None)


def test_the_note_says_how_far_apart_two_passing_calls_were() -> None:
    assert Searched(10, 0.5, 0, "", None).note is None
    searched = Searched(10, 0.5, 2, "why", None, apart=2.0)
    assert searched.note == (
        "2 of 10 cases not judged: why; not bitwise reproducible: the two calls differ by up to "
        "2 ulp, within the bound"
    )
