"""nox sessions for crosscheck (``nox -l`` lists them; ``nox`` alone runs ``tests``).

Every session also runs with ``nox --no-venv -s NAME`` on an image that already has JAX and the
test tools installed (no network needed): installs are skipped, the current interpreter is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox
from packaging.requirements import Requirement

PYPROJECT = nox.project.load_toml("pyproject.toml")
#: From pyproject.toml's classifiers.
PYTHONS = nox.project.python_versions(PYPROJECT)


#: The classifiers' Pythons this machine has: ``tests`` runs on each of them (at least the
#: first, which then fails if it is missing).
def _runs(version: str) -> bool:
    """Whether ``python{version}`` is on PATH and starts (a pyenv shim of a version that is not
    active is on PATH, and exits 127)."""
    found = shutil.which(f"python{version}")
    if found is None:
        return False
    done = subprocess.run([found, "-c", ""], capture_output=True, check=False)
    return done.returncode == 0


PYTHONS_HERE = [version for version in PYTHONS if _runs(version)] or PYTHONS[:1]
# A session asked for on an interpreter that is missing fails (`nox -s frameworks` without
# Python 3.11 is no pass); `tests` asks only for the ones this machine has.
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _no_venv(session: nox.Session) -> bool:
    return session.venv_backend == "none"


def install(session: nox.Session, *args: str) -> None:
    """``pip install`` into the session's venv; under ``--no-venv`` the image must have it all."""
    if _no_venv(session):
        session.log(f"--no-venv: not installing {' '.join(args)}; using what the interpreter has")
        return
    # The venv is the session's own, so its processes write bytecode even where the outer
    # environment says not to (PYTHONDONTWRITEBYTECODE=1, common in container images). The
    # suite starts many Python processes (xdist workers, CLI runs and their workers,
    # child pytests); without bytecode each one compiles the project's modules again. Measured
    # on a fresh checkout (2 cores, shared), CPU of `python -m pytest --crosscheck
    # examples/numpy_layer.py --crosscheck-max-examples 2`, a child pytest of the plugin's
    # tests: 2.97 and 2.97 s without bytecode, 2.74 and 2.66 s with it (once written).
    # (Under --no-venv the image's setting stands.)
    session.env["PYTHONDONTWRITEBYTECODE"] = None
    session.install(*args)


def pytest_args(session: nox.Session, *default: str) -> list[str]:
    return ["pytest", *default, *session.posargs]


#: BLAS and OpenMP pools of one thread (unless set already) where the suite runs a process per
#: core: a pool per process only oversubscribes the cores, and OpenBLAS's threads spin after
#: each call. At the suite's sizes the difference is within the noise: CPU of `pytest -n 2
#: tests/test_bounds.py tests/test_oracle.py -k "numpy or correct_implementations or
#: loop_reference"`, one thread then default, twice (2 cores, shared): 30.7 / 32.3 s, 34.9 /
#: 33.4 s.
ONE_THREAD_POOLS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


#: ``tests/test_sharded.py``'s environment: forced CPU devices, enough for 8x1, 1x8 and 4x2
#: meshes (the count is fixed when JAX starts, so the file runs in a pytest of its own).
MULTIDEVICE_ENV = {
    "JAX_NUM_CPU_DEVICES": "8",
    "JAX_PLATFORMS": "cpu",
    # The process has the devices itself: no child process needed.
    "CROSSCHECK_NO_SUBPROCESS": "1",
}

#: ``tests/test_multihost.py``'s environment: its multi-process cases (jax.distributed on
#: 127.0.0.1) run, on CPU devices.
MULTIHOST_ENV = {"CROSSCHECK_MULTIHOST": "1", "JAX_PLATFORMS": "cpu"}

#: The tests that ``MULTIDEVICE_ENV`` runs whole: in that process the child-process variant
#: would only repeat its 8-device cases.
IN_A_CHILD = "tests/test_sharded.py::test_multidevice_suite_in_subprocess"


@nox.session(python=PYTHONS_HERE)
def tests(session: nox.Session) -> None:
    """Every CPU test, Hypothesis 'ci' profile (derandomized), on every core: the sharded step
    on 8 forced CPU devices and the multi-process tests first, in a pytest of their own, then
    the rest (pytest's summary last). Extra args go to one pytest of the whole suite,
    as it runs without those environments (``-- -n 0`` for one process)."""
    install(session, "-e", ".[test]")
    pools = {name: os.environ.get(name, "1") for name in ONE_THREAD_POOLS}
    every_core = ("--hypothesis-profile=ci", "-n", "auto", "--dist", "worksteal")
    if session.posargs:
        session.run(*pytest_args(session, *every_core), env=pools)
        return
    # One pytest for both: a multi-process test mostly waits on the processes it starts (each
    # run under a time limit; the hung-process test waits ~30 s), and the other worker runs the
    # sharded step meanwhile. The launcher gives each process its own device count.
    many = ("tests/test_sharded.py", "tests/test_multihost.py", "--deselect", IN_A_CHILD)
    session.run("pytest", *every_core, *many, env={**pools, **MULTIDEVICE_ENV, **MULTIHOST_ENV})
    elsewhere = ("--ignore=tests/test_sharded.py", "--ignore=tests/test_multihost.py")
    # The frameworks' tests and the interpreted kernels run in nox -s frameworks, which
    # installs their extras: deselected here rather than skipped for a missing import.
    others = "not (torch or frameworks or kernels)"
    session.run("pytest", *every_core, *elsewhere, "-m", others, env=pools)


