"""Every sample output of the README and docs/, from a real run: ``python -m scripts.docs_outputs``.

A sample is a fenced block between two markers in a page; the block shows the commands and what
they printed, and is written by this script only::

    <!-- output: NAME -->
    ```
    $ python3 -m verify check my_layer.py
    crosscheck: my_layer.py (float32, up to 100 examples per function, seed 0)
    ...
    ```
    <!-- /output -->

``SAMPLES`` says, for each NAME, the commands (exactly as the block shows them), the files they
need and the exit status each must end with. A run of a sample makes a fresh temporary folder,
writes its files there (the README's ``my_layer.py`` is the README's own code block; the kernel
samples link the checkout's ``tests/`` and ``examples/`` in), and runs each command there in
``bash``, with ``python``, ``python3`` and ``pytest`` meaning this interpreter (``pytest`` as
``python -m pytest``) and the checkout first on ``PYTHONPATH``. Its stdout and stderr are one
pipe, as a terminal interleaves them (``PYTHONUNBUFFERED=1``; ``COLUMNS=100`` for pytest's
lines; not a terminal, so a progress line drawn only on a terminal does not show). A command
that ends with another exit status than its sample declares fails the run, and nothing is
written (a missing extra, say ``torch``, never becomes a page's sample).

What is normalised, and nothing else:

- the temporary folder's path, and the checkout's, show as ``/home/me`` (``SHOWN_FOLDER``);
- spaces at the ends of lines are dropped (editors and linters strip them);
- a sample's own ``normalise`` rules, each with its reason: pytest's closing line shows its
  duration as ``in 9.99s`` (``pytest-duration``).

The same run also writes what the pages show that is generated from the code rather than run
(``REGIONS``, each between ``<!-- generated: NAME -->`` and ``<!-- /generated -->``): the table
of diagnoses in docs/diagnoses.md (from ``verify.oracle.Diagnosis`` and
docs/generated/diagnoses.json, whose findings ``python -m scripts.zoo --docs
docs/generated/diagnoses.json`` records from the zoo, and then writes this table too), the
error model's derivation in docs/math.md (``verify/bounds.py``'s docstring), and
docs/options.md whole (from ``verify.Settings``). The figures of docs/performance.md are
the bench's alone (``python -m benchmarks.bench --docs docs/performance.md``).

Every run is recorded in docs/generated/outputs.json: per sample the commands, the exit
statuses, the block, a digest of its inputs (the files it writes and the checkout files it
reads) and the seconds it took here. tests/test_docs.py runs the samples marked ``in_tests`` and
compares what they print with the pages; for the others it checks that each block is the
recorded run's, and that their inputs have not changed since (a change of the tool itself shows
in ``--check``, not in the unit tests: those samples take minutes). ``--check`` runs the samples
and writes nothing: exit 1 and a diff where a page differs from what the tool prints today,
except for a sample that ``varies`` (reported only). The seconds of a report's last line are
left out of every comparison (``comparable``): a page shows one run's real times.

Budget: each run's seconds are in the record. On a 2-core machine shared with other work (load
average 10 to 14 on its 2 cores at the time), the README's sample took 12 s, pytest's 15 to
40 s, the notebooks' 4 to 18 s, the precision audit 7 s, the interpreted kernels 8 to 23 s; the
ten about 2 minutes. ``nox -s docs`` runs them all before building the site; the unit tests
run only the README's (``in_tests``).

    python -m scripts.docs_outputs                  # run every sample, write the pages
    python -m scripts.docs_outputs --check          # run every sample, write nothing
    python -m scripts.docs_outputs --only my-layer  # the named samples (and the generated pages)
    python -m scripts.docs_outputs --only           # only the generated pages
    python -m scripts.docs_outputs --list           # the samples, their pages and commands
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import difflib
import hashlib
import html
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Every page a sample may sit in: the README and the site's pages.
PAGES = ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))
RECORD = ROOT / "docs" / "generated" / "outputs.json"
DIAGNOSES_JSON = ROOT / "docs" / "generated" / "diagnoses.json"
DIAGNOSES_PAGE = ROOT / "docs" / "diagnoses.md"
OPTIONS_PAGE = ROOT / "docs" / "options.md"
#: How the run's folder (a fresh temporary one) and the checkout show in a block.
SHOWN_FOLDER = "/home/me"
REGENERATE = "python -m scripts.docs_outputs"
REGENERATE_ZOO = "python -m scripts.zoo --docs docs/generated/diagnoses.json"

#: ``<!-- output: NAME -->``, a blank line or none, a fenced block, ``<!-- /output -->``.
BLOCK = re.compile(
    r"(?P<open><!-- output: (?P<name>[\w.-]+) -->\n\n?```[^\n]*\n)(?P<body>.*?)"
    r"(?P<close>```\n\n?<!-- /output -->)",
    re.S,
)


#: The width pytest draws its lines to: the samples' runs set ``COLUMNS`` to it.
COLUMNS = 100


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """One rule beyond the paths: each line matching ``pattern`` rewritten by ``rewrite``, for
    ``why``."""

    name: str
    pattern: str
    rewrite: Callable[[re.Match[str]], str]
    why: str

    def apply(self, text: str) -> str:
        return re.sub(self.pattern, self.rewrite, text, flags=re.M)


def _pytest_line(message: str) -> str:
    """``message`` between runs of ``=`` as pytest draws it (``TerminalWriter.sep``)."""
    side = (COLUMNS - len(message) - 2) // 2
    line = f"{'=' * side} {message} {'=' * side}"
    return line + "=" * (len(line) < COLUMNS)


PYTEST_DURATION = Normalisation(
    "pytest-duration",
    r"^=+ (?P<summary>.*) in \d+(\.\d+)?s( \(\d+:\d\d:\d\d\))? =+$",
    lambda match: _pytest_line(f"{match['summary']} in 9.99s"),
    "the wall time of a run on a shared machine (the line drawn again around 9.99s)",
)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One block of sample output: ``commands`` as the block shows them, run in a fresh folder
    holding ``files()`` (name -> text) and, linked, the checkout's folders ``links``.

    ``exit_codes``: the status each command must end with. ``reads``: the checkout's files the
    output depends on besides the tool itself (their digest is recorded). ``in_tests``: the
    unit tests run it for real (cheap); otherwise they check the block against the record.
    ``varies``: why the output differs between runs of the same code (a kernel reading memory
    it never wrote) or between machines: ``--check`` reports a difference without failing."""

    name: str
    commands: tuple[str, ...]
    exit_codes: tuple[int, ...]
    files: Callable[[], dict[str, str]] = dict
    links: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    in_tests: bool = False
    varies: str | None = None
    normalise: tuple[Normalisation, ...] = ()

    def inputs_digest(self) -> str:
        """sha256 over the commands, the files written and the checkout files read."""
        digest = hashlib.sha256()
        for command in self.commands:
            digest.update(b"command\0" + command.encode() + b"\0")
        for name, text in sorted(self.files().items()):
            digest.update(b"file\0" + name.encode() + b"\0" + text.encode() + b"\0")
        for path in sorted(self.reads):
            digest.update(b"read\0" + path.encode() + b"\0" + (ROOT / path).read_bytes() + b"\0")
        return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The inputs the pages show: their own code blocks, the examples changed as the pages say.
