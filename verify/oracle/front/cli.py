"""``python -m verify check SPEC [options]`` (or ``--command CMD``): check an implementation.

Exit status (``messages.ExitCode``): 0 at least one check ran and every check agrees with the
reference; 1 a defect was found (its diagnosis, minimal counterexample and reproducer are
printed); 2 nothing was checked: usage or contract error (a bad option, an unwritable --json,
--junit-xml or --repro-dir, SPEC cannot be imported or hangs or exits while importing, nothing
recognised, no check applies), with a one-line reason; 3 the oracle itself could not finish
(interrupted, or an internal error, one line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from ...messages import (
    CrosscheckError,
    ExitCode,
    Parser,
    UsageError,
    internal_error,
    print_error,
    sigterm_as_interrupt,
)
from .._settings import DEFAULT_REPRO_DIR, WHAT, OptionError, Settings, spelling
from ..candidate import ContractError
from ..judging import CHECKS
from ._junit import junit_xml
from ._report import FunctionReport, Report
from ._run import Finished, open_run
from ._surfaces import add_arguments, from_arguments, help_groups

PROG = "python -m verify check"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        usage=f"{PROG} SPEC [options]\n       {PROG} --command CMD [options]",
        description="Check an implementation of the dense layer with L1 loss against the loop "
        "reference: SPEC is a module, path/to/file.py or a notebook (with :attr for one object "
        "in it); --command runs any executable that speaks the worker protocol instead.",
        epilog="Exit 0: every check agrees; 1: a defect was found; 2: nothing was checked "
        "(usage or contract error); 3: the oracle could not finish.",
    )
    groups = help_groups(parser)
    groups[WHAT].add_argument(
        "spec",
        metavar="SPEC",
        nargs="?",
        help="the implementation to check: a module, path/to/file.py, a notebook, or any of "
        "them with :attr",
    )
    add_arguments(parser, groups)
    return parser


def writable_file(path: Path, option: str) -> None:
    """A UsageError unless a file can be written at ``path``: its folder is made and a file
    written and removed there, before the run (a permission check alone passes for root where
    the kernel refuses, as under /sys). A folder made here stays for the report."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file path")
    try:
        if path.exists():
            open(path, "ab").close()  # opened as the report will be, and left unchanged
    except OSError as err:
        raise UsageError(f"{option} {path}: not writable ({err.strerror or err})") from None
    writable_folder(path.parent, option, path, keep=True)


def writable_folder(folder: Path, option: str, given: Path, *, keep: bool = False) -> None:
    """A UsageError unless ``folder`` is, or can be made, a directory where a file can be
    written: it is made, a file written in it and removed, and (unless ``keep``) the folders
    made are removed again, so that a run that needs none leaves none."""
    missing = []
    existing = folder.absolute()
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {given}: {existing} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UsageError(f"{option} {given}: cannot write there ({err.strerror or err})") from None
    finally:
        if not keep:
            for made in missing:  # deepest first
                with contextlib.suppress(OSError):
                    made.rmdir()


class FinishedChecks:
    """Progress on a terminal: one line per check as it ends, ``  grad_x      PASS    105
    examples   3/9, about 12 s left``, written whole and never redrawn (checks that run at
    once on ``-j`` workers finish one after another, each on a line of its own). The time
    left is the wall time so far per finished check, times the checks left."""

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.clock, self.start = clock, clock()

    def __call__(self, verdict: FunctionReport, done: int, total: int) -> None:
        left = total - done
        elapsed = self.clock() - self.start
        eta = f", about {_duration(elapsed / done * left)} left" if left and done else ""
        self.stream.write(
            f"  {verdict.function:<11} {verdict.status.upper():<5} {verdict.examples:>5} "
            f"examples   {done}/{total}{eta}\n"
        )
        self.stream.flush()


