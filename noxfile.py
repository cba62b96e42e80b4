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
nox.options.sessions = [
    "tests",
    "lint",
    "types",
    # Plugin combinations (below): the example plugin alone, and every plugin together.
    "core_plugins",
    "plugin_combinations(combination='everything_plugins')",
]
# Locally, keep session environments between runs; CI always starts clean.
nox.options.reuse_venv = "no" if os.environ.get("CI") else "yes"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent
CORE = "./stepframe-core"
DOCKER = "./stepframe-docker"
AWS = "./stepframe-aws"
# Put first on PATH for SageMaker local mode's tests: runs Compose on the host network.
COMPOSE_WRAPPER = ROOT / "stepframe-aws" / "tests" / "integration" / "bin"
BENCHMARKS = [
    "cli_startup.py",
    "cli_config.py",
    "cached_rerun.py",
    "fanout.py",
    "big_artifact.py",
    "sagemaker_dispatch.py",
]


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
        # The crash matrix has a session of its own (`crash`): it needs Docker and root.
        "--ignore=tests/crash",
        *session.posargs,
    )


@nox.session
def integration(session: nox.Session) -> None:
    """The docker plugin's tests against a real Docker engine and registry; then integration_aws.

    Not a default session: it needs the engine, the registry on 127.0.0.1:5000, the local
    base image and docker-compose that ``bash .ci/services.sh`` installs, starts and
    builds.  With STEPFRAME_REQUIRE_DOCKER=1 anything missing fails the tests instead of
    skipping them.
    """
    # Queued first, so it runs even when these tests fail.
    session.notify("integration_aws", session.posargs)
    session.install(CORE, DOCKER, "pytest", "bcrypt")
    session.run(
        "pytest",
        "--import-mode=importlib",
        "--rootdir=.",
        "stepframe-docker/tests",
        *session.posargs,
        env={"STEPFRAME_REQUIRE_DOCKER": "1"},
    )


@nox.session
def integration_aws(session: nox.Session) -> None:
    """SageMaker local mode: steps in stepframe-docker images, run by the SDK, on moto's S3.

    stepframe-aws with the SageMaker SDK (the ``local`` extra) runs steps in containers
    stepframe-docker built, through Docker Compose, with artifacts on moto's S3.  A session
    of its own: with stepframe-aws installed, the docker plugin's images would hold it too,
    and the docker tests test the docker plugin alone.  Same services as `integration`
    (which queues this one); the compose wrapper goes first on PATH.
    """
    # hatchling: the image builder builds the plugins' wheels without an isolated build
    # environment, so no index is needed (the AWS tests set a dead proxy).
    session.install(
        f"{CORE}[testing]", DOCKER, f"{AWS}[local]", "moto[server]", "hatchling", "pytest"
    )
    path = os.pathsep.join([str(COMPOSE_WRAPPER), os.environ.get("PATH", "")])
    session.run(
        "pytest",
        "--import-mode=importlib",
        "--rootdir=.",
        "stepframe-aws/tests/integration",
        *session.posargs,
        env={"STEPFRAME_REQUIRE_DOCKER": "1", "PATH": path},
    )


