"""`stepframe.object_store`: the root marker rule, the in-store check and the part writer,
against a small object service kept in a dict (the S3, GCS and Blob stores' own tests run
the same code against moto, fake-gcs-server and Azurite)."""

from __future__ import annotations

import threading

import attrs
import pytest

from stepframe import ConnectorError
from stepframe.exceptions import ArtifactError, ArtifactExistsError
from stepframe.object_store import (
    STORE_MARKER,
    PartWriter,
    check_in_store,
    exists_error,
    find_store_root,
)


@attrs.frozen
class Place:
    bucket: str
    name: str = ""

    @property
    def uri(self) -> str:
        return f"mem://{self.bucket}/{self.name}" if self.name else f"mem://{self.bucket}"

    def child(self, part: str, /) -> Place:
        return Place(self.bucket, f"{self.name}/{part}" if self.name else part)

    def ancestors(self) -> list[Place]:
        parts = self.name.split("/") if self.name else []
        return [Place(self.bucket, "/".join(parts[:n])) for n in range(len(parts), -1, -1)]


class Service:
    """Objects by URI; ``refusal`` is what a write raises instead of storing."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.refusal: BaseException | None = None

    def is_object(self, place: Place) -> bool:
        return place.uri in self.objects

    def write_new(self, place: Place, data: bytes) -> None:
        if self.refusal is not None:
            raise self.refusal
        if place.uri in self.objects:
            raise exists_error(place.uri)
        self.objects[place.uri] = data

    def root_of(self, place: Place) -> Place:
        return find_store_root(place, is_object=self.is_object, write_new=self.write_new)


def test_a_configured_root_is_marked_and_an_object_finds_its_nearest_marked_root() -> None:
    service = Service()
    team, project = Place("b", "team"), Place("b", "team/project")
    assert service.root_of(team) == team
    assert service.root_of(project) == project  # nested below another root: as given
    assert service.is_object(project.child(STORE_MARKER))
    manifest = project.child("runs/r1/launch.json")
    service.objects[manifest.uri] = b"{}"
    assert service.root_of(manifest) == project
    loose = Place("other", "x/y")
    service.objects[loose.uri] = b""
    assert service.root_of(loose) == Place("other")  # no marker above: its bucket


@pytest.mark.parametrize("refusal", [ArtifactExistsError("taken"), ConnectorError("may only read")])
def test_a_marker_that_cannot_be_written_still_opens_the_store(
    refusal: BaseException,
) -> None:
    service = Service()
    service.refusal = refusal
    assert service.root_of(Place("b", "root")) == Place("b", "root")


def test_other_errors_writing_the_marker_are_raised() -> None:
    service = Service()
    service.refusal = ArtifactError("the service answered 500")
    with pytest.raises(ArtifactError, match="500"):
        service.root_of(Place("b", "root"))


def test_uris_outside_the_root_and_reserved_names_are_refused() -> None:
    root = Place("b", "root")
    check_in_store(root, Place("b", "root/x"), "mem://b/root/x")
    check_in_store(Place("b"), Place("b", "x"), "mem://b/x")
    for outside in (Place("b", "rootx/y"), Place("b", "root"), Place("c", "root/x")):
        with pytest.raises(ArtifactError, match="outside the artifact store at mem://b/root"):
            check_in_store(root, outside, outside.uri)
    with pytest.raises(ArtifactError, match="reserved"):
        check_in_store(root, root.child(STORE_MARKER), "given")


class DictWriter(PartWriter):
    """Parts into a dict; ``gate`` (when set) holds every part until it is opened."""

    def __init__(self, part_size: int, parts_in_flight: int) -> None:
        super().__init__(
            "mem://b/object",
            part_size=part_size,
            parts_in_flight=parts_in_flight,
            max_parts=100,
            thread_name_prefix="test-part",
        )
        self.parts: dict[int, bytes] = {}
        self.whole: bytes | None = None
        self.object: bytes | None = None
        self.gate: threading.Event | None = None
        self.fail_part: int | None = None
        self.lock = threading.Lock()
        self.sending = 0
        self.most_sending = 0
        self.all_slots_taken = threading.Event()

    def send_part(self, number: int, part: bytearray) -> None:
        with self.lock:
            self.sending += 1
            self.most_sending = max(self.most_sending, self.sending)
            if self.sending == self._parts_in_flight:
                self.all_slots_taken.set()
        try:
            if self.gate is not None:
                self.gate.wait()
            if number == self.fail_part:
                raise ArtifactError(f"part {number} refused")
            self.parts[number] = bytes(part)
        finally:
            with self.lock:
                self.sending -= 1

    def commit_whole(self, data: bytearray) -> None:
        self.whole = bytes(data)

    def commit_parts(self, count: int) -> None:
        self.object = b"".join(self.parts[n] for n in range(1, count + 1))


def test_an_object_of_one_part_is_committed_whole() -> None:
    writer = DictWriter(part_size=8, parts_in_flight=2)
    writer.write(b"12345678")  # exactly one part: sent only once more data follows
    writer.commit()
    assert (writer.whole, writer.parts_sent, writer.closed) == (b"12345678", 0, True)


def test_parts_go_out_in_order_with_no_more_than_parts_in_flight_at_once() -> None:
    writer = DictWriter(part_size=4, parts_in_flight=2)
    writer.gate = threading.Event()
    data = bytes(range(4 * 6 + 3))

    def write_all() -> None:
        writer.write(data)
        writer.commit()

    writing = threading.Thread(target=write_all)
    writing.start()
    assert writer.all_slots_taken.wait(30)
    # Both slots are held by parts waiting at the gate: the writer cannot hand out a third.
    assert writer.parts_sent == 2
    writer.gate.set()
    writing.join(30)
    assert not writing.is_alive()
    assert writer.object == data and writer.parts_sent == 7
    assert writer.most_sending == 2


def test_a_failed_part_fails_the_commit_and_sends_nothing_more() -> None:
    writer = DictWriter(part_size=4, parts_in_flight=1)
    writer.fail_part = 1
    with pytest.raises(ArtifactError, match="part 1 refused"):
        try:  # as a store's open_write does
            writer.write(bytes(4 * 5))
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    assert writer.object is None and writer.parts == {}
    assert writer.parts_sent == 1  # the next part waited for its slot, then saw the failure


def test_an_aborted_writer_commits_nothing_and_refuses_more_writes() -> None:
    writer = DictWriter(part_size=4, parts_in_flight=2)
    writer.write(bytes(10))
    writer.abort()
    assert writer.object is None and writer.whole is None
    with pytest.raises(ValueError, match="closed writer of mem://b/object"):
        writer.write(b"x")
