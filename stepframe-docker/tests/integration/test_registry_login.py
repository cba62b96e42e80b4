"""The docker builder against a registry that wants a login (htpasswd basic auth).

The login comes from the container registry's connector: the core asks the connector's
``authenticate`` hook for ``ResourceRequest("container_registry", uri)`` and hands the
answer to the builder as ``ImageRequest.registry_credentials``; the builder passes it to
the engine for the registry lookup and the push.  The engine itself has no login for
this registry (a fresh port each session, and no ``docker login`` here), so whatever
works, works through those credentials.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

import stepframe_docker
from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    ImageRef,
    ImageRequest,
    ResourceRequest,
    SecretRef,
    hookimpl,
    resolve_secret,
)
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, RegistryError

if TYPE_CHECKING:
    import docker

REQUIRE = os.environ.get("STEPFRAME_REQUIRE_DOCKER") == "1"
USERNAME = "sftest-user"
PASSWORD_ENV = "SFTEST_REGISTRY_PASSWORD"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def _unavailable(what: str, how: str) -> None:
    """As conftest.py does: skip, or fail when STEPFRAME_REQUIRE_DOCKER=1."""
    if REQUIRE:
        pytest.fail(f"STEPFRAME_REQUIRE_DOCKER=1 but {what}; {how}", pytrace=False)
    pytest.skip(f"{what} (set STEPFRAME_REQUIRE_DOCKER=1 to fail instead)")


@attrs.frozen
class AuthRegistry:
    """A Distribution registry on 127.0.0.1 that only answers to one user."""

    host: str
    username: str
    password: str
    #: a namespace of this session's own, where images are pushed.
    namespace: str

    def get(self, path: str, *, login: bool = True, accept: str = "") -> tuple[int, Any]:
        """GET ``/v2/PATH`` straight from the registry: (status, headers)."""
        request = urllib.request.Request(f"http://{self.host}/v2/{path}")
        if login:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.headers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answer(host: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


@pytest.fixture(scope="module")
def auth_registry(
    engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory, session_mark: str
) -> Iterator[AuthRegistry]:
    """``docker-registry serve`` with htpasswd auth on a free port; stopped at the end."""
    binary = shutil.which("docker-registry")
    if binary is None:
        _unavailable("the docker-registry binary is not installed", "run `bash .ci/services.sh`")
    try:
        import bcrypt
    except ImportError:
        _unavailable("the bcrypt package is not installed", "`pip install bcrypt`")
    root = tmp_path_factory.mktemp("auth-registry")
    password = secrets.token_urlsafe(16)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    (root / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
    host = f"127.0.0.1:{_free_port()}"
    config = root / "registry.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: {root / "data"}
            http:
              addr: {host}
              secret: {secrets.token_hex(16)}
            auth:
              htpasswd:
                realm: stepframe-test
                path: {root / "htpasswd"}
            """
        )
    )
    log = root / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while _answer(host) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        status = _answer(host)
        if status != 401:
            pytest.fail(
                f"the auth registry on {host} answered {status} on /v2/ without a login "
                f"(exit code {process.poll()}):\n{log.read_text()[-3000:]}",
                pytrace=False,
            )
        # The engine's client must have no login of its own for this registry, or the
        # tests without credentials would pass for the wrong reason.
        from docker import auth

        assert auth.resolve_authconfig(auth.load_config(), host) is None
        yield AuthRegistry(
            host,
            USERNAME,
            password,
            f"{host}/sftest-{session_mark}-login-{uuid.uuid4().hex[:8]}",
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ---- a connector plugin object, registered for one test ----------------------------


@attrs.frozen
class LoginConnectorConfig:
    username: str
    password: SecretRef


class LoginConnector:
    """A connector flavor that hands out a registry login (username and password)."""

    flavor = "sftest-registry-login"

    def __init__(self) -> None:
        self.asked: list[ResourceRequest] = []

    @hookimpl
    def register_flavors(self, register: Callable[[Flavor], None]) -> None:
        register(
            Flavor(
                kind=ComponentKind.CONNECTOR, name=self.flavor, config_class=LoginConnectorConfig
            )
        )

    @hookimpl
    def authenticate(self, connector: Component, resource: ResourceRequest) -> Credentials | None:
        if connector.flavor != self.flavor:
            return None
        self.asked.append(resource)
        config = connector.config
        values = {"username": config.username, "password": resolve_secret(config.password)}
        if resource.kind == "container_registry" and resource.resource_id:
            values["registry"] = resource.resource_id.split("/")[0]
        return Credentials(connector=connector.name, resource=resource, values=values)


# Only the core in the image: other editable plugins in a dev venv (stepframe-aws) go in as
# wheels of their checkout, and an edit there between the two runs would change the tag.
PIPELINE = """\
import os

from stepframe import pipeline, step


@step(operator="docker", settings={"docker": {"stepframe_packages": ["stepframe-core"]}})
def shout(word: str) -> str:
    return word.upper() + (" in a container" if os.path.exists("/.dockerenv") else "")


@pipeline
def login_flow(word: str = "pushed") -> None:
    shout(word)
"""

STACK = """\
active_stack = "login"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[connectors.registry-login]
flavor = "{flavor}"
username = "{username}"
password = "env:{password_env}"

[container_registries.default]
flavor = "default"
uri = "{registry}"
connector = "registry-login"

[step_operators.docker]
flavor = "docker"

[stacks.login]
image_builder = "docker"
container_registry = "default"
step_operators = ["docker"]
"""


@pytest.fixture
def login_project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    auth_registry: AuthRegistry,
    base_image: str,
    session_mark: str,
) -> Iterator[Callable[[str], tuple[Any, LoginConnector, Any]]]:
    """``make(password)``: a project whose stack pushes to the auth registry through the
    test connector (handing out ``password``); returns (project, connector, pipeline)."""
    from stepframe.testing import TempProject, make_plugins

    made: list[Any] = []

    def make(password: str) -> tuple[Any, LoginConnector, Any]:
        root = tmp_path / f"proj-{session_mark}-{uuid.uuid4().hex[:6]}"
        root.mkdir()
        monkeypatch.chdir(root)
        monkeypatch.setattr(sys, "path", list(sys.path))
        monkeypatch.delenv("STEPFRAME_STACK", raising=False)
        monkeypatch.setenv(PASSWORD_ENV, password)
        connector = LoginConnector()
        plugins = make_plugins(("sftest-registry-login", connector), load=("docker",))
        project = TempProject(root, plugins)
        project.store()
        project.write_config(
            STACK.format(
                base_image=base_image,
                flavor=LoginConnector.flavor,
                username=auth_registry.username,
                password_env=PASSWORD_ENV,
                registry=auth_registry.namespace,
            )
        )
        made.append(project)
        return project, connector, project.load(PIPELINE, "login_flow")

    stepframe_docker.forget_builds()
    yield make
    stepframe_docker.forget_builds()
    for project in made:
        for name in project.modules:
            sys.modules.pop(name, None)


