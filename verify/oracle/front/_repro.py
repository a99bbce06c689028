"""Reproducers: each failure as ``case.npz`` (its arrays) and ``repro.py`` (the one call).

``python DIR/<function>-<digest>/repro.py`` re-runs exactly that case through the same guard and
comparison as the search, prints the verdict and exits 1 while the defect is there (0 once it is
fixed): a bug report that needs no Hypothesis, no seed and no search. The script records the
Python that made it: a Python that cannot import crosscheck (another venv, ``python3 -I``) runs
it again with that one, or exits 3 with one line naming it, never 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import bounds
from ...messages import ExitCode, print_error
from .._settings import Settings
from ..candidate import StartError, WorkerCaller, python_worker, worker_environment
from ..explaining import explain
from ..judging import CHECKS, Case, NotJudged
from ._report import FunctionReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_SCRIPT = '''"""crosscheck reproducer: run from any shell, ``python {script}``.

Exits 1 while the defect is there, 0 once it is fixed, 3 when no Python at hand can run it.
"""

{summary}

import os
import sys

#: The Python that made this reproducer: it can import crosscheck and what crosscheck needs.
MADE_BY = {made_by!r}

# Where crosscheck was when the check ran (used only if it is not installed).
sys.path.append({package_root!r})

try:
    from verify.oracle.front._repro import rerun
except ImportError as err:
    # Another Python (another venv, python3 -I): run again with the one that made it, once.
    tried = os.environ.get("CROSSCHECK_REPRO_RETRIED") == "1"
    if os.path.abspath(sys.executable) != MADE_BY and os.path.exists(MADE_BY) and not tried:
        os.environ["CROSSCHECK_REPRO_RETRIED"] = "1"
        os.execv(MADE_BY, [MADE_BY, __file__, *sys.argv[1:]])
    print(
        f"crosscheck: error: {{sys.executable}} cannot run this reproducer ({{err}}); it was made "
        f"by {{MADE_BY}}: run it with a Python that has crosscheck",
        file=sys.stderr,
    )
    sys.exit(3)  # verify.messages.ExitCode.INCOMPLETE: nothing was re-checked

sys.exit(
    rerun(
        __file__,
        spec={spec!r},
        command={command!r},
        cwd={cwd!r},
        function={function!r},
        options={options!r},
        kind={kind!r},
    )
)
'''


def write_repro(
    name: str,
    spec: str | None,
    command: list[str] | None,
    report: FunctionReport,
    settings: Settings,
    directory: Path,
) -> Path:
    """Write ``case.npz`` and ``repro.py`` for a failed check of the implementation ``name``
    (loaded again by ``spec``, or the executable ``command``); return the script's path."""
    case = report.case
    if case is None:
        raise ValueError(f"the report on {report.function} has no counterexample")
    digest = hashlib.sha1()
    for array_name, array in case.arrays.items():
        digest.update(array_name.encode())
        digest.update(np.ascontiguousarray(array).view(np.uint8).tobytes())
    digest.update(repr((case.lr, name, str(report.diagnosis))).encode())
    folder = directory / f"{report.function}-{digest.hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {array_name: _storable(array) for array_name, array in case.arrays.items()}
    np.savez(
        folder / "case.npz",
        **arrays,  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
        _lr=np.float64(np.nan if case.lr is None else case.lr),
        _meta=np.array(json.dumps({"kind": case.kind, "dtypes": _dtypes(case)})),
    )
    script = folder / "repro.py"
    summary = [f"{report.function} of {name}", f"diagnosis: {report.diagnosis} - {report.detail}"]
    if report.message:
        summary.append(report.message)
    script.write_text(
        _SCRIPT.format(
            summary="\n".join(f"# {line}" for text in summary for line in text.splitlines()),
            script=script.resolve(),
            package_root=str(Path(__file__).resolve().parents[3]),
            made_by=os.path.abspath(sys.executable),
            spec=spec,
            command=command,
            cwd=os.getcwd(),
            function=report.function,
            options=settings.described(),
            kind=str(report.diagnosis),
        )
    )
    return script


#: One heatmap drawn at a time: matplotlib's text layout goes through caches every figure
#: shares (the mathtext parser held by ``MathTextParser``, the font and text-metrics caches);
#: the library takes its own lock only inside ``Figure.draw`` (``Figure._render_lock``), and
#: two checks of a ``-j`` run that fail at once draw from two threads.
_DRAWING = threading.Lock()

#: Below this many rows or columns a picture shows nothing the report's lines do not.
MIN_HEATMAP_SIDE = 2


def write_heatmap(errors: np.ndarray, path: Path, title: str) -> str:
    """``errors.png``: ``|error| / bound`` of each element of a failing 2-D result (``errors``,
    shape (rows, columns); NaN where the candidate's value is NaN or infinite) on a log scale,
    1 being the bound, so that a wrong block shows at a glance. Returns the path, or why there
    is none: matplotlib missing (the ``plot`` extra), a result below 2 x 2, or the drawing
    failed; drawing never ends a run."""
    rows, cols = errors.shape
    if min(rows, cols) < MIN_HEATMAP_SIDE:
        return f"none (a {rows} x {cols} result: its wrong elements are listed above)"
    try:
        import matplotlib  # noqa: F401 (first: a submodule imported earlier hides its absence)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        return "none (matplotlib is not installed: pip install 'crosscheck[plot]')"
    with _DRAWING:
        try:
            FigureCanvasAgg(heatmap_figure(errors, title)).print_png(path)
        except Exception as err:  # a picture is an extra: the verdict stands without it
            return f"none (it could not be drawn: {type(err).__name__}: {err})"
    return str(path)


