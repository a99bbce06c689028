"""verify.oracle.explaining._readings: constants named by the dims, and regions in words."""

from __future__ import annotations

import numpy as np

from verify.oracle.explaining import _readings

# --------------------------------------------------------------------------------------------
# Constants and regions
# --------------------------------------------------------------------------------------------


def test_constants_by_the_dims() -> None:
    assert _readings.name_constant(-0.05, 5, 4).symbol() == "-1/(N*O)"
    assert _readings.name_constant(-0.05, 5, 4).number(plus=True) == "-1/20"
    assert _readings.name_constant(0.2, 5, 4).symbol() == "1/N"
    assert _readings.name_constant(0.25, 4, 4).symbol() == "1/N (= 1/O here)"
    assert _readings.name_constant(0.1, 5, 4).symbol() == "2/(N*O)"
    assert _readings.name_constant(5.0, 5, 4).symbol() == "N"
    assert _readings.name_constant(0.37, 5, 4).symbol() == "0.37"
    assert _readings.short_decimal(0.0995, 0.1004) == 0.1
    assert _readings.short_decimal(0.98, 1.02) == 1.0
    assert _readings.short_decimal(0.13681, 0.13682) is None


def test_regions() -> None:
    mask = np.zeros((5, 4), bool)
    mask[:, 0] = True
    assert _readings.region(mask) == ("column 0", "in the other columns")
    assert _readings.region(~mask) == ("columns 1..3", "in the other columns")
    rows = np.zeros((5, 4), bool)
    rows[[0, 2]] = True
    assert _readings.region(rows) == ("rows 0, 2", "in the other rows")
    one = np.zeros((5, 4), bool)
    one[1, 2] = True
    assert _readings.region(one) == ("position (1, 2)", "elsewhere")
