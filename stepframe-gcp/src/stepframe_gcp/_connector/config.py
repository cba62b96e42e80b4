"""Configuration of the ``gcp`` connector (attrs only: no google module at plugin load)."""

from __future__ import annotations

import re
from typing import Any

import attrs

from stepframe import SecretRef

__all__ = [
    "AUTH_METHODS",
    "CLOUD_PLATFORM_SCOPE",
    "MAX_LIFETIME_SECONDS",
    "GcpConnectorConfig",
]

AUTH_METHODS = ("implicit", "service-account", "oauth2-token", "impersonation", "external-account")
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# The IAM Credentials API's limit for generateAccessToken's lifetime (12 h, when the
# organization allows more than the default 1 h).
MAX_LIFETIME_SECONDS = 43200

# Google's published rules: project ids are 6-30 characters of lowercase letters, digits
# and hyphens, starting with a letter and not ending with a hyphen; regions look like
# europe-west4 or us-central1.
_PROJECT = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
_REGION = r"^[a-z]+(-[a-z]+)+[0-9]+$"
_SERVICE_ACCOUNT = r"^[a-z][a-z0-9-]{4,61}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$"


def _matches(pattern: str, value: str) -> bool:
    # re.match compiles a pattern on first use and caches it: loading the plugin compiles
    # none (`stepframe plugins` has a budget of 0.15 s).
    return re.match(pattern, value) is not None


# What each method needs, and what it ignores: a field set for a method that does not
# read it is almost always a mistake (a key file under `implicit`, a token with a key).
_NEEDS: dict[str, tuple[str, ...]] = {
    "implicit": (),
    "service-account": ("service_account_key",),
    "oauth2-token": ("token",),
    "impersonation": ("target_service_account",),
    "external-account": ("credential_config",),
}
_METHOD_FIELDS = (
    "service_account_key",
    "token",
    "target_service_account",
    "credential_config",
    "iam_credentials_endpoint",
)
_ALLOWED: dict[str, tuple[str, ...]] = {
    "implicit": (),
    "service-account": ("service_account_key",),
    "oauth2-token": ("token",),
    # The source identity is the key when one is given, else Application Default
    # Credentials.
    "impersonation": ("target_service_account", "service_account_key", "iam_credentials_endpoint"),
    "external-account": ("credential_config",),
}
_FIX: dict[str, str] = {
    "service_account_key": "store the key JSON with `stepframe secret set NAME < key.json`",
    "token": ("store it with `stepframe secret set NAME` (from `gcloud auth print-access-token`)"),
    "target_service_account": (
        "name the service account to act as (NAME@PROJECT.iam.gserviceaccount.com)"
    ),
    "credential_config": (
        "the path of the file `gcloud iam workload-identity-pools create-cred-config` wrote"
    ),
}


def _project(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not _matches(_PROJECT, value):
        raise ValueError(
            f"{value!r} is not a Google Cloud project id: 6-30 lowercase letters, digits and "
            "hyphens, starting with a letter (the id, not the project's display name or number)"
        )


def _region(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not _matches(_REGION, value):
        raise ValueError(
            f"{value!r} is not a Google Cloud region; expected a name like us-central1"
        )


def _lifetime(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= MAX_LIFETIME_SECONDS:
        raise ValueError(
            f"must be between 1 and {MAX_LIFETIME_SECONDS} seconds (the IAM Credentials "
            f"API's limit), not {value}"
        )


def _service_accounts(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    names: list[str] = [value] if isinstance(value, str) else list(value or ())
    for name in names:
        if not _matches(_SERVICE_ACCOUNT, name):
            raise ValueError(
                f"{name!r} is not a service account email; expected "
                "NAME@PROJECT.iam.gserviceaccount.com"
            )


@attrs.frozen
class GcpConnectorConfig:
    """How the ``gcp`` connector authenticates, and the project and region it works in.

    :param auth_method: ``implicit`` (Application Default Credentials: ``gcloud auth
        application-default login``, ``GOOGLE_APPLICATION_CREDENTIALS``, the metadata
        server), ``service-account`` (a key JSON held as a stepframe secret),
        ``oauth2-token`` (a short-lived access token, not refreshable), ``impersonation``
        (a source identity acting as ``target_service_account``) or ``external-account``
        (workload identity federation, configured by ``credential_config``).
    :param project: the project id jobs, buckets and repositories belong to; default the
        credentials' own project.
    :param region: the region Vertex AI jobs and Artifact Registry repositories live in.
    :param service_account_key: secret name (or ``env:VAR``) of a service-account key
        JSON (``service-account``; for ``impersonation``, the source identity).
    :param token: secret name (or ``env:VAR``) of an OAuth2 access token (``oauth2-token``).
    :param target_service_account: the service account to impersonate.
    :param delegates: service accounts in the delegation chain, in order.
    :param lifetime_seconds: how long impersonated tokens last (at most 43200).
    :param credential_config: path of a workload identity federation configuration file.
    :param iam_credentials_endpoint: for ``impersonation``: the IAM Credentials API's
        endpoint (a Private Service Connect one); default
        ``https://iamcredentials.googleapis.com``.
    :param endpoints: other endpoints for the APIs ``connector verify`` checks, by API
        name (``aiplatform``, ``artifactregistry``): Private Service Connect endpoints.
    :param scopes: the OAuth2 scopes asked for.
    """

    auth_method: str = attrs.field(default="implicit", validator=attrs.validators.in_(AUTH_METHODS))
    project: str | None = attrs.field(default=None, validator=_project)
    region: str | None = attrs.field(default=None, validator=_region)
    service_account_key: SecretRef | None = None
    token: SecretRef | None = None
    target_service_account: str | None = attrs.field(default=None, validator=_service_accounts)
    delegates: list[str] = attrs.field(factory=list, validator=_service_accounts)
    lifetime_seconds: int = attrs.field(default=3600, validator=_lifetime)
    credential_config: str | None = None
    iam_credentials_endpoint: str | None = None
    endpoints: dict[str, str] = attrs.field(factory=dict)
    scopes: list[str] = attrs.field(factory=lambda: [CLOUD_PLATFORM_SCOPE])

    def __attrs_post_init__(self) -> None:
        # Cross-field rules: each names the method, the field and what to do instead.
        method = self.auth_method
        missing = [name for name in _NEEDS[method] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"auth_method {method!r} needs {missing[0]}: {_FIX[missing[0]]}")
        unused = [
            name
            for name in _METHOD_FIELDS
            if getattr(self, name) is not None and name not in _ALLOWED[method]
        ]
        if self.delegates and method != "impersonation":
            unused.append("delegates")
        if unused:
            users = sorted(m for m, fields in _ALLOWED.items() if unused[0] in fields)
            raise ValueError(
                f"auth_method {method!r} does not use {', '.join(unused)}; "
                + (
                    f"{unused[0]} belongs to auth_method {' or '.join(map(repr, users))}"
                    if users
                    else "delegates apply to auth_method 'impersonation' only"
                )
            )
        unknown = sorted(set(self.endpoints) - {"aiplatform", "artifactregistry"})
        if unknown:
            raise ValueError(
                f"endpoints: unknown API {unknown[0]!r}; use aiplatform or artifactregistry"
            )
        if not self.scopes:
            raise ValueError(f"scopes is empty; the default is [{CLOUD_PLATFORM_SCOPE!r}]")
