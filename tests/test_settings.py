"""``verify.Settings`` declares every option once: ``verify.check``'s keywords, the command
line, the pytest plugin and the docs' table are generated from it, with the defaults the
options have always had, and one new field is all a new option takes."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import verify
from verify.oracle import _settings
from verify.oracle._settings import (
    CLI,
    MARKER,
    PYTEST,
    PYTHON,
    OptionError,
    Settings,
    option,
    spelling,
)
from verify.oracle.front import _surfaces, cli

ROOT = Path(__file__).resolve().parents[1]

#: Every option's default as ``verify.check`` and ``python -m verify check`` took it before the
#: options were declared in one place: a default that changes changes every report.
DEFAULTS = {
    "command": None,
    "max_examples": 100,
    "seed": 0,
    "dtype": "float32",
    "exact": False,
    "tie_convention": None,
    "matmul_precision": "float32",
    "accumulation": None,
    "bias": None,  # issue 21: None reads the candidate's own parameter counts
    "timeout": 60.0,
    "functions": None,
    "repro_dir": "crosscheck-repro",
    "progress": None,
    "isolate": None,
    "import_timeout": 120.0,
    "memory_limit": None,
    "jobs": None,
    # Options added since, each one declaration:
    "tile": (),
    "deterministic": False,
    "multiple_of": None,
    "reduction": None,  # issue 28: None is the seed's sum, or a framework adapter's word
}

#: The command line's options before, by their spelling.
CLI_SPELLINGS = {
    "--command", "--max-examples", "--seed", "--dtype", "--exact", "--tie-convention",
    "--matmul-precision", "--accumulation", "--timeout", "--functions", "--json", "--junit-xml",
    "--repro-dir", "--import-timeout", "--memory-limit", "-j", "--jobs", "--in-process",
    "--tile",  # added since
    "--bias", "--deterministic", "--multiple-of",
    "--reduction",
}  # fmt: skip


def test_check_takes_every_python_option_with_its_default() -> None:
    signature = inspect.signature(verify.check)
    keywords = {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert keywords == DEFAULTS
    assert next(iter(signature.parameters)) == "impl"
    assert set(keywords) == set(_settings.offered(PYTHON))
    for name in keywords:  # and its docstring says what each is
        assert f"\n      {name}: " in (verify.check.__doc__ or ""), name


def test_check_refuses_a_keyword_that_is_no_option() -> None:
    with pytest.raises(TypeError, match=r"check\(\) got unexpected keyword.*\['max_example'\]"):
        verify.check("reference", max_example=3)


def test_the_command_line_has_the_same_options_and_defaults() -> None:
    parser = cli._parser()
    spellings = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    assert spellings == CLI_SPELLINGS
    args = parser.parse_args(["SPEC"])
    settings = _surfaces.from_arguments(args)
    for name, default in DEFAULTS.items():
        if name == "repro_dir":  # a path on the command line
            assert settings.repro_dir == Path(default)
        elif name != "progress":
            assert getattr(settings, name) == default, name


def test_an_options_range_is_checked_once_and_named_as_each_surface_spells_it(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(OptionError, match=r"^max_examples must be an int >= 1, got 0$"):
        verify.check("reference", max_examples=0)
    with pytest.raises(OptionError, match=r"^jobs must be a positive int or None, got 0$"):
        Settings(jobs=0)
    with pytest.raises(OptionError, match=r"^functions must be a non-empty list.*got \[\]$"):
        Settings(functions=[])
    with pytest.raises(OptionError, match=r"^timeout must be a finite number .*, got inf$"):
        Settings(timeout=float("inf"))
    with pytest.raises(ValueError, match="exact mode needs dtype float32 or float64"):
        Settings(exact=True, dtype="bfloat16")  # a rule between two options
    assert cli.main(["reference", "--max-examples", "0"]) == 2
    assert capsys.readouterr().err == (
        "crosscheck: error: --max-examples must be an int >= 1, got 0\n"
    )


def test_the_judged_options_are_declared_so_and_described_as_before() -> None:
    """Settings is the one declaration: the options a verdict depends on are marked ``judged``
    (no base class to strip back), and a report and a reproducer store those alone."""
    assert not any(base is not object for base in Settings.__bases__)
    judged = [f.name for f in _settings.declarations() if f.metadata["judged"]]
    assert judged == [
        "dtype", "exact", "tie_convention", "matmul_precision", "timeout", "accumulation",
        "tile", "bias", "deterministic", "multiple_of", "reduction",
    ]  # fmt: skip
    settings = Settings(dtype="float64", max_examples=5, jobs=2)
    assert settings.described() == {
        "dtype": "float64",
        "exact": False,
        "tie_convention": None,
        "matmul_precision": "float32",
        "timeout": 60.0,
        "accumulation": None,
    }
    # A layer without a bias, a kernel without a declared tile, a loss without a declared
    # reduction, is described as before each option existed; given, each is stored.
    assert Settings(bias=True).described()["bias"] is True
    assert Settings(tile=(512,)).described()["tile"] == (512,)
    assert Settings(reduction="mean").described()["reduction"] == "mean"
    declared = Settings(bias=False, tile=(64,), reduction="batchmean")
    assert Settings(**declared.described()).described() == declared.described()


def test_reduction_option_is_validated_and_read_as_the_sum_when_not_given() -> None:
    with pytest.raises(OptionError, match=r"reduction must be one of \['sum', 'mean', 'batch"):
        Settings(reduction="none")
    assert (
        Settings().loss_reduction == "sum" and Settings(reduction="mean").loss_reduction == "mean"
    )
    assert cli._parser().parse_args(["SPEC", "--reduction", "batchmean"]).reduction == "batchmean"
    with pytest.raises(OptionError, match="exact mode is bitwise: it takes the sum, not reduction"):
        Settings(exact=True, reduction="batchmean")
    assert Settings(exact=True, reduction="sum").exact


def test_deterministic_and_multiple_of_are_described_when_given() -> None:
    assert Settings(deterministic=True, multiple_of="N=128").described()["multiple_of"] == "N=128"


def test_multiple_of_is_parsed_and_checked_in_its_declaration() -> None:
    assert Settings().multiples == (1, 1, 1)
    assert Settings(multiple_of=32).multiples == (32, 32, 32)
    assert Settings(multiple_of="N=128,I=32").multiples == (128, 32, 1)
    assert _settings.parse_multiples("32") == 32
    assert _settings.parse_multiples(" i=32, n=128 ") == "N=128,I=32"  # N, I, O order
    for bad in ("K=32", "N=32,N=64", "N=", "32.5", "N=0"):
        with pytest.raises(ValueError):
            _settings.parse_multiples(bad)
    for bad_value in (0, True, 2.0, "O=64,X=1", 256, "N=65536,I=64"):  # 256^3, 2^22: too big
        with pytest.raises(OptionError, match=r"^multiple_of must be a multiple M \(up to 128\)"):
            Settings(multiple_of=bad_value)
    assert Settings(multiple_of="N=65536,I=32").multiples == (65536, 32, 1)  # 2^21
    assert _settings.multiples_text((128, 32, 128)) == "N, O multiples of 128, I multiples of 32"


def test_block_sizes_are_read_from_any_list_of_ints() -> None:
    """JSON and Python users give lists: one spelling, a sorted tuple without repeats."""
    assert Settings(tile=[512, 64, 64]).tile == (64, 512)
    with pytest.raises(OptionError, match="tile must be a tuple of block sizes"):
        Settings(tile=[1])
    with pytest.raises(OptionError, match="tile must be a tuple of block sizes"):
        Settings(tile="64")  # type: ignore[arg-type]


def test_bias_option_is_validated_and_spelled() -> None:
    with pytest.raises(OptionError, match="bias must be True, False or None, got 'yes'"):
        Settings(bias="yes")
    assert _settings.spelling("bias") == "--bias"


def test_the_plugin_and_its_marker_take_the_options_offered_them() -> None:
    from verify.oracle.front import pytest_plugin

    assert set(pytest_plugin._keywords()) == set(_settings.offered(MARKER))
    assert "isolate" in pytest_plugin._keywords()  # the marker's, not --crosscheck-in-process
    assert "isolate" not in _settings.offered(PYTEST)


def test_a_new_option_is_one_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field declared on a subclass (as a field of ``Settings`` would be) appears in the
    command line, the plugin, ``check``'s signature and docstring, and the docs' table, and is
    validated, with nothing else written."""

    @dataclasses.dataclass(frozen=True)
    class WithUnroll(Settings):
        unroll: int | None = option(
            None,
            "unroll factor of the candidate's kernel",
            group=_settings.NUMERICS,
            valid=lambda value: value is None or value >= 1,
            needs="a positive int or None",
            parse=int,
            metavar="T",
        )

    monkeypatch.setattr(_settings, "Settings", WithUnroll)
    parser = argparse.ArgumentParser()
    _surfaces.add_arguments(parser)
    assert _surfaces.from_arguments(parser.parse_args(["--unroll", "8"])).unroll == 8  # type: ignore[attr-defined]
    assert ("unroll", "unroll", "store", False, False, None) in _surfaces.pytest_options()
    assert "unroll" in _surfaces.check_signature().parameters
    assert "unroll: unroll factor" in _surfaces.arguments_doc()
    assert "| `unroll` | `--unroll` | `--crosscheck-unroll` |" in _surfaces.options_table()
    with pytest.raises(OptionError, match="unroll must be a positive int or None, got 0"):
        WithUnroll(unroll=0)
    assert {CLI, PYTHON, PYTEST, MARKER} == set(
        dataclasses.fields(WithUnroll)[-1].metadata["offered"]
    )


