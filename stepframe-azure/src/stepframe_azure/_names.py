"""Azure's naming rules that more than one part checks offline: the connector when it is
registered, the ``azureml`` operator in the pre-flight.

- `GUID`: subscription, tenant, client and object ids.
- `RESOURCE_GROUP`: 1-90 letters (Unicode ones too), digits, underscores, hyphens,
  periods and parentheses, not ending with a period (learn.microsoft.com, "Naming rules
  and restrictions for Azure resources", Microsoft.Resources).
- `WORKSPACE`: the REST specification's ``workspaceName`` path pattern (3-33 letters,
  digits, hyphens and underscores, starting with a letter or digit).
"""

from __future__ import annotations

import re

__all__ = ["GUID", "RESOURCE_GROUP", "WORKSPACE"]

GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
WORKSPACE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
