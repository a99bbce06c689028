"""One input policy for every public function of the JAX layer (``forward`` ... ``step``,
``chain``, ``autodiff_step``, ``padded_step``, ``sharded_step``), as close to ``reference``'s as
a jitted function can be:

- **Arrays hold real numbers.** bool and integer arrays are promoted to JAX's default float dtype
  (float32; float64 under ``jax_enable_x64``), never computed on as integers: ``x @ w`` on int8
  overflows and ``w - lr * dL_dw`` on int32 truncates, where the reference computes on the
  same integers exactly (integers past 2^24 round in float32, as they would in any float
  layer). Floating arrays keep their dtype, and integers next to them take it (int with
  float16: float16); floats of different dtypes meet at ``jnp.result_type`` (float32 with
  bfloat16: float32; an error under strict promotion, the user's choice). Complex (or
  any other) dtypes raise a TypeError naming the argument and its dtype. Shapes and dtypes are
  static under jit, so all of this happens once, at trace time.
- **lr is a finite real scalar.** A non-scalar or complex lr raises at trace time. Its value is
  checked to be finite before the call when it comes from the host (a Python or numpy scalar:
  ``LrChecked``); under the caller's own ``jax.jit`` (a tracer) or as a device array it cannot
  be checked without a device-to-host sync, and a NaN or inf lr then propagates to ``w_new``.
- **NaN and inf in arrays propagate**, as IEEE arithmetic does (checking would need a sync per
  call): products and sums carry them; ``loss_grad`` gives NaN where ``output - target`` is NaN
  (including inf - inf) and +-1 where it is +-inf. ``reference`` rejects them instead: it is the
  ground truth, and a NaN has no sign.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._params import parameters

P = ParamSpec("P")
R = TypeVar("R")


def _dtype_of(name: str, value: Any) -> np.dtype:
    try:
        return np.dtype(jnp.result_type(value))
    except TypeError as err:  # strings, objects: no JAX dtype at all
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float), got {type(value).__name__}"
        ) from err


def _check_real(name: str, dtype: np.dtype) -> None:
    if not (jnp.issubdtype(dtype, jnp.floating) or dtype.kind in "biu"):
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {dtype}")


def real(**arrays: ArrayLike) -> tuple[Array, ...]:
    """The arrays, in keyword order, as JAX arrays of one real floating dtype (module docstring).

    Raises:
      TypeError: an argument holds complex (or non-numeric) values; the message names it.
    """
    dtypes = {name: _dtype_of(name, value) for name, value in arrays.items()}
    for name, dtype in dtypes.items():
        _check_real(name, dtype)
    # Integers take the floats' dtype explicitly (so even under strict promotion, which only
    # decides between the floats themselves), or the default float when there is none.
    floats = [dtype for dtype in dtypes.values() if jnp.issubdtype(dtype, jnp.floating)]
    common = jnp.result_type(*floats) if floats else jax.dtypes.canonicalize_dtype(jnp.float64)
    return tuple(jnp.asarray(value, dtype=common) for value in arrays.values())


def learning_rate(lr: ArrayLike) -> Array:
    """``lr`` as a JAX scalar, after the trace-time checks (a real scalar)."""
    if jnp.ndim(lr) != 0:
        raise ValueError(f"lr must be a scalar, got shape {jnp.shape(lr)}")
    _check_real("lr", _dtype_of("lr", lr))
    return jnp.asarray(lr)


def check_host_learning_rate(lr: Any) -> None:
    """Raise a ValueError if ``lr`` is a host scalar (Python or numpy) that is not finite.

    Tracers and device arrays pass unchecked (module docstring); so do non-scalars and complex
    values, which ``learning_rate`` rejects at trace time with the same messages.
    """
    if isinstance(lr, (jax.Array, jax.core.Tracer)):
        return
    if isinstance(lr, (bool, int, float, np.number, np.ndarray)) and np.ndim(lr) == 0:
        value = np.asarray(lr)
        if value.dtype.kind in "biuf" and not math.isfinite(float(value)):
            raise ValueError(f"lr = {float(value)}: must be finite")


class LrChecked(Generic[P, R]):
    """A jitted function whose ``lr`` (argument ``position``, or keyword ``lr``) is checked by
    ``check_host_learning_rate`` before the call; everything else (``lower``, ``trace``, the jit
    cache) is the jitted function's own."""

    def __init__(self, jitted: Callable[P, R], position: int) -> None:
        self._jitted = jitted
        self._position = position
        functools.update_wrapper(self, jitted)
        # The jitted body is private (_step); the checked function is the public one (step).
        self.__name__ = jitted.__name__.lstrip("_")
        self.__qualname__ = jitted.__qualname__.lstrip("_")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if "lr" in kwargs:
            check_host_learning_rate(kwargs["lr"])
        elif len(args) > self._position:
            check_host_learning_rate(args[self._position])
        # (lr missing: the jitted function's own TypeError says so)
        return self._jitted(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jitted, name)


class StepOf:
    """A step taking ``(x, w, target, lr)`` or ``(x, w, b, target, lr)``, one jitted function
    ``jitted(x, w, [b,] target, lr, **options)`` for both: the arguments are read by
    ``reference.step_arguments`` (the count, or a keyword ``b``) and passed on positionally,
    with other keywords (``precision``); ``lr`` is checked as ``LrChecked`` checks it.
    ``lower`` takes the same arguments; every other attribute is the jitted function's."""

    def __init__(self, jitted: Any) -> None:
        self._jitted = jitted
        functools.update_wrapper(self, jitted)
        # The jitted body is private (_step); the checked function is the public one (step).
        self.__name__ = jitted.__name__.lstrip("_")
        self.__qualname__ = jitted.__qualname__.lstrip("_")

    def _route(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        import reference

        if len(args) < 2:
            raise TypeError(f"{self.__name__}() takes (x, w, target, lr) or (x, w, b, target, lr)")
        layer = {k: v for k, v in kwargs.items() if k in reference.BIAS_STEP_ARGUMENTS}
        options = {k: v for k, v in kwargs.items() if k not in layer}
        b, target, lr = reference.step_arguments(self.__name__, args[2:], layer)
        check_host_learning_rate(lr)
        return (args[0], *parameters(args[1], b).values(), target, lr), options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        positional, options = self._route(args, kwargs)
        return self._jitted(*positional, **options)

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        """``jax.jit``'s ``lower`` of the step, for the layer these arguments select."""
        positional, options = self._route(args, kwargs)
        return self._jitted.lower(*positional, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jitted, name)
