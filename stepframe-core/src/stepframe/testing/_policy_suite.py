"""The conformance suite for policy plugins: cross-cutting plugins (cost policies, tags,
audit) that register no flavor, refuse steps in the pre-flight and wrap other plugins'
hooks.

The suite runs real pipelines on the core's operators and on the kit's own cloud-like
operator, ``stepframe-kit-cloud``, whose settings have an ``instance_type`` (and an
``environment``) the way a cloud operator's do; its jobs are local processes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from stepframe._plugins.manager import Plugins
from stepframe._plugins.markers import hookimpl
from stepframe._types import Component, ComponentKind, Flavor, JobHandle, Launch
from stepframe.testing._fixtures import TempProject, make_plugins, plugin_name

__all__ = ["KIT_CLOUD", "KitCloud", "KitCloudSettings", "PolicySuite"]

#: The flavor of the kit's cloud-like step operator.
KIT_CLOUD = "stepframe-kit-cloud"


@attrs.frozen
class KitCloudSettings:
    """Settings of the kit's cloud-like operator: what policies usually look at."""

    instance_type: str | None = None
    environment: dict[str, str] = attrs.field(factory=dict)


class KitCloud:
    """A step operator with instance types, like a cloud's; runs each job as a local
    process (through the core's ``local`` operator) and records what it was asked."""

    def __init__(self) -> None:
        self.launches: list[Launch] = []

    @hookimpl
    def register_flavors(self, register):  # type: ignore[no-untyped-def]
        register(
            Flavor(
                kind=ComponentKind.STEP_OPERATOR,
                name=KIT_CLOUD,
                settings_class=KitCloudSettings,
                description="the conformance kit's cloud-like operator (local processes)",
            )
        )

    @hookimpl
    def submit_step(self, launch, operator, credentials):  # type: ignore[no-untyped-def]
        from stepframe._builtin import local

        self.launches.append(launch)
        settings = local.LocalOperatorSettings(environment=dict(launch.settings.environment))
        handle = local.submit_step(
            launch=attrs.evolve(launch, settings=settings),
            operator=Component(ComponentKind.STEP_OPERATOR, operator.name, "local"),
            credentials=None,
        )
        assert handle is not None
        return attrs.evolve(handle, flavor=KIT_CLOUD)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):  # type: ignore[no-untyped-def]
        from stepframe._builtin import local

        return local.poll_step(handle=_as_local(handle), credentials=None, cursor=cursor)

    @hookimpl
    def cancel_step(self, handle, credentials):  # type: ignore[no-untyped-def]
        from stepframe._builtin import local

        return local.cancel_step(handle=_as_local(handle), credentials=None)


def _as_local(handle: JobHandle) -> JobHandle:
    return attrs.evolve(handle, flavor="local")


_PIPELINE = """
from pathlib import Path

from stepframe import pipeline, step


@step
def first() -> int:
    Path("kit-first-ran").write_text("it ran")
    return 20


@step(operator="local")
def on_local(x: int) -> int:
    print("kit local says hi", flush=True)
    return x + 1


@step(operator={cloud!r}, settings={settings!r})
def guarded(x: int) -> int:
    print("kit cloud says hi", flush=True)
    return 2 * x


@pipeline
def kit_policed() -> None:
    value = first()
    on_local(value)
    guarded(value)
"""


