"""`stepframe.object_store.PartReader` against an object kept in a local file.

The object service here is the file system: a ranged GET opens the file and reads
``[start, end)``; the version an answer must be of is the file's inode and mtime, so a
file replaced (``os.replace``) mid-read answers "changed" as a 412 would.  Connections
are cut by the test at chosen bytes of the object (an error while reading, or an answer
that ends early).  The S3 and Blob stores' own tests run the same reader against moto and
Azurite through a cutting TCP proxy.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from stepframe.exceptions import ArtifactError
from stepframe.object_store import PartReader

RANGE = 64 * 1024
PREFIX = "test-part-read"


class FileService:
    """Ranged reads of one file, with connections cut where the test says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        stat = path.stat()
        self.version = (stat.st_ino, stat.st_mtime_ns)
        self.size = stat.st_size
        self.lock = threading.Lock()
        #: (start, end) of every ranged GET, in the order asked.
        self.asked: list[tuple[int, int]] = []
        #: object byte -> how the connection carrying it breaks ("reset": an error while
        #: reading, "short": the answer ends), once per entry.
        self.cuts: list[tuple[int, str]] = []
        #: start of a range -> what opening it raises instead.
        self.refusals: dict[int, BaseException] = {}
        #: runs in open_range before it answers (a barrier, say).
        self.on_open: list[threading.Barrier] = []

    def open(self, start: int, end: int) -> Body:
        with self.lock:
            self.asked.append((start, end))
            refusal = self.refusals.get(start)
            barrier = self.on_open.pop(0) if self.on_open else None
        if barrier is not None:
            barrier.wait()
        if refusal is not None:
            raise refusal
        handle = self.path.open("rb")
        stat = os.fstat(handle.fileno())
        if (stat.st_ino, stat.st_mtime_ns) != self.version:
            handle.close()
            raise ArtifactError(f"{self.path} changed while it was being read")
        handle.seek(start)
        return Body(self, handle, start, end)

    def next_cut(self, at: int, count: int) -> tuple[int, str] | None:
        """The first cut in ``[at, at + count)``; taken off the list when it is at
        ``at`` (it happens now)."""
        with self.lock:
            inside = [cut for cut in self.cuts if at <= cut[0] < at + count]
            if not inside:
                return None
            cut = min(inside)
            if cut[0] == at:
                self.cuts.remove(cut)
            return cut


class Body:
    """One answer: the file's bytes ``[start, end)``, cut where the service says."""

    def __init__(self, service: FileService, handle: BinaryIO, start: int, end: int) -> None:
        self.service = service
        self.handle = handle
        self.at = start
        self.end = end
        self.closed = False

    def read(self, size: int, /) -> bytes:
        count = min(size, self.end - self.at)
        cut = self.service.next_cut(self.at, count)
        if cut is not None:
            byte, kind = cut
            if byte == self.at:
                if kind == "reset":
                    raise ConnectionResetError("connection reset by peer")
                return b""  # the answer ended before its range did
            count = byte - self.at  # up to the cut; it comes on the next read
        data = self.handle.read(count)
        self.at += len(data)
        return data

    def close(self) -> None:
        self.closed = True
        self.handle.close()


class FileReader(PartReader):
    def __init__(
        self,
        service: FileService,
        *,
        range_size: int = RANGE,
        ranges_in_flight: int = 4,
        first: tuple[Body, int] | None = None,
    ) -> None:
        super().__init__(
            f"file://{service.path}",
            service.size,
            range_size=range_size,
            ranges_in_flight=ranges_in_flight,
            thread_name_prefix=PREFIX,
            first=first,
        )
        self.service = service

    def open_range(self, start: int, end: int) -> Body:
        return self.service.open(start, end)


def _object(tmp_path: Path, size: int, seed: int = 1) -> tuple[Path, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / "object.bin"
    path.write_bytes(data)
    return path, data


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PREFIX)]


# ---- in order, whatever the sizes --------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, RANGE - 1, RANGE, RANGE + 1, 5 * RANGE + 3])
@pytest.mark.parametrize("in_flight", [1, 3])
@pytest.mark.parametrize("way", ["read", "readinto"])
def test_every_byte_comes_out_in_order(tmp_path: Path, size: int, in_flight: int, way: str) -> None:
    path, data = _object(tmp_path, size)
    service = FileService(path)
    with FileReader(service, ranges_in_flight=in_flight) as reader:
        pieces = []
        while True:
            if way == "read":
                piece = reader.read(9_999)  # pieces never line up with the ranges
            else:
                buffer = bytearray(9_999)
                piece = bytes(buffer[: reader.readinto(buffer)])
            if not piece:
                break
            pieces.append(piece)
        assert reader.read() == b""
        assert reader.position == size
    assert b"".join(pieces) == data
    # Each range asked for once, in order, and nothing past the end.
    assert sorted(service.asked) == [
        (start, min(start + RANGE, size)) for start in range(0, size, RANGE)
    ]
    assert not _workers(), "a worker thread outlived the reader"


