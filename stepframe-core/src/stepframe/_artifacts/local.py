"""The artifact store on local disk, for ``file://`` URIs.

Objects are plain files below a root directory, so a user can look at them with ``ls``.
Writes go to a temporary file in the target's directory and are published by a hard
link, which fails if the name is taken: a crash never leaves a half-written object, and
of two processes racing to write the same URI exactly one wins.
"""

from __future__ import annotations

import contextlib
import errno
import os
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from stepframe._artifacts.store import ArtifactStore, mismatch
from stepframe._storage import disk_is_full, is_storage_oserror, storage_reason
from stepframe._types import ArtifactRef
from stepframe.exceptions import (
    ArtifactError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    StorageFullError,
)

__all__ = [
    "STORE_MARKER",
    "LocalArtifactStore",
    "file_uri",
    "find_store_root",
    "open_local_store",
    "path_from_file_uri",
]

# A file in the root directory of every store created with ``create=True``; it tells
# which directory an object URI's store starts at.
STORE_MARKER = ".stepframe-artifact-store"
# Names starting with this are stepframe's own (the marker, temporary files), never objects.
_RESERVED_PREFIX = ".stepframe-"
_TEMP_PREFIX = ".stepframe-tmp-"
_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def path_from_file_uri(uri: str) -> Path:
    """The absolute local path a ``file://`` URI names (``%20`` and friends decoded)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "file":
        raise ArtifactError(
            f"{uri!r} is not a file:// URI; the local artifact store only handles "
            "file:///absolute/path URIs"
        )
    if parts.netloc not in ("", "localhost"):
        raise ArtifactError(
            f"{uri!r} names host {parts.netloc!r}; local artifact URIs have no host: "
            "write file:///absolute/path (three slashes)"
        )
    if os.name == "nt":  # pragma: no cover - drive letters need the platform's rules
        from urllib.request import url2pathname

        return Path(url2pathname(parts.path))
    path = Path(urllib.parse.unquote(parts.path))
    if not path.is_absolute():
        raise ArtifactError(f"{uri!r} has a relative path; write file:///absolute/path")
    return path


def file_uri(path: str | os.PathLike[str]) -> str:
    """The ``file://`` URI of ``path``, made absolute, with spaces and the like quoted."""
    return Path(os.path.abspath(path)).as_uri()


def find_store_root(uri: str) -> str | None:
    """The root URI of the marked store that ``uri`` (a root or an object) is in, if any.

    That is the nearest directory at or above the URI's path holding `STORE_MARKER`.
    """
    path = Path(os.path.normpath(path_from_file_uri(uri)))
    for candidate in (path, *path.parents):
        if (candidate / STORE_MARKER).is_file():
            return file_uri(candidate)
    return None


def open_local_store(uri: str) -> LocalArtifactStore:
    """The store that a ``file://`` URI, a store root or an object in one, belongs to.

    A marked directory at or above the path is the root.  Failing that, an existing file
    is an object whose directory is the root, and anything else is a root itself: it is
    created, with its marker, so that object URIs below it find it later (the client
    opens the root before a job opens the store by a manifest's URI).
    """
    root = find_store_root(uri)
    if root is not None:
        return LocalArtifactStore(root)
    path = path_from_file_uri(uri)
    if path.is_file():
        return LocalArtifactStore(file_uri(path.parent))
    return LocalArtifactStore(uri, create=True)


