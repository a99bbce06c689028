"""Shape buckets: call the jitted layer on zero-padded arrays so that few shapes are compiled.

Each distinct shape costs one XLA compile per jitted function (tens of milliseconds even with the
persistent cache warm: tracing, lowering and the cache look-up), and a Hypothesis run draws a new
shape for almost every example. Padding every side up to the next of ``BUCKETS`` turns thousands
of shapes into a few dozen, each compiled once per process.

Zero-padding is exact for this layer. With ``x`` padded to ``(Np, Ip)``, ``w`` to ``(Ip, Op)``
and ``target`` to ``(Np, Op)`` (zeros outside the ``(N, I, O)`` corner):

- ``output[d, j] = sum_i x[d, i] w[i, j]``: the padded terms ``i >= I`` are ``0 * 0 = 0``, so the
  real ``(N, O)`` block is the unpadded sum plus exact zeros;
- ``dL_do`` is *masked* to 0 outside ``(N, O)`` (``loss_grad`` alone would give the notebook's -1
  at the padded ties ``0 == 0``), and the loss sums ``|output - target|`` with the padded
  positions replaced by ``target``, so they add exactly 0 (also when a padded output is NaN,
  e.g. ``inf * 0`` from a real inf meeting a padded zero);
- ``dL_dx[d, i] = sum_j dL_do[d, j] w[i, j]`` and ``dL_dw[i, j] = sum_d x[d, i] dL_do[d, j]``:
  every padded term has a zero factor (masked ``dL_do``, or a padded zero of ``x``/``w``);
- ``w_new = w - lr * dL_dw`` is element-wise.

Adding an exact zero to a partial sum leaves it unchanged, so in exact mode (where every
summation order gives the same bits) padded and unpadded results agree bit for bit;
``tests/test_padding.py`` proves it on every bucket boundary. In float mode the summation
order may differ between the padded and unpadded kernels, which the error model already
allows (its bound does not depend on the order).

The masks come from the real sizes ``(n, o)`` passed as traced scalars, so they cost no
recompile. Results are sliced back on the host (numpy), never with a jitted slice (which would
compile once per shape again).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from . import _layer
from ._inputs import check_host_learning_rate, learning_rate, real
from ._layer import DEFAULT_PRECISION, ChainResult, Precision, StepResult

#: Padded sides: a side is padded up to the first bucket >= it. Every side up to 32 shares one
#: bucket: a 32^3 step is microseconds, while each extra bucket multiplies the shapes compiled
#: (a bucket at 8 as well cost test_layer, test_bounds and test_padding 10-20% of their time in
#: compiles and cache loads). Above 32 the buckets are 4x apart, at most 4x the work per side;
#: 3 buckets per side cover the strategies' menu up to 257. Larger sides are rounded up to a
#: multiple of the last bucket.
BUCKETS: tuple[int, ...] = (32, 128, 512)


def bucket(size: int, buckets: Sequence[int] = BUCKETS) -> int:
    """The padded length of a side of ``size``: the first bucket >= size (0 stays 0)."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if size == 0:
        return 0
    index = bisect.bisect_left(buckets, size)
    if index < len(buckets):
        return buckets[index]
    last = buckets[-1]
    return -(-size // last) * last


def pad_to(array: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` in the top-left corner of a zero array of ``shape`` (its dtype kept)."""
    array = np.asarray(array)
    if len(shape) != array.ndim or any(s < a for s, a in zip(shape, array.shape, strict=True)):
        raise ValueError(f"cannot pad shape {array.shape} to {shape}")
    if array.shape == shape:
        return array
    padded = np.zeros(shape, dtype=array.dtype)
    padded[tuple(slice(0, a) for a in array.shape)] = array
    return padded


def pad(array: ArrayLike, buckets: Sequence[int] = BUCKETS) -> np.ndarray:
    """``array`` zero-padded on every axis to ``bucket(side)``."""
    array = np.asarray(array)
    return pad_to(array, tuple(bucket(side, buckets) for side in array.shape))


def _crop(value: Any, shape: tuple[int, ...]) -> Any:
    """The top-left ``shape`` corner of ``value``, as numpy (a host-side slice: no compile).

    Typed ``Any``: it fills ``StepResult`` / ``ChainResult`` fields, annotated as jax Arrays.
    """
    return np.asarray(value)[tuple(slice(0, s) for s in shape)]


def _host(value: Any) -> Any:
    """``value`` as a numpy array (a scalar loss stays 0-d); typed as ``_crop``."""
    return np.asarray(value)


def valid_mask(
    shape: tuple[int, int], n: ArrayLike, o: ArrayLike, offset: tuple[ArrayLike, ArrayLike] = (0, 0)
) -> Array:
    """``valid[d, j] = offset[0] + d < n and offset[1] + j < o``: where a padded ``(N, O)``
    array (or the block of it at ``offset``, e.g. one device's shard) holds real entries."""
    rows = jax.lax.broadcasted_iota(jnp.int32, shape, 0) + offset[0]
    cols = jax.lax.broadcasted_iota(jnp.int32, shape, 1) + offset[1]
    return (rows < n) & (cols < o)


@partial(jax.jit, static_argnames="precision")
def _masked_step(x, w, target, lr, n, o, *, precision: Precision = DEFAULT_PRECISION):
    """``verify.step`` on padded arrays, built from the same jitted pieces, with ``dL_do`` and the
    loss masked to the real ``(n, o)`` block (module docstring)."""
    x, w, target = real(x=x, w=w, target=target)
    output = _layer.forward(x, w, precision=precision)
    valid = valid_mask(output.shape, n, o)
    dL_do = jnp.where(valid, _layer.loss_grad(output, target), jnp.zeros_like(output))
    dL_dw = _layer.grad_w(x, dL_do, precision=precision)
    return StepResult(
        _layer.l1_loss(jnp.where(valid, output, target), target),
        _layer.grad_x(dL_do, w, precision=precision),
        dL_dw,
        _layer.update(w, dL_dw, lr),
    )


@partial(jax.jit, static_argnames="precision")
def _masked_autodiff_step(x, w, target, lr, n, o, *, precision: Precision = DEFAULT_PRECISION):
    """``verify.autodiff_step`` on padded arrays: ``jax.value_and_grad`` of the masked loss
    ``sum_{d < n, j < o} |x @ w - target|`` (the padded terms have zero gradient)."""
    x, w, target = real(x=x, w=w, target=target)
    lr = learning_rate(lr)

    def objective(x, w):
        difference = jnp.matmul(x, w, precision=precision) - target
        valid = valid_mask(difference.shape, n, o)
        return jnp.sum(jnp.where(valid, jnp.abs(difference), jnp.zeros_like(difference)))

    loss, (dL_dx, dL_dw) = jax.value_and_grad(objective, argnums=(0, 1))(x, w)
    return StepResult(loss, dL_dx, dL_dw, w - lr.astype(w.dtype) * dL_dw)


@partial(jax.jit, static_argnames=("precision", "autodiff"))
def _masked_chain(x, w1, w2, target, n, o, *, precision: Precision = DEFAULT_PRECISION, autodiff):
    """``verify.chain`` / ``autodiff_chain`` on padded arrays, dL_do masked to ``(n, o)``."""
    x, w1, w2, target = real(x=x, w1=w1, w2=w2, target=target)
    if autodiff:
        # As verify.autodiff_chain, with the loss masked to the real (n, o) block.
        def masked_loss(h, w2):
            difference = jnp.matmul(h, w2, precision=precision) - target
            valid = valid_mask(difference.shape, n, o)
            return jnp.sum(jnp.where(valid, jnp.abs(difference), jnp.zeros_like(difference)))

        def objective(x, w1, w2):
            return masked_loss(jnp.matmul(x, w1, precision=precision), w2)

        loss, (dL_dx, dL_dw1, dL_dw2) = jax.value_and_grad(objective, argnums=(0, 1, 2))(x, w1, w2)
        dL_dh = jax.grad(masked_loss)(jnp.matmul(x, w1, precision=precision), w2)
        return ChainResult(loss=loss, dL_dx=dL_dx, dL_dw1=dL_dw1, dL_dh=dL_dh, dL_dw2=dL_dw2)
    h = _layer.forward(x, w1, precision=precision)
    output = _layer.forward(h, w2, precision=precision)
    valid = valid_mask(output.shape, n, o)
    dL_do = jnp.where(valid, _layer.loss_grad(output, target), jnp.zeros_like(output))
    dL_dh = _layer.grad_x(dL_do, w2, precision=precision)
    return ChainResult(
        loss=_layer.l1_loss(jnp.where(valid, output, target), target),
        dL_dx=_layer.grad_x(dL_dh, w1, precision=precision),
        dL_dw1=_layer.grad_w(x, dL_dh, precision=precision),
        dL_dh=dL_dh,
        dL_dw2=_layer.grad_w(h, dL_do, precision=precision),
    )


def _padded_step_call(masked: Callable[..., StepResult]) -> Callable[..., StepResult]:
    def call(
        x: Float[ArrayLike, "N I"],
        w: Float[ArrayLike, "I O"],
        target: Float[ArrayLike, "N O"],
        lr: ArrayLike,
        *,
        precision: Precision = DEFAULT_PRECISION,
        buckets: Sequence[int] = BUCKETS,
    ) -> StepResult:
        check_host_learning_rate(lr)
        x, w, target = np.asarray(x), np.asarray(w), np.asarray(target)
        if x.ndim != 2 or w.ndim != 2 or target.shape != (x.shape[0], w.shape[1]):
            raise ValueError(
                f"need x (N, I), w (I, O), target (N, O); got x: {x.shape}, w: {w.shape}, "
                f"target: {target.shape}"
            )
        (n, i), o = x.shape, w.shape[1]
        big_n, big_i, big_o = (bucket(side, buckets) for side in (n, i, o))
        result = masked(
            pad_to(x, (big_n, big_i)),
            pad_to(w, (big_i, big_o)),
            pad_to(target, (big_n, big_o)),
            lr,
            np.int32(n),
            np.int32(o),
            precision=precision,
        )
        return StepResult(
            _host(result.loss),
            _crop(result.dL_dx, (n, i)),
            _crop(result.dL_dw, (i, o)),
            _crop(result.w_new, (i, o)),
        )

    # padded_step.__wrapped__ is the jitted computation (its jit cache counts the buckets).
    call.__wrapped__ = masked  # type: ignore[attr-defined]
    return call


padded_step = _padded_step_call(_masked_step)
padded_step.__name__ = "padded_step"
padded_step.__doc__ = """``verify.step(x, w, target, lr)`` on arrays zero-padded to ``BUCKETS``.

Same results as ``verify.step`` (bit for bit in exact mode; within the same error bound in
float mode), as numpy arrays of the unpadded shapes: loss ``()``, dL_dx ``(N, I)``, dL_dw and
w_new ``(I, O)``. One compile per bucketed shape instead of one per shape.
"""

padded_autodiff_step = _padded_step_call(_masked_autodiff_step)
padded_autodiff_step.__name__ = "padded_autodiff_step"
padded_autodiff_step.__doc__ = """``verify.autodiff_step`` on zero-padded arrays (``padded_step``);
the gradients are ``jax.value_and_grad`` of the loss masked to the real ``(N, O)`` block."""


def padded_chain(
    x: Float[ArrayLike, "N I"],
    w1: Float[ArrayLike, "I H"],
    w2: Float[ArrayLike, "H O"],
    target: Float[ArrayLike, "N O"],
    *,
    autodiff: bool = False,
    precision: Precision = DEFAULT_PRECISION,
    buckets: Sequence[int] = BUCKETS,
) -> ChainResult:
    """``verify.chain`` (or ``autodiff_chain`` with ``autodiff=True``) on zero-padded arrays.

    Results are numpy arrays of the unpadded shapes: dL_dx ``(N, I)``, dL_dw1 ``(I, H)``,
    dL_dh ``(N, H)``, dL_dw2 ``(H, O)``.
    """
    x, w1, w2, target = (np.asarray(a) for a in (x, w1, w2, target))
    (n, i), (hidden, o) = x.shape, w2.shape
    big_n, big_i, big_h, big_o = (bucket(side, buckets) for side in (n, i, hidden, o))
    result = _masked_chain(
        pad_to(x, (big_n, big_i)),
        pad_to(w1, (big_i, big_h)),
        pad_to(w2, (big_h, big_o)),
        pad_to(target, (big_n, big_o)),
        np.int32(n),
        np.int32(o),
        precision=precision,
        autodiff=autodiff,
    )
    return ChainResult(
        loss=_host(result.loss),
        dL_dx=_crop(result.dL_dx, (n, i)),
        dL_dw1=_crop(result.dL_dw1, (i, hidden)),
        dL_dh=_crop(result.dL_dh, (n, hidden)),
        dL_dw2=_crop(result.dL_dw2, (hidden, o)),
    )


def bucketed(
    function: Callable[..., Any],
    result_shape: Callable[..., tuple[int, ...]],
    buckets: Sequence[int] = BUCKETS,
) -> Callable[..., Any]:
    """``function`` called on its array arguments zero-padded to ``buckets``, result cropped to
    ``result_shape(*unpadded_shapes)``.

    For the pieces whose padded positions need no mask: ``forward``, ``grad_x``, ``grad_w``
    (every padded term has a zero factor), ``update`` and ``loss_grad`` (element-wise: the padded
    positions are cropped away) and ``l1_loss`` (``|0 - 0| = 0``). Not for ``step``: its
    ``dL_do`` must be masked (``padded_step``). Scalars (``lr``) pass through unpadded.
    """

    def call(*args: Any, **kwargs: Any) -> np.ndarray:
        arrays = [np.asarray(a) if np.ndim(a) > 0 else a for a in args]
        padded = [pad(a, buckets) if np.ndim(a) > 0 else a for a in arrays]
        result = np.asarray(function(*padded, **kwargs))
        if result.ndim == 0:
            return result
        return _crop(result, result_shape(*(np.shape(a) for a in arrays)))

    call.__name__ = f"bucketed_{getattr(function, '__name__', 'function')}"
    return call


def _first(shape: tuple[int, ...], *_: Any) -> tuple[int, ...]:
    return shape


#: ``forward(x (N, I), w (I, O)) -> (N, O)`` on padded arrays.
padded_forward = bucketed(_layer.forward, lambda x, w: (x[0], w[1]))
#: ``grad_x(dL_do (N, O), w (I, O)) -> (N, I)`` on padded arrays.
padded_grad_x = bucketed(_layer.grad_x, lambda dL_do, w: (dL_do[0], w[0]))
#: ``grad_w(x (N, I), dL_do (N, O)) -> (I, O)`` on padded arrays.
padded_grad_w = bucketed(_layer.grad_w, lambda x, dL_do: (x[1], dL_do[1]))
#: ``loss_grad(output, target) -> dL_do (N, O)``, element-wise.
padded_loss_grad = bucketed(_layer.loss_grad, _first)
#: ``l1_loss(output, target) -> L``: the padded zeros add ``|0 - 0| = 0``.
padded_l1_loss = bucketed(_layer.l1_loss, _first)
#: ``update(w, dL_dw, lr) -> w_new (I, O)``, element-wise.
padded_update = bucketed(_layer.update, _first)