# --------------------------------------------------------------------------------------------


def code_block(page: str, first_line: str) -> str:
    """The fenced code block of ``page`` whose first line is ``first_line`` (a page's
    ``# my_layer.py``), as text: what a reader copies into that file."""
    text = (ROOT / page).read_text(encoding="utf-8")
    for body in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        if body.startswith(first_line + "\n"):
            return str(body)
    raise LookupError(f"{page} has no code block starting {first_line!r}")


HOMEWORK = "examples/homework.ipynb"

#: The homework's grad_w as a notebook often has it: reading the notebook's global num_data
#: (3) instead of x's (docs/notebooks.md, "A bug the notebook's own asserts miss").
GRAD_W_OF_GLOBAL_NUM_DATA = """def grad_w(x, dL_do):
    dL_dw = np.zeros((x.shape[1], dL_do.shape[1]), dtype=np.result_type(x, dL_do))
    for i in range(x.shape[1]):
        for j in range(dL_do.shape[1]):
            for d in range(num_data):
                dL_dw[i, j] = dL_dw[i, j] + x[d, i] * dL_do[d, j]
    return dL_dw
"""


def homework_with(old: str, new: str) -> str:
    """examples/homework.ipynb with ``old`` replaced by ``new`` in the one cell defining grad_w."""
    notebook = json.loads((ROOT / HOMEWORK).read_text(encoding="utf-8"))
    (cell,) = [c for c in notebook["cells"] if "def grad_w" in "".join(c["source"])]
    source = "".join(cell["source"])
    if old not in source:
        raise LookupError(f"{HOMEWORK}'s grad_w cell no longer holds {old!r}")
    cell["source"] = source.replace(old, new).splitlines(True)
    return json.dumps(notebook, indent=1) + "\n"


