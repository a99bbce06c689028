"""Test-wide settings: strict JAX, float64 available, Hypothesis profiles, compile cache.

Profiles (select with ``--hypothesis-profile NAME``; ``ci`` loads by itself when CI is set):

- ``ci``: derandomized (the same examples every run), no deadline (first calls compile), no
  example database, bounded example counts. The default for ``nox -s tests``.
- ``dev``: random, for local runs.
- ``thorough``: 10x the examples, for nightly or manual runs (``nox -s thorough``).

Tests scale their example counts with ``examples(n)``, so one profile switch scales them all.
"""

from __future__ import annotations

import itertools
import math
import os
import random

import jax
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# float64 must be switchable on before any array is made; strict promotion and rank checks turn
# silent broadcasting (a classic source of wrong gradients) into errors, as in JAX's own tests.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

from verify import enable_compilation_cache  # noqa: E402
from verify.oracle.candidate._calls import RUN_CACHE_SETTINGS  # noqa: E402
from verify.strategies import LayerShape  # noqa: E402

_cache = enable_compilation_cache()
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist each process keeps a cache of its own: JAX writes an entry in place,
    # and another process reading it half-written warns (an error here) where it would only
    # recompile.
    _cache = enable_compilation_cache(_cache / os.environ["PYTEST_XDIST_WORKER"])
    # The suite already runs on every core: a check's own -j would start workers for nothing.
    # (tests/test_parallel.py passes jobs explicitly.)
    os.environ.setdefault("CROSSCHECK_JOBS", "1")
# The processes a test starts (python -m verify check, the accelerator script's steps, a child
# pytest) and their workers compile into the same cache: without it a CLI run on a jitted
# candidate compiled every shape cold, every run. (This process waits for them meanwhile.)
os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_cache)
os.environ.update(RUN_CACHE_SETTINGS)  # every compile stored, as in the oracle's own workers
# Triton decides at its import whether its own library's functions are interpreted, and a torch
# optimizer's first step imports it: a later in-process kernel (tests/test_kernels.py), though
# its module sets TRITON_INTERPRET, would then call compiled-mode functions from the
# interpreter. The suite's kernels run interpreted; TRITON_INTERPRET=0 compiles them on a GPU.
os.environ.setdefault("TRITON_INTERPRET", "1")

_common = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci", derandomize=True, database=None, print_blob=True, max_examples=100, **_common
)
settings.register_profile("dev", max_examples=100, **_common)
settings.register_profile("thorough", max_examples=1000, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def examples(n: int) -> settings:
    """Settings for a test that wants ``n`` examples in ``ci`` (scaled by the active profile)."""
    scale = settings.default.max_examples / 100
    return settings(max_examples=max(1, round(n * scale)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (a subprocess suite, the loops at a few hundred) first, in their
    order, then the rest: under xdist's worksteal (``nox -s tests``) the long ones start at once
    and the short ones fill in around them, instead of one long test ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def few_shapes(
    dims: tuple[int, ...], max_size: int, *, include: tuple[tuple[int, int, int], ...] = ()
) -> st.SearchStrategy[LayerShape]:
    """Shapes ``(N, I, O)`` from a few, for a test whose every distinct shape compiles the jitted
    functions it calls: every side takes every value of ``dims`` in one of them (each edge a side
    can sit on is met), none has ``N * I * O > max_size``, and the smallest cube (``(1, 1, 1)``
    where ``dims`` has 1) and ``include`` are among them.

    Greedy: each next shape covers the most (side, value) pairs still uncovered; ties are taken
    in an order fixed where the profile is derandomized (``ci``: the same few every run) and new
    each run otherwise. Sampled smallest first, so a failure shrinks to the smallest shape."""
    candidates = [
        LayerShape(*shape)
        for shape in itertools.product(sorted(set(dims)), repeat=3)
        if math.prod(shape) <= max_size
    ]
    random.Random(0 if settings.default.derandomize else None).shuffle(candidates)
    chosen = [LayerShape(*(min(dims),) * 3), *(LayerShape(*shape) for shape in include)]
    uncovered = {(side, value) for side in range(3) for value in dims}
    uncovered -= {(side, value) for shape in chosen for side, value in enumerate(shape)}
    while uncovered:
        best = max(candidates, key=lambda shape: len(uncovered & set(enumerate(shape))))
        if not uncovered & set(enumerate(best)):
            raise ValueError(f"no shape of dims={dims} within max_size={max_size} has {uncovered}")
        chosen.append(best)
        uncovered -= set(enumerate(best))
    return st.sampled_from(sorted(set(chosen), key=lambda shape: (math.prod(shape), shape)))
