"""Fixtures for tests against a real Docker engine and registry (see .ci/services.sh).

Without an engine these tests skip -- unless ``STEPFRAME_REQUIRE_DOCKER=1`` (the nox
``integration`` session sets it), where a missing engine, registry or base image fails
every test instead of letting a green run hide that nothing was tested.

Every build and container uses the host network.  Images are pushed under a registry
namespace of their own per test session; containers made here are removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

import stepframe_docker
from stepframe import Component, ComponentKind, ImageRef, ImageRequest
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, EngineUnavailableError

if TYPE_CHECKING:
    import docker

REQUIRE = os.environ.get("STEPFRAME_REQUIRE_DOCKER") == "1"
REGISTRY = os.environ.get("STEPFRAME_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("STEPFRAME_TEST_BASE_IMAGE", "stepframe-test-base:bookworm")
# This test session's mark on the images it makes (registry namespaces, project names).
SESSION = uuid.uuid4().hex[:8]
HOW = "start them with `bash .ci/services.sh` (engine, registry on 127.0.0.1:5000, base image)"


def _unavailable(what: str) -> None:
    if REQUIRE:
        pytest.fail(f"STEPFRAME_REQUIRE_DOCKER=1 but {what}; {HOW}", pytrace=False)
    pytest.skip(f"{what} (set STEPFRAME_REQUIRE_DOCKER=1 to fail instead)")


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    from stepframe_docker._engine import client_for

    try:
        return client_for()
    except EngineUnavailableError as error:
        _unavailable(f"no Docker engine answers: {error}")
        raise


@pytest.fixture(scope="session")
def session_mark() -> str:
    """What this session's image names carry, so that its cleanup removes only those."""
    return SESSION


@pytest.fixture(scope="session")
def registry(engine: docker.DockerClient) -> str:
    """A registry namespace of this test session's own."""
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except (urllib.error.URLError, OSError) as error:
        _unavailable(f"no container registry answers on {REGISTRY} ({error})")
    return f"{REGISTRY}/sftest-{SESSION}"


@pytest.fixture(scope="session")
def base_image(engine: docker.DockerClient) -> str:
    from docker.errors import ImageNotFound

    try:
        engine.images.get(BASE_IMAGE)
    except ImageNotFound:
        _unavailable(f"the base image {BASE_IMAGE} does not exist")
    return BASE_IMAGE


def _job_containers() -> set[str]:
    try:
        from stepframe_docker._engine import client_for

        client = client_for()
        return {
            str(c.id) for c in client.containers.list(all=True, filters={"label": "stepframe.job"})
        }
    except Exception:  # no engine: nothing to clean up
        return set()


def _ours(name: str) -> bool:
    """Whether an image name is this session's: several sessions (and people) may use one
    engine at once, and must not remove each other's images while their tests run."""
    return f"sftest-{SESSION}" in name or name.startswith(f"stepframe-local/proj-{SESSION}")


@pytest.fixture(scope="session", autouse=True)
def _cleanup() -> Iterator[None]:
    """Remove the step containers that ended and the image tags this session made."""
    before = _job_containers()
    yield
    new = _job_containers() - before
    if not new and not REQUIRE and not os.path.exists("/var/run/docker.sock"):
        return
    try:
        from stepframe_docker._engine import client_for

        client = client_for()
    except Exception:
        return
    for container_id in new:
        with contextlib.suppress(Exception):
            container = client.containers.get(container_id)
            # Another session's step may be running now: only ended containers go.
            if container.status != "running":
                container.remove(force=True)
    for image in client.images.list():
        names = [*image.tags, *image.attrs.get("RepoDigests", [])]
        for name in filter(_ours, names):
            # noprune: the untagged layers below stay, as the next session's build cache.
            with contextlib.suppress(Exception):
                client.images.remove(name, noprune=True)


