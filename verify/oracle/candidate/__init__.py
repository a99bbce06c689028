"""Running the candidate: finding it (a SPEC, a module, a notebook, a framework module), calling
it in a worker process of its own that speaks the worker protocol (or in this process), and
turning every way a call can end (a value, a raise, a timeout, an exit, a signal, a broken
reply) into an ``Outcome``. It owns ``_loading``, ``_invoke``, ``_protocol``, ``_worker`` and
``_calls``, and imports only the contract and the settings below it: never JAX or Hypothesis
(the worker of a numpy candidate pays for neither), and nothing that judges or explains.
"""

from ._calls import (
    Caller,
    CallTime,
    InProcessCaller,
    StartError,
    WorkerCaller,
    compile_key,
    python_worker,
    timed_calls,
    worker_environment,
)
from ._invoke import Failed, Outcome, Returned
from ._loading import (
    Candidate,
    ContractError,
    absolute_spec,
    as_candidate,
    load,
    name_of,
    spec_of,
)

__all__ = [
    "CallTime",
    "Caller",
    "Candidate",
    "ContractError",
    "Failed",
    "InProcessCaller",
    "Outcome",
    "Returned",
    "StartError",
    "WorkerCaller",
    "absolute_spec",
    "as_candidate",
    "compile_key",
    "load",
    "name_of",
    "python_worker",
    "spec_of",
    "timed_calls",
    "worker_environment",
]
