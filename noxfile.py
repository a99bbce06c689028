"""nox sessions for crosscheck (``nox -l`` lists them; ``nox`` alone runs ``tests``).

Every session also runs with ``nox --no-venv -s NAME`` on an image that already has JAX and the
test tools installed (no network needed): installs are skipped, the current interpreter is used.
"""

from __future__ import annotations

import os

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
# A missing interpreter is skipped, not an error, even under CI=true (where nox would
# otherwise default to failing).
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _no_venv(session: nox.Session) -> bool:
    return session.venv_backend == "none"


def install(session: nox.Session, *args: str) -> None:
    """``pip install`` into the session's venv; under ``--no-venv`` the image must have it all."""
    if _no_venv(session):
        session.log(f"--no-venv: not installing {' '.join(args)}; using what the interpreter has")
        return
    session.install(*args)


def pytest_args(session: nox.Session, *default: str) -> list[str]:
    return ["pytest", *default, *session.posargs]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """CPU test suite, Hypothesis 'ci' profile (derandomized); extra args go to pytest."""
    install(session, "-e", ".[test]")
    session.run(*pytest_args(session, "--hypothesis-profile=ci"))


@nox.session(python=PYTHONS[0], default=False)
def thorough(session: nox.Session) -> None:
    """The test suite with the 'thorough' Hypothesis profile (10x examples; nightly)."""
    install(session, "-e", ".[test]")
    session.run(*pytest_args(session, "--hypothesis-profile=thorough"))


@nox.session(python=PYTHONS[0], default=False)
def demo(session: nox.Session) -> None:
    """The seed walk-through: python -m verify."""
    install(session, "-e", ".")
    session.run("python", "-m", "verify")


@nox.session(python=PYTHONS[0], default=False)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install(session, "ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0], default=False)
def typecheck(session: nox.Session) -> None:
    """mypy over reference/ and verify/."""
    install(session, "-e", ".[typecheck]")
    session.run("mypy", *session.posargs)
