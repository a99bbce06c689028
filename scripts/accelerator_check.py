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
    bench.md / bench.json   python -m benchmarks.gpu: verify.step vs jnp.dot at 4096^3 and 8192^3
    summary.md / .json      one line per step: ok / FAILED / TIMED OUT, seconds

Each step runs in its own process with a time budget, so one hung step cannot eat the others'.

Exit status (``verify.messages.ExitCode``): 0 every step ok; 1 a step failed; 3 a step timed out
or the platform is absent (then nothing else runs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
# The repository root first: the check runs from a checkout, installed or not.
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from require_platform import probe  # noqa: E402

from benchmarks.gpu import DRY_SIZES, FULL_SIZES  # noqa: E402
from verify.messages import ExitCode, print_error  # noqa: E402

#: Seconds per step on the device (about 5 minutes in all, with start-up).
BUDGETS = {"tests": 150, "oracle": 45, "precision": 30, "bench": 60}

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
        print_error(platform_line)
        return ExitCode.INCOMPLETE

    env = {**os.environ, "JAX_PLATFORMS": platform}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    python = sys.executable
    # The dry run exercises every step, each on a small job that finishes in seconds on CPU.
    test_args = ["tests/test_precision.py"] if args.dry_run else []
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
                "-m",
                "benchmarks.gpu",
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
    if any(o.status.startswith("FAILED") for o in outcomes):
        return ExitCode.DEFECT
    return ExitCode.OK if all(o.status == "ok" for o in outcomes) else ExitCode.INCOMPLETE


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
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    return check(parse(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