def test_read_of_everything_at_once(tmp_path: Path) -> None:
    path, data = _object(tmp_path, 7 * RANGE + 11)
    with FileReader(FileService(path)) as reader:
        assert reader.read(5) == data[:5]
        assert reader.read() == data[5:]
        assert reader.read(1) == b""


def test_ranges_are_fetched_side_by_side(tmp_path: Path) -> None:
    """The first three ranges must all be asked for at once to pass the barrier: a
    reader fetching one after the other would break it (after 30 s)."""
    path, data = _object(tmp_path, 10 * RANGE)
    service = FileService(path)
    together = threading.Barrier(3, timeout=30)
    service.on_open = [together] * 3
    with FileReader(service, ranges_in_flight=3) as reader:
        assert reader.read() == data
    assert not together.broken


def test_no_more_ranges_are_asked_for_than_are_in_flight(tmp_path: Path) -> None:
    """Memory stays bounded: while the first range is read, the next ``in_flight`` are
    all that has been asked for, and closing asks for nothing more."""
    path, data = _object(tmp_path, 20 * RANGE)
    service = FileService(path)
    reader = FileReader(service, ranges_in_flight=3)
    assert reader.read(1) == data[:1]
    assert len(service.asked) <= 1 + 3
    reader.close()
    assert {start for start, _ in service.asked} <= {n * RANGE for n in range(4)}
    assert not _workers()


# ---- dropped connections -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reset", "short"])
@pytest.mark.parametrize("in_flight", [1, 4])
def test_a_cut_connection_is_asked_again_for_the_rest_of_its_range(
    tmp_path: Path, kind: str, in_flight: int
) -> None:
    path, data = _object(tmp_path, 6 * RANGE + 5)
    service = FileService(path)
    cut = 2 * RANGE + 1_000  # in the middle of the third range
    service.cuts = [(cut, kind)]
    with FileReader(service, ranges_in_flight=in_flight) as reader:
        read = reader.read()
        resumed = reader.resumed
    assert read == data
    assert resumed == 1
    assert (cut, 3 * RANGE) in service.asked, "not asked from the byte where it broke"


@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_connection_that_keeps_dropping_fails_the_read_for_good(
    tmp_path: Path, in_flight: int
) -> None:
    path, data = _object(tmp_path, 4 * RANGE)
    service = FileService(path)
    cut = RANGE + 10
    service.cuts = [(cut, "reset")] * 6  # one more than resumes_in_a_row
    with FileReader(service, ranges_in_flight=in_flight) as reader:
        assert reader.read(RANGE) == data[:RANGE]
        with pytest.raises(ArtifactError, match=f"dropped 5 times in a row at byte {cut}") as first:
            reader.read(RANGE)
        # Never a short read that would pass for the end: the same error again.
        with pytest.raises(ArtifactError) as again:
            reader.read(1)
        assert again.value is first.value
    assert not _workers()


def test_cuts_that_each_make_progress_are_all_picked_up(tmp_path: Path) -> None:
    path, data = _object(tmp_path, 3 * RANGE)
    service = FileService(path)
    service.cuts = [(RANGE + n * 1_000, "reset") for n in range(10)]  # ten, in one range
    with FileReader(service, ranges_in_flight=2) as reader:
        assert reader.read() == data
        assert reader.resumed == 10


# ---- one version, one error -----------------------------------------------------------------


