"""What one process learns about a step's container that every other process must know.

Cancelling and polling often happen in different processes: ``stepframe jobs stop`` from a
second shell while a run follows the job, ``run --resume`` after the orchestrator died.
A mark kept in memory dies with its process, so each fact is a small file in the job's
work folder (``<launch.workdir>/docker/<container id>.<fact>``), written atomically:

- ``cancel``: someone asked the container to stop.  Written before the stop is sent, so
  whichever process sees the container end reports CANCELLED, not ``exited with status
  143``.
- ``abandoned``: a poll gave up because the engine stopped answering.  Once the engine
  answers again, the container is removed as soon as it has ended, even if nobody follows
  the job any more.
- ``end``: the final status, written before the container is removed, so a poll that
  finds the container gone reports how it really ended instead of guessing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from stepframe import JobState, JobStatus

__all__ = ["ABANDONED", "CANCEL", "JobMarks", "marked", "marks_folder"]

CANCEL = "cancel"
ABANDONED = "abandoned"
_END = "end"
# Marks of jobs that ended this long ago are of no use to anyone.
_KEEP_SECONDS = 30 * 24 * 3600


def marks_folder(workdir: str | None) -> Path:
    """Where the marks of jobs launched with ``workdir`` live.

    Without a work folder (a launch made by hand), a folder of this user's own under the
    temporary directory, so nothing is written into the current directory.
    """
    if workdir and workdir != ".":
        return Path(workdir) / "docker"
    return Path(tempfile.gettempdir()) / f"stepframe-docker-{os.getuid()}"


class JobMarks:
    """The marks of one container."""

    def __init__(self, folder: Path, container_id: str) -> None:
        self.folder = folder
        self.container_id = container_id

    @classmethod
    def of(cls, data: Mapping[str, Any], container_id: str) -> JobMarks:
        """The marks of the job a handle's ``data`` describes (``data["marks"]``, the
        folder chosen at submit; handles from before marks existed use the fallback)."""
        folder = data.get("marks")
        return cls(Path(folder) if folder else marks_folder(None), container_id)

    def _path(self, fact: str) -> Path:
        return self.folder / f"{self.container_id}.{fact}"

    # Marks are bookkeeping beside the real work (stopping, polling, removing a
    # container): a folder that cannot be written must not fail that work.  At worst a
    # later poll from another process misreads a cancel as a failure.

    def _write(self, fact: str, text: str) -> None:
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=f".{self.container_id}.", dir=self.folder)
            with os.fdopen(fd, "w") as file:
                file.write(text)
            os.replace(temporary, self._path(fact))
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def mark(self, fact: str) -> None:
        self._write(fact, f"{time.time()}\n")

    def unmark(self, fact: str) -> None:
        with contextlib.suppress(OSError):
            self._path(fact).unlink()

    def has(self, fact: str) -> bool:
        try:
            return self._path(fact).exists()
        except OSError:
            return False

    def record_end(self, status: JobStatus) -> None:
        """Keep how the job ended (without its log lines) for pollers that come later."""
        self._write(
            _END,
            json.dumps(
                {
                    "state": status.state.value,
                    "detail": status.detail,
                    "failure_reason": status.failure_reason,
                }
            ),
        )

    def recorded_end(self, cursor: str | None) -> JobStatus | None:
        try:
            record = json.loads(self._path(_END).read_text())
            return JobStatus(
                JobState(record["state"]),
                (),
                cursor,
                detail=str(record.get("detail") or ""),
                failure_reason=record.get("failure_reason"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def marked(folder: Path, fact: str) -> Iterator[str]:
    """Ids of the containers in ``folder`` with ``fact`` marked and no recorded end; marks
    older than a month are deleted on the way."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > _KEEP_SECONDS:
                os.unlink(entry.path)
                continue
        container_id, _, suffix = entry.name.partition(".")
        if suffix == fact and not (folder / f"{container_id}.{_END}").exists():
            yield container_id
