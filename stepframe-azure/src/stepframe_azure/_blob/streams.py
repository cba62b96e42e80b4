"""Streaming one blob up (staged blocks) or down (ranges pinned to its ETag), in bounded
memory.

Up: the writer fills one block while up to ``blocks_in_flight`` earlier blocks go up
(Put Block) in worker threads, so a 1 GiB artifact costs about ``(blocks_in_flight + 1) x
block_size`` of memory.  Nothing is visible until Put Block List commits the blocks, with
``If-None-Match: *``: of two writers of one name exactly one wins.  Block ids carry a
token of their own upload, so two writers staging blocks under one name at once never
commit each other's data.  A blob that fits in one block goes up in one Put Blob, also
conditional.  An abandoned upload leaves uncommitted blocks only, which the service
discards after a week; there is no call to drop them sooner.

Down: ranged Get Blob requests, ``ranges_in_flight`` at a time, handed out in order, each
with ``If-Match`` on the ETag read when the blob was opened.  A dropped connection asks
again from the byte where it stopped; a blob replaced meanwhile answers 412, never
another version's bytes.
"""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

from stepframe.exceptions import ArtifactError
from stepframe.object_store import PartReader, PartWriter, exists_error
from stepframe_azure._blob.api import BlobApi, error_code

if TYPE_CHECKING:
    from stepframe_azure._blob.uri import BlobLocation

__all__ = [
    "DEFAULT_BLOCKS_IN_FLIGHT",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_RANGE_SIZE",
    "BlobReader",
    "BlockWriter",
    "block_size_for",
]

MIB = 1 << 20
#: Bytes per staged block (and per downloaded range).
DEFAULT_BLOCK_SIZE = 8 * MIB
#: Bytes per ranged download request.
DEFAULT_RANGE_SIZE = 4 * MIB
#: Blocks uploading (ranges downloading) at once besides the one being filled (read).
DEFAULT_BLOCKS_IN_FLIGHT = 4
# A blob has at most 50,000 committed blocks of at most 4000 MiB each: every this many
# blocks the block size doubles, so any blob fits while the usual ones keep small blocks.
_BLOCKS_PER_SIZE = 10_000
_MAX_BLOCKS = 50_000
_MAX_BLOCK_SIZE = 4000 * MIB
# Metadata naming the upload that created a blob: an ambiguous commit (its answer lost)
# is ours if the blob carries our token.
_UPLOAD_METADATA = "x-ms-meta-stepframeupload"
# "The blob exists" answers to a conditional create.
_TAKEN = frozenset({"BlobAlreadyExists", "ConditionNotMet"})


