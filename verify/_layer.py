"""The dense layer, L1 loss and SGD step hand-written in JAX (no autodiff), jitted.

Same names and signatures as ``reference``. Every matmul takes ``precision``, default
``"highest"``: JAX's DEFAULT is one bfloat16 pass on TPU and TF32 on recent NVIDIA GPUs, so
without it "float32" would not mean float32 on every backend. ``precision`` is static (one
compile per setting); ``lr`` is traced (no recompile per learning rate).

The products are written as ``lax.dot_general`` contractions rather than ``w.T`` / ``x.T`` so
that XLA contracts along the stored axes and never materialises a transpose.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, Float

import reference

from ._inputs import LrChecked, StepOf, learning_rate, real
from ._params import AXES, Params, check_shape, gradient_name, parameters, updated_name
from .bounds import TIE_CONVENTIONS

#: Accepted spellings of matmul precision: a ``lax.Precision`` or its name.
Precision = lax.Precision | str | None

DEFAULT_PRECISION = "highest"

#: The hand-written layer's value of dL_do at a tie: the notebook's -1.
TIE_CONVENTION = TIE_CONVENTIONS["seed"]


class StepResult(NamedTuple):
    """What one SGD step produces: ``(loss, dL_dx, dL_dw, w_new)``."""

    loss: Float[Array, ""]
    dL_dx: Float[Array, "N I"]
    dL_dw: Float[Array, "I O"]
    w_new: Float[Array, "I O"]


class BiasStepResult(NamedTuple):
    """What one SGD step of the layer with a bias produces:
    ``(loss, dL_dx, dL_dw, dL_db, w_new, b_new)``."""

    loss: Float[Array, ""]
    dL_dx: Float[Array, "N I"]
    dL_dw: Float[Array, "I O"]
    dL_db: Float[Array, " O"]
    w_new: Float[Array, "I O"]
    b_new: Float[Array, " O"]


def _check_matrix(name: str, value: ArrayLike, meaning: str) -> None:
    if jnp.ndim(value) != 2:
        raise ValueError(f"{name} must be a 2-D array {meaning}, got shape {jnp.shape(value)}")


def _check_dims(name: str, shape: tuple[int, ...], axis: int, size: int, why: str) -> None:
    # Shapes are static under jit, so these checks run once, at trace time, and cost nothing after.
    if shape[axis] != size:
        raise ValueError(f"{name} has shape {shape}, but {why}")


def _contract(a, b, a_axis: int, b_axis: int, precision: Precision) -> Array:
    """``sum_k a[.., k] * b[k, ..]`` over ``a``'s axis ``a_axis`` and ``b``'s ``b_axis``."""
    return lax.dot_general(
        a,
        b,
        dimension_numbers=(((a_axis,), (b_axis,)), ((), ())),
        precision=lax.Precision(precision) if isinstance(precision, str) else precision,
    )


@partial(jax.jit, static_argnames="precision")
def forward(
    x: Float[ArrayLike, "N I"],
    w: Float[ArrayLike, "I O"],
    b: Float[ArrayLike, " O"] | None = None,
    *,
    precision: Precision = DEFAULT_PRECISION,
) -> Float[Array, "N O"]:
    """``output = x @ w`` (``+ b``): ``output[d, j] = sum_i x[d, i] * w[i, j] + b[j]``.

    Args:
      x: data, shape ``(N, I)``.
      w: weights, shape ``(I, O)``.
      b: bias, shape ``(O,)`` (broadcast over the batch), or None for the layer without one.
      precision: matmul precision (``"highest"``: true float32 on every backend).

    Returns:
      ``output``, shape ``(N, O)``.
    """
    return _output(x, parameters(w, b), precision)


def _output(x: ArrayLike, params: Params[ArrayLike], precision: Precision) -> Array:
    """``forward`` on the parameter tree: the sum of each parameter's term (``_TERMS``)."""
    w = params["w"]
    _check_matrix("x", x, "(N, I)")
    _check_matrix("w", w, "(I, O)")
    _check_dims(
        "w", jnp.shape(w), 0, jnp.shape(x)[1], f"x has shape {jnp.shape(x)}: w must be (I, O)"
    )
    for name, value in params.items():
        check_shape(name, jnp.shape(value), jnp.shape(w))
    x, *values = real(x=x, **params)
    terms = (_TERMS[name](x, value, precision) for name, value in zip(params, values, strict=True))
    return functools.reduce(operator.add, terms)


