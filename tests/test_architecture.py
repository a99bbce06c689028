"""The project's shape, proved from its own source where the import-linter contracts in
pyproject.toml (kept by ``lint-imports`` in ``nox -s lint``) do not reach: no module importing a
private *name* of another wing (the contracts see modules), ARCHITECTURE.md agreeing with the
contracts and naming only what exists, the wheel holding the library and nothing else, and
public faces that load lazily (``import verify`` pays for no JAX)."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The project's code outside the tests, by top-level folder.
FOLDERS = ("verify", "reference", "benchmarks", "scripts")

#: Sub-packages that are wings of their own; every other module belongs to its top folder.
WINGS = (
    "verify.oracle.front",
    "verify.oracle.explaining",
    "verify.oracle.judging",
    "verify.oracle.candidate",
    "verify.oracle",
    "verify.tools",
    "verify.adapters",
)


def project_modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of ``FOLDERS`` (a package by its ``__init__``)."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def wing(module: str) -> str:
    inside = [w for w in WINGS if module == w or module.startswith(w + ".")]
    return inside[0] if inside else module.split(".")[0]


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """``(imported module, imported name or "")`` for every import statement of the file,
    wherever it stands, resolved to the project's modules."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def resolve(dotted: str) -> str | None:
        if dotted in known:
            return dotted
        # Scripts import their neighbours by file name (their folder is sys.path[0]).
        if module.startswith("scripts.") and f"scripts.{dotted}" in known:
            return f"scripts.{dotted}"
        return None

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.append((target, ""))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = resolve(f"{base}.{alias.name}")
                if submodule:
                    found.append((submodule, ""))
                elif resolve(base):
                    found.append((resolve(base), alias.name))  # type: ignore[arg-type]
    return found


def import_graph() -> dict[str, set[str]]:
    known = project_modules()
    return {
        module: {target for target, _ in imports(module, path, known) if target != module}
        for module, path in known.items()
    }


def test_no_module_imports_a_private_name_of_another_wing() -> None:
    """A private module is the ``private`` contract's; a private name (``from x import _y``)
    is this test's, function-level imports included."""
    known = project_modules()
    offences = []
    for module, path in known.items():
        for target, name in imports(module, path, known):
            if wing(target) != wing(module) and name.startswith("_"):
                offences.append(f"{module} imports {target}.{name}")
    assert not offences, "\n".join(offences)


def test_the_graph_sees_function_level_imports() -> None:
    """The checks above would be blind to imports inside functions if the walk missed them."""
    graph = import_graph()
    assert "verify.tools.walkthrough" in graph["verify.__main__"]  # imported inside main()
    assert "verify.bounds" in graph["verify.oracle._settings"]


