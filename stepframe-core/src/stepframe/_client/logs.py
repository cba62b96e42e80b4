"""Where a step's log is kept.

One function, so that the step logs the orchestrator keeps (`stepframe._logs`) are found
the same way by `Runs`, ``stepframe logs``, ``stepframe report`` and ``stepframe ui``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stepframe._history.database import JobRecord
    from stepframe._project import Project

__all__ = ["read_log_tail", "step_log_path"]


def step_log_path(project: Project, run_id: str, step: str, job: JobRecord | None) -> Path | None:
    """The log file of a step's latest attempt, or None when none is kept here.

    The log the orchestrator kept in ``.stepframe/logs/RUN/STEP/attempt-N.log`` (every
    operator; see `stepframe._logs`), else the ``local`` operator's own job log (runs
    recorded before step logs were kept).

    :param job: the step's latest job ledger row (its attempt picks the file); without
        one, the step's newest attempt log.
    """
    from stepframe._logs import attempt_log_path, step_logs_dir

    if job is not None:
        kept = attempt_log_path(project.state_dir, run_id, step, job.attempt)
        if kept.is_file():
            return kept
    else:
        attempts = step_logs_dir(project.state_dir, run_id, step).glob("attempt-*.log")
        newest = max(attempts, key=_attempt_number, default=None)
        if newest is not None:
            return newest
    if job is None or job.handle is None:
        return None
    log = job.handle.data.get("log")
    if not isinstance(log, str) or not os.path.isfile(log):
        return None
    return Path(log)


def _attempt_number(path: Path) -> int:
    number = path.stem.removeprefix("attempt-")
    return int(number) if number.isdigit() else 0


def read_log_tail(path: Path, max_bytes: int = 16_384) -> str:
    """The end of a log file, from the first whole line within its last ``max_bytes``."""
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(max(0, size - max_bytes))
        data = stream.read()
    if size > max_bytes:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else data
    return data.decode("utf-8", errors="replace")
