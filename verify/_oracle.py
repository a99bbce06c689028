"""The oracle: check any implementation of the layer against the loop reference.

``check(impl)`` runs, for each function ``impl`` provides, a Hypothesis search over shapes and
values (``verify.strategies``) for a case where the result leaves its admissible set
(``verify.bounds``), shrinks the first one it finds to a minimal counterexample, names the bug
(``_diagnosis``) and writes a reproducer (``_repro``). Every call of the candidate goes through
the same guard (``run_case``): it runs in a worker thread with a timeout, its exceptions are
caught, its inputs must be unchanged afterwards and a second call must agree bit for bit.

With loss, gradient and update available (``step``, or the pieces), an ``identities`` check
also tests two facts that need no reference (DESIGN.md), with g = dL_dw::

    convexity:    L(w - lr g) >= L(w) - lr ||g||_F^2
    no crossing:  L(w - lr g) == L(w) - lr ||g||_F^2   when no output crosses its target
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from . import bounds
from ._calls import CallResult, call_with_timeout, to_numpy
from ._cases import RESULTS, Case, Options, case_strategy, edge_cases, expect, make_case
from ._diagnosis import Finding, check_result
from ._loading import FUNCTIONS, Candidate, as_candidate
from ._report import FunctionReport, Report, environment
from .strategies import LayerInputs

#: Default per-call timeout, seconds: generous for a first JAX compile of a large shape.
DEFAULT_TIMEOUT = 60.0

#: Default directory for reproducers (gitignored).
DEFAULT_REPRO_DIR = "crosscheck-repro"

#: (function, examples run so far, max_examples) -> None, called after every example.
Progress = Callable[[str, int, int], None]


# --------------------------------------------------------------------------------------------
# One guarded call.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Call:
    result: CallResult
    passed: list[Any]  # the argument objects the candidate received (after its asarray)


def _invoke(candidate: Candidate, function: str, case: Case, timeout: float) -> _Call:
    """One call on private copies of the case's arrays (through the candidate's ``asarray``)."""
    passed: list[Any] = []
    convert = candidate.asarray

    def run() -> Any:
        for array in case.arrays.values():
            passed.append(convert(array.copy()) if convert else array.copy())
        lr = [case.lr] if len(case.args) > len(case.arrays) else []
        return candidate.functions[function](*passed, *lr)

    return _Call(call_with_timeout(run, (), timeout), passed)


def _call_failure(call: _Call, case: Case, timeout: float) -> Finding | None:
    if call.result.timed_out:
        return Finding(
            "timed_out", f"{case.describe()} did not return within {timeout:g} s", case.describe()
        )
    if call.result.error is not None:
        return Finding(
            "raised",
            f"{case.describe()} raised {call.result.error}",
            traceback=call.result.traceback,
        )
    return None


def _mutated(call: _Call, case: Case) -> str | None:
    """The name of an input the call changed in place, if any."""
    for (name, original), passed in zip(case.arrays.items(), call.passed, strict=False):
        try:
            after = to_numpy(passed)
        except Exception:
            continue
        if after.shape != original.shape or not np.array_equal(
            after.astype(np.float64), original.astype(np.float64), equal_nan=True
        ):
            return name
    return None


def _results(function: str, value: Any) -> list[Any] | Finding:
    if function != "step":
        return [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 4:
        length = len(value) if isinstance(value, Sequence) else "not a sequence"
        return Finding(
            "wrong_shape",
            f"step must return (loss, dL_dx, dL_dw, w_new), got {type(value).__name__} ({length})",
        )
    return list(value)


def _same(first: Any, second: Any) -> bool:
    try:
        a, b = to_numpy(first), to_numpy(second)
    except Exception:
        return True  # not comparable here; check_result names the conversion failure
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))


def run_case(candidate: Candidate, case: Case, options: Options) -> tuple[float, Finding | None]:
    """Check one call: ``(worst error / bound, None)`` or ``(ratio, Finding)`` on a defect."""
    if case.function == "identities":
        return run_identities(candidate, case, options)
    if case.function == "consistency":
        return run_consistency(candidate, case, options)
    first = _invoke(candidate, case.function, case, options.timeout)
    failure = _call_failure(first, case, options.timeout)
    if failure:
        return math.inf, failure
    name = _mutated(first, case)
    if name is not None:
        return math.inf, Finding(
            "input_mutated", f"{case.describe()} changed its input {name} in place"
        )
    second = _invoke(candidate, case.function, case, options.timeout)
    failure = _call_failure(second, case, options.timeout)
    if failure:
        return math.inf, failure
    results = _results(case.function, first.result.value)
    if isinstance(results, Finding):
        return math.inf, results
    again = _results(case.function, second.result.value)
    if isinstance(again, Finding) or not all(map(_same, results, again)):
        return math.inf, Finding(
            "nondeterministic",
            f"two calls of {case.describe()} on the same input returned different results",
        )
    expected = expect(case, options.arithmetic(), tie=options.tie, exact=options.exact)
    worst = 0.0
    for name, raw in zip(RESULTS[case.function], results, strict=True):
        ratio, finding = check_result(name, raw, expected[name], case, options)
        if finding is not None:
            return ratio, finding
        worst = max(worst, ratio)
    return worst, None


# --------------------------------------------------------------------------------------------
# The identities: convexity and no crossing, from the candidate's own loss, gradient, update.
# --------------------------------------------------------------------------------------------


def _guarded(thunk: Any, case: Case, options: Options) -> tuple[Any, Finding | None]:
    """Run ``thunk()`` (several candidate calls) under the timeout: its value, or a Finding."""
    result = call_with_timeout(thunk, (), options.timeout)
    failure = _call_failure(_Call(result, []), case, options.timeout)
    return (None, failure) if failure else (result.value, None)


def has_identities(candidate: Candidate) -> bool:
    pieces = {"forward", "loss", "loss_grad", "grad_w", "update"}
    return "step" in candidate.functions or pieces <= candidate.functions.keys()


def _composite_step(
    candidate: Candidate, x: Any, w: Any, target: Any, lr: float
) -> tuple[Any, Any, Any]:
    """``(L, dL_dw, w_new)`` from ``step``, or from forward, loss, loss_grad, grad_w, update."""
    f = candidate.functions
    if "step" in f:
        loss, _, dL_dw, w_new = f["step"](x, w, target, lr)
        return loss, dL_dw, w_new
    output = f["forward"](x, w)
    dL_dw = f["grad_w"](x, f["loss_grad"](output, target))
    return f["loss"](output, target), dL_dw, f["update"](w, dL_dw, lr)


def _composite_loss(candidate: Candidate, x: Any, w: Any, target: Any, lr: float) -> Any:
    f = candidate.functions
    if "step" in f:
        return f["step"](x, w, target, lr)[0]
    return f["loss"](f["forward"](x, w), target)


def _in_range(x: np.ndarray, w_new: np.ndarray, target: np.ndarray) -> bool:
    """Whether the loss at ``w_new`` stays well inside the dtype's range (1/32 of its largest,
    as ``strategies.layer_inputs`` keeps one step's quantities)."""
    largest = float(
        np.finfo(np.float32).max if x.dtype.name == "bfloat16" else np.finfo(x.dtype).max
    )
    with np.errstate(all="ignore"):
        output = np.abs(x.astype(np.float64)) @ np.abs(w_new.astype(np.float64))
        loss = float(np.sum(output + np.abs(target.astype(np.float64))))
    return bool(np.isfinite(loss) and loss < largest / 32)


