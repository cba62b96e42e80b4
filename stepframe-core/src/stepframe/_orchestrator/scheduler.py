"""The scheduler: starts steps whose inputs are ready, collects their ends, cancels.

Steps run on daemon threads, one per running step and at most ``max_parallel`` at once;
the main thread only schedules, so Ctrl-C is handled promptly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from stepframe._history.database import SUBMITTING, JobRecord
from stepframe._orchestrator.cache import cache_key
from stepframe._orchestrator.plan import Plan
from stepframe._orchestrator.resume import EarlierRun
from stepframe._orchestrator.step_runner import RunContext, StepCancelled, StepRunner
from stepframe._pipeline.pipeline import UpstreamInput
from stepframe._types import ArtifactRef, ComponentKind, JobState
from stepframe.exceptions import StepFailed

__all__ = ["DONE", "Scheduler", "StepOutcome"]

# Step statuses whose outputs later steps can use.
DONE = ("succeeded", "cached")
# How long a cancelled run waits for its jobs to confirm they stopped before exiting.
CANCEL_WAIT_SECONDS = 6.0


@attrs.define
class StepOutcome:
    """How one step of a run ended."""

    name: str
    status: str
    operator: str | None = None
    outputs: dict[str, ArtifactRef] = attrs.field(factory=dict)
    error: BaseException | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


class Scheduler:
    """Starts steps whose inputs are ready, collects their ends, and handles cancel."""

    def __init__(
        self,
        context: RunContext,
        plan: Plan,
        constants: Mapping[tuple[str, str], ArtifactRef],
        max_parallel: int,
        use_cache: bool,
        earlier: EarlierRun | None,
    ) -> None:
        self.context = context
        self.plan = plan
        self.constants = constants
        self.max_parallel = max_parallel
        self.use_cache = use_cache
        self.earlier = earlier
        self.outcomes: dict[str, StepOutcome] = {
            name: StepOutcome(name, "pending", plan.operators[name].name)
            for name in context.spec.steps
        }
        self.cache_keys: dict[str, str] = {}
        self.running: dict[str, StepRunner] = {}
        self.finished: queue.Queue[
            tuple[str, dict[str, ArtifactRef] | None, BaseException | None]
        ] = queue.Queue()

    def run(self) -> dict[str, StepOutcome]:
        spec = self.context.spec
        pending = [name for name in spec.steps if not self._doneearlier_run(name)]
        for name in pending:
            self.context.console.step_state(name, "pending")
        while pending or self.running:
            if self.context.cancel_event.is_set():
                self._cancel_all(pending)
                break
            pending = self._start_ready(pending)
            if not self.running:
                continue
            try:
                item = self.finished.get(timeout=0.1)
            except queue.Empty:
                continue
            self._record_end(*item)
        return self.outcomes

    def _doneearlier_run(self, name: str) -> bool:
        """On resume: take a step the interrupted run finished, if its outputs are intact."""
        if self.earlier is None or self.earlier.statuses.get(name) not in DONE:
            return False
        outputs = self.earlier.outputs.get(name, {})
        if not self._complete(name, outputs):
            return False
        outcome = self.outcomes[name]
        outcome.status = self.earlier.statuses[name]
        outcome.outputs = outputs
        self.context.console.step_state(name, outcome.status, "done before the interruption")
        return True

    def _complete(self, name: str, outputs: Mapping[str, ArtifactRef]) -> bool:
        """Whether recorded outputs cover every output of the step and are all stored."""
        wanted = set(self.context.spec.steps[name].step.output_names)
        if set(outputs) != wanted:
            return False
        return all(self.context.store.exists(ref.uri) for ref in outputs.values())

    def _start_ready(self, pending: list[str]) -> list[str]:
        still_pending = []
        for name in pending:
            upstream = self.context.spec.steps[name].upstream
            states = [self.outcomes[up].status for up in upstream]
            if any(state in ("failed", "skipped") for state in states):
                self._mark(name, "skipped", detail="an upstream step failed")
            elif all(state in DONE for state in states) and len(self.running) < self.max_parallel:
                self._start(name)
            else:
                still_pending.append(name)
        return still_pending

    def _inputs(self, name: str) -> dict[str, ArtifactRef]:
        refs = {}
        for param, given in self.context.spec.steps[name].inputs.items():
            if isinstance(given, UpstreamInput):
                refs[param] = self.outcomes[given.step].outputs[given.output]
            else:
                refs[param] = self.constants[(name, param)]
        return refs

    def _from_cache(self, name: str, inputs: Mapping[str, ArtifactRef]) -> bool:
        step = self.context.spec.steps[name]
        if not step.cache:
            return False
        key = cache_key(
            func=step.step.func,
            function_id=f"{step.function.module}:{step.function.qualname}",
            inputs=inputs,
            operator=self.plan.operators[name],
            settings=self.plan.merged_settings[name],
            outputs=step.step.output_names,
            materializer_plugins=self.context.plugins.materializer_plugins,
        )
        # Recorded even when not looked up: after `run --no-cache` (say, because the step
        # reads something the key cannot see), later runs reuse the fresh outputs.
        self.cache_keys[name] = key
        if not self.use_cache:
            return False
        found = self.context.history.find_cached(key)
        if found is None:
            return False
        from_run, from_step, records = found
        outputs = {record.output: record.ref for record in records}
        if not self._complete(name, outputs):
            return False
        self.outcomes[name].outputs = outputs
        for output, ref in outputs.items():
            self.context.history.record_artifact(self.context.run_id, name, output, ref)
        self.context.history.set_step(self.context.run_id, name, cache_key=key)
        self._mark(name, "cached", detail=f"outputs of run {from_run}, step {from_step}")
        return True

    def _attempt(self, name: str) -> tuple[int, JobRecord | None]:
        """The attempt number to use, and the earlier job to re-attach to, if any."""
        row = self.earlier.jobs.get(name) if self.earlier is not None else None
        if row is None:
            return 1, None
        flavor = self.context.plugins.flavors.get(ComponentKind.STEP_OPERATOR, row.flavor)
        alive = row.state in (JobState.PENDING.value, JobState.RUNNING.value)
        if row.handle is not None and alive and (flavor is None or flavor.jobs_outlive_client):
            return row.attempt, row
        if row.handle is None and row.state == SUBMITTING:
            self.context.console.message(
                f"step {name!r}: the interrupted run died while submitting {row.flavor} job "
                f"(ledger row {row.id}); if it exists it is not tracked, check the backend. "
                f"Submitting attempt {row.attempt + 1}."
            )
        return row.attempt + 1, None

    def _start(self, name: str) -> None:
        inputs = self._inputs(name)
        if self._from_cache(name, inputs):
            return
        attempt, earlier_job = self._attempt(name)
        runner = StepRunner(
            self.context,
            self.context.spec.steps[name],
            self.plan.operators[name],
            self.plan.settings[name],
            self.plan.merged_settings[name],
            inputs,
            attempt=attempt,
        )
        self.running[name] = runner
        detail = self.plan.operators[name].name
        if earlier_job is not None:
            detail = f"re-attached to {earlier_job.flavor} job {earlier_job.job_id}"
        self._mark(name, "running", detail=detail)

        def target() -> None:
            try:
                if earlier_job is not None and earlier_job.handle is not None:
                    outputs = runner.reattach(earlier_job.handle, earlier_job.id)
                else:
                    outputs = runner.run()
            except BaseException as error:  # reported to the scheduler, never lost
                self.finished.put((name, None, error))
            else:
                self.finished.put((name, outputs, None))

        threading.Thread(target=target, name=f"stepframe-{name}", daemon=True).start()

    def _record_end(
        self, name: str, outputs: dict[str, ArtifactRef] | None, error: BaseException | None
    ) -> None:
        self.running.pop(name, None)
        if isinstance(error, StepCancelled):
            self._mark(name, "cancelled")
            return
        if error is not None:
            if not isinstance(error, StepFailed):
                error = _as_step_failure(name, error)
            self.outcomes[name].error = error
            self._mark(name, "failed", error=str(error))
            return
        assert outputs is not None
        self.outcomes[name].outputs = outputs
        for output, ref in outputs.items():
            self.context.history.record_artifact(self.context.run_id, name, output, ref)
        if name in self.cache_keys:
            self.context.history.set_step(
                self.context.run_id, name, cache_key=self.cache_keys[name]
            )
        self._mark(name, "succeeded")

    def _mark(self, name: str, status: str, *, detail: str = "", error: str | None = None) -> None:
        outcome = self.outcomes[name]
        now = time.time()
        outcome.status = status
        fields: dict[str, Any] = {"status": status}
        if status in ("running", "cached"):
            outcome.started_at = now
            fields["started_at"] = now
        if status not in ("pending", "running"):
            outcome.ended_at = now
            fields["ended_at"] = now
        if error is not None:
            fields["error"] = error
        self.context.history.set_step(self.context.run_id, name, **fields)
        self.context.console.step_state(name, status, detail)

    def _cancel_all(self, pending: list[str]) -> None:
        runners = list(self.running.values())
        threads = [threading.Thread(target=r.cancel, daemon=True) for r in runners]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while self.running and time.monotonic() < deadline:
            try:
                name, _outputs, _error = self.finished.get(timeout=0.1)
            except queue.Empty:
                continue
            self.running.pop(name, None)
            self._mark(name, "cancelled")
        for name in [*self.running, *pending]:
            self._mark(name, "cancelled")
        self.running.clear()


def _as_step_failure(name: str, error: BaseException) -> StepFailed:
    """A failure of the machinery around a step (submit, poll, config) as a step failure."""
    failure = StepFailed(name, type(error).__name__, str(error))
    failure.__cause__ = error
    return failure
