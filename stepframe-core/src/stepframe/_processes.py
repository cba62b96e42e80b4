"""What /proc says about a process: shared by the local operator, its zygote and resume."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["is_running", "process_stat"]


def process_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start ticks) of a process, from /proc; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def is_running(pid: int, start_ticks: str | None = None) -> bool:
    """Whether the process is there and not a zombie (and, given its start ticks, is the
    one started then rather than a later process that got the same PID)."""
    state = process_stat(pid)
    if state is None:
        try:
            os.kill(pid, 0)  # no /proc: all we can tell is whether the PID exists
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    letter, started = state
    if start_ticks is not None and started != start_ticks:
        return False
    return letter not in ("Z", "X")
