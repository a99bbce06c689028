"""The update of each parameter (``parameter_updates``), fitted separately: a bug of b is never
named as w's. No calls: the parameters, their gradients and the new values are given. For each
parameter ``s = p - p_new`` (float64) is fitted as ``c * m`` by interval intersection. With ``|s
- c m| <= gamma_n(u) (|p| + |base| + |c m|) + A`` (the update's n roundings and ``A = (n + |lr|)
tiny`` for flushes) and ``|c m| <= |s - base| + |s - base - c m|``, every element gives ``|s -
base - c m| <= (gamma_n (|p| + |base| + |s - base|) + A) / (1 - gamma_n)``, an interval of c
(elements with m = 0 must lie within that radius). The contract is checked on the error model's
own bound, ``gamma_3(u) (|p| + |lr g|) + (3 + |lr|) tiny``. Models: ``m = lr g`` (a scaled step,
n = 4: the scale's own rounding), a weight decay ``m = lr p`` on ``base = lr g`` (n = 5, lambda
> 0), Adam's first step ``m = lr sign(g)`` (n = 16; where that fails, widened by ``1e-7 / |g|``
for its eps and 2^-12 for ``1 - beta2`` rounded in float32, then ``exact=False``).

A constant is **named only where the data single it out**: the interval holds it and no other
decimal as short (``_short``, ``_singles_out``): 1 significant digit, 2 only in an interval
narrower than 1e-3 relatively (2-digit decimals are 1% to 10% apart), ``lr`` (lr applied
twice) only with no shorter decimal beside it, 0 only within 0.1. [0.070, 0.133] names nothing
(0.07, 0.08, 0.09 and 0.1 are all in it); [0.144, 0.256] names 0.2. A step small against the
parameter's rounding gives a wide interval, and is said as such ("c in [lo, hi]: too wide to
name c"), or as its middle with the interval where it is narrow but holds no short decimal;
both ``exact=False``.

A reading of **all parameters at once** (lr applied twice, one scale, one sign step, clipping)
needs one parameter's own interval to single it out and the others to agree with it (their
intervals meet): an intersection of intervals that each hold several decimals singles one out
by chance. Clipping by the **global norm** is one ``c = max_norm / G``, ``G = ||(dL_dw,
dL_db)||`` (float64): the candidate's own norm and division (the squares and sums, ``K + 2 P``
roundings for K elements in P parameters, in the error model's default accumulation,
``bounds.ACCUMULATIONS``: float32 for bfloat16 and float16; then the norm stored, its square
root, max_norm cast and the division in the dtype: ``delta``) put max_norm in ``[c_lo G (1 -
delta'), c_hi G (1 + delta')]``, ``delta' = delta / (1 - delta)``; where no short max_norm lies
there, the interval is widened above by torch's ``+ 1e-6`` on the norm and a fit that needs it
is ``exact=False``. Per-parameter clipping has ``c_p = max_norm / ||g_p||`` for every
parameter whose update is not right, one short max_norm for all, and every right one with
``||g_p|| <= max_norm``. Where a scale is a decimal with fewer digits than the max_norm the
scale is named first (the simpler reading); every other reading that is singled out too is
said after it ("or ...: not told apart here").

**Limits.** A step: a weight decay with ``lr lambda |p|`` below the update's
rounding is not seen (lambda = 0.01 in bfloat16 at lr = 0.05), nor any step below it (p_new = p
is then "not updated, or a step of at most ..."); in half precision with a small lr, b's four
elements rarely pin c down, so global and per-parameter clipping are read from w alone and may
both be said, or only the scale of w named; a scale and a clip whose max_norm is as short are
both said; the sign step and a scaled step agree where every ``|g|`` is equal; with one
parameter, global and per-parameter clipping are one reading; a c equal to lr is read as lr
applied twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ... import bounds
from . import _hints
from ._readings import (
    FLOAT64_SLACK,
    Difference,
    significant_digits,
)

# --------------------------------------------------------------------------------------------
# 3. The update of each parameter.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParameterFit:
    """What one parameter's update fits: the contract, and the intervals of each alternative's
    constant (None: no constant fits).

    Attributes:
      name: the parameter (``w``, ``b``).
      right: ``p_new`` is within the error model's bound of ``p - lr * g``.
      scale: c with ``p - p_new = c * lr * g``.
      decay: lambda > 0 with ``p - p_new = lr * (g + lambda * p)``.
      sign: c with ``p - p_new = c * lr * sign(g)`` (Adam's first step: c = 1).
      sign_exact: ``sign`` holds without the eps / float32 widening.
      norm: ``||g||``.
      zeros: ``p_new`` is all zeros (and not right): a result never computed or written.
    """

    name: str
    right: bool
    scale: tuple[float, float] | None
    decay: tuple[float, float] | None
    sign: tuple[float, float] | None
    sign_exact: bool
    norm: float
    zeros: bool = False


@dataclasses.dataclass(frozen=True)
class UpdateFit:
    """The fit of one step's updates, per parameter and together.

    Attributes:
      calls: probe calls made (0: the arrays are given).
      differences: the explained differences from ``p - lr * dL_dp`` (empty: it matches).
      parameters: each parameter's fit.
    """

    calls: int
    differences: tuple[Difference, ...]
    parameters: tuple[ParameterFit, ...] = ()

    def lines(self) -> list[str]:
        """The differences in words (none when every update matches the contract)."""
        return [d.text for d in self.differences]


def _gradient_name(name: str) -> str:
    return f"dL_d{name}"


def _step_interval(
    step: np.ndarray,
    base: np.ndarray,
    model: np.ndarray,
    p: np.ndarray,
    roundings: int,
    u: float,
    absolute: float,
    relative: np.ndarray | float = 0.0,
) -> tuple[float, float] | None:
    """The c with ``|step - base - c model|`` within the update's bound for every element
    (module docstring), ``relative`` of ``|c model|`` added (elements where it is 1/2 or more
    constrain nothing); None where none does."""
    g = bounds.gamma(roundings, u)
    rest = step - base
    relative = np.broadcast_to(np.asarray(relative, np.float64), step.shape)
    usable = relative < 0.5
    radius = g * (np.abs(p) + np.abs(base) + np.abs(rest)) + absolute + relative * np.abs(rest)
    radius = radius / (1 - g - np.where(usable, relative, 0.0))
    radius = radius * FLOAT64_SLACK + 2.0**-52 * np.abs(step)
    zero = (model == 0) & usable
    if np.any(np.abs(rest[zero]) > radius[zero]):
        return None
    active = (model != 0) & usable
    if not np.any(active):
        return -math.inf, math.inf
    m, r, d = model[active], rest[active], radius[active]
    a, b = (r - d) / m, (r + d) / m
    lo, hi = float(np.max(np.minimum(a, b))), float(np.min(np.maximum(a, b)))
    return (lo, hi) if lo <= hi else None


def _fit_parameter(
    name: str, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], lr: float, u: float, tiny: float
) -> ParameterFit:
    p, g, new = (np.asarray(a, np.float64) for a in arrays)
    step = p - new
    lr_g = lr * g
    right_radius = bounds.gamma(3, u) * (np.abs(p) + np.abs(lr_g)) + (3 + abs(lr)) * tiny
    right = bool(
        np.all(np.abs(step - lr_g) <= right_radius * FLOAT64_SLACK + 2.0**-52 * np.abs(step))
    )
    zero = np.zeros_like(p)
    absolute = (5 + abs(lr)) * tiny
    scale = _step_interval(step, zero, lr_g, p, 4, u, absolute)
    decay = _step_interval(step, lr_g, lr * p, p, 5, u, absolute)
    if decay is not None and decay[1] <= 0:
        decay = None
    elif decay is not None:
        decay = (max(decay[0], 0.0), decay[1])
    direction = lr * np.sign(g)
    sign = _step_interval(step, zero, direction, p, 16, u, absolute)
    sign_exact = sign is not None
    if sign is None:
        with np.errstate(divide="ignore"):
            widening = np.where(g != 0, 1e-7 / np.abs(g), np.inf) + 2.0**-12
        sign = _step_interval(step, zero, direction, p, 16, u, absolute, widening)
    norm = math.sqrt(math.fsum((g * g).ravel().tolist()))
    zeros = not right and not np.any(new)
    return ParameterFit(name, right, scale, decay, sign, sign_exact, norm, zeros)


def _intersect(intervals: Iterable[tuple[float, float] | None]) -> tuple[float, float] | None:
    lo, hi = -math.inf, math.inf
    for interval in intervals:
        if interval is None:
            return None
        lo, hi = max(lo, interval[0]), min(hi, interval[1])
    return (lo, hi) if lo <= hi else None


#: An interval "pins down" its constant (the wording of an unnamed fit) when at most this wide,
#: relative to its magnitude.
_DETERMINED = 0.25

#: A 2-digit decimal is named only from an interval this narrow, relatively: 2-digit decimals
#: are 1% to 10% apart, so a wider interval holds one by chance.
_TWO_DIGITS = 1e-3


Interval = tuple[float, float]


def _determined(interval: Interval | None) -> bool:
    """Whether ``interval`` pins its constant down (``_DETERMINED``; one holding 0 must be
    within 0.1 of it, against the contract's 1)."""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return False
    lo, hi = interval
    if lo <= 0.0 <= hi:
        return hi - lo <= 0.1
    return hi - lo <= _DETERMINED * max(abs(lo), abs(hi))


def _decimals(lo: float, hi: float, digits: int, limit: int = 3) -> list[float]:
    """The decimals of ``digits`` significant digits in ``[lo, hi]`` (0 < lo or hi < 0), up
    to ``limit + 1`` of them."""
    sign = 1.0
    if hi < 0:
        lo, hi, sign = -hi, -lo, -1.0
    found: list[float] = []
    for exponent in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1):
        step = 10.0 ** (exponent - digits + 1)
        first = max(math.floor(lo / step) - 1, 10 ** (digits - 1))
        last = min(math.ceil(hi / step) + 1, 10**digits - 1)
        for mantissa in range(first, last + 1):
            value = float(f"{mantissa * step:.{digits}g}")
            if lo <= value <= hi and value not in found:
                found.append(value)
                if len(found) > limit:
                    return [sign * v for v in found]
    return [sign * v for v in found]


def _singles_out(interval: Interval | None, value: float) -> bool:
    """Whether ``interval`` holds ``value`` and no other decimal as short as it: the data name
    it, not merely allow it."""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return False
    lo, hi = interval
    if not lo <= value <= hi:
        return False
    if value == 0.0:
        return hi - lo <= 0.1
    if lo <= 0.0 <= hi:
        return False
    digits = significant_digits(value)
    return all(_decimals(lo, hi, d) == [] for d in range(1, digits)) and _decimals(
        lo, hi, digits
    ) == [value]


def _short(interval: Interval | None) -> float | None:
    """The decimal a user would write that ``interval`` singles out: the only one of 1
    significant digit in it, else (in an interval narrower than ``_TWO_DIGITS``) the only one
    of 2; 0 where the interval holds 0 and is within 0.1 of it; None where it holds several."""
    if interval is None or not all(math.isfinite(x) for x in interval):
        return None
    lo, hi = interval
    if lo <= 0.0 <= hi:
        return 0.0 if hi - lo <= 0.1 else None
    for digits in (1, 2):
        if digits == 2 and hi - lo > _TWO_DIGITS * max(abs(lo), abs(hi)):
            return None
        found = _decimals(lo, hi, digits)
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None


def _max_norm(c: tuple[float, float], norm: float, delta: float, eps: float) -> tuple[float, float]:
    """The max_norm interval of a clip that scaled by ``c`` a gradient of norm ``norm``, the
    candidate's norm and division within ``delta``, its norm plus up to ``eps``."""
    widen = delta / (1 - delta)
    return c[0] * norm * (1 - widen), c[1] * (norm + eps) * (1 + widen)


def _norm_delta(size: int, parameters: int, dtype: str) -> float:
    """The relative error of a candidate's clip coefficient ``max_norm / ||g||``: the squares
    and their sums (``size + 2 parameters`` roundings, a norm of per-parameter norms included)
    in the error model's default accumulation for the dtype (``bounds.ACCUMULATIONS``: float32
    for bfloat16 and float16), then the norm stored, its square root, max_norm cast and the
    division in the dtype (4 roundings)."""
    u = bounds.UNIT_ROUNDOFF[dtype]
    u_acc = bounds.UNIT_ROUNDOFF[bounds.ACCUMULATIONS[dtype][0]]
    return bounds.compound(bounds.gamma(size + 2 * parameters, u_acc), bounds.gamma(4, u))


def _clip_max_norm(
    cs: Sequence[tuple[float, float]], norms: Sequence[float], deltas: Sequence[float]
) -> tuple[float, bool] | None:
    """A short max_norm in every ``_max_norm`` interval (first without torch's + 1e-6, then
    with it), with whether it held without it."""
    for eps, exact in ((0.0, True), (1e-6, False)):
        found = _intersect(
            _max_norm(c, nm, d, eps) for c, nm, d in zip(cs, norms, deltas, strict=True)
        )
        value = _short(found)
        if value is not None and value > 0:
            return value, exact
    return None


def _right_words(fits: Sequence[ParameterFit], wrong: Sequence[str]) -> str:
    right = [f.name for f in fits if f.name not in wrong and f.right]
    if not right:
        return ""
    names = " and ".join(f"{n}'s" for n in right)
    return f"; {names} update{'s are' if len(right) > 1 else ' is'} right"


class _Reading(NamedTuple):
    """One reading of a step: the difference it names, and its short words as an
    alternative."""

    difference: Difference
    words: str


def _combined(readings: Sequence[_Reading]) -> Difference:
    """The first reading, the others said as alternatives the data do not tell apart."""
    first = readings[0].difference
    if len(readings) == 1:
        return first
    others = ", or ".join(r.words for r in readings[1:])
    return dataclasses.replace(first, text=f"{first.text} (or {others}: not told apart here)")


def _scale_reading(fit: ParameterFit, c: float, lr: float) -> _Reading:
    p, g = fit.name, _gradient_name(fit.name)
    if c == 0.0:
        small = _zero_words([fit], g)
        return _Reading(
            Difference("scaled_step", f"{p}_new = {p}: {p} is not updated{small}", 0.0, p),
            f"{p} not updated",
        )
    if c == -1.0:
        text = f"{p}_new = {p} + lr * {g}: the step ascends (the sign is flipped)"
        return _Reading(Difference("sign_flip", text, -1.0, p), f"{p}'s step ascending")
    hint = f" (a parameter group giving {p} lr * {c!r}?)" if 0 < c < 1 else ""
    if suggested := _hints.step_hint(c):
        hint = f": {suggested}"
    return _Reading(
        Difference("scaled_step", f"{p} - {p}_new = {c!r} * lr * {g}{hint}", c, p),
        f"{p}'s step scaled by {c!r}",
    )


def _parameter_readings(fit: ParameterFit, lr: float) -> list[_Reading]:
    p, g = fit.name, _gradient_name(fit.name)
    readings = []
    scale = fit.scale
    if _singles_out(scale, lr):
        text = f"{p} - {p}_new = lr * lr * {g}: lr applied twice"
        readings.append(_Reading(Difference("scaled_step", text, lr, p), "lr applied twice"))
    elif (c := _short(scale)) is not None:
        readings.append(_scale_reading(fit, c, lr))
    decay = _short(fit.decay)
    if decay is not None and decay > 0:
        text = (
            f"{p} - {p}_new = lr * ({g} + {decay!r} * {p}): weight decay (lambda = {decay!r}) "
            f"on {p} ({_hints.WEIGHT_DECAY})?"
        )
        words = f"weight decay {decay!r} on {p}"
        readings.append(_Reading(Difference("weight_decay", text, decay, p), words))
    sign = fit.sign
    if _singles_out(sign, 1.0):
        text = (
            f"{p} - {p}_new = lr * sign({g}): the first step of an adaptive optimizer such as "
            "Adam (lr * g / (sqrt(g^2) + eps))"
        )
        difference = Difference("normalized_step", text, 1.0, p, exact=fit.sign_exact)
        readings.append(_Reading(difference, f"a sign step of {p}"))
    return readings


def _parameter_difference(fit: ParameterFit, lr: float) -> Difference:
    p, g = fit.name, _gradient_name(fit.name)
    if fit.zeros:
        # Before any model: at a small lr, w - c * lr * g with w dropped (a decay of 1/lr)
        # fits zeros within the rounding of a half-precision step.
        return Difference("zero", f"{p}_new is all zeros: never computed", 0.0, p)
    readings = _parameter_readings(fit, lr)
    if readings:
        return _combined(readings)
    models = [
        (fit.scale, "scaled_step", f"{p} - {p}_new = {{c}} * lr * {g}"),
        (fit.decay, "weight_decay", f"{p} - {p}_new = lr * ({g} + {{c}} * {p})"),
        (fit.sign, "normalized_step", f"{p} - {p}_new = {{c}} * lr * sign({g})"),
    ]
    fitting = [(i, k, f) for i, k, f in models if i is not None]
    pinned = [(i, k, f) for i, k, f in fitting if _determined(i) and not i[0] <= 0.0 <= i[1]]
    if pinned:
        (lo, hi), kind, form = pinned[0]
        value = 0.5 * (lo + hi)
        # As many digits as the interval needs to be told from its neighbours (1.0002, not 1).
        digits = max(
            3,
            1
            + significant_digits(float(f"{hi - lo:.1e}"))
            - math.floor(math.log10(max(hi - lo, 1e-300) / max(abs(value), 1e-300))),
        )
        text = form.format(c=f"{value:.{min(digits, 12)}g}") + f" (c in [{lo:.6g}, {hi:.6g}])"
        return Difference(kind, text, value, p, exact=False)
    if fitting:
        spans = " or ".join(
            form.format(c="c") + f" with c in [{i[0]:.3g}, {i[1]:.3g}]" for i, _, form in fitting
        )
        text = f"{spans}: too wide to name c (the step is small against the rounding of {p})"
        return Difference(fitting[0][1], text, None, p, exact=False)
    return Difference(
        "update",
        f"{p}_new is none of {p} - c * lr * {g}, a weight decay or a sign step: {p}'s update is "
        "wrong",
        parameter=p,
    )


Params = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def parameter_updates(
    params: Params, lr: float, dtype: Any, again: tuple[Params, float] | None = None
) -> UpdateFit:
    """Fits each parameter's update ``(p, dL_dp, p_new)`` of one SGD step with ``lr`` in
    ``dtype``, then all of them together (clipping by the global or per-parameter norm, one
    scale, one sign step). Bounds: the module docstring.

    ``again``: the same step at another lr (``(params, lr)``), where this one leaves a constant
    unnamed. Each model's interval is narrowed to where both steps fit it with one constant
    (``_narrowed``); a model whose intervals do not meet depends on lr, and keeps this step's
    own."""
    name = bounds.dtype_name(dtype)
    u, tiny = bounds.UNIT_ROUNDOFF[name], bounds.smallest_normal(name)
    for pname, (_, _, new) in params.items():
        if not np.all(np.isfinite(np.asarray(new, np.float64))):
            text = f"{pname}_new has NaN or infinity"
            return UpdateFit(0, (Difference("nan", text, parameter=pname),))
    fits = tuple(_fit_parameter(p, arrays, lr, u, tiny) for p, arrays in params.items())
    if all(f.right for f in fits):
        return UpdateFit(0, (), fits)
    if again is not None:
        other, other_lr = again
        fits = tuple(
            _narrowed(f, _fit_parameter(f.name, other[f.name], other_lr, u, tiny))
            if f.name in other and np.all(np.isfinite(np.asarray(other[f.name][2], np.float64)))
            else f
            for f in fits
        )
    return UpdateFit(0, tuple(_together(fits, params, lr, name)), fits)


def named(fit: UpdateFit) -> bool:
    """Whether every difference ``fit`` reads names its constant exactly (none left "too
    wide", none said as a middle of an interval)."""
    return all(d.exact and d.value is not None for d in fit.differences)


def _narrowed(fit: ParameterFit, other: ParameterFit) -> ParameterFit:
    """``fit`` with each model's interval intersected with ``other``'s (the same parameter's
    update at another lr) where they meet: one constant fits both steps."""

    def both(mine: Interval | None, theirs: Interval | None) -> Interval | None:
        met = _intersect((mine, theirs))
        return met if met is not None else mine

    return dataclasses.replace(
        fit,
        scale=both(fit.scale, other.scale),
        decay=both(fit.decay, other.decay),
        sign=both(fit.sign, other.sign),
        sign_exact=fit.sign_exact and other.sign_exact,
    )


def _zero_words(fits: Sequence[ParameterFit], whose: str) -> str:
    """Where ``p_new = p`` could also be a step too small to show: how large it could be."""
    largest = max(
        (max(abs(f.scale[0]), abs(f.scale[1])) for f in fits if f.scale is not None),
        default=0.0,
    )
    if largest < 0.01:  # below any scale a step bug has (lr applied twice with lr = 0.01)
        return ""
    return f" (or a step of at most {largest:.2g} * lr * {whose}, below the rounding)"


def _together(
    fits: Sequence[ParameterFit],
    params: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    lr: float,
    dtype: str,
) -> list[Difference]:
    """The readings of every parameter at once (lr applied twice, clipping by the global or
    per-parameter norm, one scale, one sign step), else each wrong parameter's own.

    A reading of all parameters is made only where one parameter's own interval singles it
    out and the others agree with it (their intervals meet): an intersection of intervals that
    each hold several decimals singles one out by chance."""
    names = [f.name for f in fits]
    gradients = [_gradient_name(n) for n in names]
    sizes = dict(zip(names, (int(np.size(params[n][1])) for n in names), strict=True))
    all_wrong = not any(f.right for f in fits)
    one = len(fits) == 1
    common = _intersect(f.scale for f in fits)
    steps = ", ".join(f"{n} - {n}_new = {{c}} * {g}" for n, g in zip(names, gradients, strict=True))
    first: list[_Reading] = []
    clips: list[_Reading] = []
    simple: list[_Reading] = []
    max_norm_digits = 0
    if all_wrong and _singles_out(common, lr) and any(_singles_out(f.scale, lr) for f in fits):
        text = (
            f"{names[0]} - {names[0]}_new = lr * lr * {gradients[0]}: lr applied twice"
            if one
            else "every parameter moves by lr * lr * its gradient: lr applied twice ("
            + steps.format(c="lr * lr")
            + ")"
        )
        difference = Difference("scaled_step", text, lr, names[0] if one else None)
        first.append(_Reading(difference, "lr applied twice"))
    # Clipping by the global norm: one c < 1 for all, c = max_norm / G.
    if common is not None and common[1] < 1.0:
        norm = math.sqrt(math.fsum(f.norm**2 for f in fits))
        delta = _norm_delta(sum(sizes.values()), len(fits), dtype)
        clip = _clip_max_norm([common], [norm], [delta])
        own = [_clip_max_norm([f.scale], [norm], [delta]) for f in fits if f.scale is not None]
        if clip is not None and any(c is not None and c[0] == clip[0] for c in own):
            max_norm, exact = clip
            max_norm_digits = significant_digits(max_norm)
            together = f"||({', '.join(gradients)})||" if not one else f"||{gradients[0]}||"
            agree = "; with one parameter, global and per-parameter clipping agree" if one else ""
            text = (
                f"the step is clipped by the global gradient norm: scaled by {max_norm!r} / "
                f"{together} = {max_norm!r} / {norm:.3g} (max_norm {max_norm!r}{agree})"
            )
            difference = Difference("clipped_global_norm", text, max_norm, exact=exact)
            clips.append(
                _Reading(difference, f"clipping by the global norm (max_norm {max_norm!r})")
            )
    # Clipping per parameter: c_p = max_norm / ||g_p|| where the update is not right.
    binding = [f for f in fits if not f.right]
    free = [f for f in fits if f.right]
    scales = [f.scale for f in binding if f.scale is not None]
    if not one and binding and len(scales) == len(binding) and all(c[1] < 1.0 for c in scales):
        deltas = [_norm_delta(sizes[f.name], 1, dtype) for f in binding]
        norms = [f.norm for f in binding]
        clip = _clip_max_norm(scales, norms, deltas)
        own = [
            _clip_max_norm([c], [nm], [d]) for c, nm, d in zip(scales, norms, deltas, strict=True)
        ]
        unclipped = clip is not None and all(
            f.norm <= clip[0] * (1 + 2 * _norm_delta(sizes[f.name], 1, dtype)) for f in free
        )
        if clip is not None and unclipped and any(c is not None and c[0] == clip[0] for c in own):
            max_norm, exact = clip
            max_norm_digits = max(max_norm_digits, significant_digits(max_norm))
            parts = [
                f"{_gradient_name(f.name)} scaled by {max_norm!r} / ||{_gradient_name(f.name)}"
                f"|| = {max_norm!r} / {f.norm:.3g}"
                for f in binding
            ] + [
                f"{_gradient_name(f.name)} unclipped (||{_gradient_name(f.name)}|| = "
                f"{f.norm:.3g} <= {max_norm!r})"
                for f in free
            ]
            text = (
                f"each parameter's step is clipped by its own gradient norm (max_norm "
                f"{max_norm!r}): {', '.join(parts)}"
            )
            difference = Difference("clipped_norm", text, max_norm, exact=exact)
            clips.append(_Reading(difference, f"clipping per parameter (max_norm {max_norm!r})"))
    scale = _short(common) if all_wrong and not first else None
    if scale is not None and not any(_short(f.scale) == scale for f in fits):
        scale = None
    if scale is not None and one:
        simple.append(_scale_reading(fits[0], scale, lr))
    elif scale is not None and scale == 0.0:
        text = f"no parameter is updated: p_new = p{_zero_words(fits, 'the gradient')}"
        difference = Difference("scaled_step", text, 0.0)
        simple.append(_Reading(difference, "no update"))
    elif scale is not None and scale == -1.0:
        text = "every parameter ascends: p_new = p + lr * dL_dp (the sign is flipped)"
        simple.append(_Reading(Difference("sign_flip", text, -1.0), "every step ascending"))
    elif scale is not None:
        text = f"every parameter's step is scaled by {scale!r}: " + steps.format(
            c=f"{scale!r} * lr"
        )
        simple.append(
            _Reading(Difference("scaled_step", text, scale), f"every step scaled by {scale!r}")
        )
    signs = _intersect(f.sign for f in fits)
    if all_wrong and _singles_out(signs, 1.0) and any(_singles_out(f.sign, 1.0) for f in fits):
        exact = all(f.sign_exact for f in fits)
        if one:
            simple += [
                r
                for r in _parameter_readings(fits[0], lr)
                if r.difference.kind == "normalized_step"
            ]
        else:
            text = (
                "every parameter moves by lr * sign(its gradient): the first step of an adaptive "
                "optimizer such as Adam (lr * g / (sqrt(g^2) + eps))"
            )
            difference = Difference("normalized_step", text, 1.0, exact=exact)
            simple.append(_Reading(difference, "a sign step (Adam)"))
    simpler = (
        scale is not None
        and clips
        and (scale == 0.0 or significant_digits(scale) < max_norm_digits)
    )
    readings = first + (simple + clips if simpler else clips + simple)
    if readings:
        return [_combined(readings)]
    wrong = [f for f in fits if not f.right]
    differences = [_parameter_difference(f, lr) for f in wrong]
    suffix = _right_words(fits, [f.name for f in wrong])
    if suffix:
        last = differences[-1]
        differences[-1] = dataclasses.replace(last, text=last.text + suffix)
    return differences
