"""The ``gcs`` artifact store: write-once objects below a ``gs://BUCKET/PREFIX`` root.

Like every store it only moves bytes: `stepframe._artifacts.io` hashes what is written
and read and checks the sha256 on every load.

- **Writes** keep at most `MEMORY_LIMIT` bytes in memory: an object up to that size goes
  up in one multipart request; a larger one is spooled to a temporary file (``TMPDIR``)
  and, once the ``with`` block exits cleanly, streamed from it in one request of a
  resumable upload session.  An error in the block sends nothing.  A request that fails
  on the way (a dropped connection, a 5xx) is sent again whole, in a new session: an
  unfinished session never creates the object.  Few large requests are what makes an
  upload fast (each request costs a round trip, and fake-gcs-server, the tests' emulator,
  rehashes the whole object at every chunk).  Both carry ``ifGenerationMatch=0``: Cloud
  Storage refuses to create an object that exists, atomically, and two writers of one
  URI cannot both win.
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
import functools
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from stepframe import ArtifactStore
from stepframe.exceptions import ArtifactError, ArtifactExistsError, ArtifactNotFoundError
from stepframe.object_store import STORE_MARKER, check_in_store, find_store_root
from stepframe_gcp._gcs.api import StorageApi, check
from stepframe_gcp._gcs.uri import RESERVED_PREFIX, GcsLocation, parse_gs_uri

if TYPE_CHECKING:
    from stepframe import Credentials

__all__ = ["MEMORY_LIMIT", "STORE_MARKER", "GcsArtifactStore"]

# A write's memory: the spool's in-memory part, and the multipart body made of it (well
# under the kit's 16 MiB).
MEMORY_LIMIT = 4 << 20
# How many times a download resumes after a dropped connection before giving up.
_READ_RESUMES = 5


class GcsArtifactStore(ArtifactStore):
    """Objects below ``root_uri`` (``gs://BUCKET[/PREFIX]``) in Cloud Storage."""

    def __init__(self, root_uri: str, *, api: StorageApi, memory_limit: int = MEMORY_LIMIT) -> None:
        self.root = parse_gs_uri(root_uri)
        super().__init__(self.root.uri)
        self.api = api
        self.memory_limit = memory_limit

    @classmethod
    def open(
        cls, uri: str, credentials: Credentials | None, *, memory_limit: int = MEMORY_LIMIT
    ) -> GcsArtifactStore:
        """The store that ``uri``, a store root or an object in one, belongs to: the
        nearest marked root above an existing object, else ``uri`` as a root, marked
        (`stepframe.object_store.find_store_root`).

        :raises ConfigError: the URI is not a ``gs://`` URI or the bucket does not exist.
        """
        location = parse_gs_uri(uri)
        api = StorageApi(credentials)
        root = find_store_root(
            location,
            is_object=functools.partial(_is_object, api),
            write_new=functools.partial(_write_new, api),
        )
        return cls(root.uri, api=api, memory_limit=memory_limit)

    # ---- addressing -----------------------------------------------------------------

    def location_for(self, uri: str) -> GcsLocation:
        """The bucket and name of an object URI; refuses URIs outside this store."""
        return check_in_store(self.root, parse_gs_uri(uri), uri)

    # ---- the store interface --------------------------------------------------------

    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return self._write(self.location_for(uri))

    @contextlib.contextmanager
    def _write(self, location: GcsLocation) -> Iterator[BinaryIO]:
        upload = _Upload(self.api, location, self.memory_limit)
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

    def __init__(self, api: StorageApi, location: GcsLocation, memory_limit: int) -> None:
        import tempfile

        self.api = api
        self.location = location
        # In memory up to the limit, then a temporary file: the bytes stay on this side
        # until the object is committed, so a failed request can be sent again whole.
        self.spool = tempfile.SpooledTemporaryFile(max_size=memory_limit, prefix="stepframe-gcs-")
        self.memory_limit = memory_limit
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a finished upload")
        try:
            written = self.spool.write(data)
        except OSError as error:
            import tempfile

            raise ArtifactError(
                f"writing {self.location.uri}: cannot keep the upload in a temporary file in "
                f"{tempfile.gettempdir()} ({error.strerror or error}); set TMPDIR to a "
                "folder with room for the artifact"
            ) from None
        self.size += written
        return written

    def finish(self) -> None:
        try:
            if self.size <= self.memory_limit:
                self.spool.seek(0)
                self._simple_upload(self.spool.read())
            else:
                self._resumable_upload()
        finally:
            self.spool.close()
            super().close()

    def abort(self) -> None:
        """Drop what was written: the object is never created."""
        self.spool.close()
        super().close()

    def close(self) -> None:
        # Closing is not finishing: only a clean exit of the `with` block creates the
        # object (finish), so a stream closed by garbage collection never commits.
        if not self.closed:
            self.abort()

    # ---- the wire -----------------------------------------------------------------------

    def _simple_upload(self, data: bytes) -> None:
        boundary = "stepframe-gcs-upload-boundary"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                _json({"name": self.location.name}),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        del data
        # Sent again after a dropped connection or a 5xx: the precondition makes a second
        # creation impossible, and _check_final tells a first one that did land.
        retries: list[None] = []
        answer = self.api.request(
            "POST",
            self.api.upload_url(self.location.bucket),
            params={"uploadType": "multipart", "ifGenerationMatch": "0"},
            data=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
            on_retry=lambda: retries.append(None),
        )
        self._check_final(answer, retried=bool(retries))

    def _resumable_upload(self) -> None:
        """One session, the whole spool in one request streamed from the file.

        After a dropped connection or a 5xx the upload starts again in a new session: an
        unfinished session never creates the object, so nothing can be half written.
        (Asking the session how much it kept and sending the rest is the protocol's
        other way; fake-gcs-server finalizes a session on that question.)
        """
        import requests

        from stepframe_gcp._gcs.api import RETRY_STATUSES
        from stepframe_gcp._retry import backoff_delays

        delays = backoff_delays()
        attempt = 0
        while True:
            attempt += 1
            session_url = self._start_session(retried=attempt > 1)
            if session_url is None:
                return  # the last try's request did create the object; its answer was lost
            self.spool.seek(0)
            body = _FileBody(self.spool, self.size)
            try:
                answer = self.api.session.put(
                    session_url,
                    data=body,
                    headers={
                        "Content-Range": f"bytes 0-{self.size - 1}/{self.size}",
                        "Content-Length": str(self.size),
                    },
                    timeout=self.api.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                problem: str = f"the connection dropped ({type(error).__name__})"
            else:
                if answer.status_code not in RETRY_STATUSES:
                    self._check_final(answer, retried=attempt > 1)
                    return
                problem = f"Cloud Storage answered {answer.status_code}"
            delay = next(delays, None)
            if delay is None:
                raise ArtifactError(
                    f"writing {self.location.uri}: {problem} on each of {attempt} tries; "
                    "nothing was stored"
                )
            _sleep(delay)

    def _start_session(self, *, retried: bool) -> str | None:
        """A new session's URL; None when, on a retry, the object turns out to exist
        already as this upload's own (Cloud Storage checks the precondition here too)."""
        answer = self.api.request(
            "POST",
            self.api.upload_url(self.location.bucket),
            params={"uploadType": "resumable", "ifGenerationMatch": "0"},
            json={"name": self.location.name},
        )
        if answer.status_code == 412 and retried and self._landed_before():
            return None
        self._check_final(answer, retried=False)
        return str(answer.headers["Location"])

    def _check_final(self, answer: Any, *, retried: bool) -> None:
        if answer.status_code == 412:
            if retried and self._landed_before():
                return
            raise ArtifactExistsError(
                f"an artifact already exists at {self.location.uri}; artifacts are written once"
            )
        check(answer, f"writing {self.location.uri}", self.location)

    def _landed_before(self) -> bool:
        """Whether the object that exists is this upload's own, created by a try whose
        answer was lost: it has this upload's size.  (The artifact layer checks the
        sha256 of every load, so a stranger's object of the same size cannot pass.)"""
        metadata = self.api.metadata(self.location)
        return metadata is not None and int(metadata.get("size", -1)) == self.size


class _FileBody:
    """A file's first ``size`` bytes as a request body: an iterable of large blocks with a
    length (so requests streams it with a Content-Length, one block in memory at a time;
    with a ``read`` method urllib3 would read it 16 KiB at a time)."""

    BLOCK = 1 << 20

    def __init__(self, file: Any, size: int) -> None:
        self.file = file
        self.left = size

    def __len__(self) -> int:
        return self.left

    def _read(self, amount: int) -> bytes:
        if self.left <= 0:
            return b""
        wanted = min(amount, self.left)
        data: bytes = self.file.read(wanted)
        self.left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while block := self._read(self.BLOCK):
            yield block


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


def _write_new(api: StorageApi, location: GcsLocation, data: bytes) -> None:
    """Store ``data`` as a new object (`find_store_root` writes the root marker so)."""
    upload = _Upload(api, location, MEMORY_LIMIT)
    upload.write(data)
    upload.finish()


def _is_object(api: StorageApi, location: GcsLocation) -> bool:
    return api.metadata(location) is not None


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
