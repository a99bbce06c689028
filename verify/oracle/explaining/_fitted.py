"""Bugs with a parameter: the admissible set of a result computed by a known wrong formula whose
constant (a weight decay, a momentum factor, a bias) is estimated from the result itself.

Each pattern is ``result = right + c * model`` (or ``right + b`` per column) for a ``model`` the
oracle knows and a constant ``c`` it does not. ``c`` is fitted by least squares on the deviation
``actual - right``; the pattern fits when the *whole* result lies inside the admissible set built
with that ``c``. Users write constants as short decimals (1e-4, 0.9), so the fitted value is
first tried rounded to one, two and three significant digits with the tight radius of the
pattern's own roundings; last, unrounded, with the estimation error added:

    |c^ - c| |model_k| <= ||e||_2 ||model||_2 |model_k| / ||model||_2^2 <= ||radius||_2

for a deviation ``e`` that is within ``radius`` of ``c * model`` (Cauchy-Schwarz). That last try
is only made when the fitted part stands well clear of the rounding (``_CLEAR`` times the slack it
adds), so that a result merely a little outside its bound is not explained away by a fit.

Every pattern here has one or a few parameters, so on a result with fewer than ``_EVIDENCE``
informative elements it fits almost anything: such a fit is marked ambiguous, and the search
confirms it on a probe shape with more elements (``_search``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from ... import bounds
from ...bounds import Bound

#: How many informative elements a one-parameter fit needs before it is evidence.
_EVIDENCE = 3

#: The unrounded fit is tried only when the fitted part is this many times the slack it adds.
_CLEAR = 8.0


class Fit(NamedTuple):
    """One admissible set of a fitted pattern: the constant it was built with and the set."""

    value: float
    bound: Bound
    ambiguous: bool


def short_decimals(value: float) -> list[float]:
    """``value`` rounded to 1, 2 and 3 significant digits, without repeats, in that order."""
    found: list[float] = []
    for digits in (1, 2, 3):
        rounded = float(f"{value:.{digits - 1}e}")
        if rounded not in found and rounded != 0.0:
            found.append(rounded)
    return found


def least_squares(deviation: np.ndarray, model: np.ndarray) -> float | None:
    """``c`` minimising ``||deviation - c * model||_2``, or None when ``model`` is all zero."""
    denominator = float(np.sum(model * model))
    if not denominator > 0 or not math.isfinite(denominator):
        return None
    value = float(np.sum(deviation * model)) / denominator
    return value if math.isfinite(value) else None


def scaled_fits(
    actual: np.ndarray,
    right: np.ndarray,
    origin: np.ndarray,
    model: np.ndarray,
    radius: np.ndarray,
    *,
    u: float,
    excluded: tuple[float, ...] = (),
) -> Iterator[Fit]:
    """Fits of ``actual = origin + c * model`` with ``c`` estimated (module docstring);
    ``right`` is the right result's centre.

    ``radius`` is the right result's: it scales with ``max(1, |c|)`` (a result ``c`` times
    larger rounds ``c`` times larger), and the pattern's own roundings add ``gamma_4(u) |c
    model|``. Values in ``excluded`` are left to other hypotheses (1 for a step: the right one).
    Shapes: all arrays alike.
    """
    informative = int(np.count_nonzero(model))
    fitted = least_squares(actual - origin, model)
    if fitted is None or informative == 0:
        return
    ambiguous = informative < _EVIDENCE

    def fit(value: float, slack: float = 0.0) -> Fit:
        spread = radius * max(1.0, abs(value)) + bounds.gamma(4, u) * np.abs(value * model)
        return Fit(value, Bound(origin + value * model, spread + slack), ambiguous)

    for value in short_decimals(fitted):
        if not any(math.isclose(value, other, rel_tol=1e-12) for other in excluded):
            yield fit(value)
    slack = float(np.sqrt(np.sum(radius**2))) * max(1.0, abs(fitted))
    part = float(np.sqrt(np.sum((origin + fitted * model - right) ** 2)))
    if part > _CLEAR * slack and not any(
        math.isclose(fitted, other, rel_tol=1e-3) for other in excluded
    ):
        yield fit(fitted, slack)


def column_offset_fits(actual: np.ndarray, right: Bound, *, u: float) -> Iterator[Fit]:
    """Fits of ``actual = right.center + b`` with one ``b[j]`` per column (a bias term).

    ``b[j]`` is the mean deviation down column j; its error is at most the column's largest
    radius. The fit's value is ``max |b|``. Shapes: actual and right ``(N, O)``.
    """
    if actual.ndim != 2 or actual.shape[0] == 0:
        return
    deviation = actual - right.center
    offset = deviation.mean(axis=0, keepdims=True)
    slack = right.radius.max(axis=0, keepdims=True)
    largest = float(np.max(np.abs(offset), initial=0.0))
    if not math.isfinite(largest) or largest <= _CLEAR * float(slack.max(initial=0.0)):
        return
    rounding = 2 * bounds.gamma(2, u) * (np.abs(right.center) + np.abs(offset))
    radius = right.radius + slack + rounding
    yield Fit(largest, Bound(right.center + offset, radius), actual.shape[0] < 2)


def sign_step_model(grad: Bound, lr: float) -> tuple[np.ndarray, np.ndarray]:
    """``lr * sign(dL_dw)`` where the sign is determined by the bound, and the radius to add
    where it is not (a kink: the step may go either way, up to ``|lr|``).

    Adam's first step is ``lr * g / (|g| + eps)``: ``eps / |g|`` of it is absorbed for
    ``eps <= 1e-7`` (the defaults are 1e-8 in PyTorch and optax, 1e-7 in Keras).
    """
    determined = np.abs(grad.center) > grad.radius
    direction = np.where(determined, np.sign(grad.center), 0.0) * lr
    with np.errstate(divide="ignore"):
        epsilon = np.minimum(1.0, 1e-7 / np.abs(grad.center))
    undetermined = np.where(determined, epsilon, 1.0) * abs(lr)
    return direction, undetermined


def normalized_fits(
    actual: np.ndarray, w: np.ndarray, grad: Bound, lr: float, *, u: float
) -> Iterator[Fit]:
    """Fits of ``w_new = w - c * lr * sign(dL_dw)``: an adaptive optimizer's first step.

    The rounding of ``m / (sqrt(v) + eps)`` and its bias corrections is taken as ``16 u`` of
    the step, the update's own as ``gamma_3(u) (|w| + |c lr|)``. Shapes: ``(I, O)``.
    """
    direction, undetermined = sign_step_model(grad, lr)
    informative = int(np.count_nonzero(direction))
    distinct = np.unique(np.abs(grad.center[direction != 0])).size > 1
    fitted = least_squares(w - actual, direction)
    if fitted is None:
        return
    ambiguous = informative < _EVIDENCE or not distinct
    for value in [*short_decimals(fitted), fitted]:
        step = value * direction
        radius = (
            bounds.gamma(3, u) * (np.abs(w) + abs(value * lr))
            + abs(value) * (undetermined + 16 * u * np.abs(direction))
            + 4 * bounds.smallest_normal("float32")
        )
        if value == fitted:
            radius = radius + float(np.sqrt(np.sum(radius**2)))
        yield Fit(value, Bound(w - step, radius), ambiguous)
