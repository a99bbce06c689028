"""``verify.adapters``: a torch.nn.Linear with torch.optim.SGD, an eqx.nn.Linear and an
nnx.Linear with optax.sgd pass the oracle through a worker and step exactly as the hand-written
wrappers in examples/ do; with their default bias they pass too, and a weight decay is named;
another parameter, or the weight fed untransposed, is caught. The framework
tests run with their extras (``nox -s frameworks``)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import verify
from tests.helpers import run_python
from verify import ContractError
from verify.oracle.candidate._loading import load, spec_of

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


#: A bias for the seed's layer (O = 4), a multiple of 1/4: every sum is exact in float32.
B = np.array([0.25, -1.0, 0.5, 2.0], np.float32)


def decayed(framework: str, decay: float) -> Any:
    """The framework's Linear(3, 4) with its default bias, and SGD with a weight decay."""
    pytest.importorskip(FRAMEWORKS[framework][0])
    if framework == "torch":
        import torch

        def sgd(params: Any, lr: float) -> Any:
            return torch.optim.SGD(params, lr=lr, weight_decay=decay)

        return verify.adapters.torch_linear(torch.nn.Linear(3, 4), sgd)
    import optax

    def transform(lr: Any) -> Any:
        return optax.chain(optax.add_decayed_weights(decay), optax.sgd(lr))

    if framework == "equinox":
        import equinox as eqx
        import jax

        module = eqx.nn.Linear(3, 4, key=jax.random.key(0))
        return verify.adapters.equinox_linear(module, transform)
    from flax import nnx

    return verify.adapters.flax_linear(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), transform)


@each_framework
@pytest.mark.filterwarnings(r"ignore:'\.value' \w+ is now deprecated:DeprecationWarning")
def test_a_module_with_its_default_bias_steps_as_the_math_does(framework: str) -> None:
    """x @ w + b, dL_db = dL_do summed over the batch, b_new = b - lr dL_db, from one backward
    pass and one optimizer step over both parameters."""
    adapted = make(framework, 2, 4, bias=True)
    convert = getattr(adapted, "asarray", lambda a: a)
    x, w, b, target = (convert(a) for a in (X, W, B, TARGET))
    loss, dL_dx, dL_dw, dL_db, w_new, b_new = (
        as_numpy(r) for r in adapted.step(x, w, b, target, LR)
    )
    dL_do = np.sign(X @ W + B - TARGET)  # no ties
    np.testing.assert_array_equal(as_numpy(adapted.forward(x, w, b)), X @ W + B)
    np.testing.assert_array_equal(loss, np.abs(X @ W + B - TARGET).sum())
    np.testing.assert_array_equal(dL_dx, dL_do @ W.T)
    np.testing.assert_array_equal(dL_dw, X.T @ dL_do)
    np.testing.assert_array_equal(dL_db, dL_do.sum(axis=0))
    np.testing.assert_array_equal(w_new, W - np.float32(LR) * dL_dw)
    np.testing.assert_array_equal(b_new, B - np.float32(LR) * dL_db)
    np.testing.assert_array_equal(as_numpy(adapted.grad_b(convert(dL_do))), dL_do.sum(axis=0))


@each_framework
def test_a_module_with_its_default_bias_and_sgd_passes_the_oracle(framework: str) -> None:
    """torch.nn.Linear(3, 4) + SGD, eqx.nn.Linear and nnx.Linear with their bias: every check,
    grad_b and update on (O,) among them."""
    report = verify.check(make(framework, 3, 4, bias=True), max_examples=8, repro_dir=None)
    report.raise_on_failure()
    assert report.settings.bias is True and report.checked == 10


@each_framework
def test_a_weight_decay_on_a_module_with_a_bias_is_named(framework: str) -> None:
    report = verify.check(
        decayed(framework, 0.01), max_examples=8, functions=["update", "step"], repro_dir=None
    )
    assert {f.function: f.diagnosis for f in report.functions} == {
        "update": "weight_decay",
        "step": "weight_decay",
    }, report.summary()


