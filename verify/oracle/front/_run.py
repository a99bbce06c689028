"""``verify.check``: every applicable check of the registry on one implementation, a Report.

The candidate runs in a worker process of its own (``candidate.WorkerCaller``) whenever it can be
loaded again there: a SPEC, a module, a top-level class or a module-level object, or any
executable that speaks the worker protocol (``command``). Only an object that cannot (a
closure built inside a test), or ``isolate=False`` (for pdb), is called in this process, and
its report says so.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ... import default_cache_dir
from ...messages import CrosscheckError
from .._contract import FUNCTIONS, PARAMETER_OF
from .._settings import PYTHON, OptionError, Settings
from ..candidate import (
    Caller,
    Candidate,
    ContractError,
    InProcessCaller,
    StartError,
    WorkerCaller,
    absolute_spec,
    as_candidate,
    name_of,
    python_worker,
    spec_of,
    timed_calls,
    worker_environment,
)
from ..explaining import explain
from ..judging import CHECKS, Check, Pool, Progress, Searched, search, shape_pool
from ._report import FunctionReport, Report, Timing, environment
from ._repro import write_heatmap, write_repro
from ._surfaces import arguments_doc, check_signature
from ._workers import Workers, run_checks


def _command(command: str | Sequence[str]) -> list[str]:
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    if not words:
        raise CrosscheckError("command must name an executable, got nothing")
    return words


def make_caller(
    impl: Any,
    settings: Settings,
    *,
    isolate: bool | None,
    cache_dir: str | None = None,
) -> tuple[Caller, str | None, list[str] | None]:
    """The caller for ``impl`` or ``settings.command``, and the SPEC or command that loads it
    again; ``cache_dir``: a JAX compilation cache for the worker (``worker_environment``).

    Raises ContractError when the implementation cannot be loaded or provides nothing.
    """
    command = settings.command
    if (impl is None) == (command is None):
        raise CrosscheckError("check needs an implementation or a command (exactly one)")
    if command is not None:
        words = _command(command)
        name, spec = shlex.join(words), None
    else:
        spec = absolute_spec(impl) if isinstance(impl, str) else spec_of(impl)
        if isinstance(impl, Candidate):
            spec = impl.spec
        name = impl.name if isinstance(impl, Candidate) else name_of(impl)
        if isolate is False or spec is None:
            if isolate:
                raise OptionError(
                    "isolate",
                    f"is True, but {name} cannot be loaded again in a worker process (no "
                    "module-level name holds it): pass its SPEC, its class or its module, or "
                    "isolate=False",
                )
            enable_float64_for(settings.dtype)
            candidate = impl if isinstance(impl, Candidate) else as_candidate(impl)
            return InProcessCaller(candidate, settings.timeout), spec, None
        words = python_worker(spec)
    try:
        caller = WorkerCaller(
            words,
            name=name,
            timeout=settings.timeout,
            import_timeout=settings.import_timeout,
            memory_limit=settings.memory_limit,
            env=worker_environment(settings.dtype, cache_dir),
        )
    except StartError as err:
        raise ContractError(str(err)) from None
    if not caller.provided:
        caller.close()
        raise ContractError(f"nothing recognised in {name}: its worker provides no function")
    return caller, spec, (words if command is not None else None)


def enable_float64_for(dtype: str) -> None:
    """Let JAX candidates compute in float64 when float64 is checked (``jax_enable_x64``).

    Without it a JAX implementation silently returns float32 for float64 inputs, and the
    command line would report ``wrong_dtype`` for a correct layer. Set before the candidate
    is loaded, as JAX requires; the command line and reproducers own their process.
    """
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)


def default_jobs() -> int:
    """``-j``'s default: ``$CROSSCHECK_JOBS`` if set (a test suite already running on every
    core sets 1), else the cores this process may run on."""
    explicit = os.environ.get("CROSSCHECK_JOBS", "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) < 1:
            raise CrosscheckError(f"CROSSCHECK_JOBS must be a positive int, got {explicit!r}")
        return int(explicit)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: The first Hypothesis that runs separate tests in threads safely (its 6.136 changelog);
#: with an older one the checks run one after another.
THREAD_SAFE_HYPOTHESIS = (6, 136)


def threads_allowed() -> bool:
    """Whether this Hypothesis may drive several searches at once in threads."""
    import hypothesis

    major, minor = (int(part) for part in hypothesis.__version__.split(".")[:2])
    return (major, minor) >= THREAD_SAFE_HYPOTHESIS


@dataclasses.dataclass
class Run:
    """One candidate, loaded (in a worker process, or this one), and how to check it: one check
    at a time (``run``), or many at once on several workers (``run_all``, ``_workers``: each
    function on one worker); ``close`` ends every worker.

    ``check`` runs every requested check of one Run; the pytest plugin runs one check per test
    item on a Run it keeps open for the session, so that ``-k grad_w`` runs grad_w alone and
    the candidate is loaded once. Every check of a Run draws from one pool of shapes
    (``judging.shape_pool``): a jitted candidate compiles each shape once for all of them.
    ``settings`` are the run's, as ``open_run`` resolved them (the bias and the loss's
    reduction read from the candidate, the jobs counted, the reproducers' folder absolute).
    """

    caller: Caller
    spec: str | None
    command: list[str] | None
    settings: Settings
    #: starts another caller of the same candidate (a worker of its own), for ``run_all``.
    more: Callable[[], Caller] | None = None
    #: when loading began (``time.monotonic``), and how long loading took: ``report``'s
    #: timing counts from there.
    opened: float = dataclasses.field(default_factory=time.monotonic)
    loading: float = 0.0
    #: every caller the Run started (``caller`` first), the seed's shapes, the jobs it used.
    callers: list[Caller] = dataclasses.field(init=False)
    pool: Pool = dataclasses.field(init=False)
    used_jobs: int = dataclasses.field(init=False, default=1)
    #: wall time spent in ``run_all``.
    checks_wall: float = dataclasses.field(init=False, default=0.0)
    _workers: Workers | None = dataclasses.field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.callers = [self.caller]
        self.pool = shape_pool(
            self.settings.seed, tiles=self.settings.tile, multiples=self.settings.multiples
        )
        if self.settings.progress is not None:
            serialised = _serialised(self.settings.progress)
            self.settings = dataclasses.replace(self.settings, progress=serialised)

    @property
    def jobs(self) -> int:
        """Checks that may run at once (``settings.jobs``, resolved by ``open_run``)."""
        return self.settings.jobs or 1

    def run(
        self, name: str, *, requested: bool = True, on: Caller | None = None
    ) -> FunctionReport | None:
        """The verdict of check ``name`` (a key of ``CHECKS``), on ``on`` (default the Run's
        caller); one that does not apply to this candidate is a ``skip`` (with what it needs)
        if ``requested``, else None."""
        if name not in CHECKS:
            raise ValueError(f"check must be one of {list(CHECKS)}, got {name!r}")
        chosen = CHECKS[name]
        settings = self.settings
        if not chosen.applies(self.caller.provided, settings):
            return FunctionReport(name, "skip", note=chosen.requirement()) if requested else None
        caller = self.caller if on is None else on
        started = time.monotonic()
        # The candidate's calls, timed where they are made (search, shrinking, probes).
        with timed_calls() as spent:
            searched = search(
                chosen, caller, settings, settings.max_examples, settings.seed,
                settings.progress, self.pool,
            )  # fmt: skip
            report = self._verdict(chosen, caller, searched)
        if report.status == "fail" and settings.repro_dir is not None and report.case is not None:
            script = write_repro(
                caller.name, self.spec, self.command, report, settings, Path(settings.repro_dir)
            )
            report.repro = str(script)
            if report.errors is not None:
                picture = script.with_name("errors.png")
                report.picture = write_heatmap(report.errors, picture, report.function)
        report.seconds = time.monotonic() - started
        report.calls, report.candidate_seconds = spent.calls, spent.seconds
        return report

    def _verdict(self, chosen: Check, caller: Caller, searched: Searched) -> FunctionReport:
        """The verdict of a search: a pass (a skip when no case could be judged), or a failure
        with its cause explained (``explaining.explain``)."""
        name = chosen.name
        if searched.failure is None:
            status = "skip" if searched.judged_nothing else "pass"
            worst = 0.0 if status == "skip" else searched.worst
            return FunctionReport(name, status, searched.examples, worst, note=searched.note)
        case, finding = searched.failure
        case, finding = explain(chosen, caller, case, finding, self.settings)
        return FunctionReport(
            name,
            "fail",
            searched.examples,
            max(searched.worst, finding.ratio),
            diagnosis=finding.kind,
            detail=finding.detail,
            message=finding.message or None,
            traceback=finding.traceback,
            case=case,
            where=finding.where or None,
            errors=finding.errors,
            probe_calls=finding.probe_calls,
        )

    def run_all(
        self, names: Sequence[str], *, requested: bool, finished: Finished | None = None
    ) -> list[FunctionReport]:
        """The verdicts of ``names``, in that order; checks that do not apply are skipped as
        ``run`` says. Up to ``jobs`` run at once, on as many workers (``_workers``): each
        function of the candidate is called on one worker, and two checks run at once only when
        they call different workers. ``finished(verdict, k, total)`` is told of each check as
        it ends (the k-th of the total that apply), by one thread at a time."""
        provided = self.caller.provided
        settings = self.settings
        runnable = [CHECKS[n] for n in names if CHECKS[n].applies(provided, settings)]
        parallel = self.jobs if self.more is not None and threads_allowed() else 1
        # More workers than the functions called, or than the checks, would idle.
        called = set().union(*(chosen.calls(provided, settings) for chosen in runnable))
        count = max(1, min(parallel, len(called), len(runnable)))
        self.used_jobs = count
        counted = _counted(finished, len(runnable))
        started = time.monotonic()
        if count == 1 or self.more is None:
            done = run_checks(runnable, 1, lambda chosen: counted(self._run(chosen, self.caller)))
        else:
            workers = Workers(self.caller, self.more, count, self.callers, called)
            self._workers = workers
            done = run_checks(
                runnable,
                count,
                lambda chosen: counted(self._run(chosen, workers)),
                lambda chosen: workers.uses(chosen.calls(provided, settings)),
                workers.changed,
            )
        verdicts = [done.get(name) or self.run(name, requested=requested) for name in names]
        self.checks_wall += time.monotonic() - started
        return [verdict for verdict in verdicts if verdict is not None]

    def nothing_applies(self, names: Sequence[str]) -> str | None:
        """Why none of the checks ``names`` applies to this candidate, in one line, or None
        when one does: known once the candidate is loaded, before any check runs."""
        provided = self.caller.provided
        if any(CHECKS[name].applies(provided, self.settings) for name in names):
            return None
        needs = "; ".join(f"{name} {CHECKS[name].requirement()}" for name in names)
        return (
            f"nothing was checked: no requested check applies to {self.caller.name} at dtype "
            f"{self.settings.dtype}: it provides {', '.join(sorted(provided))}; {needs}"
        )

    @property
    def undefined(self) -> tuple[str, ...]:
        """The contract's functions the candidate does not define, in the contract's order
        (grad_b only on a layer with a bias): the report's header lists them."""
        provided, parameters = self.caller.provided, self.settings.parameters
        return tuple(
            function
            for function in FUNCTIONS
            if function not in provided and PARAMETER_OF.get(function, "w") in parameters
        )

    def _run(self, chosen: Check, on: Caller) -> FunctionReport:
        report = self.run(chosen.name, on=on)
        assert report is not None  # runnable: it applies
        return report

    def report(self, functions: list[FunctionReport], *, timed: bool = True) -> Report:
        """The Report of these verdicts on this candidate; ``timed``: with whose time the run
        was, from loading until now (for the verdicts of a whole run, not some of a longer one)."""
        notes: collections.Counter[str] = collections.Counter()
        for each in self.callers:
            notes.update(each.notes)
        return Report(
            implementation=self.caller.name,
            settings=self.settings,
            functions=functions,
            environment=environment(),
            isolated=isinstance(self.caller, WorkerCaller),
            notes=dict(notes),
            compiles=sum(each.compiles for each in self.callers),
            jobs=self.used_jobs,
            load_notes=self.caller.load_notes,
            undefined=self.undefined,
            timing=self.timing(functions) if timed else None,
        )

    def timing(self, functions: list[FunctionReport]) -> Timing:
        """Whose time the run was, until now, for these verdicts (``Timing``)."""
        wall = time.monotonic() - self.opened
        candidate = sum(f.candidate_seconds for f in functions)
        if self.used_jobs == 1:  # one after another: everything not loading nor the candidate
            crosscheck = wall - self.loading - candidate
        else:  # at once: each check's own rest, summed, and the run's outside the checks
            checked = sum(f.seconds or 0.0 for f in functions)
            crosscheck = checked - candidate + (wall - self.loading - self.checks_wall)
        return Timing(
            wall=wall,
            loading=self.loading,
            checks_wall=self.checks_wall,
            jobs=self.used_jobs,
            calls=sum(f.calls for f in functions),
            candidate=candidate,
            crosscheck=max(0.0, crosscheck),
        )

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()  # first: a worker still starting then closes itself
        for each in list(self.callers):
            each.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(impl: Any = None, settings: Settings | None = None) -> Run:
    """Load ``impl`` (or start ``settings.command``) for checking with ``settings`` (default:
    every option's default; ``settings.jobs`` None is ``default_jobs()``). Raises a
    ``CrosscheckError`` (a ``ContractError``: the candidate cannot be loaded) as ``check``
    does."""
    opened = time.monotonic()
    if settings is None:
        settings = Settings()
    jobs = default_jobs() if settings.jobs is None else settings.jobs
    # crosscheck's persistent JAX compilation cache (``verify._cache``, unless the environment
    # names another): a jitted candidate compiles a shape once, then loads it in every later
    # run while its code is unchanged (JAX keys an entry by the compiled program), and a
    # worker started again after a crash loads what its predecessor compiled.
    folder = default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cache: str | None = str(folder)
    except OSError:
        cache = None  # a home that cannot be written: the workers compile without a cache
    start = functools.partial(make_caller, impl, settings, cache_dir=cache)
    caller, spec, words = start(isolate=settings.isolate)

    def more() -> Caller:
        """Another worker of the same candidate (``run_all``'s further workers)."""
        return start(isolate=True)[0]

    repro_dir = settings.repro_dir
    resolved = dataclasses.replace(
        settings,
        # The candidate's own word where the user said nothing: a forward of three parameters
        # or a step of five.
        bias=caller.bias if settings.bias is None else settings.bias,
        # The loss's reduction as a framework adapter read it, where the user declared none.
        reduction=caller.reduction if settings.reduction is None else settings.reduction,
        jobs=jobs,
        repro_dir=None if repro_dir is None else Path(repro_dir).resolve(),
    )
    return Run(
        caller=caller,
        spec=spec,
        command=words,
        settings=resolved,
        more=more if isinstance(caller, WorkerCaller) else None,
        opened=opened,
        loading=time.monotonic() - opened,
    )


