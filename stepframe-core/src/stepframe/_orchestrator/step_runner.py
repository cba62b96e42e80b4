"""The life of one step attempt: manifest, submit, poll, fetch, and cancel.

Every operator, the in-process one included, goes through the same hooks, so the path
a SageMaker job takes is the path every local test takes too.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stepframe import __version__
from stepframe._crashpoints import reached
from stepframe._history.database import POSSIBLY_SUBMITTED
from stepframe._manifests import (
    LaunchManifest,
    OutputTarget,
    ResultManifest,
    read_manifest,
    write_manifest,
)
from stepframe._orchestrator.follow import follow_job
from stepframe._orchestrator.job_operator import job_operator
from stepframe._orchestrator.reconcile import launch_record, settle
from stepframe._project import CONFIG_FILE
from stepframe._stack import connector_credentials, connector_resource
from stepframe._types import (
    ArtifactRef,
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    ImageRequest,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    ResourceRequest,
    StepResult,
)
from stepframe.exceptions import (
    ArtifactNotFoundError,
    ConfigError,
    StepFailed,
    StepframeError,
    SubmitAmbiguousError,
)

if TYPE_CHECKING:
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._config.stacks import Stack
    from stepframe._history.database import JobRecord, RunHistory
    from stepframe._orchestrator.console import Console
    from stepframe._orchestrator.credentials import RunCredentials
    from stepframe._pipeline.pipeline import PipelineSpec, StepSpec
    from stepframe._plugins.manager import Plugins

__all__ = ["JobLost", "RunContext", "StepCancelled", "StepRunner", "job_name"]

# After cancel_step, how long to keep polling for the job to acknowledge the stop.
CANCEL_GRACE_SECONDS = 5.0


class StepCancelled(Exception):
    """Raised inside a runner when its run was cancelled."""


class JobLost(Exception):
    """A re-attached job ended without a result manifest: its exit status is unknown (the
    orchestrator and the job died together), which is not success.  The scheduler submits
    the step's next attempt instead."""


@attrs.frozen
class RunContext:
    """What every step runner of one run shares."""

    run_id: str
    spec: PipelineSpec
    stack: Stack
    plugins: Plugins
    store: ArtifactStore
    history: RunHistory
    console: Console
    cancel_event: threading.Event
    workdir: str
    store_credentials: Credentials | None = None
    #: The run's credentials, authenticated before anything was built; None asks each
    #: connector when a step needs it.
    credentials: RunCredentials | None = None
    #: The project's ``stepframe.toml``: where a re-attached job's operator is looked up
    #: when the run's stack no longer has it.
    config_path: Path = attrs.field(factory=lambda: Path(CONFIG_FILE))


def _after_timeout(state: JobState) -> str:
    """How the job of an attempt that ran over its step's timeout ended, by its backend's
    final state."""
    return {
        JobState.CANCELLED: "its job was stopped (the backend reports it cancelled)",
        JobState.FAILED: "its job was stopped (the backend reports it failed)",
        JobState.SUCCEEDED: "its job finished before the stop took effect; its result is discarded",
    }.get(state, f"the backend reports its job {state.value}")


def job_name(pipeline: str, step: str, run_id: str, attempt: int) -> str:
    """Unique per run, step and attempt; lowercase letters, digits and dashes only."""
    raw = f"{pipeline}-{step}-{run_id}-{attempt}".lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")


