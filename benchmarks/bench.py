"""``nox -s bench`` (``python -m benchmarks.bench`` from a checkout): the layer and the oracle
against their peers.

Every figure is a ratio measured side by side in one run: absolute times on a shared machine
are noise, but contenders timed in interleaved rounds (A B C A B C ...) see the same load.

Sections (each a list of rows in the JSON, and a table on stdout):

1. ``step``: one SGD step (forward, loss, dL_dx, dL_dw, update; three ``n^3`` matmuls) at
   ``n^3`` float32: ``verify.step`` (hand-written, fused, jitted) against ``jax.value_and_grad``
   jitted (``verify.autodiff_step``), numpy doing the same three matmuls, PyTorch by hand and
   PyTorch autograd with ``l1_loss(reduction="sum")`` (the peers are the project's own
   ``examples/``). Steady state after a warm-up call; compile time (lower + compile, persistent
   cache off) reported separately. ``vs fastest peer`` = fastest peer time / this time.
2. ``reference``: the loop reference's multiply-adds per second at 64^3 (step: 3 n^3).
3. ``throughput``: cross-check examples per second at small shapes for the loop reference,
   the jitted step and jax.grad (per shape, and through shape buckets), and a whole
   cross-check (reference + bucketed step + bucketed jax.grad + error bounds); cold (fresh
   process, empty persistent cache), warm (fresh process, cache filled by the cold run) and
   steady (the same examples again in the warm process). JIT compiles per 1,000 examples:
   traces (jit cache entries) and XLA compiles (persistent-cache misses).
4. ``oracle``: ``verify.check`` on the correct numpy layer (seconds for 200 examples), and
   ``verify.check_exact`` at 2048^3 as a multiple of the candidate's own step time.
5. ``gpu``: ``benchmarks.gpu``'s step-vs-``jnp.dot`` TFLOP/s at 4096^3 and 8192^3 (bfloat16,
   float32) when JAX sees a GPU; "skipped: no GPU" otherwise.
6. ``isolation``: a whole ``python -m verify check`` of the numpy example and of a jitted JAX
   candidate with the candidate in a worker process, as a ratio to ``--in-process``.
7. ``verdict``: time to a verdict of a whole ``python -m verify check`` per family.
8. ``bias``: ``verify.step(x, w, b, target, lr)`` at ``n^3`` float32 against what it must at
   least do, three ``n^3`` matmuls and a column sum of the same sizes (jitted, precision
   highest), and ``verify.step`` without a bias beside them, in interleaved rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import reference
import verify

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

#: Sizes (N = I = O) of section 1; ``--quick`` for the smoke test.
STEP_SIZES = (256, 1024, 2048)
QUICK_STEP_SIZES = (16,)

#: The learning rate of every benchmarked step (the notebook's).
LR = 0.01


@dataclasses.dataclass
class Row:
    """One line of a table: ``value`` in ``unit``; ``ratio`` against the section's baseline."""

    section: str
    case: str
    contender: str
    value: float | None
    unit: str
    ratio: float | None = None
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Timing: interleaved rounds.
# --------------------------------------------------------------------------------------------


def _batch_size(call: Callable[[], Any], min_batch_seconds: float) -> int:
    """Calls per timed sample so that one sample lasts about ``min_batch_seconds``."""
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(min_batch_seconds / once))