@pytest.mark.torch
def test_a_parameter_besides_weight_and_bias_is_a_contract_error() -> None:
    torch = pytest.importorskip("torch")

    class Scaled(torch.nn.Linear):
        def __init__(self) -> None:
            super().__init__(2, 4)
            self.scale = torch.nn.Parameter(torch.ones(()))

    with pytest.raises(ContractError, match=r"parameters \['scale'\] besides 'weight' and 'bias'"):
        verify.adapters.torch_linear(Scaled(), torch.optim.SGD)


TORCH_NET = """
import torch
import verify.adapters

torch.manual_seed(0)


class Net(torch.nn.Module):
    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 4, bias=bias)

    def forward(self, x):
        return self.fc(x)


net = Net()
"""


@pytest.mark.torch
def test_a_module_holding_one_linear_runs_as_its_note_says(tmp_path: Any) -> None:
    """Given as it is, a module whose one Linear is ``self.fc`` is checked as the layer, and its
    note suggests ``verify.adapters.torch_linear(module, optimizer)`` for update and step; that
    suggestion now runs (it said "no parameter 'weight'; got ['fc.weight', 'fc.bias']")."""
    pytest.importorskip("torch")
    path = tmp_path / "net.py"
    path.write_text(TORCH_NET + "candidate = verify.adapters.torch_linear(net, torch.optim.SGD)\n")
    given = verify.check(f"{path}:net", max_examples=3, jobs=1, repro_dir=None)
    given.raise_on_failure()
    (note,) = given.load_notes
    assert note.startswith("Net holding Linear(in_features=3, out_features=4, bias=True) was")
    assert "verify.adapters.torch_linear(module, optimizer)" in note
    adapted = verify.check(f"{path}:candidate", max_examples=3, jobs=1, repro_dir=None)
    adapted.raise_on_failure()
    assert adapted.checked == 10 and adapted.settings.bias is True, adapted.summary()


@pytest.mark.torch
def test_a_module_holding_one_linear_steps_as_the_math_does() -> None:
    torch = pytest.importorskip("torch")
    namespace: dict[str, Any] = {}
    exec(TORCH_NET, namespace)
    adapted = verify.adapters.torch_linear(namespace["Net"](bias=False), torch.optim.SGD)
    x, w, target = (adapted.asarray(a) for a in (X, W, TARGET))
    loss, dL_dx, dL_dw, w_new = (as_numpy(r) for r in adapted.step(x, w, target, LR))
    dL_do = np.sign(X @ W - TARGET)
    np.testing.assert_array_equal(loss, np.abs(X @ W - TARGET).sum())
    np.testing.assert_array_equal(dL_dx, dL_do @ W.T)
    np.testing.assert_array_equal(dL_dw, X.T @ dL_do)
    np.testing.assert_array_equal(w_new, W - np.float32(LR) * dL_dw)


@pytest.mark.torch
def test_a_module_holding_a_linear_and_more_is_a_contract_error() -> None:
    torch = pytest.importorskip("torch")

    class Gated(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 4)
            self.gate = torch.nn.Parameter(torch.ones(4))

    with pytest.raises(ContractError, match=r"parameters \['gate'\] besides 'fc.weight'"):
        verify.adapters.torch_linear(Gated(), torch.optim.SGD)


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


# --- the loss's reduction -----------------------------------------------------------------------


def mean_loss(framework: str) -> Any:
    """A loss that averages, written as a user would, with no reduction to read: the mean of
    |output - target| over N*O."""
    if framework == "torch":
        return lambda output, target: (output - target).abs().mean()
    import jax.numpy as jnp

    return lambda output, target: jnp.mean(jnp.abs(output - target))


