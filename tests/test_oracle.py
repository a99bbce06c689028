"""The oracle against its zoo: every mutant caught with the right diagnosis, every correct
implementation passing, across three seeds; loading, options and the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import reference
import verify
from tests import zoo
from tests.helpers import run_python
from verify import ContractError, bounds
from verify.oracle._settings import Settings
from verify.oracle.candidate._calls import InProcessCaller
from verify.oracle.candidate._loading import as_candidate, load, spec_of
from verify.oracle.explaining._diagnosis import named
from verify.oracle.judging._cases import Case
from verify.oracle.judging._checks import CHECKS

SEEDS = (0, 1, 2)


def _runs(mutant: zoo.Mutant) -> list[tuple[int, str]]:
    """Seed 0 at float32, seed 1 at float64 (both seeds at the one dtype a bug is written for)."""
    return [(seed, dtype if dtype in mutant.dtypes else mutant.dtypes[0])
            for seed, dtype in ((0, "float32"), (1, "float64"))]  # fmt: skip


def _one_mutant_per_diagnosis() -> set[str]:
    """The first mutant of ``ZOO`` to break a function with each diagnosis, by name."""
    chosen: dict[str, str] = {}
    for mutant in zoo.ZOO:
        for kind in zoo.failures(mutant.expected).values():
            chosen.setdefault(kind, mutant.name)
    return set(chosen.values())


#: The mutants whose seed-0 run also proves its reproducers (one per diagnosis).
REPRODUCED = _one_mutant_per_diagnosis()


@pytest.mark.parametrize(
    ("mutant", "seed", "dtype"),
    [(mutant, seed, dtype) for mutant in zoo.ZOO for seed, dtype in _runs(mutant)],
    ids=lambda value: value.name if isinstance(value, zoo.Mutant) else str(value),
)
def test_every_mutant_is_caught_and_the_confusion_matrix_is_diagonal(
    mutant: zoo.Mutant, seed: int, dtype: str, tmp_path: Path
) -> None:
    """Every check of every mutant (``python -m scripts.zoo --confusion``): each fails with its
    expected diagnosis or passes (``zoo.confused``): the functions a mutant breaks are caught
    with their diagnosis, and a false cause on another check of the mutant (the fused step that
    calls a broken forward, typically) is caught too.

    On seed 0, the first mutant of each diagnosis also writes its reproducers, and the one of
    each function it breaks fails from a fresh process with the same diagnosis (exit 1): a
    reproducer replays the calls that showed the defect (two identical calls for a state kept
    between calls)."""
    reproduced = seed == 0 and mutant.name in REPRODUCED
    repro_dir = tmp_path if reproduced else None
    report = zoo.run_mutant(mutant, seed, every=True, dtype=dtype, repro_dir=repro_dir)
    assert zoo.confused(mutant, zoo.diagnoses(report)) == {}, report.summary()
    assert not report.passed
    if not reproduced:
        return
    for function, kind in zoo.failures(mutant.expected).items():
        verdict = report[function]
        assert verdict.diagnosis == kind, report.summary()
        assert verdict.repro is not None
        done = run_python(verdict.repro, cwd=tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"diagnosis: {kind} " in done.stdout, done.stdout


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("impl", zoo.CORRECT, ids=lambda c: c.__name__)
def test_correct_implementations_pass(impl: type, seed: int) -> None:
    report = verify.check(impl, max_examples=15, seed=seed, repro_dir=None)
    report.raise_on_failure()
    assert report.isolated
    # grad_b is a check of its own on a layer with a bias, and no item at all without one.
    bias = ["grad_b"] if impl is zoo.CorrectBias else []
    assert [f.function for f in report.functions] == [
        "forward",
        "loss",
        "loss_grad",
        "grad_x",
        "grad_w",
        *bias,
        "update",
        "step",
        "identities",
        "consistency",
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_loop_reference_passes_itself(seed: int) -> None:
    verify.check(reference, max_examples=10, seed=seed, repro_dir=None).raise_on_failure()


def test_the_jitted_layer_passes() -> None:
    verify.check(verify, max_examples=8, seed=0, repro_dir=None).raise_on_failure()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_other_dtypes_pass(dtype: str) -> None:
    verify.check(zoo.Correct(), dtype=dtype, max_examples=10, repro_dir=None).raise_on_failure()


def test_exact_mode_passes_a_correct_layer_and_names_an_off_by_one() -> None:
    verify.check(zoo.Correct(), exact=True, max_examples=10, repro_dir=None).raise_on_failure()
    report = verify.check(
        zoo.OffByOneGradW(), exact=True, functions=["grad_w"], max_examples=10, repro_dir=None
    )
    assert report["grad_w"].diagnosis == "off_by_one", report.summary()


def test_a_declared_matmul_precision_is_accepted_and_a_lower_one_is_not() -> None:
    tf32 = verify.check(
        zoo.TF32Forward(),
        matmul_precision="tf32",
        functions=["forward"],
        max_examples=15,
        repro_dir=None,
    )
    tf32.raise_on_failure()
    bf16 = verify.check(
        zoo.BF16GradW(),
        matmul_precision="tf32",
        functions=["grad_w"],
        max_examples=15,
        repro_dir=None,
    )
    assert bf16["grad_w"].diagnosis == "reduced_precision", bf16.summary()


@pytest.mark.slow
def test_half_precision_accumulation_is_named_and_can_be_declared() -> None:
    # The layer: float64 matmuls, a numpy loss summing bfloat16 in bfloat16.
    undeclared = verify.check(zoo.HalfPrecisionSum, dtype="bfloat16", seed=0, repro_dir=None)
    failed = {f.function: f.diagnosis for f in undeclared.failures}
    assert failed == {"loss": "reduced_precision", "step": "reduced_precision"}, (
        undeclared.summary()
    )
    assert "--accumulation bfloat16 (accumulation='bfloat16') accepts it (re-judged" in (
        undeclared["loss"].detail
    )
    # The identities rest on that loss: not judged where it fails, never a convexity finding.
    identities = undeclared["identities"]
    assert identities.diagnosis is None and "not judged" in identities.note, undeclared.summary()
    declared = verify.check(
        zoo.HalfPrecisionSum, dtype="bfloat16", accumulation="bfloat16", seed=0, repro_dir=None
    )
    declared.raise_on_failure()
    assert "bfloat16 accumulation" in declared.summary()


@pytest.mark.parametrize(
    ("dtype", "accumulation"),
    [("float32", "bfloat16"), ("bfloat16", "float16"), ("float64", "float32")],
)
def test_an_accumulation_the_dtype_cannot_have_is_a_usage_error(
    dtype: str, accumulation: str
) -> None:
    with pytest.raises(ValueError, match=f"accumulation must be one of .* for dtype {dtype}"):
        verify.check(zoo.Correct, dtype=dtype, accumulation=accumulation, repro_dir=None)


def test_a_failure_report_has_the_message_counterexample_and_raises() -> None:
    report = verify.check(zoo.MeanGradW(), functions=["grad_w"], max_examples=10, repro_dir=None)
    verdict = report["grad_w"]
    assert verdict.status == "fail" and verdict.worst_ratio > 1
    assert verdict.message.startswith("dL_dw[") and "but should be" in verdict.message
    assert "(bound " in verdict.message and "[grad_w(x: (" in verdict.message
    assert verdict.case is not None and verdict.case.function == "grad_w"
    with pytest.raises(AssertionError, match="mean_instead_of_sum"):
        report.raise_on_failure()
    document = json.loads(json.dumps(report.to_dict()))
    assert document["passed"] is False
    assert {"python", "numpy", "jax", "backend", "devices"} <= document["environment"].keys()
    assert document["functions"][0]["diagnosis"] == "mean_instead_of_sum"


def test_a_raising_candidate_gets_its_own_trimmed_traceback() -> None:
    report = verify.check(zoo.RaisesGradX(), functions=["grad_x"], max_examples=10, repro_dir=None)
    verdict = report["grad_x"]
    assert verdict.diagnosis == "raised"
    assert "zoo.py" in verdict.traceback and "oracle" not in verdict.traceback


def test_signaling_nans_in_a_result_are_a_verdict_under_warnings_as_errors() -> None:
    """An unwritten block of uninitialized memory can hold signaling NaNs; casting one to
    float64 warns, and pytest here makes warnings errors: the oracle's own code must stay quiet
    (a kernel's garbage once ended a run with a RuntimeWarning from the explanation)."""
    signaling = np.array(0x7F800001, np.uint32).view(np.float32)

    class GarbageRowsGradW:
        def grad_w(self, x: np.ndarray, dL_do: np.ndarray) -> np.ndarray:
            grad_w = x.T @ dL_do
            grad_w[2:] = signaling
            return grad_w

    report = verify.check(
        GarbageRowsGradW(), functions=["grad_w"], dtype="float32", max_examples=5, repro_dir=None
    )
    assert report["grad_w"].diagnosis == "unwritten", report.summary()


def test_infinities_that_change_between_calls_are_a_verdict_under_warnings_as_errors() -> None:
    """A kernel that reads uninitialized memory returns other infinities on every call; the
    readings subtract two calls' results (inf - inf), which must not warn."""

    class InfiniteNoiseGradW:
        def __init__(self) -> None:
            self.rng = np.random.default_rng(7)

        def grad_w(self, x: np.ndarray, dL_do: np.ndarray) -> np.ndarray:
            grad_w = x.T @ dL_do + self.rng.standard_normal((x.shape[1], dL_do.shape[1]))
            grad_w[:, 0] = np.inf
            return grad_w.astype(x.dtype)

    report = verify.check(
        InfiniteNoiseGradW(), functions=["grad_w"], max_examples=5, repro_dir=None
    )
    assert report["grad_w"].diagnosis == "nan", report.summary()


# --- the layer with a bias -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_a_numpy_layer_with_a_bias_passes(dtype: str) -> None:
    """Written the way people write it (examples/numpy_bias_layer.py), read as "with bias" from
    its parameter counts, every check of it passing in every dtype."""
    report = verify.check(
        "examples/numpy_bias_layer.py", dtype=dtype, max_examples=12, repro_dir=None
    )
    report.raise_on_failure()
    assert report.settings.bias is True and "with bias" in report.summary()
    assert "grad_b" in [f.function for f in report.functions]
    assert report.to_dict()["options"]["bias"] is True


def test_exact_mode_with_a_bias_is_bitwise() -> None:
    verify.check(zoo.CorrectBias, exact=True, max_examples=10, repro_dir=None).raise_on_failure()


def test_the_bias_is_read_from_the_parameter_counts() -> None:
    assert as_candidate(zoo.CorrectBias()).bias is True
    assert as_candidate(zoo.Correct()).bias is False
    # A b with a default is optional: such a layer is checked without a bias unless told.
    assert as_candidate(verify).bias is False

    class Disagree(zoo.Correct):
        def forward(self, x, w, b):  # type: ignore[override]
            return x @ w + b

    with pytest.raises(ContractError, match=r"forward\(x, w, b\) but step\(x, w, target, lr\)"):
        as_candidate(Disagree())

    class OptionalInForward(zoo.CorrectBias):
        """forward(x, w, b=None) as users write it, beside a step that requires b: the step
        says the layer has a bias, and the forward can take it (no contradiction)."""

        def forward(self, x, w, b=None):  # type: ignore[override]
            return x @ w if b is None else x @ w + b

    assert as_candidate(OptionalInForward()).bias is True


@pytest.mark.parametrize("impl", [verify, reference], ids=["verify", "reference"])
def test_the_bias_option_checks_the_bias_of_a_layer_it_cannot_read(impl) -> None:
    """verify and reference take b as an optional argument (forward(x, w, b=None), a step of
    *args): bias=True checks them with it, grad_b and update on (O,) included."""
    report = verify.check(impl, bias=True, max_examples=8, repro_dir=None)
    report.raise_on_failure()
    assert "grad_b" in [f.function for f in report.functions]


def test_grad_b_needs_a_layer_with_a_bias() -> None:
    report = verify.check(zoo.Correct(), functions=["grad_b", "forward"], max_examples=3)
    assert report["grad_b"].status == "skip"
    assert "a layer with a bias" in report["grad_b"].note


def test_the_identities_need_loss_gradient_and_update() -> None:
    class OnlyForward:
        forward = staticmethod(zoo.Correct().forward)

    report = verify.check(OnlyForward(), max_examples=3, repro_dir=None)
    assert [f.function for f in report.functions] == ["forward"]


# --- declared reductions ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize(
    ("impl", "options"), zoo.DECLARED, ids=lambda v: getattr(v, "__name__", "")
)
def test_a_declared_reduction_passes(impl: type, options: dict, dtype: str) -> None:
    """mean (N*O) and batchmean (N), with and without a bias: every check passes under the
    declaration, at float32, float64 and bfloat16 (whose division rounds at 2^-8: the bound's
    rho_D covers it), and the report's header and its options say which."""
    report = verify.check(impl, dtype=dtype, max_examples=12, repro_dir=None, **options)
    report.raise_on_failure()
    reduction = options["reduction"]
    assert f"reduction {reduction} (" in report.summary().splitlines()[0]
    assert report.to_dict()["options"]["reduction"] == reduction
    assert "identities" in [f.function for f in report.functions]