def interleaved(
    calls: dict[str, Callable[[], Any]], *, rounds: int, min_batch_seconds: float = 0.05
) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` samples each, taken in turn: a change of
    load on the machine hits every contender alike. The order rotates every round (A B C,
    B C A, C A B, ...) so that no contender always follows the same one: BLAS and OpenMP
    thread pools (numpy's, torch's) keep spinning for a while after a call and slow down
    whoever runs next. Each call must wait for its own result (``block_until_ready``)."""
    batches = {name: _batch_size(call, min_batch_seconds) for name, call in calls.items()}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            call = calls[name]
            start = time.perf_counter()
            for _ in range(batches[name]):
                call()
            samples[name].append((time.perf_counter() - start) / batches[name])
    return samples


# --------------------------------------------------------------------------------------------
# Contenders.
# --------------------------------------------------------------------------------------------


def _load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (the project's own correct implementations)."""
    path = EXAMPLES / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (run from a checkout)")
    spec = importlib.util.spec_from_file_location(f"crosscheck_bench_{name}", path)
    assert spec is not None and spec.loader is not None  # a .py path always has both
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def step_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, w ``(n, n)`` normal float32 and a target near ``x @ w`` (few ties, both signs)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n), dtype=np.float32)
    w = rng.standard_normal((n, n), dtype=np.float32)
    target = (x @ w + rng.standard_normal((n, n), dtype=np.float32)).astype(np.float32)
    return x, w, target


#: Section 1's contenders, in table order.
STEP_CONTENDERS = ("verify.step", "jax.value_and_grad", "numpy", "torch by hand", "torch autograd")

#: Seconds between two contenders' batches: OpenBLAS and OpenMP pools keep spinning for up to
#: ~0.1 s after a call and would slow down whichever process runs next.
SETTLE_SECONDS = 0.15


def skip_reason(name: str) -> str | None:
    """Why contender ``name`` cannot run here, or None."""
    if name.startswith("torch") and not torch_available():
        return "skipped: torch not installed"
    return None


def step_call(name: str, x: np.ndarray, w: np.ndarray, target: np.ndarray) -> Callable[[], Any]:
    """A zero-argument call of one step by contender ``name``, its inputs already converted
    (and on the device): only the step itself is timed. Imports only that contender's library,
    so that a worker process holds one set of thread pools."""
    if name in ("verify.step", "jax.value_and_grad"):
        import jax
        import jax.numpy as jnp

        function = verify.step if name == "verify.step" else verify.autodiff_step
        jx, jw, jt = (jnp.asarray(a) for a in (x, w, target))
        return lambda: jax.block_until_ready(function(jx, jw, jt, LR))
    if name == "numpy":
        numpy_layer = _load_example("numpy_layer")
        return lambda: numpy_layer.step(x, w, target, np.float32(LR))
    if name in ("torch by hand", "torch autograd"):
        layer = _load_example("torch_manual" if name == "torch by hand" else "torch_autograd").layer
        tx, tw, tt = (layer.asarray(a) for a in (x, w, target))
        return lambda: layer.step(tx, tw, tt, LR)
    raise ValueError(f"unknown contender {name!r}; known: {STEP_CONTENDERS}")


def compile_seconds(name: str, n: int) -> float | None:
    """Trace + lower + XLA compile of a JAX contender at ``n^3`` float32 (no persistent cache
    in the benchmark's processes, so a real compile); None for the others."""
    if name not in ("verify.step", "jax.value_and_grad"):
        return None
    import jax

    function = verify.step if name == "verify.step" else verify.autodiff_step
    spec = jax.ShapeDtypeStruct((n, n), np.float32)
    start = time.perf_counter()
    function.lower(spec, spec, spec, jax.ShapeDtypeStruct((), np.float32)).compile()
    return time.perf_counter() - start


def step_worker(name: str, n: int, min_batch_seconds: float) -> None:
    """One contender in its own process (``--step-worker``): says ``ready`` with its compile
    time and batch size, then times one batch per line read from stdin until EOF."""
    compile_s = compile_seconds(name, n)
    call = step_call(name, *step_inputs(n))
    batch = _batch_size(call, min_batch_seconds)  # also the warm-up (compiles a JAX step)
    print(json.dumps({"ready": True, "compile_s": compile_s, "batch": batch}), flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        print(json.dumps({"seconds": (time.perf_counter() - start) / batch}), flush=True)


def _start_worker(name: str, n: int, min_batch_seconds: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "benchmarks.bench", "--step-worker", name, "--sizes", str(n)]
    command += ["--min-batch-seconds", str(min_batch_seconds)]
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    )


def _ask(worker: subprocess.Popen[str]) -> dict[str, Any]:
    assert worker.stdin is not None and worker.stdout is not None  # both are PIPEs
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError(f"benchmark worker {worker.args!r} exited with {worker.wait()}")
    return json.loads(line)


def time_in_workers(
    names: Sequence[str], n: int, *, rounds: int, min_batch_seconds: float = 0.05
) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Seconds per step of each contender at ``n^3``, each in its own process (numpy's,
    torch's and XLA's thread pools never share the cores), in interleaved rounds whose order
    rotates (``interleaved``), with a pause between batches. Returns samples and ready info."""
    workers = {name: _start_worker(name, n, min_batch_seconds) for name in names}
    try:
        ready = {name: _ask(worker) for name, worker in workers.items()}
        samples: dict[str, list[float]] = {name: [] for name in names}
        order = list(names)
        for round_ in range(rounds):
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:
                time.sleep(SETTLE_SECONDS)
                stdin = workers[name].stdin
                assert stdin is not None
                stdin.write("go\n")
                stdin.flush()
                samples[name].append(_ask(workers[name])["seconds"])
    finally:
        for worker in workers.values():
            for stream in (worker.stdin, worker.stdout):
                if stream is not None:
                    stream.close()  # EOF on stdin: the worker's loop ends
            worker.wait(timeout=60)
    return samples, ready


def paired_ratios(samples: dict[str, list[float]]) -> dict[str, float]:
    """Per contender: the median over rounds of (fastest peer's time in that round / its own).

    The peers are every contender but ``verify.step``. Samples of one round are taken seconds
    apart, so the machine's load mostly cancels in each quotient, where a quotient of two
    medians would not cancel a load spike that hit one contender's samples more than another's.
    """
    peers = [name for name in samples if name != "verify.step"] or list(samples)
    rounds = range(len(next(iter(samples.values()))))
    return {
        name: statistics.median(min(samples[p][r] for p in peers) / times[r] for r in rounds)
        for name, times in samples.items()
    }


def step_section(sizes: Sequence[int], rounds: int) -> list[Row]:
    """Section 1 (module docstring)."""
    rows: list[Row] = []
    for n in sizes:
        running = [name for name in STEP_CONTENDERS if skip_reason(name) is None]
        samples, ready = time_in_workers(running, n, rounds=rounds)
        median = {name: statistics.median(times) for name, times in samples.items()}
        best = {name: min(times) for name, times in samples.items()}
        fastest_peer = min(t for name, t in median.items() if name != "verify.step")
        fastest_min = min(t for name, t in best.items() if name != "verify.step")
        paired = paired_ratios(samples)
        for name in STEP_CONTENDERS:
            why = skip_reason(name)
            if why is not None:
                rows.append(Row("step", f"{n}^3", name, None, "ms", note=why))
                continue
            compile_s = ready[name]["compile_s"]
            rows.append(
                Row(
                    "step",
                    f"{n}^3",
                    name,
                    median[name] * 1e3,
                    "ms",
                    ratio=paired[name],
                    note=(
                        f"median ratio {fastest_peer / median[name]:.2f}; "
                        f"min {best[name] * 1e3:.3g} ms "
                        f"(ratio on mins {fastest_min / best[name]:.2f})"
                        + (f"; compile {compile_s * 1e3:.0f} ms" if compile_s is not None else "")
                    ),
                    extra={
                        "samples_ms": [t * 1e3 for t in samples[name]],
                        "gflops": 6 * n**3 / median[name] / 1e9,
                        "compile_ms": None if compile_s is None else compile_s * 1e3,
                    },
                )
            )
    return rows


# --------------------------------------------------------------------------------------------
# Section 2: the loop reference.
# --------------------------------------------------------------------------------------------


def reference_section(n: int, rounds: int) -> list[Row]:
    """Multiply-adds per second at ``n^3``: the loop reference's step (3 n^3) and forward
    (n^3), against its float64 numpy twin and verify.step on the same data."""
    import jax

    x, w, target = (a.astype(np.float64) for a in step_inputs(n))
    samples = interleaved(
        {
            "reference.step (loops)": lambda: reference.step(x, w, target, LR),
            "reference.forward (loops)": lambda: reference.forward(x, w),
            "reference.fast.step (float64 BLAS)": lambda: reference.fast.step(x, w, target, LR),
            "verify.step (float64)": lambda: jax.block_until_ready(verify.step(x, w, target, LR)),
        },
        rounds=rounds,
    )
    macs = {name: (n**3 if "forward" in name else 3 * n**3) for name in samples}
    rate = {name: macs[name] / min(times) for name, times in samples.items()}
    loops = rate["reference.step (loops)"]
    return [
        Row("reference", f"{n}^3", name, value / 1e6, "M multiply-adds/s", ratio=value / loops)
        for name, value in rate.items()
    ]


# --------------------------------------------------------------------------------------------
# Section 3: cross-check throughput (child processes: cold and warm persistent cache).
# --------------------------------------------------------------------------------------------


def small_cases(count: int, seed: int, max_size: int = 1 << 12) -> list[tuple[Any, ...]]:
    """``count`` float32 examples with sides from the strategies' menu and ``N I O <= max_size``
    (the test suite's small shapes), normal data, targets near the outputs."""
    from verify.strategies import DIM_MENU

    rng = np.random.default_rng(seed)
    cases: list[tuple[Any, ...]] = []
    while len(cases) < count:
        shape = tuple(int(d) for d in rng.choice(DIM_MENU, size=3))
        if np.prod(shape) > max_size:
            continue
        n, i, o = shape
        x = rng.standard_normal((n, i)).astype(np.float32)
        w = rng.standard_normal((i, o)).astype(np.float32)
        target = (x @ w + rng.standard_normal((n, o))).astype(np.float32)
        cases.append((x, w, target, LR))
    return cases


def _cross_check_one(case: tuple[Any, ...]) -> None:
    """One example as test_layer checks it: reference, bucketed step and jax.grad, bounds."""
    from verify import bounds

    x, w, target, lr = case
    arith = bounds.arithmetic(x.dtype)
    expected = bounds.step_bounds(x, w, target, lr, arith, matmul=reference.forward)
    reference.step(x, w, target, lr)
    for result in (
        verify.padded_step(x, w, target, lr),
        verify.padded_autodiff_step(x, w, target, lr),
    ):
        for field, bound, value in zip(result._fields, expected.results(), result, strict=True):
            if np.max(bound.ratio(np.asarray(value, np.float64)), initial=0) > 1:
                raise AssertionError(f"{field} outside its bound at {x.shape} x {w.shape}")


def throughput_implementations() -> dict[str, Callable[..., Any]]:
    """Section 3's contenders: one example each, results waited for."""
    import jax

    return {
        "reference.step (loops)": lambda *c: reference.step(*c),
        "verify.step (a compile per shape)": lambda *c: jax.block_until_ready(verify.step(*c)),
        "verify.step (shape buckets)": verify.padded_step,
        "jax.grad (a compile per shape)": lambda *c: jax.block_until_ready(
            verify.autodiff_step(*c)
        ),
        "jax.grad (shape buckets)": verify.padded_autodiff_step,
        "cross-check (reference + buckets + bounds)": lambda *c: _cross_check_one(c),
    }


def _traces(jitted: Sequence[Any]) -> int:
    """Entries in the jit caches of ``jitted``: one per shape and dtype traced and compiled (or
    loaded from the persistent cache) in this process."""
    return sum(function._cache_size() for function in jitted)


def throughput_child(implementation: str, examples: int, seed: int) -> list[dict[str, Any]]:
    """In this (fresh) process: ``implementation`` over the examples twice (first pass: cold or
    warm persistent cache; second: steady state), with its traces and XLA compiles."""
    import jax

    counts = {"requests": 0, "hits": 0}

    def listen(event: str, **_: Any) -> None:
        if event == "/jax/compilation_cache/compile_requests_use_cache":
            counts["requests"] += 1
        elif event == "/jax/compilation_cache/cache_hits":
            counts["hits"] += 1

    jax.monitoring.register_event_listener(listen)
    cases = small_cases(examples, seed)
    # The bucketed steps wrap one jitted computation each (their __wrapped__).
    jitted = [verify.step, verify.autodiff_step]
    jitted += [verify.padded_step.__wrapped__, verify.padded_autodiff_step.__wrapped__]
    run = throughput_implementations()[implementation]
    passes = []
    for _ in range(2):
        traces_before = _traces(jitted)
        requests, hits = counts["requests"], counts["hits"]
        start = time.perf_counter()
        for case in cases:
            run(*case)
        seconds = time.perf_counter() - start
        traces = _traces(jitted) - traces_before
        compiles = (counts["requests"] - requests) - (counts["hits"] - hits)
        passes.append({"seconds": seconds, "traces": traces, "xla_compiles": compiles})
    return passes


def _run_child(implementation: str, cache_dir: str, examples: int, seed: int) -> Any:
    command = [sys.executable, "-m", "benchmarks.bench", "--throughput-child", implementation]
    command += ["--examples", str(examples), "--seed", str(seed)]
    env = {**os.environ, "CROSSCHECK_JAX_CACHE": cache_dir, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput_section(examples: int, seed: int = 0) -> list[Row]:
    """Section 3 (module docstring): per implementation, a fresh child on an empty cache
    (cold), then another fresh child on the cache the first one filled (warm, then steady)."""
    runs = {}
    for name in throughput_implementations():
        with tempfile.TemporaryDirectory(prefix="crosscheck-bench-cache-") as cache:
            cold = _run_child(name, cache, examples, seed)[0]
            runs[name] = (cold, *_run_child(name, cache, examples, seed))
    count = examples
    reference_rate = count / runs["reference.step (loops)"][1]["seconds"]
    rows = []
    for name, (cold, warm, steady) in runs.items():
        for phase, result in {"cold": cold, "warm": warm, "steady": steady}.items():
            rate = count / result["seconds"]
            rows.append(
                Row(
                    "throughput",
                    phase,
                    name,
                    rate,
                    "examples/s",
                    ratio=rate / reference_rate if phase == "warm" else None,
                    note=(
                        f"{1000 * result['traces'] / count:.0f} traces, "
                        f"{1000 * result['xla_compiles'] / count:.0f} XLA compiles per 1k"
                    ),
                    extra={**result, "examples": count},
                )
            )
    return rows


# --------------------------------------------------------------------------------------------
# Section 4: the oracle.
# --------------------------------------------------------------------------------------------


def oracle_section(examples: int, exact_size: int) -> list[Row]:
    """``verify.check`` on examples/numpy_layer.py, and ``check_exact`` at ``exact_size^3``."""
    numpy_layer = _load_example("numpy_layer")
    rows = []
    for functions, label in ((["step"], "step only"), (None, "every function + identities")):
        start = time.perf_counter()
        report = verify.check(
            numpy_layer, max_examples=examples, functions=functions, repro_dir=None
        )
        seconds = time.perf_counter() - start
        verdicts = ", ".join(f"{f.function}: {f.status}" for f in report.functions)
        rows.append(
            Row(
                "oracle",
                f"{examples} examples",
                f"check(numpy, {label})",
                seconds,
                "s",
                note=verdicts,
            )
        )
    n = exact_size
    runs = []
    for _ in range(3):  # the median of three: one 2048^3 step is under a second
        start = time.perf_counter()
        exact = verify.check_exact(numpy_layer.step, (n, n, n))  # input generation included
        runs.append((time.perf_counter() - start, exact))
    ratios = [total / run.step_seconds for total, run in runs]
    middle = sorted(range(len(runs)), key=lambda k: ratios[k])[len(runs) // 2]
    total, exact = runs[middle]
    rows.append(
        Row(
            "oracle",
            f"exact {n}^3",
            "check_exact(numpy step)",
            total,
            "s",
            ratio=ratios[middle],
            note=(
                f"{'bit for bit' if all(run.ok for _, run in runs) else 'MISMATCH'}; the run of "
                f"median ratio (of {', '.join(f'{r:.2f}' for r in ratios)}): candidate step "
                f"{exact.step_seconds:.2f} s, inputs {exact.inputs_seconds:.2f} s, "
                f"the oracle's side (projections, compared) {exact.reference_seconds:.2f} s"
            ),
            extra={
                "step_seconds": exact.step_seconds,
                "inputs_seconds": exact.inputs_seconds,
                "reference_seconds": exact.reference_seconds,
                "check_seconds": total,
                "ratios": ratios,
            },
        )
    )
    return rows


# --------------------------------------------------------------------------------------------
# Section 5: GPU (benchmarks.gpu, which scripts/accelerator_check.py runs too).
# --------------------------------------------------------------------------------------------


def gpu_section(quick: bool) -> list[Row]:
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        return [
            Row(
                "gpu",
                "4096^3, 8192^3",
                "verify.step vs jnp.dot",
                None,
                "TFLOP/s",
                note="skipped: no GPU",
            )
        ]
    from benchmarks import gpu

    sizes = gpu.DRY_SIZES if quick else gpu.FULL_SIZES
    rows = []
    for r in gpu.benchmark(sizes, repeats=5, min_seconds=0.2):
        rows.append(
            Row(
                "gpu",
                f"{r['n']}^3 {r['dtype']}",
                "verify.step",
                r["step_tflops"],
                "TFLOP/s",
                ratio=r["step_vs_dot"],
                note=f"jnp.dot {r['dot_highest_tflops']:.1f} TFLOP/s",
                extra=r,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Section 6: the cost of isolation (the candidate in a worker process).
# --------------------------------------------------------------------------------------------

#: Candidates whose full check is timed with and without a worker process.
ISOLATION_CANDIDATES = {
    "numpy layer": "examples/numpy_layer.py",
    "jitted JAX (jax.grad)": "examples/jax_grad.py",
}


def _timed_check(spec: str, in_process: bool, max_examples: int | None) -> float:
    """Seconds of a whole ``python -m verify check SPEC`` command, as a user runs it."""
    # -j 1: the in-process caller runs its checks one after another, so the worker does too.
    command = [sys.executable, "-m", "verify", "check", spec, "-j", "1"]
    command += ["--in-process"] if in_process else []
    command += [] if max_examples is None else ["--max-examples", str(max_examples)]
    with tempfile.TemporaryDirectory(prefix="crosscheck-bench-repro-") as repro:
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "--repro-dir", repro], cwd=REPO, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stdout[-400:]}")
    return seconds


def isolation_section(rounds: int, max_examples: int | None) -> list[Row]:
    """A full check (default settings unless ``max_examples``) of each candidate with the
    candidate in a worker process and in the oracle's own, alternating which goes first; the
    ratio is the median over rounds of worker time / in-process time (load cancels in a round)."""
    rows = []
    for label, spec in ISOLATION_CANDIDATES.items():
        samples: dict[str, list[float]] = {"worker": [], "in-process": []}
        for round_ in range(rounds):
            order = ["worker", "in-process"] if round_ % 2 == 0 else ["in-process", "worker"]
            for mode in order:
                samples[mode].append(_timed_check(spec, mode == "in-process", max_examples))
        quotients = [w / i for w, i in zip(samples["worker"], samples["in-process"], strict=True)]
        worker, in_process = (statistics.median(samples[m]) for m in ("worker", "in-process"))
        rows.append(
            Row(
                "isolation",
                label,
                "check in a worker process",
                worker,
                "s",
                ratio=statistics.median(quotients),
                note=f"in-process {in_process:.2f} s; worker/in-process per round "
                + ", ".join(f"{q:.3f}" for q in quotients),
                extra={k: v for k, v in samples.items()},
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Section 7: time to a verdict per family of candidate.
# --------------------------------------------------------------------------------------------

#: One correct candidate per family, written the natural way: (SPEC or C source, module it needs).
FAMILIES: dict[str, tuple[str, str | None]] = {
    "numpy": ("examples/numpy_layer.py", None),
    "PyTorch by hand": ("examples/torch_manual.py:layer", "torch"),
    "PyTorch autograd": ("examples/torch_autograd.py:layer", "torch"),
    "jax.jit by hand (verify)": ("verify", None),
    "jax.grad": ("examples/jax_grad.py", None),
    "Flax NNX": ("examples/flax_layer.py", "flax"),
    "Equinox + optax": ("examples/equinox_optax_layer.py", "equinox"),
    "C (--command)": ("examples/c_layer.c", None),
}


def _c_binary(folder: Path) -> list[str] | None:
    """``examples/c_layer.c`` built with ``cc -O2`` into ``folder``, or None without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    binary = folder / "c_layer"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(EXAMPLES / "c_layer.c")], check=True)
    return [str(binary)]


def _verdict_seconds(target: list[str], max_examples: int | None, cache: str) -> tuple[float, int]:
    """Seconds of a whole ``python -m verify check`` as a user runs it (default settings unless
    ``max_examples``; crosscheck's JAX cache in ``cache``), and the run's compiles
    (``Report.compiles``, from ``--json``)."""
    env = {**os.environ, "CROSSCHECK_JAX_CACHE": cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    with tempfile.TemporaryDirectory(prefix="crosscheck-bench-verdict-") as folder:
        command = [sys.executable, "-m", "verify", "check", *target, "--repro-dir", folder]
        command += ["--json", f"{folder}/report.json"]
        command += [] if max_examples is None else ["--max-examples", str(max_examples)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(command)} exited {done.returncode}: {done.stdout[-600:]}"
            )
        compiles = json.loads(Path(f"{folder}/report.json").read_text())["compiles"]
    return seconds, int(compiles)


def verdict_section(rounds: int, max_examples: int | None) -> list[Row]:
    """Time to a verdict of every family (``FAMILIES``) at default settings, each a whole
    ``python -m verify check``; in each round every family runs once, in a rotated order, and
    its ratio is the median over rounds of its time / the numpy candidate's in the same round.

    The runs share a JAX cache of this section's own, empty at first: the first round is a
    first run (every shape compiled), the later ones a run again on unchanged code (loaded);
    the note gives the first round's ratio apart."""
    with (
        tempfile.TemporaryDirectory(prefix="crosscheck-bench-c-") as build,
        tempfile.TemporaryDirectory(prefix="crosscheck-bench-jax-") as cache,
    ):
        targets: dict[str, list[str]] = {}
        skipped: dict[str, str] = {}
        for family, (spec, needs) in FAMILIES.items():
            if needs is not None and importlib.util.find_spec(needs) is None:
                skipped[family] = f"skipped: {needs} not installed (pip install -e '.[bench]')"
            elif spec.endswith(".c"):
                binary = _c_binary(Path(build))
                if binary is None:
                    skipped[family] = "skipped: no C compiler"
                else:
                    targets[family] = ["--command", *binary]
            else:
                targets[family] = [spec]
        samples: dict[str, list[float]] = {family: [] for family in targets}
        compiles: dict[str, int] = {}
        names = list(targets)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for family in names[shift:] + names[:shift]:
                seconds, compiles[family] = _verdict_seconds(targets[family], max_examples, cache)
                samples[family].append(seconds)
    rows = []
    for family in FAMILIES:
        if family in skipped:
            rows.append(
                Row("verdict", family, "python -m verify check", None, "s", note=skipped[family])
            )
            continue
        quotients = [t / n for t, n in zip(samples[family], samples["numpy"], strict=True)]
        rows.append(
            Row(
                "verdict",
                family,
                "python -m verify check",
                statistics.median(samples[family]),
                "s",
                ratio=statistics.median(quotients),
                note=f"{compiles[family]} compiles; first run (cold cache) {quotients[0]:.2f}; "
                "/ numpy per round " + ", ".join(f"{q:.2f}" for q in quotients),
                extra={"seconds": samples[family], "compiles": compiles[family]},
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Output: tables, JSON, plot.
# --------------------------------------------------------------------------------------------

SECTION_TITLES = {
    "step": "1. One SGD step, float32, N = I = O (each contender in its own process, median "
    "of interleaved rounds; ratio = median over rounds of fastest peer's time / this time: "
    "> 1 is faster than every peer)",
    "reference": "2. The loop reference (ratio = multiply-adds/s over the loops')",
    "throughput": "3. Cross-check throughput at small shapes, N I O <= 4096 "
    "(ratio = examples/s over the loop reference's, warm)",
    "oracle": "4. The oracle on examples/numpy_layer.py (ratio = oracle time / candidate step)",
    "gpu": "5. GPU: verify.step vs jnp.dot (ratio = step TFLOP/s / dot TFLOP/s)",
    "isolation": "6. The candidate in a worker process: a whole `python -m verify check -j 1` "
    "(one check at a time, as in-process runs them; ratio = median over rounds of worker time / "
    "in-process time)",
    "verdict": "7. Time to a verdict per family: a whole `python -m verify check` at default "
    "settings (`-j`: a worker per core; ratio = median over rounds of its time / the numpy "
    "candidate's in the same round)",
    "bias": "8. The step with a bias, float32, N = I = O (ratio = median over rounds of this time "
    "/ three matmuls and a column sum's: 1.05 is 5% slower than the work it must do)",
}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(rows: Sequence[Row]) -> str:
    """One table per section: case | contender | value | ratio | note."""
    out: list[str] = []
    for section, title in SECTION_TITLES.items():
        mine = [r for r in rows if r.section == section]
        if not mine:
            continue
        out += ["", f"### {title}", "", "| case | contender | value | ratio | note |"]
        out.append("| --- | --- | ---: | ---: | --- |")
        for r in mine:
            value = f"{_fmt(r.value)} {r.unit}" if r.value is not None else "-"
            out.append(f"| {r.case} | {r.contender} | {value} | {_fmt(r.ratio)} | {r.note} |")
    return "\n".join(out).strip() + "\n"


#: The region of the Performance page the bench writes (``--docs PAGE``): everything between
#: the two markers is the bench's, and the page's prose holds no figure.
DOCS_REGION = re.compile(
    r"(?P<open><!-- generated: bench -->\n)(?P<body>.*?)(?P<close><!-- /generated -->)", re.S
)


def docs_markdown(rows: Sequence[Row], env: dict[str, Any], argv: Sequence[str]) -> str:
    """The tables for the documentation's Performance page (``--docs``): where, when and how
    they were measured (the machine's load at the start and the end of the run), then
    ``markdown(rows)``."""
    command = " ".join(["python -m benchmarks.bench", *argv])
    loads = [env.get("load_average_start"), env["load_average"]]
    start, end = (", ".join(f"{value:.2f}" for value in load) if load else "-" for load in loads)
    head = (
        f"Written by `{command}` at {env['time']}: {env['cpus']} CPUs ({env['machine']}), "
        f"JAX {env['jax']} on {env['backend']}, NumPy {env['numpy']}"
        + (f", PyTorch {env['torch']}" if "torch" in env else "")
        + f", Python {env['python']}; load average {start} at the start, {end} at the end. "
        "Absolute times on a machine shared with other work are noisy; each ratio is measured "
        "side by side in one run."
    )
    return f"{head}\n\n{markdown(rows)}"


def docs_region(payload: dict[str, Any], image: str | None) -> str:
    """The Performance page's region, from a run's ``bench.json`` payload (``environment``,
    ``argv``, ``rows``): its tables, and the plot at ``image`` (relative to the page)."""
    rows = [Row(**row) for row in payload["rows"]]
    text = docs_markdown(rows, payload["environment"], payload["argv"])
    if image is not None:
        text += f"\n![One SGD step against size]({image})\n"
    return text


def write_docs(page: Path, payload: dict[str, Any], plot_file: Path | None) -> list[Path]:
    """Write the run into ``page``'s bench region, ``payload`` as ``generated/bench.json`` and
    the plot as ``generated/bench.png`` beside it; return the files written. The page must have
    the region (``DOCS_REGION``): the bench writes the figures, never the prose."""
    text = page.read_text(encoding="utf-8")
    if not DOCS_REGION.search(text):
        raise SystemExit(f"--docs {page}: no <!-- generated: bench --> ... <!-- /generated -->")
    folder = page.parent / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    data, image = folder / "bench.json", folder / "bench.png"
    data.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    written = [data]
    if plot_file is not None:
        shutil.copyfile(plot_file, image)
        written.append(image)
    elif image.exists():
        image.unlink()  # a plot of an earlier run would not be this run's
    region = docs_region(payload, "generated/bench.png" if plot_file is not None else None)
    page.write_text(
        DOCS_REGION.sub(lambda m: m["open"] + "\n" + region + "\n" + m["close"], text),
        encoding="utf-8",
    )
    return [page, *written]


def environment() -> dict[str, Any]:
    import jax

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "load_average": os.getloadavg(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if torch_available():
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def plot(rows: Sequence[Row], path: Path) -> str:
    """Step time against size for every contender (log-log), as PNG; or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib not installed (pip install -e .[plot])"
    steps = [r for r in rows if r.section == "step" and r.value is not None]
    figure, axes = plt.subplots(figsize=(6, 4))
    for contender in dict.fromkeys(r.contender for r in steps):
        points = [(int(r.case.split("^")[0]), r.value) for r in steps if r.contender == contender]
        axes.plot(*zip(*points, strict=True), marker="o", label=contender)
    axes.set(xscale="log", yscale="log", xlabel="N = I = O", ylabel="ms per step (float32)")
    sizes = sorted({int(r.case.split("^")[0]) for r in steps})
    axes.set_xticks(sizes, [str(n) for n in sizes])
    axes.minorticks_off()
    axes.set_title("One SGD step on CPU (lower is faster)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"plot: {path}"


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------


#: Section 8's contenders, in table order; the first is the baseline.
BIAS_CONTENDERS = ("3 matmuls + column sum", "verify.step with bias", "verify.step")


def bias_calls(n: int) -> dict[str, Callable[[], Any]]:
    """Zero-argument calls of section 8's contenders at ``n^3`` float32, inputs on the device.

    The baseline is the step's unavoidable work, jitted as one computation at the step's
    precision: ``x @ w``, ``dL_do @ w.T``, ``x.T @ dL_do`` and ``dL_do`` summed over the batch.
    """
    import jax
    import jax.numpy as jnp

    x, w, target = (jnp.asarray(a) for a in step_inputs(n))
    b = jnp.asarray(np.random.default_rng(1).standard_normal(n, dtype=np.float32))
    dL_do = jnp.sign(x @ w - target)
    highest = jax.lax.Precision.HIGHEST

    @jax.jit
    def work(x: Any, w: Any, dL_do: Any) -> tuple:
        return (
            jnp.matmul(x, w, precision=highest),
            jnp.matmul(dL_do, w.T, precision=highest),
            jnp.matmul(x.T, dL_do, precision=highest),
            dL_do.sum(axis=0),
        )

    return {
        "3 matmuls + column sum": lambda: jax.block_until_ready(work(x, w, dL_do)),
        "verify.step with bias": lambda: jax.block_until_ready(verify.step(x, w, b, target, LR)),
        "verify.step": lambda: jax.block_until_ready(verify.step(x, w, target, LR)),
    }


def bias_section(sizes: Sequence[int], rounds: int) -> list[Row]:
    """Section 8 (module docstring): per size, each contender's median time and the median
    over rounds of its time / the baseline's in the same round."""
    rows: list[Row] = []
    for n in sizes:
        samples = interleaved(bias_calls(n), rounds=rounds)
        baseline = samples[BIAS_CONTENDERS[0]]
        for name in BIAS_CONTENDERS:
            times = samples[name]
            ratio = statistics.median(t / base for t, base in zip(times, baseline, strict=True))
            rows.append(
                Row(
                    "bias",
                    f"{n}^3",
                    name,
                    statistics.median(times) * 1e3,
                    "ms",
                    ratio=ratio,
                    note=f"min {min(times) * 1e3:.3g} ms",
                )
            )
    return rows


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="bench-results", help="folder for bench.json/.md/.png")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument(
        "--docs",
        metavar="PATH",
        help="also write the run into this page's <!-- generated: bench --> region, its JSON "
        "and plot into generated/ beside it: python -m benchmarks.bench --docs docs/performance.md",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        default=list(SECTION_TITLES),
        choices=list(SECTION_TITLES),
        help="which sections to run (default: all)",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="section 1 sizes (default 256 1024 2048)"
    )
    parser.add_argument("--examples", type=int, help="section 3 examples (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput-child", metavar="IMPLEMENTATION", help=argparse.SUPPRESS)
    parser.add_argument("--step-worker", metavar="CONTENDER", help=argparse.SUPPRESS)
    parser.add_argument("--min-batch-seconds", type=float, default=0.05, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.step_worker:
        step_worker(args.step_worker, args.sizes[0], args.min_batch_seconds)
        return 0
    if args.throughput_child:
        verify.enable_compilation_cache()  # $CROSSCHECK_JAX_CACHE, set by the parent
        print(json.dumps(throughput_child(args.throughput_child, args.examples, args.seed)))
        return 0
    quick = args.quick
    sizes = args.sizes or (QUICK_STEP_SIZES if quick else STEP_SIZES)
    runners: dict[str, Callable[[], list[Row]]] = {
        "step": lambda: step_section(sizes, rounds=2 if quick else 7),
        "reference": lambda: reference_section(8 if quick else 64, rounds=2 if quick else 3),
        "throughput": lambda: throughput_section(
            args.examples or (20 if quick else 300), args.seed
        ),
        "oracle": lambda: oracle_section(5 if quick else 200, 64 if quick else 2048),
        "gpu": lambda: gpu_section(quick),
        "isolation": lambda: isolation_section(1 if quick else 3, 5 if quick else None),
        "verdict": lambda: verdict_section(1 if quick else 3, 5 if quick else None),
        "bias": lambda: bias_section(sizes, rounds=2 if quick else 7),
    }
    load_at_start = os.getloadavg()
    rows: list[Row] = []
    for section in args.sections:
        start = time.perf_counter()
        rows += runners[section]()
        print(f"[bench] {section}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    print(table)
    (out / "bench.md").write_text(table)
    env = {**environment(), "load_average_start": load_at_start}
    argv_given = sys.argv[1:] if argv is None else list(argv)
    payload = {
        "environment": env,
        "argv": argv_given,
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    (out / "bench.json").write_text(json.dumps(payload, indent=2))
    message = plot(rows, out / "bench.png") if "step" in args.sections else "plot: no step section"
    print(f"{message}\nJSON: {out / 'bench.json'}")
    if args.docs:
        drawn = out / "bench.png" if message == f"plot: {out / 'bench.png'}" else None
        for path in write_docs(Path(args.docs), payload, drawn):
            print(f"docs: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
