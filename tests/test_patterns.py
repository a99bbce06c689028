"""verify.oracle.explaining._patterns and _diagnosis.diagnose on hand-built cases (no worker, no
search): every pattern is named on its own bug and on no other, a case too small to tell patterns
apart lists them instead of naming one, and an error inside a pattern is never swallowed."""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest

from verify.oracle._diagnoses import Diagnosis
from verify.oracle._settings import Settings
from verify.oracle.explaining import _diagnosis, _patterns, _probes
from verify.oracle.explaining._diagnosis import diagnose
from verify.oracle.judging import _checks, expect
from verify.oracle.judging._cases import Case
from verify.oracle.judging._findings import check_result, region

A = dict[str, np.ndarray]


def _case(function: str, shape: tuple[int, int, int], data: str = "normal", dtype: str = "float32",
          lr: float | None = 0.01, bias: bool = False) -> Case:  # fmt: skip
    check = _checks.CHECKS[function]
    return _probes.probe_case(check, dtype, data, shape, lr, bias=bias)


def _step_with_b_twice(a: A, lr: float) -> np.ndarray:
    output = a["x"] @ a["w"] + 2 * a["b"]
    dL_do = np.where(output > a["target"], 1.0, -1.0).astype(np.float32)
    return a["x"].T @ dL_do


_BIAS = {"bias": True}


