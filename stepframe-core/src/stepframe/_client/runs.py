"""`Runs`: the public, read-only client API to recorded runs and their outputs.

    from stepframe import Runs
    run = Runs().latest("training")
    model = run.step("train").output()

It reads the project's run history (opened read-only, so it never blocks a run writing
it) and loads artifacts from whichever store recorded them, through the materializer
that wrote them, checking their sha256.  It works in any process after the run, the one
that ran it or a new one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stepframe.exceptions import UsageError

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from stepframe._artifacts.materializers import MaterializerRegistry
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._history.database import ArtifactRecord, JobRecord, RunHistory, RunRecord
    from stepframe._plugins.manager import Plugins

__all__ = ["Job", "Run", "RunStep", "Runs"]

RUN_STATUSES = ("running", "interrupted", "succeeded", "failed", "cancelled")
# An output below its attempt's folder: .../runs/RUN/STEP/attempt-N/outputs/NAME.
_ATTEMPT_OUTPUT = re.compile(r"/outputs/[^/]+$")


@attrs.frozen
class Job:
    """The job that ran a step's latest attempt, as the job ledger recorded it.

    :param console_url: where the backend shows the job (a cloud console page), when the
        operator recorded one.
    """

    operator: str
    flavor: str
    job_id: str | None
    state: str
    attempt: int
    console_url: str | None = None
    region: str | None = None
    note: str | None = None

    @classmethod
    def from_record(cls, row: JobRecord) -> Job:
        data = row.handle.data if row.handle is not None else {}
        url = data.get("console_url")
        return cls(
            operator=row.operator,
            flavor=row.flavor,
            job_id=row.job_id,
            state=row.state,
            attempt=row.attempt,
            console_url=url if isinstance(url, str) else None,
            region=row.region,
            note=row.note,
        )


class Runs:
    """The runs recorded in a project.

    :param project: the project folder, or any folder inside it (default: found from the
        working directory, as the ``stepframe`` command finds it).
    :param plugins: the plugins that open artifact stores and provide materializers
        (default: the installed ones).
    """

    def __init__(
        self, project: str | os.PathLike[str] | None = None, *, plugins: Plugins | None = None
    ) -> None:
        from stepframe._client.stores import ProjectStores
        from stepframe._project import Project

        self.project = Project.discover(Path(project) if project is not None else None)
        self._stores = ProjectStores(self.project, plugins)
        self._history: RunHistory | None = None

    @property
    def history(self) -> RunHistory:
        """The run history, opened read-only on first use."""
        if self._history is None:
            from stepframe._history.database import RunHistory

            self._history = RunHistory.open_read_only(self.project.database_path)
        return self._history

    def latest(self, pipeline: str | None = None, *, status: str | None = None) -> Run:
        """The most recently started run (of ``pipeline``, with ``status``, when given)."""
        found = self.list(pipeline=pipeline, status=status, limit=1)
        if not found:
            what = " ".join(
                part
                for part in (
                    f"{status}" if status else "",
                    "run",
                    f"of pipeline {pipeline!r}" if pipeline else "",
                )
                if part
            )
            known = ", ".join(self.history.pipelines()) or "none"
            raise UsageError(
                f"no {what} recorded in {self.project.root} (pipelines with runs: {known})"
            )
        return found[0]

    def get(self, run_id: str) -> Run:
        """The run with this id, or the only one whose id contains ``run_id``."""
        return Run(self, self.history.find_run(run_id))

    def list(
        self, pipeline: str | None = None, status: str | None = None, limit: int | None = 20
    ) -> list[Run]:
        """Runs, newest first.

        :param status: ``running``, ``interrupted``, ``succeeded``, ``failed`` or
            ``cancelled``.
        :param limit: at most this many (None: all).
        """
        if status is not None and status not in RUN_STATUSES:
            raise UsageError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        records = self.history.query_runs(pipeline=pipeline, status=status, limit=limit)
        return [Run(self, record) for record in records]

    def close(self) -> None:
        """Close the run history (the object can be used again: it reopens it)."""
        if self._history is not None:
            self._history.close()
            self._history = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Runs({str(self.project.root)!r})"

    # What the steps' `output()` needs, shared by every run of this client.
    def _load(self, record: ArtifactRecord) -> Any:
        from stepframe._artifacts.io import load_artifact
        from stepframe._pipeline.step import EMPTY

        store, registry = self._local_fast_path(record.uri) or self._through_plugins(record.uri)
        return load_artifact(store, record.ref, EMPTY, registry, self.project.state_dir / "loaded")

    def _through_plugins(self, uri: str) -> tuple[ArtifactStore, MaterializerRegistry]:
        from stepframe._artifacts.materializers import MaterializerRegistry

        store = self._stores.for_uri(uri)
        return store, MaterializerRegistry(self._stores.plugins.materializers)

    def _local_fast_path(self, uri: str) -> tuple[ArtifactStore, MaterializerRegistry] | None:
        """For an artifact of the core's local store in a project with only the default
        stack: the store, and the materializers of the plugins the step's launch manifest
        names (none, usually), as a job opens them; loading every plugin would cost more
        than reading the artifact.  None when that does not apply."""
        from stepframe.entrypoint import _local_store_is_builtin, _plugins_for

        attempt = _ATTEMPT_OUTPUT.search(uri)
        if self._stores.given_plugins or attempt is None or not _local_store_is_builtin(uri):
            return None
        from stepframe._project import CONFIG_FILE

        if (self.project.root / CONFIG_FILE).is_file():
            return None
        import json

        from stepframe._artifacts.materializers import MaterializerRegistry
        from stepframe.exceptions import StepframeError

        store = self._stores.for_uri(uri)
        try:  # one field of the launch manifest: no need for its full reader (cattrs)
            with store.open_read(uri[: attempt.start()] + "/launch.json") as stream:
                wanted = json.load(stream).get("materializer_plugins")
        except (StepframeError, ValueError, AttributeError):  # missing or unreadable
            return None
        if not isinstance(wanted, list):
            return None
        if not wanted:
            return store, MaterializerRegistry()
        return store, MaterializerRegistry(_plugins_for(wanted).materializers)


class Run:
    """One recorded run: its record, and its steps on demand."""

    def __init__(self, runs: Runs, record: RunRecord) -> None:
        self._runs = runs
        self.record = record
        self._steps: dict[str, RunStep] | None = None

    run_id = property(lambda self: self.record.run_id, doc="The run's id.")
    pipeline = property(lambda self: self.record.pipeline, doc="The pipeline's name.")
    status = property(
        lambda self: self.record.status,
        doc="running, interrupted, succeeded, failed or cancelled (when read).",
    )
    started_at = property(lambda self: self.record.started_at, doc="Start (Unix time).")
    ended_at = property(lambda self: self.record.ended_at, doc="End (Unix time), or None.")
    params = property(lambda self: self.record.params, doc="The pipeline's parameters.")
    error = property(lambda self: self.record.error, doc="What failed, or None.")

    @property
    def steps(self) -> dict[str, RunStep]:
        """The run's steps by name, in the order they were recorded (read once)."""
        if self._steps is None:
            history = self._runs.history
            artifacts: dict[str, dict[str, ArtifactRecord]] = {}
            for artifact in history.get_artifacts(self.run_id):
                artifacts.setdefault(artifact.step, {})[artifact.output] = artifact
            latest_job: dict[str, JobRecord] = {}
            for job in history.list_jobs(run_id=self.run_id):
                latest_job[job.step] = job  # oldest first: the last one is the latest
            self._steps = {
                record.step: RunStep(
                    self._runs,
                    self,
                    record.step,
                    record.status,
                    record.operator,
                    record.flavor,
                    record.attempt,
                    record.started_at,
                    record.ended_at,
                    record.error,
                    record.cache_key,
                    artifacts.get(record.step, {}),
                    latest_job.get(record.step),
                )
                for record in history.get_steps(self.run_id)
            }
        return self._steps

    def step(self, name: str) -> RunStep:
        """One step by name."""
        steps = self.steps
        if name not in steps:
            raise UsageError(
                f"run {self.run_id} has no step {name!r}; its steps: {', '.join(steps) or 'none'}"
            )
        return steps[name]

    def refresh(self) -> Run:
        """The same run read again (a running run moves on)."""
        return Run(self._runs, self._runs.history.find_run(self.run_id))

    def __repr__(self) -> str:
        return f"<Run {self.run_id} {self.pipeline!r} {self.status}>"


