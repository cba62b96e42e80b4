"""Errors that say what to do, without an engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stepframe_docker import EngineUnavailableError, ImageBuildStepError, ParityError
from stepframe_docker._engine import client_for
from stepframe_docker._stream import step_error

INTEGRATION = Path(__file__).parent / "integration"


def test_engine_not_running_says_how_to_start_it(tmp_path: Path) -> None:
    socket = tmp_path / "docker.sock"
    with pytest.raises(EngineUnavailableError) as caught:
        client_for(f"unix://{socket}")
    message = str(caught.value)
    assert "not running" in message and str(socket) in message
    assert "dockerd" in message and "systemctl start docker" in message


def test_socket_not_permitted_says_what_to_do(tmp_path: Path) -> None:
    if os.getuid() == 0:
        from stepframe_docker._engine import engine_error

        error = engine_error(PermissionError(13, "Permission denied"), f"unix://{tmp_path}/s")
    else:  # pragma: no cover - depends on who runs the tests
        socket = tmp_path / "s"
        socket.write_text("")
        socket.chmod(0)
        with pytest.raises(EngineUnavailableError) as caught:
            client_for(f"unix://{socket}")
        error = caught.value
    assert "not permitted" in str(error) and "docker group" in str(error)


def test_failing_step_message_shows_step_and_last_lines() -> None:
    output = [f"line {i}" for i in range(40)]
    error = step_error(
        "the image for /p",
        "Step 5/9 : RUN python -m pip install -r /opt/stepframe/requirements.txt",
        output,
        "The command '/bin/sh -c python -m pip install' returned a non-zero code: 1",
    )
    assert isinstance(error, ImageBuildStepError)
    message = str(error)
    assert "failed at Step 5/9 : RUN python -m pip install" in message
    assert "line 39" in message and "line 14" not in message
    assert error.output[-1] == "line 39"


def test_parity_failure_becomes_a_parity_error() -> None:
    error = step_error(
        "the image for /p",
        "Step 7/9 : RUN python /opt/stepframe/parity.py",
        [
            "stepframe-docker parity check failed: Python 3.9 in the image, 3.11 on the client",
        ],
        "The command '/bin/sh -c python /opt/stepframe/parity.py' returned a non-zero code: 3",
    )
    assert isinstance(error, ParityError)
    assert "Python 3.9 in the image, 3.11 on the client" in str(error)
    assert "parent_image" in str(error)


@pytest.mark.parametrize("require", ["1", ""])
def test_integration_tests_fail_without_an_engine_when_required(
    tmp_path: Path, require: str
) -> None:
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "STEPFRAME_REQUIRE_DOCKER": require,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            f"--rootdir={INTEGRATION}",
            str(INTEGRATION / "test_docker_builder.py"),
            "-k",
            "unchanged_rebuild",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    summary = result.stdout.strip().splitlines()[-1]
    if require:
        assert result.returncode == 1, result.stdout
        assert "1 error" in summary or "1 failed" in summary, summary
        assert "no Docker engine answers" in result.stdout
    else:
        assert result.returncode == 0, result.stdout
        assert "1 skipped" in summary, summary
