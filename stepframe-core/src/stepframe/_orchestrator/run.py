"""The local orchestrator: walks a compiled pipeline, dispatching ready steps in parallel.

Everything that can be checked is checked before the run is recorded (operators exist,
settings validate, constants can be stored), so a bad pipeline leaves nothing behind.
Steps run on daemon threads, one per running step and at most ``max_parallel`` at once;
the main thread only schedules, so Ctrl-C is handled promptly.
"""

from __future__ import annotations

import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from stepframe._artifacts.io import load_artifact, save_artifact
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._artifacts.store import ArtifactStore
from stepframe._history.database import (
    SUBMITTING,
    JobRecord,
    RunHistory,
    RunRecord,
    RunStatus,
    new_run_id,
)
from stepframe._orchestrator.cache import cache_key
from stepframe._orchestrator.console import Console, make_console
from stepframe._orchestrator.step_runner import RunContext, StepCancelled, StepRunner
from stepframe._pipeline.pipeline import ConstantInput, PipelineSpec, UpstreamInput
from stepframe._pipeline.step import EMPTY
from stepframe._plugins.manager import Plugins, activated, get_plugins
from stepframe._project import Project
from stepframe._stack import Stack, project_stack, resolve_operator, resolve_settings
from stepframe._types import ArtifactRef, Component, ComponentKind, JobState
from stepframe.exceptions import (
    NoMaterializerError,
    RunCancelled,
    RunFailed,
    StepFailed,
    UsageError,
)

__all__ = ["RunResult", "StepOutcome", "default_max_parallel", "plan_rows", "run_pipeline"]

# How long a cancelled run waits for its jobs to confirm they stopped before exiting.
CANCEL_WAIT_SECONDS = 6.0
# Step statuses whose outputs later steps can use.
_DONE = ("succeeded", "cached")


def default_max_parallel() -> int:
    """Steps mostly wait on jobs elsewhere, so allow more than one per core."""
    return min(32, (os.cpu_count() or 1) * 4)


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


@attrs.define
class RunResult:
    """A finished run: its id, how each step ended, and its outputs to load."""

    run_id: str
    pipeline: str
    status: str
    steps: dict[str, StepOutcome]
    store: ArtifactStore = attrs.field(repr=False)
    registry: MaterializerRegistry = attrs.field(repr=False)
    scratch_dir: Path = attrs.field(repr=False)

    def output(self, step: str, name: str | None = None) -> Any:
        """Load one output of a step (its only output when ``name`` is omitted)."""
        outcome = self.steps[step]
        if name is None:
            if len(outcome.outputs) != 1:
                raise KeyError(f"step {step!r} has outputs {sorted(outcome.outputs)}; name one")
            name = next(iter(outcome.outputs))
        return load_artifact(
            self.store, outcome.outputs[name], EMPTY, self.registry, self.scratch_dir
        )


@attrs.define
class _Plan:
    """A pipeline with every step's operator and settings resolved."""

    operators: dict[str, Component]
    settings: dict[str, Any]
    merged_settings: dict[str, dict[str, dict[str, Any]]]


def _plan(
    spec: PipelineSpec, stack: Stack, plugins: Plugins, run_settings: Mapping[str, Any]
) -> _Plan:
    plan = _Plan({}, {}, {})
    everywhere = {key: value for key, value in run_settings.items() if key != "steps"}
    per_step = run_settings.get("steps", {})
    unknown = sorted(set(per_step) - set(spec.steps))
    if unknown:
        raise UsageError(
            f"the run config has settings for step(s) {', '.join(unknown)}, which pipeline "
            f"{spec.name!r} does not have (its steps: {', '.join(spec.steps)})"
        )
    for name, step in spec.steps.items():
        operator = resolve_operator(stack, plugins.flavors, name, step.operator)
        layers = (spec.settings, step.settings, everywhere, per_step.get(name, {}))
        settings, merged = resolve_settings(plugins.flavors, name, operator, layers)
        plan.operators[name] = operator
        plan.settings[name] = settings
        plan.merged_settings[name] = merged
    return plan


def _store_constants(
    spec: PipelineSpec, store: ArtifactStore, registry: MaterializerRegistry, run_id: str
) -> dict[tuple[str, str], ArtifactRef]:
    # Artifacts are write-once and a resumed run stores its constants again, so each
    # orchestrator session gets its own folder.
    session = secrets.token_hex(4)
    refs = {}
    for name, step in spec.steps.items():
        for param, given in step.inputs.items():
            if not isinstance(given, ConstantInput):
                continue
            uri = store.uri_for("runs", run_id, name, "inputs", session, param)
            annotation = step.step.input_annotations.get(param, EMPTY)
            try:
                refs[(name, param)] = save_artifact(store, uri, given.value, annotation, registry)
            except NoMaterializerError as error:
                raise NoMaterializerError(f"step {name!r} input {param!r}: {error}") from None
    return refs


