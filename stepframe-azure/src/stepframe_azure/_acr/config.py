"""Configuration of the ``acr`` container registry (attrs only: no azure module at load)."""

from __future__ import annotations

import re

import attrs

__all__ = ["FLAVOR", "AcrAddress", "AcrConfig", "parse_acr_uri"]

FLAVOR = "acr"
# Azure's rules: a registry name is 5-50 letters and digits; its login server is
# NAME.azurecr.io (.azurecr.cn, .azurecr.us in sovereign clouds), all lowercase.  Images
# may go below a namespace (NAME.azurecr.io/team/steps).
_URI = re.compile(
    r"^(?P<host>(?P<name>[a-z0-9]{5,50})\.azurecr\.(?:io|cn|us))"
    r"(?P<path>(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)$"
)


@attrs.frozen
class AcrAddress:
    host: str
    name: str
    path: str

    @property
    def uri(self) -> str:
        return self.host + self.path


def parse_acr_uri(uri: str) -> AcrAddress:
    """``NAME.azurecr.io[/NAMESPACE...]`` as its parts; ValueError otherwise."""
    text = uri.split("://", 1)[-1].rstrip("/")
    found = _URI.match(text)
    if found is None:
        raise ValueError(
            f"uri {uri!r} is not an Azure Container Registry; expected its login server "
            "NAME.azurecr.io, NAME being the registry's 5-50 lowercase letters and digits "
            "(`az acr show --name NAME --query loginServer`), optionally with a namespace "
            "(NAME.azurecr.io/steps)"
        )
    return AcrAddress(found.group("host"), found.group("name"), found.group("path"))


def _uri(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    parse_acr_uri(value)


@attrs.frozen
class AcrConfig:
    """An Azure Container Registry that step images are pushed to.

    ACR creates a repository on the first push, so there is nothing to prepare.  Docker
    logs in through the registry's ``azure`` connector: its Entra ID token is exchanged
    for an ACR refresh token, as ``az acr login`` does.

    :param uri: the login server ``NAME.azurecr.io``, optionally with a namespace
        (``NAME.azurecr.io/steps``); images go below it.
    """

    uri: str = attrs.field(validator=_uri)

    @property
    def address(self) -> AcrAddress:
        return parse_acr_uri(self.uri)