class StepRunner:
    """Runs one attempt of one step through the operator's hooks."""

    def __init__(
        self,
        context: RunContext,
        spec: StepSpec,
        operator: Component,
        settings: Any,
        merged_settings: Mapping[str, Mapping[str, Any]],
        inputs: Mapping[str, ArtifactRef],
        attempt: int = 1,
    ) -> None:
        self.context = context
        self.spec = spec
        self.operator = operator
        self.settings = settings
        self.merged_settings = merged_settings
        self.inputs = dict(inputs)
        self.attempt = attempt
        self.handle: JobHandle | None = None
        self._credentials: Credentials | None = None
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._cancel_sent = False
        self._job_row: int | None = None
        self._reattached = False
        self._timed_out = False
        # Following stopped without the job ending (see `_follow`), and the last state
        # the backend reported before that.
        self._gave_up = False
        self._last_state = JobState.RUNNING
        #: Whether the attempt's failure is one that ``@step(retry_on="retryable")``
        #: retries: the operator said so (``JobStatus.retryable``), or it timed out.
        self.retryable_failure = False

    # ---- the happy path -------------------------------------------------------------

    def run(self) -> dict[str, ArtifactRef]:
        """Run the step to the end; return its outputs or raise `StepFailed`."""
        ctx = self.context
        if ctx.cancel_event.is_set():
            raise StepCancelled()
        launch = self._launch()
        write_manifest(ctx.store, launch.manifest_uri, self._manifest(launch))
        flavor = ctx.plugins.flavors.get(ComponentKind.STEP_OPERATOR, self.operator.flavor)
        if flavor is not None and flavor.needs_image:
            launch = attrs.evolve(launch, image=self._build_image(flavor.image_platform))
        self._credentials = self._authenticate()
        reached("before-intent", self.spec.name)
        self._job_row = ctx.history.record_job_intent(
            ctx.run_id,
            self.spec.name,
            attempt=self.attempt,
            flavor=self.operator.flavor,
            operator=self.operator.name,
            image_digest=launch.image.digest if launch.image else None,
            launch=launch_record(launch),
        )
        reached("before-submit", self.spec.name)
        # As late as can be: a Ctrl-C that came while the image was built or the intent
        # written must not start a paid job only to stop it again.
        if self._cancel_requested or ctx.cancel_event.is_set():
            ctx.history.update_job_state(self._job_row, JobState.CANCELLED)
            raise StepCancelled()
        try:
            handle = ctx.plugins.hooks.submit_step(launch, self.operator, self._credentials)
        except SubmitAmbiguousError as error:
            handle = self._find_lost_job(launch, error)
        except StepframeError:
            # A refusal (a policy, a check before the backend is called): no job exists.
            ctx.history.update_job_state(self._job_row, JobState.FAILED)
            raise
        except Exception as error:
            # Not one of ours: a timeout or a dropped connection the plugin did not
            # classify proves nothing, so the job may exist.
            handle = self._find_lost_job(launch, error)
        else:
            reached("after-submit", self.spec.name)
            ctx.history.record_job_submitted(self._job_row, handle)
        return self._see_through(launch, handle)

    def _find_lost_job(self, launch: Launch, error: Exception) -> JobHandle:
        """The submit's answer was lost: adopt the job if the backend has it, else fail
        the step, leaving the ledger row failed (proven absent) or unknown (nobody can
        tell, so it stays in `stepframe jobs list --running`)."""
        ctx = self.context
        assert self._job_row is not None
        ctx.history.update_job_state(
            self._job_row, POSSIBLY_SUBMITTED, note=f"{type(error).__name__}: {error}"
        )
        row = ctx.history.get_job(self._job_row)
        answer = settle(
            ctx.history,
            ctx.plugins.hooks,
            row,
            launch,
            self.operator,
            self._credentials.fresh() if self._credentials else None,
        )
        if isinstance(answer, JobHandle):
            ctx.console.message(
                f"step {self.spec.name!r}: the submit's answer was lost ({error}); found "
                f"job {answer.job_id!r} on the backend and follow it"
            )
            return answer
        if answer is None:
            raise StepFailed(
                self.spec.name,
                type(error).__name__,
                f"{error}; the job {launch.job_name!r} may have been created, and the "
                f"{self.operator.flavor} operator cannot tell: check the backend "
                "(`stepframe jobs list --running` shows it as unknown)",
            ) from error
        raise error

    def reattach(self, row: JobRecord, *, ended: JobState | None = None) -> dict[str, ArtifactRef]:
        """Follow a job an earlier orchestrator submitted, instead of submitting again.

        The job is reached through the operator that submitted it (the ledger row's), not
        the one the step names now: the stack may have changed since.

        :param ended: the job's final state when the ledger already knows it (a job that
            `stepframe jobs attach` followed to the end): its result is read without
            asking the backend again, so no credentials are needed.
        :raises JobLost: the job ended without a result manifest.
        :raises ConfigError: the job's operator is registered nowhere any more.
        """
        assert row.handle is not None
        ctx = self.context
        if ended is None:
            submitter = job_operator(
                row.operator,
                row.flavor,
                job=f"{row.flavor} job {row.job_id} of step {self.spec.name!r} "
                f"(attempt {row.attempt})",
                plugins=ctx.plugins,
                config=ctx.config_path,
                stack=ctx.stack,
            )
            if submitter.outside_stack is not None:
                ctx.console.message(submitter.outside_stack)
            self.operator = submitter.component
            self._credentials = submitter.credentials
        self._job_row = row.id
        self._reattached = True
        return self._see_through(self._launch(), row.handle, ended=ended)

    def _see_through(
        self, launch: Launch, handle: JobHandle, *, ended: JobState | None = None
    ) -> dict[str, ArtifactRef]:
        """From a submitted job to the step's outputs."""
        ctx = self.context
        ctx.history.set_step(ctx.run_id, self.spec.name, job_id=handle.job_id, attempt=self.attempt)
        with self._lock:
            self.handle = handle
            cancel_now = self._cancel_requested
        if cancel_now:
            self._send_cancel()
        try:
            status = JobStatus(state=ended) if ended is not None else self._follow(handle)
        except BaseException:
            self._stop_unwatched_job()
            raise
        assert self._job_row is not None
        reached("before-finish", self.spec.name)
        # The step's own timeout, not a cancel of the run, stopped the attempt.
        timed_out = self._timed_out and not self._cancel_requested
        timeout = self.spec.step.timeout if timed_out else None
        if self.job_may_still_run:
            # The cancel could not be sent and the job never ended: it may run on, and be
            # paid for.  The ledger keeps it active so that `stepframe jobs list --running`
            # shows it, as the console message about it says.
            ctx.history.update_job_state(
                self._job_row,
                self._last_state,
                note=("timed out; " if timed_out else "")
                + "its cancel could not be sent; it may still be running",
                timed_out_after=timeout,
            )
        else:
            # What the backend says happened (cancelled, as a rule), and that it timed out.
            ctx.history.update_job_state(
                self._job_row,
                status.state,
                note=None if timeout is None else f"timed out; {_after_timeout(status.state)}",
                timed_out_after=timeout,
            )
        if timeout is not None:
            self.retryable_failure = True
            ending = (
                "its cancel could not be sent, and its job may still be running (see "
                "`stepframe jobs list --running`)"
                if self.job_may_still_run
                else _after_timeout(status.state)
            )
            raise StepFailed(
                self.spec.name,
                "StepTimeout",
                f"attempt {self.attempt} ran longer than the step's timeout ({timeout:g} s); "
                + ending,
            )
        # A job that finished its work before a cancel reached it keeps its result: the
        # step succeeded, and a resume must not pay for it again.
        if status.state is not JobState.SUCCEEDED and (
            self._cancel_requested or ctx.cancel_event.is_set()
        ):
            raise StepCancelled()
        if status.state is JobState.CANCELLED:
            if self._reattached:
                # Stopped by the interrupted run (its Ctrl-C) before this resume: the user
                # now asks for the step, so it runs again rather than ending the resume.
                raise JobLost(
                    f"job {handle.job_id} of attempt {self.attempt} was cancelled before "
                    "this resume"
                )
            raise StepCancelled()
        self.retryable_failure = status.state is JobState.FAILED and status.retryable
        result = ctx.plugins.hooks.fetch_artifacts(handle, launch) or self._read_result(
            launch, status
        )
        if result.error is not None:
            raise StepFailed(
                self.spec.name, result.error.type, result.error.message, result.error.traceback
            )
        missing = set(self.spec.step.output_names) - set(result.outputs)
        if missing:
            raise StepFailed(
                self.spec.name, "MissingOutputs", f"job reported no output(s) {sorted(missing)}"
            )
        return dict(result.outputs)

    @property
    def job_may_still_run(self) -> bool:
        """The attempt ended without its job ending: its cancel could not be sent."""
        return self._gave_up and not self._cancel_sent

    def _uri(self, *parts: str) -> str:
        """A URI of this attempt's own objects; attempts never overwrite each other."""
        from stepframe._names import safe_segments  # no name may escape its run's folder

        ctx = self.context
        return ctx.store.uri_for(
            *safe_segments("runs", ctx.run_id, self.spec.name, f"attempt-{self.attempt}", *parts)
        )

    def _launch(self) -> Launch:
        ctx = self.context
        manifest_uri = self._uri("launch.json")
        return Launch(
            run_id=ctx.run_id,
            pipeline=ctx.spec.name,
            step=self.spec.name,
            attempt=self.attempt,
            job_name=job_name(ctx.spec.name, self.spec.name, ctx.run_id, self.attempt),
            manifest_uri=manifest_uri,
            result_uri=self._uri("result.json"),
            command=("python", "-m", "stepframe.entrypoint", manifest_uri),
            environment={"STEPFRAME_LAUNCH_MANIFEST": manifest_uri},
            settings=self.settings,
            code_root=ctx.spec.code_root,
            workdir=ctx.workdir,
            store_credentials=ctx.store_credentials,
        )

    def _manifest(self, launch: Launch) -> LaunchManifest:
        ctx = self.context
        return LaunchManifest(
            run_id=ctx.run_id,
            pipeline=ctx.spec.name,
            step=self.spec.name,
            attempt=self.attempt,
            function=self.spec.function,
            inputs=self.inputs,
            outputs=[
                OutputTarget(name, self._uri("outputs", name))
                for name in self.spec.step.output_names
            ],
            result_uri=launch.result_uri,
            artifact_store_uri=ctx.store.root_uri,
            settings={key: dict(value) for key, value in self.merged_settings.items()},
            versions={
                "stepframe": __version__,
                "python": ".".join(map(str, sys.version_info[:3])),
            },
            materializer_plugins=list(ctx.plugins.materializer_plugins),
        )

    def _build_image(self, platform: str | None = None) -> ImageRef:
        ctx = self.context
        builder = ctx.stack.image_builder
        if builder is None:
            raise ConfigError(
                f"step {self.spec.name!r} runs on {self.operator.name!r}, which runs steps in a "
                f"container image, but stack {ctx.stack.name!r} has no image builder; add one "
                "(`stepframe stack register ... -i BUILDER`)"
            )
        registry = ctx.stack.container_registry
        request = ImageRequest(
            code_root=ctx.spec.code_root,
            target_registry=registry,
            settings=self.merged_settings.get(builder.flavor),
            progress=lambda line: ctx.console.step_state(self.spec.name, "running", line),
            platform=platform,  # the operator flavor's image_platform (issue 13)
        )
        if registry is not None:
            hooks = ctx.plugins.hooks
            login = self._credentials_for(registry, connector_resource(registry))

            def prepare(repository: str) -> None:
                # Asked for only when a builder is about to touch the registry.
                generic = self._credentials_for(registry, ResourceRequest("generic"))
                hooks.prepare_repository(registry, repository, generic)

            request = attrs.evolve(request, registry_credentials=login, prepare_repository=prepare)
        return ctx.plugins.hooks.build_image(request, builder)

    def _authenticate(self) -> Credentials | None:
        return self._credentials_for(self.operator, ResourceRequest("generic"))

    def _credentials_for(
        self, component: Component, resource: ResourceRequest
    ) -> Credentials | None:
        ctx = self.context
        if ctx.credentials is not None:
            return ctx.credentials.get(component, resource)
        return connector_credentials(ctx.stack, component, resource, ctx.plugins.hooks)

    def _follow(self, handle: JobHandle) -> JobStatus:
        """Poll until the job ends, streaming its logs; give up shortly after a cancel, or
        after the step's timeout (and a cancel sent for it)."""
        ctx = self.context
        cancel_deadline: list[float] = []
        timeout = self.spec.step.timeout
        # Counted from here: the submit (or, on --resume, the re-attach) just happened.
        timeout_at = None if timeout is None else time.monotonic() + timeout

        def give_up() -> bool:
            if timeout_at is not None and not self._timed_out and time.monotonic() > timeout_at:
                self._timed_out = True
                self._try_cancel()
            if not (self._cancel_requested or self._timed_out):
                return False
            if not cancel_deadline:
                cancel_deadline.append(time.monotonic() + CANCEL_GRACE_SECONDS)
            self._gave_up = time.monotonic() > cancel_deadline[0]
            return self._gave_up

        # Issue 14.1: every line the console gets is kept in the step's log too, for any
        # operator (the history sits in the project's state folder, next to the logs).
        from stepframe._logs import StepLogWriter, attempt_log_path

        step_log = StepLogWriter(
            attempt_log_path(ctx.history.path.parent, ctx.run_id, self.spec.name, self.attempt)
        )

        def show(lines: tuple[str, ...]) -> None:
            step_log.write_lines(lines)
            for line in lines:
                ctx.console.step_log(self.spec.name, line)

        try:
            return follow_job(
                ctx.plugins.hooks,
                handle,
                credentials=lambda: self._credentials.fresh() if self._credentials else None,
                on_lines=show,
                on_detail=lambda detail: ctx.console.step_state(self.spec.name, "running", detail),
                on_state=self._record_state,
                wake=ctx.cancel_event,
                give_up=give_up,
            )
        finally:
            step_log.close()

    def _record_state(self, state: JobState) -> None:
        self._last_state = state
        if self._job_row is not None:
            self.context.history.update_job_state(self._job_row, state)

    def _read_result(self, launch: Launch, status: JobStatus) -> StepResult:
        try:
            manifest = read_manifest(self.context.store, launch.result_uri, ResultManifest)
        except ArtifactNotFoundError:
            if self._reattached:
                reason = f": {status.failure_reason}" if status.failure_reason else ""
                raise JobLost(
                    f"job {self.handle.job_id if self.handle else '?'} of attempt "
                    f"{self.attempt} ended ({status.state.value}{reason}) without a result"
                ) from None
            reason = status.failure_reason or "it ended without writing a result manifest"
            raise StepFailed(
                self.spec.name, "JobFailed", f"job {status.state.value}: {reason}"
            ) from None
        error = manifest.error
        if error is not None and status.state is JobState.FAILED and status.failure_reason:
            # The backend's own reason (SageMaker's FailureReason) tells what a traceback
            # cannot: out of memory, a lost spot instance, the runtime limit.
            error = attrs.evolve(
                error,
                traceback=f"{error.traceback.rstrip()}\n\nThe job's backend reported: "
                f"{status.failure_reason}\n",
            )
        return StepResult(outputs=manifest.outputs, error=error)

    # ---- cancelling -----------------------------------------------------------------

    def _stop_unwatched_job(self) -> None:
        """Following a job failed (a plugin broke, the backend went away): stop the job
        rather than leave it running, and paid for, with nobody watching it."""
        if self._try_cancel() and self._job_row is not None:
            self.context.history.update_job_state(self._job_row, JobState.CANCELLED)

    def cancel(self) -> None:
        """Ask the job to stop; safe to call from another thread, at any point."""
        with self._lock:
            self._cancel_requested = True
            has_job = self.handle is not None
        if has_job:
            self._try_cancel()

    def _try_cancel(self) -> bool:
        """Send the cancel; a backend that cannot be reached is reported, not raised, so
        an interrupted run still stops its other jobs and says which one may live on."""
        try:
            self._send_cancel()
        except Exception as error:
            job = self.handle.job_id if self.handle is not None else "?"
            self.context.console.message(
                f"step {self.spec.name!r}: could not stop job {job!r} "
                f"({type(error).__name__}: {error}); it may still be running, see `stepframe jobs`"
            )
            return False
        return True

    def _send_cancel(self) -> None:
        with self._lock:
            if self._cancel_sent or self.handle is None:
                return
            self._cancel_sent = True
            handle = self.handle
        credentials = self._credentials.fresh() if self._credentials else None
        try:
            self.context.plugins.hooks.cancel_step(handle, credentials)
        except BaseException:
            with self._lock:
                self._cancel_sent = False  # not sent: a later Ctrl-C must try again
            raise
