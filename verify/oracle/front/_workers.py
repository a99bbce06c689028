"""Checks at once on several workers of one candidate (``-j N``).

Each function of the candidate is called on one worker only, its owner (``owners``): a jitted
candidate traces and compiles each shape of a function once in the run, however many checks
call that function. (With a worker per check, ``consistency`` and ``identities`` compiled every
shape of the functions they call again, or loaded them from the run's cache, while the
functions' own checks were compiling them: 230 compiles or loads for the 161 distinct calls of
``verify``, and ``consistency`` the run's longest check at 10.6 s.)

Two checks run at once only when the workers their calls go to are disjoint (``run_checks``),
so a check's calls are never interleaved with another check's on the same worker: a
candidate with state (a gradient never zeroed) shows the same thing to a check as on one
worker.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .._contract import FUNCTIONS
from ..candidate import Caller, ContractError, Outcome, StartError
from ..judging import Check
from ._report import FunctionReport

#: How long a function takes to compile, relative to the others, for sharing the functions
#: among the workers: the fused step about three times a piece (``verify`` on the 23 pool
#: shapes: step 3.9 s, each piece 1.1 to 1.5 s).
COMPILE_WEIGHT: dict[str, int] = {"step": 3}


def owners(functions: Iterable[str], workers: int) -> dict[str, int]:
    """The worker (``0 .. workers - 1``) that calls each function: the heaviest to compile
    (``COMPILE_WEIGHT``) first, each to the worker with the least weight so far (ties: the
    lower index), so that the run's compiles are shared out evenly."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    order = list(FUNCTIONS)
    load = [0] * workers
    owner: dict[str, int] = {}
    for function in sorted(functions, key=lambda f: (-COMPILE_WEIGHT.get(f, 1), order.index(f))):
        chosen = min(range(workers), key=lambda k: (load[k], k))
        owner[function] = chosen
        load[chosen] += COMPILE_WEIGHT.get(function, 1)
    return owner


class Workers:
    """One candidate on ``count`` workers: the first already started (``first``), the others
    started in the background with ``more``. A Caller: each call goes to its function's owner
    (``owners`` of ``functions``, default every function provided); a function whose owner
    could not start, or that has none, goes to the first worker.

    Every caller started is appended to ``started`` (the run closes them and counts their
    compiles). ``changed`` is notified whenever a worker is ready or has failed to start.
    """

    def __init__(
        self,
        first: Caller,
        more: Callable[[], Caller],
        count: int,
        started: list[Caller],
        functions: Iterable[str] | None = None,
    ) -> None:
        self.name = first.name
        self.provided = first.provided
        self.load_notes = first.load_notes
        self.bias = first.bias
        self.reduction = first.reduction
        self.owner = owners(self.provided if functions is None else functions, count)
        self.changed = threading.Condition()
        self._slots: list[Caller | None] = [first, *([None] * (count - 1))]
        self._failed: set[int] = set()
        self._locks = [threading.Lock() for _ in range(count)]
        self._started = started
        self._closed = False
        for index in range(1, count):
            threading.Thread(
                target=self._start, args=(index, more), name="crosscheck-start", daemon=True
            ).start()

    def _start(self, index: int, more: Callable[[], Caller]) -> None:
        try:
            caller: Caller | None = more()
        except (StartError, ContractError):
            caller = None  # its functions go to the first worker
        with self.changed:
            if caller is not None and self._closed:
                caller.close()  # the run ended while it started
            elif caller is not None:
                self._slots[index] = caller
                self._started.append(caller)
            else:
                self._failed.add(index)
            self.changed.notify_all()

    def _index(self, function: str) -> int | None:
        """The worker that calls ``function`` now: its owner, the first worker if the owner
        could not start, None while the owner is starting."""
        index = self.owner.get(function, 0)
        if index in self._failed:
            return 0
        return index if self._slots[index] is not None else None

    def uses(self, functions: Iterable[str]) -> frozenset[int] | None:
        """The workers calls of ``functions`` go to, or None while one of them is starting."""
        with self.changed:
            indices = [self._index(function) for function in functions]
        if any(index is None for index in indices):
            return None
        return frozenset(index for index in indices if index is not None)

    @property
    def notes(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter()
        for caller in list(self._started):
            total.update(caller.notes)
        return total

    @property
    def compiles(self) -> int:
        return sum(caller.compiles for caller in list(self._started))

    def call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        with self.changed:
            while (index := self._index(function)) is None:
                self.changed.wait()
            caller = self._slots[index]
        assert caller is not None
        with self._locks[index]:  # one call at a time per worker, whoever calls
            return caller.call(function, arrays, lr)

    def close(self) -> None:
        """Close the workers started so far; one still starting closes itself when it is up."""
        with self.changed:
            self._closed = True
            running = [slot for slot in self._slots if slot is not None]
        for caller in running:
            caller.close()


def run_checks(
    checks: Sequence[Check],
    jobs: int,
    run: Callable[[Check], FunctionReport],
    uses: Callable[[Check], frozenset[int] | None] = lambda check: frozenset(),
    changed: threading.Condition | None = None,
) -> dict[str, FunctionReport]:
    """``run`` every check, up to ``jobs`` at once; the reports by check name.

    ``uses(check)``: the workers the check's calls go to (None while one is starting). A free
    thread takes the first check, in ``checks``' order, whose workers are ready and used by no
    running check; when none is, it waits (on ``changed``, which the workers notify too). With
    ``jobs == 1`` this is a loop over ``checks`` in order. A check that raises (the oracle's
    own defect) stops the others from starting and is raised here.
    """
    if jobs <= 1 or len(checks) <= 1:
        return {chosen.name: run(chosen) for chosen in checks}
    condition = changed if changed is not None else threading.Condition()
    pending = list(checks)
    busy: set[int] = set()
    reports: dict[str, FunctionReport] = {}
    errors: list[BaseException] = []

    def choose() -> tuple[Check, frozenset[int]] | None:
        # Called holding the condition: the first pending check that can run now.
        for candidate in pending:
            held = uses(candidate)
            if held is not None and not held & busy:
                return candidate, held
        return None

    def drain() -> None:
        while True:
            with condition:
                while pending and not errors and (picked := choose()) is None:
                    condition.wait()
                if not pending or errors:
                    condition.notify_all()
                    return
                assert picked is not None
                chosen, held = picked
                pending.remove(chosen)
                busy.update(held)
            try:
                reports[chosen.name] = run(chosen)
            except BaseException as err:  # raised in the caller's thread below
                with condition:
                    errors.append(err)
            finally:
                with condition:
                    busy.difference_update(held)
                    condition.notify_all()

    threads = [
        threading.Thread(target=drain, name="crosscheck-check", daemon=True)
        for _ in range(min(jobs, len(checks)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.1)  # short waits: an interrupt reaches this thread between them
    if errors:
        raise errors[0]
    return reports
