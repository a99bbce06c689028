"""Judging the candidate: the cases a check draws (``_cases``), what each call must produce
(``_expect``: admissible sets from the error model around the loop reference), the judges of
one function, of the identities and of the fused step's consistency (``_judge``), every check
as a record of one registry (``_checks.CHECKS``) and the Hypothesis search of one check
(``_search``). A judge says *that* a result is wrong and keeps the evidence (``_findings``); it
never names a cause. It imports the candidate wing (to call it), the contract, the settings and
the diagnoses' names below it, and nothing that explains or reports.
"""

from ._cases import ANY_SIDES, Case, Pool, make_case, meeting, shape_pool
from ._checks import CHECKS, Check
from ._expect import expect, expected_under, numpy_matmul
from ._findings import Finding, Suspect, mantissa_bits, same_bits
from ._judge import NotJudged, pieces_agree
from ._search import Progress, Searched, search

__all__ = [
    "ANY_SIDES",
    "CHECKS",
    "Case",
    "Check",
    "Finding",
    "NotJudged",
    "Pool",
    "Progress",
    "Searched",
    "Suspect",
    "expect",
    "expected_under",
    "make_case",
    "mantissa_bits",
    "meeting",
    "numpy_matmul",
    "pieces_agree",
    "same_bits",
    "search",
    "shape_pool",
]
