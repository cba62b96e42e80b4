"""A typed facade over the plugin hooks, the only way the core calls plugins.

pluggy does not check what implementations return.  Each method here names the hook,
passes keyword arguments, and turns "no plugin answered" or "a plugin answered with the
wrong type" into errors that name the flavor and the fix.
"""

from __future__ import annotations

from typing import TypeVar

import pluggy

from stepframe._artifacts.store import ArtifactStore
from stepframe._types import (
    Component,
    ConnectorReport,
    Credentials,
    ImageRef,
    ImageRequest,
    JobHandle,
    JobNotFound,
    JobStatus,
    Launch,
    ResourceRequest,
    StepResult,
)
from stepframe.exceptions import PluginError

__all__ = ["Hooks"]

_T = TypeVar("_T")


def _wrong_type(hook: str, value: object, expected: type, who: str) -> PluginError:
    return PluginError(
        f"the plugin answering {hook} for {who} returned {type(value).__name__}, "
        f"expected {expected.__name__}; this is a bug in that plugin"
    )


def _checked(hook: str, value: object, expected: type[_T], who: str) -> _T:
    if not isinstance(value, expected):
        raise _wrong_type(hook, value, expected, who)
    return value


def _nobody(hook: str, who: str) -> PluginError:
    return PluginError(
        f"no installed plugin implements {hook} for {who}; "
        "install the plugin that provides that flavor (see `stepframe plugins`)"
    )


class Hooks:
    """One typed method per hook."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._hook = manager.hook

    def build_image(self, request: ImageRequest, builder: Component) -> ImageRef:
        who = f"image builder {builder.name!r} (flavor {builder.flavor!r})"
        value = self._hook.build_image(request=request, builder=builder)
        if value is None:
            raise _nobody("build_image", who)
        return _checked("build_image", value, ImageRef, who)

    def authenticate(self, connector: Component, resource: ResourceRequest) -> Credentials:
        who = f"connector {connector.name!r} (flavor {connector.flavor!r})"
        value = self._hook.authenticate(connector=connector, resource=resource)
        if value is None:
            raise _nobody("authenticate", who)
        return _checked("authenticate", value, Credentials, who)

    def prepare_repository(
        self, registry: Component, repository: str, credentials: Credentials | None
    ) -> None:
        """Let the registry's flavor create ``repository``; no answer means nothing to do."""
        self._hook.prepare_repository(
            registry=registry, repository=repository, credentials=credentials
        )

    def verify_connector(
        self, connector: Component, resources: list[ResourceRequest]
    ) -> ConnectorReport:
        who = f"connector {connector.name!r} (flavor {connector.flavor!r})"
        value = self._hook.verify_connector(connector=connector, resources=resources)
        if value is None:
            raise PluginError(
                f"no installed plugin can verify {who}; its plugin does not implement "
                "verify_connector"
            )
        return _checked("verify_connector", value, ConnectorReport, who)

    def submit_step(
        self, launch: Launch, operator: Component, credentials: Credentials | None
    ) -> JobHandle:
        who = f"step operator {operator.name!r} (flavor {operator.flavor!r})"
        value = self._hook.submit_step(launch=launch, operator=operator, credentials=credentials)
        if value is None:
            raise _nobody("submit_step", who)
        return _checked("submit_step", value, JobHandle, who)

    def poll_step(
        self, handle: JobHandle, credentials: Credentials | None, cursor: str | None
    ) -> JobStatus:
        who = f"job {handle.job_id!r} (flavor {handle.flavor!r})"
        value = self._hook.poll_step(handle=handle, credentials=credentials, cursor=cursor)
        if value is None:
            raise _nobody("poll_step", who)
        return _checked("poll_step", value, JobStatus, who)

    def fetch_artifacts(self, handle: JobHandle, launch: Launch) -> StepResult | None:
        """The flavor's own result, or None to let the core read the result manifest."""
        value = self._hook.fetch_artifacts(handle=handle, launch=launch)
        if value is None:
            return None
        return _checked("fetch_artifacts", value, StepResult, f"job {handle.job_id!r}")

    def cancel_step(self, handle: JobHandle, credentials: Credentials | None) -> bool:
        who = f"job {handle.job_id!r} (flavor {handle.flavor!r})"
        value = self._hook.cancel_step(handle=handle, credentials=credentials)
        if value is None:
            raise _nobody("cancel_step", who)
        return bool(value)

    def find_job(
        self, launch: Launch, operator: Component, credentials: Credentials | None
    ) -> JobHandle | JobNotFound | None:
        """The job of a launch whose submit answer was lost; None when nobody can tell."""
        who = f"step operator {operator.name!r} (flavor {operator.flavor!r})"
        value = self._hook.find_job(launch=launch, operator=operator, credentials=credentials)
        if value is None:
            return None
        if not isinstance(value, (JobHandle, JobNotFound)):
            raise _wrong_type("find_job", value, JobHandle, who)
        return value

    def open_artifact_store(self, uri: str, credentials: Credentials | None) -> ArtifactStore:
        who = f"artifact URI {uri!r}"
        value = self._hook.open_artifact_store(uri=uri, credentials=credentials)
        if value is None:
            raise _nobody("open_artifact_store", who)
        if not isinstance(value, ArtifactStore):  # an abstract class: _checked cannot take it
            raise _wrong_type("open_artifact_store", value, ArtifactStore, who)
        return value
