"""stepframe-policy's own tests, written with stepframe's conformance kit (stepframe.testing).

They need only stepframe's public API and the kit: the plugin module is registered
directly, so the tests run from a checkout as well as against the installed distribution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from types import SimpleNamespace

import attrs
import pytest
from stepframe_policy import Policy, PolicyConfigError, current_policy, plugin
from stepframe_policy.plugin import instance_type_of

import stepframe
from stepframe import (
    Component,
    ComponentKind,
    Flavor,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    hookimpl,
)
from stepframe.testing import PolicySuite, StepOperatorSuite

ALLOWED = "ml.m5.large,ml.g5.xlarge"


@pytest.fixture(autouse=True)
def policy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A known policy for every test, whatever the machine's environment says."""
    for name in ("STEPFRAME_POLICY_FILE", "STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEPFRAME_POLICY_TAGS", "team=forecasting,cost-center=4711")


@attrs.frozen
class CloudSettings:
    instance_type: str = "ml.m5.large"


class FakeCloud:
    """A step operator with instance types, like a cloud's; runs jobs as local processes."""

    flavor = "fakecloud"

    def __init__(self) -> None:
        self.launches: list[Launch] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @hookimpl
    def register_flavors(self, register):
        register(
            Flavor(
                kind=ComponentKind.STEP_OPERATOR,
                name=self.flavor,
                settings_class=CloudSettings,
                jobs_outlive_client=False,
            )
        )

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        if operator.flavor != self.flavor:
            return None
        self.launches.append(launch)
        env = {**os.environ, **launch.environment, "PYTHONPATH": launch.code_root}
        process = subprocess.Popen(
            [sys.executable, *launch.command[1:]],
            cwd=launch.code_root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        job_id = f"{launch.job_name}-{process.pid}"
        self.processes[job_id] = process
        return JobHandle(flavor=self.flavor, operator=operator.name, job_id=job_id)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        if handle.flavor != self.flavor:
            return None
        code = self.processes[handle.job_id].poll()
        if code is None:
            return JobStatus(JobState.RUNNING, poll_after=0.05)
        return JobStatus(JobState.SUCCEEDED if code == 0 else JobState.FAILED)

    @hookimpl
    def cancel_step(self, handle, credentials):
        if handle.flavor != self.flavor:
            return None
        self.processes[handle.job_id].kill()
        return True


# ---- operators stay conformant with the policy wrapped around them ------------------------


class TestLocalOperatorUnderThePolicy(StepOperatorSuite):
    """The core's ``local`` operator, with the policy wrapping its submit_step."""

    flavor = "local"
    plugin_names = ()
    extra_plugins = (("policy", plugin),)
    supports_find_job = True


class TestCloudOperatorUnderThePolicy(StepOperatorSuite):
    """An operator with instance types, asking for an allowed one."""

    flavor = "fakecloud"
    plugin_names = ()
    extra_plugins = (("policy", plugin), FakeCloud())
    supports_logs = False

    @pytest.fixture(autouse=True)
    def allow_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES", ALLOWED)

    def step_settings(self) -> dict[str, str]:
        return {"instance_type": "ml.g5.xlarge"}


class TestThePolicyPassesThePolicySuite(PolicySuite):
    """The kit's suite for policy plugins: it refuses in the pre-flight, it is asked about
    every step, and it breaks no other plugin."""

    extra_plugins = (("policy", plugin),)

    @pytest.fixture(autouse=True)
    def allow_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES", ALLOWED)

    def refused_settings(self) -> dict[str, str]:
        return {"instance_type": "ml.p4d.24xlarge"}

    def allowed_settings(self) -> dict[str, str]:
        return {"instance_type": "ml.m5.large"}


# ---- what the policy does, in pipeline runs -------------------------------------------------

TAGGED = """
import json
import os

from stepframe import pipeline, step


@step(operator="local")
def tags() -> dict:
    return json.loads(os.environ["STEPFRAME_TAGS"])


@pipeline
def tagged():
    tags()
"""

CLOUD = """
from stepframe import pipeline, step


@step
def load() -> list[float]:
    return [1.0, 2.0, 3.0]


@step(operator="fakecloud", settings={{"fakecloud": {{"instance_type": {instance_type!r}}}}})
def train(xs: list[float]) -> float:
    return sum(xs) / len(xs)


@pipeline
def training():
    train(load())
"""


def test_every_job_carries_cost_allocation_tags(stepframe_plugins, stepframe_project) -> None:
    plugins = stepframe_plugins(("policy", plugin))
    result = stepframe_project.run(stepframe_project.load(TAGGED), plugins=plugins)
    assert result.output("tags") == {
        "team": "forecasting",
        "cost-center": "4711",
        "stepframe:pipeline": "tagged",
        "stepframe:step": "tags",
        "stepframe:run-id": result.run_id,
        "stepframe:operator": "local",
    }


def test_an_allowed_instance_type_runs(stepframe_plugins, stepframe_project, monkeypatch) -> None:
    monkeypatch.setenv("STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES", ALLOWED)
    cloud = FakeCloud()
    plugins = stepframe_plugins(("policy", plugin), cloud)
    pipe = stepframe_project.load(CLOUD.format(instance_type="ml.g5.xlarge"))
    result = stepframe_project.run(pipe, plugins=plugins)
    assert result.output("train") == 2.0
    (launch,) = cloud.launches
    assert launch.settings == CloudSettings(instance_type="ml.g5.xlarge")
    assert json.loads(launch.environment["STEPFRAME_TAGS"])["team"] == "forecasting"


def test_an_instance_type_outside_the_allow_list_is_refused_before_anything_runs(
    stepframe_plugins, stepframe_project, monkeypatch
) -> None:
    monkeypatch.setenv("STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES", ALLOWED)
    cloud = FakeCloud()
    plugins = stepframe_plugins(("policy", plugin), cloud)
    pipe = stepframe_project.load(CLOUD.format(instance_type="ml.p4d.24xlarge"))
    with pytest.raises(stepframe.ConfigError) as caught:  # the pre-flight: exit status 2
        stepframe_project.run(pipe, plugins=plugins)
    message = str(caught.value)
    assert "the pre-flight check found 1 problem; nothing was run" in message
    assert "step 'train': operator 'fakecloud' asks for instance type 'ml.p4d.24xlarge'" in (
        message
    )
    assert "allowed: ml.g5.xlarge, ml.m5.large" in message
    assert cloud.launches == []  # the operator never saw it: nothing to pay for
    assert stepframe_project.runs() == []


def test_the_submit_time_check_is_the_last_line(monkeypatch) -> None:
    """A policy tightened after the pre-flight still stops the job before it is paid for."""
    monkeypatch.setenv("STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES", "ml.m5.large")
    launch = Launch(
        "r", "p", "train", 1, "j", "m", "res", ("python",), settings=CloudSettings("ml.g5.xlarge")
    )
    operator = Component(ComponentKind.STEP_OPERATOR, "gpu", "fakecloud")
    wrapper = plugin.submit_step(launch=launch, operator=operator, credentials=None)
    with pytest.raises(stepframe.StepframeError, match="step 'train': operator 'gpu' asks for"):
        next(wrapper)


def test_without_an_allow_list_any_instance_type_runs(stepframe_plugins, stepframe_project) -> None:
    cloud = FakeCloud()
    plugins = stepframe_plugins(("policy", plugin), cloud)
    pipe = stepframe_project.load(CLOUD.format(instance_type="ml.p4d.24xlarge"))
    assert stepframe_project.run(pipe, plugins=plugins).output("train") == 2.0


def test_required_tags_must_be_set(stepframe_plugins, stepframe_project, tmp_path, monkeypatch):
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"required_tags": ["team", "project"]}))
    monkeypatch.setenv("STEPFRAME_POLICY_FILE", str(policy_file))
    plugins = stepframe_plugins(("policy", plugin))
    with pytest.raises(stepframe.ConfigError) as caught:
        stepframe_project.run(stepframe_project.load(TAGGED), plugins=plugins)
    assert "step 'tags': the cost policy requires tag(s) project" in str(caught.value)


