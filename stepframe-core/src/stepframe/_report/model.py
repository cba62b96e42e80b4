"""What a run page shows, read from the run history, the run's manifests and its logs.

Everything here is read-only.  Manifests are write-once objects, so a `ManifestCache`
keeps each one it read for as long as it lives (the web view reads a running run's page
again and again).  The DAG's edges come from the steps' launch manifests: a step's
inputs are artifact references, matched to the outputs of the run's other steps; a step
that never started (pending, skipped) has no manifest, so its inputs are not known.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stepframe._client.logs import read_log_tail, step_log_path

if TYPE_CHECKING:
    from stepframe._client.stores import ProjectStores
    from stepframe._history.database import (
        ArtifactRecord,
        JobRecord,
        RunHistory,
        RunRecord,
        StepRecord,
    )
    from stepframe._project import Project

__all__ = [
    "InputView",
    "ManifestCache",
    "OutputView",
    "RunView",
    "StepView",
    "compare_runs",
    "gather_run",
    "run_version",
]

#: JSON outputs up to this size get a preview.
PREVIEW_MAX_BYTES = 4096
PREVIEW_CHARS = 400
LOG_TAIL_BYTES = 8192
# Where a step attempt's objects are, below its store's root (see StepRunner._uri).
_ATTEMPT = re.compile(r"/runs/([^/]+)/([^/]+)/attempt-(\d+)/")


@attrs.frozen
class InputView:
    """One input of a step: the artifact it was given and, when known, its producer."""

    name: str
    uri: str
    sha256: str
    size: int
    materializer: str
    source: tuple[str, str] | None  # (step, output) of this run, or None: a parameter


@attrs.frozen
class OutputView:
    name: str
    uri: str
    sha256: str
    size: int
    materializer: str
    type_name: str
    preview: str | None = None


@attrs.frozen
class StepView:
    """One step as its page shows it."""

    name: str
    status: str
    operator: str | None
    flavor: str | None
    attempt: int
    started_at: float | None
    ended_at: float | None
    error: str | None
    cache_key: str | None
    job: JobRecord | None
    attempts: tuple[JobRecord, ...]
    inputs: tuple[InputView, ...]
    outputs: tuple[OutputView, ...]
    settings: Mapping[str, Any]
    function: str | None
    #: Seconds: before the job was submitted (manifest, image), from submit to the step's
    #: code starting (the backend's queue and start-up), in the job, and from the job's
    #: end to the outputs being recorded (polling, fetching the result).
    prepare_s: float | None = None
    queue_s: float | None = None
    run_s: float | None = None
    fetch_s: float | None = None
    log_path: str | None = None
    log_tail: str | None = None
    cache_reason: str | None = None

    @property
    def console_url(self) -> str | None:
        if self.job is None or self.job.handle is None:
            return None
        url = self.job.handle.data.get("console_url")
        return url if isinstance(url, str) else None


@attrs.frozen
class RunView:
    run: RunRecord
    steps: tuple[StepView, ...]
    edges: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()
    #: Edges into steps that did not start, as they were in an earlier run of the same
    #: pipeline (drawn dashed): the best knowledge there is until they start.
    inferred_edges: tuple[tuple[str, str], ...] = ()

    def step(self, name: str) -> StepView | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.status] = counts.get(step.status, 0) + 1
        return counts


class ManifestCache:
    """Reads manifests (and small artifacts) through the project's stores, once each."""

    def __init__(self, stores: ProjectStores | None) -> None:
        self.stores = stores
        self._data: dict[str, Any] = {}
        self._bytes: dict[str, bytes | None] = {}
        self.problems: list[str] = []

    def read_bytes(self, uri: str, limit: int | None = None) -> bytes | None:
        key = f"{limit}:{uri}"
        if key not in self._bytes:
            self._bytes[key] = self._read_bytes(uri, limit)
        return self._bytes[key]

    def _read_bytes(self, uri: str, limit: int | None) -> bytes | None:
        if self.stores is None:
            return None
        from stepframe.exceptions import ArtifactNotFoundError

        try:
            store = self.stores.for_uri(uri)
            with store.open_read(uri) as stream:
                return stream.read() if limit is None else stream.read(limit + 1)
        except ArtifactNotFoundError:
            return None
        except Exception as error:  # a store that cannot be reached: say so, show the rest
            problem = f"cannot read {uri}: {type(error).__name__}: {error}"
            if problem not in self.problems:
                self.problems.append(problem)
            return None

    def json(self, uri: str) -> Any:
        if uri in self._data:
            return self._data[uri]
        raw = self._read_bytes(uri, None)
        value = None
        if raw is not None:
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            self._data[uri] = value  # written once: never changes after it exists
        return value


