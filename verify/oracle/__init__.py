"""The oracle: check anyone's implementation of the layer against the loop reference.

It is built in wings by role, each a package that imports only the wings below it (the
``layers`` contract in pyproject.toml, kept by ``lint-imports``)::

    front        check(), Run, Report, the reproducer, the command line, the pytest plugin
    explaining   the cause of a failure: the pattern registry, probes, the one explain()
    judging      cases, expectations (the error model), judges, the checks' registry, search
    candidate    loading the candidate and calling it in a worker (no JAX, no Hypothesis)

and three modules under them all: ``_contract`` (the functions an implementation may provide,
their arguments and results), ``_settings`` (every option, declared once: ``Settings``) and
``_diagnoses`` (every verdict's name and meaning: ``Diagnosis``).

Public names (also exported by ``verify``) are listed once, in ``__init__.pyi``.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
