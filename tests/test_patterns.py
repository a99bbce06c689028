"""verify.oracle.explaining._patterns and _diagnosis.diagnose on hand-built cases (no worker, no
search): every pattern is named on its own bug and on no other, a case too small to tell patterns
apart lists them instead of naming one, and an error inside a pattern is never swallowed."""

from __future__ import annotations

import numpy as np
import pytest

from tests import zoo
from verify.oracle._diagnoses import Diagnosis
from verify.oracle._settings import Settings
from verify.oracle.explaining import _diagnosis, _patterns, _probes
from verify.oracle.explaining._diagnosis import diagnose
from verify.oracle.judging import _checks, expect
from verify.oracle.judging._cases import Case
from verify.oracle.judging._findings import check_result, region

#: Every hand-made case of the zoo (``zoo.Probe``), with the mutant whose broken function it calls.
PROBED = [(mutant, probe) for mutant in zoo.ZOO for probe in mutant.probes]


def _probe_id(mutant: zoo.Mutant, probe: zoo.Probe) -> str:
    return mutant.name if probe.function is None else f"{mutant.name}.{probe.function}"


def _case(function: str, shape: tuple[int, int, int], data: str = "normal", dtype: str = "float32",
          lr: float | None = 0.01, bias: bool = False) -> Case:  # fmt: skip
    check = _checks.CHECKS[function]
    return _probes.probe_case(check, dtype, data, shape, lr, bias=bias)


def _broken(cls: type, function: str, result: str, case: Case, bias: bool) -> np.ndarray:
    """``result`` of the zoo class's own ``function`` called on the case (copies of its arrays,
    then its lr): a fused step's tuple is read by the names of the contract's results."""
    arguments = [array.copy() for array in case.arrays.values()]
    returned = getattr(cls(), function)(*arguments, *(() if case.lr is None else (case.lr,)))
    if isinstance(returned, tuple):
        results = _checks.CHECKS[function].signature_for(Settings(bias=bias).parameters).results
        returned = dict(zip(results, returned, strict=True))[result]
    return np.asarray(returned, np.float64)


def _diagnosed(mutant: zoo.Mutant, probe: zoo.Probe) -> tuple[_diagnosis.Diagnosed, Diagnosis]:
    """The mutant's broken function on its probe, diagnosed with its options; and the diagnosis
    the mutant declares there."""
    function, kind = mutant.probed(probe)
    settings = Settings(**mutant.options, bias=mutant.bias)
    case = _case(function, probe.shape, probe.data, settings.dtype, bias=mutant.bias)
    actual = _broken(mutant.cls, function, probe.result, case, mutant.bias)
    return diagnose(probe.result, actual, case, settings), Diagnosis(kind)


@pytest.mark.parametrize(("mutant", "probe"), PROBED, ids=[_probe_id(*each) for each in PROBED])
def test_each_pattern_is_named_on_its_own_bug(mutant: zoo.Mutant, probe: zoo.Probe) -> None:
    found, kind = _diagnosed(mutant, probe)
    finding = found.finding(probe.result)
    assert finding.kind is kind, finding.detail
    assert not finding.ambiguous


@pytest.mark.parametrize(("mutant", "probe"), PROBED, ids=[_probe_id(*each) for each in PROBED])
def test_no_other_pattern_fits_a_bug_clearly(mutant: zoo.Mutant, probe: zoo.Probe) -> None:
    """The confusion matrix of the patterns is diagonal: on each bug, the only pattern that
    fits clearly (not on too few elements) is the bug's own."""
    found, kind = _diagnosed(mutant, probe)
    clear = {c.kind for c in found.candidates() if not c.unclear}
    assert clear == {kind}, [(c.kind, c.detail) for c in found.candidates()]


def test_every_value_pattern_is_probed_on_a_bug_of_its_own() -> None:
    """Each pattern has a probe that names it, but two that one case cannot name: the
    accumulated gradient (two calls, not one case: the zoo's AccumulatingGradW through the
    oracle) and a loss's shifted pairs (misplaced_terms reads L alone, one element on which any
    constant fits as well: the oracle names it once probes tell the two apart)."""
    probed = {Diagnosis(mutant.probed(probe)[1]) for mutant, probe in PROBED}
    patterns = {pattern.kind for pattern in _patterns.PATTERNS}
    assert patterns - probed == {Diagnosis.ACCUMULATED_GRADIENT, Diagnosis.MISPLACED_TERMS}


@pytest.mark.parametrize(
    ("cls", "function", "result", "shape", "words"),
    [
        (zoo.BiasAxisForward, "forward", "output", (1, 3, 4), "broadcasts to (4, 4)"),
        (zoo.BiasAxisGradB, "grad_b", "dL_db", (5, 3, 4), "shape (N,) = (5,)"),
    ],
    ids=["output (O, O)", "dL_db (N,)"],
)  # fmt: skip
def test_a_bias_on_the_wrong_axis_is_named_from_the_shape_it_gives(
    cls: type, function: str, result: str, shape: tuple[int, int, int], words: str
) -> None:
    """Where N != O numpy broadcasts b[:, None] to another shape, or sums to (N,): the wrong
    shape is the bias_axis bug's own, not a plain wrong_shape."""
    options = Settings(bias=True)
    case = _case(function, shape, bias=True)
    actual = _broken(cls, function, result, case, bias=True).astype(np.float32)
    right = expect(case, options.arithmetic())[result]
    _, judged = check_result(result, actual, right, case, options.dtype)
    assert judged is not None and judged.kind is Diagnosis.WRONG_SHAPE  # the judge's verdict
    finding = _diagnosis.named(judged, case, options)  # and its cause
    assert finding is not None and finding.kind is Diagnosis.BIAS_AXIS, finding
    assert words in finding.detail
    # Another shape, from another bug, stays wrong_shape.
    _, other = check_result(result, actual[..., :2], right, case, options.dtype)
    assert other is not None
    other = _diagnosis.named(other, case, options)
    assert other is not None and other.kind is Diagnosis.WRONG_SHAPE


