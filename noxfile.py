"""Development sessions: ``nox`` runs tests, lint and types; ``nox -s bench`` the benchmarks.

Every session installs what it needs into its own virtual environment under ``.nox/``,
using the interpreter nox itself runs on, so ``python3 -m venv .venv && .venv/bin/pip
install nox && .venv/bin/nox`` works on a fresh machine.  Arguments after ``--`` go to
the tool (``nox -s tests -- -k quickstart -x``).
"""

from __future__ import annotations

import os
import shutil
import zipfile
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
# pytest as every session runs it.  importlib mode: test files in different folders may share
# a name (tests/test_imports.py and stepframe-core/tests/test_imports.py).  Test ids relative
# to the repository, not to the first package's pyproject.toml.  A test still running after
# five minutes is hung: pytest-timeout stops it, with a traceback of every thread.
PYTEST = ("pytest", "--import-mode=importlib", "--rootdir=.", "--timeout=300")
# Every session installs its test tools at the versions pinned there (moto above all).
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
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
    """mypy over all the code (tools/check_types.py: every distribution, the example plugin,
    bench/, tools/ and this file --strict, the tests with check_untyped_defs), then the
    typing cases of tests/typing (a user's mypy checks step and pipeline calls)."""
    # Every distribution and the example plugin, so that mypy sees the types of what the
    # checked code imports: the core with the extras it types against (numpy; `testing`
    # brings pytest for the conformance kit), stepframe-aws with stepframe-docker, boto3 and
    # docker (typed by types-docker; its `local` extra, the SageMaker SDK, is left out:
    # untyped, mypy.ini ignores it); the tests' tools and nox, which this file imports.
    distributions = sorted(
        str(project.parent)
        for project in ROOT.glob("*/pyproject.toml")
        if project.parent.name != "stepframe-core"
    )
    session.install(
        f"{CORE}[numpy,testing]",
        *distributions,
        "./examples/plugins/stepframe-policy",
        "pytest",
        "pytest-timeout",
        "moto",
        "tomlkit",
        "nox",
        "mypy",
        "types-docker",
        *CONSTRAINTS,
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
    session.install("tomlkit", *CONSTRAINTS)
    session.run("python", "tools/bump_version.py", *session.posargs)


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


# ---- release artefacts: `nox -s wheels` -------------------------------------------------
# Every distribution, built as a user gets it, then each plugin installed alone from the
# wheel folder into a fresh environment: it must bring the core (and stepframe-docker) from
# the folder, list exactly its plugins and pass its conformance-kit tests there.
RELEASED = {
    "stepframe-core": CORE,
    "stepframe-docker": DOCKER,
    "stepframe-aws": AWS,
    "stepframe-policy": "./examples/plugins/stepframe-policy",
}
# Each plugin: the test tools its kit tests need besides pytest, and those tests (the
# plugin's own conformance tests from this checkout, run against the installed wheel).
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
}


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every distribution's sdist and wheel, then install each plugin alone from them.

    Not a default session: stepframe-docker's kit needs the services of ``bash
    .ci/services.sh`` (`.ci/run` runs it after them).  ``nox -s wheels -- stepframe-aws``
    checks one plugin.
    """
    session.install("build", "hatchling", "pytest", "pytest-timeout", *CONSTRAINTS)
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
    session.run(*pip, "pytest", "pytest-timeout", *tools, *CONSTRAINTS, external=True)
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
        },
    )


def _third_party_requirements(dist: Path, target: str) -> list[str]:
    """The Requires-Dist lines (markers kept) of ``target``'s wheel and of the first-party
    wheels it requires, in turn, leaving out the first-party ones and the extras'."""
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
