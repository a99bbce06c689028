"""The precision audit: its decision logic on emulated arithmetics, and its run on this backend.

Emulations are numpy: inputs rounded to 10 mantissa bits behave as TF32, to 7 as bfloat16, a
hi/lo split with three products as TPU HIGH; the exact float64 product rounded once to float32
is true float32. The audit must name each one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from verify.__main__ import main as verify_main
from verify.tools import precision as audit


def round_mantissa(x: np.ndarray, bits: int, *, truncate: bool = False) -> np.ndarray:
    """float32 ``x`` rounded to ``bits`` stored mantissa bits (nearest-even, or toward zero)."""
    raw = np.asarray(x, np.float32).view(np.uint32)
    drop = 23 - bits
    if not truncate:
        half_minus_one = np.uint32((1 << (drop - 1)) - 1)
        raw = raw + half_minus_one + ((raw >> np.uint32(drop)) & np.uint32(1))
    return (raw & ~np.uint32((1 << drop) - 1)).view(np.float32)


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


def rounded_inputs(bits: int, *, truncate: bool = False) -> audit.Matmul:
    return lambda a, b: product(
        round_mantissa(a, bits, truncate=truncate), round_mantissa(b, bits, truncate=truncate)
    )


def three_pass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a_hi, b_hi = round_mantissa(a, 7), round_mantissa(b, 7)
    a_lo, b_lo = round_mantissa(a - a_hi, 7), round_mantissa(b - b_hi, 7)
    wide = [
        (x.astype(np.float64), y.astype(np.float64))
        for x, y in ((a_hi, b_hi), (a_hi, b_lo), (a_lo, b_hi))
    ]
    return sum(x @ y for x, y in wide).astype(np.float32)


EMULATIONS = {
    "float32": product,
    "tf32": rounded_inputs(10),
    "tf32-truncated": rounded_inputs(10, truncate=True),
    "bf16_3x": three_pass,
    "bf16": rounded_inputs(7),
}


def test_round_mantissa() -> None:
    x = np.float32(1 + 2.0**-8 - 2.0**-12)
    assert round_mantissa(x, 7) == 1.0  # just under half a bfloat16 ulp: down
    assert round_mantissa(x, 10) == np.float32(1 + 2.0**-8)  # 3.75 TF32 ulps: up
    assert round_mantissa(x, 10, truncate=True) == np.float32(1 + 3 * 2.0**-10)
    assert round_mantissa(np.float32(3.0), 7) == 3.0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("float32", "float32"),
        ("tf32", "tf32"),
        ("tf32-truncated", "tf32"),
        ("bf16_3x", "bf16_3x"),
        ("bf16", "bf16"),
    ],
)
def test_emulated_arithmetic_is_recognised(name: str, expected: str) -> None:
    measurement = audit.measure(name, EMULATIONS[name], audit.probes(rows=64))
    assert measurement.behaves_as == expected, measurement.ratios
    # Every candidate coarser than the answer is consistent too; every finer one is broken.
    position = audit.CANDIDATES.index(expected)
    assert all(measurement.ratios[c] > 1 for c in audit.CANDIDATES[:position]), measurement.ratios


def test_conclusion_names_the_default_setting() -> None:
    probe_set = audit.probes(rows=32)
    measurements = [
        audit.measure(audit.DEFAULT_SETTING, EMULATIONS["tf32"], probe_set),
        audit.measure("Precision.HIGHEST", EMULATIONS["float32"], probe_set),
    ]
    line = audit.conclusion(measurements, "gpu: NVIDIA H100")
    assert line == (
        "float32 matmul at default precision behaves as TF32 (10-bit mantissa inputs) "
        "on this device (gpu: NVIDIA H100)"
    )
    table = audit.render(measurements, "gpu: NVIDIA H100")
    assert table.splitlines()[-1] == line
    assert "Precision.HIGHEST" in table


def test_a_wrong_product_is_not_a_rounding_effect() -> None:
    def off_by_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return product(a, b) + np.float32(1.0)

    measurement = audit.measure(audit.DEFAULT_SETTING, off_by_one, audit.probes(rows=16))
    assert measurement.behaves_as is None
    assert "not a rounding effect" in audit.conclusion([measurement], "cpu")


def test_an_unsupported_setting_gets_a_verdict_not_a_crash() -> None:
    def unsupported(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise ValueError("The precision 'TF32_TF32_F32' is not supported by dot_general on CPU")

    measurement = audit.measure(
        "DotAlgorithmPreset.TF32_TF32_F32", unsupported, audit.probes(rows=8)
    )
    assert measurement.error.startswith("ValueError: The precision 'TF32_TF32_F32'")
    assert "unsupported here" in audit.render([measurement], "cpu")
    assert "could not be measured" in audit.conclusion([measurement], "cpu")


def test_cli_on_this_backend(tmp_path, capsys) -> None:
    """``python -m verify precision``: on CPU every setting is full float32."""
    path = tmp_path / "precision.json"
    assert verify_main(["precision", "--rows", "32", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    assert out.strip().splitlines()[-1] == report["conclusion"]
    default = next(m for m in report["measurements"] if m["setting"] == audit.DEFAULT_SETTING)
    if report["device"].startswith("cpu"):
        assert report["conclusion"].startswith(
            "float32 matmul at default precision behaves as full float32"
        )
        assert default["behaves_as"] == "float32"
    else:  # on an accelerator the audit reports, it does not assert a precision
        assert default["behaves_as"] in audit.CANDIDATES


def test_cli_rejects_bad_rows(capsys) -> None:
    assert audit.main(["--rows", "0"]) == 2
    assert capsys.readouterr().err == "crosscheck: error: --rows must be >= 1, got 0\n"
