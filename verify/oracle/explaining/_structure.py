"""What the candidate actually computes, read on exact probes after a failure: the structural
readings of the registry's ``STRUCTURES`` records, each a ``Reading`` that names a cause by the
difference between what was read and the contract.

- a (bi)linear result (forward's output, grad_x's dL_dx, grad_w's dL_dw, grad_b's dL_db): its
  **term map** (``_terms``): which products of input elements it sums, with which weights;
- loss_grad's dL_do: its **branch table** (``_branches``): what it returns where output >
  target, where output < target and at ties;
- the loss: its **weight table** (``_weights``): which elements of |output - target| it sums,
  with which weights, or another function of them;
- an update, and the fused step's new parameters: each parameter's **update**, fitted on its own
  (``_updates``), so that b's bug is never named as w's.

A reading is made where the judge kept a wrong result of one of these (a value outside its
bound), on probe sides past the edges of the blocks kernels use (``READ_SIDES``) and at least the
counterexample's, with probe values exact in every dtype: a difference read there is exact, and
beats any fit within a widened bound. A result that matches the contract on those probes is not
wrong by structure (a rounding or value-dependent effect is left to the patterns); one that is
not (bi)linear or element-wise there says so and names nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ... import bounds
from .._contract import signature_for
from .._diagnoses import Diagnosis
from .._settings import Settings
from ..candidate import Caller, Outcome, Returned
from ..judging import Case, Finding, expected_under, mantissa_bits, meeting
from . import _branches, _hints, _terms, _updates, _weights
from ._fitted import least_squares
from ._readings import Difference

#: The sides a reading probes at least, N, I, O: each past the edge of a block of 8 to 128 (and
#: not one past it, where a partial block of one is also a loop one short), as the probes'
#: ``BLOCKS_SHAPE``; a side of the counterexample's that is larger is kept (a declared tile).
READ_SIDES = (130, 131, 133)

#: The smallest (N, O) an element-wise reading probes: N, O and N*O distinct, so that a mean
#: over one is told from a mean over another.
ELEMENTWISE_SIDES = (5, 4)

#: What a reading found: a structural ``DIFFERS`` from the contract (its cause named), the
#: ``CONTRACT`` itself on the probes, or ``UNDECIDED`` (not (bi)linear or element-wise there, a
#: call that failed, elements not decoded: nothing named).
DIFFERS, CONTRACT, UNDECIDED = "differs", "contract", "undecided"


@dataclasses.dataclass(frozen=True)
class Reading:
    """A structural reading of one failing result.

    Attributes:
      status: ``DIFFERS``, ``CONTRACT`` or ``UNDECIDED``.
      kind: the cause named (``DIFFERS`` only).
      lines: what was read, in words: the differences, or why nothing is named.
      calls: the probe calls it cost.
      where: the probes' sides, in words (``N=130, I=131, O=133``).
      value: the named difference's constant (a scale, an offset), if it has one.
      ruled_out: causes the reading shows the result is not (``UNDECIDED`` only): an update
        that no scaled step, weight decay or sign step fits is none of those, whatever a
        pattern fitted on a smaller case.
    """

    status: str
    kind: Diagnosis | None
    lines: tuple[str, ...]
    calls: int
    where: str
    value: float | None = None
    ruled_out: frozenset[Diagnosis] = frozenset()

    @property
    def detail(self) -> str:
        """The reading in one line: its differences, then where and at what cost."""
        calls = f"{self.calls} probe call" + ("s" if self.calls != 1 else "")
        read = f"read on {self.where} in {calls}" if self.where else f"read in {calls}"
        return f"{'; '.join(self.lines)} ({read})"


#: ``(caller, case, finding, settings) -> Reading or None`` (None: nothing to read here).
Reader = Callable[[Caller, Case, Finding, Settings], "Reading | None"]


def _sides_words(sizes: dict[str, int]) -> str:
    return ", ".join(f"{label.upper()}={size}" for label, size in sizes.items())


def _first_result(
    caller: Caller, function: str, arrays: Sequence[np.ndarray], lr: float | None
) -> np.ndarray | None:
    """The first result of one call as float64, or None where the call gave no real array (it
    raised, hung, crashed, or returned something else: a reading then says it failed)."""
    outcome = caller.call(function, list(arrays), lr)
    if not isinstance(outcome, Returned) or not outcome.results:
        return None
    result = outcome.results[0]
    if isinstance(result, str) or mantissa_bits(result.dtype) is None:
        return None
    return result.astype(np.float64)


# --------------------------------------------------------------------------------------------
# The term map of a (bi)linear result.
# --------------------------------------------------------------------------------------------


def _scale_kind(value: float | None, sizes: dict[str, int]) -> Diagnosis:
    """A map with every term times ``value``: a sign flip (-1, or -1 over a product of dims:
    the sign flipped and a mean, one bug), a mean (1 over a product of dims), else a scale."""
    if value is None:
        return Diagnosis.SCALED
    dims = {sizes[label] for label in sizes} | {
        sizes[a] * sizes[b] for a in sizes for b in sizes if a < b
    }
    means = {1.0 / d for d in dims if d > 1}
    if value == -1.0 or any(np.isclose(-value, mean, rtol=1e-6) for mean in means):
        return Diagnosis.SIGN_FLIP
    if any(np.isclose(value, mean, rtol=1e-6) for mean in means):
        return Diagnosis.MEAN_INSTEAD_OF_SUM
    return Diagnosis.SCALED


#: The term map's differences, the most telling first: where several are read, the first names
#: the cause and every one is said.
_TERM_ORDER = ("zero", "transposed", "misplaced", "missing", "extra", "scaled", "offset")


def _term_kind(difference: _terms.Difference, function: str, sizes: dict[str, int], bias: bool):
    if difference.kind == "zero":
        return Diagnosis.NOT_COMPUTED
    if difference.kind == "transposed":
        return Diagnosis.TRANSPOSED
    if difference.kind == "misplaced":
        return Diagnosis.MISPLACED_TERMS
    if difference.kind == "missing":
        return Diagnosis.OFF_BY_ONE
    if difference.kind == "extra":
        return Diagnosis.EXTRA_TERMS
    if difference.kind == "scaled":
        return _scale_kind(difference.value, sizes)
    # An offset: a bias where the layer has none (per column, or the same everywhere), b twice.
    if function == "forward" and not bias:
        return Diagnosis.BIAS
    if function == "forward" and difference.text.startswith("b[o] is added"):
        return Diagnosis.BIAS_TWICE  # twice, or k times (a bias added in every split of K)
    return Diagnosis.OFFSET


def _small_integers(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Nonzero small integers: a bias the term map reads exactly in every dtype."""
    return rng.choice(np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]), size=shape)


