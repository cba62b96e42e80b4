"""``stepframe connector verify`` for ``azure``: who the connector is, and read-only checks
of what the components using it need.

Who: the claims of its Resource Manager token (a user's name, an application's id, a
managed identity's resource id; the object id and tenant).  Then one cheap read-only call
per resource, with the connector's tokens:

- a Blob store's container: list at most one blob below its root (the read half of
  ``Storage Blob Data Contributor``; a refusal names that role);
- an ACR registry: the Entra token exchanged for an ACR refresh token, then a token
  request for pull and push on the registry's namespace, whose grant says whether the
  principal has ``AcrPush`` (nothing is pulled or pushed);
- the workspace the connector names: read it, then ask Resource Manager which actions the
  principal has there (``Microsoft.Authorization/permissions``) and whether they include
  submitting jobs (``AzureML Data Scientist``).

Every refusal is one line naming the principal, the resource, the missing role and the
``az`` command that grants it.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from stepframe import (
    Component,
    ConnectorError,
    ConnectorReport,
    Credentials,
    ResourceRequest,
    StepframeError,
)
from stepframe_azure._connector.auth import (
    TokenSource,
    authenticate,
    principal_of,
    token_claims,
)
from stepframe_azure._connector.config import (
    MANAGEMENT_SCOPE,
    AzureConnectorConfig,
)
from stepframe_azure._connector.http import json_body

__all__ = ["verify"]

# Azure Resource Manager API versions of the two reads.
_WORKSPACE_API = "2024-10-01"
_PERMISSIONS_API = "2022-04-01"
_JOB_WRITE = "Microsoft.MachineLearningServices/workspaces/jobs/write"
_TIMEOUT = 30.0


def verify(connector: Component, resources: list[ResourceRequest]) -> ConnectorReport:
    """Authenticate, then check each resource; every refusal is one line of the error."""
    config = connector.config
    assert isinstance(config, AzureConnectorConfig)
    credentials = authenticate(connector, ResourceRequest("generic"))
    token = credentials.values["access_token"]
    principal = principal_of(token)
    object_id = str(token_claims(token).get("oid") or "OBJECT_ID")
    who = f"connector {connector.name!r} ({config.auth_method}, {principal})"
    checks: list[str] = []
    refusals: list[str] = []

    def run(check: Any, *args: Any) -> None:
        try:
            checks.append(check(credentials, *args, object_id))
        except StepframeError as error:
            refusals.append(f"{who}: {error}")

    for resource in resources:
        if resource.kind == "object_store" and resource.resource_id:
            run(_check_container, resource.resource_id)
        elif resource.kind == "container_registry" and resource.resource_id:
            run(_check_registry, resource.resource_id)
    if config.workspace:
        run(_check_workspace, config)
    if refusals:
        raise ConnectorError("\n".join(refusals))
    tenant = token_claims(token).get("tid")
    identity = principal + (f" in tenant {tenant}" if tenant else "")
    if config.subscription_id:
        identity += f" (subscription {config.subscription_id})"
    return ConnectorReport(identity=identity, checks=tuple(checks))


def _check_container(credentials: Credentials, uri: str, object_id: str) -> str:
    """List at most one blob below the store's root: read-only."""
    from stepframe_azure._blob.api import BlobApi
    from stepframe_azure._blob.uri import parse_blob_uri

    location = parse_blob_uri(uri)
    # The store's own client: it asks these credentials for a Storage token.
    api = BlobApi.for_account(location.account, credentials)
    doing = f"listing {location.uri}"
    answer = api.request(
        "GET",
        api.container_url(location),
        location,
        doing,
        params={
            "restype": "container",
            "comp": "list",
            "maxresults": "1",
            "prefix": location.name,
        },
    )
    if answer.status_code != 200:
        api.fail(answer, location, doing)
    return (
        f"blob container {location.uri}: listable (writing needs Storage Blob Data "
        "Contributor, which a read cannot show)"
    )


