"""Streaming one S3 object up (multipart) or down (resumable), in bounded memory.

The writer fills one part while up to ``parts_in_flight`` earlier parts upload in worker
threads: a 1 GiB artifact costs ``(parts_in_flight + 1) x part_size`` of memory, not
1 GiB, and the network is kept busy as boto3's s3transfer keeps it.  The first failed
part stops the writer at its next write.  The reader streams a small object's response
body; a large one comes as ranged GETs, ``parts_in_flight`` at a time, handed out in
order.  Either way a dropped connection continues with a ranged GET pinned to the
object's ETag, so two versions are never spliced.
"""

from __future__ import annotations

import io
import mmap
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from stepframe.exceptions import ArtifactError
from stepframe.object_store import PartWriter, exists_error
from stepframe_aws._errors import error_code
from stepframe_aws._s3.errors import s3_errors
from stepframe_aws._s3.uri import S3Location

__all__ = [
    "DEFAULT_PARTS_IN_FLIGHT",
    "DEFAULT_PART_SIZE",
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "MultipartWriter",
    "ObjectReader",
    "part_size_for",
]

MIB = 1 << 20
#: S3's smallest part (all parts but the last), and the most parts one upload may have.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000
#: boto3's own default part size: few requests, little memory.
DEFAULT_PART_SIZE = 8 * MIB
# Bytes read off a download connection at once, straight into the range's buffer.
# Small on purpose: each read is one allocation made by a worker thread, and glibc keeps
# such pieces in that thread's own heap; a 1 MiB piece per worker kept several MiB per
# thread resident.
_READ_CHUNK = 256 * 1024
#: Parts uploaded (or ranges downloaded) at once, besides the one being filled (read).
#: s3transfer's default is 10 threads; 4 keeps a link busy at a third of the memory.
DEFAULT_PARTS_IN_FLIGHT = 4
# Every this many parts the part size doubles, so an object of any size S3 accepts
# (5 TiB) fits in 10,000 parts while the usual ones (< 8 GiB at 8 MiB) keep small parts.
_PARTS_PER_SIZE = 1_000
# A dropped download connection is picked up again this many times in a row.
_RESUMES = 5
# Each part carries a CRC32 that S3 checks and keeps (a composite checksum of the
# object), as boto3's s3transfer asks for.  Without one, S3 (and moto) make a
# full-object checksum at completion instead; moto does that by copying the whole object
# once more, which made a 1 GiB upload run at a third of boto3's speed.
CHECKSUM_ALGORITHM = "CRC32"
_PART_CHECKSUM = f"Checksum{CHECKSUM_ALGORITHM}"
# Codes meaning "a conditional write found the key taken" (412), or "another conditional
# write of that key is in progress" (409): both mean another writer has the name.
_TAKEN_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def part_size_for(part_number: int, base: int) -> int:
    """The size of part ``part_number`` (1-based) when parts start at ``base`` bytes."""
    return base << ((part_number - 1) // _PARTS_PER_SIZE)


class MultipartWriter(PartWriter):
    """Writes one new S3 object, streamed; it appears only when `commit` succeeds.

    Up to one part the data stays in memory and `commit` sends a single PUT; beyond
    that, a multipart upload carries it (`stepframe.object_store.PartWriter` hands full
    parts to worker threads, at most ``parts_in_flight`` at a time).  Both the PUT and
    the final CompleteMultipartUpload are conditional (``If-None-Match: *``), so of two
    writers racing for a key exactly one wins and the other gets `ArtifactExistsError`.

    :param client: a boto3 S3 client (thread-safe).
    :param location: the object to write.
    :param part_size: the first parts' size (the buffer); at least `MIN_PART_SIZE`.
    :param parts_in_flight: parts uploading at once; memory is about
        ``(parts_in_flight + 1) x part_size``.
    """

    def __init__(
        self,
        client: Any,
        location: S3Location,
        part_size: int,
        parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        super().__init__(
            location.uri,
            part_size=part_size,
            parts_in_flight=parts_in_flight,
            max_parts=MAX_PARTS,
            thread_name_prefix="stepframe-s3-upload",
        )
        self._client = client
        self._location = location
        self._upload_id: str | None = None
        # part number -> what CompleteMultipartUpload lists of it (ETag, CRC32)
        self._parts: dict[int, dict[str, Any]] = {}

    @property
    def parts_uploaded(self) -> int:
        """How many parts have gone to S3 so far (0 while it fits in one PUT)."""
        return len(self._parts)

    def part_size_for(self, number: int) -> int:
        return part_size_for(number, self.base_part_size)

    def start_parts(self) -> None:
        location = self._location
        with s3_errors(f"starting the upload of {location.uri}", location.bucket):
            answer = self._client.create_multipart_upload(
                Bucket=location.bucket,
                Key=location.key,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        self._upload_id = str(answer["UploadId"])

    def send_part(self, number: int, part: bytearray) -> None:
        location = self._location
        with s3_errors(f"uploading part {number} of {location.uri}", location.bucket):
            answer = self._client.upload_part(
                Bucket=location.bucket,
                Key=location.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
            )
        listed: dict[str, Any] = {"PartNumber": number, "ETag": str(answer["ETag"])}
        if _PART_CHECKSUM in answer:  # S3 needs each part's checksum back
            listed[_PART_CHECKSUM] = str(answer[_PART_CHECKSUM])
        self._parts[number] = listed

    def commit_whole(self, data: bytearray) -> None:
        location = self._location
        with s3_errors(f"writing {location.uri}", location.bucket):
            self._conditional(
                self._client.put_object, Bucket=location.bucket, Key=location.key, Body=data
            )

    def commit_parts(self, count: int) -> None:
        location = self._location
        parts = [self._parts[number] for number in range(1, count + 1)]
        with s3_errors(f"finishing the upload of {location.uri}", location.bucket):
            self._conditional(
                self._client.complete_multipart_upload,
                Bucket=location.bucket,
                Key=location.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        self._upload_id = None

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
        super().abort()
        if upload_id is None:
            return
        location = self._location
        try:
            self._client.abort_multipart_upload(
                Bucket=location.bucket, Key=location.key, UploadId=upload_id
            )
        except Exception:
            pass  # the write's own error is the one to report


class ObjectReader(io.BufferedIOBase):
    """Reads one S3 object from a GetObject response, picking up dropped connections.

    A resumed read asks for the remaining bytes with ``Range`` and ``If-Match`` (the
    ETag of the first response), so it never splices two versions of an object.

    :param client: the boto3 S3 client that made ``response``.
    :param location: the object.
    :param response: the GetObject answer whose ``Body`` is read.
    """

    def __init__(
        self,
        client: Any,
        location: S3Location,
        response: dict[str, Any],
        *,
        range_size: int = DEFAULT_PART_SIZE,
        ranges_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
    ) -> None:
        super().__init__()
        self._client = client
        self._location = location
        self._body: Any = response["Body"]
        self._etag = str(response.get("ETag", ""))
        # A ranged first GET (see S3ArtifactStore.open_read) says the whole length in
        # its Content-Range ("bytes 0-8388607/1073741824"); its body ends at the range.
        self.length = int(response.get("ContentLength", 0))
        self._body_end = self.length
        content_range = str(response.get("ContentRange") or "")
        if content_range.startswith("bytes ") and "/" in content_range:
            span, _, total = content_range[len("bytes ") :].partition("/")
            if total.isdigit():
                self.length = int(total)
                self._body_end = int(span.partition("-")[2] or -1) + 1
        self.position = 0
        #: how many times a dropped connection was picked up again (for tests, logs).
        self.resumed = 0
        self._ranges: _ParallelRanges | None = None
        if ranges_in_flight > 1 and self.length >= 2 * range_size:
            # Large: the rest comes as ranged GETs in parallel, the first range from the
            # response already open.
            self._ranges = _ParallelRanges(self, range_size, ranges_in_flight)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if self.closed:
            raise ValueError("read from a closed S3 object reader")
        if self._ranges is not None:
            data = self._ranges.read(self.length - self.position if size is None else size)
            self.position += len(data)
            return data
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
            if not chunk and self.position == self._body_end:
                self._resume(continuing=True)  # the first, ranged answer is read
                continue
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

    def _resume(self, *, continuing: bool = False) -> None:
        """Ask for the bytes from ``position`` on: after a dropped connection, or
        (``continuing``) once the first, ranged answer has been read."""
        from botocore.exceptions import ClientError

        location = self._location
        self._close_body()
        if not continuing:
            self.resumed += 1
        self._body_end = self.length
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
            if self._ranges is not None:
                self._ranges.close()
            self._close_body()
        super().close()

    def _fetch(self, start: int, size: int, body: Any = None) -> mmap.mmap:
        """Bytes ``[start, start + size)`` of the object, by ranged GETs pinned to its
        ETag, picking up dropped connections (a worker thread of `_ParallelRanges`).

        :param body: an open body positioned at ``start`` to read from first.
        """
        from botocore.exceptions import ClientError

        location = self._location
        # Filled in place, in pages of its own that go back to the system when the last
        # view of it is dropped.  A bytearray of a range's size came from malloc: once
        # one was freed, glibc raised its mmap threshold past a range's size, later ranges
        # lived in the workers' per-thread heaps, and those kept their pages (a 1 GiB
        # download peaked at +81 MiB of RSS for 40 MiB of ranges).
        data = mmap.mmap(-1, size)
        filled = 0
        failures = 0
        while filled < size:
            if body is None:
                offset = start + filled
                with s3_errors(f"reading {location.uri} from byte {offset}", location.bucket):
                    try:
                        body = self._client.get_object(
                            Bucket=location.bucket,
                            Key=location.key,
                            Range=f"bytes={offset}-{start + size - 1}",
                            IfMatch=self._etag,
                        )["Body"]
                    except ClientError as error:
                        if error_code(error) == "PreconditionFailed":
                            raise ArtifactError(
                                f"{location.uri} changed while it was being read (its ETag "
                                f"is no longer {self._etag}); artifacts are write-once, so "
                                "something outside stepframe replaced it. Read it again"
                            ) from None
                        raise
            try:
                chunk = body.read(min(size - filled, _READ_CHUNK))
            except Exception as error:
                if not _is_dropped_connection(error):
                    raise
                chunk = b""
            if chunk:
                data[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
                failures = 0
                continue
            failures += 1
            if failures > _RESUMES:
                raise ArtifactError(
                    f"reading {location.uri}: the connection dropped {_RESUMES} times in a "
                    f"row at byte {start + filled} of {self.length}; check the network "
                    "and try again"
                )
            try:
                body.close()
            except Exception:
                pass  # a broken connection may fail to close; it is dropped either way
            body = None
            self.resumed += 1
        if body is not None and body is self._body:
            self._close_body()  # the first response: the rest comes by ranges
        return data


class _ParallelRanges:
    """A large object's bytes as ranges fetched ``in_flight`` at a time, in order."""

    def __init__(self, reader: ObjectReader, range_size: int, in_flight: int) -> None:
        self._reader = reader
        self._range_size = range_size
        self._in_flight = in_flight
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="stepframe-s3-read")
        self._pending: deque[Future[mmap.mmap]] = deque()
        self._next = 0  # the first byte not yet asked for
        self._current = memoryview(b"")
        self._schedule()

    def _schedule(self) -> None:
        reader = self._reader
        while len(self._pending) < self._in_flight and self._next < reader.length:
            size = min(self._range_size, reader.length - self._next)
            body = None
            if self._next == 0:  # the first range is the open answer's
                body, size = reader._body, min(reader._body_end, reader.length)
            self._pending.append(self._pool.submit(reader._fetch, self._next, size, body))
            self._next += size

    def read(self, size: int) -> bytes:
        wanted = size if size >= 0 else self._reader.length
        pieces: list[bytes] = []
        got = 0
        while got < wanted:
            if not self._current:
                if not self._pending:
                    break  # the end of the object
                self._current = memoryview(self._pending.popleft().result())
                self._schedule()
            taken = self._current[: wanted - got]
            pieces.append(bytes(taken))
            got += len(taken)
            self._current = self._current[len(taken) :]
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._current = memoryview(b"")
        self._pool.shutdown(wait=False, cancel_futures=True)


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