def read_term_map(caller: Caller, case: Case, finding: Finding, settings: Settings) -> Reading:
    """The term map of the failing result of ``case.function`` (a key of ``_terms.CONTRACTS``)
    on ``READ_SIDES`` (or the counterexample's larger sides)."""
    function = case.function
    contract = _terms.CONTRACTS[function]
    n, i, o = case.shape or (1, 1, 1)
    grown = meeting((max(n, READ_SIDES[0]), max(i, READ_SIDES[1]), max(o, READ_SIDES[2])),
                    settings.multiples)  # fmt: skip
    sizes = {"n": grown[0], "i": grown[1], "o": grown[2]}
    dtype = bounds.numpy_dtype(settings.dtype)
    bias = function == "forward" and "b" in case.arrays
    b = _small_integers(np.random.default_rng(130), (sizes["o"],)) if bias else None

    def call(left: np.ndarray, right: np.ndarray | None) -> np.ndarray | None:
        arrays = [left.astype(dtype)]
        if right is not None:
            arrays.append(right.astype(dtype))
        if b is not None:
            arrays.append(b.astype(dtype))
        return _first_result(caller, function, arrays, None)

    found = _terms.term_map(call, contract, sizes, dtype, offset=b)
    where = _sides_words(sizes)
    if found.status == "contract":
        return Reading(CONTRACT, None, tuple(found.lines()), found.calls, where)
    lines = tuple(d.text for d in found.differences)
    if not _telling(found):
        return Reading(UNDECIDED, None, lines, found.calls, where)
    structural = [d for d in found.differences if d.kind in _TERM_ORDER]
    first = min(structural, key=lambda d: _TERM_ORDER.index(d.kind))
    if first.kind == "missing" and _constant(found):
        # every term missing, a constant instead: a gradient ignores dL_do; forward computes
        # nothing from its inputs
        ignored = function.startswith("grad_")
        kind = Diagnosis.UPSTREAM_IGNORED if ignored else Diagnosis.NOT_COMPUTED
    else:
        kind = _term_kind(first, function, sizes, bias)
    if kind is Diagnosis.BIAS:
        lines = tuple(
            f"{line}: {_hints.BIAS_TERM}" if line == first.text else line for line in lines
        )
    if first.kind == "scaled" and first.fraction == 1.0 and first.value is not None:
        read = (sizes["n"], sizes["i"], sizes["o"])
        lines = (*lines, *_scale_on(case, finding, settings, first.value, read))
    return Reading(DIFFERS, kind, lines, found.calls, where, first.value)


