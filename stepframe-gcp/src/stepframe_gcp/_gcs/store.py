"""The ``gcs`` artifact store: write-once objects below a ``gs://BUCKET/PREFIX`` root.

Like every store it only moves bytes: `stepframe._artifacts.io` hashes what is written
and read and checks the sha256 on every load.

- **Writes** are streamed with one chunk (`DEFAULT_CHUNK_SIZE`) of memory.  An object
  smaller than a chunk goes up in one multipart request; a larger one through a resumable
  upload whose last chunk is sent only when the ``with`` block exits cleanly, so an error
  leaves nothing behind (the session is cancelled).  Both carry ``ifGenerationMatch=0``:
  Cloud Storage refuses to create an object that exists, atomically, and two writers of
  one URI cannot both win.
- **Reads** look up the object's generation once and fetch that generation only, with
  ranged requests; a dropped connection resumes at the byte where it stopped, and can
  never splice a newer object's bytes into an older one's.
- **The root** holds a marker object, ``PREFIX/.stepframe-artifact-store``, written when
  the root is first opened; a job opens the store by its launch manifest's URI and the
  nearest marker above it says where the root is.

Works on the client with the connector's token and inside jobs with none: Application
Default Credentials then give the job's service account.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from stepframe import ArtifactStore
from stepframe.exceptions import ArtifactError, ArtifactExistsError, ArtifactNotFoundError
from stepframe_gcp._gcs.api import StorageApi, check
from stepframe_gcp._gcs.uri import RESERVED_PREFIX, GcsLocation, parse_gs_uri

if TYPE_CHECKING:
    from stepframe import Credentials

__all__ = ["DEFAULT_CHUNK_SIZE", "STORE_MARKER", "GcsArtifactStore"]

#: The object at a store's root that tells where object URIs' store starts.
STORE_MARKER = f"{RESERVED_PREFIX}artifact-store"
_MARKER_TEXT = b"This prefix is a stepframe artifact store.\n"
# Resumable uploads take chunks in multiples of 256 KiB; 4 MiB keeps a write's memory
# (the chunk and its one copy on the way out) well under the kit's 16 MiB.
_QUANTUM = 256 * 1024
DEFAULT_CHUNK_SIZE = 16 * _QUANTUM
# How many times a download resumes after a dropped connection before giving up.
_READ_RESUMES = 5


class GcsArtifactStore(ArtifactStore):
    """Objects below ``root_uri`` (``gs://BUCKET[/PREFIX]``) in Cloud Storage."""

    def __init__(
        self, root_uri: str, *, api: StorageApi, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if chunk_size <= 0 or chunk_size % _QUANTUM:
            raise ValueError(f"chunk_size must be a positive multiple of {_QUANTUM}")
        self.root = parse_gs_uri(root_uri)
        super().__init__(self.root.uri)
        self.api = api
        self.chunk_size = chunk_size

    @classmethod
    def open(
        cls, uri: str, credentials: Credentials | None, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> GcsArtifactStore:
        """The store that ``uri``, a store root or an object in one, belongs to.

        An existing object (a job's launch manifest) belongs to the store of the nearest
        marker above it, or failing that to a store rooted at its bucket.  Anything else
        is a store root (the stack's configured path) and is used as given: its marker is
        written, so that object URIs below it find it later.

        :raises ConfigError: the URI is not a ``gs://`` URI or the bucket does not exist.
        """
        location = parse_gs_uri(uri)
        api = StorageApi(credentials)
        root = _find_root(api, location)
        return cls(root.uri, api=api, chunk_size=chunk_size)

    # ---- addressing -----------------------------------------------------------------

    def location_for(self, uri: str) -> GcsLocation:
        """The bucket and name of an object URI; refuses URIs outside this store."""
        location = parse_gs_uri(uri)
        root = self.root
        inside = location.bucket == root.bucket and (
            location.name.startswith(f"{root.name}/") if root.name else bool(location.name)
        )
        if not inside:
            raise ArtifactError(
                f"{uri} is outside the artifact store at {self.root_uri}; open the store "
                "that URI belongs to, or build URIs with store.uri_for()"
            )
        if location.name.rpartition("/")[2].startswith(RESERVED_PREFIX):
            raise ArtifactError(
                f"{uri}: names starting with {RESERVED_PREFIX!r} are reserved for "
                "stepframe's own objects; choose another object name"
            )
        return location

    # ---- the store interface --------------------------------------------------------

    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return self._write(self.location_for(uri))

    @contextlib.contextmanager
    def _write(self, location: GcsLocation) -> Iterator[BinaryIO]:
        upload = _Upload(self.api, location, self.chunk_size)
        try:
            yield cast(BinaryIO, upload)
        except BaseException:
            upload.abort()
            raise
        upload.finish()

    def open_read(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return self._read(self.location_for(uri))

    @contextlib.contextmanager
    def _read(self, location: GcsLocation) -> Iterator[BinaryIO]:
        metadata = self.api.metadata(location)
        if metadata is None:
            raise ArtifactNotFoundError(f"no artifact at {location.uri}")
        raw = _Download(self.api, location, metadata["generation"], int(metadata["size"]))
        try:
            yield cast(BinaryIO, io.BufferedReader(raw, buffer_size=1 << 20))
        finally:
            raw.close()

    def exists(self, uri: str) -> bool:
        return self.api.metadata(self.location_for(uri)) is not None

    def list(self, prefix_uri: str) -> Iterator[str]:
        prefix = parse_gs_uri(prefix_uri)
        if prefix.bucket != self.root.bucket:
            return
        # parse_gs_uri strips a trailing slash; keep it, it narrows the prefix.
        name_prefix = prefix.name + ("/" if prefix_uri.endswith("/") and prefix.name else "")
        token: str | None = None
        while True:
            params = {"prefix": name_prefix, "fields": "items(name),nextPageToken"}
            if token:
                params["pageToken"] = token
            answer = self.api.request("GET", self.api.list_url(prefix.bucket), params=params)
            check(answer, f"listing {prefix_uri}", prefix, listing=True)
            page = answer.json()
            for item in page.get("items", ()):
                name = item["name"]
                if name.rpartition("/")[2].startswith(RESERVED_PREFIX):
                    continue
                uri = f"gs://{prefix.bucket}/{name}"
                if self.contains(uri):
                    yield uri
            token = page.get("nextPageToken")
            if not token:
                return


# ---- writing ----------------------------------------------------------------------------


class _Upload(io.RawIOBase):
    """A forward-only stream into one new object; see the module docstring."""

    def __init__(self, api: StorageApi, location: GcsLocation, chunk_size: int) -> None:
        self.api = api
        self.location = location
        self.chunk_size = chunk_size
        self.buffer = bytearray()
        self.session_url: str | None = None
        self.sent = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a finished upload")
        self.buffer += data
        # A full chunk goes out only once more bytes follow it: the last chunk is the one
        # that finalizes the object, and is sent by finish() alone.
        while len(self.buffer) > self.chunk_size:
            self._send_chunk(self.chunk_size, total=None)
        return len(data)

    def finish(self) -> None:
        try:
            if self.session_url is None:
                self._simple_upload()
            else:
                self._send_chunk(len(self.buffer), total=self.sent + len(self.buffer))
        finally:
            self.buffer = bytearray()
            super().close()

    def abort(self) -> None:
        """Drop what was sent: the object is never created."""
        self.buffer = bytearray()
        if self.session_url is not None:
            # Cancelling is a courtesy (an unfinished session expires on its own); its
            # answer does not matter.
            with contextlib.suppress(Exception):
                self.api.session.delete(self.session_url, timeout=self.api.timeout)
        super().close()

    def close(self) -> None:
        # Closing is not finishing: only a clean exit of the `with` block creates the
        # object (finish), so a stream closed by garbage collection never commits.
        if not self.closed:
            self.abort()

    # ---- the wire -----------------------------------------------------------------------

    def _simple_upload(self) -> None:
        boundary = "stepframe-gcs-upload-boundary"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                _json({"name": self.location.name}),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                bytes(self.buffer),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        answer = self.api.request(
            "POST",
            self.api.upload_url(self.location.bucket),
            params={"uploadType": "multipart", "ifGenerationMatch": "0"},
            data=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        )
        self._check_final(answer)

    def _start_session(self) -> str:
        answer = self.api.request(
            "POST",
            self.api.upload_url(self.location.bucket),
            params={"uploadType": "resumable", "ifGenerationMatch": "0"},
            json={"name": self.location.name},
        )
        self._check_final(answer)
        return str(answer.headers["Location"])

    def _send_chunk(self, size: int, total: int | None) -> None:
        if self.session_url is None:
            self.session_url = self._start_session()
        with memoryview(self.buffer) as view:
            chunk = bytes(view[:size])
        end = self.sent + size - 1
        if size:
            content_range = f"bytes {self.sent}-{end}/{'*' if total is None else total}"
        else:
            content_range = f"bytes */{total}"
        answer = self.api.request(
            "PUT", self.session_url, data=chunk, headers={"Content-Range": content_range}
        )
        del chunk
        if total is None:
            if answer.status_code != 308:
                self._check_final(answer)
                raise ArtifactError(
                    f"writing {self.location.uri}: Cloud Storage ended the upload early "
                    f"(status {answer.status_code})"
                )
        else:
            self._check_final(answer)
        del self.buffer[:size]
        self.sent += size

    def _check_final(self, answer: Any) -> None:
        if answer.status_code == 412:
            raise ArtifactExistsError(
                f"an artifact already exists at {self.location.uri}; artifacts are written once"
            )
        check(answer, f"writing {self.location.uri}", self.location)


def _json(value: object) -> bytes:
    import json

    return json.dumps(value).encode()


# ---- reading ----------------------------------------------------------------------------


class _Download(io.RawIOBase):
    """The bytes of one generation of one object, resumed by range after a dropped
    connection."""

    def __init__(self, api: StorageApi, location: GcsLocation, generation: str, size: int) -> None:
        self.api = api
        self.location = location
        self.generation = str(generation)
        self.size = size
        self.offset = 0
        self.response: Any = None
        self.resumes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.offset >= self.size or len(buffer) == 0:
            return 0
        import requests
        import urllib3.exceptions

        while True:
            if self.response is None:
                self.response = self._request()
            try:
                data = self.response.raw.read(min(len(buffer), self.size - self.offset))
            except (
                urllib3.exceptions.HTTPError,
                requests.ConnectionError,
                OSError,
            ) as error:
                self._resume(error)
                continue
            if not data:
                self._resume(None)  # the answer ended before the object did
                continue
            buffer[: len(data)] = data
            self.offset += len(data)
            return len(data)

    def _request(self) -> Any:
        answer = self.api.request(
            "GET",
            self.api.media_url(self.location),
            params={"alt": "media", "generation": self.generation},
            headers={"Range": f"bytes={self.offset}-", "Accept-Encoding": "identity"},
            stream=True,
        )
        if answer.status_code == 404:
            answer.close()
            raise ArtifactError(
                f"reading {self.location.uri}: generation {self.generation} is gone (the "
                "object was deleted or replaced while it was being read)"
            )
        check(answer, f"reading {self.location.uri}", self.location)
        expected = 206 if self.offset else (200, 206)
        if answer.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
            answer.close()
            raise ArtifactError(
                f"reading {self.location.uri}: asked for bytes from {self.offset}, Cloud "
                f"Storage answered {answer.status_code}"
            )
        return answer

    def _resume(self, error: BaseException | None) -> None:
        if self.response is not None:
            with contextlib.suppress(Exception):
                self.response.close()
            self.response = None
        self.resumes += 1
        if self.resumes > _READ_RESUMES:
            cause = f" ({error})" if error else ""
            raise ArtifactError(
                f"reading {self.location.uri}: the connection dropped {self.resumes} times, "
                f"last at byte {self.offset} of {self.size}{cause}"
            )

    def close(self) -> None:
        if self.response is not None:
            with contextlib.suppress(Exception):
                self.response.close()
            self.response = None
        super().close()


# ---- the root marker --------------------------------------------------------------------


def _find_root(api: StorageApi, location: GcsLocation) -> GcsLocation:
    """The root of the store ``location`` is in; see `GcsArtifactStore.open`."""
    if api.metadata(location.child(STORE_MARKER)) is not None:
        return location  # a root, marked when it was first opened
    if location.name and api.metadata(location) is not None:
        # An object: a job opening its store by its manifest's URI.
        for candidate in location.ancestors()[1:]:
            if api.metadata(candidate.child(STORE_MARKER)) is not None:
                return candidate
        return GcsLocation(location.bucket)
    # A configured root.  Walking up from it would swap a nested root for a store marked
    # above it.
    _create_marker(api, location)
    return location


def _create_marker(api: StorageApi, root: GcsLocation) -> None:
    """Mark ``root`` as a store's root.  Credentials that may not write there (a read-only
    user looking at runs) still get the store: the marker only helps jobs find it."""
    from stepframe import ConnectorError

    upload = _Upload(api, root.child(STORE_MARKER), DEFAULT_CHUNK_SIZE)
    upload.write(_MARKER_TEXT)
    try:
        upload.finish()
    except (ArtifactExistsError, ConnectorError):
        return  # another process marked it first, or we may only read
