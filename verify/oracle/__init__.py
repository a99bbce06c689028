"""The oracle: check anyone's implementation of the layer against the loop reference.

The pipeline, one idea per module, in import order::

    _contract   the functions an implementation may provide, their arguments and results
    _loading    SPEC -> object -> the functions it provides (a Candidate)
    _invoke     one call on the candidate's side: asarray, call, results to numpy
    _calls      the oracle's side of a call: a Caller (in-process thread with a timeout)
    _options    how a case is judged (dtype, exact mode, ties, precision, timeout); option()
    _cases      the examples: a Case per call, drawn by Hypothesis or fixed edge shapes
    _expect     what each call must produce: the admissible set of every result (bounds)
    _diagnosis  the comparison of a result with its admissible set, and the bug's name
    _judge      how a case is judged: one function, the identities, the consistency
    _checks     every check as a record in one registry, CHECKS
    _settings   every option declared once (Settings): check's keywords, the CLI, the plugin
    _report     the verdicts: FunctionReport per check, Report per implementation
    _repro      a reproducer per failure (case.npz + repro.py)
    _search     the Hypothesis search of one check, then the edge cases
    _check      open_run(impl, settings) -> Run (one check at a time); check(impl, ...) -> Report
    _junit      a Report as JUnit XML (--junit-xml)
    cli         python -m verify check SPEC [options]
    pytest_plugin   pytest --crosscheck SPEC: one item per check; the crosscheck fixture

Public names (also exported by ``verify``) are listed once, in ``__init__.pyi``.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
