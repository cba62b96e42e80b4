"""Development sessions: ``nox`` runs tests, lint and types; ``nox -s bench`` the benchmarks.

Every session installs what it needs into its own virtual environment under ``.nox/``,
using the interpreter nox itself runs on, so ``python3 -m venv .venv && .venv/bin/pip
install nox && .venv/bin/nox`` works on a fresh machine.  Arguments after ``--`` go to
the tool (``nox -s tests -- -k quickstart -x``).

The core's suite runs once, in `tests`, measured for coverage; the plugin combinations
run each plugin's tests and the cross-package tests in tests/ against that combination.
`tests_python` runs the core's suite on every other Python the distributions declare
(3.10, 3.12, 3.13) that this machine has; `.ci/run` runs it, and the sessions that
need services (`integration`, `gcp`, `azure`, `crash`, `wheels`), several at once.  Test
tools are pinned by constraints.txt.

Environments are made and filled by uv when it is installed next to nox (``pip install
nox uv``, as the README says): the same packages as pip would install, in seconds instead
of half a minute per session; without uv, by virtualenv and pip.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from collections.abc import Sequence
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
# uv when nox finds it (installed beside nox), else virtualenv with pip: see _install.
nox.options.default_venv_backend = "uv|virtualenv"

ROOT = Path(__file__).resolve().parent
CORE = "./stepframe-core"
DOCKER = "./stepframe-docker"
AWS = "./stepframe-aws"
GCP = "./stepframe-gcp"
AZURE = "./stepframe-azure"
# pytest as every session runs it.  importlib mode: test files in different folders may share
# a name (tests/test_imports.py and stepframe-core/tests/test_imports.py).  Test ids relative
# to the repository, not to the first package's pyproject.toml.  A test still running after
# five minutes is hung: pytest-timeout stops it, with a traceback of every thread (the
# sessions that build images allow more).  The ten slowest tests are listed at the end, for
# whoever works on CI's time next.
PYTEST = ("pytest", "--import-mode=importlib", "--rootdir=.", "--timeout=300", "--durations=10")
# The suites run in parallel: their tests mostly wait on the processes they start, so four
# workers keep two cores busy.  A file's tests stay together, in their order, on one
# worker: some rely on what an earlier test of their file imported (numpy, which refuses
# a second import, is imported outside the kit tests' inner pytest runs that way).
PARALLEL = ("--numprocesses=4", "--dist=loadfile")
PYTEST_TOOLS = ("pytest", "pytest-timeout", "pytest-xdist")
# Every session installs its test tools at the versions pinned there (moto above all).
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
# The distributions of this repository, which uv must build afresh from the checkout: it
# would otherwise reuse a build it cached while their pyproject.toml was unchanged.
FIRST_PARTY = (
    "stepframe-core",
    "stepframe-docker",
    "stepframe-aws",
    "stepframe-gcp",
    "stepframe-azure",
    "stepframe-policy",
)


def _install(session: nox.Session, *requirements: str) -> None:
    """``session.install`` with the pinned test tools (constraints.txt).  Under uv, each
    first-party distribution is rebuilt from the checkout, and pip goes in too: uv makes
    environments without it, and the image builder and some tests run ``python -m pip``.

    Under uv, modules are compiled to bytecode as they are installed, as pip does: uv
    leaves that to the first import, and where PYTHONDONTWRITEBYTECODE is set (it is on
    these machines) no import ever caches it, so each of the hundreds of processes the
    tests start compiled everything it imported again (`stepframe plugins` 0.26 s instead
    of 0.11 s; with coverage measuring it, 0.6 s instead of 0.25 s).
    """
    extra: list[str] = []
    if session.venv_backend == "uv":
        extra += ["pip", "--compile-bytecode"]
        for name in FIRST_PARTY:
            extra += ["--refresh-package", name]
    session.install(*requirements, *CONSTRAINTS, *extra)


# Line coverage of each distribution's package, in the session that runs its tests, and
# the floor under which that session fails (settings in .coveragerc).  Measured on
# 2026-12-06 by `coverage report --include='*/PACKAGE/*' --format=total` after each
# session: stepframe 90 % (`tests`), stepframe_aws 88 % (everything_plugins),
# stepframe_policy 92 % (core_plugins), stepframe_docker 87 % (`integration`, with an
# engine; 56 % from its unit tests alone); stepframe_gcp 91 % (`gcp`) and stepframe_azure
# 94 % (`azure`, while its plugin was being written: a floor with more room), both in
# .ci/run from a fresh clone at 2026-12-06 10:00 UTC.
# The floors sit a little below, so an untested addition shows, not a rounding.  Raise them
# as tests are added.
COVERAGE_FLOORS = {
    "stepframe": 88,
    "stepframe_docker": 85,
    "stepframe_aws": 86,
    "stepframe_policy": 90,
    "stepframe_gcp": 89,
    "stepframe_azure": 88,
}
# The Pythons the distributions declare (requires-python = ">=3.10"), up to the newest
# released; `tests` runs on nox's own, `tests_python` on each other one this machine has.
DECLARED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
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


# docs/plugins.md's tutorial plugin, installed and put through the kit (see _run_combination).
TUTORIAL_TEST = (
    "tests/test_docs.py::test_the_tutorial_plugin_installs_passes_the_kit_and_runs_a_step"
)
# The core's suite: its own tests and the cross-package ones.  The crash matrix has a
# session of its own (`crash`): it needs Docker and root.
CORE_SUITE = ("stepframe-core/tests", "tests", "--ignore=tests/crash")


@nox.session
def tests(session: nox.Session) -> None:
    """The core's own tests and the cross-package tests in tests/, against an installed core;
    the core's coverage must stay above its floor."""
    # A regular (not editable) install: the tests see the package as users get it,
    # entry points and all.
    _install(session, f"{CORE}[numpy]", *PYTEST_TOOLS, "coverage")
    _pytest(session, *PARALLEL, *CORE_SUITE, measure=["stepframe"])


