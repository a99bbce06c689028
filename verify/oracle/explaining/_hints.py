"""The framework setting a named difference looks like: a bias term left on, a first Nesterov
step, a weight decay. Said as a question after the difference: the difference is read from the
candidate's results, the setting only suggested (a user writes ``nn.Linear(bias=True)``, not
``+c[o] per column``)."""

from __future__ import annotations

#: A per-column offset in a layer declared without a bias.
BIAS_TERM = "a bias term (nn.Linear(bias=True), eqx.nn.Linear(use_bias=True))?"

#: The settings that add ``lambda * w`` to the gradient.
WEIGHT_DECAY = "SGD(weight_decay=...), optax.add_decayed_weights"


def step_hint(scale: float) -> str:
    """What a step ``scale * lr * dL_dw`` looks like, where the scale suggests a setting
    (empty otherwise): ``1 < scale <= 2`` is a first Nesterov step, ``(1 + momentum) lr g``."""
    if 1.0 < scale <= 2.0:
        return (
            f"a first Nesterov step with momentum {scale - 1:.3g} moves (1 + momentum) * lr "
            "* dL_dw (SGD(momentum=..., nesterov=True), optax.sgd(..., nesterov=True))?"
        )
    return ""
