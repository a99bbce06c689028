"""How a case is judged. A judge makes the calls a check needs through a ``Caller``, and returns
``(worst error / bound, None)`` or ``(ratio, Finding)`` on a defect.

- ``judge_function``: one function of the contract against the loop reference, under the error
  model (``_expect``). It is called twice: its inputs must come back unchanged, and the two
  results may differ only as two results within the bound can (``_findings.repeated``; bit for
  bit under ``deterministic``), each within it.
- ``judge_identities``: two facts that need no reference (L is convex in w, linear while no
  output crosses its target, and g a subgradient of it), with g = dL_dw from the
  candidate's own step (``step``, or forward, loss, loss_grad, grad_w, update)::

      convexity:    L(w - lr g) >= L(w) - lr ||g||_F^2
      no crossing:  L(w - lr g) == L(w) - lr ||g||_F^2   when no output crosses its target

  Over every parameter of the tree (``Case.params``): with a bias g = (dL_dw, dL_db),
  L(w - lr g_w, b - lr g_b) and ``||g||^2 = ||dL_dw||_F^2 + ||dL_db||^2`` (grad_b and update of
  b among the pieces). Under a declared reduction L is ``sum |output - target| / D``
  (``Settings.loss_reduction``) and g its gradient: both facts hold for it as they are.

- ``judge_consistency``: the fused ``step`` against the same step composed of the candidate's
  own pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ... import bounds
from ..._params import gradient_name, output_magnitude, output_mass, step_fields, updated_name
from ...messages import explain
from .._contract import FUNCTIONS, signature_for
from .._diagnoses import Diagnosis
from .._settings import Settings
from ..candidate import Caller, Failed, Returned
from ._cases import Case
from ._expect import expect
from ._findings import Finding, check_result, note_repeat, repeated

#: ``(caller, case, options) -> (worst error / bound, Finding or None)``.
Judge = Callable[[Caller, Case, Settings], tuple[float, Finding | None]]

#: The diagnosis of each way a call can fail to return results (``_invoke.Failed.kind``).
_FAILURES: dict[str, Diagnosis] = {
    "raised": Diagnosis.RAISED,
    "timed_out": Diagnosis.TIMED_OUT,
    "crashed": Diagnosis.CRASHED,
    "malformed": Diagnosis.WRONG_SHAPE,
}


def failure(outcome: Failed, call: str) -> Finding:
    """The Finding for a call ``call`` (by shapes) that ended without results."""
    kind = _FAILURES[outcome.kind]
    if kind is Diagnosis.RAISED:
        return Finding(kind, f"{call} raised {outcome.detail}", traceback=outcome.traceback)
    if kind is Diagnosis.TIMED_OUT:
        return Finding(kind, f"{call} {outcome.detail}", call)
    if kind is Diagnosis.CRASHED:
        return Finding(kind, f"{call} crashed: {outcome.detail}", traceback=outcome.traceback)
    return Finding(kind, outcome.detail)


def _mutated(echoed: Sequence[np.ndarray | None], case: Case) -> str | None:
    """The name of an input the call changed in place, if any."""
    for (name, original), after in zip(case.arrays.items(), echoed, strict=False):
        if after is None:
            continue
        same = after.shape == original.shape and np.array_equal(
            after.astype(np.complex128), original.astype(np.complex128), equal_nan=True
        )
        if not same:
            return name
    return None


def _call(caller: Caller, case: Case) -> Returned | Finding:
    outcome = caller.call(case.function, list(case.arrays.values()), case.lr)
    return failure(outcome, case.describe()) if isinstance(outcome, Failed) else outcome


def judge_function(caller: Caller, case: Case, options: Settings) -> tuple[float, Finding | None]:
    """One function of the contract, called twice on the case (module docstring)."""
    first = _call(caller, case)
    if isinstance(first, Finding):
        return math.inf, first
    name = _mutated(first.echoed, case)
    if name is not None:
        return math.inf, Finding(
            Diagnosis.INPUT_MUTATED, f"{case.describe()} changed its input {name} in place"
        )
    second = _call(caller, case)
    if isinstance(second, Finding):
        return math.inf, second
    expected = expect(
        case,
        options.arithmetic(),
        tie=options.tie,
        exact=options.exact,
        reduction=options.loss_reduction,
    )
    results = signature_for(case.function, tuple(case.arrays)).results
    apart, disagree = repeated(
        case, results, first.results, second.results, expected, options.dtype,
        bitwise=options.deterministic,
    )  # fmt: skip
    if disagree is not None:
        return disagree.ratio, disagree
    worst = 0.0
    # Two calls that differ (within the bound of two results) are each judged.
    for returned in (first, second) if apart else (first,):
        for name, actual in zip(results, returned.results, strict=True):
            ratio, finding = check_result(name, actual, expected[name], case, options.dtype)
            if finding is not None:
                return ratio, finding
            worst = max(worst, ratio)
    if apart:
        note_repeat(apart)
    return worst, None


# --------------------------------------------------------------------------------------------
# Several calls composed: the identities and the consistency of the fused step.
# --------------------------------------------------------------------------------------------


def _arrays(
    caller: Caller, case: Case, function: str, arrays: Sequence[np.ndarray], lr: float | None = None
) -> list[np.ndarray] | Finding:
    """The results of one call of a composition, or the Finding that stops it."""
    outcome = caller.call(function, arrays, lr)
    if isinstance(outcome, Failed):
        return failure(outcome, case.describe())
    reasons = [r for r in outcome.results if isinstance(r, str)]
    if reasons:
        return Finding(
            Diagnosis.WRONG_DTYPE, f"a result of {function} is not an array: {reasons[0]}"
        )
    return list(outcome.results)  # type: ignore[arg-type]  # no reasons: arrays only


class _Stepped(NamedTuple):
    """A step's results as the parameter tree has them: the loss, dL_dx (None where it was not
    computed), and every parameter's gradient and updated value, by the parameter's name."""

    loss: np.ndarray
    dL_dx: np.ndarray | None
    grads: dict[str, np.ndarray]
    new: dict[str, np.ndarray]

    def results(self) -> list[np.ndarray | None]:
        """In the order ``step`` returns them (``_params.step_fields``)."""
        return [self.loss, self.dL_dx, *self.grads.values(), *self.new.values()]


def _tree(results: Sequence[np.ndarray], params: dict[str, np.ndarray]) -> _Stepped:
    """A fused step's results (``_params.step_fields`` order, as many as the caller checked)
    as a ``_Stepped``."""
    count = len(params)
    grads = dict(zip(params, results[2 : 2 + count], strict=True))
    new = dict(zip(params, results[2 + count :], strict=True))
    return _Stepped(results[0], results[1], grads, new)


def _pieces_step(
    caller: Caller,
    case: Case,
    x: np.ndarray,
    params: dict[str, np.ndarray],
    target: np.ndarray,
    lr: float,
    *,
    with_grad_x: bool,
) -> _Stepped | Finding:
    """The step composed of forward, loss_grad, loss, each parameter's gradient (grad_w,
    grad_b), grad_x and update (of each parameter); ``dL_dx`` is None unless ``with_grad_x``."""
    output = _arrays(caller, case, "forward", [x, *params.values()])
    if isinstance(output, Finding):
        return output
    dL_do = _arrays(caller, case, "loss_grad", [output[0], target])
    if isinstance(dL_do, Finding):
        return dL_do
    named = {"x": x, "dL_do": dL_do[0]}
    pieces: dict[str, tuple[str, list[np.ndarray]]] = {"L": ("loss", [output[0], target])}
    for name in params:
        function = f"grad_{name}"
        arguments = [named[argument] for argument in FUNCTIONS[function].arguments]
        pieces[gradient_name(name)] = (function, arguments)
    if with_grad_x:
        pieces["dL_dx"] = ("grad_x", [dL_do[0], params["w"]])
    found: dict[str, np.ndarray] = {}
    for name, (function, arrays) in pieces.items():
        result = _arrays(caller, case, function, arrays)
        if isinstance(result, Finding):
            return result
        found[name] = result[0]
    grads = {name: found[gradient_name(name)] for name in params}
    new: dict[str, np.ndarray] = {}
    for name, value in params.items():
        updated = _arrays(caller, case, "update", [value, grads[name]], lr)
        if isinstance(updated, Finding):
            return updated
        new[name] = updated[0]
    return _Stepped(found["L"], found.get("dL_dx"), grads, new)


def _step(
    caller: Caller,
    case: Case,
    x: np.ndarray,
    params: dict[str, np.ndarray],
    target: np.ndarray,
    lr: float,
) -> _Stepped | Finding:
    """The step from ``step``, or composed of the pieces (no dL_dx)."""
    if "step" in caller.provided:
        fused = _arrays(caller, case, "step", [x, *params.values(), target], lr)
        return fused if isinstance(fused, Finding) else _tree(fused, params)
    return _pieces_step(caller, case, x, params, target, lr, with_grad_x=False)


def _loss(
    caller: Caller,
    case: Case,
    x: np.ndarray,
    params: dict[str, np.ndarray],
    target: np.ndarray,
    lr: float,
) -> np.ndarray | Finding:
    if "step" in caller.provided:
        result = _arrays(caller, case, "step", [x, *params.values(), target], lr)
        return result if isinstance(result, Finding) else result[0]
    output = _arrays(caller, case, "forward", [x, *params.values()])
    if isinstance(output, Finding):
        return output
    loss = _arrays(caller, case, "loss", [output[0], target])
    return loss if isinstance(loss, Finding) else loss[0]


def _in_range(x: np.ndarray, params: dict[str, np.ndarray], target: np.ndarray) -> bool:
    """Whether the loss at ``params`` (the updated ones) stays inside ``bounds.safe_limit`` (as
    generated data do)."""
    with np.errstate(all="ignore"):
        output = output_magnitude(x, params)
        loss = float(np.sum(output + np.abs(target.astype(np.float64))))
    return bool(np.isfinite(loss) and loss < bounds.safe_limit(x.dtype))


class NotJudged(Exception):
    """A case a check cannot judge because a piece it rests on is itself wrong (the message says
    which); that piece's own check reports the defect. The search counts such cases."""


