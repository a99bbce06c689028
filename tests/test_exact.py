"""Exact mode at size: ``verify.check_exact`` (bit for bit against ``reference.fast``), and
``reference.fast`` itself against the loop reference on small shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import reference
import verify
from tests.conftest import examples
from verify._exact import compare_exact
from verify.strategies import LayerInputs, exact_inputs, exact_layer_inputs, layer_shapes

MODERATE = (512, 512, 512)


@examples(30)
@given(exact_layer_inputs(dtype=np.float64, shapes=layer_shapes(max_size=1 << 12)))
def test_fast_reference_equals_the_loops(case: LayerInputs) -> None:
    """float64 BLAS (any order) == the seed's loops (left to right), bit for bit."""
    mismatches, first = compare_exact(
        reference.fast.step(case.x, case.w, case.target, case.lr),
        reference.step(case.x, case.w, case.target, case.lr),
    )
    assert not any(mismatches.values()), first


def _tf32_exact_step(x, w, target, lr):
    """The step with TF32-rounded matmul inputs: small integers are exact in TF32."""
    from tests.test_bounds import tf32_step

    return tf32_step(x, w, target, lr)


@pytest.mark.parametrize(
    "name",
    ["verify.step", "verify.step[default]", "verify.autodiff_step", "tf32 emulation"],
)
def test_check_exact_at_512_cubed(name: str) -> None:
    step = {
        "verify.step": verify.step,
        "verify.step[default]": lambda *a: verify.step(*a, precision="default"),
        "verify.autodiff_step": verify.autodiff_step,
        "tf32 emulation": _tf32_exact_step,
    }[name]
    report = verify.check_exact(step, MODERATE, seed=3)
    report.raise_for_mismatch()
    assert report.shape == MODERATE


def test_check_exact_catches_a_mean_instead_of_a_sum() -> None:
    def mean_step(x, w, target, lr):
        loss, dL_dx, dL_dw, _ = verify.step(x, w, target, lr)
        dL_dw = np.asarray(dL_dw) / np.float32(x.shape[0])
        return loss, dL_dx, dL_dw, w - np.float32(lr) * dL_dw

    report = verify.check_exact(mean_step, (64, 32, 16), seed=0)
    assert not report.ok
    assert report.mismatches["loss"] == 0 and report.mismatches["dL_dw"] > 0
    with pytest.raises(AssertionError, match="dL_dw"):
        report.raise_for_mismatch()


@pytest.mark.parametrize("name", ["verify.step", "verify.autodiff_step", "reference.fast.step"])
def test_check_exact_with_a_bias_at_512_cubed(name: str) -> None:
    step = {
        "verify.step": verify.step,
        "verify.autodiff_step": verify.autodiff_step,
        "reference.fast.step": reference.fast.step,
    }[name]
    report = verify.check_exact(step, MODERATE, seed=3, bias=True)
    report.raise_for_mismatch()
    assert set(report.mismatches) == set(reference.BiasStepResult._fields)


def test_check_exact_with_a_bias_catches_dL_db_as_a_mean() -> None:
    def mean_bias_step(x, w, b, target, lr):
        loss, dL_dx, dL_dw, dL_db, w_new, _ = verify.step(x, w, b, target, lr)
        dL_db = np.asarray(dL_db) / np.float32(x.shape[0])
        return loss, dL_dx, dL_dw, dL_db, w_new, b - np.float32(lr) * dL_db

    report = verify.check_exact(mean_bias_step, (64, 32, 16), seed=0, bias=True)
    assert report.mismatches["dL_db"] > 0 and report.mismatches["b_new"] > 0
    assert report.mismatches["dL_dw"] == 0 and report.mismatches["loss"] == 0
    with pytest.raises(AssertionError, match="dL_db"):
        report.raise_for_mismatch()


def test_check_exact_without_a_bias_draws_what_it_drew() -> None:
    """The bias comes from a stream of the seed of its own: x, w and the targets' offsets are
    the data without a bias, the targets moved by b."""
    seen: dict[str, tuple] = {}

    def plain(x, w, target, lr):
        seen["plain"] = (x.copy(), w.copy(), target.copy())
        return verify.step(x, w, target, lr)

    def biased(x, w, b, target, lr):
        seen["bias"] = (x.copy(), w.copy(), target - b)
        return verify.step(x, w, b, target, lr)

    verify.check_exact(plain, (8, 5, 3), seed=4).raise_for_mismatch()
    verify.check_exact(biased, (8, 5, 3), seed=4, bias=True).raise_for_mismatch()
    for before, after in zip(seen["plain"], seen["bias"], strict=True):
        np.testing.assert_array_equal(before, after)


def test_check_exact_reports_a_wrong_shape() -> None:
    def transposed(x, w, target, lr):
        loss, dL_dx, dL_dw, w_new = verify.step(x, w, target, lr)
        return loss, np.asarray(dL_dx).T, dL_dw, w_new

    report = verify.check_exact(transposed, (8, 5, 3), seed=0)
    assert report.mismatches["dL_dx"] == 40
    assert report.first == (
        "dL_dx has shape (5, 8), but should be (8, 5) "
        "[step(x: (8, 5), w: (5, 3), target: (8, 3), lr=0.0625)]"
    )


def test_check_exact_needs_a_shape_or_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        verify.check_exact(verify.step)
    with pytest.raises(ValueError, match="not both"):
        verify.check_exact(verify.step, (2, 2, 2), inputs=exact_inputs((2, 2, 2), seed=0))


def test_exact_inputs_at_2048_are_exact() -> None:
    """The 2048^3 data stays inside the float32-exact range (checked, not run here: ~6 s)."""
    from verify.strategies import exact_mode_fits

    assert exact_mode_fits((2048, 2048, 2048), 4, 2.0**-4)
    case = exact_inputs((4, 2048, 3), seed=0)
    assert np.abs(case.x).max() <= 4 and (case.target % 1 == 0.5).all()


def test_the_exact_command_checks_the_step_with_a_bias(capsys: pytest.CaptureFixture) -> None:
    from verify.tools import exact

    assert exact.main(["--size", "16", "--bias"]) == 0
    assert "exact mode (16, 16, 16): bit for bit" in capsys.readouterr().out
