"""Configuration of the ``acr`` container registry (attrs only).

Placeholder written with the package skeleton: the registry's author replaces the body.
"""

from __future__ import annotations

import attrs

__all__ = ["FLAVOR", "AcrConfig"]

FLAVOR = "acr"


@attrs.frozen
class AcrConfig:
    """An Azure Container Registry that step images are pushed to.

    :param uri: ``NAME.azurecr.io``.
    """

    uri: str
