"""Small helpers that the core and plugins share, so none of them writes its own copy.

- `write_atomically`: replace a file's content all at once (readers see the old or the
  new file, never a part), with the permission bits set before any byte is written.
- `file_lock`: an exclusive lock for a read-modify-write of one file, across processes.
- `read_log_lines`: a job log's new complete lines from a byte-offset cursor, the way
  operators that keep a log file implement ``poll_step``'s log cursor.
- `process_start_ticks` / `process_is_running`: whether a process (not a later one that
  got the same PID) still runs, for operators whose jobs are local processes.
- `backoff_delays`: the waits between retries of a call to a service (exponential, with
  full jitter).

Part of the public API: plugins import them from here.
"""

from __future__ import annotations

from stepframe._backoff import backoff_delays
from stepframe._files import file_lock, read_log_lines, write_atomically
from stepframe._processes import is_running as process_is_running
from stepframe._processes import start_ticks as process_start_ticks

__all__ = [
    "backoff_delays",
    "file_lock",
    "process_is_running",
    "process_start_ticks",
    "read_log_lines",
    "write_atomically",
]