def _check_registry(credentials: Credentials, uri: str, object_id: str) -> str:
    from stepframe_azure._acr.config import parse_acr_uri
    from stepframe_azure._acr.login import exchange, repository_access

    try:
        address = parse_acr_uri(uri)
    except ValueError as error:
        raise StepframeError(str(error)) from None
    source = credentials.refresh
    assert isinstance(source, TokenSource)
    refresh_token = exchange(address, source.token(MANAGEMENT_SCOPE), source.connector)
    repository = f"{address.path.strip('/')}/stepframe" if address.path else "stepframe"
    granted = repository_access(address, refresh_token, repository, source.connector)
    if "push" not in granted:
        have = f"granted {', '.join(sorted(granted))} only" if granted else "granted nothing"
        raise StepframeError(
            f"registry {address.uri}: may not push images ({have}); grant AcrPush (`az role "
            f"assignment create --assignee {object_id} --role AcrPush --scope $(az acr show "
            f"--name {address.name} --query id -o tsv)`)"
        )
    return f"container registry {address.uri}: login works, push allowed (AcrPush)"


def _check_workspace(credentials: Credentials, config: AzureConnectorConfig, object_id: str) -> str:
    source = credentials.refresh
    assert isinstance(source, TokenSource)
    workspace = (
        f"/subscriptions/{config.subscription_id}/resourceGroups/{config.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{config.workspace}"
    )
    base = config.management_endpoint.rstrip("/")
    token = source.token(MANAGEMENT_SCOPE)
    grant = (
        f'`az role assignment create --assignee {object_id} --role "AzureML Data '
        f'Scientist" --scope {workspace}`'
    )
    answer = _get(f"{base}{workspace}", _WORKSPACE_API, token)
    if answer.status_code in (401, 403):
        raise StepframeError(
            f"workspace {config.workspace}: may not read it ({_arm_error(answer)}); grant "
            f"AzureML Data Scientist on the workspace ({grant})"
        )
    if answer.status_code == 404:
        raise StepframeError(
            f"workspace {config.workspace}: not found in resource group "
            f"{config.resource_group} of subscription {config.subscription_id} "
            f"({_arm_error(answer)}); check --subscription-id, --resource-group and "
            "--workspace (`az ml workspace list --query [].id`)"
        )
    if answer.status_code != 200:
        raise StepframeError(
            f"workspace {config.workspace}: Resource Manager answered {_arm_error(answer)}"
        )
    permissions = _get(
        f"{base}{workspace}/providers/Microsoft.Authorization/permissions", _PERMISSIONS_API, token
    )
    if permissions.status_code != 200:
        raise StepframeError(
            f"workspace {config.workspace}: cannot list the principal's permissions there "
            f"({_arm_error(permissions)})"
        )
    if not _allows(json_body(permissions).get("value") or [], _JOB_WRITE):
        raise StepframeError(
            f"workspace {config.workspace}: may read it but not submit jobs ({_JOB_WRITE} is "
            f"not among its permissions); grant AzureML Data Scientist ({grant})"
        )
    return f"azureml workspace {config.workspace}: readable, jobs may be submitted"


def _allows(entries: list[Any], action: str) -> bool:
    """Whether Resource Manager's permission entries allow ``action`` (wildcards as Azure
    matches them, case-insensitively; ``notActions`` subtract)."""
    wanted = action.lower()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        allowed = any(fnmatch.fnmatchcase(wanted, str(a).lower()) for a in entry.get("actions", []))
        denied = any(
            fnmatch.fnmatchcase(wanted, str(a).lower()) for a in entry.get("notActions", [])
        )
        if allowed and not denied:
            return True
    return False


def _get(url: str, api_version: str, token: str) -> Any:
    import requests

    try:
        return requests.get(
            url,
            params={"api-version": api_version},
            headers={"Authorization": f"Bearer {token}"},
            timeout=_TIMEOUT,
        )
    except requests.RequestException as error:
        host = url.split("://", 1)[-1].split("/", 1)[0]
        raise StepframeError(
            f"cannot reach Azure Resource Manager at {host} ({type(error).__name__}); check "
            "the network, any proxy settings and the connector's management_endpoint"
        ) from None


def _arm_error(answer: Any) -> str:
    error = json_body(answer).get("error")
    if isinstance(error, dict):
        return f"{answer.status_code} {error.get('code')}: {error.get('message', '')}".strip()
    return f"{answer.status_code} {answer.reason}"
