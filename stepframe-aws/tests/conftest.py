"""Fixtures for stepframe-aws tests: AWS is moto's server on 127.0.0.1, never the real one.

Every test gets fake keys, the moto endpoint in ``AWS_ENDPOINT_URL`` and a dead HTTPS proxy,
so a call that escapes the endpoint (a service moto is not asked for, a hard-coded URL)
fails at once instead of reaching AWS.  The server's state is reset between tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

MOTO_ACCOUNT = "123456789012"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server, in this process, for the whole session: ``http://127.0.0.1:PORT``."""
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    # The recorder's default file is ./moto_recording, in whatever folder pytest runs from.
    recorder._location = str(tmp_path_factory.mktemp("moto") / "recording.jsonl")

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_environment(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Fake keys, the moto endpoint and a dead proxy; moto's state reset after the test."""
    import urllib.request

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/stepframe-test")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield moto_endpoint
    from stepframe_aws._connector.auth import clear_cache

    # Temporary credentials cached by the connector must not outlive the moto state
    # (users, keys, roles) that issued them.
    clear_cache()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for path in ("/moto-api/recorder/stop-recording", "/moto-api/reset"):
        request = urllib.request.Request(f"{moto_endpoint}{path}", method="POST")
        with opener.open(request) as answer:
            answer.read()
