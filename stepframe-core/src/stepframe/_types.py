"""The values that cross the hook boundary between the core and plugins.

They are small frozen attrs classes so that plugins in other distributions can build and
read them without importing anything private, and so that cattrs can turn the
JSON-friendly ones (handles, refs) into rows of the run history and back.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "ArtifactRef",
    "Component",
    "ComponentKind",
    "ConnectorReport",
    "Credentials",
    "Flavor",
    "ImageRef",
    "ImageRequest",
    "JobHandle",
    "JobState",
    "JobStatus",
    "Launch",
    "PlannedStep",
    "RemoteError",
    "ResourceRequest",
    "StepResult",
]


class ComponentKind(str, enum.Enum):
    """The kinds of stack component a flavor can implement."""

    ARTIFACT_STORE = "artifact_store"
    IMAGE_BUILDER = "image_builder"
    CONTAINER_REGISTRY = "container_registry"
    STEP_OPERATOR = "step_operator"
    CONNECTOR = "connector"


@attrs.frozen
class Flavor:
    """One implementation of a component kind, registered by a plugin.

    :param kind: the component kind it implements.
    :param name: the flavor's name, unique within its kind (``"sagemaker"``).
    :param config_class: attrs class for the component's configuration, or None.
    :param settings_class: attrs class for per-step settings, or None.
    :param description: one line shown by ``stepframe flavor list``.
    :param needs_image: for step operators: the step runs in a container image, so the
        core builds one with the stack's image builder before submitting.
    :param jobs_outlive_client: for step operators: a job keeps running when the
        orchestrating process dies, so ``run --resume`` re-attaches to it instead of
        submitting the step again.
    :param uri_schemes: for artifact stores: the URI schemes it opens (``("s3",)``);
        ``open_artifact_store`` is called for those URIs on this flavor's plugin only.
    :param image_platform: for step operators that ``needs_image``: the only platform
        (``OS/ARCH``, e.g. ``"linux/amd64"`` for SageMaker) its backend runs images on.
        The core passes it on as `ImageRequest.platform`; None lets the builder choose.
        New in stepframe-core 0.1 (issue 13); older plugins leave it None.
    """

    kind: ComponentKind
    name: str
    config_class: type | None = None
    settings_class: type | None = None
    description: str = ""
    needs_image: bool = False
    jobs_outlive_client: bool = True
    uri_schemes: tuple[str, ...] = ()
    image_platform: str | None = None


@attrs.frozen
class Component:
    """A configured stack component: a flavor plus its validated configuration.

    :param kind: the component kind.
    :param name: the name the user gave it (a step's ``operator=`` refers to this).
    :param flavor: the flavor's name; selection hooks compare against it.
    :param config: an instance of the flavor's ``config_class``, or None.
    :param connector: name of the connector component it authenticates with, if any.
    """

    kind: ComponentKind
    name: str
    flavor: str
    config: Any = None
    connector: str | None = None


@attrs.frozen
class ImageRequest:
    """Everything an image builder needs to produce one image.

    :param code_root: absolute path of the project code copied into the image.
    :param requirements: pip requirement lines.
    :param parent_image: the base image, or None for the builder's default.
    :param environment: variables baked into the image.
    :param target_registry: the container registry component to push to, if any.
    :param settings: the builder flavor's per-step settings instance, if any.
    :param registry_credentials: login for ``target_registry`` from its connector, or None
        to push with the engine's own login.  ``values`` holds ``username``, ``password``
        and ``registry`` (the server to log in to).
    :param prepare_repository: builders call it with the repository they are about to
        check or push to (``HOST/NAME``), before touching the registry; it runs the
        ``prepare_repository`` hook, which creates the repository where the registry's
        flavor needs that (ECR).  None when there is no target registry.
    :param progress: builders may call it with a short line on how the build goes (the
        build step it is on, bytes pulled or pushed); the run shows it beside the step.
        None when nobody shows it.
    :param platform: the platform (``OS/ARCH``) the image must run on, set from the step
        operator flavor's ``image_platform`` (SageMaker: ``"linux/amd64"``), or None
        when the operator does not care (the builder's own default then).  Builders
        hash it with the image's contents, build for it, and refuse an image whose
        architecture differs (an Apple-silicon laptop building for SageMaker).
    """

    code_root: str
    requirements: tuple[str, ...] = ()
    parent_image: str | None = None
    environment: Mapping[str, str] = attrs.field(factory=dict)
    target_registry: Component | None = None
    settings: Any = None
    registry_credentials: Credentials | None = attrs.field(default=None, repr=False)
    prepare_repository: Callable[[str], None] | None = attrs.field(
        default=None, repr=False, eq=False
    )
    progress: Callable[[str], None] | None = attrs.field(default=None, repr=False, eq=False)
    platform: str | None = None


@attrs.frozen
class ImageRef:
    """A built image.  Steps run by digest, not by a moving tag."""

    uri: str
    digest: str | None = None


@attrs.frozen
class ResourceRequest:
    """What a connector is asked to authenticate for.

    :param kind: ``"generic"``, ``"object_store"``, ``"container_registry"``, or
        ``"execution_role"`` (``connector verify`` only: may the connector pass the role
        ``resource_id`` to the jobs an operator submits through it?).
    :param resource_id: the bucket, registry URI or similar, when the kind needs one.
    """

    kind: str = "generic"
    resource_id: str | None = None


@attrs.frozen
class Credentials:
    """Credentials handed out by a connector.  Values never appear in ``repr``.

    :param connector: name of the connector component that issued them.
    :param resource: what they are good for.
    :param values: the secret material; the shape is the connector flavor's business.
    :param expires_at: UNIX time after which they stop working, or None.
    :param refresh: returns new credentials; the core calls it shortly before expiry.
    """

    connector: str
    resource: ResourceRequest
    values: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    expires_at: float | None = None
    refresh: Callable[[], Credentials] | None = attrs.field(default=None, repr=False, eq=False)

    def fresh(self, margin_seconds: float = 300.0) -> Credentials:
        """Return these credentials, or refreshed ones if they expire within the margin."""
        if self.refresh is None or self.expires_at is None:
            return self
        if self.expires_at - time.time() > margin_seconds:
            return self
        return self.refresh()


@attrs.frozen
class ConnectorReport:
    """What ``stepframe connector verify`` prints: who the connector is, what it reached.

    :param identity: who the credentials authenticate as (an ARN, a user name).
    :param checks: one line per resource checked (``s3 bucket my-bucket: readable``).
    """

    identity: str
    checks: tuple[str, ...] = ()


@attrs.frozen
class Launch:
    """One attempt to run one step somewhere other than the orchestrator's own code.

    :param run_id: the run's id.
    :param pipeline: the pipeline's name.
    :param step: the step's name within the pipeline.
    :param attempt: 1 for the first attempt, counting up on retries and resumes.
    :param job_name: unique per run, step and attempt; lowercase ``[a-z0-9-]``.  Flavors
        with tighter limits shorten it themselves.
    :param manifest_uri: where the launch manifest is stored.
    :param result_uri: where the entrypoint writes the result manifest.
    :param command: the program the job runs: ``python -m stepframe.entrypoint URI``.
    :param environment: variables the job needs (never client credentials).
    :param settings: the operator flavor's settings instance (or a plain mapping).
    :param image: the image to run, for operators whose flavor ``needs_image``.
    :param code_root: absolute path of the project code on the client.
    :param workdir: a client-side folder for operators that keep local files (logs);
        it survives the orchestrator, so a resumed run finds them again.
    :param store_credentials: the artifact store's credentials from its connector, or
        None.  Only operators whose jobs run on this machine, as the user, may hand them
        to a job (the ``local`` operator does); a remote job must find the store with its
        own role, and never gets them.
    """

    run_id: str
    pipeline: str
    step: str
    attempt: int
    job_name: str
    manifest_uri: str
    result_uri: str
    command: tuple[str, ...]
    environment: Mapping[str, str] = attrs.field(factory=dict)
    settings: Any = None
    image: ImageRef | None = None
    code_root: str = "."
    workdir: str = "."
    store_credentials: Credentials | None = attrs.field(default=None, repr=False)


@attrs.frozen
class JobHandle:
    """Enough to find a submitted job again, even from another process.

    :param flavor: the operator flavor that submitted it; selection hooks compare it.
    :param operator: the operator component's name.
    :param job_id: the backend's id (SageMaker job name, container id, PID).
    :param data: JSON-friendly extras the flavor needs (region, log paths, ...).
    """

    flavor: str
    operator: str
    job_id: str
    data: Mapping[str, Any] = attrs.field(factory=dict)


class JobState(str, enum.Enum):
    """Where a job is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@attrs.frozen
class JobNotFound:
    """``find_job``'s answer when the backend proves that no job of that name exists.

    Returning it lets the core submit the attempt's successor; returning ``None`` instead
    ("cannot tell") leaves the job in the ledger as ``unknown``, never silently failed.

    :param reason: what the backend said (shown in ``stepframe jobs list``).
    """

    reason: str = ""


@attrs.frozen
class JobStatus:
    """One poll's answer.

    :param state: the job's state.
    :param log_lines: log lines since the cursor that was passed in.
    :param cursor: where the next poll should continue the logs from.
    :param detail: a backend-specific status to show (SageMaker's secondary status).
    :param failure_reason: the backend's reason when the state is FAILED.
    :param poll_after: seconds the backend suggests waiting before the next poll.
    :param retryable: the job FAILED for a reason that a new attempt may not meet (its
        spot capacity was reclaimed, a host died); ``@step(retries=..., retry_on=
        "retryable")`` retries only such failures.
    """

    state: JobState
    log_lines: tuple[str, ...] = ()
    cursor: str | None = None
    detail: str = ""
    failure_reason: str | None = None
    poll_after: float | None = None
    retryable: bool = False


@attrs.frozen
class ArtifactRef:
    """A stored artifact: where it is, what it hashes to, and how to load it."""

    uri: str
    sha256: str
    size: int
    materializer: str
    type_name: str = ""


@attrs.frozen
class RemoteError:
    """An exception raised by a step where it ran, carried back as text."""

    type: str
    message: str
    traceback: str = ""


@attrs.frozen
class StepResult:
    """What a step produced: its outputs by name, or the error it raised."""

    outputs: Mapping[str, ArtifactRef] = attrs.field(factory=dict)
    error: RemoteError | None = None


# ---- the pre-flight hook's view of a step (hook contract, second edition) -------------


@attrs.frozen
class PlannedStep:
    """One step of a planned run, as ``check_step`` sees it before anything runs.

    :param pipeline: the pipeline's name.
    :param step: the step's name within the pipeline.
    :param operator: the step operator component the step runs on.
    :param settings: the operator flavor's settings for the step, validated into its
        ``settings_class`` (or the raw mapping when it has none).
    :param settings_by_flavor: every flavor's merged settings for the step, as mappings
        (the image builder's are under its flavor's name).
    :param needs_image: the operator's flavor runs steps in a container image.
    :param code_root: absolute path of the project code (what an image would copy in).
    :param stack: the name of the stack the run uses.
    :param artifact_store: the stack's artifact store component.
    :param artifact_store_uri: the store's root URI.
    :param image_builder: the stack's image builder, or None.
    :param container_registry: the stack's container registry, or None.
    """

    pipeline: str
    step: str
    operator: Component
    settings: Any = None
    settings_by_flavor: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    needs_image: bool = False
    code_root: str = "."
    stack: str = ""
    artifact_store: Component | None = None
    artifact_store_uri: str = ""
    image_builder: Component | None = None
    container_registry: Component | None = None


# ---- cost estimates (issue 13: `stepframe runs show --price`) ----------------------


@attrs.frozen
class CostEstimate:
    """What one finished job cost, as its operator's plugin estimates it
    (`estimate_cost`).  An estimate: list prices, no network price look-up.

    :param amount: the estimate, in ``currency``.
    :param currency: an ISO 4217 code (``"USD"``).
    :param basis: one line on how it was reckoned: instances, billed time, the price per
        hour, savings (``"2 x ml.m5.large, 1,234 billable s at $0.115/h"``).
    :param prices: where the prices came from, with their date and region (a table
        shipped with the plugin, or the user's), since they are not looked up.
    """

    amount: float
    currency: str = "USD"
    basis: str = ""
    prices: str = ""
