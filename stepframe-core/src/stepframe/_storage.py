"""Telling "the disk is full" apart from other write errors, and saying it in one line.

A full disk shows up as ``OSError`` ENOSPC or EDQUOT from plain file writes, and as
SQLite's ``database or disk is full`` (SQLITE_FULL) or ``disk I/O error`` (SQLITE_IOERR,
what SQLite reports when writing its WAL or shared-memory file fails) from the run
history.  Each place that writes turns these into a `StorageFullError` naming what it
was writing and where; everything else is left as it is.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import TypeGuard

from stepframe.exceptions import StorageFullError

__all__ = [
    "disk_is_full",
    "is_storage_oserror",
    "sqlite_storage_error",
    "storage_error",
    "storage_reason",
]

# errno values that mean the storage, not the caller, is the problem.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_STORAGE_ERRNOS = _FULL_ERRNOS | {errno.EIO, errno.EROFS}

# Primary SQLite result codes (the low byte of an extended code).
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14


def is_storage_oserror(error: BaseException) -> TypeGuard[OSError]:
    """Whether ``error`` says the disk is full, over quota, read-only or failing."""
    return isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS


def disk_is_full(path: str | os.PathLike[str]) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) has no
    free blocks or no free inodes left for unprivileged writers."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return False
    # f_favail is 0 on file systems that do not count inodes (f_files == 0).
    no_inodes = stats.f_files > 0 and stats.f_favail == 0
    return stats.f_bavail == 0 or no_inodes


def storage_reason(error: OSError) -> str:
    """Why a write failed, in words, with the system's own text in parentheses."""
    text = error.strerror or os.strerror(error.errno or 0)
    if error.errno == errno.ENOSPC:
        return f"the disk is full ({text})"
    if error.errno == errno.EDQUOT:
        return f"the disk quota is used up ({text})"
    if error.errno == errno.EFBIG:
        return f"the file is larger than the file system allows ({text})"
    if error.errno == errno.EROFS:
        return f"the file system is read-only ({text})"
    return f"the disk failed to write ({text})"


def storage_error(
    what: str, path: str | os.PathLike[str], error: OSError, fix: str | None = None
) -> StorageFullError:
    """The one-line error for an ``OSError`` that `is_storage_oserror` accepts."""
    return StorageFullError(
        what, os.fspath(path), storage_reason(error), fix or "free space on that disk and retry"
    )


def sqlite_storage_error(
    what: str, path: str | os.PathLike[str], error: sqlite3.Error, fix: str | None = None
) -> StorageFullError | None:
    """The one-line error for an SQLite error caused by the disk, or None for any other.

    A "disk I/O error" or a file SQLite cannot open (its ``-wal`` or ``-shm`` file, say)
    counts only when the disk really is full or the error is an I/O error: a wrong path
    or permission stays SQLite's own error.
    """
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = str(error)
    full_now = disk_is_full(path)
    if primary == _SQLITE_FULL or "database or disk is full" in message:
        reason = f"the disk is full (SQLite: {message})"
    elif primary == _SQLITE_IOERR or "disk I/O error" in message:
        state = "the disk is full" if full_now else "the disk failed to write"
        reason = f"{state} (SQLite: {message})"
    elif (primary == _SQLITE_CANTOPEN or "unable to open database file" in message) and full_now:
        reason = f"the disk is full (SQLite: {message})"
    else:
        return None
    return StorageFullError(
        what, os.fspath(path), reason, fix or "free space on that disk and retry"
    )
