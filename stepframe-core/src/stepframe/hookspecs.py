"""Hook specifications: the whole contract between the core and plugins (second edition).

Hooks are always called with keyword arguments.

Selection hooks (``firstresult=True``) are dispatched by flavor: for a component, or a
job handle, of flavor F the core calls the implementation of the plugin that registered
F and no other plugin's; for an artifact store URI, the plugin whose store flavor declares
the URI's scheme (`Flavor.uri_schemes`).  An implementation therefore needs no
``if x.flavor != FLAVOR: return None``; one that still has it keeps working.  For a
flavor no plugin registered nobody is asked (the hook has no answer).  A URI whose scheme
no flavor declares is offered, first answer wins, to the plugins whose store flavors
declare no scheme: first-edition stores that return None for URIs not theirs.

Cross-cutting plugins (tags, cost policy, tracing) wrap a hook with
``@hookimpl(wrapper=True)``: wrappers see every call, whichever flavor it is for.

``check_step`` (the pre-flight) is a collecting hook: every answer counts.

The core never calls ``pm.hook.<name>`` directly; it goes through
`stepframe._plugins.facade.Hooks`, which dispatches and checks what plugins return.

Versioning: hooks are added with a default-compatible meaning (a plugin that does not
implement a new hook keeps working); a hook to be removed is first marked deprecated in
its docstring and warned about by pluggy (``warn_on_impl``) for a whole minor series.
docs/plugins.md, "Hook versioning", has the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from stepframe._plugins.markers import hookspec

if TYPE_CHECKING:
    import click

    from stepframe._artifacts.materializer import Materializer
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._types import (
        Component,
        ConnectorReport,
        CostEstimate,
        Credentials,
        Flavor,
        ImageRef,
        ImageRequest,
        JobHandle,
        JobNotFound,
        JobStatus,
        Launch,
        PlannedStep,
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
# Pre-flight: called for every step of the plan before anything runs or is built.
# -------------------------------------------------------------------------------------


@hookspec
def check_step(step: PlannedStep, component: Component) -> list[str] | None:
    """Check a step's settings against the backend's rules, before anything runs.

    The core calls it for every step of a run's plan (and for ``stepframe run
    --dry-run``), once per component the step uses: its operator and, when the
    operator's flavor ``needs_image``, the stack's image builder and container registry.
    It is called on the plugin that registered ``component.flavor``, and on every plugin
    that registers no flavor at all (policies: they see every step and component).  Each
    implementation is called on its own, not wrapped, so a problem or a crash is
    reported with its plugin's name.  Problems of every step are reported together and
    the run exits with status 2 before any step runs or any image is built.

    Check here whatever the backend would refuse (limits, patterns, enums, combinations
    of settings) and whatever a policy forbids; keep a last check at submit time where
    it guards money.  Be quick and offline: no network calls, no builds.

    :param step: the planned step: its operator, validated settings, every flavor's
        merged settings, the code root and the stack's components.
    :param component: the component being checked, of your flavor (for a plugin with
        no flavor, any of the step's components: look at ``component.kind``).
    :return: one line per problem, each naming the setting and the fix (the core puts
        the step's name in front); an empty list or None when all is well.  A plugin that
        raises, or answers anything but a list of strings, stops the run with a
        `PluginError` naming the plugin, its distribution and the step.

    New in the contract's second edition (stepframe-core 0.1): a plugin without it
    reports no problem.
    """


# -------------------------------------------------------------------------------------
# Preparing a remote step: images and credentials.
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def build_image(request: ImageRequest, builder: Component) -> ImageRef | None:
    """Build (or find already built) the image a remote step runs in, and push it.

    Called before each attempt of a step whose operator flavor ``needs_image`` (so the
    same request comes again on retries and resumes): content-hash the request so that an
    unchanged project builds and pushes nothing.  Called on the plugin that registered
    ``builder.flavor`` only.

    :param request: what goes into the image.
    :param builder: the stack's image builder component, of your flavor.
    :return: the pushed image, by digest where the registry gives one.
    """


@hookspec(firstresult=True)
def authenticate(connector: Component, resource: ResourceRequest) -> Credentials | None:
    """Hand out credentials for a resource through a connector.

    :param connector: the connector component, of your flavor.
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

    :param registry: the container registry component, of your flavor.
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

    :param connector: the connector component, of your flavor.
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
    :param operator: the step operator component, of your flavor.
    :param credentials: from the operator's connector, or None when it has none.
    :return: a handle from which the job can be found again, even by another process.
    :raises StepframeError: to refuse the launch before anything reached the backend (the
        job ledger records it as failed).  Raise `SubmitAmbiguousError` when the request
        may have reached the backend but its answer was lost (a dropped connection after
        sending, a read timeout, a 5xx): the job is then recorded as possibly submitted
        and the core asks ``find_job`` later.  Any other exception counts as ambiguous
        too.
    """


@hookspec(firstresult=True)
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    """Report a job's state and the log lines it wrote since ``cursor``.

    :param handle: the job, of your flavor (``handle.flavor``).
    :param credentials: from the operator's connector, or None.
    :param cursor: the ``cursor`` of the previous status, or None on the first poll.
    :return: the job's status; must not block for long.  The first terminal status must
        carry the last log lines (a last line without a newline too): no poll follows it.
    """


@hookspec(firstresult=True)
def fetch_artifacts(handle: JobHandle, launch: Launch) -> StepResult | None:
    """Read what a finished job produced: its output artifacts, or its error.

    When no plugin answers, the core reads the result manifest the entrypoint wrote to
    ``launch.result_uri``; a flavor implements this only to get results some other way.

    :param handle: the finished job, of your flavor.
    :param launch: the launch it was started with (``launch.result_uri``).
    :return: the step's outputs by name or the remote error, or None to leave it to
        the core.
    """


@hookspec(firstresult=True)
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    """Stop a running job.  Called on Ctrl-C, SIGTERM, an attempt past its step's
    ``timeout``, ``stepframe jobs stop``, and when following the job failed (a poll
    raised), so that no job runs on unwatched.  It may come more than once, and for a
    job that already ended.

    :param handle: the job, of your flavor (``handle.flavor``).
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
    :param operator: the step operator component that submitted it, of your flavor.
    :param credentials: from the operator's connector, or None.
    :return: the job's handle if it exists (after checking it is ours: its image and
        tags), `JobNotFound` if the backend proves no such job exists, or None if this
        operator cannot tell; the ledger then shows the job as ``unknown``, never as
        failed, so nobody forgets a job that may be running and paid for.

    New in the contract's second edition (stepframe-core 0.1): a plugin without it
    "cannot tell".
    """


# -------------------------------------------------------------------------------------
# Storage.
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def open_artifact_store(uri: str, credentials: Credentials | None) -> ArtifactStore | None:
    """Open the artifact store that ``uri`` lives in.

    Called on the client and inside job containers (where credentials come from the
    job's own role, so ``credentials`` may be None).

    :param uri: a store root or any object URI below it, of a scheme your store flavor
        declares in ``Flavor.uri_schemes`` (``file``, ``s3``, ...).  A plugin whose
        flavor declares no scheme (a first-edition store) is asked about URIs of schemes
        no flavor declares, and returns None for those that are not its own.
    :param credentials: from the artifact store's connector, or None.
    """


# -------------------------------------------------------------------------------------
# Command line (issue 12: a plugin's own commands, such as stepframe-docker's
# `stepframe image prune`).
# -------------------------------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``stepframe`` command line.

    Called at most once per process, and only when the command line meets a command
    name that is neither the core's own nor declared as a ``stepframe.commands`` entry
    point: the core's commands and ``--help`` never load plugins for it, so ``--help``
    does not list the commands it adds.  Declare commands as entry points to have them
    listed (docs/plugins.md, "Declaring commands").  Import heavy libraries inside the
    commands.

    :param cli: the ``stepframe`` click group; call ``cli.add_command(command)``.  A
        name the core or another plugin already has stays theirs (a
        `PluginConflictWarning` names both); a plugin that raises here costs a
        `PluginLoadWarning`, and the command line works without its commands.

    New in the contract's second edition (stepframe-core 0.1): a plugin without it adds
    no commands.  Changed within 0.1 (issue 12, CLI start-up): ``--help`` no longer calls
    it, and the ``stepframe.commands`` entry points are the preferred way; the hook keeps
    working for commands that are run by name.
    """


# -------------------------------------------------------------------------------------
# Cost (issue 13: `stepframe runs show --price`).
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def estimate_cost(
    handle: JobHandle, credentials: Credentials | None, prices: Mapping[str, float]
) -> CostEstimate | None:
    """Estimate what a job cost, for ``stepframe runs show RUN --price``.

    Called on the plugin that registered ``handle.flavor`` only, for each job of the run
    that the backend accepted, once the user asks.  Reckon from what the backend bills
    (SageMaker: instance type x count x ``BillableTimeInSeconds``, which already counts
    managed spot savings) and a price table shipped with the plugin, whose date and
    region the estimate names; never look prices up on the network.

    :param handle: the job's handle, as ``submit_step`` returned it.
    :param credentials: from the connector of the operator that submitted the job, or
        None (the backend's default credentials).
    :param prices: prices per instance-hour the user gave (``--price-table FILE``), by
        the backend's own instance type names, in US dollars; they win over the
        plugin's table.  Empty when the user gave none.
    :return: the estimate, or None when the plugin does not estimate such jobs (a local
        mode job costs nothing billable).  Raise a `StepframeError` with one line when it
        should but cannot (a job still running, an instance type with no known price:
        say to pass ``--price-table``); the core shows that line in the job's row.

    New in stepframe-core 0.1 (issue 13), within the second edition: a plugin without it
    gives no estimate ("no estimate" in the row).
    """
