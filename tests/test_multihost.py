"""``python -m verify multihost``: the sharded step across local processes, and its failures.

The multi-process cases start real processes (``jax.distributed`` on 127.0.0.1, gloo CPU
collectives), each under a hard time limit. ``nox -s tests`` and ``nox -s multihost`` run them
all (``CROSSCHECK_MULTIHOST=1``): 2 x 2, 2 x 4 and 4 x 2 in exact mode (bit for bit against the
loop reference, DP, MP and both 2-D meshes), float mode, padding, and the crash, hang and
killed-launcher cases. A plain ``pytest`` runs the pure helpers and the 2 x 2 exact case.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from verify.bounds import Bound
from verify.messages import ExitCode
from verify.tools import multihost as launcher
from verify.tools import multihost_worker as worker

REPO = Path(__file__).resolve().parent.parent

FULL = os.environ.get("CROSSCHECK_MULTIHOST") == "1"
full_only = pytest.mark.skipif(
    not FULL,
    reason="multi-process case: run `nox -s tests` or `nox -s multihost` (CROSSCHECK_MULTIHOST=1)",
)

#: Hard limit on one launcher run, on top of its own --timeout (2 busy cores, 4 processes).
RUN_LIMIT_SECONDS = 180

#: Divisible by every mesh side up to 8 (process-local shards), small enough for the loops.
SHAPE = ("32", "24", "16")


class Run:
    """One finished launcher run: exit code, output, its JSON report, wall time."""

    def __init__(self, args: list[str], tmp_path: Path, limit: float = RUN_LIMIT_SECONDS) -> None:
        report = tmp_path / f"report-{time.monotonic_ns()}.json"
        command = [sys.executable, "-m", "verify", "multihost", "--json", str(report), *args]
        start = time.monotonic()
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False
        )
        self.seconds = time.monotonic() - start
        self.returncode = done.returncode
        self.output = done.stdout + done.stderr
        self.report = json.loads(report.read_text()) if report.exists() else {}

    def describe(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s:\n{self.output}"


def processes_with(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (e.g. the coordinator address).

    Read from /proc, not ``ps``: ps cuts its lines to ``$COLUMNS``, which pytest sets.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if text in command and state != "Z":
            found.append(f"{entry.name} {command}")
    return found


def assert_nothing_left(run: Run) -> None:
    """No worker of ``run`` is alive and its coordinator port is free again."""
    coordinator = run.report["coordinator"]
    deadline = time.monotonic() + 5.0
    while processes_with(f"--coordinator {coordinator}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(f"--coordinator {coordinator}"), processes_with(coordinator)
    for pid in run.report["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    port = int(coordinator.rsplit(":", 1)[1])
    assert launcher.port_is_free(port), f"port {port} still bound after the run"
    assert run.report["port_free_after"], run.report


def assert_exact_ok(run: Run, processes: int, devices: int) -> None:
    assert run.returncode == 0, run.describe()
    total = processes * devices
    meshes = {mesh["mesh"] for mesh in run.report["meshes"]}
    expected = {f"dp-{total}x1", f"mp-1x{total}", f"2d-{processes}x{devices}"}
    expected.add(f"2d-t-{devices}x{processes}")
    assert meshes == expected, run.describe()
    for mesh in run.report["meshes"]:
        for field, part in mesh["fields"].items():
            where = f"{mesh['mesh']} {field}"
            assert part["mismatches"] == 0, f"{where}: {part['first']}"
            assert part["covered"] == part["size"], f"{where}: covered {part}"
    assert len(run.report["results"]) == processes
    assert {r["global_devices"] for r in run.report["results"]} == {total}
    assert "bit for bit" in run.output and run.output.count("bit for bit") == 4, run.output


# ------------------------------------------------------------------------------------------
# Pure helpers (no processes).
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [("crash:1", worker.Fault("crash", 1)), ("hang:0", worker.Fault("hang", 0))],
)
def test_parse_fault(text: str, fault: worker.Fault) -> None:
    assert worker.parse_fault(text) == fault


@pytest.mark.parametrize("text", ["crash", "boom:1", "hang:x", "crash:-1"])
def test_parse_fault_names_what_it_needs(text: str) -> None:
    with pytest.raises(ValueError, match="--inject-fault must be crash:I or hang:I"):
        worker.parse_fault(text)


@pytest.mark.parametrize(
    ("kind", "shape"), [("dp", (6, 1)), ("mp", (1, 6)), ("2d", (3, 2)), ("2d-t", (2, 3))]
)
def test_device_grid_puts_processes_where_the_kind_says(kind: str, shape: tuple) -> None:
    # Devices named (process, local index), grouped by process as jax.devices() sorted is.
    devices = [(p, d) for p in range(3) for d in range(2)]
    grid = worker.device_grid(kind, devices, processes=3)
    assert grid.shape == shape == worker.mesh_shape(kind, 3, 2)
    if kind == "2d":  # one process per row: the data axis crosses processes
        assert all(len({dev[0] for dev in row}) == 1 for row in grid)
    if kind == "2d-t":  # one process per column: the model axis crosses processes
        assert all(len({dev[0] for dev in column}) == 1 for column in grid.T)


def test_process_block_is_the_union_of_the_process_shards() -> None:
    index_map = {
        "a": (slice(4, 8), slice(None)),
        "b": (slice(0, 4), slice(None)),
    }
    assert worker.process_block(index_map, (16, 5)) == (slice(0, 8), slice(0, 5))


def test_compare_shard_exact_names_the_global_element() -> None:
    expected = np.arange(12.0).reshape(4, 3)
    shard = expected[2:4, 1:3].copy()
    assert worker.compare_shard("dL_dx", shard, expected, (slice(2, 4), slice(1, 3)))[0] == 0
    shard[1, 0] = -0.5
    count, _, first = worker.compare_shard("dL_dx", shard, expected, (slice(2, 4), slice(1, 3)))
    assert count == 1
    assert first == "dL_dx[3, 1] = -0.5, but should be exactly 10.0"


def test_compare_shard_float_uses_the_bound_block() -> None:
    bound = Bound(np.zeros((2, 4)), np.full((2, 4), 0.5))
    index = (slice(None), slice(2, 4))
    count, worst, first = worker.compare_shard("dL_dw", np.array([[0.25, 0], [0, 0]]), bound, index)
    assert (count, worst, first) == (0, 0.5, None)
    count, worst, first = worker.compare_shard("dL_dw", np.array([[0, 0], [0, 2.0]]), bound, index)
    assert count == 1 and worst == 4.0
    assert first == "dL_dw[1, 3] = 2.0, but should be 0.0 (bound 0.5)"


def fake_result(process: int, mismatches: int = 0, covered: int = 8) -> dict:
    part = {"mismatches": mismatches, "worst_ratio": 0.0, "first": None, "covered": covered}
    if mismatches:
        part["first"] = f"dL_dw[0, {process}] = 1.0, but should be exactly 2.0"
    fields = {f: {**part, "size": 16} for f in worker.FIELDS}
    mesh = {"mesh": "dp-4x1", "inputs": "process-local shards", "step_seconds": 0.1}
    return {"process": process, "meshes": [{**mesh, "fields": fields}]}


def test_aggregate_sums_processes_and_checks_coverage() -> None:
    [mesh] = launcher.aggregate([fake_result(0), fake_result(1)])
    assert launcher.mesh_verdict(mesh, exact=True)[0]
    [mesh] = launcher.aggregate([fake_result(0), fake_result(1, mismatches=2)])
    passed, line = launcher.mesh_verdict(mesh, exact=True)
    assert not passed and "MISMATCH dL_dw[0, 1] = 1.0" in line
    [mesh] = launcher.aggregate([fake_result(0), fake_result(1, covered=7)])
    passed, line = launcher.mesh_verdict(mesh, exact=True)
    assert not passed and "INCOMPLETE: checked loss: 15 of 16" in line


def test_split_argv_separates_check_options() -> None:
    assert launcher.split_argv(["--processes", "2", "--", "--exact"]) == (
        ["--processes", "2"],
        ["--exact"],
    )
    assert launcher.split_argv(["--processes", "2"]) == (["--processes", "2"], [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "0"], "--processes must be >= 1, got 0"),
        (["--", "--meshes", "dp,3d"], "--meshes must name kinds from"),
        (["--", "--exact", "--size", "100000"], "is not exact in float32"),
        (["--", "--inject-fault", "crash:2"], "names process 2, but there are 2"),
        (["--", "--reference", "fast"], "--reference fast is exact only"),
    ],
    ids=["processes", "meshes", "exact-size", "fault-process", "fast-float"],
)
def test_usage_errors_exit_2_before_starting_anything(args, message, capsys) -> None:
    assert launcher.main(args) == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_free_loopback_port_is_free() -> None:
    port = launcher.free_loopback_port()
    assert 0 < port < 65536 and launcher.port_is_free(port)


# ------------------------------------------------------------------------------------------
# Across processes.
# ------------------------------------------------------------------------------------------


#: 2 x 2 is the one multi-process case of a plain ``pytest``.
ACROSS = [(2, 2), pytest.param(2, 4, marks=full_only), pytest.param(4, 2, marks=full_only)]


@pytest.mark.parametrize(("processes", "devices"), ACROSS, ids=str)
def test_exact_mode_bitwise_across_processes(processes: int, devices: int, tmp_path) -> None:
    run = Run(["--processes", str(processes), "--devices-per-process", str(devices),
               "--timeout", "150", "--", "--exact", "--shape", *SHAPE, "--seed", "3"],
              tmp_path)  # fmt: skip
    assert_exact_ok(run, processes, devices)
    assert all(m["inputs"] == "process-local shards" for m in run.report["meshes"])
    assert run.report["results"][0]["reference"] == "loops"
    assert_nothing_left(run)


@full_only
def test_indivisible_shape_pads_inside_the_sharded_step(tmp_path: Path) -> None:
    """N = 13, O = 5 divide no mesh side: inputs go replicated, sharded_step pads (exactly)."""
    run = Run(["--processes", "4", "--devices-per-process", "2", "--timeout", "150", "--",
               "--exact", "--shape", "13", "7", "5"], tmp_path)  # fmt: skip
    assert_exact_ok(run, 4, 2)
    assert all(m["inputs"].startswith("replicated") for m in run.report["meshes"])


@full_only
@pytest.mark.parametrize(
    ("processes", "devices", "dtype", "kind"),
    [(2, 4, "float32", "normal"), (4, 2, "float64", "wide"), (2, 2, "float32", "cancellation")],
    ids=["2x4-float32", "4x2-float64", "2x2-float32-cancellation"],
)
def test_float_mode_within_the_error_model(processes, devices, dtype, kind, tmp_path) -> None:
    run = Run(["--processes", str(processes), "--devices-per-process", str(devices),
               "--timeout", "150", "--", "--dtype", dtype, "--kind", kind, "--shape", *SHAPE],
              tmp_path)  # fmt: skip
    assert run.returncode == 0, run.describe()
    assert run.output.count("within the error model") == 4, run.output
    for mesh in run.report["meshes"]:
        for field, part in mesh["fields"].items():
            assert part["worst_ratio"] <= 1.0 and part["covered"] == part["size"], (field, mesh)


@full_only
@pytest.mark.parametrize("crashed", [1, 0], ids=["worker", "coordinator"])
def test_crashed_process_stops_the_others(crashed: int, tmp_path: Path) -> None:
    """A process dies (no cleanup) before the first step: exit 3, named, nothing left behind.

    Process 0 also hosts the coordination service: its death must be handled the same way.
    """
    run = Run(["--processes", "2", "--devices-per-process", "2", "--timeout", "120", "--",
               "--exact", "--size", "8", "--inject-fault", f"crash:{crashed}"],
              tmp_path)  # fmt: skip
    assert run.returncode == ExitCode.INCOMPLETE, run.describe()
    assert f"process {crashed} of 2 exited with code {worker.CRASH_EXIT_CODE}" in run.output
    assert f"injected fault: crash in process {crashed}" in run.output  # its last output
    assert f"stopped the other processes: {1 - crashed}" in run.output
    assert run.seconds < 60, run.describe()  # the crash is seen at once, not at the timeout
    assert_nothing_left(run)
    again = Run(["--processes", "2", "--devices-per-process", "2", "--", "--exact",
                 "--size", "8", "--meshes", "2d"], tmp_path)  # fmt: skip
    assert again.returncode == 0, again.describe()
    assert_nothing_left(again)


@full_only
@pytest.mark.slow
def test_a_hung_process_is_named_at_the_timeout_and_when_its_peer_gives_up(
    tmp_path: Path,
) -> None:
    """Process 1 stops making progress before the step; its peer waits in the collective. Two
    launchers at once, as both only wait: with --timeout 25 the launcher times out; with
    --timeout 90 the waiting peer fails first (gloo gives up after 30 s). Each names the process
    that got least far, and its last output."""
    timeout = 25
    hung = ["--", "--exact", "--size", "8", "--inject-fault", "hang:1"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(Run, ["--processes", "2", "--devices-per-process", "2",
                              "--timeout", str(seconds), *hung], tmp_path)
            for seconds in (timeout, 90)
        ]  # fmt: skip
        run, peer = (each.result() for each in runs)
    assert peer.returncode == ExitCode.INCOMPLETE, peer.describe()
    assert "least progress: process 1" in peer.output, peer.describe()
    assert "injected fault: hang in process 1" in peer.output
    assert_nothing_left(peer)
    assert run.returncode == ExitCode.INCOMPLETE, run.describe()
    assert f"timed out after {timeout} s" in run.output
    assert "least progress: process 1" in run.output
    assert "injected fault: hang in process 1" in run.output
    # Bounded: the timeout, the kill grace period and the launcher's own start.
    assert run.seconds < timeout + launcher.KILL_GRACE_SECONDS + 20, run.describe()
    assert_nothing_left(run)
    again = Run(["--processes", "2", "--devices-per-process", "2", "--", "--exact",
                 "--size", "8", "--meshes", "dp"], tmp_path)  # fmt: skip
    assert again.returncode == 0, again.describe()
    assert_nothing_left(again)


@full_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_launcher_leaves_no_workers(signum: int, tmp_path: Path) -> None:
    """SIGTERM: the launcher stops its groups; SIGKILL: each worker sees its parent gone."""
    command = [sys.executable, "-m", "verify", "multihost", "--processes", "2",
               "--devices-per-process", "2", "--timeout", "120", "--", "--exact", "--size", "8",
               "--inject-fault", "hang:1"]  # fmt: skip
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        header = proc.stdout.readline()  # "multihost: ... coordinator 127.0.0.1:PORT (loopback)"
        coordinator = header.split("coordinator ")[1].split()[0]
        deadline = time.monotonic() + 60
        while len(processes_with(f"--coordinator {coordinator}")) < 2:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        time.sleep(2.0)  # let them reach the hang and the collective
        proc.send_signal(signum)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while processes_with(f"--coordinator {coordinator}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(f"--coordinator {coordinator}")
    assert launcher.port_is_free(int(coordinator.rsplit(":", 1)[1]))


def run_joined(jobs: list[tuple[dict[str, str], list[str]]]) -> list[tuple[int, str]]:
    """Start one ``--join`` process per ``(env, args)``, as a cluster scheduler would.

    Returns each process's (exit code, output); kills every group it started, however it ends.
    """
    command = [sys.executable, "-m", "verify", "multihost", "--join"]
    procs = [
        subprocess.Popen([*command, *args], cwd=REPO, env={**os.environ, **env},
                         start_new_session=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for env, args in jobs
    ]  # fmt: skip
    try:
        return [(proc.wait(timeout=RUN_LIMIT_SECONDS), proc.communicate()[0]) for proc in procs]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@full_only
def test_join_with_explicit_coordinator() -> None:
    """One process per host, settings on the command line: every process gives the verdict."""
    port = launcher.free_loopback_port()
    env = {"JAX_NUM_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu"}
    args = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--exact", "--size", "8"]
    jobs = [(env, [*args, "--process-id", str(index)]) for index in range(2)]
    for code, output in run_joined(jobs):
        assert code == 0, output
        assert "all 2 processes: every shard agrees" in output, output
    assert launcher.port_is_free(port)


@full_only
def test_join_finds_its_settings_under_slurm() -> None:
    """SLURM's variables alone (as srun sets them): jax.distributed.initialize() finds the
    coordinator (first node of the step, port from JAX_COORDINATOR_PORT), count and id."""
    port = launcher.free_loopback_port()
    envs = [
        {
            "SLURM_JOB_ID": "4242",
            "SLURM_STEP_NODELIST": "127.0.0.1",
            "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(index),
            "SLURM_LOCALID": str(index),
            "JAX_COORDINATOR_PORT": str(port),
            # Loopback only: JAX's default would bind the coordinator on every interface.
            "JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_CPU_DEVICES": "2",
            "JAX_PLATFORMS": "cpu",
        }
        for index in range(2)
    ]
    args = ["--exact", "--size", "8", "--meshes", "2d,2d-t"]
    for code, output in run_joined([(env, args) for env in envs]):
        assert code == 0, output
        assert "initialized: process" in output and "of 2, 2 local / 4 global" in output
        assert "all 2 processes: every shard agrees" in output, output
    assert launcher.port_is_free(port)
