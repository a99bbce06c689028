"""Every option of the oracle, declared once: ``Settings``, one frozen dataclass.

An option is one field, declared with ``option`` (default, help, validation, how the command
line spells and parses it, where it is offered, whether a verdict depends on it). Making a
``Settings`` validates every value, before anything runs. The surfaces are generated from the
fields (``front._surfaces``): ``verify.check``'s keywords, signature and docstring, ``python -m
verify check``'s options, the pytest plugin's ``--crosscheck-*`` options and marker keywords, and
the docs' table (``docs/options.md``).

The options a verdict depends on are marked ``judged``: they travel with a check to the report
(``described``) and the reproducer, which judges its case again under them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import bounds
from .._params import names_for
from ..messages import CrosscheckError
from ._contract import CHECK_NAMES

#: Default per-call timeout, seconds: generous for a first JAX compile of a large shape.
DEFAULT_TIMEOUT = 60.0

#: Default seconds for a worker to load the implementation and greet.
DEFAULT_IMPORT_TIMEOUT = 120.0

#: Default directory for reproducers (gitignored).
DEFAULT_REPRO_DIR = "crosscheck-repro"

#: Where an option is offered: ``verify.check``'s keywords, ``python -m verify check``, the
#: pytest plugin's ``--crosscheck-NAME`` and the keywords of ``@pytest.mark.crosscheck``.
PYTHON, CLI, PYTEST, MARKER = "python", "cli", "pytest", "marker"
EVERYWHERE = frozenset({PYTHON, CLI, PYTEST, MARKER})

#: The groups of ``python -m verify check --help``, in the order it lists them; every option
#: offered on the command line belongs to one.
WHAT, NUMERICS, RUNNING, OUTPUT = "what to check", "numerics", "running", "output"
GROUPS = (WHAT, NUMERICS, RUNNING, OUTPUT)


class OptionError(CrosscheckError, ValueError):
    """An option's value is out of range, or two options contradict each other: ``option`` (its
    Python name) ``problem``. A ValueError too, as Python's own bad arguments are."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option, self.problem = option, problem


def option(
    default: Any,
    help: str,
    *,
    group: str | None = None,
    cli_help: str | None = None,
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
    judged: bool = False,
    described_when_given: bool = False,
    normalize: Callable[[Any], Any] | None = None,
) -> Any:
    """Declare one option of the oracle: a field of ``Settings``.

    Everything the surfaces generate from is here: the field's name is the Python keyword and,
    dashed, the command line's ``--name``; its annotation the type.

    Args:
      default: the value when the option is not given.
      help: one sentence for the docs' table, ``verify.check``'s docstring and, unless
        ``cli_help`` is given, ``--help``.
      group: the ``--help`` group of an option offered on the command line (``GROUPS``).
      cli_help: ``--help``'s sentence where the command line differs from Python (no
        ``None``, ``True`` or Python call in it: the command line spells neither); the default
        is appended unless it is None, False or empty, so a default in words belongs here.
      valid: whether a value is acceptable (None: any value of the type is); a value that is
        not raises ``OptionError`` saying it ``needs``.
      needs: what a valid value is, completing "NAME must be ...".
      parse: the command line's text -> value (default: the text itself).
      choices: the values the command line accepts (``valid`` defaults to membership).
      metavar: the command line's placeholder for the value.
      flag: the command line's spelling when it is not ``--name`` (``--in-process``); a flag
        without a value stores ``flag_value``: a bool option, or any option given ``flag``.
      short: a one-letter alias (``-j``).
      offered: where the option is offered (``PYTHON``, ``CLI``, ``PYTEST``, ``MARKER``).
      repeatable_in_pytest: ``--crosscheck-NAME`` may repeat: one item per value.
      judged: a verdict depends on it: the report and the reproducer carry it.
      described_when_given: the report and the reproducer carry it only when it is given
        (not at its default), so that a check without it is described as before it existed.
      normalize: the value's one spelling, applied before validation (a list of block sizes
        from JSON or Python becomes a sorted tuple); a value it cannot read is left to ``valid``.
    """
    if choices is not None and valid is None:
        allowed, optional = tuple(choices), default is None
        needs = f"one of {list(allowed)}" + (" or None" if optional else "")

        def member(value: Any) -> bool:
            return (optional and value is None) or value in allowed

        valid = member

    if valid is not None and not needs:
        raise ValueError(f"option {help!r}: a validated option says what it needs")
    if CLI in offered and group not in GROUPS:
        raise ValueError(
            f"option {help!r}: one offered on the command line has a group of {GROUPS}"
        )
    metadata = {
        "help": help,
        "group": group,
        "cli_help": help if cli_help is None else cli_help,
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
        "judged": judged,
        "described_when_given": described_when_given,
        "normalize": normalize,
    }
    return dataclasses.field(default=default, metadata=metadata)


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