def check(impl: Any = None, **options: Any) -> Report:
    """Check an implementation of the layer against the loop reference; return the Report.

    ``impl`` is a module, class instance, class or SPEC string (``pkg.mod:attr``,
    ``path/file.py:attr``, or a module) providing any of forward, loss (or l1_loss),
    loss_grad, grad_x, grad_w, update, step, and optionally asarray; or None with
    ``command=``. Every keyword is an option of ``Settings``, validated before the candidate
    is loaded (the arguments below, and the docs' option table, are generated from them).

    The report lists the checks in the registry's order whatever the order they finish in;
    two checks run at once only when they call different workers (``_workers``). A candidate
    called in this process, or a Hypothesis older than 6.136 (not thread-safe), runs its
    checks one after another.

    Returns:
      a Report; ``report.raise_on_failure()`` raises an AssertionError with its summary.

    Raises:
      ContractError: ``impl`` cannot be loaded or provides none of the functions.
      OptionError: an option is out of range (the message names it; a ValueError too).
      CrosscheckError: the base of both (nothing was checked).
      TypeError: a keyword that is not an option.
    """
    settings = Settings.given("check()", PYTHON, options)
    wanted = list(CHECKS) if settings.functions is None else list(settings.functions)
    with open_run(impl, settings) as run:
        return run.report(run.run_all(wanted, requested=settings.functions is not None))


check.__signature__ = check_signature()  # type: ignore[attr-defined]
check.__doc__ = (check.__doc__ or "") + "\n    Args:\n" + arguments_doc("      ") + "\n"


#: Told of each check of ``run_all`` as it ends: its verdict, its place k among the ``total``
#: that run (``k`` of ``total``).
Finished = Callable[[FunctionReport, int, int], None]


def _counted(finished: Finished | None, total: int) -> Callable[[FunctionReport], FunctionReport]:
    """Each verdict passed through, after ``finished`` is told of it (one thread at a time)."""
    lock, done = threading.Lock(), [0]

    def count(verdict: FunctionReport) -> FunctionReport:
        if finished is not None:
            with lock:
                done[0] += 1
                finished(verdict, done[0], total)
        return verdict

    return count


def _serialised(progress: Progress) -> Progress:
    """``progress``, called by one thread at a time."""
    lock = threading.Lock()

    def report(function: str, done: int, total: int) -> None:
        with lock:
            progress(function, done, total)

    return report
