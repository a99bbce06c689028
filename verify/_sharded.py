"""The fused SGD step sharded over many devices with ``jax.shard_map``.

The math is ``verify.step``'s, with x ``(N, I)``, w ``(I, O)``, target ``(N, O)``::

    output = x @ w                 dL_do = sign(output - target)  (-1 at ties)
    dL_dx  = dL_do @ w.T           dL_dw = x.T @ dL_do            w_new = w - lr * dL_dw

on a mesh with a data axis (size D) and a model axis (size M). Each device holds one block::

    x[n, :]       (N/D, I)      split over N on the data axis, replicated over the model axis
    w[:, o]       (I, O/M)      split over O on the model axis, replicated over the data axis
    target[n, o]  (N/D, O/M)    output, dL_do: the same blocks as target

and computes, with no communication, the block ``output[n, o] = x[n, :] @ w[:, o]`` (the whole
I contraction is local, so the forward is the single-device one) and ``dL_do[n, o]``. Then::

    dL_dx[n, :] = psum_model( dL_do[n, o] @ w[:, o].T )   a sum over O, split over the model axis
    dL_dw[:, o] = psum_data(  x[n, :].T @ dL_do[n, o] )   a sum over N, split over the data axis
    L           = psum_data,model( sum |output[n, o] - target[n, o]| )
    w_new[:, o] = w[:, o] - lr * dL_dw[:, o]              local: dL_dw is replicated over data

With a bias b ``(O,)`` (``sharded_step(x, w, b, target, lr)``), b is split over O with w and
replicated over the data axis (``b[o]``, ``(O/M,)``)::

    output[n, o] = x[n, :] @ w[:, o] + b[o]               local
    dL_db[o]     = psum_data( sum_n dL_do[n, o] )         a sum over N, split over the data axis
    b_new[o]     = b[o] - lr * dL_db[o]                   local: dL_db is replicated over data

(``model_axis=None`` replicates b with w).

Data parallel is ``M = 1`` (w replicated, dL_dw all-reduced), model parallel is ``D = 1``
(dL_dx all-reduced), and any ``D x M`` mesh does both. The reductions are the only change from
the single-device step: they reorder the sums over N and O, which the error model allows (its
bound holds for any summation order), and on exact-mode data every order gives the same bits.
For bfloat16 / float16 the partial gradients and losses are summed across devices in float32 and
rounded once at the end, as a single-device matmul does, so the same bound applies.

**Shapes not divisible by the mesh** are zero-padded (``pad=True``, the default) and the results
cut back to ``(N, I)``, ``(I, O)``. The padding is exact: a padded row of x or column of w is 0,
and the padded entries of dL_do are set to 0 (not the tie's -1, which a padded output of 0 at a
padded target of 0 would take), so every padded product is an exact +0 and the loss, dL_dx,
dL_dw and w_new are those of the unpadded problem bit for bit. ``pad=False`` rejects such shapes
with an error naming the argument, its shape and the device count instead.

**Many hosts**: call ``jax.distributed.initialize()`` in every process before anything else;
``jax.devices()`` then lists every host's devices, ``step_mesh`` spans them all, and the same call
runs as one program. Pass global arrays (``jax.make_array_from_process_local_data``) rather than
numpy arrays, each process contributing its own rows of x and target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.sharding import AxisType, Mesh, PartitionSpec
from jax.typing import ArrayLike

import reference

from ._inputs import check_host_learning_rate, learning_rate, real
from ._layer import (
    DEFAULT_PRECISION,
    BiasStepResult,
    Precision,
    StepResult,
    forward,
    loss_grad,
    step_result,
    update,
)
from ._padding import valid_mask
from ._params import Params, check_shape, parameters

#: Mesh axis names ``step_mesh`` makes and ``sharded_step`` looks for by default.
DATA_AXIS = "data"
MODEL_AXIS = "model"


def step_mesh(
    data: int = 1, model: int = 1, *, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A ``(data, model)`` mesh over the first ``data * model`` devices, for ``sharded_step``.

    Args:
      data: devices along the data axis (N is split over them).
      model: devices along the model axis (O is split over them).
      devices: the devices to use (default ``jax.devices()``: every host's, once
        ``jax.distributed.initialize`` has run).

    Returns:
      A ``jax.sharding.Mesh`` with axes ``("data", "model")`` of sizes ``(data, model)``.
    """
    for name, size in (("data", data), ("model", model)):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{name} must be a positive int, got {size!r}")
    available = list(jax.devices() if devices is None else devices)
    needed = data * model
    if needed > len(available):
        raise ValueError(
            f"a {data} x {model} mesh needs {needed} devices, but only {len(available)} are "
            f"available ({available[0].platform if available else 'none'}); on CPU, set "
            f"JAX_NUM_CPU_DEVICES={needed} (or XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{needed}) before JAX starts"
        )
    # Auto axes: the padding and slicing around the shard_map stay ordinary jnp code.
    return jax.make_mesh(
        (data, model),
        (DATA_AXIS, MODEL_AXIS),
        axis_types=(AxisType.Auto, AxisType.Auto),
        devices=available[:needed],
    )


