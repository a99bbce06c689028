"""``python -m verify multihost``: the sharded step checked across processes, one verdict.

Local launcher (this machine, loopback only)::

    python -m verify multihost --processes 2 --devices-per-process 2 -- --exact --size 512

starts P processes, each with D forced CPU devices (``JAX_NUM_CPU_DEVICES=D``), joined by
``jax.distributed.initialize`` at a free port on 127.0.0.1 with gloo CPU collectives. Each
process builds its own shards of x ``(N, I)``, w ``(I, O)`` and target ``(N, O)``, runs
``verify.sharded_step`` on data-parallel, model-parallel and two 2-D meshes spanning every
process's devices, and compares the shards it holds of loss, dL_dx ``(N, I)``, dL_dw ``(I, O)``
and w_new ``(I, O)`` with the single-process loop reference (``multihost_worker``). The
launcher collects every process's result and exit code and prints one verdict.

One process per host (a real cluster): run the same program on every host with ``--join``::

    srun --nodes 2 --ntasks-per-node 1 python -m verify multihost --join -- --exact --size 4096
    python -m verify multihost --join --coordinator 10.0.0.1:8476 --num-processes 2 \
        --process-id $RANK -- --exact

Under SLURM, Open MPI or on a TPU slice ``jax.distributed.initialize()`` finds the coordinator
(SLURM: the step's first node, port ``JAX_COORDINATOR_PORT`` or one derived from the job id),
the process count and id itself; elsewhere pass them (``JAX_COORDINATOR_ADDRESS`` also works).
JAX binds the coordinator on every interface unless ``JAX_COORDINATOR_BIND_ADDRESS`` says
otherwise (``--coordinator 127.0.0.1:PORT`` binds loopback only). CPU hosts take
``JAX_NUM_CPU_DEVICES`` as usual; gloo carries the CPU collectives. Every process prints its
progress, then the verdict of all processes together (a ``process_allgather`` of the mismatch
and coverage counts), and exits 0 only if every process's shards agree; its last stdout line
is its JSON result.

Exit codes (``messages.ExitCode``): 0 every shard of every process agrees (and together they
cover every element); 1 a mismatch (the first one is named); 2 usage error; 3 a process
crashed, hung or timed out:
the launcher stops the others (each process is its own process group, killed as a group), names
the failed process and its last output, and leaves no process and no bound port behind.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..messages import (
    ERROR_PREFIX,
    ExitCode,
    Parser,
    UsageError,
    print_error,
    sigterm_as_interrupt,
)
from .multihost_worker import (
    FIELDS,
    RESULT_PREFIX,
    check_parser,
    layer_shape,
    main_join,
    validate_check_options,
)

LOOPBACK = "127.0.0.1"

#: Lines of each process's output kept for the failure message.
TAIL_LINES = 8

#: A worker's progress line (``_multihost_worker.say``).
STAGE = re.compile(r"^stage (\d+): ")

#: Seconds between SIGTERM and SIGKILL when stopping a process group.
KILL_GRACE_SECONDS = 3.0


def free_loopback_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound (no socket listening on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a closed connection in TIME_WAIT is not "bound"; a listener is.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def worker_env(devices_per_process: int, init_timeout: float) -> dict[str, str]:
    """The environment of a local worker: D forced CPU devices, this package importable."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {
        key: value
        for key, value in os.environ.items()
        # A proxy setting would send gRPC's loopback connections to the proxy (JAX warns).
        if not key.lower().endswith("_proxy")
    }
    path = env.get("PYTHONPATH")
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_NUM_CPU_DEVICES=str(devices_per_process),
        PYTHONPATH=package_root + (os.pathsep + path if path else ""),
        PYTHONUNBUFFERED="1",
        CROSSCHECK_MULTIHOST_PARENT=str(os.getpid()),
        CROSSCHECK_MULTIHOST_INIT_TIMEOUT=str(max(1, int(init_timeout))),
        # JAX's preemption service catches SIGTERM (to checkpoint on preemption); here SIGTERM
        # means stop now.
        JAX_ENABLE_PREEMPTION_SERVICE="false",
    )
    return env