def _premise(name: str, actual: np.ndarray, bound: bounds.Bound, what: str) -> None:
    """Raise NotJudged unless ``actual`` is inside ``bound``: ``what`` says what it is."""
    if bound.worst(actual) > 1.0:
        raise NotJudged(f"the candidate's {what} is outside its error bound (see {name})")


def _suspects(name: str, first: bool, loss: str) -> str:
    """The results a finding names for parameter ``name``: ``loss, dL_dw or w_new`` (the loss
    goes with the first parameter's), ``dL_db or b_new``."""
    names = [loss] * first + [gradient_name(name), updated_name(name)]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _wrong_shape(stepped: _Stepped, params: dict[str, np.ndarray]) -> Finding | None:
    """The first parameter (in call order) whose gradient or update has the wrong shape (the
    loss, a scalar, goes with the first), or None."""
    for index, (name, value) in enumerate(params.items()):
        shapes = (stepped.grads[name].shape, stepped.new[name].shape)
        if any(shape != value.shape for shape in shapes) or (index == 0 and stepped.loss.ndim):
            suspects = _suspects(name, index == 0, "loss")
            return Finding(Diagnosis.WRONG_SHAPE, f"{suspects} has the wrong shape")
    return None


def _nonfinite(stepped: _Stepped) -> Finding | None:
    """The first parameter whose gradient or update holds a NaN or an infinity (the loss goes
    with the first), or None."""
    for index, name in enumerate(stepped.grads):
        values = [stepped.loss] * (index == 0) + [stepped.grads[name], stepped.new[name]]
        if not all(np.all(np.isfinite(value)) for value in values):
            suspects = _suspects(name, index == 0, "the loss")
            return Finding(Diagnosis.NAN, f"NaN or infinity in {suspects}")
    return None


