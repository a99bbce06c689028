"""The bugs real framework code has get their own diagnosis, never "no known bug pattern fits":
PyTorch's SGD with weight decay or Nesterov momentum, Adam, a forgotten ``zero_grad``; optax's
Nesterov, Adam and decayed weights; an Equinox Linear with its bias on; a bias left out of the
optimizer (``SGD([model.weight])``). The layers are in
``tests/framework_bugs/``, written as users write them, and run in the oracle's worker."""

from __future__ import annotations

import pytest

import verify

BUGS = "tests/framework_bugs"


def _diagnosis(spec: str, function: str) -> tuple[str | None, str]:
    report = verify.check(spec, functions=[function], max_examples=15, seed=0, repro_dir=None)
    verdict = report[function]
    return verdict.diagnosis, report.summary()


@pytest.mark.torch
@pytest.mark.parametrize(
    ("attr", "function", "diagnosis", "named"),
    [
        ("WeightDecay", "update", "weight_decay", "lambda = 0.0001"),
        ("WeightDecay", "step", "weight_decay", "lambda = 0.0001"),
        ("Nesterov", "update", "scaled_step", "1.9 * lr * dL_dw"),
        ("Nesterov", "step", "scaled_step", "momentum 0.9"),
        ("Adam", "update", "normalized_step", "lr * sign(dL_dw)"),
        ("Adam", "step", "normalized_step", "Adam"),
        ("NoZeroGrad", "step", "accumulated_gradient", "zero_grad"),
        ("BiasOn", "forward", "bias", "bias term"),
        ("BiasLeftOutOfTheOptimizer", "step", "bias_not_updated", "b_new = b"),
    ],
)
def test_pytorch_layer_and_optimizer_mistakes_are_named(
    attr: str, function: str, diagnosis: str, named: str
) -> None:
    pytest.importorskip("torch")
    found, summary = _diagnosis(f"{BUGS}/torch_layers.py:{attr}", function)
    assert found == diagnosis, summary
    assert named in summary, summary


@pytest.mark.torch
def test_plain_torch_sgd_passes() -> None:
    pytest.importorskip("torch")
    spec = f"{BUGS}/torch_layers.py:SGDLayer"
    report = verify.check(spec, max_examples=15, seed=0, repro_dir=None)
    report.raise_on_failure()


@pytest.mark.frameworks
@pytest.mark.parametrize(
    ("attr", "diagnosis", "named"),
    [
        ("Nesterov", "scaled_step", "1.9 * lr * dL_dw"),
        ("Adam", "normalized_step", "lr * sign(dL_dw)"),
        ("DecayedWeights", "weight_decay", "lambda = 0.0005"),
    ],
)
def test_optax_transformations_are_named(attr: str, diagnosis: str, named: str) -> None:
    pytest.importorskip("optax")
    found, summary = _diagnosis(f"{BUGS}/optax_layers.py:{attr}", "update")
    assert found == diagnosis, summary
    assert named in summary, summary


@pytest.mark.frameworks
def test_plain_optax_sgd_passes() -> None:
    pytest.importorskip("optax")
    spec = f"{BUGS}/optax_layers.py:OptaxUpdate"
    verify.check(spec, max_examples=15, seed=0, repro_dir=None).raise_on_failure()


@pytest.mark.frameworks
def test_an_equinox_linear_with_its_bias_on_is_named() -> None:
    pytest.importorskip("equinox")
    found, summary = _diagnosis(f"{BUGS}/equinox_layers.py:BiasOn", "forward")
    assert found == "bias", summary
    assert "bias term" in summary, summary
