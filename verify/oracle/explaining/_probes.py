"""Telling candidates apart after a failure: probe cases, confirmation, and a fused step's
failure traced to the piece it follows from.

A failing counterexample is usually minimal (a 1x1x1 case fits a scale, a bias and a weight
decay alike), so ``_diagnosis`` names a cause only where the case tells it apart; otherwise it
lists candidates. ``resolve`` then runs the check on a probe case chosen for each candidate
(``_patterns.Pattern.probe``: normal values, ties, or sides past a block edge; the
counterexample's lr), and does the same for a cause named on a counterexample smaller than a
probe, where even a pattern without constants may fit by coincidence. A candidate the probe's
result fits again (with the same fitted constant) is confirmed; one it does not fit, or that
predicts a failure where the probe passes, is withdrawn. One survivor is named; otherwise the
verdict is ``mismatch`` (``nan`` for a non-finite result), with the candidates and the probe
listed. Probes run only after a failure.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from ... import bounds
from ..._params import names_for
from ..._params import output as layer_output
from ...strategies import inputs_of
from .._contract import FUNCTIONS
from .._diagnoses import Diagnosis
from .._settings import SIDES, Settings
from ..candidate import Caller, Failed
from ..judging import (
    ANY_SIDES,
    CHECKS,
    Case,
    Check,
    Finding,
    Suspect,
    make_case,
    meeting,
    pieces_agree,
)
from ._diagnosis import listed, named
from ._patterns import STATEFUL, decide

#: The smallest probe: N, I, O all different and none the product of two others, so that a
#: mean over N is told from one over O or N*O.
PROBE_SHAPE = (5, 3, 4)


#: The probe for a result that is zero or NaN everywhere on a small case: every side past the
#: edge of a block of 8 to 128 (and not one past it, where a partial block of one is also a
#: loop one short), where a kernel that skips a partial block computes the rest.
BLOCKS_SHAPE = (130, 131, 133)


def probe_shape(
    shape: tuple[int, int, int] | None,
    data: str = "normal",
    multiples: tuple[int, int, int] = ANY_SIDES,
) -> tuple[int, int, int]:
    """``PROBE_SHAPE`` (``BLOCKS_SHAPE`` for ``"blocks"`` data), grown to the counterexample's
    sides (a bug past a block edge needs the side that reaches it) and to the declared
    ``multiples`` (``--multiple-of``: each side rounded up to its own), with sides made
    distinct again (by whole multiples)."""
    base = BLOCKS_SHAPE if data == "blocks" else PROBE_SHAPE
    sides = list(base) if shape is None else [max(a, b) for a, b in zip(shape, base, strict=True)]
    sides = list(meeting((sides[0], sides[1], sides[2]), multiples))
    for k in range(3):
        others = [sides[m] for m in range(3) if m != k]
        while sides[k] in others or sides[k] == others[0] * others[1]:
            sides[k] += multiples[k]
    return sides[0], sides[1], sides[2]


def probe_shapes(
    shape: tuple[int, int, int] | None,
    data: str,
    tiles: tuple[int, ...] = (),
    multiples: tuple[int, int, int] = ANY_SIDES,
) -> list[tuple[int, int, int]]:
    """The probes of ``data`` for a counterexample of ``shape``: ``probe_shape``, and for
    ``"blocks"`` one more per declared tile past ``BLOCKS_SHAPE``, each with one side past the
    tile's edge and the others small (so the loop reference stays fast there); each side
    rounded up to the declared ``multiples``."""
    shapes = [probe_shape(shape, data, multiples)]
    if data == "blocks":
        for tile in tiles:
            if tile + 1 >= min(BLOCKS_SHAPE):
                past = [(tile + 2, 3, 4), (5, tile + 3, 4), (5, 3, tile + 4)]
                shapes += [tuple(meeting(each, multiples)) for each in past]  # type: ignore[misc]
    return shapes


def probe_case(
    check: Check,
    dtype: str,
    data: str,
    shape: tuple[int, int, int],
    lr: float | None = None,
    *,
    bias: bool = False,
    seed: int = 20260,
) -> Case:
    """A fixed case of ``shape`` for ``check`` (on the layer with a bias: b drawn as w, the
    targets placed around ``x @ w + b``).

    ``data``: ``"normal"`` (or ``"blocks"``) values with targets 0.5 or 1.5 away from the
    outputs (inside and outside smooth L1's quadratic zone, so a squared or Huber loss shows),
    or ``"ties"``: small integers, exact in every dtype, with half the targets equal to the
    outputs. ``lr`` is the counterexample's (a bug may be in how lr is read), else 1/16;
    upstream gradients are normal, times 3.
    """
    rng = np.random.default_rng(seed)
    n, i, o = shape
    np_dtype = bounds.numpy_dtype(dtype)
    if data == "ties":
        x = rng.integers(-3, 4, size=(n, i)).astype(np_dtype)
        w = rng.integers(-3, 4, size=(i, o)).astype(np_dtype)
    else:
        x = rng.standard_normal((n, i)).astype(np_dtype)
        w = rng.standard_normal((i, o)).astype(np_dtype)
    offsets = rng.choice([-1.5, -0.5, 0.5, 1.5], size=(n, o))
    if data == "ties":
        offsets = np.where(rng.random((n, o)) < 0.5, 0.0, offsets)
    parameters = names_for(bias)
    params = {"w": w}
    # Every other parameter is drawn after everything the layer without a bias draws: its
    # probes stay as they were.
    for name in parameters[1:]:
        params[name] = _PROBE_DRAWS[name](rng, data, o).astype(np_dtype)
    target = (layer_output(x, params) + offsets).astype(np_dtype)
    rate = 2.0**-4 if lr is None else lr
    inputs = inputs_of(x, params, target, rate, f"{data} (probe)")
    upstream = (rng.standard_normal((n, o)) * 3).astype(np_dtype)
    gradient = (rng.standard_normal((i, o)) * 3).astype(np_dtype)
    return make_case(check.signature_for(parameters), inputs, upstream, gradient)


#: How a probe draws each parameter besides w, by name: ``(rng, data, O) -> values``.
_PROBE_DRAWS = {
    "b": lambda rng, data, o: (
        rng.integers(-3, 4, size=o) if data == "ties" else rng.standard_normal(o)
    ),
}


def _fits_again(candidate: Suspect, found: Finding | None) -> bool | str | None:
    """What a probe's finding says of ``candidate``: the probe's words for it when the probe's
    result fits it again (with the same fitted constant, where it has one; clearly, where it
    has none); None when it says nothing (a rounding effect on a probe that passes, or the
    same unclear fit again: a zero result on a probe too small for the block that skips it);
    False when it contradicts it (the probe passed where the pattern predicts a failure, or
    its result does not fit the pattern)."""
    if found is None:
        return None if candidate.rounding else False
    fitting = [Suspect(found.kind, found.detail, found.value), *found.candidates]
    unclear_again = False
    for other in fitting:
        if other.kind is not candidate.kind:
            continue
        if candidate.value is not None:
            same = other.value is not None and math.isclose(
                other.value, candidate.value, rel_tol=1e-3
            )
            if same:
                return other.detail
        elif not other.unclear:
            return other.detail
        else:
            unclear_again = True
    return None if unclear_again else False


def _shape_words(shape: tuple[int, int, int]) -> str:
    n, i, o = shape
    return f"N={n}, I={i}, O={o}"


def _judged(check: Check, caller: Caller, case: Case, options: Settings) -> Finding | None:
    """The finding of ``check`` on ``case``, its cause named by the evidence alone (``named``):
    what a probe's result says, before any further probe."""
    _, found = check.run(caller, case, options)
    return None if found is None else named(found, case, options)


def resolve(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> tuple[Case, Finding]:
    """``finding`` with its candidates told apart on probes (module docstring), and the case
    that shows it. A ``mismatch`` with no candidates is probed once for a defect that only shows
    across calls (a shrunk case may have lost the gradient that shows an accumulation); that
    probe then becomes the counterexample, since it shows the defect in two calls from a fresh
    start, as a reproducer replays it."""
    if not check.ambiguity_probe:
        return case, finding
    if finding.kind in (Diagnosis.RAISED, Diagnosis.CRASHED):
        return case, with_block_hint(check, caller, case, finding, options)
    if not finding.candidates:
        # A failure the counterexample explains nothing of, or two calls that disagree, may be
        # a stateful pattern a shrunk case lost (the gradient that shows an accumulation):
        # probed for on normal data (``_patterns``, rule 3).
        if finding.kind not in (Diagnosis.MISMATCH, Diagnosis.NONDETERMINISTIC) or not STATEFUL:
            return case, finding
        shape = probe_shape(case.shape, multiples=options.multiples)
        probe = probe_case(check, options.dtype, "normal", shape, case.lr, bias=biased(case))
        found = _judged(check, caller, probe, options)
        if found is not None and found.kind in STATEFUL and found.kind is not finding.kind:
            return probe, found
        return case, finding
    if finding.ambiguous or smaller_than_a_probe(case):
        return case, _told_apart(check, caller, case, finding, options)
    return case, finding


def biased(case: Case) -> bool:
    """Whether ``case`` is a call of the layer with a bias (its probes are too)."""
    return "b" in case.arrays or "dL_db" in case.arrays or case.function == "grad_b"


def smaller_than_a_probe(case: Case) -> bool:
    """Whether ``case`` has a side below ``PROBE_SHAPE``'s: on so few elements even a pattern
    without constants may fit by coincidence (a ReLU's output on one element is a sign flip of
    the step's dL_dx), so a cause named there is confirmed on a probe too."""
    return case.shape is None or any(a < b for a, b in zip(case.shape, PROBE_SHAPE, strict=True))


def _told_apart(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> Finding:
    """``finding``'s candidates after their probes: the one that survives named, or a
    ``mismatch`` that lists them."""
    verdicts: dict[Diagnosis, list[bool | str | None]] = {c.kind: [] for c in finding.candidates}
    shapes: list[str] = []
    rounding = {c.kind: c.rounding for c in finding.candidates}
    # The probe that confirmed each candidate, and its shape: its wrong elements say more
    # than a minimal counterexample's (often every element of a 1x1 result).
    shown: dict[Diagnosis, tuple[Finding, str]] = {}
    for data in dict.fromkeys(c.probe for c in finding.candidates):
        for shape in probe_shapes(case.shape, data, options.tile, options.multiples):
            shapes.append(_shape_words(shape))
            probe = probe_case(check, options.dtype, data, shape, case.lr, bias=biased(case))
            found = _judged(check, caller, probe, options)
            # Each candidate is judged on the probe chosen for it only: a tie convention says
            # nothing on a probe without ties.
            for candidate in finding.candidates:
                if candidate.probe == data:
                    said = _fits_again(candidate, found)
                    verdicts[candidate.kind].append(said)
                    if isinstance(said, str) and found is not None:
                        shown.setdefault(candidate.kind, (found, _shape_words(shape)))
    # A candidate survives when no probe contradicts it and one confirms it, or, for a
    # rounding effect, when the probes pass.
    survivors = {
        kind: next((s for s in said if isinstance(s, str)), None)
        for kind, said in verdicts.items()
        if False not in said
        and (any(isinstance(s, str) for s in said) or (rounding[kind] and said))
    }
    where = " and ".join(dict.fromkeys(shapes))
    survivors = {kind: survivors[kind] for kind in decide(list(survivors))}
    if len(survivors) == 1:
        [(kind, words)] = survivors.items()
        detail = words or _detail_of(finding, kind)
        told = dataclasses.replace(
            finding,
            kind=kind,
            detail=f"{detail} ({'confirmed' if len(verdicts) == 1 else 'told apart'} on {where})",
            candidates=(),
            unclear="",
        )
        if kind in shown and shown[kind][0].where:
            confirming, on = shown[kind]
            return dataclasses.replace(
                told, where=f"{confirming.where}, on the probe ({on})", errors=confirming.errors
            )
        return told
    outcome = "more than one survives" if survivors else "none is confirmed"
    why = f" ({finding.unclear})" if finding.unclear else ""
    return dataclasses.replace(
        finding,
        kind=Diagnosis.NAN if finding.nonfinite else Diagnosis.MISMATCH,
        detail=(
            f"{finding.result or 'the result'} is outside its error bound; it fits "
            f"{listed(finding.candidates)} on the counterexample{why}, and {outcome} on a "
            f"probe ({where})"
        ),
        value=None,
    )


def _detail_of(finding: Finding, kind: Diagnosis) -> str:
    return next(c.detail for c in finding.candidates if c.kind is kind)


# --------------------------------------------------------------------------------------------
# A call that raises where the sides are not multiples of a block: the option that declares it.
# --------------------------------------------------------------------------------------------

#: Block sizes a kernel may require its sides to be multiples of, tried smallest first.
HINT_BLOCKS = (8, 16, 32, 64, 128)

#: Whole blocks per side (N, I, O) of a hint's probe: odd, so that a side of B blocks is no
#: multiple of 2B (a kernel that needs 32 refuses 16 * 3), and distinct, so that a call that
#: runs only where two sides are equal (a transpose's wrong product) refuses it too.
HINT_COUNTS = (1, 3, 5)


def _refuses(
    check: Check, caller: Caller, case: Case, shape: tuple[int, ...], options: Settings
) -> bool | None:
    """Whether the call of ``check`` on normal data of ``shape`` raises or crashes (None: it
    timed out, which says nothing). One call, no reference: only whether it runs."""
    n, i, o = shape
    probe = probe_case(check, options.dtype, "normal", (n, i, o), case.lr, bias=biased(case))
    outcome = caller.call(probe.function, list(probe.arrays.values()), probe.lr)
    if isinstance(outcome, Failed):
        return None if outcome.kind == "timed_out" else outcome.kind in ("raised", "crashed")
    return False


def _declared(multiples: tuple[int, int, int]) -> str:
    """``multiples`` as ``--multiple-of`` spells them: ``32``, or ``N=128,I=32``."""
    if len(set(multiples)) == 1:
        return str(multiples[0])
    return ",".join(f"{side}={m}" for side, m in zip(SIDES, multiples, strict=True) if m > 1)


def with_block_hint(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> Finding:
    """A call that raised (or crashed) on ``case``, with the option that declares what it
    requires where it runs on sides that are multiples of a block B (``HINT_BLOCKS``): the
    sides of ``case`` it refuses alone are named (``I = 3``) and declared, with the
    declaration already given (``--multiple-of I=32``; all three: ``--multiple-of 32``), once
    the check judged again under it on a probe of whole blocks passes; where it is wrong there
    too, no declaration is offered (it would only move the failure), and that is said.
    Unchanged where no such B is found (a call that raises on any shape is a defect)."""
    if case.shape is None:
        return finding
    declared = options.multiples
    for block in HINT_BLOCKS:
        whole = tuple(math.lcm(block, m) for m in declared)
        runs = tuple(w * count for w, count in zip(whole, HINT_COUNTS, strict=True))
        refused = _refuses(check, caller, case, runs, options)
        if refused is None:
            return finding
        if refused:
            continue
        culprits = [
            k
            for k, side in enumerate(case.shape)
            if side % whole[k]
            and _refuses(check, caller, case, (*runs[:k], side, *runs[k + 1 :]), options)
        ]
        named = culprits or [k for k, side in enumerate(case.shape) if side % whole[k]]
        if not named:
            return finding  # it refused sides that are multiples already: no block's doing
        wanted = (*(whole[k] if k in named else declared[k] for k in range(3)),)
        sides = ", ".join(f"{SIDES[k]} = {case.shape[k]}" for k in named)
        spelled = _declared(wanted)  # type: ignore[arg-type]  # three sides
        python = int(spelled) if spelled.isdigit() else repr(spelled)
        runs_where = f"on {sides}; it runs where they are multiples of {block}"
        wrong = _wrong_where_it_runs(check, caller, case, runs, options, spelled)
        if wrong:
            # The declaration would only move the failure: not offered.
            return dataclasses.replace(finding, detail=f"{finding.detail} ({runs_where}, {wrong})")
        n, i, o = runs
        return dataclasses.replace(
            finding,
            detail=f"{finding.detail} ({runs_where}): if the kernel requires multiples of a "
            f"block, declare it: --multiple-of {spelled} (multiple_of={python}; re-judged under "
            f"it on N={n}, I={i}, O={o}: it passes there)",
        )
    return finding


def _wrong_where_it_runs(
    check: Check,
    caller: Caller,
    case: Case,
    shape: tuple[int, ...],
    options: Settings,
    spelled: str,
) -> str:
    """Where a declaration would let the call run: the check judged again under it on a probe
    of normal data of ``shape``; why it is no fix (its result is wrong there too), or empty
    where it passes."""
    try:
        again = dataclasses.replace(options, multiple_of=spelled)
    except ValueError:
        return "past what --multiple-of can declare"
    n, i, o = shape
    probe = probe_case(check, options.dtype, "normal", (n, i, o), case.lr, bias=biased(case))
    _, found = check.run(caller, probe, again)
    if found is None:
        return ""
    return (
        f"but its result is wrong there too (re-judged under --multiple-of {spelled} on N={n}, "
        f"I={i}, O={o}): no declaration makes it pass"
    )


# --------------------------------------------------------------------------------------------
# A fused step's failure traced to a piece.
# --------------------------------------------------------------------------------------------


def _piece_cases(case: Case) -> dict[str, Case]:
    """The calls of each piece a correct step makes on ``case``'s ``(x, w, (b,) target, lr)``:
    the pieces' inputs are the right intermediate values, in the dtype (ties at -1)."""
    x, target = case.arrays["x"], case.arrays["target"]
    params = case.params
    w = params["w"]
    dtype = x.dtype
    output = layer_output(x, params).astype(dtype)
    dL_do = np.where(output.astype(np.float64) > target.astype(np.float64), 1.0, -1.0)
    dL_dw = (x.astype(np.float64).T @ dL_do).astype(dtype)
    dL_do = dL_do.astype(dtype)
    named = {"x": x, "dL_do": dL_do}
    gradients = {
        f"grad_{name}": {
            argument: named[argument] for argument in FUNCTIONS[f"grad_{name}"].arguments
        }
        for name in params
    }
    calls = {
        "forward": {"x": x, **params},
        "loss": {"output": output, "target": target},
        "loss_grad": {"output": output, "target": target},
        "grad_x": {"dL_do": dL_do, "w": w},
        "grad_w": gradients.pop("grad_w"),
        "update": {"w": w, "dL_dw": dL_dw},
        **gradients,  # every other parameter's gradient (grad_b), last
    }
    return {
        name: Case(name, arrays, case.lr if name == "update" else None, case.kind, case.shape)
        for name, arrays in calls.items()
    }


#: ``(check, caller, case, finding) -> the finding explained as that check's own would be``.
Explainer = Callable[[Check, Caller, Case, Finding], Finding]


def _first_failing(
    caller: Caller, calls: dict[str, Case], options: Settings, explained: Explainer
) -> tuple[str, Finding] | None:
    """The first of ``calls`` (by check name) that the candidate provides and that fails,
    with its finding explained as its own check's would be (``explained``)."""
    for name, call in calls.items():
        if name not in caller.provided:
            continue
        check = CHECKS[name]
        _, found = check.run(caller, call, options)
        if found is not None:
            return name, explained(check, caller, call, found)
    return None


def follows_from_pieces(
    caller: Caller,
    case: Case,
    finding: Finding,
    options: Settings,
    explained: Explainer | None = None,
) -> Finding:
    """A fused step's failure traced to the first of its own pieces that fails on the same
    data, where the candidate provides the pieces and its step agrees with them on ``case``
    (so the step's defect is the piece's). A step that cannot be traced is left as it is.

    A failure of the ``identities`` or ``consistency`` (which compose the step or the pieces)
    keeps its own verdict, with a note naming the first function that fails on the same data.
    ``explained`` explains a failing piece as its own check would (default: by evidence and
    probes alone).
    """
    if explained is None:

        def explained(check: Check, caller: Caller, case: Case, found: Finding) -> Finding:
            return resolve(check, caller, case, named(found, case, options), options)[1]

    if case.function != "step":
        step = Case("step", dict(case.arrays), case.lr, case.kind, case.shape)
        failing = _first_failing(caller, {"step": step, **_piece_cases(case)}, options, explained)
        if failing is None:
            return finding
        name, found = failing
        return dataclasses.replace(
            finding, detail=f"{finding.detail} ({name} fails on the same data: {found.kind})"
        )
    failing = _first_failing(caller, _piece_cases(case), options, explained)
    if failing is None:
        return finding
    name, found = failing
    needed = {"forward", "loss", "loss_grad", "update", *(f"grad_{name}" for name in case.params)}
    unnamed = (Diagnosis.MISMATCH, Diagnosis.NAN)
    if needed <= caller.provided and pieces_agree(caller, case, options):
        # The step's defect is its piece's: the piece's explanation, whatever it is.
        if found.kind in unnamed and found.kind is finding.kind:
            return dataclasses.replace(
                finding, detail=f"{finding.detail}; {name} fails on the same data: {found.detail}"
            )
        return dataclasses.replace(
            finding,
            kind=found.kind,
            detail=f"follows from {name}: {found.detail} (the step equals its own pieces "
            "on this case)",
            candidates=(),
            unclear="",
            value=found.value,
        )
    if finding.kind is Diagnosis.REDUCED_PRECISION or finding.kind in unnamed:
        # A piece fails on the same data for a reason of its own: the step names no rounding
        # cause, and claims no cause the piece's failure could account for.
        return dataclasses.replace(
            finding,
            kind=Diagnosis.NAN if finding.nonfinite else Diagnosis.MISMATCH,
            detail=f"{finding.result or 'the result'} is outside its error bound, and its own "
            f"{name} fails on the same data ({found.kind}: {found.detail})",
            candidates=(),
            unclear="",
            value=None,
        )
    note = (
        f"follows from {name}" if found.kind is finding.kind else f"{name} also fails: {found.kind}"
    )
    return dataclasses.replace(finding, detail=f"{finding.detail} ({note})")