def judge_identities(caller: Caller, case: Case, options: Settings) -> tuple[float, Finding | None]:
    """Convexity and no crossing for the candidate's step ``w -> w_new`` (module docstring);
    with a bias, ``(w, b) -> (w_new, b_new)``: over every parameter of the tree.

    With L0 = L(w), L1 = L(w_new), g = dL_dw (all the candidate's), the tolerance is the
    error bound of both losses plus how far a correctly rounded update may move the loss:
    ``sum |x| @ radius(w_new)`` (and ``N sum radius(b_new)``: b moves every row;
    ``_params.output_mass``), divided by the reduction's D. Crossing is judged on the float64
    outputs at w and w_new, away from the kinks (where the forward bound leaves the sign open).

    The identities rest on the loss and the update, not on g: a case where L0, L1 or
    ``w_new = w - lr g`` is itself outside its bound (in the declared arithmetic) is not
    judged (``NotJudged``): the loss or update check names that defect, and convexity would
    blame g for it.
    """
    x, target = case.arrays["x"], case.arrays["target"]
    params = case.params
    lr = case.learning_rate
    stepped = _step(caller, case, x, params, target, lr)
    if isinstance(stepped, Finding):
        return math.inf, stepped
    wrong_shape = _wrong_shape(stepped, params)
    if wrong_shape is not None:
        return math.inf, wrong_shape
    # w_new and b_new as the parameters' dtype holds them (a float64 result may overflow it).
    new_stored = {name: stepped.new[name].astype(value.dtype) for name, value in params.items()}
    as_float64 = _Stepped(
        stepped.loss.astype(np.float64),
        None,
        {name: stepped.grads[name].astype(np.float64) for name in params},
        {name: value.astype(np.float64) for name, value in new_stored.items()},
    )
    nonfinite = _nonfinite(as_float64)
    if nonfinite is not None:
        return math.inf, nonfinite
    loss0, grads, new = as_float64.loss, as_float64.grads, as_float64.new
    if not _in_range(x, new, target):
        return 0.0, None  # L(w_new) would overflow the dtype: the identities say nothing here
    at_w_new = _loss(caller, case, x, new_stored, target, lr)
    if isinstance(at_w_new, Finding):
        return math.inf, at_w_new
    loss1 = at_w_new.astype(np.float64)
    if loss1.ndim or not np.isfinite(loss1):
        return math.inf, Finding(Diagnosis.NAN, f"L(w_new) = {loss1}: not a finite scalar")
    arith = options.arithmetic()
    x64, t64 = x.astype(np.float64), target.astype(np.float64)
    params64 = {name: value.astype(np.float64) for name, value in params.items()}
    out0 = bounds.tree_forward_bound(x64, params64, arith)
    out1 = bounds.tree_forward_bound(x64, new, arith)
    updated = {
        name: bounds.update_bound(value, grads[name], lr, arith) for name, value in params64.items()
    }
    reduction = options.loss_reduction
    bound0 = bounds.loss_bound(out0, t64, arith, reduction=reduction)
    bound1 = bounds.loss_bound(out1, t64, arith, reduction=reduction)
    # The first parameter's update (w's, as the seed's step has it), both losses, then the
    # other parameters' updates: the first premise that fails is the one named.
    premises = [
        ("update", new[name], bound, f"update {updated_name(name)} = {name} - lr * dL_d{name}")
        for name, bound in updated.items()
    ]
    premises[1:1] = [
        ("loss", loss0, bound0, "loss L(w)"),
        ("loss", loss1, bound1, "loss L(w_new)"),
    ]
    for premise in premises:
        _premise(*premise)
    radius0, radius1 = float(bound0.radius), float(bound1.radius)
    # ||g||^2 and the move of the loss under the updates' rounding: sums over every parameter
    # (the loss's move divided by the reduction's D, as the loss is).
    descent = sum(lr * float(np.sum(grad * grad)) for grad in grads.values())
    moved = sum(output_mass(x64, name, bound.radius) for name, bound in updated.items())
    moved /= bounds.reduction_divisor(reduction, *t64.shape)
    names = [gradient_name(name) for name in params]
    g = f"g = {names[0]}" if len(names) == 1 else f"g = ({', '.join(names)})"
    tolerance = radius0 + radius1 + moved + 1e-12 * descent
    predicted = float(loss0) - descent
    slack = float(loss1) - predicted
    call = case.describe()
    if slack < -tolerance:
        return -slack / tolerance, Finding(
            Diagnosis.CONVEXITY,
            f"L(w - lr g) < L(w) - lr ||g||^2: {g} is not a subgradient of the loss "
            "(convexity is violated)",
            explain("L(w_new)", float(loss1), predicted, bound=tolerance, call=call, relation=">="),
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
                Diagnosis.CONVEXITY,
                "no output crosses its target, so L(w - lr g) must equal L(w) - lr ||g||^2 "
                "(the no-crossing identity), but it does not",
                explain("L(w_new)", float(loss1), predicted, bound=tolerance, call=call),
                ratio,
            )
    return ratio, None


