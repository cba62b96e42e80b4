"""The ``gcs`` artifact store against fake-gcs-server: the kit's suite, then what is
particular to Cloud Storage (write-once by precondition, generation-pinned resumable
reads, the root marker, bounded memory through resumable uploads)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from conftest import FakeGcs

from stepframe import ArtifactStore
from stepframe.testing import ArtifactStoreSuite

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