#: How each parameter enters the output: ``x @ w``, and b broadcast over the batch, written
#: out as ``b[None, :]`` (rank promotion may be an error).
_TERMS: dict[str, Callable[[Array, Array, Precision], Array]] = {
    "w": lambda x, w, precision: _contract(x, w, 1, 0, precision),
    "b": lambda x, b, precision: b[None, :],
}


@jax.jit
def l1_loss(output: Float[ArrayLike, "N O"], target: Float[ArrayLike, "N O"]) -> Float[Array, ""]:
    """``L = sum_{d, j} |output[d, j] - target[d, j]|``.

    Args:
      output: shape ``(N, O)``.
      target: the notebook's ``true_value``, shape ``(N, O)``.

    Returns:
      ``L``, a scalar of the inputs' dtype.
    """
    _check_same_shape(output, target)
    output, target = real(output=output, target=target)
    return jnp.sum(jnp.abs(output - target))


@jax.jit
def loss_grad(
    output: Float[ArrayLike, "N O"], target: Float[ArrayLike, "N O"]
) -> Float[Array, "N O"]:
    """``dL_do = +1 where output > target, -1 otherwise`` (the notebook's ``(o > t) * 2 - 1``).

    At a tie the notebook's -1 (any value in [-1, 1] is a valid subgradient). NaN in
    ``output - target`` propagates as NaN rather than taking the tie's -1, so a NaN upstream of
    the loss cannot hide behind a finite gradient.

    Args:
      output: shape ``(N, O)``.
      target: shape ``(N, O)``.

    Returns:
      ``dL_do``, shape ``(N, O)``, values in {-1, +1} (NaN where the difference is NaN).
    """
    _check_same_shape(output, target)
    output, target = real(output=output, target=target)
    difference = output - target
    one = jnp.ones_like(difference)
    signs = jnp.where(difference > 0, one, -one)
    return jnp.where(jnp.isnan(difference), difference, signs)


@partial(jax.jit, static_argnames="precision")
def grad_x(
    dL_do: Float[ArrayLike, "N O"],
    w: Float[ArrayLike, "I O"],
    *,
    precision: Precision = DEFAULT_PRECISION,
) -> Float[Array, "N I"]:
    """``dL_dx = dL_do @ w.T``: ``dL_dx[d, i] = sum_j dL_do[d, j] * w[i, j]``.

    ``dL_do`` may be any real upstream gradient, not only +-1.

    Args:
      dL_do: upstream gradient, shape ``(N, O)``.
      w: weights, shape ``(I, O)``.

    Returns:
      ``dL_dx``, shape ``(N, I)``.
    """
    _check_matrix("dL_do", dL_do, "(N, O)")
    _check_matrix("w", w, "(I, O)")
    _check_dims(
        "w",
        jnp.shape(w),
        1,
        jnp.shape(dL_do)[1],
        f"dL_do has shape {jnp.shape(dL_do)}: w must be (I, O)",
    )
    dL_do, w = real(dL_do=dL_do, w=w)
    return _contract(dL_do, w, 1, 1, precision)


@partial(jax.jit, static_argnames="precision")
def grad_w(
    x: Float[ArrayLike, "N I"],
    dL_do: Float[ArrayLike, "N O"],
    *,
    precision: Precision = DEFAULT_PRECISION,
) -> Float[Array, "I O"]:
    """``dL_dw = x.T @ dL_do``: ``dL_dw[i, j] = sum_d x[d, i] * dL_do[d, j]``.

    ``dL_do`` may be any real upstream gradient, not only +-1.

    Args:
      x: data, shape ``(N, I)``.
      dL_do: upstream gradient, shape ``(N, O)``.

    Returns:
      ``dL_dw``, shape ``(I, O)``.
    """
    _check_matrix("x", x, "(N, I)")
    _check_matrix("dL_do", dL_do, "(N, O)")
    _check_dims(
        "dL_do",
        jnp.shape(dL_do),
        0,
        jnp.shape(x)[0],
        f"x has shape {jnp.shape(x)}: dL_do must be (N, O)",
    )
    x, dL_do = real(x=x, dL_do=dL_do)
    return _contract(x, dL_do, 0, 0, precision)