def test_a_bias_twice_is_not_a_bias_of_a_layer_without_one() -> None:
    """On a layer without b, an offset down each column stays ``bias`` (bias_twice needs b)."""
    bias = zoo.declared(zoo.BiasForward)
    found, _ = _diagnosed(bias, *bias.probes)
    assert Diagnosis.BIAS_TWICE not in {c.kind for c in found.candidates()}


def test_every_diagnosis_has_one_record() -> None:
    """Every Diagnosis has one home: a pattern (one per kind), a judge-side verdict, or the
    structural readings that alone name it."""
    patterns = [pattern.kind for pattern in _patterns.PATTERNS]
    verdicts = [verdict.kind for verdict in _patterns.VERDICTS]
    structural = set().union(*(record.names for record in _patterns.STRUCTURES))
    assert len(patterns) == len(set(patterns)) and len(verdicts) == len(set(verdicts))
    homes = [set(patterns), set(verdicts), structural]
    assert all(not a & b for a in homes for b in homes if a is not b)
    assert set(patterns) | set(verdicts) | structural == set(Diagnosis)


def test_a_one_element_case_lists_candidates_instead_of_naming_one() -> None:
    """2 * (x @ w) on 1x1x1: a scale and a bias fit alike; neither is named."""
    case = _case("forward", (1, 1, 1))
    actual = _broken(zoo.TwiceForward, "forward", "output", case, bias=False)
    finding = diagnose("output", actual, case, Settings()).finding("output")
    assert finding.kind is Diagnosis.MISMATCH
    assert {c.kind for c in finding.candidates} >= {Diagnosis.SCALED, Diagnosis.BIAS}
    assert "scaled" in finding.detail and "bias" in finding.detail


@pytest.mark.parametrize("decay", [-1e-2, 1e-12])
def test_a_negative_or_vanishing_weight_decay_is_not_named(decay: float) -> None:
    """The zoo's weight decay bug with a decay that is no decay (it grows w, or is lost in
    float64's rounding)."""
    options = Settings(dtype="float64")
    case = _case("update", (5, 3, 4), dtype="float64")
    not_a_decay = type("NotADecay", (zoo.WeightDecayUpdate,), {"decay": decay})
    actual = _broken(not_a_decay, "update", "w_new", case, bias=False)
    kinds = {c.kind for c in diagnose("w_new", actual, case, options).candidates()}
    assert Diagnosis.WEIGHT_DECAY not in kinds


def test_an_error_inside_a_pattern_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(context: _patterns.Context):
        raise RuntimeError("a pattern's own bug")
        yield  # pragma: no cover

    raising = _patterns.Pattern(Diagnosis.SCALED, frozenset({"output"}), broken)
    monkeypatch.setattr(_diagnosis, "PATTERNS", (raising, *_patterns.PATTERNS))
    case = _case("forward", (5, 3, 4))
    with pytest.raises(RuntimeError, match="a pattern's own bug"):
        diagnose("output", np.zeros((5, 4)), case, Settings())


def test_region_names_rows_columns_and_blocks() -> None:
    wrong = np.zeros((257, 4), bool)
    wrong[128:] = True
    assert region(wrong) == "rows 128..256 of 257 (the rest right)"
    wrong = np.zeros((4, 1024), bool)
    wrong[:, 512:] = True
    assert region(wrong) == "columns 512..1023 of 1024 (the rest right)"
    wrong = np.zeros((6, 6), bool)
    wrong[1:3, 4:] = True
    assert region(wrong) == "rows 1..2 of 6 x columns 4..5 of 6 (the rest right)"
    wrong = np.eye(3, dtype=bool)
    assert (
        region(wrong) == "3 of 9 elements, in rows 0..2 of 3 and columns 0..2 of 3 (the rest right)"
    )
    wrong = np.zeros((130, 133), bool)
    wrong[128:] = wrong[:, 128:] = True
    assert region(wrong) == "rows 128..129 of 130 and columns 128..132 of 133 (the rest right)"
    assert region(np.ones((2, 2), bool)) == "every element"
    assert region(np.zeros((2, 2), bool)) == ""
    assert region(np.array(True)) == ""


def test_probe_shapes_keep_the_counterexamples_sides_and_stay_distinct() -> None:
    assert _probes.probe_shape((1, 1, 1)) == (5, 3, 4)
    assert _probes.probe_shape((129, 1, 1)) == (129, 3, 4)
    n, i, o = _probes.probe_shape((4, 4, 4))
    assert len({n, i, o}) == 3 and n not in (i * o,) and i != n * o and o != n * i
    assert _probes.probe_shape(None, "blocks") == _probes.BLOCKS_SHAPE


def test_a_tie_probe_has_ties_and_keeps_the_counterexamples_lr() -> None:
    case = _case("loss_grad", (5, 3, 4), "ties", lr=None)
    assert np.sum(case.arrays["output"] == case.arrays["target"]) > 0
    assert _case("update", (5, 3, 4), lr=0.01).lr == 0.01
