"""The project's shape, proved from its own source: no import cycles (function-level imports
included), no module importing a private name of another wing, the wheel holding the library
and nothing else, and public faces that load lazily (``import verify`` pays for no JAX)."""

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
WINGS = ("verify.oracle", "verify.tools", "verify.adapters")


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


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


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


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_a_private_name_of_another_wing() -> None:
    known = project_modules()
    offences = []
    for module, path in known.items():
        for target, name in imports(module, path, known):
            if wing(target) == wing(module):
                continue
            if _private(target) or name.startswith("_"):
                what = f"{target}.{name}" if name else target
                offences.append(f"{module} imports {what}")
    assert not offences, "\n".join(offences)


def test_the_graph_sees_function_level_imports() -> None:
    """The checks above would be blind to imports inside functions if the walk missed them."""
    graph = import_graph()
    assert "verify.tools.walkthrough" in graph["verify.__main__"]  # imported inside main()
    assert "verify.bounds" in graph["verify.oracle._options"]


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


@pytest.mark.parametrize("package", ["verify", "verify.oracle"])
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
    """The worker process of a numpy candidate pays for neither (the faces are lazy)."""
    code = (
        "import sys, verify, verify.messages, verify.oracle._worker; "
        "sys.exit(sorted({'jax', 'hypothesis'} & sys.modules.keys()) or None)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, "importing the worker imported " + done.stderr
