"""Named points in a job's life where the crash-consistency suite stops a process.

Off unless ``STEPFRAME_CRASH_AT`` names a point.  Then the process that reaches that
point writes ``$STEPFRAME_CRASH_DIR/<point>.reached`` (its pid inside) and waits there,
for at most a minute, for the suite's signal (or for ``<point>.release`` to appear, which
lets a job that survived its orchestrator go on): a kill that lands exactly between two steps
of the ledger's protocol, every time, instead of by timing luck.  The same idea as
SQLite's test hooks; when disabled it costs one dictionary lookup.  With
``STEPFRAME_CRASH_STEP`` set too, only that step's job stops there.

The points, in the order a job meets them:

``before-intent``   the attempt is allocated and its launch manifest written; no ledger row
``before-submit``   the ledger row says "submitting"; ``submit_step`` not called yet
``after-submit``    ``submit_step`` answered; the handle is not recorded yet
``outputs-written`` (in the job) outputs stored; the result manifest not written yet
``before-finish``   the job ended; its state and outputs are not recorded yet
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["POINTS", "reached"]

POINTS = ("before-intent", "before-submit", "after-submit", "outputs-written", "before-finish")

_WAIT_SECONDS = 60.0


def reached(point: str, step: str | None = None) -> None:
    """Stop here if the crash suite asked for ``point`` (and this step); a no-op otherwise.

    :param step: the step whose job is at ``point``.
    """
    if os.environ.get("STEPFRAME_CRASH_AT") != point:
        return
    wanted = os.environ.get("STEPFRAME_CRASH_STEP")
    if wanted is not None and step != wanted:
        return
    folder = Path(os.environ["STEPFRAME_CRASH_DIR"])
    marker = folder / f"{point}.reached"
    if marker.exists():  # only the first process to get here stops (a resume goes on)
        return
    marker.write_text(str(os.getpid()))
    release = folder / f"{point}.release"
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline and not release.exists():  # or the suite's signal
        time.sleep(0.01)
