"""The ``azure-blob`` artifact store against Azurite: the kit's suite, then what Blob Storage
adds (staged blocks in bounded memory, write-once commits, reads pinned to the ETag and
resumed after a cut connection, the root marker, one-line errors for a wrong account or
container).

Azurite runs in its own process (`_azurite`), so tracemalloc here counts the store's
memory, not the service's copy of the blob.
"""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from _azurite import Azurite
from stepframe_azure._blob.store import STORE_MARKER, AzureBlobArtifactStore
from stepframe_azure._blob.streams import DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS_IN_FLIGHT

from stepframe import ArtifactStore, ConfigError
from stepframe.exceptions import ArtifactError, ArtifactExistsError
from stepframe.testing import ArtifactStoreSuite, CuttingProxy

MIB = 1 << 20
ACCOUNT = "devstoreaccount1"


class TestAzureBlobStoreConformance(ArtifactStoreSuite):
    scheme = "az"
    plugin_names = ("azure",)
    # Blocks upload (ranges download) DEFAULT_BLOCKS_IN_FLIGHT at a time besides the one
    # being filled (read): (4 + 1) x 8 MiB, plus the materializers' own chunks.
    max_stream_memory_bytes: ClassVar[int] = (
        DEFAULT_BLOCKS_IN_FLIGHT + 1
    ) * DEFAULT_BLOCK_SIZE + 8 * MIB

    @pytest.fixture(autouse=True)
    def _emulator(self, azurite: Azurite) -> None:
        self.emulator = azurite

    def store_uri(self, tmp_path: Path) -> str:
        return f"az://{ACCOUNT}/{self.emulator.create_container()}/team/artifacts"

    def corrupt(self, store: ArtifactStore, uri: str) -> None:
        container, name = _container_and_name(uri)
        data = bytearray(self.emulator.get(container, name))
        data[len(data) // 2] ^= 0xFF
        self.emulator.put(container, name, bytes(data))


def _container_and_name(uri: str) -> tuple[str, str]:
    container, _, name = uri.removeprefix(f"az://{ACCOUNT}/").partition("/")
    return container, name


def _store(uri: str, **options: int) -> AzureBlobArtifactStore:
    return AzureBlobArtifactStore.open(uri, None, **options)


@pytest.fixture
def container(azurite: Azurite) -> str:
    return azurite.create_container()


def _pattern(number: int, block: bytes) -> bytes:
    """1 MiB block ``number`` of a large blob: distinct, so a misplaced block shows."""
    return number.to_bytes(8, "big") + block[8:]


# ---- bounded memory ----------------------------------------------------------------------


def test_one_gib_goes_up_in_blocks_and_down_in_bounded_memory(
    azurite: Azurite, container: str
) -> None:
    size_mib = 1024
    store = _store(f"az://{ACCOUNT}/{container}/big")
    uri = store.uri_for("runs", "r1", "model.bin")
    block = random.Random(7).randbytes(MIB)
    written = hashlib.sha256()

    tracemalloc.start()
    try:
        with store.open_write(uri) as stream:
            for number in range(size_mib):
                chunk = _pattern(number, block)
                written.update(chunk)
                stream.write(chunk)
                del chunk
        blocks = stream.blocks_staged  # type: ignore[attr-defined]
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = hashlib.sha256()
        total = 0
        with store.open_read(uri) as stream:
            while chunk := stream.read(MIB):
                read.update(chunk)
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total == size_mib * MIB
    assert read.hexdigest() == written.hexdigest(), "the blob came back different"
    assert blocks == size_mib * MIB // store.block_size == 128
    committed = azurite.service().get_blob_client(container, "big/runs/r1/model.bin")
    assert len(committed.get_block_list("committed")[0]) == 128, "not committed as 128 blocks"
    # Writing holds the block being filled and those in flight (plus the caller's 1 MiB
    # pieces); reading, the ranges in flight (the one being read among them) and the
    # pieces asked for and read off the connections.
    write_bound = (store.blocks_in_flight + 1) * store.block_size + 6 * MIB
    read_bound = store.blocks_in_flight * store.range_size + 6 * MIB
    assert write_peak < write_bound, f"write peaked at {write_peak / MIB:.1f} MiB"
    assert read_peak < read_bound, f"read peaked at {read_peak / MIB:.1f} MiB"
    print(
        f"\n1 GiB blob: 128 blocks; peak Python memory writing {write_peak / MIB:.1f} MiB, "
        f"reading {read_peak / MIB:.1f} MiB"
    )


@pytest.mark.parametrize(
    ("size", "blocks"), [(0, 0), (100, 0), (MIB, 0), (MIB + 1, 2), (3 * MIB, 3)]
)
def test_blobs_around_the_block_size(container: str, size: int, blocks: int) -> None:
    store = _store(f"az://{ACCOUNT}/{container}/sizes", block_size=MIB)
    data = random.Random(size).randbytes(size)
    uri = store.uri_for("blob")
    with store.open_write(uri) as stream:
        stream.write(data)
    # One block or less goes up as a single Put Blob: no block staged.
    assert stream.blocks_staged == blocks  # type: ignore[attr-defined]
    with store.open_read(uri) as stream:
        assert stream.read() == data


# ---- write-once ---------------------------------------------------------------------------


def test_of_two_interleaved_writers_exactly_one_wins_with_its_own_bytes(container: str) -> None:
    """Both pass the existence check and stage blocks under one name at once; the first
    to commit wins with its own data, the second is refused.  (Blocks are keyed by id
    per blob name: ids shared by the two uploads would let the loser's blocks replace
    the winner's before its commit.)"""
    store = _store(f"az://{ACCOUNT}/{container}/race", block_size=MIB, blocks_in_flight=1)
    uri = store.uri_for("blob")
    first, second = b"a" * (3 * MIB), b"b" * (3 * MIB)
    winner, loser = store.open_write(uri), store.open_write(uri)
    one, two = winner.__enter__(), loser.__enter__()
    one.write(first)  # stages blocks 1 and 2; block 1 is answered before 2 goes
    two.write(second)  # stages its blocks 1 and 2 under the same name, after the first's
    one.write(b"!")
    two.write(b"!")
    winner.__exit__(None, None, None)
    with pytest.raises(ArtifactExistsError, match="write-once"):
        loser.__exit__(None, None, None)
    with store.open_read(uri) as stream:
        assert stream.read() == first + b"!", "the winner's blob holds other bytes"


def test_a_second_write_is_refused_even_past_the_existence_check(container: str) -> None:
    store = _store(f"az://{ACCOUNT}/{container}/once")
    uri = store.uri_for("blob")
    late = store.open_write(uri)
    stream = late.__enter__()  # checked: nothing there yet
    with store.open_write(uri) as early:
        early.write(b"first")
    stream.write(b"second")
    with pytest.raises(ArtifactExistsError):
        late.__exit__(None, None, None)  # the conditional Put Blob refuses
    with store.open_read(uri) as reading:
        assert reading.read() == b"first"


# ---- reads pinned to the ETag, resumed -----------------------------------------------------


@pytest.fixture
def proxy(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttingProxy]:
    """Stores opened in the test reach Azurite through a `CuttingProxy`."""
    server = CuttingProxy(azurite.port)
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string(f"{server.url}/{ACCOUNT}")
    )
    yield server
    server.close()


