"""``python -m verify check``: exit codes 0 / 1 / 2, the printed report, --json, --junit-xml,
reproducers that re-fail from a fresh shell, and the progress line."""

from __future__ import annotations

import ast
import io
import json
import time
import traceback
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.helpers import run_python
from verify.oracle.front import cli
from verify.oracle.front._junit import xml_text
from verify.oracle.front.cli import _TerminalProgress, main


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


def test_progress_rewrites_one_line_after_a_delay() -> None:
    stream = io.StringIO()
    progress = _TerminalProgress(stream, delay=0.0)
    progress("grad_w", 3, 100)
    progress("grad_w", 101, 100)
    progress.clear()
    text = stream.getvalue()
    assert "\r  checking grad_w" in text and "3/100" in text and "shrinking" in text
    quiet = io.StringIO()
    _TerminalProgress(quiet, delay=3600)("forward", 1, 100)
    assert quiet.getvalue() == ""


def test_float64_enables_jax_float64() -> None:
    """A JAX layer checked at float64 from the command line computes in float64, not float32."""
    done = run_python(
        *("-m", "verify", "check", "verify", "--dtype", "float64", "--max-examples", "3"),
        *("--functions", "forward,grad_w"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
