"""Streaming one S3 object up (multipart) or down (resumable), in bounded memory.

The writer holds one part in a reused buffer: a 1 GiB artifact costs one part of memory,
not 1 GiB.  Parts are uploaded one after the other in the writer's thread, so memory
stays at one part whatever the network does, and the first error stops the writer at
once.  The reader streams the response body and, if the connection drops, continues
with a ranged GET pinned to the object's ETag.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from stepframe.exceptions import ArtifactError, ArtifactExistsError
from stepframe_aws._errors import error_code
from stepframe_aws._s3.errors import s3_errors
from stepframe_aws._s3.uri import S3Location

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "MultipartWriter",
    "ObjectReader",
    "exists_error",
    "part_size_for",
]

MIB = 1 << 20
#: S3's smallest part (all parts but the last), and the most parts one upload may have.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000
#: boto3's own default part size: few requests, little memory.
DEFAULT_PART_SIZE = 8 * MIB
# Every this many parts the part size doubles, so an object of any size S3 accepts
# (5 TiB) fits in 10,000 parts while the usual ones (< 8 GiB at 8 MiB) keep small parts.
_PARTS_PER_SIZE = 1_000
# A dropped download connection is picked up again this many times in a row.
_RESUMES = 5
# Codes meaning "a conditional write found the key taken" (412), or "another conditional
# write of that key is in progress" (409): both mean another writer has the name.
_TAKEN_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def part_size_for(part_number: int, base: int) -> int:
    """The size of part ``part_number`` (1-based) when parts start at ``base`` bytes."""
    return base << ((part_number - 1) // _PARTS_PER_SIZE)


def exists_error(uri: str) -> ArtifactExistsError:
    """The error for a write to a URI that already holds an object."""
    return ArtifactExistsError(
        f"an artifact is already stored at {uri}; artifacts are write-once, so write "
        "to a new URI (a new run or attempt) instead of overwriting"
    )


class MultipartWriter(io.BufferedIOBase):
    """Writes one new S3 object, streamed; it appears only when `commit` succeeds.

    Up to one part the data stays in memory and `commit` sends a single PUT; beyond
    that, a multipart upload carries it, one part per buffer.  Both the PUT and the
    final CompleteMultipartUpload are conditional (``If-None-Match: *``), so of two
    writers racing for a key exactly one wins and the other gets `ArtifactExistsError`.

    :param client: a boto3 S3 client.
    :param location: the object to write.
    :param part_size: the first parts' size (the buffer); at least `MIN_PART_SIZE`.
    """

    def __init__(self, client: Any, location: S3Location, part_size: int) -> None:
        super().__init__()
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        self._client = client
        self._location = location
        self._base_part_size = part_size
        self._part_size = part_size
        # Grows to one part while the first part is written (a small object costs only
        # its own size), then is reused for every later part.
        self._buffer = bytearray()
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0

    @property
    def parts_uploaded(self) -> int:
        """How many parts have gone to S3 so far (0 while it fits in one PUT)."""
        return len(self._parts)

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        if self.closed:
            raise ValueError("write to a closed S3 object writer")
        view = memoryview(data).cast("B")
        written = view.nbytes
        while view.nbytes:
            if self._filled == self._part_size:
                # Send a full part only once more data follows: the last part may be
                # the only one, and then a single PUT is cheaper than a multipart upload.
                self._send_part()
            taken = min(self._part_size - self._filled, view.nbytes)
            end = self._filled + taken
            # Replaces [filled:end] in place, or extends the buffer while it grows.
            self._buffer[self._filled : end] = view[:taken]
            self._filled = end
            view = view[taken:]
        self.size += written
        return written

    def _send_part(self) -> None:
        """Upload the buffer's contents as the next part, and empty the buffer."""
        location = self._location
        if self._upload_id is None:
            with s3_errors(f"starting the upload of {location.uri}", location.bucket):
                answer = self._client.create_multipart_upload(
                    Bucket=location.bucket, Key=location.key
                )
            self._upload_id = str(answer["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ArtifactError(
                f"writing {location.uri}: more than {MAX_PARTS} parts, which S3 refuses; "
                "store the artifact in pieces"
            )
        if self._filled < len(self._buffer):
            # Shrinks in place: a copy of the last part would double its memory.
            del self._buffer[self._filled :]
        with s3_errors(f"uploading part {number} of {location.uri}", location.bucket):
            answer = self._client.upload_part(
                Bucket=location.bucket,
                Key=location.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=self._buffer,
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._filled = 0
        self._part_size = part_size_for(number + 1, self._base_part_size)

    def commit(self) -> None:
        """Make the object visible under its key.

        :raises ArtifactExistsError: another writer stored the key first.
        """
        location = self._location
        try:
            if self._upload_id is None:
                with s3_errors(f"writing {location.uri}", location.bucket):
                    self._conditional(
                        self._client.put_object,
                        Bucket=location.bucket,
                        Key=location.key,
                        Body=self._buffer,  # still the first part: exactly its data
                    )
            else:
                if self._filled:
                    self._send_part()
                with s3_errors(f"finishing the upload of {location.uri}", location.bucket):
                    self._conditional(
                        self._client.complete_multipart_upload,
                        Bucket=location.bucket,
                        Key=location.key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )
                self._upload_id = None
        finally:
            self._release()

    def _conditional(self, call: Any, **arguments: Any) -> None:
        """Run a write that must not replace an existing object."""
        from botocore.exceptions import ClientError

        try:
            call(IfNoneMatch="*", **arguments)
        except ClientError as error:
            if error_code(error) in _TAKEN_CODES:
                raise exists_error(self._location.uri) from None
            raise

    def abort(self) -> None:
        """Drop what was sent; nothing appears under the key.  Never raises.

        A multipart upload that cannot be aborted (the network is gone) stays invisible
        and is billed until a bucket lifecycle rule (AbortIncompleteMultipartUpload)
        removes it.
        """
        upload_id, self._upload_id = self._upload_id, None
        self._release()
        if upload_id is None:
            return
        location = self._location
        try:
            self._client.abort_multipart_upload(
                Bucket=location.bucket, Key=location.key, UploadId=upload_id
            )
        except Exception:
            pass  # the write's own error is the one to report

    def _release(self) -> None:
        self._buffer = bytearray()
        self._filled = 0
        self.close()


class ObjectReader(io.BufferedIOBase):
    """Reads one S3 object from a GetObject response, picking up dropped connections.

    A resumed read asks for the remaining bytes with ``Range`` and ``If-Match`` (the
    ETag of the first response), so it never splices two versions of an object.

    :param client: the boto3 S3 client that made ``response``.
    :param location: the object.
    :param response: the GetObject answer whose ``Body`` is read.
    """

    def __init__(self, client: Any, location: S3Location, response: dict[str, Any]) -> None:
        super().__init__()
        self._client = client
        self._location = location
        self._body: Any = response["Body"]
        self._etag = str(response.get("ETag", ""))
        self.length = int(response.get("ContentLength", 0))
        self.position = 0
        #: how many times a dropped connection was picked up again (for tests, logs).
        self.resumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if self.closed:
            raise ValueError("read from a closed S3 object reader")
        wanted = self.length - self.position
        if size is not None and size >= 0:
            wanted = min(wanted, size)
        chunks: list[bytes] = []
        got = 0
        failures = 0
        while got < wanted:
            try:
                chunk = self._body.read(wanted - got)
            except Exception as error:
                if not _is_dropped_connection(error):
                    raise
                chunk = b""
            if not chunk:
                # The body ended early or the connection broke: ask for the rest.
                failures += 1
                if failures > _RESUMES:
                    raise ArtifactError(
                        f"reading {self._location.uri}: the connection dropped {_RESUMES} "
                        f"times in a row at byte {self.position} of {self.length}; check "
                        "the network and try again"
                    )
                self._resume()
                continue
            failures = 0
            chunks.append(chunk)
            got += len(chunk)
            self.position += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(view.nbytes)
        view[: len(data)] = data
        return len(data)

    def _resume(self) -> None:
        from botocore.exceptions import ClientError

        location = self._location
        self._close_body()
        self.resumed += 1
        with s3_errors(f"reading {location.uri} from byte {self.position}", location.bucket):
            try:
                response = self._client.get_object(
                    Bucket=location.bucket,
                    Key=location.key,
                    Range=f"bytes={self.position}-",
                    IfMatch=self._etag,
                )
            except ClientError as error:
                if error_code(error) == "PreconditionFailed":
                    raise ArtifactError(
                        f"{location.uri} changed while it was being read (its ETag is no "
                        f"longer {self._etag}); artifacts are write-once, so something "
                        "outside stepframe replaced it. Read it again"
                    ) from None
                raise
        self._body = response["Body"]

    def _close_body(self) -> None:
        try:
            self._body.close()
        except Exception:
            pass  # a broken connection may fail to close; it is dropped either way

    def close(self) -> None:
        if not self.closed:
            self._close_body()
        super().close()


def _is_dropped_connection(error: BaseException) -> bool:
    """Whether a read failed because the connection broke (worth resuming)."""
    from botocore.exceptions import (
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

    dropped = (
        ResponseStreamingError,  # urllib3 said the connection broke
        IncompleteReadError,  # the body ended before its Content-Length
        ReadTimeoutError,
    )
    if isinstance(error, dropped):
        return True
    return isinstance(error, (ProtocolError, Urllib3ReadTimeout, ConnectionError))