def heatmap_figure(errors: np.ndarray, title: str) -> Figure:
    """The heatmap of ``errors`` (rows, columns) as a matplotlib Figure, drawn without pyplot
    (no global figure state): magma on a log scale from 1e-3 to the largest finite ratio
    (at least 10); NaN (the candidate's value NaN or infinite) in cyan; an infinite ratio
    (a finite wrong value where the bound is 0, as in exact mode) in the top colour, as the
    largest finite ratio is."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows, cols = errors.shape
    finite = errors[np.isfinite(errors) & (errors > 0)]
    top = max(float(finite.max()) if finite.size else 1.0, 10.0)
    shown = np.clip(np.where(np.isposinf(errors), top, errors), 1e-3, top)
    figure = Figure(
        figsize=(min(12.0, 6.0 + cols / 40), min(9.0, 4.5 + rows / 40)), dpi=100,
        layout="constrained",
    )  # fmt: skip
    axes = figure.add_subplot()
    colormap = colormaps["magma"].with_extremes(bad="cyan")
    image = axes.imshow(
        shown, norm=LogNorm(1e-3, top), cmap=colormap, aspect="auto", interpolation="nearest"
    )
    label = "|error| / bound (1: the bound)"
    if np.isnan(errors).any():
        label += "\ncyan: NaN or inf in the result"
    if np.isposinf(errors).any():
        label += "\ntop colour too: wrong where the bound is 0"
    figure.colorbar(image, ax=axes, label=label)
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))  # rows and columns, not halves
    axes.set_xlabel(f"column (of {cols})")
    axes.set_ylabel(f"row (of {rows})")
    axes.set_title(f"{title}: elements past 1 are wrong", wrap=True)
    return figure


def _storable(array: np.ndarray) -> np.ndarray:
    # npz cannot hold ml_dtypes' bfloat16 portably: keep its bits, the dtype goes in _meta.
    return array.view(np.uint16) if array.dtype.name == "bfloat16" else array


def _dtypes(case: Case) -> dict[str, str]:
    return {name: array.dtype.name for name, array in case.arrays.items()}


def load_case(path: Path, function: str) -> Case:
    """The Case a reproducer stored next to its script."""
    with np.load(path) as stored:
        meta = json.loads(str(stored["_meta"]))
        arrays = {}
        for name, dtype in meta["dtypes"].items():
            array = stored[name]
            arrays[name] = array.view(bounds.numpy_dtype(dtype)) if dtype == "bfloat16" else array
        lr = float(stored["_lr"])
    return Case(function, arrays, None if np.isnan(lr) else lr, meta["kind"])


def rerun(
    script: str,
    *,
    spec: str | None,
    command: list[str] | None = None,
    cwd: str | None = None,
    function: str,
    options: dict[str, Any],
    kind: str,
) -> int:
    """Run one stored case again, in a fresh worker: print the verdict; ``ExitCode.DEFECT`` if it
    fails, ``OK`` if it passes, ``USAGE`` if the implementation cannot be loaded."""
    if spec is None and command is None:
        print_error(
            "the implementation was passed as an object that cannot be loaded by name; set "
            "spec= in this reproducer to its 'module:attr'"
        )
        return ExitCode.USAGE
    checked = Settings(**options)
    try:
        caller = WorkerCaller(
            command or python_worker(spec),  # type: ignore[arg-type]  # one of them is set
            name=spec or " ".join(command or []),
            timeout=checked.timeout,
            env=worker_environment(checked.dtype),
            cwd=cwd,
        )
    except StartError as err:
        print_error(err)
        return ExitCode.USAGE
    case = load_case(Path(script).with_name("case.npz"), function)
    check = CHECKS[function]
    try:
        ratio, finding = check.run(caller, case, checked)
        if finding is not None:
            # The same explanation as the run's, so the verdict reads the same.
            _, finding = explain(check, caller, case, finding, checked)
    except NotJudged as why:
        print(f"NOT JUDGED {case.describe()}: {why} (was: {kind})")
        return ExitCode.OK
    finally:
        caller.close()
    if finding is None:
        print(f"PASS {case.describe()}: worst error / bound {ratio:.3g} (was: {kind})")
        return ExitCode.OK
    print(f"FAIL {case.describe()}")
    print(f"  diagnosis: {finding.kind} - {finding.detail} ({finding.kind.meaning})")
    if finding.message:
        print(f"  {finding.message}")
    if finding.where:
        print(f"  wrong: {finding.where}")
    if finding.traceback:
        print(f"  {finding.kind.evidence}:")
        print("\n".join(f"    {line}" for line in finding.traceback.splitlines()))
    return ExitCode.DEFECT