@pytest.mark.parametrize("ranges_in_flight", [1, 4])
def test_a_read_cut_mid_transfer_resumes_where_it_stopped(
    azurite: Azurite, container: str, proxy: CuttingProxy, ranges_in_flight: int
) -> None:
    # Big enough that, whatever the ranges in flight fetched already, 3 MiB more remain.
    data = random.Random(11).randbytes(20 * MIB + 123)
    store = _store(
        f"az://{ACCOUNT}/{container}/resume", range_size=2 * MIB, blocks_in_flight=ranges_in_flight
    )
    uri = store.uri_for("blob")
    with store.open_write(uri) as stream:
        stream.write(data)
    with store.open_read(uri) as stream:
        head = stream.read(MIB)
        proxy.arm(3 * MIB + 17)  # in the middle of some range still to come
        rest = stream.read()
        resumed = stream.resumed  # type: ignore[attr-defined]
    assert proxy.cuts == 1, "the proxy did not cut the connection"
    assert head + rest == data, "the resumed read is not the blob"
    assert resumed == 1


def test_a_blob_replaced_between_reads_is_detected(azurite: Azurite, container: str) -> None:
    """The reader asks for each range with If-Match on the ETag it opened: bytes of a blob
    replaced since then are never handed out as the artifact's."""
    store = _store(f"az://{ACCOUNT}/{container}/pinned", range_size=MIB, blocks_in_flight=1)
    uri = store.uri_for("blob")
    with store.open_write(uri) as stream:
        stream.write(b"a" * (4 * MIB))
    with store.open_read(uri) as stream:
        assert stream.read(MIB) == b"a" * MIB  # the first range
        azurite.put(container, "pinned/blob", b"b" * (4 * MIB))
        with pytest.raises(ArtifactError, match="changed while it was being read"):
            stream.read()


def test_a_cut_block_upload_and_a_lost_commit_answer_still_store_the_blob_once(
    container: str, proxy: CuttingProxy
) -> None:
    """A Put Block whose answer is lost is sent again; a commit whose answer is lost is
    retried, finds the name taken -- by itself -- and succeeds."""
    store = _store(f"az://{ACCOUNT}/{container}/upload", block_size=MIB, blocks_in_flight=1)
    data = random.Random(5).randbytes(3 * MIB + 9)
    uri = store.uri_for("blob")
    with store.open_write(uri) as stream:
        stream.write(data[: 2 * MIB])
        proxy.arm(1)  # the answer to the first Put Block
        stream.write(data[2 * MIB :])
    assert stream.blocks_staged == 4  # type: ignore[attr-defined]
    assert proxy.cuts == 1
    small = store.uri_for("small")
    with store.open_write(small) as stream:
        stream.write(b"small")
        proxy.arm(1)  # the answer to the Put Blob that creates it
    assert proxy.cuts == 2
    with store.open_read(uri) as stream:
        assert stream.read() == data
    with store.open_read(small) as stream:
        assert stream.read() == b"small"


