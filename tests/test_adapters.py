"""``verify.adapters``: a torch.nn.Linear with torch.optim.SGD, an eqx.nn.Linear and an
nnx.Linear with optax.sgd pass the oracle through a worker and step exactly as the hand-written
wrappers in examples/ do; a bias, or the weight fed untransposed, is caught. The framework
tests run with their extras (``nox -s frameworks``)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import verify
from tests.helpers import run_python
from verify import ContractError
from verify.oracle._loading import load, spec_of

#: The seed notebook's x and w (N=3, I=2, O=4), a target with no ties, lr = 0.01.
X = np.array([[4, 0], [3, 3], [3, 1]], np.float32)
W = np.array([[0, 1, -1, 1], [-1, -1, -1, 1]], np.float32)
TARGET = np.array(
    [[0.5, 1.5, -2.5, 3.5], [-1.5, 0.5, 2.5, -3.5], [1.5, -0.5, 0.5, 2.5]], np.float32
)
LR = 0.01

#: framework -> (its extra's import, pytest mark, the adapter example, the hand-written one).
FRAMEWORKS = {
    "torch": ("torch", pytest.mark.torch, "torch_module", "torch_autograd.py:layer"),
    "equinox": ("equinox", pytest.mark.frameworks, "equinox_module", "equinox_optax_layer.py"),
    "flax": ("flax", pytest.mark.frameworks, "flax_module", "flax_layer.py"),
}


def each_framework(function: Any) -> Any:
    return pytest.mark.parametrize(
        "framework",
        [pytest.param(name, marks=mark) for name, (_, mark, _, _) in FRAMEWORKS.items()],
    )(function)


def make(framework: str, fan_in: int, fan_out: int, *, bias: bool = False, **options: Any):
    """The framework's own Linear(fan_in, fan_out) and its SGD, through the adapter."""
    pytest.importorskip(FRAMEWORKS[framework][0])
    if framework == "torch":
        import torch

        module = torch.nn.Linear(fan_in, fan_out, bias=bias)
        return verify.adapters.torch_linear(module, torch.optim.SGD, **options)
    import jax
    import optax

    if framework == "equinox":
        import equinox as eqx

        module = eqx.nn.Linear(fan_in, fan_out, use_bias=bias, key=jax.random.key(0))
        return verify.adapters.equinox_linear(module, optax.sgd, **options)
    from flax import nnx

    module = nnx.Linear(fan_in, fan_out, use_bias=bias, rngs=nnx.Rngs(0))
    return verify.adapters.flax_linear(module, optax.sgd, **options)


def as_numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach() if hasattr(value, "detach") else value)


@each_framework
# examples/flax_layer.py reads and sets its kernel with `.value`, deprecated from Flax 0.12
# (it runs in a worker elsewhere, where the warning is not an error).
@pytest.mark.filterwarnings(r"ignore:'\.value' \w+ is now deprecated:DeprecationWarning")
def test_the_adapter_steps_as_the_hand_written_wrapper_does(framework: str) -> None:
    adapted = make(framework, 2, 4)
    hand_written = load(f"examples/{FRAMEWORKS[framework][3]}")
    convert = getattr(adapted, "asarray", lambda a: a)
    arrays = [convert(a) for a in (X, W, TARGET)]
    mine = [as_numpy(r) for r in adapted.step(*arrays, LR)]
    theirs = [as_numpy(r) for r in hand_written.step(*arrays, LR)]
    for name, a, b in zip(("loss", "dL_dx", "dL_dw", "w_new"), mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} of {framework}")
    # The seed notebook's dL_dx and dL_dw (no ties: every dL_do is +-1), and its update.
    np.testing.assert_array_equal(mine[2], X.T @ np.sign(X @ W - TARGET))
    np.testing.assert_array_equal(mine[3], W - np.float32(LR) * mine[2])
    np.testing.assert_array_equal(as_numpy(adapted.forward(*arrays[:2])), X @ W)


@each_framework
def test_a_module_and_its_sgd_pass_the_oracle_in_a_worker(framework: str) -> None:
    pytest.importorskip(FRAMEWORKS[framework][0])
    spec = f"examples/{FRAMEWORKS[framework][2]}.py:candidate"
    report = verify.check(spec, max_examples=2, repro_dir=None)
    report.raise_on_failure()
    assert report.isolated and report.checked == 9


@each_framework
def test_a_module_with_a_bias_is_a_contract_error(framework: str) -> None:
    with pytest.raises(ContractError, match=r"besides .* no bias: build it with .*(bias=False)"):
        make(framework, 2, 4, bias=True)


@each_framework
def test_the_weight_fed_untransposed_is_caught(framework: str) -> None:
    wrong = "in_out" if framework != "flax" else "out_in"
    # Not square: the module's own shape gives it away at once.
    with pytest.raises(ContractError, match="is the weight stored transposed"):
        make(framework, 2, 4, layout=wrong)
    # Square: the oracle finds it (x @ w.T for x @ w; dL_dw transposed).
    adapted = make(framework, 3, 3, layout=wrong)
    report = verify.check(
        adapted, max_examples=3, functions=["forward", "grad_w", "step"], repro_dir=None
    )
    assert [f.status for f in report.functions] == ["fail"] * 3, report.summary()


@pytest.mark.torch
def test_an_adapter_held_by_a_top_level_name_is_loaded_again_in_a_worker() -> None:
    pytest.importorskip("torch")
    candidate = load("examples/torch_module.py:candidate")
    spec = spec_of(candidate)
    assert spec is not None and spec.endswith("examples/torch_module.py:candidate")
    assert verify.check(candidate, max_examples=2, functions=["forward"]).isolated


def test_bad_layout_and_non_modules_say_what_was_expected() -> None:
    from verify.adapters._common import check_weight, stored

    with pytest.raises(ValueError, match=r"layout must be one of \('out_in', 'in_out'\)"):
        stored("transposed")
    with pytest.raises(ContractError, match=r"shape \(2, 3, 4\), but the layer's weight is a"):
        check_weight("torch_linear", "module.weight", (2, 3, 4), (3, 4), "out_in")


def test_importing_the_adapters_imports_no_framework() -> None:
    frameworks = "{'torch', 'jax', 'flax', 'equinox', 'optax'}"
    code = (
        f"import sys, verify.adapters; sys.exit(sorted({frameworks} & sys.modules.keys()) or None)"
    )
    done = run_python("-c", code)
    assert done.returncode == 0, "importing verify.adapters imported " + done.stderr
    assert "verify.adapters" not in sys.modules or hasattr(verify.adapters, "torch_linear")
