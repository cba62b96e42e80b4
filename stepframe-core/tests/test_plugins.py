"""Plugin discovery through entry points, the allow and deny lists, plugins registered
for one test, and plugins that break the hook contract.

Third-party distributions are real: a ``*.dist-info`` folder with ``entry_points.txt``
on ``sys.path``, found by ``importlib.metadata`` exactly like an installed wheel.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import pytest

import stepframe
from stepframe import (
    ComponentKind,
    Flavor,
    JobHandle,
    JobState,
    JobStatus,
    Materializer,
    PluginConflictWarning,
    PluginLoadWarning,
    RunFailed,
    StepFailed,
    hookimpl,
)
from stepframe.exceptions import ConfigError, UnknownOperatorError

CORE = {"inprocess", "local", "local-artifact-store"}


GOOD_PLUGIN = """
from stepframe import ComponentKind, Flavor, hookimpl

@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="good-operator"))
"""


def _load(env: dict[str, str]) -> tuple[stepframe.Plugins, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = stepframe.load_plugins(env=env)
    return plugins, [w for w in caught if issubclass(w.category, PluginLoadWarning)]


def _operators(plugins: stepframe.Plugins) -> set[str]:
    return {flavor.name for flavor, _ in plugins.flavors.of_kind(ComponentKind.STEP_OPERATOR)}


def test_a_plugin_that_fails_to_import_gives_one_warning(dist, project, run) -> None:
    broken = dist("stepframe-broken")
    module = broken.module('raise ImportError("needs libfrobnicate, pip install frob")\n')
    good = broken.module(GOOD_PLUGIN)
    broken.install({"broken": module, "good": good})

    plugins, caught = _load({"STEPFRAME_LOAD_PLUGINS": "broken,good"})

    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'broken'" in message
    assert "distribution stepframe-broken" in message
    assert f"entry point broken = {module}" in message
    assert "ImportError: needs libfrobnicate, pip install frob" in message
    # Everything else keeps working: the other plugin of that distribution, the core.
    assert set(plugins.infos) == CORE | {"good"}
    assert plugins.infos["good"].distribution == "stepframe-broken"
    assert plugins.infos["good"].version == "0.3"
    assert _operators(plugins) == {"inprocess", "local", "good-operator"}
    pipe = project.load(
        """
        from stepframe import pipeline, step

        @step
        def one() -> int:
            return 1

        @pipeline
        def still_works():
            one()
        """
    )
    assert run(pipe, plugins=plugins).output("one") == 1


INVALID_HOOKS = """
from stepframe import hookimpl

@hookimpl
def submit_step(launch, operator, credentials, region):
    return None
"""

UNKNOWN_HOOK = """
from stepframe import hookimpl

@hookimpl
def submit_job(launch):
    return None
