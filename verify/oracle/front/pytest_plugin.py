"""crosscheck's pytest plugin (entry point ``pytest11``): one test item per check.

From the command line, ``--crosscheck SPEC`` (repeatable) collects one item per check of
``CHECKS`` that applies to SPEC, per SPEC and dtype, ``crosscheck:SPEC::grad_w[float32]`` (the
session's header says once what SPEC does not define), so that ``-k grad_w``, ``-x``,
``--lf``, ``-n`` (pytest-xdist) and ``--junitxml`` work on the checks as on any test::

    pytest --crosscheck examples/numpy_layer.py -v
    pytest --crosscheck my_layer.py:layer --crosscheck-dtype float32 --crosscheck-dtype bfloat16
    pytest --crosscheck my_layer.py -k "grad_w or step" --junitxml report.xml

With no test paths on the command line only the checks run (``testpaths`` are not collected);
``pytest tests --crosscheck SPEC`` runs both. The options are ``python -m verify check``'s,
prefixed (pytest's option names are shared by every plugin): ``--crosscheck-dtype``
(repeatable), ``--crosscheck-max-examples``, ..., one per option ``verify.Settings`` offers
pytest, parsed and checked by the command line's own parser.

In a test module, the ``crosscheck`` fixture is parametrized over the checks (and dtypes) and
runs one check per test on the layer it is given; ``@pytest.mark.crosscheck(...)`` takes
``verify.check``'s keyword options (``dtype`` may be a list)::

    layer = MyLayer()  # a top-level name: checked in a worker process

    @pytest.mark.crosscheck(dtype=["float32", "float64"], max_examples=50)
    def test_my_layer(crosscheck):
        crosscheck(layer)  # test_my_layer[grad_w-float32], ...

A failing item shows the oracle's finding, diagnosis, minimal counterexample and reproducer,
and its one-line finding is the short summary's and JUnit's message.

Why one check per item on a shared Run: each item runs its check alone (``_run.Run.run``) on
a Run opened for its SPEC and options when the session starts (the header, and the items'
collection, need the functions it provides) and closed at the end of the session. So ``-k``
runs only the selected checks; the candidate is loaded (its worker started, its JIT warmed)
once per SPEC and dtype, not once per item; and under xdist each process opens its own Run
(the controller too, for the header), with no coordination between them. (Running every
check once and reporting per item would run unselected checks, and under xdist run all of
them in every worker.)

Nothing heavy (numpy, Hypothesis, JAX) is imported until a --crosscheck run or the fixture is
used: pytest imports this module in every session of an environment that has crosscheck.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._io import TerminalWriter

    from ._report import FunctionReport, Report
    from ._run import Run

_RUNS = pytest.StashKey["_Runs"]()
_PLAN = pytest.StashKey["list[tuple[str, dict[str, Any]]]"]()


def _dest(name: str) -> str:
    return "crosscheck_" + name.replace("-", "_")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crosscheck", "crosscheck: check an implementation of the layer")
    group.addoption(
        "--crosscheck",
        action="append",
        default=[],
        metavar="SPEC",
        help="check SPEC (pkg.module:attr, path/file.py:attr or a module): one test item per "
        "check and dtype; repeatable",
    )
    from ._surfaces import pytest_options

    for each in pytest_options():
        extra = " (repeatable: one item per value)" if each.per_item else ""
        group.addoption(
            f"--crosscheck-{each.flag}",
            action=each.action,
            default=None,
            dest=_dest(each.flag),
            help=f"as --{each.flag} of python -m verify check{extra}",
            **({} if each.switch else {"metavar": each.flag.upper().replace("-", "_")}),
        )


def _given(config: pytest.Config) -> list[str]:
    """The ``--crosscheck-*`` options given, as the command line's arguments (those whose every
    value is an item of its own apart: ``_per_item``)."""
    from ._surfaces import pytest_options

    argv = []
    for each in pytest_options():
        value = config.getoption(_dest(each.flag))
        if not each.per_item and value not in (None, False):
            argv += [f"--{each.flag}"] if each.switch else [f"--{each.flag}", str(value)]
    return argv


def _settings(argv: list[str], where: str) -> dict[str, Any]:
    """``argv`` through ``python -m verify check``'s parser and checks: the marker's options
    by name (``_keywords``), typed and defaulted as the command line does; a
    ``pytest.UsageError`` naming the problem and ``where`` it came from otherwise."""
    from ...messages import CrosscheckError
    from . import cli

    try:
        args = cli._parser().parse_args(["SPEC", *argv])
        cli._validate(args)
    except CrosscheckError as err:
        raise pytest.UsageError(f"crosscheck: {err} ({where})") from None
    return {key: value for key, value in vars(args).items() if key in _keywords()}


def _per_item(config: pytest.Config) -> list[dict[str, Any]]:
    """The values that make items of their own (``--crosscheck-dtype float32 --crosscheck-dtype
    bfloat16``: one item per check and dtype), as one dict per item; each option's default
    when it is not given."""
    from ._surfaces import pytest_options

    combinations: list[dict[str, Any]] = [{}]
    for each in pytest_options():
        if each.per_item:
            values = dict.fromkeys(config.getoption(_dest(each.flag)) or [each.default])
            combinations = [{**done, each.name: value} for done in combinations for value in values]
    return combinations


def _as_arguments(values: dict[str, Any]) -> list[str]:
    """``{"dtype": "bfloat16"}`` -> ``["--dtype", "bfloat16"]``."""
    from ._surfaces import pytest_options

    flags = {each.name: each.flag for each in pytest_options()}
    return [word for name, value in values.items() for word in (f"--{flags[name]}", str(value))]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "crosscheck(**options): verify.check's options for the crosscheck fixture's checks "
        "(dtype may be a list: one test per check and dtype)",
    )
    runs = config.stash[_RUNS] = _Runs()
    config.add_cleanup(runs.close)
    specs = config.getoption("crosscheck")
    if not specs:
        return
    given = _given(config)
    config.stash[_PLAN] = [
        (spec, _settings([*given, *_as_arguments(item)], "--crosscheck-* options"))
        for spec in specs
        for item in _per_item(config)
    ]
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --crosscheck SPEC` checks SPEC; test paths named on the command line run too.
        config.args = []


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect and --lf filter the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list):
    plan = config.stash.get(_PLAN, [])
    for spec in dict.fromkeys(spec for spec, _ in plan):
        modes = [values for named, values in plan if named == spec]
        name = f"crosscheck:{spec}"  # its own node id: not under a file, whatever SPEC is
        collector = SpecCollector.from_parent(session, name=name, nodeid=name)
        collector.spec, collector.modes = spec, modes
        items.extend(session.genitems(collector))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Per SPEC and dtype of ``--crosscheck``, once: the contract's functions it does not
    define and the checks that do not apply to it, which get no item (a layer without a bias
    has no grad_b to list). The SPEC is loaded here, for the session (``_Runs``)."""
    lines = []
    for spec, values in config.stash.get(_PLAN, []):
        opened = config.stash[_RUNS].opened(spec, values)
        if not isinstance(opened, str) and (absent := _absent(opened)):
            from ._junit import mode

            lines.append(f"crosscheck: {spec} [{mode(values['dtype'], values['exact'])}]: {absent}")
    return lines


