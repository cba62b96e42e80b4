"""Azurite, Microsoft's storage emulator, for the Blob store's tests (a pytest plugin:
conftest.py lists it in ``pytest_plugins``).

The binary is ``azurite-blob`` from npm's ``azurite`` 3.35.0 (the last release for Node
20), found at ``$STEPFRAME_AZURITE``, where ``.ci/services.sh`` installs it
(``$STEPFRAME_SERVICES_DIR/azurite``, by default under /var/tmp/stepframe-services), or on
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

__all__ = [
    "Azurite",
    "azurite",
    "azurite_oauth_server",
    "azurite_server",
    "find_azurite",
    "start_azurite",
]

# Where .ci/services.sh installs it (its STEPFRAME_SERVICES_DIR, the same default).
_SERVICES_DIR = "/var/tmp/stepframe-services"
ACCOUNT = "devstoreaccount1"
# The newest Blob API version Azurite 3.35 knows; azure-storage-blob's own default is newer.
SDK_API_VERSION = "2025-11-05"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def find_azurite() -> str | None:
    """The azurite-blob program, or None."""
    configured = os.environ.get("STEPFRAME_AZURITE")
    if configured:
        return configured
    services = Path(os.environ.get("STEPFRAME_SERVICES_DIR") or _SERVICES_DIR)
    installed = services / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if installed.is_file():
        return str(installed)
    return shutil.which("azurite-blob")


class Azurite:
    """A running azurite-blob: its endpoint, and an azure-storage-blob client of it for
    setting up and inspecting behind the store's back."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        folder: str,
        *,
        certificate: str | None = None,
    ) -> None:
        self.process = process
        self.port = port
        self.folder = folder
        #: the PEM file an https Azurite serves (its own CA), or None for http.
        self.certificate = certificate
        scheme = "https" if certificate else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{port}/{ACCOUNT}"

    def connection_string(self, endpoint: str | None = None, account: str = ACCOUNT) -> str:
        """A connection string for ``account`` at ``endpoint`` (this Azurite's by default;
        a proxy's in front of it for the connection-cut tests)."""
        return f"AccountName={account};AccountKey={KEY};BlobEndpoint={endpoint or self.endpoint};"

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string(),
            api_version=SDK_API_VERSION,
            connection_verify=self.certificate or True,
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


def start_azurite(program: str, *, oauth: bool = False) -> Azurite:
    """Start ``program`` on a free port with a fresh folder; wait until it listens.

    :param oauth: serve https (a certificate for 127.0.0.1 made here) and accept Microsoft
        Entra tokens (Azurite's ``--oauth basic``: issuer, audience and lifetime are
        checked, not the signature), besides Shared Key.
    """
    folder = tempfile.mkdtemp(prefix="stepframe-azurite-")
    port = _free_port()
    extra: list[str] = []
    certificate = None
    if oauth:
        certificate, key = _loopback_certificate(Path(folder))
        extra = ["--cert", certificate, "--key", key, "--oauth", "basic"]
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
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Azurite(process, port, folder, certificate=certificate)
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


def _loopback_certificate(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stepframe test azurite")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = folder / "azurite.pem", folder / "azurite-key.pem"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certificate_file), str(key_file)


def _program_or_skip() -> str:
    program = find_azurite()
    if program is None:
        message = (
            "azurite-blob not found: run .ci/services.sh (npm install azurite@3.35.0) or "
            "set STEPFRAME_AZURITE"
        )
        if os.environ.get("CI") or os.environ.get("STEPFRAME_REQUIRE_AZURITE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return program


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    """Azurite for the whole session (a child process of its own)."""
    server = start_azurite(_program_or_skip())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite_oauth_server() -> Iterator[Azurite]:
    """An https Azurite that accepts Microsoft Entra tokens (``--oauth basic``)."""
    server = start_azurite(_program_or_skip(), oauth=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """Azurite, with ``AZURE_STORAGE_CONNECTION_STRING`` naming it for this test."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string())
    return azurite_server
