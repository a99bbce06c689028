# The front's face, imported lazily (see __init__.py). One line per public name.
from ._report import FunctionReport as FunctionReport
from ._report import Report as Report
from ._run import Run as Run
from ._run import check as check
from ._run import open_run as open_run
