"""The kit's fixtures: isolated plugins, one plugin for one test, a project, a pipeline."""

from __future__ import annotations

import io
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

if TYPE_CHECKING:
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._orchestrator.run import RunResult
    from stepframe._pipeline.pipeline import Pipeline, PipelineSpec
    from stepframe._plugins.manager import Plugins

__all__ = [
    "SmallPipeline",
    "TempProject",
    "make_plugins",
    "plugin_name",
    "small_pipeline",
    "stepframe_plugin",
    "stepframe_plugins",
    "stepframe_project",
]


def plugin_name(plugin: object) -> str:
    """The name a plugin object is registered under when none is given."""
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str):
        return name
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def make_plugins(*extra: Any, load: Iterable[str] | None = ()) -> Plugins:
    """An isolated plugin manager: the core's plugins, some installed ones, some objects.

    Nothing process-wide changes, and the user's ``STEPFRAME_LOAD_PLUGINS`` and
    ``STEPFRAME_DISABLE_PLUGINS`` are ignored, so the test sees the same plugins on
    every machine.

    :param extra: plugin objects (modules, instances) to register, each either bare
        (named by `plugin_name`) or as a ``(name, plugin)`` pair.
    :param load: names of installed entry points (``stepframe`` group) to load besides
        the core's own; ``None`` loads every installed plugin.
    """
    from stepframe._plugins.manager import DISABLE_ENV, LOAD_ENV, load_plugins

    env: dict[str, str] = {DISABLE_ENV: ""}
    if load is not None:
        env[LOAD_ENV] = ",".join(load)
    pairs: list[tuple[str, object]] = []
    for item in extra:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            pairs.append((item[0], item[1]))
        else:
            pairs.append((plugin_name(item), item))
    return load_plugins(extra=pairs, env=env)


@pytest.fixture
def stepframe_plugins() -> Callable[..., Plugins]:
    """``stepframe_plugins(*plugin_objects, load=("entry-point", ...))``: see `make_plugins`."""
    return make_plugins


@pytest.fixture
def stepframe_plugin() -> Iterator[Callable[..., Plugins]]:
    """``stepframe_plugin(plugin, name=None, load=())``: register one plugin for this test.

    Returns the isolated `Plugins` with the core's plugins and this one, and makes them
    the plugins in use until the test ends: a pipeline called directly in the test, or a
    step running on the ``inprocess`` operator, sees them.  Process-wide plugins are
    untouched.
    """
    from stepframe._plugins.manager import activated

    with ExitStack() as stack:

        def register(
            plugin: object, name: str | None = None, *, load: Iterable[str] | None = ()
        ) -> Plugins:
            plugins = make_plugins((name or plugin_name(plugin), plugin), load=load)
            stack.enter_context(activated(plugins))
            return plugins

        yield register


