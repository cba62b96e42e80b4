"""The run history: one SQLite file under ``.stepframe/`` in the project.

It is the only state stepframe keeps between processes.  ``stepframe runs`` reads it, a
killed run is resumed from its job ledger instead of paying for the same remote job twice,
and unchanged steps are found again by their cache key.

Several orchestrator threads share one :class:`RunHistory`, and two ``stepframe run``
processes may write the same file at once.  So the database runs in WAL mode (readers never
block the writer), every write is a short ``BEGIN IMMEDIATE`` transaction (a writer takes
the lock up front and waits for it through ``busy_timeout``, instead of failing with
"database is locked" when it would have had to upgrade a read lock), and a lock serialises
the threads that share the connection.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypedDict, get_args

import attrs

from stepframe._processes import is_running, process_stat
from stepframe._storage import is_storage_oserror, sqlite_storage_error, storage_error
from stepframe._types import ArtifactRef, JobHandle, JobState
from stepframe.exceptions import UsageError

if TYPE_CHECKING:
    import cattrs
    from typing_extensions import Self, Unpack

__all__ = [
    "POSSIBLY_SUBMITTED",
    "SCHEMA_VERSION",
    "SUBMITTING",
    "UNKNOWN",
    "ArtifactRecord",
    "JobRecord",
    "RunHistory",
    "RunRecord",
    "RunStatus",
    "StepEdge",
    "StepFields",
    "StepRecord",
    "StepStatus",
    "new_run_id",
]

SCHEMA_VERSION = 4
BUSY_TIMEOUT_SECONDS = 30.0
# How a full disk under the history is named, and what to do about it.
_HISTORY = "the run history"
_HISTORY_FIX = (
    "free space on that disk and try again (`stepframe run --resume RUN_ID` continues "
    "a run it interrupted)"
)

RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
#: What ``stepframe runs`` shows for a run recorded as running whose orchestrator process
#: is gone (killed, crashed, out of memory): it is not running, and ``--resume`` continues
#: it.  Derived when the row is read, so no dying process has to write it.
INTERRUPTED = "interrupted"
StepStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled", "cached"]

#: Job state of a ledger row written before ``submit_step`` was called.  A row left in this
#: state means the process died mid-submit: the job may or may not exist remotely.
SUBMITTING = "submitting"
#: ``submit_step`` was called but its answer was lost (a dropped connection, a timeout):
#: the job may exist.  The operator's ``find_job`` hook settles it.
POSSIBLY_SUBMITTED = "possibly-submitted"
#: ``find_job`` could not tell whether the job exists: shown until somebody checks.
UNKNOWN = "unknown"

_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
_STEP_STATUSES: frozenset[str] = frozenset(get_args(StepStatus))
_JOB_STATES: frozenset[str] = frozenset(
    {SUBMITTING, POSSIBLY_SUBMITTED, UNKNOWN, *(s.value for s in JobState)}
)
_ACTIVE_JOB_STATES: tuple[str, ...] = (
    SUBMITTING,
    POSSIBLY_SUBMITTED,
    UNKNOWN,
    JobState.PENDING.value,
    JobState.RUNNING.value,
)


def new_run_id() -> str:
    """A run id that sorts by start time (UTC) and is short enough to type a prefix of.

    Six random hex digits keep two runs started in the same second apart.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{secrets.token_hex(3)}"


@attrs.frozen
class RunRecord:
    """One row of ``runs``."""

    run_id: str
    pipeline: str
    status: str
    started_at: float
    ended_at: float | None
    pid: int
    hostname: str
    project_root: str
    error: str | None
    params: dict[str, Any]
    source: str | None = None
    stack: str | None = None
    run_settings: dict[str, Any] | None = None
    pid_started: str | None = None


@attrs.frozen
class StepEdge:
    """An edge of a run's DAG: ``input`` of a step is fed by ``output`` of ``from_step``."""

    from_step: str
    output: str
    input: str


@attrs.frozen
class StepRecord:
    """One row of ``steps``: the latest word on one step of one run.

    ``upstream`` is the step's edges from the steps it needs, as the run recorded them
    (None for a step recorded before they were, at schema version 3).
    """

    run_id: str
    step: str
    status: str
    operator: str | None
    flavor: str | None
    job_id: str | None
    attempt: int
    started_at: float | None
    ended_at: float | None
    error: str | None
    cache_key: str | None
    upstream: tuple[StepEdge, ...] | None = None

    @property
    def upstream_steps(self) -> tuple[str, ...]:
        """The steps this one needs, in the order of its inputs."""
        return tuple(dict.fromkeys(edge.from_step for edge in self.upstream or ()))


