"""Where a step's log is kept.

One function, so that whatever keeps step logs (the ``local`` operator's job logs today)
is found the same way by `Runs`, ``stepframe report`` and ``stepframe ui``.
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

    :param job: the step's latest job ledger row; a ``local`` job's handle names its log.
    """
    del project, run_id, step  # for the step logs every operator will keep (issue 14.1)
    if job is None or job.handle is None:
        return None
    log = job.handle.data.get("log")
    if not isinstance(log, str) or not os.path.isfile(log):
        return None
    return Path(log)


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
