"""Docker login to Azure Container Registry through the ``azure`` connector.

What ``az acr login`` does: the connector's Entra ID token (Azure Resource Manager scope)
is exchanged at ``https://NAME.azurecr.io/oauth2/exchange`` for an ACR refresh token,
which docker uses as the password of the user ``00000000-0000-0000-0000-000000000000``.
ACR then hands docker access tokens per repository from it, with the actions the
principal's roles allow (AcrPull, AcrPush).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepframe import ConfigError, ConnectorError, Credentials, ResourceRequest
from stepframe_azure._acr.config import AcrAddress, parse_acr_uri
from stepframe_azure._connector.config import MANAGEMENT_SCOPE
from stepframe_azure._connector.http import json_body

if TYPE_CHECKING:
    from stepframe_azure._connector.auth import TokenSource

__all__ = ["ACR_USERNAME", "exchange", "registry_login", "repository_access"]

# The user name ACR takes with a refresh token as the password.
ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
_TIMEOUT = 30.0


def registry_login(source: TokenSource, resource: ResourceRequest) -> Credentials:
    """Docker login values (``username``, ``password``, ``registry``) for the registry
    ``resource.resource_id`` names; `ConfigError` when it is not an ACR login server."""
    address = _address(source.connector, resource.resource_id)
    entra = source.token(MANAGEMENT_SCOPE)
    refresh_token = exchange(address, entra, source.connector)
    from stepframe_azure._connector.auth import token_claims

    expires = token_claims(refresh_token).get("exp")
    expires_at = (
        float(expires)
        if isinstance(expires, (int, float))
        else source.token_expiry(MANAGEMENT_SCOPE)
    )

    def refresh() -> Credentials:
        return registry_login(source, resource)

    return Credentials(
        connector=source.connector,
        resource=resource,
        values={
            "username": ACR_USERNAME,
            "password": refresh_token,
            "registry": f"https://{address.host}",
        },
        expires_at=expires_at,
        refresh=refresh,
    )


def exchange(address: AcrAddress, entra_token: str, connector: str) -> str:
    """An ACR refresh token for ``entra_token`` (``POST /oauth2/exchange``)."""
    from stepframe_azure._connector.auth import principal_of, token_claims

    form = {
        "grant_type": "access_token",
        "service": address.host,
        "access_token": entra_token,
    }
    tenant = token_claims(entra_token).get("tid")
    if tenant:
        form["tenant"] = str(tenant)
    answer = _post(f"https://{address.host}/oauth2/exchange", form, address, connector)
    if answer.status_code == 200:
        token = json_body(answer).get("refresh_token")
        if isinstance(token, str) and token:
            return token
    who = principal_of(entra_token)
    assignee = token_claims(entra_token).get("oid") or "OBJECT_ID"
    reason = _reason(answer)
    if answer.status_code in (401, 403):
        raise ConnectorError(
            f"connector {connector!r} ({who}): registry {address.host} refused its Entra ID "
            f"token ({answer.status_code}: {reason}); grant it AcrPush on the registry "
            f"(`az role assignment create --assignee {assignee} --role AcrPush --scope "
            f"$(az acr show --name {address.name} --query id -o tsv)`), and check the "
            "registry allows Entra ID authentication"
        )
    if answer.status_code == 404:
        raise ConnectorError(
            f"connector {connector!r}: registry {address.host} has no token exchange "
            f"({answer.status_code}: {reason}); check the registry's uri (`az acr show --name "
            f"{address.name} --query loginServer`)"
        )
    raise ConnectorError(
        f"connector {connector!r}: registry {address.host} answered the token exchange with "
        f"{answer.status_code} ({reason}); try again, or check the registry's status"
    )


def repository_access(
    address: AcrAddress, refresh_token: str, repository: str, connector: str
) -> set[str]:
    """The actions (``pull``, ``push``) ACR grants on ``repository`` with this refresh
    token: a token request only, nothing is pulled or pushed."""
    from stepframe_azure._connector.auth import token_claims

    form = {
        "grant_type": "refresh_token",
        "service": address.host,
        "scope": f"repository:{repository}:pull,push",
        "refresh_token": refresh_token,
    }
    answer = _post(f"https://{address.host}/oauth2/token", form, address, connector)
    if answer.status_code in (401, 403):
        return set()
    if answer.status_code != 200:
        raise ConnectorError(
            f"registry {address.host} answered a token request for {repository} with "
            f"{answer.status_code} ({_reason(answer)})"
        )
    token = json_body(answer).get("access_token")
    granted: set[str] = set()
    for entry in token_claims(str(token or "")).get("access") or ():
        if isinstance(entry, dict) and entry.get("name") == repository:
            granted.update(str(action) for action in entry.get("actions") or ())
    return granted


def _address(connector: str, uri: str | None) -> AcrAddress:
    try:
        return parse_acr_uri(uri or "")
    except ValueError:
        host = (uri or "").split("://", 1)[-1].split("/", 1)[0]
        raise ConfigError(
            f"connector {connector!r} (azure) logs in to Azure Container Registry "
            f"(NAME.azurecr.io), not {host or 'an empty registry uri'!r}; set the container "
            "registry's uri to its login server (`az acr show --name NAME --query loginServer`)"
        ) from None


def _post(url: str, form: dict[str, str], address: AcrAddress, connector: str) -> Any:
    import requests

    try:
        return requests.post(url, data=form, timeout=_TIMEOUT)
    except requests.RequestException as error:
        raise ConnectorError(
            f"connector {connector!r}: cannot reach registry {address.host} "
            f"({type(error).__name__}); check the registry's uri, the network and any proxy "
            "settings"
        ) from None


def _reason(answer: Any) -> str:
    body = json_body(answer)
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or errors[0].get("code") or answer.reason)
    return str(body.get("error_description") or body.get("error") or answer.reason or "")