def _dims_formulas(sizes: Sequence[int]) -> dict[tuple, float]:
    """Constants of the dims a scale may be: +-c * P or +-c / P for c in 1, 2, 1/2 and P a
    product of a subset of (N, I, O), by a key that names the formula whatever the dims."""
    found = {}
    for mask in range(8):
        product = float(np.prod([s for k, s in enumerate(sizes) if mask >> k & 1]))
        for sign in (1.0, -1.0):
            for coefficient in (1.0, 2.0, 0.5):
                for power in (1, -1):
                    found[(mask, sign, coefficient, power)] = sign * coefficient * product**power
    return found


def _same_formula(value: float, sizes: Sequence[int], own: float, shape: Sequence[int]) -> bool:
    """Whether one formula of the dims gives ``value`` on ``sizes`` and ``own`` on ``shape``
    (a mean over N read on N = 130 is 1/130, on N = 2 one half: the same bug)."""
    here, there = _dims_formulas(sizes), _dims_formulas(shape)
    return any(
        np.isclose(here[key], value, rtol=1e-6) and np.isclose(there[key], own, rtol=1e-3)
        for key in here
    )


def _scale_on(
    case: Case, finding: Finding, settings: Settings, value: float, sizes: Sequence[int]
) -> tuple[str, ...]:
    """Where a scale read on the probes is not the counterexample's own factor, both are said
    (the factor depends on the shape, or on the values): a reading the counterexample
    contradicts is not stated alone."""
    if finding.actual is None or finding.result is None:
        return ()
    right = expected_under(case, settings)
    center = right[finding.result].center
    own = least_squares(finding.actual, center)
    if own is None or np.isclose(own, value, rtol=1e-3, atol=0.0):
        return ()
    if case.shape is not None and _same_formula(value, sizes, own, case.shape):
        return ()  # 1/N on both: the same constant of the dims
    return (
        f"x {own:.6g} on the counterexample {case.describe()}: the factor depends on the shape "
        "or the values",
    )


def _telling(found: _terms.TermMap) -> bool:
    """Whether a term map names a cause: read (decoded, or at most half its elements not),
    with structural differences that are mostly in a simple pattern (misplaced terms in none
    are described, but a cause read from them would be a guess)."""
    if found.status not in ("decoded", "not_decoded"):
        return False
    share = {kind: sum(d.fraction for d in found.differences if d.kind == kind) for kind in
             ("not_decoded", "scattered", "misplaced", "transposed")}  # fmt: skip
    if share["not_decoded"] >= 0.5:
        return False
    if share["scattered"] > share["misplaced"] + share["transposed"]:
        return False
    return any(d.kind in _TERM_ORDER for d in found.differences)


def _constant(found: _terms.TermMap) -> bool:
    """A map that lacks every term and has a constant part instead."""
    kinds = {d.kind for d in found.differences}
    everywhere = any(d.kind == "missing" and d.fraction == 1.0 for d in found.differences)
    return everywhere and "offset" in kinds


# --------------------------------------------------------------------------------------------
# The branch table of loss_grad, the weight table of the loss.
# --------------------------------------------------------------------------------------------

#: The branch and weight tables' kinds, by the cause each names; ``None``: nothing is named.
_TABLE_KINDS: dict[str, Diagnosis | None] = {
    "sign_flip": Diagnosis.SIGN_FLIP,
    "flipped_mean": Diagnosis.SIGN_FLIP,
    "scaled": Diagnosis.SCALED,
    "mean": Diagnosis.MEAN_INSTEAD_OF_SUM,
    "wrong_loss": Diagnosis.WRONG_LOSS,
    "tie_convention": Diagnosis.TIE_CONVENTION,
    "nan": Diagnosis.NAN,
    "epsilon": Diagnosis.WRONG_BRANCH,
    "branch": Diagnosis.WRONG_BRANCH,
    "ignores_input": Diagnosis.WRONG_BRANCH,
    "partial": Diagnosis.OFF_BY_ONE,
    "zero": Diagnosis.NOT_COMPUTED,
    "not_elementwise": None,
    "not_weighted_sum": None,
    "no_result": None,
}