def _absent(run: Run) -> str:
    """What of ``run``'s candidate gets no item, in one line: ``not defined, so not checked:
    update, step, nor identities, which calls them; not applicable: consistency (needs ...)``;
    empty when every check applies."""
    from ..judging import CHECKS

    provided, settings, undefined = run.caller.provided, run.settings, run.undefined
    calling, inapplicable = [], []
    for name, check in CHECKS.items():
        if name in undefined or check.applies(provided, settings):
            continue
        if name == "grad_b" and not settings.bias:
            continue  # not part of a layer without a bias
        if not any(need <= provided for need in check.needs_for(settings)):
            calling.append(name)
        else:
            inapplicable.append(f"{name} ({check.requirement()})")
    parts = []
    if undefined:
        which = "which calls them" if len(calling) == 1 else "which call them"
        nor = f", nor {', '.join(calling)}, {which}" if calling else ""
        parts.append(f"not defined, so not checked: {', '.join(undefined)}{nor}")
    elif calling:
        inapplicable = [f"{name} ({CHECKS[name].requirement()})" for name in calling] + inapplicable
    if inapplicable:
        parts.append(f"not applicable: {'; '.join(inapplicable)}")
    return "; ".join(parts)


class SpecCollector(pytest.Collector):
    """The checks of one SPEC: an item per check that applies to it, per dtype (every check
    when it cannot be loaded: each item then fails with why)."""

    spec: str
    modes: list[dict[str, Any]]

    def collect(self) -> list[pytest.Item]:
        from ..judging import CHECKS
        from ._junit import case_name, mode

        items: list[pytest.Item] = []
        for values in self.modes:
            opened = self.config.stash[_RUNS].opened(self.spec, values)
            for check in CHECKS:
                if not isinstance(opened, str) and not CHECKS[check].applies(
                    opened.caller.provided, opened.settings
                ):
                    continue
                name = case_name(check, mode(values["dtype"], values["exact"]))
                # The node id given whole, so that it parses back the same from --lf's cache
                # ("grad_w" with param "float32", as pytest reads "grad_w[float32]").
                nodeid = f"{self.nodeid}::{name}"
                items.append(
                    CheckItem.from_parent(
                        self, name=name, nodeid=nodeid, spec=self.spec, check=check, values=values
                    )
                )
        return items


