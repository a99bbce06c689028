"""The README is one screen that leads into the documentation site: at most 200 lines, the two
setup commands in its first 15, no figures that change when the code is tuned, and one click
to every page of the site a new user needs (the site itself is checked by ``nox -s docs``:
``mkdocs build --strict`` with every internal link and anchor validated)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks import bench

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LINES = README.splitlines()

#: The two commands of the README's top, exactly as a new user copies them.
COMMANDS = (
    "python3 -m pip install . && python3 -m verify",
    "python3 -m pip install nox && python3 -m nox -s tests",
)
VENV = "python3 -m venv .venv && . .venv/bin/activate"


def nav_pages() -> list[str]:
    """The .md files of mkdocs.yml's nav, in order (``- Title: page.md`` lines)."""
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    return re.findall(r"^\s*- [^:\n]+: (\S+\.md)\s*$", nav, flags=re.M)


def readme_links() -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", README)


def test_readme_is_one_screen() -> None:
    assert len(LINES) <= 200, len(LINES)


def test_the_two_commands_and_the_venv_line_are_in_the_first_15_lines() -> None:
    top = "\n".join(LINES[:15])
    for command in (*COMMANDS, VENV):
        assert command in top, command


def test_every_page_a_new_user_needs_is_one_click_from_the_readme() -> None:
    pages = nav_pages()
    assert "getting-started.md" in pages and "diagnoses.md" in pages  # the nav was read
    # Every page of the site but the API reference's module pages, and the reference's first.
    needed = [page for page in pages if not page.startswith("api/")] + ["api/verify.md"]
    needed.remove("index.md")  # the README is the repository's home page
    linked = set(readme_links())
    missing = [page for page in needed if f"docs/{page}" not in linked]
    assert not missing, missing


def test_every_relative_link_of_the_readme_exists() -> None:
    for link in readme_links():
        if "://" in link or link.startswith("#"):
            continue
        assert (ROOT / link.split("#")[0]).exists(), link


def test_the_readme_states_no_timings() -> None:
    """Timings belong to the bench's own tables (docs/performance.md's region), not to prose."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    assert not re.search(r"\b\d+(\.\d+)? ?(ms|s)\b", prose)


def test_the_options_page_is_the_settings_declaration() -> None:
    """docs/options.md is committed (the README links it) and equals the table generated from
    the one declaration of every option (the docs build writes it again; regenerate with
    ``python -m verify.oracle.front._surfaces docs/options.md``)."""
    from verify.oracle.front._surfaces import options_table

    assert (ROOT / "docs" / "options.md").read_text(encoding="utf-8") == options_table()


def test_the_performance_page_is_the_benchs_run() -> None:
    """docs/performance.md's figures are the bench's alone: its region is what the bench renders
    from the run it recorded (docs/generated/bench.json: date, machine, command, rows), and the
    prose around it states no timing."""
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    region = bench.DOCS_REGION.search(text)
    assert region is not None
    payload = json.loads((ROOT / "docs" / "generated" / "bench.json").read_text())
    image = "generated/bench.png" if (ROOT / "docs" / "generated" / "bench.png").exists() else None
    assert region["body"].strip("\n") == bench.docs_region(payload, image).strip("\n")
    prose = re.sub(r"```.*?```", "", bench.DOCS_REGION.sub("", text), flags=re.S)
    assert not re.search(r"\b\d+(\.\d+)? ?(ms|s|examples/s|x)\b", prose)
