"""A cloud operator's local mode: its job's container spec, run by the ``docker`` operator.

A cloud flavor (``vertex``, ``azureml``) builds its job's body exactly as for the cloud,
takes the container spec out of it (command, environment, the chief's variables for one
node) and hands that here.  Submit, poll (the container's log with a byte cursor), cancel
and find are the docker operator's; the handle stays the cloud flavor's, carrying the
docker one, so ``stepframe jobs`` and resumed runs find it like any job of that flavor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from stepframe import Component, ComponentKind, JobHandle, JobNotFound, JobStatus, Launch

__all__ = ["CloudLocalMode"]


@attrs.frozen
class CloudLocalMode:
    """The local mode of one cloud operator flavor.

    :param flavor: the cloud flavor whose handles this mode returns (``azureml``).
    """

    flavor: str

    @staticmethod
    def is_local(handle: JobHandle) -> bool:
        """Whether a cloud flavor's handle is one of its local mode's containers."""
        return bool(handle.data.get("local"))

    def submit(
        self,
        launch: Launch,
        operator: Component,
        command: Sequence[str],
        environment: Mapping[str, str],
    ) -> JobHandle:
        """Start the container: the launch's image with the job's command and variables."""
        from stepframe_docker import plugin as docker

        container = _container_launch(launch, command, environment)
        handle = docker.submit_step(container, _docker_operator(operator.name), None)
        assert handle is not None  # the docker flavor's own hook always answers
        return self._wrap(handle, operator)

    def poll(self, handle: JobHandle, cursor: str | None) -> JobStatus:
        from stepframe_docker import plugin as docker

        status = docker.poll_step(_unwrap(handle), None, cursor)
        assert status is not None
        return attrs.evolve(status, detail=f"local mode {status.detail}".strip())

    def cancel(self, handle: JobHandle) -> bool:
        from stepframe_docker import plugin as docker

        return bool(docker.cancel_step(_unwrap(handle), None))

    def find(
        self,
        launch: Launch,
        operator: Component,
        command: Sequence[str],
        environment: Mapping[str, str],
    ) -> JobHandle | JobNotFound | None:
        """The container of a launch whose submit answer was lost (by the job's name)."""
        from stepframe_docker import plugin as docker

        container = _container_launch(launch, command, environment)
        found = docker.find_job(container, _docker_operator(operator.name), None)
        if isinstance(found, JobHandle):
            return self._wrap(found, operator)
        return found

    def _wrap(self, handle: JobHandle, operator: Component) -> JobHandle:
        return JobHandle(
            flavor=self.flavor,
            operator=operator.name,
            job_id=handle.job_id,
            data={"local": True, "docker_operator": handle.operator, "docker": dict(handle.data)},
        )


def _docker_operator(operator_name: str) -> Component:
    from stepframe_docker._settings import DockerOperatorConfig

    return Component(ComponentKind.STEP_OPERATOR, operator_name, "docker", DockerOperatorConfig())


def _container_launch(
    launch: Launch, command: Sequence[str], environment: Mapping[str, str]
) -> Launch:
    from stepframe_docker._settings import DockerSettings

    # Like the cloud job, the container gets no credentials from the client: it reaches
    # the store with what its environment gives it.
    return attrs.evolve(
        launch,
        command=tuple(command),
        environment=dict(environment),
        settings=DockerSettings(),
        store_credentials=None,
    )


def _unwrap(handle: JobHandle) -> JobHandle:
    return JobHandle(
        "docker", str(handle.data["docker_operator"]), handle.job_id, handle.data["docker"]
    )
