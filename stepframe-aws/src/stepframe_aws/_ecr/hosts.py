"""ECR registry hosts: ``ACCOUNT.dkr.ecr.REGION.amazonaws.com`` and what they name.

The connector (logins) and the registry flavor (repositories) both read a registry's
account and region from its host, so the pattern lives here once.
"""

from __future__ import annotations

import re

from stepframe import ConfigError

__all__ = ["registry_account_region", "registry_host"]

_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)


def registry_host(resource_id: str | None) -> str:
    """The ECR host of a registry resource id (``HOST``, ``https://HOST``, ``HOST/repo``)."""
    if not resource_id:
        raise ConfigError(
            "a container_registry resource needs the registry host "
            "(ACCOUNT.dkr.ecr.REGION.amazonaws.com); set the ecr registry's uri"
        )
    host = resource_id.split("://", 1)[-1].split("/", 1)[0]
    if not host:
        raise ConfigError(f"{resource_id!r} names no registry host")
    return host


def registry_account_region(host: str) -> tuple[str | None, str | None]:
    """The account and region in an ECR host name, or ``(None, None)`` for another host."""
    found = _ECR_HOST.match(host)
    if found is None:
        return None, None
    return found.group("account"), found.group("region")
