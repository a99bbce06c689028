"""A zoo of deliberately broken implementations of the layer, one bug each, for the oracle's tests.

Each mutant is a class (instantiable with no arguments, so ``python -m verify check
tests/zoo.py:Name`` loads it) that inherits the correct numpy layer ``Correct`` and overrides one
function with a bug people really write. The ``@mutant(...)`` above each class is its whole
definition as a bug: the diagnosis the oracle must give per function it breaks, the checks that
fail through them, its options and dtypes, and the hand-made cases (``Probe``) on which
tests/test_patterns.py calls the broken function itself. ``ZOO`` lists the declared mutants in
the order of this file; some bugs only show on some shapes (a dim of 1, a dim past 128, unequal
dims) or values (ties). ``CORRECT`` lists implementations that must pass.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import ml_dtypes
import numpy as np

import verify


@dataclasses.dataclass(frozen=True)
class Probe:
    """A hand-made case on which the pattern unit tests (tests/test_patterns.py) call the
    mutant's broken function directly, no worker and no search: the diagnosis the mutant
    declares for ``function`` must be named on ``result``, and no other pattern fit clearly.

    ``shape`` is the layer's ``(N, I, O)``; ``data`` is ``_probes.probe_case``'s (``"normal"``
    or ``"ties"``); ``function`` defaults to the first function the mutant breaks.
    """

    result: str
    shape: tuple[int, int, int] = (5, 3, 4)
    data: str = "normal"
    function: str | None = None


@dataclasses.dataclass(frozen=True)
class Mutant:
    """A broken implementation, the diagnosis expected per function it breaks (None: it
    passes), and how to check it."""

    cls: type
    expected: dict[str, str | None]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    max_examples: int = 25
    #: The checks that fail through the broken functions when every check runs (the fused
    #: step that calls them, the identities and consistency that compose them), by diagnosis;
    #: they may also pass, where the seed's search does not reach the failing shape.
    also: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The dtypes the bug is written for (a float32 kernel returns float32 at float64).
    dtypes: tuple[str, ...] = ("float32", "float64")
    probes: tuple[Probe, ...] = ()

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def bias(self) -> bool:
        """Whether the mutant is a layer with a bias (the oracle reads it from its parameters)."""
        return issubclass(self.cls, CorrectBias)

    def probed(self, probe: Probe) -> tuple[str, str]:
        """``(function, diagnosis)`` of ``probe``: the function it calls and the diagnosis this
        mutant declares for it (where it breaks it, or where it fails through it)."""
        function = probe.function or next(iter(self.expected))
        kind = self.expected.get(function) or self.also.get(function)
        if kind is None:
            raise ValueError(f"{self.name} declares no diagnosis for {function}")
        return function, kind


#: Every ``@mutant`` in this file, in its order (``ZOO``).
_DECLARED: list[Mutant] = []

_Class = TypeVar("_Class", bound=type)


def mutant(
    expected: dict[str, str | None],
    *,
    options: dict[str, Any] | None = None,
    also: dict[str, str] | None = None,
    max_examples: int = 25,
    dtypes: tuple[str, ...] = ("float32", "float64"),
    probes: tuple[Probe, ...] = (),
) -> Callable[[_Class], _Class]:
    """Declare the class below as a mutant of ``ZOO`` (``Mutant``'s fields, beside its code)."""

    def declare(cls: _Class) -> _Class:
        _DECLARED.append(
            Mutant(cls, expected, options or {}, max_examples, also or {}, dtypes, probes)
        )
        return cls

    return declare


#: Shorthands for ``also``: the fused step calls the broken piece and inherits its diagnosis;
#: a composition that calls a piece that raises, hangs or mutates its input shows that.
_STEP = "step"
_CALLS = ("step", "identities", "consistency")


def _through(kind: str, checks: tuple[str, ...] = (_STEP,)) -> dict[str, str]:
    return dict.fromkeys(checks, kind)


def _gradient(kind: str) -> dict[str, str]:
    """``also`` of a broken gradient: the fused step inherits its diagnosis, and the loss, the
    gradient and the update break convexity (the identities)."""
    return {"step": kind, "identities": "convexity"}


_FLOAT32 = ("float32",)


class Correct:
    """The layer in numpy, in the inputs' dtype: the base every mutant breaks in one place.

    output = x @ w, L = sum |output - target|, dL_do = sign(output - target) (-1 at ties),
    dL_dx = dL_do @ w.T, dL_dw = x.T @ dL_do, w_new = w - lr * dL_dw.
    """

    def forward(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x @ w

    def loss(self, output: np.ndarray, target: np.ndarray) -> Any:
        # at least float32 accumulation, as XLA does (numpy sums bfloat16 in bfloat16)
        accumulator = np.promote_types(output.dtype, np.float32)
        return np.abs(output - target).sum(dtype=accumulator).astype(output.dtype)

    def loss_grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.where(output > target, 1.0, -1.0).astype(output.dtype)

    def grad_x(self, dL_do: np.ndarray, w: np.ndarray) -> np.ndarray:
        return dL_do @ w.T

    def grad_w(self, x: np.ndarray, dL_do: np.ndarray) -> np.ndarray:
        return x.T @ dL_do

    def update(self, w: np.ndarray, dL_dw: np.ndarray, lr: float) -> np.ndarray:
        return w - np.asarray(lr, dtype=w.dtype) * dL_dw

    def step(self, x: np.ndarray, w: np.ndarray, target: np.ndarray, lr: float) -> tuple:
        output = self.forward(x, w)
        dL_do = self.loss_grad(output, target)
        dL_dw = self.grad_w(x, dL_do)
        return (
            self.loss(output, target),
            self.grad_x(dL_do, w),
            dL_dw,
            self.update(w, dL_dw, lr),
        )


class CorrectBias(Correct):
    """The layer with a bias b (O,), in numpy: the base every bias mutant breaks in one place.

    output = x @ w + b, dL_db = dL_do summed over the batch, b_new = b - lr * dL_db (the same
    update as w's); forward takes three parameters and step five, so the oracle reads the bias.
    """

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[override]
        return x @ w + b

    def grad_b(self, dL_do: np.ndarray) -> np.ndarray:
        accumulator = np.promote_types(dL_do.dtype, np.float32)
        return dL_do.sum(axis=0, dtype=accumulator).astype(dL_do.dtype)

    def step(  # type: ignore[override]
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray, target: np.ndarray, lr: float
    ) -> tuple:
        output = self.forward(x, w, b)
        dL_do = self.loss_grad(output, target)
        dL_dw, dL_db = self.grad_w(x, dL_do), self.grad_b(dL_do)
        return (
            self.loss(output, target),
            self.grad_x(dL_do, w),
            dL_dw,
            dL_db,
            self.update(w, dL_dw, lr),
            self.update(b, dL_db, lr),
        )


def _tf32(a: np.ndarray) -> np.ndarray:
    """Round float32 to TensorFloat-32 (10 mantissa bits), as a tensor core reads its inputs."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)
    return rounded.view(np.float32)


# --- layout -----------------------------------------------------------------------------------


@mutant(
    {"grad_w": "transposed"},
    also={"step": "transposed", "identities": "wrong_shape", "consistency": "raised"},
    probes=(Probe("dL_dw", (5, 4, 4)),),  # I == O: the transpose has dL_dw's shape
)
class TransposedGradW(Correct):
    def grad_w(self, x, dL_do):
        return dL_do.T @ x  # (O, I), the transpose of dL_dw


@mutant(
    {"grad_x": "transposed"},
    also=_through("transposed"),
    probes=(Probe("dL_dx", (4, 4, 3)),),  # N == I: the transpose has dL_dx's shape
)
class TransposedGradX(Correct):
    def grad_x(self, dL_do, w):
        return w @ dL_do.T  # (I, N)


# --- reductions -------------------------------------------------------------------------------


@mutant(
    {"grad_w": "mean_instead_of_sum"},
    also=_gradient("mean_instead_of_sum"),
    probes=(Probe("dL_dw"),),
)
class MeanGradW(Correct):
    def grad_w(self, x, dL_do):
        return x.T @ dL_do / x.shape[0]  # averaged over the batch


@mutant({"loss": "mean_instead_of_sum"}, also=_through("mean_instead_of_sum"), probes=(Probe("L"),))
class MeanLoss(Correct):
    def loss(self, output, target):
        return np.abs(output - target).mean()  # l1_loss(reduction="mean")


@mutant(
    {"loss_grad": "mean_instead_of_sum"},
    also=_gradient("mean_instead_of_sum"),
    probes=(Probe("dL_do"),),
)
class MeanLossGrad(Correct):
    def loss_grad(self, output, target):
        return (np.sign(output - target) / output.size).astype(output.dtype)


@mutant(
    {"step": "mean_instead_of_sum", "identities": "convexity"},
    also={"loss_grad": "mean_instead_of_sum"},
    probes=(Probe("dL_dw"),),
)
class MeanStep(Correct):
    """Mean-reduced gradient in the fused step, consistently applied: breaks the identities."""

    def loss_grad(self, output, target):
        return (np.where(output > target, 1.0, -1.0) / output.shape[0]).astype(output.dtype)


# --- declared reductions: correct under their declaration, wrong under any other --------------


def _reduced_loss(output: np.ndarray, target: np.ndarray, divisor: int) -> Any:
    """``sum |output - target| / D``, summed and divided in at least float32, stored."""
    accumulator = np.promote_types(output.dtype, np.float32)
    total = np.abs(output - target).sum(dtype=accumulator)
    return (total / accumulator.type(divisor)).astype(output.dtype)


class MeanLayer(Correct):
    """``l1_loss(reduction="mean")`` and its gradient, ``sign / (N*O)``: correct under
    ``reduction="mean"``; the step composed of them, as ``Correct``'s is."""

    def loss(self, output, target):
        return _reduced_loss(output, target, output.size)

    def loss_grad(self, output, target):
        return (np.where(output > target, 1.0, -1.0) / output.size).astype(output.dtype)


class BatchMeanLayer(Correct):
    """The sum over every output divided by the batch size N, and ``sign / N``: correct under
    ``reduction="batchmean"`` (the from-scratch ``cost / N``)."""

    def loss(self, output, target):
        return _reduced_loss(output, target, output.shape[0])

    def loss_grad(self, output, target):
        return (np.where(output > target, 1.0, -1.0) / output.shape[0]).astype(output.dtype)


class MeanBiasLayer(CorrectBias):
    """``MeanLayer`` with a bias: dL_db, the sum over the batch of dL_do, divided with it."""

    loss = MeanLayer.loss
    loss_grad = MeanLayer.loss_grad


class MeanFusedStep(MeanLayer):
    """A fused step that divides after its matmuls, ``(x.T @ sign) / (N*O)``, where its pieces
    divide dL_do first: the same gradients up to rounding, consistent under the mean."""

    def step(self, x, w, target, lr):
        output = x @ w
        sign = np.where(output > target, 1.0, -1.0).astype(output.dtype)
        count = output.dtype.type(output.size)
        dL_dw = (x.T @ sign) / count
        return self.loss(output, target), (sign @ w.T) / count, dL_dw, self.update(w, dL_dw, lr)


class MeanFusedTieStep(MeanLayer):
    """``FusedTieStep`` under the mean: +1 at ties in the fused step, -1 in its loss_grad; each
    admissible, the two inconsistent."""

    def step(self, x, w, target, lr):
        output = x @ w
        dL_do = (np.where(output >= target, 1.0, -1.0) / output.size).astype(output.dtype)
        dL_dw = x.T @ dL_do
        return self.loss(output, target), dL_do @ w.T, dL_dw, self.update(w, dL_dw, lr)


class MeanLossBatchMeanGrad(Correct):
    """A loss that is a mean over N*O whose gradient divides by N only (a real bug: two
    reductions that disagree): wrong under every declaration."""

    loss = MeanLayer.loss
    loss_grad = BatchMeanLayer.loss_grad


# --- signs and upstream -----------------------------------------------------------------------


@mutant({"grad_x": "sign_flip"}, also=_through("sign_flip"), probes=(Probe("dL_dx"),))
class SignFlipGradX(Correct):
    def grad_x(self, dL_do, w):
        return -(dL_do @ w.T)


@mutant({"update": "sign_flip"}, also=_through("sign_flip"), probes=(Probe("w_new"),))
class AscentUpdate(Correct):
    def update(self, w, dL_dw, lr):
        return w + np.asarray(lr, dtype=w.dtype) * dL_dw


@mutant(
    {"grad_w": "upstream_ignored"}, also=_gradient("upstream_ignored"), probes=(Probe("dL_dw"),)
)
class UpstreamIgnoredGradW(Correct):
    def grad_w(self, x, dL_do):
        return x.T @ np.ones_like(dL_do)  # assumes dL_do is the L1 sign, all +-1 ... and 1


@mutant({"grad_x": "upstream_ignored"}, probes=(Probe("dL_dx"),))
class UpstreamSignGradX(Correct):
    def grad_x(self, dL_do, w):
        return np.sign(dL_do) @ w.T  # re-derives the L1 sign instead of using the upstream


@mutant({"grad_w": "upstream_ignored"}, probes=(Probe("dL_dw"),))
class UpstreamClippedGradW(Correct):
    def grad_w(self, x, dL_do):
        return x.T @ np.clip(dL_do, -1, 1)


# --- loop bounds ------------------------------------------------------------------------------


@mutant({"forward": "off_by_one"}, also=_through("off_by_one"), probes=(Probe("output"),))
class OffByOneForward(Correct):
    def forward(self, x, w):
        return x[:, :-1] @ w[:-1]  # for i in range(I - 1)


@mutant({"grad_w": "off_by_one"}, also=_gradient("off_by_one"), probes=(Probe("dL_dw"),))
class OffByOneGradW(Correct):
    def grad_w(self, x, dL_do):
        return x[:-1].T @ dL_do[:-1]  # for d in range(N - 1)


@mutant({"loss": "off_by_one"}, also=_through("off_by_one"))
class OffByOneLoss(Correct):
    def loss(self, output, target):
        return np.abs(output[:, :-1] - target[:, :-1]).sum()  # for j in range(O - 1)


@mutant({"loss": "off_by_one"}, also=_through("off_by_one"))
class WholeBlocksLoss(Correct):
    """Sums rows in blocks of 128 and counts N // 128 blocks: below 128 rows L is 0, so the
    weight table is read again past a block, where rows 128.. weigh 0."""

    def loss(self, output, target):
        whole = output.shape[0] // 128 * 128
        return np.abs(output[:whole] - target[:whole]).sum(dtype=output.dtype)


@mutant(
    {"grad_w": "off_by_one"},
    also=_gradient("off_by_one"),
    max_examples=40,
    probes=(Probe("dL_dw", (130, 3, 4)),),  # rows 128 and 129 left out
)
class BlockedGradW(Correct):
    """A blocked kernel that forgets the remainder: only shows past 128 rows."""

    def grad_w(self, x, dL_do):
        return x[:128].T @ dL_do[:128]


# --- ties -------------------------------------------------------------------------------------


@mutant(
    {"loss_grad": "tie_convention"},
    options={"tie_convention": "seed"},
    also=_through("tie_convention"),
    probes=(Probe("dL_do", data="ties"),),
)
class JaxTieLossGrad(Correct):
    """+1 at ties (jax.grad's abs): correct, but not the seed's pinned -1."""

    def loss_grad(self, output, target):
        return np.where(output >= target, 1.0, -1.0).astype(output.dtype)


@mutant(
    {"step": "tie_convention"},
    options={"tie_convention": "jax"},
    also={"loss_grad": "tie_convention"},
    probes=(Probe("dL_dx", data="ties"),),
)
class TorchTieStep(Correct):
    """0 at ties (PyTorch's sign): correct, but not jax's pinned +1."""

    def loss_grad(self, output, target):
        return np.sign(output - target).astype(output.dtype)


# --- precision --------------------------------------------------------------------------------


@mutant(
    {"forward": "reduced_precision"},
    also=_through("reduced_precision"),
    dtypes=_FLOAT32,
    probes=(Probe("output", (5, 64, 4)),),  # I = 64: a sum long enough to round
)
class TF32Forward(Correct):
    def forward(self, x, w):
        return _tf32(x) @ _tf32(w)


@mutant(
    {"grad_w": "reduced_precision"},
    also=_gradient("reduced_precision"),
    dtypes=_FLOAT32,
    probes=(Probe("dL_dw"),),
)
class BF16GradW(Correct):
    def grad_w(self, x, dL_do):
        x16, u16 = (a.astype(ml_dtypes.bfloat16).astype(np.float32) for a in (x, dL_do))
        return x16.T @ u16


@mutant(
    {"grad_x": "reduced_precision"},
    also=_through("reduced_precision"),
    dtypes=_FLOAT32,
    probes=(Probe("dL_dx"),),
)
class Float16GradX(Correct):
    def grad_x(self, dL_do, w):
        with np.errstate(over="ignore", invalid="ignore"):
            u16, w16 = (a.astype(np.float16).astype(np.float32) for a in (dL_do, w))
            return (u16 @ w16.T).astype(np.float16).astype(np.float32)


# --- contract violations ----------------------------------------------------------------------


@mutant({"forward": "wrong_shape"}, also=_through("raised", _CALLS))
class SqueezeForward(Correct):
    """np.squeeze drops a dim of 1: only shows when N or O is 1."""

    def forward(self, x, w):
        return np.squeeze(x @ w)


@mutant({"loss_grad": "wrong_dtype"})
class IntegerLossGrad(Correct):
    def loss_grad(self, output, target):
        return (output > target) * 2 - 1  # the notebook's formula: int64


@mutant({"loss_grad": "nan"}, also={"step": "nan", "identities": "nan"})
class NaNAtTiesLossGrad(Correct):
    """(o - t) / |o - t|: 0/0 at a tie, so only shows on ties."""

    def loss_grad(self, output, target):
        difference = output - target
        with np.errstate(invalid="ignore", divide="ignore"):
            return difference / np.abs(difference)


@mutant({"update": "input_mutated"}, also=_through("input_mutated"))
class InPlaceUpdate(Correct):
    def update(self, w, dL_dw, lr):
        w -= np.asarray(lr, dtype=w.dtype) * dL_dw
        return w


@mutant(
    {"grad_w": "nondeterministic"},
    also={**_gradient("nondeterministic"), "consistency": "inconsistent"},
)
class NoisyGradW(Correct):
    def grad_w(self, x, dL_do):
        noise = np.random.default_rng().standard_normal() * 1e-3
        return (x.T @ dL_do * (1 + noise)).astype(x.dtype)


@mutant({"grad_x": "raised"}, also=_through("raised", _CALLS))
class RaisesGradX(Correct):
    """np.dot(dL_do, w) instead of dL_do @ w.T: raises unless O == I."""

    def grad_x(self, dL_do, w):
        return np.dot(dL_do, w)


@mutant(
    {"forward": "timed_out"},
    options={"timeout": 0.5},
    max_examples=3,
    also=_through("timed_out", _CALLS),
)
class HangingForward(Correct):
    def forward(self, x, w):
        time.sleep(30)
        return x @ w


@mutant({"step": None, "consistency": "inconsistent"})
class FusedTieStep(Correct):
    """A fused step that takes +1 at ties while its own loss_grad takes -1: each is a valid
    subgradient against the reference, but the fused path disagrees with the pieces."""

    def step(self, x: np.ndarray, w: np.ndarray, target: np.ndarray, lr: float) -> tuple:
        output = x @ w
        dL_do = np.where(output >= target, 1.0, -1.0).astype(output.dtype)
        dL_dw = x.T @ dL_do
        return self.loss(output, target), dL_do @ w.T, dL_dw, self.update(w, dL_dw, lr)


# --- optimizers and layers as frameworks write them ------------------------------------------


@mutant({"update": "weight_decay"}, also=_through("weight_decay"), probes=(Probe("w_new"),))
class WeightDecayUpdate(Correct):
    """torch.optim.SGD(weight_decay=1e-4): the decay is added to the gradient."""

    decay = 1e-4

    def update(self, w, dL_dw, lr):
        decay = np.asarray(self.decay, w.dtype)
        return w - np.asarray(lr, dtype=w.dtype) * (dL_dw + decay * w)


@mutant({"update": "scaled_step"}, also=_through("scaled_step"), probes=(Probe("w_new"),))
class NesterovUpdate(Correct):
    """SGD(momentum=0.9, nesterov=True), first step: the buffer is g, the step g + 0.9 g."""

    def update(self, w, dL_dw, lr):
        momentum = np.asarray(0.9, dtype=w.dtype)
        return w - np.asarray(lr, dtype=w.dtype) * (dL_dw + momentum * dL_dw)


@mutant({"update": "normalized_step"}, also=_through("normalized_step"), probes=(Probe("w_new"),))
class AdamStep(Correct):
    """optax.adam / torch.optim.Adam instead of SGD, first step: lr m_hat / (sqrt(v_hat) + eps)."""

    def update(self, w, dL_dw, lr):
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        m_hat = (1 - beta1) * dL_dw / (1 - beta1)
        v_hat = (1 - beta2) * dL_dw * dL_dw / (1 - beta2)
        return (w - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(w.dtype)


@mutant({"forward": "bias"}, also=_through("bias"), probes=(Probe("output"),))
class BiasForward(Correct):
    """A Linear layer with its bias left on (a fixed, nonzero bias per output)."""

    def forward(self, x, w):
        bias = np.linspace(0.25, 0.75, w.shape[1]).astype(x.dtype)
        return x @ w + bias


@mutant(
    {"grad_w": "accumulated_gradient"},
    also={**_gradient("accumulated_gradient"), "consistency": "inconsistent"},
)
class AccumulatingGradW(Correct):
    """A cached module whose .grad is never zeroed: each call adds its gradient to the last."""

    def __init__(self) -> None:
        self.grads: dict[tuple[int, ...], np.ndarray] = {}

    def grad_w(self, x, dL_do):
        shape = (x.shape[1], dL_do.shape[1])
        previous = self.grads.get(shape, np.zeros(shape, dtype=x.dtype))
        self.grads[shape] = (previous + x.T @ dL_do).astype(x.dtype)
        return self.grads[shape].copy()


@mutant({"loss_grad": "wrong_loss"}, also=_gradient("wrong_loss"), probes=(Probe("dL_do"),))
class SquaredErrorLossGrad(Correct):
    """The gradient of nn.MSELoss(reduction="sum"): 2 (output - target)."""

    def loss_grad(self, output, target):
        return 2 * (output - target)


@mutant({"loss": "wrong_loss"}, also=_through("wrong_loss"))
class SmoothL1Loss(Correct):
    """F.smooth_l1_loss (reduction="mean", beta=1) where F.l1_loss(reduction="sum") was meant."""

    def loss(self, output, target):
        r = np.abs(output.astype(np.float64) - target)
        return np.where(r < 1, 0.5 * r * r, r - 0.5).mean().astype(output.dtype)


@mutant({"update": "weight_decay"}, also=_through("weight_decay"), probes=(Probe("w_new"),))
class StrongWeightDecayUpdate(WeightDecayUpdate):
    decay = 5e-2


class HalfPrecisionSum(Correct):
    """Correct, in an arithmetic that must be declared: matmuls accumulate in float64, but the
    loss is ``np.abs(output - target).sum()``, which numpy sums in bfloat16 / float16 itself
    (``--accumulation bfloat16`` accepts it; without it, loss and step are reduced_precision)."""

    def _matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(a.dtype)

    def forward(self, x, w):
        return self._matmul(x, w)

    def loss(self, output, target):
        return np.abs(output - target).sum()

    def grad_x(self, dL_do, w):
        return self._matmul(dL_do, w.T)

    def grad_w(self, x, dL_do):
        return self._matmul(x.T, dL_do)


# --- blocks and grids: kernels that stop at a block's edge -----------------------------------


@mutant(
    {"forward": "off_by_one"},
    also=_through("off_by_one"),
    probes=(Probe("output", (5, 40, 4)),),  # I = 40: two blocks of 16, and 8 left over
)
class SkipPartialBlockForward(Correct):
    """A blocked kernel over I that runs I // 16 full blocks and skips the partial last one."""

    block = 16

    def forward(self, x, w):
        k = (x.shape[1] // self.block) * self.block
        return x[:, :k] @ w[:k]


@mutant(
    {"grad_w": "off_by_one"},
    also=_gradient("off_by_one"),
    probes=(Probe("dL_dw", (130, 3, 4)),),  # a block of 128 rows, and 2 left over
)
class SkipPartialBlockGradW(Correct):
    """grad_w blocked over N by 128, the partial last block of rows skipped."""

    def grad_w(self, x, dL_do):
        k = (x.shape[0] // 128) * 128
        return x[:k].T @ dL_do[:k]


@mutant(
    {"grad_x": "off_by_one"},
    also=_through("off_by_one"),
    probes=(Probe("dL_dx", (5, 3, 40)),),  # a block of 32 outputs, and 8 left over
)
class SkipPartialBlockGradX(SkipPartialBlockForward):
    """grad_x blocked over O by 32, the partial last block skipped."""

    block = 32

    forward = Correct.forward

    def grad_x(self, dL_do, w):
        k = (dL_do.shape[1] // self.block) * self.block
        return dL_do[:, :k] @ w[:, :k].T


@mutant({"forward": "off_by_one"}, options={"tile": (512,)}, also=_through("off_by_one"))
class SkipPartialTileForward(Correct):
    """A kernel whose block over I is min(512, I): whole below 512, and past it the partial
    last block is skipped. No side up to 257 shows it; ``--tile 512`` does."""

    def forward(self, x, w):
        block = min(512, x.shape[1])
        k = (x.shape[1] // block) * block
        return x[:, :k] @ w[:k]


@mutant(
    {"forward": "unwritten"},
    also={"step": "unwritten", "identities": "nan"},
    probes=(Probe("output", (13, 3, 4)),),  # rows 8..12 never written
)
class FlooredGridForward(Correct):
    """A grid of N // 8 row tiles over an uninitialised (NaN) output: the rows of a partial
    last tile are never written."""

    def forward(self, x, w):
        out = np.full((x.shape[0], w.shape[1]), np.nan, dtype=x.dtype)
        rows = (x.shape[0] // 8) * 8
        out[:rows] = x[:rows] @ w
        return out


@mutant(
    {"grad_w": "unwritten"},
    also={"step": "unwritten", "identities": "nan"},
    probes=(Probe("dL_dw", (5, 3, 40)),),  # columns 32..39 never written
)
class FlooredGridGradW(Correct):
    """A grid of O // 32 column tiles of dL_dw over a NaN buffer."""

    def grad_w(self, x, dL_do):
        out = np.full((x.shape[1], dL_do.shape[1]), np.nan, dtype=x.dtype)
        cols = (dL_do.shape[1] // 32) * 32
        out[:, :cols] = x.T @ dL_do[:, :cols]
        return out


@mutant(
    {"forward": "unwritten"},
    also={"step": "unwritten", "identities": "nan"},
    probes=(Probe("output", (13, 3, 12)),),  # the last 5 rows and the last 4 columns
)
class FlooredGrid2DForward(Correct):
    """A 2-D grid of (N // 8) x (O // 8) tiles of 8 x 8 over a NaN output: the rows and the
    columns of the partial last tiles, an L along the bottom and the right, are never written."""

    def forward(self, x, w):
        out = np.full((x.shape[0], w.shape[1]), np.nan, dtype=x.dtype)
        rows, cols = (x.shape[0] // 8) * 8, (w.shape[1] // 8) * 8
        out[:rows, :cols] = x[:rows] @ w[:, :cols]
        return out


@mutant({"forward": "misplaced_terms"}, also=_through("misplaced_terms"))
class TileRowsForward(Correct):
    """Rows past a tile of 8 copied from the row before: the term map reads x[7, i] paired
    with w[i, o] for n >= 8."""

    def forward(self, x, w):
        out = x @ w
        if out.shape[0] > 8:
            out[8:] = out[7]
        return out


@mutant({"forward": "mismatch"}, also=_through("mismatch"))
class AbsRowsForward(Correct):
    """Rows past a tile of 8 made non-negative: no bug pattern fits, and the result is not
    bilinear (negating x does not negate it), so no term map is claimed."""

    def forward(self, x, w):
        out = x @ w
        if out.shape[0] > 8:
            out[8:] = np.abs(out[8:])
        return out


# --- structure: what the term map and the branch table read ----------------------------------


@mutant({"grad_w": "misplaced_terms"}, also=_gradient("misplaced_terms"))
class RolledRowsGradW(Correct):
    def grad_w(self, x, dL_do):
        return np.roll(x, 1, axis=0).T @ dL_do  # x[n - 1] with dL_do[n], the last row wrapped


@mutant({"grad_x": "extra_terms"}, also=_through("extra_terms"))
class LastOutputTwiceGradX(Correct):
    def grad_x(self, dL_do, w):
        return dL_do @ w.T + dL_do[:, -1:] @ w[:, -1:].T  # the last output's terms added again


@mutant({"grad_x": "not_computed"}, also=_through("not_computed"))
class ZeroGradX(Correct):
    def grad_x(self, dL_do, w):
        return np.zeros((dL_do.shape[0], w.shape[0]), dL_do.dtype)  # left as a placeholder


@mutant({"forward": "not_computed"}, also=_through("not_computed"))
class PlaceholderForward(Correct):
    def forward(self, x, w):
        return np.ones((x.shape[0], w.shape[1]), x.dtype)  # a stub never replaced


@mutant({"update": "not_computed"}, also=_through("not_computed"), dtypes=("float32", "bfloat16"))
class ZeroUpdate(Correct):
    """The new weights allocated and never written. In bfloat16 at lr = 0.01 the zeros fit a
    weight decay of 1/lr within the step's rounding on small integers; the update read on
    normal values rules that out."""

    def update(self, w, dL_dw, lr):
        return np.zeros_like(w)


@mutant({"grad_w": "offset"}, also=_gradient("offset"))
class EpsilonGradW(Correct):
    def grad_w(self, x, dL_do):
        return x.T @ dL_do + np.asarray(1e-3, x.dtype)  # a stability epsilon where none belongs


@mutant({"loss_grad": "wrong_branch"}, also=_gradient("wrong_branch"))
class HalfSignLossGrad(Correct):
    def loss_grad(self, output, target):
        return np.where(output > target, 1.0, 0.0).astype(output.dtype)  # the -1 branch lost


# --- scales and scalars ---------------------------------------------------------------------


@mutant({"forward": "scaled"}, also=_through("scaled"), probes=(Probe("output"),))
class TwiceForward(Correct):
    def forward(self, x, w):
        return 2 * (x @ w)


@mutant({"grad_x": "scaled"}, also=_through("scaled"), probes=(Probe("dL_dx"),))
class HalfGradX(Correct):
    def grad_x(self, dL_do, w):
        return 0.5 * (dL_do @ w.T)


@mutant({"grad_x": "scaled"}, also=_through("scaled"), probes=(Probe("dL_dx"),))
class SeventhGradX(Correct):
    """grad_x divided by a count written into the code (7) that is not the batch's: a scale no
    reduction explains, so scaled and never mean_instead_of_sum."""

    def grad_x(self, dL_do, w):
        return (dL_do @ w.T) / np.asarray(7, dL_do.dtype)


@mutant(
    {"update": "scaled_step"},
    options={"dtype": "float64"},
    also=_through("scaled_step"),
    dtypes=("float64",),
    probes=(Probe("w_new"),),
)
class LrFloat32Update(Correct):
    """lr through a float32 argument (w - float32(lr) * dL_dw) in a float64 layer."""

    def update(self, w, dL_dw, lr):
        return w - np.float32(lr).astype(w.dtype) * dL_dw


@mutant(
    {"update": "scaled_step"},
    also=_through("scaled_step"),
    dtypes=_FLOAT32,
    probes=(Probe("w_new"),),
)
class LrBfloat16Update(Correct):
    """lr through a bfloat16 constant in a float32 layer."""

    def update(self, w, dL_dw, lr):
        return w - np.asarray(lr, ml_dtypes.bfloat16).astype(w.dtype) * dL_dw


@mutant({"step": "stale_weights", "consistency": "inconsistent"}, probes=(Probe("dL_dx"),))
class StaleWeightsStep(Correct):
    """A fused step that updates w before its backward pass: dL_dx = dL_do @ w_new.T."""

    def step(self, x, w, target, lr):
        output = x @ w
        dL_do = self.loss_grad(output, target)
        dL_dw = x.T @ dL_do
        w_new = self.update(w, dL_dw, lr)
        return self.loss(output, target), dL_do @ w_new.T, dL_dw, w_new


# --- the layer with a bias -------------------------------------------------------------------


@mutant(
    {"grad_b": "mean_instead_of_sum"},
    also=_gradient("mean_instead_of_sum"),
    probes=(Probe("dL_db"),),
)
class MeanGradB(CorrectBias):
    """dL_db averaged over the batch: b[j] moves every example's output j, so it sums."""

    def grad_b(self, dL_do):
        return dL_do.mean(axis=0).astype(dL_do.dtype)


@mutant(
    {"grad_b": "upstream_ignored"}, also=_gradient("upstream_ignored"), probes=(Probe("dL_db"),)
)
class UpstreamIgnoredGradB(CorrectBias):
    """dL_db counts the examples (a column of ones summed) instead of summing dL_do."""

    def grad_b(self, dL_do):
        return np.ones_like(dL_do).sum(axis=0).astype(dL_do.dtype)


# identities: not judged, as for any update outside its bound (the step names it).
@mutant(
    {"step": "bias_not_updated"}, also={"consistency": "inconsistent"}, probes=(Probe("b_new"),)
)
class BiasNotUpdatedStep(CorrectBias):
    """The fused step computes dL_db and returns b unchanged: only w is updated."""

    def step(self, x, w, b, target, lr):
        loss, dL_dx, dL_dw, dL_db, w_new, _ = super().step(x, w, b, target, lr)
        return loss, dL_dx, dL_dw, dL_db, w_new, b.copy()


@mutant(
    {"forward": "bias_twice"},
    also=_through("bias_twice"),
    probes=(Probe("output"), Probe("dL_dw", function="step")),
)
class BiasTwiceForward(CorrectBias):
    """b added once as the layer's bias and once more (``out = x @ w + b; out += b``)."""

    def forward(self, x, w, b):
        output = x @ w + b
        output += b
        return output


@mutant(
    {"forward": "bias_axis"},
    also=_through("raised", _CALLS),
    probes=(Probe("output", (4, 3, 4)),),  # N == O: b[:, None] broadcasts to (N, O)
)
class BiasAxisForward(CorrectBias):
    """b as a column, ``b[:, None]``: added per example, not per output feature (numpy
    broadcasts it without an error where N == O, to (O, O) where N == 1, else raises)."""

    def forward(self, x, w, b):
        return x @ w + b[:, None]


# The fused step's (N,) dL_db is grad_b's, traced to it (bias_axis); the identities read its
# wrong shape, and consistency's update of b by it raises where N and O differ (neither 1).
@mutant(
    {"grad_b": "bias_axis"},
    also={"step": "bias_axis", "identities": "wrong_shape", "consistency": "raised"},
    probes=(Probe("dL_db", (4, 3, 4)),),  # N == O: a sum over O has dL_db's shape
)
class BiasAxisGradB(CorrectBias):
    """dL_db summed over the outputs (``axis=1``), not over the batch: (N,) where (O,) is due."""

    def grad_b(self, dL_do):
        return dL_do.sum(axis=1).astype(dL_do.dtype)


ZOO: tuple[Mutant, ...] = tuple(_DECLARED)


def declared(cls: type) -> Mutant:
    """The record ``@mutant`` declares for ``cls``."""
    return next(mutant for mutant in ZOO if mutant.cls is cls)


#: Correct implementations (and correct tie conventions when none is pinned): must all pass.
CORRECT: tuple[type, ...] = (Correct, JaxTieLossGrad, TorchTieStep, CorrectBias)

#: Implementations correct under a declared option, with it: must all pass so.
DECLARED: tuple[tuple[type, dict[str, Any]], ...] = (
    (MeanLayer, {"reduction": "mean"}),
    (BatchMeanLayer, {"reduction": "batchmean"}),
    (MeanBiasLayer, {"reduction": "mean"}),
)


#: Correct examples a user copies (SPECs), by the module each needs (skipped without it).
EXAMPLES: dict[str, str] = {
    "examples/numpy_layer.py": "numpy",
    "examples/numpy_bias_layer.py": "numpy",
    "examples/jax_grad.py": "jax",
    "examples/torch_manual.py:layer": "torch",
    "examples/torch_autograd.py:layer": "torch",
    "examples/equinox_optax_layer.py": "equinox",
    "examples/flax_layer.py": "flax",
}


def run_mutant(
    mutant: Mutant,
    seed: int,
    *,
    every: bool = False,
    dtype: str | None = None,
    repro_dir: Path | None = None,
) -> verify.Report:
    """The oracle's report on one mutant: the functions it breaks, or ``every`` function (and
    its reproducers in ``repro_dir``, if given). The class is passed, not an instance, so that
    the oracle loads it in a worker process of its own."""
    options = dict(mutant.options)
    if dtype is not None:
        options["dtype"] = dtype
    return verify.check(
        mutant.cls,
        functions=None if every else list(mutant.expected),
        max_examples=mutant.max_examples,
        seed=seed,
        repro_dir=repro_dir,
        **options,
    )


def diagnoses(report: verify.Report) -> dict[str, str | None]:
    """``{function: diagnosis}`` of a report (None where the function passed)."""
    return {f.function: f.diagnosis for f in report.functions}


def failures(found: dict[str, str | None]) -> dict[str, str]:
    """The failing functions of ``diagnoses`` (or of an expectation) and their diagnoses."""
    return {name: str(kind) for name, kind in found.items() if kind is not None}


def confused(mutant: Mutant, found: dict[str, str | None]) -> dict[str, tuple[str, str]]:
    """The checks of ``mutant``'s every-check report ``found`` off the diagonal, as ``{check:
    (expected, found)}``: a broken function that does not fail with its diagnosis, a check that
    fails through it (``Mutant.also``) with another diagnosis, or any other check that fails.
    A check listed in ``also`` may pass: whether the search reaches the failing shape there (a
    bug past 128 rows, seen by the identities) depends on the seed."""
    off = {}
    for check in dict.fromkeys([*mutant.expected, *mutant.also, *found]):
        got = str(found.get(check) or "pass")
        if check in mutant.expected:
            want = str(mutant.expected[check] or "pass")
            ok = got == want
        elif check in mutant.also:
            want = f"{mutant.also[check]} or pass"
            ok = got in (mutant.also[check], "pass")
        else:
            want, ok = "pass", got == "pass"
        if not ok:
            off[check] = (want, got)
    return off


def confusion(
    dtypes: tuple[str, ...] = ("float32", "float64"), seed: int = 0
) -> list[tuple[str, str, str, str, str, bool]]:
    """Every check of every mutant, at each dtype it is written for: rows ``(mutant, dtype,
    check, expected, found, on the diagonal)`` for every check that fails or is expected to;
    the matrix is diagonal when every row is (``confused``)."""
    rows = []
    for dtype in dtypes:
        for mutant in ZOO:
            if dtype not in mutant.dtypes:
                continue
            found = diagnoses(run_mutant(mutant, seed, every=True, dtype=dtype))
            off = confused(mutant, found)
            for check in dict.fromkeys([*mutant.expected, *mutant.also, *failures(found)]):
                got = str(found.get(check) or "pass")
                want = off[check][0] if check in off else got
                rows.append((mutant.name, dtype, check, want, got, check not in off))
    return rows


def kill_rate(seeds: tuple[int, ...] = (0, 1, 2), max_examples: int = 15) -> dict[str, Any]:
    """Run the zoo and the correct implementations over ``seeds``; count kills and false alarms.

    A mutant is killed on a seed when every expected function fails with its expected
    diagnosis; a false positive is a correct implementation (or example, or one of
    ``DECLARED`` under its options) failing on a seed.
    """
    import importlib.util

    misses, false_positives, runs = [], [], 0
    for seed in seeds:
        for mutant in ZOO:
            found = diagnoses(run_mutant(mutant, seed))
            if found != mutant.expected:
                misses.append((mutant.name, seed, found))
        correct: list[tuple[Any, dict[str, Any]]] = [(impl, {}) for impl in CORRECT]
        correct += [
            (spec, {}) for spec, needs in EXAMPLES.items() if importlib.util.find_spec(needs)
        ]
        for impl, options in [*correct, *DECLARED]:
            runs += 1
            report = verify.check(
                impl, max_examples=max_examples, seed=seed, repro_dir=None, **options
            )
            if not report.passed:
                false_positives.append((report.implementation, seed, report.summary()))
    killed = len(ZOO) * len(seeds) - len(misses)
    return {
        "mutants": len(ZOO),
        "seeds": seeds,
        "killed": killed,
        "kill_rate": killed / (len(ZOO) * len(seeds)),
        "misses": misses,
        "correct_runs": runs,
        "false_positives": false_positives,
    }


def docs_examples(seed: int = 0) -> dict[str, Any]:
    """One real example per diagnosis, for the documentation's table of diagnoses.

    Runs every mutant of ``ZOO`` on ``seed`` and keeps, for each diagnosis its report gives,
    the first failing function (in ``ZOO`` order): the mutant, the function, the detail, the
    element-level message and the minimal counterexample. Nothing here names a diagnosis: the
    keys are whatever the oracle says, so a diagnosis the zoo does not provoke has no entry.
    """
    found: dict[str, dict[str, Any]] = {}
    for mutant in ZOO:
        report = run_mutant(mutant, seed)
        for function in report.functions:
            if function.diagnosis is None or str(function.diagnosis) in found:
                continue
            found[str(function.diagnosis)] = {
                "mutant": f"tests/zoo.py:{mutant.name}",
                "options": {key: str(value) for key, value in mutant.options.items()},
                "function": function.function,
                "detail": function.detail,
                "message": function.message,
                "counterexample": function.counterexample() or None,
            }
    return {
        "generated_by": "python -m scripts.zoo --docs PATH",
        "seed": seed,
        "mutants": len(ZOO),
        "examples": found,
    }