@nox.session
def crash(session: nox.Session) -> None:
    """The crash-consistency matrix (tests/crash): the orchestrator killed at each boundary
    of a job's life, on the local and the docker operator, and full disks, then resumed.

    Not a default session: it needs what `integration` needs (``bash .ci/services.sh``)
    and root, to mount the small disks it fills.  The cases run in parallel (they wait on
    processes far more than they compute); the table of cases is printed at the end.
    """
    session.install(CORE, DOCKER, "pytest", "pytest-xdist")
    session.run(
        "pytest",
        "--import-mode=importlib",
        "--rootdir=.",
        "--numprocesses=3",
        "tests/crash",
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
    """mypy --strict over the core's public API and stepframe-aws (settings in mypy.ini)."""
    # The core and its optional numpy dependency bring the libraries whose types it uses;
    # `testing` brings pytest, which the conformance kit (stepframe.testing) imports.
    # stepframe-aws brings stepframe-docker, boto3 and docker (typed by types-docker);
    # its `local` extra (the SageMaker SDK) is left out: imported in one module only.
    session.install(f"{CORE}[numpy,testing]", DOCKER, AWS, "mypy", "types-docker")
    session.run(
        "mypy",
        "--strict",
        "stepframe-core/src/stepframe",
        "stepframe-aws/src/stepframe_aws",
        *session.posargs,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in bench/; each prints its figures (not a pass/fail test)."""
    # With the first-party plugins installed, as the targets are stated.
    plugins = [f"./{p}" for p in ("stepframe-docker", "stepframe-aws") if (ROOT / p).is_dir()]
    # moto's server stands in for AWS in sagemaker_dispatch.py.
    session.install(CORE, *plugins, "moto[server]")
    names = session.posargs or BENCHMARKS
    for name in names:
        session.run("python", str(Path("bench") / name))


# ---- plugin combinations ---------------------------------------------------------------
# Each session installs exactly one combination of distributions into a fresh environment
# and runs what that combination must pass: the tests of every distribution in it, the
# cross-package tests in tests/ (among them a smoke test that imports every installed
# plugin and checks `stepframe plugins` lists each one without a warning), and so the
# core's own tests with every plugin of the combination installed, which shows the
# plugins do not change the core's behaviour.  `stepframe plugins` is run on its own too,
# for the log.
#
# Each distribution: what to install, its tests.  The first-party plugins join a
# combination only when their pyproject.toml exists at session time: `everything*` leave
# out the missing ones, the others are skipped, saying so.
PLUGIN_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "core": (f"{CORE}[numpy,testing]", "stepframe-core/tests"),
    "policy": ("./examples/plugins/stepframe-policy", "examples/plugins/stepframe-policy/tests"),
    "docker": (DOCKER, "stepframe-docker/tests"),
    "aws": (AWS, "stepframe-aws/tests"),
}
# What else a distribution needs installed: stepframe-aws requires stepframe-docker, which
# comes from this checkout (it is on no index); its tests take AWS to be moto's server.
ALSO_INSTALL: dict[str, tuple[str, ...]] = {
    "aws": (DOCKER, "moto[server]"),
}
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "core": ("core",),
    "core_plugins": ("core", "policy"),
    # The hooks for the first-party plugins (run by `nox -s plugin_combinations`):
    "core_docker": ("core", "docker"),
    "core_aws": ("core", "aws"),
    "everything": ("core", "docker", "aws"),
    "everything_plugins": ("core", "docker", "aws", "policy"),
}


def _run_combination(session: nox.Session, name: str) -> None:
    wanted = COMBINATIONS[name]
    missing = [
        part
        for part in wanted
        if not (ROOT / PLUGIN_DISTRIBUTIONS[part][0].split("[")[0] / "pyproject.toml").is_file()
    ]
    if missing and not name.startswith("everything"):
        session.skip(f"{name}: no pyproject.toml yet for {', '.join(missing)}")
    if missing:
        session.log(f"{name}: leaving out {', '.join(missing)} (no pyproject.toml yet)")
        wanted = tuple(part for part in wanted if part not in missing)
    also = [r for part in wanted for r in ALSO_INSTALL.get(part, ())]
    installs = [PLUGIN_DISTRIBUTIONS[part][0] for part in wanted]
    session.install(*installs, *(r for r in dict.fromkeys(also) if r not in installs), "pytest")
    session.run("stepframe", "plugins")
    folders = [PLUGIN_DISTRIBUTIONS[part][1] for part in wanted]
    # Tests that need outside services (a Docker engine and registry) have sessions of
    # their own (`integration`); here they would only skip, or fail on a half-set-up host.
    ignore = [f"--ignore={folder}/integration" for folder in folders] + ["--ignore=tests/crash"]
    session.run(
        "pytest",
        "--import-mode=importlib",
        "--rootdir=.",
        *ignore,
        *folders,
        "tests",
        *session.posargs,
    )


@nox.session(reuse_venv=False)
def core(session: nox.Session) -> None:
    """stepframe-core alone: its tests, the cross-package tests and the plugin smoke test."""
    _run_combination(session, "core")


@nox.session(reuse_venv=False)
def core_plugins(session: nox.Session) -> None:
    """stepframe-core with the example plugin (examples/plugins/stepframe-policy)."""
    _run_combination(session, "core_plugins")


@nox.session(reuse_venv=False)
@nox.parametrize("combination", ["core_docker", "core_aws", "everything", "everything_plugins"])
def plugin_combinations(session: nox.Session, combination: str) -> None:
    """The first-party plugins' combinations; skipped while a plugin does not exist yet."""
    _run_combination(session, combination)