@attrs.frozen
class ArtifactRecord:
    """One row of ``artifacts``: an output a step stored."""

    run_id: str
    step: str
    output: str
    uri: str
    sha256: str
    size: int
    materializer: str
    type_name: str

    @property
    def ref(self) -> ArtifactRef:
        """The artifact as the artifact store and materializers know it."""
        return ArtifactRef(
            uri=self.uri,
            sha256=self.sha256,
            size=self.size,
            materializer=self.materializer,
            type_name=self.type_name,
        )


@attrs.frozen
class JobRecord:
    """One row of the job ledger.

    ``job_id`` and ``handle`` are None while ``state`` is ``"submitting"``,
    ``"possibly-submitted"`` or ``"unknown"``.  ``launch`` is what ``find_job`` needs to
    look such a job up again (the `Launch` without credentials, as JSON data); ``note``
    says why a job is in the state it is in, when the state alone does not.
    ``timed_out_after`` is the step's timeout (seconds) when the attempt ran longer and
    was stopped for it; ``state`` is then the backend's final word on the job.
    """

    id: int
    run_id: str
    step: str
    attempt: int
    flavor: str
    operator: str
    job_id: str | None
    handle: JobHandle | None
    state: str
    created_at: float
    updated_at: float
    image_digest: str | None
    region: str | None
    launch: dict[str, Any] | None = None
    note: str | None = None
    timed_out_after: float | None = None

    @property
    def is_active(self) -> bool:
        """Whether the job may still be running (and costing money) somewhere."""
        return self.state in _ACTIVE_JOB_STATES

    @property
    def shown_state(self) -> str:
        """The state as listings show it: ``cancelled (timed out)`` for an attempt stopped
        for running over its step's timeout."""
        return self.state if self.timed_out_after is None else f"{self.state} (timed out)"


class StepFields(TypedDict, total=False):
    """The columns :meth:`RunHistory.set_step` may change; absent keys stay as they are."""

    status: StepStatus
    operator: str | None
    flavor: str | None
    job_id: str | None
    attempt: int
    started_at: float | None
    ended_at: float | None
    error: str | None
    cache_key: str | None
    upstream: Sequence[StepEdge] | None


_STEP_FIELDS: tuple[str, ...] = tuple(StepFields.__annotations__)


def _create_v1(conn: sqlite3.Connection) -> None:
    """The first schema.  Statements run one by one: ``executescript`` would commit."""
    statements = (
        """CREATE TABLE runs (
            run_id       TEXT PRIMARY KEY,
            pipeline     TEXT NOT NULL,
            status       TEXT NOT NULL
                         CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
            started_at   REAL NOT NULL,
            ended_at     REAL,
            pid          INTEGER NOT NULL,
            hostname     TEXT NOT NULL,
            project_root TEXT NOT NULL,
            error        TEXT,
            params       TEXT NOT NULL DEFAULT '{}',
            source       TEXT
        )""",
        "CREATE INDEX runs_started_at ON runs (started_at)",
        """CREATE TABLE steps (
            run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step       TEXT NOT NULL,
            status     TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                         'skipped', 'cancelled', 'cached')),
            operator   TEXT,
            flavor     TEXT,
            job_id     TEXT,
            attempt    INTEGER NOT NULL DEFAULT 0,
            started_at REAL,
            ended_at   REAL,
            error      TEXT,
            cache_key  TEXT,
            PRIMARY KEY (run_id, step)
        )""",
        "CREATE INDEX steps_cache_key ON steps (cache_key)",
        """CREATE TABLE jobs (
            id           INTEGER PRIMARY KEY,
            run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step         TEXT NOT NULL,
            attempt      INTEGER NOT NULL,
            flavor       TEXT NOT NULL,
            operator     TEXT NOT NULL,
            job_id       TEXT,
            handle       TEXT,
            state        TEXT NOT NULL
                         CHECK (state IN ('submitting', 'pending', 'running', 'succeeded',
                                          'failed', 'cancelled')),
            created_at   REAL NOT NULL,
            updated_at   REAL NOT NULL,
            image_digest TEXT,
            region       TEXT
        )""",
        "CREATE INDEX jobs_run_step ON jobs (run_id, step)",
        "CREATE INDEX jobs_flavor_job_id ON jobs (flavor, job_id)",
        "CREATE INDEX jobs_state ON jobs (state)",
        """CREATE TABLE artifacts (
            run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step         TEXT NOT NULL,
            output       TEXT NOT NULL,
            uri          TEXT NOT NULL,
            sha256       TEXT NOT NULL,
            size         INTEGER NOT NULL,
            materializer TEXT NOT NULL,
            type_name    TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, step, output)
        )""",
    )
    for statement in statements:
        conn.execute(statement)


