"""Driving one step operator through its hooks, the way the core does, for the kit's suites.

The harness writes real launch manifests and inputs to a real artifact store, so the job
runs ``python -m stepframe.entrypoint MANIFEST_URI`` exactly as in a pipeline run; only
the orchestrator around it is left out, so each hook's answer can be checked on its own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from stepframe._artifacts.io import load_artifact, save_artifact
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._artifacts.store import ArtifactStore
from stepframe._history.database import new_run_id
from stepframe._manifests import (
    FunctionRef,
    LaunchManifest,
    OutputTarget,
    ResultManifest,
    read_manifest,
    write_manifest,
)
from stepframe._orchestrator.step_runner import job_name
from stepframe._plugins.manager import Plugins
from stepframe._types import (
    ArtifactRef,
    Component,
    Credentials,
    ImageRef,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    StepResult,
)
from stepframe.exceptions import ArtifactNotFoundError

__all__ = ["STEPS_MODULE", "STEPS_SOURCE", "FinishedJob", "OperatorHarness"]

# The harness polls at least this often, whatever poll_after says, so that tests which
# pause a step for longer are sure to poll during the pause.
POLL_CAP_SECONDS = 1.0

# The module of steps the kit's jobs run, written into the code root of each test.
STEPS_MODULE = "stepframe_testing_steps"
STEPS_SOURCE = '''\
"""Steps that stepframe's conformance kit (stepframe.testing) runs on step operators."""

import os
import sys
import time


def double(x):
    return 2 * x


def explode(message):
    raise ValueError(message)


def chatter(lines, pause):
    for number in range(lines):
        if number == lines // 2:
            time.sleep(pause)  # a poll or two see the first half only
        print(f"kit line {number}", flush=True)
    return lines


def sleeper(seconds):
    print("kit sleeper started", flush=True)
    time.sleep(seconds)
    print("kit sleeper woke up", flush=True)
    return "slept"


def environment(names):
    return {name: os.environ.get(name) for name in names}


def unterminated():
    print("kit first line", flush=True)
    sys.stdout.write("kit last line without a newline")
    sys.stdout.flush()
    return "done"
