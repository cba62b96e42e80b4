"""The ``artifact-registry`` container registry: its address, the connector's docker
login for it, and the repository made ready before a push (through the real API client,
against the loopback test service's Artifact Registry routes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _vertex_service import VertexService
from stepframe_gcp import ArtifactRegistryConfig, GcpConnectorConfig
from stepframe_gcp._connector.auth import authenticate
from stepframe_gcp._registry.repository import ensure_repository

from stepframe import (
    Component,
    ComponentKind,
    ConfigError,
    Credentials,
    ResourceRequest,
    SecretRef,
)

URI = "europe-west4-docker.pkg.dev/test-project/steps"
CREDENTIALS = Credentials("gcp", ResourceRequest("generic"), {"access_token": "ya29.test"})


@pytest.fixture
def service() -> Iterator[VertexService]:
    started = VertexService(run_containers=False).start()
    try:
        yield started
    finally:
        started.stop()


def registry(service: VertexService, **config: object) -> Component:
    return Component(
        ComponentKind.CONTAINER_REGISTRY,
        "ar",
        "artifact-registry",
        ArtifactRegistryConfig(uri=URI, api_endpoint=service.url, **config),  # type: ignore[arg-type]
    )


def test_the_connector_logs_docker_in_with_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TOKEN", "ya29.registry-token")
    connector = Component(
        ComponentKind.CONNECTOR, "gcp", "gcp",
        GcpConnectorConfig(auth_method="oauth2-token", token=SecretRef("env:TEST_TOKEN")),
    )  # fmt: skip

    login = authenticate(connector, ResourceRequest("container_registry", URI))

    assert login.values["username"] == "oauth2accesstoken"
    assert login.values["password"] == "ya29.registry-token"
    assert login.values["registry"] == "https://europe-west4-docker.pkg.dev"
    with pytest.raises(
        ConfigError, match=r"logs in to Artifact Registry .*not '127\.0\.0\.1:5000'"
    ):
        authenticate(connector, ResourceRequest("container_registry", "127.0.0.1:5000/steps"))


@pytest.mark.parametrize(
    "uri",
    [
        "gcr.io/test-project",
        "europe-west4-docker.pkg.dev/test-project",
        "europe-west4-docker.pkg.dev/Test-Project/steps",
        "europe-west4-docker.pkg.dev/test-project/steps/extra",
    ],
)
def test_a_wrong_registry_uri_is_refused_naming_the_shape(uri: str) -> None:
    with pytest.raises(ValueError, match=r"expected LOCATION-docker\.pkg\.dev/PROJECT/REPOSITORY"):
        ArtifactRegistryConfig(uri=uri)


def test_a_missing_repository_is_created_once(service: VertexService) -> None:
    image = f"{URI}/training"

    assert ensure_repository(registry(service), image, CREDENTIALS) is True
    assert ensure_repository(registry(service), image, CREDENTIALS) is True

    name = "projects/test-project/locations/europe-west4/repositories/steps"
    assert list(service.repositories) == [name]
    assert service.repositories[name]["format"] == "DOCKER"
    assert [kind for kind, _, _ in service.requests].count("create-repository") == 1


def test_with_creation_off_a_missing_repository_names_the_command(service: VertexService) -> None:
    with pytest.raises(ConfigError) as raised:
        ensure_repository(registry(service, create_repositories=False), f"{URI}/t", CREDENTIALS)
    assert "gcloud artifacts repositories create steps --repository-format=docker" in str(
        raised.value
    )
    assert service.repositories == {}


def test_a_push_outside_the_registry_is_refused(service: VertexService) -> None:
    with pytest.raises(ConfigError, match="is not inside its repository"):
        ensure_repository(
            registry(service), "europe-west4-docker.pkg.dev/other/repo/t", CREDENTIALS
        )