def homework_of_global_num_data() -> str:
    notebook = json.loads((ROOT / HOMEWORK).read_text(encoding="utf-8"))
    (source,) = [
        "".join(c["source"]) for c in notebook["cells"] if "def grad_w" in "".join(c["source"])
    ]
    correct = source[
        source.index("def grad_w") : source.index("\n\n\n", source.index("def grad_w"))
    ]
    return homework_with(correct + "\n", GRAD_W_OF_GLOBAL_NUM_DATA)


def kernel_check(spec: str, functions: str) -> str:
    return f"python -m verify check {spec} --functions {functions}"


SAMPLES: tuple[Sample, ...] = (
    Sample(
        "my-layer",
        ("python3 -m verify check my_layer.py",),
        (1,),
        files=lambda: {"my_layer.py": code_block("README.md", "# my_layer.py")},
        in_tests=True,
    ),
    Sample(
        "pytest-my-layer",
        ("pytest --crosscheck my_layer.py -v --no-header",),
        (0,),
        files=lambda: {"my_layer.py": code_block("docs/checking.md", "# my_layer.py")},
        normalise=(PYTEST_DURATION,),
    ),
    Sample(
        "pytest-header",
        ('pytest --crosscheck my_layer.py | grep "^crosscheck: "',),
        (0,),
        files=lambda: {"my_layer.py": code_block("docs/checking.md", "# my_layer.py")},
    ),
    Sample(
        "notebook-homework",
        ("python -m verify check examples/homework.ipynb",),
        (0,),
        links=("examples",),
        reads=(HOMEWORK,),
    ),
    Sample(
        "notebook-overwrites",
        (
            "python -m verify check overwrites.ipynb        # grad_w overwrites instead of "
            "accumulating",
            "echo $?",
        ),
        (2, 0),
        files=lambda: {
            "overwrites.ipynb": homework_with(
                "dL_dw[i, j] = dL_dw[i, j] + x[d, i]", "dL_dw[i, j] = x[d, i]"
            )
        },
        reads=(HOMEWORK,),
    ),
    Sample(
        "notebook-buggy",
        ("python -m verify check buggy.ipynb --functions grad_w",),
        (1,),
        files=lambda: {"buggy.ipynb": homework_of_global_num_data()},
        reads=(HOMEWORK,),
    ),
    Sample(
        "precision-cpu",
        ("JAX_PLATFORMS=cpu python -m verify precision",),
        (0,),
        varies="the errors of a CPU's float32 matmul depend on its vector units and JAX's "
        "version: another machine prints other digits",
    ),
    Sample(
        "kernel-pallas-floored-grid",
        (kernel_check("tests/kernel_bugs/pallas_layers.py:FlooredGrid", "forward"),),
        (1,),
        links=("tests", "examples"),
        reads=("tests/kernel_bugs/pallas_layers.py", "examples/pallas_layer.py"),
    ),
    Sample(
        "kernel-triton-floored-grid",
        (kernel_check("tests/kernel_bugs/triton_layers.py:FlooredGrid", "forward"),),
        (1,),
        links=("tests", "examples"),
        reads=("tests/kernel_bugs/triton_layers.py", "examples/triton_layer.py"),
        varies="the unwritten elements hold whatever torch.empty's memory held: a value no "
        "pattern explains in one run (mismatch), values that differ between two calls in "
        "another (nondeterministic)",
    ),
    Sample(
        "kernel-triton-unmasked-depth",
        (kernel_check("tests/kernel_bugs/triton_layers.py:UnmaskedDepth", "grad_w"),),
        (1,),
        links=("tests", "examples"),
        reads=("tests/kernel_bugs/triton_layers.py", "examples/triton_layer.py"),
        varies="the unmasked load reads memory past the buffer: NaN in one run (diagnosis nan), "
        "other values in another (nondeterministic)",
    ),
    Sample(
        "kernel-triton-skipped-partial-depth",
        (
            kernel_check(
                "tests/kernel_bugs/triton_layers.py:SkippedPartialDepth", "forward,grad_x,grad_w"
            ),
        ),
        (1,),
        links=("tests", "examples"),
        reads=("tests/kernel_bugs/triton_layers.py", "examples/triton_layer.py"),
    ),
)
BY_NAME = {sample.name: sample for sample in SAMPLES}


