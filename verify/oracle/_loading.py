"""Finding an implementation: a SPEC string to an object, an object to the functions it provides.

An implementation is a module, a class instance or any object exposing any subset of the
contract's functions (``_contract.FUNCTIONS``) plus an optional ``asarray(numpy_array)`` that
turns the oracle's inputs into the implementation's own arrays. A SPEC is
``package.module:attr``, ``path/to/file.py:attr`` or a module alone; a class named by a SPEC is
instantiated with no arguments. Modules are loaded with importlib,
never by ``exec`` of a string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ._contract import FUNCTIONS


class ContractError(Exception):
    """The implementation cannot be checked at all: not importable, or nothing recognised."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the oracle calls: the provided functions by contract name, and how to make arrays.

    Attributes:
      name: a label for reports (the SPEC, or the object's repr).
      spec: a SPEC that loads the same implementation in a fresh process, if one is known.
      functions: contract name -> callable, only those provided.
      asarray: the implementation's ``asarray``, or None (numpy arrays are passed as they are).
      bias: whether its layer has a bias b (``takes_bias``).
    """

    name: str
    spec: str | None
    functions: dict[str, Callable[..., Any]]
    asarray: Callable[[Any], Any] | None
    bias: bool = False


#: Required positional parameters of forward and step with a bias (without: one fewer).
_BIAS_ARITY = {"forward": 3, "step": 5}


def _required_positional(function: Callable[..., Any]) -> int | None:
    """How many positional parameters ``function`` requires, or None when it cannot be told
    (no signature, or ``*args``: the count is the caller's to choose)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in positional and p.default is p.empty)


def takes_bias(functions: dict[str, Callable[..., Any]], label: str) -> bool:
    """Whether the layer has a bias: its forward requires three parameters or its step five
    (x, w, b, target, lr). A parameter with a default (``b=None``) does not count: such a
    layer is checked without a bias unless the ``bias`` option says otherwise. A forward and a
    step that disagree are a ContractError naming both."""
    said = {
        name: _required_positional(functions[name]) == arity
        for name, arity in _BIAS_ARITY.items()
        if name in functions and _required_positional(functions[name]) is not None
    }
    if len(set(said.values())) > 1:
        forward = "forward(x, w, b)" if said["forward"] else "forward(x, w)"
        step = "step(x, w, b, target, lr)" if said["step"] else "step(x, w, target, lr)"
        raise ContractError(
            f"{label} has {forward} but {step}: a layer has a bias in both or in neither"
        )
    return any(said.values())


def load(spec: str) -> Any:
    """The object a SPEC names, or a one-line ContractError saying why it cannot be loaded."""
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
    return obj


def absolute_spec(spec: str) -> str:
    """``spec`` with a file path made absolute, so that it loads from any directory."""
    target, colon, attribute = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not _looks_like_path(target):
        return spec
    return f"{Path(target).resolve()}{colon}{attribute}"


def _looks_like_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


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


def _import_file(path: Path) -> ModuleType:
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise ContractError(
                f"cannot import {str(path)!r}: it is a directory, not a Python file or package"
            )
        path = path / "__init__.py"
    elif not path.is_file():
        raise ContractError(f"cannot import {str(path)!r}: no such file")
    resolved = path.resolve()
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(resolved):
            return module
    # A stable, unique module name: dataclasses and pickling need the module in sys.modules.
    stem = resolved.parent.name if resolved.name == "__init__.py" else resolved.stem
    name = f"_crosscheck_candidate_{stem}_{abs(hash(str(resolved))) % 10**8}"
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


def as_candidate(impl: Any, *, name: str | None = None, spec: str | None = None) -> Candidate:
    """The functions ``impl`` provides, or a ContractError naming what was expected.

    ``impl`` may be a module, a class instance, a class (instantiated with no arguments if it
    can be, else used as it is) or a SPEC string.
    """
    if isinstance(impl, str):
        return as_candidate(load(impl), name=name or impl, spec=spec or absolute_spec(impl))
    if inspect.isclass(impl):
        with contextlib.suppress(Exception):  # else: static methods on the class itself
            impl = impl()
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
        bias=takes_bias(functions, _label(impl)),
    )


def _attribute(impl: Any, name: str) -> Any:
    """``getattr(impl, name, None)``; an attribute whose access raises is a contract error."""
    try:
        return getattr(impl, name, None)
    except BaseException as err:  # a property that exits or raises is the candidate's defect
        raise ContractError(
            f"reading {name} of {_label(impl)} raised {type(err).__name__}: {err}"
        ) from None


def _label(impl: Any) -> str:
    if isinstance(impl, ModuleType):
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


def enable_float64_for(dtype: str) -> None:
    """Let JAX candidates compute in float64 when float64 is checked (``jax_enable_x64``).

    Without it a JAX implementation silently returns float32 for float64 inputs, and the
    command line would report ``wrong_dtype`` for a correct layer. Set before the candidate
    is loaded, as JAX requires; the command line and reproducers own their process.
    """
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