@pytest.mark.parametrize("in_flight", [1, 2])
def test_an_object_replaced_mid_read_is_never_spliced(tmp_path: Path, in_flight: int) -> None:
    path, data = _object(tmp_path, 8 * RANGE)
    service = FileService(path)
    with FileReader(service, ranges_in_flight=in_flight) as reader:
        assert reader.read(RANGE // 2) == data[: RANGE // 2]
        replacement = tmp_path / "replacement.bin"
        replacement.write_bytes(b"b" * (8 * RANGE))
        os.replace(replacement, path)
        # Ranges 0 to 2 may have been opened on the old file; range 3 is asked for only
        # once range 1 is reached, after the replacement.
        with pytest.raises(ArtifactError, match="changed while it was being read") as first:
            reader.read()
        with pytest.raises(ArtifactError) as again:
            reader.read()
        assert again.value is first.value


def test_the_first_failed_range_is_the_error_every_read_raises(tmp_path: Path) -> None:
    path, _ = _object(tmp_path, 8 * RANGE)
    service = FileService(path)
    refusal = PermissionError("refused: range 3")
    service.refusals = {3 * RANGE: refusal}
    with FileReader(service, ranges_in_flight=4) as reader:
        with pytest.raises(PermissionError) as raised:
            reader.read()  # an OSError, but from opening a range: not a dropped connection
        assert raised.value is refusal
        with pytest.raises(PermissionError) as again:
            reader.read(1)
        assert again.value is refusal
        assert reader.position == 0, "a failed read handed nothing out"
    assert not _workers()


def test_a_closed_reader_refuses_reads(tmp_path: Path) -> None:
    path, _ = _object(tmp_path, 3 * RANGE)
    reader = FileReader(FileService(path))
    reader.close()
    with pytest.raises(ValueError, match="closed reader"):
        reader.read(1)


# ---- the first answer, and closing -----------------------------------------------------------


@pytest.mark.parametrize("in_flight", [1, 4])
def test_an_answer_already_open_is_taken_as_the_first_range(tmp_path: Path, in_flight: int) -> None:
    """As S3's store does: its first GET asks for one range and learns the length."""
    path, data = _object(tmp_path, 5 * RANGE + 7)
    service = FileService(path)
    first_end = 2 * RANGE  # not the range size: the first answer's own length
    first = service.open(0, first_end)
    service.asked.clear()
    service.cuts = [(RANGE, "reset")]  # it breaks too, and is asked again for the rest
    with FileReader(service, ranges_in_flight=in_flight, first=(first, first_end)) as reader:
        assert reader.read() == data
    assert first.closed
    assert (RANGE, first_end) in service.asked, "not asked from the byte where it broke"
    assert all(start != 0 for start, _ in service.asked), "byte 0 was asked for again"
    # The resumed rest of the first answer, then ranges from where it ended.
    assert sorted(service.asked) == [
        (RANGE, 2 * RANGE),
        (2 * RANGE, 3 * RANGE),
        (3 * RANGE, 4 * RANGE),
        (4 * RANGE, 5 * RANGE),
        (5 * RANGE, 5 * RANGE + 7),
    ]


def test_closing_before_reading_closes_the_first_answer(tmp_path: Path) -> None:
    path, _ = _object(tmp_path, 5 * RANGE)
    service = FileService(path)
    first = service.open(0, RANGE)
    FileReader(service, first=(first, RANGE)).close()
    assert first.closed
    assert service.asked == [(0, RANGE)]  # the test's own; the reader asked for nothing


def test_closing_mid_read_leaves_no_thread(tmp_path: Path) -> None:
    path, data = _object(tmp_path, 40 * RANGE)
    service = FileService(path)
    reader = FileReader(service, ranges_in_flight=4)
    assert reader.read(RANGE + 1) == data[: RANGE + 1]
    assert _workers(), "no workers were started"
    reader.close()
    assert not _workers(), "a worker thread outlived close()"
    asked = len(service.asked)
    assert asked <= 2 + 4


# ---- resident memory ----------------------------------------------------------------------

# A read in a process of its own: its resident memory (VmHWM) over what it held before.
_RESIDENT_READ = r"""
import sys
sys.path.insert(0, sys.argv[2])
from test_part_reader import FileReader, FileService
from pathlib import Path

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

service = FileService(Path(sys.argv[1]))
before = status("VmRSS")
total = 0
with FileReader(service, range_size=4 << 20, ranges_in_flight=4) as reader:
    while chunk := reader.read(1 << 20):
        total += len(chunk)
print(total, status("VmHWM") - before)
"""


def test_a_large_read_stays_in_bounded_resident_memory(tmp_path: Path) -> None:
    """Ranges in memory are those in flight and the one being read, and each one's pages
    go back once it has been read (as mapped pages; malloc'd ones stayed in the worker
    threads' heaps)."""
    size_mib = 128
    path = tmp_path / "object.bin"
    with path.open("wb") as out:
        block = random.Random(3).randbytes(1 << 20)
        for _ in range(size_mib):
            out.write(block)
    done = subprocess.run(
        [sys.executable, "-c", _RESIDENT_READ, str(path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    total, peak = (int(field) for field in done.stdout.split())
    assert total == size_mib << 20
    # Four ranges in flight and one being read, plus the caller's 1 MiB pieces, the
    # 256 KiB reads and the interpreter's own: +18 to +24 MiB measured; with the ranges
    # in malloc'd bytearrays instead, +35 to +43 MiB.
    bound = (4 + 1) * (4 << 20)
    assert peak < bound + (10 << 20), f"the read held +{peak / (1 << 20):.1f} MiB resident"
