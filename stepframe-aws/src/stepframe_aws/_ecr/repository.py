"""ECR repositories made ready for a push: found, or created where the registry allows it.

A push to a missing ECR repository fails (ECR, unlike most registries, does not create
repositories on the first push), so image builders call the ``prepare_repository`` hook,
which lands here, before they check or push a tag.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from stepframe import ConfigError, ConnectorError
from stepframe_aws._ecr.config import EcrRegistryConfig
from stepframe_aws._ecr.hosts import registry_account_region, registry_host
from stepframe_aws._errors import aws_errors, error_code

if TYPE_CHECKING:
    from stepframe import Component, Credentials

__all__ = ["ensure_repository", "split_repository"]

# ECR's rule for repository names: lower-case path components separated by slashes,
# each made of letters and digits joined by single '.', '_' or '-'.
_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})


def split_repository(repository: str) -> tuple[str, str]:
    """``HOST/NAME`` as ``(HOST, NAME)``; NAME may hold slashes (``team/app``).

    :raises ConfigError: no host, or NAME is not a valid ECR repository name (a tag or
        digest left on it, upper case, ...).
    """
    host, _, name = repository.partition("/")
    if not host or not name:
        raise ConfigError(
            f"cannot prepare repository {repository!r}: expected HOST/NAME "
            "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/my-repository)"
        )
    if not (2 <= len(name) <= 256 and _NAME.match(name)):
        raise ConfigError(
            f"cannot prepare repository {repository!r}: {name!r} is not a valid ECR "
            "repository name (2-256 lower-case letters and digits, separated by '.', '_', "
            "'-' or '/'; no tag or digest)"
        )
    return host, name


def ensure_repository(
    registry: Component, repository: str, credentials: Credentials | None
) -> bool:
    """Make sure the ECR repository ``repository`` exists, creating it if allowed.

    :param registry: the ``ecr`` container registry component.
    :param repository: ``HOST/NAME``; HOST must be the registry's.
    :param credentials: from the registry's connector, or None for boto3's default chain.
    :return: True once the repository exists.
    :raises ConfigError: the repository is on another host than the registry, its name is
        invalid, or it is missing and the registry does not create repositories.
    :raises ConnectorError: the credentials may not describe or create repositories.
    """
    config = registry.config
    if not isinstance(config, EcrRegistryConfig):
        raise ConfigError(f"container registry {registry.name!r} has no ecr configuration")
    host, name = split_repository(repository)
    expected = registry_host(config.uri)
    if host.lower() != expected.lower():
        raise ConfigError(
            f"cannot push to {repository}: its host {host!r} is not the host of container "
            f"registry {registry.name!r} ({expected}); push to {expected}/{name}, or set the "
            f"registry's uri to {host} (`stepframe container-registry update "
            f"{registry.name} --uri {host}`)"
        )
    account, region = registry_account_region(expected)
    # The host says where the registry is; a connector set up for another region (where
    # its jobs run) must still reach the registry's own.  Other hosts (a test endpoint)
    # leave the region to the connector or boto3's default chain.
    from stepframe_aws._session import client

    ecr = client("ecr", credentials, region=region)
    ids: dict[str, Any] = {"registryId": account} if account else {}
    if _exists(ecr, ids, name, repository):
        return True
    if not config.create_repositories:
        raise ConfigError(
            f"ECR repository {name!r} does not exist in {expected}, and container registry "
            f"{registry.name!r} does not create repositories (create_repositories = false). "
            f"Create it (`aws ecr create-repository --repository-name {name}"
            f"{f' --region {region}' if region else ''}`) or let stepframe create it "
            f"(`stepframe container-registry update {registry.name} --create-repositories "
            "true`)"
        )
    _create(ecr, ids, name, repository)
    return True


def _exists(ecr: Any, ids: dict[str, Any], name: str, repository: str) -> bool:
    with aws_errors(f"looking up ECR repository {repository}"):
        try:
            ecr.describe_repositories(repositoryNames=[name], **ids)
        except ecr.exceptions.ClientError as error:
            code = error_code(error)
            if code == "RepositoryNotFoundException":
                return False
            if code in _DENIED:
                raise _denied("ecr:DescribeRepositories", repository, name) from None
            raise
    return True


def _create(ecr: Any, ids: dict[str, Any], name: str, repository: str) -> None:
    with aws_errors(f"creating ECR repository {repository}"):
        try:
            ecr.create_repository(
                repositoryName=name,
                # Steps run images by digest, so a tag moving is harmless; scanning on
                # push is free and shows vulnerabilities in the console.
                imageScanningConfiguration={"scanOnPush": True},
                **ids,
            )
        except ecr.exceptions.ClientError as error:
            code = error_code(error)
            if code == "RepositoryAlreadyExistsException":
                return  # another build created it a moment ago
            if code in _DENIED:
                raise _denied("ecr:CreateRepository", repository, name) from None
            raise


def _denied(action: str, repository: str, name: str) -> ConnectorError:
    return ConnectorError(
        f"preparing ECR repository {repository}: the registry's credentials are not "
        f"allowed {action}; grant it to the connector's identity, or create the "
        f"repository yourself (`aws ecr create-repository --repository-name {name}`) and "
        "set the registry's create_repositories to false"
    )
