"""The candidate runs in a process of its own: a zoo of hostile and unusual candidates
(``tests/hostile/``, one behaviour each) and command lines, each run as a user would,
``python -m verify check ...`` in a fresh process, gets the exit code and verdict documented
here, never a traceback of the oracle's own code, and leaves no process behind (every process
the run started carries a marker in its environment; the process table is searched for it)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import run_python

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "tests/hostile"


@dataclasses.dataclass(frozen=True)
class Case:
    """A command line, the exit code it must give, and words its output must hold."""

    name: str
    argv: tuple[str, ...]
    exit: int
    words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


def _forward_only(spec: str, *extra: str) -> tuple[str, ...]:
    return (f"{HOSTILE}/{spec}", "--functions", "forward", "--max-examples", "4", *extra)


CASES: tuple[Case, ...] = (
    # Ways to exit: none of them is a pass.
    Case("exit-in-call", _forward_only("exit_in_call.py"), 1, ("diagnosis: raised", "SystemExit")),
    Case(
        "os-exit-in-call",
        _forward_only("os_exit_in_call.py"),
        1,
        ("diagnosis: crashed", "exited with code 0", "forward(x: (1, 1), w: (1, 1))"),
    ),
    Case("exit-at-import", _forward_only("exit_at_import.py"), 2, ("cannot import", "SystemExit")),
    Case(
        "os-exit-at-import",
        _forward_only("os_exit_at_import.py"),
        2,
        ("ended while loading (exited with code 0)",),
    ),
    Case(
        "exit-in-conversion",
        _forward_only("exit_in_conversion.py"),
        1,
        ("diagnosis: raised", "SystemExit"),
    ),
    Case(
        "keyboard-interrupt",
        _forward_only("keyboard_interrupt.py"),
        1,
        ("diagnosis: raised", "KeyboardInterrupt"),
    ),
    # Ways to end without a word: each is a verdict.
    Case(
        "segfault",
        _forward_only("segfault.py"),
        1,
        ("diagnosis: crashed", "SIGSEGV", "minimal counterexample: forward(x: (1, 1), w: (1, 1))"),
    ),
    Case("killed", _forward_only("kills_itself.py"), 1, ("diagnosis: crashed", "SIGKILL")),
    Case(
        "blocks-when-realized",
        _forward_only("blocks_in_conversion.py", "--timeout", "2"),
        1,
        ("diagnosis: timed_out", "did not return within 2 s"),
    ),
    Case(
        "hangs-at-import",
        _forward_only("hang_at_import.py", "--import-timeout", "3"),
        2,
        ("did not load within 3 s",),
    ),
    Case(
        "slow-import-is-not-a-call-timeout",
        _forward_only("slow_at_import.py", "--timeout", "1"),
        0,
        ("all 1 checks passed.",),
    ),
    Case(
        "runaway-allocation",
        _forward_only("runaway_allocation.py", "--memory-limit", "2G"),
        1,
        ("diagnosis: raised", "MemoryError"),
    ),
    # It cannot change the judge.
    Case(
        "patches-the-reference-and-the-judge",
        _forward_only("patches_reference.py"),
        1,
        ("forward     FAIL", "output[0, 0] = 6.0, but should be 3.0"),
    ),
    Case(
        "numpy-set-to-raise",
        (f"{HOSTILE}/numpy_raises.py", "--max-examples", "4", "--exact"),
        0,
        ("all 5 checks passed.",),
    ),
    # What it leaves running does not keep the oracle from ending.
    Case("thread-left-running", _forward_only("thread_left_running.py"), 0, ("all 1 checks",)),
    Case("child-left-running", _forward_only("child_left_running.py"), 0, ("all 1 checks",)),
    Case("noisy", _forward_only("noisy.py"), 0, ("all 1 checks passed.",)),
    # What it returns.
    Case(
        "dict-and-string-results",
        (f"{HOSTILE}/dict_result.py", "--max-examples", "4"),
        1,
        ("forward     FAIL", "loss        FAIL", "diagnosis: wrong_dtype", "dict", "str"),
    ),
    Case(
        "complex-and-infinite-results",
        (f"{HOSTILE}/complex_result.py", "--max-examples", "4"),
        1,
        ("diagnosis: wrong_dtype", "complex64", "diagnosis: nan"),
        ("RuntimeWarning", "ComplexWarning"),
    ),
    Case(
        "signaling-nan",
        (f"{HOSTILE}/signaling_nan.py", "--functions", "forward", "--dtype", "float32"),
        1,
        ("diagnosis: nan",),
        ("RuntimeWarning", "Traceback"),
    ),
    Case(
        "thread-bound-state",
        _forward_only("thread_bound.py"),
        0,
        ("all 1 checks passed.",),
    ),
    # How it is named.
    Case(
        "attribute-raises",
        (f"{HOSTILE}/attribute_raises.py:layer",),
        2,
        ("reading forward of", "RuntimeError: no forward for you"),
    ),
    Case("package-directory", _forward_only("package_layer"), 0, ("all 1 checks passed.",)),
    Case("plain-directory", _forward_only("not_a_package"), 2, ("is a directory",)),
    # Command lines that cannot run: exit 2, one line, before anything runs.
    Case(
        "no-check-named",
        ("examples/numpy_layer.py", "--functions", ","),
        2,
        ("--functions must be a non-empty list of names among forward,",),
    ),
    Case(
        "no-check-applies",
        (f"{HOSTILE}/package_layer", "--functions", "identities"),
        2,
        ("nothing was checked",),
    ),
    Case("infinite-timeout", ("examples/numpy_layer.py", "--timeout", "inf"), 2, ("--timeout",)),
    Case("json-is-a-directory", ("examples/numpy_layer.py", "--json", "tests"), 2, ("--json",)),
    Case(
        "json-under-a-file",
        ("examples/numpy_layer.py", "--json", "README.md/report.json"),
        2,
        ("is not a directory",),
    ),
    Case(
        "repro-dir-is-a-file",
        ("examples/numpy_layer.py", "--repro-dir", "README.md"),
        2,
        ("--repro-dir",),
    ),
    Case("no-spec", (), 2, ("give SPEC or --command",)),
    Case("missing-command", ("--command", "./no-such-program"), 2, ("cannot start",)),
)


def marked_processes(marker: str) -> list[str]:
    """Processes still alive (zombies aside) whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if state != "Z" and marker.encode() in environ:
            found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()!r}")
    return found


