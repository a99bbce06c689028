"""A framework module given as SPEC as it is (``python -m verify check model.py:layer``) is
adapted as the dense layer (``verify.adapters.framework_layer``): forward, grad_x, grad_w (and
grad_b, with the module's default bias) by the framework's own call and autodiff, update and
step unchecked with a note saying how to add them; a module that is not one Linear is exit 2
naming the adapter. The tests run with their extras (``nox -s frameworks``)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import verify
from verify.messages import ExitCode
from verify.oracle.front.cli import main

#: The note every adapted module's report carries (``verify.adapters._layer``).
UNCHECKED = "No optimizer is assumed, so update and step are not checked"


def module_file(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(source))
    return path


def cli(capsys: pytest.CaptureFixture[str], spec: str, *more: str) -> tuple[int, str, str]:
    code = main([spec, "--max-examples", "5", "-j", "1", "--repro-dir", "repro", *more])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TORCH_MODULES = """
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 4, bias=False)
    biased = torch.nn.Linear(3, 4)
    wrapped = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False))
    rectified = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU())
    two_layers = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.Linear(4, 2))
    activation = torch.nn.ReLU()


    class DoubledBackward(torch.autograd.Function):
        # x @ weight.T forward, but twice the gradient in x backward: a hand-written backward
        # bug that only the autodiff of the module itself can show.
        @staticmethod
        def forward(ctx, x, weight):
            ctx.save_for_backward(x, weight)
            return x @ weight.T

        @staticmethod
        def backward(ctx, upstream):
            x, weight = ctx.saved_tensors
            return 2 * upstream @ weight, upstream.T @ x


    class CustomLinear(torch.nn.Linear):
        def forward(self, x):
            return DoubledBackward.apply(x, self.weight)


    wrong_backward = CustomLinear(3, 4, bias=False)


    class SpelledOut(torch.nn.Module):
        # The contract written as methods of a module: checked as it is, never adapted.
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x, w):
            return x @ w

        def grad_w(self, x, dL_do):
            return x.T @ dL_do

        def asarray(self, array):
            return torch.from_numpy(array)


    spelled_out = SpelledOut()


    class ForwardOnly(torch.nn.Module):
        # Only the contract's forward(x, w), with a parameter of its own: checked as it is.
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.ones(2, 2))

        def forward(self, x, w):
            return torch.from_numpy(x) @ torch.from_numpy(w)


    forward_only = ForwardOnly()
"""


@pytest.fixture
def torch_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    return module_file(tmp_path, TORCH_MODULES)


@pytest.mark.torch
def test_a_torch_linear_given_as_spec_passes_forward_grad_x_grad_w(
    torch_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, f"{torch_model}:layer")
    assert code == ExitCode.OK, out + err
    for function in ("forward", "grad_x", "grad_w"):
        assert f"  {function:<11} PASS" in out, out
    assert "3 checks passed" in out and not re.search(r"^  (update|step) ", out, re.M), out
    assert "not defined, so not checked: loss, loss_grad, update, step" in out, out
    assert UNCHECKED in out and "verify.adapters.torch_linear(module, optimizer)" in out, out


@pytest.mark.torch
def test_the_adapted_module_runs_in_a_worker_and_provides_three_functions(
    torch_model: Path,
) -> None:
    report = verify.check(f"{torch_model}:wrapped", max_examples=3, jobs=1, repro_dir=None)
    report.raise_on_failure()
    assert report.isolated and [f.function for f in report.functions] == [
        "forward",
        "grad_x",
        "grad_w",
    ]
    assert any(UNCHECKED in note for note in report.load_notes), report.load_notes
    asked = verify.check(
        f"{torch_model}:layer", max_examples=2, functions=["update", "step"], repro_dir=None
    )
    assert [f.status for f in asked.functions] == ["skip", "skip"], asked.summary()


@pytest.mark.torch
def test_a_torch_linear_object_is_adapted_in_process_too() -> None:
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(5, 2, bias=False)  # no top-level name holds it: this process
    report = verify.check(layer, max_examples=3, repro_dir=None)
    report.raise_on_failure()
    assert not report.isolated and report.checked == 3


@pytest.mark.torch
def test_the_module_own_forward_and_backward_are_what_is_checked(torch_model: Path) -> None:
    rectified = verify.check(f"{torch_model}:rectified", max_examples=5, jobs=1, repro_dir=None)
    assert rectified["forward"].status == "fail", rectified.summary()
    doubled = verify.check(f"{torch_model}:wrong_backward", max_examples=5, jobs=1, repro_dir=None)
    statuses = {f.function: f.status for f in doubled.functions}
    assert statuses == {"forward": "pass", "grad_x": "fail", "grad_w": "pass"}, doubled.summary()


@pytest.mark.torch
def test_a_module_with_its_default_bias_is_checked_with_grad_b(
    torch_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, f"{torch_model}:biased")
    assert code == ExitCode.OK and "4 checks passed" in out, out + err
    assert "grad_b      PASS" in out and UNCHECKED in out, out


@pytest.mark.torch
def test_a_module_that_is_not_one_linear_is_exit_2_naming_the_adapter(
    torch_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, f"{torch_model}:two_layers")
    assert code == ExitCode.USAGE, out + err
    assert "not one dense layer" in err and "verify.adapters.torch_linear" in err, err
    assert "['0.weight', '1.weight', '1.bias']" in err, err
    code, out, err = cli(capsys, f"{torch_model}:activation")
    assert code == ExitCode.USAGE and "ReLU is a torch.nn.Module but not one dense" in err, err


@pytest.mark.torch
def test_a_module_that_spells_out_the_contract_is_checked_as_it_is(torch_model: Path) -> None:
    report = verify.check(f"{torch_model}:spelled_out", max_examples=3, jobs=1, repro_dir=None)
    report.raise_on_failure()
    assert [f.function for f in report.functions] == ["forward", "grad_w"]
    assert not report.load_notes
    alone = verify.check(f"{torch_model}:forward_only", max_examples=3, jobs=1, repro_dir=None)
    alone.raise_on_failure()
    assert [f.function for f in alone.functions] == ["forward"] and not alone.load_notes


JAX_MODULES = """
    import jax
    from {package} import {name}

    layer = {build}(3, 4, use_bias=False, {key})
    biased = {build}(3, 4, {key})
"""

#: framework -> what JAX_MODULES needs to build its Linear.
JAX_FRAMEWORKS = {
    "equinox": dict(package="equinox", name="nn", build="nn.Linear", key="key=jax.random.key(0)"),
    "flax": dict(package="flax", name="nnx", build="nnx.Linear", key="rngs=nnx.Rngs(0)"),
}


@pytest.mark.frameworks
@pytest.mark.parametrize("framework", sorted(JAX_FRAMEWORKS))
def test_an_equinox_or_nnx_linear_given_as_spec_passes(
    framework: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip(framework)
    pytest.importorskip("optax")
    monkeypatch.chdir(tmp_path)
    model = module_file(tmp_path, JAX_MODULES.format(**JAX_FRAMEWORKS[framework]))
    code, out, err = cli(capsys, f"{model}:layer")
    assert code == ExitCode.OK and "3 checks passed" in out, out + err
    assert UNCHECKED in out, out
    code, out, err = cli(capsys, f"{model}:biased")
    assert code == ExitCode.OK and "4 checks passed" in out and "grad_b" in out, out + err
