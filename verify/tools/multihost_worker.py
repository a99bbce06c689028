"""One process of a multi-process check: its shards of ``verify.sharded_step`` vs the reference.

Every process runs this same program (SPMD). After ``jax.distributed.initialize`` the processes
see one set of global devices; for each mesh kind the process

1. builds the global inputs x ``(N, I)``, w ``(I, O)``, target ``(N, O)`` from its own rows and
   columns only (``jax.make_array_from_process_local_data``), laid out as ``sharded_step``
   wants them: x over N on the data axis, w over O on the model axis, target over both;
2. runs ``verify.sharded_step`` unchanged (one program across all processes: the psums of
   dL_dw over data and of dL_dx over model cross process boundaries through gloo on CPU);
3. compares every shard it holds of loss, dL_dx, dL_dw, w_new with the same block of the
   single-process reference: bit for bit in exact mode, within ``bounds.step_bounds`` in float
   mode. It counts the elements of the shards whose ``replica_id`` is 0, so the launcher can
   check that the processes together covered every element exactly once.

The process reports as a last stdout line ``CROSSCHECK-MULTIHOST-RESULT {json}`` and progress
lines before it; ``verify.tools.multihost`` (the launcher) reads both.

Mesh kinds over P processes of D devices each (T = P * D devices)::

    dp     (T, 1)   data parallel: N split over every device, dL_dw psum'd across processes
    mp     (1, T)   model parallel: O split over every device, dL_dx psum'd across processes
    2d     (P, D)   data axis across processes, model axis within each process
    2d-t   (D, P)   model axis across processes, data axis within each process
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

import reference

from .. import bounds
from ..messages import ExitCode, Parser, UsageError, explain, print_error
from ..strategies import VALUE_KINDS, exact_inputs, exact_mode_fits, example_inputs

#: Prefix of the one stdout line that carries a process's result to the launcher.
RESULT_PREFIX = "CROSSCHECK-MULTIHOST-RESULT "

#: Mesh kinds, in the order they run (module docstring).
MESH_KINDS: tuple[str, ...] = ("dp", "mp", "2d", "2d-t")

#: Step outputs, in ``StepResult`` order.
FIELDS = reference.StepResult._fields

#: ``--reference auto`` uses the loops up to this many multiply-adds per matmul (128^3: ~1 s).
LOOP_REFERENCE_LIMIT = 128**3

#: Exit code of a deliberately crashed process (``--inject-fault crash:I``).
CRASH_EXIT_CODE = 70


class Fault(NamedTuple):
    """A deliberate failure for the fault-handling tests: ``kind`` in process ``process``."""

    kind: str  # "crash" (exit at once, no cleanup) or "hang" (sleep forever)
    process: int


def parse_fault(text: str) -> Fault:
    """``"crash:1"`` -> ``Fault("crash", 1)``; raises ValueError naming what was wrong."""
    kind, _, index = text.partition(":")
    if kind not in ("crash", "hang") or not index.isdigit():
        raise ValueError(f"--inject-fault must be crash:I or hang:I (I a process id), got {text!r}")
    return Fault(kind, int(index))


def check_parser() -> argparse.ArgumentParser:
    """The check options, shared by the launcher (after ``--``) and every process."""
    parser = Parser(add_help=False)
    group = parser.add_argument_group("check options")
    group.add_argument("--exact", action="store_true", help="exact mode: bit for bit")
    group.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="float mode dtype (exact mode is float32)",
    )
    group.add_argument("--size", type=int, default=64, help="N = I = O (default 64)")
    group.add_argument(
        "--shape", type=int, nargs=3, metavar=("N", "I", "O"), help="overrides --size"
    )
    group.add_argument(
        "--meshes",
        default=",".join(MESH_KINDS),
        help=f"comma-separated mesh kinds from {','.join(MESH_KINDS)} (default all)",
    )
    group.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    group.add_argument(
        "--kind", default="normal", help="float mode value kind (verify.strategies.VALUE_KINDS)"
    )
    group.add_argument(
        "--reference",
        choices=("auto", "loops", "fast"),
        default="auto",
        help="loop reference, or its float64-BLAS twin (exact-mode only); auto: loops up to 128^3",
    )
    group.add_argument("--inject-fault", type=parse_fault, default=None, help=argparse.SUPPRESS)
    return parser


def validate_check_options(options: argparse.Namespace) -> str | None:
    """A one-line reason the options cannot run, or None."""
    shape = layer_shape(options)
    if min(shape) < 1:
        return f"--shape / --size must be positive, got (N, I, O) = {shape}"
    unknown = set(mesh_kinds(options)) - set(MESH_KINDS)
    if unknown or not mesh_kinds(options):
        return f"--meshes must name kinds from {MESH_KINDS}, got {options.meshes!r}"
    if options.exact and not exact_mode_fits(shape, 4, 2.0**-4):
        return f"exact mode at (N, I, O) = {shape} is not exact in float32 (exact_mode_fits)"
    if not options.exact and options.kind not in VALUE_KINDS:
        return f"--kind must be one of {VALUE_KINDS}, got {options.kind!r}"
    if not options.exact and options.reference == "fast":
        return "--reference fast is exact only on exact-mode data: add --exact or use loops"
    return None


def layer_shape(options: argparse.Namespace) -> tuple[int, int, int]:
    """``(N, I, O)`` from ``--shape`` or ``--size``."""
    n, i, o = options.shape if options.shape else (options.size,) * 3
    return (int(n), int(i), int(o))


def mesh_kinds(options: argparse.Namespace) -> list[str]:
    return [kind for kind in options.meshes.split(",") if kind]


def mesh_shape(kind: str, processes: int, local_devices: int) -> tuple[int, int]:
    """``(data, model)`` of mesh ``kind`` over ``processes`` x ``local_devices`` devices."""
    total = processes * local_devices
    return {
        "dp": (total, 1),
        "mp": (1, total),
        "2d": (processes, local_devices),
        "2d-t": (local_devices, processes),
    }[kind]


def device_grid(kind: str, devices: Sequence[Any], processes: int) -> np.ndarray:
    """The ``(data, model)`` grid of devices for ``kind``; ``devices`` grouped by process.

    ``2d`` puts one process per row (the data axis crosses processes); ``2d-t`` is its
    transpose (one process per column: the model axis crosses processes).
    """
    local = len(devices) // processes
    flat = np.empty(len(devices), dtype=object)
    flat[:] = list(devices)  # element by element: a device must not become an axis
    by_process = flat.reshape(processes, local)
    if kind == "2d":
        return by_process
    if kind == "2d-t":
        return by_process.T
    data, model = mesh_shape(kind, processes, local)
    return by_process.reshape(data, model)


def process_block(index_map: dict[Any, tuple[slice, ...]], shape: tuple[int, ...]) -> tuple:
    """The smallest block of a global array of ``shape`` covering this process's shards.

    ``index_map`` is ``sharding.addressable_devices_indices_map(shape)``. For the meshes here
    a process's shards are contiguous, so the block is exactly the process's local data.
    """
    block = []
    for axis, size in enumerate(shape):
        starts = [index[axis].indices(size)[0] for index in index_map.values()]
        stops = [index[axis].indices(size)[1] for index in index_map.values()]
        block.append(slice(min(starts), max(stops)))
    return tuple(block)


class Inputs(NamedTuple):
    x: np.ndarray  # (N, I)
    w: np.ndarray  # (I, O)
    target: np.ndarray  # (N, O)
    lr: float


def make_inputs(options: argparse.Namespace) -> Inputs:
    """The same global inputs in every process (deterministic in ``--seed``)."""
    shape = layer_shape(options)
    if options.exact:
        case = exact_inputs(shape, seed=options.seed)
    else:
        case = example_inputs(
            shape, kind=options.kind, dtype=options.dtype, seed=options.seed, lr=0.5
        )
    return Inputs(case.x, case.w, case.target, case.lr)


def reference_name(options: argparse.Namespace) -> str:
    if options.reference != "auto":
        return options.reference
    n, i, o = layer_shape(options)
    return "loops" if n * i * o <= LOOP_REFERENCE_LIMIT else "fast"


def expected_results(inputs: Inputs, options: argparse.Namespace) -> dict[str, Any]:
    """Per field, the exact reference values (exact mode) or a ``bounds.Bound`` (float mode)."""
    use_loops = reference_name(options) == "loops"
    if options.exact:
        step = reference.step if use_loops else reference.fast.step
        result = step(inputs.x, inputs.w, inputs.target, inputs.lr)
        return {f: np.asarray(v, np.float64) for f, v in zip(FIELDS, result, strict=True)}
    arith = bounds.arithmetic(inputs.x.dtype)
    if use_loops:
        expected = bounds.step_bounds(
            inputs.x, inputs.w, inputs.target, inputs.lr, arith, matmul=reference.forward
        )
    else:
        expected = bounds.step_bounds(inputs.x, inputs.w, inputs.target, inputs.lr, arith)
    return dict(zip(FIELDS, expected.results(), strict=True))


def compare_shard(
    field: str, shard: np.ndarray, expected: Any, index: tuple[slice, ...]
) -> tuple[int, float, str | None]:
    """``(mismatches, worst ratio, first)`` for one shard at global ``index``.

    Exact mode (``expected`` an array): elements not equal to the reference (+0 == -0).
    Float mode (``expected`` a Bound): elements outside ``|got - center| <= radius``.
    ``first`` explains the first mismatching element (``messages.explain``, global index).
    """
    got = np.asarray(shard, np.float64)
    if isinstance(expected, np.ndarray):
        want, radius = expected[index], np.zeros(got.shape)
        differ = got != want
        ratio = differ.astype(np.float64)
    else:
        part = bounds.Bound(expected.center[index], expected.radius[index])
        want, radius = part.center, part.radius
        ratio = np.asarray(part.ratio(got))
        differ = ratio > 1.0
    count = int(np.sum(differ))
    worst = float(np.max(ratio)) if ratio.size else 0.0
    first = None
    if count:
        local = np.unravel_index(int(np.argmax(differ)), differ.shape) if differ.ndim else ()
        offsets = [s.indices(10**12)[0] for s in index]
        where = tuple(int(o + k) for o, k in zip(offsets, local, strict=True))
        first = explain(
            field,
            float(got[local]),
            float(np.asarray(want)[local]),
            index=where,
            bound=float(np.asarray(radius)[local]),
        )
    return count, worst, first


def _size(expected: Any) -> int:
    return int(np.size(expected.center if hasattr(expected, "center") else expected))


def global_array(value: np.ndarray, sharding: Any, *, replicated: bool) -> Any:
    """A global ``jax.Array`` of ``value.shape`` built from this process's block only.

    ``replicated``: every process passes the whole array (used when a dimension does not divide
    the mesh: a jax.Array needs even shards, and ``sharded_step`` pads inside its own program).
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    if replicated:
        sharding = NamedSharding(sharding.mesh, PartitionSpec())
        return jax.make_array_from_process_local_data(sharding, value, value.shape)
    block = process_block(sharding.addressable_devices_indices_map(value.shape), value.shape)
    return jax.make_array_from_process_local_data(sharding, value[block], value.shape)