class TempProject:
    """A project folder with its own ``.stepframe/`` state and local artifact store.

    :param root: the folder (the test's working directory while the fixture is active).
    :param plugins: what `run` uses unless given others; the core's plugins by default.
    """

    def __init__(self, root: Path, plugins: Plugins | None = None) -> None:
        self.root = root
        self._plugins = plugins
        self.modules: list[str] = []
        #: what the last `run` printed (plain console lines).
        self.output = ""

    @property
    def plugins(self) -> Plugins:
        """The plugins given, else those `stepframe_plugin` activated, else the core's."""
        if self._plugins is not None:
            return self._plugins
        from stepframe._plugins.manager import _active

        active = _active.get()
        if active:
            return active[-1]
        self._plugins = make_plugins()
        return self._plugins

    @plugins.setter
    def plugins(self, plugins: Plugins) -> None:
        self._plugins = plugins

    @property
    def state_dir(self) -> Path:
        return self.root / ".stepframe"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def artifact_store_uri(self) -> str:
        return self.artifacts_dir.as_uri()

    def store(self) -> ArtifactStore:
        """The project's local artifact store (created if missing)."""
        from stepframe._artifacts.local import LocalArtifactStore

        return LocalArtifactStore.at(self.artifacts_dir, create=True)

    def write(self, source: str, name: str | None = None) -> Path:
        """Write a Python module into the project under a unique name; return its path."""
        name = name or f"kit_pipeline_{uuid.uuid4().hex[:10]}"
        path = self.root / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        self.modules.append(name)
        return path

    def write_config(self, text: str) -> Path:
        """Write the project's ``stepframe.toml`` (components and stacks)."""
        path = self.root / "stepframe.toml"
        path.write_text(textwrap.dedent(text))
        return path

    def load(self, source: str, pipeline: str | None = None) -> Pipeline[...]:
        """Write ``source`` and load a pipeline from it, as ``stepframe run`` does."""
        from stepframe._pipeline.loader import load_pipeline

        path = self.write(source)
        return load_pipeline(f"{path}:{pipeline}" if pipeline else str(path))

    def run(
        self,
        target: Pipeline[...] | PipelineSpec,
        *args: Any,
        plugins: Plugins | None = None,
        **options: Any,
    ) -> RunResult:
        """Compile (with ``args``) and run a pipeline here; keeps what it printed in `output`.

        ``options`` go to the orchestrator (``max_parallel=``, ``stack=``,
        ``raise_on_failure=``, ...).  Raises ``RunFailed`` when a step fails.
        """
        from stepframe._orchestrator.console import PlainConsole
        from stepframe._orchestrator.run import run_pipeline
        from stepframe._pipeline.pipeline import Pipeline
        from stepframe._project import Project

        spec = target.compile(*args) if isinstance(target, Pipeline) else target
        stream = io.StringIO()
        try:
            return run_pipeline(
                spec,
                plugins=plugins or self.plugins,
                project=Project(self.root),
                console=PlainConsole(stream),
                **options,
            )
        finally:
            self.output = stream.getvalue()

    def runs(self) -> list[tuple[str, str]]:
        """Every run recorded here, ``(run id, status)``; empty when none ever started
        (a pipeline refused by the pre-flight leaves nothing behind)."""
        import sqlite3

        if not (self.state_dir / "runs.db").exists():
            return []
        with sqlite3.connect(self.state_dir / "runs.db") as conn:
            return [(str(a), str(b)) for a, b in conn.execute("SELECT run_id, status FROM runs")]

    def jobs(self, run_id: str) -> list[dict[str, Any]]:
        """The job ledger rows of a run: step, attempt, flavor, operator, job_id, state."""
        from stepframe._history.database import RunHistory

        if not (self.state_dir / "runs.db").exists():
            return []
        with RunHistory(self.state_dir / "runs.db") as history:
            records = history.list_jobs(run_id=run_id)
        keys = ("step", "attempt", "flavor", "operator", "job_id", "state")
        return [{key: getattr(record, key) for key in keys} for record in records]


@pytest.fixture
def stepframe_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TempProject]:
    """A temporary project as the working directory, with a local artifact store."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the pipeline loader adds to it
    monkeypatch.delenv("STEPFRAME_STACK", raising=False)  # the user's active stack
    project = TempProject(root)
    project.store()
    yield project
    for name in project.modules:
        sys.modules.pop(name, None)


SMALL_PIPELINE = '''
"""A small pipeline from stepframe.testing: numbers -> total (on the operator under test)."""
from stepframe import pipeline, step


@step
def numbers(count: int) -> list[int]:
    return list(range(count))


@step(operator={operator!r}, settings={settings!r})
def total(values: list[int]) -> int:
    print(f"summing {{len(values)}} values")
    return sum(values)


@pipeline
def small(count: int = {count}) -> None:
    total(numbers(count))
'''


@attrs.frozen
class SmallPipeline:
    """A two-step pipeline: ``numbers`` (in process) feeds ``total`` (on ``operator``).

    ``project.run(small.pipeline)`` runs it; ``result.output("total") == small.expected``.
    """

    pipeline: Pipeline[...]
    operator: str | None
    count: int
    expected: int
    step: str = "total"


@pytest.fixture
def small_pipeline(stepframe_project: TempProject) -> Callable[..., SmallPipeline]:
    """``small_pipeline(operator=None, settings=None, count=5)``: a pipeline to run.

    The ``total`` step runs on ``operator`` (the default operator when None) with
    ``settings`` (``{flavor: {...}}``) and prints one log line, ``summing N values``.
    """

    def make(
        operator: str | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        count: int = 5,
    ) -> SmallPipeline:
        source = SMALL_PIPELINE.format(
            operator=operator,
            settings={k: dict(v) for k, v in (settings or {}).items()},
            count=count,
        )
        pipeline = stepframe_project.load(source)
        return SmallPipeline(pipeline, operator, count, sum(range(count)))

    return make