@attrs.frozen
class Builder:
    """Calls the plugin's build_image hook the way the core does."""

    registry: str
    base_image: str

    def component(self, **config: Any) -> Component:
        return Component(
            ComponentKind.IMAGE_BUILDER,
            "docker",
            "docker",
            DockerBuilderConfig(parent_image=self.base_image, **config),
        )

    def registry_component(self, uri: str | None = None) -> Component:
        return Component(
            ComponentKind.CONTAINER_REGISTRY,
            "local",
            "default",
            ContainerRegistryConfig(uri or self.registry),
        )

    def __call__(
        self,
        code_root: Path,
        settings: dict[str, Any] | None = None,
        registry: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> tuple[ImageRef, stepframe_docker.BuildReport]:
        from stepframe_docker import plugin

        request = ImageRequest(
            code_root=str(code_root),
            target_registry=self.registry_component(registry),
            settings=settings,
            progress=progress,
        )
        ref = plugin.build_image(request=request, builder=self.component())
        assert ref is not None
        return ref, stepframe_docker.build_reports()[-1]


@pytest.fixture
def build(registry: str, base_image: str) -> Iterator[Builder]:
    stepframe_docker.forget_builds()  # every test asks the registry afresh
    yield Builder(registry, base_image)
    stepframe_docker.forget_builds()


@pytest.fixture
def code(tmp_path: Path) -> Callable[..., Path]:
    """A project folder with a module; each call writes more files into it."""
    root = tmp_path / f"proj-{SESSION}-{uuid.uuid4().hex[:6]}"
    root.mkdir()

    def write(**files: str) -> Path:
        for name, text in files.items():
            path = root / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return root

    write(**{"steps.py": "def f():\n    return 1\n"})
    return write


# ---- a project on disk whose stack runs steps in containers, driven through the CLI ----

PROJECT_STACK = """\
active_stack = "containers"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}"

[step_operators.docker]
flavor = "docker"
{operator_config}
[stacks.containers]
image_builder = "docker"
container_registry = "local"
step_operators = ["docker"]
"""


@attrs.frozen
class DockerProject:
    """A project folder with a ``containers`` stack; runs ``stepframe`` in it."""

    path: Path
    env: dict[str, str]

    def stepframe(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``stepframe ARGS`` in the background, its stdout and stderr piped."""
        return subprocess.Popen(
            [sys.executable, "-m", "stepframe", *args],
            cwd=self.path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def read_until(process: subprocess.Popen[str], wanted: str) -> str:
        """What ``process`` printed up to and including the first line with ``wanted``."""
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:
            seen.append(line)
            if wanted in line:
                return "".join(seen)
        process.wait(timeout=60)
        stderr = process.stderr.read() if process.stderr is not None else ""
        pytest.fail(f"{wanted!r} never came:\n" + "".join(seen) + stderr, pytrace=False)


@pytest.fixture
def docker_project(tmp_path: Path, registry: str, base_image: str) -> Callable[..., DockerProject]:
    """``docker_project(files={"flow.py": SOURCE}, engine_retries=2, ...)``: keyword
    arguments other than ``files`` and ``env`` go into the docker operator's config."""

    def make(
        files: dict[str, str], env: dict[str, str] | None = None, **operator_config: Any
    ) -> DockerProject:
        project = tmp_path / f"proj-{SESSION}-{uuid.uuid4().hex[:6]}"
        project.mkdir()
        config = "".join(f"{key} = {value!r}\n" for key, value in operator_config.items())
        (project / "stepframe.toml").write_text(
            PROJECT_STACK.format(base_image=base_image, registry=registry, operator_config=config)
        )
        for name, text in files.items():
            (project / name).write_text(text)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
        return DockerProject(project, {**environment, **(env or {})})

    return make


FAKE_DISTRIBUTION = "stepframe-fake"


def install_fake_distribution(site: Path, code: str, origin: str) -> None:
    """``stepframe-fake`` 1.0 in ``site``, as pip leaves a normal (not editable) install
    made from ``origin`` (its ``direct_url.json``)."""
    package = site / "stepframe_fake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(code)
    info = site / "stepframe_fake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {FAKE_DISTRIBUTION}\nVersion: 1.0\n"
    )
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    (info / "direct_url.json").write_text(json.dumps({"url": origin, "dir_info": {}}))
    files = ["stepframe_fake/__init__.py", *(f"{info.name}/{n}" for n in ("METADATA", "WHEEL"))]
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in [*files, f"{info.name}/RECORD"]))


@pytest.fixture
def fake_stepframe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A client with ``stepframe-fake`` installed (normally, in a folder of its own on
    ``sys.path``) from a checkout edited since; the settings that put only it in the image.

    Tests that compare two builds use it: this repository's own checkouts are installed
    editable here and may be edited while the tests run, which rightly changes the tag.
    """
    checkout = tmp_path / "checkout"
    (checkout / "stepframe_fake").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text(
        '[project]\nname = "stepframe-fake"\nversion = "1.0"\n'
    )
    (checkout / "stepframe_fake" / "__init__.py").write_text("VALUE = 'edited after install'\n")
    site = tmp_path / "client-site"
    install_fake_distribution(site, "VALUE = 'the client runs this'\n", checkout.as_uri())
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    monkeypatch.setenv("STEPFRAME_DOCKER_CACHE", str(tmp_path / "cache"))
    return {"stepframe_packages": [FAKE_DISTRIBUTION]}


@pytest.fixture
def install_fake() -> Callable[[Path, str, str], None]:
    """`install_fake_distribution`, for tests that make another copy (a parent image's)."""
    return install_fake_distribution