def run_identities(
    candidate: Candidate, case: Case, options: Options
) -> tuple[float, Finding | None]:
    """Convexity and no crossing for the candidate's step ``w -> w_new`` (module docstring).

    With L0 = L(w), L1 = L(w_new), g = dL_dw (all the candidate's), the tolerance is the
    error bound of both losses plus how far a correctly rounded update may move the loss:
    ``sum |x| @ radius(w_new)``. Crossing is judged on the float64 outputs at w and w_new,
    away from the kinks (where the forward bound leaves the sign open).
    """
    x, w, target = (case.arrays[n] for n in ("x", "w", "target"))
    lr = case.learning_rate
    convert = candidate.asarray or (lambda a: a.copy())

    def first_step() -> tuple[Any, Any, Any]:
        loss0, grad, w_new = _composite_step(candidate, convert(x), convert(w), convert(target), lr)
        return loss0, grad, to_numpy(w_new).astype(w.dtype)

    stepped, failure = _guarded(first_step, case, options)
    if failure:
        return math.inf, failure
    try:
        loss0, grad = (to_numpy(v).astype(np.float64) for v in stepped[:2])
        w_new_stored = stepped[2]
    except Exception as err:
        return math.inf, Finding("wrong_dtype", f"a result is not an array: {err}")
    w_new = w_new_stored.astype(np.float64)
    if grad.shape != w.shape or w_new.shape != w.shape or loss0.ndim:
        return math.inf, Finding("wrong_shape", "loss, dL_dw or w_new has the wrong shape")
    if not all(np.all(np.isfinite(v)) for v in (loss0, grad, w_new)):
        return math.inf, Finding("nan", "NaN or infinity in the loss, dL_dw or w_new")
    if not _in_range(x, w_new, target):
        return 0.0, None  # L(w_new) would overflow the dtype: the identities say nothing here
    loss_at_w_new, failure = _guarded(
        lambda: _composite_loss(candidate, convert(x), convert(w_new_stored), convert(target), lr),
        case,
        options,
    )
    if failure:
        return math.inf, failure
    try:
        loss1 = to_numpy(loss_at_w_new).astype(np.float64)
    except Exception as err:
        return math.inf, Finding("wrong_dtype", f"the loss is not an array: {err}")
    if loss1.ndim or not np.isfinite(loss1):
        return math.inf, Finding("nan", f"L(w_new) = {loss1}: not a finite scalar")
    arith = options.arithmetic()
    x64, w64, t64 = (a.astype(np.float64) for a in (x, w, target))
    out0, out1 = bounds.forward_bound(x64, w64, arith), bounds.forward_bound(x64, w_new, arith)
    radius0 = float(bounds.loss_bound(out0, t64, arith).radius)
    radius1 = float(bounds.loss_bound(out1, t64, arith).radius)
    update_radius = bounds.update_bound(w64, grad, lr, arith).radius
    descent = lr * float(np.sum(grad * grad))
    tolerance = radius0 + radius1 + float(np.sum(np.abs(x64) @ update_radius)) + 1e-12 * descent
    predicted = float(loss0) - descent
    slack = float(loss1) - predicted
    call_text = case.describe()
    if slack < -tolerance:
        return -slack / tolerance, Finding(
            "convexity",
            "L(w - lr g) < L(w) - lr ||g||^2: g = dL_dw is not a subgradient of the loss "
            "(convexity is violated)",
            f"L(w_new) = {float(loss1):.8g}, but should be >= L(w) - lr ||g||^2 = "
            f"{predicted:.8g} (bound {tolerance:.2g}) [{call_text}]",
            -slack / tolerance,
        )
    before, after = out0.center - t64, out1.center - t64
    clear = (np.abs(before) > out0.radius) & (np.abs(after) > out1.radius)
    no_crossing = bool(np.all(clear) and np.all(np.sign(before) == np.sign(after)))
    ratio = max(0.0, -slack) / tolerance if tolerance > 0 else 0.0
    if no_crossing:
        ratio = abs(slack) / tolerance if tolerance > 0 else (0.0 if slack == 0 else math.inf)
        if ratio > 1:
            return ratio, Finding(
                "convexity",
                "no output crosses its target, so L(w - lr g) must equal L(w) - lr ||g||^2 "
                "(the no-crossing identity), but it does not",
                f"L(w_new) = {float(loss1):.8g}, but should be {predicted:.8g} "
                f"(bound {tolerance:.2g}) [{call_text}]",
                ratio,
            )
    return ratio, None