def _pythons_on_this_machine() -> list[str]:
    """The declared Pythons found here: on PATH, or installed by pyenv.

    pyenv's shims run only the versions PYENV_VERSION (or its global setting) names, so
    when it is unset this names every one found, the global one first: ``python3`` stays
    what it was.
    """
    pyenv = {}
    for version in DECLARED_PYTHONS:
        installed = [
            folder.name
            for folder in (PYENV_ROOT / "versions").glob(f"{version}.*")
            if (folder / "bin" / f"python{version}").is_file()
        ]
        if installed:
            pyenv[version] = max(installed, key=lambda name: [int(n) for n in name.split(".")])
    global_setting = PYENV_ROOT / "version"
    if pyenv and "PYENV_VERSION" not in os.environ and global_setting.is_file():
        first = global_setting.read_text().split()[:1]
        os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*first, *pyenv.values()]))
    return [v for v in DECLARED_PYTHONS if v in pyenv or shutil.which(f"python{v}")]


NOX_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Every declared Python found here but nox's own (`tests` runs on it, and so does every
# other session).
OTHER_PYTHONS = [v for v in _pythons_on_this_machine() if v != NOX_PYTHON]


@nox.session(python=OTHER_PYTHONS or False)
def tests_python(session: nox.Session) -> None:
    """The core's suite (as `tests`, without coverage) on each other declared Python here."""
    if not OTHER_PYTHONS:
        session.skip(f"no Python but {NOX_PYTHON} among {', '.join(DECLARED_PYTHONS)} here")
    _install(session, f"{CORE}[numpy]", *PYTEST_TOOLS)
    _pytest(session, *PARALLEL, *CORE_SUITE)


