"""Explaining a failure: naming its cause. The registry (``_patterns``: one record per cause,
structural readings, patterns and verdicts, and the rules that name one); what a wrong result
actually computes, read on exact probes (``_structure``, over the term map of a (bi)linear
result, ``_terms``, loss_grad's branch table, ``_branches``, the loss's weights, ``_weights``,
each parameter's update, ``_updates``, and what they share, ``_readings``); the framework
setting a named difference looks like (``_hints``: a bias term, a Nesterov step); fits of
patterns with a constant (``_fitted``); the cause named from the evidence a judge kept
(``_diagnosis``); probe cases that confirm or withdraw candidates and the trace of a fused
step's failure to its pieces (``_probes``); and the one entry point, ``explain``, used by the
run and by the reproducer. It imports the judging wing (to judge probe cases), the candidate
wing (to call it), the contract, the settings and the diagnoses' names below it, and nothing of
the front.
"""

from ._explain import explain
from ._patterns import PATTERNS, VERDICTS

__all__ = ["PATTERNS", "VERDICTS", "explain"]
