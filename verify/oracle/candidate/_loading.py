"""Finding an implementation: a SPEC string to an object, an object to the functions it provides.

An implementation is a module, a class instance or any object exposing any subset of the
contract's functions (``_contract.FUNCTIONS``) plus an optional ``asarray(numpy_array)`` that
turns the oracle's inputs into the implementation's own arrays. A SPEC is
``package.module:attr``, ``path/to/file.py:attr``, ``path/to/notebook.ipynb:attr`` or a module
alone; a class named by a SPEC is instantiated with no arguments. Modules are loaded with
importlib; a notebook's code cells are compiled and run top to bottom in a module of their own
(``_notebook``), as "Restart and Run All" would, with IPython magics and shell lines skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ...messages import ContractError
from .._contract import FUNCTIONS


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the oracle calls: the provided functions by contract name, and how to make arrays.

    Attributes:
      name: a label for reports (the SPEC, or the object's repr).
      spec: a SPEC that loads the same implementation in a fresh process, if one is known.
      functions: contract name -> callable, only those provided.
      asarray: the implementation's ``asarray``, or None (numpy arrays are passed as they are).
      notes: what loading it noted for the report (a notebook's skipped magics, a framework
        module adapted and what of it is not checked).
      bias: whether its layer has a bias b (``takes_bias``).
      reduction: the reduction its loss declares where it is not the sum (a framework
        adapter's, read from the module's loss: ``"mean"``, ``"batchmean"``), else None.
    """

    name: str
    spec: str | None
    functions: dict[str, Callable[..., Any]]
    asarray: Callable[[Any], Any] | None
    notes: tuple[str, ...] = ()
    bias: bool = False
    reduction: str | None = None


#: Required positional parameters of forward and step with a bias (without: one fewer).
_BIAS_ARITY = {"forward": 3, "step": 5}


