"""Fixtures for tests that run real pipelines: a project folder, plugins, a run helper.

Pipelines whose steps run on the ``local`` operator are imported by module name in a
fresh Python process, so every test writes its pipeline to a real file in its own
project folder, under a module name no other test uses.

Helpers are handed out as fixtures, not imported, so the tests work under pytest's
``--import-mode=importlib`` (which the noxfile uses) as well as the default mode.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import stepframe
from stepframe._history.database import RunHistory
from stepframe._orchestrator.console import PlainConsole
from stepframe._orchestrator.run import RunResult, run_pipeline
from stepframe._pipeline.loader import _import_file, load_pipeline
from stepframe._pipeline.pipeline import Pipeline, PipelineSpec
from stepframe._project import Project

# Plugins installed in the test environment besides the core (stepframe-aws, the example
# plugin, ...) must not change what these tests see: load the core's own plugins only.
CORE_ONLY = {"STEPFRAME_LOAD_PLUGINS": ""}


class ProjectDir:
    """A project folder (the test's working directory) holding pipeline modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def write(self, source: str, name: str | None = None) -> Path:
        """Write a pipeline module under a unique module name; return its path."""
        name = name or f"pipe_{uuid.uuid4().hex[:10]}"
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        self.modules.append(name)
        return path

    def load(self, source: str, pipeline: str | None = None) -> Pipeline[...]:
        """Write ``source`` and load a pipeline from it, as ``stepframe run`` would."""
        path = self.write(source)
        return load_pipeline(f"{path}:{pipeline}" if pipeline else str(path))

    def module(self, source: str) -> ModuleType:
        """Write ``source`` and import it the way the pipeline loader does."""
        path = self.write(source)
        return _import_file(path)  # type: ignore[return-value]

    @property
    def state_dir(self) -> Path:
        return self.root / ".stepframe"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "runs.db"

    def history(self) -> RunHistory:
        return RunHistory(self.database_path)

    def run_rows(self) -> list[tuple[Any, ...]]:
        """Every row of the runs table (empty when there is no database at all)."""
        if not self.database_path.exists():
            return []
        import sqlite3

        with sqlite3.connect(self.database_path) as conn:
            return conn.execute("SELECT run_id, status FROM runs").fetchall()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectDir]:
    """A temporary project folder as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    # The loader puts the pipeline's folder on sys.path; undo that after the test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = ProjectDir(root)
    yield folder
    for name in folder.modules:
        sys.modules.pop(name, None)


@pytest.fixture
def make_plugins() -> Callable[..., stepframe.Plugins]:
    """Build an isolated plugin manager: the core's plugins plus ``(name, object)`` extras."""

    def make(*extra: tuple[str, object], env: Mapping[str, str] | None = None) -> stepframe.Plugins:
        return stepframe.load_plugins(extra=extra, env=CORE_ONLY if env is None else env)

    return make


@pytest.fixture
def plugins(make_plugins: Callable[..., stepframe.Plugins]) -> stepframe.Plugins:
    """An isolated plugin manager with the core's own plugins."""
    return make_plugins()


class Runner:
    """Runs a pipeline with given plugins in the project; keeps the console's output."""

    def __init__(self, project: ProjectDir, plugins: stepframe.Plugins) -> None:
        self.project = project
        self.plugins = plugins
        self.output = ""

    def __call__(
        self,
        target: Pipeline[...] | PipelineSpec,
        *,
        plugins: stepframe.Plugins | None = None,
        **options: Any,
    ) -> RunResult:
        spec = target.compile() if isinstance(target, Pipeline) else target
        stream = io.StringIO()
        try:
            return run_pipeline(
                spec,
                plugins=plugins or self.plugins,
                project=Project(self.project.root),
                console=PlainConsole(stream),
                **options,
            )
        finally:
            self.output = stream.getvalue()


@pytest.fixture
def run(project: ProjectDir, plugins: stepframe.Plugins) -> Runner:
    """``run(pipeline_or_spec, **options)`` runs it; ``run.output`` is what it printed."""
    return Runner(project, plugins)


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **CORE_ONLY, "PYTHONUNBUFFERED": "1", **extra}
    env.pop("COLUMNS", None)
    return env


@pytest.fixture
def subprocess_env() -> Callable[..., dict[str, str]]:
    """``subprocess_env(**extra)``: the environment tests give the processes they start."""
    return cli_env


@pytest.fixture
def cli(project: ProjectDir) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m stepframe ARGS`` in the project folder, as a user would."""

    def invoke(
        *args: str,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            cwd=cwd or project.root,
            env=cli_env(**(env or {})),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return invoke


@pytest.fixture
def cli_popen(project: ProjectDir) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -m stepframe ARGS`` in its own session; killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepframe", *args],
            cwd=project.root,
            env=cli_env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def cli_in_process(project: ProjectDir) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI run in this process (click's test runner, the core's own plugins), for tests
    that make many short calls; answers like `cli` (exit code, stdout, stderr apart)."""
    from click.testing import CliRunner

    from stepframe._cli.main import cli as command
    from stepframe._plugins.manager import activated

    plugins = stepframe.load_plugins(env=CORE_ONLY)
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        runner = CliRunner()

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        with activated(plugins):
            result = runner.invoke(command, list(args), catch_exceptions=False)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return invoke


