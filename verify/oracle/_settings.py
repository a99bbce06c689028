"""Every option of the oracle, declared once: ``Settings``.

An option is one field, declared with ``_options.option`` (default, help, validation, how the
command line spells and parses it, where it is offered): in ``Options`` when a verdict depends
on it (it travels to the worker, the report and the reproducer), else here. From these fields
come ``verify.check``'s keywords, its signature and its docstring's arguments
(``check_signature``, ``arguments_doc``), ``python -m verify check``'s options
(``add_arguments``), the pytest plugin's ``--crosscheck-*`` options and marker keywords
(``offered``), and the docs' table (``options_table``: the docs build writes it with
``python -m verify.oracle._settings docs/options.md``). Every value is validated here, when a
``Settings`` is made, before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._calls import DEFAULT_IMPORT_TIMEOUT
from ._checks import CHECKS
from ._options import CLI, MARKER, PYTEST, PYTHON, Options, option, positive_seconds

#: Default directory for reproducers (gitignored).
DEFAULT_REPRO_DIR = "crosscheck-repro"

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1048576``: bytes (``--memory-limit``)."""
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


def _names(text: str) -> list[str]:
    """``--functions``'s comma-separated names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _checks(value: Any) -> bool:
    if value is None:
        return True
    names = not isinstance(value, str) and isinstance(value, Sequence)
    return names and bool(value) and set(value) <= set(CHECKS)


@dataclasses.dataclass(frozen=True)
class Settings(Options):
    """Every option of a check, validated when made (a ValueError, ``OptionError`` for one
    option's range, names the option, what it got and what it needs).

    The fields of ``Options`` (how a case is judged) and how the run goes. ``verify.check``
    takes each as a keyword; ``python -m verify check`` as ``--name`` (dashes for underscores);
    the pytest plugin as ``--crosscheck-name`` and ``@pytest.mark.crosscheck(name=...)``; where
    each is offered, and its meaning, is in its declaration and the docs' table
    (``options_table``). A new option is one field here (or in ``Options``, if a verdict
    depends on it), declared with ``_options.option``.
    """

    max_examples: int = option(
        100,
        "Hypothesis examples per check (before shrinking)",
        valid=_count,
        needs="an int >= 1",
        parse=int,
        metavar="N",
    )
    seed: int | None = option(
        0,
        "random seed of the search (None: a fresh one each run)",
        valid=lambda value: value is None or _int(value),
        needs="an int or None",
        parse=int,
        metavar="S",
    )
    functions: Sequence[str] | None = option(
        None,
        f"run only these checks (comma-separated on the command line), among "
        f"{','.join(CHECKS)}; default: every check the implementation allows; a check named "
        "here that does not apply is reported as skipped",
        valid=_checks,
        needs=f"a non-empty list of names among {','.join(CHECKS)}",
        parse=_names,
        metavar="NAMES",
        offered=(PYTHON, CLI),
    )
    repro_dir: str | Path | None = option(
        DEFAULT_REPRO_DIR,
        "where each failure writes its reproducer (None: nowhere)",
        valid=lambda value: value is None or isinstance(value, (str, Path)),
        needs="a folder path or None",
        parse=Path,
        metavar="DIR",
    )
    import_timeout: float = option(
        DEFAULT_IMPORT_TIMEOUT,
        "seconds a worker may take to load the implementation",
        valid=positive_seconds,
        needs="a finite number of seconds > 0",
        parse=float,
        metavar="SECONDS",
    )
    memory_limit: int | None = option(
        None,
        "bytes of address space a worker may use (RLIMIT_AS; 4G or 512M on the command line); "
        "default: no limit",
        valid=lambda value: value is None or _count(value),
        needs="a positive number of bytes or None",
        parse=parse_size,
        metavar="SIZE",
    )
    jobs: int | None = option(
        None,
        "worker processes, and checks run at once (default: $CROSSCHECK_JOBS or one per "
        "core); each function of the candidate is called on one worker, and the verdicts are "
        "the same for any number",
        valid=lambda value: value is None or _count(value),
        needs="a positive int or None",
        parse=int,
        metavar="N",
        short="-j",
        offered=(PYTHON, CLI),
    )
    isolate: bool | None = option(
        None,
        "False (--in-process): call the implementation in this process, for pdb (it can "
        "affect the verdict); True: in a worker process, or a ValueError; default: in a worker "
        "whenever the implementation can be loaded again there",
        choices=(True, False),  # type: ignore[arg-type]  # bools: membership is the check
        flag="--in-process",
        flag_value=False,
        offered=(PYTHON, CLI, MARKER),
    )
    progress: Callable[[str, int, int], None] | None = option(
        None,
        "called as progress(check, examples_so_far, max_examples)",
        valid=lambda value: value is None or callable(value),
        needs="a callable or None",
        offered=(PYTHON,),
    )
    command: str | Sequence[str] | None = option(
        None,
        "instead of an implementation, an executable that speaks the worker protocol (a "
        "string split like a shell would, or a list of words)",
        valid=lambda value: value is None or isinstance(value, (str, Sequence)),
        needs="a command line (a string or a list of words) or None",
        metavar="CMD",
        offered=(PYTHON, CLI),
    )
    json: Path | None = option(
        None,
        "write a machine-readable report here",
        parse=Path,
        metavar="PATH",
        offered=(CLI,),
    )
    junit_xml: Path | None = option(
        None,
        "write a JUnit XML report here (one testcase per check), for CI",
        parse=Path,
        metavar="PATH",
        offered=(CLI,),
    )

    @classmethod
    def given(cls, where: str, surface: str, values: Mapping[str, Any]) -> Settings:
        """The Settings of ``values``, keywords of ``surface`` (``where`` names the caller in
        the TypeError an unknown keyword gets, as Python's own)."""
        known = offered(surface)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(
                f"{where} got unexpected keyword argument(s) {unknown}; its options: "
                f"{', '.join(known)}"
            )
        return cls(**values)


def declarations() -> tuple[dataclasses.Field, ...]:
    """Every option's field, ``Options``' first, in the order they are declared."""
    return dataclasses.fields(Settings)


def offered(surface: str) -> tuple[str, ...]:
    """The names of the options offered on ``surface`` (``PYTHON``, ``CLI``, ``PYTEST``,
    ``MARKER``), in declaration order."""
    return tuple(f.name for f in declarations() if surface in f.metadata["offered"])


def spelling(name: str) -> str:
    """How the command line spells option ``name``: ``--max-examples``, ``--in-process``."""
    field = next(f for f in declarations() if f.name == name)
    return field.metadata["flag"] or "--" + name.replace("_", "-")


def _is_switch(field: dataclasses.Field) -> bool:
    """A flag without a value: a bool option (``--exact``) or one given a ``flag``."""
    return field.default is False or field.metadata["flag"] is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``python -m verify check``'s ``--options``, one per option offered on the CLI."""
    for field in declarations():
        meta = field.metadata
        if CLI not in meta["offered"]:
            continue
        names = [meta["short"], spelling(field.name)]
        shown = f"{field.default:g}" if isinstance(field.default, float) else field.default
        given = shown is not None and shown is not False
        text = meta["help"] + (f" (default {shown})" if given else "")
        kwargs: dict[str, Any] = {"dest": field.name, "default": field.default, "help": text}
        if _is_switch(field):
            kwargs.update(action="store_const", const=meta["flag_value"])
        else:
            kwargs.update(type=meta["parse"] or str, metavar=meta["metavar"])
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]
                kwargs.pop("metavar")
        parser.add_argument(*[n for n in names if n], **kwargs)


def from_arguments(args: argparse.Namespace) -> Settings:
    """The Settings of a parsed command line: every option offered on the CLI, by name."""
    return Settings(**{name: getattr(args, name) for name in offered(CLI)})


def pytest_options() -> list[tuple[str, str, bool]]:
    """The plugin's ``--crosscheck-NAME`` options: (the CLI's ``--NAME``, the argparse action,
    whether it is a switch), one per option offered to pytest."""
    found = []
    for field in declarations():
        if PYTEST in field.metadata["offered"]:
            switch = _is_switch(field)
            repeat = field.metadata["repeatable_in_pytest"]
            action = "store_true" if switch else "append" if repeat else "store"
            found.append((spelling(field.name)[2:], action, switch))
    return found


def check_signature() -> inspect.Signature:
    """``verify.check``'s signature: the implementation, then every option offered to Python
    as a keyword with its default."""
    from ._report import Report

    parameters = [inspect.Parameter("impl", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    parameters += [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
        )
        for f in declarations()
        if PYTHON in f.metadata["offered"]
    ]
    return inspect.Signature(parameters, return_annotation=Report)


def arguments_doc(indent: str = "  ") -> str:
    """The options offered to Python as a docstring's argument list (``verify.check``'s)."""
    lines = []
    for field in declarations():
        if PYTHON in field.metadata["offered"]:
            text, default = field.metadata["help"], field.default
            lines.append(f"{indent}{field.name}: {text} (default {default!r}).")
    return "\n".join(lines)


def options_table() -> str:
    """Every option as a markdown table: its names on each surface, type, default, meaning."""
    rows = [
        "| Python (`verify.check`) | command line | pytest | type | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for field in declarations():
        meta = field.metadata
        where = meta["offered"]
        python = f"`{field.name}`" if PYTHON in where else ""
        cli = f"`{spelling(field.name)}`" if CLI in where else ""
        if meta["short"] and cli:
            cli = f"`{meta['short']}`, {cli}"
        pytest = f"`--crosscheck-{spelling(field.name)[2:]}`" if PYTEST in where else ""
        if MARKER in where and PYTEST not in where:
            pytest = f"marker `{field.name}=`"
        text = meta["help"].replace("|", "\\|")
        if meta["choices"] is not None:
            text += "; one of " + ", ".join(f"`{c}`" for c in meta["choices"])
        kind = str(field.type).replace("|", "\\|")
        row = (python, cli, pytest, f"`{kind}`", f"`{field.default!r}`", text)
        rows.append("| " + " | ".join(row) + " |")
    return (
        "# Options\n\n"
        "Every option of `verify.check`, `python -m verify check` and the pytest plugin, "
        "generated from their one declaration, `verify.Settings` "
        "(`python -m verify.oracle._settings docs/options.md`).\n\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str]) -> int:
    """Write ``options_table()`` to the file named by ``argv`` (stdout without one)."""
    if argv:
        Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(argv[0]).write_text(options_table(), encoding="utf-8")
    else:
        sys.stdout.write(options_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