def _reports_for(namespace: str) -> list[stepframe_docker.BuildReport]:
    return [r for r in stepframe_docker.build_reports() if r.uri.startswith(namespace + "/")]


def test_pipeline_pushes_with_the_connectors_login_and_finds_the_tag_again(
    login_project: Callable[[str], tuple[Any, LoginConnector, Any]],
    auth_registry: AuthRegistry,
    engine: docker.DockerClient,
) -> None:
    project, connector, flow = login_project(auth_registry.password)
    result = project.run(flow, "pushed")
    assert result.output("shout") == "PUSHED in a container", project.output
    # The core asked the registry's connector for a login to the registry's uri.
    assert ResourceRequest("container_registry", auth_registry.namespace) in connector.asked
    (report,) = _reports_for(auth_registry.namespace)
    assert report.action == "built", report
    assert report.digest is not None and report.digest.startswith("sha256:")
    # The registry itself has the tag, under the digest the builder returned ...
    repository, tag = report.uri[len(auth_registry.host) + 1 :].rsplit(":", 1)
    status, headers = auth_registry.get(f"{repository}/manifests/{tag}", accept=MANIFEST_TYPES)
    assert status == 200
    assert headers["Docker-Content-Digest"] == report.digest
    # ... and keeps it from anyone without the login.
    assert auth_registry.get(f"{repository}/manifests/{tag}", login=False)[0] == 401

    # A new process would ask the registry (with the login) and find the tag: no build.
    stepframe_docker.forget_builds()  # the reports go too
    again = project.run(flow, "again")
    assert again.output("shout") == "AGAIN in a container", project.output
    (second,) = _reports_for(auth_registry.namespace)
    assert second.action == "in-registry", second
    assert (second.uri, second.digest) == (report.uri, report.digest)
    assert second.steps == 0 and second.pushed_bytes == 0


