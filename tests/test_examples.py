"""The examples a user copies must pass the oracle (three seeds); PyTorch, tinygrad,
Equinox/optax and Flax ones only with their optional extras (``nox -s frameworks``)."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from verify.oracle.front.cli import main

SEEDS = (0, 1, 2)
PLAIN = ("examples/numpy_layer.py", "examples/numpy_bias_layer.py", "examples/jax_grad.py")
TORCH = ("examples/torch_manual.py:layer", "examples/torch_autograd.py:layer")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spec", PLAIN)
def test_plain_examples_pass(spec: str, seed: int) -> None:
    verify.check(spec, max_examples=10, seed=seed, repro_dir=None).raise_on_failure()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
@pytest.mark.parametrize("spec", (*PLAIN, "reference", "verify"))
def test_examples_pass_in_every_dtype(spec: str, dtype: str) -> None:
    # Half-precision sums must accumulate in float32 to meet the default model (numpy alone
    # would sum bfloat16 in bfloat16: the oracle calls that reduced precision).
    verify.check(spec, max_examples=10, dtype=dtype, repro_dir=None).raise_on_failure()


def test_half_precision_accumulation_is_named() -> None:
    class Bfloat16Sum:
        def loss(self, output, target):
            return np.abs(output - target).sum()  # numpy sums bfloat16 in bfloat16

    report = verify.check(Bfloat16Sum(), max_examples=40, dtype="bfloat16", repro_dir=None)
    assert report["loss"].diagnosis == "reduced_precision", report.summary()


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


def _torch_l1_layer(**reduction: str) -> object:
    """examples/torch_autograd.py's layer with ``F.l1_loss(output, target, **reduction)`` (at
    PyTorch's default, a mean over N*O), its loss_grad by autograd."""
    import torch
    import torch.nn.functional as F

    from verify.oracle.candidate._loading import load

    class L1Layer(type(load("examples/torch_autograd.py:layer"))):  # type: ignore[misc]
        def loss(self, output, target):
            return F.l1_loss(output, target, **reduction)

        def loss_grad(self, output, target):
            output = output.detach().clone().requires_grad_(True)
            F.l1_loss(output, target, **reduction).backward()
            return output.grad

        def step(self, x, w, target, lr):
            x = x.detach().clone().requires_grad_(True)
            w_leaf = w.detach().clone().requires_grad_(True)
            loss = F.l1_loss(x @ w_leaf, target, **reduction)
            loss.backward()
            with torch.no_grad():
                w_new = w_leaf - lr * w_leaf.grad
            return loss.detach(), x.grad, w_leaf.grad, w_new

    return L1Layer()


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_l1_loss_passes_under_the_reduction_it_uses(dtype: str) -> None:
    """``F.l1_loss`` at its default (mean) passes with ``reduction="mean"`` and fails without
    it; with ``reduction="sum"`` it passes by default."""
    pytest.importorskip("torch")
    mean = _torch_l1_layer()
    declared = verify.check(mean, reduction="mean", dtype=dtype, max_examples=10, repro_dir=None)
    declared.raise_on_failure()
    checked = [f.function for f in declared.functions]
    assert checked == ["forward", "loss", "loss_grad", "step", "identities"]
    undeclared = verify.check(mean, dtype=dtype, max_examples=10, repro_dir=None)
    assert {f.function for f in undeclared.failures} >= {"loss", "loss_grad", "step"}
    summed = _torch_l1_layer(reduction="sum")
    verify.check(summed, dtype=dtype, max_examples=10, repro_dir=None).raise_on_failure()


@pytest.mark.frameworks
def test_tinygrad_layer_passes_in_its_own_process() -> None:
    """tinygrad written naturally (Tensor, backward()), with lazy results and thread-bound
    state: it passes when the oracle calls it in a worker's main thread. Where tinygrad is
    installed and cannot run (its CPU device compiles with clang), this fails: no skip."""
    pytest.importorskip("tinygrad")
    report = verify.check("examples/tinygrad_layer.py:layer", max_examples=5, repro_dir=None)
    report.raise_on_failure()
    assert report.isolated
    assert [f.function for f in report.functions] == ["forward", "loss", "step", "identities"]


@pytest.mark.frameworks
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize(
    ("spec", "needs"),
    [("examples/equinox_optax_layer.py", "equinox"), ("examples/flax_layer.py", "flax")],
    ids=["equinox-optax", "flax"],
)
def test_jax_framework_layers_pass(spec: str, needs: str, dtype: str) -> None:
    """An eqx.nn.Linear stepped by optax.sgd, an nnx.Linear: written as their users write them."""
    pytest.importorskip(needs)
    verify.check(spec, max_examples=10, dtype=dtype, repro_dir=None).raise_on_failure()