# --------------------------------------------------------------------------------------------
# Consistency: the fused step against the candidate's own pieces.
# --------------------------------------------------------------------------------------------

#: The pieces a step is composed of, in the order the composition calls them.
PIECES = ("forward", "loss", "loss_grad", "grad_x", "grad_w", "update")


def has_consistency(candidate: Candidate) -> bool:
    return {"step", *PIECES} <= candidate.functions.keys()


def _steps(candidate: Candidate, x: Any, w: Any, target: Any, lr: float) -> tuple[Any, Any]:
    """``step(x, w, target, lr)`` and the same step composed from the candidate's pieces."""
    f = candidate.functions
    fused = f["step"](x, w, target, lr)
    output = f["forward"](x, w)
    dL_do = f["loss_grad"](output, target)
    dL_dw = f["grad_w"](x, dL_do)
    composed = (
        f["loss"](output, target),
        f["grad_x"](dL_do, w),
        dL_dw,
        f["update"](w, dL_dw, lr),
    )
    return fused, composed


def run_consistency(
    candidate: Candidate, case: Case, options: Options
) -> tuple[float, Finding | None]:
    """The fused ``step`` against ``forward -> loss, loss_grad -> grad_x, grad_w -> update``.

    On integer data (float32 / float64) outputs, ties and both gradients are exact however
    they are computed, so dL_dx and dL_dw must agree bit for bit: a fused step whose tie
    convention, sum or upstream differs from its own pieces is caught even where both are
    admissible against the reference. L and w_new (non-integer targets, lr) must agree within
    twice their error bound (each side is within one bound of the exact value).
    """
    if options.dtype not in ("float32", "float64"):
        return 0.0, None  # half-precision outputs of integer data are not exact
    x, w, target = (case.arrays[n] for n in ("x", "w", "target"))
    lr = case.learning_rate
    convert = candidate.asarray or (lambda a: a.copy())
    both, failure = _guarded(
        lambda: _steps(candidate, convert(x), convert(w), convert(target), lr), case, options
    )
    if failure:
        return math.inf, failure
    try:
        fused = [to_numpy(v).astype(np.float64) for v in both[0]]
        composed = [to_numpy(v).astype(np.float64) for v in both[1]]
    except Exception as err:
        return math.inf, Finding("wrong_dtype", f"a result is not an array: {err}")
    expected = bounds.step_bounds(x, w, target, lr, options.arithmetic())
    worst = 0.0
    for name, got, want, bound in zip(
        ("loss", "dL_dx", "dL_dw", "w_new"),
        fused,
        composed,
        (expected.loss, None, None, expected.w_new),
        strict=True,
    ):
        if got.shape != want.shape:
            return math.inf, Finding(
                "inconsistent",
                f"step's {name} has shape {got.shape}, but its pieces give {want.shape}",
            )
        difference = np.abs(got - want)
        radius = 0.0 if bound is None else 2 * np.asarray(bound.radius)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(difference == 0, 0.0, difference / radius)
        ratio = np.where(np.isnan(got) | np.isnan(want), np.inf, ratio)
        if ratio.size and float(ratio.max()) > 1:
            index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
            where = f"[{', '.join(map(str, index))}]" if index else ""
            ties = int(np.sum(expected.kinks))
            return float(ratio.max()), Finding(
                "inconsistent",
                f"step's {name} differs from the one its own pieces give "
                f"(forward -> loss_grad -> grad_x / grad_w -> update)"
                + (
                    f"; {ties} output(s) sit on a tie: are the tie conventions the same?"
                    if ties
                    else ""
                ),
                f"step {name}{where} = {float(got[index])!r}, but the pieces give "
                f"{float(want[index])!r} [{case.describe()}]",
                float(ratio.max()),
            )
        worst = max(worst, float(ratio.max(initial=0.0)))
    return worst, None