def test_without_the_declaration_a_mean_fails_and_the_header_is_as_before() -> None:
    report = verify.check(
        zoo.MeanLayer, functions=["loss", "loss_grad", "step"], max_examples=10, repro_dir=None
    )
    assert {f.function: f.diagnosis for f in report.functions} == dict.fromkeys(
        ["loss", "loss_grad", "step"], "mean_instead_of_sum"
    ), report.summary()
    # Each finding offers the declaration, re-judged: the loss with loss_grad, and the step.
    for function in report.functions:
        assert "--reduction mean (reduction='mean') accepts it (re-judged" in function.detail
    assert "reduction" not in report.summary().splitlines()[0]
    assert "reduction" not in report.to_dict()["options"]


@pytest.mark.parametrize(
    ("impl", "wrong"), [(zoo.MeanLayer, "batchmean"), (zoo.BatchMeanLayer, "mean")]
)
def test_another_reduction_than_the_declared_one_fails(impl: type, wrong: str) -> None:
    report = verify.check(
        impl, reduction=wrong, functions=["loss", "loss_grad", "step"], max_examples=10
    )
    assert [f.status for f in report.functions] == ["fail"] * 3, report.summary()


@pytest.mark.parametrize(
    ("reduction", "loss", "loss_grad"),
    [(None, "fail", "fail"), ("mean", "pass", "fail"), ("batchmean", "fail", "pass")],
)
def test_a_loss_and_gradient_reduced_differently_fail_under_every_declaration(
    reduction: str | None, loss: str, loss_grad: str
) -> None:
    """The loss a mean over N*O, loss_grad divided by N only: under mean its loss passes and its
    gradient fails, under batchmean the other way round, under the sum both; the step built of
    them fails under each, and so does some check of the whole layer."""
    report = verify.check(
        zoo.MeanLossBatchMeanGrad, reduction=reduction, max_examples=10, repro_dir=None
    )
    statuses = {f.function: f.status for f in report.functions}
    assert (statuses["loss"], statuses["loss_grad"], statuses["step"]) == (
        loss,
        loss_grad,
        "fail",
    ), report.summary()
    assert not report.passed
    # Every failing piece names both reductions and offers neither.
    for function in ("loss", "loss_grad", "step"):
        if statuses[function] == "fail":
            detail = report[function].detail
            assert report[function].diagnosis == "mean_instead_of_sum", report.summary()
            assert "loss is a mean over N*O" in detail, detail
            assert "loss_grad is a sum divided by N" in detail, detail
            assert "no one reduction accepts both" in detail, detail
            assert "accepts it" not in detail, detail


