"""The pytest plugin, run as a user runs it (a fresh ``python -m pytest``): one item per check
that -k, --lf, -n and --junitxml see; a mutant failing exactly its broken checks with the
finding; the fixture and marker in a test module; options checked by the CLI's parser, one
per option ``verify.Settings`` offers pytest."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.helpers import run_python
from verify.oracle import _settings
from verify.oracle._settings import PYTEST, spelling
from verify.oracle.front import _surfaces, cli
from verify.oracle.judging._checks import CHECKS

#: Small and derandomized: each run below is a fresh pytest, worker and search.
FAST = ("--crosscheck-max-examples", "2")

#: What TransposedGradW (dL_dw returned as (O, I)) breaks: grad_w, and every check that
#: calls it (step, the identities, the step/pieces consistency); nothing else.
BROKEN = {"grad_w", "step", "identities", "consistency"}


def pytest_run(*argv: str, cwd: Path | None = None) -> tuple[int, str]:
    kwargs = {"cwd": cwd} if cwd else {}
    done = run_python("-m", "pytest", *FAST, *argv, timeout=300, **kwargs)  # type: ignore[arg-type]
    return done.returncode, done.stdout + done.stderr


def outcomes(output: str) -> dict[str, str]:
    """``-v`` lines: node id -> PASSED / FAILED / SKIPPED."""
    found = re.findall(r"^(\S+) (PASSED|FAILED|SKIPPED)", output, flags=re.MULTILINE)
    return dict(found)


def test_one_item_per_check_a_mutant_failing_exactly_its_broken_ones_junit_naming_them(
    tmp_path: Path,
) -> None:
    """One pytest of two specs: the correct numpy layer, one passing item per check and only the
    checks; the mutant failing exactly the checks it breaks, with the finding in pytest's
    failure section and in the JUnit XML."""
    xml = tmp_path / "r.xml"
    repro = ("--crosscheck-repro-dir", str(tmp_path / "repro"))
    layer, mutant = "examples/numpy_layer.py", "tests/zoo.py:TransposedGradW"
    code, output = pytest_run(
        *("--crosscheck", layer, "--crosscheck", mutant, *repro, "--junitxml", str(xml), "-v")
    )
    assert code == 1, output
    # A layer without a bias has no grad_b: no item for it, skipped or not (on either spec).
    checks = [check for check in CHECKS if check != "grad_b"]
    found = outcomes(output)
    assert {node: outcome for node, outcome in found.items() if layer in node} == {
        f"crosscheck:{layer}::{check}[float32]": "PASSED" for check in checks
    }
    # No test path given: the project's testpaths (tests/) are not collected.
    assert f"collected {2 * len(checks)} items" in output, output
    assert "skipped" not in output and "not defined" not in output, output
    failed = {node.split("::")[-1] for node, outcome in found.items() if outcome == "FAILED"}
    assert all(mutant in node for node, outcome in found.items() if outcome == "FAILED")
    assert failed == {f"{check}[float32]" for check in BROKEN}, output
    passed = 2 * len(checks) - len(BROKEN)
    assert f"{len(BROKEN)} failed, {passed} passed in" in output, output
    # pytest's failure section: the finding, diagnosis, minimal counterexample, reproducer.
    assert "diagnosis: transposed - dL_dw has shape" in output
    assert "minimal counterexample: grad_w(x: (" in output
    assert "reproduce: python " + str(tmp_path / "repro") in output
    assert "Traceback" not in output
    cases = ElementTree.parse(xml).getroot().iter("testcase")
    failures = {(case.get("classname"), case.get("name")): case.find("failure") for case in cases}
    assert len(failures) == 2 * len(checks)
    failing = {name for (_, name), failure in failures.items() if failure is not None}
    assert failing == {f"{check}[float32]" for check in BROKEN}
    (grad_w,) = [
        f for (_, name), f in failures.items() if name == "grad_w[float32]" and f is not None
    ]
    assert grad_w.get("message", "").startswith("grad_w: transposed - dL_dw has shape")


def test_items_only_for_what_the_layer_defines_the_rest_said_once(tmp_path: Path) -> None:
    """A layer of forward and loss gets their two items, and one header line for what it
    lacks: no SKIPPED item per function it does not define (each of the 8 others was one)."""
    layer = tmp_path / "partial.py"
    layer.write_text(
        "import numpy as np\n\n\ndef forward(x, w):\n    return x @ w\n\n\n"
        "def loss(output, target):\n    return np.abs(output - target).sum()\n"
    )
    code, output = pytest_run("--crosscheck", str(layer), "-v", "-p", "no:cacheprovider")
    assert code == 0, output
    assert set(outcomes(output).values()) == {"PASSED"} and len(outcomes(output)) == 2, output
    assert "collected 2 items" in output and "2 passed in" in output
    line = (
        f"crosscheck: {layer} [float32]: not defined, so not checked: loss_grad, grad_x, grad_w, "
        "update, step, nor identities, consistency, which call them"
    )
    assert output.count(line) == 1, output


def test_checks_under_pytest_leave_no_hypothesis_folder_behind(tmp_path: Path) -> None:
    """The oracle's Hypothesis caches the constants of the modules the process imported, in
    ./.hypothesis/ unless told otherwise: a check run in the user's pytest wrote it into their
    working directory. It goes to crosscheck's cache now (the command line's too)."""
    (tmp_path / "mine.py").write_text(
        "import numpy as np\n\n\ndef loss_grad(output, target):\n"
        "    return np.sign(output - target)\n"
    )
    (tmp_path / "test_mine.py").write_text(
        "import mine\n\n\ndef test_layer(crosscheck):\n    crosscheck(mine)\n"
    )
    cache = tmp_path / "cache"
    # loss_grad's search draws from the constants (it wrote ./.hypothesis/constants/).
    done = run_python(
        "-m", "pytest", "-p", "no:cacheprovider", "-k", "loss_grad", cwd=tmp_path,
        env={"XDG_CACHE_HOME": str(cache), "HYPOTHESIS_STORAGE_DIRECTORY": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert not (tmp_path / ".hypothesis").exists()
    assert (cache / "crosscheck" / "hypothesis" / "constants").is_dir()


@pytest.mark.slow
def test_k_and_xdist_run_only_the_selected_checks_and_lf_reruns_the_failure(
    tmp_path: Path,
) -> None:
    pytest.importorskip("xdist")
    mutant = ("--crosscheck", str(Path("tests/zoo.py").resolve()) + ":TransposedGradW")
    # Own cache dir: --lf reads what the first run wrote, in this test's folder.
    cache = ("-o", f"cache_dir={tmp_path / 'cache'}")
    code, output = pytest_run(*mutant, *cache, "-n", "2", "-k", "grad_w or forward", cwd=tmp_path)
    assert code == 1, output
    # xdist's controller counts the items its workers kept: the 2 that -k selected of 9.
    assert "2 workers [2 items]" in output and "1 failed, 1 passed" in output, output
    code, output = pytest_run(*mutant, *cache, "--lf", "-v", cwd=tmp_path)
    assert code == 1, output
    assert list(outcomes(output).values()) == ["FAILED"], output
    assert "grad_w[float32] FAILED" in output


def test_fixture_and_marker_check_a_test_modules_own_layer(tmp_path: Path) -> None:
    (tmp_path / "test_layer.py").write_text(
        textwrap.dedent(
            """
            import pytest

            from tests import zoo

            layer = zoo.TransposedGradW()  # a top-level name: checked in a worker

            @pytest.mark.crosscheck(dtype=["float32", "float64"])
            def test_layer(crosscheck):
                crosscheck(layer)

            def test_local_layer(crosscheck):
                class OnlyForward:  # no top-level name: checked in this process
                    def forward(self, x, w):
                        return x @ w

                assert crosscheck(OnlyForward()).status == "pass"
            """
        )
    )
    code, output = pytest_run("-v", "-p", "no:cacheprovider", cwd=tmp_path)
    assert code == 1, output
    found = outcomes(output)
    failed = {node for node, outcome in found.items() if outcome == "FAILED"}
    assert failed == {
        f"test_layer.py::test_layer[{check}-{dtype}]"
        for check in BROKEN
        for dtype in ("float32", "float64")
    }, output
    assert found["test_layer.py::test_local_layer[forward-float32]"] == "PASSED"
    skipped = [node for node, outcome in found.items() if outcome == "SKIPPED"]
    # OnlyForward provides nothing else; the mutant has no bias: its grad_b at both dtypes.
    assert len(skipped) == len(CHECKS) - 1 + 2
    assert "in-process" not in output  # the failures came from the worker
    assert "diagnosis: transposed" in output


def test_bad_options_are_usage_errors_in_the_clis_words() -> None:
    code, output = pytest_run("--crosscheck", "reference", "--crosscheck-dtype", "int8")
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert "crosscheck: argument --dtype: invalid choice: 'int8'" in output


def test_an_unimportable_spec_fails_every_item_with_one_line() -> None:
    code, output = pytest_run("--crosscheck", "no_such_module_anywhere", "-q")
    assert code == 1, output
    assert output.count("crosscheck: error: cannot import 'no_such_module_anywhere'") >= 9
    assert "Traceback" not in output


def test_the_plugin_offers_the_options_settings_offers_pytest() -> None:
    """``--crosscheck-NAME`` for every option of ``verify.Settings`` offered to pytest, each
    a command-line option of the same kind (a switch stays a switch)."""
    parser = cli._parser()
    kinds = {
        a.option_strings[-1][2:]: type(a).__name__ for a in parser._actions if a.option_strings
    }
    offered = {spelling(name)[2:] for name in _settings.offered(PYTEST)}
    assert {option.flag for option in _surfaces.pytest_options()} == offered
    assert {"dtype", "max-examples", "exact", "repro-dir"} <= offered
    assert not offered & {"functions", "jobs", "json", "junit-xml", "command", "in-process"}
    for option in _surfaces.pytest_options():
        assert option.switch == (kinds[option.flag] == "_StoreConstAction"), option.flag
        # One item per value: the options declared so (dtype), read from their declaration.
        assert (option.action == "append") == option.per_item, option.flag
        assert option.per_item == (option.flag == "dtype"), option.flag


def test_an_error_of_the_oracles_own_fails_the_item_as_crosschecks_defect(tmp_path: Path) -> None:
    """Only a CrosscheckError is "nothing was checked"; a ValueError of the oracle's (here its
    reproducer writer) fails the item with its traceback and says whose defect it is, with the
    traceback saved, as the command line's exit 3 does."""
    (tmp_path / "conftest.py").write_text(
        "import verify.oracle.front._run as run\n\n\n"
        "def broken(*args, **kwargs):\n"
        "    raise ValueError('operands could not be broadcast')\n\n\n"
        "run.write_repro = broken\n"
    )
    zoo = str(Path("tests/zoo.py").resolve())
    code, output = pytest_run(
        "--crosscheck", f"{zoo}:MeanGradW", "-k", "grad_w", "-p", "no:cacheprovider", cwd=tmp_path
    )
    assert code == 1, output
    assert "ValueError: operands could not be broadcast" in output
    saved = re.search(r"internal error: ValueError: .* traceback in (\S+\.txt)", output)
    assert saved is not None, output
    assert "crosscheck's own defect, not your code's" in output
    assert "raise ValueError" in Path(saved.group(1)).read_text()
    Path(saved.group(1)).unlink()
