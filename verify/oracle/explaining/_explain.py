"""The one entry point of the explaining wing: ``explain``, used by the run after a search and
by the reproducer, so that both say the same of one failure."""

from __future__ import annotations

from .._settings import Settings
from ..candidate import Caller
from ..judging import Case, Check, Finding
from ._diagnosis import named
from ._probes import follows_from_pieces, resolve


def explain(
    check: Check, caller: Caller, case: Case, finding: Finding, options: Settings
) -> tuple[Case, Finding]:
    """The cause of ``check``'s failure on ``case``, and the case that shows it best.

    The cause is named by the evidence the judge kept (``named``), then its candidates are told
    apart on probes, or a stateful defect probed for (``resolve``: the case that shows it may
    be a probe); a fused step's failure is traced to the first of its own pieces that fails on
    the same data (``follows_from_pieces``, for the checks that compose the pieces). Calls the
    candidate only after a failure.
    """
    finding = named(finding, case, options)
    case, finding = resolve(check, caller, case, finding, options)
    if check.from_pieces:
        finding = follows_from_pieces(caller, case, finding, options)
    return case, finding
