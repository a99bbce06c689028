"""Kernels checked before the accelerator: ``examples/pallas_layer.py`` (Pallas, interpreted)
and ``examples/triton_layer.py`` (Triton, ``TRITON_INTERPRET=1``) pass at their dtypes, and the
edge bugs of ``tests/kernel_bugs/`` (a floored grid, an unmasked or skipped partial K step),
each right where the blocks divide the shape, are caught. Marked ``kernels``: interpreted
kernels are slow, so they run in ``nox -s frameworks``."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest

import verify
from tests.helpers import ROOT

pytestmark = pytest.mark.kernels

#: The layer's own functions: what every bug variant provides.
LAYER = ["forward", "grad_x", "grad_w"]

BUGS = ("FlooredGrid", "UnmaskedDepth", "SkippedPartialDepth")

#: Checks run per dtype: all nine, but the step/pieces consistency at half precision.
CHECKED = {"float32": 9, "float64": 9, "bfloat16": 8, "float16": 8}


def needs_triton() -> None:
    # Found, not imported: the kernels' modules set TRITON_INTERPRET before Triton's import.
    missing = [name for name in ("torch", "triton") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs the triton extra (missing: {', '.join(missing)})")


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_the_pallas_kernel_passes_at_every_dtype(dtype: str) -> None:
    report = verify.check(
        "examples/pallas_layer.py", max_examples=5, dtype=dtype, jobs=1, repro_dir=None
    )
    report.raise_on_failure()
    assert report.checked == CHECKED[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_the_triton_kernel_passes_at_every_dtype(dtype: str) -> None:
    needs_triton()
    report = verify.check(
        "examples/triton_layer.py", max_examples=5, dtype=dtype, jobs=1, repro_dir=None
    )
    report.raise_on_failure()
    assert report.checked == CHECKED[dtype]


def bug_module(kind: str):
    if kind == "triton":
        needs_triton()
    sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"tests.kernel_bugs.{kind}_layers")


@pytest.mark.parametrize("kind", ["pallas", "triton"])
@pytest.mark.parametrize("bug", BUGS)
def test_each_bug_is_right_where_the_blocks_divide_the_shape(kind: str, bug: str) -> None:
    """The variants are edge bugs: on whole blocks (64 x 32 @ 32 x 96) they are exact, so the
    oracle finding them below means it met a partial block."""
    module = bug_module(kind)
    layer = getattr(module, bug)()
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (64, 32)).astype(np.float32)
    w = rng.integers(-3, 4, (32, 96)).astype(np.float32)
    convert = getattr(layer, "asarray", lambda a: a)
    output = np.asarray(layer.forward(convert(x), convert(w)))
    np.testing.assert_array_equal(output, x @ w)


#: What the oracle names each Pallas bug: the floored grid's unwritten rows and columns show
#: on the probe past a block edge; an unmasked K step reads the interpreter's NaN padding into
#: every element (a computed NaN, no region); a skipped partial K step leaves the output block
#: uninitialised (NaN) where K < 32 and drops a block's terms past it: the term map reads the
#: terms it lacks past the last whole block (``PARTIAL_DEPTH``).
PALLAS_DIAGNOSES = {
    "FlooredGrid": "unwritten",
    "UnmaskedDepth": "nan",
    "SkippedPartialDepth": "off_by_one",
}

#: The skipped partial K step's reading, per function: the terms past K's last whole block
#: (K = 130 on the term map's probe; blocks of 32).
PARTIAL_DEPTH = {
    "forward": "lacks x[n, i] * w[i, o] for i >= 128",
    "grad_x": "lacks dL_do[n, o] * w[i, o] for o >= 128",
    "grad_w": "lacks x[n, i] * dL_do[n, o] for n >= 128",
}


@pytest.mark.parametrize("bug", BUGS)
def test_the_oracle_catches_each_pallas_edge_bug(bug: str) -> None:
    # The interpreter fills what a block reads past an array, and what no block writes, with
    # NaN: each bug leaves NaN in the result at the first partial block.
    report = verify.check(
        f"tests/kernel_bugs/pallas_layers.py:{bug}",
        max_examples=5,
        functions=LAYER,
        jobs=1,
        repro_dir=None,
    )
    assert [f.status for f in report.functions] == ["fail"] * 3, report.summary()
    assert {f.diagnosis for f in report.functions} == {PALLAS_DIAGNOSES[bug]}, report.summary()
    if bug == "SkippedPartialDepth":
        for function in report.functions:
            assert PARTIAL_DEPTH[function.function] in (function.detail or ""), report.summary()
            # The counterexample's NaN (K < 32: no block written) is said, not explained away.
            assert "the result has NaN or infinity" in (function.detail or ""), report.summary()


@pytest.mark.parametrize("bug", BUGS)
def test_the_oracle_catches_each_triton_edge_bug(bug: str) -> None:
    needs_triton()
    report = verify.check(
        f"tests/kernel_bugs/triton_layers.py:{bug}",
        max_examples=5,
        functions=LAYER,
        jobs=1,
        repro_dir=None,
    )
    assert [f.status for f in report.functions] == ["fail"] * 3, report.summary()
    if bug == "SkippedPartialDepth":
        # A sum missing its last K step is a finite, repeatable wrong value (the others read
        # or leave garbage, whose diagnosis depends on what memory held).
        unreliable = {"nan", "nondeterministic", "raised", "crashed"}
        assert not {f.diagnosis for f in report.functions} & unreliable, report.summary()
