"""Following a job: poll with backoff, hand over its log lines, stop at a terminal state.

Shared by the step runner (during a run or a resume) and by ``stepframe jobs attach``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import attrs

from stepframe._plugins.facade import Hooks
from stepframe._types import Credentials, JobHandle, JobState, JobStatus

__all__ = ["FIRST_POLL_SECONDS", "MAX_POLL_SECONDS", "follow_job"]

# Poll quickly at first so short steps finish promptly, then back off to spare the backend.
FIRST_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 5.0


def _never() -> bool:
    return False


def follow_job(
    hooks: Hooks,
    handle: JobHandle,
    *,
    credentials: Callable[[], Credentials | None],
    on_lines: Callable[[tuple[str, ...]], None],
    on_detail: Callable[[str], None] = lambda detail: None,
    on_state: Callable[[JobState], None] = lambda state: None,
    wake: threading.Event | None = None,
    give_up: Callable[[], bool] = _never,
) -> JobStatus:
    """Poll ``handle`` until its job ends; return the final status.

    :param credentials: called before each poll, so refreshed credentials are used.
    :param on_lines: receives each batch of new log lines.
    :param on_detail: receives the backend's detail status whenever it changes.
    :param on_state: receives each new state before the final one (pending, running).
    :param wake: set it to cut the current wait short (a cancel was requested).
    :param give_up: polled between waits; when it returns True the job is reported as
        CANCELLED without waiting further.
    """
    wake = wake or threading.Event()
    cursor: str | None = None
    delay = FIRST_POLL_SECONDS
    shown_detail = ""
    seen_state: JobState | None = None
    while True:
        status = hooks.poll_step(handle, credentials(), cursor)
        cursor = status.cursor
        if status.log_lines:
            on_lines(status.log_lines)
        if status.detail and status.detail != shown_detail:
            shown_detail = status.detail
            on_detail(status.detail)
        if status.state.is_terminal:
            return status
        if status.state is not seen_state:
            seen_state = status.state
            on_state(status.state)
        if give_up():
            return attrs.evolve(status, state=JobState.CANCELLED)
        wait = status.poll_after if status.poll_after is not None else delay
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
        if wake.is_set():
            # A cancel is under way: poll briskly until the job ends.  The event returns
            # at once now that it is set, so sleep instead of busy-polling.
            time.sleep(min(wait, 0.2))
        else:
            wake.wait(wait)
