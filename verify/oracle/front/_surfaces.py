"""The surfaces generated from the one declaration of every option (``Settings``): the command
line's options (``add_arguments``, ``from_arguments``), the pytest plugin's (``pytest_options``),
``verify.check``'s signature and docstring (``check_signature``, ``arguments_doc``) and the docs'
table (``options_table``: ``python -m verify.oracle.front._surfaces docs/options.md``)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any, NamedTuple

from .. import _settings
from .._settings import CLI, MARKER, PYTEST, PYTHON, Settings, declarations, offered, spelling


def _is_switch(field: dataclasses.Field) -> bool:
    """A flag without a value: a bool option (``--exact``) or one given a ``flag``."""
    return field.default is False or field.metadata["flag"] is not None


def _typed(parse: Any) -> Any:
    """argparse's ``type``: ``parse``, its ValueError an argparse error (one line, exit 2)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def help_groups(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """``--help``'s groups (``_settings.GROUPS``), in order, on ``parser``."""
    return {name: parser.add_argument_group(name) for name in _settings.GROUPS}


def cli_help(field: dataclasses.Field) -> str:
    """An option's ``--help`` text: its command-line wording, with its default where there is
    one to show (not None, False or empty: those are said in words, or not at all)."""
    meta, default = field.metadata, field.default
    shown = f"{default:g}" if isinstance(default, float) else default
    given = shown is not None and shown is not False and shown != ()
    return meta["cli_help"] + (f" (default {shown})" if given else "")


def add_arguments(parser: argparse.ArgumentParser, groups: dict[str, Any] | None = None) -> None:
    """``python -m verify check``'s ``--options``, one per option offered on the CLI, each in
    its ``--help`` group (``groups``, default ``help_groups(parser)``)."""
    groups = help_groups(parser) if groups is None else groups
    for field in declarations():
        meta = field.metadata
        if CLI not in meta["offered"]:
            continue
        names = [meta["short"], spelling(field.name)]
        kwargs: dict[str, Any] = {
            "dest": field.name,
            "default": field.default,
            "help": cli_help(field),
        }
        if _is_switch(field):
            kwargs.update(action="store_const", const=meta["flag_value"])
        else:
            parse = meta["parse"] or str
            # Python's own conversions keep argparse's wording ("invalid int value: 'x'").
            converter = parse if parse in (int, float, str, Path) else _typed(parse)
            kwargs.update(type=converter, metavar=meta["metavar"])
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]
                kwargs.pop("metavar")
        groups[meta["group"]].add_argument(*[n for n in names if n], **kwargs)


def from_arguments(args: argparse.Namespace) -> Settings:
    """The Settings of a parsed command line: every option offered on the CLI, by name."""
    # The declaration read at call time (a test declares an option on a subclass).
    return _settings.Settings(**{name: getattr(args, name) for name in offered(CLI)})


class PytestOption(NamedTuple):
    """One ``--crosscheck-FLAG`` option of the pytest plugin."""

    #: the option's Python name (``max_examples``) and the CLI's spelling without dashes
    #: (``max-examples``).
    name: str
    flag: str
    #: argparse's action: ``store_true`` (a switch), ``append`` (repeatable) or ``store``.
    action: str
    switch: bool
    #: each value given is a test item of its own (``--crosscheck-dtype`` twice: two items
    #: per check); ``default`` is the one item when none is given.
    per_item: bool
    default: Any


def pytest_options() -> list[PytestOption]:
    """The plugin's ``--crosscheck-FLAG`` options, one per option offered to pytest."""
    found = []
    for field in declarations():
        if PYTEST in field.metadata["offered"]:
            switch = _is_switch(field)
            repeat = field.metadata["repeatable_in_pytest"]
            action = "store_true" if switch else "append" if repeat else "store"
            flag = spelling(field.name)[2:]
            found.append(PytestOption(field.name, flag, action, switch, repeat, field.default))
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
        "(`python -m verify.oracle.front._surfaces docs/options.md`). The meaning is in Python's "
        "terms; `python -m verify check --help` gives it in the command line's, in groups (what "
        "to check, numerics, running, output): there an option left out takes its default, and "
        "no option takes `None`.\n\n" + "\n".join(rows) + "\n"
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