def gather_run(
    history: RunHistory,
    run: RunRecord,
    *,
    project: Project,
    manifests: ManifestCache,
    details: Collection[str] | None = None,
) -> RunView:
    """Everything a run's pages show, for a run read from ``history``.

    :param details: the steps whose log tail and output previews to read (None: all);
        a page that shows no step's details reads none.
    """
    steps = history.get_steps(run.run_id)
    artifacts = history.get_artifacts(run.run_id)
    jobs = history.list_jobs(run_id=run.run_id)
    by_step: dict[str, list[ArtifactRecord]] = {}
    for artifact in artifacts:
        by_step.setdefault(artifact.step, []).append(artifact)
    by_uri = {a.uri: (a.step, a.output) for a in artifacts}
    by_sha = {a.sha256: (a.step, a.output) for a in artifacts}
    attempts: dict[str, list[JobRecord]] = {}
    for job in jobs:
        attempts.setdefault(job.step, []).append(job)

    views: list[StepView] = []
    edges: dict[tuple[str, str], None] = {}
    for record in steps:
        own = by_step.get(record.step, [])
        job_rows = attempts.get(record.step, [])
        latest = job_rows[-1] if job_rows else None
        launch_uri, result_uri = _manifest_uris(record, latest, own)
        launch = manifests.json(launch_uri) if launch_uri else None
        result = manifests.json(result_uri) if result_uri else None
        inputs = _inputs(launch, by_uri, by_sha, record.step)
        for item in inputs:
            if item.source is not None:
                edges[(item.source[0], record.step)] = None
        timings = _timings(record, latest, result)
        detailed = details is None or record.step in details
        log_path = step_log_path(project, run.run_id, record.step, latest) if detailed else None
        if log_path is None and detailed and record.status == "cached":
            log_path = _origin_log(history, project, own)
        log_tail = _tail(log_path)
        views.append(
            StepView(
                name=record.step,
                status=_shown_status(run, record),
                operator=record.operator,
                flavor=record.flavor,
                attempt=record.attempt,
                started_at=record.started_at,
                ended_at=record.ended_at,
                error=record.error,
                cache_key=record.cache_key,
                job=latest,
                attempts=tuple(job_rows),
                inputs=tuple(inputs),
                outputs=tuple(_output(a, manifests if detailed else None) for a in own),
                settings=_settings(launch, latest),
                function=_function(launch),
                log_path=None if log_path is None else str(log_path),
                log_tail=log_tail,
                cache_reason=_cache_reason(history, run, record, own),
                **timings,
            )
        )
    notes = list(manifests.problems)
    unknown = [v.name for v in views if v.status in ("pending", "skipped") and not v.inputs]
    inferred: dict[tuple[str, str], None] = {}
    if unknown:
        names = {v.name for v in views}
        found, known, source_run = _earlier_edges(history, run, set(unknown), manifests)
        inferred = {e: None for e in found if e[0] in names and e not in edges}
        if source_run is not None and known:
            notes.append(
                f"{len(known)} step(s) did not start: their edges (dashed) are as in run "
                f"{source_run}, the latest earlier run of {run.pipeline!r} where they started"
            )
        left = [name for name in unknown if name not in known]
        if left:
            notes.append(
                f"{len(left)} step(s) did not start ({', '.join(left[:5])}"
                f"{', ...' if len(left) > 5 else ''}): their inputs, and so their edges in "
                "the DAG, are known only once a step starts"
            )
    return RunView(
        run=run,
        steps=tuple(views),
        edges=tuple(edges),
        notes=tuple(notes),
        inferred_edges=tuple(inferred),
    )


def _earlier_edges(
    history: RunHistory, run: RunRecord, unknown: set[str], manifests: ManifestCache
) -> tuple[set[tuple[str, str]], set[str], str | None]:
    """Edges into ``unknown`` steps as the latest earlier runs of the pipeline recorded
    them (from their launch manifests), the steps whose inputs were found, and the
    newest run any came from."""
    edges: set[tuple[str, str]] = set()
    resolved: set[str] = set()
    newest: str | None = None
    for earlier in history.query_runs(pipeline=run.pipeline, until=run.started_at, limit=5):
        if not unknown:
            break
        artifacts = history.get_artifacts(earlier.run_id)
        by_uri = {a.uri: (a.step, a.output) for a in artifacts}
        by_sha = {a.sha256: (a.step, a.output) for a in artifacts}
        latest = {job.step: job for job in history.list_jobs(run_id=earlier.run_id)}
        for record in history.get_steps(earlier.run_id):
            if record.step not in unknown:
                continue
            own = [a for a in artifacts if a.step == record.step]
            launch_uri, _ = _manifest_uris(record, latest.get(record.step), own)
            launch = manifests.json(launch_uri) if launch_uri else None
            if not isinstance(launch, dict):
                continue
            for item in _inputs(launch, by_uri, by_sha, record.step):
                if item.source is not None:
                    edges.add((item.source[0], record.step))
            unknown.discard(record.step)
            resolved.add(record.step)
            newest = newest or earlier.run_id
    return edges, resolved, newest


