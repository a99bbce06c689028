"""mkdocs hooks (``hooks:`` in mkdocs.yml): what the site generates at build time.

``<!-- generated: diagnoses -->`` in a page becomes the table of every diagnosis the oracle can
give: the names and meanings are read from ``verify.oracle.Diagnosis`` when the site is built,
and each real example from ``docs/generated/diagnoses.json`` (``python -m scripts.zoo --docs``, the
zoo of broken implementations actually run). An example whose diagnosis no longer exists is a
warning, so a strict build fails until the file is regenerated.

``docs/options.md`` is written from ``verify.Settings``, the one declaration of every option.

``<!-- generated: api verify -->`` becomes mkdocstrings' ``::: verify`` with the module's public
names as its members: ``verify`` and ``verify.oracle`` load lazily (their names are listed once,
in their ``__init__.pyi``), which static analysis cannot read as exports, so the list is taken
from the module's ``__all__`` when the site is built. Submodules have pages of their own.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import inspect
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "generated" / "diagnoses.json"
MARKER = "<!-- generated: diagnoses -->"
API_MARKER = re.compile(r"<!-- generated: api ([\w.]+) -->")
REGENERATE = "python -m scripts.zoo --docs docs/generated/diagnoses.json"

log = logging.getLogger("mkdocs.hooks.crosscheck")


def _import(name: str) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


def _diagnoses() -> list[Any]:
    Diagnosis = _import("verify.oracle").Diagnosis

    return list(Diagnosis)


def _code(text: str | None) -> str:
    return f"<code>{html.escape(text)}</code>" if text else ""


def _example(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "<em>no mutant of the zoo provokes it yet</em>"
    options = ", ".join(f"{key}={value}" for key, value in entry.get("options", {}).items())
    source = f"{entry['mutant']}" + (f" ({options})" if options else "")
    lines = [_code(f"{entry['function']}: {entry['detail']}")]
    if entry.get("message"):
        lines.append(_code(entry["message"]))
    if entry.get("counterexample"):
        lines.append(_code(f"minimal counterexample: {entry['counterexample']}"))
    lines.append(f"<small>{html.escape(source)}</small>")
    return "<br>".join(lines)


def diagnoses_table() -> str:
    """The HTML table: one row per ``Diagnosis`` member, in the enum's order."""
    generated = json.loads(EXAMPLES.read_text())
    examples: dict[str, Any] = generated["examples"]
    members = _diagnoses()
    names = {str(member) for member in members}
    for stale in sorted(set(examples) - names):
        log.warning(
            f"{EXAMPLES.name} has an example of {stale!r}, no longer a diagnosis: run {REGENERATE}"
        )
    rows = [
        "<table>",
        "<thead><tr><th>diagnosis</th><th>meaning</th>"
        "<th>a real finding (the zoo, seed "
        f"{html.escape(str(generated.get('seed')))})</th></tr></thead>",
        "<tbody>",
    ]
    for member in members:
        name = str(member)
        rows.append(
            f'<tr id="{html.escape(name)}">'
            f'<td style="white-space: nowrap"><code>{html.escape(name)}</code></td>'
            f"<td>{html.escape(member.meaning)}</td>"
            f"<td>{_example(examples.get(name))}</td></tr>"
        )
    rows += ["</tbody>", "</table>"]
    return "\n".join(rows)


def api_block(match: re.Match[str]) -> str:
    """``::: module`` listing the module's ``__all__`` (submodules left out: own pages).

    A public name bound to a wrapper of a private function (``step = LrChecked(_step, ...)``)
    is an attribute to static analysis; where the wrapper carries that function's docstring,
    the function is shown under the public name instead."""
    name = match.group(1)
    module = _import(name)
    members, wrapped = [], []
    for member in module.__all__:
        if importlib.util.find_spec(f"{name}.{member}") is not None:
            continue
        inner = inspect.unwrap(getattr(module, member))
        private = getattr(inner, "__name__", "").startswith("_")
        if private and inner.__doc__ == getattr(module, member).__doc__:
            wrapped.append((member, f"{inner.__module__}.{inner.__qualname__}"))
        else:
            members.append(member)
    listed = "".join(f"\n        - {member}" for member in members)
    blocks = [f"::: {name}\n    options:\n      members:{listed}\n"]
    for member, path in wrapped:
        blocks.append(
            f"::: {path}\n    options:\n      heading: {name}.{member}\n"
            f"      toc_label: {member}\n      heading_level: 2\n"
        )
    return "\n".join(blocks)


OPTIONS = ROOT / "docs" / "options.md"


def on_pre_build(config: Any) -> None:
    """Write ``docs/options.md`` from the one declaration of every option (``verify.Settings``)
    before the pages are read, so the table cannot drift from the code."""
    OPTIONS.write_text(_import("verify.oracle.front._surfaces").options_table(), encoding="utf-8")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, diagnoses_table())
    return API_MARKER.sub(api_block, markdown)
