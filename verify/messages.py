"""How crosscheck speaks: one comparison format, one error prefix, one set of exit codes.

Every element comparison, wherever it is made (the oracle, ``check_exact``, the multi-host
workers, the test suite), is rendered by ``explain``::

    dL_dw[3, 1] = 0.52, but should be 0.26 (bound 1.2e-06) [grad_w(x: (5, 4), dL_do: (5, 3))]
    dL_dx[0, 2] = 3.0, but should be exactly 4.0 [step(x: (64, 32), ...)]

Every command (``python -m verify``, ``check``, ``precision``, ``exact``, ``multihost``,
reproducers, ``scripts/``) writes its errors as one line starting with ``ERROR_PREFIX`` and exits
with an ``ExitCode``.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

import numpy as np

#: The start of every error line any crosscheck command prints.
ERROR_PREFIX = "crosscheck: error: "


class ExitCode(enum.IntEnum):
    """The exit status of every crosscheck command."""

    #: Everything that was asked for ran, and everything checked agrees.
    OK = 0
    #: A defect was found (a wrong result, a crash of the candidate, a mismatching shard).
    DEFECT = 1
    #: Nothing was checked: the command line or the implementation cannot be used as given
    #: (a bad option, SPEC not importable, nothing recognised, nothing to check).
    USAGE = 2
    #: The run itself could not finish: a process of the run crashed or hung, or the hardware
    #: it needs is missing.
    INCOMPLETE = 3


def error_line(message: object) -> str:
    """``message`` (a string or an exception) as the one-line error every command prints."""
    text = " ".join(str(message).split())
    return f"{ERROR_PREFIX}{text}"


def print_error(message: object) -> None:
    """Print ``error_line(message)`` on stderr."""
    print(error_line(message), file=sys.stderr, flush=True)


class CrosscheckError(Exception):
    """Nothing was checked, through no fault of crosscheck's: a bad option or command line, an
    implementation that cannot be loaded or provides nothing to check. Every command reports it
    as one ``error_line`` and exits ``ExitCode.USAGE``; any other exception inside crosscheck is
    crosscheck's own defect (``ExitCode.INCOMPLETE``, its traceback saved)."""


class ContractError(CrosscheckError):
    """The implementation cannot be checked at all: not importable, nothing recognised, or a
    framework module the adapters cannot read as the layer."""


class UsageError(CrosscheckError):
    """A command-line error: reported as one ``error_line``, exit ``ExitCode.USAGE``."""


def internal_error(err: BaseException) -> str:
    """The error line of crosscheck's own defect ``err``, its traceback saved to a file first:
    ``internal error: KeyError: 'x' (crosscheck's own defect, not your code's; traceback in
    /tmp/crosscheck-internal-error-....txt: please report it)``."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    with tempfile.NamedTemporaryFile(
        "w", prefix="crosscheck-internal-error-", suffix=".txt", delete=False
    ) as saved:
        saved.write(text)
    return (
        f"internal error: {type(err).__name__}: {err} (crosscheck's own defect, not your "
        f"code's; traceback in {saved.name}: please report it)"
    )


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ``UsageError`` (one line) instead of printing
    argparse's usage block and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so that a terminated command still stops the
    processes it started (and exits ``ExitCode.INCOMPLETE``, as an interrupted one does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def number(value: float) -> str:
    """``value`` exactly and briefly: the shortest float32 repr when it is a float32 value (every
    float32, bfloat16 and float16 result is), else the shortest float64 repr."""
    value = float(value)
    with np.errstate(over="ignore"):
        single = np.float32(value)
    if np.isfinite(value) and float(single) == value:
        return str(single)
    return repr(value)


def explain(
    name: str,
    got: float,
    want: float,
    *,
    index: tuple[int, ...] = (),
    bound: float | None = None,
    call: str | None = None,
    relation: str = "",
) -> str:
    """``name[index] = got, but should be want (bound b) [call]``: the one comparison message.

    Args:
      name: the quantity, e.g. ``dL_dw`` (or ``L(w_new)``).
      got: the value found.
      want: the centre of the admissible set.
      index: the element, empty for a scalar.
      bound: the admissible distance from ``want``; None or 0: ``want`` exactly.
      call: the call that produced the value, e.g. ``grad_w(x: (5, 4), dL_do: (5, 3))``.
      relation: between "should be" and ``want``, e.g. ``">="`` for a one-sided check.
    """
    where = f"{name}[{', '.join(map(str, index))}]" if index else name
    should = f"should be {relation + ' ' if relation else ''}"
    if not bound:
        text = f"{where} = {number(got)}, but {should}{'' if relation else 'exactly '}"
        text += number(want)
    else:
        text = f"{where} = {number(got)}, but {should}{number(want)} (bound {bound:.2g})"
    return f"{text} [{call}]" if call else text
