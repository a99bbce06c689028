"""The oracle's side of a call: a ``Caller`` runs one function of the candidate and says how the
call ended (``_invoke.Outcome``). Checks only ever see Callers.

``InProcessCaller`` calls the candidate in this process, in a daemon thread with a timeout. Python
cannot kill a thread: a call that hangs past its timeout is abandoned, still running, and the
search stops calling that function (``_search``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ._contract import FUNCTIONS
from ._invoke import Failed, Outcome, invoke
from ._loading import Candidate


class Caller(Protocol):
    """Something that calls the candidate's functions: ``provided`` names them."""

    name: str
    provided: frozenset[str]

    def call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        """``function(*arrays, lr)`` (``lr`` only where the function takes one)."""
        ...

    def close(self) -> None:
        """Release what the caller holds (nothing may outlive the run)."""
        ...


class InProcessCaller:
    """Calls a loaded candidate in this process, each call in a daemon thread with a timeout."""

    def __init__(self, candidate: Candidate, timeout: float) -> None:
        self.candidate = candidate
        self.name = candidate.name
        self.provided = frozenset(candidate.functions)
        self.timeout = timeout

    def call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        box: list[Outcome] = []
        worker = threading.Thread(
            target=lambda: box.append(
                invoke(
                    self.candidate.functions[function],
                    FUNCTIONS[function],
                    arrays,
                    lr,
                    self.candidate.asarray,
                )
            ),
            name="crosscheck-candidate",
            daemon=True,
        )
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive() or not box:
            return Failed("timed_out", f"did not return within {self.timeout:g} s")
        return box[0]

    def close(self) -> None:
        """Nothing to release: an abandoned thread ends with the process."""