@pytest.mark.parametrize(
    ("impl", "declared", "offered"),
    [(zoo.Correct, "mean", "sum"), (zoo.BatchMeanLayer, None, "batchmean")],
)
def test_a_reduction_finding_offers_the_reduction_that_accepts_it(
    impl: type, declared: str | None, offered: str
) -> None:
    """A sum judged under a declared mean is N*O times too large: the sum is offered; a sum
    divided by N under the default, batchmean (and not the mean, which the probe refuses)."""
    report = verify.check(
        impl, reduction=declared, functions=["loss", "loss_grad"], max_examples=10,
        repro_dir=None,
    )  # fmt: skip
    for function in report.functions:
        assert function.diagnosis == "mean_instead_of_sum", report.summary()
        assert f"--reduction {offered} (reduction={offered!r}) accepts it" in function.detail
        others = set(bounds.REDUCTIONS) - {offered}
        assert not any(f"--reduction {r} (" in function.detail for r in others), function.detail


def test_a_fused_mean_step_is_consistent_up_to_rounding_and_not_across_ties() -> None:
    """Under the mean the gradients round (dL_do = ±1/(N*O)): a fused step dividing after its
    matmuls agrees with its pieces within twice their rounding; one that takes another tie
    convention than its loss_grad still does not (``FusedTieStep``'s finding, divided)."""
    options = {"reduction": "mean", "functions": ["step", "consistency"], "max_examples": 15}
    verify.check(zoo.MeanFusedStep, repro_dir=None, **options).raise_on_failure()
    report = verify.check(zoo.MeanFusedTieStep, repro_dir=None, **options)
    assert report["step"].status == "pass", report.summary()
    assert report["consistency"].diagnosis == "inconsistent", report.summary()