class PolicySuite:
    """Conformance tests for a policy plugin.  Subclass it in a ``Test*`` class.

    Say which plugins are the policy (`plugin_names`, `extra_plugins`, as in the other
    suites) and give settings of the kit's cloud-like operator that the policy refuses
    (`refused_settings`) and allows (`allowed_settings`).  Set the policy's own
    configuration (environment variables, files) in an autouse fixture of the subclass.
    """

    #: installed entry points that make up the policy; None loads every installed one.
    plugin_names: ClassVar[tuple[str, ...] | None] = ()
    #: plugin objects to register directly: modules, instances or (name, plugin) pairs.
    extra_plugins: ClassVar[tuple[Any, ...]] = ()

    # ---- what a policy overrides ----------------------------------------------------

    def refused_settings(self) -> Mapping[str, Any]:
        """``stepframe-kit-cloud`` settings the policy refuses (``instance_type``, ...)."""
        raise NotImplementedError("give settings the policy refuses: refused_settings()")

    def allowed_settings(self) -> Mapping[str, Any]:
        """``stepframe-kit-cloud`` settings the policy lets run."""
        return {}

    # ---- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def policy_case(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[tuple[TempProject, Plugins, KitCloud]]:
        root = tmp_path / "project"
        root.mkdir()
        monkeypatch.chdir(root)
        monkeypatch.setattr(sys, "path", list(sys.path))
        monkeypatch.delenv("STEPFRAME_STACK", raising=False)
        cloud = KitCloud()
        plugins = make_plugins(
            *self.extra_plugins, ("stepframe-kit-cloud", cloud), load=self.plugin_names
        )
        project = TempProject(root, plugins)
        yield project, plugins, cloud
        for name in project.modules:
            sys.modules.pop(name, None)

    def _policy_names(self, plugins: Plugins) -> list[str]:
        names = [
            item[0] if isinstance(item, tuple) else plugin_name(item) for item in self.extra_plugins
        ]
        names += [name for name in self.plugin_names or () if name in plugins.infos]
        assert names, "the suite names no policy plugin: set plugin_names or extra_plugins"
        missing = [name for name in names if name not in plugins.infos]
        assert not missing, f"policy plugin(s) {missing} did not load (see the warnings)"
        return names

    def _pipeline(self, project: TempProject, settings: Mapping[str, Any]) -> Any:
        source = _PIPELINE.format(cloud=KIT_CLOUD, settings={KIT_CLOUD: dict(settings)})
        return project.load(source, "kit_policed")

    # ---- the tests ------------------------------------------------------------------

    def test_a_refused_step_stops_the_run_in_the_pre_flight(
        self, policy_case: tuple[TempProject, Plugins, KitCloud]
    ) -> None:
        from stepframe.exceptions import ConfigError, PluginError

        project, plugins, cloud = policy_case
        self._policy_names(plugins)
        pipeline = self._pipeline(project, self.refused_settings())
        try:
            project.run(pipeline)
        except ConfigError as error:  # the pre-flight's PreflightError: exit status 2
            message = str(error)
        except PluginError as error:
            raise AssertionError(f"the policy failed in the pre-flight: {error}") from None
        except Exception as error:
            raise AssertionError(
                f"the refused step was not stopped by the pre-flight but by {error!r}: "
                "refuse in check_step, before anything runs"
            ) from None
        else:
            raise AssertionError(
                f"settings {dict(self.refused_settings())} ran; refused_settings() must give "
                "settings the policy refuses, and the policy must refuse them in check_step"
            )
        assert "step 'guarded'" in message, f"the refusal does not name the step: {message}"
        assert "the pre-flight check found" in message, message
        assert not (project.root / "kit-first-ran").exists(), (
            "a step ran before the refusal: refuse in check_step, not in a submit_step wrapper"
        )
        assert cloud.launches == [], "the operator was asked to submit a refused step"
        assert project.runs() == [], "a refused run was recorded"

    def test_steps_on_every_operator_still_run(
        self, policy_case: tuple[TempProject, Plugins, KitCloud]
    ) -> None:
        """The policy breaks no other plugin: allowed steps run on the core's operators and
        the kit's cloud one, their logs arrive and their jobs are recorded."""
        project, plugins, cloud = policy_case
        self._policy_names(plugins)
        result = project.run(self._pipeline(project, self.allowed_settings()))
        assert result.output("on_local") == 21
        assert result.output("guarded") == 40
        for line in ("on_local | kit local says hi", "guarded | kit cloud says hi"):
            assert line in project.output, f"the log line {line!r} was lost: {project.output}"
        jobs = {job["step"]: (job["flavor"], job["state"]) for job in project.jobs(result.run_id)}
        assert jobs.get("guarded") == (KIT_CLOUD, "succeeded"), jobs
        assert jobs.get("on_local") == ("local", "succeeded"), jobs
        (launch,) = cloud.launches
        assert launch.settings == KitCloudSettings(**self.allowed_settings())

    def test_the_policy_is_asked_about_every_step(
        self, policy_case: tuple[TempProject, Plugins, KitCloud]
    ) -> None:
        """The core asks a plugin that registers no flavor about every step's components;
        one that registers a flavor only about its own."""
        _project, plugins, _cloud = policy_case
        names = self._policy_names(plugins)
        with_check = [name for name in names if "check_step" in plugins.infos[name].hooks]
        assert with_check, f"no policy plugin of {names} implements check_step (the pre-flight)"
        for flavor in ("inprocess", "local", KIT_CLOUD, "stepframe-kit-nobody"):
            component = Component(ComponentKind.STEP_OPERATOR, flavor, flavor)
            asked = {name for name, _ in plugins.hooks.check_step_implementations(component)}
            missing = sorted(set(with_check) - asked)
            assert not missing, (
                f"the pre-flight would not ask {missing} about a step on {flavor!r}: a policy "
                f"plugin must register no flavor (it registers {plugins.infos[missing[0]].flavors})"
            )
