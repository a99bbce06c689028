"""``python -m verify check``: exit codes 0 / 1 / 2, the printed report, --json, --junit-xml,
reproducers that re-fail from a fresh shell, the progress lines and the help."""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import time
import traceback
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.helpers import run_python
from verify.oracle.front import cli
from verify.oracle.front._junit import xml_text
from verify.oracle.front._report import FunctionReport, Timing
from verify.oracle.front.cli import FinishedChecks, main


def test_a_correct_implementation_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "report.json"
    code = main(
        [
            "examples/numpy_layer.py",
            "--max-examples",
            "5",
            "--json",
            str(report),
            "--repro-dir",
            str(tmp_path / "repro"),
        ]
    )
    assert code == 0
    assert "all 9 checks passed." in capsys.readouterr().out
    document = json.loads(report.read_text())
    assert document["passed"] is True
    assert {"python", "numpy", "jax", "backend", "devices"} <= document["environment"].keys()
    assert not (tmp_path / "repro").exists()


def test_a_defect_exits_1_with_diagnosis_and_reproducer(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        [
            "tests/zoo.py:TransposedGradW",
            "--functions",
            "grad_w",
            "--max-examples",
            "10",
            "--repro-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "diagnosis: transposed" in out and "minimal counterexample: grad_w(x: (" in out
    assert "reproduce: python " in out
    assert len(list(tmp_path.glob("grad_w-*/repro.py"))) == 1


def test_junit_xml_has_one_testcase_per_check_and_the_finding_as_failure(
    tmp_path: Path,
) -> None:
    xml = tmp_path / "ci" / "r.xml"
    argv = ["tests/zoo.py:TransposedGradW", "--dtype", "float16", "--max-examples", "3"]
    argv += ["--functions", "grad_w,forward,consistency", "--junit-xml", str(xml)]
    assert main([*argv, "--repro-dir", str(tmp_path / "repro")]) == 1
    suite = ElementTree.parse(xml).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["grad_w[float16]", "forward[float16]", "consistency[float16]"]
    failure = cases["grad_w[float16]"].find("failure")
    assert failure is not None and failure.get("type") == "transposed"
    assert failure.get("message", "").startswith("transposed - dL_dw has shape")
    assert "minimal counterexample: grad_w(" in (failure.text or "")
    assert "reproduce: python " in (failure.text or "")
    assert list(cases["forward[float16]"]) == []  # passed: no child
    skipped = cases["consistency[float16]"].find("skipped")
    assert skipped is not None and "float32 or float64" in skipped.get("message", "")


def test_junit_xml_text_holds_no_character_xml_forbids() -> None:
    text = xml_text("raised\x00 ValueError: \x1b[31mred\x1b[0m\ttab")
    assert text == "raised\\x00 ValueError: \\x1b[31mred\\x1b[0m\ttab"
    ElementTree.fromstring(f"<a>{text}</a>")  # parses


#: A folder no process can make, not even root's: the kernel refuses any file under /sys.
UNMAKEABLE = "/sys/crosscheck-test"

#: Command lines that check nothing, by name: each must exit 2 with one line, before the run.
USAGE_ERRORS = {
    "unimportable": ["no_such_module_anywhere"],
    "nothing-recognised": ["json"],
    "bad-dtype": ["reference", "--dtype", "int8"],
    "exact-float16": ["reference", "--exact", "--dtype", "float16"],
    "bad-function": ["reference", "--functions", "backward"],
    "no-function": ["reference", "--functions", ","],
    "no-examples": ["reference", "--max-examples", "0"],
    "accumulation-of-float32": ["reference", "--accumulation", "bfloat16"],
    "infinite-timeout": ["reference", "--timeout", "inf"],
    "zero-import-timeout": ["reference", "--import-timeout", "0"],
    "bad-memory-limit": ["reference", "--memory-limit", "lots"],
    "bad-multiple-of": ["reference", "--multiple-of", "K=32"],
    "spec-and-command": ["reference", "--command", "true"],
    "in-process-command": ["--command", "true", "--in-process"],
    "junit-xml-is-a-folder": ["reference", "--junit-xml", "."],
    "json-under-a-file": ["reference", "--json", "README.md/report.json"],
    "json-not-writable": ["reference", "--json", "/sys/kernel/notes"],
    "json-folder-cannot-be-made": ["reference", "--json", f"{UNMAKEABLE}/report.json"],
    "repro-dir-is-a-file": ["reference", "--repro-dir", "README.md"],
    "repro-dir-under-a-file": ["reference", "--repro-dir", "README.md/repro"],
    "repro-dir-cannot-be-made": ["reference", "--repro-dir", f"{UNMAKEABLE}/repro"],
    "function-not-provided": ["tests/hostile/grad_w_only.py", "--functions", "forward"],
    "no-spec": [],
}


@pytest.fixture
def kernel_refuses_sys() -> None:
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's /sys, where no file can be made")


@pytest.mark.parametrize("argv", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_and_contract_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture, kernel_refuses_sys: None
) -> None:
    started = time.monotonic()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no header: nothing ran
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("crosscheck: error: ")
    assert time.monotonic() - started < 60  # before the run, not after it


def test_every_usage_error_of_the_command_line_has_a_case(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, kernel_refuses_sys: None
) -> None:
    """Every ``raise UsageError`` of cli.py is reached by a command line of USAGE_ERRORS (so
    the test above proves each exit-2 path prints one line): the raising line of each error
    printed is recorded, and cli.py's raise statements are read from its source."""
    raised: set[int] = set()
    printed = cli.print_error

    def recording(message: object) -> None:
        if isinstance(message, BaseException) and message.__traceback__ is not None:
            frames = traceback.extract_tb(message.__traceback__)
            raised.update(f.lineno for f in frames if f.filename == cli.__file__ and f.lineno)
        printed(message)

    monkeypatch.setattr(cli, "print_error", recording)
    for argv in USAGE_ERRORS.values():
        assert main(argv) == 2, argv
    capsys.readouterr()
    source = Path(cli.__file__).read_text()
    raises = {
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", None) == "UsageError"
    }
    lines = source.splitlines()
    assert raises, "cli.py raises no UsageError: the source walk is blind"
    unreached = sorted(raises - raised)
    assert not unreached, [f"cli.py:{n}: {lines[n - 1].strip()}" for n in unreached]


@pytest.mark.parametrize(
    ("mutant", "function", "kind"),
    [("MeanGradW", "grad_w", "mean_instead_of_sum"), ("RaisesGradX", "grad_x", "raised")],
)
def test_reproducers_refail_from_a_fresh_shell(
    tmp_path: Path, mutant: str, function: str, kind: str
) -> None:
    repro = tmp_path / "repro"
    assert (
        main(
            [
                f"tests/zoo.py:{mutant}",
                "--functions",
                function,
                "--max-examples",
                "10",
                "--repro-dir",
                str(repro),
            ]
        )
        == 1
    )
    (script,) = repro.glob(f"{function}-*/repro.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = run_python(str(script), cwd=elsewhere, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"diagnosis: {kind}" in run.stdout


@pytest.mark.slow
def test_the_projects_own_implementations_pass_from_the_command_line() -> None:
    for spec in ("reference", "verify"):
        run = run_python("-m", "verify", "check", spec, "--max-examples", "4")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "checks passed." in run.stdout


def test_a_mutant_exits_1_from_the_command_line(tmp_path: Path) -> None:
    run = run_python(
        *("-m", "verify", "check", "tests/zoo.py:HangingForward", "--timeout", "0.5"),
        *("--functions", "forward", "--max-examples", "3", "--repro-dir", str(tmp_path)),
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "diagnosis: timed_out" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_progress_is_one_whole_line_per_finished_check_with_the_time_left() -> None:
    stream, now = io.StringIO(), [100.0]
    progress = FinishedChecks(stream, clock=lambda: now[0])
    now[0] = 130.0
    progress(FunctionReport("grad_x", "pass", examples=105), 3, 9)
    now[0] = 400.0
    progress(FunctionReport("step", "fail", examples=12), 9, 9)
    assert stream.getvalue() == (
        "  grad_x      PASS    105 examples   3/9, about 60 s left\n"
        "  step        FAIL     12 examples   9/9\n"
    )


def test_on_a_terminal_checks_at_once_print_whole_lines_in_order(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two checks at once on -j 2 alternated their counters on one redrawn line (4,500 redraws
    in 18 s); now each finished check is one line, counted 1/k .. k/k, nothing redrawn."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["tests/zoo.py:TransposedGradW", "-j", "2", "--max-examples", "5"]
    assert main([*argv, "--repro-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    line = re.compile(r"  \w+ +(PASS|FAIL) +\d+ examples   (\d+)/(\d+)(, about .* left)?")
    counts = [line.fullmatch(each) for each in lines]
    assert len(lines) >= 8 and all(counts), lines
    assert [int(m.group(2)) for m in counts if m] == list(range(1, len(lines) + 1))
    assert {int(m.group(3)) for m in counts if m} == {len(lines)}


def test_float64_enables_jax_float64() -> None:
    """A JAX layer checked at float64 from the command line computes in float64, not float32."""
    done = run_python(
        *("-m", "verify", "check", "verify", "--dtype", "float64", "--max-examples", "3"),
        *("--functions", "forward,grad_w"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_python_m_verify_help_has_a_usage_line_and_no_markup() -> None:
    done = run_python("-m", "verify", "--help", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m verify [COMMAND [ARGS...]]\n")
    assert "``" not in done.stdout
    assert "  check      check an implementation of the layer" in done.stdout


class SlowForward:
    """forward(x, w) = x @ w, 20 ms a call: time that is the candidate's own."""

    def forward(self, x, w):
        time.sleep(0.02)
        return x @ w


def test_the_last_line_splits_the_wall_time_between_the_candidate_and_crosscheck(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "report.json"
    argv = ["tests/test_oracle_cli.py:SlowForward", "--max-examples", "5", "-j", "1"]
    assert main([*argv, "--json", str(report)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(
        r"\d+\.\d s: loading \d+\.\d s, your code \d+\.\d s in \d+ calls, crosscheck \d+\.\d s",
        last,
    ), last
    found = json.loads(report.read_text())
    timing, (forward,) = found["timing"], found["functions"]
    # Timed where the calls are made: 20 ms each at least, and the check's calls are the run's.
    assert forward["candidate_calls"] == timing["candidate_calls"] >= forward["examples"]
    assert forward["candidate_seconds"] >= 0.02 * forward["candidate_calls"]
    assert forward["crosscheck_seconds"] == pytest.approx(
        forward["seconds"] - forward["candidate_seconds"]
    )
    # One job: loading, the candidate's calls and crosscheck's work make up the wall time.
    parts = timing["loading_seconds"] + timing["candidate_seconds"] + timing["crosscheck_seconds"]
    assert parts == pytest.approx(timing["wall_seconds"])


def test_checks_at_once_say_their_split_is_summed_over_the_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "report.json"
    argv = ["examples/numpy_layer.py", "--max-examples", "3", "-j", "2", "--json", str(report)]
    assert main(argv) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(
        r"\d+\.\d s: loading \d+\.\d s, checks \d+\.\d s on 2 workers at once; summed over the "
        r"checks: your code \d+\.\d s in [\d,]+ calls, crosscheck \d+\.\d s",
        last,
    ), last
    found = json.loads(report.read_text())
    timing, checks = found["timing"], found["functions"]
    assert timing["jobs"] == 2
    assert timing["candidate_calls"] == sum(f["candidate_calls"] for f in checks)
    assert timing["candidate_seconds"] == pytest.approx(sum(f["candidate_seconds"] for f in checks))
    summed = sum(f["seconds"] for f in checks)
    outside = timing["wall_seconds"] - timing["loading_seconds"] - timing["checks_wall_seconds"]
    assert timing["candidate_seconds"] + timing["crosscheck_seconds"] == pytest.approx(
        summed + outside
    )


def test_the_time_line_reads_in_thousands_and_tenths() -> None:
    one = Timing(14.53, 0.9, 13.6, 1, 1890, 9.8, 3.83)
    assert one.line() == "14.5 s: loading 0.9 s, your code 9.8 s in 1,890 calls, crosscheck 3.8 s"
    two = Timing(6.1, 1.2, 4.9, 2, 1890, 6.3, 3.1)
    assert two.line() == (
        "6.1 s: loading 1.2 s, checks 4.9 s on 2 workers at once; summed over the checks: your "
        "code 6.3 s in 1,890 calls, crosscheck 3.1 s"
    )


def test_calls_in_this_process_are_timed_too() -> None:
    import verify

    report = verify.check(SlowForward(), max_examples=3, isolate=False, repro_dir=None)
    forward = report["forward"]
    assert not report.isolated and forward.calls >= forward.examples
    assert forward.candidate_seconds >= 0.02 * forward.calls
    assert report.timing is not None and report.timing.calls == forward.calls
