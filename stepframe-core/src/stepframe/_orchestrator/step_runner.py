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
from typing import TYPE_CHECKING, Any

import attrs

from stepframe import __version__
from stepframe._manifests import (
    LaunchManifest,
    OutputTarget,
    ResultManifest,
    read_manifest,
    write_manifest,
)
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
from stepframe.exceptions import ArtifactNotFoundError, ConfigError, StepFailed

if TYPE_CHECKING:
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._history.database import RunHistory
    from stepframe._orchestrator.console import Console
    from stepframe._pipeline.pipeline import PipelineSpec, StepSpec
    from stepframe._plugins.manager import Plugins
    from stepframe._stack import Stack

__all__ = ["RunContext", "StepCancelled", "StepRunner", "job_name"]

# Poll quickly at first so short steps finish promptly, then back off to spare the backend.
FIRST_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 5.0
# After cancel_step, how long to keep polling for the job to acknowledge the stop.
CANCEL_GRACE_SECONDS = 5.0


class StepCancelled(Exception):
    """Raised inside a runner when its run was cancelled."""


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

    # ---- the happy path -------------------------------------------------------------

    def run(self) -> dict[str, ArtifactRef]:
        """Run the step to the end; return its outputs or raise `StepFailed`."""
        ctx = self.context
        launch = self._write_launch()
        flavor = ctx.plugins.flavors.get(ComponentKind.STEP_OPERATOR, self.operator.flavor)
        if flavor is not None and flavor.needs_image:
            launch = attrs.evolve(launch, image=self._build_image())
        self._credentials = self._authenticate()
        self._job_row = ctx.history.record_job_intent(
            ctx.run_id,
            self.spec.name,
            attempt=self.attempt,
            flavor=self.operator.flavor,
            operator=self.operator.name,
            image_digest=launch.image.digest if launch.image else None,
        )
        if self._cancel_requested:
            ctx.history.update_job_state(self._job_row, JobState.CANCELLED)
            raise StepCancelled()
        handle = ctx.plugins.hooks.submit_step(launch, self.operator, self._credentials)
        ctx.history.record_job_submitted(self._job_row, handle)
        ctx.history.set_step(ctx.run_id, self.spec.name, job_id=handle.job_id)
        with self._lock:
            self.handle = handle
            cancel_now = self._cancel_requested
        if cancel_now:
            self._send_cancel()
        try:
            status = self._follow(handle)
        except BaseException:
            self._stop_unwatched_job(handle)
            raise
        ctx.history.update_job_state(self._job_row, status.state)
        if status.state is JobState.CANCELLED or self._cancel_requested:
            raise StepCancelled()
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

    def _write_launch(self) -> Launch:
        ctx = self.context
        store = ctx.store
        prefix = ("runs", ctx.run_id, self.spec.name, f"attempt-{self.attempt}")
        manifest_uri = store.uri_for(*prefix, "launch.json")
        result_uri = store.uri_for(*prefix, "result.json")
        manifest = LaunchManifest(
            run_id=ctx.run_id,
            pipeline=ctx.spec.name,
            step=self.spec.name,
            attempt=self.attempt,
            function=self.spec.function,
            inputs=self.inputs,
            outputs=[
                OutputTarget(name, store.uri_for(*prefix, "outputs", name))
                for name in self.spec.step.output_names
            ],
            result_uri=result_uri,
            artifact_store_uri=store.root_uri,
            settings={key: dict(value) for key, value in self.merged_settings.items()},
            versions={
                "stepframe": __version__,
                "python": ".".join(map(str, sys.version_info[:3])),
            },
        )
        write_manifest(store, manifest_uri, manifest)
        return Launch(
            run_id=ctx.run_id,
            pipeline=ctx.spec.name,
            step=self.spec.name,
            attempt=self.attempt,
            job_name=job_name(ctx.spec.name, self.spec.name, ctx.run_id, self.attempt),
            manifest_uri=manifest_uri,
            result_uri=result_uri,
            command=("python", "-m", "stepframe.entrypoint", manifest_uri),
            environment={"STEPFRAME_LAUNCH_MANIFEST": manifest_uri},
            settings=self.settings,
            code_root=ctx.spec.code_root,
            workdir=ctx.workdir,
        )

    def _build_image(self) -> ImageRef:
        ctx = self.context
        builder = ctx.stack.image_builder
        if builder is None:
            raise ConfigError(
                f"step {self.spec.name!r} runs on {self.operator.name!r}, which runs steps in a "
                f"container image, but stack {ctx.stack.name!r} has no image builder; add one "
                "(`stepframe stack register ... -i BUILDER`)"
            )
        request = ImageRequest(
            code_root=ctx.spec.code_root,
            target_registry=ctx.stack.container_registry,
            settings=self.merged_settings.get(builder.flavor),
        )
        return ctx.plugins.hooks.build_image(request, builder)

    def _authenticate(self) -> Credentials | None:
        name = self.operator.connector
        if name is None:
            return None
        connector = self.context.stack.connectors.get(name)
        if connector is None:
            raise ConfigError(
                f"step operator {self.operator.name!r} uses connector {name!r}, which stack "
                f"{self.context.stack.name!r} does not define"
            )
        return self.context.plugins.hooks.authenticate(connector, ResourceRequest("generic"))

    def _follow(self, handle: JobHandle) -> JobStatus:
        """Poll until the job ends, streaming its logs; give up shortly after a cancel."""
        ctx = self.context
        cursor: str | None = None
        delay = FIRST_POLL_SECONDS
        shown_detail = ""
        cancel_deadline: float | None = None
        while True:
            credentials = self._credentials.fresh() if self._credentials else None
            status = ctx.plugins.hooks.poll_step(handle, credentials, cursor)
            cursor = status.cursor
            for line in status.log_lines:
                ctx.console.step_log(self.spec.name, line)
            if status.detail and status.detail != shown_detail:
                shown_detail = status.detail
                ctx.console.step_state(self.spec.name, "running", status.detail)
            if status.state.is_terminal:
                return status
            if self._cancel_requested:
                cancel_deadline = cancel_deadline or time.monotonic() + CANCEL_GRACE_SECONDS
                if time.monotonic() > cancel_deadline:
                    return attrs.evolve(status, state=JobState.CANCELLED)
            wait = status.poll_after if status.poll_after is not None else delay
            delay = min(delay * 1.5, MAX_POLL_SECONDS)
            if self._cancel_requested or ctx.cancel_event.is_set():
                # Waiting on the event returns at once once it is set: sleep instead, or
                # the job is polled in a busy loop until it acknowledges the stop.
                time.sleep(min(wait, 0.2))
            else:
                ctx.cancel_event.wait(wait)  # wakes up at once when the run is cancelled

    def _read_result(self, launch: Launch, status: JobStatus) -> StepResult:
        try:
            manifest = read_manifest(self.context.store, launch.result_uri, ResultManifest)
        except ArtifactNotFoundError:
            reason = status.failure_reason or "it ended without writing a result manifest"
            raise StepFailed(
                self.spec.name, "JobFailed", f"job {status.state.value}: {reason}"
            ) from None
        return StepResult(outputs=manifest.outputs, error=manifest.error)

    # ---- cancelling -----------------------------------------------------------------

    def _stop_unwatched_job(self, handle: JobHandle) -> None:
        """Following a job failed (a plugin broke, the backend went away): stop the job
        rather than leave it running, and paid for, with nobody watching it."""
        ctx = self.context
        try:
            self._send_cancel()
        except Exception as error:
            ctx.console.message(
                f"step {self.spec.name!r}: could not stop job {handle.job_id!r} "
                f"({type(error).__name__}: {error}); it may still be running, see `stepframe jobs`"
            )
            return
        if self._job_row is not None:
            ctx.history.update_job_state(self._job_row, JobState.CANCELLED)

    def cancel(self) -> None:
        """Ask the job to stop; safe to call from another thread, at any point."""
        with self._lock:
            self._cancel_requested = True
            has_job = self.handle is not None
        if has_job:
            self._send_cancel()

    def _send_cancel(self) -> None:
        with self._lock:
            if self._cancel_sent or self.handle is None:
                return
            self._cancel_sent = True
            handle = self.handle
        credentials = self._credentials.fresh() if self._credentials else None
        self.context.plugins.hooks.cancel_step(handle, credentials)