@nox.session(python="3.11", default=False)
def frameworks(session: nox.Session) -> None:
    """PyTorch, tinygrad, Equinox/optax and Flax examples, adapters, tests (torch: CPU wheel);
    the Pallas and Triton kernels, interpreted."""
    install(session, "-e", ".[test,torch,tinygrad,equinox,flax,pallas,triton]")
    markers = "torch or frameworks or kernels"
    every_core = ("-n", "auto", "--dist", "worksteal")
    pools = {name: os.environ.get(name, "1") for name in ONE_THREAD_POOLS}
    session.run(
        *pytest_args(session, "--hypothesis-profile=ci", "-m", markers, "-rs", *every_core),
        env=pools,
    )


def lowest_versions(requirements: list[str]) -> list[str]:
    """``name>=X`` -> ``name==X`` for every requirement with a lower bound (pyproject's own)."""
    pinned = []
    for text in requirements:
        requirement = Requirement(text)
        lows = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if lows:
            pinned.append(f"{requirement.name}=={lows[0]}")
    return pinned


@nox.session(python=PYTHONS[0], default=False)
def tests_min(session: nox.Session) -> None:
    """The suite on the lowest dependency versions pyproject.toml admits."""
    project = PYPROJECT["project"]
    install(
        session,
        *lowest_versions(project["dependencies"] + project["optional-dependencies"]["test"]),
    )
    install(session, "--no-deps", "-e", ".")
    session.run(*pytest_args(session, "--hypothesis-profile=ci"))


@nox.session(python=PYTHONS[0], default=False)
def thorough(session: nox.Session) -> None:
    """The test suite with the 'thorough' Hypothesis profile (10x examples; nightly)."""
    install(session, "-e", ".[test]")
    session.run(*pytest_args(session, "--hypothesis-profile=thorough"))


@nox.session(python=PYTHONS[0], default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (step vs numpy/torch/jax.grad, oracle, throughput) into bench-results/."""
    # torch is the pinned CPU wheel of the `torch` extra (an unpinned torch pulls CUDA builds);
    # `bench` adds Equinox, Flax (section 7's families) and matplotlib for bench.png. Extra
    # args go to the harness.
    install(session, "-e", ".[bench]")
    session.run("python", "-m", "benchmarks.bench", *session.posargs)


@nox.session(python=PYTHONS[0], default=False)
def demo(session: nox.Session) -> None:
    """The seed walk-through: python -m verify."""
    install(session, "-e", ".")
    session.run("python", "-m", "verify")


@nox.session(python=PYTHONS[0], default=False)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import contracts (lint-imports)."""
    install(session, *nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contracts read the packages as installed: the project itself, without its deps.
    install(session, "--no-deps", "-e", ".")
    session.run("lint-imports")


@nox.session(python=None, default=False)
def docs(session: nox.Session) -> None:
    """The docs' sample outputs run again and written in; the site built strictly into site/.

    Every sample output of README.md and docs/ is run again, then the documentation site
    (mkdocs.yml) is built strictly: a warning, a broken internal link or anchor fails it. Extra
    args go to ``mkdocs build``.

    The samples (``scripts/docs_outputs.py``: the README's check, the notebooks, pytest, the
    precision audit, the Pallas and Triton kernels interpreted) took about 2 minutes together
    on a shared 2-core machine (each run's seconds: docs/generated/outputs.json). Under CI
    (``CI`` set) they are compared instead of written: a page that differs from what the tool
    prints today fails the session with a diff."""
    # python=None: the interpreter nox runs on, so the build is never skipped for a missing
    # Python. The project is installed: docs/hooks.py reads the lazy faces; the samples run
    # pytest's plugin and the Pallas and Triton kernels (the triton extra: CPU torch).
    install(
        session,
        "-e",
        ".[test,pallas,triton]",
        *nox.project.dependency_groups(PYPROJECT, "docs"),
    )
    compare = ["--check"] if os.environ.get("CI") else []
    session.run("python", "-m", "scripts.docs_outputs", *compare)
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},  # Material's notice about its successor, not ours
    )  # fmt: skip


