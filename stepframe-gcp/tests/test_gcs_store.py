"""The ``gcs`` artifact store against fake-gcs-server: the kit's suite, then what is
particular to Cloud Storage (write-once by precondition, generation-pinned resumable
reads, the root marker, bounded memory through resumable uploads)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import FakeGcs

from stepframe import ArtifactStore
from stepframe.exceptions import ArtifactError
from stepframe.testing import ArtifactStoreSuite, CuttingProxy

MIB = 1 << 20


class TestGcsStoreConformance(ArtifactStoreSuite):
    scheme = "gs"
    plugin_names = ("gcp",)
    # One 4 MiB chunk and its copy on the way up, a 1 MiB read buffer on the way down,
    # and the materializers' own chunks.
    max_stream_memory_bytes: ClassVar[int] = 16 * MIB

    @pytest.fixture(autouse=True)
    def _emulator(self, gcs: FakeGcs) -> None:
        self.emulator = gcs

    def store_uri(self, tmp_path: Path) -> str:
        return f"gs://{self.emulator.create_bucket()}/team/artifacts"

    def corrupt(self, store: ArtifactStore, uri: str) -> None:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        data = bytearray(self.emulator.get(bucket, name))
        data[len(data) // 2] ^= 0xFF
        self.emulator.put(bucket, name, bytes(data))


# ---- Cloud Storage specifics ----------------------------------------------------------


def _store(uri: str) -> Any:
    from stepframe_gcp._gcs.store import GcsArtifactStore

    return GcsArtifactStore.open(uri, None)


def _pattern(size: int) -> bytes:
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (size // len(block) + 1))[:size]


def test_a_read_cut_mid_transfer_resumes_where_it_stopped(
    gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = gcs.create_bucket()
    data = _pattern(9 * MIB + 123)
    writer = _store(f"gs://{bucket}/root")
    with writer.open_write(writer.uri_for("big.bin")) as stream:
        stream.write(data)
    port = int(gcs.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port)
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        store = _store(f"gs://{bucket}/root")
        with store.open_read(store.uri_for("big.bin")) as stream:
            head = stream.read(MIB)
            proxy.arm(3 * MIB)
            rest = stream.read()
        assert proxy.cuts == 1
        assert stream.raw.resumes == 1
        assert head + rest == data
    finally:
        proxy.close()


def test_a_read_never_mixes_generations(gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> None:
    # The object is replaced behind the store's back while being read, and the connection
    # drops: the resumed read fails rather than splice the new generation's bytes into
    # the old one's.  (Large enough that much of it is still to come when the cut lands.)
    bucket = gcs.create_bucket()
    writer = _store(f"gs://{bucket}/root")
    with writer.open_write(writer.uri_for("a.bin")) as stream:
        stream.write(_pattern(48 * MIB))
    proxy = CuttingProxy(int(gcs.url.rsplit(":", 1)[1]))
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        store = _store(f"gs://{bucket}/root")
        with pytest.raises(ArtifactError, match=r"generation .* is gone"):
            with store.open_read(store.uri_for("a.bin")) as stream:
                stream.read(MIB)
                gcs.put(bucket, "root/a.bin", b"new" * MIB)
                proxy.arm(1)
                stream.read()
        assert proxy.cuts == 1
    finally:
        proxy.close()


def test_large_objects_go_up_from_a_spool_and_an_error_leaves_nothing(gcs: FakeGcs) -> None:
    from stepframe_gcp._gcs.store import MEMORY_LIMIT

    bucket = gcs.create_bucket()
    store = _store(f"gs://{bucket}/root")
    uri = store.uri_for("failed.bin")
    with pytest.raises(RuntimeError, match="the step failed"):
        with store.open_write(uri) as stream:
            stream.write(_pattern(3 * MEMORY_LIMIT))  # spooled to disk already
            raise RuntimeError("the step failed")
    assert not store.exists(uri)
    data = _pattern(2 * MEMORY_LIMIT + 5)
    with store.open_write(store.uri_for("ok.bin")) as stream:
        for start in range(0, len(data), 1000_003):
            stream.write(data[start : start + 1000_003])
    assert gcs.get(bucket, "root/ok.bin") == data


class RequestCuttingProxy(CuttingProxy):
    """The kit's proxy, which can also cut what the client sends: after
    `arm_request(n)`, the connection carrying the n-th byte sent from then on is cut
    there (an upload's body dropped on its way, before Cloud Storage answered)."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.request_cuts = 0
        self._request_left: int | None = None

    def arm_request(self, request_bytes: int) -> None:
        with self._lock:
            self._request_left = request_bytes

    def _pipe(self, source: Any, sink: Any, answers: bool) -> None:
        if answers:
            super()._pipe(source, sink, answers)
            return
        try:
            while chunk := source.recv(65536):
                with self._lock:
                    left = self._request_left
                    cut = left is not None and len(chunk) >= left
                    if cut:
                        self._request_left = None
                        self.request_cuts += 1
                    elif left is not None:
                        self._request_left = left - len(chunk)
                if cut:
                    sink.sendall(chunk[:left])
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def test_an_upload_cut_on_its_way_is_sent_again_whole(
    gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepframe_gcp._gcs import store as gcs_store

    monkeypatch.setattr(gcs_store, "_sleep", lambda seconds: None)
    bucket = gcs.create_bucket()
    _store(f"gs://{bucket}/root")  # the root's marker, written straight
    proxy = RequestCuttingProxy(int(gcs.url.rsplit(":", 1)[1]))
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        store = _store(f"gs://{bucket}/root")
        data = _pattern(24 * MIB + 7)
        with store.open_write(store.uri_for("cut.bin")) as stream:
            for start in range(0, len(data), MIB):
                stream.write(data[start : start + MIB])
            proxy.arm_request(9 * MIB)  # sent when the block exits: cut mid-body
        assert proxy.request_cuts == 1
        assert gcs.get(bucket, "root/cut.bin") == data
    finally:
        proxy.close()


GIB = 1 << 30


def test_a_gib_goes_up_and_down_in_bounded_memory_through_a_cut(
    gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The figure: 1 GiB through the store with bounded memory, the download cut
    # mid-transfer (it resumes where it stopped) and the upload cut on its way (sent
    # again).  Python's heap is measured (tracemalloc), as the kit's large-file test does.
    import hashlib
    import tracemalloc

    from stepframe_gcp._gcs import store as gcs_store

    monkeypatch.setattr(gcs_store, "_sleep", lambda seconds: None)
    source = tmp_path / "gib.bin"
    block = _pattern(MIB)
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for number in range(GIB // MIB):
            piece = number.to_bytes(8, "big") + block[8:]
            out.write(piece)
            digest.update(piece)
    bucket = gcs.create_bucket()
    _store(f"gs://{bucket}/root")
    proxy = RequestCuttingProxy(int(gcs.url.rsplit(":", 1)[1]))
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        store = _store(f"gs://{bucket}/root")
        uri = store.uri_for("gib.bin")
        again = hashlib.sha256()
        tracemalloc.start()
        try:
            with source.open("rb") as data, store.open_write(uri) as stream:
                while piece := data.read(MIB):
                    stream.write(piece)
                proxy.arm_request(300 * MIB)
            with store.open_read(uri) as stream:
                for number in range(GIB // MIB):
                    if number == 100:
                        proxy.arm(400 * MIB)  # cut 500 MiB in
                    again.update(stream.read(MIB))
                assert stream.read(1) == b""
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (proxy.request_cuts, proxy.cuts) == (1, 1)
        assert stream.raw.resumes == 1
        assert again.hexdigest() == digest.hexdigest(), "the GiB came back different"
        assert peak <= 16 * MIB, f"a GiB up and down peaked at {peak / MIB:.1f} MiB"
    finally:
        proxy.close()