# ---- the root marker and addressing ------------------------------------------------------


def test_a_job_finds_the_root_from_a_deep_blob_uri(azurite: Azurite, container: str) -> None:
    store = _store(f"az://{ACCOUNT}/{container}/team/project")
    assert azurite.get(container, f"team/project/{STORE_MARKER}")
    uri = store.uri_for("runs", "r1", "launch.json")
    with store.open_write(uri) as stream:
        stream.write(b"{}")
    again = _store(uri)
    assert again.root_uri == store.root_uri
    assert list(again.list(again.root_uri)) == [uri], "the marker is listed as an artifact"


def test_the_portal_https_form_names_the_same_store(container: str) -> None:
    store = _store(f"https://{ACCOUNT}.blob.core.windows.net/{container}/team")
    assert store.root_uri == f"az://{ACCOUNT}/{container}/team"


def test_uris_outside_the_store_and_reserved_names_are_refused(container: str) -> None:
    store = _store(f"az://{ACCOUNT}/{container}/team")
    with pytest.raises(ArtifactError, match="outside the artifact store"):
        store.open_write(f"az://{ACCOUNT}/{container}/other/blob")
    with pytest.raises(ArtifactError, match="reserved"):
        store.open_write(store.uri_for(STORE_MARKER))


def test_verify_tells_a_shorter_blob_by_its_properties(azurite: Azurite, container: str) -> None:
    from stepframe import ArtifactRef

    store = _store(f"az://{ACCOUNT}/{container}/verify")
    uri = store.uri_for("blob")
    with store.open_write(uri) as stream:
        stream.write(b"12345")
    digest = hashlib.sha256(b"12345").hexdigest()
    ref = ArtifactRef(uri=uri, sha256=digest, size=5, materializer="bytes")
    assert store.verify(ref) is None
    azurite.put(container, "verify/blob", b"1234")
    assert store.verify(ref) == "size 4 bytes, recorded 5"


# ---- bad input: one line naming it and the fix --------------------------------------------


def test_a_missing_container_is_named_with_the_fix(azurite: Azurite) -> None:
    with pytest.raises(ConfigError) as caught:
        _store(f"az://{ACCOUNT}/no-such-container/team")
    message = str(caught.value)
    assert "\n" not in message
    assert "no container 'no-such-container'" in message
    assert "az storage container create" in message


def test_a_wrong_account_is_named_with_the_fix(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection string for an account the service does not have: Azurite answers 404
    # ResourceNotFound (Azure's public DNS has no name for it; see api.unreachable).
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string(f"http://127.0.0.1:{azurite.port}/wrongaccount", "wrongaccount"),
    )
    with pytest.raises(ConfigError) as caught:
        _store("az://wrongaccount/artifacts/team")
    message = str(caught.value)
    assert "\n" not in message
    assert "no storage account 'wrongaccount'" in message
    assert "az storage account create" in message


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("s3://bucket/prefix", "not a Blob Storage URI"),
        ("az://Account/artifacts", "not a storage account name"),
        ("az://account", "names no container"),
        ("az://account/Bad_Container", "not a blob container name"),
        ("https://account.blob.core.windows.net/x", "not a blob container name"),
    ],
)
def test_a_malformed_path_is_refused_when_the_store_is_configured(
    path: str, complaint: str
) -> None:
    from stepframe_azure._blob.config import AzureBlobStoreConfig

    from stepframe._validation import structure_config

    with pytest.raises(ConfigError, match=complaint) as caught:
        structure_config({"path": path}, AzureBlobStoreConfig, "artifact_stores.blob")
    assert f"artifact_stores.blob: {path!r}" in str(caught.value)
    https = structure_config(
        {"path": "https://account.blob.core.windows.net/artifacts/team/"},
        AzureBlobStoreConfig,
        "artifact_stores.blob",
    )
    assert https.path == "az://account/artifacts/team"


def test_an_account_whose_host_does_not_resolve_is_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Azure a storage account that does not exist has no DNS name.  (``.invalid``
    never resolves; it bypasses the tests' dead proxy so the lookup happens here.)"""
    from _azurite import KEY

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,.invalid")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"AccountName=nosuchaccount;AccountKey={KEY};"
        "BlobEndpoint=https://nosuchaccount.blob.core.invalid",
    )
    with pytest.raises(ConfigError) as caught:
        _store("az://nosuchaccount/artifacts/team")
    message = str(caught.value)
    assert "\n" not in message
    assert "no storage account 'nosuchaccount'" in message
    assert "nosuchaccount.blob.core.invalid does not resolve" in message
    assert "az storage account create" in message