def _axis_size(mesh: Mesh, axis: str | None) -> int:
    return 1 if axis is None else int(mesh.shape[axis])


def _check_axis(mesh: Mesh, argument: str, axis: str | None) -> None:
    if axis is not None and axis not in mesh.axis_names:
        raise ValueError(
            f"{argument}={axis!r} is not an axis of the mesh {tuple(mesh.axis_names)}; "
            f"pass one of them or None (that dimension is then not split)"
        )


def _check_inputs(
    x: Any,
    params: Params[Any],
    target: Any,
    lr: Any,
    mesh: Mesh,
    data_axis: str | None,
    model_axis: str | None,
) -> None:
    """Shape checks on the global arrays, before tracing, so messages name the user's shapes."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"mesh must be a jax.sharding.Mesh (see step_mesh), got {type(mesh).__name__}"
        )
    _check_axis(mesh, "data_axis", data_axis)
    _check_axis(mesh, "model_axis", model_axis)
    if data_axis is not None and data_axis == model_axis:
        raise ValueError(f"data_axis and model_axis must differ, both are {data_axis!r}")
    w = params["w"]
    for name, value, meaning in (
        ("x", x, "(N, I)"),
        ("w", w, "(I, O)"),
        ("target", target, "(N, O)"),
    ):
        if jnp.ndim(value) != 2:
            raise ValueError(f"{name} must be a 2-D array {meaning}, got shape {jnp.shape(value)}")
    (n, i), (i_w, o) = jnp.shape(x), jnp.shape(w)
    if i_w != i:
        raise ValueError(
            f"w has shape {jnp.shape(w)}, but should be (I, O) = ({i}, O) [x: {jnp.shape(x)}]"
        )
    if jnp.shape(target) != (n, o):
        raise ValueError(
            f"target has shape {jnp.shape(target)}, but should be (N, O) = {(n, o)} "
            f"[x: {jnp.shape(x)}, w: {jnp.shape(w)}]"
        )
    for name, value in params.items():
        check_shape(name, jnp.shape(value), jnp.shape(w))
    learning_rate(lr)
    check_host_learning_rate(lr)


def _check_divisible(
    x: Any, w: Any, mesh: Mesh, data_axis: str | None, model_axis: str | None
) -> None:
    n, o = jnp.shape(x)[0], jnp.shape(w)[1]
    devices_n, devices_o = _axis_size(mesh, data_axis), _axis_size(mesh, model_axis)
    if n % devices_n:
        raise ValueError(
            f"x has shape {jnp.shape(x)}: N = {n} is not divisible by the {devices_n} devices of "
            f"mesh axis {data_axis!r}; pass pad=True to zero-pad N to {n + -n % devices_n}"
        )
    if o % devices_o:
        raise ValueError(
            f"w has shape {jnp.shape(w)}: O = {o} is not divisible by the {devices_o} devices of "
            f"mesh axis {model_axis!r}; pass pad=True to zero-pad O to {o + -o % devices_o}"
        )


def _accumulation_dtype(dtype: Any) -> Any:
    """float32 for the half-precision dtypes (as XLA's own matmuls accumulate), else ``dtype``."""
    return jnp.dtype(jnp.float32) if jnp.dtype(dtype).itemsize < 4 else jnp.dtype(dtype)


def _partial_contract(a: Array, b: Array, a_axis: int, b_axis: int, precision: Precision) -> Array:
    """``sum_k a[.., k] * b[k, ..]`` over one device's slice of k, kept wide for the psum."""
    return lax.dot_general(
        a,
        b,
        dimension_numbers=(((a_axis,), (b_axis,)), ((), ())),
        precision=lax.Precision(precision) if isinstance(precision, str) else precision,
        preferred_element_type=_accumulation_dtype(a.dtype),
    )


def _psum(value: Array, axes: tuple[str, ...]) -> Array:
    return lax.psum(value, axes) if axes else value


def _block_offset(
    shape: tuple[int, int], data_axis: str | None, model_axis: str | None
) -> tuple[Array | int, Array | int]:
    """Where this device's ``shape`` block of an ``(N, O)`` array starts."""
    rows = 0 if data_axis is None else lax.axis_index(data_axis) * shape[0]
    cols = 0 if model_axis is None else lax.axis_index(model_axis) * shape[1]
    return rows, cols


#: Each parameter's gradient from this device's block of dL_do, summed over its rows and kept
#: wide for the psum over the data axis: ``x.T @ dL_do`` and the batch sum.
_LOCAL_GRADIENTS: dict[str, Callable[[Array, Array, Precision], Array]] = {
    "w": lambda x, dL_do, precision: _partial_contract(x, dL_do, 0, 0, precision),
    "b": lambda x, dL_do, precision: jnp.sum(dL_do, axis=0, dtype=_accumulation_dtype(x.dtype)),
}


def _local_step(
    x: Array,
    params: Params[Array],
    target: Array,
    lr: Array,
    *,
    num_data: int,
    output_features: int,
    padded: bool,
    data_axis: str | None,
    model_axis: str | None,
    precision: Precision,
) -> tuple[Array, Array, Params[Array], Params[Array]]:
    """One device's share: blocks x ``(N/D, I)``, target ``(N/D, O/M)`` and every parameter's
    block over O (w ``(I, O/M)``, b ``(O/M,)``): ``(loss, dL_dx, gradients, updated)``."""
    data_axes = () if data_axis is None else (data_axis,)
    model_axes = () if model_axis is None else (model_axis,)
    output = forward(x, **params, precision=precision)
    dL_do = loss_grad(output, target)
    terms = jnp.abs(output - target)
    if padded:
        offset = _block_offset(output.shape, data_axis, model_axis)
        valid = valid_mask(output.shape, num_data, output_features, offset)
        # A padded output (0) ties with its padded target (0); the tie's -1 would add -0.0
        # products, and a NaN from inf * 0 in padding must not reach the loss either.
        dL_do = jnp.where(valid, dL_do, jnp.zeros_like(dL_do))
        terms = jnp.where(valid, terms, jnp.zeros_like(terms))
    wide = _accumulation_dtype(x.dtype)
    loss = _psum(jnp.sum(terms, dtype=wide), data_axes + model_axes).astype(x.dtype)
    dL_dx = _psum(_partial_contract(dL_do, params["w"], 1, 1, precision), model_axes)
    dL_dx = dL_dx.astype(x.dtype)
    grads = {
        name: _psum(_LOCAL_GRADIENTS[name](x, dL_do, precision), data_axes).astype(x.dtype)
        for name in params
    }
    return (
        loss,
        dL_dx,
        grads,
        {name: update(value, grads[name], lr) for name, value in params.items()},
    )


def _split_over_o(value: Array, model_axis: str | None) -> PartitionSpec:
    """A parameter's blocks: its last axis (O) split over the model axis, the rest whole."""
    return PartitionSpec(*(None,) * (jnp.ndim(value) - 1), model_axis)


@partial(jax.jit, static_argnames=("mesh", "data_axis", "model_axis", "precision"))
def _sharded_step(
    x: Array,
    params: Params[Array],
    target: Array,
    lr: Array,
    *,
    mesh: Mesh,
    data_axis: str | None,
    model_axis: str | None,
    precision: Precision,
) -> StepResult | BiasStepResult:
    """``sharded_step`` on the parameter tree (module docstring): x, target and every parameter
    zero-padded to multiples of their axes' sizes, one ``shard_map`` of ``_local_step``, the
    results cut back to the true N and O."""
    (n, _), o = x.shape, params["w"].shape[1]
    pad_n = -n % _axis_size(mesh, data_axis)
    pad_o = -o % _axis_size(mesh, model_axis)
    x_p = jnp.pad(x, ((0, pad_n), (0, 0)))
    # O is the last axis of every parameter: each is padded along it alike.
    params_p = {
        name: jnp.pad(value, ((0, 0),) * (value.ndim - 1) + ((0, pad_o),))
        for name, value in params.items()
    }
    target_p = jnp.pad(target, ((0, pad_n), (0, pad_o)))
    body = partial(
        _local_step,
        num_data=n,
        output_features=o,
        padded=bool(pad_n or pad_o),
        data_axis=data_axis,
        model_axis=model_axis,
        precision=precision,
    )
    rows = PartitionSpec(data_axis, None)
    blocks = {name: _split_over_o(value, model_axis) for name, value in params.items()}
    loss, dL_dx, grads, new = jax.shard_map(
        body,
        mesh=mesh,
        in_specs=(rows, blocks, PartitionSpec(data_axis, model_axis), PartitionSpec()),
        out_specs=(PartitionSpec(), rows, blocks, blocks),
    )(x_p, params_p, target_p, lr)
    return step_result(
        loss,
        dL_dx[:n],
        {name: grad[..., :o] for name, grad in grads.items()},
        {name: value[..., :o] for name, value in new.items()},
    )


def sharded_step(
    x: ArrayLike,
    w: ArrayLike,
    *args: ArrayLike,
    mesh: Mesh,
    data_axis: str | None = DATA_AXIS,
    model_axis: str | None = MODEL_AXIS,
    precision: Precision = DEFAULT_PRECISION,
    pad: bool = True,
    **layer: ArrayLike,
) -> StepResult | BiasStepResult:
    """``verify.step`` split over ``mesh``: x and target over N, w over O (module docstring):
    ``sharded_step(x, w, target, lr, mesh=...)`` or, with a bias, ``sharded_step(x, w, b,
    target, lr, mesh=...)``.

    ``output = x @ w (+ b)``, ``dL_do = sign(output - target)`` (-1 at ties),
    ``dL_dx = dL_do @ w.T`` (psum over the model axis), ``dL_dw = x.T @ dL_do`` (psum over the
    data axis), ``w_new = w - lr * dL_dw``, ``L = sum |output - target|`` (psum over both); with
    a bias ``dL_db = sum_n dL_do[n, :]`` (psum over the data axis), ``b_new = b - lr * dL_db``.

    Shapes (positional, as the two forms above): x ``(N, I)``, w ``(I, O)``, b ``(O,)`` split
    over O with w, target ``(N, O)``, lr a scalar (traced).

    Args:
      mesh: a ``jax.sharding.Mesh``, e.g. ``step_mesh(data=4, model=2)``.
      data_axis: the mesh axis N is split over, or None (x replicated).
      model_axis: the mesh axis O is split over, or None (w replicated).
      precision: matmul precision, as ``verify.step`` (default ``"highest"``).
      pad: zero-pad N and O up to multiples of the axis sizes (exact; the results are cut back).
        With False, a shape that does not divide raises a ValueError naming it.

    Returns:
      ``StepResult(loss, dL_dx (N, I), dL_dw (I, O), w_new (I, O))``: loss replicated, dL_dx
      sharded over N, dL_dw and w_new over O; with a bias ``BiasStepResult(loss, dL_dx, dL_dw,
      dL_db (O,), w_new, b_new (O,))``, dL_db and b_new sharded over O.
    """
    b, target, lr = reference.step_arguments("sharded_step", args, layer)
    params = parameters(w, b)
    _check_inputs(x, params, target, lr, mesh, data_axis, model_axis)
    if not pad:
        _check_divisible(x, w, mesh, data_axis, model_axis)
    x, *values, target = real(x=x, **params, target=target)
    return _sharded_step(
        x,
        dict(zip(params, values, strict=True)),
        target,
        lr,
        mesh=mesh,
        data_axis=data_axis,
        model_axis=model_axis,
        precision=precision,
    )