def _pytest(
    session: nox.Session,
    *args: str,
    measure: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> None:
    """pytest with the session's arguments; under coverage when ``measure`` names packages,
    each of which then must reach its floor (unless arguments after ``--`` chose tests)."""
    if not measure:
        session.run(*PYTEST, *args, *session.posargs, env=env)
        return
    data = Path(session.create_tmp()) / "coverage" / ".coverage"
    shutil.rmtree(data.parent, ignore_errors=True)
    data.parent.mkdir(parents=True)
    env = {**(env or {}), "COVERAGE_FILE": str(data), "COVERAGE_RCFILE": str(ROOT / ".coveragerc")}
    session.run("coverage", "run", "-m", *PYTEST, *args, *session.posargs, env=env)
    session.run("coverage", "combine", "--quiet", env=env)
    for package in measure:
        floor = [] if session.posargs else [f"--fail-under={COVERAGE_FLOORS[package]}"]
        session.log(f"coverage of {package} (floor {COVERAGE_FLOORS[package]} %):")
        session.run(
            "coverage", "report", f"--include=*/{package}/*", "--format=total", *floor, env=env
        )


# A test that builds images may take longer than the default five minutes on a cold cache.
IMAGE_BUILD_TIMEOUT = "--timeout=900"


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
    _install(session, CORE, DOCKER, *PYTEST_TOOLS, "coverage", "bcrypt")
    # The docker plugin's coverage is measured here, where its code meets an engine.
    _pytest(
        session,
        IMAGE_BUILD_TIMEOUT,
        "stepframe-docker/tests",
        env={"STEPFRAME_REQUIRE_DOCKER": "1"},
        measure=["stepframe_docker"],
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
    _install(
        session,
        f"{CORE}[testing]",
        DOCKER,
        f"{AWS}[local]",
        "moto[server]",
        "hatchling",
        *PYTEST_TOOLS,
    )
    path = os.pathsep.join([str(COMPOSE_WRAPPER), os.environ.get("PATH", "")])
    _pytest(
        session,
        IMAGE_BUILD_TIMEOUT,
        "stepframe-aws/tests/integration",
        env={"STEPFRAME_REQUIRE_DOCKER": "1", "PATH": path},
    )


@nox.session
def gcp(session: nox.Session) -> None:
    """stepframe-gcp (issue 15): its tests against fake-gcs-server (started by the tests on
    127.0.0.1 from the binary in its PyPI wheel), a loopback OAuth2 token service and, for
    the Vertex AI tests, the Docker engine and registry of ``bash .ci/services.sh``.

    Not a default session (it needs those services): `.ci/run` runs it after them.  The
    plugin's coverage is measured here, where its tests run (the plugin combinations
    install it without running them again).
    """
    _install(
        session, f"{CORE}[numpy,testing]", DOCKER, f"{GCP}[test]", "hatchling", "coverage",
        *PYTEST_TOOLS,
    )  # fmt: skip
    _pytest(
        session,
        IMAGE_BUILD_TIMEOUT,
        "stepframe-gcp/tests",
        env={"STEPFRAME_REQUIRE_DOCKER": "1"},
        measure=["stepframe_gcp"],
    )


@nox.session
def azure(session: nox.Session) -> None:
    """stepframe-azure (issue 16): its tests against Azurite (the Blob Storage emulator that
    ``bash .ci/services.sh`` installs with npm), loopback stand-ins for Entra ID and Azure
    Machine Learning, and the Docker engine and registry of ``bash .ci/services.sh``.

    Not a default session (it needs those services): `.ci/run` runs it after them.  With
    STEPFRAME_REQUIRE_AZURITE=1 (set here, as STEPFRAME_REQUIRE_DOCKER is) a missing
    Azurite fails the tests instead of skipping them.
    """
    _install(
        session, f"{CORE}[numpy,testing]", DOCKER, f"{AZURE}[test]", "hatchling", "coverage",
        *PYTEST_TOOLS,
    )  # fmt: skip
    _pytest(
        session,
        IMAGE_BUILD_TIMEOUT,
        *PARALLEL,
        "stepframe-azure/tests",
        env={"STEPFRAME_REQUIRE_DOCKER": "1", "STEPFRAME_REQUIRE_AZURITE": "1"},
        measure=["stepframe_azure"],
    )


@nox.session
def crash(session: nox.Session) -> None:
    """The crash-consistency matrix (tests/crash): the orchestrator killed at each boundary
    of a job's life, on the local and the docker operator, and full disks, then resumed.

    Not a default session: it needs what `integration` needs (``bash .ci/services.sh``)
    and root, to mount the small disks it fills.  The cases run in parallel (they wait on
    processes far more than they compute); the table of cases is printed at the end.
    """
    _install(session, CORE, DOCKER, *PYTEST_TOOLS)
    _pytest(
        session,
        IMAGE_BUILD_TIMEOUT,
        "--numprocesses=3",
        "tests/crash",
        env={"STEPFRAME_REQUIRE_DOCKER": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff's linter and formatter (check only) over every Python file (settings in ruff.toml)."""
    _install(session, "ruff")
    session.run("ruff", "check", *(session.posargs or ["."]))
    # The Python files only: the code blocks of the Markdown pages keep their own layout
    # (aligned comments, `...` bodies).
    session.run("ruff", "format", "--check", "--extend-exclude=*.md", *(session.posargs or ["."]))


@nox.session
def types(session: nox.Session) -> None:
    """mypy over all the code (tools/check_types.py: every distribution, the example plugin,
    bench/, tools/ and this file --strict, the tests with check_untyped_defs), then the
    typing cases of tests/typing (a user's mypy checks step and pipeline calls)."""
    # Every distribution and the example plugin, so that mypy sees the types of what the
    # checked code imports: the core with the extras it types against (numpy; `testing`
    # brings pytest for the conformance kit), stepframe-aws with stepframe-docker, boto3 and
    # docker (typed by types-docker; its `local` extra, the SageMaker SDK, is left out:
    # untyped, mypy.ini ignores it); each with its `test` extra, where it has one, for the
    # clients its tests import (azure-storage-blob, jsonschema); the tests' tools and nox,
    # which this file imports.
    distributions = sorted(
        f"{project.parent}[test]"
        for project in ROOT.glob("*/pyproject.toml")
        if project.parent.name != "stepframe-core"
    )
    _install(
        session,
        f"{CORE}[numpy,testing]",
        *distributions,
        "./examples/plugins/stepframe-policy",
        "pytest",
        "pytest-timeout",
        "moto",
        "tomlkit",
        "nox",
        "bcrypt",  # the registry login test's
        "mypy",
        "types-docker",
    )
    session.run("python", "tools/check_types.py", *session.posargs)
    session.run(*PYTEST, "stepframe-core/tests/test_typing.py")


@nox.session
def bump(session: nox.Session) -> None:
    """``nox -s bump -- X.Y.Z``: one new version for the core and every first-party plugin.

    Rewrites each one's ``__version__`` and the plugins' exact pins on each other
    (tools/bump_version.py; tests/test_versions.py checks they agree).
    """
    if len(session.posargs) != 1:
        session.error("give the new version after --: nox -s bump -- 0.2.0")
    _install(session, "tomlkit")
    session.run("python", "tools/bump_version.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in bench/; each prints its figures (not a pass/fail test)."""
    # With the first-party plugins installed, as the targets are stated.
    plugins = [f"./{p}" for p in ("stepframe-docker", "stepframe-aws") if (ROOT / p).is_dir()]
    # moto's server stands in for AWS in sagemaker_dispatch.py.
    _install(session, CORE, *plugins, "moto[server]")
    names = session.posargs or BENCHMARKS
    for name in names:
        session.run("python", str(Path("bench") / name))


# ---- plugin combinations ---------------------------------------------------------------
# Each session installs exactly one combination of distributions into a fresh environment
# and runs what that combination must pass: the tests of every plugin in it and the
# cross-package tests in tests/ (among them a smoke test that imports every installed
# plugin and checks `stepframe plugins` lists each one without a warning, the quickstart
# end to end and the import costs).  The core's own suite runs once, in `tests`: run again
# with plugins installed it found nothing the cross-package tests do not, at three times
# the cost.  Each plugin's coverage is measured where its tests run.  `stepframe plugins`
# is run on its own too, for the log.
#
# Each distribution: what to install, its tests.  The first-party plugins join a
# combination only when their pyproject.toml exists at session time: `everything*` leave
# out the missing ones, the others are skipped, saying so.
PLUGIN_DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "core": (f"{CORE}[numpy,testing]", ""),
    "policy": ("./examples/plugins/stepframe-policy", "examples/plugins/stepframe-policy/tests"),
    "docker": (DOCKER, "stepframe-docker/tests"),
    "aws": (AWS, "stepframe-aws/tests"),
    "gcp": (GCP, "stepframe-gcp/tests"),
    "azure": (AZURE, "stepframe-azure/tests"),
}
# What else a distribution needs installed: stepframe-aws requires stepframe-docker, which
# comes from this checkout (it is on no index); its tests take AWS to be moto's server.
# So do stepframe-gcp and stepframe-azure.
ALSO_INSTALL: dict[str, tuple[str, ...]] = {
    "aws": (DOCKER, "moto[server]"),
    "gcp": (DOCKER,),
    "azure": (DOCKER,),
}
PLUGIN_PACKAGES = {
    "policy": "stepframe_policy",
    "docker": "stepframe_docker",
    "aws": "stepframe_aws",
    "gcp": "stepframe_gcp",
    "azure": "stepframe_azure",
}
# Plugins whose tests need services most of them cannot skip (fake-gcs-server, Azurite,
# the Docker engine) run them in a session of their own, which requires those services
# and measures the plugin's coverage: a combination installs them, for the cross-package
# tests and the smoke test, without running their tests a second time.
TESTED_IN_OWN_SESSION = {"gcp": "gcp", "azure": "azure"}
COMBINATIONS: dict[str, tuple[str, ...]] = {
    "core": ("core",),
    "core_plugins": ("core", "policy"),
    # The hooks for the first-party plugins (run by `nox -s plugin_combinations`):
    "core_docker": ("core", "docker"),
    "core_aws": ("core", "aws"),
    "core_gcp": ("core", "gcp"),
    "core_azure": ("core", "azure"),
    "everything": ("core", "docker", "aws", "gcp", "azure"),
    "everything_plugins": ("core", "docker", "aws", "gcp", "azure", "policy"),
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
    _install(
        session,
        *installs,
        *(r for r in dict.fromkeys(also) if r not in installs),
        *PYTEST_TOOLS,
        "coverage",
    )
    session.run("stepframe", "plugins")
    plugins = [part for part in wanted if part != "core"]
    for part in plugins:
        if part in TESTED_IN_OWN_SESSION:
            own = TESTED_IN_OWN_SESSION[part]
            session.log(f"{part}: installed; its tests run in `nox -s {own}`")
    plugins = [part for part in plugins if part not in TESTED_IN_OWN_SESSION]
    folders = [PLUGIN_DISTRIBUTIONS[part][1] for part in plugins]
    # Tests that need outside services (a Docker engine and registry) have sessions of
    # their own (`integration`); here they would only skip, or fail on a half-set-up host.
    ignore = [f"--ignore={folder}/integration" for folder in folders] + ["--ignore=tests/crash"]
    # The docs' tutorial plugin runs the whole kit with only itself loaded
    # (STEPFRAME_LOAD_PLUGINS=nice): the same test whatever else is installed, and the
    # slowest of tests/ (~45 s); `tests` and `tests_python` run it.
    ignore.append(f"--deselect={TUTORIAL_TEST}")
    # stepframe-docker's coverage is measured in `integration`, with an engine.
    measure = [PLUGIN_PACKAGES[part] for part in plugins if part != "docker"]
    _pytest(session, *PARALLEL, *ignore, *folders, "tests", measure=measure)


@nox.session(reuse_venv=False)
def core(session: nox.Session) -> None:
    """stepframe-core alone: the cross-package tests and the plugin smoke test."""
    _run_combination(session, "core")


@nox.session(reuse_venv=False)
def core_plugins(session: nox.Session) -> None:
    """stepframe-core with the example plugin (examples/plugins/stepframe-policy)."""
    _run_combination(session, "core_plugins")


@nox.session(reuse_venv=False)
@nox.parametrize(
    "combination",
    ["core_docker", "core_aws", "core_gcp", "core_azure", "everything", "everything_plugins"],
)
def plugin_combinations(session: nox.Session, combination: str) -> None:
    """The first-party plugins' combinations; skipped while a plugin does not exist yet."""
    _run_combination(session, combination)


# ---- release artefacts: `nox -s wheels` -------------------------------------------------
# Every distribution, built as a user gets it, then each plugin installed alone from the
# wheel folder into a fresh environment: it must bring the core (and stepframe-docker) from
# the folder, list exactly its plugins and pass its conformance-kit tests there.
RELEASED = {
    "stepframe-core": CORE,
    "stepframe-docker": DOCKER,
    "stepframe-aws": AWS,
    "stepframe-policy": "./examples/plugins/stepframe-policy",
    "stepframe-gcp": GCP,
    "stepframe-azure": AZURE,
}
# Each plugin: the test tools its kit tests need besides pytest and its `test` extra, and
# those tests (the plugin's own conformance tests from this checkout, run against the
# installed wheel).
# stepframe-aws: the connector and S3 artifact-store suites, on moto's server (offline);
# its SageMaker operator has no kit suite that runs without SageMaker.  stepframe-docker:
# the image-builder and step-operator suites need the Docker engine and registry of
# `bash .ci/services.sh`.  stepframe-policy: its operator suites run on the local operator.
WHEEL_CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "stepframe-aws": (
        ("moto[server]",),
        (
            "stepframe-aws/tests/test_connector_suite.py",
            "stepframe-aws/tests/test_s3_store.py::TestS3StoreConformance",
        ),
    ),
    "stepframe-docker": ((), ("stepframe-docker/tests/integration/test_docker_conformance.py",)),
    "stepframe-policy": ((), ("examples/plugins/stepframe-policy/tests",)),
    # stepframe-gcp: the connector and Cloud Storage suites, on a loopback token service and
    # fake-gcs-server (its binary in a PyPI wheel); the Vertex AI operator suite needs more.
    "stepframe-gcp": (
        (),
        (
            "stepframe-gcp/tests/test_connector_suite.py",
            "stepframe-gcp/tests/test_gcs_store.py::TestGcsStoreConformance",
        ),
    ),
    # stepframe-azure: the connector suites, on a loopback Entra ID token service, and the
    # Blob Storage suite on Azurite (`bash .ci/services.sh` installs it).
    "stepframe-azure": (
        (),
        (
            "stepframe-azure/tests/test_connector_suite.py",
            "stepframe-azure/tests/test_blob_store.py::TestAzureBlobStoreConformance",
        ),
    ),
}


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every distribution's sdist and wheel, then install each plugin alone from them.

    Not a default session: stepframe-docker's kit needs the services of ``bash
    .ci/services.sh`` (`.ci/run` runs it after them).  ``nox -s wheels -- stepframe-aws``
    checks one plugin.
    """
    _install(session, "build", "hatchling", "pytest", "pytest-timeout")
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for folder in RELEASED.values():
        # `build` makes the sdist, then the wheel from the sdist: so the sdist is shown to
        # hold what a build needs.  Without isolation: the pinned hatchling installed above.
        session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), folder)
    session.run(*PYTEST, "tests/wheels/test_sdists.py", env={"STEPFRAME_DIST_DIR": str(dist)})
    for target in session.posargs or WHEEL_CHECKS:
        _install_alone_and_check(session, dist, target)


def _install_alone_and_check(session: nox.Session, dist: Path, target: str) -> None:
    tools, kit_tests = WHEEL_CHECKS[target]
    venv = Path(session.create_tmp()) / f"alone-{target}"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    pip = (python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet")
    # pip has no "--no-index for some packages only", so two steps.  First the third-party
    # requirements of the target and of the first-party wheels it needs, from the index...
    session.run(*pip, *_third_party_requirements(dist, target), *CONSTRAINTS, external=True)
    # ...then the target with no index at all: every first-party distribution can only come
    # from the folder (pip's report, checked by tests/wheels/test_installed.py, says which
    # it installed and from where; none of the machine's pip settings add another source).
    report = venv / "pip-report.json"
    session.run(
        *pip,
        "--no-index",
        "--find-links",
        str(dist),
        "--report",
        str(report),
        target,
        external=True,
        env={"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": str(dist)},
    )
    session.run(python, "-m", "pip", "check", external=True)
    # Before any test tool goes in (they bring packages of their own): every module imports
    # with only the declared dependencies installed.
    session.run(python, "tests/wheels/import_everything.py", external=True)
    session.run(python, "-m", "stepframe", "plugins", external=True)
    # The test tools: pytest, the check's own, and the third-party part of the target's
    # `test` extra (its kit tests' clients and services), as its pyproject.toml lists them.
    test_extra = _third_party_requirements(dist, target, extra="test")
    session.run(*pip, "pytest", "pytest-timeout", *tools, *test_extra, *CONSTRAINTS, external=True)
    session.run(
        python,
        "-m",
        *PYTEST,
        "tests/wheels/test_installed.py",
        *kit_tests,
        external=True,
        env={
            "STEPFRAME_DIST_DIR": str(dist),
            "STEPFRAME_WHEELS_TARGET": target,
            "STEPFRAME_WHEELS_REPORT": str(report),
            "STEPFRAME_REQUIRE_DOCKER": "1",
            "STEPFRAME_REQUIRE_AZURITE": "1",
        },
    )


def _third_party_requirements(dist: Path, target: str, extra: str | None = None) -> list[str]:
    """The Requires-Dist lines (markers kept) of ``target``'s wheel and of the first-party
    wheels it requires, in turn, leaving out the first-party ones and the extras'; with
    ``extra``, only the third-party requirements that extra of ``target`` adds."""
    from email.parser import HeaderParser

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    requires: dict[str, list[Requirement]] = {}
    for wheel in dist.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            fields = HeaderParser().parsestr(archive.read(info).decode())
        requires[canonicalize_name(fields["Name"])] = [
            Requirement(line) for line in fields.get_all("Requires-Dist") or ()
        ]
    third_party: list[str] = []
    if extra is not None:
        added = []
        for requirement in requires[canonicalize_name(target)]:
            marker = requirement.marker
            if marker is None or not marker.evaluate({"extra": extra}):
                continue
            if marker.evaluate({"extra": ""}) or canonicalize_name(requirement.name) in requires:
                continue
            requirement.marker = None  # `extra == "test"`: pip would leave it out
            added.append(str(requirement))
        return added
    wanted, seen = [canonicalize_name(target)], set()
    while wanted:
        name = wanted.pop()
        seen.add(name)
        for requirement in requires[name]:
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in requires:
                wanted += [] if dependency in seen else [dependency]
            elif str(requirement) not in third_party:
                third_party.append(str(requirement))
    return third_party
