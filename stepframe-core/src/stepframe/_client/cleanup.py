"""Removing runs and the artifacts nothing recorded references any more.

What is kept, always:

- every object below a recorded run's folder (``runs/RUN_ID/...`` in a store): its
  outputs, manifests and inputs;
- every object any recorded run references, wherever it lies: a run that took a step
  from the cache references the outputs of the run that computed them, so deleting that
  older run leaves those outputs in place;
- objects of runs with no record that started less than `GRACE_SECONDS` (``gc
  --min-age``) before the oldest running run (or before now): a run stores its inputs
  just before its row is written;
- while another run is going, the cacheable outputs of runs being deleted: that run may
  have just found them in the cache and not yet recorded that it uses them (the next
  ``stepframe gc`` removes them).

Stores are the project's artifact stores (every stack's).  Listing uses
`ArtifactStore.list`; deleting uses the store's ``delete(uri)`` if its plugin offers one,
else, for the local store, removes the file.
"""

from __future__ import annotations

import calendar
import os
import re
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._client.stores import ProjectStores
    from stepframe._history.database import JobRecord, RunHistory, RunRecord
    from stepframe._project import Project

__all__ = [
    "GRACE_SECONDS",
    "StoreSweep",
    "delete_objects",
    "job_logs_of",
    "plan_sweep",
    "remove_job_logs",
]

GRACE_SECONDS = 3600.0
_RUN_ID = re.compile(r"(\d{8}-\d{6})-[0-9a-f]{6}")
# Files kept next to a local job's log (its exit status, its cancel mark).
_LOG_SIDECARS = ("", ".exit", ".cancelled")


@attrs.define
class StoreSweep:
    """What one store holds that nothing references: to delete, or deleted."""

    label: str
    store: ArtifactStore
    garbage: list[tuple[str, int | None]] = attrs.field(factory=list)
    kept_recent: int = 0
    kept_for_running: int = 0
    problems: list[str] = attrs.field(factory=list)

    @property
    def bytes(self) -> int:
        return sum(size or 0 for _, size in self.garbage)


def _normal(uri: str) -> str:
    """One spelling per object: stores may list percent-quoted URIs."""
    return urllib.parse.unquote(uri)


def _started(run_id: str) -> float | None:
    match = _RUN_ID.fullmatch(run_id)
    if match is None:
        return None
    return float(calendar.timegm(time.strptime(match.group(1), "%Y%m%d-%H%M%S")))


def plan_sweep(
    history: RunHistory,
    stores: ProjectStores,
    *,
    only_runs: Iterable[str] | None = None,
    forget: Iterable[str] = (),
    protect: Iterable[str] = (),
    now: float | None = None,
    grace: float = GRACE_SECONDS,
) -> list[StoreSweep]:
    """Every store's unreferenced objects (of ``only_runs``' folders, when given).

    :param forget: runs to count as deleted already (a dry run of deleting them).
    :param protect: URIs to keep although nothing references them.
    :param grace: objects of a run with no record are kept if it started less than this
        many seconds before the oldest running run (or now); runs in ``only_runs`` were
        recorded, so they are not starting and get no grace.
    """
    now = time.time() if now is None else now
    forgotten = set(forget)
    runs = history.query_runs(limit=None)
    recorded = {r.run_id for r in runs} - forgotten
    running = [r.started_at for r in runs if r.status == "running"]
    cutoff = min([*running, now]) - grace
    keep = {_normal(uri) for uri in history.artifact_uris(excluding_runs=forgotten)}
    protected = {_normal(uri) for uri in protect}
    wanted = None if only_runs is None else set(only_runs)
    sweeps = []
    for label, store in stores.configured():
        sweep = StoreSweep(label, store)
        sweeps.append(sweep)
        prefix = store.uri_for("runs") + "/"
        try:
            uris = list(store.list(prefix))
        except NotImplementedError:
            sweep.problems.append(
                f"store {store.root_uri} cannot list its objects (its plugin has no list), "
                "so nothing in it was checked"
            )
            continue
        for uri in uris:
            run_id = _normal(uri[len(prefix) :]).split("/", 1)[0]
            if run_id in recorded or (wanted is not None and run_id not in wanted):
                continue
            name = _normal(uri)
            if name in keep:
                continue
            if name in protected:
                sweep.kept_for_running += 1
                continue
            started = _started(run_id)
            if wanted is None and (started is None or started >= cutoff):
                sweep.kept_recent += 1
                continue
            sweep.garbage.append((uri, _size(store, uri)))
    return sweeps


