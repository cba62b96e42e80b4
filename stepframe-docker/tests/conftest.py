"""The docker plugin's unit tests: none of them may reach a Docker engine.

An engine asked for an image it lacks pulls it from Docker Hub, which is neither
reachable nor allowed from these machines; a unit test that reached the engine by
accident once did exactly that.  So every test here points the docker SDK at an address
where nothing listens.  Tests that need the real engine live in ``integration/``, which
has its own conftest and is left alone by this one.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "integration" in request.node.path.parts:
        return
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # the discard port: nothing answers
