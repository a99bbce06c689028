"""The layer's parameters as one tree, as optax holds a model's: ``{"w": w}`` for the seed's
layer, ``{"w": w, "b": b}`` for the layer with a bias (w ``(I, O)``, b ``(O,)``).

Code that works on the parameters iterates over the tree (a dict: ``jax.tree_util`` in JAX,
plain dict iteration in numpy) and names each result after its parameter (``dL_dw``, ``b_new``);
what differs between parameters is an entry per parameter (how it enters the output, its
gradient), not a test for the bias. The tree is in call order, w then b, as
``forward(x, w, b)`` and ``step(x, w, b, target, lr)`` take them.

The contract is read in two places only: ``parameters`` turns the public functions' optional
``b`` into the tree, and ``names_for`` turns a ``bias`` flag (an option, a strategy's keyword)
into the parameters' names. Everything here is plain numpy: the error model and the oracle's
judges use it as the JAX layer does.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

#: Every parameter the layer may have, in call order, with its axes (``I``, ``O`` as in
#: ``x (N, I)``, ``target (N, O)``). O is the last axis of each: a model axis splits them alike.
AXES: dict[str, tuple[str, ...]] = {"w": ("I", "O"), "b": ("O",)}

T = TypeVar("T")

#: A parameter tree: ``{"w": w}`` or ``{"w": w, "b": b}``, in call order.
Params = dict[str, T]


def parameters(w: T, b: T | None = None) -> dict[str, T]:
    """The tree of ``(w, b=None)``: ``{"w": w}``, or ``{"w": w, "b": b}`` where a bias is given
    (the public functions' optional ``b``, read here once)."""
    return {"w": w} if b is None else {"w": w, "b": b}


def names_for(bias: bool | None) -> tuple[str, ...]:
    """The parameters' names of the layer without (``("w",)``) or with a bias (``("w", "b")``):
    where a ``bias`` flag (an option, a keyword) says which layer is meant."""
    return ("w", "b") if bias else ("w",)


def ordered(params: Mapping[str, T]) -> dict[str, T]:
    """``params`` in call order (w, then b), as the results that follow it are laid out; a
    ValueError for a tree without w or with a parameter the layer does not have.

    ``jax.tree`` functions rebuild a dict with its keys sorted (b before w): a tree that has
    been through one is read by name, or through this."""
    unknown = sorted(set(params) - set(AXES))
    if unknown or "w" not in params:
        raise ValueError(
            f"params must be {{'w': w}} or {{'w': w, 'b': b}}, got the keys {sorted(params)}"
        )
    return {name: params[name] for name in AXES if name in params}


def of(arrays: Mapping[str, T]) -> dict[str, T]:
    """The parameters among a call's named arrays (a case's ``x, w, b, target``), in call order."""
    return {name: arrays[name] for name in AXES if name in arrays}


def gradient_name(name: str) -> str:
    """``dL_dw`` for ``w``: the name of a parameter's gradient in the contract's results."""
    return f"dL_d{name}"


def updated_name(name: str) -> str:
    """``w_new`` for ``w``: the name of a parameter after one SGD step."""
    return f"{name}_new"


def step_fields(names: tuple[str, ...] | Mapping[str, Any]) -> tuple[str, ...]:
    """A step's results for these parameters: ``(loss, dL_dx, dL_dw, w_new)``, or with a bias
    ``(loss, dL_dx, dL_dw, dL_db, w_new, b_new)`` (every gradient, then every update)."""
    return (
        "loss",
        "dL_dx",
        *(gradient_name(name) for name in names),
        *(updated_name(name) for name in names),
    )


def expected_shape(name: str, w_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape parameter ``name`` must have beside a w of ``w_shape`` ``(I, O)``."""
    sizes = dict(zip(AXES["w"], w_shape, strict=True))
    return tuple(sizes[axis] for axis in AXES[name])


def check_shape(name: str, shape: tuple[int, ...], w_shape: tuple[int, ...]) -> None:
    """A ValueError unless parameter ``name`` has its shape beside w (b ``(O,)``), naming both
    shapes; w itself always passes (its checks against x are the caller's)."""
    expected = expected_shape(name, w_shape)
    if tuple(shape) != expected:
        axes = AXES[name]
        spelled = f"({', '.join(axes)}{',' if len(axes) == 1 else ''})"
        sizes = ", ".join(f"{axis} = {size}" for axis, size in zip(axes, expected, strict=True))
        raise ValueError(
            f"{name} has shape {tuple(shape)}, but w has shape {tuple(w_shape)}: {name} must be "
            f"{spelled} with {sizes}"
        )


# --------------------------------------------------------------------------------------------
# Each parameter's part in the layer, in float64 numpy: output = sum of the terms.
# --------------------------------------------------------------------------------------------


def _float64(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


#: How each parameter enters ``output = x @ w + b``: its term, ``(N, O)`` or broadcast to it.
_TERMS = {
    "w": lambda x, w: x @ w,
    "b": lambda x, b: b,
}

#: Each term's magnitude ``sum_i |x[d, i]| |w[i, j]|`` (``|b[j]|``): what rounding scales with.
_MAGNITUDES = {
    "w": lambda x, w: np.abs(x) @ np.abs(w),
    "b": lambda x, b: np.abs(b),
}

#: Each term's magnitude summed over the whole output ``(N, O)``: ``|b|`` counts once per row.
_MASSES = {
    "w": lambda x, w: float((np.abs(x) @ np.abs(w)).sum()),
    "b": lambda x, b: x.shape[0] * float(np.abs(b).sum()),
}

#: Each parameter's gradient for an upstream ``dL_do (N, O)``: ``x.T @ dL_do``, ``dL_do``
#: summed over the batch.
_GRADIENTS = {
    "w": lambda x, dL_do: x.T @ dL_do,
    "b": lambda x, dL_do: dL_do.sum(axis=0),
}


def term(name: str, x: Any, value: Any) -> np.ndarray:
    """Parameter ``name``'s term of the output in float64: ``x @ w`` ``(N, O)``, or ``b``
    ``(O,)`` (broadcast over the batch)."""
    return np.asarray(_TERMS[name](_float64(x), _float64(value)))


def output(x: Any, params: Mapping[str, Any]) -> np.ndarray:
    """``x @ w (+ b)`` in float64, shape ``(N, O)``: the sum of every parameter's ``term``."""
    terms = (term(name, x, value) for name, value in params.items())
    return np.asarray(functools.reduce(operator.add, terms))


def output_magnitude(x: Any, params: Mapping[str, Any]) -> np.ndarray:
    """``|x| @ |w| (+ |b|)`` in float64, shape ``(N, O)``: every output's magnitude."""
    x64 = _float64(x)
    terms = (_MAGNITUDES[name](x64, _float64(value)) for name, value in params.items())
    return np.asarray(functools.reduce(operator.add, terms))


def output_mass(x: Any, name: str, value: Any) -> float:
    """``sum_{d, j}`` of parameter ``name``'s term magnitude: how far ``sum |output|`` can move
    when that parameter moves by ``|value|`` elementwise (``sum |x| @ |dw|``, ``N sum |db|``)."""
    return float(_MASSES[name](_float64(x), _float64(value)))


def gradient(name: str, x: Any, dL_do: Any) -> np.ndarray:
    """Parameter ``name``'s gradient for an upstream ``dL_do (N, O)``, in float64:
    ``x.T @ dL_do`` (I, O) for w, ``sum_d dL_do[d, :]`` (O,) for b."""
    return np.asarray(_GRADIENTS[name](_float64(x), _float64(dL_do)))