# ---- the policy's own configuration ---------------------------------------------------------


def test_the_policy_file_and_the_variables_over_it(tmp_path) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps({"allowed_instance_types": ["ml.m5.large"], "tags": {"team": "a", "x": "1"}})
    )
    env = {"STEPFRAME_POLICY_FILE": str(policy_file), "STEPFRAME_POLICY_TAGS": "team=b"}
    assert current_policy(env) == Policy(
        allowed_instance_types=frozenset({"ml.m5.large"}), tags={"team": "b", "x": "1"}
    )
    env["STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES"] = ""
    assert current_policy(env).allowed_instance_types == frozenset()
    assert current_policy({}) == Policy()


def test_a_bad_policy_file_names_each_bad_key(tmp_path) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(
        json.dumps({"allowed_instance_type": ["ml.m5.large"], "tags": {"team": 5}})
    )
    with pytest.raises(PolicyConfigError) as caught:
        current_policy({"STEPFRAME_POLICY_FILE": str(policy_file)})
    message = str(caught.value)
    assert f"extra fields found (allowed_instance_type) @ {policy_file}" in message
    assert f"expected str @ {policy_file}.tags['team']" in message


def test_bad_tags_in_the_environment() -> None:
    with pytest.raises(PolicyConfigError, match="'team' is not key=value"):
        current_policy({"STEPFRAME_POLICY_TAGS": "team"})


def test_where_the_instance_type_comes_from() -> None:
    def launch(settings: object) -> Launch:
        return Launch("r", "p", "s", 1, "j", "m", "res", ("python",), settings=settings)

    operator = Component(ComponentKind.STEP_OPERATOR, "gpu", "fakecloud")
    configured = attrs.evolve(operator, config=SimpleNamespace(instance_type="ml.g5.xlarge"))
    assert instance_type_of(launch(CloudSettings("ml.m5.large")), configured) == "ml.m5.large"
    assert instance_type_of(launch({"instance_type": "ml.c5.xlarge"}), operator) == "ml.c5.xlarge"
    assert instance_type_of(launch(None), configured) == "ml.g5.xlarge"
    assert instance_type_of(launch(None), operator) is None


# ---- installed as a distribution ------------------------------------------------------------


def test_the_installed_entry_point_loads(stepframe_plugins) -> None:
    try:
        metadata.distribution("stepframe-policy")
    except metadata.PackageNotFoundError:
        pytest.skip("stepframe-policy is not installed (running from a checkout)")
    plugins = stepframe_plugins(load=("policy",))
    info = plugins.infos["policy"]
    assert (info.distribution, info.module, info.hooks) == (
        "stepframe-policy",
        "stepframe_policy.plugin",
        ("check_step", "submit_step"),
    )


def test_a_refused_job_is_not_left_in_the_job_ledger(
    stepframe_plugins, stepframe_project, monkeypatch
) -> None:
    monkeypatch.setenv("STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES", ALLOWED)
    plugins = stepframe_plugins(("policy", plugin), FakeCloud())
    pipe = stepframe_project.load(CLOUD.format(instance_type="ml.p4d.24xlarge"))
    with pytest.raises(stepframe.ConfigError):
        stepframe_project.run(pipe, plugins=plugins)
    assert stepframe_project.runs() == []  # no run, no ledger, no job
