"""Configuration of the ``azure`` connector (attrs only: no azure module at plugin load).

Every rule here runs when the connector is registered (``stepframe connector register``
structures the options into this class), so a malformed subscription id or a method
without its secret is refused then, in one line naming the setting and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from stepframe import SecretRef
from stepframe_azure._names import GUID, RESOURCE_GROUP, WORKSPACE

__all__ = [
    "AUTH_METHODS",
    "DEFAULT_AUTHORITY",
    "DEFAULT_MANAGEMENT_ENDPOINT",
    "MANAGEMENT_SCOPE",
    "STORAGE_SCOPE",
    "AzureConnectorConfig",
]

FLAVOR = "azure"

AUTH_METHODS = (
    "implicit",
    "service-principal",
    "service-principal-certificate",
    "managed-identity",
    "access-token",
)
DEFAULT_AUTHORITY = "login.microsoftonline.com"
DEFAULT_MANAGEMENT_ENDPOINT = "https://management.azure.com"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
STORAGE_SCOPE = "https://storage.azure.com/.default"

# A tenant is its id (a GUID) or one of its verified domains (contoso.onmicrosoft.com).
_DOMAIN = re.compile(
    r"^(?=.{4,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$"
)
_HOST = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[0-9]{1,5})?$")

# What each method needs and which method-specific fields it reads: a field set for a
# method that ignores it is almost always a mistake (a secret under `implicit`).
_NEEDS: dict[str, tuple[str, ...]] = {
    "implicit": (),
    "service-principal": ("tenant_id", "client_id", "client_secret"),
    "service-principal-certificate": ("tenant_id", "client_id", "certificate"),
    "managed-identity": (),
    "access-token": ("token",),
}
_ALLOWED: dict[str, tuple[str, ...]] = {
    "implicit": ("client_id",),
    "service-principal": ("tenant_id", "client_id", "client_secret"),
    "service-principal-certificate": (
        "tenant_id",
        "client_id",
        "certificate",
        "certificate_password",
    ),
    "managed-identity": ("client_id",),
    "access-token": ("token",),
}
_METHOD_FIELDS = (
    "tenant_id",
    "client_id",
    "client_secret",
    "certificate",
    "certificate_password",
    "token",
)
_FIX: dict[str, str] = {
    "tenant_id": "the directory (tenant) id: `az account show --query tenantId`",
    "client_id": (
        "the application (client) id: `az ad sp list --display-name NAME --query [].appId`"
    ),
    "client_secret": (
        "a secret name: `az ad sp credential reset --id CLIENT_ID --query password -o tsv | "
        "stepframe secret set NAME`"
    ),
    "certificate": (
        "a secret name holding the PEM (private key and certificate): `stepframe secret set "
        "NAME < sp.pem`"
    ),
    "token": (
        "a secret name: `az account get-access-token --query accessToken -o tsv | stepframe "
        "secret set NAME`"
    ),
}


def _guid(what: str, how: str) -> Callable[[object, attrs.Attribute[str | None], str | None], None]:
    def check(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and not GUID.match(value):
            raise ValueError(
                f"{attribute.name} {value!r} is not {what} (a GUID like "
                f"00000000-0000-0000-0000-000000000000); {how}"
            )

    return check


def _tenant(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not (GUID.match(value) or _DOMAIN.match(value)):
        raise ValueError(
            f"tenant_id {value!r} is not a tenant: give its id (a GUID, `az account show --query "
            "tenantId`) or a verified domain like contoso.onmicrosoft.com"
        )


def _resource_group(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not RESOURCE_GROUP.match(value):
        raise ValueError(
            f"resource_group {value!r} is not a resource group name: 1-90 letters, digits, "
            "underscores, hyphens, periods and parentheses, not ending with a period "
            "(`az group list --query [].name`)"
        )


def _workspace(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not WORKSPACE.match(value):
        raise ValueError(
            f"workspace {value!r} is not an Azure Machine Learning workspace name: 3-33 "
            "letters, digits, hyphens and underscores, starting with a letter or digit "
            "(`az ml workspace list --query [].name`)"
        )


def _authority(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _HOST.match(value):
        raise ValueError(
            f"authority {value!r} is not a host name; give the Entra ID login host only, like "
            f"{DEFAULT_AUTHORITY} (or login.microsoftonline.us, login.chinacloudapi.cn)"
        )


def _management(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    host = value[len("https://") :].rstrip("/") if value.startswith("https://") else ""
    if not _HOST.match(host):
        raise ValueError(
            f"management_endpoint {value!r} is not an https URL of a host; the default is "
            f"{DEFAULT_MANAGEMENT_ENDPOINT} (management.usgovcloudapi.net, "
            "management.chinacloudapi.cn for sovereign clouds)"
        )


@attrs.frozen
class AzureConnectorConfig:
    """How the ``azure`` connector gets Entra ID tokens, and where its resources are.

    :param auth_method: ``implicit`` (azure-identity's default chain: environment
        variables, workload identity, managed identity, Azure CLI...),
        ``service-principal`` (``tenant_id``, ``client_id`` and ``client_secret``),
        ``service-principal-certificate`` (``tenant_id``, ``client_id`` and
        ``certificate``), ``managed-identity`` (the system-assigned identity, or the
        user-assigned one whose ``client_id`` is given) or ``access-token`` (a short-lived
        token in ``token``, not refreshable).
    :param tenant_id: the Entra ID tenant (directory) id or verified domain.
    :param client_id: the application (client) id of the service principal, or of a
        user-assigned managed identity.
    :param client_secret: secret name (or ``env:VAR``) of the service principal's client
        secret.
    :param certificate: secret name (or ``env:VAR``) of a PEM with the service principal's
        private key and certificate.
    :param certificate_password: secret name of the PEM's password, if it has one.
    :param token: secret name (or ``env:VAR``) of an access token (``access-token``).
    :param subscription_id: the subscription the workspace and registry belong to.
    :param resource_group: the resource group of the workspace.
    :param workspace: the Azure Machine Learning workspace jobs run in.
    :param authority: the Entra ID login host (sovereign clouds).
    :param management_endpoint: Azure Resource Manager's endpoint (sovereign clouds).
    """

    auth_method: str = attrs.field(default="implicit")
    tenant_id: str | None = attrs.field(default=None, validator=_tenant)
    client_id: str | None = attrs.field(
        default=None,
        validator=_guid(
            "an application (client) id",
            "copy the appId from `az ad sp show --id NAME` (not the object id's display name)",
        ),
    )
    client_secret: SecretRef | None = None
    certificate: SecretRef | None = None
    certificate_password: SecretRef | None = None
    token: SecretRef | None = None
    subscription_id: str | None = attrs.field(
        default=None,
        validator=_guid(
            "a subscription id", "use the id from `az account list --query [].id`, not its name"
        ),
    )
    resource_group: str | None = attrs.field(default=None, validator=_resource_group)
    workspace: str | None = attrs.field(default=None, validator=_workspace)
    authority: str = attrs.field(default=DEFAULT_AUTHORITY, validator=_authority)
    management_endpoint: str = attrs.field(
        default=DEFAULT_MANAGEMENT_ENDPOINT, validator=_management
    )

    def __attrs_post_init__(self) -> None:
        # Cross-field rules: each names the method, the setting and what to do instead.
        method = self.auth_method
        if method not in AUTH_METHODS:
            raise ValueError(
                f"auth_method {method!r} is not an azure connector method; use one of "
                + ", ".join(AUTH_METHODS)
            )
        missing = [name for name in _NEEDS[method] if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"auth_method {method!r} needs {missing[0]}: set --{missing[0].replace('_', '-')}"
                f" to {_FIX[missing[0]]}"
            )
        unused = [
            name
            for name in _METHOD_FIELDS
            if getattr(self, name) is not None and name not in _ALLOWED[method]
        ]
        if unused:
            users = [m for m in AUTH_METHODS if unused[0] in _ALLOWED[m]]
            raise ValueError(
                f"auth_method {method!r} does not use {', '.join(unused)}; {unused[0]} "
                f"belongs to auth_method {' or '.join(map(repr, users))}"
            )
        if self.workspace is not None and (
            self.subscription_id is None or self.resource_group is None
        ):
            lacking = "subscription_id" if self.subscription_id is None else "resource_group"
            raise ValueError(
                f"workspace {self.workspace!r} needs {lacking} too: a workspace is found by "
                "subscription, resource group and name (`az ml workspace show --name "
                f"{self.workspace} --query id`)"
            )
