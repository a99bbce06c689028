"""Reproducers: each failure as ``case.npz`` (its arrays) and ``repro.py`` (the one call).

``python DIR/<function>-<digest>/repro.py`` re-runs exactly that case through the same guard and
comparison as the search, prints the verdict and exits 1 while the defect is there (0 once it is
fixed): a bug report that needs no Hypothesis, no seed and no search.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import bounds
from ..messages import ExitCode, print_error
from ._calls import InProcessCaller
from ._cases import Case
from ._checks import CHECKS
from ._loading import Candidate, ContractError, as_candidate, enable_float64_for
from ._options import Options
from ._report import FunctionReport

_SCRIPT = '''"""crosscheck reproducer: {function} of {name}.

{summary}

Run from any shell:  python {script}
Exits 1 while the defect is there, 0 once it is fixed.
"""

import sys

# Where the check ran, so that the implementation imports as it did then, and where crosscheck
# was (used only if it is not installed).
sys.path.insert(0, {cwd!r})
sys.path.append({package_root!r})

from verify.oracle._repro import rerun

sys.exit(rerun(__file__, spec={spec!r}, function={function!r}, options={options!r}, kind={kind!r}))
'''


def write_repro(
    candidate: Candidate, report: FunctionReport, options: Options, directory: Path
) -> Path:
    """Write ``case.npz`` and ``repro.py`` for a failed function; return the script's path."""
    case = report.case
    if case is None:
        raise ValueError(f"the report on {report.function} has no counterexample")
    digest = hashlib.sha1()
    for name, array in case.arrays.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).view(np.uint8).tobytes())
    digest.update(repr((case.lr, candidate.name, str(report.diagnosis))).encode())
    folder = directory / f"{report.function}-{digest.hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: _storable(array) for name, array in case.arrays.items()}
    np.savez(
        folder / "case.npz",
        **arrays,  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
        _lr=np.float64(np.nan if case.lr is None else case.lr),
        _meta=np.array(json.dumps({"kind": case.kind, "dtypes": _dtypes(case)})),
    )
    script = folder / "repro.py"
    summary = f"diagnosis: {report.diagnosis} - {report.detail}"
    if report.message:
        summary += f"\n{report.message}"
    script.write_text(
        _SCRIPT.format(
            function=report.function,
            name=candidate.name,
            summary=summary,
            script=script.resolve(),
            cwd=os.getcwd(),
            package_root=str(Path(__file__).resolve().parents[1]),
            spec=candidate.spec,
            options=dataclasses.asdict(options),
            kind=str(report.diagnosis),
        )
    )
    return script


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
    script: str, *, spec: str | None, function: str, options: dict[str, Any], kind: str
) -> int:
    """Run one stored case again: print the verdict; ``ExitCode.DEFECT`` if it fails, ``OK`` if
    it passes, ``USAGE`` if the implementation cannot be loaded."""
    if spec is None:
        print_error(
            "the implementation was passed as an object that cannot be loaded by name; set "
            "spec= in this reproducer to its 'module:attr'"
        )
        return ExitCode.USAGE
    checked = Options(**options)
    try:
        enable_float64_for(checked.dtype)
        candidate = as_candidate(spec)
    except ContractError as err:
        print_error(err)
        return ExitCode.USAGE
    case = load_case(Path(script).with_name("case.npz"), function)
    caller = InProcessCaller(candidate, checked.timeout)
    ratio, finding = CHECKS[function].judge(caller, case, checked)
    if finding is None:
        print(f"PASS {case.describe()}: worst error / bound {ratio:.3g} (was: {kind})")
        return ExitCode.OK
    print(f"FAIL {case.describe()}")
    print(f"  diagnosis: {finding.kind} - {finding.detail} ({finding.kind.meaning})")
    if finding.message:
        print(f"  {finding.message}")
    if finding.traceback:
        print("  candidate traceback:")
        print("\n".join(f"    {line}" for line in finding.traceback.splitlines()))
    return ExitCode.DEFECT
