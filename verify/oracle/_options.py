"""How a check judges: the dtype, exact mode, a pinned tie convention, the declared matmul
precision and accumulation, the per-call timeout and whether the layer has a bias
(``Options``), and ``option``, the one way an option of the oracle is declared
(``_settings.Settings`` holds the rest of them)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Collection
from typing import Any

from .. import bounds

#: Default per-call timeout, seconds: generous for a first JAX compile of a large shape.
DEFAULT_TIMEOUT = 60.0

#: Where an option is offered: ``verify.check``'s keywords, ``python -m verify check``, the
#: pytest plugin's ``--crosscheck-NAME`` and the keywords of ``@pytest.mark.crosscheck``.
PYTHON, CLI, PYTEST, MARKER = "python", "cli", "pytest", "marker"
EVERYWHERE = frozenset({PYTHON, CLI, PYTEST, MARKER})


class OptionError(ValueError):
    """An option's value is out of range: ``option`` (its Python name) ``problem``."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option, self.problem = option, problem


def option(
    default: Any,
    help: str,
    *,
    valid: Callable[[Any], bool] | None = None,
    needs: str = "",
    parse: Callable[[str], Any] | None = None,
    choices: Collection[str] | None = None,
    metavar: str | None = None,
    flag: str | None = None,
    flag_value: Any = True,
    short: str | None = None,
    offered: Collection[str] = EVERYWHERE,
    repeatable_in_pytest: bool = False,
) -> Any:
    """Declare one option of the oracle: a field of ``Options`` or ``_settings.Settings``.

    Everything the surfaces generate from is here: the field's name is the Python keyword and,
    dashed, the command line's ``--name``; its annotation the type.

    Args:
      default: the value when the option is not given.
      help: one sentence for ``--help``, the docs' table and ``verify.check``'s docstring.
      valid: whether a value is acceptable (None: any value of the type is); a value that is
        not raises ``OptionError`` saying it ``needs``.
      needs: what a valid value is, completing "NAME must be ...".
      parse: the command line's text -> value (default: the text itself).
      choices: the values the command line accepts (``valid`` defaults to membership).
      metavar: the command line's placeholder for the value.
      flag: the command line's spelling when it is not ``--name`` (``--in-process``); a flag
        without a value stores ``flag_value``: a bool option, or any option given ``flag``.
      short: a one-letter alias (``-j``).
      offered: where the option is offered (``PYTHON``, ``CLI``, ``PYTEST``).
      repeatable_in_pytest: ``--crosscheck-NAME`` may repeat: one item per value.
    """
    if choices is not None and valid is None:
        allowed, optional = tuple(choices), default is None
        needs = f"one of {list(allowed)}" + (" or None" if optional else "")

        def member(value: Any) -> bool:
            return (optional and value is None) or value in allowed

        valid = member

    if valid is not None and not needs:
        raise ValueError(f"option {help!r}: a validated option says what it needs")
    metadata = {
        "help": help,
        "valid": valid,
        "needs": needs,
        "parse": parse,
        "choices": None if choices is None else tuple(choices),
        "metavar": metavar,
        "flag": flag,
        "flag_value": flag_value,
        "short": short,
        "offered": frozenset(offered),
        "repeatable_in_pytest": repeatable_in_pytest,
    }
    return dataclasses.field(default=default, metadata=metadata)


def declared(instance: Any) -> None:
    """Check every declared field of ``instance`` against its ``valid`` (``OptionError``)."""
    for field in dataclasses.fields(instance):
        valid = field.metadata.get("valid")
        value = getattr(instance, field.name)
        if valid is not None and not valid(value):
            raise OptionError(field.name, f"must be {field.metadata['needs']}, got {value!r}")


