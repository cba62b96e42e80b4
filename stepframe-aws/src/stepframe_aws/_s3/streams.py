"""Streaming one S3 object up (multipart) or down (resumable), in bounded memory.

The writer fills one part while up to ``parts_in_flight`` earlier parts upload in worker
threads: a 1 GiB artifact costs ``(parts_in_flight + 1) x part_size`` of memory, not
1 GiB, and the network is kept busy as boto3's s3transfer keeps it.  The first failed
part stops the writer at its next write.  The reader takes the first part's range from
the store's first GetObject and the rest as ranged GETs, ``parts_in_flight`` at a time,
handed out in order (`stepframe.object_store.PartReader`).  A dropped connection
continues with a ranged GET pinned to the object's ETag, so two versions are never
spliced.
"""

from __future__ import annotations

from typing import Any

from stepframe.exceptions import ArtifactError
from stepframe.object_store import PartReader, PartWriter, exists_error
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
#: Parts uploaded (or ranges downloaded) at once, besides the one being filled (read).
#: s3transfer's default is 10 threads; 4 keeps a link busy at a third of the memory.
DEFAULT_PARTS_IN_FLIGHT = 4
# Every this many parts the part size doubles, so an object of any size S3 accepts
# (5 TiB) fits in 10,000 parts while the usual ones (< 8 GiB at 8 MiB) keep small parts.
_PARTS_PER_SIZE = 1_000
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


class ObjectReader(PartReader):
    """Reads one S3 object, starting from a GetObject response, in parallel ranges.

    A large object's ranges come as ranged GETs, ``ranges_in_flight`` at a time
    (`stepframe.object_store.PartReader`), the first from ``response``.  Every request
    after it carries ``If-Match`` (the ETag of the first response), so a resumed or
    later range never splices two versions of an object.

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
        # A ranged first GET (see S3ArtifactStore.open_read) says the whole length in
        # its Content-Range ("bytes 0-8388607/1073741824"); its body ends at the range.
        length = int(response.get("ContentLength", 0))
        body_end = length
        content_range = str(response.get("ContentRange") or "")
        if content_range.startswith("bytes ") and "/" in content_range:
            span, _, total = content_range[len("bytes ") :].partition("/")
            if total.isdigit():
                length = int(total)
                body_end = int(span.partition("-")[2] or -1) + 1
        super().__init__(
            location.uri,
            length,
            range_size=range_size,
            ranges_in_flight=ranges_in_flight,
            thread_name_prefix="stepframe-s3-read",
            first=(response["Body"], body_end),
        )
        self._client = client
        self._location = location
        self._etag = str(response.get("ETag", ""))

    def open_range(self, start: int, end: int) -> Any:
        from botocore.exceptions import ClientError

        location = self._location
        with s3_errors(f"reading {location.uri} from byte {start}", location.bucket):
            try:
                return self._client.get_object(
                    Bucket=location.bucket,
                    Key=location.key,
                    Range=f"bytes={start}-{end - 1}",
                    IfMatch=self._etag,
                )["Body"]
            except ClientError as error:
                if error_code(error) == "PreconditionFailed":
                    raise ArtifactError(
                        f"{location.uri} changed while it was being read (its ETag is no "
                        f"longer {self._etag}); artifacts are write-once, so something "
                        "outside stepframe replaced it. Read it again"
                    ) from None
                raise

    def is_dropped_connection(self, error: Exception) -> bool:
        return _is_dropped_connection(error)


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