def run_check(argv: tuple[str, ...], cwd: Path = ROOT, timeout: float = 240) -> tuple[int, str]:
    """``python -m verify check *argv`` as a user runs it; its exit code and all its output,
    after asserting that nothing it started is still running."""
    marker = f"crosscheck-test-{uuid.uuid4()}"
    done = run_python(
        "-m",
        "verify",
        "check",
        *argv,
        cwd=cwd,
        timeout=timeout,
        env={"CROSSCHECK_TEST_MARKER": marker},
    )
    output = done.stdout + done.stderr
    assert not marked_processes(marker), (marked_processes(marker), output)
    return done.returncode, output


@pytest.fixture(scope="module", autouse=True)
def _on_linux() -> None:
    if not Path("/proc/self/environ").exists():
        pytest.skip("the process-table check reads /proc")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_candidates_get_a_verdict(case: Case, tmp_path: Path) -> None:
    argv = case.argv
    if "--repro-dir" not in argv and argv and not argv[0].startswith("--"):
        argv = (*argv, "--repro-dir", str(tmp_path / "repro"))
    code, output = run_check(argv)
    assert code == case.exit, output
    assert "Traceback (most recent call last)" not in output, output
    for words in case.words:
        assert words in output, output
    for words in case.absent:
        assert words not in output, output
    if case.exit == 2:
        errors = [line for line in output.splitlines() if line.startswith("crosscheck: error:")]
        assert len(errors) == 1, output


def test_the_reproducer_is_where_it_says_when_the_candidate_changes_directory(
    tmp_path: Path,
) -> None:
    code, output = run_check(
        (
            str(ROOT / HOSTILE / "changes_directory.py"),
            "--functions",
            "forward",
            "--max-examples",
            "3",
        ),
        cwd=tmp_path,
    )
    assert code == 1, output
    (script,) = re.findall(r"reproduce: python (\S+)", output)
    assert Path(script).is_file() and Path(script).is_relative_to(tmp_path), output
    assert not (tmp_path / ".hypothesis").exists(), "Hypothesis wrote into the working directory"
    rerun = run_python(script, cwd="/", timeout=120)
    assert rerun.returncode == 1 and "FAIL forward" in rerun.stdout, rerun.stdout + rerun.stderr


def test_an_isolated_check_says_so_and_a_closure_says_it_is_not() -> None:
    import numpy as np

    import verify
    from tests import zoo

    assert verify.check(zoo.Correct, functions=["forward"], max_examples=2).isolated

    class Local:
        def forward(self, x, w):
            return np.asarray(x) @ np.asarray(w)

    report = verify.check(Local(), functions=["forward"], max_examples=2, repro_dir=None)
    assert not report.isolated and report.passed
    assert "in-process: the candidate can affect this verdict" in report.summary()
    with pytest.raises(ValueError, match="cannot be loaded again"):
        verify.check(Local(), functions=["forward"], isolate=True)


def test_a_report_that_checked_nothing_is_no_pass() -> None:
    import verify
    from tests import zoo

    report = verify.check(zoo.Correct, functions=["consistency"], dtype="float16", repro_dir=None)
    assert report.checked == 0 and not report.passed
    assert report.summary().endswith("nothing was checked.")


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGKILL"])
def test_a_stopped_oracle_leaves_nothing_running(signum: str) -> None:
    """SIGTERM: the oracle stops its worker's group and exits 3 with one line; SIGKILL: the
    worker sees its oracle gone and ends its own group (the candidate's child included)."""
    import signal
    import time

    marker = f"crosscheck-test-{uuid.uuid4()}"
    env = {**os.environ, "CROSSCHECK_TEST_MARKER": marker, "PYTHONPATH": str(ROOT)}
    oracle = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verify",
            "check",
            *_forward_only("hang_in_call.py", "--timeout", "600"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    # Running: the oracle, its worker, and the candidate's child all carry the marker.
    while len(marked_processes(marker)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(marked_processes(marker)) >= 3, marked_processes(marker)
    oracle.send_signal(getattr(signal, signum))
    _, stderr = oracle.communicate(timeout=30)
    if signum == "SIGTERM":
        assert oracle.returncode == 3, stderr
        assert stderr.strip().splitlines()[-1].startswith("crosscheck: error: interrupted")
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not marked_processes(marker), marked_processes(marker)
