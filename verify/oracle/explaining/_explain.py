"""The one entry point of the explaining wing: ``explain``, used by the run after a search and
by the reproducer, so that both say the same of one failure."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import bounds
from .._diagnoses import Diagnosis
from .._settings import Settings
from ..candidate import Caller, Outcome
from ..judging import CHECKS, Case, Check, Finding
from ._diagnosis import diagnose, listed, named
from ._patterns import BY_KIND, EVIDENCE_OF, NONFINITE, VALUES, spelled, structure_of
from ._probes import (
    biased,
    follows_from_pieces,
    probe_case,
    probe_shape,
    resolve,
    smaller_than_a_probe,
)
from ._structure import CONTRACT, DIFFERS, Reading


class Counted:
    """A caller that counts the calls made through it: what an explanation cost."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller
        self.made = 0
        self.name, self.provided = caller.name, caller.provided
        self.load_notes, self.bias = caller.load_notes, caller.bias
        self.reduction = caller.reduction

    @property
    def notes(self) -> collections.Counter[str]:
        return self._caller.notes

    @property
    def compiles(self) -> int:
        return self._caller.compiles

    def call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        self.made += 1
        return self._caller.call(function, arrays, lr)

    def close(self) -> None:
        self._caller.close()


def explain(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> tuple[Case, Finding]:
    """The cause of ``check``'s failure on ``case``, and the case that shows it best.

    1. The cause is named by the evidence the judge kept (``named``: no call).
    2. A wrong result the registry reads by structure (``_patterns.STRUCTURES``: a term map, a
       branch or weight table, each parameter's update) is read on exact probes: a difference
       from the contract names the cause (exact: it needs no other probe); the contract itself
       there leaves only rounding and value-dependent causes (the structural candidates are
       withdrawn); a reading that names nothing but rules causes out (an update that fits
       none of the step models) withdraws those; a reading that cannot be made says why, and
       the patterns go on.
    3. Candidates not told apart are confirmed or withdrawn on probes (``resolve``).
    4. A loss-scale cause (a mean, a scale) offers the ``--reduction`` that declares it only
       once the check and the loss's other piece, judged again under it, pass; where the loss
       and loss_grad are accepted by different reductions, it says so (``_reduction_declared``).
    5. A fused step's failure is traced to its own pieces (``follows_from_pieces``).
    6. A rounding cause offers an option only once the check, judged again under it, passes.

    Calls the candidate only after a failure; the finding says how many calls it cost.
    Numpy's floating-point warnings are off within: the readings do arithmetic on whatever the
    candidate returned (inf - inf from a kernel's uninitialized memory), and judge every
    result they compute by comparison, never by a warning.
    """
    with np.errstate(all="ignore"):
        return _explain(check, caller, case, finding, options)


def _explain(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> tuple[Case, Finding]:
    counted = Counted(caller)
    judged = finding.kind
    finding = named(finding, case, options)
    reading = _structure(check, counted, case, finding, judged, options)
    if reading is not None and reading.status == DIFFERS:
        read = _with_reading(finding, reading, case)
        finding = _shown_on_a_probe(check, counted, case, read, options)
    else:
        if reading is not None:
            finding = _read_as(finding, reading)
        case, finding = resolve(check, counted, case, finding, options)
        if finding.kind in (Diagnosis.MISMATCH, Diagnosis.NAN) and check.ambiguity_probe:
            case, finding = _second_look(check, counted, case, finding, options)
    finding = _reduction_declared(check, counted, case, finding, options)
    if check.from_pieces:

        def explained(piece: Check, caller: Caller, call: Case, found: Finding) -> Finding:
            # A piece's failure is explained as its own check's is (structure first).
            return _explain(piece, caller, call, found, options)[1]

        finding = follows_from_pieces(counted, case, finding, options, explained)
    finding = _rejudged(check, counted, case, finding, options)
    return case, dataclasses.replace(finding, probe_calls=counted.made)


def _structure(
    check: Check,
    caller: Caller,
    case: Case,
    finding: Finding,
    judged: Diagnosis,
    options: Settings,
) -> Reading | None:
    """The registry's structural reading of the failing result, where it has one and the judge
    found the result's values wrong (not its shape, dtype or repeatability)."""
    evidence = EVIDENCE_OF.get(judged, frozenset())
    if not (evidence & {VALUES, NONFINITE}) or not finding.result:
        return None
    record = structure_of(check.name, finding.result)
    if record is None:
        return None
    return record.read(caller, case, finding, options)


#: The seed of the second look's probe values (``_second_look``; the probes' is 20260).
SECOND_LOOK = 20264


def _second_look(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> tuple[Case, Finding]:
    """A failure the counterexample names nothing of, looked at again on a probe of normal data
    at least ``_probes.PROBE_SHAPE`` (a shrunk case may be too small to show a pattern: a loss
    that pairs rows with their neighbours is 0 on one row): the probe's own cause, named by its
    evidence and confirmed on probes as a counterexample's is, and the probe as the case that
    shows it; otherwise the finding as it was."""
    # Other values than the probes that then confirm it (another seed), so that a constant
    # fitted here is fitted again only where it is the bug's.
    shape = probe_shape(case.shape, multiples=options.multiples)
    probe = probe_case(
        check, options.dtype, "normal", shape, case.lr, bias=biased(case), seed=SECOND_LOOK
    )
    _, found = check.run(caller, probe, options)
    if found is None:
        return case, finding
    shown, looked = resolve(check, caller, probe, named(found, probe, options), options)
    if looked.kind in (Diagnosis.MISMATCH, Diagnosis.NAN) or looked.kind not in BY_KIND:
        return case, finding
    return shown, looked


def _shown_on_a_probe(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> Finding:
    """Where the counterexample is smaller than a probe (one element shows no region), which
    elements are wrong and the heatmap, from the check judged once on a probe of normal data
    (as a confirming probe's are); otherwise the finding as it is."""
    if not smaller_than_a_probe(case):
        return finding
    shape = probe_shape(case.shape, multiples=options.multiples)
    probe = probe_case(check, options.dtype, "normal", shape, case.lr, bias=biased(case))
    _, found = check.run(caller, probe, options)
    if found is None or not found.where:
        return finding
    n, i, o = shape
    return dataclasses.replace(
        finding, where=f"{found.where}, on the probe (N={n}, I={i}, O={o})", errors=found.errors
    )


def _with_reading(finding: Finding, reading: Reading, case: Case) -> Finding:
    """``finding`` named by a structural difference: exact, so it stands alone. A NaN of the
    counterexample that the reading's finite probes do not show is said beside it (a kernel
    that leaves its output unwritten where no whole block is read): the reading explains the
    probes, not that."""
    assert reading.kind is not None  # a difference names one
    detail = reading.detail
    if finding.nonfinite and reading.kind is not Diagnosis.NAN and case.shape is not None:
        n, i, o = case.shape
        detail += f"; on the counterexample (N={n}, I={i}, O={o}) the result has NaN or infinity"
    return dataclasses.replace(
        finding,
        kind=reading.kind,
        detail=detail,
        value=reading.value,
        candidates=(),
        unclear="",
    )


def _read_as(finding: Finding, reading: Reading) -> Finding:
    """``finding`` after a reading that names nothing: on the contract's map, structural
    candidates are withdrawn (a named structural cause too: it was fitted on a case too small
    to tell); otherwise the reading's words are kept beside the patterns'."""
    if reading.status != CONTRACT:
        kept = tuple(c for c in finding.candidates if c.kind not in reading.ruled_out)
        if len(kept) == len(finding.candidates) and finding.kind not in reading.ruled_out:
            return dataclasses.replace(finding, detail=f"{finding.detail}; {reading.detail}")
        # The reading contradicts a pattern fitted on the counterexample: it is withdrawn.
        unnamed = Diagnosis.NAN if finding.nonfinite else Diagnosis.MISMATCH
        fits = f"; it fits {listed(kept)} on this case, not yet told apart" if kept else ""
        return dataclasses.replace(
            finding,
            kind=unnamed,
            detail=f"{finding.result} is outside its error bound{fits}; {reading.detail}",
            candidates=kept,
            value=None,
        )
    kept = tuple(c for c in finding.candidates if BY_KIND[c.kind].rounding)
    note = f"by structure it computes {reading.detail}"
    if finding.kind in BY_KIND and not BY_KIND[finding.kind].rounding:
        unnamed = Diagnosis.NAN if finding.nonfinite else Diagnosis.MISMATCH
        return dataclasses.replace(
            finding,
            kind=unnamed,
            detail=f"{finding.result} is outside its error bound; {note}: a {finding.kind} "
            "fitted on the counterexample is contradicted",
            candidates=kept,
            value=None,
        )
    return dataclasses.replace(finding, candidates=kept, detail=f"{finding.detail}; {note}")


#: The checks whose contract the reduction changes (the gradients take dL_do as given), and the
#: loss's two pieces, which must be reduced alike.
_REDUCED = ("loss", "loss_grad", "step")
_LOSS_PIECES = ("loss", "loss_grad")


def _reduction_declared(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> Finding:
    """A mean or a scale of the loss or its gradient, re-judged under each other reduction
    (``bounds.REDUCTIONS``) on the case and a probe of normal data: the one that accepts the
    check and the loss's other piece (where the candidate has it) is offered, and the cause is
    a reduction other than the declared one (``mean_instead_of_sum``); where loss and loss_grad
    are accepted by different reductions, the finding names both. A check no reduction accepts
    is left as it is."""
    if check.name not in _REDUCED or finding.kind not in (
        Diagnosis.MEAN_INSTEAD_OF_SUM,
        Diagnosis.SCALED,
    ):
        return finding
    shape = probe_shape(case.shape, multiples=options.multiples)
    bias = "b" in case.arrays

    def accepting(name: str, first: Case | None, *, declared: bool = False) -> list[str]:
        """The reductions under which ``name`` passes on ``first`` and a probe (the declared
        one tried too where ``declared``)."""
        piece = CHECKS[name]
        probe = probe_case(piece, options.dtype, "normal", shape, case.lr, bias=bias)
        cases = [probe] if first is None else [first, probe]
        found = []
        for reduction in bounds.REDUCTIONS:
            if reduction == options.loss_reduction and not declared:
                continue
            try:
                again = dataclasses.replace(options, reduction=reduction)
            except ValueError:
                continue  # not a declaration this run takes (exact mode sums)
            if all(piece.run(caller, each, again)[1] is None for each in cases):
                found.append(reduction)
        return found

    own = accepting(check.name, case)
    if not own:
        return finding
    # The loss's other piece on the same (output, target), or on a probe alone.
    others = {
        name: accepting(
            name,
            Case(name, dict(case.arrays), None, case.kind, case.shape)
            if check.name in _LOSS_PIECES
            else None,
            declared=True,
        )
        for name in _LOSS_PIECES
        if name != check.name and name in caller.provided
    }  # fmt: skip
    agreed = [r for r in own if all(r in found for found in others.values())]
    tried = " and ".join([check.name, *others])
    if agreed:
        offer = "; ".join(f"{_option(r, options)} accepts it" for r in agreed)
        note = (
            f"{offer} (re-judged: {tried} on this case and a probe)"
            if check.name in _LOSS_PIECES
            else f"{offer} (re-judged on this case and a probe, with {' and '.join(others)})"
            if others
            else f"{offer} (re-judged on this case and a probe)"
        )
    else:
        words = [f"{check.name} is {_reduced_words(own, options)}"]
        words += [
            f"{name} is {_reduced_words(found, options)}"
            if found
            else f"{name} fails under " + " and ".join(_option(r, options) for r in own)
            for name, found in others.items()
        ]
        note = "; ".join(words) + ": no one reduction accepts both (re-judged on probes)"
    return dataclasses.replace(
        finding,
        kind=Diagnosis.MEAN_INSTEAD_OF_SUM,
        detail=f"{finding.detail}{_declared_words(options)}; {note}",
        candidates=(),
        unclear="",
    )


def _declared_words(options: Settings) -> str:
    """`` (the declared reduction mean divides by N*O)``, where one is declared."""
    if options.reduction is None:
        return ""
    declared = bounds.REDUCTIONS[options.reduction]
    return f" (the declared reduction {declared.name} is {declared.words})"


def _reduced_words(reductions: Sequence[str], options: Settings) -> str:
    """``a mean over N*O, as --reduction mean declares``: what the reductions that accept a
    piece make of its loss."""
    return " or ".join(
        f"{bounds.REDUCTIONS[r].words}, as "
        + ("declared" if r == options.reduction else f"{_option(r, options)} declares")
        for r in reductions
    )


def _option(reduction: str, options: Settings) -> str:
    """``--reduction mean (reduction='mean')``, or ``the declared reduction`` for this run's."""
    if reduction == options.reduction:
        return "the declared reduction"
    return spelled(("reduction", reduction))


def _rejudged(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> Finding:
    """A rounding cause with the options that would declare its arithmetic offered only where
    the check, judged again under each on the same case, passes; where none does, what would
    make it pass instead."""
    if finding.kind is not Diagnosis.REDUCED_PRECISION or finding.actual is None:
        return finding
    declares = _declared_by(case, finding, options)
    # The counterexample, and probes of normal data at its sides and past block edges: an
    # option offered must hold where the error grows (a float16 accumulator with K past 128).
    bias = biased(case)
    cases = [case] + [
        probe_case(
            check,
            options.dtype,
            data,
            probe_shape(case.shape, data, options.multiples),
            case.lr,
            bias=bias,
        )
        for data in ("normal", "blocks")
    ]
    accepted: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    for field, value in declares:
        try:
            changes: dict[str, Any] = {field: value}
            again = dataclasses.replace(options, **changes)
        except ValueError:
            refused.append((field, value))  # not a declaration for this dtype
            continue
        passes = all(check.run(caller, each, again)[1] is None for each in cases)
        (accepted if passes else refused).append((field, value))
    if accepted:
        offer = "; ".join(f"{spelled(option)} accepts it" for option in accepted)
        tried = f" (re-judged on this case and {len(cases) - 1} probes)"
    elif refused:
        offer = (
            "re-judged under " + ", ".join(spelled(option) for option in refused) + " it still "
            f"fails: no declaration accepts it; compute and accumulate in {_wide(options.dtype)}"
        )
        tried = ""
    else:
        offer = f"no option declares it; compute and accumulate in {_wide(options.dtype)}"
        tried = ""
    return dataclasses.replace(finding, detail=f"{finding.detail}: {offer}{tried}")


def _wide(dtype: str) -> str:
    """The accumulation that holds a dtype's sums: float32, or float64 for float64."""
    return "float64" if dtype == "float64" else "float32"


def _declared_by(case: Case, finding: Finding, options: Settings) -> tuple[tuple[str, str], ...]:
    """The options that declare the less precise arithmetic the result fits."""
    assert finding.actual is not None
    diagnosed = diagnose(finding.result, finding.actual, case, options)
    for pattern, alternative in diagnosed.fitted:
        if pattern.kind is Diagnosis.REDUCED_PRECISION:
            return alternative.declares
    return ()