@jax.jit
def grad_b(dL_do: Float[ArrayLike, "N O"]) -> Float[Array, " O"]:
    """``dL_db = dL_do`` summed over the batch: ``dL_db[j] = sum_d dL_do[d, j]``.

    b[j] moves every example's output j alike, so its gradient is the sum (not the mean) of
    their upstream gradients. ``dL_do`` may be any real upstream gradient, not only +-1.

    Args:
      dL_do: upstream gradient, shape ``(N, O)``.

    Returns:
      ``dL_db``, shape ``(O,)``.
    """
    _check_matrix("dL_do", dL_do, "(N, O)")
    (dL_do,) = real(dL_do=dL_do)
    return jnp.sum(dL_do, axis=0)


@jax.jit
def _update(
    w: Float[ArrayLike, "I O"], dL_dw: Float[ArrayLike, "I O"], lr: ArrayLike
) -> Float[Array, "I O"]:
    """``w_new = w - lr * dL_dw`` (one SGD step; the notebook's lr is 0.01).

    The same function updates the bias: ``b_new = update(b, dL_db, lr)``, shape ``(O,)``.

    Args:
      w: weights, shape ``(I, O)`` (or a bias, ``(O,)``).
      dL_dw: gradient, the shape of ``w``.
      lr: learning rate, a finite real scalar (traced: changing it does not recompile).

    Returns:
      ``w_new``, the shape of ``w``, the floating dtype of ``w`` and ``dL_dw`` (``_inputs``).
    """
    if jnp.shape(w) != jnp.shape(dL_dw):
        raise ValueError(f"dL_dw has shape {jnp.shape(dL_dw)}, but should match w {jnp.shape(w)}")
    lr = learning_rate(lr)
    w, dL_dw = real(w=w, dL_dw=dL_dw)
    # lr is cast to w's dtype first, as an optimiser holding lr in the parameters' dtype would.
    return w - lr.astype(w.dtype) * dL_dw


update = LrChecked(_update, position=2)


def _check_target(target: ArrayLike, output: Array, **inputs: ArrayLike) -> None:
    """A ValueError unless ``target`` has the output's shape (N, O), naming the inputs' shapes
    (x and every parameter)."""
    if jnp.shape(target) != output.shape:
        given = ", ".join(f"{name}: {jnp.shape(array)}" for name, array in inputs.items())
        raise ValueError(
            f"target has shape {jnp.shape(target)}, but should be (N, O) = {output.shape} [{given}]"
        )


#: Each parameter's gradient from the upstream ``dL_do``: ``x.T @ dL_do`` and its batch sum.
_GRADIENTS: dict[str, Callable[[ArrayLike, Array, Precision], Array]] = {
    "w": lambda x, dL_do, precision: grad_w(x, dL_do, precision=precision),
    "b": lambda x, dL_do, precision: grad_b(dL_do),
}

#: What a step returns, by its parameters' names (``_params.step_fields``).
_RESULTS: dict[tuple[str, ...], type[StepResult] | type[BiasStepResult]] = {
    ("w",): StepResult,
    ("w", "b"): BiasStepResult,
}


def step_result(
    loss: Array, dL_dx: Array, grads: Params[Array], new: Params[Array]
) -> StepResult | BiasStepResult:
    """``StepResult(loss, dL_dx, dL_dw, w_new)`` or ``BiasStepResult(loss, dL_dx, dL_dw, dL_db,
    w_new, b_new)`` from the trees of the gradients and the updated parameters (keys in any
    order, as ``jax.tree`` sorts them)."""
    names = tuple(name for name in AXES if name in grads)
    fields = {gradient_name(name): grads[name] for name in names}
    fields |= {updated_name(name): new[name] for name in names}
    return _RESULTS[names](loss=loss, dL_dx=dL_dx, **fields)


def tree_step(
    x: ArrayLike,
    params: Params[ArrayLike],
    target: ArrayLike,
    lr: ArrayLike,
    precision: Precision = DEFAULT_PRECISION,
) -> StepResult | BiasStepResult:
    """``_step`` on the parameter tree (its body, traced inside it): every parameter's gradient
    from the one ``dL_do``, every parameter updated. The same jitted functions as when called
    one by one, in one order: forward, loss_grad, the gradients, the loss, grad_x, the updates.
    """
    output = forward(x, **params, precision=precision)
    _check_target(target, output, x=x, **params)
    dL_do = loss_grad(output, target)
    grads = {name: _GRADIENTS[name](x, dL_do, precision) for name in params}
    loss = l1_loss(output, target)
    dL_dx = grad_x(dL_do, params["w"], precision=precision)
    new = {name: _update(value, grads[name], lr) for name, value in params.items()}
    return step_result(loss, dL_dx, grads, new)


