"""verify.oracle.front._repro: the heatmap beside a reproducer (drawn from several threads at
once, readable at every size, NaN's colour only for NaN) and the reproducer run by a Python
that cannot import crosscheck."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import venv
from pathlib import Path

import numpy as np
import pytest

import verify
from tests import zoo
from verify.oracle.front import _repro
from verify.oracle.front._repro import heatmap_figure, write_heatmap
from verify.oracle.front.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _errors(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Ratios from 1e-3 to 1e6: the colour bar's ticks are 10^k, set by matplotlib's mathtext."""
    return 10.0 ** np.random.default_rng(seed).uniform(-3, 6, size=(rows, cols))


def test_heatmaps_drawn_from_several_threads_at_once_all_come_out(tmp_path: Path) -> None:
    """Two checks of a ``-j`` run that fail at once draw at once: pyplot's shared figure state
    and matplotlib's mathtext parser made most of such drawings raise (ParseException on
    ``$\\mathdefault{10^{-2}}$``), which ended the run."""
    pytest.importorskip("matplotlib")
    threads, each = 4, 2
    barrier = threading.Barrier(threads)
    drawn: list[str] = []

    def draw(k: int) -> None:
        for j in range(each):
            barrier.wait()  # every thread starts its drawing together
            folder = tmp_path / f"{k}-{j}"
            folder.mkdir()
            drawn.append(write_heatmap(_errors(5 + k, 4 + j, k), folder / "errors.png", "grad_w"))

    running = [threading.Thread(target=draw, args=(k,)) for k in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert len(drawn) == threads * each
    assert all(Path(path).read_bytes()[:8] == PNG for path in drawn), drawn


def test_a_heatmap_that_cannot_be_drawn_is_a_note_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")

    def broken(errors: np.ndarray, title: str) -> None:
        raise ValueError("ParseException: Expected end of text")

    monkeypatch.setattr(_repro, "heatmap_figure", broken)
    note = write_heatmap(_errors(3, 3), tmp_path / "errors.png", "forward")
    assert note == (
        "none (it could not be drawn: ValueError: ParseException: Expected end of text)"
    )
    assert not list(tmp_path.iterdir())


def test_a_failed_drawing_leaves_the_verdict_and_the_exit_code_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")

    def broken(errors: np.ndarray, title: str) -> None:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(_repro, "heatmap_figure", broken)
    report = verify.check(zoo.TwiceForward, functions=["forward"], max_examples=5,
                          repro_dir=tmp_path, isolate=False)  # fmt: skip
    verdict = report["forward"]
    assert verdict.status == "fail" and verdict.diagnosis == "scaled"
    assert verdict.picture == "none (it could not be drawn: RuntimeError: no fonts)"
    assert "heatmap: none (it could not be drawn" in report.summary()


@pytest.mark.parametrize("shape", [(2, 2), (2, 300), (300, 2), (130, 133), (1000, 1000)])
def test_nothing_of_a_heatmap_is_cut_at_any_size(shape: tuple[int, int]) -> None:
    """Everything drawn (title, axis labels, ticks, the colour bar's label) lies inside the
    picture: at 2 x 2 a fixed small figure cut the title and the colour bar's label."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    errors = _errors(*shape)
    errors[0, 0], errors[-1, -1] = np.nan, np.inf  # both notes in the colour bar's label
    figure = heatmap_figure(errors, "forward-757b5283e3")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    drawn = figure.get_tightbbox(canvas.get_renderer())  # inches
    width, height = figure.get_size_inches()
    slack = 1 / figure.dpi  # one pixel
    assert drawn.x0 >= -slack and drawn.y0 >= -slack, (drawn, width, height)
    assert drawn.x1 <= width + slack and drawn.y1 <= height + slack, (drawn, width, height)


def test_only_nan_and_infinite_values_take_the_nan_colour() -> None:
    """A finite value that is wrong under a bound of 0 (exact mode) has an infinite ratio: it
    takes the top colour, as the largest finite ratio; NaN (the result's value was NaN or
    infinite) is cyan."""
    pytest.importorskip("matplotlib")
    errors = np.array([[0.0, 0.5, 1e4], [np.inf, np.nan, 2.0]])
    figure = heatmap_figure(errors, "grad_w")
    (image,) = figure.axes[0].images
    colours = image.to_rgba(image.get_array())
    cyan = (0.0, 1.0, 1.0, 1.0)
    assert tuple(colours[1, 1]) == cyan
    assert tuple(colours[1, 0]) == tuple(colours[0, 2]) != cyan
    assert all(tuple(colours[i, j]) != cyan for i, j in np.ndindex(2, 3) if (i, j) != (1, 1))
    label = figure.axes[1].get_ylabel()
    assert "cyan: NaN or inf in the result" in label and "where the bound is 0" in label


def test_in_exact_mode_a_finite_wrong_value_is_no_nan_in_the_errors() -> None:
    """The judge's evidence tells the two apart: NaN where the result is not finite, inf where a
    finite value is wrong under a zero bound."""
    report = verify.check(zoo.HalfGradX, functions=["grad_x"], exact=True, max_examples=5,
                          repro_dir=None, isolate=False)  # fmt: skip
    errors = report["grad_x"].errors
    assert errors is not None and errors.ndim == 2
    assert not np.isnan(errors).any() and np.isposinf(errors).any()
    nan = verify.check(zoo.NaNAtTiesLossGrad, functions=["loss_grad"], max_examples=20,
                       repro_dir=None, isolate=False)["loss_grad"]  # fmt: skip
    assert nan.errors is not None and np.isnan(nan.errors).any(), nan.errors


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1)])
def test_no_heatmap_below_two_by_two(tmp_path: Path, shape: tuple[int, int]) -> None:
    note = write_heatmap(np.full(shape, 5.0), tmp_path / "errors.png", "forward")
    rows, cols = shape
    assert note == f"none (a {rows} x {cols} result: its wrong elements are listed above)"
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python without crosscheck or numpy: a virtual environment of its own, nothing
    installed (as a user's other venv, or the system's python3)."""
    folder = tmp_path_factory.mktemp("bare-venv")
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    assert subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode == 1
    return str(python)


@pytest.fixture(scope="module")
def reproducer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reproducer of a grad_w that divides by N, made by this test's Python."""
    folder = tmp_path_factory.mktemp("repro")
    argv = ["tests/zoo.py:MeanGradW", "--functions", "grad_w", "--max-examples", "5"]
    assert main([*argv, "--repro-dir", str(folder)]) == 1
    (script,) = folder.glob("grad_w-*/repro.py")
    return script


def _run(python: str, script: Path) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return subprocess.run(
        [python, "-I", str(script)], capture_output=True, text=True, timeout=300, env=clean,
        cwd=script.parent,
    )  # fmt: skip


def test_a_reproducer_run_by_a_python_without_crosscheck_reruns_with_its_maker(
    bare_python: str, reproducer: Path
) -> None:
    """The Python that cannot import crosscheck hands the script to the one that made it: the
    verdict is the defect's (exit 1), not a ModuleNotFoundError (exit 1 all the same before)."""
    done = _run(bare_python, reproducer)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "diagnosis: mean_instead_of_sum" in done.stdout
    assert "ModuleNotFoundError" not in done.stderr


@pytest.mark.parametrize("maker", ["/nonexistent/bin/python", "the bare one"])
def test_a_reproducer_no_python_at_hand_can_run_exits_3_naming_its_maker(
    bare_python: str, reproducer: Path, tmp_path: Path, maker: str
) -> None:
    """Its maker gone (a deleted venv), or itself unable to import crosscheck: one line, exit 3
    (the run could not finish), never 1 (the defect is still there)."""
    maker = bare_python if maker == "the bare one" else maker
    script = tmp_path / "repro.py"
    text = reproducer.read_text()
    made_by = re.search(r"^MADE_BY = (.*)$", text, re.MULTILINE)
    assert made_by is not None and made_by.group(1) == repr(os.path.abspath(sys.executable))
    script.write_text(text.replace(made_by.group(0), f"MADE_BY = {maker!r}"))
    (tmp_path / "case.npz").write_bytes(reproducer.with_name("case.npz").read_bytes())
    done = _run(bare_python, script)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("crosscheck: error: ")
    assert f"it was made by {maker}" in done.stderr and bare_python in done.stderr
