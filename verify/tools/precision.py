"""``python -m verify precision``: what a float32 matmul really computes on this backend.

For each precision setting (JAX's default, ``lax.Precision`` DEFAULT / HIGH / HIGHEST, the
``jax.default_matmul_precision`` names and a few ``lax.DotAlgorithmPreset`` algorithms) it
multiplies two float32 probes ``a (M, K) @ b (K, P)`` on the current device and measures
``|c - exact|`` element by element against the error model (``verify.bounds.forward_bound``)
of each candidate arithmetic: true float32, 6- and 3-pass bfloat16 (TPU HIGHEST / HIGH), TF32
(GPU DEFAULT) and one-pass bfloat16 (TPU DEFAULT). The worst ratio error / bound per candidate
says which arithmetics the result is consistent with (<= 1); the setting "behaves as" the most
precise of them.

Two probes, because a worst-case bound is loose for typical data (random rounding errors cancel
as sqrt(K)):

- ``adversarial``: positive entries ``(1 + 2^-8 - 2^-12) 2^e`` and ``(1 + 2^-8 - 2^-13) 2^e``,
  K = 8. Every input loses almost half a bfloat16 ulp (2^-8) in the same direction, a TF32 input
  a quarter or three quarters of a TF32 ulp, and a 3-pass split drops the ``lo * lo'`` term
  (2^-16): the errors add up instead of cancelling, so each candidate's bound is met or broken
  by a wide margin.
- ``random``: standard normal entries, K = 64: the typical case, for the record.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import bounds
from ..messages import ExitCode, Parser, UsageError, print_error

#: Candidate arithmetics of a float32 matmul, most precise first (``bounds.MATMUL_INPUT_ROUNDOFF``;
#: float16 inputs are left out: no float32 precision setting produces them).
CANDIDATES: tuple[bounds.MatmulPrecision, ...] = ("float32", "bf16_6x", "bf16_3x", "tf32", "bf16")

#: How each candidate reads in the conclusion.
DESCRIPTIONS: dict[str, str] = {
    "float32": "full float32",
    "bf16_6x": "6-pass bfloat16 (float32 to within 2^-22)",
    "bf16_3x": "3-pass bfloat16 (about 16 bits)",
    "tf32": "TF32 (10-bit mantissa inputs)",
    "bf16": "one-pass bfloat16 (8-bit mantissa inputs)",
}

#: The setting the conclusion is about: what ``x @ w`` in float32 does with no precision given.
DEFAULT_SETTING = "jax default"

Matmul = Callable[[np.ndarray, np.ndarray], Any]


class Probe(NamedTuple):
    """Two float32 operands ``a (M, K)``, ``b (K, P)`` and what they are for."""

    name: str
    a: np.ndarray
    b: np.ndarray


class Measurement(NamedTuple):
    """One setting on all probes.

    ``ratios[candidate]``: worst error / bound over every probe element (<= 1: consistent).
    ``relative_error``: worst ``|c - exact| / (|a| @ |b|)``; ``behaves_as``: the most precise
    candidate every probe met. ``error``: why it could not run.
    """

    setting: str
    ratios: dict[str, float]
    relative_error: float
    behaves_as: str | None
    error: str | None = None


def probes(*, rows: int = 256, seed: int = 0) -> tuple[Probe, ...]:
    """The adversarial and random probes (module docstring), ``rows x K @ K x rows``."""
    rng = np.random.default_rng(seed)

    def adversarial(mantissa: float, shape: tuple[int, int]) -> np.ndarray:
        return (mantissa * 2.0 ** rng.integers(-2, 3, size=shape)).astype(np.float32)

    k_small, k_random = 8, 64
    return (
        Probe(
            "adversarial",
            adversarial(1 + 2.0**-8 - 2.0**-12, (rows, k_small)),
            adversarial(1 + 2.0**-8 - 2.0**-13, (k_small, rows)),
        ),
        Probe(
            "random",
            rng.standard_normal((rows, k_random)).astype(np.float32),
            rng.standard_normal((k_random, rows)).astype(np.float32),
        ),
    )


def measure(
    setting: str,
    matmul: Matmul,
    probe_set: Sequence[Probe],
    candidates: Sequence[bounds.MatmulPrecision] = CANDIDATES,
) -> Measurement:
    """Run ``matmul`` on each probe and grade the results against each candidate's bound
    (``bounds.diagnose_precision``: which arithmetics the results are consistent with)."""
    computed = []
    for probe in probe_set:
        try:
            result = np.asarray(matmul(probe.a, probe.b), dtype=np.float64)
        except Exception as error:  # an algorithm the backend lacks: a verdict, not a crash
            first = (str(error).strip().splitlines() or [""])[0][:120]
            return Measurement(setting, {}, math.nan, None, f"{type(error).__name__}: {first}")
        expected_shape = (probe.a.shape[0], probe.b.shape[1])
        if result.shape != expected_shape:
            raise ValueError(
                f"{setting} returned shape {result.shape}, but should be {expected_shape}"
            )
        computed.append(result)
    arithmetics = {bounds.arithmetic("float32", name).name: name for name in candidates}
    diagnosis = bounds.diagnose_precision(
        lambda arith: [bounds.forward_bound(p.a, p.b, arith) for p in probe_set],
        computed,
        [bounds.arithmetic("float32", name) for name in candidates],
    )
    ratios: dict[str, float] = {arithmetics[name]: r for name, r in diagnosis.ratios.items()}
    behaves_as = arithmetics[diagnosis.consistent[0]] if diagnosis.consistent else None
    relative = 0.0
    for probe, result in zip(probe_set, computed, strict=True):
        exact = probe.a.astype(np.float64) @ probe.b.astype(np.float64)
        magnitude = np.abs(probe.a.astype(np.float64)) @ np.abs(probe.b.astype(np.float64))
        relative = max(relative, float(np.max(np.abs(result - exact) / magnitude)))
    return Measurement(setting, ratios, relative, behaves_as)


def conclusion(measurements: Sequence[Measurement], device: str) -> str:
    """The one-line verdict about the default setting, e.g. "... behaves as TF32 on this device"."""
    default = next((m for m in measurements if m.setting == DEFAULT_SETTING), None)
    if default is None or default.error is not None:
        why = "not measured" if default is None else default.error
        return f"float32 matmul at default precision could not be measured on {device}: {why}"
    if default.behaves_as is None:
        closest = min(default.ratios, key=default.ratios.__getitem__)
        return (
            f"float32 matmul at default precision exceeds every candidate bound on {device} "
            f"(closest: {closest}, {default.ratios[closest]:.3g}x): not a rounding effect"
        )
    return (
        f"float32 matmul at default precision behaves as {DESCRIPTIONS[default.behaves_as]} "
        f"on this device ({device})"
    )


def jax_settings() -> dict[str, Matmul]:
    """Every precision setting to audit, as ``(a, b) -> a @ b`` on the default device."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def jitted(**dot_kwargs: Any) -> Matmul:
        # A fresh jit per setting: default_matmul_precision is read when the function traces.
        return jax.jit(lambda a, b: jnp.matmul(a, b, **dot_kwargs))

    def under_config(name: str) -> Matmul:
        def run(a: np.ndarray, b: np.ndarray) -> Any:
            with jax.default_matmul_precision(name):
                return jax.block_until_ready(jitted()(a, b))

        return run

    settings: dict[str, Matmul] = {DEFAULT_SETTING: jitted()}
    for precision in ("DEFAULT", "HIGH", "HIGHEST"):
        settings[f"Precision.{precision}"] = jitted(precision=lax.Precision[precision])
    for name in ("bfloat16", "tensorfloat32", "float32"):
        settings[f"default_matmul_precision({name!r})"] = under_config(name)
    for preset in ("F32_F32_F32", "TF32_TF32_F32", "BF16_BF16_F32", "BF16_BF16_F32_X3"):
        settings[f"DotAlgorithmPreset.{preset}"] = jitted(
            precision=getattr(lax.DotAlgorithmPreset, preset), preferred_element_type=jnp.float32
        )
    return settings


