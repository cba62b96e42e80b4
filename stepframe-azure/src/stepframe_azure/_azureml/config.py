"""Configuration and per-step settings of the ``azureml`` step operator (attrs only).

Placeholder written with the package skeleton: the operator's author replaces the body.
"""

from __future__ import annotations

import attrs

__all__ = ["FLAVOR", "AzureMLOperatorConfig", "AzureMLSettings"]

FLAVOR = "azureml"


@attrs.frozen
class AzureMLOperatorConfig:
    """Where the ``azureml`` operator runs jobs.

    :param workspace: the AzureML workspace's name.
    """

    workspace: str | None = None


@attrs.frozen
class AzureMLSettings:
    """Per-step settings of an AzureML command job.

    :param instance_type: the VM size, or ``local`` for local mode.
    """

    instance_type: str | None = None
