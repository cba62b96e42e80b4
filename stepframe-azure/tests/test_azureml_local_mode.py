"""``azureml`` local mode (``instance_type = "local"``) on the real Docker engine.

The step's image is built by stepframe-docker from the test's code root and pushed to the
registry on 127.0.0.1:5000; the command job's body is built as for AzureML and its
container (image by digest, ``sh -c COMMAND``, the job's variables and a one-node
AzureML's) runs through stepframe-docker's operator, with the local artifact store
mounted.  Nothing may reach AzureML: the operator's endpoint is a port nothing listens on,
and it has no workspace coordinates at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _docker_host import build_step_image, docker_host  # noqa: F401 (a fixture)
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._azureml.local_mode import container_spec

import stepframe_docker
from stepframe import Component, ComponentKind, ImageRef, Launch, Plugins
from stepframe.testing import StepOperatorSuite

# An operator registered without a workspace (no subscription, resource group or
# workspace: local mode needs none, from the pre-flight to the container's end), whose
# endpoints are a port nothing listens on: a call to AzureML would fail at once.
NOWHERE = "http://127.0.0.1:9"
CONFIG = AzureMLOperatorConfig(endpoint=NOWHERE, history_endpoint=NOWHERE)


class TestAzureMLLocalMode(StepOperatorSuite):
    flavor = "azureml"
    plugin_names = ("azure", "docker")
    supports_find_job = True  # the container, by the launch's job name
    job_timeout: ClassVar[float] = 300.0

    @pytest.fixture(autouse=True)
    def _docker(self, docker_host: dict[str, str]) -> Iterator[None]:  # noqa: F811
        self.host = docker_host
        stepframe_docker.forget_builds()
        yield
        stepframe_docker.forget_builds()

    def make_operator(self, plugins: Plugins, tmp_path: Path | None = None) -> Component:
        return Component(ComponentKind.STEP_OPERATOR, "azureml", "azureml", CONFIG)

    def stack_config(self, tmp_path: Path | None = None) -> str | None:
        return f"""
active_stack = "azureml-local"

[image_builders.docker]
flavor = "docker"
parent_image = "{self.host["base_image"]}"

[container_registries.local]
flavor = "default"
uri = "{self.host["registry"]}"

[step_operators.azureml]
flavor = "azureml"
endpoint = "{NOWHERE}"
history_endpoint = "{NOWHERE}"

[stacks.azureml-local]
image_builder = "docker"
container_registry = "local"
step_operators = ["azureml"]
"""

    def step_settings(self) -> Mapping[str, Any]:
        return {"instance_type": "local"}

    def job_name_of(self, handle: Any, launch: Any) -> str:
        return str(handle.data["docker"]["name"])

    def make_image(self, plugins: Plugins, code_root: Path) -> ImageRef | None:
        return build_step_image(plugins, self.host, code_root)


def _launch(**settings: Any) -> Launch:
    return Launch(
        run_id="r1",
        pipeline="training",
        step="train",
        attempt=1,
        job_name="training-r1-train-1",
        manifest_uri="file:///tmp/m.json",
        result_uri="file:///tmp/r.json",
        command=("python", "-m", "stepframe.entrypoint", "file:///tmp/m.json"),
        environment={"STEPFRAME_MANIFEST_URI": "file:///tmp/m.json"},
        settings=AzureMLSettings(instance_type="local", **settings),
    )


def test_the_container_gets_the_jobs_command_and_a_one_node_azureml_environment() -> None:
    operator = Component(ComponentKind.STEP_OPERATOR, "azureml", "azureml", CONFIG)
    launch = _launch(environment={"EPOCHS": "3"})

    command, environment = container_spec(launch, operator, launch.settings)

    assert command == ["/bin/sh", "-c", "python -m stepframe.entrypoint file:///tmp/m.json"]
    assert environment == {
        "EPOCHS": "3",
        "STEPFRAME_MANIFEST_URI": "file:///tmp/m.json",
        "AZUREML_NODE_COUNT": "1",
    }
    from stepframe import current_job

    assert current_job(environment).is_main


def test_a_pytorch_distribution_gets_torch_distributeds_variables_for_one_process() -> None:
    operator = Component(ComponentKind.STEP_OPERATOR, "azureml", "azureml", CONFIG)
    launch = _launch(distribution="pytorch", process_count_per_instance=2, instance_count=2)

    _, environment = container_spec(launch, operator, launch.settings)

    assert {key: environment[key] for key in ("RANK", "WORLD_SIZE", "NODE_RANK")} == {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "NODE_RANK": "0",
    }
    from stepframe import current_job

    job = current_job(environment)
    assert (job.rank, job.world_size, job.num_hosts, job.is_main) == (0, 1, 1, True)
