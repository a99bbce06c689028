"""``equinox_linear`` and ``flax_linear``: an ``eqx.nn.Linear`` / ``nnx.Linear`` (with its default
bias, or without one) and an optax optimizer as the contract's functions, computed by the
framework (the module's call, ``jax.vjp`` / ``jax.value_and_grad`` through it, the optax
update), each jitted. A loss given is measured for its reduction (``loss_and_reduction``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..messages import ContractError
from ._common import (
    PROBE,
    Adapted,
    check_bias,
    check_weight,
    measure_reduction,
    stored,
    weight_and_bias,
)

#: The contract's loss: the sum of |output - target|, not the mean.
Loss = Callable[[jax.Array, jax.Array], jax.Array]


def _l1_sum(output: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.sum(jnp.abs(output - target))


def loss_and_reduction(loss: Loss | None) -> tuple[Loss, str, tuple[str, ...]]:
    """The loss the adapter computes with, its reduction (``bounds.REDUCTIONS``) and the note
    saying what was taken: the L1 sum where no loss is given (no note); else the loss given,
    measured on ones ``PROBE`` against zeros (``L = 6 / D``: ``jnp.mean`` of the terms gives
    1, a sum 6); one that gives neither is judged as the sum, and the note says so."""
    if loss is None:
        return _l1_sum, "sum", ()
    source = f"the loss given, {getattr(loss, '__qualname__', None) or repr(loss)}"
    reduction, notes = measure_reduction(source, lambda: loss(jnp.ones(PROBE), jnp.zeros(PROBE)))
    return loss, reduction, notes


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


def _bias_functions(
    model_of: Callable[[jax.Array, jax.Array], Any],
    apply: Callable[[Any, jax.Array], jax.Array],
    params_of: Callable[[Any], tuple[jax.Array, jax.Array]],
    optimise: Callable[[Any, Any, Any], Any],
    grads_of: Callable[[Any, jax.Array, jax.Array], Any],
    loss: Loss,
) -> dict[str, Callable[..., Any]]:
    """``_functions`` of the layer with a bias: ``model_of(w, b)`` a module holding both,
    ``params_of(tree)`` (w (I, O), b (O,)) from a module-shaped tree, ``grads_of(model, dL_dw,
    dL_db)`` the gradient as such a tree. ``update`` of b steps a module whose w and dL_dw are
    zero (one input feature): the optimizer's rule for b, weight decay included."""

    def forward(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
        return apply(model_of(w, b), x)

    def grad_x(dL_do: jax.Array, w: jax.Array) -> jax.Array:
        zero = jnp.zeros((dL_do.shape[0], w.shape[0]), w.dtype)
        no_bias = jnp.zeros((w.shape[1],), w.dtype)
        _, vjp = jax.vjp(lambda x: apply(model_of(w, no_bias), x), zero)
        return vjp(dL_do)[0]

    def grad_w(x: jax.Array, dL_do: jax.Array) -> jax.Array:
        zero = jnp.zeros((x.shape[1], dL_do.shape[1]), x.dtype)
        no_bias = jnp.zeros((dL_do.shape[1],), x.dtype)
        _, vjp = jax.vjp(lambda w: apply(model_of(w, no_bias), x), zero)
        return vjp(dL_do)[0]

    def grad_b(dL_do: jax.Array) -> jax.Array:
        # The VJP in b at x = 0, w = 0 (one input feature): dL_do summed over the batch.
        n, o = dL_do.shape
        x, w = jnp.zeros((n, 1), dL_do.dtype), jnp.zeros((1, o), dL_do.dtype)
        _, vjp = jax.vjp(lambda b: apply(model_of(w, b), x), jnp.zeros((o,), dL_do.dtype))
        return vjp(dL_do)[0]

    def update(p: jax.Array, dL_dp: jax.Array, lr: jax.Array) -> jax.Array:
        if p.ndim == 2:
            b = jnp.zeros((p.shape[1],), p.dtype)
            model = model_of(p, b)
            return params_of(optimise(model, grads_of(model, dL_dp, jnp.zeros_like(b)), lr))[0]
        w = jnp.zeros((1, p.shape[0]), p.dtype)
        model = model_of(w, p)
        return params_of(optimise(model, grads_of(model, jnp.zeros_like(w), dL_dp), lr))[1]

    def step(x: jax.Array, w: jax.Array, b: jax.Array, target: jax.Array, lr: jax.Array) -> tuple:
        def objective(w: jax.Array, b: jax.Array, x: jax.Array) -> jax.Array:
            return loss(apply(model_of(w, b), x), target)

        value, (dL_dw, dL_db, dL_dx) = jax.value_and_grad(objective, argnums=(0, 1, 2))(w, b, x)
        model = model_of(w, b)
        w_new, b_new = params_of(optimise(model, grads_of(model, dL_dw, dL_db), lr))
        return value, dL_dx, dL_dw, dL_db, w_new, b_new

    functions: dict[str, Callable[..., Any]] = {
        "forward": forward,
        "loss": loss,
        "loss_grad": jax.grad(loss),
        "grad_x": grad_x,
        "grad_w": grad_w,
        "grad_b": grad_b,
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
    with_bias = weight_and_bias(name, names, "weight", "bias")
    features = (getattr(module, "in_features", None), getattr(module, "out_features", None))
    template: Any = module  # an eqx.Module, whose fields the type checker cannot see
    check_weight(name, "module.weight", template.weight.shape, features, layout)
    to_weight = stored(layout)
    transform = optimizer or optax.sgd
    label = f"{type(module).__name__}{features} with {getattr(transform, '__name__', transform)}"
    loss_of, reduction, notes = loss_and_reduction(loss)

    def model_of(w: jax.Array) -> Any:
        return eqx.tree_at(lambda m: m.weight, module, to_weight(w))

    def optimise(model: Any, grads: Any, lr: Any) -> Any:
        tx = transform(lr)
        params = eqx.filter(model, eqx.is_array)
        updates, _ = tx.update(grads, tx.init(params), params)
        return eqx.apply_updates(model, updates)

    if with_bias:
        check_bias(name, "module.bias", template.bias.shape, features[1])

        def with_params(tree: Any, w: jax.Array, b: jax.Array) -> Any:
            return eqx.tree_at(lambda m: (m.weight, m.bias), tree, (to_weight(w), b))

        biased = _bias_functions(
            lambda w, b: with_params(module, w, b),
            apply=lambda model, x: jax.vmap(model)(x),
            params_of=lambda model: (to_weight(model.weight), model.bias),
            optimise=optimise,
            grads_of=with_params,
            loss=loss_of,
        )
        return Adapted(label, biased, None, home, reduction=reduction, notes=notes)
    functions = _functions(
        model_of,
        apply=lambda model, x: jax.vmap(model)(x),
        weight_of=lambda model: to_weight(model.weight),
        optimise=optimise,
        grads_of=lambda model, dL_dw: eqx.tree_at(lambda m: m.weight, model, to_weight(dL_dw)),
        loss=loss_of,
    )
    return Adapted(label, functions, None, home, reduction=reduction, notes=notes)


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
    with_bias = weight_and_bias(name, names, "kernel", "bias")
    features = (getattr(module, "in_features", None), getattr(module, "out_features", None))
    template: Any = module  # an nnx.Module, whose fields the type checker cannot see
    check_weight(name, "module.kernel", _value(template.kernel).shape, features, layout)
    to_weight = stored(layout)
    transform = optimizer or optax.sgd
    graphdef, state = nnx.split(module)
    label = f"{type(module).__name__}{features} with {getattr(transform, '__name__', transform)}"
    loss_of, reduction, notes = loss_and_reduction(loss)

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

    if with_bias:
        check_bias(name, "module.bias", _value(template.bias).shape, features[1])

        def biased_model(w: jax.Array, b: jax.Array) -> Any:
            model: Any = nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf, state))
            _set_value(model.kernel, to_weight(w))
            _set_value(model.bias, b)
            return model

        biased = _bias_functions(
            biased_model,
            apply=lambda model, x: model(x),
            params_of=lambda model: (to_weight(_value(model.kernel)), _value(model.bias)),
            optimise=optimise,
            grads_of=lambda model, dL_dw, dL_db: nnx.state(biased_model(dL_dw, dL_db), nnx.Param),
            loss=loss_of,
        )
        return Adapted(label, biased, None, home, reduction=reduction, notes=notes)
    functions = _functions(
        model_of,
        apply=lambda model, x: model(x),
        weight_of=lambda model: to_weight(_value(model.kernel)),
        optimise=optimise,
        grads_of=lambda model, dL_dw: nnx.state(model_of(dL_dw), nnx.Param),
        loss=loss_of,
    )
    return Adapted(label, functions, None, home, reduction=reduction, notes=notes)
