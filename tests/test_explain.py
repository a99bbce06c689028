"""verify.oracle.explaining.explain, the one entry point of the explaining wing, on the zoo's
bugs called in this process (no search: the failing case is the first fixed case that fails):
the registry's order decides no verdict, so the rules in ``_patterns``' docstring are the only
ones that name a cause."""

from __future__ import annotations

import random

import pytest

from tests import zoo
from verify.oracle._settings import Settings
from verify.oracle.candidate import InProcessCaller, as_candidate
from verify.oracle.explaining import _diagnosis, _patterns, explain
from verify.oracle.explaining._probes import probe_case, probe_shape
from verify.oracle.judging import CHECKS, Case, Check


def _failing_case(check: Check, caller: InProcessCaller, settings: Settings) -> tuple:
    """The first of the check's fixed cases that fails (its edge shapes, then the probes of
    every kind of data), with its finding; None where none does."""
    cases: list[Case] = list(check.edges(settings))
    for data in ("normal", "ties", "blocks"):
        cases.append(
            probe_case(
                check, settings.dtype, data, probe_shape(None, data), bias=bool(settings.bias)
            )
        )
    for case in cases:
        _, finding = check.run(caller, case, settings)
        if finding is not None:
            return case, finding
    return None


#: The mutants whose verdict comes from values (a timeout or a hang is no registry matter).
VALUE_MUTANTS = [m for m in zoo.ZOO if m.cls is not zoo.HangingForward]


@pytest.mark.parametrize("mutant", VALUE_MUTANTS, ids=lambda m: m.name)
def test_the_registrys_order_decides_no_verdict(
    mutant: zoo.Mutant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every broken function of every mutant gets the same verdict, in the same words, on the
    same case, with the registry in its order, reversed and shuffled."""
    candidate = as_candidate(mutant.cls())
    settings = Settings(**mutant.options, bias=candidate.bias)
    caller = InProcessCaller(candidate, settings.timeout)
    # Reversed: every pattern that came first comes last (where "the first fit wins" would
    # show); shuffled per mutant, so that the suite as a whole tries many orders.
    shuffled = random.Random(mutant.name).sample(_patterns.PATTERNS, len(_patterns.PATTERNS))
    orders = [_patterns.PATTERNS, tuple(reversed(_patterns.PATTERNS)), tuple(shuffled)]
    for name in mutant.expected:
        check = CHECKS[name]
        failing = _failing_case(check, caller, settings)
        if failing is None:
            continue  # this bug needs the search's shapes: the zoo's own tests cover it
        case, finding = failing
        verdicts = set()
        for order in orders:
            monkeypatch.setattr(_diagnosis, "PATTERNS", order)
            shown, explained = explain(check, caller, case, finding, settings)
            verdicts.add((explained.kind, explained.detail, shown.describe()))
        assert len(verdicts) == 1, (name, verdicts)
