"""Azurite, Microsoft's storage emulator, for the Blob store's tests (a pytest plugin:
conftest.py lists it in ``pytest_plugins``).

The binary is ``azurite-blob`` from npm's ``azurite`` 3.35.0 (the last release for Node
20), found at ``$STEPFRAME_AZURITE``, at the path ``.ci/services.sh`` installs it to, or on
PATH.  Missing, its tests skip -- unless ``CI`` or ``STEPFRAME_REQUIRE_AZURITE=1`` is set,
where they fail: CI must not pass by skipping.

One Azurite runs per test session on a free 127.0.0.1 port, keeping blobs in a temporary
folder (1 GiB round trips would sit in Node's memory with ``--inMemoryPersistence``).
Tests reach it through the well-known development account ``devstoreaccount1`` and its
published key, in ``AZURE_STORAGE_CONNECTION_STRING`` (the `azurite` fixture sets it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Azurite", "azurite", "azurite_server", "find_azurite", "start_azurite"]

INSTALLED = Path("/var/tmp/stepframe-services/azurite/node_modules/.bin/azurite-blob")
ACCOUNT = "devstoreaccount1"
# The newest Blob API version Azurite 3.35 knows; azure-storage-blob's own default is newer.
SDK_API_VERSION = "2025-11-05"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def find_azurite() -> str | None:
    """The azurite-blob program, or None."""
    configured = os.environ.get("STEPFRAME_AZURITE")
    if configured:
        return configured
    if INSTALLED.is_file():
        return str(INSTALLED)
    return shutil.which("azurite-blob")


class Azurite:
    """A running azurite-blob: its endpoint, and an azure-storage-blob client of it for
    setting up and inspecting behind the store's back."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, folder: str) -> None:
        self.process = process
        self.port = port
        self.folder = folder
        self.endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"

    def connection_string(self, endpoint: str | None = None, account: str = ACCOUNT) -> str:
        """A connection string for ``account`` at ``endpoint`` (this Azurite's by default;
        a proxy's in front of it for the connection-cut tests)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={KEY};"
            f"BlobEndpoint={endpoint or self.endpoint};"
        )

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string(), api_version=SDK_API_VERSION
        )

    def create_container(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.service().create_container(name)
        return name

    def put(self, container: str, name: str, data: bytes) -> None:
        """Replace a blob unconditionally, as something outside stepframe would."""
        blob = self.service().get_blob_client(container, name)
        blob.upload_blob(data, overwrite=True)

    def get(self, container: str, name: str) -> bytes:
        data: bytes = self.service().get_blob_client(container, name).download_blob().readall()
        return data

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_azurite(program: str) -> Azurite:
    """Start ``program`` on a free port with a fresh folder; wait until it listens."""
    folder = tempfile.mkdtemp(prefix="stepframe-azurite-")
    port = _free_port()
    process = subprocess.Popen(
        [
            program,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            folder,
            "--silent",
            "--disableTelemetry",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Azurite(process, port, folder)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                server.stop()
                raise RuntimeError(
                    f"azurite-blob did not listen on port {port}:\n{output}"
                ) from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    """Azurite for the whole session (a child process of its own)."""
    program = find_azurite()
    if program is None:
        message = (
            "azurite-blob not found: run .ci/services.sh (npm install azurite@3.35.0) or "
            "set STEPFRAME_AZURITE"
        )
        if os.environ.get("CI") or os.environ.get("STEPFRAME_REQUIRE_AZURITE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = start_azurite(program)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """Azurite, with ``AZURE_STORAGE_CONNECTION_STRING`` naming it for this test."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string())
    return azurite_server