def _tail(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return read_log_tail(path, LOG_TAIL_BYTES)
    except OSError:  # removed meanwhile (`stepframe gc`), or unreadable
        return None


def _producer(own: list[ArtifactRecord]) -> tuple[str, str, str] | None:
    """Run, step and attempt folder URI of the attempt that stored a step's outputs (a
    cached step's: those of an earlier run)."""
    for artifact in own:
        match = _ATTEMPT.search(artifact.uri)
        if match is not None:
            return match.group(1), match.group(2), artifact.uri[: match.end()]
    return None


def _origin_log(history: RunHistory, project: Project, own: list[ArtifactRecord]) -> Path | None:
    """A cached step's log: that of the step whose outputs it took, if it is kept."""
    producer = _producer(own)
    if producer is None:
        return None
    origin_run, origin_step, _ = producer
    jobs = [j for j in history.list_jobs(run_id=origin_run) if j.step == origin_step]
    return step_log_path(project, origin_run, origin_step, jobs[-1]) if jobs else None


def _shown_status(run: RunRecord, record: StepRecord) -> str:
    # A step still marked running in a run whose orchestrator is gone is not running.
    if run.status == "interrupted" and record.status == "running":
        return "interrupted"
    return record.status


def _manifest_uris(
    record: StepRecord, job: JobRecord | None, own: list[ArtifactRecord]
) -> tuple[str | None, str | None]:
    """The launch and result manifests of the step's latest attempt, when known."""
    if job is not None and job.launch is not None:
        launch = job.launch.get("manifest_uri")
        result = job.launch.get("result_uri")
        return (
            launch if isinstance(launch, str) else None,
            result if isinstance(result, str) else None,
        )
    producer = _producer(own)  # a cached step: the attempt that produced its outputs
    if producer is not None:
        return producer[2] + "launch.json", producer[2] + "result.json"
    return None, None


def _inputs(
    launch: Any,
    by_uri: Mapping[str, tuple[str, str]],
    by_sha: Mapping[str, tuple[str, str]],
    step: str,
) -> list[InputView]:
    if not isinstance(launch, dict) or not isinstance(launch.get("inputs"), dict):
        return []
    found = []
    for name, ref in sorted(launch["inputs"].items()):
        if not isinstance(ref, dict):
            continue
        uri = str(ref.get("uri", ""))
        sha = str(ref.get("sha256", ""))
        source = by_uri.get(uri)
        if source is None and "/inputs/" not in uri:
            # A cached step's manifest names the outputs its first run was given; the
            # same bytes in this run came from the step that produced them here.
            source = by_sha.get(sha)
        if source is not None and source[0] == step:
            source = None
        found.append(
            InputView(
                name=str(name),
                uri=uri,
                sha256=sha,
                size=int(ref.get("size", 0) or 0),
                materializer=str(ref.get("materializer", "")),
                source=source,
            )
        )
    return found


def _timings(record: StepRecord, job: JobRecord | None, result: Any) -> dict[str, float | None]:
    def span(start: Any, end: Any) -> float | None:
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and start and end:
            return max(0.0, float(end) - float(start))
        return None

    job_start = job.created_at if job is not None else None
    code_start = result.get("started_at") if isinstance(result, dict) else None
    code_end = result.get("ended_at") if isinstance(result, dict) else None
    if record.status == "cached":
        return {"prepare_s": None, "queue_s": None, "run_s": None, "fetch_s": None}
    return {
        "prepare_s": span(record.started_at, job_start),
        "queue_s": span(job_start, code_start),
        "run_s": span(code_start, code_end),
        "fetch_s": span(code_end, record.ended_at),
    }


def _settings(launch: Any, job: JobRecord | None) -> Mapping[str, Any]:
    if isinstance(launch, dict) and isinstance(launch.get("settings"), dict):
        return dict(launch["settings"])
    if job is not None and job.launch is not None and isinstance(job.launch.get("settings"), dict):
        return {job.flavor: job.launch["settings"]}
    return {}


def _function(launch: Any) -> str | None:
    if isinstance(launch, dict) and isinstance(launch.get("function"), dict):
        function = launch["function"]
        return f"{function.get('module')}:{function.get('qualname')}"
    return None


def _output(record: ArtifactRecord, manifests: ManifestCache | None) -> OutputView:
    preview = None
    if manifests is not None and record.materializer == "json" and record.size <= PREVIEW_MAX_BYTES:
        raw = manifests.read_bytes(record.uri, PREVIEW_MAX_BYTES)
        if raw is not None:
            if hashlib.sha256(raw).hexdigest() != record.sha256:
                preview = "(the stored bytes are not the recorded ones: changed or truncated)"
            else:
                preview = _preview(raw)
    return OutputView(
        name=record.output,
        uri=record.uri,
        sha256=record.sha256,
        size=record.size,
        materializer=record.materializer,
        type_name=record.type_name,
        preview=preview,
    )


def _preview(raw: bytes) -> str:
    try:
        text = json.dumps(json.loads(raw), sort_keys=True)
    except ValueError:
        text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _cache_reason(
    history: RunHistory, run: RunRecord, record: StepRecord, own: list[ArtifactRecord]
) -> str | None:
    """Why the step was, or was not, taken from the cache, as far as the records tell."""
    if record.status == "cached":
        producer = _producer(own)
        if producer is not None and producer[0] != run.run_id:
            return (
                f"taken from the cache: the outputs of run {producer[0]}, step "
                f"{producer[1]!r} (same code, inputs, settings and operator)"
            )
        return "taken from the cache"
    if record.status != "succeeded":
        return None
    if record.cache_key is None:
        return "ran: caching is off for this step (@step(cache=False))"
    earlier = [
        s
        for s in history.steps_with_cache_key(record.cache_key)
        if s.run_id != run.run_id
        and s.status in ("succeeded", "cached")
        and s.ended_at is not None
        and record.started_at is not None
        and s.ended_at < record.started_at
    ]
    if earlier:
        return (
            f"ran although run {earlier[-1].run_id} had the same cache key: the run was "
            "started with --no-cache, or the cached outputs were missing or changed"
        )
    return "ran: no earlier run had the same code, inputs, settings and operator"


def compare_runs(a: RunView, b: RunView) -> list[tuple[str, str, str, str]]:
    """What differs between two runs of one pipeline: ``(what, name, in a, in b)`` rows
    for parameters, each step's status, settings, input and output hashes, and the cache
    key (a different key with the same inputs and settings: the code or the operator
    changed)."""
    rows: list[tuple[str, str, str, str]] = []
    for key in sorted(set(a.run.params) | set(b.run.params)):
        left, right = a.run.params.get(key), b.run.params.get(key)
        if left != right:
            rows.append(("parameter", key, _show(left), _show(right)))
    b_steps = {s.name: s for s in b.steps}
    for step in a.steps:
        other = b_steps.get(step.name)
        if other is None:
            rows.append(("step", step.name, step.status, "(absent)"))
            continue
        if step.status != other.status:
            rows.append(("status", step.name, step.status, other.status))
        first_difference = len(rows)
        for flavor in sorted(set(step.settings) | set(other.settings)):
            left, right = step.settings.get(flavor), other.settings.get(flavor)
            if left != right:
                rows.append(("settings", f"{step.name} {flavor}", _show(left), _show(right)))
        for what, mine, theirs in (
            ("input", _hashes(step.inputs), _hashes(other.inputs)),
            ("output", _hashes(step.outputs), _hashes(other.outputs)),
        ):
            for name in sorted(set(mine) | set(theirs)):
                if mine.get(name) != theirs.get(name):
                    rows.append(
                        (
                            f"{what} sha256",
                            f"{step.name}.{name}",
                            mine.get(name, "-")[:12],
                            theirs.get(name, "-")[:12],
                        )
                    )
        if step.cache_key and other.cache_key and step.cache_key != other.cache_key:
            explained = any(
                row[0] in ("settings", "input sha256") for row in rows[first_difference:]
            )
            why = (
                "inputs or settings differ"
                if explained
                else "same inputs and settings: the code, operator or stepframe changed"
            )
            rows.append(
                ("cache key", step.name, step.cache_key[:12], f"{other.cache_key[:12]} ({why})")
            )
    for name in b_steps:
        if a.step(name) is None:
            rows.append(("step", name, "(absent)", b_steps[name].status))
    return rows


def _hashes(items: Iterable[InputView | OutputView]) -> dict[str, str]:
    return {item.name: item.sha256 for item in items}


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def run_version(history: RunHistory, run_id: str) -> str:
    """A short string that changes whenever anything a run's pages show changes: the
    run's row, its steps, its jobs and the size of its logs.  Cheap enough to ask a few
    times a second while someone watches a running run."""
    from stepframe._project import Project

    run = history.find_run(run_id)
    parts = [run.status, repr(run.ended_at)]
    for s in history.get_steps(run.run_id):
        parts.append(f"{s.step}:{s.status}:{s.attempt}:{s.ended_at}:{s.job_id}")
    for job in history.list_jobs(run_id=run.run_id):
        parts.append(f"{job.id}:{job.state}")
        path = step_log_path(Project(Path(run.project_root)), run.run_id, job.step, job)
        if path is not None:
            try:
                parts.append(str(path.stat().st_size))
            except OSError:
                pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