# --------------------------------------------------------------------------------------------
# The Hypothesis search, one function at a time.
# --------------------------------------------------------------------------------------------


class _Defect(Exception):
    """Raised inside the search on any defect; always from one line, so that Hypothesis treats
    every defect of a function as one bug and shrinks to the smallest case that shows any."""


@dataclasses.dataclass
class _State:
    examples: int = 0
    worst: float = 0.0
    last: tuple[Case, Finding] | None = None
    timed_out: tuple[Case, Finding] | None = None


def _raise(finding: Finding) -> None:
    raise _Defect(finding.kind)


def _search(
    candidate: Candidate,
    function: str,
    options: Options,
    max_examples: int,
    seed_value: int | None,
    progress: Progress | None,
) -> FunctionReport:
    state = _State()

    def body(case: Case) -> None:
        if state.timed_out is not None:
            # Never call a hung function again: its thread may still be running.
            _raise(state.timed_out[1])
        state.examples += 1
        if progress is not None:
            progress(function, state.examples, max_examples)
        ratio, finding = run_case(candidate, case, options)
        if finding is None:
            # No hypothesis.target() here: hill-climbing on the ratio collapses the search onto
            # a few early shapes (measured: a bug past 128 rows went unseen in 40 examples).
            state.worst = max(state.worst, ratio)
            return
        state.last = (case, finding)
        if finding.kind == "timed_out":
            state.timed_out = (case, finding)
        _raise(finding)

    config = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    test = config(given(case_strategy(function, options))(body))
    if seed_value is not None:
        test = seed(seed_value)(test)
    try:
        test()
    except Exception:
        # _Defect after shrinking, or Hypothesis' Flaky when the candidate is not
        # deterministic: either way the last defect recorded is the one to report.
        if state.last is None:
            raise
    if state.last is None:
        # The search passed: the fixed edge shapes run too (no shrinking: they are small
        # already, and a bug that shows on small shapes was found and shrunk above).
        for edge in edge_cases(function, options):
            state.examples += 1
            ratio, edge_finding = run_case(candidate, edge, options)
            if edge_finding is not None:
                state.last = (edge, edge_finding)
                break
            state.worst = max(state.worst, ratio)
    if state.last is None:
        return FunctionReport(function, "pass", state.examples, state.worst)
    case, finding = state.timed_out or state.last
    if "(= " in finding.detail:
        finding = _disambiguate(candidate, function, finding, options)
    return FunctionReport(
        function,
        "fail",
        state.examples,
        max(state.worst, finding.ratio),
        diagnosis=finding.kind,
        detail=finding.detail,
        message=finding.message or None,
        traceback=finding.traceback,
        case=case,
    )