def test_the_docs_table_names_every_option_on_every_surface_it_is_offered() -> None:
    table = _surfaces.options_table()
    rows = {line.split(" | ")[0].strip("| `"): line for line in table.splitlines()[6:]}
    assert rows["max_examples"].startswith(
        "| `max_examples` | `--max-examples` | `--crosscheck-max-examples` | `int` | `100` |"
    )
    assert "| `jobs` | `-j`, `--jobs` |  |" in rows["jobs"]
    assert "marker `isolate=`" in rows["isolate"]
    assert "| `str \\| None` |" in rows["tie_convention"]  # a type's bar escaped
    assert "|  | `--json` |  |" in table
    names = [f.name for f in _settings.declarations()]
    assert len(table.splitlines()) == 6 + len(names)  # title, text, header, rule, a row each


def test_the_docs_table_is_written_by_a_module_entry(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "options.md"
    done = subprocess.run(
        [sys.executable, "-m", "verify.oracle.front._surfaces", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert target.read_text() == _surfaces.options_table()


def test_check_help_lists_the_options_in_groups_in_the_command_lines_words() -> None:
    """``check --help`` is four groups (what to check, numerics, running, output), each option
    in its declared one, and holds no Python value or call: ``--seed None`` is refused and
    ``--repro-dir None`` writes a folder named None, so neither is offered."""
    text = cli._parser().format_help()
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and line[0] != " "]
    assert headings == ["options", *_settings.GROUPS]
    sections = dict(zip(headings, re.split(r"^\S.*:$", text, flags=re.MULTILINE)[1:], strict=True))
    for field in _settings.declarations():
        if CLI in field.metadata["offered"]:
            where = [name for name, body in sections.items() if spelling(field.name) in body]
            assert where == [field.metadata["group"]], field.name
    assert "SPEC" in sections[_settings.WHAT]
    for python in ("None", "()", "True", "False", "Error", "bounds.", "``", "command line"):
        assert python not in text, python
    assert text.startswith("usage: python -m verify check SPEC [options]\n")


def test_an_option_on_the_command_line_declares_its_group() -> None:
    with pytest.raises(ValueError, match="has a group of"):
        option(1, "a count", offered=(CLI,))
    assert option(1, "a count", offered=(PYTHON,)).metadata["group"] is None