"""


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        (INVALID_HOOKS, "invalid hook implementation"),
        (UNKNOWN_HOOK, "implements unknown hooks: submit_job"),
    ],
)
def test_a_plugin_with_an_invalid_hookimpl_is_skipped_with_a_warning(dist, source, cause) -> None:
    bad = dist("stepframe-bad")
    module = bad.module(source)
    bad.install({"bad": module, "good": bad.module(GOOD_PLUGIN)})

    plugins, caught = _load({"STEPFRAME_LOAD_PLUGINS": "bad,good"})

    assert len(caught) == 1
    message = str(caught[0].message)
    assert "distribution stepframe-bad" in message and f"bad = {module}" in message
    assert cause in message
    if source is INVALID_HOOKS:
        assert "region" in message
    assert "bad" not in plugins.infos
    assert not plugins.manager.has_plugin("bad")
    assert "good" in plugins.infos


def test_a_plugin_whose_registration_fails_is_left_out_entirely(dist) -> None:
    """Half a plugin is worse than none: its flavors and hooks go with it."""
    failing = dist("stepframe-failing")
    module = failing.module(
        """
        from stepframe import ComponentKind, Flavor, hookimpl

        @hookimpl
        def register_flavors(register):
            register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="half-registered"))
            register("second-operator")  # not a Flavor

        @hookimpl
        def submit_step(launch, operator, credentials):
            raise AssertionError("a plugin that failed to register must not be called")
        """
    )
    failing.install({"failing": module})

    plugins, caught = _load({"STEPFRAME_LOAD_PLUGINS": "failing"})

    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'failing'" in message and "distribution stepframe-failing" in message
    assert "register_flavors failed" in message
    assert "takes a stepframe Flavor" in message
    assert _operators(plugins) == {"inprocess", "local"}
    assert "failing" not in plugins.infos
    assert not plugins.manager.has_plugin("failing")


def test_a_flavor_claimed_twice_costs_one_warning_and_the_first_keeps_it(dist) -> None:
    """A taken flavor name is not a reason to lose the plugin's other flavors."""
    rival = dist("stepframe-rival")
    module = rival.module(
        """
        from stepframe import ComponentKind, Flavor, hookimpl

        @hookimpl
        def register_flavors(register):
            register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="rival-own"))
            register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="local"))  # the core's
            register(
                Flavor(kind=ComponentKind.ARTIFACT_STORE, name="rival-files", uri_schemes=("file",))
            )

        @hookimpl
        def submit_step(launch, operator, credentials):
            raise AssertionError("the core's local operator keeps flavor 'local'")
        """
    )
    rival.install({"rival": module})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = stepframe.load_plugins(env={"STEPFRAME_LOAD_PLUGINS": "rival"})
    conflicts = [str(w.message) for w in caught if w.category is PluginConflictWarning]

    assert len(conflicts) == 2, conflicts
    flavor, scheme = conflicts
    assert "plugin 'rival' (distribution stepframe-rival)" in flavor
    assert "plugin 'local' (distribution stepframe-core)" in flavor
    assert "step_operator flavor 'local'; 'local' keeps it" in flavor
    assert "URI scheme 'file'; 'local-artifact-store' keeps it" in scheme
    assert "distribution stepframe-core" in scheme
    assert plugins.flavors.provider(ComponentKind.STEP_OPERATOR, "local") == "local"
    assert plugins.flavors.provider(ComponentKind.STEP_OPERATOR, "rival-own") == "rival"
    assert plugins.flavors.scheme_provider("file") == "local-artifact-store"
    assert plugins.infos["rival"].flavors == (
        "step_operator:rival-own",
        "artifact_store:rival-files",
    )


