"""The azure-identity credential behind each auth method (imported when a token is needed).

Only `auth.py` calls this, when it needs a token it does not hold: nothing here runs at
plugin load, and azure-identity is imported inside the function.
"""

from __future__ import annotations

import logging
from typing import Any

from stepframe import ConfigError
from stepframe_azure._connector.config import AzureConnectorConfig

__all__ = ["build_identity"]


def build_identity(config: AzureConnectorConfig, secrets: dict[str, str]) -> Any:
    """An azure-identity credential for ``config`` (it holds no token yet).

    :param secrets: the resolved values of the config's secret references, by field.
    """
    import azure.identity

    _quiet_identity_logs()
    method = config.auth_method
    authority = config.authority
    if method == "service-principal":
        assert config.tenant_id and config.client_id  # the config checked them
        return azure.identity.ClientSecretCredential(
            config.tenant_id,
            config.client_id,
            secrets["client_secret"].strip(),
            authority=authority,
        )
    if method == "service-principal-certificate":
        assert config.tenant_id and config.client_id
        pem = secrets["certificate"].encode()
        password = secrets.get("certificate_password")
        try:
            return azure.identity.CertificateCredential(
                config.tenant_id,
                config.client_id,
                certificate_data=pem,
                password=password.encode() if password else None,
                authority=authority,
            )
        except (ValueError, TypeError) as error:
            # cryptography's reason (wrong password, not a PEM) names no key material.
            raise ConfigError(
                f"certificate ({config.certificate}): cannot read the private key and "
                f"certificate from it ({str(error).splitlines()[0]}); store a PEM holding "
                "both (`cat key.pem cert.pem | stepframe secret set NAME`), and its password "
                "in certificate_password if it has one"
            ) from None
    if method == "managed-identity":
        if config.client_id:
            return azure.identity.ManagedIdentityCredential(client_id=config.client_id)
        return azure.identity.ManagedIdentityCredential()
    # implicit: the default chain, without the interactive browser.
    options: dict[str, Any] = {"authority": authority}
    if config.client_id:
        options.update(
            managed_identity_client_id=config.client_id,
            workload_identity_client_id=config.client_id,
        )
    return azure.identity.DefaultAzureCredential(**options)


def _quiet_identity_logs() -> None:
    """azure-identity logs each refusal as a WARNING; with no logging configured Python
    prints it to stderr, a second, longer copy (with trace ids) of the one-line error
    stepframe raises.  A NullHandler stops that fallback and leaves any logging the user
    configured as it is (records still propagate to it)."""
    logger = logging.getLogger("azure.identity")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
