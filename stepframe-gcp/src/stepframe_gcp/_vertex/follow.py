"""Following a CustomJob: the polling schedule with its per-minute budget, and the Cloud
Logging cursor.

The poll cursor (``JobStatus.cursor``) is this module's JSON.  It carries:

- the schedule: when the ``customJobs.get`` calls of the last minute were made, when the
  next one is due and the wait that led to it.  A poll that comes earlier (a caller that
  ignores ``poll_after``, several viewers of one job) answers the state last seen and
  makes no call, so a job costs at most `MAX_GETS_PER_MINUTE` status calls (and as many
  log reads) in any minute, however often it is polled;
- the state last seen, answered again while Vertex AI throttles, fails or cannot be
  reached even after the client's retries: a job is never given up (and so cancelled by
  the core) because its API had a bad minute;
- the log position.  Cloud Logging may make an entry readable seconds after a later one
  (several replicas, ingestion delay), so each read starts `LOG_LAG_SECONDS` before the
  newest entry seen and skips the entries already shown, by insert id.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import attrs

from stepframe import JobState

__all__ = [
    "BUDGET_WINDOW",
    "FIRST_DELAY",
    "LOG_LAG_SECONDS",
    "MAX_DELAY",
    "MAX_GETS_PER_MINUTE",
    "MAX_UNANSWERED_DELAY",
    "Cursor",
    "log_instant",
]

# Poll a new job soon (short jobs end promptly), then back off to the cap: at the cap a
# minute holds 60 / 6 = 10 calls, under the budget even when polls come early.
FIRST_DELAY = 2.0
GROWTH = 1.5
MAX_DELAY = 6.0
MAX_GETS_PER_MINUTE = 12
BUDGET_WINDOW = 60.0
# customJobs.get still unanswered after the client's retries: wait MAX_DELAY, doubling
# with each unanswered call in a row, up to this.
MAX_UNANSWERED_DELAY = 60.0
LOG_LAG_SECONDS = 10.0


@attrs.define
class Cursor:
    """What one poll leaves for the next.

    :param gets: ``customJobs.get`` calls made so far for this job.
    :param recent: when the calls of the last `BUDGET_WINDOW` seconds were made.
    :param next_at: when the next call is due (UNIX time).
    :param delay: the wait after the last call.
    :param state: the stepframe state last seen.
    :param vertex_state: Vertex AI's state last seen (``JOB_STATE_RUNNING``...).
    :param detail: the detail last reported.
    :param unanswered: calls in a row that got no answer (throttled, 5xx, unreachable).
    :param announced: whether the job's console URL was shown.
    :param log_newest: the newest log entry's timestamp seen (RFC 3339).
    :param log_seen: insert id to timestamp of the entries shown that are still inside
        the lag window.
    :param logs_off: why log streaming stopped, once it has.
    """

    gets: int = 0
    recent: list[float] = attrs.field(factory=list)
    next_at: float = 0.0
    delay: float = 0.0
    state: str = JobState.PENDING.value
    vertex_state: str = ""
    detail: str = ""
    unanswered: int = 0
    announced: bool = False
    log_newest: str | None = None
    log_seen: dict[str, str] = attrs.field(factory=dict)
    logs_off: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """The cursor a poll returned; a fresh one for the first poll, or for a cursor
        this module did not write (rather than failing the run over it)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(**{f.name: data[f.name] for f in attrs.fields(cls) if f.name in data})
        except (ValueError, TypeError):
            return cls()

    def dump(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    # ---- the schedule -------------------------------------------------------------------

    def call_allowed(self, now: float) -> bool:
        """Whether a status call fits the schedule and the budget now."""
        self.recent = [at for at in self.recent if now - at < BUDGET_WINDOW]
        if self.gets == 0:
            return True
        return now >= self.next_at and len(self.recent) < MAX_GETS_PER_MINUTE

    def due(self) -> float:
        """When the next call is allowed (after `call_allowed` said no)."""
        due = self.next_at
        if len(self.recent) >= MAX_GETS_PER_MINUTE:
            due = max(due, self.recent[0] + BUDGET_WINDOW)
        return due

    def answered(self, now: float) -> None:
        self._called(now)
        self.unanswered = 0
        self.delay = FIRST_DELAY if self.delay <= 0 else min(self.delay * GROWTH, MAX_DELAY)
        self.next_at = now + self.delay

    def unanswered_call(self, now: float) -> None:
        self._called(now)
        self.unanswered += 1
        doublings = min(self.unanswered - 1, 8)
        self.delay = min(MAX_DELAY * float(2**doublings), MAX_UNANSWERED_DELAY)
        self.next_at = now + self.delay

    def _called(self, now: float) -> None:
        self.gets += 1
        self.recent.append(now)

    # ---- the log position ---------------------------------------------------------------

    def log_since(self) -> str | None:
        """The lower bound of the next log read's timestamps, or None for all entries."""
        if self.log_newest is None:
            return None
        since = log_instant(self.log_newest) - datetime.timedelta(seconds=LOG_LAG_SECONDS)
        return since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def take_entry(self, entry: dict[str, Any]) -> bool:
        """Whether ``entry`` is new (and remember it if so)."""
        insert_id = str(entry.get("insertId", ""))
        at = str(entry.get("timestamp", ""))
        if insert_id in self.log_seen:
            return False
        self.log_seen[insert_id] = at
        if at and (self.log_newest is None or log_instant(at) > log_instant(self.log_newest)):
            self.log_newest = at
        return True

    def forget_old_entries(self) -> None:
        """Drop the insert ids the next read cannot return again (before the window)."""
        since = self.log_since()
        if since is None:
            return
        bound = log_instant(since)
        self.log_seen = {
            key: at for key, at in self.log_seen.items() if at and log_instant(at) >= bound
        }


def log_instant(text: str) -> datetime.datetime:
    """An RFC 3339 timestamp of Cloud Logging (``Z`` or an offset, up to nanoseconds) as
    an aware datetime (to the microsecond)."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, offset = text[:19], text[19:]
    fraction = ""
    if offset.startswith("."):
        digits = len(offset) - len(offset[1:].lstrip("0123456789"))
        fraction, offset = offset[1:digits], offset[digits:]
    base = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
    micro = int((fraction + "000000")[:6])
    tz = datetime.timezone.utc
    if offset and offset not in ("+00:00", "-00:00"):
        sign = 1 if offset[0] == "+" else -1
        hours, _, minutes = offset[1:].partition(":")
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(hours), minutes=int(minutes)))
    return base.replace(microsecond=micro, tzinfo=tz)
