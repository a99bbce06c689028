"""One-shot accelerator check: tests, oracle self-test, precision audit and a step benchmark.

    python scripts/accelerator_check.py                  # on a GPU, at most ~5 minutes
    python scripts/accelerator_check.py --platform tpu   # the same on a TPU
    python scripts/accelerator_check.py --dry-run        # every code path on CPU, small sizes

Run from the repository root with what the project ships (JAX for the platform installed, e.g.
``pip install -e .[test] "jax[cuda12]"``). Everything lands in one folder (``--out``, default
``bench-results/accelerator-check-<UTC time>/``):

    platform.txt            which device JAX found (or why none: then exit 2, nothing else runs)
    tests.log, tests.xml    the test suite, JAX_PLATFORMS pinned (``nox -s gpu``'s tests)
    oracle.log              python -m verify check verify (the oracle's self-test, on the device)
    precision.txt / .json   python -m verify precision
    bench.md / bench.json   verify.step vs jnp.dot at 4096^3 and 8192^3, bfloat16 and float32
    summary.md / .json      one line per step: ok / FAILED / TIMED OUT, seconds

Each step runs in its own process with a time budget, so one hung step cannot eat the others'.
Benchmark: achieved TFLOP/s of ``verify.step`` (three matmuls: 6 N I O flops) against ``jnp.dot``
(2 N I O) at the same size, dtype and precision on the same device; the ratio is step / dot. A
fused step at ratio ~1 runs its matmuls at the device's matmul speed.

Exit status: 0 every step ok, 1 a step failed or timed out, 2 the platform is absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
# The repository root first: the check runs from a checkout, installed or not.
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from require_platform import probe  # noqa: E402

#: Seconds per step on the device (about 5 minutes in all, with start-up).
BUDGETS = {"tests": 150, "oracle": 45, "precision": 30, "bench": 60}

FULL_SIZES = (4096, 8192)
DRY_SIZES = (64, 128)
LABELS = {"cuda": "GPU", "tpu": "TPU", "cpu": "CPU"}


class StepOutcome(NamedTuple):
    name: str
    status: str  # "ok", "FAILED (exit N)", "TIMED OUT after N s"
    seconds: float
    detail: str


def run_step(
    name: str, command: Sequence[str], out: Path, env: dict[str, str], budget: float
) -> StepOutcome:
    """Run ``command`` with its output in ``out/<name>.log``; never longer than ``budget``."""
    log = out / f"{name}.log"
    start = time.perf_counter()
    with log.open("w") as stream:
        stream.write(f"$ {' '.join(command)}\n")
        stream.flush()
        try:
            done = subprocess.run(
                list(command),
                cwd=REPO,
                env=env,
                stdout=stream,
                stderr=subprocess.STDOUT,
                timeout=budget,
                check=False,
            )
            status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            status = f"TIMED OUT after {budget:.0f} s"
    lines = log.read_text().strip().splitlines()
    return StepOutcome(name, status, time.perf_counter() - start, lines[-1] if lines else "")


# ----------------------------------------------------------------------------------------------
# The benchmark (runs in a child process: python scripts/accelerator_check.py --bench-only ...)
# ----------------------------------------------------------------------------------------------


def _time(function: Any, *args: Any, repeats: int, min_seconds: float) -> float:
    """Median seconds of ``function(*args)`` after one warm-up (compile) call."""
    import jax

    jax.block_until_ready(function(*args))
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < 50):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark(sizes: Sequence[int], *, repeats: int, min_seconds: float) -> list[dict[str, Any]]:
    """TFLOP/s of verify.step and jnp.dot at n^3 for bfloat16 and float32 (module docstring)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    import verify

    dot_highest = jax.jit(lambda a, b: jnp.dot(a, b, precision=lax.Precision.HIGHEST))
    dot_default = jax.jit(jnp.dot)
    rows: list[dict[str, Any]] = []
    for dtype in (jnp.bfloat16, jnp.float32):
        for n in sizes:
            kx, kw, kt = jax.random.split(jax.random.key(n), 3)
            x = jax.random.normal(kx, (n, n), dtype)
            w = jax.random.normal(kw, (n, n), dtype)
            target = jax.random.normal(kt, (n, n), dtype)
            step_seconds = _time(
                verify.step, x, w, target, 0.01, repeats=repeats, min_seconds=min_seconds
            )
            dot_seconds = _time(dot_highest, x, w, repeats=repeats, min_seconds=min_seconds)
            default_seconds = _time(dot_default, x, w, repeats=repeats, min_seconds=min_seconds)
            step_tflops = 6 * n**3 / step_seconds / 1e12
            dot_tflops = 2 * n**3 / dot_seconds / 1e12
            rows.append(
                {
                    "dtype": jnp.dtype(dtype).name,
                    "n": n,
                    "step_seconds": step_seconds,
                    "step_tflops": step_tflops,
                    "dot_highest_tflops": dot_tflops,
                    "dot_default_tflops": 2 * n**3 / default_seconds / 1e12,
                    "step_vs_dot": step_tflops / dot_tflops,
                }
            )
            del x, w, target
    return rows