def _as_tiles(value: Any) -> Any:
    """Block sizes given as any list of ints: sorted, without repeats (``[64, 32]`` ->
    ``(32, 64)``); anything else as it is, for ``_tiles`` to refuse."""
    if isinstance(value, (list, tuple, set, frozenset)) and all(
        isinstance(size, int) and not isinstance(size, bool) for size in value
    ):
        return tuple(sorted(set(value)))
    return value


def parse_tiles(text: str) -> tuple[int, ...]:
    """``64,512`` -> ``(64, 512)`` (``--tile``); the sizes sorted, without repeats."""
    try:
        return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"expected block sizes like 64,512, got {text!r}") from None


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1048576``: bytes (``--memory-limit``)."""
    number, unit = text.strip().rstrip("Bb"), ""
    if number and number[-1].upper() in _UNITS:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"expected a size like 4G or 512M, got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"a size must be positive, got {text!r}")
    return int(value)


#: The sides a precondition names, in a shape's order: ``(N, I, O)``.
SIDES = ("N", "I", "O")

#: The largest ``N * I * O`` of a declared precondition's smallest shape (its multiples): the
#: loop reference computes every drawn shape's matmuls, up to 8 times this (``judging._cases``).
MAX_MULTIPLE_SIZE = 1 << 21


def sides_of(multiple_of: int | str | None) -> tuple[int, int, int]:
    """The multiple each side must be, ``(N, I, O)``: ``32`` -> ``(32, 32, 32)``, ``"N=128,I=32"``
    -> ``(128, 32, 1)``, None -> ``(1, 1, 1)`` (``--multiple-of``). A ValueError says what is
    wrong with one that is not."""
    if multiple_of is None:
        return (1, 1, 1)
    if isinstance(multiple_of, int) and not isinstance(multiple_of, bool):
        found = [multiple_of] * 3
    elif isinstance(multiple_of, str) and multiple_of.strip().isdigit():
        found = [int(multiple_of)] * 3
    elif isinstance(multiple_of, str):
        by_side: dict[str, int] = {}
        for part in (p.strip() for p in multiple_of.split(",") if p.strip()):
            side, _, count = part.partition("=")
            side = side.strip().upper()
            if side not in SIDES or side in by_side or not count.strip().isdigit():
                raise ValueError(
                    f"expected a multiple like 32, or sides like N=128,I=32 (each of N, I, O "
                    f"once), got {multiple_of!r}"
                )
            by_side[side] = int(count)
        found = [by_side.get(side, 1) for side in SIDES]
    else:
        raise ValueError(f"expected an int or a text like 'N=128,I=32', got {multiple_of!r}")
    if not all(1 <= m <= MAX_TILE for m in found):
        raise ValueError(f"each multiple must be from 1 to {MAX_TILE}, got {multiple_of!r}")
    if math.prod(found) > MAX_MULTIPLE_SIZE:
        raise ValueError(
            f"the smallest shape that meets {multiple_of!r} has N*I*O = {math.prod(found)} "
            f"multiply-adds, past the {MAX_MULTIPLE_SIZE} the loop reference checks in time"
        )
    return found[0], found[1], found[2]


def multiples_text(multiples: tuple[int, int, int]) -> str:
    """The sides a precondition names, in words: ``N, I, O multiples of 32``, ``N multiples of
    128, I multiples of 32`` (sides that meet any shape are left out)."""
    by_multiple: dict[int, list[str]] = {}
    for side, m in zip(SIDES, multiples, strict=True):
        if m > 1:
            by_multiple.setdefault(m, []).append(side)
    return ", ".join(f"{', '.join(sides)} multiples of {m}" for m, sides in by_multiple.items())


def parse_multiples(text: str) -> int | str:
    """``--multiple-of``'s text: ``32`` -> ``32``; ``i=32, n=128`` -> ``"N=128,I=32"`` (the
    sides in N, I, O order, upper case); a ValueError for anything ``sides_of`` refuses."""
    sides = sides_of(text)
    if text.strip().isdigit():
        return sides[0]
    return ",".join(f"{name}={m}" for name, m in zip(SIDES, sides, strict=True) if m > 1) or 1


def _multiples(value: Any) -> bool:
    try:
        sides_of(value)
    except ValueError:
        return False
    return True


def _names(text: str) -> list[str]:
    """``--functions``'s comma-separated names, blanks dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _checks(value: Any) -> bool:
    if value is None:
        return True
    names = not isinstance(value, str) and isinstance(value, Sequence)
    return names and bool(value) and set(value) <= set(CHECK_NAMES)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every option of a check, validated when made (``OptionError`` names the option, what it
    got and what it needs).

    ``verify.check`` takes each as a keyword; ``python -m verify check`` as ``--name`` (dashes
    for underscores); the pytest plugin as ``--crosscheck-name`` and
    ``@pytest.mark.crosscheck(name=...)``; where each is offered, and its meaning, is in its
    declaration and the docs' table. A new option is one field here, declared with ``option``.
    The first fields are ``judged``: how a case is judged.
    """

    dtype: str = option(
        "float32",
        "dtype of the inputs",
        group=NUMERICS,
        choices=sorted(bounds.UNIT_ROUNDOFF),
        repeatable_in_pytest=True,  # the items of each dtype
        judged=True,
    )
    exact: bool = option(
        False,
        "integer data, half-integer targets, lr a power of two: results must equal the "
        "reference exactly (float32 or float64)",
        group=NUMERICS,
        judged=True,
    )
    tie_convention: str | None = option(
        None,
        "pin dL_do at ties (output == target): seed -1, jax +1, torch 0 (default: any value in "
        "[-1, 1])",
        group=NUMERICS,
        choices=sorted(bounds.TIE_CONVENTIONS),
        judged=True,
    )
    matmul_precision: str = option(
        "float32",
        "the float32 matmul precision the candidate declares (float32: full; tf32, bf16 and the "
        "bf16 passes as accelerators compute): the error bounds of that arithmetic apply",
        group=NUMERICS,
        choices=sorted(bounds.MATMUL_INPUT_ROUNDOFF),
        judged=True,
    )
    timeout: float = option(
        DEFAULT_TIMEOUT,
        "seconds one call may take before its verdict is timed_out",
        group=RUNNING,
        valid=positive_seconds,
        needs="a finite number of seconds > 0",
        parse=float,
        metavar="SECONDS",
        judged=True,
    )
    accumulation: str | None = option(
        None,
        "declared accumulation of sums and matmuls at dtype bfloat16 / float16 (default "
        "float32, as PyTorch and JAX; the dtype itself for numpy's sums)",
        group=NUMERICS,
        choices=("float32", "bfloat16", "float16"),
        judged=True,
    )
    tile: tuple[int, ...] = option(
        (),
        "block (tile) sizes T of the candidate's kernels: the run's shapes gain sides T-1, T, "
        "T+1 and 2T+1 in each of N, I, O (the others 2 and 3), where a partial block shows, and "
        "the diagnoses name a partial block of T",
        group=WHAT,
        cli_help="block (tile) sizes T of the candidate's kernels, comma-separated: the run's "
        "shapes gain sides T-1, T, T+1 and 2T+1 in each of N, I, O (the others 2 and 3), where "
        "a partial block shows, and the diagnoses name a partial block of T (default: none)",
        valid=_tiles,
        needs=f"a tuple of block sizes from 2 to {MAX_TILE}",
        parse=parse_tiles,
        metavar="T[,T...]",
        judged=True,
        described_when_given=True,
        normalize=_as_tiles,
    )
    bias: bool | None = option(
        None,
        "the layer has a bias b (O,): forward(x, w, b), grad_b(dL_do), step(x, w, b, target, "
        "lr) (default: when the candidate's forward takes three parameters or its step five)",
        group=WHAT,
        valid=lambda value: value is None or isinstance(value, bool),
        needs="True, False or None",
        flag="--bias",
        judged=True,
        described_when_given=True,
    )
    deterministic: bool = option(
        False,
        "two calls on one input must return bit-identical results, as under PyTorch's "
        "torch.use_deterministic_algorithms(True) (default: they may differ within the error "
        "bound, as sums in a per-call order do)",
        judged=True,
        described_when_given=True,
        group=NUMERICS,
        cli_help="two calls on one input must return bit-identical results, as under PyTorch's "
        "deterministic algorithms (default: they may differ within the error bound, as sums in "
        "a per-call order do)",
    )
    multiple_of: int | str | None = option(
        None,
        "the sides the candidate requires: every N, I and O a multiple of M (a kernel's block), "
        "or per side N=M,I=M,O=M; only shapes that meet it are checked, each side at several "
        "multiples (default: any side)",
        valid=_multiples,
        needs=f"a multiple M (up to 128) or sides like 'N=128,I=32' whose product N*I*O is "
        f"at most {MAX_MULTIPLE_SIZE}, or None",
        parse=parse_multiples,
        metavar="M|N=M,I=M,O=M",
        judged=True,
        described_when_given=True,
        group=WHAT,
    )
    reduction: str | None = option(
        None,
        "how the loss reduces its N*O terms, in PyTorch's words: sum (the seed's L = sum "
        "|output - target|), mean (divided by N*O) or batchmean (the sum divided by N); "
        "loss_grad and every gradient of the step are divided alike (None: a framework "
        "module's loss where its adapter reads one, else sum)",
        group=WHAT,
        cli_help="how the loss reduces its N*O terms, in PyTorch's words: sum (the seed's L = "
        "sum |output - target|), mean (divided by N*O) or batchmean (the sum divided by N); "
        "loss_grad and every gradient of the step are divided alike (default: sum, or what a "
        "framework module's loss declares)",
        choices=tuple(bounds.REDUCTIONS),
        judged=True,
        described_when_given=True,
    )
    max_examples: int = option(
        100,
        "Hypothesis examples per check (before shrinking)",
        group=RUNNING,
        valid=_count,
        needs="an int >= 1",
        parse=int,
        metavar="N",
    )
    seed: int | None = option(
        0,
        "random seed of the search (None: a fresh one each run)",
        group=RUNNING,
        cli_help="random seed of the search: the same seed draws the same cases",
        valid=lambda value: value is None or _int(value),
        needs="an int or None",
        parse=int,
        metavar="S",
    )
    functions: Sequence[str] | None = option(
        None,
        f"run only these checks, among {', '.join(CHECK_NAMES)}; a check named here that does "
        "not apply is reported as skipped (None: every check the implementation allows)",
        group=WHAT,
        cli_help=f"run only these checks, comma-separated, among {', '.join(CHECK_NAMES)}; a "
        "check named here that does not apply is reported as skipped (default: every check "
        "the implementation allows)",
        valid=_checks,
        needs=f"a non-empty list of names among {','.join(CHECK_NAMES)}",
        parse=_names,
        metavar="NAMES",
        offered=(PYTHON, CLI),
    )
    repro_dir: str | Path | None = option(
        DEFAULT_REPRO_DIR,
        "where each failure writes its reproducer (None: nowhere)",
        group=OUTPUT,
        cli_help="the folder where each failure writes its reproducer",
        valid=lambda value: value is None or isinstance(value, (str, Path)),
        needs="a folder path or None",
        parse=Path,
        metavar="DIR",
    )
    import_timeout: float = option(
        DEFAULT_IMPORT_TIMEOUT,
        "seconds a worker may take to load the implementation",
        group=RUNNING,
        valid=positive_seconds,
        needs="a finite number of seconds > 0",
        parse=float,
        metavar="SECONDS",
    )
    memory_limit: int | None = option(
        None,
        "bytes of address space a worker may use (RLIMIT_AS; None: no limit)",
        group=RUNNING,
        cli_help="address space a worker may use, as 4G or 512M (RLIMIT_AS; default: no limit)",
        valid=lambda value: value is None or _count(value),
        needs="a positive number of bytes or None",
        parse=parse_size,
        metavar="SIZE",
    )
    jobs: int | None = option(
        None,
        "worker processes, and checks run at once (default: $CROSSCHECK_JOBS or one per "
        "core); each function of the candidate is called on one worker, and the verdicts are "
        "the same for any number",
        group=RUNNING,
        valid=lambda value: value is None or _count(value),
        needs="a positive int or None",
        parse=int,
        metavar="N",
        short="-j",
        offered=(PYTHON, CLI),
    )
    isolate: bool | None = option(
        None,
        "False: call the implementation in this process, for pdb (it can affect the verdict); "
        "True: in a worker process, or an OptionError; None: in a worker whenever the "
        "implementation can be loaded again there",
        group=RUNNING,
        cli_help="call the implementation in this process, for pdb (it can affect the "
        "verdict); without it, in a worker process whenever the implementation can be loaded "
        "again there",
        choices=(True, False),  # type: ignore[arg-type]  # bools: membership is the check
        flag="--in-process",
        flag_value=False,
        offered=(PYTHON, CLI, MARKER),
    )
    progress: Callable[[str, int, int], None] | None = option(
        None,
        "called as progress(check, examples_so_far, max_examples)",
        valid=lambda value: value is None or callable(value),
        needs="a callable or None",
        offered=(PYTHON,),
    )
    command: str | Sequence[str] | None = option(
        None,
        "instead of an implementation, an executable that speaks the worker protocol (a "
        "string split like a shell would, or a list of words)",
        group=WHAT,
        cli_help="instead of SPEC, an executable that speaks the worker protocol (one "
        "argument, split as a shell does)",
        valid=lambda value: value is None or isinstance(value, (str, Sequence)),
        needs="a command line (a string or a list of words) or None",
        metavar="CMD",
        offered=(PYTHON, CLI),
    )
    json: Path | None = option(
        None,
        "write a machine-readable report here",
        group=OUTPUT,
        parse=Path,
        metavar="PATH",
        offered=(CLI,),
    )
    junit_xml: Path | None = option(
        None,
        "write a JUnit XML report here (one testcase per check), for CI",
        group=OUTPUT,
        parse=Path,
        metavar="PATH",
        offered=(CLI,),
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            normalize = field.metadata["normalize"]
            if normalize is not None:
                # The one spelling of the value (frozen: set once, here, before validation).
                object.__setattr__(self, field.name, normalize(getattr(self, field.name)))
        for field in dataclasses.fields(self):
            valid = field.metadata["valid"]
            value = getattr(self, field.name)
            if valid is not None and not valid(value):
                raise OptionError(field.name, f"must be {field.metadata['needs']}, got {value!r}")
        # The rules between options; each option's own range is its declaration's.
        if self.exact and self.dtype not in ("float32", "float64"):
            raise OptionError("exact", f"mode needs dtype float32 or float64, got {self.dtype}")
        if self.exact and self.matmul_precision != "float32":
            raise OptionError("exact", "mode is bitwise: it takes no reduced matmul_precision")
        if self.exact and self.loss_reduction != "sum":
            raise OptionError(
                "exact", f"mode is bitwise: it takes the sum, not reduction {self.reduction}"
            )
        # The accumulation and the matmul precision against the dtype (bounds names the
        # accepted ones).
        for name, declared in (
            ("accumulation", self._accumulation),
            ("matmul_precision", self.arithmetic),
        ):
            try:
                declared()
            except ValueError as err:
                raise OptionError(name, str(err).removeprefix(f"{name} ")) from None

    def _accumulation(self) -> str | None:
        return bounds.accumulation_of(self.dtype, self.accumulation)

    @classmethod
    def given(cls, where: str, surface: str, values: Mapping[str, Any]) -> Settings:
        """The Settings of ``values``, keywords of ``surface`` (``where`` names the caller in
        the TypeError an unknown keyword gets, as Python's own)."""
        known = offered(surface)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(
                f"{where} got unexpected keyword argument(s) {unknown}; its options: "
                f"{', '.join(known)}"
            )
        return cls(**values)

    @property
    def tie(self) -> float | None:
        """The pinned value of dL_do at a tie, or None (any value in [-1, 1])."""
        if self.tie_convention is None:
            return None
        return bounds.TIE_CONVENTIONS[self.tie_convention]

    @property
    def loss_reduction(self) -> str:
        """The reduction the loss is judged under (``bounds.REDUCTIONS``): the declared one, or
        the seed's sum where none is."""
        return self.reduction or "sum"

    @property
    def parameters(self) -> tuple[str, ...]:
        """The layer's parameters, as the ``bias`` option says: ``("w",)`` or ``("w", "b")``
        (the judges, the cases and the probes read the layer from here)."""
        return names_for(self.bias)

    @property
    def multiples(self) -> tuple[int, int, int]:
        """The multiple each side of a checked shape is, ``(N, I, O)`` (``multiple_of``)."""
        return sides_of(self.multiple_of)

    def arithmetic(self) -> bounds.Arithmetic:
        """The arithmetic the candidate is held to (``bounds.arithmetic``)."""
        return bounds.arithmetic(
            self.dtype,
            self.matmul_precision,  # type: ignore[arg-type]
            accumulate=bounds.accumulation_of(self.dtype, self.accumulation),
        )

    def described(self) -> dict[str, Any]:
        """The ``judged`` options, as a report and a reproducer store them (an option
        ``described_when_given`` only where it is not at its default)."""
        found = {}
        for field in declarations():
            meta = field.metadata
            value = getattr(self, field.name)
            if meta["judged"] and not (meta["described_when_given"] and value == field.default):
                found[field.name] = value
        return found


def declarations() -> tuple[dataclasses.Field, ...]:
    """Every option's field, in the order they are declared."""
    return dataclasses.fields(Settings)


def offered(surface: str) -> tuple[str, ...]:
    """The names of the options offered on ``surface`` (``PYTHON``, ``CLI``, ``PYTEST``,
    ``MARKER``), in declaration order."""
    return tuple(f.name for f in declarations() if surface in f.metadata["offered"])


def spelling(name: str) -> str:
    """How the command line spells option ``name``: ``--max-examples``, ``--in-process``."""
    field = next(f for f in declarations() if f.name == name)
    return field.metadata["flag"] or "--" + name.replace("_", "-")
