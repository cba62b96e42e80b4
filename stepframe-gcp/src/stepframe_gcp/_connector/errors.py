"""google-auth's refusals turned into one-line stepframe errors that say what to fix.

A refused token request names the connector, its auth method, the principal it acts as,
what Google said (its OAuth2 error code and description, never the key or a token) and the
fix for that code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stepframe import ConnectorError

__all__ = ["refresh_errors"]

# What each OAuth2 error code of Google's token endpoint means for the user.
_FIXES = {
    "invalid_grant": (
        "the key was deleted or disabled, the service account no longer exists, or this "
        "machine's clock is off; create a new key (`gcloud iam service-accounts keys "
        "create`) and store it with `stepframe secret set`"
    ),
    "invalid_client": "the key does not belong to a known service account; download a new key",
    "unauthorized_client": (
        "the service account may not ask for these scopes; use the default scopes"
    ),
    "invalid_scope": "a scope in the connector's `scopes` is not valid; use the default scopes",
}
_IMPERSONATION_FIX = (
    "grant the source identity roles/iam.serviceAccountTokenCreator on {target} "
    "(`gcloud iam service-accounts add-iam-policy-binding {target} --member=... "
    "--role=roles/iam.serviceAccountTokenCreator`), and check the IAM Credentials API is "
    "enabled in the project"
)


@contextmanager
def refresh_errors(connector: str, method: str, principal: str) -> Iterator[None]:
    """Turn google-auth errors raised while getting a token into `ConnectorError`."""
    import google.auth.exceptions

    where = f"connector {connector!r} ({method}, {principal})"
    try:
        yield
    except (google.auth.exceptions.RefreshError, google.auth.exceptions.OAuthError) as error:
        code, description = _oauth_error(error)
        if method == "impersonation":
            fix = _IMPERSONATION_FIX.format(target=principal)
        else:
            fix = _FIXES.get(
                code, "check the connector's credentials with `stepframe connector verify`"
            )
        said = f"{code}: {description}" if description else code
        raise ConnectorError(f"{where}: Google refused the token request ({said}); {fix}") from None
    except google.auth.exceptions.TransportError as error:
        raise ConnectorError(
            f"{where}: cannot reach Google's token service ({_first_line(error)}); check "
            "the network and any proxy settings"
        ) from None


def _oauth_error(error: Exception) -> tuple[str, str]:
    """The OAuth2 error code and description in a RefreshError, as well as it can tell."""
    body: Any = error.args[1] if len(error.args) > 1 else None
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):  # the IAM Credentials API's {"error": {"status"...}}
            return str(inner.get("status") or inner.get("code")), str(inner.get("message", ""))
        if inner:
            return str(inner), str(body.get("error_description", ""))
    text = _first_line(error)
    code, _, description = text.partition(":")
    return code.strip() or "refused", description.strip()


def _first_line(error: Exception) -> str:
    text = str(error.args[0]) if error.args else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
