"""The notebook's dense layer, L1 loss and SGD step as explicit loops.

This is the ground truth a person audits: every function below is the seed notebook's loop,
in its loop order and with its names, on plain Python floats (IEEE float64). Each gradient sits
next to the forward it differentiates, micrograd-style. No numpy arithmetic happens here; numpy
only carries arrays in and out, so the reference cannot inherit a bug from the libraries it checks.

Rounding: every sum is accumulated left to right in float64, exactly as the notebook's
``output[d, j] = output[d, j] + x[d, i] * w[i, j]``. For a sum of K products the error is at most
gamma_K(2^-53) * sum |terms| (``verify.bounds`` adds this to every float comparison). On integer
inputs whose partial sums stay below 2^53 every result is exact.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, overload

import numpy as np

Matrix = list[list[float]]


class _Rows(list):
    """Float rows that remember their (rows, columns) shape, which an empty list would lose."""

    shape: tuple[int, int]


class StepResult(NamedTuple):
    """What one SGD step produces: ``(loss, dL_dx, dL_dw, w_new)``."""

    loss: float
    dL_dx: np.ndarray
    dL_dw: np.ndarray
    w_new: np.ndarray


class BiasStepResult(NamedTuple):
    """What one SGD step of the layer with a bias produces:
    ``(loss, dL_dx, dL_dw, dL_db, w_new, b_new)``."""

    loss: float
    dL_dx: np.ndarray
    dL_dw: np.ndarray
    dL_db: np.ndarray
    w_new: np.ndarray
    b_new: np.ndarray


#: ``step``'s arguments after ``x, w``: without a bias, and with one.
STEP_ARGUMENTS: tuple[str, ...] = ("target", "lr")
BIAS_STEP_ARGUMENTS: tuple[str, ...] = ("b", "target", "lr")


def step_arguments(
    function: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any | None, Any, Any]:
    """``(b, target, lr)`` from the arguments after ``x, w`` of ``step(x, w, target, lr)`` or
    ``step(x, w, b, target, lr)`` (``b`` None for the first).

    The bias form is the one with three such arguments or a keyword ``b``: a step has one
    parameter more with a bias, so the count says which layer is meant, as it does for a
    candidate's ``step`` in the oracle. ``function`` names the step in the TypeErrors.
    """
    biased = len(args) + len(kwargs) == 3 or "b" in kwargs
    names = BIAS_STEP_ARGUMENTS if biased else STEP_ARGUMENTS
    if len(args) + len(kwargs) != len(names):
        raise TypeError(
            f"{function}() takes (x, w, target, lr) or (x, w, b, target, lr), got "
            f"{2 + len(args) + len(kwargs)} arguments"
        )
    bound = dict(zip(names, args, strict=False))
    for name, value in kwargs.items():
        if name not in names or name in bound:
            raise TypeError(f"{function}() got an unexpected or repeated argument {name!r}")
        bound[name] = value
    missing = [name for name in names if name not in bound]
    if missing:
        raise TypeError(f"{function}() missing argument {missing[0]!r}")
    return bound.get("b"), bound["target"], bound["lr"]


# --------------------------------------------------------------------------------------------
# Input checking: one place that turns array-likes into float lists and says what was wrong.
# --------------------------------------------------------------------------------------------


def _shape_of(value: Any) -> tuple[int, ...]:
    return tuple(np.shape(value))


def _matrix(name: str, value: Any, meaning: str, *, vector: bool = False) -> _Rows:
    """``value`` as a list of float rows, or a ValueError naming ``name`` and its shape
    (``vector``: one row standing for a 1-D array, whose elements are named by one index)."""
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged nested lists and the like
        raise ValueError(
            f"{name} must be a 2-D array {meaning}, got {type(value).__name__}"
        ) from err
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array {meaning}, got shape {array.shape}")
    # ml_dtypes' bfloat16 / float8 register as numpy "void" kinds but convert to float64 exactly.
    extension_float = array.dtype.name.startswith(("bfloat16", "float8", "float6", "float4"))
    if array.dtype.kind not in "biuf" and not extension_float:
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float), got dtype {array.dtype}"
        )
    values = array.astype(np.float64)
    # The first non-finite element in row-major order, found by numpy (a test, not arithmetic).
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        r, c = divmod(int(bad[0]), values.shape[1])
        raise ValueError(
            f"{name}[{c if vector else f'{r}, {c}'}] = {float(values[r, c])}: "
            "the reference needs finite values "
            "(|.| has no subgradient at inf - inf, and NaN has no sign)"
        )
    rows = _Rows(values.tolist())
    rows.shape = (array.shape[0], array.shape[1])
    return rows


def _vector(name: str, value: Any, meaning: str) -> list[float]:
    """``value`` (a 1-D array) as a list of floats, checked as ``_matrix`` checks rows."""
    array = np.asarray(value) if np.ndim(value) == 1 else None
    if array is None:
        raise ValueError(f"{name} must be a 1-D array {meaning}, got shape {_shape_of(value)}")
    # One row through _matrix: the same dtype and finiteness checks and messages.
    (row,) = _matrix(name, array.reshape(1, -1), meaning, vector=True)
    return row


def _scalar(name: str, value: Any) -> float:
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {_shape_of(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} = {result}: must be finite")
    return result


def _same_shape(name: str, rows: Matrix, other_name: str, other: Matrix) -> None:
    if _dims(rows) != _dims(other):
        raise ValueError(
            f"{name} has shape {_dims(rows)}, but should match {other_name} {_dims(other)}"
        )


def _dims(rows: Matrix) -> tuple[int, int]:
    if isinstance(rows, _Rows):
        return rows.shape
    return (len(rows), len(rows[0]) if rows else 0)


def _array(rows: Matrix, shape: tuple[int, int]) -> np.ndarray:
    # reshape keeps the shape of empty matrices, which a list of no rows would lose
    return np.array(rows, dtype=np.float64).reshape(shape)


# --------------------------------------------------------------------------------------------
# The layer: forward and its two backward products.
# --------------------------------------------------------------------------------------------


def forward(x: Any, w: Any, b: Any = None) -> np.ndarray:
    """``output = x @ w`` (``+ b``) as the notebook's triple loop, then the bias loop.

    ``output[d, j] = sum_i x[d, i] * w[i, j]``, accumulated over i in order; with a bias,
    ``output[d, j] = output[d, j] + b[j]`` afterwards (b broadcast over the batch).

    Args:
      x: data, shape ``(N, I)`` (N = num_data, I = input_features).
      w: weights, shape ``(I, O)`` (O = output_features).
      b: bias, shape ``(O,)``, or None for the seed's layer without one.

    Returns:
      ``output``, float64, shape ``(N, O)``.
    """
    x_rows = _matrix("x", x, "(N, I)")
    w_rows = _matrix("w", w, "(I, O)")
    num_data, input_features = _dims(x_rows)
    if len(w_rows) != input_features:
        raise ValueError(
            f"w has shape {_dims(w_rows)}, but x has shape {_dims(x_rows)}: "
            f"w must be (I, O) with I = {input_features}"
        )
    output_features = _dims(w_rows)[1]
    b_row = None if b is None else _bias(b, output_features, f"w has shape {_dims(w_rows)}")
    output = [[0.0] * output_features for _ in range(num_data)]
    for i in range(input_features):
        w_i = w_rows[i]
        for j in range(output_features):
            w_ij = w_i[j]
            for d in range(num_data):
                row = output[d]
                row[j] = row[j] + x_rows[d][i] * w_ij
    if b_row is not None:
        for j in range(output_features):
            b_j = b_row[j]
            for d in range(num_data):
                row = output[d]
                row[j] = row[j] + b_j
    return _array(output, (num_data, output_features))


def _bias(b: Any, output_features: int, why: str) -> list[float]:
    """``b`` as O floats, or a ValueError naming its shape and the (O,) it needs."""
    b_row = _vector("b", b, "(O,)")
    if len(b_row) != output_features:
        raise ValueError(
            f"b has shape {_shape_of(b)}, but {why}: b must be (O,) with O = {output_features}"
        )
    return b_row


def grad_x(dL_do: Any, w: Any) -> np.ndarray:
    """``dL_dx = dL_do @ w.T``, built as the notebook builds it.

    The per-output gradient tensor ``do_dx[j, d, i] = dL_do[d, j] * w[i, j]`` (how output j moves
    x[d, i]'s loss), then summed over j in order: ``dL_dx[d, i] = sum_j do_dx[j, d, i]``.
    ``dL_do`` may be any real upstream gradient, not only +-1.

    Args:
      dL_do: upstream gradient, shape ``(N, O)``.
      w: weights, shape ``(I, O)``.

    Returns:
      ``dL_dx``, float64, shape ``(N, I)``.
    """
    upstream = _matrix("dL_do", dL_do, "(N, O)")
    w_rows = _matrix("w", w, "(I, O)")
    num_data, output_features = _dims(upstream)
    input_features = len(w_rows)
    if _dims(w_rows)[1] != output_features:
        raise ValueError(
            f"w has shape {_dims(w_rows)}, but dL_do has shape {(num_data, output_features)}: "
            f"w must be (I, O) with O = {output_features}"
        )
    # do_dx[j][d][i] = dL_do[d, j] * w[i, j], one (N, I) slab per output j; the comprehension
    # is the notebook's inner loops over d and i, written so Python runs it at C speed.
    w_columns = [[w_i[j] for w_i in w_rows] for j in range(output_features)]
    do_dx = [
        [[upstream[d][j] * w_ij for w_ij in w_columns[j]] for d in range(num_data)]
        for j in range(output_features)
    ]
    # dL_dx[d, i] = sum_j do_dx[j, d, i], added in order of j (numpy's do_dx.sum(0)).
    dL_dx = [[0.0] * input_features for _ in range(num_data)]
    for j in range(output_features):
        do_dx_j = do_dx[j]
        for d in range(num_data):
            dL_dx[d] = [total + term for total, term in zip(dL_dx[d], do_dx_j[d], strict=True)]
    return _array(dL_dx, (num_data, input_features))


def grad_w(x: Any, dL_do: Any) -> np.ndarray:
    """``dL_dw = x.T @ dL_do``, built as the notebook builds it.

    The per-output gradient tensor ``do_dw[i, d, j] = dL_do[d, j] * x[d, i]`` (how example d's
    output j moves w[i, j]'s loss), then summed over d in order:
    ``dL_dw[i, j] = sum_d do_dw[i, d, j]``.
    ``dL_do`` may be any real upstream gradient, not only +-1.

    Args:
      x: data, shape ``(N, I)``.
      dL_do: upstream gradient, shape ``(N, O)``.

    Returns:
      ``dL_dw``, float64, shape ``(I, O)``.
    """
    x_rows = _matrix("x", x, "(N, I)")
    upstream = _matrix("dL_do", dL_do, "(N, O)")
    num_data, input_features = _dims(x_rows)
    if len(upstream) != num_data:
        raise ValueError(
            f"dL_do has shape {_dims(upstream)}, but x has shape {(num_data, input_features)}: "
            f"dL_do must be (N, O) with N = {num_data}"
        )
    output_features = _dims(upstream)[1]
    # do_dw[i][d][j] = dL_do[d, j] * x[d, i], one (N, O) slab per input feature i.
    do_dw = [
        [[x_rows[d][i] * upstream_dj for upstream_dj in upstream[d]] for d in range(num_data)]
        for i in range(input_features)
    ]
    # dL_dw[i, j] = sum_d do_dw[i, d, j], added in order of d (numpy's do_dw.sum(1)).
    dL_dw = [[0.0] * output_features for _ in range(input_features)]
    for i in range(input_features):
        for d in range(num_data):
            dL_dw[i] = [total + term for total, term in zip(dL_dw[i], do_dw[i][d], strict=True)]
    return _array(dL_dw, (input_features, output_features))


def grad_b(dL_do: Any) -> np.ndarray:
    """``dL_db = dL_do`` summed over the batch: ``dL_db[j] = sum_d dL_do[d, j]``.

    ``output[d, j] = ... + b[j]`` moves every example's output j by the same amount, so b[j]'s
    gradient is the sum of their upstream gradients (in order of d), not their mean.
    ``dL_do`` may be any real upstream gradient, not only +-1.

    Args:
      dL_do: upstream gradient, shape ``(N, O)``.

    Returns:
      ``dL_db``, float64, shape ``(O,)``.
    """
    upstream = _matrix("dL_do", dL_do, "(N, O)")
    output_features = _dims(upstream)[1]
    dL_db = [0.0] * output_features
    for upstream_d in upstream:
        for j in range(output_features):
            dL_db[j] = dL_db[j] + upstream_d[j]
    return np.array(dL_db, dtype=np.float64).reshape(output_features)


# --------------------------------------------------------------------------------------------
# The loss and its (sub)gradient.
# --------------------------------------------------------------------------------------------


def l1_loss(output: Any, target: Any) -> float:
    """``L = sum_{d, j} |output[d, j] - target[d, j]|``, summed row by row in order.

    Args:
      output: shape ``(N, O)``.
      target: the notebook's ``true_value``, shape ``(N, O)``.

    Returns:
      ``L`` as a Python float.
    """
    output_rows = _matrix("output", output, "(N, O)")
    target_rows = _matrix("target", target, "(N, O)")
    _same_shape("target", target_rows, "output", output_rows)
    loss = 0.0
    for output_d, target_d in zip(output_rows, target_rows, strict=True):
        for o, t in zip(output_d, target_d, strict=True):
            loss = loss + abs(o - t)
    return loss


def loss_grad(output: Any, target: Any) -> np.ndarray:
    """``dL_do = (output > target) * 2 - 1``: +1 above the target, -1 below.

    At a tie (output == target) |.| has no derivative; this is the notebook's convention, -1
    (any value in [-1, 1] is a valid subgradient; ``jax.grad`` picks +1, PyTorch 0).

    Args:
      output: shape ``(N, O)``.
      target: shape ``(N, O)``.

    Returns:
      ``dL_do``, float64 of +-1, shape ``(N, O)``.
    """
    output_rows = _matrix("output", output, "(N, O)")
    target_rows = _matrix("target", target, "(N, O)")
    _same_shape("target", target_rows, "output", output_rows)
    dL_do = [
        [1.0 if o > t else -1.0 for o, t in zip(output_d, target_d, strict=True)]
        for output_d, target_d in zip(output_rows, target_rows, strict=True)
    ]
    return _array(dL_do, _dims(output_rows))


# --------------------------------------------------------------------------------------------
# The update and the whole step.
# --------------------------------------------------------------------------------------------


def update(w: Any, dL_dw: Any, lr: float) -> np.ndarray:
    """One SGD update, ``w_new = w - lr * dL_dw`` (the notebook: ``w - dL_dw * .01``).

    The same function updates the bias: ``b_new = update(b, dL_db, lr)`` on shape ``(O,)``.

    Args:
      w: weights, shape ``(I, O)`` (or a bias, ``(O,)``).
      dL_dw: gradient, the shape of ``w``.
      lr: learning rate, a finite scalar.

    Returns:
      ``w_new``, float64, the shape of ``w``.
    """
    if np.ndim(w) == 1:
        p_row = _vector("w", w, "(I, O) or (O,)")
        grad_row = _vector("dL_dw", dL_dw, f"of w's shape {_shape_of(w)}")
        if len(grad_row) != len(p_row):
            raise ValueError(
                f"dL_dw has shape {_shape_of(dL_dw)}, but should match w {_shape_of(w)}"
            )
        rate = _scalar("lr", lr)
        return np.array([p - g * rate for p, g in zip(p_row, grad_row, strict=True)]).reshape(
            len(p_row)
        )
    w_rows = _matrix("w", w, "(I, O)")
    grad_rows = _matrix("dL_dw", dL_dw, "(I, O)")
    _same_shape("dL_dw", grad_rows, "w", w_rows)
    rate = _scalar("lr", lr)
    w_new = [
        [w_ij - grad_ij * rate for w_ij, grad_ij in zip(w_i, grad_i, strict=True)]
        for w_i, grad_i in zip(w_rows, grad_rows, strict=True)
    ]
    return _array(w_new, _dims(w_rows))


@overload
def step(x: Any, w: Any, target: Any, lr: float, /) -> StepResult: ...
@overload
def step(x: Any, w: Any, b: Any, target: Any, lr: float, /) -> BiasStepResult: ...
def step(x: Any, w: Any, *args: Any, **kwargs: Any) -> StepResult | BiasStepResult:
    """One SGD step on ``L = sum |x @ w (+ b) - target|``: ``step(x, w, target, lr)`` or
    ``step(x, w, b, target, lr)``.

    ``output = x @ w`` (``+ b``), ``L``, ``dL_do``, ``dL_dx = dL_do @ w.T``,
    ``dL_dw = x.T @ dL_do``, ``w_new = w - lr * dL_dw``; with a bias also
    ``dL_db = sum_d dL_do[d, :]`` and ``b_new = b - lr * dL_db``. Ties take the notebook's -1.

    Shapes: x ``(N, I)``, w ``(I, O)``, b ``(O,)``, target ``(N, O)``, lr a scalar (all
    positional, as the two forms above).

    Returns:
      ``StepResult(loss, dL_dx (N, I), dL_dw (I, O), w_new (I, O))``, or with a bias
      ``BiasStepResult(loss, dL_dx, dL_dw, dL_db (O,), w_new, b_new (O,))``.
    """
    b, target, lr = step_arguments("step", args, kwargs)
    output = forward(x, w, b)
    target_rows = _matrix("target", target, "(N, O)")
    if _dims(target_rows) != output.shape:
        raise ValueError(
            f"target has shape {_dims(target_rows)}, but should be (N, O) = {output.shape} "
            f"[x: {_shape_of(x)}, w: {_shape_of(w)}]"
        )
    loss = l1_loss(output, target)
    dL_do = loss_grad(output, target)
    dL_dw = grad_w(x, dL_do)
    if b is None:
        return StepResult(loss, grad_x(dL_do, w), dL_dw, update(w, dL_dw, lr))
    dL_db = grad_b(dL_do)
    return BiasStepResult(
        loss, grad_x(dL_do, w), dL_dw, dL_db, update(w, dL_dw, lr), update(b, dL_db, lr)
    )


# --------------------------------------------------------------------------------------------
# The notebook's closing note: dL_dx is the upstream gradient of whatever produced x.
# --------------------------------------------------------------------------------------------


class ChainResult(NamedTuple):
    """Two layers, ``h = x @ w1``, ``output = h @ w2``: the loss and every gradient."""

    loss: float
    dL_dx: np.ndarray
    dL_dw1: np.ndarray
    dL_dh: np.ndarray
    dL_dw2: np.ndarray


def chain(x: Any, w1: Any, w2: Any, target: Any) -> ChainResult:
    """Backpropagation through two stacked layers with the loops above.

    ``h = x @ w1``, ``output = h @ w2``; ``dL_dh = dL_do @ w2.T`` is the second layer's ``dL_dx``
    and becomes the first layer's upstream gradient: ``dL_dw1 = x.T @ dL_dh``,
    ``dL_dx = dL_dh @ w1.T``.

    Args:
      x: ``(N, I)``; w1: ``(I, H)``; w2: ``(H, O)``; target: ``(N, O)``.
    """
    h = forward(x, w1)
    output = _named_forward(h, w2, "w2", "h")
    dL_do = loss_grad(output, target)
    dL_dh = grad_x(dL_do, w2)
    return ChainResult(
        loss=l1_loss(output, target),
        dL_dx=grad_x(dL_dh, w1),
        dL_dw1=grad_w(x, dL_dh),
        dL_dh=dL_dh,
        dL_dw2=grad_w(h, dL_do),
    )


def _named_forward(h: np.ndarray, w2: Any, w_name: str, h_name: str) -> np.ndarray:
    w_shape = _shape_of(w2)
    if len(w_shape) == 2 and w_shape[0] != h.shape[1]:
        raise ValueError(
            f"{w_name} has shape {w_shape}, but {h_name} has shape {h.shape}: "
            f"{w_name} must be (H, O) with H = {h.shape[1]}"
        )
    return forward(h, w2)