def test_allow_and_deny_lists_from_the_environment(dist, monkeypatch) -> None:
    extra = dist("stepframe-extra")
    extra.install({"extra": extra.module(GOOD_PLUGIN)})

    # No lists: every installed plugin loads (the test folder's among them).
    monkeypatch.delenv("STEPFRAME_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("STEPFRAME_DISABLE_PLUGINS", raising=False)
    assert {"extra", *CORE} <= set(stepframe.load_plugins().infos)

    # An empty allow-list: no third-party plugins, but the core's own parts.
    monkeypatch.setenv("STEPFRAME_LOAD_PLUGINS", "")
    plugins = stepframe.load_plugins()
    assert set(plugins.infos) == CORE
    assert _operators(plugins) == {"inprocess", "local"}

    monkeypatch.setenv("STEPFRAME_LOAD_PLUGINS", "extra")
    assert set(stepframe.load_plugins().infos) == CORE | {"extra"}

    # The deny-list wins, for third-party plugins and the core's alike.
    monkeypatch.setenv("STEPFRAME_DISABLE_PLUGINS", "extra, local")
    plugins = stepframe.load_plugins()
    assert set(plugins.infos) == {"inprocess", "local-artifact-store"}
    assert _operators(plugins) == {"inprocess"}


def test_the_cli_warns_once_and_lists_the_rest(dist, site, cli) -> None:
    broken = dist("stepframe-broken")
    module = broken.module('raise ImportError("needs libfrobnicate")\n')
    broken.install({"broken": module, "good": broken.module(GOOD_PLUGIN)})
    env = {"PYTHONPATH": str(site), "STEPFRAME_LOAD_PLUGINS": "broken,good"}
    result = cli("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("PluginLoadWarning") == 1
    assert "distribution stepframe-broken" in result.stderr
    assert "needs libfrobnicate" in result.stderr
    assert "good  (stepframe-broken 0.3)" in result.stdout
    assert "flavors: step_operator:good-operator" in result.stdout
    assert "local  (stepframe-core" in result.stdout


# ---- plugin objects registered for one test ----------------------------------------------


@attrs.frozen
class RecorderSettings:
    tag: str = "untagged"


class Recorder:
    """A step operator that runs the entrypoint in a subprocess and records every call."""

    flavor = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @hookimpl
    def register_flavors(self, register):
        register(
            Flavor(
                kind=ComponentKind.STEP_OPERATOR,
                name=self.flavor,
                settings_class=RecorderSettings,
            )
        )

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        if operator.flavor != self.flavor:
            return None
        self.calls.append(("submit_step", launch))
        env = {"STEPFRAME_LOAD_PLUGINS": "", "PATH": "/usr/bin:/bin", **launch.environment}
        process = subprocess.Popen(
            [sys.executable, *launch.command[1:]], cwd=launch.code_root, env=env
        )
        job_id = f"rec-{process.pid}"
        self.processes[job_id] = process
        return JobHandle(flavor=self.flavor, operator=operator.name, job_id=job_id)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        if handle.flavor != self.flavor:
            return None
        self.calls.append(("poll_step", cursor))
        code = self.processes[handle.job_id].poll()
        if code is None:
            return JobStatus(JobState.RUNNING, cursor="1", poll_after=0.05)
        lines = ("recorder says done",) if cursor != "done" else ()
        state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
        return JobStatus(state, log_lines=lines, cursor="done")

    @hookimpl
    def cancel_step(self, handle, credentials):
        if handle.flavor != self.flavor:
            return None
        self.calls.append(("cancel_step", handle.job_id))
        self.processes[handle.job_id].kill()
        return True

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


RECORDED = """
from stepframe import pipeline, step


@step
def start() -> int:
    return 20


@step(operator="recorder", settings={"recorder": {"tag": "from-step"}})
def double(x: int) -> int:
    return 2 * x


@pipeline
def recorded():
    double(start())
"""


def test_a_plugin_object_registered_for_one_test_runs_a_step(project, make_plugins, run) -> None:
    recorder = Recorder()
    plugins = make_plugins(("recorder", recorder))
    assert plugins.infos["recorder"].flavors == ("step_operator:recorder",)
    assert plugins.infos["recorder"].distribution is None

    result = run(project.load(RECORDED), plugins=plugins)

    assert result.output("double") == 40
    assert recorder.names()[0] == "submit_step"
    assert recorder.names().count("submit_step") == 1  # the other step ran in process
    assert "poll_step" in recorder.names() and "cancel_step" not in recorder.names()
    launch = recorder.calls[0][1]
    assert launch.step == "double" and launch.attempt == 1
    assert launch.settings == RecorderSettings(tag="from-step")
    assert launch.command == ("python", "-m", "stepframe.entrypoint", launch.manifest_uri)
    assert launch.code_root == str(project.root)
    assert "double | recorder says done" in run.output
    with project.history() as history:
        jobs = history.list_jobs(run_id=result.run_id)
        (job,) = [job for job in jobs if job.flavor == "recorder"]
        step = {s.step: s for s in history.get_steps(result.run_id)}["double"]
    assert (job.flavor, job.step, job.state) == ("recorder", "double", "succeeded")
    assert step.job_id == job.job_id and job.job_id.startswith("rec-")
    assert step.operator == "recorder"


def test_step_settings_for_a_plugin_flavor_are_validated_before_the_run(
    project, make_plugins, run
) -> None:
    plugins = make_plugins(("recorder", Recorder()))
    pipe = project.load(RECORDED.replace('"tag": "from-step"', '"tga": "typo"'))
    with pytest.raises(ConfigError) as caught:
        run(pipe, plugins=plugins)
    assert "step 'double' settings.recorder: unknown key(s) tga" in str(caught.value)
    assert project.run_rows() == []


@attrs.frozen
class ClusterConfig:
    endpoint: str


class NeedsConfig:
    @hookimpl
    def register_flavors(self, register):
        register(
            Flavor(kind=ComponentKind.STEP_OPERATOR, name="cluster", config_class=ClusterConfig)
        )


def test_an_installed_operator_that_needs_configuration_says_so(project, make_plugins, run) -> None:
    plugins = make_plugins(("cluster-plugin", NeedsConfig()))
    pipe = project.load(RECORDED.replace('"recorder"', '"cluster"'))
    with pytest.raises(UnknownOperatorError) as caught:
        run(pipe, plugins=plugins)
    message = str(caught.value)
    assert "step 'double' runs on operator 'cluster'" in message
    assert "flavor is installed (plugin 'cluster-plugin') but needs configuration" in message
    assert project.run_rows() == []


class WrongTypes(Recorder):
    """Breaks the contract in one hook, chosen by ``broken``."""

    flavor = "sloppy"

    def __init__(self, broken: str) -> None:
        super().__init__()
        self.broken = broken

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        handle = super().submit_step(launch, operator, credentials)
        if handle is not None and self.broken == "submit_step":
            self.processes[handle.job_id].kill()
            return {"job_id": handle.job_id}
        return handle

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        status = super().poll_step(handle, credentials, cursor)
        if status is not None and self.broken == "poll_step":
            return "running"
        return status


@pytest.mark.parametrize(
    ("hook", "returned", "expected"),
    [("submit_step", "dict", "JobHandle"), ("poll_step", "str", "JobStatus")],
)
def test_a_plugin_returning_the_wrong_type_is_a_plugin_error(
    project, make_plugins, run, hook, returned, expected
) -> None:
    plugin = WrongTypes(hook)
    plugins = make_plugins(("sloppy", plugin))
    pipe = project.load(
        """
        from stepframe import pipeline, step

        @step(operator="sloppy")
        def double(x: int) -> int:
            return 2 * x

        @pipeline
        def sloppy():
            double(1)
        """
    )
    with pytest.raises(RunFailed) as caught:
        run(pipe, plugins=plugins)
    failure = caught.value.failures["double"]
    assert isinstance(failure, StepFailed)
    assert failure.error_type == "PluginError"
    assert f"plugin 'sloppy' (registered directly) answered {hook}" in failure.message
    assert "flavor 'sloppy'" in failure.message
    assert f"with {returned}, expected {expected}" in failure.message
    if hook == "poll_step":
        # The job was submitted: it must not be left running when following it fails.
        assert plugin.names()[-1] == "cancel_step"
        with project.history() as history:
            (job,) = history.list_jobs(run_id=caught.value.run_id)
        assert job.state == "cancelled"


# ---- materializers from plugins ------------------------------------------------------------


class Shouting(Materializer):
    """Stores strings upper-cased: only a plugin materializer would do that."""

    name = "shouting"

    def can_save(self, value: object, annotation: Any) -> bool:
        return isinstance(value, str)

    def save(self, value: object, stream: BinaryIO) -> None:
        assert isinstance(value, str)
        stream.write(value.upper().encode())

    def load(self, stream: BinaryIO, annotation: Any, scratch_dir: Path) -> object:
        return stream.read().decode()


class ShoutingPlugin:
    @hookimpl
    def register_materializers(self, register):
        register(Shouting())


MATERIALIZED = """
from stepframe import pipeline, step


@step
def greet() -> str:
    return "hello"


@step
def count() -> int:
    return 3


@step
def repeat(word: str, times: int) -> str:
    return " ".join([word] * times)


@pipeline
def materialized():
    repeat(greet(), count())
"""


def test_plugin_materializers_take_precedence(project, make_plugins, run) -> None:
    pipe = project.load(MATERIALIZED)
    plain = run(pipe)
    assert plain.output("repeat") == "hello hello hello"

    plugins = make_plugins(("shouting", ShoutingPlugin()))
    assert plugins.infos["shouting"].hooks == ("register_materializers",)
    result = run(pipe, plugins=plugins)
    assert result.output("repeat") == "HELLO HELLO HELLO"
    with project.history() as history:
        used = {a.step: a.materializer for a in history.get_artifacts(result.run_id)}
    assert used == {"greet": "shouting", "count": "json", "repeat": "shouting"}


def test_an_isolated_manager_does_not_leak_into_the_processwide_one(make_plugins) -> None:
    from stepframe._plugins.manager import get_plugins

    make_plugins(("shouting", ShoutingPlugin()))
    assert "shouting" not in get_plugins().infos