# --------------------------------------------------------------------------------------------
# Running a sample.
# --------------------------------------------------------------------------------------------


class SampleFailed(RuntimeError):
    """A command of a sample ended with another exit status than the sample declares."""


def _interpreter_folder(folder: Path) -> Path:
    """``python``, ``python3`` and ``pytest`` as this interpreter, in ``folder``."""
    folder.mkdir()
    for name, run in (
        ("python", shlex.quote(sys.executable)),
        ("python3", shlex.quote(sys.executable)),
        ("pytest", f"{shlex.quote(sys.executable)} -m pytest"),
    ):
        script = folder / name
        script.write_text(f'#!/bin/sh\nexec {run} "$@"\n')
        script.chmod(0o755)
    return folder


def normalised(text: str, folders: Sequence[Path], sample: Sample) -> str:
    """``text`` with the folders shown as SHOWN_FOLDER, line ends stripped, the sample's own
    rules applied (the module docstring lists them all)."""
    for folder in folders:
        for spelling in dict.fromkeys((str(folder.resolve()), str(folder))):
            text = text.replace(spelling, SHOWN_FOLDER)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    for rule in sample.normalise:
        text = rule.apply(text)
    return text.strip("\n")


@dataclasses.dataclass(frozen=True)
class Run:
    """What a sample printed: the block's text, each command's exit status, the seconds."""

    block: str
    exit_codes: tuple[int, ...]
    seconds: float