@each_framework
def test_a_loss_that_averages_is_measured_and_passes(framework: str) -> None:
    """The adapter measures a loss it cannot read (on ones (2, 3) against zeros: 1, a mean),
    says so in its note, and the module passes judged as the mean it computes."""
    adapted = make(framework, 3, 4, bias=True, loss=mean_loss(framework))
    assert adapted.reduction == "mean"
    (note,) = adapted.notes
    assert "measured (on ones (2, 3) against zeros it gives 1)" in note
    assert "judged as a mean over N*O (reduction mean" in note
    report = verify.check(adapted, max_examples=4, repro_dir=None)
    report.raise_on_failure()
    assert report.settings.reduction == "mean" and note in report.load_notes
    assert "reduction mean (a mean over N*O)" in report.summary().splitlines()[0]


@each_framework
def test_a_loss_whose_reduction_cannot_be_read_is_judged_as_the_sum(framework: str) -> None:
    def doubled(output: Any, target: Any) -> Any:
        return 2 * abs(output - target).sum()

    adapted = make(framework, 2, 4, loss=doubled)
    assert adapted.reduction == "sum"
    (note,) = adapted.notes
    assert "could not be read (on ones (2, 3) against zeros it gives 12.0" in note
    report = verify.check(adapted, functions=["loss"], max_examples=3, repro_dir=None)
    assert report["loss"].status == "fail" and report.settings.reduction is None


@pytest.mark.torch
def test_torch_losses_say_their_reduction() -> None:
    """nn.L1Loss() (its reduction 'mean'), F.l1_loss (its default 'mean'), a partial giving
    reduction='sum', nn.L1Loss(reduction='sum'); a reduction that is no scalar is refused."""
    torch = pytest.importorskip("torch")
    import functools

    import torch.nn.functional as F

    cases = {
        "mean": (torch.nn.L1Loss(), "whose reduction is 'mean'"),
        "batchmean": (functools.partial(F.kl_div, reduction="batchmean"), "given reduction="),
        "sum": (torch.nn.L1Loss(reduction="sum"), "whose reduction is 'sum'"),
    }
    for reduction, (loss, how) in cases.items():
        adapted = verify.adapters.torch_linear(torch.nn.Linear(2, 4), loss=loss)
        assert adapted.reduction == reduction and how in adapted.notes[0], adapted.notes
    by_default = verify.adapters.torch_linear(torch.nn.Linear(2, 4), loss=F.l1_loss)
    assert by_default.reduction == "mean"
    assert "whose default reduction is 'mean'" in by_default.notes[0]
    assert verify.adapters.torch_linear(torch.nn.Linear(2, 4)).notes == ()
    with pytest.raises(ContractError, match=r"reduction='none', but the contract's loss is a"):
        verify.adapters.torch_linear(torch.nn.Linear(2, 4), loss=torch.nn.L1Loss(reduction="none"))


#: ``TORCH_NET`` holding its criterion too, ``nn.L1Loss()``: a mean by default.
TORCH_NET_WITH_LOSS = TORCH_NET.replace(
    "        self.fc = torch.nn.Linear(3, 4, bias=bias)\n",
    "        self.fc = torch.nn.Linear(3, 4, bias=bias)\n"
    "        self.criterion = torch.nn.L1Loss()\n",
)


@pytest.mark.torch
def test_a_module_holding_nn_l1loss_passes_through_the_adapter_in_a_worker(
    tmp_path: Any,
) -> None:
    """A model holding its criterion, ``nn.L1Loss()`` (a mean by default): the adapter takes it
    as the loss and its reduction; the worker's greeting carries the reduction to the oracle,
    and every check passes judged as the mean. Declared otherwise, it fails."""
    pytest.importorskip("torch")
    path = tmp_path / "net.py"
    path.write_text(
        TORCH_NET_WITH_LOSS + "candidate = verify.adapters.torch_linear(net, torch.optim.SGD)\n"
    )
    report = verify.check(f"{path}:candidate", max_examples=4, jobs=1, repro_dir=None)
    report.raise_on_failure()
    assert report.isolated and report.checked == 10 and report.settings.reduction == "mean"
    assert any("the module's criterion, L1Loss()" in note for note in report.load_notes)
    summed = verify.check(
        f"{path}:candidate", reduction="sum", functions=["loss", "step"], max_examples=4, jobs=1
    )
    assert [f.status for f in summed.functions] == ["fail", "fail"], summed.summary()
