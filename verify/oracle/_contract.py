"""The contract an implementation fulfils: which functions, their arguments and their results.

An implementation provides any subset of::

    forward(x, w) -> output                  loss(output, target) -> L   (or l1_loss)
    loss_grad(output, target) -> dL_do       grad_x(dL_do, w) -> dL_dx
    grad_w(x, dL_do) -> dL_dw                update(w, dL_dw, lr) -> w_new
    step(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)

Arrays arrive in call order, ``lr`` (a Python float) last where a function takes it.
"""

from __future__ import annotations

from typing import NamedTuple

import reference


class Signature(NamedTuple):
    """How something is called: its array arguments in order, whether ``lr`` follows, the names
    of its results, and other names an implementation may give it."""

    name: str
    arguments: tuple[str, ...]
    takes_lr: bool = False
    results: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def spellings(self) -> tuple[str, ...]:
        """The attribute names that provide it: its name, then its aliases."""
        return (self.name, *self.aliases)


#: The contract's functions, in the order they are checked.
FUNCTIONS: dict[str, Signature] = {
    signature.name: signature
    for signature in (
        Signature("forward", ("x", "w"), results=("output",)),
        Signature("loss", ("output", "target"), results=("L",), aliases=("l1_loss",)),
        Signature("loss_grad", ("output", "target"), results=("dL_do",)),
        Signature("grad_x", ("dL_do", "w"), results=("dL_dx",)),
        Signature("grad_w", ("x", "dL_do"), results=("dL_dw",)),
        Signature("update", ("w", "dL_dw"), takes_lr=True, results=("w_new",)),
        Signature(
            "step", ("x", "w", "target"), takes_lr=True, results=reference.StepResult._fields
        ),
    )
}

#: The axes of every array the contract passes: N = num_data, I = input_features,
#: O = output_features.
AXES: dict[str, tuple[str, str]] = {
    "x": ("N", "I"),
    "w": ("I", "O"),
    "target": ("N", "O"),
    "output": ("N", "O"),
    "dL_do": ("N", "O"),
    "dL_dw": ("I", "O"),
}
