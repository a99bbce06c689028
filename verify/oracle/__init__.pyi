# The oracle's public face, imported lazily (see __init__.py). One line per public name.
from ._check import check as check
from ._diagnosis import Diagnosis as Diagnosis
from ._loading import ContractError as ContractError
from ._report import FunctionReport as FunctionReport
from ._report import Report as Report
from ._settings import Settings as Settings