def _tf32(a: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def _step_with_stale_weights(a: A, lr: float) -> np.ndarray:
    output = a["x"] @ a["w"]
    dL_do = np.where(output > a["target"], 1.0, -1.0).astype(np.float32)
    w_new = a["w"] - np.float32(lr) * (a["x"].T @ dL_do)
    return dL_do @ w_new.T


def _unwritten_rows(a: A, lr: float) -> np.ndarray:
    out = np.full((a["x"].shape[0], a["w"].shape[1]), np.nan, np.float32)
    out[:8] = a["x"][:8] @ a["w"]
    return out


def _floored_2d_grid(a: A, lr: float) -> np.ndarray:
    out = np.full((a["x"].shape[0], a["w"].shape[1]), np.nan, np.float32)
    out[:8, :8] = a["x"][:8] @ a["w"][:, :8]
    return out


def _skip_partial_block(a: A, lr: float) -> np.ndarray:
    k = a["x"].shape[1] // 16 * 16
    return a["x"][:, :k] @ a["w"][:k]


def _adam(a: A, lr: float) -> np.ndarray:
    g = a["dL_dw"].astype(np.float64)
    return (a["w"] - lr * g / (np.abs(g) + 1e-8)).astype(np.float32)


#: (id, function, result, shape, data, options, bug, the diagnosis it must get). Each bug is
#: written as numpy code makes it, in float32 unless the options say otherwise.
BUGS: list[tuple[str, str, str, tuple[int, int, int], str, dict, Callable[[A, float], np.ndarray], Diagnosis]] = [  # noqa: E501
    ("transposed", "grad_w", "dL_dw", (5, 4, 4), "normal", {},
     lambda a, lr: a["dL_do"].T @ a["x"], Diagnosis.TRANSPOSED),
    ("sign flip", "grad_x", "dL_dx", (5, 3, 4), "normal", {},
     lambda a, lr: -(a["dL_do"] @ a["w"].T), Diagnosis.SIGN_FLIP),
    ("mean over N", "grad_w", "dL_dw", (5, 3, 4), "normal", {},
     lambda a, lr: a["x"].T @ a["dL_do"] / np.float32(5), Diagnosis.MEAN_INSTEAD_OF_SUM),
    ("twice", "forward", "output", (5, 3, 4), "normal", {},
     lambda a, lr: 2 * (a["x"] @ a["w"]), Diagnosis.SCALED),
    ("a seventh", "grad_x", "dL_dx", (5, 3, 4), "normal", {},
     lambda a, lr: (a["dL_do"] @ a["w"].T) / np.float32(7), Diagnosis.SCALED),
    ("MSE gradient", "loss_grad", "dL_do", (5, 3, 4), "normal", {},
     lambda a, lr: 2 * (a["output"] - a["target"]), Diagnosis.WRONG_LOSS),
    ("bias", "forward", "output", (5, 3, 4), "normal", {},
     lambda a, lr: a["x"] @ a["w"] + np.float32([0.5, -1.0, 0.25, 2.0]), Diagnosis.BIAS),
    ("weight decay 1e-2", "update", "w_new", (5, 3, 4), "normal", {},
     lambda a, lr: a["w"] - np.float32(lr) * (a["dL_dw"] + np.float32(1e-2) * a["w"]),
     Diagnosis.WEIGHT_DECAY),
    ("Adam", "update", "w_new", (5, 3, 4), "normal", {}, _adam, Diagnosis.NORMALIZED_STEP),
    ("Nesterov 0.9", "update", "w_new", (5, 3, 4), "normal", {},
     lambda a, lr: a["w"] - np.float32(lr) * (a["dL_dw"] * np.float32(1.9)),
     Diagnosis.SCALED_STEP),
    ("lr through float32", "update", "w_new", (5, 3, 4), "normal", {"dtype": "float64"},
     lambda a, lr: a["w"] - np.float64(np.float32(lr)) * a["dL_dw"], Diagnosis.SCALED_STEP),
    ("lr through bfloat16", "update", "w_new", (5, 3, 4), "normal", {},
     lambda a, lr: a["w"] - np.float32(np.asarray(lr, ml_dtypes.bfloat16)) * a["dL_dw"],
     Diagnosis.SCALED_STEP),
    ("upstream ignored", "grad_w", "dL_dw", (5, 3, 4), "normal", {},
     lambda a, lr: a["x"].T @ np.ones_like(a["dL_do"]), Diagnosis.UPSTREAM_IGNORED),
    ("one short", "forward", "output", (5, 3, 4), "normal", {},
     lambda a, lr: a["x"][:, :-1] @ a["w"][:-1], Diagnosis.OFF_BY_ONE),
    ("partial block of 16", "forward", "output", (5, 40, 4), "normal", {},
     _skip_partial_block, Diagnosis.OFF_BY_ONE),
    ("stale weights", "step", "dL_dx", (5, 3, 4), "normal", {},
     _step_with_stale_weights, Diagnosis.STALE_WEIGHTS),
    ("rows past a tile of 8 unwritten", "forward", "output", (13, 3, 4), "normal", {},
     _unwritten_rows, Diagnosis.UNWRITTEN),
    ("a floored 2-D grid of 8 leaves an L unwritten", "forward", "output", (13, 3, 12), "normal",
     {}, _floored_2d_grid, Diagnosis.UNWRITTEN),
    ("jax's tie where the seed's is pinned", "loss_grad", "dL_do", (5, 3, 4), "ties",
     {"tie_convention": "seed"},
     lambda a, lr: np.where(a["output"] >= a["target"], 1.0, -1.0).astype(np.float32),
     Diagnosis.TIE_CONVENTION),
    ("tf32 matmul", "forward", "output", (5, 64, 4), "normal", {},
     lambda a, lr: _tf32(a["x"]) @ _tf32(a["w"]), Diagnosis.REDUCED_PRECISION),
    # The layer with a bias: the bugs people make with b.
    ("dL_db a mean over the batch", "grad_b", "dL_db", (5, 3, 4), "normal", _BIAS,
     lambda a, lr: a["dL_do"].sum(axis=0) / np.float32(5), Diagnosis.MEAN_INSTEAD_OF_SUM),
    ("dL_db ignores the upstream", "grad_b", "dL_db", (5, 3, 4), "normal", _BIAS,
     lambda a, lr: np.ones_like(a["dL_do"]).sum(axis=0), Diagnosis.UPSTREAM_IGNORED),
    ("b added twice", "forward", "output", (5, 3, 4), "normal", _BIAS,
     lambda a, lr: a["x"] @ a["w"] + a["b"] + a["b"], Diagnosis.BIAS_TWICE),
    ("b added twice in the step", "step", "dL_dw", (5, 3, 4), "normal", _BIAS,
     _step_with_b_twice, Diagnosis.BIAS_TWICE),
    ("b broadcast per example", "forward", "output", (4, 3, 4), "normal", _BIAS,
     lambda a, lr: a["x"] @ a["w"] + a["b"][:, None], Diagnosis.BIAS_AXIS),
    ("dL_db summed over O", "grad_b", "dL_db", (4, 3, 4), "normal", _BIAS,
     lambda a, lr: a["dL_do"].sum(axis=1), Diagnosis.BIAS_AXIS),
    ("b not updated", "step", "b_new", (5, 3, 4), "normal", _BIAS,
     lambda a, lr: a["b"], Diagnosis.BIAS_NOT_UPDATED),
]  # fmt: skip


def _diagnosed(bug: tuple) -> tuple[_diagnosis.Diagnosed, Case, Settings]:
    _, function, result, shape, data, options, make, _ = bug
    checked = Settings(**options)
    case = _case(function, shape, data, checked.dtype, bias=bool(checked.bias))
    arrays = {name: array for name, array in case.arrays.items()}
    actual = np.asarray(make(arrays, case.lr), np.float64)
    return diagnose(result, actual, case, checked), case, checked


@pytest.mark.parametrize("bug", BUGS, ids=[bug[0] for bug in BUGS])
def test_each_pattern_is_named_on_its_own_bug(bug: tuple) -> None:
    found, _, _ = _diagnosed(bug)
    finding = found.finding(bug[2])
    assert finding.kind is bug[-1], finding.detail
    assert not finding.ambiguous


@pytest.mark.parametrize("bug", BUGS, ids=[bug[0] for bug in BUGS])
def test_no_other_pattern_fits_a_bug_clearly(bug: tuple) -> None:
    """The confusion matrix of the patterns is diagonal: on each bug, the only pattern that
    fits clearly (not on too few elements) is the bug's own."""
    found, _, _ = _diagnosed(bug)
    clear = {c.kind for c in found.candidates() if not c.unclear}
    assert clear == {bug[-1]}, [(c.kind, c.detail) for c in found.candidates()]


@pytest.mark.parametrize(
    ("function", "result", "shape", "make", "words"),
    [
        ("forward", "output", (1, 3, 4), lambda a: a["x"] @ a["w"] + a["b"][:, None],
         "broadcasts to (4, 4)"),
        ("grad_b", "dL_db", (5, 3, 4), lambda a: a["dL_do"].sum(axis=1), "shape (N,) = (5,)"),
    ],
    ids=["output (O, O)", "dL_db (N,)"],
)  # fmt: skip
def test_a_bias_on_the_wrong_axis_is_named_from_the_shape_it_gives(
    function: str, result: str, shape: tuple[int, int, int], make, words: str
) -> None:
    """Where N != O numpy broadcasts b[:, None] to another shape, or sums to (N,): the wrong
    shape is the bias_axis bug's own, not a plain wrong_shape."""
    options = Settings(bias=True)
    case = _case(function, shape, bias=True)
    actual = np.asarray(make(case.arrays), np.float32)
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
    bug = next(bug for bug in BUGS if bug[0] == "bias")
    found, _, _ = _diagnosed(bug)
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
    actual = 2 * case.arrays["x"].astype(np.float64) @ case.arrays["w"].astype(np.float64)
    finding = diagnose("output", actual, case, Settings()).finding("output")
    assert finding.kind is Diagnosis.MISMATCH
    assert {c.kind for c in finding.candidates} >= {Diagnosis.SCALED, Diagnosis.BIAS}
    assert "scaled" in finding.detail and "bias" in finding.detail


@pytest.mark.parametrize("decay", [-1e-2, 1e-12])
def test_a_negative_or_vanishing_weight_decay_is_not_named(decay: float) -> None:
    options = Settings(dtype="float64")
    case = _case("update", (5, 3, 4), dtype="float64")
    a = {name: array.astype(np.float64) for name, array in case.arrays.items()}
    lr = case.learning_rate
    actual = a["w"] - lr * (a["dL_dw"] + decay * a["w"])
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
