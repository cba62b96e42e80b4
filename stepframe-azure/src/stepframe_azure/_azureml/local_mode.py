"""Local mode (``instance_type = "local"``): the command job's own container, run on the
user's Docker engine through stepframe-docker's `CloudLocalMode`.

The job body is built exactly as for AzureML (`build_job_body`); what runs is its
container: the environment's image (the step's image by digest), the job's ``command``
in a shell (``sh -c``) as AzureML runs it, its ``environmentVariables``, and the
variables AzureML gives the first node of a one-node job (``AZUREML_NODE_COUNT``, and
with a PyTorch distribution torch.distributed's, for one process), so
`stepframe.current_job()` sees what it would see there.  Nothing is sent to AzureML and the
operator's workspace coordinates are never read (an operator without them runs local
mode), and the container gets no credentials from the client: it reaches the
artifact store with what its environment gives it, as a job does.  Handles say
``mode = "local"`` and carry the docker one, so ``stepframe jobs`` and resumed runs find
them like any azureml job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepframe import Component, JobHandle, JobNotFound, JobStatus, Launch
from stepframe_azure._azureml.config import FLAVOR, AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._azureml.request import build_job_body, job_name

if TYPE_CHECKING:
    from stepframe_docker import CloudLocalMode

__all__ = ["cancel", "container_spec", "find", "poll", "submit"]

# What AzureML sets on the only node of a one-node job; with a PyTorch distribution, what
# it sets for the one process (torch.distributed's env:// rendezvous on this host).
_ONE_NODE = {"AZUREML_NODE_COUNT": "1"}
_ONE_TORCH_PROCESS = {
    "NODE_RANK": "0",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "WORLD_SIZE": "1",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


def _mode() -> CloudLocalMode:
    from stepframe_docker import CloudLocalMode

    return CloudLocalMode(FLAVOR)


# The operator's config is never read: the container's command, variables and
# distribution come from the launch and the settings, and what the config holds (the
# workspace's coordinates, endpoints, compute defaults) only matters to AzureML, which is
# never called; so local mode works with an operator registered without a workspace.
_NO_WORKSPACE = AzureMLOperatorConfig()


def container_spec(
    launch: Launch, operator: Component, settings: AzureMLSettings
) -> tuple[list[str], dict[str, str]]:
    """The command and environment the job's container gets on AzureML's first node."""
    body = build_job_body(launch, _NO_WORKSPACE, settings, job_name(launch.job_name))
    properties = body["properties"]
    environment: dict[str, str] = {**properties["environmentVariables"], **_ONE_NODE}
    distribution: dict[str, Any] = properties.get("distribution") or {}
    if distribution.get("distributionType") == "PyTorch":
        environment.update(_ONE_TORCH_PROCESS)
    # AzureML runs a command job's command line in a shell.
    return ["/bin/sh", "-c", str(properties["command"])], environment


def submit(launch: Launch, operator: Component, settings: AzureMLSettings) -> JobHandle:
    command, environment = container_spec(launch, operator, settings)
    return _tagged(_mode().submit(launch, operator, command, environment))


def poll(handle: JobHandle, cursor: str | None) -> JobStatus:
    return _mode().poll(handle, cursor)


def cancel(handle: JobHandle) -> bool:
    return _mode().cancel(handle)


def find(
    launch: Launch, operator: Component, settings: AzureMLSettings
) -> JobHandle | JobNotFound | None:
    command, environment = container_spec(launch, operator, settings)
    found = _mode().find(launch, operator, command, environment)
    return _tagged(found) if isinstance(found, JobHandle) else found


def _tagged(handle: JobHandle) -> JobHandle:
    """The handle as jobs.py tells local jobs from AzureML's: ``mode = "local"``."""
    return JobHandle(
        handle.flavor, handle.operator, handle.job_id, {**handle.data, "mode": "local"}
    )