#: A probe shape with N, I, O all different (and no factor of another): it tells a mean over
#: N from one over O or N*O when the minimal counterexample has equal dims.
PROBE_SHAPE = (5, 3, 4)


def probe_case(function: str, dtype: str) -> Case:
    """A fixed case of ``PROBE_SHAPE``: normal data, targets 1 away from the outputs, lr 1/16."""
    rng = np.random.default_rng(20260)
    n, i, o = PROBE_SHAPE
    np_dtype = bounds.numpy_dtype(dtype)
    x = rng.standard_normal((n, i)).astype(np_dtype)
    w = rng.standard_normal((i, o)).astype(np_dtype)
    output = x.astype(np.float64) @ w.astype(np.float64)
    target = (output + rng.choice([-1.0, 1.0], size=(n, o))).astype(np_dtype)
    inputs = LayerInputs(x, w, target, 2.0**-4, "normal (probe)")
    upstream = (rng.standard_normal((n, o)) * 3).astype(np_dtype)
    gradient = (rng.standard_normal((i, o)) * 3).astype(np_dtype)
    return make_case(function, inputs, upstream, gradient)


def _disambiguate(
    candidate: Candidate, function: str, finding: Finding, options: Options
) -> Finding:
    """Name the factor of a mean or scale on ``PROBE_SHAPE`` when the counterexample's dims
    made it ambiguous (e.g. N = N*O when O = 1); keep ``finding`` if the probe disagrees."""
    if function == "identities":
        return finding
    try:
        _, probe = run_case(candidate, probe_case(function, options.dtype), options)
    except Exception:  # the probe only refines a verdict already reached
        return finding
    if probe is None or probe.kind != finding.kind or "(= " in probe.detail:
        return finding
    n, i, o = PROBE_SHAPE
    detail = f"{probe.detail} (told apart on N={n}, I={i}, O={o})"
    return dataclasses.replace(finding, detail=detail)


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
      max_examples: Hypothesis examples per function (before shrinking).
      seed: the search's random seed (None: a fresh one each run).
      dtype: the inputs' dtype: float64, float32, bfloat16 or float16.
      exact: integer data, half-integer targets, lr a power of two: results must equal the
        reference exactly (float32 or float64).
      tie_convention: pin dL_do at a tie (output == target) to ``seed`` (-1), ``jax`` (+1) or
        ``torch`` (0); None accepts any value in [-1, 1].
      matmul_precision: a declared reduced matmul precision for float32 (tf32, bf16, bf16_3x,
        bf16_6x): the bounds of ``bounds.arithmetic("float32", matmul_precision)`` apply.
      timeout: seconds one call may take before its verdict is ``timed_out``.
      functions: check only these (default: all provided, and the identities when possible).
      repro_dir: where each failure writes its reproducer; None writes none.
      progress: called as ``progress(function, examples_so_far, max_examples)``.

    Returns:
      a Report; ``report.raise_on_failure()`` raises an AssertionError with its summary.

    Raises:
      ContractError: ``impl`` cannot be loaded or provides none of the functions.
      ValueError: an option is out of range (the message names it).
    """
    if not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive int, got {max_examples!r}")
    options = Options(dtype, exact, tie_convention, matmul_precision, timeout)
    candidate = impl if isinstance(impl, Candidate) else as_candidate(impl)
    checks = [*FUNCTIONS, "identities", "consistency"]
    wanted = list(functions) if functions is not None else checks
    unknown = set(wanted) - set(checks)
    if unknown:
        raise ValueError(f"functions must be among {checks}, got {sorted(unknown)}")
    reports: list[FunctionReport] = []
    for function in wanted:
        if function == "identities":
            if not has_identities(candidate):
                if functions is not None:
                    reports.append(
                        FunctionReport(function, "skip", note="needs loss, gradient and update")
                    )
                continue
        elif function == "consistency":
            if not has_consistency(candidate) or dtype not in ("float32", "float64"):
                if functions is not None:
                    note = "needs step and every piece, float32 or float64"
                    reports.append(FunctionReport(function, "skip", note=note))
                continue
        elif function not in candidate.functions:
            continue
        report = _search(candidate, function, options, max_examples, seed, progress)
        if report.status == "fail" and repro_dir is not None and report.case is not None:
            from ._repro import write_repro

            report.repro = str(write_repro(candidate, report, options, Path(repro_dir)))
        reports.append(report)
    return Report(
        implementation=candidate.name,
        options=options,
        max_examples=max_examples,
        seed=seed,
        functions=reports,
        environment=environment(),
    )