def _table_reading(differences: Sequence[Difference], calls: int, where: str) -> Reading:
    if not differences:
        return Reading(CONTRACT, None, ("the contract on every probe",), calls, where)
    kinds = [_TABLE_KINDS.get(d.kind) for d in differences]
    lines = tuple(d.text for d in differences)
    named = [(kind, d) for kind, d in zip(kinds, differences, strict=True) if kind is not None]
    if not named or any(kind is None for kind in kinds):
        return Reading(UNDECIDED, None, lines, calls, where)
    kind, first = named[0]
    return Reading(DIFFERS, kind, lines, calls, where, first.value)


def _elementwise_sides(case: Case, settings: Settings) -> tuple[int, int]:
    n, _, o = case.shape or (1, 1, 1)
    met = meeting(
        (max(n, ELEMENTWISE_SIDES[0]), 1, max(o, ELEMENTWISE_SIDES[1])), settings.multiples
    )
    return met[0], met[2]


def _output_target_call(
    caller: Caller, function: str, dtype: np.dtype, scalar: bool
) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None]:
    """``function(output, target)`` in the dtype; a result of another shape than the contract's
    (a scalar loss, an (N, O) gradient) is no result."""

    def call(output: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        found = _first_result(caller, function, [output.astype(dtype), target.astype(dtype)], None)
        shape = () if scalar else output.shape
        return found if found is not None and found.shape == shape else None

    return call


def read_branch_table(caller: Caller, case: Case, finding: Finding, settings: Settings) -> Reading:
    """loss_grad's branch table on (N, O) of at least ``ELEMENTWISE_SIDES``."""
    n, o = _elementwise_sides(case, settings)
    dtype = bounds.numpy_dtype(settings.dtype)
    table = _branches.loss_grad_table(
        _output_target_call(caller, "loss_grad", dtype, False), n, o, dtype, tie=settings.tie
    )
    return _table_reading(table.differences, table.calls, f"N={n}, O={o}")


#: Where a loss is 0 on the weight table's sides, the sides it is read again on: past a block
#: of 128 rows, and of 128 elements of the flattened (N, O), where a loop over whole blocks
#: that runs none on small sides sums some.
BLOCK_LOSS_SIDES = (130, 4)


def read_loss_weights(caller: Caller, case: Case, finding: Finding, settings: Settings) -> Reading:
    """The loss's weight table on (N, O) of at least ``ELEMENTWISE_SIDES``; where L is 0 there,
    again on ``BLOCK_LOSS_SIDES`` (N + O + 5 calls more), whose table is said where it sums
    anything ("L weights |output - target| by 1 except rows 128..129 (weight 0)")."""
    n, o = _elementwise_sides(case, settings)
    dtype = bounds.numpy_dtype(settings.dtype)
    call = _output_target_call(caller, "loss", dtype, True)
    table = _weights.loss_weights(call, n, o, dtype)
    where = f"N={n}, O={o}"
    if [d.kind for d in table.differences] == ["zero"] and n < BLOCK_LOSS_SIDES[0]:
        met = meeting((max(n, BLOCK_LOSS_SIDES[0]), 1, max(o, BLOCK_LOSS_SIDES[1])),
                      settings.multiples)  # fmt: skip
        again = _weights.loss_weights(call, met[0], met[2], dtype)
        if [d.kind for d in again.differences] != ["zero"]:
            zero = f"{table.differences[0].text} on {where}"
            larger = f"N={met[0]}, O={met[2]}"
            reading = _table_reading(
                again.differences, table.calls + again.calls, f"{where} and {larger}"
            )
            first, *rest = reading.lines
            return dataclasses.replace(reading, lines=(zero, f"on {larger}: {first}", *rest))
    return _table_reading(table.differences, table.calls, where)


# --------------------------------------------------------------------------------------------
# Each parameter's update.
# --------------------------------------------------------------------------------------------

_UPDATE_KINDS: dict[str, Diagnosis | None] = {
    "scaled_step": Diagnosis.SCALED_STEP,
    "clipped_global_norm": Diagnosis.SCALED_STEP,
    "clipped_norm": Diagnosis.SCALED_STEP,
    "weight_decay": Diagnosis.WEIGHT_DECAY,
    "normalized_step": Diagnosis.NORMALIZED_STEP,
    "nan": Diagnosis.NAN,
    "zero": Diagnosis.NOT_COMPUTED,
    "update": None,
}

#: What an update that fits none of ``_updates``' models is not.
_UPDATE_MODELS = frozenset(
    {Diagnosis.SCALED_STEP, Diagnosis.WEIGHT_DECAY, Diagnosis.NORMALIZED_STEP, Diagnosis.SIGN_FLIP}
)


#: Narrower dtypes a scalar may pass through, per dtype checked (lr cast to an argument's or a
#: constant's dtype).
_NARROWER: dict[str, tuple[str, ...]] = {
    "float64": ("float32", "bfloat16", "float16"),
    "float32": ("bfloat16", "float16"),
    "bfloat16": (),
    "float16": (),
}


def _lr_rounded(lr: float, scale: float, dtype: str) -> str | None:
    """Where a step's scale is what lr rounded through a narrower dtype gives: its words."""
    for narrow in _NARROWER[dtype]:
        rounded = float(np.asarray(lr, bounds.numpy_dtype(narrow)))
        if rounded not in (lr, 0.0) and np.isclose(scale, rounded / lr, rtol=2e-5, atol=0.0):
            return (
                f"lr was used as {rounded:.12g}, {narrow}({lr!r}): lr passed through a {narrow} "
                "argument or constant"
            )
    return None


def _update_reading(fit: _updates.UpdateFit, calls: int, lr: float, dtype: str) -> Reading:
    differences = fit.differences
    if not differences:
        return Reading(CONTRACT, None, ("every parameter's update is the contract's",), calls, "")
    lines = tuple(d.text for d in differences)
    first = differences[0]
    kind = _UPDATE_KINDS.get(first.kind)
    if kind is None:
        # Every wrong parameter fits none of the models: those causes are ruled out.
        none = all(d.kind == "update" for d in differences)
        return Reading(
            UNDECIDED, None, lines, calls, "", ruled_out=_UPDATE_MODELS if none else frozenset()
        )
    rounded = _lr_rounded(lr, first.value, dtype) if first.value is not None else None
    if kind is Diagnosis.SCALED_STEP and rounded is not None:
        return Reading(DIFFERS, kind, (rounded, *lines[1:]), calls, "", first.value)
    if kind is Diagnosis.SCALED_STEP and first.value == -1.0:
        kind = Diagnosis.SIGN_FLIP  # ascent: p + lr * dL_dp
    if kind is Diagnosis.SCALED_STEP and first.value == 0.0 and first.parameter == "b":
        kind = Diagnosis.BIAS_NOT_UPDATED
    return Reading(DIFFERS, kind, lines, calls, "", first.value)


#: The smallest parameter an update is fitted on: enough elements, of distinct magnitudes, to
#: tell a weight decay (proportional to w) from a scaled step (proportional to dL_dw).
UPDATE_SIDES = (3, 4)


def read_update(caller: Caller, case: Case, finding: Finding, settings: Settings) -> Reading | None:
    """The update of the one parameter a call of ``update`` moves (w, or b), fitted on one call
    with normal values, the counterexample's lr and at least ``UPDATE_SIDES``: a counterexample
    of one element fits a decay and a scale alike."""
    if case.lr is None:
        return None
    name = "b" if "b" in case.arrays else "w"
    parameter = case.arrays[name]
    grown = tuple(
        max(a, b) for a, b in zip(parameter.shape, UPDATE_SIDES[-parameter.ndim :], strict=True)
    )
    # w is (I, O) and b (O,): their sides meet a declared precondition as I and O do.
    met = meeting((1, *((1,) * (2 - len(grown))), *grown), settings.multiples)
    sides = tuple(met[3 - len(grown) :])
    dtype = bounds.numpy_dtype(settings.dtype)
    rng = np.random.default_rng(20261)
    p = rng.standard_normal(sides).astype(dtype)
    g = (3 * rng.standard_normal(sides)).astype(dtype)
    new = _first_result(caller, "update", [p, g], case.lr)
    if new is None or new.shape != p.shape:
        return None
    fit = _updates.parameter_updates({name: (p, g, new)}, case.lr, dtype)
    where, calls = _shape_words(name, sides), 1
    if _read_again(fit, case.lr, settings.dtype):
        again = _first_result(caller, "update", [p, g], AGAIN_LR)
        calls += 1
        if again is not None and again.shape == p.shape:
            params = {name: (p, g, again)}
            fit = _updates.parameter_updates(
                {name: (p, g, new)}, case.lr, dtype, again=(params, AGAIN_LR)
            )
            where += _again_words(case.lr)
    reading = _update_reading(fit, calls, case.lr, settings.dtype)
    return dataclasses.replace(reading, where=where)


#: The lr a step is read at again where the counterexample's leaves its constant unnamed: a
#: weight decay's ``lr lambda w`` is then against w's rounding as large as it gets in a step.
AGAIN_LR = 0.5


def _read_again(fit: _updates.UpdateFit, lr: float, dtype: str) -> bool:
    """Whether a step is worth reading again at ``AGAIN_LR``: a difference left unnamed (its
    constant too wide to name against the rounding of ``p``, and no rounded lr), at a smaller
    lr."""
    if not fit.differences or _updates.named(fit) or abs(lr) >= AGAIN_LR:
        return False
    value = fit.differences[0].value
    return value is None or _lr_rounded(lr, value, dtype) is None


def _again_words(lr: float) -> str:
    return f", at lr = {lr!r} and again at lr = {AGAIN_LR!r}"


def _shape_words(name: str, sides: tuple[int, ...]) -> str:
    return f"{name} of shape {sides}"


#: The smallest (N, I, O) a step's update is fitted on (as ``_probes.PROBE_SHAPE``: N, I, O all
#: different).
STEP_SIDES = (5, 3, 4)


def _step_probe(
    case: Case, dtype: np.dtype, multiples: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """A step's arguments with normal values on at least ``STEP_SIDES`` (meeting a declared
    precondition), targets 0.5 or 1.5 away from the outputs (no tie, no crossing of a kink by
    rounding)."""
    sides = case.shape or (1, 1, 1)
    grown = (
        max(sides[0], STEP_SIDES[0]),
        max(sides[1], STEP_SIDES[1]),
        max(sides[2], STEP_SIDES[2]),
    )
    n, i, o = meeting(grown, multiples)
    rng = np.random.default_rng(20262)
    x = rng.standard_normal((n, i)).astype(dtype)
    w = rng.standard_normal((i, o)).astype(dtype)
    output = x.astype(np.float64) @ w.astype(np.float64)
    arrays = {"x": x, "w": w}
    if "b" in case.arrays:
        b = rng.standard_normal(o).astype(dtype)
        arrays["b"] = b
        output = output + b.astype(np.float64)
    offsets = rng.choice([-1.5, -0.5, 0.5, 1.5], size=(n, o))
    arrays["target"] = (output + offsets).astype(dtype)
    return arrays


def read_step_update(
    caller: Caller, case: Case, finding: Finding, settings: Settings
) -> Reading | None:
    """The fused step's new parameters, each fitted against the step's own gradients of one
    call with normal values, the counterexample's lr and at least ``STEP_SIDES`` (a
    counterexample of one element fits a decay and a scale alike)."""
    lr = case.lr
    if lr is None:
        return None
    probe = _step_probe(case, bounds.numpy_dtype(settings.dtype), settings.multiples)
    params = _step_params(case, probe, caller.call("step", list(probe.values()), lr))
    if params is None:
        return None
    fit = _updates.parameter_updates(params, lr, bounds.numpy_dtype(settings.dtype))
    n, i, o = probe["x"].shape + probe["w"].shape[1:]
    where, calls = f"N={n}, I={i}, O={o}", 1
    if _read_again(fit, lr, settings.dtype):
        calls += 1
        again = _step_params(case, probe, caller.call("step", list(probe.values()), AGAIN_LR))
        if again:
            fit = _updates.parameter_updates(
                params, lr, bounds.numpy_dtype(settings.dtype), again=(again, AGAIN_LR)
            )
            where += _again_words(lr)
    reading = _update_reading(fit, calls, lr, settings.dtype)
    return dataclasses.replace(reading, where=where)


def _step_params(
    case: Case, probe: dict[str, np.ndarray], outcome: Outcome
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """Each parameter's ``(p, dL_dp, p_new)`` from one step on ``probe``; None where the call
    gave no arrays, or one of the wrong shape (its own check says so)."""
    if not isinstance(outcome, Returned):
        return None
    results = [result for result in outcome.results if not isinstance(result, str)]
    if len(results) != len(outcome.results):
        return None
    by_name = dict(zip(_step_results(case), results, strict=False))
    params: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name in ("w", "b"):
        if name in probe and f"dL_d{name}" in by_name and f"{name}_new" in by_name:
            gradient, new = by_name[f"dL_d{name}"], by_name[f"{name}_new"]
            if gradient.shape != probe[name].shape or new.shape != probe[name].shape:
                return None
            params[name] = (probe[name], gradient, new)
    return params or None


def _step_results(case: Case) -> tuple[str, ...]:
    return signature_for("step", tuple(case.arrays)).results


# --------------------------------------------------------------------------------------------
# The fused step's own forward, loss and loss_grad, read through the step.
# --------------------------------------------------------------------------------------------

#: The step's parts are read with x the identity (N = I), so that its own output is w (+ b)
#: and its dL_dw is its own dL_do: (N, O) of ``ELEMENTWISE_SIDES``.
_FAR = 8.0

#: The most elements of the step's own output read one call each (``_own_output_offset``).
MAX_OWN_OUTPUT_READ = 64


def _step_through(
    caller: Caller, case: Case, dtype: np.dtype, n: int, o: int
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...] | None]:
    """``step(x = I, w = output - b, (b,) target, lr)``'s results for a chosen own output and
    target: with x the identity the step's output is w (+ b) and its dL_dw its dL_do."""
    eye = np.eye(n)
    lr = case.lr if case.lr is not None else 2.0**-4
    # A bias of small integers, so that a step that forgets it, or adds it again, shows.
    b = _small_integers(np.random.default_rng(131), (o,)) if "b" in case.arrays else None

    def call(output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, ...] | None:
        w = output if b is None else output - b
        arrays = [eye.astype(dtype), w.astype(dtype)]
        if b is not None:
            arrays.append(b.astype(dtype))
        arrays.append(target.astype(dtype))
        outcome = caller.call("step", arrays, lr)
        if not isinstance(outcome, Returned):
            return None
        results = outcome.results
        if any(isinstance(r, str) or mantissa_bits(r.dtype) is None for r in results):
            return None
        return tuple(np.asarray(r, np.float64) for r in results)

    return call


def _own_output_offset(
    through: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...] | None],
    n: int,
    o: int,
    u: float,
) -> tuple[np.ndarray | None, int, float]:
    """What the step adds to its own output, per element, and the calls it took: with every
    target ``_FAR`` above an exactly known output, ``L = sum (t - output')``; one element's
    target moved ``_FAR`` below changes L by twice that element's offset from the contract.
    None where a call failed, its dL_dw (its dL_do) does not show the signs the targets set,
    or the rounding of L hides an offset of an element (``gamma_{N*O}(u) L``)."""
    rng = np.random.default_rng(20263)
    output = rng.integers(-2, 3, size=(n, o)).astype(np.float64)
    above = output + _FAR
    base = through(output, above)
    calls = 1
    if base is None or base[0].shape != () or base[2].shape != (n, o):
        return None, calls, 0.0
    if not np.all(base[2] == -1.0):
        return None, calls, 0.0  # its own dL_do is not -1 where every target is above
    offsets = np.zeros((n, o))
    slack = bounds.gamma(n * o + 2, u) * abs(float(base[0])) + 1e-30
    for index in np.ndindex(n, o):
        target = above.copy()
        target[index] = output[index] - _FAR
        moved = through(output, target)
        calls += 1
        if moved is None or moved[0].shape != () or moved[2][index] != 1.0:
            return None, calls, slack
        offsets[index] = 0.5 * (float(moved[0]) - float(base[0]))
    if slack >= 0.25 * max(float(np.max(np.abs(offsets))), 1e-300) and np.any(offsets):
        return None, calls, slack  # an offset as small as L's rounding: not read
    return np.where(np.abs(offsets) <= slack, 0.0, offsets), calls, slack


