"""`PartWriter`, the writing half of `stepframe.object_store` (public there): one new
object streamed in parts, a bounded number sending at once from worker threads."""

from __future__ import annotations

import abc
import contextlib
import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO, cast

from stepframe.exceptions import ArtifactError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["PartWriter"]


class PartWriter(io.BufferedIOBase, abc.ABC):
    """Writes one new object, streamed in parts; it appears only when `commit` succeeds.

    What is written fills a buffer of one part.  An object that fits in one part is sent
    whole by `commit` (`commit_whole`): a single request is cheaper.  Beyond that, each
    full part goes to a worker thread (`send_part`), at most ``parts_in_flight`` at a
    time (a write waits for a slot) while the next part fills, so memory stays about
    ``(parts_in_flight + 1) x part_size``.  The first part that fails stops the writer at
    its next write or at `commit`.  A subclass implements the service's calls.

    :param uri: the object's URI, for messages.
    :param part_size: the first parts' size (the buffer).
    :param parts_in_flight: parts sending at once.
    :param max_parts: the most parts the service takes for one object.
    :param thread_name_prefix: the worker threads' names.
    """

    def __init__(
        self,
        uri: str,
        *,
        part_size: int,
        parts_in_flight: int,
        max_parts: int,
        thread_name_prefix: str,
    ) -> None:
        super().__init__()
        if part_size <= 0 or parts_in_flight < 1:
            raise ValueError(
                f"part_size ({part_size}) and parts_in_flight ({parts_in_flight}) must be positive"
            )
        self.uri = uri
        self.base_part_size = part_size
        self.max_parts = max_parts
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        self._thread_name_prefix = thread_name_prefix
        # Grows to one part while the first part is written (a small object costs only
        # its own size); each full part is handed to a worker and a new buffer begins.
        self._buffer = bytearray()
        self._filled = 0
        #: how many parts were handed to workers (0 while the object fits in one).
        self.parts_sent = 0
        self._slots = threading.BoundedSemaphore(parts_in_flight)
        self._in_flight: list[Future[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._failure: BaseException | None = None
        #: bytes written so far.
        self.size = 0

    # ---- what a subclass implements ---------------------------------------------------

    def part_size_for(self, number: int) -> int:
        """The size of part ``number`` (1-based); every part is `base_part_size` unless
        a subclass grows them (so that large objects fit in `max_parts`)."""
        return self.base_part_size

    def start_parts(self) -> None:
        """Called once, in the writing thread, before the first part is sent (to start
        a multipart upload, say)."""

    @abc.abstractmethod
    def send_part(self, number: int, part: bytearray) -> None:
        """Send part ``number`` (1-based); runs in a worker thread."""

    @abc.abstractmethod
    def commit_whole(self, data: bytearray) -> None:
        """Create the object from ``data`` in one request (it fits in one part)."""

    @abc.abstractmethod
    def commit_parts(self, count: int) -> None:
        """Create the object from parts 1 to ``count``, all sent."""

    # ---- the stream -------------------------------------------------------------------

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        if self.closed:
            raise ValueError(f"write to a closed writer of {self.uri}")
        self._raise_failure()
        view = memoryview(data).cast("B")
        written = view.nbytes
        while view.nbytes:
            if self._filled == self._part_size:
                # Send a full part only once more data follows: the last part may be
                # the only one, and then one request is cheaper than parts.
                self._send_buffer()
            taken = min(self._part_size - self._filled, view.nbytes)
            end = self._filled + taken
            # Replaces [filled:end] in place, or extends the buffer while it grows.
            self._buffer[self._filled : end] = view[:taken]
            self._filled = end
            view = view[taken:]
        self.size += written
        return written

    def commit(self) -> None:
        """Make the object visible under its name; raises what the service's refusal
        is (`ArtifactExistsError` when another writer stored it first)."""
        try:
            if not self.parts_sent:
                self.commit_whole(self._buffer)  # still the first part: exactly its data
            else:
                if self._filled:
                    self._send_buffer()
                for future in self._in_flight:
                    future.result()
                self._in_flight = []
                self._raise_failure()
                self.commit_parts(self.parts_sent)
        finally:
            self._release()

    @contextlib.contextmanager
    def committing(self) -> Iterator[BinaryIO]:
        """This writer as `ArtifactStore.open_write`'s stream: committed when the
        ``with`` block exits cleanly, aborted (nothing stored) when it raises."""
        try:
            yield cast(BinaryIO, self)
            self.commit()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop; nothing appears under the name.  Never raises."""
        if self._failure is None:
            self._failure = ArtifactError(f"the write of {self.uri} was aborted")
        self._release()

    # ---- parts ------------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _send_buffer(self) -> None:
        """Hand the buffer's contents to a worker as the next part; start a new buffer."""
        number = self.parts_sent + 1
        if number > self.max_parts:
            raise ArtifactError(
                f"writing {self.uri}: more than {self.max_parts} parts, which the service "
                "refuses; store the artifact in pieces"
            )
        if self._pool is None:
            self.start_parts()
            self._pool = ThreadPoolExecutor(
                self._parts_in_flight, thread_name_prefix=self._thread_name_prefix
            )
        if self._filled < len(self._buffer):
            del self._buffer[self._filled :]  # in place: a copy would double the memory
        self._slots.acquire()  # at most parts_in_flight parts wait for the service
        if self._failure is not None:
            self._slots.release()
            raise self._failure
        part, self._buffer, self._filled = self._buffer, bytearray(), 0
        self.parts_sent = number
        self._in_flight = [f for f in self._in_flight if not f.done()]
        self._in_flight.append(self._pool.submit(self._run_part, number, part))
        self._part_size = self.part_size_for(number + 1)

    def _run_part(self, number: int, part: bytearray) -> None:
        try:
            if self._failure is not None:
                return  # the upload is lost already; send no more
            self.send_part(number, part)
        except BaseException as error:
            if self._failure is None:
                self._failure = error
        finally:
            del part
            self._slots.release()

    def _release(self) -> None:
        self._buffer = bytearray()
        self._filled = 0
        pool, self._pool = self._pool, None
        if pool is not None:
            # Parts still queued skip their sending (see _run_part); wait for those sending.
            pool.shutdown(wait=True, cancel_futures=True)
        self.close()
