# The oracle's public face, imported lazily (see __init__.py). One line per public name.
from ._diagnoses import Diagnosis as Diagnosis
from ._settings import OptionError as OptionError
from ._settings import Settings as Settings
from .candidate import ContractError as ContractError
from .front import FunctionReport as FunctionReport
from .front import Report as Report
from .front import check as check