# ---- third-party distributions ---------------------------------------------------------


class Distribution:
    """A distribution on disk: its dist-info and modules in one ``sys.path`` folder."""

    def __init__(self, site: Path, name: str) -> None:
        self.site = site
        self.name = name
        self.tag = uuid.uuid4().hex[:8]  # keeps module names unique across tests
        self.modules: list[str] = []

    def module(self, source: str) -> str:
        """Write a plugin module; return its (unique) import name."""
        name = f"{self.name.replace('-', '_')}_{len(self.modules)}_{self.tag}"
        (self.site / f"{name}.py").write_text(textwrap.dedent(source))
        self.modules.append(name)
        return name

    def install(self, entry_points: dict[str, str]) -> None:
        info = self.site / f"{self.name.replace('-', '_')}-0.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {self.name}\nVersion: 0.3\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[stepframe]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` that distributions are installed into."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if str(folder) in (getattr(sys.modules[name], "__file__", None) or ""):
            del sys.modules[name]


@pytest.fixture
def dist(site: Path) -> Callable[[str], Distribution]:
    """``dist(name)``: a new distribution to write modules into and install."""
    return lambda name: Distribution(site, name)


@pytest.fixture(autouse=True)
def _user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test (and the processes it starts) away from the user's own secrets and
    active stack."""
    secrets_file = tmp_path / "user-config" / "stepframe" / "secrets.json"
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(secrets_file))
    monkeypatch.delenv("STEPFRAME_STACK", raising=False)
    return secrets_file


# A third-party plugin, installed through a dist-info entry point like a wheel would be:
# a connector flavor that authenticates with a secret, and a step operator flavor (with a
# config class of every field type) that runs steps in a local process by delegating to
# the core's ``local`` operator.
ACME_PLUGIN = """
from __future__ import annotations

import hashlib

import attrs

from stepframe import Component, ComponentKind, Credentials, Flavor, JobHandle, hookimpl

# Not in stepframe's public API yet: a plugin has no other way to declare a secret field.
from stepframe import SecretRef, resolve_secret


@attrs.frozen
class VaultConfig:
    token: SecretRef
    region: str = "eu-west-1"


@attrs.frozen
class AcmeConfig:
    project: str
    max_workers: int = 2
    spot: bool = False
    zones: list[str] = attrs.field(factory=list)
    api_key: SecretRef | None = None
    environment: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class AcmeSettings:
    environment: dict[str, str] = attrs.field(factory=dict)
    spot: bool = False


@hookimpl
def register_flavors(register):
    register(
        Flavor(
            kind=ComponentKind.CONNECTOR,
            name="acme-vault",
            config_class=VaultConfig,
            description="acme tokens from a secret",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name="acme",
            config_class=AcmeConfig,
            settings_class=AcmeSettings,
            description="acme batch jobs (here: local processes)",
        )
    )


@hookimpl
def authenticate(connector, resource):
    if connector.flavor != "acme-vault":
        return None
    token = resolve_secret(connector.config.token)
    return Credentials(connector=connector.name, resource=resource, values={"token": token})


@hookimpl
def submit_step(launch, operator, credentials):
    if operator.flavor != "acme":
        return None
    from stepframe._builtin import local

    if operator.connector and (credentials is None or not credentials.values.get("token")):
        raise RuntimeError("acme jobs need a token from their connector")
    environment = dict(launch.settings.environment)
    environment["ACME_SPOT"] = str(launch.settings.spot).lower()
    handle = local.submit_step(
        launch=attrs.evolve(
            launch, settings=local.LocalOperatorSettings(environment=environment)
        ),
        operator=Component(ComponentKind.STEP_OPERATOR, operator.name, "local"),
        credentials=None,
    )
    # Proof that the job was submitted with the secret, without the secret itself.
    proof = hashlib.sha256(credentials.values["token"].encode()).hexdigest() if credentials else ""
    return JobHandle("acme", operator.name, handle.job_id, {**handle.data, "token_sha256": proof})


@hookimpl
def poll_step(handle, credentials, cursor):
    if handle.flavor != "acme":
        return None
    from stepframe._builtin import local

    return local.poll_step(
        handle=attrs.evolve(handle, flavor="local"), credentials=None, cursor=cursor
    )


@hookimpl
def cancel_step(handle, credentials):
    if handle.flavor != "acme":
        return None
    from stepframe._builtin import local

    return local.cancel_step(handle=attrs.evolve(handle, flavor="local"), credentials=None)
"""


class Acme:
    """The installed ``stepframe-acme`` distribution and how to make processes see it."""

    def __init__(self, site: Path, module: str) -> None:
        self.site = site
        self.module = module
        # What a CLI process needs to load it (the core's plugins always load).
        self.env = {"PYTHONPATH": str(site), "STEPFRAME_LOAD_PLUGINS": "acme"}


@pytest.fixture
def acme(dist: Callable[[str], Distribution], site: Path) -> Acme:
    """The third-party ``stepframe-acme`` plugin, installed through an entry point."""
    distribution = dist("stepframe-acme")
    module = distribution.module(ACME_PLUGIN)
    distribution.install({"acme": module})
    return Acme(site, module)