class LocalArtifactStore(ArtifactStore):
    """Write-once objects stored as files below a root directory.

    :param root_uri: ``file:///abs/path/.stepframe/artifacts``.
    :param create: create the root directory and its `STORE_MARKER` if missing.
    """

    def __init__(self, root_uri: str, *, create: bool = False) -> None:
        super().__init__(root_uri)
        self.root = Path(os.path.normpath(path_from_file_uri(self.root_uri)))
        if create:
            marker = self.root / STORE_MARKER
            with self._storage_errors(marker):
                self.root.mkdir(parents=True, exist_ok=True)
                with (
                    contextlib.suppress(FileExistsError),
                    open(marker, "x", encoding="utf-8") as f,
                ):
                    f.write("This directory is a stepframe artifact store.\n")

    @classmethod
    def at(cls, path: str | os.PathLike[str], *, create: bool = False) -> LocalArtifactStore:
        """The store rooted at a local directory path."""
        return cls(file_uri(path), create=create)

    def path_for(self, uri: str) -> Path:
        """The file an object URI is stored in; refuses URIs outside this store."""
        path = Path(os.path.normpath(path_from_file_uri(uri)))
        if self.root not in path.parents:
            raise ArtifactError(
                f"{uri} is outside the artifact store at {self.root_uri}; "
                "open the store that URI belongs to, or build URIs with store.uri_for()"
            )
        if path.name.startswith(_RESERVED_PREFIX):
            raise ArtifactError(
                f"{uri}: names starting with {_RESERVED_PREFIX!r} are reserved for "
                "stepframe's own files; choose another object name"
            )
        return path

    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return self._write(uri, self.path_for(uri))

    @contextlib.contextmanager
    def _storage_errors(self, path: Path) -> Iterator[None]:
        """A full disk (or quota) under the store as one line naming the store and the
        object, instead of ``OSError: [Errno 28]``."""
        try:
            yield
        except OSError as error:
            if not is_storage_oserror(error):
                raise
            raise self._full(path, error) from error

    def _full(self, path: Path, error: OSError) -> StorageFullError:
        return StorageFullError(
            "the artifact store",
            str(self.root),
            f"{storage_reason(error)} while writing {path}",
            "free space on that disk (or point the stack at another artifact store) "
            "and run the step again",
        )

    @contextlib.contextmanager
    def _write(self, uri: str, path: Path) -> Iterator[BinaryIO]:
        if path.exists():
            raise _exists(uri)
        with self._storage_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = _create_temp(path.parent)
        try:
            stream = os.fdopen(fd, "wb")
            try:
                try:
                    yield stream
                except OSError as error:
                    # The caller's writes to the stream fail when the store's disk fills;
                    # an OSError of anything else the caller does (its own scratch files
                    # on another disk) is not the store's to explain.
                    if is_storage_oserror(error) and disk_is_full(self.root):
                        raise self._full(path, error) from error
                    raise
                with self._storage_errors(path):
                    stream.flush()
                    os.fsync(stream.fileno())
            finally:
                # After a failed write the buffer may still hold bytes that cannot be
                # flushed; they are being thrown away, and the error that says why is
                # already on its way.
                with contextlib.suppress(OSError):
                    stream.close()
            with self._storage_errors(path):
                _publish(Path(temp_name), path, uri)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)

    def open_read(self, uri: str) -> AbstractContextManager[BinaryIO]:
        path = self.path_for(uri)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactNotFoundError(
                f"no artifact is stored at {uri}; it was never written or was deleted "
                "(re-run the step that produces it)"
            ) from None

    def exists(self, uri: str) -> bool:
        return self.path_for(uri).is_file()

    def verify(self, ref: ArtifactRef) -> str | None:
        """A stat first, so that a truncated or extended file is caught without reading
        it; then the bytes are hashed, as a local file keeps no checksum of its own."""
        try:
            info = self.path_for(ref.uri).stat()
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        problem = mismatch(ref, size=info.st_size)
        return problem if problem is not None else super().verify(ref)

    def list(self, prefix_uri: str) -> Iterator[str]:
        """Object URIs (percent-quoted) whose path starts with ``prefix_uri``, sorted.

        As with object stores, the prefix need not end at a directory boundary:
        ``.../runs/ab`` lists ``.../runs/abc/out`` too.
        """
        prefix = Path(os.path.normpath(path_from_file_uri(prefix_uri)))
        if prefix != self.root:
            self.path_for(prefix_uri)  # refuses prefixes outside the store
        if prefix == self.root or prefix_uri.endswith("/"):
            starts = [prefix]
        elif prefix.parent.is_dir():
            starts = [
                prefix.parent / name
                for name in sorted(os.listdir(prefix.parent))
                if name.startswith(prefix.name) and not name.startswith(_RESERVED_PREFIX)
            ]
        else:
            starts = []
        for start in starts:
            for path in _walk_files(start):
                relative = path.relative_to(self.root).as_posix()
                yield f"{self.root_uri}/{urllib.parse.quote(relative)}"


def _walk_files(start: Path) -> Iterator[Path]:
    """Files at or below ``start``, sorted, skipping stepframe's own files below it."""
    if start.is_file():
        yield start
    elif start.is_dir():
        for name in sorted(os.listdir(start)):
            if not name.startswith(_RESERVED_PREFIX):
                yield from _walk_files(start / name)


def _exists(uri: str) -> ArtifactExistsError:
    return ArtifactExistsError(
        f"an artifact is already stored at {uri}; artifacts are write-once, so write "
        "to a new URI (a new run or attempt) instead of overwriting"
    )


def _create_temp(directory: Path) -> tuple[int, str]:
    """A new temporary file next to the target.

    Unlike `tempfile.mkstemp` (always mode 0600) the file gets the user's umask, so the
    published artifact is as readable as any file the user creates, e.g. by containers.
    """
    while True:
        name = str(directory / f"{_TEMP_PREFIX}{os.urandom(8).hex()}")
        try:
            return os.open(name, _EXCLUSIVE | getattr(os, "O_BINARY", 0), 0o666), name
        except FileExistsError:  # pragma: no cover - 64 random bits collided
            continue


def _publish(temp: Path, path: Path, uri: str) -> None:
    """Give the finished temporary file its final name, never replacing an existing one."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise _exists(uri) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this file system (some FUSE and network mounts).  Claim the
        # name atomically with O_EXCL, then move the data over the empty claim.
        try:
            os.close(os.open(path, _EXCLUSIVE, 0o666))
        except FileExistsError:
            raise _exists(uri) from None
        os.replace(temp, path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable, where the platform lets us open a directory."""
    if os.name == "nt":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
