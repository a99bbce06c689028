"""What every adapter shares: the candidate object, the weight layout, the module's checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..bounds import REDUCTIONS
from ..messages import ContractError

#: How a module stores w (I, O): ``out_in`` as its transpose (torch.nn.Linear.weight,
#: eqx.nn.Linear.weight), ``in_out`` as it is (nnx.Linear.kernel).
LAYOUTS = ("out_in", "in_out")


class Adapted:
    """A framework module as the contract's functions: ``forward``, ``loss``, ``loss_grad``,
    ``grad_x``, ``grad_w``, ``update``, ``step`` (and ``asarray`` where the framework needs its
    own arrays), each an attribute, as ``verify.check`` and the worker read any candidate.

    ``__module__`` names the module the adapter was built in, so that a top-level name there
    holding it (``my_model.py:candidate``) is found and loaded again in a worker process.
    ``reduction`` is the loss's (``bounds.REDUCTIONS``), as the adapter read it from the loss it
    computes with; ``notes`` say what the adapter took from the module for the report (its
    loss and that reduction).
    """

    def __init__(
        self,
        label: str,
        functions: dict[str, Callable[..., Any]],
        asarray: Callable[[Any], Any] | None,
        home: str | None,
        *,
        reduction: str = "sum",
        notes: tuple[str, ...] = (),
    ) -> None:
        self.label = label
        self.reduction = reduction
        self.notes = notes
        for name, function in functions.items():
            setattr(self, name, function)
        if asarray is not None:
            self.asarray = asarray
        if home is not None:
            self.__module__ = home

    def __repr__(self) -> str:
        return f"<crosscheck adapter of {self.label}>"


def stored(layout: str) -> Callable[[Any], Any]:
    """w (I, O) -> the module's weight, and back again (a transpose is its own inverse)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return (lambda w: w.T) if layout == "out_in" else (lambda w: w)


def check_weight(
    adapter: str,
    what: str,
    shape: Sequence[int],
    features: tuple[Any, Any],
    layout: str,
) -> None:
    """A ContractError unless ``shape`` is a matrix in ``layout`` for (in, out) = ``features``."""
    stored(layout)  # names the layouts when wrong
    if len(shape) != 2:
        raise ContractError(
            f"{adapter}: {what} has shape {tuple(shape)}, but the layer's weight is a matrix "
            "(2 dims)"
        )
    fan_in, fan_out = features
    wanted = (fan_out, fan_in) if layout == "out_in" else (fan_in, fan_out)
    known = all(isinstance(n, int) for n in wanted)
    if known and tuple(shape) != wanted:
        order = "(out_features, in_features)" if layout == "out_in" else "(in, out)"
        raise ContractError(
            f"{adapter}: {what} has shape {tuple(shape)}, but layout={layout!r} needs "
            f"{order} = {wanted}: is the weight stored transposed?"
        )


def weight_and_bias(adapter: str, names: Sequence[str], weight: str, bias: str) -> bool:
    """Whether the module has a bias besides its weight (its default: ``nn.Linear(3, 4)``), or
    a ContractError naming any other parameter: the contract's layer is ``x @ w (+ b)``."""
    if weight not in names:
        raise ContractError(f"{adapter}: the module has no parameter {weight!r}; got {names}")
    others = [name for name in names if name not in (weight, bias)]
    if others:
        raise ContractError(
            f"{adapter}: the module has parameters {others} besides {weight!r} and {bias!r}; "
            "the contract's layer is output = x @ w + b (or x @ w)"
        )
    return bias in names


def check_bias(adapter: str, what: str, shape: Sequence[int], out_features: Any) -> None:
    """A ContractError unless ``shape`` is the bias's (O,)."""
    known = isinstance(out_features, int)
    if len(shape) != 1 or (known and tuple(shape) != (out_features,)):
        wanted = f"({out_features},)" if known else "(O,)"
        raise ContractError(
            f"{adapter}: {what} has shape {tuple(shape)}, but the layer's bias is {wanted}"
        )


#: The batch a loss is measured on when it declares no reduction: ones (N, O) = (2, 3) against
#: zeros, whose six terms of 1 give 6 for a sum, 1 for a mean over N*O, 3 for batchmean.
PROBE = (2, 3)


def measured_reduction(value: float) -> str | None:
    """The reduction whose loss of the ``PROBE`` batch is ``value`` (``L = 6 / D``), or None."""
    n, o = PROBE
    for name, reduction in REDUCTIONS.items():
        if math.isclose(value, n * o / reduction.divisor(n, o), rel_tol=1e-3):
            return name
    return None


def measure_reduction(source: str, loss_of_probe: Callable[[], Any]) -> tuple[str, tuple[str, ...]]:
    """The reduction of a loss (``source``) whose loss of the ``PROBE`` batch ``loss_of_probe``
    computes, and the note saying how it was read; the seed's sum, noted as unread, where the
    value is no reduction's or the call raises."""
    try:
        value: Any = float(loss_of_probe())
    except Exception as err:  # a loss that cannot be measured is noted
        value = f"an error ({type(err).__name__})"
    measured = measured_reduction(value) if isinstance(value, float) else None
    if measured is None:
        return "sum", (unread_note(source, value),)
    how = f"measured (on ones {PROBE} against zeros it gives {value:g})"
    return measured, (loss_note(source, measured, how),)


def known_reduction(adapter: str, word: Any, source: str) -> str:
    """A loss's own word for its reduction (PyTorch's ``reduction=``) as one of
    ``bounds.REDUCTIONS``, or a ContractError naming those (``none`` is no scalar loss)."""
    if word not in REDUCTIONS:
        raise ContractError(
            f"{adapter}: {source} has reduction={word!r}, but the contract's loss is a scalar "
            f"reduced by one of {', '.join(REDUCTIONS)}"
        )
    return str(word)


def loss_note(source: str, reduction: str, how: str) -> str:
    """The adapter's note on the loss it took (``source``) and the reduction it read (``how``)."""
    words = REDUCTIONS[reduction].words
    return (
        f"the loss is {source}, {how}: judged as {words} (reduction {reduction}; "
        "--reduction overrules)"
    )


def unread_note(source: str, value: Any) -> str:
    """The adapter's note on a loss whose reduction it could not read."""
    n, o = PROBE
    return (
        f"the loss is {source}: its reduction could not be read (on ones ({n}, {o}) against "
        f"zeros it gives {value}; a sum gives 6, a mean 1): judged as the seed's sum unless "
        "--reduction declares another"
    )
