"""azure-identity's refusals as one-line stepframe errors that say what to fix.

A refused token request names the connector, its auth method, the principal it tried to
act as (the client id, never the secret), what Entra ID said (its AADSTS code and first
sentence: no trace or correlation ids) and the fix for that code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from stepframe import ConnectorError
from stepframe_azure._connector.config import AzureConnectorConfig

__all__ = ["principal_named", "renewal", "token_errors"]

_AADSTS = re.compile(r"(AADSTS\d+):?\s*([^\r\n]*)")

# What each Entra ID error means for the user of a connector.
_FIXES = {
    # Invalid client secret provided.
    "AADSTS7000215": "the client_secret is not this application's; make one and keep it: {renew}",
    # The provided client secret keys are expired.
    "AADSTS7000222": "the client secret has expired; make one and keep it: {renew}",
    # Application not found in the directory.
    "AADSTS700016": (
        "no application {client} in tenant {tenant}; check client_id (the appId) and "
        "tenant_id (`az ad sp show --id {client}`)"
    ),
    # Tenant not found.
    "AADSTS90002": (
        "tenant {tenant} does not exist; check tenant_id (`az account show --query tenantId`)"
    ),
    "AADSTS900023": "tenant_id {tenant} is not a tenant id or domain; check tenant_id",
    # The certificate is not registered for the application.
    "AADSTS700027": (
        "the certificate is not registered for application {client}; upload it with `az ad "
        "app credential reset --id {client} --cert @cert.pem --append`"
    ),
    # Application disabled / service principal disabled.
    "AADSTS7000112": "application {client} is disabled in tenant {tenant}; ask its owner",
}
_DEFAULT_FIX = "check the connector's settings, then run `stepframe connector verify`"
_UNAVAILABLE = {
    "implicit": (
        "no Azure identity on this machine: run `az login`, set AZURE_CLIENT_ID, "
        "AZURE_TENANT_ID and AZURE_CLIENT_SECRET, or use auth_method 'service-principal'"
    ),
    "managed-identity": (
        "no managed identity answers here (this is not an Azure VM, App Service or "
        "container with an identity); use auth_method 'service-principal' or 'implicit' "
        "off Azure"
    ),
}


def renewal(reference: str | None, produce: str) -> str:
    """The command that puts a new secret, printed by ``produce``, where ``reference``
    points: the stepframe secret it names, or the environment variable of an ``env:VAR``
    reference (``stepframe secret set`` takes names only)."""
    if reference and reference.startswith("env:"):
        return f'`export {reference.removeprefix("env:")}="$({produce})"`'
    return f"`{produce} | stepframe secret set {reference or 'NAME'}`"


def principal_named(config: AzureConnectorConfig) -> str:
    """Who the configuration says the connector acts as, before any token is had."""
    method = config.auth_method
    if method.startswith("service-principal"):
        return f"service principal {config.client_id} in tenant {config.tenant_id}"
    if method == "managed-identity":
        if config.client_id:
            return f"user-assigned managed identity {config.client_id}"
        return "the system-assigned managed identity"
    if method == "access-token":
        return "the owner of the access token"
    return "the default Azure credential"


@contextmanager
def token_errors(connector: str, config: AzureConnectorConfig) -> Iterator[None]:
    """Turn azure-identity errors raised while getting a token into `ConnectorError`."""
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

    method = config.auth_method
    where = f"connector {connector!r} ({method}, {principal_named(config)})"
    names = {
        "client": config.client_id or "CLIENT_ID",
        "tenant": config.tenant_id or "TENANT_ID",
        "renew": renewal(
            config.client_secret,
            f"az ad app credential reset --id {config.client_id or 'CLIENT_ID'} "
            "--query password -o tsv",
        ),
    }
    try:
        yield
    except ClientAuthenticationError as error:
        text = str(error.message if error.message else error)
        if _caused_by(error, ServiceRequestError):
            # azure-identity wraps a failed connection (no route, proxy, DNS) in the same
            # error as a refusal; Entra ID said nothing.
            raise ConnectorError(
                f"{where}: cannot reach Entra ID at {config.authority} "
                f"({_first_sentence(text).removeprefix('Authentication failed: ')}); check the "
                "network and any proxy settings (HTTPS_PROXY, NO_PROXY)"
            ) from None
        found = _AADSTS.search(text)
        if found:
            code = found.group(1)
            said = f"{code}: {_first_sentence(found.group(2))}"
            fix = _FIXES.get(code, _DEFAULT_FIX).format(**names)
        elif "Unable to get authority configuration" in text:
            # msal could not read the tenant's OpenID configuration: Entra knows no such
            # tenant (its AADSTS90002 answer is not passed on).
            said = f"no OpenID configuration for tenant {names['tenant']} at {config.authority}"
            fix = _FIXES["AADSTS90002"].format(**names)
        elif _is_unavailable(error) and method in _UNAVAILABLE:
            raise ConnectorError(
                f"{where}: no credential to ask for a token ({_first_sentence(text)}); "
                f"{_UNAVAILABLE[method]}"
            ) from None
        else:
            said, fix = _first_sentence(text), _DEFAULT_FIX
        raise ConnectorError(
            f"{where}: Entra ID refused the token request ({said}); {fix}"
        ) from None
    except ServiceRequestError as error:
        raise ConnectorError(
            f"{where}: cannot reach Entra ID at {config.authority} "
            f"({_first_sentence(str(error))}); check the network and any proxy settings "
            "(HTTPS_PROXY, NO_PROXY)"
        ) from None


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, kind):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _is_unavailable(error: Exception) -> bool:
    """No identity to ask at all (as opposed to one that Entra ID refused)."""
    from azure.identity import CredentialUnavailableError

    # DefaultAzureCredential raises the plain error when every credential was unavailable.
    return isinstance(
        error, CredentialUnavailableError
    ) or "failed to retrieve a token from the included credentials" in str(error)


def _first_sentence(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no reason given"
    # Entra ID appends "Trace ID: ... Correlation ID: ... Timestamp: ...".
    line = re.split(r"\s*Trace ID:", line, maxsplit=1)[0]
    return line.strip()
