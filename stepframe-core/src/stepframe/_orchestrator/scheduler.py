"""The scheduler: starts steps whose inputs are ready, collects their ends, cancels.

Steps run on daemon threads, one per running step and at most ``max_parallel`` at once;
the main thread only schedules, so Ctrl-C is handled promptly.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from stepframe._history.database import POSSIBLY_SUBMITTED, SUBMITTING, UNKNOWN, JobRecord
from stepframe._orchestrator.cache import cache_key
from stepframe._orchestrator.job_operator import job_operator
from stepframe._orchestrator.plan import Plan
from stepframe._orchestrator.reconcile import launch_from_record, settle
from stepframe._orchestrator.resume import EarlierRun
from stepframe._orchestrator.step_runner import JobLost, RunContext, StepCancelled, StepRunner
from stepframe._pipeline.pipeline import UpstreamInput
from stepframe._plugins.manager import run_in_this_context
from stepframe._types import ArtifactRef, ComponentKind, JobHandle, JobState
from stepframe.exceptions import ConfigError, StepFailed

__all__ = ["DONE", "Scheduler", "StepOutcome"]

# Step statuses whose outputs later steps can use.
DONE = ("succeeded", "cached")
# Step statuses after which the steps that need its outputs cannot run.
STOPPED = ("failed", "skipped", "cancelled")
# Ledger states of a job whose submit may or may not have created it.
_MAYBE_SUBMITTED = (SUBMITTING, POSSIBLY_SUBMITTED, UNKNOWN)
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
        pending = [name for name in spec.steps if not self._done_before_the_interruption(name)]
        for name in pending:
            self.context.console.step_state(name, "pending")
        while pending or self.running:
            if self.context.cancel_event.is_set():
                self._cancel_all(pending)
                break
            before = len(pending)
            pending = self._start_ready(pending)
            if not self.running:
                if pending and len(pending) == before:
                    # Nothing runs and nothing could start: waiting would spin for ever.
                    raise RuntimeError(f"steps {pending} can never start; this is a bug")
                continue
            try:
                item = self.finished.get(timeout=0.1)
            except queue.Empty:
                continue
            self._record_end(*item)
        return self.outcomes

    def _done_before_the_interruption(self, name: str) -> bool:
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
        """Whether recorded outputs cover every output of the step and are all stored,
        intact, in the run's artifact store (their size and sha256 are checked).

        An output that fails the check is reported on the console (step, URI, what
        differs) and the step runs again; its fresh outputs then replace the bad ones as
        what later runs reuse.
        """
        wanted = set(self.context.spec.steps[name].step.output_names)
        if set(outputs) != wanted:
            return False
        store = self.context.store
        for output, ref in sorted(outputs.items()):
            if not store.contains(ref.uri):
                problem: str | None = f"it is not in this run's artifact store {store.root_uri}"
            else:
                try:
                    problem = store.verify(ref)
                except Exception as error:  # an unreachable store is no hit either
                    problem = f"it could not be checked: {type(error).__name__}: {error}"
            if problem is not None:
                self.context.console.message(
                    f"step {name!r}: not reusing output {output!r} at {ref.uri}: {problem}; "
                    "running the step again"
                )
                return False
        return True

    def _start_ready(self, pending: list[str]) -> list[str]:
        still_pending = []
        for name in pending:
            upstream = self.context.spec.steps[name].upstream
            states = [self.outcomes[up].status for up in upstream]
            if any(state in STOPPED for state in states):
                cancelled = any(state == "cancelled" for state in states)
                why = "was cancelled" if cancelled else "failed"
                self._mark(name, "skipped", detail=f"an upstream step {why}")
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
            code_root=self.context.spec.code_root,
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
        # A hit must be in the store this run reads from and writes to.
        found = self.context.history.find_cached(key, store_root=self.context.store.root_uri)
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

    def _earlier_job(self, name: str) -> tuple[JobRecord, JobState | None] | None:
        """On resume: the interrupted run's job of this step to take up instead of
        submitting again, with its final state when the ledger already has it.

        That is a job still running on a backend that outlives its client, a job that
        ended successfully after the run was interrupted (`stepframe jobs attach` followed
        it), or a job whose submit answer was lost and that the operator found again.
        """
        if self.earlier is None or self.earlier.statuses.get(name) in DONE:
            # A finished step gets here only when its recorded outputs failed the check
            # (`_done_before_the_interruption`): its job would hand the same outputs on.
            return None
        row = self.earlier.jobs.get(name)
        if row is None:
            return None
        flavor = self.context.plugins.flavors.get(ComponentKind.STEP_OPERATOR, row.flavor)
        outlives = flavor is None or flavor.jobs_outlive_client
        if row.handle is None and row.state in _MAYBE_SUBMITTED:
            row = self._settle_lost_submit(name, row)
            if row is None:
                return None
        if row.handle is None:
            return None
        if row.state == JobState.SUCCEEDED.value:
            return row, JobState.SUCCEEDED
        if row.state in (JobState.PENDING.value, JobState.RUNNING.value) and outlives:
            return row, None
        return None

    def _settle_lost_submit(self, name: str, row: JobRecord) -> JobRecord | None:
        """Ask the operator whether a job the interrupted run may have submitted exists."""
        ctx = self.context
        answer = None
        if row.launch is None:
            ctx.history.update_job_state(
                row.id, UNKNOWN, note="no launch recorded to look the job up by; check the backend"
            )
        else:
            try:
                # The operator that submitted it, even if the step names another one now.
                submitter = job_operator(
                    row.operator,
                    row.flavor,
                    job=f"the {row.flavor} job of step {name!r} (ledger row {row.id})",
                    plugins=ctx.plugins,
                    config=ctx.config_path,
                    stack=ctx.stack,
                )
            except ConfigError as error:
                ctx.history.update_job_state(row.id, UNKNOWN, note=f"{error}")
            else:
                if submitter.outside_stack is not None:
                    ctx.console.message(submitter.outside_stack)
                launch = launch_from_record(row.launch, row.flavor, ctx.plugins.flavors)
                answer = settle(
                    ctx.history,
                    ctx.plugins.hooks,
                    row,
                    launch,
                    submitter.component,
                    submitter.credentials,
                )
        if isinstance(answer, JobHandle):
            ctx.console.message(
                f"step {name!r}: found job {answer.job_id!r}, whose submit the interrupted "
                "run did not see answered; following it"
            )
            return ctx.history.get_job(row.id)
        if answer is None:
            ctx.console.message(
                f"step {name!r}: the interrupted run may have submitted {row.flavor} job "
                f"{row.launch.get('job_name') if row.launch else '?'} (ledger row {row.id}), "
                "and its operator cannot tell whether it exists: check the backend "
                "(`stepframe jobs list --running` shows it as unknown). Submitting the next "
                "attempt."
            )
        return None

    def _runner(self, name: str, inputs: Mapping[str, ArtifactRef], attempt: int) -> StepRunner:
        return StepRunner(
            self.context,
            self.context.spec.steps[name],
            self.plan.operators[name],
            self.plan.settings[name],
            self.plan.merged_settings[name],
            inputs,
            attempt=attempt,
        )

    def _start(self, name: str) -> None:
        inputs = self._inputs(name)
        # A job of the interrupted run comes first: a cache hit would leave it running,
        # unwatched, and paid for.
        earlier = self._earlier_job(name)
        if earlier is None and self._from_cache(name, inputs):
            return
        history = self.context.history
        run_id = self.context.run_id
        if earlier is not None:
            job = earlier[0]
            runner = self._runner(name, inputs, job.attempt)
            detail = f"re-attached to {job.flavor} job {job.job_id}"
        else:
            runner = self._runner(name, inputs, history.allocate_attempt(run_id, name))
            detail = self.plan.operators[name].name
        self.running[name] = runner
        self._mark(name, "running", detail=detail)

        def target() -> None:
            try:
                outputs = self._attempts(name, inputs, runner, earlier)
            except BaseException as error:  # reported to the scheduler, never lost
                self.finished.put((name, None, error))
            else:
                self.finished.put((name, outputs, None))

        # In this thread's context: the step's hooks see the plugins its run activated.
        threading.Thread(
            target=run_in_this_context(target), name=f"stepframe-{name}", daemon=True
        ).start()

    def _attempts(
        self,
        name: str,
        inputs: Mapping[str, ArtifactRef],
        runner: StepRunner,
        earlier: tuple[JobRecord, JobState | None] | None,
    ) -> dict[str, ArtifactRef]:
        """Run a step's attempts (on a runner thread) until one succeeds, or no retry of
        ``@step(retries=...)`` is left; each attempt is a new job with its own number."""
        step = self.context.spec.steps[name].step
        retries_left = step.retries
        current = runner
        while True:
            try:
                if earlier is None:
                    return current.run()
                job, ended = earlier
                earlier = None
                try:
                    return current.reattach(job, ended=ended)
                except JobLost as lost:
                    # Killed together with its orchestrator: the exit status is unknown,
                    # which is not success.  Run the step again.
                    current = self._next_attempt(name, inputs, f"{lost}")
                    return current.run()
            except StepFailed as failure:
                retryable = step.retry_on == "any" or current.retryable_failure
                if retries_left == 0 or not retryable or self.context.cancel_event.is_set():
                    raise
                if current.job_may_still_run:
                    # A new attempt beside a job that may still run would run it twice.
                    raise
                retries_left -= 1
                reason = str(failure).splitlines()[0]
                self.context.console.message(
                    f"step {name!r}: attempt {current.attempt} failed ({reason}); retrying"
                    + (f" in {step.retry_delay:g} s" if step.retry_delay else "")
                    + f" ({retries_left} retr{'y' if retries_left == 1 else 'ies'} left after)"
                )
                if self.context.cancel_event.wait(step.retry_delay):
                    raise StepCancelled() from None
                current = self._next_attempt(name, inputs, None)

    def _next_attempt(
        self, name: str, inputs: Mapping[str, ArtifactRef], why: str | None
    ) -> StepRunner:
        """A runner for the step's next attempt, registered so that a cancel reaches it."""
        runner = self._runner(
            name, inputs, self.context.history.allocate_attempt(self.context.run_id, name)
        )
        self.running[name] = runner
        if why is not None:
            self.context.console.message(
                f"step {name!r}: {why}; submitting attempt {runner.attempt}"
            )
        return runner

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

    def stop_all(self) -> None:
        """Stop every running job: the run is ending abnormally (an error escaped)."""
        # The error that ends the run is what the caller reports; one raised while
        # stopping (the history's disk is full, say) must not replace it.
        not_started = [name for name, o in self.outcomes.items() if o.status == "pending"]
        with contextlib.suppress(Exception):
            self._cancel_all(not_started)

    def _cancel_all(self, pending: list[str]) -> None:
        runners = list(self.running.values())
        threads = [threading.Thread(target=r.cancel, daemon=True) for r in runners]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while self.running and time.monotonic() < deadline:
            try:
                item = self.finished.get(timeout=0.1)
            except queue.Empty:
                continue
            # As it ended: a step whose job succeeded meanwhile keeps its outputs.
            self._record_end(*item)
        for name in [*self.running, *pending]:
            self._mark(name, "cancelled")
        self.running.clear()


def _as_step_failure(name: str, error: BaseException) -> StepFailed:
    """A failure of the machinery around a step (submit, poll, config) as a step failure."""
    failure = StepFailed(name, type(error).__name__, str(error))
    failure.__cause__ = error
    return failure
