"""The oracle's side of a call: a ``Caller`` runs one function of the candidate and says how the
call ended (``_invoke.Outcome``). Checks only ever see Callers.

``WorkerCaller`` (the default) calls the candidate in a worker process of its own that speaks
``_protocol``: the Python worker (``_worker``) for a SPEC, or any executable (``--command``).
Every way a call can end is an outcome: a value, raised, malformed, timed_out (the worker's
process group is killed) or crashed (any exit code or signal; the worker's last stderr lines are
kept). The next call after a timeout or crash starts a fresh worker.

Both time every call where it is made: within ``timed_calls`` a thread's calls are counted and
their wall time summed, so that a report can say how much of a run was the candidate's own.

``InProcessCaller`` calls a candidate that cannot be loaded again by name (a closure built inside
a test) in this process, in a daemon thread with a timeout. Python cannot kill a thread: a call
that hangs past its timeout is abandoned, still running, and the search stops calling that
function (``_search``); the candidate shares this process and can affect the verdict.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...bounds import REDUCTIONS
from .._contract import signature_by_count
from .._settings import DEFAULT_IMPORT_TIMEOUT
from ._invoke import Failed, Outcome, Returned, invoke
from ._loading import Candidate
from ._protocol import (
    ProtocolError,
    encode_call,
    greeting_bias,
    greeting_reduction,
    parse_greeting,
    read_error,
    read_reply,
)

#: A call by what a jitted candidate compiles for: the function, each argument's shape and dtype.
CompileKey = tuple[str, tuple[tuple[tuple[int, ...], str], ...]]


def compile_key(function: str, arrays: Sequence[np.ndarray]) -> CompileKey:
    """``("grad_w", (((5, 4), "float32"), ((5, 3), "float32")))`` (lr is a scalar: no shape)."""
    return function, tuple((tuple(a.shape), a.dtype.name) for a in arrays)


def _first_time(seen: set[CompileKey], key: CompileKey) -> bool:
    """Whether ``key`` is new to ``seen`` (and add it)."""
    new = key not in seen
    seen.add(key)
    return new


@dataclasses.dataclass
class CallTime:
    """The candidate's calls one thread made within ``timed_calls``: how many, and their wall
    time summed, each from the oracle's request to its reply (the arrays' way through the
    worker protocol, and a worker started again after a crash, included)."""

    calls: int = 0
    seconds: float = 0.0


#: The CallTime each thread adds its calls to, while one is open (``timed_calls``).
_SPENT = threading.local()


@contextlib.contextmanager
def timed_calls() -> Iterator[CallTime]:
    """Within: every call this thread makes through a Caller (``InProcessCaller``,
    ``WorkerCaller``, or anything that calls one) is counted and timed in the CallTime
    yielded; an enclosing ``timed_calls`` of the thread gets them too."""
    spent, outer = CallTime(), getattr(_SPENT, "current", None)
    _SPENT.current = spent
    try:
        yield spent
    finally:
        _SPENT.current = outer
        if outer is not None:
            outer.calls += spent.calls
            outer.seconds += spent.seconds


def _count(started: float) -> None:
    """One call of this thread's, made since ``started`` (``time.perf_counter``)."""
    spent = getattr(_SPENT, "current", None)
    if spent is not None:
        spent.calls += 1
        spent.seconds += time.perf_counter() - started


class Caller(Protocol):
    """Something that calls the candidate's functions: ``provided`` names them, ``bias`` says
    whether the candidate's layer has a bias and ``reduction`` the reduction its loss declares,
    or None (their own words: the ``bias`` and ``reduction`` options overrule them); ``notes``
    counts
    the distinct warnings its results raised while converted; ``compiles`` counts the distinct
    calls (``compile_key``) made in each of its processes: a jitted candidate compiles once
    for each."""

    name: str
    provided: frozenset[str]
    #: what loading the candidate noted (a notebook's skipped magics, a module adapted).
    load_notes: tuple[str, ...]
    bias: bool
    reduction: str | None

    @property
    def notes(self) -> collections.Counter[str]: ...

    @property
    def compiles(self) -> int: ...

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
        self.load_notes = candidate.notes
        self.bias = candidate.bias
        self.reduction = candidate.reduction
        self.timeout = timeout
        self.notes: collections.Counter[str] = collections.Counter()
        self.compiles = 0
        self._seen: set[CompileKey] = set()

    def call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        started = time.perf_counter()
        try:
            return self._call(function, arrays, lr)
        finally:
            _count(started)

    def _call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        self.compiles += _first_time(self._seen, compile_key(function, arrays))
        box: list[Outcome] = []
        worker = threading.Thread(
            target=lambda: box.append(
                invoke(
                    self.candidate.functions[function],
                    signature_by_count(function, len(arrays) + (lr is not None)),
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
        if isinstance(box[0], Returned):
            self.notes.update(box[0].notes)
        return box[0]

    def close(self) -> None:
        """Nothing to release: an abandoned thread ends with the process."""


# --------------------------------------------------------------------------------------------
# The candidate in a process of its own.
# --------------------------------------------------------------------------------------------

#: Lines of the worker's stderr kept for a crash report.
STDERR_LINES = 12

#: Seconds a worker that closed its output gets to exit before it counts as hung.
EXIT_GRACE = 2.0

#: Seconds between looks at a silent worker (is its process still there?).
POLL = 0.05

#: Runs a command under an address-space limit (bytes): ``python -c LIMITED N CMD...``.
LIMITED = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_AS, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])"
)