#: ``_MIGRATIONS[n]`` brings a version ``n - 1`` database to version ``n``.  A later schema
#: change appends a function here and bumps ``SCHEMA_VERSION``; never edit a shipped one.
def _add_run_options_v2(conn: sqlite3.Connection) -> None:
    """What ``run --resume`` needs to continue a run as it started: its stack and the
    settings of its run config (JSON)."""
    conn.execute("ALTER TABLE runs ADD COLUMN stack TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN run_settings TEXT")


def _ledger_states_v3(conn: sqlite3.Connection) -> None:
    """The orchestrator's process start time, so a run whose process is gone reads as
    interrupted even after its PID was reused; ledger states for a submit whose answer was
    lost, with the launch to look the job up by and a note.  SQLite cannot change a CHECK
    constraint in place, so the jobs table is rebuilt."""
    conn.execute("ALTER TABLE runs ADD COLUMN pid_started TEXT")
    conn.execute(
        """CREATE TABLE jobs_v3 (
            id           INTEGER PRIMARY KEY,
            run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step         TEXT NOT NULL,
            attempt      INTEGER NOT NULL,
            flavor       TEXT NOT NULL,
            operator     TEXT NOT NULL,
            job_id       TEXT,
            handle       TEXT,
            state        TEXT NOT NULL
                         CHECK (state IN ('submitting', 'possibly-submitted', 'unknown',
                                          'pending', 'running', 'succeeded', 'failed',
                                          'cancelled')),
            created_at   REAL NOT NULL,
            updated_at   REAL NOT NULL,
            image_digest TEXT,
            region       TEXT,
            launch       TEXT,
            note         TEXT
        )"""
    )
    conn.execute(
        "INSERT INTO jobs_v3 (id, run_id, step, attempt, flavor, operator, job_id, handle,"
        " state, created_at, updated_at, image_digest, region) SELECT id, run_id, step,"
        " attempt, flavor, operator, job_id, handle, state, created_at, updated_at,"
        " image_digest, region FROM jobs"
    )
    conn.execute("DROP TABLE jobs")
    conn.execute("ALTER TABLE jobs_v3 RENAME TO jobs")
    conn.execute("CREATE INDEX jobs_run_step ON jobs (run_id, step)")
    conn.execute("CREATE INDEX jobs_flavor_job_id ON jobs (flavor, job_id)")
    conn.execute("CREATE INDEX jobs_state ON jobs (state)")


def _timeouts_and_edges_v4(conn: sqlite3.Connection) -> None:
    """A ledger row's ``timed_out_after`` (the step's timeout, in seconds, when the attempt
    ran longer and was stopped for it), and each step's ``upstream`` edges (JSON: the
    upstream step, its output, the input it feeds), so that a run's DAG can be shown
    without importing its pipeline again.  Rows written before have neither (NULL)."""
    conn.execute("ALTER TABLE jobs ADD COLUMN timed_out_after REAL")
    conn.execute("ALTER TABLE steps ADD COLUMN upstream TEXT")


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _create_v1,
    2: _add_run_options_v2,
    3: _ledger_states_v3,
    4: _timeouts_and_edges_v4,
}


@functools.cache
def _converter() -> cattrs.Converter:
    """Imported on first use: cattrs costs ~60 ms, and ``stepframe runs list`` needs none."""
    import cattrs

    return cattrs.Converter()


def _handle_to_json(handle: JobHandle) -> str:
    return json.dumps(_converter().unstructure(handle), sort_keys=True)


def _handle_from_json(text: str | None) -> JobHandle | None:
    if text is None:
        return None
    return _converter().structure(json.loads(text), JobHandle)