def _duration(seconds: float) -> str:
    """``12 s``, ``3 min``: how long, as briefly as a progress line needs."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def main(argv: list[str]) -> int:
    """Run the check; return the exit status (``messages.ExitCode``).

    A ``CrosscheckError`` (a bad option, a candidate that cannot be loaded or provides nothing
    to check) is one line and exit 2; any other exception is the oracle's own defect: exit 3,
    its traceback saved to a file whose path the error line gives.
    """
    try:
        return _main(argv)
    except CrosscheckError as err:
        print_error(err)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print_error("interrupted; every worker process was stopped")
        return ExitCode.INCOMPLETE
    except Exception as err:
        print_error(internal_error(err))
        return ExitCode.INCOMPLETE


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = _validate(args)
    _keep_hypothesis_out_of_the_working_directory()
    finished = FinishedChecks() if sys.stderr.isatty() else None
    with sigterm_as_interrupt():
        report = _checked(args.spec, settings, finished)
    print(report.summary())
    try:
        for path, text in (
            (settings.json, lambda: json.dumps(report.to_dict(), indent=2) + "\n"),
            (settings.junit_xml, lambda: junit_xml(report)),
        ):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text(), encoding="utf-8")
    except OSError as err:  # the folder was probed before the run: something changed since
        print_error(f"the report could not be written: {err}")
        return ExitCode.INCOMPLETE
    return ExitCode.OK if report.passed else ExitCode.DEFECT


def _checked(spec: str | None, settings: Settings, finished: Finished | None = None) -> Report:
    """The Report of the run ``settings`` ask for on ``spec`` (``finished`` told of each
    check as it ends); a ContractError, before any check runs, when the candidate cannot be
    loaded or none of the checks applies to it."""
    wanted = list(CHECKS) if settings.functions is None else list(settings.functions)
    with open_run(spec, settings) as run:
        why = run.nothing_applies(wanted)
        if why is not None:
            raise ContractError(why)
        requested = settings.functions is not None
        return run.report(run.run_all(wanted, requested=requested, finished=finished))


def _validate(args: argparse.Namespace) -> Settings:
    """The Settings the arguments ask for, after every usage error that can be known before
    the run (a UsageError): the options' own ranges (``Settings``, an error
    spelled as the command line spells the option), SPEC or --command, the report's and the
    reproducers' folders made and written to."""
    if (args.spec is None) == (args.command is None):
        raise UsageError("give SPEC or --command CMD (exactly one)")
    if args.command is not None and args.isolate is False:
        raise UsageError("--in-process needs a Python SPEC, not --command")
    try:
        settings = from_arguments(args)
    except OptionError as err:
        raise UsageError(f"{spelling(err.option)} {err.problem}") from None
    for option in ("json", "junit_xml"):
        if getattr(settings, option) is not None:
            writable_file(getattr(settings, option), spelling(option))
    repro_dir = Path(settings.repro_dir or DEFAULT_REPRO_DIR)
    if repro_dir.exists() and not repro_dir.is_dir():
        raise UsageError(f"--repro-dir {repro_dir}: not a directory")
    writable_folder(repro_dir, "--repro-dir", repro_dir)
    return settings


def _keep_hypothesis_out_of_the_working_directory() -> None:
    """Hypothesis's files (its constants cache) in crosscheck's cache, not ./.hypothesis/,
    unless the user chose a place (``HYPOTHESIS_STORAGE_DIRECTORY``). This process is the
    command line's own, so the setting touches nobody else's tests."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(hypothesis_home())


def hypothesis_home() -> Path:
    """Where the oracle's Hypothesis keeps its files: ``~/.cache/crosscheck/hypothesis``
    (``$XDG_CACHE_HOME`` where set)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "crosscheck" / "hypothesis"


@contextlib.contextmanager
def hypothesis_files_in_the_cache() -> Iterator[None]:
    """Within: Hypothesis's files in ``hypothesis_home()``, unless the user chose a place
    (``HYPOTHESIS_STORAGE_DIRECTORY``); after: where they were. For a check run in someone
    else's process (the pytest plugin), whose own Hypothesis tests keep their ./.hypothesis/
    (run one at a time with the check: pytest runs its items in turn)."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    from hypothesis import configuration

    # The home set so far, or None (Hypothesis resolves it on first use): module state that
    # set_hypothesis_home_dir writes and nothing public reads.
    before = vars(configuration).get("__hypothesis_home_directory")
    configuration.set_hypothesis_home_dir(hypothesis_home())
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(before)