def worker_command(
    coordinator: str, processes: int, process_id: int, check_args: Sequence[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "verify",
        "multihost",
        "--join",
        "--coordinator",
        coordinator,
        "--num-processes",
        str(processes),
        "--process-id",
        str(process_id),
        *check_args,
    ]


_ECHO_LOCK = threading.Lock()


class Worker:
    """One local process: its own process group, its output read by a thread."""

    def __init__(self, index: int, command: list[str], env: dict[str, str], echo: bool) -> None:
        self.index = index
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.result: dict[str, Any] | None = None
        self.returncode: int | None = None
        self.ended: float | None = None
        self.last_heard = time.monotonic()
        self.stage = 0  # the last "stage K:" progress line seen
        self.reaped = False
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopped as one, children included
        )
        self.reader = threading.Thread(target=self._read, args=(echo,), daemon=True)
        self.reader.start()

    def _read(self, echo: bool) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.last_heard = time.monotonic()
            stage = STAGE.match(line)
            self.stage = int(stage.group(1)) if stage else self.stage
            if line.startswith(RESULT_PREFIX):
                with contextlib.suppress(ValueError):
                    self.result = json.loads(line[len(RESULT_PREFIX) :])
                continue
            self.tail.append(line)
            if echo:
                with _ECHO_LOCK:  # one whole line at a time from the reader threads
                    sys.stdout.write(f"[process {self.index}] {line}\n")
                    sys.stdout.flush()

    def poll(self) -> int | None:
        """The exit code once the process has exited, without reaping it.

        ``WNOWAIT`` leaves the exited leader a zombie, which keeps its pid, and so its process
        group id, from being reused until ``reap``: signalling the group stays safe meanwhile.
        """
        if self.returncode is None and not self.reaped:
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            info = os.waitid(os.P_PID, self.process.pid, flags)
            if info is not None and info.si_pid == self.process.pid:
                exited = info.si_code == os.CLD_EXITED
                self.returncode = info.si_status if exited else -info.si_status
                self.ended = time.monotonic()
        return self.returncode

    def signal_group(self, signum: int) -> None:
        if not self.reaped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def reap(self) -> None:
        if not self.reaped:
            code = self.process.wait()
            self.returncode = code if self.returncode is None else self.returncode
            self.ended = self.ended or time.monotonic()
            self.reaped = True

    def last_output(self) -> str:
        self.reader.join(timeout=1.0)  # the pipe closes when the group is gone
        lines = [line for line in self.tail if line.strip()]
        return "\n".join(f"    {line}" for line in lines) or "    (no output)"


def stop(workers: Sequence[Worker]) -> None:
    """SIGTERM every worker's process group, SIGKILL what is left after a grace period, reap.

    Groups are signalled even when their leader has exited (a child it started may still run);
    the leader is reaped only after its group is killed, so the group id cannot be reused.
    """
    for worker in workers:
        worker.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers:
        worker.signal_group(signal.SIGKILL)
    for worker in workers:
        worker.reap()


def supervise(workers: Sequence[Worker], timeout: float) -> str | None:
    """Wait for every worker; on the first failure or at ``timeout``, stop all and say why.

    Returns None when every worker exited 0 with a result, else the failure message naming the
    process(es) and their last output.
    """
    start = time.monotonic()
    total = len(workers)
    while True:
        failed = [w for w in workers if w.poll() not in (None, 0)]
        if failed:
            return _exited(workers, failed, start)
        if all(w.returncode == 0 for w in workers):
            for w in workers:
                w.reader.join(timeout=5.0)
            missing = [w for w in workers if w.result is None]
            if not missing:
                return None
            return "\n".join(
                f"process {w.index} of {total} exited 0 without a result line; its last "
                f"output:\n{w.last_output()}"
                for w in missing
            )
        if time.monotonic() - start > timeout:
            return _timed_out(workers, timeout)
        time.sleep(0.05)