def pieces_agree(caller: Caller, case: Case, options: Settings) -> bool:
    """Whether the fused ``step`` on ``case`` equals the step composed of the candidate's own
    pieces, each result within twice its error bound (both are within one of the exact value;
    dL_dx is compared only where grad_x is provided)."""
    x, target = case.arrays["x"], case.arrays["target"]
    params = case.params
    lr = case.learning_rate
    fused = _arrays(caller, case, "step", [x, *params.values(), target], lr)
    if isinstance(fused, Finding):
        return False
    composed = _pieces_step(
        caller, case, x, params, target, lr, with_grad_x="grad_x" in caller.provided
    )
    if isinstance(composed, Finding):
        return False
    arith = options.arithmetic()
    expected = bounds.tree_step_bounds(
        x, params, target, lr, arith, tie=options.tie, reduction=options.loss_reduction
    )
    radii = tuple(bound.radius for bound in expected.results())
    if len(fused) != len(radii):
        return False
    for got, want, radius in zip(fused, composed.results(), radii, strict=True):
        if want is None:
            continue
        got64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got64.shape != want64.shape:
            return False
        with np.errstate(all="ignore"):
            same = (got64 == want64) | (np.abs(got64 - want64) <= 2 * radius)
            same |= np.isnan(got64) & np.isnan(want64)
        if not bool(np.all(same)):
            return False
    return True