class RunHistory:
    """The project's run history, safe to share between threads and processes.

    :param path: the SQLite file; it and its parent directories are created if missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        with self._storage_errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: the module must not open transactions behind our back;
            # every write transaction is an explicit BEGIN IMMEDIATE (see the module
            # docstring).
            self._conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        try:
            with self._storage_errors():
                self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._enable_wal()
                # NORMAL is durable against process crashes in WAL mode; FULL would add an
                # fsync per step update for protection only against power loss.
                self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ----------------------------------------------------------------------

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        """Say "the run history at PATH cannot be written: the disk is full" instead of
        SQLite's "database or disk is full" or "disk I/O error" (and the same for an
        ``OSError`` ENOSPC while creating the folder)."""
        try:
            yield
        except sqlite3.Error as error:
            full = sqlite_storage_error(_HISTORY, self.path, error, _HISTORY_FIX)
            if full is None:
                raise
            raise full from error
        except OSError as error:
            if not is_storage_oserror(error):
                raise
            raise storage_error(_HISTORY, self.path, error, _HISTORY_FIX) from error

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: all of the caller's statements, or none.

        When the disk fills, SQLite refuses the statement or the COMMIT and the whole
        transaction is rolled back, so a full disk never leaves a half-written row.
        """
        with self._lock, self._storage_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    # SQLite may already have rolled back (SQLITE_FULL, SQLITE_IOERR); a
                    # failing ROLLBACK must not hide the error that says why.
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # Reads write too: the WAL's shared-memory file is created on the first one.
        with self._lock, self._storage_errors():
            yield self._conn

    def _enable_wal(self) -> None:
        """Switch the file to WAL mode, waiting out other processes up to the busy timeout.

        The switch needs the file to itself, and SQLite does not call the busy handler for
        it, so two processes opening a new history at once would otherwise fail with
        "database is locked".  WAL mode is persistent: once the file has it, this is a
        no-op.  A file system that cannot do WAL keeps the rollback journal, which is slower
        but still correct.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def _migrate(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION``; a no-op on an up-to-date file.

        The version is read again inside the write transaction, so when two processes
        create the same new file only one of them runs the migrations.
        """
        with self._storage_errors():
            if self._user_version(self._conn) == SCHEMA_VERSION:
                return
        with self._write() as conn:
            version = self._user_version(conn)
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"run history {self.path} has schema version {version}, but this "
                    f"stepframe only knows up to {SCHEMA_VERSION}; upgrade stepframe-core"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[target](conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _user_version(conn: sqlite3.Connection) -> int:
        row = conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the connection; the history cannot be used afterwards."""
        with self._lock, self._storage_errors():
            self._conn.close()

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
        return f"RunHistory({str(self.path)!r})"

    # -- runs --------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        pipeline: str,
        *,
        project_root: str | os.PathLike[str],
        params: Mapping[str, Any] | None = None,
        source: str | None = None,
        stack: str | None = None,
        run_settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a run as started by this process, on this host, now.

        Params that are not JSON values are stored as their ``str()``: the history is for
        people and resumes, and must never be the reason a run fails to start.

        :param stack: the stack the run uses, and ``run_settings`` the settings of its run
            config: a resumed run continues with both.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, pipeline, status, started_at, pid, hostname,"
                " project_root, params, source, stack, run_settings, pid_started)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    pipeline,
                    time.time(),
                    os.getpid(),
                    socket.gethostname(),
                    os.fspath(project_root),
                    json.dumps(dict(params or {}), sort_keys=True, default=str),
                    source,
                    stack,
                    None
                    if run_settings is None
                    else json.dumps(run_settings, sort_keys=True, default=str),
                    _own_start_ticks(),
                ),
            )

    def reopen_run(self, run_id: str) -> None:
        """Claim a run for this process, as running again: what ``run --resume`` does first.

        The check that no other live process holds the run and the claim are one write
        transaction, so of two resumes started at once exactly one gets the run; the other
        gets a `UsageError` naming the process that holds it.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT status, pid, hostname, pid_started FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise self._no_run(run_id)
            status, pid, host, pid_started = row
            if status == "succeeded":
                raise UsageError(f"run {run_id} already succeeded; there is nothing to resume")
            if status == "running" and pid != os.getpid() and _alive(pid, host, pid_started):
                raise UsageError(
                    f"run {run_id} is still being run by process {pid} on {host}; stop "
                    "that process first (or wait for it), then resume"
                )
            conn.execute(
                "UPDATE runs SET status = 'running', ended_at = NULL, error = NULL, pid = ?,"
                " hostname = ?, pid_started = ? WHERE run_id = ?",
                (os.getpid(), socket.gethostname(), _own_start_ticks(), run_id),
            )

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        """Mark a run as ended with a final status and, when it failed, a summary."""
        if status not in _RUN_STATUSES - {"running"}:
            raise ValueError(f"a run cannot finish as {status!r}")
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE run_id = ?",
                (status, time.time(), error, run_id),
            )
            if cursor.rowcount == 0:
                raise self._no_run(run_id)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The most recently started runs first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_run_record(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with the only id that contains it.

        Any unique part of an id will do: ``stepframe runs show 0315`` instead of the
        whole ``20261122-031502-a1b2c3`` (a prefix such as ``20261122-0315`` is one such
        part).
        """
        return self.find_run(run_id)

    def find_cached(
        self, cache_key: str, store_root: str | None = None
    ) -> tuple[str, str, list[ArtifactRecord]] | None:
        """The newest step that succeeded with this cache key: run id, step and outputs.

        :param store_root: only a step whose outputs are all below this URI counts (the
            run's artifact store: outputs in another store are no hit for it).
        """
        prefix = "" if store_root is None else store_root.rstrip("/") + "/"
        with self._read() as conn:
            row = conn.execute(
                "SELECT run_id, step FROM steps AS s WHERE cache_key = ? AND status IN"
                " ('succeeded', 'cached') AND NOT EXISTS (SELECT 1 FROM artifacts AS a"
                " WHERE a.run_id = s.run_id AND a.step = s.step"
                " AND substr(a.uri, 1, ?) != ?)"
                " ORDER BY ended_at DESC LIMIT 1",
                (cache_key, len(prefix), prefix),
            ).fetchone()
        if row is None:
            return None
        run_id, step = row
        return run_id, step, self.get_artifacts(run_id, step)

    def _no_run(self, run_id: str) -> UsageError:
        return UsageError(f"no run {run_id!r} in {self.path}; see `stepframe runs list`")

    # -- steps -------------------------------------------------------------------------

    def set_step(self, run_id: str, step: str, **fields: Unpack[StepFields]) -> None:
        """Create or update a step's row, changing only the fields given.

        Callers report what they just learnt (a job id, an end time) without reading the
        row first, so concurrent updates of different fields never undo each other.
        ``attempt`` never goes down: it is the highest attempt number handed out.
        """
        unknown = set(fields) - set(_STEP_FIELDS)
        if unknown:
            raise TypeError(f"set_step() got unknown fields: {', '.join(sorted(unknown))}")
        status = fields.get("status")
        if status is not None and status not in _STEP_STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        given: Mapping[str, object] = fields
        columns = [name for name in _STEP_FIELDS if name in given]
        values = [given[name] for name in columns]
        if "upstream" in fields:  # a column of JSON text
            values[columns.index("upstream")] = _edges_to_json(fields["upstream"])
        insert = ", ".join(["run_id", "step", *columns])
        marks = ", ".join("?" * (len(columns) + 2))
        if columns:
            # An attempt number only grows: taking up an older attempt's job on --resume
            # must not hand a number out again (see allocate_attempt).
            updates = ", ".join(
                f"{name} = max({name}, excluded.{name})"
                if name == "attempt"
                else f"{name} = excluded.{name}"
                for name in columns
            )
            conflict = f"DO UPDATE SET {updates}"
        else:
            conflict = "DO NOTHING"
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO steps ({insert}) VALUES ({marks})"
                f" ON CONFLICT (run_id, step) {conflict}",
                (run_id, step, *values),
            )

    def get_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in the order they were first recorded (the DAG order, in practice)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY rowid", (run_id,)
            ).fetchall()
        return [_step_record(row) for row in rows]

    # -- artifacts ---------------------------------------------------------------------

    def record_artifact(self, run_id: str, step: str, output: str, ref: ArtifactRef) -> None:
        """Record where a step output is stored; a retried step's output replaces the old."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO artifacts (run_id, step, output, uri, sha256, size, materializer,"
                " type_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, step, output) DO UPDATE SET uri = excluded.uri,"
                " sha256 = excluded.sha256, size = excluded.size,"
                " materializer = excluded.materializer, type_name = excluded.type_name",
                (
                    run_id,
                    step,
                    output,
                    ref.uri,
                    ref.sha256,
                    ref.size,
                    ref.materializer,
                    ref.type_name,
                ),
            )

    def get_artifacts(self, run_id: str, step: str | None = None) -> list[ArtifactRecord]:
        """A run's artifacts (or one step's), in the order they were recorded."""
        query = f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ?"
        args: tuple[str, ...] = (run_id,)
        if step is not None:
            query += " AND step = ?"
            args += (step,)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY rowid", args).fetchall()
        return [ArtifactRecord(*row) for row in rows]

    # -- the job ledger ----------------------------------------------------------------

    def record_job_intent(
        self,
        run_id: str,
        step: str,
        *,
        attempt: int,
        flavor: str,
        operator: str,
        image_digest: str | None = None,
        region: str | None = None,
        launch: Mapping[str, Any] | None = None,
    ) -> int:
        """Record that a job is about to be submitted, and return its ledger row id.

        Written before ``submit_step`` so that a process killed mid-submit still leaves a
        trace: a ``"submitting"`` row tells the user a paid job may exist that no run is
        watching.
        """
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (run_id, step, attempt, flavor, operator, state, created_at,"
                " updated_at, image_digest, region, launch)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    step,
                    attempt,
                    flavor,
                    operator,
                    SUBMITTING,
                    now,
                    now,
                    image_digest,
                    region,
                    None if launch is None else json.dumps(launch, sort_keys=True, default=str),
                ),
            )
            row_id = cursor.lastrowid
        assert row_id is not None  # an INSERT into a rowid table always sets it
        return row_id

    def record_job_submitted(
        self, row_id: int, handle: JobHandle, *, state: JobState = JobState.PENDING
    ) -> None:
        """Attach the backend's handle to an intent row once ``submit_step`` returned.

        A ``region`` in the handle's data fills the row's region if the intent had none.
        The row's note goes: why a lost submit's job was unknown no longer stands once
        ``find_job`` found it.
        """
        region = handle.data.get("region")
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET job_id = ?, handle = ?, state = ?, updated_at = ?,"
                " region = COALESCE(region, ?), note = NULL WHERE id = ?",
                (
                    handle.job_id,
                    _handle_to_json(handle),
                    JobState(state).value,
                    time.time(),
                    region if isinstance(region, str) else None,
                    row_id,
                ),
            )
            if cursor.rowcount == 0:
                raise UsageError(f"no job ledger row {row_id} in {self.path}")

    def update_job_state(
        self,
        job: int | tuple[str, str],
        state: JobState | str,
        *,
        note: str | None = None,
        timed_out_after: float | None = None,
    ) -> None:
        """Record a job's new state, found by ledger row id or by ``(flavor, job_id)``.

        :param note: why the job is in this state, when the state alone does not say
            (kept until a later update gives another).
        :param timed_out_after: the step's timeout, when the attempt was stopped for
            running longer (kept once given).

        Backends may reuse ids over time (a local PID), so ``(flavor, job_id)`` updates the
        most recent job that had it.
        """
        value = state.value if isinstance(state, JobState) else state
        if value not in _JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        args: tuple[int | str, ...]
        if isinstance(job, int):
            where, args, name = "id = ?", (job,), f"job ledger row {job}"
        else:
            flavor, job_id = job
            where = "id = (SELECT max(id) FROM jobs WHERE flavor = ? AND job_id = ?)"
            args, name = (flavor, job_id), f"{flavor} job {job_id!r}"
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE jobs SET state = ?, updated_at = ?, note = COALESCE(?, note),"
                f" timed_out_after = COALESCE(?, timed_out_after) WHERE {where}",
                (value, time.time(), note, timed_out_after, *args),
            )
            if cursor.rowcount == 0:
                raise UsageError(f"no {name} in {self.path}; see `stepframe jobs`")

    def allocate_attempt(self, run_id: str, step: str) -> int:
        """The next attempt number of a step, never handed out before.

        Taken before anything of the attempt is written (its launch manifest, its image,
        its ledger row), so an attempt that failed before its job was submitted still uses
        up its number and a later ``--resume`` always finds a free one.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT max(coalesce((SELECT attempt FROM steps WHERE run_id = ? AND step = ?),"
                " 0), coalesce((SELECT max(attempt) FROM jobs WHERE run_id = ? AND step = ?),"
                " 0))",
                (run_id, step, run_id, step),
            ).fetchone()
            attempt = int(row[0]) + 1
            conn.execute(
                "INSERT INTO steps (run_id, step, attempt) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id, step) DO UPDATE SET attempt = excluded.attempt",
                (run_id, step, attempt),
            )
        return attempt

    def get_job(self, row_id: int) -> JobRecord:
        """One ledger row by its id."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (row_id,)
            ).fetchone()
        if row is None:
            raise UsageError(f"no job ledger row {row_id} in {self.path}; see `stepframe jobs`")
        return _job_record(row)

    def list_jobs(
        self, running_only: bool = False, *, run_id: str | None = None
    ) -> list[JobRecord]:
        """Ledger rows, oldest first.

        :param running_only: only jobs that may still be running: submitting, pending,
            running.  These are what a resume re-attaches to and what a user must not forget.
        :param run_id: only this run's jobs.
        """
        clauses: list[str] = []
        args: list[str] = []
        if running_only:
            clauses.append(f"state IN ({', '.join('?' * len(_ACTIVE_JOB_STATES))})")
            args.extend(_ACTIVE_JOB_STATES)
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs{where} ORDER BY id", args
            ).fetchall()
        return [_job_record(row) for row in rows]

    # -- read-only views and clean-up (issue 14: the client API, the report, `stepframe
    # ui`, `runs delete|prune` and `gc`) ------------------------------------------------

    @classmethod
    def open_read_only(cls, path: Path) -> RunHistory:
        """The history at ``path`` opened read-only (SQLite ``mode=ro``), for viewers.

        Nothing is created, migrated or switched to WAL, so a viewer never takes a write
        lock and never blocks a ``stepframe run`` writing the same file.
        """
        import urllib.parse

        path = Path(path)
        if not path.is_file():
            raise UsageError(
                f"no runs recorded at {path} yet; run a pipeline first with `stepframe run FILE`"
            )
        self = cls.__new__(cls)
        self.path = path
        self._lock = threading.Lock()
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        with self._storage_errors():
            self._conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        try:
            with self._storage_errors():
                self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                version = self._user_version(self._conn)
        except BaseException:
            self._conn.close()
            raise
        if version != SCHEMA_VERSION:
            self._conn.close()
            raise UsageError(
                f"run history {path} has schema version {version}, and this stepframe reads "
                f"version {SCHEMA_VERSION}; "
                + (
                    "upgrade stepframe-core"
                    if version > SCHEMA_VERSION
                    else "run `stepframe runs list` once to upgrade it"
                )
            )
        return self

    def find_run(self, text: str) -> RunRecord:
        """The run whose id is ``text``, else the only one whose id contains it."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (text,)
            ).fetchone()
            rows = (
                conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE instr(run_id, ?) > 0"
                    " ORDER BY run_id LIMIT 6",
                    (text,),
                ).fetchall()
                if row is None and text
                else []
            )
        if row is not None:
            return _run_record(row)
        if len(rows) == 1:
            return _run_record(rows[0])
        if not rows:
            raise self._no_run(text)
        shown = ", ".join(str(r[0]) for r in rows[:5])
        more = ", ..." if len(rows) > 5 else ""
        raise UsageError(
            f"run id {text!r} is ambiguous in {self.path}: it matches {shown}{more};"
            " give more of the id"
        )

    def query_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 20,
    ) -> list[RunRecord]:
        """Runs newest first, filtered by pipeline, status (``interrupted`` included) and
        start time (``since <= started_at < until``)."""
        clauses: list[str] = []
        args: list[Any] = []
        if pipeline is not None:
            clauses.append("pipeline = ?")
            args.append(pipeline)
        if status is not None:
            # Interrupted is derived from a running row whose process is gone.
            clauses.append("status = ?")
            args.append("running" if status == INTERRUPTED else status)
        if since is not None:
            clauses.append("started_at >= ?")
            args.append(since)
        if until is not None:
            clauses.append("started_at < ?")
            args.append(until)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        derived = status in ("running", INTERRUPTED)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY started_at DESC, run_id DESC"
        if limit is not None and not derived:
            sql += f" LIMIT {int(limit)}"
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        records = [_run_record(row) for row in rows]
        if derived:
            records = [r for r in records if r.status == status]
        return records if limit is None else records[:limit]

    def pipelines(self) -> list[str]:
        """The names of every pipeline with a recorded run, sorted."""
        with self._read() as conn:
            rows = conn.execute("SELECT DISTINCT pipeline FROM runs ORDER BY pipeline").fetchall()
        return [str(row[0]) for row in rows]

    def artifact_uris(self, excluding_runs: Collection[str] = ()) -> set[str]:
        """Every artifact URI a recorded run references (its own outputs and those it
        took from the cache), but for the runs in ``excluding_runs``: what clean-up must
        keep."""
        excluded = sorted(excluding_runs)
        where = f" WHERE run_id NOT IN ({', '.join('?' * len(excluded))})" if excluded else ""
        with self._read() as conn:
            rows = conn.execute(f"SELECT DISTINCT uri FROM artifacts{where}", excluded).fetchall()
        return {str(row[0]) for row in rows}

    def steps_with_cache_key(self, cache_key: str) -> list[StepRecord]:
        """Every step recorded with this cache key, oldest end first: why a step did or
        did not come from the cache."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_STEP_COLUMNS} FROM steps WHERE cache_key = ? ORDER BY ended_at",
                (cache_key,),
            ).fetchall()
        return [_step_record(row) for row in rows]

    def delete_runs(self, run_ids: list[str]) -> list[RunRecord]:
        """Remove runs with their steps, jobs and artifact records; return what was removed.

        A run whose orchestrator is alive is refused (a `UsageError` naming it), and so is
        a run with a job that may still be running: deleting its records would lose track
        of a paid job.  The checks and the deletion are one write transaction.
        """
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id IN ({marks})", run_ids
            ).fetchall()
            records = [_run_record(row) for row in rows]
            missing = sorted(set(run_ids) - {r.run_id for r in records})
            if missing:
                raise self._no_run(missing[0])
            running = [r.run_id for r in records if r.status == "running"]
            if running:
                raise UsageError(
                    f"run {running[0]} is still running; stop it first (or wait for it)"
                )
            active = conn.execute(
                f"SELECT run_id, flavor, coalesce(job_id, '?') FROM jobs WHERE run_id IN ({marks})"
                f" AND state IN ({', '.join('?' * len(_ACTIVE_JOB_STATES))}) LIMIT 1",
                [*run_ids, *_ACTIVE_JOB_STATES],
            ).fetchone()
            if active is not None:
                raise UsageError(
                    f"run {active[0]} has {active[1]} job {active[2]} that may still be running;"
                    " stop it with `stepframe jobs stop` (or resume the run) first"
                )
            conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", run_ids)
        return records


