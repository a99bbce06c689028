"""Every verdict the oracle can give on a failing check, with its meaning: ``Diagnosis``.

The judges decide some (a call that raised, a result of the wrong shape, two calls that
differ past the bound, a result outside its bound: ``mismatch``); the explaining wing names
the cause of a wrong result with the others (``explaining._patterns``). Each has one home,
which a test proves.
"""

from __future__ import annotations

import enum


class Diagnosis(enum.StrEnum):
    """Every verdict the oracle gives on a failing check; ``meaning`` says it in words."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Diagnosis:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # The causes named from the evidence (``explaining._patterns``), in the order candidates
    # are listed; then the verdicts the judges decide themselves.
    TIE_CONVENTION = "tie_convention", "ties take another convention than the pinned one"
    TRANSPOSED = (
        "transposed",
        "the result, or an operand, is transposed (dL_do @ w where dL_do @ w.T belongs)",
    )
    SIGN_FLIP = "sign_flip", "the sign is flipped"
    MEAN_INSTEAD_OF_SUM = (
        "mean_instead_of_sum",
        "the loss or its gradient is reduced by another divisor than the declared reduction's "
        "(by default: divided by N, O or N*O, a mean where the L1 loss sums)",
    )
    WRONG_LOSS = (
        "wrong_loss",
        "the result belongs to another loss (squared error, smooth L1 / Huber), not the L1 loss",
    )
    BIAS = "bias", "the output carries a bias term: output - x @ w is constant down each column"
    BIAS_TWICE = (
        "bias_twice",
        "the layer adds its bias more than once: output = x @ w + 2 b (or k b: in every split "
        "of a sum)",
    )
    BIAS_AXIS = (
        "bias_axis",
        "b is broadcast along the wrong axis: added per example (b[:, None]) instead of per "
        "output feature, or dL_db summed over O instead of over the batch",
    )
    BIAS_NOT_UPDATED = (
        "bias_not_updated",
        "the step leaves b as it was: b_new = b (b is not among the parameters it updates)",
    )
    WEIGHT_DECAY = (
        "weight_decay",
        "the update decays the weights: w_new = w - lr * (dL_dw + lambda * w)",
    )
    NORMALIZED_STEP = (
        "normalized_step",
        "the step w - w_new is about lr * sign(dL_dw): an adaptive optimizer such as Adam",
    )
    SCALED_STEP = (
        "scaled_step",
        "the step w - w_new is c * lr * dL_dw for a c other than 1 (a first momentum or "
        "Nesterov step, a clipped gradient, lr applied twice, lr rounded to a narrower dtype)",
    )
    SCALED = "scaled", "the result is a constant multiple of the right one"
    UPSTREAM_IGNORED = (
        "upstream_ignored",
        "the upstream gradient dL_do is ignored, reduced to its sign or clipped",
    )
    STALE_WEIGHTS = (
        "stale_weights",
        "the fused step computes dL_dx with the updated weights w_new instead of w",
    )
    MISPLACED_TERMS = (
        "misplaced_terms",
        "terms pair the wrong elements: an index shifted or reflected (x[n, i] with "
        "w[i - 48, o]), rows of one operand paired with another's neighbours",
    )
    EXTRA_TERMS = (
        "extra_terms",
        "terms the contract does not sum, or sums once, are added (a split-K partial summed "
        "twice, blocks that overlap)",
    )
    NOT_COMPUTED = (
        "not_computed",
        "the result is all zeros, or one constant: nothing is computed from the inputs (a "
        "gradient never written, a loop that never runs)",
    )
    OFFSET = (
        "offset",
        "a constant is added to the result (a stray bias, a bias added where it does not "
        "belong or left out where it does)",
    )
    WRONG_BRANCH = (
        "wrong_branch",
        "an element-wise result is wrong on part of its domain: a branch of the sign, an "
        "epsilon that moves the branch point, an input ignored",
    )
    OFF_BY_ONE = (
        "off_by_one",
        "a loop bound is off: a term, a block of the sum or a slice of the result is missing",
    )
    REDUCED_PRECISION = (
        "reduced_precision",
        "consistent with lower-precision arithmetic than was asked for",
    )
    UNWRITTEN = (
        "unwritten",
        "part of the result is never written: NaN past a tile edge (a grid that stops early)",
    )
    ACCUMULATED_GRADIENT = (
        "accumulated_gradient",
        "a second identical call adds the gradient again: gradients accumulate across calls "
        "(zero_grad forgotten?)",
    )
    WRONG_SHAPE = "wrong_shape", "the result has the wrong shape"
    WRONG_DTYPE = "wrong_dtype", "the result has the wrong dtype (or is not an array)"
    NAN = "nan", "the result has NaN or infinity where the right one is finite"
    INPUT_MUTATED = "input_mutated", "an input array was changed in place"
    NONDETERMINISTIC = (
        "nondeterministic",
        "two calls on the same input differ by more than two results within the error bound "
        "can (by anything, under --deterministic)",
    )
    RAISED = "raised", "the call raised an exception"
    TIMED_OUT = "timed_out", "the call did not return within the timeout"
    CRASHED = "crashed", "the candidate's process ended during the call (an exit or a signal)"
    CONVEXITY = (
        "convexity",
        "the loss, gradient and update break convexity or the no-crossing identity",
    )
    INCONSISTENT = "inconsistent", "the fused step disagrees with the implementation's own pieces"
    MISMATCH = (
        "mismatch",
        "the result is outside its error bound and no known bug pattern is confirmed",
    )

    @property
    def evidence(self) -> str:
        """What a Finding's ``traceback`` holds for this diagnosis."""
        return "candidate's last output" if self is Diagnosis.CRASHED else "candidate traceback"