def positive_seconds(value: Any) -> bool:
    """Whether ``value`` is a number of seconds a timer can wait: finite and > 0."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    return 0 < float(value) < math.inf


#: The largest declared tile: a tile shape's long side is 2T + 1, its others 2 and 3, so the
#: loop reference stays exact and fast there (under a million multiply-adds a matmul).
MAX_TILE = 1 << 16


def _tiles(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(size, int) and not isinstance(size, bool) and 2 <= size <= MAX_TILE
        for size in value
    )


def parse_tiles(text: str) -> tuple[int, ...]:
    """``64,512`` -> ``(64, 512)`` (``--tile``); the sizes sorted, without repeats."""
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"expected block sizes like 64,512, got {text!r}") from None


@dataclasses.dataclass(frozen=True)
class Options:
    """How a case is judged: the options a check's verdict depends on. They travel with the
    check to the worker, the report (``"options"``) and the reproducer; a new one is a field
    here, declared with ``option`` (``_settings.Settings`` inherits it)."""

    dtype: str = option(
        "float32",
        "dtype of the inputs",
        choices=sorted(bounds.UNIT_ROUNDOFF),
        repeatable_in_pytest=True,  # the items of each dtype
    )
    exact: bool = option(
        False,
        "integer data, half-integer targets, lr a power of two: results must equal the "
        "reference exactly (float32 or float64)",
    )
    tie_convention: str | None = option(
        None,
        "pin dL_do at ties (output == target): seed -1, jax +1, torch 0 (default: any value in "
        "[-1, 1])",
        choices=sorted(bounds.TIE_CONVENTIONS),
    )
    matmul_precision: str = option(
        "float32",
        "declared float32 matmul precision (float32: full): the bounds of "
        "bounds.arithmetic('float32', matmul_precision) apply",
        choices=sorted(bounds.MATMUL_INPUT_ROUNDOFF),
    )
    timeout: float = option(
        DEFAULT_TIMEOUT,
        "seconds one call may take before its verdict is timed_out",
        valid=positive_seconds,
        needs="a finite number of seconds > 0",
        parse=float,
        metavar="SECONDS",
    )
    accumulation: str | None = option(
        None,
        "declared accumulation of sums and matmuls at dtype bfloat16 / float16 (default "
        "float32, as PyTorch and JAX; the dtype itself for numpy's sums)",
        choices=("float32", "bfloat16", "float16"),
    )
    tile: tuple[int, ...] = option(
        (),
        "block (tile) sizes T of the candidate's kernels: the run's shapes gain sides T-1, T, "
        "T+1 and 2T+1 in each of N, I, O (the others 2 and 3), where a partial block shows, and "
        "the diagnoses name a partial block of T",
        valid=_tiles,
        needs=f"a tuple of block sizes from 2 to {MAX_TILE}",
        parse=parse_tiles,
        metavar="T[,T...]",
    )

    bias: bool | None = option(
        None,
        "the layer has a bias b (O,): forward(x, w, b), grad_b(dL_do), step(x, w, b, target, "
        "lr) (default: when the candidate's forward takes three parameters or its step five)",
        valid=lambda value: value is None or isinstance(value, bool),
        needs="True, False or None",
        flag="--bias",
    )

    def __post_init__(self) -> None:
        declared(self)
        # The rules between options; each option's own range is its declaration's.
        if self.exact and self.dtype not in ("float32", "float64"):
            raise ValueError(f"exact mode needs dtype float32 or float64, got {self.dtype}")
        if self.exact and self.matmul_precision != "float32":
            raise ValueError("exact mode is bitwise: it takes no reduced matmul_precision")
        bounds.accumulation_of(self.dtype, self.accumulation)  # names the accepted ones
        self.arithmetic()  # checks matmul_precision against dtype

    @property
    def tie(self) -> float | None:
        """The pinned value of dL_do at a tie, or None (any value in [-1, 1])."""
        if self.tie_convention is None:
            return None
        return bounds.TIE_CONVENTIONS[self.tie_convention]

    def arithmetic(self) -> bounds.Arithmetic:
        """The arithmetic the candidate is held to (``bounds.arithmetic``)."""
        return bounds.arithmetic(
            self.dtype,
            self.matmul_precision,  # type: ignore[arg-type]
            accumulate=bounds.accumulation_of(self.dtype, self.accumulation),
        )

    def described(self) -> dict[str, Any]:
        """The options as a report and a reproducer store them: every field, and ``bias`` and
        ``tile`` only where given, so that a check without them is described, byte for byte,
        as before they existed."""
        found = dataclasses.asdict(self.judged())
        for name in ("bias", "tile"):
            if not found[name]:
                del found[name]
        return found

    def judged(self) -> Options:
        """These options alone, without a subclass's (``Settings``'s) run options."""
        names = [field.name for field in dataclasses.fields(Options)]
        return Options(**{name: getattr(self, name) for name in names})
