"""Hook specifications: the whole contract between the core and plugins.

Hooks are always called with keyword arguments.  Selection hooks are
``firstresult=True``: an implementation returns ``None`` for a component or job whose
flavor is not its own, and the first non-``None`` answer wins, the way pytest's
collection hooks work.  Cross-cutting plugins (tags, cost policy, tracing) wrap a hook
with ``@hookimpl(wrapper=True)``.

The core never calls ``pm.hook.<name>`` directly; it goes through
`stepframe._plugins.facade.Hooks`, which checks what plugins return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stepframe._plugins.markers import hookspec

if TYPE_CHECKING:
    from stepframe._artifacts.materializer import Materializer
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._types import (
        Component,
        ConnectorReport,
        Credentials,
        Flavor,
        ImageRef,
        ImageRequest,
        JobHandle,
        JobNotFound,
        JobStatus,
        Launch,
        ResourceRequest,
        StepResult,
    )

# -------------------------------------------------------------------------------------
# Registration: called once when the plugin manager is built.
# -------------------------------------------------------------------------------------


@hookspec
def register_flavors(register: Callable[[Flavor], None]) -> None:
    """Declare the component flavors this plugin implements.

    :param register: call it once per `Flavor`; the flavor's config and settings
        classes are attrs classes that cattrs validates user input against.
    """


@hookspec
def register_materializers(register: Callable[[Materializer], None]) -> None:
    """Add materializers for types the built-in ones do not handle well.

    :param register: call it once per `Materializer` instance.  Plugin materializers are
        asked before the built-in JSON, bytes, path, numpy and pickle ones.
    """


# -------------------------------------------------------------------------------------
# Preparing a remote step: images and credentials.
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def build_image(request: ImageRequest, builder: Component) -> ImageRef | None:
    """Build (or find already built) the image a remote step runs in, and push it.

    Called once per distinct image a run needs.  Implementations should content-hash
    the request so that an unchanged project builds and pushes nothing.

    :param request: what goes into the image.
    :param builder: the stack's image builder component; return None unless its flavor
        is yours.
    :return: the pushed image, by digest where the registry gives one.
    """


@hookspec(firstresult=True)
def authenticate(connector: Component, resource: ResourceRequest) -> Credentials | None:
    """Hand out credentials for a resource through a connector.

    :param connector: the connector component; return None unless its flavor is yours.
    :param resource: what the credentials are for (generic, object store, registry).
    :return: credentials, short-lived and refreshable where the method allows.
    """


@hookspec(firstresult=True)
def prepare_repository(
    registry: Component, repository: str, credentials: Credentials | None
) -> bool | None:
    """Make a container registry ready to receive a push to ``repository``.

    Image builders reach this hook through ``ImageRequest.prepare_repository`` before they
    check or push a tag.  Registries that create repositories on the first push need no
    implementation; ECR, where a push to a missing repository fails, creates it here.

    :param registry: the container registry component; return None unless its flavor
        is yours.
    :param repository: the repository without a tag, ``HOST/NAME``.
    :param credentials: from the registry's connector (resource kind ``generic``), or None.
    :return: True once the repository exists.
    """


@hookspec(firstresult=True)
def verify_connector(
    connector: Component, resources: list[ResourceRequest]
) -> ConnectorReport | None:
    """Check that a connector authenticates and reaches what it is used for.

    ``stepframe connector verify NAME`` calls it with the resources of every component
    that uses the connector.  Each check should be cheap and read-only.

    :param connector: the connector component; return None unless its flavor is yours.
    :param resources: what the components using the connector need it for (always at
        least one ``generic`` request).
    :return: who the connector authenticated as, and a line per resource checked.
    :raises ConnectorError: with a message naming what is wrong (the key, the token's
        expiry, the role that cannot be assumed, the bucket that cannot be read).
    """


# -------------------------------------------------------------------------------------
# Running a step: submit, poll, fetch, cancel.
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    """Start one step as a job on the operator's backend, and return at once.

    The job runs ``launch.command`` (``python -m stepframe.entrypoint MANIFEST_URI``)
    with ``launch.environment``; it finds everything else in the launch manifest.

    :param launch: the step attempt to start.
    :param operator: the step operator component; return None unless its flavor is yours.
    :param credentials: from the operator's connector, or None when it has none.
    :return: a handle from which the job can be found again, even by another process.
    :raises StepframeError: to refuse the launch before anything reached the backend (the
        job ledger records it as failed); any other exception leaves the job recorded as
        possibly submitted, for the user to check.
    """


@hookspec(firstresult=True)
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    """Report a job's state and the log lines it wrote since ``cursor``.

    :param handle: the job; return None unless ``handle.flavor`` is yours.
    :param credentials: from the operator's connector, or None.
    :param cursor: the ``cursor`` of the previous status, or None on the first poll.
    :return: the job's status; must not block for long.
    """


@hookspec(firstresult=True)
def fetch_artifacts(handle: JobHandle, launch: Launch) -> StepResult | None:
    """Read what a finished job produced: its output artifacts, or its error.

    When no plugin answers, the core reads the result manifest the entrypoint wrote to
    ``launch.result_uri``; a flavor implements this only to get results some other way.

    :param handle: the finished job.
    :param launch: the launch it was started with (``launch.result_uri``).
    :return: the step's outputs by name or the remote error, or None to leave it to
        the core.
    """


@hookspec(firstresult=True)
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    """Stop a running job.  Called on Ctrl-C, SIGTERM and ``stepframe jobs stop``.

    :param handle: the job; return None unless ``handle.flavor`` is yours.
    :param credentials: from the operator's connector, or None.
    :return: True once the job is stopping (or already ended).
    """


@hookspec(firstresult=True)
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    """Find the job of a launch whose ``submit_step`` answer was lost.

    Called when ``submit_step`` raised `SubmitAmbiguousError` (or an error that is not a
    `StepframeError`, which proves nothing either), and again on ``run --resume`` and
    ``stepframe jobs list`` for a ledger row that is still *possibly submitted*.  Look the
    job up by ``launch.job_name`` (or a label derived from it) without creating anything.

    :param launch: the launch that was being submitted, as it was (its ``job_name`` is
        deterministic per run, step and attempt).
    :param operator: the step operator component that submitted it.
    :param credentials: from the operator's connector, or None.
    :return: the job's handle if it exists (after checking it is ours: its image and
        tags), `JobNotFound` if the backend proves no such job exists, or None if this
        operator cannot tell; the ledger then shows the job as ``unknown``, never as
        failed, so nobody forgets a job that may be running and paid for.
    """


# -------------------------------------------------------------------------------------
# Storage.
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def open_artifact_store(uri: str, credentials: Credentials | None) -> ArtifactStore | None:
    """Open the artifact store that ``uri`` lives in.

    Called on the client and inside job containers (where credentials come from the
    job's own role, so ``credentials`` may be None).

    :param uri: a store root or any object URI below it; return None unless you handle
        its scheme (``file``, ``s3``, ...).
    :param credentials: from the artifact store's connector, or None.
    """
