"""One run's credentials: every connector asked once, before anything is built.

A connector that refuses (an expired token, a wrong client secret, a role that cannot be
assumed) is found by `RunCredentials.authenticate_up_front` right after the pre-flight,
so the run ends before a possibly minutes-long image build.  What the connectors hand out
is kept for the run: the step runners and the image build take it from here, refreshed
through `Credentials.fresh` when it nears its expiry, instead of asking again.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from stepframe._stack import Stack, connector_credentials, connector_resource
from stepframe._types import Component, ComponentKind, Credentials, ResourceRequest
from stepframe.exceptions import ConfigError, ConnectorError

if TYPE_CHECKING:
    from stepframe._orchestrator.plan import Plan
    from stepframe._plugins.facade import Hooks
    from stepframe._plugins.manager import Plugins

__all__ = ["ConnectorRefused", "RunCredentials", "connectors_of_run"]

# How long before their expiry credentials that cannot refresh are asked for again: the
# margin `Credentials.fresh` refreshes within.
_EXPIRY_MARGIN_SECONDS = 300.0


class ConnectorRefused(ConnectorError, ConfigError):
    """A connector refused before the run started: nothing was built or submitted, and
    the fix is in the connector's configuration or its secret (exit status 2)."""


class RunCredentials:
    """The credentials of one run, by connector and resource, each authenticated once."""

    def __init__(self, stack: Stack, hooks: Hooks) -> None:
        self._stack = stack
        self._hooks = hooks
        self._issued: dict[tuple[str, ResourceRequest], Credentials | None] = {}
        # Step runners run in threads: two steps on one connector must not both ask.
        self._lock = threading.Lock()

    def get(self, component: Component, resource: ResourceRequest) -> Credentials | None:
        """Credentials for ``component`` through its connector (None when it has none):
        the run's own, refreshed when they near their expiry, else the connector's now."""
        if component.connector is None:
            return None
        key = (component.connector, resource)
        with self._lock:
            if key in self._issued:
                issued = self._issued[key]
                if issued is None or not _expiring(issued):
                    return issued
                if issued.refresh is not None:
                    issued = issued.refresh()
                    self._issued[key] = issued
                    return issued
            issued = connector_credentials(self._stack, component, resource, self._hooks)
            self._issued[key] = issued
            return issued

    def authenticate_up_front(self, uses: list[tuple[Component, ResourceRequest]]) -> None:
        """Authenticate every connector ``uses`` name, before anything is built.

        :raises ConnectorRefused: the first refusal, with the connector's own message.
        """
        for component, resource in uses:
            try:
                self.get(component, resource)
            except ConnectorRefused:
                raise
            except ConnectorError as error:
                raise ConnectorRefused(str(error)) from error


def _expiring(credentials: Credentials) -> bool:
    if credentials.expires_at is None:
        return False
    return credentials.expires_at - time.time() <= _EXPIRY_MARGIN_SECONDS


def connectors_of_run(
    steps: list[str], stack: Stack, plan: Plan, plugins: Plugins
) -> list[tuple[Component, ResourceRequest]]:
    """What the steps of a run will authenticate, in the order they would: the registry's
    login when a step needs an image, and each step's operator (generic credentials).

    Components without a connector are left out, so a run of local steps authenticates
    nothing more.  The registry's generic credentials (to create a repository) are still
    asked for only when a builder is about to touch the registry, as before.
    """
    uses: dict[tuple[str, ResourceRequest], tuple[Component, ResourceRequest]] = {}

    def use(component: Component, resource: ResourceRequest) -> None:
        if component.connector is not None:
            uses.setdefault((component.connector, resource), (component, resource))

    registry = stack.container_registry
    for name in steps:
        operator = plan.operators[name]
        flavor = plugins.flavors.get(ComponentKind.STEP_OPERATOR, operator.flavor)
        if flavor is not None and flavor.needs_image and registry is not None:
            use(registry, connector_resource(registry))
        use(operator, ResourceRequest("generic"))
    return list(uses.values())