def test_pipeline_with_a_wrong_password_fails_naming_the_registry(
    login_project: Callable[[str], tuple[Any, LoginConnector, Any]],
    auth_registry: AuthRegistry,
) -> None:
    from stepframe.exceptions import RunFailed

    wrong = "wrong-" + secrets.token_hex(8)
    project, connector, flow = login_project(wrong)
    with pytest.raises(RunFailed) as caught:
        project.run(flow, "denied")
    message = str(caught.value.failures["shout"])
    assert "RegistryError" in message, message
    assert f"the container registry {auth_registry.namespace} refused access" in message
    assert f"`docker login {auth_registry.host}`" in message
    assert ResourceRequest("container_registry", auth_registry.namespace) in connector.asked
    assert wrong not in str(caught.value) + project.output
    assert not _reports_for(auth_registry.namespace)


# ---- the builder hook called directly, the way the core calls it -------------------


@pytest.fixture
def build_with(
    auth_registry: AuthRegistry, base_image: str, code: Callable[..., Path]
) -> Iterator[Callable[[Credentials | None], ImageRef]]:
    """``build_with(credentials)``: build a fresh project for the auth registry."""
    from stepframe_docker import plugin

    builder = Component(
        ComponentKind.IMAGE_BUILDER,
        "docker",
        "docker",
        DockerBuilderConfig(parent_image=base_image),
    )
    registry = Component(
        ComponentKind.CONTAINER_REGISTRY,
        "default",
        "default",
        ContainerRegistryConfig(auth_registry.namespace),
    )

    def build(credentials: Credentials | None) -> ImageRef:
        request = ImageRequest(
            code_root=str(code()), target_registry=registry, registry_credentials=credentials
        )
        ref = plugin.build_image(request=request, builder=builder)
        assert ref is not None
        return ref

    stepframe_docker.forget_builds()
    yield build
    stepframe_docker.forget_builds()


def _login(registry: AuthRegistry, password: str) -> Credentials:
    resource = ResourceRequest("container_registry", registry.namespace)
    values = {"username": registry.username, "password": password, "registry": registry.host}
    return Credentials(connector="registry-login", resource=resource, values=values)


def _assert_clear_refusal(error: RegistryError, registry: AuthRegistry) -> None:
    message = str(error)
    assert f"the container registry {registry.namespace} refused access" in message, message
    assert f"`docker login {registry.host}`" in message, message
    assert "connector" in message, message
    assert "unreachable" not in message, message


def test_without_credentials_the_refusal_names_the_registry_and_the_fix(
    build_with: Callable[[Credentials | None], ImageRef], auth_registry: AuthRegistry
) -> None:
    with pytest.raises(RegistryError) as caught:
        build_with(None)
    _assert_clear_refusal(caught.value, auth_registry)


def test_a_wrong_password_is_refused_clearly_and_not_shown(
    build_with: Callable[[Credentials | None], ImageRef], auth_registry: AuthRegistry
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    with pytest.raises(RegistryError) as caught:
        build_with(_login(auth_registry, wrong))
    _assert_clear_refusal(caught.value, auth_registry)
    # A login was sent and refused (the engine says so differently when none is sent).
    assert "no basic auth credentials" not in str(caught.value)
    assert wrong not in str(caught.value)
    assert auth_registry.password not in str(caught.value)