def run_sample(sample: Sample, timeout: float = 600) -> Run:
    """Run ``sample``'s commands in a fresh folder; SampleFailed on an undeclared exit status."""
    start = time.perf_counter()
    shown: list[str] = []
    codes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="crosscheck-docs-") as scratch:
        folder = Path(scratch) / "run"
        folder.mkdir()
        interpreters = _interpreter_folder(Path(scratch) / "bin")
        for name, text in sample.files().items():
            (folder / name).write_text(text, encoding="utf-8")
        for name in sample.links:
            (folder / name).symlink_to(ROOT / name, target_is_directory=True)
        env = {
            **os.environ,
            "PATH": f"{interpreters}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": str(COLUMNS),
        }
        # A user's run: not the one-worker setting the test suite gives its own processes.
        env.pop("CROSSCHECK_JOBS", None)
        previous = 0
        for command, expected in zip(sample.commands, sample.exit_codes, strict=True):
            done = subprocess.run(
                ["bash", "-c", f"(exit {previous}); {command}"],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
            previous = done.returncode
            text = normalised(done.stdout, [folder, Path(scratch), ROOT], sample)
            if done.returncode != expected:
                raise SampleFailed(
                    f"{sample.name}: `{command}` exited {done.returncode}, not {expected}:\n{text}"
                )
            codes.append(done.returncode)
            shown += [f"$ {command}", *([text] if text else [])]
    return Run("\n".join(shown) + "\n", tuple(codes), time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# The pages: where each sample sits, and writing it there.
# --------------------------------------------------------------------------------------------


def blocks(text: str) -> Iterator[re.Match[str]]:
    return BLOCK.finditer(text)


def placements() -> dict[str, list[str]]:
    """Sample name -> the pages holding its block (a sample may sit in several)."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for match in blocks((ROOT / page).read_text(encoding="utf-8")):
            found.setdefault(match["name"], []).append(page)
    return found


def with_block(text: str, name: str, block: str) -> str:
    """``text`` with every block of sample ``name`` holding ``block``."""
    return BLOCK.sub(lambda m: m["open"] + block + m["close"] if m["name"] == name else m[0], text)


def page_texts(written: dict[str, str]) -> dict[str, str]:
    """Every page's text with the blocks of ``written`` (name -> block) put in."""
    texts = {}
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for name, block in written.items():
            text = with_block(text, name, block)
        texts[page] = text
    return texts


# --------------------------------------------------------------------------------------------
# What is generated from the code rather than run: the table of diagnoses, the options.
# --------------------------------------------------------------------------------------------


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


class StaleExamples(RuntimeError):
    """docs/generated/diagnoses.json has an example of a diagnosis that no longer exists."""


def diagnoses_table(generated: dict[str, Any] | None = None) -> str:
    """The HTML table of docs/diagnoses.md: one row per ``verify.oracle.Diagnosis`` member, in
    the enum's order, its meaning, and the zoo's real finding of it (``generated``: the
    contents of docs/generated/diagnoses.json)."""
    from verify.oracle import Diagnosis

    if generated is None:
        generated = json.loads(DIAGNOSES_JSON.read_text(encoding="utf-8"))
    examples: dict[str, Any] = generated["examples"]
    stale = sorted(set(examples) - {str(member) for member in Diagnosis})
    if stale:
        raise StaleExamples(
            f"{DIAGNOSES_JSON.name} has examples of {stale}, no longer diagnoses: run "
            f"{REGENERATE_ZOO}"
        )
    rows = [
        "<table>",
        "<thead><tr><th>diagnosis</th><th>meaning</th>"
        "<th>a real finding (the zoo, seed "
        f"{html.escape(str(generated.get('seed')))})</th></tr></thead>",
        "<tbody>",
    ]
    for member in Diagnosis:
        name = str(member)
        rows.append(
            f'<tr id="{html.escape(name)}">'
            f'<td style="white-space: nowrap"><code>{html.escape(name)}</code></td>'
            f"<td>{html.escape(member.meaning)}</td>"
            f"<td>{_example(examples.get(name))}</td></tr>"
        )
    rows += ["</tbody>", "</table>"]
    return "\n".join(rows) + "\n"


def with_region(text: str, name: str, content: str) -> str:
    """``text`` with ``content`` between ``<!-- generated: name -->`` and the next
    ``<!-- /generated -->``."""
    opening = f"<!-- generated: {re.escape(name)} -->"
    region = re.compile(rf"(?P<open>{opening}\n)(?P<body>.*?)(?P<close><!-- /generated -->)", re.S)
    if not region.search(text):
        raise LookupError(f"no <!-- generated: {name} --> ... <!-- /generated --> region")
    return region.sub(lambda m: m["open"] + "\n" + content.strip("\n") + "\n\n" + m["close"], text)


def diagnoses_page(text: str, table: str) -> str:
    """docs/diagnoses.md's ``text`` with ``table`` in its generated region."""
    return with_region(text, "diagnoses", table)


def module_docstring(path: str) -> str:
    """The docstring of the checkout's module ``path``, as it stands (Markdown: mkdocstrings
    would render the same text)."""
    docstring = ast.get_docstring(ast.parse((ROOT / path).read_text(encoding="utf-8")))
    if docstring is None:
        raise LookupError(f"{path} has no module docstring")
    return docstring


#: The regions docs/ pages hold (``<!-- generated: NAME -->``), and what writes each.
REGIONS: dict[str, tuple[str, Callable[[], str]]] = {
    "diagnoses": ("docs/diagnoses.md", lambda: diagnoses_table()),
    "bounds-docstring": ("docs/math.md", lambda: module_docstring("verify/bounds.py")),
}


def generated_pages() -> dict[Path, str]:
    """The pages as the code writes them: every region of REGIONS filled, docs/options.md
    whole (from ``verify.Settings``)."""
    from verify.oracle.front._surfaces import options_table

    pages: dict[Path, str] = {OPTIONS_PAGE: options_table()}
    for name, (page, content) in REGIONS.items():
        path = ROOT / page
        pages[path] = with_region(
            pages.get(path, path.read_text(encoding="utf-8")), name, content()
        )
    return pages


# --------------------------------------------------------------------------------------------
# The record, and the command line.
# --------------------------------------------------------------------------------------------


def read_record() -> dict[str, Any]:
    return json.loads(RECORD.read_text(encoding="utf-8")) if RECORD.exists() else {}


def record_entry(sample: Sample, run: Run) -> dict[str, Any]:
    return {
        "commands": list(sample.commands),
        "exit_codes": list(run.exit_codes),
        "block": run.block,
        "inputs": sample.inputs_digest(),
        "seconds": round(run.seconds, 1),
        "python": sys.version.split()[0],
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _diff(page: str, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), f"{page} (committed)", f"{page} (run)"
        )
    )


#: The report's last line: where a run's seconds went (``2.2 s: loading 0.8 s, ...``).
TIME_LINE = re.compile(r"^\d[\d.]* s: loading .*$", re.M)


def comparable(block: str) -> str:
    """``block`` with the seconds of the report's last line left out: a page shows one run's
    real times, and a run today compares equal where only the machine's load differs (the
    calls counted there still must match)."""
    return TIME_LINE.sub(lambda m: re.sub(r"\d+(\.\d+)? s\b", "_ s", m[0]), block)


def committed_blocks(name: str) -> list[tuple[str, str]]:
    """(page, block) for every block of sample ``name`` in the pages."""
    return [
        (page, match["body"])
        for page in PAGES
        for match in blocks((ROOT / page).read_text(encoding="utf-8"))
        if match["name"] == name
    ]


def check(chosen: Sequence[Sample], printed: dict[str, str]) -> int:
    """Exit 1 (and a diff) where a page's block differs from what its sample printed today,
    or a generated page from what the code gives; a sample that ``varies`` only reports."""
    failing = 0
    for sample in chosen:
        for page, block in committed_blocks(sample.name):
            if comparable(block) != comparable(printed[sample.name]):
                print(_diff(f"{page} [{sample.name}]", block, printed[sample.name]))
                if sample.varies:
                    print(f"({sample.name} varies between runs: {sample.varies})")
                else:
                    failing += 1
    for path, text in generated_pages().items():
        if path.read_text(encoding="utf-8") != text:
            page = str(path.relative_to(ROOT))
            print(_diff(page, path.read_text(encoding="utf-8"), text))
            failing += 1
    print(f"docs_outputs: {failing} block(s) or page(s) differ from today's", file=sys.stderr)
    return 1 if failing else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.docs_outputs", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--check", action="store_true", help="run, compare, write nothing")
    parser.add_argument(
        "--only",
        nargs="*",
        metavar="NAME",
        choices=list(BY_NAME),
        help="run only these samples (none: only the pages generated from the code)",
    )
    parser.add_argument("--list", action="store_true", help="the samples and where they sit")
    args = parser.parse_args(argv)
    where = placements()
    if args.list:
        for sample in SAMPLES:
            pages = ", ".join(where.get(sample.name, ["(in no page)"]))
            print(f"{sample.name:38} {pages}\n    " + "\n    ".join(sample.commands))
        return 0
    chosen = list(SAMPLES) if args.only is None else [BY_NAME[name] for name in args.only]
    unknown = sorted(set(where) - set(BY_NAME))
    if unknown:
        print(f"docs_outputs: blocks of no sample in SAMPLES: {unknown}", file=sys.stderr)
        return 1
    record = read_record()
    written: dict[str, str] = {}
    for sample in chosen:
        if sample.name not in where:
            print(f"docs_outputs: {sample.name} sits in no page", file=sys.stderr)
            return 1
        try:
            run = run_sample(sample)
        except SampleFailed as err:
            print(f"docs_outputs: {err}", file=sys.stderr)
            return 1
        print(f"[docs] {sample.name}: {run.seconds:.1f} s", file=sys.stderr)
        written[sample.name] = run.block
        record[sample.name] = record_entry(sample, run)
    if args.check:
        return check(chosen, written)
    changed = {ROOT / page: text for page, text in page_texts(written).items()}
    changed.update(generated_pages())
    drifted = {
        path: text for path, text in changed.items() if path.read_text(encoding="utf-8") != text
    }
    for path, text in drifted.items():
        path.write_text(text, encoding="utf-8")
        print(f"[docs] wrote {path.relative_to(ROOT)}", file=sys.stderr)
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    ordered = {name: record[name] for name in BY_NAME if name in record}
    RECORD.write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
