"""Development sessions: ``nox`` runs tests, lint and types; ``nox -s bench`` the benchmarks.

Every session installs what it needs into its own virtual environment under ``.nox/``,
using the interpreter nox itself runs on, so ``python3 -m venv .venv && .venv/bin/pip
install nox && .venv/bin/nox`` works on a fresh machine.  Arguments after ``--`` go to
the tool (``nox -s tests -- -k quickstart -x``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.sessions = ["tests", "lint", "types"]
# Locally, keep session environments between runs; CI always starts clean.
nox.options.reuse_venv = "no" if os.environ.get("CI") else "yes"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
CORE = "./stepframe-core"
DOCKER = "./stepframe-docker"
BENCHMARKS = ["cli_startup.py", "cli_config.py", "cached_rerun.py", "fanout.py", "big_artifact.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """The core's own tests and the cross-package tests in tests/, against an installed core."""
    # A regular (not editable) install: the tests see the package as users get it,
    # entry points and all.
    session.install(f"{CORE}[numpy]", "pytest")
    session.run(
        "pytest",
        # Test files in different folders may share a name (tests/test_imports.py and
        # stepframe-core/tests/test_imports.py); importlib mode keeps them apart.
        "--import-mode=importlib",
        # Test ids relative to the repository, not to the first package's pyproject.toml.
        "--rootdir=.",
        "stepframe-core/tests",
        "tests",
        *session.posargs,
    )


@nox.session
def integration(session: nox.Session) -> None:
    """The docker plugin's tests against a real Docker engine and registry.

    Not a default session: it needs the engine, the registry on 127.0.0.1:5000 and the
    local base image that ``bash .ci/services.sh`` starts and builds.  With
    STEPFRAME_REQUIRE_DOCKER=1 a missing engine fails the tests instead of skipping them.
    """
    session.install(CORE, DOCKER, "pytest")
    session.run(
        "pytest",
        "--import-mode=importlib",
        "--rootdir=.",
        "stepframe-docker/tests",
        *session.posargs,
        env={"STEPFRAME_REQUIRE_DOCKER": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff over every Python file in the repository (settings in ruff.toml)."""
    session.install("ruff")
    session.run("ruff", "check", *(session.posargs or ["."]))


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over the core's public API (settings in mypy.ini)."""
    # The core and its optional numpy dependency bring the libraries whose types it uses.
    session.install(f"{CORE}[numpy]", "mypy")
    session.run("mypy", "--strict", "stepframe-core/src/stepframe", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in bench/; each prints its figures (not a pass/fail test)."""
    # With the first-party plugins installed, as the targets are stated.
    plugins = [f"./{p}" for p in ("stepframe-docker", "stepframe-aws") if (ROOT / p).is_dir()]
    session.install(CORE, *plugins)
    names = session.posargs or BENCHMARKS
    for name in names:
        session.run("python", str(Path("bench") / name))
