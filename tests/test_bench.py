"""Smoke tests of the benchmark harness (benchmarks.bench) at tiny sizes: it runs, writes its
table and JSON, and says why a contender is skipped. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench as _bench


def test_quick_run_writes_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sections = ["reference", "oracle", "gpu"]
    page = tmp_path / "docs" / "performance.md"
    page.parent.mkdir()
    prose = "# Performance\n\nProse the bench leaves alone.\n\n"
    page.write_text(prose + "<!-- generated: bench -->\nan earlier run\n<!-- /generated -->\n")
    argv = ["--quick", "--out", str(tmp_path), "--sections", *sections, "--docs", str(page)]
    assert _bench.main(argv) == 0
    printed = capsys.readouterr().out
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert {r["section"] for r in rows} == set(sections)
    exact = next(r for r in rows if r["contender"] == "check_exact(numpy step)")
    assert "bit for bit" in exact["note"]
    assert "### 2. The loop reference" in printed
    assert (tmp_path / "bench.md").read_text() in printed
    # --docs: the page's region holds the same tables, after a line saying how they were made,
    # rendered from the run's JSON beside the page; the prose around it is left as it was.
    text = page.read_text()
    assert text.startswith(prose) and "an earlier run" not in text
    region = _bench.DOCS_REGION.search(text)["body"]
    head, tables = region.strip("\n").split("\n\n", 1)
    assert head.startswith("Written by `python -m benchmarks.bench --quick ")
    assert "load average" in head and "noisy" in head
    assert tables.strip("\n") == (tmp_path / "bench.md").read_text().strip("\n")
    payload = json.loads((page.parent / "generated" / "bench.json").read_text())
    assert region.strip("\n") == _bench.docs_region(payload, None).strip("\n")
    assert not (page.parent / "generated" / "bench.png").exists()  # no step section, no plot


def test_docs_needs_the_pages_region(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nNo region.\n")
    with pytest.raises(SystemExit, match="no <!-- generated: bench -->"):
        _bench.write_docs(page, {"environment": {}, "argv": [], "rows": []}, None)
    assert page.read_text() == "# Performance\n\nNo region.\n"


def test_step_section_times_each_contender_in_its_own_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two contenders keep the smoke test short; the full list is STEP_CONTENDERS.
    monkeypatch.setattr(_bench, "STEP_CONTENDERS", ("verify.step", "numpy"))
    rows = {r.contender: r for r in _bench.step_section([8], rounds=2)}
    assert rows["verify.step"].value > 0 and rows["numpy"].value > 0
    assert rows["verify.step"].extra["compile_ms"] > 0
    assert rows["numpy"].extra["compile_ms"] is None
    assert len(rows["numpy"].extra["samples_ms"]) == 2


def test_torch_rows_say_skipped_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bench, "torch_available", lambda: False)
    monkeypatch.setattr(_bench, "STEP_CONTENDERS", ("numpy", "torch by hand", "torch autograd"))
    rows = _bench.step_section([4], rounds=1)
    notes = {r.contender: r.note for r in rows}
    assert notes["torch by hand"] == notes["torch autograd"] == "skipped: torch not installed"
    assert next(r for r in rows if r.contender == "numpy").value > 0


def test_gpu_section_skips_without_gpu() -> None:
    import jax

    if jax.default_backend() == "gpu":
        pytest.skip("a GPU is present: the section runs for real")
    (row,) = _bench.gpu_section(quick=True)
    assert row.note == "skipped: no GPU"


def test_throughput_child_counts_compiles_per_bucket() -> None:
    """Shape buckets: a trace per bucketed shape, not per shape, so far fewer than examples."""
    from verify._padding import bucket

    cases = _bench.small_cases(12, seed=5)
    shapes = {(x.shape[0], x.shape[1], w.shape[1]) for x, w, *_ in cases}
    buckets = {tuple(bucket(side) for side in shape) for shape in shapes}
    assert len(buckets) * 2 <= len(shapes), "the examples no longer share buckets: reseed"
    import jax

    # The child counts its traces as if fresh; this test's process may have traced some of
    # these shapes already (another test on the same xdist worker).
    jax.clear_caches()
    per_shape = _bench.throughput_child("verify.step (a compile per shape)", 12, seed=5)
    bucketed = _bench.throughput_child("verify.step (shape buckets)", 12, seed=5)
    assert per_shape[0]["traces"] == len(shapes)
    assert bucketed[0]["traces"] == len(buckets)
    # Second pass: the same examples again, nothing left to compile.
    assert per_shape[1]["traces"] == bucketed[1]["traces"] == 0


def test_cross_check_example_raises_outside_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    case = _bench.small_cases(1, seed=3)[0]
    _bench._cross_check_one(case)  # a correct step passes
    import verify

    right = verify.padded_step

    def wrong(x, w, target, lr):
        result = right(x, w, target, lr)
        return result._replace(dL_dw=np.asarray(result.dL_dw) * 2 + 1)

    monkeypatch.setattr(verify, "padded_step", wrong)
    with pytest.raises(AssertionError, match="dL_dw outside its bound"):
        _bench._cross_check_one(case)


def test_interleaved_takes_every_contender_in_turn() -> None:
    order: list[str] = []
    samples = _bench.interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        rounds=3,
        min_batch_seconds=0.0,
    )
    # One calibration call each, then rounds in rotating order.
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert all(len(times) == 3 for times in samples.values())


def test_verdict_section_times_each_family_against_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two families and a missing one keep it short; the full list is FAMILIES.
    families = {
        "numpy": ("examples/numpy_layer.py", None),
        "C (--command)": ("examples/c_layer.c", None),
        "absent": ("examples/numpy_layer.py", "no_such_module_for_crosscheck"),
    }
    monkeypatch.setattr(_bench, "FAMILIES", families)
    rows = {r.case: r for r in _bench.verdict_section(rounds=1, max_examples=3)}
    assert rows["numpy"].ratio == 1.0
    assert rows["numpy"].extra["compiles"] > 0  # distinct calls: what a jitted one compiles
    if _bench.shutil.which("cc") or _bench.shutil.which("gcc") or _bench.shutil.which("clang"):
        assert rows["C (--command)"].value is not None and rows["C (--command)"].value > 0
    assert rows["absent"].value is None and "not installed" in rows["absent"].note


def test_bias_section_times_the_step_with_a_bias_against_its_work() -> None:
    """The baseline's ratio is 1 by construction; every contender is timed and compared."""
    rows = {r.contender: r for r in _bench.bias_section([8], rounds=2)}
    assert list(rows) == list(_bench.BIAS_CONTENDERS)
    assert rows["3 matmuls + column sum"].ratio == 1.0
    assert all(r.value is not None and r.value > 0 and r.ratio is not None for r in rows.values())
    assert all(r.section == "bias" and r.case == "8^3" for r in rows.values())
