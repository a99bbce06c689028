"""The README is one screen that leads into the documentation site: at most 200 lines, the two
setup commands in its first 15, no figures that change when the code is tuned, and one click
to every page of the site a new user needs, where it reads as Markdown (the site itself is
checked by ``nox -s docs``: ``mkdocs build --strict`` with every internal link and anchor
validated).

Every sample output of the README and docs/ is a real run (``scripts/docs_outputs.py``): the
README's is run here and must print what the README shows; every other block must be its
sample's recorded run, on the inputs it was run on (those samples take 5 to 30 s each, the
interpreted kernels most: ``nox -s docs`` runs them all, ``python -m scripts.docs_outputs
--check`` compares without writing). The generated parts (the table of diagnoses, the options,
the bench's figures) equal what their generators give."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import bench
from scripts import docs_outputs

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


#: Pages whose Markdown is filled in only when the site is built (a snippet include, a
#: mkdocstrings directive), and where the README sends a reader of Markdown instead.
READ_INSTEAD = {"architecture.md": "ARCHITECTURE.md", "api/verify.md": "verify/__init__.pyi"}


def built_only(page: str) -> list[str]:
    """The lines of ``docs/page`` that show nothing as Markdown: a snippet include
    (``--8<--``), a mkdocstrings directive (``::: module``), an API marker the hooks fill."""
    lines = (ROOT / "docs" / page).read_text().splitlines()
    return [
        line
        for line in lines
        if line.startswith(("--8<--", ":::")) or line.startswith("<!-- generated: api ")
    ]


def test_every_page_a_new_user_needs_is_one_click_from_the_readme() -> None:
    """Linked where it reads as Markdown: the page itself, or for a page the site fills in when
    it is built, the file the README names instead (READ_INSTEAD)."""
    pages = nav_pages()
    assert "getting-started.md" in pages and "diagnoses.md" in pages  # the nav was read
    # Every page of the site but the API reference's module pages, and the reference's first.
    needed = [page for page in pages if not page.startswith("api/")] + ["api/verify.md"]
    needed.remove("index.md")  # the README is the repository's home page
    linked = set(readme_links())
    wanted = {page: READ_INSTEAD.get(page, f"docs/{page}") for page in needed}
    missing = [page for page, link in wanted.items() if link not in linked]
    assert not missing, missing


def test_the_readme_links_no_page_that_is_empty_as_markdown() -> None:
    """The README says its pages are readable as Markdown: each docs/ page it links has its
    content in the Markdown (generated parts written into it), and the pages that are not are
    exactly those READ_INSTEAD sends elsewhere (and every API page)."""
    pages = nav_pages()
    empty = {page for page in pages if built_only(page)}
    assert empty == set(READ_INSTEAD) | {page for page in pages if page.startswith("api/")}
    linked = [link[len("docs/") :] for link in readme_links() if link.startswith("docs/")]
    assert [page.split("#")[0] for page in linked if built_only(page.split("#")[0])] == []
    for page in linked:  # a generated region is written, not left for the build to fill
        text = (ROOT / "docs" / page.split("#")[0]).read_text()
        for region in re.finditer(
            r"<!-- generated: ([\w-]+) -->\n(.*?)<!-- /generated -->", text, re.S
        ):
            assert region[2].strip(), f"{page}: its {region[1]} region is empty"


def test_every_relative_link_of_the_readme_exists() -> None:
    for link in readme_links():
        if "://" in link or link.startswith("#"):
            continue
        assert (ROOT / link.split("#")[0]).exists(), link


def test_the_readme_states_no_timings() -> None:
    """Timings belong to the bench's own tables (docs/performance.md's region), not to prose."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    assert not re.search(r"\b\d+(\.\d+)? ?(ms|s)\b", prose)


def test_the_generated_pages_are_what_the_code_gives() -> None:
    """docs/options.md (from the one declaration of every option) and the table of diagnoses in
    docs/diagnoses.md (``verify.oracle.Diagnosis`` and the zoo's findings) are committed as the
    code writes them: after a change, ``python -m scripts.docs_outputs --only`` rewrites them."""
    for path, text in docs_outputs.generated_pages().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run {REGENERATE_PAGES}"


REGENERATE_PAGES = "python -m scripts.docs_outputs --only"


def _blocks() -> list[tuple[str, str, str]]:
    """(page, sample name, block) for every sample block of the README and docs/."""
    return [
        (page, match["name"], match["body"])
        for page in docs_outputs.PAGES
        for match in docs_outputs.blocks((ROOT / page).read_text(encoding="utf-8"))
    ]


def test_every_block_is_its_samples_recorded_run_on_todays_inputs() -> None:
    """A block differs from its recorded run only if it was edited by hand; a sample's inputs
    (the page's code block it writes, the example it checks) differ from the recorded ones
    only if they changed since it ran: either way, run ``python -m scripts.docs_outputs``."""
    record = docs_outputs.read_record()
    found = _blocks()
    assert {name for _, name, _ in found} == set(docs_outputs.BY_NAME)  # each sample sits somewhere
    for page, name, block in found:
        sample = docs_outputs.BY_NAME[name]
        again = f"run python -m scripts.docs_outputs --only {name}"
        assert name in record, f"{name} ({page}) was never run: {again}"
        assert record[name]["commands"] == list(sample.commands), f"{name}: {again}"
        assert record[name]["inputs"] == sample.inputs_digest(), f"{name}'s inputs: {again}"
        assert block == record[name]["block"], f"{page}: {name} edited by hand? {again}"


def test_no_sample_output_outside_a_marked_block() -> None:
    """A fenced block showing a command's output (a ``$ `` prompt, a report's ``crosscheck:``
    line) sits between ``<!-- output: NAME -->`` markers, so no hand-written sample remains."""
    looks_printed = re.compile(r"^(\$ |crosscheck: |crosscheck precision audit)", re.M)
    for page in docs_outputs.PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        outside = docs_outputs.BLOCK.sub("", text)
        fenced = re.findall(r"^```[^\n]*\n(.*?)^```", outside, flags=re.S | re.M)
        assert [block for block in fenced if looks_printed.search(block)] == [], page


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [sample.name for sample in docs_outputs.SAMPLES if sample.in_tests]
)
def test_a_sample_run_now_prints_what_the_pages_show(name: str) -> None:
    """The README's example, run as written (the README's my_layer.py, in a fresh folder),
    prints what the README shows, the folder's path aside (9 s here, 4 s of CPU)."""
    run = docs_outputs.run_sample(docs_outputs.BY_NAME[name])
    for page, block_name, block in _blocks():
        if block_name == name:
            assert docs_outputs.comparable(block) == docs_outputs.comparable(run.block), (
                f"{page}: run python -m scripts.docs_outputs --only {name}"
            )


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
