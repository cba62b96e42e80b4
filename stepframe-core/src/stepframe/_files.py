"""Writing files all at once, locking them for a read-modify-write, reading logs by offset.

One implementation for every place that needs it (``stepframe.toml``, the secret store,
a job's exit status, reports, plugins' status files) instead of one copy each.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["file_lock", "read_log_lines", "write_atomically"]

# Terminal colour and cursor codes: in a log file they are noise to a reader.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def write_atomically(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    mode: int | None = None,
    durable: bool = True,
) -> None:
    """Replace ``path``'s content with ``data`` in one rename.

    The temporary file has a unique name in the same folder, so two writers never write
    into each other's; it is removed again when anything fails.

    :param mode: the file's permission bits, set before the data is written (a secret is
        never readable by others, even for a moment).  None keeps an existing file's
        bits, and gives a new file 0o644.
    :param durable: fsync the data before the rename, so a power loss leaves the old or
        the new content; off for bookkeeping that a crash makes moot anyway.
    """
    target = Path(path)
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (through ``.NAME.lock`` beside it) for a
    read-modify-write: two processes editing the same file both land."""
    target = Path(path)
    with open(target.with_name(f".{target.name}.lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def read_log_lines(
    path: str | os.PathLike[str], offset: int, *, final: bool, clean: bool = False
) -> tuple[tuple[str, ...], int]:
    """The complete lines of a log from byte ``offset`` on, and the offset after them.

    A partial last line waits for its newline, unless the job has ended (``final``): then
    it is returned too, so a last line without a newline is never lost.  A log that does
    not exist yet has no lines.

    :param clean: remove terminal colour codes and carriage returns (a tool's progress
        output written to a file).
    """
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return (), offset
    if not final:
        data = data[: data.rfind(b"\n") + 1]
    text = data.decode("utf-8", errors="replace")
    if clean:
        text = _ANSI.sub("", text).replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines), offset + len(data)