def _timed_out(workers: Sequence[Worker], timeout: float) -> str:
    """Stop everything; name the unfinished processes, the one that got least far first.

    A hung process and the peers waiting for it in a collective all stop talking; the peers
    announced the step they wait in, the hung one did not, so the lowest progress stage (then
    the longest silence) points at the process to look at.
    """
    now = time.monotonic()
    running = sorted(
        (w for w in workers if w.returncode is None), key=lambda w: (w.stage, w.last_heard)
    )
    stop(workers)
    names = ", ".join(str(w.index) for w in running)
    laggard = running[0]
    lines = [
        f"timed out after {timeout:g} s: no result from process {names} of {len(workers)} "
        f"(stopped); least progress: process {laggard.index} (stage {laggard.stage}, "
        f"silent {now - laggard.last_heard:.1f} s)"
    ]
    for w in running:
        lines.append(
            f"process {w.index} (stage {w.stage}, silent {now - w.last_heard:.1f} s), "
            f"last output:\n{w.last_output()}"
        )
    return "\n".join(lines)


def _exited(workers: Sequence[Worker], failed: Sequence[Worker], start: float) -> str:
    """Stop everything; name the failed processes and, if one got less far, that one too.

    A peer waiting in a collective for a hung process gives up on its own after a while (gloo:
    ``DEADLINE_EXCEEDED`` after 30 s) and exits first; the process that never reached the
    collective (the lowest progress stage) is then the one to look at.
    """
    now = time.monotonic()
    running = sorted(
        (w for w in workers if w.returncode is None), key=lambda w: (w.stage, w.last_heard)
    )
    stop(workers)
    lines = [
        f"process {w.index} of {len(workers)} exited with code {w.returncode} after "
        f"{(w.ended or now) - start:.1f} s (stage {w.stage}); its last output:\n{w.last_output()}"
        for w in failed
    ]
    if running:
        lines.append(f"stopped the other processes: {', '.join(str(w.index) for w in running)}")
        laggard = running[0]
        if laggard.stage < min(w.stage for w in failed):
            lines.append(
                f"least progress: process {laggard.index} (stage {laggard.stage}, silent "
                f"{now - laggard.last_heard:.1f} s), which the others may have waited for; its "
                f"last output:\n{laggard.last_output()}"
            )
    return "\n".join(lines)


