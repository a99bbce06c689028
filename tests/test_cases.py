"""verify.oracle.judging._cases: the run's pool of shapes, and the shapes a declared tile adds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import reference
from verify.oracle._settings import OptionError, Settings, parse_tiles
from verify.oracle.judging import CHECKS
from verify.oracle.judging._cases import (
    EDGE_SHAPES,
    FIXED_SHAPES,
    layer_cases,
    pool_shapes,
    shape_pool,
    tile_shapes,
)


def test_a_tile_adds_its_edges_in_every_axis_with_the_others_small() -> None:
    shapes = tile_shapes((512,))
    for side in (511, 512, 513, 1025):
        assert {(side, 2, 3), (3, side, 2), (2, 3, side)} <= set(shapes)
    assert all(sorted(shape)[:2] == [2, 3] for shape in shapes)
    assert len(shapes) == 12


def test_without_a_tile_the_pool_is_unchanged_and_with_one_it_grows() -> None:
    plain = shape_pool(0)
    assert shape_pool(0, tiles=()) == plain
    tiled = shape_pool(0, tiles=(64, 512))
    assert set(tile_shapes((64, 512))) <= set(tiled)
    assert {tuple(s) for s in (*FIXED_SHAPES, *EDGE_SHAPES)} <= {tuple(s) for s in tiled}
    assert len(tiled) == len(plain) + 24
    assert max(max(shape) for shape in plain) <= 257


def test_tiles_are_parsed_and_checked() -> None:
    assert parse_tiles("512,64, 64") == (64, 512)
    assert Settings(tile=(64, 512)).tile == (64, 512)
    with pytest.raises(OptionError, match="tile must be a tuple of block sizes"):
        Settings(tile=(1,))
    with pytest.raises(ValueError, match="expected block sizes like 64,512"):
        parse_tiles("64;512")


def test_the_edge_cases_meet_every_tile_shape_whatever_the_search_drew() -> None:
    from verify.oracle.judging._cases import edge_cases
    from verify.oracle.judging._checks import CHECKS

    plain = edge_cases(CHECKS["forward"].signature, Settings())
    tiled = edge_cases(CHECKS["forward"].signature, Settings(tile=(512,)))
    assert len(tiled) == len(plain) + 12
    assert {(c.arrays["x"].shape[0], *c.arrays["w"].shape) for c in tiled[len(plain) :]} == set(
        tile_shapes((512,))
    )


def test_the_layer_is_read_from_the_bias_option_and_its_cases_follow_the_tree() -> None:
    """``Settings.parameters`` is the layer; every check's case holds each parameter wherever
    w is passed to forward or step, grad_b applies where the layer has b, and the update
    cases take turns over the parameters."""
    plain, biased = Settings(), Settings(bias=True)
    assert plain.parameters == ("w",) and biased.parameters == ("w", "b")
    identities = CHECKS["identities"]
    assert identities.signature_for(plain.parameters).arguments == ("x", "w", "target")
    assert identities.signature_for(biased.parameters).arguments == ("x", "w", "b", "target")
    assert CHECKS["step"].signature_for(biased.parameters).results == (
        reference.BiasStepResult._fields
    )
    assert CHECKS["grad_x"].signature_for(biased.parameters).arguments == ("dL_do", "w")
    provided = frozenset({"grad_b"})
    assert not CHECKS["grad_b"].applies(provided, plain)
    assert CHECKS["grad_b"].applies(provided, biased)
    pieces = identities.needs_for(biased)[1]
    assert {"grad_w", "grad_b"} <= pieces and identities.needs_for(plain)[1] == identities.needs[1]

    seen: set[tuple[str, ...]] = set()
    shapes = pool_shapes(shape_pool(0))

    @settings(
        derandomize=True, database=None, max_examples=20, suppress_health_check=list(HealthCheck)
    )
    @given(layer_cases(CHECKS["update"].signature, biased, shapes))
    def collect(case) -> None:
        seen.add(tuple(case.arrays))
        assert list(case.params) in (["w"], ["b"])
        assert np.ndim(case.arrays[f"dL_d{next(iter(case.params))}"]) == np.ndim(
            next(iter(case.params.values()))
        )

    collect()
    assert seen == {("w", "dL_dw"), ("b", "dL_db")}


def test_a_shape_meets_its_multiples_when_each_side_is_rounded_up() -> None:
    from verify.oracle.judging._cases import meeting

    assert meeting((1, 33, 64), (32, 32, 32)) == (32, 64, 64)
    assert meeting((129, 3, 2), (128, 32, 1)) == (256, 32, 2)
    assert meeting((5, 3, 4), (1, 1, 1)) == (5, 3, 4)


@pytest.mark.parametrize("multiples", [(32, 32, 32), (128, 32, 1), (1, 64, 1)])
def test_under_a_precondition_every_shape_meets_it_at_several_multiples(
    multiples: tuple[int, int, int],
) -> None:
    from verify.oracle.judging._cases import largest_size

    pool = shape_pool(0, tiles=(64,), multiples=multiples)
    assert len(set(pool)) == len(pool)
    for shape in pool:
        assert all(side % m == 0 for side, m in zip(shape, multiples, strict=True)), shape
        assert shape[0] * shape[1] * shape[2] <= largest_size(multiples)
    for k, m in enumerate(multiples):  # one, two and three whole blocks in every side
        assert {m, 2 * m, 3 * m} <= {shape[k] for shape in pool}, (k, pool)
    assert tuple(pool[0]) == multiples  # the smallest shape the kernel takes comes first
    assert len({tuple(sorted(s)) for s in pool if len(set(s)) == 3}) >= 1  # distinct sides


def test_the_tiles_edges_stay_where_they_meet_the_precondition() -> None:
    pool = set(shape_pool(0, tiles=(64,), multiples=(32, 32, 32)))
    # 63 and 64 meet 32 as 64, 65 as 96, 129 as 160: in each side, the others one block.
    for side in (64, 96, 160):
        assert {(side, 32, 32), (32, side, 32), (32, 32, side)} <= pool


def test_a_precondition_leaves_no_edge_case_or_narrowing_outside_it() -> None:
    from hypothesis import given, settings

    from verify.oracle.judging._cases import edge_cases, sub_shapes
    from verify.oracle.judging._checks import CHECKS

    options = Settings(multiple_of="N=128,I=32", tile=(64,))
    cases = edge_cases(CHECKS["forward"].signature, options)
    shapes = {(c.arrays["x"].shape[0], *c.arrays["w"].shape) for c in cases}
    assert shapes and all(n % 128 == 0 and i % 32 == 0 for n, i, _ in shapes), shapes
    assert (256, 32, 2) in shapes  # (129, 3, 2) rounded up

    seen = set()

    @settings(max_examples=60, database=None)
    @given(sub_shapes((384, 96, 5), (128, 32, 1)))
    def narrowed(shape: tuple[int, int, int]) -> None:
        seen.add(tuple(shape))

    narrowed()
    assert {s[0] for s in seen} <= {128, 256, 384} and {s[1] for s in seen} <= {32, 64, 96}
    assert (128, 32, 1) in seen  # each side shrinks to one block


@pytest.mark.parametrize("reduction", ["mean", "batchmean"])
@pytest.mark.parametrize("bias", [False, True])
def test_targets_without_crossing_follow_the_declared_reduction(reduction: str, bias: bool) -> None:
    """``without_crossing`` places each target twice the step's move away, the move of the
    declared reduction's step (its gradient divided by D): no output crosses its target, the
    loss (divided by D too) falls by exactly ``lr ||g||^2``, and by about the same share of
    itself as the sum's does on the same case. Placed for the sum's move, a mean's loss would
    fall by a share D times smaller, toward rounding."""
    from verify.oracle.judging._cases import make_case, without_crossing
    from verify.strategies import example_inputs

    check = CHECKS["identities"]
    parameters = Settings(bias=bias).parameters
    for seed, shape in enumerate([(3, 2, 4), (7, 5, 3), (16, 8, 2)]):
        inputs = example_inputs(shape, kind="normal", seed=seed, bias=bias)
        n, i, o = shape
        upstream, gradient = np.zeros((n, o), np.float32), np.zeros((i, o), np.float32)
        case = make_case(check.signature_for(parameters), inputs, upstream, gradient)
        shares = {}
        for declared, divisor in (("sum", 1), (reduction, n * o if reduction == "mean" else n)):
            clear = without_crossing(case, reduction=declared)
            assert clear.kind.endswith("no crossing")
            x = clear.arrays["x"].astype(np.float64)
            params = {name: value.astype(np.float64) for name, value in clear.params.items()}
            target = clear.arrays["target"].astype(np.float64)

            def output(params: dict[str, np.ndarray]) -> np.ndarray:
                return x @ params["w"] + params.get("b", 0.0)  # noqa: B023  # this loop's x

            signs = np.sign(output(params) - target) / divisor
            grads = {"w": x.T @ signs, "b": signs.sum(axis=0)}
            lr = clear.learning_rate
            stepped = {name: value - lr * grads[name] for name, value in params.items()}
            before, after = output(params) - target, output(stepped) - target
            assert np.all(np.sign(before) == np.sign(after)), (declared, shape)
            loss0, loss1 = np.abs(before).sum() / divisor, np.abs(after).sum() / divisor
            descent = lr * sum(float(np.sum(grads[name] ** 2)) for name in params)
            assert loss0 - loss1 == pytest.approx(descent, rel=1e-6), (declared, shape)
            shares[declared] = descent / loss0
        # The same share, but for the slack that keeps each element off its kink (64 u of the
        # outputs' magnitude, a larger part of a move divided by D): placed for the sum's
        # move, the share would be D (>= 3 here) times smaller.
        assert shares["sum"] >= shares[reduction] > shares["sum"] / 2, (shape, shares)
