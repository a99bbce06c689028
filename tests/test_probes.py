"""verify.oracle.explaining._probes through the oracle: candidates a minimal counterexample cannot
tell apart are confirmed or withdrawn on probes, a fused step is traced to the piece it follows
from, an error of the oracle's own is exit 3. (That every diagnosis's reproducer fails from a
fresh process while the bug is there is proven on the zoo's own runs, in test_oracle.py.)"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import verify
from tests import zoo
from verify.oracle.explaining import _diagnosis, _patterns
from verify.oracle.explaining._patterns import Diagnosis
from verify.oracle.front.cli import main


class ZeroEverywhere(zoo.Correct):
    """forward that returns zeros: on every probe it fits only an unclear candidate."""

    def forward(self, x, w):
        return np.zeros((x.shape[0], w.shape[1]), x.dtype)


class ScaleBySize(zoo.Correct):
    """forward scaled by a constant that changes with the shape: no probe confirms a scale."""

    def forward(self, x, w):
        return (x @ w) * (1.0 + x.size)


class NoisyWrongShape(zoo.Correct):
    """grad_w of a wrong shape that changes between calls: nothing to weigh as a gradient."""

    def grad_w(self, x, dL_do):
        return np.random.default_rng().standard_normal((3, 7)).astype(x.dtype)


def _verdict(cls: type, function: str, **options) -> verify.FunctionReport:
    report = verify.check(cls, functions=[function], max_examples=15, seed=0, repro_dir=None,
                          **options)  # fmt: skip
    return report[function]


def test_a_scale_on_1x1x1_is_read_on_the_term_map() -> None:
    """2 * (x @ w), shrunk to one element where any constant fits, is read on probes past
    the block edges: every term twice, exactly."""
    verdict = _verdict(zoo.TwiceForward, "forward")
    assert verdict.diagnosis == "scaled", verdict.detail
    assert (verdict.detail or "").startswith("every term x 2 (read on N=130, I=131, O=133")
    assert verdict.probe_calls > 0


def test_a_scale_that_depends_on_the_shape_says_so() -> None:
    """A scale read on the probes that the counterexample's own factor contradicts is said
    with both: no claim a re-run contradicts."""
    verdict = _verdict(ScaleBySize, "forward")
    assert verdict.diagnosis == "scaled", verdict.detail
    assert "depends on the shape" in (verdict.detail or ""), verdict.detail


def test_a_result_that_is_zero_everywhere_is_named_by_its_term_map() -> None:
    assert _verdict(zoo.SkipPartialBlockForward, "forward").diagnosis == "off_by_one"
    verdict = _verdict(ZeroEverywhere, "forward")
    assert verdict.diagnosis == "not_computed", verdict.detail
    assert "no term is computed" in (verdict.detail or "")
    assert verdict.where == "every element, on the probe (N=5, I=3, O=4)"


def test_a_step_is_traced_to_the_piece_it_follows_from() -> None:
    verdict = _verdict(zoo.BiasForward, "step")
    assert verdict.diagnosis == "bias"
    assert (verdict.detail or "").startswith("follows from forward:")


def test_where_the_wrong_elements_are_is_reported() -> None:
    verdict = _verdict(zoo.FlooredGridForward, "forward")
    assert verdict.diagnosis == "unwritten"
    assert re.search(r"rows 128\.\.129 of 130 are never written", verdict.detail or "")


def test_an_error_in_a_pattern_is_exit_3_with_its_traceback_saved(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(context: _patterns.Context):
        raise ZeroDivisionError("inside a pattern")
        yield  # pragma: no cover

    raising = _patterns.Pattern(Diagnosis.SCALED, frozenset({"dL_dw"}), broken)
    monkeypatch.setattr(_diagnosis, "PATTERNS", (raising, *_patterns.PATTERNS))
    argv = ["tests/zoo.py:MeanGradW", "--functions", "grad_w", "--max-examples", "5"]
    assert main([*argv, "--in-process"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: ZeroDivisionError" in err[0], err
    # The line names the file that holds the whole traceback, down to the raising pattern.
    saved = Path(re.search(r"traceback in (\S+\.txt)", err[0]).group(1))  # type: ignore[union-attr]
    assert "in broken" in saved.read_text() and "ZeroDivisionError: inside a pattern" in (
        saved.read_text()
    )
    saved.unlink()


def test_an_internal_value_error_is_never_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A ValueError of the oracle's own (numpy's, matplotlib's) is its defect, exit 3: only a
    CrosscheckError says "nothing was checked" (exit 2)."""

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr("verify.oracle.front._run.write_repro", broken)
    argv = ["tests/zoo.py:MeanGradW", "--functions", "grad_w", "--max-examples", "5"]
    assert main([*argv, "--in-process"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: ValueError: operands" in err[0], err
    Path(re.search(r"traceback in (\S+\.txt)", err[0]).group(1)).unlink()  # type: ignore[union-attr]
    # A bad option is one line, exit 2.
    assert main(["tests/zoo.py:MeanGradW", "--max-examples", "0"]) == 2
    assert capsys.readouterr().err == (
        "crosscheck: error: --max-examples must be an int >= 1, got 0\n"
    )


def test_a_partial_block_of_a_declared_tile_is_met_only_with_the_tile() -> None:
    """A kernel whose block over I is min(512, I) is right on every side up to 257; with
    ``tile=(512,)`` the run meets I = 513 and names the skipped partial block."""
    assert _verdict(zoo.SkipPartialTileForward, "forward").status == "pass"
    verdict = _verdict(zoo.SkipPartialTileForward, "forward", tile=(512,))
    assert verdict.diagnosis == "off_by_one", verdict.detail
    assert "lacks x[n, i] * w[i, o] for i >= 512" in (verdict.detail or ""), verdict.detail


def test_a_failure_writes_a_heatmap_of_its_wrong_elements(tmp_path: Path) -> None:
    """Beside the reproducer, errors.png shows |error| / bound per element: for a grid that
    stops at a block edge, of the probe that showed the rows never written."""
    pytest.importorskip("matplotlib")
    report = verify.check(zoo.FlooredGridForward, functions=["forward"], max_examples=10, seed=0,
                          repro_dir=tmp_path)  # fmt: skip
    verdict = report["forward"]
    assert verdict.picture is not None and verdict.repro is not None
    picture = Path(verdict.picture)
    assert picture == Path(verdict.repro).with_name("errors.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        verdict.where == "rows 128..129 of 130 (the rest right), on the probe (N=130, I=131, O=133)"
    )
    assert f"heatmap: {picture}" in report.summary()


def test_without_matplotlib_the_heatmap_is_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verify.oracle.front._repro import write_heatmap

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    note = write_heatmap(np.ones((2, 2)), tmp_path / "errors.png", "forward")
    assert note.startswith("none (matplotlib is not installed") and not list(tmp_path.iterdir())


def test_two_calls_that_disagree_in_a_wrong_shape_are_nondeterministic() -> None:
    """The accumulation test weighs a difference against the gradient only where the shapes
    match: a result of the wrong shape is no oracle error (no exception is caught for it)."""
    assert _verdict(NoisyWrongShape, "grad_w").diagnosis == "nondeterministic"


def test_probes_meet_a_declared_precondition_and_keep_their_sides_distinct() -> None:
    from verify.oracle.explaining._probes import probe_shape, probe_shapes

    for multiples in ((32, 32, 32), (128, 32, 1)):
        for shape in (None, (1, 1, 1), (256, 64, 3)):
            for data in ("normal", "blocks"):
                for probe in probe_shapes(shape, data, (512,), multiples):
                    assert all(s % m == 0 for s, m in zip(probe, multiples, strict=True)), probe
                n, i, o = probe_shape(shape, data, multiples)
                assert len({n, i, o}) == 3 and n * i != o and n * o != i and i * o != n
    assert probe_shape((1, 1, 1), multiples=(32, 32, 32)) == (64, 96, 32)
    assert probe_shape((1, 1, 1)) == (5, 3, 4)  # no precondition: as before
