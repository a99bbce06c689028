"""verify.oracle.candidate._loading, as a user meets it: a misspelt contract function is a usage
error with a did-you-mean (alone or beside functions that are right), messages name the user's
file or notebook (never the module name crosscheck gave it), and a folder that is no package is
one message however it is named (``.``, ``mine``, ``mine/``)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from verify.messages import ExitCode
from verify.oracle.candidate import ContractError, as_candidate
from verify.oracle.candidate._loading import LOADED_PREFIX, near_misses
from verify.oracle.front.cli import main

LOSS = (
    "import numpy as np\n\n\ndef loss(output, target):\n    return np.abs(output - target).sum()\n"
)
FOWARD = "def foward(x, w):\n    return x @ w\n"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--max-examples", "3", "-j", "1", "--repro-dir", "repro"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("source", [FOWARD, LOSS + "\n\n" + FOWARD], ids=["alone", "beside-loss"])
def test_a_misspelt_forward_is_exit_2_naming_forward(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Beside loss it was checked as loss alone and passed ("all 1 checks passed."), not a word
    about forward; alone, the error named crosscheck's module for the file."""
    monkeypatch.chdir(tmp_path)
    Path("typo_all.py").write_text(source)
    code, out, err = _cli(capsys, "typo_all.py")
    assert code == ExitCode.USAGE and out == "", out
    assert err == (
        "crosscheck: error: typo_all.py defines foward (did you mean forward?): the contract's "
        "functions are found by their exact names; rename it, or start a helper's name with _\n"
    )


@pytest.mark.parametrize(
    ("names", "slips"),
    [
        (["foward"], {"foward": "forward"}),
        (["grad_W", "gradw"], {"grad_W": "grad_w", "gradw": "grad_w"}),
        (
            ["GRAD_X", "Loss_Grad", "updte", "stepp_"],
            {"GRAD_X": "grad_x", "Loss_Grad": "loss_grad", "updte": "update"},
        ),
        # Helpers: a leading underscore, a plural, a name that extends a contract name, and
        # a name near one the candidate provides already.
        (["_foward", "steps", "updates", "update_w", "forward_pass", "backward", "grad"], {}),
        (["L1_Loss"], {}),  # loss is provided: l1_loss is not missing
    ],
)
def test_near_misses_are_case_underscore_and_one_letter_slips(
    names: list[str], slips: dict[str, str]
) -> None:
    assert near_misses(names, {"loss"}) == slips


def test_a_class_with_a_misspelt_method_is_named_by_its_type() -> None:
    class Layer:
        def forward(self, x, w):
            return x @ w

        def grad_W(self, x, dL_do):
            return x.T @ dL_do

    with pytest.raises(ContractError, match=r"Layer instance defines grad_W \(did you mean grad_w"):
        as_candidate(Layer())


def test_what_a_module_imports_is_no_slip(tmp_path: Path) -> None:
    """Only what the file defines counts: ``from x import Forward`` is someone else's name."""
    path = tmp_path / "imports.py"
    path.write_text("from fractions import Fraction as Forwrd\n\n" + LOSS)
    assert set(as_candidate(str(path)).functions) == {"loss"}


def test_nothing_recognised_names_the_file_not_crosscheck_s_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("helpers.py").write_text("def relu(x):\n    return x\n")
    code, _, err = _cli(capsys, "helpers.py")
    assert code == ExitCode.USAGE
    assert err.startswith("crosscheck: error: nothing recognised in helpers.py: expected any of")
    assert LOADED_PREFIX not in err


def test_a_notebook_is_named_by_its_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    notebook = tmp_path / "homework.ipynb"
    cells = [{"cell_type": "code", "source": source} for source in (LOSS, FOWARD)]
    notebook.write_text(json.dumps({"nbformat": 4, "cells": cells}))
    code, _, err = _cli(capsys, str(notebook))
    assert code == ExitCode.USAGE
    assert f"error: {notebook} defines foward (did you mean forward?)" in err, err
    assert LOADED_PREFIX not in err
    (relu := tmp_path / "relu.ipynb").write_text(
        json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": "def relu(x): ..."}]})
    )
    code, _, err = _cli(capsys, str(relu))
    assert code == ExitCode.USAGE and f"nothing recognised in {relu}:" in err, err


def test_a_folder_is_one_message_however_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``check .`` was a TypeError about relative imports, ``check mine`` "nothing recognised"
    (a namespace package), ``check mine/`` the message all three give now."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "layer.py").write_text(LOSS)
    monkeypatch.chdir(tmp_path)
    said = set()
    for spec, where in (("mine", tmp_path), ("mine/", tmp_path), (".", mine), (str(mine), mine)):
        os.chdir(where)
        code, _, err = _cli(capsys, spec)
        assert code == ExitCode.USAGE, (spec, err)
        said.add(err.replace(f"'{mine}'", "'mine'"))
    assert said == {
        "crosscheck: error: cannot import 'mine': it is a directory, not a Python file or "
        "package; name the file that defines the layer (it holds layer.py)\n"
    }


def test_a_package_folder_is_still_a_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder with ``__init__.py`` named without a slash is imported as the package (its
    relative imports work), with one as a path too."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "impl.py").write_text(LOSS)
    (package / "__init__.py").write_text(textwrap.dedent("from .impl import loss\n"))
    monkeypatch.chdir(tmp_path)
    for spec in ("mypkg", "mypkg/"):
        code, out, err = _cli(capsys, spec)
        assert code == ExitCode.OK, out + err
        assert "all 1 checks passed." in out


def test_the_header_lists_the_contract_functions_not_defined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A silent miss no more: what the file does not define is said before the verdicts (and
    in --json); grad_b only where the layer has a bias."""
    monkeypatch.chdir(tmp_path)
    Path("only_loss.py").write_text(LOSS)
    code, out, _ = _cli(capsys, "only_loss.py", "--json", "r.json")
    assert code == ExitCode.OK
    header, undefined = out.splitlines()[:2]
    assert header.startswith("crosscheck: only_loss.py (")
    assert (
        undefined
        == "  not defined, so not checked: forward, loss_grad, grad_x, grad_w, update, step"
    )
    assert json.loads(Path("r.json").read_text())["undefined"] == [
        "forward", "loss_grad", "grad_x", "grad_w", "update", "step"
    ]  # fmt: skip
    code, out, _ = _cli(capsys, "only_loss.py", "--bias")
    assert "not defined, so not checked: forward, loss_grad, grad_x, grad_w, grad_b, " in out
    code, out, _ = _cli(capsys, str(Path(__file__).parents[1] / "examples" / "numpy_layer.py"))
    assert code == ExitCode.OK and "not defined" not in out, out