def _short_within(value: float, slack: float) -> str:
    """``value`` in the fewest significant digits that stay within ``slack`` of it."""
    for digits in range(1, 16):
        text = f"{value:.{digits}g}"
        if abs(float(text) - value) <= slack:
            return text
    return repr(value)


def _offset_words(offsets: np.ndarray, slack: float) -> str:
    """``+0.1 on every element``, ``+c[o] per column (c = 1, -2, ...)``, or where it is; values
    that agree within ``slack`` (the rounding of the reading) are one."""
    first = float(np.median(offsets))
    if np.all(np.abs(offsets - first) <= slack):
        return f"{'+' if first > 0 else ''}{_short_within(first, slack)} on every element"
    column = np.median(offsets, axis=0)
    if np.all(np.abs(offsets - column[None, :]) <= slack):
        shown = ", ".join(_short_within(float(c), slack) for c in column[:6])
        return f"+c[o] per column (c = {shown}{', ...' if column.size > 6 else ''})"
    rows = np.flatnonzero(np.any(offsets != 0, axis=1))
    return f"an offset on {int(np.count_nonzero(offsets))} elements, in rows {rows.tolist()}"


def read_step_parts(
    caller: Caller, case: Case, finding: Finding, settings: Settings
) -> Reading | None:
    """The fused step's own forward, loss and loss_grad, read through the step itself where its
    pieces do not explain it (a constant added inside the step only, a bias the step forgets):
    with x the identity its output is w (+ b) and its dL_dw its dL_do. First what it adds to its
    own output (``_own_output_offset``); where nothing, its loss's weights and its loss_grad's
    branch table, read as ``_weights`` and ``_branches`` read the pieces."""
    # x is the identity: N = I, a multiple of both sides' declared multiples.
    square = math.lcm(settings.multiples[0], settings.multiples[1])
    n = -(-ELEMENTWISE_SIDES[0] // square) * square
    o = meeting((1, 1, ELEMENTWISE_SIDES[1]), settings.multiples)[2]
    if n * o > MAX_OWN_OUTPUT_READ:
        return None  # one call per element: past the budget under this precondition
    dtype = bounds.numpy_dtype(settings.dtype)
    u = bounds.UNIT_ROUNDOFF[settings.dtype]
    through = _step_through(caller, case, dtype, n, o)
    where = f"the step's own parts, with x = I (N=I={n}, O={o})"
    offsets, calls, slack = _own_output_offset(through, n, o, u)
    if offsets is not None and np.any(offsets):
        words = _offset_words(offsets, slack)
        line = f"the step's own output is x @ w{' + b' if 'b' in case.arrays else ''} {words}"
        b = _small_integers(np.random.default_rng(131), (o,)) if "b" in case.arrays else None
        if b is not None and np.all(np.abs(offsets + b[None, :]) <= slack):
            line = "the step's own output lacks b: the step forgets the bias its forward adds"
        elif b is not None and np.all(np.abs(offsets - b[None, :]) <= slack):
            line = "the step's own output adds b twice"
        return Reading(DIFFERS, Diagnosis.OFFSET, (line,), calls, where, float(offsets.flat[0]))
    if offsets is None:
        return Reading(UNDECIDED, None, ("the step's own output could not be read",), calls, where)

    def own_loss(output: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        results = through(output, target)
        return None if results is None or results[0].shape != () else results[0]

    def own_loss_grad(output: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        results = through(output, target)
        return None if results is None or results[2].shape != output.shape else results[2]

    loss = _weights.loss_weights(own_loss, n, o, dtype)
    calls += loss.calls
    if loss.differences:
        reading = _table_reading(loss.differences, calls, where)
        return dataclasses.replace(
            reading, lines=tuple(f"the step's own {t}" for t in reading.lines)
        )
    grad = _branches.loss_grad_table(own_loss_grad, n, o, dtype, tie=settings.tie)
    calls += grad.calls
    if grad.differences:
        reading = _table_reading(grad.differences, calls, where)
        return dataclasses.replace(
            reading, lines=tuple(f"the step's own {t}" for t in reading.lines)
        )
    # Its gradients' matmuls and its update are not read here: nothing is cleared by this.
    line = "its own forward, loss and loss_grad are the contract's"
    return Reading(UNDECIDED, None, (line,), calls, where)