@partial(jax.jit, static_argnames="precision")
def _step(
    x: Float[ArrayLike, "N I"],
    w: Float[ArrayLike, "I O"],
    *args: ArrayLike,
    precision: Precision = DEFAULT_PRECISION,
) -> StepResult | BiasStepResult:
    """One fused SGD step on ``L = sum |x @ w (+ b) - target|``: ``step(x, w, target, lr)``
    or, with a bias b ``(O,)``, ``step(x, w, b, target, lr)``.

    ``output = x @ w (+ b)``, ``dL_do = sign(output - target)`` (-1 at ties),
    ``dL_dx = dL_do @ w.T``, ``dL_dw = x.T @ dL_do``, ``w_new = w - lr * dL_dw``; with a bias
    ``dL_db = sum_d dL_do[d, :]`` and ``b_new = b - lr * dL_db``. One XLA computation of three
    matmuls (with a bias, and one column sum); b is traced only where it is given, so the
    layer without one compiles to the seed's program.

    Shapes (positional, as the two forms above): x ``(N, I)``, w ``(I, O)``, b ``(O,)``,
    target ``(N, O)``, lr a scalar (traced: no recompile per learning rate); ``precision`` as
    ``forward``'s.

    Returns:
      ``StepResult(loss, dL_dx (N, I), dL_dw (I, O), w_new (I, O))``, or with a bias
      ``BiasStepResult(loss, dL_dx, dL_dw, dL_db (O,), w_new, b_new (O,))``.
    """
    b, target, lr = reference.step_arguments("step", args, {})
    return tree_step(x, parameters(w, b), target, lr, precision)


#: ``step(x, w, target, lr)`` or, with a bias, ``step(x, w, b, target, lr)``:
#: ``StepResult(loss, dL_dx, dL_dw, w_new)`` or ``BiasStepResult(loss, dL_dx, dL_dw, dL_db,
#: w_new, b_new)``; one jitted function, one fused XLA computation per layer (``_step``).
step = StepOf(_step)

#: ``loss`` is the oracle's name for ``l1_loss``; both are provided.
loss = l1_loss


class ChainResult(NamedTuple):
    """Two layers, ``h = x @ w1``, ``output = h @ w2``: the loss and every gradient."""

    loss: Float[Array, ""]
    dL_dx: Float[Array, "N I"]
    dL_dw1: Float[Array, "I H"]
    dL_dh: Float[Array, "N H"]
    dL_dw2: Float[Array, "H O"]


@partial(jax.jit, static_argnames="precision")
def chain(
    x: Float[ArrayLike, "N I"],
    w1: Float[ArrayLike, "I H"],
    w2: Float[ArrayLike, "H O"],
    target: Float[ArrayLike, "N O"],
    *,
    precision: Precision = DEFAULT_PRECISION,
) -> ChainResult:
    """Backpropagation through ``h = x @ w1``, ``output = h @ w2`` (the notebook's closing note).

    ``dL_dh = dL_do @ w2.T`` is the upstream gradient of the first layer:
    ``dL_dw1 = x.T @ dL_dh``, ``dL_dx = dL_dh @ w1.T``.
    """
    x, w1, w2, target = real(x=x, w1=w1, w2=w2, target=target)
    h = forward(x, w1, precision=precision)
    output = forward(h, w2, precision=precision)
    dL_do = loss_grad(output, target)
    dL_dh = grad_x(dL_do, w2, precision=precision)
    return ChainResult(
        loss=l1_loss(output, target),
        dL_dx=grad_x(dL_dh, w1, precision=precision),
        dL_dw1=grad_w(x, dL_dh, precision=precision),
        dL_dh=dL_dh,
        dL_dw2=grad_w(h, dL_do, precision=precision),
    )


def _check_same_shape(output: ArrayLike, target: ArrayLike) -> None:
    if jnp.shape(output) != jnp.shape(target):
        raise ValueError(
            f"target has shape {jnp.shape(target)}, but should match output {jnp.shape(output)}"
        )
