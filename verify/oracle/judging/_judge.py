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

  With a bias, in (w, b): g = (dL_dw, dL_db), L(w - lr g_w, b - lr g_b) and
  ``||g||^2 = ||dL_dw||_F^2 + ||dL_db||^2`` (grad_b and update of b among the pieces).

- ``judge_consistency``: the fused ``step`` against the same step composed of the candidate's
  own pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ... import bounds
from ...messages import explain
from .._contract import signature_for
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
    expected = expect(case, options.arithmetic(), tie=options.tie, exact=options.exact)
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


def _pieces_step(
    caller: Caller,
    case: Case,
    x: np.ndarray,
    w: np.ndarray,
    target: np.ndarray,
    lr: float,
    *,
    with_grad_x: bool,
    b: np.ndarray | None = None,
) -> list[np.ndarray | None] | Finding:
    """``(L, dL_dx, dL_dw, w_new)`` composed of forward, loss_grad, loss, grad_x, grad_w and
    update; ``dL_dx`` is None unless ``with_grad_x``. With a bias ``b``,
    ``(L, dL_dx, dL_dw, dL_db, w_new, b_new)``, with grad_b and update of b as well."""
    output = _arrays(caller, case, "forward", [x, w] if b is None else [x, w, b])
    if isinstance(output, Finding):
        return output
    dL_do = _arrays(caller, case, "loss_grad", [output[0], target])
    if isinstance(dL_do, Finding):
        return dL_do
    pieces: dict[str, tuple[str, list[np.ndarray]]] = {
        "L": ("loss", [output[0], target]),
        "dL_dw": ("grad_w", [x, dL_do[0]]),
    }
    if with_grad_x:
        pieces["dL_dx"] = ("grad_x", [dL_do[0], w])
    if b is not None:
        pieces["dL_db"] = ("grad_b", [dL_do[0]])
    found: dict[str, np.ndarray | None] = {"dL_dx": None}
    for name, (function, arrays) in pieces.items():
        result = _arrays(caller, case, function, arrays)
        if isinstance(result, Finding):
            return result
        found[name] = result[0]
    dL_dw = found["dL_dw"]
    assert dL_dw is not None  # computed above
    w_new = _arrays(caller, case, "update", [w, dL_dw], lr)
    if isinstance(w_new, Finding):
        return w_new
    if b is None:
        return [found["L"], found["dL_dx"], dL_dw, w_new[0]]
    dL_db = found["dL_db"]
    assert dL_db is not None  # computed above
    b_new = _arrays(caller, case, "update", [b, dL_db], lr)
    if isinstance(b_new, Finding):
        return b_new
    return [found["L"], found["dL_dx"], dL_dw, dL_db, w_new[0], b_new[0]]


def _with_bias(arrays: list[np.ndarray], b: np.ndarray | None) -> list[np.ndarray]:
    """A step's ``[x, w, target]`` with b after w on the layer with a bias."""
    return arrays if b is None else [*arrays[:2], b, *arrays[2:]]


def _step(
    caller: Caller,
    case: Case,
    x: np.ndarray,
    w: np.ndarray,
    target: np.ndarray,
    lr: float,
    b: np.ndarray | None = None,
) -> list[np.ndarray | None] | Finding:
    """``(L, dL_dx, dL_dw, w_new)`` (with a bias ``(L, dL_dx, dL_dw, dL_db, w_new, b_new)``)
    from ``step``, or composed of the pieces (no dL_dx)."""
    if "step" in caller.provided:
        fused = _arrays(caller, case, "step", _with_bias([x, w, target], b), lr)
        return fused if isinstance(fused, Finding) else list(fused)
    return _pieces_step(caller, case, x, w, target, lr, with_grad_x=False, b=b)


def _loss(
    caller: Caller,
    case: Case,
    x: np.ndarray,
    w: np.ndarray,
    target: np.ndarray,
    lr: float,
    b: np.ndarray | None = None,
) -> np.ndarray | Finding:
    if "step" in caller.provided:
        result = _arrays(caller, case, "step", _with_bias([x, w, target], b), lr)
        return result if isinstance(result, Finding) else result[0]
    output = _arrays(caller, case, "forward", [x, w] if b is None else [x, w, b])
    if isinstance(output, Finding):
        return output
    loss = _arrays(caller, case, "loss", [output[0], target])
    return loss if isinstance(loss, Finding) else loss[0]


