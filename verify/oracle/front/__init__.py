"""The oracle's front: what users meet. A run of every check on one candidate (``_run``:
``check``, ``open_run``, ``Run``; ``_workers``: checks at once on several workers), the verdicts
(``_report``: ``Report``, ``FunctionReport``; ``_junit``), the reproducers (``_repro``), the
surfaces generated from the settings' one declaration (``_surfaces``), the command line
(``cli``) and the pytest plugin (``pytest_plugin``, entry point ``pytest11``). It may import every
wing below it: explaining, judging, the candidate, and the contract, settings and diagnoses.

Its face is lazy (names listed in ``__init__.pyi``): pytest imports the plugin, and so this
package, in every session of an environment that has crosscheck, which must not pay for numpy,
Hypothesis or JAX until a check runs.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