@pytest.mark.slow
def test_the_wheel_holds_the_library_and_its_stubs_only(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("crosscheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if ".dist-info/" not in n]
    outside = [n for n in code if n.split("/")[0] not in ("verify", "reference")]
    assert not outside, outside
    assert "verify/__init__.pyi" in code and "verify/oracle/__init__.pyi" in code
    assert {n.split("/")[0] for n in code} == {"verify", "reference"}
    for folder in ("tests", "benchmarks", "scripts", "examples"):
        assert not any(n.startswith(f"{folder}/") for n in names), folder


@pytest.mark.parametrize("package", ["verify", "verify.oracle", "verify.oracle.front"])
def test_every_public_name_of_a_lazy_face_resolves(package: str) -> None:
    import importlib

    face = importlib.import_module(package)
    stub = ROOT.joinpath(*package.split("."), "__init__.pyi").read_text()
    listed = {
        alias.asname or alias.name
        for node in ast.walk(ast.parse(stub))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert listed == set(face.__all__)
    for name in sorted(listed):
        assert getattr(face, name) is not None, name


def test_import_verify_and_the_worker_import_no_jax_nor_hypothesis() -> None:
    """The worker process of a numpy candidate pays for neither (the faces are lazy), and
    neither does a pytest session that only loads the plugin."""
    code = (
        "import sys, verify, verify.messages, verify.oracle.candidate._worker; "
        "sys.exit(sorted({'jax', 'hypothesis'} & sys.modules.keys()) or None)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, "importing the worker or the plugin imported " + done.stderr


# --- ARCHITECTURE.md names only what exists --------------------------------------------------

#: pytest's own options that the map mentions (``-k`` selects items); every other option it
#: names must be ``python -m verify check``'s.
PYTEST_FLAGS = {"-k"}

#: Commands the map names, by the package (of the lint dependency group) that provides each.
COMMANDS = {"lint-imports": "import-linter"}


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


PYPROJECT = _pyproject()


def _defined_names() -> set[str]:
    """Every top-level name (function, class, assignment) of the project's modules, the nox
    sessions, the registry's check names and the diagnoses' values: what a bare name in the
    map may be."""
    from verify.oracle._diagnoses import Diagnosis
    from verify.oracle.judging import CHECKS

    names = {name.rpartition(".")[2] for name in project_modules()}
    for path in [*project_modules().values(), ROOT / "noxfile.py"]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names | set(CHECKS) | {d.value for d in Diagnosis}


def _module_of(name: str) -> str | None:
    """The project module a map's first word names: dotted in full, or a module's last part
    (``_check``, ``bounds``, ``cli``), unique in the project."""
    modules = project_modules()
    if name in modules:
        return name
    found = [m for m in modules if m.rpartition(".")[2] == name]
    return found[0] if len(found) == 1 else None


def _resolves(dotted: str) -> bool:
    """``module.name[.attr]`` or ``Class.attr``: imported and looked up."""
    import importlib

    first, *rest = dotted.split(".")
    module = _module_of(first)
    if module is None:  # a class of some module: Run.run
        owners = [m for m in project_modules() if first in _top_level(project_modules()[m])]
        if len(owners) != 1:
            return False
        module, rest = owners[0], [first, *rest]
    target: object = importlib.import_module(module)
    while rest and f"{module}.{rest[0]}" in project_modules():
        module = f"{module}.{rest.pop(0)}"
        target = importlib.import_module(module)
    for depth, attr in enumerate(rest):
        if not hasattr(target, attr):
            return False
        target = getattr(target, attr)
        # A module's function or class is where it is defined, not where it is imported
        # (`_check.run_checks` is `_workers`'); a package's public face re-exports.
        home = getattr(target, "__module__", module)
        package = project_modules()[module].name == "__init__.py"
        if depth == 0 and callable(target) and not package and home != module:
            return False
    return True


def _top_level(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _stale(token: str, defined: set[str], options: set[str]) -> str | None:
    """Why the map's ``token`` names nothing that exists, or None."""
    import importlib.util
    import re

    if token.startswith("python -m "):
        module, *words = token.split()[2:]
        if importlib.util.find_spec(module) is None:
            return "no such module"
        from verify.__main__ import SUBCOMMANDS

        command = words[0] if words and module == "verify" else None
        known = command is None or command in SUBCOMMANDS or command.isupper()
        return None if known else "no such command"
    if token in _contracts():
        return None  # an import-linter contract, by its id
    if token.startswith("nox -s "):
        sessions = {
            node.name
            for node in ast.parse((ROOT / "noxfile.py").read_text()).body
            if isinstance(node, ast.FunctionDef)
        }
        return None if token.split()[2] in sessions else "no such nox session"
    if token in COMMANDS:
        group = PYPROJECT["dependency-groups"]["lint"]
        return (
            None
            if any(COMMANDS[token] in dependency for dependency in group)
            else (f"{COMMANDS[token]} is not in the lint dependency group")
        )
    if token.startswith("--crosscheck-"):
        from verify.oracle.front._surfaces import pytest_options

        name = token.removeprefix("--crosscheck-")
        known = name == "*" or name in {option.flag for option in pytest_options()}
        return None if known else "no such option of the pytest plugin"
    if token.startswith("-"):
        flag = token.split()[0]
        return None if flag in options | PYTEST_FLAGS else "no such option"
    if "/" in token or re.fullmatch(r"[\w<>]+\.(py|c|md|toml)", token):
        pattern = re.sub(r"<\w+>", "*", token)
        if "/" not in pattern:  # a file named by itself: somewhere in the project
            pattern = f"**/{pattern}"
        return None if any(ROOT.glob(pattern)) else "no such file"
    name = re.sub(r"\(.*\)$", "", token)  # Run.run(name) -> Run.run
    if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return "not a name this test reads"
    if "." in name:
        return None if _resolves(name) else "does not resolve"
    return None if name in defined else "defined nowhere"


def test_architecture_names_only_what_exists() -> None:
    """Every name ARCHITECTURE.md puts in backticks (a path, a module, ``module.name``, a
    class's attribute, a command, an option) and every module of its pipeline exists."""
    import re

    from verify.oracle.front import cli

    text = (ROOT / "ARCHITECTURE.md").read_text()
    options = {s for a in cli._parser()._actions for s in a.option_strings}
    defined = _defined_names()
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    # A code span may wrap onto the next line, as markdown allows.
    tokens = sorted({" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)})
    assert len(tokens) > 40, "the walk finds too few names: is the map's markup still read?"
    stale = [f"`{t}`: {why}" for t in tokens if (why := _stale(t, defined, options))]
    assert not stale, "ARCHITECTURE.md names what does not exist:\n" + "\n".join(stale)


def _contracts() -> dict[str, dict]:
    """The import-linter contracts of pyproject.toml, by id."""
    config = PYPROJECT["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _wings_block(path: Path) -> list[str]:
    """The first word group of each line of the map's wings block (the fenced block whose
    first line starts with ``front``): the layers, top first."""
    import re

    text = path.read_text()
    block = next(b for b in re.findall(r"```\n(.*?)```", text, re.DOTALL) if b.startswith("front"))
    return [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines() if line.strip()]


def test_the_architecture_map_shows_the_layers_the_contracts_declare() -> None:
    """ARCHITECTURE.md (and docs/architecture.md, which includes it) draws the wings in the
    order of the ``wings`` layers contract, and names every contract it describes."""
    contracts = _contracts()
    assert contracts["wings"]["type"] == "layers"
    assert _wings_block(ROOT / "ARCHITECTURE.md") == contracts["wings"]["layers"]
    assert contracts["wings"]["containers"] == ["verify.oracle"]
    text = " ".join((ROOT / "ARCHITECTURE.md").read_text().split())
    for contract_id in contracts:
        assert f"contract `{contract_id}`" in text, contract_id
    assert "ARCHITECTURE.md" in (ROOT / "docs" / "architecture.md").read_text()


def test_every_wing_says_what_it_owns_and_what_it_may_import() -> None:
    """Each wing's ``__init__`` has a one-paragraph docstring naming what it imports; at most
    eight modules stay at the oracle's top."""
    import ast

    wings = [ROOT / "verify" / "oracle" / layer for layer in _contracts()["wings"]["layers"]]
    assert sum(path.is_dir() for path in wings) >= 3
    for path in (path for path in wings if path.is_dir()):
        doc = ast.get_docstring(ast.parse((path / "__init__.py").read_text()))
        assert doc and "import" in doc, f"{path.name}: say what it owns and what it may import"
    top = [p for p in (ROOT / "verify" / "oracle").glob("*.py")]
    assert len(top) <= 8, sorted(p.name for p in top)
