"""What ``run --resume`` reads back: the interrupted run's steps, outputs and jobs."""

from __future__ import annotations

import os

import attrs

from stepframe._history.database import JobRecord, RunHistory, RunRecord
from stepframe._pipeline.pipeline import PipelineSpec
from stepframe._plugins.manager import Plugins
from stepframe._types import ArtifactRef, ComponentKind, JobState
from stepframe.exceptions import UsageError

__all__ = ["EarlierRun", "bury_dead_jobs", "earlier_run", "open_resumed"]


@attrs.frozen
class EarlierRun:
    """What an interrupted orchestrator of the same run left behind, for ``--resume``."""

    statuses: dict[str, str]
    outputs: dict[str, dict[str, ArtifactRef]]
    jobs: dict[str, JobRecord]  # the newest ledger row of each step


def open_resumed(history: RunHistory, run_id: str, spec: PipelineSpec) -> RunRecord:
    record = history.get_run(run_id)
    if record.pipeline != spec.name:
        raise UsageError(
            f"run {record.run_id} ran pipeline {record.pipeline!r}, not {spec.name!r}; "
            "resume it with the pipeline it started with"
        )
    if record.status == "succeeded":
        raise UsageError(f"run {record.run_id} already succeeded; there is nothing to resume")
    # Checked early, before the plan; `RunHistory.reopen_run` checks again as it claims
    # the run.  A run whose process is gone reads as interrupted, not running.
    if record.status == "running" and record.pid != os.getpid():
        raise UsageError(
            f"run {record.run_id} is still being run by process {record.pid} on "
            f"{record.hostname}; stop that process first (or wait for it), then resume"
        )
    return record


def bury_dead_jobs(history: RunHistory, run_id: str, plugins: Plugins) -> None:
    """Jobs of flavors whose jobs die with their orchestrator (``inprocess``) and that the
    killed orchestrator left as running: record them as failed, or the ledger would show
    them running forever."""
    for job in history.list_jobs(running_only=True, run_id=run_id):
        flavor = plugins.flavors.get(ComponentKind.STEP_OPERATOR, job.flavor)
        if flavor is not None and not flavor.jobs_outlive_client:
            history.update_job_state(job.id, JobState.FAILED)


def earlier_run(history: RunHistory, run_id: str) -> EarlierRun:
    outputs: dict[str, dict[str, ArtifactRef]] = {}
    for record in history.get_artifacts(run_id):
        outputs.setdefault(record.step, {})[record.output] = record.ref
    jobs = {job.step: job for job in history.list_jobs(run_id=run_id)}  # oldest first
    statuses = {step.step: step.status for step in history.get_steps(run_id)}
    return EarlierRun(statuses, outputs, jobs)