def block_size_for(number: int, base: int) -> int:
    """The size of block ``number`` (1-based) when blocks start at ``base`` bytes."""
    return min(base << ((number - 1) // _BLOCKS_PER_SIZE), _MAX_BLOCK_SIZE)


class BlockWriter(PartWriter):
    """Writes one new blob, streamed; it appears only when `commit` succeeds.

    `stepframe.object_store.PartWriter` hands full blocks to worker threads (Put Block);
    a blob of one block goes up in one Put Blob.

    :param api: the account's Blob API (its session is shared by the worker threads).
    :param location: the blob.
    :param block_size: the first blocks' size (the buffer).
    :param blocks_in_flight: blocks uploading at once.
    """

    def __init__(
        self,
        api: BlobApi,
        location: BlobLocation,
        block_size: int = DEFAULT_BLOCK_SIZE,
        blocks_in_flight: int = DEFAULT_BLOCKS_IN_FLIGHT,
    ) -> None:
        super().__init__(
            location.uri,
            part_size=block_size,
            parts_in_flight=blocks_in_flight,
            max_parts=_MAX_BLOCKS,
            thread_name_prefix="stepframe-blob-upload",
        )
        self._api = api
        self._location = location
        self._url = api.blob_url(location)
        self._token = uuid.uuid4().hex[:16]

    @property
    def blocks_staged(self) -> int:
        """How many blocks were handed to Put Block (0 while the blob fits in one)."""
        return self.parts_sent

    def part_size_for(self, number: int) -> int:
        return block_size_for(number, self.base_part_size)

    def _block_id(self, number: int) -> str:
        # Every id of one blob has the same length; the token keeps other writers' apart.
        return base64.b64encode(f"{self._token}-{number:06d}".encode()).decode()

    def send_part(self, number: int, part: bytearray) -> None:
        from urllib.parse import quote

        location = self._location
        doing = f"uploading block {number} of {location.uri}"
        block_id = quote(self._block_id(number), safe="")
        url = f"{self._url}?comp=block&blockid={block_id}"
        answer = self._api.request("PUT", url, location, doing, data=memoryview(part))
        if answer.status_code != 201:
            self._api.fail(answer, location, doing)

    def commit_whole(self, data: bytearray) -> None:
        self._create(data, {"x-ms-blob-type": "BlockBlob"}, url=self._url)

    def commit_parts(self, count: int) -> None:
        body = "".join(
            f"<Latest>{self._block_id(number)}</Latest>" for number in range(1, count + 1)
        )
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'
        self._create(xml.encode(), {}, url=f"{self._url}?comp=blocklist")

    def _create(self, body: bytes | bytearray, headers: dict[str, str], *, url: str) -> None:
        """The conditional request that makes the blob (Put Blob or Put Block List).

        Retried like any call; when a try's connection dropped, a later "exists" answer
        may be about this very upload: it is ours if the blob carries this upload's token.
        """
        location = self._location
        doing = f"writing {location.uri}"
        headers = {**headers, "If-None-Match": "*", _UPLOAD_METADATA: self._token}
        dropped: list[BaseException] = []
        answer = self._api.request(
            "PUT", url, location, doing, data=memoryview(body), headers=headers, dropped=dropped
        )
        if answer.status_code == 201:
            return
        if answer.status_code in (409, 412) and error_code(answer) in _TAKEN:
            if dropped and self._stored_token() == self._token:
                return  # the lost answer was our success
            raise exists_error(location.uri)
        self._api.fail(answer, location, doing)

    def _stored_token(self) -> str | None:
        answer = self._api.request("HEAD", self._url, self._location, "checking the write")
        return answer.headers.get(_UPLOAD_METADATA) if answer.status_code == 200 else None


class BlobReader(PartReader):
    """Reads one version of one blob (its ETag), in ranges, resuming dropped connections.

    `stepframe.object_store.PartReader` fetches ``ranges_in_flight`` ranges at once and
    hands them out in order; each is a ranged Get Blob with ``If-Match`` on the ETag.

    :param api: the account's Blob API.
    :param location: the blob.
    :param etag: the version to read; any other answers 412.
    :param size: the blob's length.
    :param range_size: bytes per ranged request.
    :param ranges_in_flight: ranged requests under way at once.
    """

    def __init__(
        self,
        api: BlobApi,
        location: BlobLocation,
        etag: str,
        size: int,
        *,
        range_size: int = DEFAULT_RANGE_SIZE,
        ranges_in_flight: int = DEFAULT_BLOCKS_IN_FLIGHT,
    ) -> None:
        super().__init__(
            location.uri,
            size,
            range_size=range_size,
            ranges_in_flight=max(1, ranges_in_flight),
            thread_name_prefix="stepframe-blob-read",
        )
        self._api = api
        self._location = location
        self._url = api.blob_url(location)
        self.etag = etag

    def open_range(self, start: int, end: int) -> _Answer:
        location = self._location
        doing = f"reading {location.uri} from byte {start}"
        answer = self._api.request(
            "GET",
            self._url,
            location,
            doing,
            headers={
                "x-ms-range": f"bytes={start}-{end - 1}",
                "If-Match": self.etag,
                "Accept-Encoding": "identity",
            },
            stream=True,
        )
        try:
            self._check(answer, doing)
        except BaseException:
            answer.close()
            raise
        return _Answer(answer)

    def is_dropped_connection(self, error: Exception) -> bool:
        import urllib3.exceptions

        # requests' errors are OSErrors.
        return isinstance(error, (urllib3.exceptions.HTTPError, OSError))

    def _check(self, answer: Any, doing: str) -> None:
        if answer.status_code in (200, 206):
            return
        if answer.status_code in (404, 412) and error_code(answer) in (
            "ConditionNotMet",
            "BlobNotFound",
        ):
            raise ArtifactError(
                f"{self._location.uri} changed while it was being read (its ETag is no longer "
                f"{self.etag}); artifacts are write-once, so something outside stepframe "
                "replaced or deleted it. Read it again"
            )
        self._api.fail(answer, self._location, doing)


class _Answer:
    """A streamed Get Blob answer's bytes as they came (no decoding), for `PartReader`."""

    def __init__(self, answer: Any) -> None:
        self._answer = answer

    def read(self, size: int, /) -> bytes:
        return bytes(self._answer.raw.read(size, decode_content=False))

    def close(self) -> None:
        self._answer.close()
