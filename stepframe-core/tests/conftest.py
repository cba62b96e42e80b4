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

    def load(self, source: str, pipeline: str | None = None) -> Pipeline:
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
        target: Pipeline | PipelineSpec,
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
        *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            cwd=project.root,
            env=cli_env(**(env or {})),
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
