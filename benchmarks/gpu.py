"""``python -m benchmarks.gpu --out DIR``: ``verify.step`` against ``jnp.dot`` on one device.

Achieved TFLOP/s of ``verify.step`` (three matmuls: 6 N I O flops) against ``jnp.dot``
(2 N I O) at the same size, dtype and precision on the same device, at 4096^3 and 8192^3,
bfloat16 and float32; the ratio is step / dot. A fused step at ratio ~1 runs its matmuls at the
device's matmul speed. Writes ``bench.json`` and ``bench.md`` into DIR. Used by
``scripts/accelerator_check.py`` and by section 5 of ``benchmarks.bench``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FULL_SIZES = (4096, 8192)
DRY_SIZES = (64, 128)


def _time(function: Any, *args: Any, repeats: int, min_seconds: float) -> float:
    """Median seconds of ``function(*args)`` after one warm-up (compile) call."""
    import jax

    jax.block_until_ready(function(*args))
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < 50):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark(sizes: Sequence[int], *, repeats: int, min_seconds: float) -> list[dict[str, Any]]:
    """TFLOP/s of verify.step and jnp.dot at n^3 for bfloat16 and float32 (module docstring)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    import verify

    dot_highest = jax.jit(lambda a, b: jnp.dot(a, b, precision=lax.Precision.HIGHEST))
    dot_default = jax.jit(jnp.dot)
    rows: list[dict[str, Any]] = []
    for dtype in (jnp.bfloat16, jnp.float32):
        for n in sizes:
            kx, kw, kt = jax.random.split(jax.random.key(n), 3)
            x = jax.random.normal(kx, (n, n), dtype)
            w = jax.random.normal(kw, (n, n), dtype)
            target = jax.random.normal(kt, (n, n), dtype)
            step_seconds = _time(
                verify.step, x, w, target, 0.01, repeats=repeats, min_seconds=min_seconds
            )
            dot_seconds = _time(dot_highest, x, w, repeats=repeats, min_seconds=min_seconds)
            default_seconds = _time(dot_default, x, w, repeats=repeats, min_seconds=min_seconds)
            step_tflops = 6 * n**3 / step_seconds / 1e12
            dot_tflops = 2 * n**3 / dot_seconds / 1e12
            rows.append(
                {
                    "dtype": jnp.dtype(dtype).name,
                    "n": n,
                    "step_seconds": step_seconds,
                    "step_tflops": step_tflops,
                    "dot_highest_tflops": dot_tflops,
                    "dot_default_tflops": 2 * n**3 / default_seconds / 1e12,
                    "step_vs_dot": step_tflops / dot_tflops,
                }
            )
            del x, w, target
    return rows


def bench_markdown(rows: Sequence[dict[str, Any]], device: str) -> str:
    lines = [
        f"verify.step vs jnp.dot on {device} (precision HIGHEST for both; step = 6 n^3 flops)",
        "",
        "| dtype | n | step ms | step TFLOP/s | dot TFLOP/s | step / dot | dot (default) TFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['n']} | {r['step_seconds'] * 1e3:.2f} | {r['step_tflops']:.2f} "
            f"| {r['dot_highest_tflops']:.2f} | {r['step_vs_dot']:.2f} "
            f"| {r['dot_default_tflops']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def bench_main(out: Path, sizes: Sequence[int], repeats: int, min_seconds: float) -> int:
    import jax

    device = f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}"
    rows = benchmark(sizes, repeats=repeats, min_seconds=min_seconds)
    (out / "bench.json").write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    table = bench_markdown(rows, device)
    (out / "bench.md").write_text(table)
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="folder for bench.json and bench.md")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(FULL_SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    return bench_main(Path(args.out), args.sizes, args.repeats, min_seconds=0.2)


if __name__ == "__main__":
    raise SystemExit(main())