def test_exact_mode_takes_the_sum_only() -> None:
    with pytest.raises(verify.OptionError, match="exact mode is bitwise: it takes the sum"):
        verify.check(zoo.MeanLayer, exact=True, reduction="mean")


# --- loading ----------------------------------------------------------------------------------


def test_specs_load_modules_files_attributes_and_classes() -> None:
    assert load("reference") is reference
    assert isinstance(load("tests.zoo:Correct"), zoo.Correct)
    by_path = load("tests/zoo.py:MeanLoss")
    assert type(by_path).__name__ == "MeanLoss"
    module = load("examples/numpy_layer.py")
    assert callable(module.grad_w)
    assert as_candidate("reference").functions.keys() == {
        "forward",
        "loss",
        "loss_grad",
        "grad_x",
        "grad_w",
        "grad_b",  # the reference has the bias's too: checked with it under bias=True
        "update",
        "step",
    }


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_anywhere", "cannot import"),
        ("examples/no_such_file.py", "no such file"),
        ("reference:no_such_attr", "has no attribute"),
        ("json", "nothing recognised"),
        ("", "non-empty"),
    ],
)
def test_bad_specs_are_contract_errors(spec: str, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        as_candidate(spec)


#: A layer held by a top-level name of this module (``spec_of(..., home=...)`` finds it here).
HELD_LAYER = zoo.Correct()


def test_spec_of_finds_a_way_back() -> None:
    assert spec_of(reference) == "reference"
    assert spec_of(zoo.MeanLoss) == "tests.zoo:MeanLoss"
    # A fresh instance of its class could differ from this one: no way back.
    assert spec_of(zoo.MeanLoss()) is None
    assert spec_of(zoo.run_mutant) == "tests.zoo:run_mutant"
    # An instance a top-level name holds: in the module given as its home (a test module) ...
    this = sys.modules[__name__]
    assert spec_of(HELD_LAYER) is None
    assert spec_of(HELD_LAYER, home=this) == f"{__name__}:HELD_LAYER"
    # ... or in the module it names as its own __module__ (where an adapter was built).
    named = zoo.Correct()
    named.__module__ = __name__
    globals()["NAMED_LAYER"] = named
    try:
        assert spec_of(named) == f"{__name__}:NAMED_LAYER"
    finally:
        del globals()["NAMED_LAYER"]

    class Local:
        pass

    assert spec_of(Local) is None
    assert spec_of(Local()) is None


@pytest.mark.parametrize(
    "options",
    [
        {"dtype": "int8"},
        {"exact": True, "dtype": "float16"},
        {"tie_convention": "numpy"},
        {"matmul_precision": "tf32", "dtype": "float64"},
        {"timeout": 0},
    ],
)
def test_bad_options_name_themselves(options: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(options)).split("_")[0]):
        verify.check(zoo.Correct(), max_examples=1, **options)


