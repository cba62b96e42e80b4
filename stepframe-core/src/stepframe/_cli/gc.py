"""``stepframe runs delete|prune`` and ``stepframe gc``: the project's state stops growing.

``runs delete`` and ``runs prune`` remove runs from the history, then the artifacts of
those runs that nothing else references (and their local job logs).  ``gc`` removes, from
every artifact store of the project, the objects of runs that have no record any more
and that no recorded run references; it only says what it would remove unless given
``--yes``.  What is always kept is listed in `stepframe._client.cleanup`.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import click

from stepframe._cli.errors import reports_errors

if TYPE_CHECKING:
    from stepframe._client.cleanup import StoreSweep
    from stepframe._history.database import RunHistory, RunRecord
    from stepframe._project import Project

__all__ = ["delete_runs", "gc", "prune_runs"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _size(size: int) -> str:
    from stepframe._cli.runs import _size as size_text

    return size_text(size)


def _open() -> tuple[Project, RunHistory]:
    from stepframe._history.database import RunHistory
    from stepframe._project import Project
    from stepframe.exceptions import UsageError

    project = Project.discover()
    if not project.database_path.is_file():
        raise UsageError(
            f"no runs recorded in {project.root} yet (looked for {project.database_path})"
        )
    return project, RunHistory(project.database_path)


def _report_sweeps(sweeps: list[StoreSweep], *, verb: str) -> None:
    for sweep in sweeps:
        line = (
            f"store {sweep.store.root_uri}: {verb} {len(sweep.garbage)} object(s), "
            f"{_size(sweep.bytes)}"
        )
        if any(size is None for _, size in sweep.garbage):
            line += " (sizes this store does not tell are not counted)"
        extras = []
        if sweep.kept_recent:
            extras.append(
                f"kept {sweep.kept_recent} of runs with no record that may be starting (--min-age)"
            )
        if sweep.kept_for_running:
            extras.append(
                f"kept {sweep.kept_for_running} cacheable output(s) while another run is "
                "going (`stepframe gc` removes them later)"
            )
        click.echo(line + ("; " + "; ".join(extras) if extras else ""))
        for problem in sweep.problems:
            click.echo(f"  warning: {problem}", err=True)


def _remove_runs(records: list[RunRecord], *, dry_run: bool) -> None:
    """Delete runs, then what of theirs nothing references; or say what that would do."""
    from stepframe._client.cleanup import (
        delete_objects,
        job_logs_of,
        plan_sweep,
        remove_job_logs,
        step_logs_of,
    )
    from stepframe._client.stores import ProjectStores

    project, history = _open()
    with history:
        ids = [r.run_id for r in records]
        others_running = [
            r.run_id
            for r in history.query_runs(status="running", limit=None)
            if r.run_id not in ids
        ]
        protect: set[str] = set()
        if others_running:
            cacheable = {
                (s.run_id, s.step)
                for run_id in ids
                for s in history.get_steps(run_id)
                if s.cache_key is not None
            }
            protect = {
                a.uri
                for run_id in ids
                for a in history.get_artifacts(run_id)
                if (a.run_id, a.step) in cacheable
            }
        jobs = [job for run_id in ids for job in history.list_jobs(run_id=run_id)]
        stores = ProjectStores(project)
        if dry_run:
            for record in records:
                click.echo(f"would delete run {record.run_id} ({record.pipeline}, {record.status})")
            sweeps = plan_sweep(history, stores, only_runs=ids, forget=ids, protect=protect)
            _report_sweeps(sweeps, verb="would delete")
            logs = job_logs_of(jobs, project) + step_logs_of(project, ids)
            if logs:
                click.echo(f"would delete {len(logs)} log file(s)")
            click.echo("dry run: nothing was deleted")
            return
        deleted = history.delete_runs(ids)
        for record in deleted:
            click.echo(f"deleted run {record.run_id} ({record.pipeline}, {record.status})")
        sweeps = plan_sweep(history, stores, only_runs=ids, protect=protect)
        for sweep in sweeps:
            delete_objects(sweep)
        _report_sweeps(sweeps, verb="deleted")
        logs = job_logs_of(jobs, project) + step_logs_of(project, ids)
        count, size = remove_job_logs(logs, project)
        if count:
            click.echo(f"deleted {count} log file(s), {_size(size)}")


@click.command("delete")
@click.argument("run_ids", metavar="RUN...", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@reports_errors
def delete_runs(run_ids: tuple[str, ...], dry_run: bool) -> None:
    """Delete runs and the artifacts of theirs that no other run references.

    RUN is a run id or any unique part of one.  A running run is refused.
    """
    from stepframe.exceptions import UsageError

    _project, history = _open()
    with history:
        records = {r.run_id: r for r in (history.find_run(text) for text in run_ids)}
    running = [r.run_id for r in records.values() if r.status == "running"]
    if running:
        raise UsageError(f"run {running[0]} is still running; stop it first (or wait for it)")
    _remove_runs(list(records.values()), dry_run=dry_run)


def _duration(text: str, option: str) -> float:
    from stepframe.exceptions import UsageError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise UsageError(
            f"{option} {text!r} is not a duration; write a number and a unit: 30d, 12h, 2w, 90m, 0s"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


@click.command("prune")
@click.option("--keep", type=click.IntRange(min=0), default=None, help="Keep the N newest runs.")
@click.option(
    "--older-than", "older_than", default=None, help="Delete runs started before this: 30d, 12h."
)
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@reports_errors
def prune_runs(
    keep: int | None, older_than: str | None, pipeline: str | None, dry_run: bool
) -> None:
    """Delete old runs (never a running one) and the artifacts only they reference.

    Give --keep N (the N newest stay; with --pipeline, of that pipeline) or --older-than
    (30d, 12h, 2w); with both, a run goes when either says so.
    """
    from stepframe.exceptions import UsageError

    if keep is None and older_than is None:
        raise UsageError("say which runs to prune: --keep N or --older-than 30d")
    cutoff = time.time() - _duration(older_than, "--older-than") if older_than is not None else None
    _project, history = _open()
    with history:
        records = history.query_runs(pipeline=pipeline, limit=None)
    chosen = [
        r
        for index, r in enumerate(records)
        if (keep is not None and index >= keep) or (cutoff is not None and r.started_at < cutoff)
    ]
    chosen = [r for r in chosen if r.status != "running"]
    if not chosen:
        click.echo("no runs to prune")
        return
    _remove_runs(chosen, dry_run=dry_run)


@click.command("gc")
@click.option(
    "--yes", "--delete", "delete", is_flag=True, help="Delete; without it, only say what."
)
@click.option(
    "--min-age",
    default="1h",
    show_default=True,
    help="Keep what runs with no record left if they started less than this before the "
    "oldest running run (a run stores its inputs just before it is recorded): 1h, 10m, 0s.",
)
@reports_errors
def gc(delete: bool, min_age: str) -> None:
    """Find, in every artifact store of the project, the objects of deleted runs that no
    recorded run references, and stale local job logs; delete them with --yes.

    Safe while runs are going: objects of recorded runs, of runs started in the last
    hour (--min-age) and of anything a run references are never touched.
    """
    from stepframe._client.cleanup import (
        delete_objects,
        orphan_job_logs,
        orphan_step_logs,
        plan_sweep,
        remove_job_logs,
    )
    from stepframe._client.stores import ProjectStores

    grace = _duration(min_age, "--min-age")
    project, history = _open()
    with history:
        now = time.time()
        runs = history.query_runs(limit=None)
        sweeps = plan_sweep(history, ProjectStores(project), now=now, grace=grace)
        running = [r.started_at for r in runs if r.status == "running"]
        recorded = {r.run_id for r in runs}
        cutoff = min([*running, now]) - grace
        logs = orphan_job_logs(project, recorded, cutoff) + orphan_step_logs(
            project, recorded, cutoff
        )
        if delete:
            for sweep in sweeps:
                delete_objects(sweep)
    _report_sweeps(sweeps, verb="deleted" if delete else "would delete")
    log_bytes = sum(path.stat().st_size for path in logs if path.exists())
    if delete:
        count, size = remove_job_logs(logs, project)
        click.echo(f"logs: deleted {count} file(s), {_size(size)}")
    else:
        click.echo(f"logs: would delete {len(logs)} file(s), {_size(log_bytes)}")
        click.echo("dry run: nothing was deleted; `stepframe gc --yes` deletes them")
