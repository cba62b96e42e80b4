"""Fixtures for stepframe-aws tests: AWS is moto's server on 127.0.0.1, never the real one.

Every test gets fake keys, the moto endpoint in ``AWS_ENDPOINT_URL`` and a dead HTTPS proxy,
so a call that escapes the endpoint (a service moto is not asked for, a hard-coded URL)
fails at once instead of reaching AWS.  The server's state is reset between tests.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _moto_helpers import MotoIam, Recording

# The tests import their shared helpers (_moto_helpers.py, next to this file) by name;
# under --import-mode=importlib pytest does not put this folder on sys.path itself.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

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


@pytest.fixture
def recording(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Recording]:
    """moto's request recorder, on for the test: what the server got, by operation."""
    from _moto_helpers import Recording, moto_api
    from moto.moto_api import recorder

    # The recorder writes to a file named relative to the working directory by default.
    monkeypatch.setattr(recorder, "_location", str(tmp_path / "moto-recording.jsonl"))
    moto_api(moto_endpoint, "/moto-api/recorder/reset-recording", "POST")
    moto_api(moto_endpoint, "/moto-api/recorder/start-recording", "POST")
    yield Recording(moto_endpoint)
    moto_api(moto_endpoint, "/moto-api/recorder/stop-recording", "POST")


@pytest.fixture
def moto_iam(moto_endpoint: str) -> Iterator[MotoIam]:
    """moto's IAM, for users and roles; its enforcement is off again after the test."""
    from _moto_helpers import MotoIam

    iam = MotoIam(moto_endpoint)
    try:
        yield iam
    finally:
        if iam.enforcing:
            iam.enforce(False)


@pytest.fixture
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retries without their backoff sleeps (up to 31 s over six attempts)."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