def bench_markdown(rows: Sequence[dict[str, Any]], device: str) -> str:
    lines = [
        f"verify.step vs jnp.dot on {device} (precision HIGHEST for both; step = 6 n^3 flops)",
        "",
        "| dtype | n | step ms | step TFLOP/s | dot TFLOP/s | step / dot | dot (default) TFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['n']} | {r['step_seconds'] * 1e3:.2f} | {r['step_tflops']:.2f} "
            f"| {r['dot_highest_tflops']:.2f} | {r['step_vs_dot']:.2f} "
            f"| {r['dot_default_tflops']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def bench_main(out: Path, sizes: Sequence[int], repeats: int, min_seconds: float) -> int:
    import jax

    device = f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}"
    rows = benchmark(sizes, repeats=repeats, min_seconds=min_seconds)
    (out / "bench.json").write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    table = bench_markdown(rows, device)
    (out / "bench.md").write_text(table)
    print(table)
    return 0


# ----------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------


def default_out() -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return REPO / "bench-results" / f"accelerator-check-{stamp}"


def write_summary(out: Path, platform_line: str, outcomes: Sequence[StepOutcome]) -> None:
    lines = ["# accelerator check", "", f"platform: {platform_line}", ""]
    lines += ["| step | status | seconds | last line |", "|---|---|---|---|"]
    lines += [f"| {o.name} | {o.status} | {o.seconds:.1f} | {o.detail} |" for o in outcomes]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    summary = {"platform": platform_line, "steps": [o._asdict() for o in outcomes]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def check(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_out()
    out.mkdir(parents=True, exist_ok=True)
    platform = "cpu" if args.dry_run else args.platform
    found, platform_line = probe(platform, LABELS.get(platform, platform))
    (out / "platform.txt").write_text(platform_line + "\n")
    print(f"accelerator check -> {out}\nplatform: {platform_line}", flush=True)
    if not found:
        write_summary(out, platform_line, [])
        print(platform_line, file=sys.stderr)
        return 2

    env = {**os.environ, "JAX_PLATFORMS": platform}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    python = sys.executable
    # The dry run exercises every step, each on a small job that finishes in seconds on CPU.
    test_args = ["tests/test_precision_audit.py"] if args.dry_run else []
    sizes = DRY_SIZES if args.dry_run else FULL_SIZES
    steps = [
        (
            "tests",
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--hypothesis-profile=ci",
                f"--junitxml={out / 'tests.xml'}",
                *test_args,
                *args.pytest_args,
            ],
        ),
        (
            "oracle",
            [
                python,
                "-m",
                "verify",
                "check",
                "verify",
                "--max-examples",
                "5" if args.dry_run else "25",
            ],
        ),
        ("precision", [python, "-m", "verify", "precision", "--json", str(out / "precision.json")]),
        (
            "bench",
            [
                python,
                str(Path(__file__).resolve()),
                "--bench-only",
                "--out",
                str(out),
                "--sizes",
                *map(str, sizes),
                "--repeats",
                "2" if args.dry_run else "5",
            ],
        ),
    ]
    outcomes = []
    for name, command in steps:
        outcome = run_step(name, command, out, env, BUDGETS[name] * args.budget_scale)
        outcomes.append(outcome)
        print(
            f"{name:10s} {outcome.status:24s} {outcome.seconds:6.1f} s  {outcome.detail}",
            flush=True,
        )
    precision_log = out / "precision.log"
    if precision_log.exists():
        (out / "precision.txt").write_text(precision_log.read_text())
    write_summary(out, platform_line, outcomes)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python scripts/accelerator_check.py",
        description="Tests, oracle self-test, precision audit and step benchmark on one device.",
    )
    parser.add_argument(
        "--platform",
        default="cuda",
        choices=("cuda", "tpu"),
        help="JAX platform to insist on (default cuda)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, small sizes, a small test selection: every code path, no device",
    )
    parser.add_argument("--out", help="results folder (default bench-results/accelerator-check-*)")
    parser.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        help="multiply every step's time budget (default 1)",
    )
    parser.add_argument("--pytest-args", nargs="*", default=[], help="extra pytest arguments")
    # Internal: the benchmark child process.
    parser.add_argument("--bench-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(FULL_SIZES), help=argparse.SUPPRESS
    )
    parser.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    if args.bench_only:
        if not args.out:
            raise SystemExit("--bench-only needs --out")
        return bench_main(Path(args.out), args.sizes, args.repeats, min_seconds=0.2)
    return check(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