@nox.session(python=PYTHONS[0], default=False)
def typecheck(session: nox.Session) -> None:
    """mypy over reference/ and verify/."""
    install(session, "-e", ".", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", *session.posargs)


# --------------------------------------------------------------------------------------------
# Many devices and accelerators (issue 5).
# --------------------------------------------------------------------------------------------

#: ``nox -s gpu``'s JAX extra; ``CROSSCHECK_JAX_EXTRA=cuda13 nox -s gpu`` picks another.
GPU_EXTRA_DEFAULT = "cuda12"


def require_platform(session: nox.Session, platform: str, label: str) -> None:
    """Abort the session with a one-line reason unless JAX sees a ``platform`` device."""
    answer = session.run(
        "python",
        os.path.join("scripts", "require_platform.py"),
        platform,
        label,
        env={"JAX_PLATFORMS": platform},
        silent=True,
        success_codes=[0, 3],  # 3: ExitCode.INCOMPLETE, the platform is missing
    )
    line = (str(answer or "").strip().splitlines() or ["no answer from the platform probe"])[-1]
    if not line.startswith("OK "):
        session.error(line)
    session.log(f"{label}: {line[3:]}")


def run_oracle_self_test(session: nox.Session, env: dict[str, str]) -> None:
    """``python -m verify check reference`` and ``check verify``: the oracle on the device."""
    for spec in ("reference", "verify"):
        session.run("python", "-m", "verify", "check", spec, env=env)


def accelerator_session(session: nox.Session, platform: str, label: str, extra: str) -> None:
    """Install JAX for ``platform``, insist on a device, run tests, oracle and precision audit."""
    install(session, "-e", ".[test]", f"jax[{extra}]")
    require_platform(session, platform, label)
    # Pinned: without JAX_PLATFORMS, JAX silently falls back to CPU when the device is missing.
    env = {"JAX_PLATFORMS": platform}
    session.run(*pytest_args(session, "--hypothesis-profile=ci"), env=env)
    run_oracle_self_test(session, env)
    session.run("python", "-m", "verify", "precision", env=env)


@nox.session(python=PYTHONS[0], default=False)
def multidevice(session: nox.Session) -> None:
    """Sharded step on 8 forced CPU devices (DP, MP, 2-D meshes); extra args go to pytest.
    (``tests`` runs these too.)"""
    install(session, "-e", ".[test]")
    tests = pytest_args(session, "--hypothesis-profile=ci", "tests/test_sharded.py")
    session.run(*tests, env=MULTIDEVICE_ENV)


@nox.session(python=PYTHONS[0], default=False)
def multihost(session: nox.Session) -> None:
    """Sharded step across local processes (jax.distributed, 127.0.0.1 only): 2x2, 2x4, 4x2
    (``tests`` runs these tests too), then the 512^3 exact check across 2 processes, timed."""
    install(session, "-e", ".[test]")
    # Each launcher run in the tests has a hard limit (its --timeout and a subprocess timeout).
    env = MULTIHOST_ENV
    tests = pytest_args(session, "--hypothesis-profile=ci", "tests/test_multihost.py")
    session.run(*tests, env=env)
    # The headline check, timed: 2 processes x 2 devices, exact mode at 512^3.
    session.run(
        "python", "-m", "verify", "multihost", "--processes", "2", "--devices-per-process", "2",
        "--timeout", "300", "--", "--exact", "--size", "512", env=env,
    )  # fmt: skip


@nox.session(python=PYTHONS[0], default=False)
def gpu(session: nox.Session) -> None:
    """Tests, oracle self-test, precision audit on an NVIDIA GPU; fails if JAX sees none."""
    extra = os.environ.get("CROSSCHECK_JAX_EXTRA", GPU_EXTRA_DEFAULT)
    if extra not in ("cuda12", "cuda13"):
        session.error(
            f"CROSSCHECK_JAX_EXTRA must be cuda12 or cuda13 for nox -s gpu, got {extra!r}"
        )
    accelerator_session(session, "cuda", "GPU", extra)


@nox.session(python=PYTHONS[0], default=False)
def tpu(session: nox.Session) -> None:
    """Tests, oracle self-test, precision audit on a TPU; fails if JAX sees none."""
    accelerator_session(session, "tpu", "TPU", "tpu")


@nox.session(python=PYTHONS[0], default=False)
def check(session: nox.Session) -> None:
    """Check an implementation: nox -s check -- SPEC [--max-examples N] [--dtype ...] [...]."""
    if not session.posargs:
        session.error("usage: nox -s check -- SPEC [options]  (python -m verify check --help)")
    install(session, "-e", ".")
    session.run("python", "-m", "verify", "check", *session.posargs)