'''


@attrs.frozen
class FinishedJob:
    """What following a job to its end saw."""

    status: JobStatus
    log_lines: tuple[str, ...]
    polls: int
    states: tuple[JobState, ...]
    #: the cursor of the last poll: where a later follow continues the log.
    cursor: str | None = None


@attrs.define
class OperatorHarness:
    """Prepares step launches in a code root and drives them through the hooks.

    :param plugins: the plugins under test.
    :param operator: the step operator component the launches run on.
    :param store: the artifact store the launch manifests, inputs and outputs live in.
    :param code_root: the folder holding the kit's steps module (the "project code").
    :param workdir: the client-side folder operators may keep files in (``Launch.workdir``).
    :param settings: the operator flavor's settings instance for every launch.
    :param merged_settings: the settings by flavor, as recorded in the launch manifest.
    :param credentials: passed to submit, poll and cancel.
    :param image: the image for flavors that run steps in one.
    :param max_poll_seconds: one poll must answer within this (the hook must not block).
    """

    plugins: Plugins
    operator: Component
    store: ArtifactStore
    code_root: Path
    workdir: Path
    settings: Any = None
    merged_settings: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    credentials: Credentials | None = None
    image: ImageRef | None = None
    max_poll_seconds: float = 5.0
    run_id: str = attrs.field(factory=new_run_id)
    registry: MaterializerRegistry = attrs.field(init=False)
    jobs: list[tuple[JobHandle, Launch]] = attrs.field(init=False, factory=list)
    finished: set[str] = attrs.field(init=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self.registry = MaterializerRegistry(self.plugins.materializers)
        (self.code_root / f"{STEPS_MODULE}.py").write_text(STEPS_SOURCE)

    # ---- launches ------------------------------------------------------------------

    def launch(
        self,
        function: str,
        inputs: Mapping[str, object] | None = None,
        *,
        pipeline: str = "kit",
        step: str | None = None,
        attempt: int = 1,
        run_id: str | None = None,
    ) -> Launch:
        """Store ``inputs`` and a launch manifest for ``function`` of the kit's steps."""
        run_id = run_id or self.run_id
        step = step or function
        base = ("runs", run_id, step, f"attempt-{attempt}")
        refs: dict[str, ArtifactRef] = {}
        for name, value in (inputs or {}).items():
            uri = self.store.uri_for(*base, "inputs", name)
            refs[name] = save_artifact(self.store, uri, value, Any, self.registry)
        manifest_uri = self.store.uri_for(*base, "launch.json")
        result_uri = self.store.uri_for(*base, "result.json")
        manifest = LaunchManifest(
            run_id=run_id,
            pipeline=pipeline,
            step=step,
            attempt=attempt,
            function=FunctionRef(STEPS_MODULE, function, f"{STEPS_MODULE}.py"),
            inputs=refs,
            outputs=[OutputTarget("output", self.store.uri_for(*base, "outputs", "output"))],
            result_uri=result_uri,
            artifact_store_uri=self.store.root_uri,
            settings={key: dict(value) for key, value in self.merged_settings.items()},
            versions=_versions(),
            materializer_plugins=list(self.plugins.materializer_plugins),
        )
        write_manifest(self.store, manifest_uri, manifest)
        return Launch(
            run_id=run_id,
            pipeline=pipeline,
            step=step,
            attempt=attempt,
            job_name=job_name(pipeline, step, run_id, attempt),
            manifest_uri=manifest_uri,
            result_uri=result_uri,
            command=("python", "-m", "stepframe.entrypoint", manifest_uri),
            environment={"STEPFRAME_LAUNCH_MANIFEST": manifest_uri},
            settings=self.settings,
            image=self.image,
            code_root=str(self.code_root),
            workdir=str(self.workdir),
        )

    # ---- the hooks -----------------------------------------------------------------

    def submit(self, launch: Launch) -> JobHandle:
        """``submit_step`` through the core's typed facade (so a wrong answer is an error)."""
        handle = self.plugins.hooks.submit_step(launch, self.operator, self.credentials)
        self.jobs.append((handle, launch))
        return handle

    def poll(self, handle: JobHandle, cursor: str | None) -> JobStatus:
        """One ``poll_step``, which must answer promptly."""
        started = time.monotonic()
        status = self.plugins.hooks.poll_step(handle, self.credentials, cursor)
        took = time.monotonic() - started
        assert took <= self.max_poll_seconds, (
            f"poll_step took {took:.1f}s; it must not block (limit {self.max_poll_seconds}s, "
            "the suite's max_poll_seconds)"
        )
        if status.state.is_terminal:
            self.finished.add(handle.job_id)
        return status

    def follow(
        self,
        handle: JobHandle,
        timeout: float,
        *,
        until: Any = None,
        cursor: str | None = None,
    ) -> FinishedJob:
        """Poll until the job ends (or ``until(status, lines)`` is true); collect its log.

        :param cursor: where to continue the log from (a cursor an earlier follow, maybe
            in another process, ended with); None from the start.
        Fails the test when the job is still going after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        states: list[JobState] = []
        polls = 0
        while True:
            status = self.poll(handle, cursor)
            polls += 1
            cursor = status.cursor
            lines.extend(status.log_lines)
            if not states or states[-1] is not status.state:
                states.append(status.state)
            done = status.state.is_terminal or (until is not None and until(status, lines))
            if done:
                return FinishedJob(status, tuple(lines), polls, tuple(states), cursor)
            assert time.monotonic() < deadline, (
                f"job {handle.job_id!r} still {status.state.value} after {timeout:.0f}s "
                f"(states seen: {[s.value for s in states]}, log: {lines[-5:]})"
            )
            wait = status.poll_after if status.poll_after is not None else 0.2
            time.sleep(min(max(wait, 0.02), POLL_CAP_SECONDS))

    def result(self, handle: JobHandle, launch: Launch, status: JobStatus) -> StepResult | None:
        """What the core takes as the step's result: ``fetch_artifacts``, else the result
        manifest the entrypoint wrote; None when there is neither."""
        fetched = self.plugins.hooks.fetch_artifacts(handle, launch)
        if fetched is not None:
            return fetched
        try:
            manifest = read_manifest(self.store, launch.result_uri, ResultManifest)
        except ArtifactNotFoundError:
            return None
        return StepResult(outputs=manifest.outputs, error=manifest.error)

    def load(self, ref: ArtifactRef) -> object:
        """Load an output artifact, checking its sha256 and size."""
        return load_artifact(self.store, ref, Any, self.registry, self.workdir / "loaded")

    def cancel(self, handle: JobHandle) -> bool:
        return self.plugins.hooks.cancel_step(handle, self.credentials)

    def cleanup(self, timeout: float = 30.0) -> list[str]:
        """Cancel the jobs this harness started that were not seen to end; wait a while.

        :return: problems worth reporting (a job that would not stop).
        """
        problems = []
        for handle, _launch in self.jobs:
            if handle.job_id in self.finished:
                continue
            try:
                self.cancel(handle)
                self.follow(handle, timeout)
            except Exception as error:  # AssertionError too: still running after the timeout
                problems.append(f"job {handle.job_id!r}: {type(error).__name__}: {error}")
        return problems


def in_another_process(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked copy of this process, which then dies without any cleanup
    (``os._exit``), the way a killed client does; return what ``work`` returned.

    ``work`` must return JSON data; an exception in it fails the calling test with its
    text.  Whatever ``work`` started lives on; what it kept in memory dies with it.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: do the work, report, and die at once
        try:
            os.close(read)
            try:
                payload: dict[str, Any] = {"answer": work()}
            except BaseException as error:  # reported to the parent, never raised here
                payload = {"error": f"{type(error).__name__}: {error}"}
            with os.fdopen(write, "wb") as out:
                out.write(json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        data = answer.read()
    os.waitpid(pid, 0)
    payload = json.loads(data.decode() or '{"error": "the other process died silently"}')
    assert "error" not in payload, f"in the other process: {payload['error']}"
    return payload["answer"]


def handle_to_json(handle: JobHandle) -> str:
    """A handle as the run history stores it."""
    from stepframe._history.database import _handle_to_json

    return _handle_to_json(handle)


def handle_from_json(text: str) -> JobHandle:
    """A handle read back from the run history, as another process does."""
    from stepframe._history.database import _handle_from_json

    restored = _handle_from_json(text)
    assert restored is not None, f"no handle in {text!r}"
    return restored


def handle_round_trip(handle: JobHandle) -> JobHandle:
    """A handle as the run history stores it (JSON) and reads it back in another process."""
    text = handle_to_json(handle)
    json.loads(text)  # plain JSON, nothing else
    return handle_from_json(text)


def _versions() -> dict[str, str]:
    from stepframe import __version__

    return {"stepframe": __version__, "python": ".".join(map(str, sys.version_info[:3]))}


def other_flavor_component(kind: Any, name: str = "stepframe-kit-nobody") -> Component:
    """A component of a flavor no plugin provides: every selection hook must pass on it."""
    return Component(kind=kind, name=name, flavor=name)


def lines_with(prefix: str, lines: Sequence[str]) -> list[str]:
    """The log lines that contain ``prefix`` (backends may add their own lines)."""
    return [line for line in lines if prefix in line]
