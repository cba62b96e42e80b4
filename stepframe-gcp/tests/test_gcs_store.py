"""The ``gcs`` artifact store against fake-gcs-server: the kit's suite, then what is
particular to Cloud Storage (write-once by precondition, generation-pinned resumable
reads, the root marker, bounded memory through resumable uploads)."""

from __future__ import annotations

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


def test_large_objects_go_up_in_chunks_and_an_error_leaves_nothing(gcs: FakeGcs) -> None:
    from stepframe_gcp._gcs.store import DEFAULT_CHUNK_SIZE

    bucket = gcs.create_bucket()
    store = _store(f"gs://{bucket}/root")
    uri = store.uri_for("failed.bin")
    with pytest.raises(RuntimeError, match="the step failed"):
        with store.open_write(uri) as stream:
            stream.write(_pattern(3 * DEFAULT_CHUNK_SIZE))  # two chunks already sent
            raise RuntimeError("the step failed")
    assert not store.exists(uri)
    data = _pattern(2 * DEFAULT_CHUNK_SIZE + 5)
    with store.open_write(store.uri_for("ok.bin")) as stream:
        for start in range(0, len(data), 1000_003):
            stream.write(data[start : start + 1000_003])
    assert gcs.get(bucket, "root/ok.bin") == data
