"""mkdocs hooks (``hooks:`` in mkdocs.yml): what the site generates at build time.

``<!-- generated: api verify -->`` becomes mkdocstrings' ``::: verify`` with the module's public
names as its members: ``verify`` and ``verify.oracle`` load lazily (their names are listed once,
in their ``__init__.pyi``), which static analysis cannot read as exports, so the list is taken
from the module's ``__all__`` when the site is built. Submodules have pages of their own.

Everything else a page shows that is generated (the table of diagnoses, docs/options.md, every
sample output) is written into the committed Markdown by ``python -m scripts.docs_outputs``
(which ``nox -s docs`` runs first), so that it reads the same on GitHub as on the site.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_MARKER = re.compile(r"<!-- generated: api ([\w.]+) -->")


def _import(name: str) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


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


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return API_MARKER.sub(api_block, markdown)
