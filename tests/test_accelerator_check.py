"""scripts/accelerator_check.py: the dry run end to end on CPU, and the paths a device run takes
when something goes wrong (platform absent, a step over its budget); benchmarks/gpu.py's table."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu
from verify.messages import ExitCode

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "accelerator_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("accelerator_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_dry_run_passes_and_writes_every_result(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = run_script("--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in (
        "platform.txt",
        "tests.log",
        "tests.xml",
        "oracle.log",
        "precision.txt",
        "precision.json",
        "bench.json",
        "bench.md",
        "summary.md",
        "summary.json",
    ):
        assert (out / name).is_file(), (
            f"{name} missing from {sorted(p.name for p in out.iterdir())}"
        )
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["steps"]] == ["tests", "oracle", "precision", "bench"]
    assert all(s["status"] == "ok" for s in summary["steps"]), summary
    assert summary["platform"].startswith("OK ")
    precision = json.loads((out / "precision.json").read_text())
    assert precision["conclusion"].startswith("float32 matmul at default precision behaves as")
    bench = json.loads((out / "bench.json").read_text())
    assert {(r["dtype"], r["n"]) for r in bench["rows"]} == {
        (dtype, n) for dtype in ("bfloat16", "float32") for n in (64, 128)
    }
    assert all(r["step_tflops"] > 0 and r["step_vs_dot"] > 0 for r in bench["rows"])


@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is not None, reason="a TPU runtime is installed here"
)
def test_absent_platform_exits_3_with_one_line(tmp_path: Path) -> None:
    done = run_script("--platform", "tpu", "--out", str(tmp_path), timeout=120)
    assert done.returncode == ExitCode.INCOMPLETE, done.stdout + done.stderr
    line = done.stderr.strip().splitlines()[-1]
    reason = "no TPU: JAX_PLATFORMS=tpu but JAX finds no tpu device"
    assert line.startswith(f"crosscheck: error: {reason}"), line
    assert (tmp_path / "platform.txt").read_text().strip() == line.removeprefix(
        "crosscheck: error: "
    )
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == []


def test_a_step_over_budget_is_reported_not_waited_for(tmp_path: Path) -> None:
    script = load_script()
    command = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"]
    outcome = script.run_step("slow", command, tmp_path, {}, budget=1.0)
    assert outcome.status == "TIMED OUT after 1 s"
    assert outcome.seconds < 15
    failing = script.run_step(
        "bad", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path, {}, 30
    )
    assert failing.status == "FAILED (exit 3)"


def test_bench_table() -> None:
    row = {
        "dtype": "float32",
        "n": 4096,
        "step_seconds": 0.01,
        "step_tflops": 41.2,
        "dot_highest_tflops": 45.0,
        "dot_default_tflops": 300.0,
        "step_vs_dot": 41.2 / 45.0,
    }
    table = gpu.bench_markdown([row], "gpu: NVIDIA H200")
    assert "| float32 | 4096 | 10.00 | 41.20 | 45.00 | 0.92 | 300.00 |" in table