_RUN_COLUMNS = (
    "run_id, pipeline, status, started_at, ended_at, pid, hostname, project_root, error,"
    " params, source, stack, run_settings, pid_started"
)
_STEP_COLUMNS = ", ".join(["run_id", "step", *_STEP_FIELDS])  # the order of StepRecord
_ARTIFACT_COLUMNS = "run_id, step, output, uri, sha256, size, materializer, type_name"
_JOB_COLUMNS = (
    "id, run_id, step, attempt, flavor, operator, job_id, handle, state, created_at,"
    " updated_at, image_digest, region, launch, note, timed_out_after"
)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    (
        run_id,
        pipeline,
        status,
        started_at,
        ended_at,
        pid,
        host,
        root,
        error,
        params,
        source,
        stack,
        run_settings,
        pid_started,
    ) = row
    if status == "running" and not _alive(pid, host, pid_started):
        status = INTERRUPTED
    return RunRecord(
        run_id,
        pipeline,
        status,
        started_at,
        ended_at,
        pid,
        host,
        root,
        error,
        json.loads(params),
        source,
        stack,
        None if run_settings is None else json.loads(run_settings),
        pid_started,
    )


def _edges_to_json(edges: Sequence[StepEdge] | None) -> str | None:
    if edges is None:
        return None
    return json.dumps([{"from": e.from_step, "output": e.output, "input": e.input} for e in edges])


def _step_record(row: tuple[Any, ...]) -> StepRecord:
    values = dict(zip(("run_id", "step", *_STEP_FIELDS), row, strict=True))
    if values["upstream"] is not None:
        values["upstream"] = tuple(
            StepEdge(e["from"], e["output"], e["input"]) for e in json.loads(values["upstream"])
        )
    return StepRecord(**values)


def _job_record(row: tuple[Any, ...]) -> JobRecord:
    values = list(row)
    values[7] = _handle_from_json(values[7])
    values[13] = None if values[13] is None else json.loads(values[13])
    return JobRecord(*values)


def _own_start_ticks() -> str | None:
    stat = process_stat(os.getpid())
    return None if stat is None else stat[1]


def _alive(pid: int, host: str, start_ticks: str | None) -> bool:
    """Whether the process that recorded a row still runs.  On another host nobody here
    can tell, so it counts as alive: a run is never taken from a live orchestrator."""
    if host != socket.gethostname():
        return True
    return is_running(pid, start_ticks)
