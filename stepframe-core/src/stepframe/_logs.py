"""Step logs kept in the project's state: one file per step attempt, every operator alike.

The orchestrator writes every log line it receives for a step (through the operator's
log cursor, the same lines the console shows) to
``.stepframe/logs/RUN/STEP/attempt-N.log``, each line prefixed by the UTC time it was
received.  That covers in-process steps (whose prints the ``inprocess`` operator captures
per thread), ``local`` jobs, containers and remote jobs in one place, whatever the
operator keeps itself, and stays readable after the job, the container or the cloud
log group is gone.

A file is bounded: past `log_max_bytes` its oldest lines are dropped, so it keeps the
tail, which is where a failure shows.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DEFAULT_LOG_MAX_BYTES",
    "LOG_MAX_BYTES_ENV",
    "StepLogWriter",
    "attempt_log_path",
    "log_max_bytes",
    "split_timestamp",
    "step_logs_dir",
    "timestamp",
]

LOG_MAX_BYTES_ENV = "STEPFRAME_LOG_MAX_BYTES"
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
# The smallest bound honoured: a tail shorter than this would not show a traceback.
MIN_LOG_MAX_BYTES = 4096
# The line a trimmed log starts with.
TRIMMED_MARK = "[earlier lines dropped: this log keeps its last {limit} bytes; set {env}]"


def log_max_bytes() -> int:
    """The bound on one attempt's log, from ``STEPFRAME_LOG_MAX_BYTES`` (bytes)."""
    from stepframe.exceptions import ConfigError

    raw = os.environ.get(LOG_MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_LOG_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"{LOG_MAX_BYTES_ENV}={raw!r} is not a number of bytes; set it to an integer "
            f"such as {DEFAULT_LOG_MAX_BYTES}, or unset it"
        ) from None
    return max(value, MIN_LOG_MAX_BYTES)


def step_logs_dir(state_dir: Path, run_id: str, step: str) -> Path:
    """The folder of one step's attempt logs."""
    from stepframe._names import safe_segments  # a run id typed by a user cannot escape

    return state_dir.joinpath("logs", *safe_segments(run_id, step))


def attempt_log_path(state_dir: Path, run_id: str, step: str, attempt: int) -> Path:
    """Where the log of one attempt of one step is kept."""
    return step_logs_dir(state_dir, run_id, step) / f"attempt-{int(attempt)}.log"


def timestamp(seconds: float) -> str:
    """``seconds`` since the epoch as stored in a log: ISO 8601, UTC, milliseconds."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds % 1 * 1000):03d}Z"


def split_timestamp(line: str) -> tuple[str, str]:
    """A stored line as (its timestamp, the text the step wrote)."""
    stamp, space, text = line.partition(" ")
    if space and len(stamp) == 24 and stamp.endswith("Z") and stamp[10] == "T":
        return stamp, text
    return "", line  # the trimmed mark, or a line from elsewhere


class StepLogWriter:
    """Appends timestamped lines to one attempt's log, keeping at most ``max_bytes``.

    Opening truncates: a writer follows a job from its log's beginning (a resume re-reads
    it through a fresh cursor), so what was written before is written again.  A log that
    cannot be written (a full disk) is given up, never a reason for the step to fail: the
    console still shows every line.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_bytes if max_bytes is not None else log_max_bytes()
        self._size = 0
        self._stream: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(path, "wb")
        except OSError:
            pass

    def write_lines(self, lines: Iterable[str], now: float | None = None) -> None:
        if self._stream is None:
            return
        stamp = timestamp(time.time() if now is None else now)
        data = "".join(f"{stamp} {line}\n" for line in lines).encode("utf-8", "replace")
        try:
            if self._size + len(data) > self.max_bytes:
                self._keep_tail(data)
            else:
                self._stream.write(data)
                self._stream.flush()
                self._size += len(data)
        except OSError:
            self.close()

    def _keep_tail(self, data: bytes) -> None:
        """Rewrite the file as its newest lines (about half the bound, so trimming is
        rare), after a line saying that earlier ones were dropped."""
        assert self._stream is not None
        self._stream.close()
        mark = TRIMMED_MARK.format(limit=self.max_bytes, env=LOG_MAX_BYTES_ENV) + "\n"
        budget = self.max_bytes // 2 - len(mark)
        kept = (self.path.read_bytes() + data)[-budget:]
        newline = kept.find(b"\n")
        kept = kept[newline + 1 :] if newline >= 0 else b""
        self._stream = open(self.path, "wb")
        self._stream.write(mark.encode() + kept)
        self._stream.flush()
        self._size = len(mark) + len(kept)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