def judge_consistency(
    caller: Caller, case: Case, options: Settings
) -> tuple[float, Finding | None]:
    """The fused ``step`` against ``forward -> loss, loss_grad -> grad_x, grad_w -> update``.

    On integer data (float32 / float64) outputs, ties and both gradients are exact however
    they are computed, so dL_dx and dL_dw must agree bit for bit: a fused step whose tie
    convention, sum or upstream differs from its own pieces is caught even where both are
    admissible against the reference. L and w_new (non-integer targets, lr) must agree within
    twice their error bound (each side is within one bound of the exact value). Under a
    declared reduction that divides (mean, batchmean) the gradients are divided by D and round:
    they must agree within twice their rounding alone (``bounds.StepBounds.rounding``: a
    different tie convention moves them by ``|w| / D`` or ``|x| / D``, far more).
    """
    x, target = case.arrays["x"], case.arrays["target"]
    params = case.params
    lr = case.learning_rate
    fused = _arrays(caller, case, "step", [x, *params.values(), target], lr)
    if isinstance(fused, Finding):
        return math.inf, fused
    composed = _pieces_step(caller, case, x, params, target, lr, with_grad_x=True)
    if isinstance(composed, Finding):
        return math.inf, composed
    reduction = options.loss_reduction
    expected = bounds.tree_step_bounds(
        x, params, target, lr, options.arithmetic(), reduction=reduction
    )
    radii = {"loss": 2 * expected.loss.radius}
    radii |= {updated_name(name): 2 * bound.radius for name, bound in expected.updates.items()}
    if bounds.reduction_divisor(reduction, *target.shape) != 1:
        # Divided by D, the gradients round: each side within its rounding of the exact value.
        radii |= {name: 2 * radius for name, radius in expected.rounding.items()}
    worst = 0.0
    call = f"{case.describe()} vs its own pieces"
    pieces = " / ".join(["grad_x", *(f"grad_{name}" for name in params)])
    results = zip(step_fields(params), fused, composed.results(), strict=True)
    for name, fused_value, composed_value in results:
        assert composed_value is not None  # with_grad_x: every piece computed
        got, want = fused_value.astype(np.float64), composed_value.astype(np.float64)
        if got.shape != want.shape:
            return math.inf, Finding(
                Diagnosis.INCONSISTENT,
                f"step's {name} has shape {got.shape}, but its pieces give {want.shape}",
            )
        radius = np.broadcast_to(np.asarray(radii.get(name, 0.0)), got.shape)
        with np.errstate(all="ignore"):
            difference = np.abs(got - want)
            ratio = np.where(difference == 0, 0.0, difference / radius)
        # The same NaN on both paths is consistent (the pieces' own checks name it).
        both = np.isnan(got) & np.isnan(want)
        ratio = np.where(both, 0.0, np.where(np.isnan(got) | np.isnan(want), np.inf, ratio))
        if ratio.size and float(ratio.max()) > 1:
            index = tuple(int(k) for k in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
            ties = int(np.sum(expected.kinks))
            return float(ratio.max()), Finding(
                Diagnosis.INCONSISTENT,
                f"step's {name} differs from the one its own pieces give "
                f"(forward -> loss_grad -> {pieces} -> update)"
                + (
                    f"; {ties} output(s) sit on a tie: are the tie conventions the same?"
                    if ties
                    else ""
                ),
                explain(
                    f"step's {name}",
                    float(got[index]),
                    float(want[index]),
                    index=index,
                    bound=float(radius[index]),
                    call=call,
                ),
                float(ratio.max()),
            )
        worst = max(worst, float(ratio.max(initial=0.0)))
    return worst, None
