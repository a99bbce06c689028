"""The contract an implementation fulfils: which functions, their arguments and their results.

An implementation provides any subset of::

    forward(x, w) -> output                  loss(output, target) -> L   (or l1_loss)
    loss_grad(output, target) -> dL_do       grad_x(dL_do, w) -> dL_dx
    grad_w(x, dL_do) -> dL_dw                update(w, dL_dw, lr) -> w_new
    step(x, w, target, lr) -> (loss, dL_dx, dL_dw, w_new)

A layer with a bias b of shape ``(O,)`` (``BIAS_FUNCTIONS``) changes two of them and adds one::

    forward(x, w, b) -> output               output = x @ w + b
    grad_b(dL_do) -> dL_db                   dL_do summed over the batch, shape (O,)
    step(x, w, b, target, lr) -> (loss, dL_dx, dL_dw, dL_db, w_new, b_new)

and ``update`` is the same function for b: ``update(b, dL_db, lr) -> b_new`` (``BIAS_UPDATE``).
A candidate is "with bias" when its forward takes three parameters or its step five
(``_loading``), or the user says so (the ``bias`` option).

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
        Signature("grad_b", ("dL_do",), results=("dL_db",)),
        Signature("update", ("w", "dL_dw"), takes_lr=True, results=("w_new",)),
        Signature(
            "step", ("x", "w", "target"), takes_lr=True, results=reference.StepResult._fields
        ),
    )
}

#: Every check the oracle runs, in the order they run and are reported: one per function of the
#: contract, then the two that compose them (``judging._checks.CHECKS`` holds their records).
CHECK_NAMES: tuple[str, ...] = (*FUNCTIONS, "identities", "consistency")

#: The functions whose call the bias changes, as the layer with a bias calls them.
BIAS_FUNCTIONS: dict[str, Signature] = {
    "forward": Signature("forward", ("x", "w", "b"), results=("output",)),
    "step": Signature(
        "step", ("x", "w", "b", "target"), takes_lr=True, results=reference.BiasStepResult._fields
    ),
}

#: ``update`` on the bias: the same function, 1-D parameters.
BIAS_UPDATE = Signature("update", ("b", "dL_db"), takes_lr=True, results=("b_new",))

#: ``update`` on each parameter, by its name in the parameter tree (``verify._params``).
UPDATES: dict[str, Signature] = {"w": FUNCTIONS["update"], "b": BIAS_UPDATE}

#: The functions of one parameter alone: a check of one applies where the layer has it.
PARAMETER_OF: dict[str, str] = {"grad_w": "w", "grad_b": "b"}

#: Every function as each layer calls it, by the layer's parameters (``Settings.parameters``).
_LAYERS: dict[tuple[str, ...], dict[str, Signature]] = {
    ("w",): FUNCTIONS,
    ("w", "b"): {**FUNCTIONS, **BIAS_FUNCTIONS},
}


def signature(function: str, parameters: tuple[str, ...]) -> Signature:
    """How ``function`` is called on the layer with these parameters (``("w",)``, or
    ``("w", "b")``: forward and step take b after w)."""
    return _LAYERS[parameters][function]


def signature_for(function: str, arguments: tuple[str, ...]) -> Signature:
    """The signature a call of ``function`` with these named arrays follows (a case's)."""
    for candidate in (FUNCTIONS.get(function), BIAS_FUNCTIONS.get(function), BIAS_UPDATE):
        if (
            candidate is not None
            and candidate.name == function
            and candidate.arguments == arguments
        ):
            return candidate
    return FUNCTIONS[function]


def signature_by_count(function: str, count: int) -> Signature:
    """The signature a call of ``function`` with ``count`` arguments (lr included) follows: the
    bias adds one argument to forward and step, which is how a worker tells them apart."""
    plain = FUNCTIONS[function]
    biased = BIAS_FUNCTIONS.get(function)
    if biased is not None and count == len(biased.arguments) + biased.takes_lr:
        return biased
    return plain


#: The axes of every array the contract passes: N = num_data, I = input_features,
#: O = output_features.
AXES: dict[str, tuple[str, ...]] = {
    "x": ("N", "I"),
    "w": ("I", "O"),
    "b": ("O",),
    "target": ("N", "O"),
    "output": ("N", "O"),
    "dL_do": ("N", "O"),
    "dL_dw": ("I", "O"),
    "dL_db": ("O",),
}
