"""``equinox_linear`` and ``flax_linear``: an ``eqx.nn.Linear`` / ``nnx.Linear`` (bias off) and
an optax optimizer as the contract's functions, computed by the framework (the module's call,
``jax.vjp`` / ``jax.value_and_grad`` through it, the optax update), each jitted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..oracle import ContractError
from ._common import Adapted, check_weight, only_weight, stored

#: The contract's loss: the sum of |output - target|, not the mean.
Loss = Callable[[jax.Array, jax.Array], jax.Array]


def _l1_sum(output: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.sum(jnp.abs(output - target))


def _functions(
    model_of: Callable[[jax.Array], Any],
    apply: Callable[[Any, jax.Array], jax.Array],
    weight_of: Callable[[Any], jax.Array],
    optimise: Callable[[Any, Any, Any], Any],
    grads_of: Callable[[Any, jax.Array], Any],
    loss: Loss,
) -> dict[str, Callable[..., Any]]:
    """The seven functions from the framework's pieces: ``model_of(w)`` a module holding w,
    ``apply(model, x)`` its output (N, O), ``weight_of(tree)`` w (I, O) from a module-shaped
    tree, ``grads_of(model, dL_dw)`` the gradient as such a tree, ``optimise(model, grads, lr)``
    the module after one optimizer step."""

    def forward(x: jax.Array, w: jax.Array) -> jax.Array:
        return apply(model_of(w), x)

    def grad_x(dL_do: jax.Array, w: jax.Array) -> jax.Array:
        # A linear layer's Jacobian in x does not depend on x: the VJP at x = 0 is dL_do @ w.T.
        zero = jnp.zeros((dL_do.shape[0], w.shape[0]), w.dtype)
        _, vjp = jax.vjp(lambda x: apply(model_of(w), x), zero)
        return vjp(dL_do)[0]

    def grad_w(x: jax.Array, dL_do: jax.Array) -> jax.Array:
        # ... nor its Jacobian in w on w: the VJP at w = 0 is x.T @ dL_do.
        zero = jnp.zeros((x.shape[1], dL_do.shape[1]), x.dtype)
        _, vjp = jax.vjp(lambda w: apply(model_of(w), x), zero)
        return vjp(dL_do)[0]

    def update(w: jax.Array, dL_dw: jax.Array, lr: jax.Array) -> jax.Array:
        model = model_of(w)
        return weight_of(optimise(model, grads_of(model, dL_dw), lr))

    def step(x: jax.Array, w: jax.Array, target: jax.Array, lr: jax.Array) -> tuple:
        def objective(w: jax.Array, x: jax.Array) -> jax.Array:
            return loss(apply(model_of(w), x), target)

        value, (dL_dw, dL_dx) = jax.value_and_grad(objective, argnums=(0, 1))(w, x)
        model = model_of(w)
        return value, dL_dx, dL_dw, weight_of(optimise(model, grads_of(model, dL_dw), lr))

    functions: dict[str, Callable[..., Any]] = {
        "forward": forward,
        "loss": loss,
        "loss_grad": jax.grad(loss),
        "grad_x": grad_x,
        "grad_w": grad_w,
        "update": update,
        "step": step,
    }
    return {name: jax.jit(function) for name, function in functions.items()}


def equinox_linear(
    module: Any,
    optimizer: Callable[[Any], optax.GradientTransformation] | None,
    loss: Loss | None,
    layout: str,
    home: str | None,
) -> Adapted:
    import equinox as eqx

    name = "equinox_linear"
    if not isinstance(module, eqx.Module):
        raise ContractError(f"{name}: module must be an equinox.Module, got {type(module)!r}")
    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(module, eqx.is_array))
    names = [jax.tree_util.keystr(path).lstrip(".") for path, _ in leaves]
    only_weight(name, names, "weight", "eqx.nn.Linear(in_features, out_features, use_bias=False)")
    features = (getattr(module, "in_features", None), getattr(module, "out_features", None))
    template: Any = module  # an eqx.Module, whose fields the type checker cannot see
    check_weight(name, "module.weight", template.weight.shape, features, layout)
    to_weight = stored(layout)
    transform = optimizer or optax.sgd

    def model_of(w: jax.Array) -> Any:
        return eqx.tree_at(lambda m: m.weight, module, to_weight(w))

    def optimise(model: Any, grads: Any, lr: Any) -> Any:
        tx = transform(lr)
        params = eqx.filter(model, eqx.is_array)
        updates, _ = tx.update(grads, tx.init(params), params)
        return eqx.apply_updates(model, updates)

    functions = _functions(
        model_of,
        apply=lambda model, x: jax.vmap(model)(x),
        weight_of=lambda model: to_weight(model.weight),
        optimise=optimise,
        grads_of=lambda model, dL_dw: eqx.tree_at(lambda m: m.weight, model, to_weight(dL_dw)),
        loss=loss or _l1_sum,
    )
    label = f"{type(module).__name__}{features} with {getattr(transform, '__name__', transform)}"
    return Adapted(label, functions, None, home)


def _value(variable: Any) -> Any:
    """An NNX Variable's array (``get_value`` where ``.value`` is deprecated, Flax 0.12)."""
    return variable.get_value() if hasattr(variable, "get_value") else variable.value


def _set_value(variable: Any, value: Any) -> None:
    if hasattr(variable, "set_value"):
        variable.set_value(value)
    else:
        variable.value = value


def flax_linear(
    module: Any,
    optimizer: Callable[[Any], optax.GradientTransformation] | None,
    loss: Loss | None,
    layout: str,
    home: str | None,
) -> Adapted:
    from flax import nnx

    name = "flax_linear"
    if not isinstance(module, nnx.Module):
        raise ContractError(f"{name}: module must be a flax.nnx.Module, got {type(module)!r}")
    params = nnx.state(module, nnx.Param)
    names = [".".join(str(k) for k in path) for path, _ in nnx.to_flat_state(params)]
    only_weight(name, names, "kernel", "nnx.Linear(in_features, out_features, use_bias=False)")
    features = (getattr(module, "in_features", None), getattr(module, "out_features", None))
    template: Any = module  # an nnx.Module, whose fields the type checker cannot see
    check_weight(name, "module.kernel", _value(template.kernel).shape, features, layout)
    to_weight = stored(layout)
    transform = optimizer or optax.sgd
    graphdef, state = nnx.split(module)

    def model_of(w: jax.Array) -> Any:
        # Fresh Variables, made in the current trace (NNX lets only those be set), so that the
        # user's module is never changed.
        model: Any = nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf, state))
        _set_value(model.kernel, to_weight(w))
        return model

    def optimise(model: Any, grads: Any, lr: Any) -> Any:
        # What nnx.Optimizer(model, tx, wrt=nnx.Param).update(model, grads) does, spelled out
        # with optax so that it holds for every Flax version the extra admits.
        tx = transform(lr)
        params = nnx.state(model, nnx.Param)
        updates, _ = tx.update(grads, tx.init(params), params)
        nnx.update(model, optax.apply_updates(params, updates))
        return model

    functions = _functions(
        model_of,
        apply=lambda model, x: model(x),
        weight_of=lambda model: to_weight(_value(model.kernel)),
        optimise=optimise,
        grads_of=lambda model, dL_dw: nnx.state(model_of(dL_dw), nnx.Param),
        loss=loss or _l1_sum,
    )
    label = f"{type(module).__name__}{features} with {getattr(transform, '__name__', transform)}"
    return Adapted(label, functions, None, home)
