"""Every check the oracle can run, as data: one record per check in one registry, ``CHECKS``.

A record says what the check needs from the candidate, how its cases are drawn (a Hypothesis
strategy, then fixed edge cases) and how a case is judged. The command line's ``--functions``,
the report's order and the search all read this registry: a new check is one new record.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from .._contract import CHECK_NAMES, FUNCTIONS, PARAMETER_OF, Signature, signature
from .._settings import Settings
from ..candidate import Caller
from ._cases import (
    Case,
    Shapes,
    crossing_free,
    crossing_free_cases,
    edge_cases,
    integer_cases,
    layer_cases,
)
from ._findings import Finding
from ._judge import Judge, judge_consistency, judge_function, judge_identities

Draw = Callable[[Signature, Settings, Shapes], st.SearchStrategy[Case]]


@dataclasses.dataclass(frozen=True)
class Check:
    """One check.

    Attributes:
      signature: what a case holds (the call's arrays and ``lr``), named after the check.
      needs: alternatives, each a set of contract functions the candidate must provide.
      judge: how one case is judged (``_judge``).
      draw: the search's cases.
      edge_transform: applied to each fixed edge case with the options
        (``_cases.edge_cases``), if any.
      dtypes: the dtypes the check means something for.
      ambiguity_probe: after a failure whose candidates the counterexample cannot tell apart,
        run probe cases chosen for them (``_probes.resolve``; a function of the contract).
      from_pieces: a failure is traced to the first of the candidate's own functions that fails
        on the same data (``_probes.follows_from_pieces``): the fused step takes its cause
        where it equals its pieces; a composition notes it.
    """

    signature: Signature
    needs: tuple[frozenset[str], ...]
    judge: Judge
    draw: Draw = layer_cases
    edge_transform: Callable[[Case, Settings], Case] | None = None
    dtypes: frozenset[str] = frozenset({"float64", "float32", "bfloat16", "float16"})
    ambiguity_probe: bool = False
    from_pieces: bool = False

    @property
    def name(self) -> str:
        return self.signature.name

    @property
    def weight(self) -> int:
        """How many contract functions one case may call (1 for a function's own check):
        checks that run at once start heaviest first, so that none is left to run alone."""
        return max(len(need) for need in self.needs)

    def requirement(self) -> str:
        """What the check needs, in words (a skipped check's note)."""
        options = " or ".join(", ".join(sorted(need)) for need in self.needs)
        dtypes = "" if len(self.dtypes) == 4 else f"; dtype {' or '.join(sorted(self.dtypes))}"
        layer = _LAYER_WITH.get(PARAMETER_OF.get(self.name, "w"), "")
        return f"needs {options}{dtypes}{layer}"

    def needs_for(self, options: Settings) -> tuple[frozenset[str], ...]:
        """``needs`` for this layer: where dL_dw comes from the pieces (grad_w), every
        parameter's gradient does (with a bias, dL_db from grad_b)."""
        gradients = {f"grad_{name}" for name in options.parameters}
        return tuple(need | gradients if "grad_w" in need else need for need in self.needs)

    def calls(self, provided: frozenset[str], options: Settings | None = None) -> frozenset[str]:
        """The functions its cases call: the first alternative of ``needs`` that the candidate
        provides (the judges prefer it: ``identities`` the fused step over the pieces)."""
        needs = self.needs if options is None else self.needs_for(options)
        return next((need for need in needs if need <= provided), frozenset())

    def applies(self, provided: frozenset[str], options: Settings) -> bool:
        """Whether the candidate provides what the check needs, at this dtype, on a layer with
        the parameter the check is for (grad_b: on a layer with a bias only)."""
        if PARAMETER_OF.get(self.name, "w") not in options.parameters:
            return False
        needs = self.needs_for(options)
        return options.dtype in self.dtypes and any(need <= provided for need in needs)

    def signature_for(self, parameters: tuple[str, ...]) -> Signature:
        """What a case holds on the layer with these parameters (``Settings.parameters``):
        every parameter wherever w is passed to forward or step (``_contract.signature``;
        identities and consistency too: ``(x, w, b, target)``)."""
        if self.name in FUNCTIONS:
            return signature(self.name, parameters)
        arguments = tuple(
            name
            for argument in self.signature.arguments
            for name in (parameters if argument == "w" else (argument,))
        )
        return self.signature._replace(arguments=arguments)

    def run(self, caller: Caller, case: Case, options: Settings) -> tuple[float, Finding | None]:
        """``judge`` one case, with the oracle's own numerics quiet: whatever the candidate
        returned (inf, NaN, complex) gets a verdict, never a warning from the oracle's
        arithmetic on it."""
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.judge(caller, case, options)

    def cases(self, options: Settings, shapes: Shapes) -> st.SearchStrategy[Case]:
        """The search's cases, of ``shapes`` (the run's pool, ``_cases.pool_shapes``)."""
        return self.draw(self.signature_for(options.parameters), options, shapes)

    def edges(self, options: Settings) -> list[Case]:
        return edge_cases(self.signature_for(options.parameters), options, self.edge_transform)


#: What a check of one parameter's function needs of the layer, in words (``requirement``).
_LAYER_WITH = {"b": "; a layer with a bias (bias option)"}

#: The pieces a step is composed of.
_PIECES = frozenset({"forward", "loss", "loss_grad", "grad_x", "grad_w", "update"})

#: Every check, in the order it runs and is reported.
CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        *(
            Check(
                signature,
                (frozenset({name}),),
                judge_function,
                ambiguity_probe=True,
                from_pieces=name == "step",
            )
            for name, signature in FUNCTIONS.items()
        ),
        Check(
            Signature("identities", ("x", "w", "target"), takes_lr=True),
            (frozenset({"step"}), _PIECES - {"grad_x"}),
            judge_identities,
            draw=crossing_free_cases,
            edge_transform=crossing_free,
            from_pieces=True,
        ),
        Check(
            Signature("consistency", ("x", "w", "target"), takes_lr=True),
            (_PIECES | {"step"},),
            judge_consistency,
            draw=integer_cases,
            # Half-precision outputs of integer data are not exact.
            dtypes=frozenset({"float64", "float32"}),
            from_pieces=True,
        ),
    )
}

# The contract names every check (``_contract.CHECK_NAMES``: the settings validate --functions
# against it); this registry holds their records, in that order.
assert tuple(CHECKS) == CHECK_NAMES, (tuple(CHECKS), CHECK_NAMES)
