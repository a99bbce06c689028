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
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import bounds
from ..messages import ExitCode, Parser, UsageError, print_error, sigterm_as_interrupt
from ._calls import DEFAULT_IMPORT_TIMEOUT
from ._check import DEFAULT_REPRO_DIR, open_run
from ._checks import CHECKS
from ._junit import junit_xml
from ._loading import ContractError
from ._options import DEFAULT_TIMEOUT, Options
from ._report import Report

PROG = "python -m verify check"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Check an implementation of the dense layer with L1 loss against the loop "
        "reference. SPEC is package.module:attr, path/to/file.py:attr, or a module; --command "
        "runs any executable that speaks the worker protocol instead.",
        epilog="Exit 0: every check agrees; 1: a defect was found; 2: nothing was checked "
        "(usage or contract error); 3: the oracle could not finish.",
    )
    parser.add_argument("spec", metavar="SPEC", nargs="?", help="the implementation to check")
    parser.add_argument(
        "--command",
        metavar="CMD",
        help="check an executable that speaks the worker protocol (split like a shell would)",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=100,
        metavar="N",
        help="Hypothesis examples per function (default 100)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed of the search (default 0)"
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(bounds.UNIT_ROUNDOFF),
        default="float32",
        help="dtype of the inputs (default float32)",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="integer data: results must equal the reference exactly",
    )
    parser.add_argument(
        "--tie-convention",
        choices=sorted(bounds.TIE_CONVENTIONS),
        default=None,
        help="pin dL_do at ties: seed -1, jax +1, torch 0 (default: any in [-1, 1])",
    )
    parser.add_argument(
        "--matmul-precision",
        choices=sorted(bounds.MATMUL_INPUT_ROUNDOFF),
        default="float32",
        help="declared float32 matmul precision (default float32: full)",
    )
    parser.add_argument(
        "--accumulation",
        choices=["float32", "bfloat16", "float16"],
        default=None,
        help="declared accumulation of sums and matmuls at --dtype bfloat16 / float16 "
        "(default float32, as PyTorch and JAX; the dtype itself for numpy's sums)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per-call timeout (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--functions",
        default=None,
        metavar="NAMES",
        help=f"comma-separated subset of {','.join(CHECKS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a machine-readable report here",
    )
    parser.add_argument(
        "--junit-xml",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a JUnit XML report here (one testcase per check), for CI",
    )
    parser.add_argument(
        "--repro-dir",
        type=Path,
        default=Path(DEFAULT_REPRO_DIR),
        metavar="DIR",
        help=f"where failures write reproducers (default ./{DEFAULT_REPRO_DIR})",
    )
    parser.add_argument(
        "--import-timeout",
        type=float,
        default=DEFAULT_IMPORT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds the worker may take to load SPEC (default {DEFAULT_IMPORT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--memory-limit",
        type=_size,
        default=None,
        metavar="SIZE",
        help="address space of the worker, e.g. 4G or 512M (RLIMIT_AS; default none)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes, checks run at once (default: one per core); each function "
        "is called on one worker, and the verdicts are the same for any N",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call SPEC in this process instead of a worker (for pdb; it can affect the verdict)",
    )
    return parser


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    """``4G``, ``512M``, ``1048576``: bytes."""
    number, unit = text.strip().rstrip("Bb"), ""
    if number and number[-1].upper() in _UNITS:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 4G or 512M, got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return int(value)


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


class _TerminalProgress:
    """``checking grad_w: 37/100`` on one rewritten line of a terminal, after a second."""

    def __init__(self, stream=sys.stderr, delay: float = 1.0) -> None:
        self.stream, self.start, self.delay, self.shown = stream, time.monotonic(), delay, False

    def __call__(self, function: str, done: int, total: int) -> None:
        if time.monotonic() - self.start < self.delay:
            return
        phase = "shrinking" if done > total else f"{done}/{total}"
        self.stream.write(f"\r  checking {function:<11} {phase:<12}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 40 + "\r")
            self.stream.flush()


def main(argv: list[str]) -> int:
    """Run the check; return the exit status (``messages.ExitCode``)."""
    try:
        args = _parser().parse_args(argv)
        functions = None
        if args.functions is not None:
            functions = [name.strip() for name in args.functions.split(",") if name.strip()]
        _validate(args, functions)
    except (UsageError, ValueError) as err:
        print_error(err)
        return ExitCode.USAGE
    _keep_hypothesis_out_of_the_working_directory()
    progress = _TerminalProgress() if sys.stderr.isatty() else None
    try:
        with sigterm_as_interrupt():
            report = _checked(args, functions, progress)
    except (ContractError, ValueError) as err:
        print_error(err)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print_error("interrupted; every worker process was stopped")
        return ExitCode.INCOMPLETE
    except Exception as err:  # the oracle's own defect: one line, not a traceback
        print_error(f"internal error: {type(err).__name__}: {err} (please report it)")
        return ExitCode.INCOMPLETE
    finally:
        if progress:
            progress.clear()
    print(report.summary())
    try:
        for path, text in (
            (args.json, lambda: json.dumps(report.to_dict(), indent=2) + "\n"),
            (args.junit_xml, lambda: junit_xml(report)),
        ):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text(), encoding="utf-8")
    except OSError as err:  # the folder was probed before the run: something changed since
        print_error(f"the report could not be written: {err}")
        return ExitCode.INCOMPLETE
    return ExitCode.OK if report.passed else ExitCode.DEFECT


def _checked(args: argparse.Namespace, functions: list[str] | None, progress: Any) -> Report:
    """The Report of the run the arguments ask for; a ContractError, before any check runs,
    when the candidate cannot be loaded or none of the checks applies to it."""
    wanted = list(CHECKS) if functions is None else functions
    with open_run(
        args.spec,
        command=args.command,
        options=options_of(args),
        max_examples=args.max_examples,
        seed=args.seed,
        repro_dir=args.repro_dir,
        progress=progress,
        isolate=False if args.in_process else None,
        import_timeout=args.import_timeout,
        memory_limit=args.memory_limit,
        jobs=args.jobs,
    ) as run:
        why = run.nothing_applies(wanted)
        if why is not None:
            raise ContractError(why)
        return run.report(run.run_all(wanted, requested=functions is not None))


def options_of(args: argparse.Namespace) -> Options:
    """The ``Options`` the parsed arguments ask for: every field of ``Options`` is read from
    the argument of the same name, so a new field needs only its ``--option`` here."""
    return Options(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(Options)}
    )


def _validate(args: argparse.Namespace, functions: list[str] | None) -> None:
    """Every usage error that can be known before the run (UsageError or ValueError)."""
    if (args.spec is None) == (args.command is None):
        raise UsageError("give SPEC or --command CMD (exactly one)")
    if args.command is not None and args.in_process:
        raise UsageError("--in-process needs a Python SPEC, not --command")
    options_of(args)
    if not math.isfinite(args.timeout):
        raise UsageError(f"--timeout must be a finite number of seconds, got {args.timeout}")
    if not (math.isfinite(args.import_timeout) and args.import_timeout > 0):
        raise UsageError(f"--import-timeout must be > 0 seconds, got {args.import_timeout}")
    if args.max_examples < 1:
        raise UsageError(f"--max-examples must be >= 1, got {args.max_examples}")
    if functions is not None:
        if not functions:
            raise UsageError(f"--functions names no check; choose among {','.join(CHECKS)}")
        unknown = set(functions) - set(CHECKS)
        if unknown:
            raise UsageError(f"--functions: unknown {sorted(unknown)}; known: {','.join(CHECKS)}")
    for option in ("json", "junit_xml"):
        if getattr(args, option) is not None:
            writable_file(getattr(args, option), f"--{option.replace('_', '-')}")
    if args.repro_dir.exists() and not args.repro_dir.is_dir():
        raise UsageError(f"--repro-dir {args.repro_dir}: not a directory")
    writable_folder(args.repro_dir, "--repro-dir", args.repro_dir)


def _keep_hypothesis_out_of_the_working_directory() -> None:
    """Hypothesis's files (its constants cache) in crosscheck's cache, not ./.hypothesis/,
    unless the user chose a place (``HYPOTHESIS_STORAGE_DIRECTORY``). This process is the
    command line's own, so the setting touches nobody else's tests."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    set_hypothesis_home_dir(cache / "crosscheck" / "hypothesis")