class _Interrupts:
    """First SIGINT/SIGTERM asks the run to cancel; a second one exits at once."""

    def __init__(self, event: threading.Event, console: Console) -> None:
        self.event = event
        self.console = console
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            os._exit(130)
        self.event.set()
        self.console.message(
            f"received {signal.Signals(signum).name}: cancelling running steps "
            "(press Ctrl-C again to exit at once)"
        )

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@contextmanager
def _closing(console: Console) -> Iterator[None]:
    try:
        yield
    finally:
        console.close()


def plan_rows(
    spec: PipelineSpec,
    *,
    plugins: Plugins | None = None,
    project: Project | None = None,
    stack: str | None = None,
    run_settings: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each step's resolved operator and settings, checked as a run would: a dry run."""
    plugins = plugins or get_plugins()
    project = project or Project.discover()
    stack_used = project_stack(project, plugins.flavors, stack)
    plan = _plan(spec, stack_used, plugins, run_settings or {})
    return [
        {
            "step": name,
            "stack": stack_used.name,
            "operator": plan.operators[name].name,
            "flavor": plan.operators[name].flavor,
            "upstream": list(step.upstream),
            "settings": plan.merged_settings[name],
        }
        for name, step in spec.steps.items()
    ]


@attrs.frozen
class _Earlier:
    """What an interrupted orchestrator of the same run left behind, for ``--resume``."""

    statuses: dict[str, str]
    outputs: dict[str, dict[str, ArtifactRef]]
    jobs: dict[str, JobRecord]  # the newest ledger row of each step


def _open_resumed(history: RunHistory, run_id: str, spec: PipelineSpec) -> RunRecord:
    record = history.get_run(run_id)
    if record.pipeline != spec.name:
        raise UsageError(
            f"run {record.run_id} ran pipeline {record.pipeline!r}, not {spec.name!r}; "
            "resume it with the pipeline it started with"
        )
    if record.status == "succeeded":
        raise UsageError(f"run {record.run_id} already succeeded; there is nothing to resume")
    if record.status == "running" and record.pid != os.getpid() and _alive(record.pid):
        raise UsageError(
            f"run {record.run_id} is still being run by process {record.pid}; stop that "
            "process first (or wait for it), then resume"
        )
    return record


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, killed but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to look at: assume the worst, never resume twice
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _bury_dead_jobs(history: RunHistory, run_id: str, plugins: Plugins) -> None:
    """Jobs of flavors whose jobs die with their orchestrator (``inprocess``) and that the
    killed orchestrator left as running: record them as failed, or the ledger would show
    them running forever."""
    for job in history.list_jobs(running_only=True, run_id=run_id):
        flavor = plugins.flavors.get(ComponentKind.STEP_OPERATOR, job.flavor)
        if flavor is not None and not flavor.jobs_outlive_client:
            history.update_job_state(job.id, JobState.FAILED)


def _earlier(history: RunHistory, run_id: str) -> _Earlier:
    outputs: dict[str, dict[str, ArtifactRef]] = {}
    for record in history.get_artifacts(run_id):
        outputs.setdefault(record.step, {})[record.output] = record.ref
    jobs = {job.step: job for job in history.list_jobs(run_id=run_id)}  # oldest first
    statuses = {step.step: step.status for step in history.get_steps(run_id)}
    return _Earlier(statuses, outputs, jobs)


def run_pipeline(
    spec: PipelineSpec,
    *,
    plugins: Plugins | None = None,
    project: Project | None = None,
    stack: str | None = None,
    max_parallel: int | None = None,
    console: Console | None = None,
    run_settings: Mapping[str, Any] | None = None,
    use_cache: bool = True,
    resume: str | None = None,
    source: str | None = None,
    raise_on_failure: bool = True,
) -> RunResult:
    """Run a compiled pipeline to the end.

    :param plugins: the plugins to use (default: the process-wide ones).
    :param project: where run history and artifacts live (default: discovered from cwd).
    :param stack: the stack to run on (default: the project's active stack; on resume, the
        stack the run started on).
    :param max_parallel: how many steps may run at once.
    :param console: where progress goes (default: the terminal, or plain lines).
    :param run_settings: the last settings layer, from a run config file: flavor name to
        settings for every step, or ``{"steps": {step: {flavor: settings}}}`` for one (on
        resume, by default, those the run started with).
    :param use_cache: reuse the outputs of unchanged steps from earlier runs.
    :param resume: the id of an interrupted run to continue instead of starting a new one.
    :param source: how to load this pipeline again (``file.py:name``), kept for resume.
    :param raise_on_failure: raise `RunFailed`/`RunCancelled` instead of returning.
    """
    plugins = plugins or get_plugins()
    project = project or Project.discover()
    max_parallel = max_parallel or default_max_parallel()
    if max_parallel < 1:
        raise ValueError("max_parallel must be at least 1")
    history: RunHistory | None = None
    if resume is not None:
        if not project.database_path.exists():
            raise UsageError(f"no runs recorded in {project.root}; nothing to resume")
        history = RunHistory(project.database_path)
        try:
            record = _open_resumed(history, resume, spec)
        except BaseException:
            history.close()
            raise
        run_id = record.run_id
        # Continue as the run started: on its stack, with its run config.
        stack = stack or record.stack
        run_settings = record.run_settings if run_settings is None else run_settings
    else:
        run_id = new_run_id()
    try:
        stack_used = project_stack(project, plugins.flavors, stack)
        plan = _plan(spec, stack_used, plugins, run_settings or {})
    except BaseException:
        if history is not None:
            history.close()
        raise

    with activated(plugins):
        store = plugins.hooks.open_artifact_store(stack_used.artifact_store_uri, None)
        registry = MaterializerRegistry(plugins.materializers)
        # Before the history is opened: a constant that cannot be stored is a usage
        # error, and must not leave a database (or a run row) behind.
        constants = _store_constants(spec, store, registry, run_id)
        if history is None:
            project.state_dir.mkdir(parents=True, exist_ok=True)
            history = RunHistory(project.database_path)
        console = console or make_console()
        cancel_event = threading.Event()
        # Handle interrupts from before the run row exists: a Ctrl-C at any point from
        # here on cancels the run instead of leaving it recorded as running.
        with _Interrupts(cancel_event, console):
            earlier = None
            if resume is not None:
                _bury_dead_jobs(history, run_id, plugins)
                earlier = _earlier(history, run_id)
                history.reopen_run(run_id)
            else:
                history.create_run(
                    run_id,
                    spec.name,
                    project_root=str(project.root),
                    params=_printable(spec.params),
                    source=source,
                    stack=stack_used.name,
                    run_settings=run_settings,
                )
            for name in spec.steps:
                if earlier is None or earlier.statuses.get(name) not in _DONE:
                    history.set_step(
                        run_id,
                        name,
                        status="pending",
                        operator=plan.operators[name].name,
                        flavor=plan.operators[name].flavor,
                    )
            context = RunContext(
                run_id=run_id,
                spec=spec,
                stack=stack_used,
                plugins=plugins,
                store=store,
                history=history,
                console=console,
                cancel_event=cancel_event,
                workdir=str(project.jobs_dir),
            )
            verb = "resuming" if earlier is not None else "run"
            console.message(
                f"{verb} {run_id} of pipeline {spec.name!r} ({len(spec.steps)} steps, "
                f"stack {stack_used.name!r})"
            )
            scheduler = _Scheduler(context, plan, constants, max_parallel, use_cache, earlier)
            with _closing(console):
                outcomes = scheduler.run()
            status = _run_status(outcomes, cancel_event.is_set())
            failures = {n: o.error for n, o in outcomes.items() if o.error is not None}
            history.finish_run(run_id, status, error=_summary_error(failures))
        result = RunResult(
            run_id, spec.name, status, outcomes, store, registry, project.state_dir / "loaded"
        )
        console.message(_summary(result))
        history.close()

    if raise_on_failure and status == "cancelled":
        raise RunCancelled(run_id, failures)
    if raise_on_failure and status == "failed":
        skipped = tuple(n for n, o in outcomes.items() if o.status == "skipped")
        raise RunFailed(run_id, failures, skipped) from next(iter(failures.values()))
    return result


def _printable(params: Mapping[str, Any]) -> dict[str, str]:
    return {key: repr(value)[:200] for key, value in params.items()}


def _run_status(outcomes: Mapping[str, StepOutcome], cancelled: bool) -> RunStatus:
    # An interrupt that came after the last step ended cancelled nothing.
    if cancelled and any(o.status == "cancelled" for o in outcomes.values()):
        return "cancelled"
    if any(o.status == "failed" for o in outcomes.values()):
        return "failed"
    return "succeeded"


def _summary_error(failures: Mapping[str, BaseException]) -> str | None:
    if not failures:
        return None
    return "; ".join(f"{name}: {str(error).splitlines()[0]}" for name, error in failures.items())


def _summary(result: RunResult) -> str:
    counts: dict[str, int] = {}
    for outcome in result.steps.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines = [f"run {result.run_id} {result.status}: {parts}"]
    for outcome in result.steps.values():
        if outcome.error is not None:
            lines.append(f"\n--- step {outcome.name!r} failed ---\n{outcome.error}")
    return "\n".join(lines)


class _Scheduler:
    """Starts steps whose inputs are ready, collects their ends, and handles cancel."""

    def __init__(
        self,
        context: RunContext,
        plan: _Plan,
        constants: Mapping[tuple[str, str], ArtifactRef],
        max_parallel: int,
        use_cache: bool,
        earlier: _Earlier | None,
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
        pending = [name for name in spec.steps if not self._done_earlier(name)]
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

    def _done_earlier(self, name: str) -> bool:
        """On resume: take a step the interrupted run finished, if its outputs are intact."""
        if self.earlier is None or self.earlier.statuses.get(name) not in _DONE:
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
            elif all(state in _DONE for state in states) and len(self.running) < self.max_parallel:
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