def device_description() -> str:
    import jax

    device = jax.devices()[0]
    kind = str(device.device_kind)
    return device.platform if kind.lower() == device.platform else f"{device.platform}: {kind}"


def audit(
    settings: Mapping[str, Matmul], probe_set: Sequence[Probe] | None = None
) -> list[Measurement]:
    """``measure`` every setting on the probes (default ``probes()``)."""
    probe_set = probes() if probe_set is None else probe_set
    return [measure(name, matmul, probe_set) for name, matmul in settings.items()]


def _bits(relative: float) -> str:
    if math.isnan(relative):
        return "-"
    return "exact" if relative == 0 else f"2^{math.log2(relative):.1f}"


def render(measurements: Sequence[Measurement], device: str, header: Sequence[str] = ()) -> str:
    """The audit as a text table, then the conclusion line."""
    width = max(len(m.setting) for m in measurements)
    lines = [*header, ""]
    lines.append(
        f"{'setting':<{width}}  {'max rel err':>11}  "
        + "  ".join(f"{name:>8}" for name in CANDIDATES)
        + "  behaves as"
    )
    for m in measurements:
        if m.error is not None:
            lines.append(f"{m.setting:<{width}}  {'-':>11}  unsupported here ({m.error})")
            continue
        cells = "  ".join(f"{m.ratios[name]:>8.3g}" for name in CANDIDATES)
        verdict = m.behaves_as or "none of them"
        lines.append(f"{m.setting:<{width}}  {_bits(m.relative_error):>11}  {cells}  {verdict}")
    lines += ["", conclusion(measurements, device)]
    return "\n".join(lines)


def to_json(measurements: Sequence[Measurement], device: str) -> dict[str, Any]:
    return {
        "device": device,
        "candidates": list(CANDIDATES),
        "measurements": [m._asdict() for m in measurements],
        "conclusion": conclusion(measurements, device),
    }


def main(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="python -m verify precision",
        description="What float32 matmuls compute on this backend, at each precision setting.",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    parser.add_argument("--rows", type=int, default=256, help="probe rows and columns (256)")
    try:
        args = parser.parse_args(list(argv))
        if args.rows < 1:
            raise UsageError(f"--rows must be >= 1, got {args.rows}")
    except UsageError as err:
        print_error(err)
        return ExitCode.USAGE

    import jax

    device = device_description()
    measurements = audit(jax_settings(), probes(rows=args.rows))
    header = [
        f"crosscheck precision audit: float32 matmul on {device}, jax {jax.__version__}",
        f"JAX_DEFAULT_MATMUL_PRECISION={os.environ.get('JAX_DEFAULT_MATMUL_PRECISION', '(unset)')}",
        "columns: worst |computed - exact| / bound of each candidate arithmetic (<= 1: "
        "consistent); max rel err: worst |computed - exact| / (|a| @ |b|)",
    ]
    print(render(measurements, device, header))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(to_json(measurements, device), stream, indent=2)
    return ExitCode.OK
