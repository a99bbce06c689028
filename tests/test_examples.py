"""The examples a user copies must pass the oracle (three seeds); PyTorch ones only with torch."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from verify._check_cli import main

SEEDS = (0, 1, 2)
PLAIN = ("examples/numpy_layer.py", "examples/jax_grad.py")
TORCH = ("examples/torch_manual.py:layer", "examples/torch_autograd.py:layer")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spec", PLAIN)
def test_plain_examples_pass(spec: str, seed: int) -> None:
    verify.check(spec, max_examples=10, seed=seed, repro_dir=None).raise_on_failure()


@pytest.mark.torch
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spec", TORCH)
def test_torch_examples_pass(spec: str, seed: int) -> None:
    pytest.importorskip("torch")
    verify.check(spec, max_examples=10, seed=seed, repro_dir=None).raise_on_failure()


@pytest.mark.torch
def test_torch_examples_exit_0_from_the_command_line() -> None:
    pytest.importorskip("torch")
    for spec in TORCH:
        assert main([spec, "--max-examples", "3"]) == 0


@pytest.mark.torch
def test_torch_default_mean_reduction_is_named() -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    class MeanReduction:
        def asarray(self, a: np.ndarray):
            return torch.from_numpy(a)

        def loss(self, output, target):
            return F.l1_loss(output, target)  # reduction="mean", PyTorch's default

    report = verify.check(MeanReduction(), max_examples=10, repro_dir=None)
    assert report["loss"].diagnosis == "mean_instead_of_sum", report.summary()
