"""``verify.check``: every applicable check of the registry on one implementation, a Report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._calls import InProcessCaller
from ._checks import CHECKS
from ._loading import Candidate, as_candidate
from ._options import DEFAULT_TIMEOUT, Options
from ._report import FunctionReport, Report, environment
from ._repro import write_repro
from ._search import Progress, search

#: Default directory for reproducers (gitignored).
DEFAULT_REPRO_DIR = "crosscheck-repro"


def check(
    impl: Any,
    *,
    max_examples: int = 100,
    seed: int | None = 0,
    dtype: str = "float32",
    exact: bool = False,
    tie_convention: str | None = None,
    matmul_precision: str = "float32",
    timeout: float = DEFAULT_TIMEOUT,
    functions: Sequence[str] | None = None,
    repro_dir: str | Path | None = DEFAULT_REPRO_DIR,
    progress: Progress | None = None,
) -> Report:
    """Check an implementation of the layer against the loop reference; return the Report.

    Args:
      impl: a module, class instance, class or SPEC string (``pkg.mod:attr``,
        ``path/file.py:attr``, or a module) providing any of forward, loss (or l1_loss),
        loss_grad, grad_x, grad_w, update, step, and optionally asarray.
      max_examples: Hypothesis examples per check (before shrinking).
      seed: the search's random seed (None: a fresh one each run).
      dtype: the inputs' dtype: float64, float32, bfloat16 or float16.
      exact: integer data, half-integer targets, lr a power of two: results must equal the
        reference exactly (float32 or float64).
      tie_convention: pin dL_do at a tie (output == target) to ``seed`` (-1), ``jax`` (+1) or
        ``torch`` (0); None accepts any value in [-1, 1].
      matmul_precision: a declared reduced matmul precision for float32 (tf32, bf16, bf16_3x,
        bf16_6x): the bounds of ``bounds.arithmetic("float32", matmul_precision)`` apply.
      timeout: seconds one call may take before its verdict is ``timed_out``.
      functions: run only these checks (names of ``CHECKS``: the contract's functions,
        ``identities``, ``consistency``); default every check the implementation allows. A
        check named here that does not apply is reported as skipped.
      repro_dir: where each failure writes its reproducer; None writes none.
      progress: called as ``progress(check, examples_so_far, max_examples)``.

    Returns:
      a Report; ``report.raise_on_failure()`` raises an AssertionError with its summary.

    Raises:
      ContractError: ``impl`` cannot be loaded or provides none of the functions.
      ValueError: an option is out of range (the message names it).
    """
    if not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive int, got {max_examples!r}")
    options = Options(dtype, exact, tie_convention, matmul_precision, timeout)
    wanted = list(CHECKS) if functions is None else list(functions)
    unknown = set(wanted) - set(CHECKS)
    if unknown:
        raise ValueError(f"functions must be among {list(CHECKS)}, got {sorted(unknown)}")
    candidate = impl if isinstance(impl, Candidate) else as_candidate(impl)
    caller = InProcessCaller(candidate, options.timeout)
    reports: list[FunctionReport] = []
    try:
        for name in wanted:
            chosen = CHECKS[name]
            if not chosen.applies(caller.provided, options):
                if functions is not None:
                    reports.append(FunctionReport(name, "skip", note=chosen.requirement()))
                continue
            report = search(chosen, caller, options, max_examples, seed, progress)
            if report.status == "fail" and repro_dir is not None and report.case is not None:
                report.repro = str(write_repro(candidate, report, options, Path(repro_dir)))
            reports.append(report)
    finally:
        caller.close()
    return Report(
        implementation=candidate.name,
        options=options,
        max_examples=max_examples,
        seed=seed,
        functions=reports,
        environment=environment(),
    )