@attrs.frozen(eq=False)
class RunStep:
    """One step of a recorded run."""

    _runs: Runs = attrs.field(repr=False)
    run: Run = attrs.field(repr=False)
    name: str
    status: str
    operator: str | None
    flavor: str | None
    attempt: int
    started_at: float | None
    ended_at: float | None
    error: str | None = attrs.field(repr=False)
    cache_key: str | None = attrs.field(repr=False)
    artifacts: dict[str, ArtifactRecord] = attrs.field(repr=False)
    _job: JobRecord | None = attrs.field(repr=False)

    @property
    def outputs(self) -> list[str]:
        """The names of the outputs the step stored."""
        return list(self.artifacts)

    def output(self, name: str | None = None) -> Any:
        """Load one output (the only one when ``name`` is omitted) with the materializer
        that stored it, checking its sha256 and size against the record.

        :raises ArtifactCorruptedError: the stored bytes are not the recorded ones.
        """
        if not self.artifacts:
            raise UsageError(
                f"step {self.name!r} of run {self.run.run_id} stored no outputs (it is "
                f"{self.status})"
            )
        if name is None:
            if len(self.artifacts) != 1:
                raise UsageError(
                    f"step {self.name!r} has outputs {', '.join(sorted(self.artifacts))}; name "
                    f"one: .output({min(self.artifacts)!r})"
                )
            name = next(iter(self.artifacts))
        if name not in self.artifacts:
            raise UsageError(
                f"step {self.name!r} of run {self.run.run_id} has no output {name!r}; its "
                f"outputs: {', '.join(self.artifacts)}"
            )
        return self._runs._load(self.artifacts[name])

    @property
    def job(self) -> Job | None:
        """The job of the step's latest attempt: operator, job id, state, console URL."""
        return None if self._job is None else Job.from_record(self._job)

    def log_path(self) -> Path | None:
        """The file the step's log is kept in, or None when none is kept here."""
        from stepframe._client.logs import step_log_path

        return step_log_path(self._runs.project, self.run.run_id, self.name, self._job)

    def logs(self) -> str | None:
        """The step's log, or None when no log is kept for it."""
        path = self.log_path()
        if path is None:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