def _positional(function: Callable[..., Any]) -> tuple[int, int] | None:
    """How many positional parameters ``function`` requires and how many it takes at most, or
    None when it cannot be told (no signature, or ``*args``: the count is the caller's)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    taken = [p for p in parameters if p.kind in positional]
    return sum(1 for p in taken if p.default is p.empty), len(taken)


def takes_bias(functions: dict[str, Callable[..., Any]], label: str) -> bool:
    """Whether the layer has a bias: its forward requires three parameters or its step five
    (x, w, b, target, lr). A parameter with a default (``forward(x, w, b=None)``) fits either
    layer: alone it does not say (the ``bias`` option may), and it never contradicts the other
    function. A forward and a step of which one requires b and the other cannot take it are a
    ContractError naming both."""
    requires, refuses = {}, {}
    for name, arity in _BIAS_ARITY.items():
        counts = _positional(functions[name]) if name in functions else None
        if counts is not None:
            requires[name] = counts[0] == arity
            refuses[name] = counts[1] < arity
    if any(requires.values()) and any(refuses.values()):
        forward = "forward(x, w, b)" if requires.get("forward") else "forward(x, w)"
        step = "step(x, w, b, target, lr)" if requires.get("step") else "step(x, w, target, lr)"
        raise ContractError(
            f"{label} has {forward} but {step}: a layer has a bias in both or in neither"
        )
    return any(requires.values())


def load(spec: str) -> Any:
    """The object a SPEC names, or a one-line ContractError saying why it cannot be loaded."""
    return _load(spec)[0]


def _load(spec: str) -> tuple[Any, tuple[str, ...]]:
    """``load(spec)``, and what loading its module noted (a notebook's skipped magics)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ContractError(f"SPEC must be a non-empty string, got {spec!r}")
    target, _, attribute = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if ":" in spec and not target:
        raise ContractError(f"SPEC {spec!r} has no module before ':'")
    module = _import(target)
    obj: Any = module
    for part in filter(None, attribute.split(".")):
        if not hasattr(obj, part):
            raise ContractError(f"{target} has no attribute {part!r} (SPEC {spec!r})")
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as err:
            raise ContractError(
                f"{spec} is a class and could not be instantiated with no arguments: "
                f"{type(err).__name__}: {err}"
            ) from None
    return obj, _NOTEBOOK_NOTES.get(str(getattr(module, "__file__", "")), ())


def absolute_spec(spec: str) -> str:
    """``spec`` with a file path made absolute, so that it loads from any directory."""
    target, colon, attribute = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not _looks_like_path(target):
        return spec
    return f"{Path(target).resolve()}{colon}{attribute}"


def _looks_like_path(target: str) -> bool:
    """Whether ``target`` names a file or folder rather than a dotted module: a ``.py`` or
    notebook file, anything with a slash, or a folder that is no package (``.``, ``mine``), so
    that ``check .``, ``check mine`` and ``check mine/`` say the same thing. A package's folder
    (``verify``) stays a module name: its relative imports need it imported as a package."""
    if target.endswith((".py", NOTEBOOK_SUFFIX)) or "/" in target or os.sep in target:
        return True
    folder = Path(target)
    return folder.is_dir() and not (target.isidentifier() and (folder / "__init__.py").is_file())


def _import(target: str) -> ModuleType:
    """Import a module by dotted name (the current directory first) or by file path."""
    try:
        if _looks_like_path(target):
            return _import_file(Path(target))
        if os.getcwd() not in sys.path:
            # `python -m` puts the current directory on sys.path; an installed script does not.
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(target)
    except ContractError:
        raise
    except BaseException as err:  # SystemExit in a user's module is a contract error, too
        raise ContractError(f"cannot import {target!r}: {type(err).__name__}: {err}") from None


#: The start of the name a module loaded from a file path (or a notebook) gets in sys.modules;
#: messages name its file instead (``_label``).
LOADED_PREFIX = "_crosscheck_candidate_"


def _shown(path: Path) -> str:
    """``path`` as the user would write it: relative to the working directory when inside
    it, else absolute."""
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
    return str(path) if shown == "." else shown


def _import_file(path: Path) -> ModuleType:
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            files = sorted(p.name for p in path.glob("*.py")) + sorted(
                p.name for p in path.glob(f"*{NOTEBOOK_SUFFIX}")
            )
            which = f" (it holds {', '.join(files[:4])}{', ...' if len(files) > 4 else ''})"
            raise ContractError(
                f"cannot import {_shown(path.resolve())!r}: it is a directory, not a Python file "
                f"or package; name the file that defines the layer" + (which if files else "")
            )
        path = path / "__init__.py"
    elif not path.is_file():
        raise ContractError(f"cannot import {str(path)!r}: no such file")
    resolved = path.resolve()
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(resolved):
            return module
    if resolved.suffix == NOTEBOOK_SUFFIX:
        return _notebook(resolved)
    # A stable, unique module name: dataclasses and pickling need the module in sys.modules.
    stem = resolved.parent.name if resolved.name == "__init__.py" else resolved.stem
    name = f"{LOADED_PREFIX}{stem}_{abs(hash(str(resolved))) % 10**8}"
    package = [str(resolved.parent)] if resolved.name == "__init__.py" else None
    module_spec = importlib.util.spec_from_file_location(
        name, resolved, submodule_search_locations=package
    )
    if module_spec is None or module_spec.loader is None:
        raise ContractError(f"cannot import {str(path)!r}: not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    # The file's own folder first, so that it can import its neighbours (a package: its parent).
    sys.path.insert(0, str(resolved.parent.parent if package else resolved.parent))
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


#: A notebook's file name ends so: ``homework.ipynb`` is a SPEC like ``homework.py``.
NOTEBOOK_SUFFIX = ".ipynb"

#: Cell magics whose body is Python that IPython runs once, as it stands: the body runs.
PYTHON_CELL_MAGICS = ("%%time", "%%capture")

#: IPython's help syntax: ``forward?``, ``np.dot??``, ``?grad_x``.
HELP_LINE = re.compile(r"\?{1,2}[\w.]+|[\w.]+\?{1,2}")

#: What loading each notebook noted (its skipped magic lines), by the notebook's resolved path.
_NOTEBOOK_NOTES: dict[str, tuple[str, ...]] = {}


def notebook_cells(path: Path) -> list[str]:
    """The sources of a notebook's code cells, in order, or a ContractError saying why not.

    Read as the plain JSON of nbformat 4 (``{"cells": [{"cell_type": "code", "source": ...}]}``,
    a source being a string or a list of lines), so that no Jupyter package is needed.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ContractError(f"cannot read notebook {str(path)!r}: {err}") from None
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        format_ = document.get("nbformat") if isinstance(document, dict) else None
        raise ContractError(
            f"cannot read notebook {str(path)!r}: no list of 'cells' (nbformat {format_}; "
            "nbformat 4 is read: save it again with Jupyter 4 or later)"
        )
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ContractError(f"cannot read notebook {str(path)!r}: a cell's source is no text")
        sources.append(source)
    return sources


def python_of_cell(source: str) -> tuple[str, list[str]]:
    """A code cell as plain Python, and the IPython lines it skipped.

    A cell that compiles as Python is left as it is (a line may start with ``%`` inside
    brackets or a string). In one that does not, a line magic (``%matplotlib inline``), shell
    line (``!pip install x``) or help line (``forward?``) becomes ``pass`` at its own
    indentation, so that the cell's line numbers and blocks stay as they were. A cell magic
    skips its whole cell (``%%bash`` is not Python), except ``PYTHON_CELL_MAGICS``, whose body
    runs.
    """
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        if first.split()[0] in PYTHON_CELL_MAGICS:
            return "\n".join(["pass", *lines[1:]]), [first]
        return "", [first]
    try:
        compile(source, "<cell>", "exec")
        return source, []
    except (SyntaxError, ValueError):
        pass  # IPython syntax, or a real error that compiling the result will name
    kept, skipped = [], []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or HELP_LINE.fullmatch(stripped):
            kept.append(line[: len(line) - len(stripped)] + "pass")
            skipped.append(stripped)
        else:
            kept.append(line)
    return "\n".join(kept), skipped


def _notebook(path: Path) -> ModuleType:
    """A module holding what the notebook's code cells define, run top to bottom.

    A cell that raises (an assert between cells included) is a ContractError naming the code
    cell's number (1-based among code cells: "Restart and Run All" prints it as In [n]), its
    first line and the line that raised. What the cells print goes to stderr (the worker's
    stdout is the protocol's, the oracle's the report's).
    """
    name = f"{LOADED_PREFIX}{path.stem}_{abs(hash(str(path))) % 10**8}"
    module = ModuleType(name, f"The code cells of {path.name}")
    module.__file__ = str(path)
    sys.modules[name] = module
    # A notebook runs in its own folder, and imports its neighbours from there.
    sys.path.insert(0, str(path.parent))
    skipped: list[str] = []
    try:
        for number, source in enumerate(notebook_cells(path), start=1):
            code, magics = python_of_cell(source)
            skipped += magics
            filename = f"{path} [code cell {number}]"
            try:
                compiled = compile(code, filename, "exec")
                # stderr: in the oracle's own process (--in-process) stdout is the report's.
                with contextlib.redirect_stdout(sys.stderr):
                    exec(compiled, module.__dict__)
            except BaseException as err:  # an assert, a SystemExit: the notebook's verdict
                raise ContractError(_cell_error(path, number, source, filename, err)) from None
    except BaseException:
        del sys.modules[name]
        raise
    if skipped:
        examples = ", ".join(repr(line) for line in dict.fromkeys(skipped))
        _NOTEBOOK_NOTES[str(path)] = (
            f"{path.name}: skipped {len(skipped)} IPython magic / shell line(s), not Python: "
            f"{examples}",
        )
    return module


def _shortened(line: str, width: int = 80) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def _cell_error(path: Path, number: int, source: str, filename: str, err: BaseException) -> str:
    """``homework.ipynb: code cell 3 ('def forward(x, w):') raised at its line 4 ('assert
    ...'): AssertionError``."""
    first = _shortened(next((line.strip() for line in source.splitlines() if line.strip()), ""))
    where = ""
    if isinstance(err, SyntaxError) and err.filename == filename:
        where = f" at its line {err.lineno}"
    else:
        frames = traceback.extract_tb(err.__traceback__)
        lines = [frame.lineno for frame in frames if frame.filename == filename]
        if lines:
            where = f" at its line {lines[-1]}"
            cell_lines = source.splitlines()
            line = lines[-1] or 0
            failing = cell_lines[line - 1].strip() if 0 < line <= len(cell_lines) else ""
            if failing and failing != first:
                where += f" ({_shortened(failing)!r})"
    message = " ".join(str(err).split())
    what = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return f"{path.name}: code cell {number} ({first!r}) raised{where}: {what}"


def as_candidate(
    impl: Any, *, name: str | None = None, spec: str | None = None, notes: Sequence[str] = ()
) -> Candidate:
    """The functions ``impl`` provides, or a ContractError naming what was expected.

    ``impl`` may be a module, a class instance, a class (instantiated with no arguments if it
    can be, else used as it is) or a SPEC string. A PyTorch, Equinox or Flax NNX module that
    does not spell out the contract itself is adapted as a dense layer
    (``verify.adapters.framework_layer``: forward, grad_x and grad_w by its autodiff), or is a
    ContractError naming the adapter to use. ``notes`` go to the Candidate.
    """
    if isinstance(impl, str):
        loaded, noted = _load(impl)
        return as_candidate(
            loaded, name=name or impl, spec=spec or absolute_spec(impl), notes=(*notes, *noted)
        )
    if inspect.isclass(impl):
        with contextlib.suppress(Exception):  # else: static methods on the class itself
            impl = impl()
    reduction, noted = _adapter_says(impl)
    notes = (*notes, *noted)
    adapted = None
    if _framework_loaded() and not _spells_out_the_contract(impl):
        from ...adapters import framework_layer

        adapted = framework_layer(impl)
        if adapted is not None:
            impl, note = adapted
            notes = (*notes, note)
    functions: dict[str, Callable[..., Any]] = {}
    for function, signature in FUNCTIONS.items():
        for attribute in signature.spellings:
            value = _attribute(impl, attribute)
            if value is not None:
                if not callable(value):
                    raise ContractError(
                        f"{attribute} of {_label(impl)} must be callable, "
                        f"got {type(value).__name__}"
                    )
                functions[function] = value
                break
    slips = {} if adapted is not None else near_misses(_own_callables(impl), functions)
    if slips:
        raise ContractError(
            f"{_label(impl)} defines "
            + ", ".join(f"{name} (did you mean {meant}?)" for name, meant in slips.items())
            + ": the contract's functions are found by their exact names; rename it, or start "
            "a helper's name with _"
        )
    if not functions:
        raise ContractError(
            f"nothing recognised in {_label(impl)}: expected any of "
            f"{', '.join(FUNCTIONS)} (or l1_loss)"
        )
    asarray = _attribute(impl, "asarray")
    return Candidate(
        name=name or _label(impl),
        spec=spec or spec_of(impl),
        functions=functions,
        asarray=asarray if callable(asarray) else None,
        notes=tuple(dict.fromkeys(notes)),
        bias=takes_bias(functions, _label(impl)),
        reduction=reduction,
    )


def _adapter_says(impl: Any) -> tuple[str | None, tuple[str, ...]]:
    """What a framework adapter (``verify.adapters.Adapted``) read from its module: the
    reduction of its loss where it is not the sum, and its notes; nothing for any other
    implementation."""
    adapters = sys.modules.get("verify.adapters")
    if adapters is None or not isinstance(impl, adapters.Adapted):
        return None, ()  # no adapter was ever imported: impl is none
    return (None if impl.reduction == "sum" else impl.reduction), tuple(impl.notes)


#: How alike a name must be to a contract function's for a slip of it: difflib's ratio of the
#: two, lower-cased without underscores (``grad_W``, ``gradw``, ``Grad_w``: 1; ``foward``:
#: 0.92; ``updte``: 0.91). A helper ``steps`` beside the contract's ``step`` (0.89) is none,
#: nor one that extends a contract name (``updates``, ``update_w``, ``forward_pass``).
NEAR_MISS = 0.9


def _folded(name: str) -> str:
    return name.lower().replace("_", "")


def near_misses(names: Iterable[str], provided: Collection[str]) -> dict[str, str]:
    """The ``names`` that are slips of a contract function not in ``provided`` (a case, an
    underscore or a letter: ``NEAR_MISS``), each with the spelling it misses; a name starting
    with ``_`` is a helper's, never a slip."""
    spellings = {spelling for each in FUNCTIONS.values() for spelling in each.spellings}
    missing = {
        _folded(spelling): spelling
        for function, each in FUNCTIONS.items()
        if function not in provided
        for spelling in each.spellings
    }
    found = {}
    for name in names:
        folded = _folded(name)
        if name.startswith("_") or name in spellings:
            continue
        close = difflib.get_close_matches(folded, missing, n=1, cutoff=NEAR_MISS)
        if close and not (folded != close[0] and folded.startswith(close[0])):
            found[name] = missing[close[0]]
    return found


def _own_callables(impl: Any) -> list[str]:
    """The public callables ``impl``'s author wrote: a module's functions and classes defined
    in it (not imported), or an object's methods from classes of its own class's module and
    its own callable attributes (not a framework base class's)."""
    if isinstance(impl, ModuleType):
        return [
            name
            for name, value in vars(impl).items()
            if callable(value) and getattr(value, "__module__", None) == impl.__name__
        ]
    owner = impl if inspect.isclass(impl) else type(impl)
    names = [
        name
        for cls in owner.__mro__
        if cls.__module__ == owner.__module__
        for name, value in vars(cls).items()
        if callable(value) or isinstance(value, (staticmethod, classmethod))
    ]
    own = getattr(impl, "__dict__", {}) if not inspect.isclass(impl) else {}
    return [*names, *(name for name, value in own.items() if callable(value))]


#: The frameworks whose modules are adapted as they are (``_framework_loaded``).
FRAMEWORKS = ("torch", "equinox", "flax.nnx")


def _framework_loaded() -> bool:
    """Whether a framework whose modules are adapted is imported: an object cannot be an
    instance of a module class that was never imported, and the worker imports none itself."""
    return any(name in sys.modules for name in FRAMEWORKS)


def _spells_out_the_contract(impl: Any) -> bool:
    """Whether ``impl`` has any of the contract's functions besides ``forward``, or a
    ``forward`` that takes w as well as x: then it is checked as it is, never adapted (every
    torch.nn.Module has a ``forward``, which takes x alone)."""
    return _forward_takes_w(impl) or any(
        _attribute(impl, attribute) is not None
        for function, signature in FUNCTIONS.items()
        if function != "forward"
        for attribute in signature.spellings
    )


def _forward_takes_w(impl: Any) -> bool:
    try:
        parameters = inspect.signature(_attribute(impl, "forward")).parameters.values()
    except (TypeError, ValueError):  # no forward, or one whose signature cannot be read
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return len(required) >= 2


def _attribute(impl: Any, name: str) -> Any:
    """``getattr(impl, name, None)``; an attribute whose access raises is a contract error."""
    try:
        return getattr(impl, name, None)
    except BaseException as err:  # a property that exits or raises is the candidate's defect
        raise ContractError(
            f"reading {name} of {_label(impl)} raised {type(err).__name__}: {err}"
        ) from None


def _label(impl: Any) -> str:
    """How messages name ``impl``: a module loaded from a file or notebook by that file (or a
    package by its folder), never by the name crosscheck gave it; any other module by name; an
    object by its type."""
    if isinstance(impl, ModuleType):
        file = getattr(impl, "__file__", None)
        if impl.__name__.startswith(LOADED_PREFIX) and file:
            path = Path(file)
            return _shown(path.parent if path.name == "__init__.py" else path)
        return impl.__name__
    if inspect.isclass(impl):
        return f"{impl.__module__}.{impl.__qualname__}"
    return f"{type(impl).__module__}.{type(impl).__qualname__} instance"


def name_of(impl: Any) -> str:
    """How reports name ``impl``: a SPEC as given, a module by name, an object by its type."""
    return impl if isinstance(impl, str) else _label(impl)


def spec_of(impl: Any, *, home: ModuleType | None = None) -> str | None:
    """A SPEC that loads this very ``impl`` again in a fresh process, or None when there is none.

    A module by its file when it is a plain top-level module (a script or a test helper, which a
    fresh process may not find by name), else by its dotted name (a package's relative imports
    need it); a class by its name when it sits at the top level of its module; any other object
    by a top-level name that holds it in ``home`` (a test module), in the module it names as its
    ``__module__`` (an adapter: where it was built), or in its class's module
    (``examples/torch_manual.py:layer``). An instance no such name holds has none: a fresh
    instance of its class could differ.
    """
    if isinstance(impl, ModuleType):
        return _module_spec(impl)
    owner = impl if inspect.isclass(impl) or inspect.isfunction(impl) else type(impl)
    if inspect.isclass(impl):
        module = sys.modules.get(owner.__module__)
        if module is None or module.__name__ == "builtins":
            return None
        where = _module_spec(module)
        top_level = "<" not in impl.__qualname__ and getattr(module, impl.__name__, None) is impl
        return f"{where}:{impl.__qualname__}" if where and top_level else None
    names = (getattr(impl, "__module__", None), owner.__module__)
    homes = [home, *(sys.modules.get(n) for n in names if isinstance(n, str))]
    for module in dict.fromkeys(m for m in homes if m is not None):
        where = _module_spec(module) if module.__name__ != "builtins" else None
        held = [n for n, value in vars(module).items() if value is impl and not n.startswith("_")]
        if where and held:
            return f"{where}:{held[0]}"
    return None


def _module_spec(module: ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    is_package = hasattr(module, "__path__")
    if file and not is_package and "." not in module.__name__:
        return str(Path(file).resolve())
    if module.__name__ == "__main__":
        return None
    return module.__name__