def check_mesh(
    kind: str, inputs: Inputs, expected: dict[str, Any], processes: int, fault: Fault | None
) -> dict[str, Any]:
    """Run ``sharded_step`` on mesh ``kind`` and compare this process's shards (module doc)."""
    import jax
    from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

    from verify import DATA_AXIS, MODEL_AXIS, sharded_step

    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    grid = device_grid(kind, devices, processes)
    mesh = Mesh(grid, (DATA_AXIS, MODEL_AXIS), axis_types=(AxisType.Auto, AxisType.Auto))
    data, model = grid.shape
    (n, _), o = inputs.x.shape, inputs.w.shape[1]
    replicated = bool(n % data or o % model)

    def place(value: np.ndarray, spec: PartitionSpec) -> Any:
        return global_array(value, NamedSharding(mesh, spec), replicated=replicated)

    x = place(inputs.x, PartitionSpec(DATA_AXIS, None))
    w = place(inputs.w, PartitionSpec(None, MODEL_AXIS))
    target = place(inputs.target, PartitionSpec(DATA_AXIS, MODEL_AXIS))
    if fault is not None and fault.process == jax.process_index():
        inject(fault)
    say(f"{kind}-{data}x{model}: step started")
    start = time.perf_counter()
    result = jax.block_until_ready(sharded_step(x, w, target, inputs.lr, mesh=mesh))
    seconds = time.perf_counter() - start
    fields: dict[str, Any] = {}
    for field, value in zip(FIELDS, result, strict=True):
        mismatches, worst, first, covered = 0, 0.0, None, 0
        for shard in value.addressable_shards:
            count, ratio, where = compare_shard(field, shard.data, expected[field], shard.index)
            mismatches, worst = mismatches + count, max(worst, ratio)
            first = first or where
            covered += int(np.size(shard.data)) if shard.replica_id == 0 else 0
        fields[field] = {
            "mismatches": mismatches,
            "worst_ratio": worst,
            "first": first,
            "covered": covered,
            "size": _size(expected[field]),
        }
    return {
        "mesh": f"{kind}-{data}x{model}",
        "inputs": "replicated (padded inside)" if replicated else "process-local shards",
        "step_seconds": seconds,
        "fields": fields,
    }