def _in_range(
    x: np.ndarray, w_new: np.ndarray, target: np.ndarray, b_new: np.ndarray | None = None
) -> bool:
    """Whether the loss at ``w_new`` (and ``b_new``) stays inside ``bounds.safe_limit`` (as
    generated data do)."""
    with np.errstate(all="ignore"):
        output = np.abs(x.astype(np.float64)) @ np.abs(w_new.astype(np.float64))
        if b_new is not None:
            output = output + np.abs(b_new.astype(np.float64))
        loss = float(np.sum(output + np.abs(target.astype(np.float64))))
    return bool(np.isfinite(loss) and loss < bounds.safe_limit(x.dtype))


class NotJudged(Exception):
    """A case a check cannot judge because a piece it rests on is itself wrong (the message says
    which); that piece's own check reports the defect. The search counts such cases."""


def _premise(name: str, actual: np.ndarray, bound: bounds.Bound, what: str) -> None:
    """Raise NotJudged unless ``actual`` is inside ``bound``: ``what`` says what it is."""
    if bound.worst(actual) > 1.0:
        raise NotJudged(f"the candidate's {what} is outside its error bound (see {name})")


def judge_identities(caller: Caller, case: Case, options: Settings) -> tuple[float, Finding | None]:
    """Convexity and no crossing for the candidate's step ``w -> w_new`` (module docstring);
    with a bias, ``(w, b) -> (w_new, b_new)``.

    With L0 = L(w), L1 = L(w_new), g = dL_dw (all the candidate's), the tolerance is the
    error bound of both losses plus how far a correctly rounded update may move the loss:
    ``sum |x| @ radius(w_new)`` (and ``N sum radius(b_new)``: b moves every row). Crossing is
    judged on the float64 outputs at w and w_new, away from the kinks (where the forward
    bound leaves the sign open).

    The identities rest on the loss and the update, not on g: a case where L0, L1 or
    ``w_new = w - lr g`` is itself outside its bound (in the declared arithmetic) is not
    judged (``NotJudged``): the loss or update check names that defect, and convexity would
    blame g for it.
    """
    x, w, target = (case.arrays[n] for n in ("x", "w", "target"))
    b = case.arrays.get("b")
    lr = case.learning_rate
    stepped = _step(caller, case, x, w, target, lr, b)
    if isinstance(stepped, Finding):
        return math.inf, stepped
    if b is None:
        loss0, grad, w_new_stored = stepped[0], stepped[2], stepped[3]
        grad_b = b_new_stored = None
    else:
        loss0, grad, grad_b, w_new_stored, b_new_stored = (stepped[k] for k in (0, 2, 3, 4, 5))
    assert loss0 is not None and grad is not None and w_new_stored is not None  # see _step
    if grad.shape != w.shape or w_new_stored.shape != w.shape or loss0.ndim:
        return math.inf, Finding(Diagnosis.WRONG_SHAPE, "loss, dL_dw or w_new has the wrong shape")
    if b is not None:
        assert grad_b is not None and b_new_stored is not None  # see _step
        if grad_b.shape != b.shape or b_new_stored.shape != b.shape:
            return math.inf, Finding(Diagnosis.WRONG_SHAPE, "dL_db or b_new has the wrong shape")
        b_new_stored = b_new_stored.astype(b.dtype)
    w_new_stored = w_new_stored.astype(w.dtype)
    loss0, grad, w_new = (v.astype(np.float64) for v in (loss0, grad, w_new_stored))
    if not all(np.all(np.isfinite(v)) for v in (loss0, grad, w_new)):
        return math.inf, Finding(Diagnosis.NAN, "NaN or infinity in the loss, dL_dw or w_new")
    b64 = b_new = gb = None
    if b is not None:
        assert grad_b is not None and b_new_stored is not None
        b64, gb, b_new = (v.astype(np.float64) for v in (b, grad_b, b_new_stored))
        if not (np.all(np.isfinite(gb)) and np.all(np.isfinite(b_new))):
            return math.inf, Finding(Diagnosis.NAN, "NaN or infinity in dL_db or b_new")
    if not _in_range(x, w_new, target, b_new):
        return 0.0, None  # L(w_new) would overflow the dtype: the identities say nothing here
    at_w_new = _loss(caller, case, x, w_new_stored, target, lr, b_new_stored)
    if isinstance(at_w_new, Finding):
        return math.inf, at_w_new
    loss1 = at_w_new.astype(np.float64)
    if loss1.ndim or not np.isfinite(loss1):
        return math.inf, Finding(Diagnosis.NAN, f"L(w_new) = {loss1}: not a finite scalar")
    arith = options.arithmetic()
    x64, w64, t64 = (a.astype(np.float64) for a in (x, w, target))
    out0 = bounds.forward_bound(x64, w64, arith, b=b64)
    out1 = bounds.forward_bound(x64, w_new, arith, b=b_new)
    updated = bounds.update_bound(w64, grad, lr, arith)
    bound0, bound1 = bounds.loss_bound(out0, t64, arith), bounds.loss_bound(out1, t64, arith)
    _premise("update", w_new, updated, "update w_new = w - lr * dL_dw")
    _premise("loss", loss0, bound0, "loss L(w)")
    _premise("loss", loss1, bound1, "loss L(w_new)")
    radius0, radius1 = float(bound0.radius), float(bound1.radius)
    update_radius = updated.radius
    descent = lr * float(np.sum(grad * grad))
    moved = float(np.sum(np.abs(x64) @ update_radius))
    g = "g = dL_dw"
    if b is not None:
        assert b64 is not None and gb is not None and b_new is not None
        updated_b = bounds.update_bound(b64, gb, lr, arith)
        _premise("update", b_new, updated_b, "update b_new = b - lr * dL_db")
        descent += lr * float(np.sum(gb * gb))
        moved += x64.shape[0] * float(np.sum(updated_b.radius))
        g = "g = (dL_dw, dL_db)"
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
    x, w, target = (case.arrays[n] for n in ("x", "w", "target"))
    b = case.arrays.get("b")
    lr = case.learning_rate
    fused = _arrays(caller, case, "step", _with_bias([x, w, target], b), lr)
    if isinstance(fused, Finding):
        return False
    composed = _pieces_step(
        caller, case, x, w, target, lr, with_grad_x="grad_x" in caller.provided, b=b
    )
    if isinstance(composed, Finding):
        return False
    expected = bounds.step_bounds(x, w, target, lr, options.arithmetic(), tie=options.tie, b=b)
    radii = tuple(bound.radius for bound in expected.results())
    if len(fused) != len(radii):
        return False
    for got, want, radius in zip(fused, composed, radii, strict=True):
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
    twice their error bound (each side is within one bound of the exact value).
    """
    x, w, target = (case.arrays[n] for n in ("x", "w", "target"))
    b = case.arrays.get("b")
    lr = case.learning_rate
    fused = _arrays(caller, case, "step", _with_bias([x, w, target], b), lr)
    if isinstance(fused, Finding):
        return math.inf, fused
    composed = _pieces_step(caller, case, x, w, target, lr, with_grad_x=True, b=b)
    if isinstance(composed, Finding):
        return math.inf, composed
    expected = bounds.step_bounds(x, w, target, lr, options.arithmetic(), b=b)
    radii = {"loss": 2 * expected.loss.radius, "w_new": 2 * expected.w_new.radius}
    if expected.b_new is not None:
        radii["b_new"] = 2 * expected.b_new.radius
    worst = 0.0
    call = f"{case.describe()} vs its own pieces"
    step_results = signature_for(
        "step", ("x", "w", "target") if b is None else ("x", "w", "b", "target")
    ).results
    for name, fused_value, composed_value in zip(step_results, fused, composed, strict=True):
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
                f"(forward -> loss_grad -> grad_x / grad_w{' / grad_b' if b is not None else ''}"
                " -> update)"
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