def aggregate(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mesh and field: mismatches summed, worst ratio, first mismatch, coverage summed."""
    meshes = []
    for position, first_report in enumerate(results[0]["meshes"]):
        reports = [result["meshes"][position] for result in results]
        fields = {}
        for field in FIELDS:
            parts = [report["fields"][field] for report in reports]
            fields[field] = {
                "mismatches": sum(p["mismatches"] for p in parts),
                "worst_ratio": max(p["worst_ratio"] for p in parts),
                "first": next((p["first"] for p in parts if p["first"]), None),
                "covered": sum(p["covered"] for p in parts),
                "size": parts[0]["size"],
            }
        meshes.append(
            {
                "mesh": first_report["mesh"],
                "inputs": first_report["inputs"],
                "step_seconds": max(report["step_seconds"] for report in reports),
                "fields": fields,
            }
        )
    return meshes


def mesh_verdict(mesh: dict[str, Any], exact: bool) -> tuple[bool, str]:
    """Whether one mesh passed, and its summary line."""
    fields = mesh["fields"]
    bad = {f: v for f, v in fields.items() if v["mismatches"]}
    uncovered = {f: v for f, v in fields.items() if v["covered"] != v["size"]}
    head = f"  {mesh['mesh']:10s}"
    tail = f"[{mesh['inputs']}; step {mesh['step_seconds']:.2f} s]"
    if bad:
        counts = ", ".join(f"{f}: {v['mismatches']}" for f, v in bad.items())
        first = next(v["first"] for v in bad.values())
        return False, f"{head} MISMATCH {first} ({counts} elements) {tail}"
    if uncovered:
        counts = ", ".join(f"{f}: {v['covered']} of {v['size']}" for f, v in uncovered.items())
        return False, f"{head} INCOMPLETE: checked {counts} elements {tail}"
    if exact:
        return True, f"{head} bit for bit: {', '.join(fields)} {tail}"
    worst = max(v["worst_ratio"] for v in fields.values())
    return True, f"{head} within the error model (worst error {worst:.6g} of the bound) {tail}"


def _check_options_help() -> str:
    """The check options' help (they go after ``--``), without their parser's usage line."""
    text = check_parser().format_help()
    text = text[text.index("check options") :]
    return text.replace("check options:", "check options (after --):", 1)


def launcher_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m verify multihost",
        description="The sharded step across P local processes of D CPU devices each, "
        "checked against the single-process loop reference. Check options go after '--'; "
        "--join runs one process of a job started elsewhere (e.g. by srun).",
        epilog=_check_options_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--processes", type=int, default=2, help="P (default 2)")
    parser.add_argument(
        "--devices-per-process", type=int, default=2, help="D forced CPU devices (default 2)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds for the whole run (default 600)"
    )
    parser.add_argument("--json", type=Path, help="write the combined report here")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo every process's output")
    return parser


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Launcher options before ``--``, check options after it."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m verify multihost ...`` (module docstring); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    own, check_args = split_argv(args)
    if "--join" in own:
        return main_join([*own, *check_args])
    try:
        options = launcher_parser().parse_args(own)
        check_options = check_parser().parse_args(check_args)
        for name, value in (
            ("--processes", options.processes),
            ("--devices-per-process", options.devices_per_process),
        ):
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        reason = validate_check_options(check_options)
        fault = check_options.inject_fault
        if reason is None and fault is not None and fault.process >= options.processes:
            reason = (
                f"--inject-fault names process {fault.process}, but there are {options.processes}"
            )
        if reason:
            raise UsageError(reason)
    except UsageError as err:
        print_error(err)
        return ExitCode.USAGE
    return launch(options, check_options, check_args)


def launch(
    options: argparse.Namespace, check_options: argparse.Namespace, check_args: list[str]
) -> int:
    """Start the workers, supervise them, print and return the verdict."""
    processes, devices = options.processes, options.devices_per_process
    port = free_loopback_port()
    coordinator = f"{LOOPBACK}:{port}"
    mode = "exact mode" if check_options.exact else f"float mode ({check_options.dtype})"
    print(
        f"multihost: {processes} processes x {devices} CPU devices = {processes * devices} "
        f"global devices, coordinator {coordinator} (loopback)\n"
        f"{mode}, (N, I, O) = {layer_shape(check_options)}, seed {check_options.seed}",
        flush=True,
    )
    start = time.monotonic()
    env = worker_env(devices, min(options.timeout, 300.0))
    workers: list[Worker] = []
    try:
        with sigterm_as_interrupt():
            for index in range(processes):
                command = worker_command(coordinator, processes, index, check_args)
                workers.append(Worker(index, command, env, options.verbose))
            failure = supervise(workers, options.timeout)
    except KeyboardInterrupt:
        stop(workers)
        print_error("interrupted; stopped every process")
        return ExitCode.INCOMPLETE
    finally:
        stop(workers)  # idempotent: nothing may outlive the launcher
    wall = time.monotonic() - start
    port_free = port_is_free(port)
    report: dict[str, Any] = {
        "processes": processes,
        "devices_per_process": devices,
        "coordinator": coordinator,
        "port_free_after": port_free,
        "wall_seconds": wall,
        "exit_codes": [w.returncode for w in workers],
        "pids": [w.process.pid for w in workers],
    }
    if failure is not None:
        # Several lines: the failed process and its last output.
        print(f"{ERROR_PREFIX}FAILED: {failure}", file=sys.stderr, flush=True)
        report.update(verdict="process failed", failure=failure)
        _write_json(options.json, report)
        return ExitCode.INCOMPLETE
    results = sorted((w.result for w in workers if w.result), key=lambda r: r["process"])
    meshes = aggregate(results)
    verdicts = [mesh_verdict(mesh, check_options.exact) for mesh in meshes]
    print(f"vs the reference ({results[0]['reference']}), every process's shards:")
    for _, line in verdicts:
        print(line)
    # The processes' own collective verdict (what a cluster run reports) must say the same.
    ok = all(passed for passed, _ in verdicts)
    if any(result.get("global_verdict") != ("ok" if ok else "mismatch") for result in results):
        print("the processes' own verdict disagrees with the launcher's (see --json)")
        ok = False
    port_note = "free again" if port_free else "STILL BOUND"
    print(
        f"{'OK' if ok else 'FAILED'}: {processes} x {devices} in {wall:.1f} s wall; "
        f"port {port} {port_note}",
        flush=True,
    )
    report.update(verdict="ok" if ok else "mismatch", meshes=meshes, results=results)
    _write_json(options.json, report)
    return ExitCode.OK if ok else ExitCode.DEFECT


def _write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