def inject(fault: Fault) -> None:
    """The deliberate failure: die at once without cleanup, or stop making progress."""
    print(f"injected fault: {fault.kind} in process {fault.process}", flush=True)
    if fault.kind == "crash":
        os._exit(CRASH_EXIT_CODE)  # no atexit, no distributed shutdown: as a segfault would
    while True:
        time.sleep(3600)


def watch_parent(parent: int) -> None:
    """Exit when the launcher (``parent``) is gone, so a killed launcher leaves no orphans."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="watch-launcher", daemon=True).start()


_stage = 0


def say(text: str) -> None:
    """A progress line, ``stage K: text``: the launcher blames the process at the lowest K."""
    global _stage
    _stage += 1
    print(f"stage {_stage}: {text}", flush=True)


def initialize(coordinator: str | None, processes: int | None, process_id: int | None) -> None:
    """``jax.distributed.initialize`` with gloo CPU collectives; unset settings auto-detected.

    On a loopback coordinator the service binds to that address only (JAX's default binds every
    interface). Under SLURM, Open MPI or on a TPU slice, JAX finds all three settings itself.
    """
    import jax

    # Only the CPU client reads this; on GPU/TPU it changes nothing.
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    bind = None
    if coordinator is not None and coordinator.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        bind = coordinator.replace("localhost", "127.0.0.1")
    timeout = int(os.environ.get("CROSSCHECK_MULTIHOST_INIT_TIMEOUT", "300"))
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=processes,
        process_id=process_id,
        coordinator_bind_address=bind,
        initialization_timeout=timeout,
    )


def run(
    options: argparse.Namespace,
    *,
    coordinator: str | None,
    processes: int | None,
    process_id: int | None,
) -> int:
    """One process's whole job; prints progress and the result line. 0 when its shards agree."""
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 inputs stay float64
    parent = os.environ.get("CROSSCHECK_MULTIHOST_PARENT")
    if parent:
        watch_parent(int(parent))
    start = time.perf_counter()
    initialize(coordinator, processes, process_id)
    me, count = jax.process_index(), jax.process_count()
    say(
        f"initialized: process {me} of {count}, {jax.local_device_count()} local / "
        f"{jax.device_count()} global {jax.devices()[0].platform} devices "
        f"({time.perf_counter() - start:.1f} s)"
    )
    inputs = make_inputs(options)
    started = time.perf_counter()
    expected = expected_results(inputs, options)
    reference_seconds = time.perf_counter() - started
    say(f"reference ({reference_name(options)}): {reference_seconds:.2f} s")
    meshes = []
    for kind in mesh_kinds(options):
        report = check_mesh(kind, inputs, expected, count, options.inject_fault)
        bad = sum(f["mismatches"] for f in report["fields"].values())
        say(f"{report['mesh']}: step {report['step_seconds']:.2f} s, {bad} mismatching elements")
        meshes.append(report)
    agreed = global_verdict(meshes)
    say(f"all {count} processes: {'every shard agrees' if agreed else 'MISMATCH or gap'}")
    result = {
        "global_verdict": "ok" if agreed else "mismatch",
        "process": me,
        "processes": count,
        "local_devices": jax.local_device_count(),
        "global_devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "reference": reference_name(options),
        "reference_seconds": reference_seconds,
        "meshes": meshes,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    # Every process leaves together: the shutdown barrier is the last collective.
    jax.distributed.shutdown()
    return ExitCode.OK if agreed else ExitCode.DEFECT


def global_verdict(meshes: list[dict[str, Any]]) -> bool:
    """Whether every process's shards agree and together cover every element (a collective).

    Each process contributes ``(mismatches, covered)`` per mesh and field; the sums over
    processes must be ``(0, size)``. On a cluster (``--join``) this gives every host the one
    verdict the local launcher computes from the processes' reports.
    """
    from jax.experimental import multihost_utils

    parts = [part for mesh in meshes for part in mesh["fields"].values()]
    mine = np.array([[p["mismatches"], p["covered"]] for p in parts], dtype=np.int64)
    everyone = np.asarray(multihost_utils.process_allgather(mine))  # (processes, fields, 2)
    total = everyone.reshape(-1, len(parts), 2).sum(axis=0)
    sizes = np.array([p["size"] for p in parts], dtype=np.int64)
    return bool(np.all(total[:, 0] == 0) and np.all(total[:, 1] == sizes))


def main_join(argv: Sequence[str]) -> int:
    """``python -m verify multihost --join [...]``: be one process of the job."""
    parser = Parser(prog="python -m verify multihost --join", parents=[check_parser()])
    parser.add_argument("--join", action="store_true", required=True)
    parser.add_argument("--coordinator", help="HOST:PORT of process 0 (default: auto-detect)")
    parser.add_argument("--num-processes", type=int, help="default: auto-detect")
    parser.add_argument("--process-id", type=int, help="default: auto-detect")
    try:
        options = parser.parse_args(argv)
        reason = validate_check_options(options)
        if reason:
            raise UsageError(reason)
    except UsageError as err:
        print_error(err)
        return ExitCode.USAGE
    try:
        return run(
            options,
            coordinator=options.coordinator,
            processes=options.num_processes,
            process_id=options.process_id,
        )
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        # The peers are stuck in a collective: skip JAX's shutdown barrier (it would wait for
        # them) and let the launcher stop them.
        os._exit(ExitCode.DEFECT)