class CheckItem(pytest.Item):
    """One check of one SPEC at one dtype."""

    def __init__(self, *, spec: str, check: str, values: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.check, self.values = spec, check, values

    def runtest(self) -> None:
        run = self.config.stash[_RUNS].get(self.spec, self.values)
        conclude(self, run, _checked(run, self.check))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


def _checked(run: Run, check: str) -> FunctionReport | None:
    """``run.run(check)``, its Hypothesis files in crosscheck's cache rather than the user's
    working directory (``cli.hypothesis_files_in_the_cache``)."""
    from .cli import hypothesis_files_in_the_cache

    with hypothesis_files_in_the_cache():
        return run.run(check)


class CheckFailed(AssertionError):
    """A check failed: ``report`` holds its one verdict (rendered by ``FindingRepr``)."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.summary())
        self.report = report


def conclude(item: pytest.Item, run: Run, verdict: FunctionReport | None) -> None:
    """The test's outcome from the check's verdict: skip (with what it needs), fail
    (``CheckFailed``) or pass; the examples and worst ratio as JUnit properties."""
    __tracebackhide__ = True
    if verdict is None or verdict.status == "skip":
        pytest.skip(f"{item.name}: {verdict.note if verdict else 'not applicable'}")
    item.user_properties += [
        ("examples", verdict.examples),
        ("worst_error_over_bound", verdict.worst_ratio),
    ]
    if verdict.status == "fail":
        # The functions not defined are the session header's, once (pytest_report_header).
        raise CheckFailed(dataclasses.replace(run.report([verdict], timed=False), undefined=()))


@dataclasses.dataclass(frozen=True)
class _Crash:
    """Where and what, in one line: pytest's short summary and JUnit's failure message."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class FindingRepr:
    """A failed check as pytest shows it (a report's ``longrepr``): the run's header and the
    verdict's lines (finding, diagnosis, minimal counterexample, reproducer), no traceback of
    the oracle's. ``reprcrash.message`` is the one-line finding: the short summary's, JUnit's."""

    def __init__(self, report: Report, where: str) -> None:
        self.report = report
        verdict = report.functions[0]
        self.reprcrash = _Crash(where, f"{verdict.function}: {verdict.headline()}")

    def toterminal(self, tw: TerminalWriter) -> None:
        header, *lines = self.report.summary().splitlines()[:-1]  # without "1 of 1 failed."
        tw.line(header, bold=True)
        for line in lines:
            tw.line(line, red=line.lstrip().startswith(("diagnosis:", self.reprcrash.message)))

    def __str__(self) -> str:
        return "\n".join(self.report.summary().splitlines()[:-1])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A failed check shows its finding (``FindingRepr``); any other exception of a check
    item is crosscheck's own defect, as on the command line (exit 3 there): the item fails
    with pytest's traceback and a section that says so, the traceback saved to a file."""
    report = yield
    error = None if call.excinfo is None else call.excinfo.value
    if isinstance(error, CheckFailed):
        report.longrepr = FindingRepr(error.report, item.nodeid)
    elif isinstance(item, CheckItem) and isinstance(error, Exception) and call.when == "call":
        from ...messages import internal_error

        report.sections.append(("crosscheck", internal_error(error)))
    return report


class _Runs:
    """The Runs this pytest process opened, by SPEC and settings; each closed at the end. A
    SPEC that cannot be loaded is remembered too: every item of it fails with that one line."""

    def __init__(self) -> None:
        self._open: dict[Hashable, Run | str] = {}

    def opened(self, impl: Any, values: dict[str, Any]) -> Run | str:
        """The Run of ``impl`` with ``values``, opened the first time it is asked for, or
        why it cannot be (one line)."""
        key = (impl, tuple(sorted(values.items())))
        if key not in self._open:
            self._open[key] = _opened(impl, values)
        return self._open[key]

    def get(self, impl: Any, values: dict[str, Any]) -> Run:
        """``opened``, or the test fails with why it cannot be."""
        __tracebackhide__ = True
        found = self.opened(impl, values)
        if isinstance(found, str):
            pytest.fail(found, pytrace=False)
        return found

    def close(self) -> None:
        for run in self._open.values():
            if not isinstance(run, str):
                run.close()
        self._open.clear()


def _opened(impl: Any, values: dict[str, Any]) -> Run | str:
    """An open Run of ``impl`` with ``values``, or why it cannot be opened (one line)."""
    from ...messages import CrosscheckError, error_line
    from .._settings import Settings
    from ._run import open_run

    try:
        # One check per item: no workers to share out (jobs 1).
        return open_run(impl, Settings(**values, jobs=1))
    except CrosscheckError as err:
        return error_line(err)


# --- the fixture, for a test module that checks its own layer -------------------------------


def _keywords() -> tuple[str, ...]:
    """``@pytest.mark.crosscheck``'s keywords: the options ``Settings`` offers the marker."""
    from .._settings import MARKER, offered

    return offered(MARKER)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the ``crosscheck`` fixture: one test per check and dtype."""
    if "crosscheck" not in metafunc.fixturenames:
        return
    from ..judging import CHECKS
    from ._junit import mode

    marker = metafunc.definition.get_closest_marker("crosscheck")
    options = dict(marker.kwargs) if marker else {}
    where = f"@pytest.mark.crosscheck of {metafunc.definition.nodeid}"
    if marker and marker.args:
        pytest.fail(f"{where} takes keyword options only, got {marker.args!r}", pytrace=False)
    unknown = set(options) - set(_keywords())
    if unknown:
        pytest.fail(
            f"{where}: unknown options {sorted(unknown)}; known: {sorted(_keywords())}",
            pytrace=False,
        )
    base = _settings(_given(metafunc.config), "--crosscheck-* options")
    items = _per_item(metafunc.config)
    # A marker's option whose values are items of their own may be a list: one item per value.
    for name in list(items[0]):
        if name in options:
            given = options.pop(name)
            values = given if isinstance(given, (list, tuple)) else [given]
            items = [{**item, name: value} for item in items[:1] for value in values]
    params, ids = [], []
    for item in items:
        settings = {**base, **options, **item}
        for check in CHECKS:
            params.append((check, settings))
            ids.append(f"{check}-{mode(settings['dtype'], settings['exact'])}")
    metafunc.parametrize("crosscheck", params, ids=ids, indirect=True)


@pytest.fixture
def crosscheck(request: pytest.FixtureRequest) -> Callable[[Any], FunctionReport]:
    """``crosscheck(layer)`` runs this test's one check on ``layer`` (a module, class, object
    or SPEC, as ``verify.check`` takes) and returns its verdict; the test fails with the
    finding, or is skipped when ``layer`` lacks what the check needs. A layer held by a
    top-level name of the test module (or any SPEC) is checked in a worker process, loaded
    once for all the checks; any other object in this process."""
    from ..candidate import spec_of

    check, values = request.param

    def run_check(impl: Any) -> FunctionReport:
        __tracebackhide__ = True
        spec = impl if isinstance(impl, str) else spec_of(impl, home=request.module)
        if spec is not None and values.get("isolate") is not False:
            run = request.config.stash[_RUNS].get(spec, values)
            verdict = _checked(run, check)
            conclude(request.node, run, verdict)
            return verdict  # type: ignore[return-value]  # conclude skips a None
        opened = _opened(impl, values)
        if isinstance(opened, str):
            pytest.fail(opened, pytrace=False)
        with opened as run:
            verdict = _checked(run, check)
            conclude(request.node, run, verdict)
            return verdict  # type: ignore[return-value]

    return run_check