class StartError(Exception):
    """The worker could not be started, or did not greet: its implementation cannot be checked."""


class _Ended(Exception):
    """The worker's output ended, or it stopped answering in time (``timed_out``)."""

    def __init__(self, timed_out: bool) -> None:
        self.timed_out = timed_out


#: The root that holds the ``verify`` and ``reference`` packages: a worker imports them too.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


def python_worker(spec: str) -> list[str]:
    """The command line of the Python worker for ``spec``."""
    return [sys.executable, "-m", "verify.oracle.candidate._worker", spec]


#: JAX settings a worker shares with this process, when this process has JAX loaded: its
#: persistent compilation cache (a jitted candidate then compiles a shape once across workers).
SHARED_JAX_SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


#: Thread pools a worker runs with one thread unless the user set them: the oracle's shapes are
#: small, and a BLAS pool that keeps spinning after each call (OpenBLAS does, for a while) in
#: the worker and another in the oracle fight over the same cores (measured: a 64 x 64 x 16
#: forward took 827 us per call through the worker with both pools, 350 us with one).
SINGLE_THREADED = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


#: Settings of the workers' compilation cache: every compile stored, however small or fast.
RUN_CACHE_SETTINGS = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
}


def worker_environment(dtype: str, cache_dir: str | None = None) -> dict[str, str]:
    """The environment of a worker: this one, the oracle's packages importable, float64
    switched on for JAX candidates when float64 is checked (``JAX_ENABLE_X64``: set before the
    candidate imports JAX, which a numpy candidate then never pays for), single-threaded BLAS
    (``SINGLE_THREADED``) unless set, and a JAX compilation cache: this process's, if it has
    one (``SHARED_JAX_SETTINGS``, as environment variables), else ``cache_dir`` if given
    (crosscheck's persistent one: a shape compiled in one run is loaded in the next), unless
    the user's environment names one."""
    env = dict(os.environ)
    for variable in SINGLE_THREADED:
        env.setdefault(variable, "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), PACKAGE_ROOT]))
    if dtype == "float64":
        env["JAX_ENABLE_X64"] = "1"
    jax = sys.modules.get("jax")
    if jax is not None and getattr(jax.config, "jax_compilation_cache_dir", None):
        for setting in SHARED_JAX_SETTINGS:
            env.setdefault(setting.upper(), str(getattr(jax.config, setting)))
    elif cache_dir is not None and "JAX_COMPILATION_CACHE_DIR" not in env:
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        for variable, value in RUN_CACHE_SETTINGS.items():
            env.setdefault(variable, value)
    return env


class WorkerCaller:
    """Calls the candidate in a worker process that speaks ``_protocol`` on its stdin/stdout.

    The worker leads a process group of its own; a timeout or a crash ends the whole group
    (children the candidate started included) and the next call starts a fresh worker. ``close``
    ends the group whatever the candidate did. Nothing the candidate does reaches this process.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        timeout: float,
        import_timeout: float = DEFAULT_IMPORT_TIMEOUT,
        memory_limit: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.command = list(command)
        self.timeout = timeout
        self.import_timeout = import_timeout
        self.memory_limit = memory_limit
        self.env = env
        self.notes: collections.Counter[str] = collections.Counter()
        self.compiles = 0
        self._seen: set[CompileKey] = set()
        self._closed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.load_notes: tuple[str, ...] = ()
        self.bias = False
        self.reduction: str | None = None
        self.provided = frozenset(self._start())

    # -- the process -----------------------------------------------------------------------

    def _start(self) -> list[str]:
        """Start a worker and read its greeting: the functions it provides."""
        command = self.command
        if self.memory_limit is not None:
            command = [sys.executable, "-c", LIMITED, str(self.memory_limit), *command]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own process group: ended as one
            )
        except OSError as err:
            raise StartError(f"cannot start {shlex.join(self.command)}: {err}") from None
        self._process, self._buffer = process, bytearray()
        stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._stderr = stderr
        threading.Thread(
            target=_keep_tail, args=(process.stderr, stderr), name="crosscheck-stderr", daemon=True
        ).start()
        deadline = time.monotonic() + self.import_timeout
        try:
            first, noted = self._line(deadline), []
            while first.startswith(b"note "):
                noted.append(first[5:].decode("utf-8", "replace"))
                first = self._line(deadline)
            self.load_notes = tuple(noted)
            if first.startswith(b"error"):
                message = read_error(lambda: self._line(deadline), first)
                raise StartError(message or "the worker reported an error")
            functions = parse_greeting(first)
            self.bias = greeting_bias(first)
            self.reduction = greeting_reduction(first)
            if self.reduction is not None and self.reduction not in REDUCTIONS:
                raise ProtocolError(
                    f"its greeting declares reduction {self.reduction!r}; known: "
                    f"{', '.join(REDUCTIONS)}"
                )
            return functions
        except _Ended as ended:
            why = (
                f"did not load within {self.import_timeout:g} s"
                if ended.timed_out
                else f"ended while loading ({self._how_it_ended()})"
            )
            self._stop()
            raise StartError(f"{self.name} {why}{self._last_words()}") from None
        except (ProtocolError, StartError) as err:
            self._stop()
            if isinstance(err, StartError):
                raise
            raise StartError(f"{self.name} does not speak the worker protocol: {err}") from None

    def _alive(self) -> bool:
        return self._process is not None and _exit_status(self._process.pid) is None

    def _how_it_ended(self) -> str:
        """How the worker ended: exited with code N, or was killed by signal SIGSEGV (...)."""
        if self._process is None:
            return "not running"
        deadline = time.monotonic() + EXIT_GRACE
        status = _exit_status(self._process.pid)
        while status is None and time.monotonic() < deadline:
            time.sleep(POLL)
            status = _exit_status(self._process.pid)
        if status is None:
            return "closed its output but did not exit"
        if status >= 0:
            return f"exited with code {status}"
        name = signal.Signals(-status).name
        return f"was killed by signal {name} ({signal.strsignal(-status)})"

    def _tail(self) -> list[str]:
        """The worker's last non-empty stderr lines."""
        time.sleep(POLL)  # the stderr reader may be a line behind
        return [line for line in self._stderr if line.strip()]

    def _last_words(self) -> str:
        lines = self._tail()
        return "; its last output: " + " | ".join(lines[-4:]) if lines else ""

    def _stop(self) -> None:
        """End the worker's whole process group, then reap the worker."""
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        # The group is signalled before the leader is reaped: its id cannot be reused meanwhile.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    # -- the stream --------------------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        """Read more of the worker's stdout, or raise _Ended (end of output or deadline)."""
        process = self._process
        if process is None or process.stdout is None:
            raise _Ended(False)
        fd = process.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Ended(True)
            ready, _, _ = select.select([fd], [], [], min(remaining, POLL))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise _Ended(False)
                self._buffer += chunk
                return
            if _exit_status(process.pid) is not None:
                # Exited, though a child of it may hold the pipe open: no more output comes.
                raise _Ended(False)

    def _line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _send(self, data: bytes, deadline: float) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise _Ended(False)
        fd, view = process.stdin.fileno(), memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Ended(True)
            _, ready, _ = select.select([], [fd], [], min(remaining, POLL))
            if ready:
                try:
                    view = view[os.write(fd, view[: 1 << 16]) :]
                except (BrokenPipeError, OSError):
                    raise _Ended(False) from None
            elif _exit_status(process.pid) is not None:
                raise _Ended(False)

    # -- calls ---------------------------------------------------------------------------------

    def call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        started = time.perf_counter()
        try:
            return self._call(function, arrays, lr)
        finally:
            _count(started)

    def _call(self, function: str, arrays: Sequence[np.ndarray], lr: float | None) -> Outcome:
        if self._closed:
            # A search still running in another thread after the run was stopped (interrupt).
            return Failed("crashed", "the run was stopped: no worker is started again")
        if not self._alive():
            self._seen.clear()  # a fresh worker compiles every shape again
            self._stop()
            try:
                self._start()
            except StartError as err:
                return Failed("crashed", f"could not start again: {err}")
        self.compiles += _first_time(self._seen, compile_key(function, arrays))
        arguments = [*arrays, *([] if lr is None else [np.asarray(lr, np.float64)])]
        deadline = time.monotonic() + self.timeout
        try:
            self._send(encode_call(function, arguments), deadline)
            outcome = read_reply(
                lambda: self._line(deadline),
                lambda size: self._read_exactly(size, deadline),
                len(arguments),
            )
        except _Ended as ended:
            if ended.timed_out:
                self._stop()
                return Failed("timed_out", f"did not return within {self.timeout:g} s")
            detail = f"the worker {self._how_it_ended()}"
            tail = self._tail()
            self._stop()
            return Failed("crashed", detail, "\n".join(tail) or None)
        except ProtocolError as err:
            detail = f"the worker broke the protocol: {err}{self._last_words()}"
            self._stop()
            return Failed("crashed", detail)
        if isinstance(outcome, Returned):
            self.notes.update(outcome.notes)
        return outcome

    def close(self) -> None:
        """End the worker's group; no call after this starts another."""
        self._closed = True
        self._stop()


def _keep_tail(stream: Any, tail: collections.deque[str]) -> None:
    """Keep the last lines of ``stream`` in ``tail`` until it ends; then close it."""
    with stream, contextlib.suppress(OSError, ValueError):
        for raw in stream:
            tail.append(raw.decode("utf-8", "replace").rstrip())


def _exit_status(pid: int) -> int | None:
    """The exit code (negative: the signal) of child ``pid`` once it has ended, else None; the
    child is not reaped (WNOWAIT), so its process group id stays reserved until ``_stop``."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return -signal.SIGKILL  # reaped already
    if info is None or info.si_pid != pid:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
