"""A notebook as SPEC (``python -m verify check homework.ipynb``): its code cells run top to
bottom in the worker, magics skipped with a note, prints kept off the protocol; the homework
example passes, a bug the notebook's own asserts miss fails with its diagnosis, a raising cell
is exit 2 naming the cell; ``homework.ipynb:MyLayer`` picks a name; the pytest plugin takes it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import verify
from scripts.docs_outputs import GRAD_W_OF_GLOBAL_NUM_DATA  # the docs' sample runs it too
from tests.helpers import ROOT, run_python
from verify import ContractError
from verify.messages import ExitCode
from verify.oracle.candidate._loading import load, python_of_cell
from verify.oracle.front.cli import main

HOMEWORK = ROOT / "examples" / "homework.ipynb"


def code_cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": textwrap.dedent(source).strip("\n").splitlines(True),
    }


def write_notebook(path: Path, cells: list[dict]) -> Path:
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook, indent=1))
    return path


def homework_with(path: Path, cell_containing: str, old: str, new: str) -> Path:
    """The homework example with ``old`` replaced by ``new`` in the cell holding the text."""
    notebook = json.loads(HOMEWORK.read_text())
    (cell,) = [c for c in notebook["cells"] if cell_containing in "".join(c["source"])]
    source = "".join(cell["source"])
    assert old in source, (old, source)
    cell["source"] = source.replace(old, new).splitlines(True)
    path.write_text(json.dumps(notebook))
    return path


def cli(capsys: pytest.CaptureFixture[str], spec: str, *more: str) -> tuple[int, str, str]:
    code = main([spec, "--max-examples", "20", "-j", "1", *more])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # reproducers land here


def test_the_homework_example_passes_with_a_note_on_its_magics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, str(HOMEWORK))
    assert code == ExitCode.OK, out + err
    assert "all 7 checks passed" in out, out
    assert "skipped 2 IPython magic / shell line(s)" in out, out
    assert "'%matplotlib inline', '!pip install numpy'" in out, out
    # The cells' prints went to the worker's stderr: none reached the report.
    assert "x =" not in out and "dL_dw =" not in out, out


def test_a_bug_the_notebooks_asserts_miss_fails_with_its_diagnosis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "".join(json.loads(HOMEWORK.read_text())["cells"][9]["source"])
    correct = source[source.index("def grad_w") : source.index("\n\n\ndL_dx = grad_x")]
    buggy = homework_with(
        tmp_path / "buggy.ipynb", "def grad_w", correct, GRAD_W_OF_GLOBAL_NUM_DATA
    )
    code, out, err = cli(capsys, str(buggy))
    assert code == ExitCode.DEFECT, out + err
    verdicts = dict(
        line.split()[:2]
        for line in out.splitlines()
        if line.startswith("  ") and line.split()[1:2] in (["PASS"], ["FAIL"])
    )
    assert verdicts == {
        "forward": "PASS",
        "loss": "PASS",
        "loss_grad": "PASS",
        "grad_x": "PASS",
        "grad_w": "FAIL",
        "update": "PASS",
        "identities": "FAIL",
    }, out
    # The smallest shape the global num_data = 3 overruns, and the notebook's own line.
    assert "diagnosis: raised - grad_w(x: (1, 1), dL_do: (1, 1)) raised IndexError" in out, out
    assert 'buggy.ipynb [code cell 5]", line 17, in grad_w' in out, out


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        # A gradient loop that overwrites instead of accumulating: the notebook's own assert.
        (
            "dL_dw[i, j] = dL_dw[i, j] + x[d, i]",
            "dL_dw[i, j] = x[d, i]",
            "raised at its line 28 ('assert np.array_equal(dL_dw, [[-2, 10, -10, 10], [-4, 4, "
            "-4, 4]])'): AssertionError",
        ),
        ("def grad_w(x, dL_do):", "def grad_w(x, dL_do)", "raised at its line 12: SyntaxError"),
        (
            "dL_dx = grad_x(dL_do, w)",
            "dL_dx = input()",
            "raised at its line 23 ('dL_dx = input()')",
        ),
    ],
    ids=["assert", "syntax", "input"],
)
def test_a_raising_cell_is_exit_2_naming_the_cell_and_its_first_line(
    old: str, new: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = homework_with(tmp_path / "homework.ipynb", "def grad_w", old, new)
    code, out, err = cli(capsys, "homework.ipynb")  # a bare file name in the folder
    assert code == ExitCode.USAGE, out + err
    assert "homework.ipynb: code cell 5 ('def grad_x(dL_do, w):') " in err, err
    assert said in err, err
    assert broken.exists() and not out


def test_a_name_after_the_colon_picks_what_is_checked(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "layers.ipynb",
        [
            code_cell("import numpy as np"),
            code_cell(
                """
                class MyLayer:
                    def forward(self, x, w):
                        return x @ w

                    def grad_w(self, x, dL_do):
                        return x.T @ dL_do


                def forward(x, w):  # a draft left at the top level
                    return x @ w.T
                """
            ),
        ],
    )
    picked = verify.check(f"{notebook}:MyLayer", max_examples=5, jobs=1, repro_dir=None)
    picked.raise_on_failure()
    assert [f.function for f in picked.functions] == ["forward", "grad_w"]
    assert not picked.load_notes
    draft = verify.check(str(notebook), max_examples=5, jobs=1, repro_dir=None)
    assert draft["forward"].status == "fail", draft.summary()


def test_output_of_the_cells_stays_off_the_protocol_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noisy = write_notebook(
        tmp_path / "noisy.ipynb",
        [
            code_cell(
                """
                import sys
                print("crosscheck 1 loss")  # a greeting's words: must not reach the oracle
                sys.stdout.write("ok 1\\n")
                sys.stdout.flush()
                """
            ),
            code_cell("def forward(x, w):\n    print('forward called')\n    return x @ w"),
        ],
    )
    code, out, err = cli(capsys, str(noisy))
    assert code == ExitCode.OK and "all 1 checks passed" in out, out + err
    assert "crosscheck 1 loss" not in out and "ok 1" not in out, out
    code, out, err = cli(capsys, str(noisy), "--in-process")
    assert code == ExitCode.OK and "crosscheck 1 loss" in err and "ok 1" not in out, out + err


def test_magics_become_pass_in_place_and_cell_magics_run_only_python() -> None:
    code, skipped = python_of_cell("for i in range(3):\n    %timeit f()\n!ls\ny = 1")
    assert code == "for i in range(3):\n    pass\npass\ny = 1"
    assert skipped == ["%timeit f()", "!ls"]
    assert python_of_cell("%%time\nz = 2") == ("pass\nz = 2", ["%%time"])
    assert python_of_cell("%%bash\necho hi") == ("", ["%%bash"])
    assert python_of_cell("forward?\n?grad_x\nnp.dot??\n# why?\nz = 3  # why?") == (
        "pass\npass\npass\n# why?\nz = 3  # why?",
        ["forward?", "?grad_x", "np.dot??"],
    )
    # Python whose lines start with % or ! is left as it is.
    remainder = 'r = (7\n     % 4)\ntext = """\n!not a shell line\n"""'
    assert python_of_cell(remainder) == (remainder, [])


def test_what_is_not_a_notebook_is_a_contract_error(tmp_path: Path) -> None:
    (tmp_path / "text.ipynb").write_text("not json")
    with pytest.raises(ContractError, match=r"cannot read notebook .*text\.ipynb"):
        load(str(tmp_path / "text.ipynb"))
    (tmp_path / "old.ipynb").write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    with pytest.raises(ContractError, match=r"no list of 'cells' \(nbformat 3"):
        load(str(tmp_path / "old.ipynb"))
    with pytest.raises(ContractError, match="no such file"):
        load("missing.ipynb")


def test_the_pytest_plugin_takes_a_notebook() -> None:
    done = run_python(
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--crosscheck",
        "examples/homework.ipynb",
        "--crosscheck-max-examples",
        "5",
        "-v",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "crosscheck:examples/homework.ipynb::grad_w[float32] PASSED" in output, output
    # Items for what applies: no step, so no consistency; no bias, so no grad_b.
    assert "7 passed in" in output and "skipped" not in output, output
    assert "not defined, so not checked: step, nor consistency, which calls them" in output


@pytest.mark.torch
def test_a_torch_linear_in_a_notebook_is_checked_as_it_is_or_with_its_adapter(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    notebook = write_notebook(
        tmp_path / "model.ipynb",
        [
            code_cell("import torch\nimport verify.adapters"),
            code_cell(
                """
                layer = torch.nn.Linear(3, 4, bias=False)
                candidate = verify.adapters.torch_linear(layer, torch.optim.SGD)
                print(layer)
                """
            ),
        ],
    )
    as_it_is = verify.check(f"{notebook}:layer", max_examples=3, jobs=1, repro_dir=None)
    as_it_is.raise_on_failure()
    assert as_it_is.checked == 3 and as_it_is.load_notes, as_it_is.summary()
    adapted = verify.check(f"{notebook}:candidate", max_examples=3, jobs=1, repro_dir=None)
    adapted.raise_on_failure()
    assert adapted.checked == 9 and not adapted.load_notes, adapted.summary()


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("import os\nos._exit(3)", "ended while loading (exited with code 3)"),
        ("while True:\n    pass", "did not load within 3 s"),
    ],
    ids=["exits", "hangs"],
)
def test_a_notebook_that_exits_or_hangs_while_loading_is_exit_2(
    cell: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = write_notebook(
        tmp_path / "hostile.ipynb",
        [code_cell("def forward(x, w):\n    return x @ w"), code_cell(cell)],
    )
    code, out, err = cli(capsys, str(hostile), "--import-timeout", "3")
    assert code == ExitCode.USAGE, out + err
    assert said in err and "Traceback" not in err, err
