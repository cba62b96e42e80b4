"""`PartReader`, the reading half of `stepframe.object_store` (public there): one version
of one object read in ranges, a bounded number fetched at once by worker threads and
handed out in order."""

from __future__ import annotations

import abc
import contextlib
import io
import mmap
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from stepframe.exceptions import ArtifactError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["PartReader", "RangeBody"]


class RangeBody(Protocol):
    """An open answer to one ranged request: its bytes, read in pieces, then closed."""

    def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` once the answer has ended."""
        ...

    def close(self) -> None: ...


class _Stopped(Exception):
    """A worker's range was given up: the reader closed, or another range failed."""


class PartReader(io.BufferedIOBase, abc.ABC):
    """Reads one version of one object, streamed in ranges, handed out in order.

    The object is asked for in ranges of ``range_size`` bytes.  While the reader takes
    one range, the next ``ranges_in_flight`` are fetched by worker threads, so memory
    stays about ``(ranges_in_flight + 1) x range_size`` whatever the object's size.  Each
    range is read off its connection into pages mapped for it alone (an anonymous
    mmap), given back to the system as soon as the range has been read: buffers of that
    size from malloc, freed in other threads than the ones that filled them, stayed in
    glibc's per-thread heaps (a 1 GiB download held +81 MiB resident for 40 MiB of
    ranges).  An object of one range, or a reader with one range in flight, is read off
    its answers as the caller reads, with no workers and no buffer.

    A connection that breaks (`is_dropped_connection`) or ends before its range does is
    asked again for the rest of the range, up to `resumes_in_a_row` times in a row.
    `open_range` pins every request to the version first read (``If-Match`` on its
    ETag, say), so bytes of two versions are never spliced.

    The first range that fails stops the others, and its error is the one every read
    from then on raises: never a short read that would pass for the end.  `close` stops
    the workers and waits for them (each stops at its next piece), so no thread is left.
    A subclass implements `open_range`, the service's ranged GET.

    :param uri: the object's URI, for messages.
    :param length: the object's size in bytes.
    :param range_size: bytes per ranged request.
    :param ranges_in_flight: ranges fetched at once while one is read; 1 reads each off
        its answer in the reading thread.
    :param thread_name_prefix: the worker threads' names.
    :param first: an answer already open on the object's bytes ``[0, end)`` and that
        ``end`` (a store that learned the length from a first ranged GET), taken as the
        first range.
    """

    #: Bytes read off a connection at once, straight into the range's buffer; each
    #: worker holds one such piece besides its range.  Small on purpose: a 1 MiB piece
    #: per worker kept several MiB per thread resident.
    read_chunk = 256 * 1024
    #: A dropped connection is picked up again this many times in a row, then the read
    #: fails.
    resumes_in_a_row = 5

    def __init__(
        self,
        uri: str,
        length: int,
        *,
        range_size: int,
        ranges_in_flight: int,
        thread_name_prefix: str,
        first: tuple[RangeBody, int] | None = None,
    ) -> None:
        super().__init__()
        self.uri = uri
        #: the object's size in bytes.
        self.length = length
        #: bytes handed out so far.
        self.position = 0
        #: how many times a dropped connection was picked up again (for tests, logs).
        self.resumed = 0
        self.range_size = range_size
        self._ranges_in_flight = ranges_in_flight
        self._thread_name_prefix = thread_name_prefix
        self._first = first
        first_size = range_size if first is None or first[1] <= 0 else min(first[1], length)
        # One range, or one at a time: the reading thread fetches it; no workers.
        self._parallel = ranges_in_flight > 1 and length > first_size
        self._asked = 0  # the first byte no range has been asked for yet
        self._pending: deque[Future[_Fetched]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._current: _Fetched | _Range | None = None  # the range being handed out
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        if range_size <= 0 or ranges_in_flight < 1:
            self.close()  # the first answer too
            raise ValueError(
                f"range_size ({range_size}) and ranges_in_flight ({ranges_in_flight}) "
                "must be positive"
            )

    # ---- what a subclass implements ---------------------------------------------------

    @abc.abstractmethod
    def open_range(self, start: int, end: int) -> RangeBody:
        """An answer carrying the object's bytes ``[start, end)``, of the version first
        read only; runs in worker threads.

        :raises ArtifactError: that version is gone (replaced or deleted): one line
            saying so.
        """

    def is_dropped_connection(self, error: Exception) -> bool:
        """Whether reading an answer failed because its connection broke: the rest of the
        range is asked for again.  Any other error fails the read."""
        return isinstance(error, OSError)

    # ---- the stream -------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        wanted = self._wanted(size)
        pieces: list[bytes] = []

        def take(got: int) -> int:
            pieces.append(self._current_range().read(wanted - got))
            return len(pieces[-1])

        self._hand_out(wanted, take)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            wanted = self._wanted(target.nbytes)
            return self._hand_out(
                wanted, lambda got: self._current_range().readinto(target[got:wanted])
            )

    def readinto1(self, buffer: WriteableBuffer, /) -> int:
        return self.readinto(buffer)

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()  # workers stop at their next piece
        pending, self._pending = self._pending, deque()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()  # fetched, never read: its pages go back now
        current, self._current = self._current, None
        if current is not None:
            current.close()
        if self._first is not None:  # read or not, by a worker that is done
            _close_quietly(self._first[0])
        super().close()

    # ---- ranges -----------------------------------------------------------------------

    def _wanted(self, size: int | None) -> int:
        """How many bytes a read of ``size`` hands out."""
        if self.closed:
            raise ValueError(f"read from a closed reader of {self.uri}")
        if self._failure is not None:
            raise self._failure
        left = self.length - self.position
        return left if size is None or size < 0 else min(size, left)

    def _hand_out(self, wanted: int, take: Callable[[int], int]) -> int:
        """Hand out ``wanted`` bytes, ``take(got)`` handing out the next ones from the
        current range; whatever it raises fails the reader for good."""
        got = 0
        try:
            while got < wanted:
                got += take(got)
                self._drop_current_if_done()
        except BaseException as error:
            failure = self._fail(error)
            if failure is error:
                raise
        else:
            self.position += got
            return got
        # Another range failed first (this one was stopped): raised outside the handler,
        # so the stop is not shown as its context.
        raise failure

    def _current_range(self) -> _Fetched | _Range:
        """The range bytes are handed out from: the next one once the last is done."""
        if self._current is None:
            self._current = self._next_range()
        return self._current

    def _drop_current_if_done(self) -> None:
        if self._current is not None and self._current.done:
            current, self._current = self._current, None
            current.close()  # its pages go back before the next range is waited for

    def _next_range(self) -> _Fetched | _Range:
        if not self._parallel:
            # Read off its answer as the caller reads: no buffer at all.
            return _Range(self, *self._plan())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self._ranges_in_flight, thread_name_prefix=self._thread_name_prefix
            )
            self._schedule()
        future = self._pending.popleft()
        self._schedule()  # ranges_in_flight fetching while this one is read
        return future.result()

    def _plan(self) -> tuple[int, int, RangeBody | None]:
        """The next range to ask for: its start, its size, and an answer already open on
        it (the first range's, when one was given)."""
        start = self._asked
        body: RangeBody | None = None
        size = min(self.range_size, self.length - start)
        if start == 0 and self._first is not None:
            body, end = self._first
            if end > 0:
                size = min(end, self.length)
            else:  # nothing to take from it
                body = None
        self._asked = start + size
        return start, size, body

    def _schedule(self) -> None:
        assert self._pool is not None
        while len(self._pending) < self._ranges_in_flight and self._asked < self.length:
            self._pending.append(self._pool.submit(self._fetch, *self._plan()))

    def _fetch(self, start: int, size: int, body: RangeBody | None) -> _Fetched:
        """A worker's range, whole; the first one that fails stops the others."""
        try:
            return _Range(self, start, size, body).fetch()
        except _Stopped:
            raise
        except BaseException as error:
            self._fail(error)
            raise

    def _fail(self, error: BaseException) -> BaseException:
        """Record the reader's failure (the first one) and stop the workers; returns the
        error to raise now."""
        with self._lock:
            if self._failure is None:
                if isinstance(error, Exception) and not isinstance(error, _Stopped):
                    self._failure = error
                else:  # interrupted: the range is lost, so no later read may go on
                    self._failure = ArtifactError(
                        f"reading {self.uri} was interrupted at byte {self.position}; open it again"
                    )
            failure = self._failure
        self._stop.set()
        return failure if isinstance(error, Exception) else error

    def _count_resume(self) -> None:
        with self._lock:
            self.resumed += 1


class _Range:
    """The object's bytes ``[start, start + size)``, read off an answer (``body``, or one
    `PartReader.open_range` gives), asked for again from where a connection broke."""

    def __init__(self, reader: PartReader, start: int, size: int, body: RangeBody | None) -> None:
        self.reader = reader
        self.start = start
        self.size = size
        self.filled = 0
        self.body = body
        self.failures = 0  # in a row, at the same byte

    @property
    def done(self) -> bool:
        return self.filled == self.size

    def read(self, limit: int) -> bytes:
        """The next bytes of the range, at most ``limit`` (and at least one while it is
        not done)."""
        reader = self.reader
        while not self.done:
            if reader._stop.is_set():
                raise _Stopped
            if self.body is None:
                self.body = reader.open_range(self.start + self.filled, self.start + self.size)
            try:
                chunk = self.body.read(min(limit, self.size - self.filled))
            except Exception as error:
                if not reader.is_dropped_connection(error):
                    raise
                chunk = b""
            if chunk:
                self.filled += len(chunk)
                self.failures = 0
                return chunk
            # The connection broke, or the answer ended before the range did.
            self.failures += 1
            if self.failures > reader.resumes_in_a_row:
                raise ArtifactError(
                    f"reading {reader.uri}: the connection dropped {reader.resumes_in_a_row} "
                    f"times in a row at byte {self.start + self.filled} of {reader.length}; "
                    "check the network and try again"
                )
            self.close()
            reader._count_resume()
        return b""

    def readinto(self, target: memoryview) -> int:
        chunk = self.read(target.nbytes)
        target[: len(chunk)] = chunk
        return len(chunk)

    def fetch(self) -> _Fetched:
        """The whole range, in pages mapped for it."""
        buffer = mmap.mmap(-1, self.size)
        try:
            while not self.done:
                at = self.filled
                chunk = self.read(self.reader.read_chunk)
                buffer[at : at + len(chunk)] = chunk
        except BaseException:
            buffer.close()
            raise
        finally:
            self.close()
        return _Fetched(buffer)

    def close(self) -> None:
        body, self.body = self.body, None
        if body is not None:
            _close_quietly(body)


class _Fetched:
    """A range read whole by a worker, handed out from its pages, which go back to the
    system when it is closed."""

    def __init__(self, buffer: mmap.mmap) -> None:
        self.buffer = buffer
        self.at = 0

    @property
    def done(self) -> bool:
        return self.at == len(self.buffer)

    def read(self, limit: int) -> bytes:
        piece = self.buffer[self.at : self.at + limit]  # a copy
        self.at += len(piece)
        return piece

    def readinto(self, target: memoryview) -> int:
        count = min(target.nbytes, len(self.buffer) - self.at)
        with memoryview(self.buffer) as source:
            target[:count] = source[self.at : self.at + count]
        self.at += count
        return count

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view still open: freed with it
            self.buffer.close()


def _close_quietly(body: RangeBody) -> None:
    try:
        body.close()
    except Exception:
        pass  # a broken connection may fail to close; it is dropped either way
