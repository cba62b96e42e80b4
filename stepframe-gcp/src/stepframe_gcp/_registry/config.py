"""Configuration of the ``artifact-registry`` container registry (attrs only)."""

from __future__ import annotations

import re

import attrs

__all__ = ["ArtifactRegistryConfig", "RegistryAddress", "parse_registry_uri"]

FLAVOR = "artifact-registry"
# LOCATION-docker.pkg.dev/PROJECT/REPOSITORY: Artifact Registry's Docker address.
# Compiled on first use (re's cache), not at plugin load.
_URI = (
    r"^(?P<host>(?P<location>[a-z]+(?:-[a-z]+[0-9]*)*)-docker\.pkg\.dev)"
    r"/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])"
    r"/(?P<repository>[a-z]([a-z0-9-]{0,61}[a-z0-9])?)$"
)


@attrs.frozen
class RegistryAddress:
    host: str
    location: str
    project: str
    repository: str

    @property
    def uri(self) -> str:
        return f"{self.host}/{self.project}/{self.repository}"

    @property
    def resource_name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.repository}"


def parse_registry_uri(uri: str) -> RegistryAddress:
    """``LOCATION-docker.pkg.dev/PROJECT/REPOSITORY`` as its parts; ValueError otherwise."""
    found = re.match(_URI, uri.split("://", 1)[-1].rstrip("/"))
    if found is None:
        raise ValueError(
            f"{uri!r} is not an Artifact Registry Docker repository; expected "
            "LOCATION-docker.pkg.dev/PROJECT/REPOSITORY (e.g. "
            "europe-west4-docker.pkg.dev/my-project/steps)"
        )
    return RegistryAddress(
        found.group("host"), found.group("location"), found.group("project"),
        found.group("repository"),
    )  # fmt: skip


def _uri(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    parse_registry_uri(value)


@attrs.frozen
class ArtifactRegistryConfig:
    """An Artifact Registry Docker repository that step images are pushed to.

    :param uri: ``LOCATION-docker.pkg.dev/PROJECT/REPOSITORY``; images go below it.
    :param create_repositories: create the repository on the first push when it is
        missing; turn off where repositories are managed elsewhere (a push to a missing
        one then fails with a message naming it).
    :param api_endpoint: the Artifact Registry API endpoint; default
        ``https://artifactregistry.googleapis.com``.
    """

    uri: str = attrs.field(validator=_uri)
    create_repositories: bool = True
    api_endpoint: str | None = None

    @property
    def address(self) -> RegistryAddress:
        return parse_registry_uri(self.uri)

    @property
    def endpoint(self) -> str:
        return (self.api_endpoint or "https://artifactregistry.googleapis.com").rstrip("/")