# --- one case, by hand ------------------------------------------------------------------------


def run_case(impl: object, case: Case, options: Settings) -> tuple:
    """Judge one case of ``impl`` the way the search does, and name the cause of a finding by
    its evidence, as the run then does."""
    caller = InProcessCaller(as_candidate(impl), options.timeout)
    ratio, finding = CHECKS[case.function].judge(caller, case, options)
    return ratio, None if finding is None else named(finding, case, options)


def test_ties_accept_any_subgradient_unless_pinned() -> None:
    output = np.array([[1.0, 2.0, 3.0]], np.float32)
    target = np.array([[1.0, 0.0, 3.0]], np.float32)
    case = Case("loss_grad", {"output": output, "target": target})
    for impl in (zoo.Correct(), zoo.JaxTieLossGrad(), zoo.TorchTieStep()):
        assert run_case(impl, case, Settings())[1] is None
    _, finding = run_case(zoo.JaxTieLossGrad(), case, Settings(tie_convention="seed"))
    assert finding is not None and finding.kind == "tie_convention"


def test_a_mutated_input_is_reported_before_values() -> None:
    w = np.ones((2, 3), np.float32)
    case = Case("update", {"w": w, "dL_dw": np.full((2, 3), 2.0, np.float32)}, lr=0.5)
    _, finding = run_case(zoo.InPlaceUpdate(), case, Settings())
    assert finding is not None and finding.kind == "input_mutated"
    assert np.all(case.arrays["w"] == 1.0)  # the oracle's own copy is untouched


def test_hypothesis_prints_a_case_by_its_shapes() -> None:
    """Hypothesis formats the shrunk case on its final replay; by shapes, that costs nothing
    (formatting and parsing its arrays took 15% of a failing check)."""
    from hypothesis.vendor.pretty import pretty

    x = np.arange(6.0).reshape(2, 3)
    case = Case("grad_w", {"x": x, "dL_do": np.ones((2, 4))}, kind="integers", shape=(2, 3, 4))
    assert pretty(case) == case.describe() == "grad_w(x: (2, 3), dL_do: (2, 4))"


def test_edge_shapes_run_whatever_the_search_draws() -> None:
    """A bug past 128 rows is caught even when the search draws a single small example."""
    report = verify.check(zoo.BlockedGradW(), functions=["grad_w"], max_examples=1, repro_dir=None)
    assert report["grad_w"].diagnosis == "off_by_one", report.summary()


def test_a_cache_folder_that_cannot_be_made_leaves_the_workers_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", str(blocker / "jax"))  # under a file: no mkdir
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    report = verify.check(zoo.Correct, functions=["forward"], max_examples=3, repro_dir=None)
    assert report.passed and report.isolated
