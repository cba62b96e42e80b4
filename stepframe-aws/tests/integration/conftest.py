"""Fixtures for SageMaker local mode against a real Docker engine, registry and Compose.

What runs for real: the image stepframe-docker builds (parent ``stepframe-test-base``,
pushed to the registry on 127.0.0.1:5000), the SageMaker SDK's local mode (v2, the
``local`` extra) running it through Docker Compose, and moto's server (from
``tests/conftest.py``) as S3 on 127.0.0.1, reached from the container over the host
network.

Without an engine, a registry, the base image, Compose or the SDK these tests skip --
unless ``STEPFRAME_REQUIRE_DOCKER=1`` (the nox ``integration`` session sets it), where
any of them missing fails the tests.

Test setup only: ``bin/docker-compose`` is put first on PATH.  It rewrites the compose
file the SDK writes to the host network (these machines have no bridge network) and
runs the real ``docker-compose``.  Containers the jobs leave are removed at the end, by
the label local mode puts on them; so are the local tags of the images pushed here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE = os.environ.get("STEPFRAME_REQUIRE_DOCKER") == "1"
REGISTRY = os.environ.get("STEPFRAME_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("STEPFRAME_TEST_BASE_IMAGE", "stepframe-test-base:bookworm")
WRAPPER_DIR = Path(__file__).resolve().parent / "bin"
HOW = (
    "start them with `bash .ci/services.sh` (engine, registry on 127.0.0.1:5000, base image, "
    "docker-compose) and install `stepframe-aws[local]`"
)
# Put on every container of a local-mode job (stepframe_aws._sagemaker.local_mode).
MODE_LABEL = "stepframe.sagemaker-local"


def unavailable(what: str) -> None:
    if REQUIRE:
        pytest.fail(f"STEPFRAME_REQUIRE_DOCKER=1 but {what}; {HOW}", pytrace=False)
    pytest.skip(f"{what} (set STEPFRAME_REQUIRE_DOCKER=1 to fail instead)")


def _engine() -> Any:
    import docker

    return docker.from_env(timeout=30)


def _real_compose() -> str | None:
    rest = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if Path(d or ".").resolve() != WRAPPER_DIR
    ]
    return shutil.which("docker-compose", path=os.pathsep.join(rest))


@pytest.fixture(scope="session")
def local_mode_host() -> Iterator[dict[str, str]]:
    """Checks everything local mode needs, puts the compose wrapper first on PATH, and
    yields the registry namespace (``registry``) and base image (``base_image``) to use."""
    try:
        client = _engine()
        client.ping()
    except Exception as error:
        unavailable(f"no Docker engine answers ({error})")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except (urllib.error.URLError, OSError) as error:
        unavailable(f"no container registry answers on {REGISTRY} ({error})")
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_IMAGE)
    except ImageNotFound:
        unavailable(f"the base image {BASE_IMAGE} does not exist")
    if _real_compose() is None:
        unavailable("docker-compose is not installed (apt-get install docker-compose)")
    if importlib.util.find_spec("sagemaker") is None:
        unavailable("the SageMaker SDK is not installed (pip install 'stepframe-aws[local]')")
    # The SDK prefers the `docker compose` plugin, which the wrapper would not see.
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if plugin.returncode == 0 and "v2" in plugin.stdout:
        unavailable(
            "the `docker compose` v2 plugin is installed: the SageMaker SDK would use it "
            "instead of the host-network wrapper tests/integration/bin/docker-compose"
        )
    saved = os.environ["PATH"]
    os.environ["PATH"] = os.pathsep.join([str(WRAPPER_DIR), saved])
    try:
        yield {"registry": f"{REGISTRY}/sftest-{uuid.uuid4().hex[:8]}", "base_image": BASE_IMAGE}
    finally:
        os.environ["PATH"] = saved


def _mode_containers() -> set[str]:
    try:
        client = _engine()
        found = client.containers.list(all=True, filters={"label": MODE_LABEL})
    except Exception:  # no engine: nothing to clean up
        return set()
    return {str(c.id) for c in found}


@pytest.fixture(scope="session", autouse=True)
def _cleanup() -> Iterator[None]:
    """Remove the local-mode containers and the pushed images' local tags made here."""
    before = _mode_containers()
    yield
    new = _mode_containers() - before
    try:
        client = _engine()
        client.ping()
    except Exception:
        return
    for container_id in new:
        with contextlib.suppress(Exception):
            client.containers.get(container_id).remove(force=True)
    for image in client.images.list():
        names = [*image.tags, *image.attrs.get("RepoDigests", [])]
        for name in (n for n in names if "/sftest-" in n):
            # noprune: the layers below stay, as the next session's build cache.
            with contextlib.suppress(Exception):
                client.images.remove(name, noprune=True)
