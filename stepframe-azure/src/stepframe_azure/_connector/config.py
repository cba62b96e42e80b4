"""Configuration of the ``azure`` connector (attrs only; owned by the connector's module).

Placeholder written with the package skeleton: the connector's author replaces the body.
"""

from __future__ import annotations

import attrs

__all__ = ["FLAVOR", "AzureConnectorConfig"]

FLAVOR = "azure"


@attrs.frozen
class AzureConnectorConfig:
    """Azure credentials and the subscription they act in.

    :param auth_method: how the connector gets a token.
    """

    auth_method: str = "implicit"