def _size(store: ArtifactStore, uri: str) -> int | None:
    from stepframe._artifacts.local import LocalArtifactStore

    if isinstance(store, LocalArtifactStore):
        try:
            return store.path_for(uri).stat().st_size
        except OSError:
            return None
    return None


def delete_objects(sweep: StoreSweep) -> int:
    """Delete a sweep's objects; return how many went (problems are added to it)."""
    from stepframe._artifacts.local import LocalArtifactStore

    store = sweep.store
    delete = getattr(store, "delete", None)
    deleted = 0
    for uri, _ in sweep.garbage:
        try:
            if callable(delete):
                delete(uri)
            elif isinstance(store, LocalArtifactStore):
                path = store.path_for(uri)
                path.unlink(missing_ok=True)
                _remove_empty_folders(path.parent, store.root)
            else:
                sweep.problems.append(
                    f"store {store.root_uri} cannot delete objects (its plugin has no delete);"
                    f" {len(sweep.garbage)} unreferenced object(s) stay"
                )
                return deleted
        except OSError as error:
            sweep.problems.append(f"cannot delete {uri}: {error.strerror or error}")
            continue
        deleted += 1
    return deleted


def _remove_empty_folders(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or not ours): stop here
        folder = folder.parent


def step_logs_of(project: Project, run_ids: Iterable[str]) -> list[Path]:
    """The step logs the orchestrator kept for these runs (`stepframe._logs`)."""
    from stepframe._names import safe_segments

    found: list[Path] = []
    for run_id in run_ids:
        folder = project.state_dir.joinpath("logs", *safe_segments(run_id))
        if folder.is_dir():
            found.extend(sorted(p for p in folder.rglob("*") if p.is_file()))
    return found


def orphan_step_logs(project: Project, recorded: set[str], cutoff: float) -> list[Path]:
    """Step logs of runs that have no record (and are not new)."""
    logs = project.state_dir / "logs"
    if not logs.is_dir():
        return []
    lost = []
    for name in sorted(os.listdir(logs)):
        started = _started(name)
        if name not in recorded and started is not None and started < cutoff:
            lost.append(name)
    return step_logs_of(project, lost)


def job_logs_of(jobs: Iterable[JobRecord], project: Project) -> list[Path]:
    """The local job logs (and their side files) of these jobs inside the project."""
    found = []
    jobs_dir = project.jobs_dir.resolve()
    for job in jobs:
        log = job.handle.data.get("log") if job.handle is not None else None
        if not isinstance(log, str):
            continue
        for suffix in _LOG_SIDECARS:
            path = Path(log + suffix)
            if jobs_dir in path.resolve().parents and path.is_file():
                found.append(path)
    return found


def orphan_job_logs(project: Project, recorded: set[str], cutoff: float) -> list[Path]:
    """Job logs in the project's jobs folder whose run has no record (and is not new)."""
    if not project.jobs_dir.is_dir():
        return []
    found = []
    for entry in sorted(os.listdir(project.jobs_dir)):
        match = _RUN_ID.search(entry)
        if match is None:
            continue
        started = _started(match.group(0))
        if match.group(0) in recorded or started is None or started >= cutoff:
            continue
        path = project.jobs_dir / entry
        if path.is_file():
            found.append(path)
    return found


def remove_job_logs(paths: Iterable[Path], project: Project) -> tuple[int, int]:
    """Remove log files (and the step log folders they leave empty); return how many
    and how many bytes."""
    count = size = 0
    logs = project.state_dir / "logs"
    for path in paths:
        try:
            length = path.stat().st_size
            path.unlink()
        except OSError:
            continue
        count += 1
        size += length
        _remove_empty_folders(path.parent, logs)
    return count, size


def deletable(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Runs that may be deleted: none still running."""
    return [r for r in records if r.status != "running"]
