"""verify.oracle.judging._cases: the run's pool of shapes, and the shapes a declared tile adds."""

from __future__ import annotations

import pytest

from verify.oracle._settings import OptionError, Settings, parse_tiles
from verify.oracle.judging._cases import EDGE_SHAPES, FIXED_SHAPES, shape_pool, tile_shapes


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
