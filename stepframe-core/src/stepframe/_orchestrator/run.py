"""The local orchestrator: walks a compiled pipeline, dispatching ready steps in parallel.

Everything that can be checked is checked before the run is recorded (operators exist,
settings validate, constants can be stored), so a bad pipeline leaves nothing behind.
The pieces: `plan` (operators, settings, constants), `resume` (an interrupted run read
back), `scheduler` (dispatching steps), `step_runner` (one step's life).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from stepframe._artifacts.io import load_artifact
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._artifacts.shared import sharing
from stepframe._artifacts.store import ArtifactStore
from stepframe._history.database import RunHistory, RunStatus, StepEdge, new_run_id
from stepframe._orchestrator.console import Console, make_console
from stepframe._orchestrator.credentials import RunCredentials, connectors_of_run
from stepframe._orchestrator.plan import make_plan, plan_rows, store_constants
from stepframe._orchestrator.resume import bury_dead_jobs, earlier_run, open_resumed
from stepframe._orchestrator.scheduler import DONE, Scheduler, StepOutcome
from stepframe._orchestrator.step_runner import RunContext
from stepframe._pipeline.pipeline import PipelineSpec, UpstreamInput
from stepframe._pipeline.step import EMPTY
from stepframe._plugins.manager import Plugins, activated, get_plugins
from stepframe._project import CONFIG_FILE, Project
from stepframe._stack import project_stack
from stepframe._types import ResourceRequest
from stepframe.exceptions import RunCancelled, RunFailed, StorageFullError, UsageError

__all__ = ["RunResult", "StepOutcome", "default_max_parallel", "plan_rows", "run_pipeline"]


def default_max_parallel() -> int:
    """Steps mostly wait on jobs elsewhere, so allow more than one per core."""
    return min(32, (os.cpu_count() or 1) * 4)


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
            record = open_resumed(history, resume, spec)
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
        plan = make_plan(spec, stack_used, plugins, run_settings or {})
        # Pre-flight (issue 11): plugins check every step before anything runs or is built.
        from stepframe._orchestrator.preflight import preflight

        preflight(spec, stack_used, plan, plugins, Path(spec.code_root))
    except BaseException:
        if history is not None:
            history.close()
        raise

    with activated(plugins):
        # Every connector the run's steps use, asked once right after the pre-flight: a
        # refusal (an expired token, a wrong secret) ends the run before any image is
        # built or job submitted, and what they hand out is reused for the whole run.
        credentials = RunCredentials(stack_used, plugins.hooks)
        store_use = (
            stack_used.artifact_store,
            ResourceRequest("object_store", stack_used.artifact_store_uri),
        )
        try:
            credentials.authenticate_up_front(
                [store_use, *connectors_of_run(list(spec.steps), stack_used, plan, plugins)]
            )
        except BaseException:
            if history is not None:
                history.close()
            raise
        store_credentials = credentials.get(*store_use)
        store = plugins.hooks.open_artifact_store(stack_used.artifact_store_uri, store_credentials)
        registry = MaterializerRegistry(plugins.materializers)
        # Before the history is opened: a constant that cannot be stored is a usage
        # error, and must not leave a database (or a run row) behind.
        constants = store_constants(spec, store, registry, run_id)
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
                # Claimed first: of two resumes of one run, only the one holding it reads
                # and changes its ledger.
                try:
                    history.reopen_run(run_id)
                    bury_dead_jobs(history, run_id, plugins)
                    earlier = earlier_run(history, run_id)
                except BaseException:
                    history.close()  # a long-lived caller (a notebook) keeps no connection
                    raise
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
                if earlier is None or earlier.statuses.get(name) not in DONE:
                    history.set_step(
                        run_id,
                        name,
                        status="pending",
                        operator=plan.operators[name].name,
                        flavor=plan.operators[name].flavor,
                        upstream=_edges(spec, name),
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
                store_credentials=store_credentials,
                credentials=credentials,
                config_path=project.root / CONFIG_FILE,
            )
            verb = "resuming" if earlier is not None else "run"
            console.message(
                f"{verb} {run_id} of pipeline {spec.name!r} ({len(spec.steps)} "
                f"step{'' if len(spec.steps) == 1 else 's'}, "
                f"stack {stack_used.name!r})"
            )
            scheduler = Scheduler(context, plan, constants, max_parallel, use_cache, earlier)
            try:
                with _closing(console), sharing(store):
                    outcomes = scheduler.run()
            except BaseException as error:
                if isinstance(error, StorageFullError) and error.path == str(history.path):
                    # The history itself cannot be written: nothing can end the run or
                    # record a cancel.  The run stays recorded as started (`runs list`
                    # shows it interrupted once this process is gone), and its jobs go on,
                    # to be re-attached by --resume, not stopped behind the ledger's back.
                    error.fix = (
                        f"free space on that disk, then continue the run with "
                        f"`stepframe run --resume {run_id}` (its jobs go on meanwhile)"
                    )
                    history.close()
                    raise
                # Never leave the run recorded as running in a process that goes on (a
                # notebook): an escaping error ends it as failed, and its jobs are stopped.
                scheduler.stop_all()
                history.finish_run(run_id, "failed", error=f"{type(error).__name__}: {error}")
                history.close()
                raise
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


def _edges(spec: PipelineSpec, name: str) -> list[StepEdge]:
    """The DAG's edges into a step, for the history: `runs show` lists them without
    importing the pipeline again."""
    return [
        StepEdge(given.step, given.output, param)
        for param, given in spec.steps[name].inputs.items()
        if isinstance(given, UpstreamInput)
    ]


def _printable(params: Mapping[str, Any]) -> dict[str, Any]:
    from stepframe._pipeline.parameters import recorded_parameters

    return recorded_parameters(params)


def _run_status(outcomes: Mapping[str, StepOutcome], cancelled: bool) -> RunStatus:
    # An interrupt that came after the last step ended cancelled nothing.
    any_cancelled = any(o.status == "cancelled" for o in outcomes.values())
    if cancelled and any_cancelled:
        return "cancelled"
    if any(o.status == "failed" for o in outcomes.values()):
        return "failed"
    # A job stopped from elsewhere (`stepframe jobs stop`) cancels its step, and the run.
    if any_cancelled:
        return "cancelled"
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
