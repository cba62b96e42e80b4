"""Configuration of the ``ecr`` container registry (attrs only: no boto3 at plugin load)."""

from __future__ import annotations

import attrs

__all__ = ["EcrRegistryConfig"]


@attrs.frozen
class EcrRegistryConfig:
    """An ECR registry that step images are pushed to.

    :param uri: the registry, ``ACCOUNT.dkr.ecr.REGION.amazonaws.com``; images go to
        repositories below it.
    :param create_repositories: create a repository on the first push to it; turn off
        where repositories are managed elsewhere (a push to a missing one then fails
        with a message naming it).
    """

    uri: str
    create_repositories: bool = True
