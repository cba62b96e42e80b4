"""The connector conformance suite."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, ClassVar

import pytest

from stepframe._plugins.manager import Plugins
from stepframe._types import Component, ComponentKind, Credentials, ResourceRequest
from stepframe.testing._fixtures import make_plugins
from stepframe.testing._jobs import other_flavor_component

__all__ = ["ConnectorSuite"]

# Shorter values (an empty string, "1") would be found in any repr by chance.
_MIN_SECRET_LENGTH = 6


class ConnectorSuite:
    """Conformance tests for a connector flavor.  Subclass it in a ``Test*`` class.

    Override `make_connector` to give the component its config (secrets by reference:
    ``env:VAR`` or a secret's name, set up by your test), list the resource kinds it
    serves in `resource_kinds`, and name the secret values your setup used in
    `secret_values` so the suite can check they never show.
    """

    #: the connector flavor under test (required).
    flavor: ClassVar[str] = ""
    #: installed entry points to load besides the core's; None loads every installed one.
    plugin_names: ClassVar[tuple[str, ...] | None] = None
    #: plugin objects to register directly: modules, instances or (name, plugin) pairs.
    extra_plugins: ClassVar[tuple[Any, ...]] = ()
    #: the ResourceRequest kinds the connector hands out credentials for.
    resource_kinds: ClassVar[tuple[str, ...]] = ("generic",)
    #: credentials expire and come with a ``refresh`` callable.
    supports_refresh: ClassVar[bool] = False

    # ---- what a flavor overrides ----------------------------------------------------

    def make_plugins(self) -> Plugins:
        return make_plugins(*self.extra_plugins, load=self.plugin_names)

    def make_connector(self, plugins: Plugins) -> Component:
        from stepframe.testing._operator_suite import default_component

        return default_component(plugins, ComponentKind.CONNECTOR, self.flavor)

    def make_resource(self, kind: str) -> ResourceRequest:
        """The request for one resource kind (give a bucket or registry id if needed)."""
        return ResourceRequest(kind=kind)

    def secret_values(self) -> Iterable[str]:
        """Secret values your setup put where the connector finds them (env, secret store)."""
        return ()

    # ---- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def connector_plugins(self) -> Plugins:
        assert self.flavor, f"{type(self).__name__} must set `flavor`"
        return self.make_plugins()

    def authenticate(self, plugins: Plugins, kind: str) -> tuple[Component, Credentials]:
        connector = self.make_connector(plugins)
        resource = self.make_resource(kind)
        credentials = plugins.hooks.authenticate(connector, resource)
        assert credentials.connector == connector.name, (
            f"credentials.connector is {credentials.connector!r}, not the component's name "
            f"{connector.name!r}"
        )
        assert credentials.resource == resource, (
            f"asked for {resource!r}, got credentials for {credentials.resource!r}"
        )
        return connector, credentials

    def _secrets(self, credentials: Iterable[Credentials]) -> set[str]:
        found = {value for value in self.secret_values() if len(value) >= _MIN_SECRET_LENGTH}
        for creds in credentials:
            found |= {v for v in creds.values.values() if len(str(v)) >= _MIN_SECRET_LENGTH}
        return found

    # ---- the tests ------------------------------------------------------------------

    def test_the_flavor_is_registered_as_a_connector(self, connector_plugins: Plugins) -> None:
        assert connector_plugins.flavors.get(ComponentKind.CONNECTOR, self.flavor) is not None, (
            f"no plugin registered connector flavor {self.flavor!r}"
        )

    def test_authenticate_answers_only_for_its_own_flavor(self, connector_plugins: Plugins) -> None:
        from stepframe.exceptions import PluginError

        with pytest.raises(PluginError, match="no installed plugin implements"):
            answer = connector_plugins.hooks.authenticate(
                other_flavor_component(ComponentKind.CONNECTOR),
                ResourceRequest(kind=self.resource_kinds[0]),
            )
            raise AssertionError(
                f"authenticate answered for a connector of another flavor ({answer!r})"
            )

    def test_credentials_for_each_declared_resource_kind(self, connector_plugins: Plugins) -> None:
        assert self.resource_kinds, "resource_kinds is empty"
        for kind in self.resource_kinds:
            _, credentials = self.authenticate(connector_plugins, kind)
            assert credentials.values, f"credentials for {kind!r} carry no values"
            if credentials.expires_at is not None:
                assert credentials.expires_at > time.time(), (
                    f"credentials for {kind!r} are already expired"
                )

    def test_secret_values_never_show_in_repr(self, connector_plugins: Plugins) -> None:
        issued = [self.authenticate(connector_plugins, kind) for kind in self.resource_kinds]
        secrets = self._secrets(credentials for _, credentials in issued)
        for connector, credentials in issued:
            shown = {
                "repr(credentials)": repr(credentials),
                "str(credentials)": str(credentials),
                "repr(connector)": repr(connector),
                "repr(resource)": repr(credentials.resource),
            }
            for where, text in shown.items():
                leaked = sorted(secret[:3] + "..." for secret in secrets if secret in text)
                assert not leaked, (
                    f"secret value(s) {leaked} appear in {where}; keep secrets in "
                    "Credentials.values (hidden from repr) and configs as SecretRef names"
                )

    def test_credentials_refresh_before_they_expire(self, connector_plugins: Plugins) -> None:
        if not self.supports_refresh:
            pytest.skip(f"{self.flavor}: supports_refresh = False")
        for kind in self.resource_kinds:
            _, credentials = self.authenticate(connector_plugins, kind)
            assert credentials.expires_at is not None, f"{kind!r}: no expires_at"
            assert credentials.refresh is not None, f"{kind!r}: no refresh callable"
            left = credentials.expires_at - time.time()
            assert credentials.fresh(margin_seconds=0) is credentials, (
                "credentials with time left were refreshed anyway"
            )
            refreshed = credentials.fresh(margin_seconds=left + 60)
            assert isinstance(refreshed, Credentials), f"refresh returned {refreshed!r}"
            assert refreshed is not credentials, "refresh returned the same credentials"
            assert refreshed.expires_at is not None and refreshed.expires_at > time.time(), (
                f"refreshed credentials expire at {refreshed.expires_at}, which is not later "
                "than now"
            )
            assert refreshed.expires_at >= credentials.expires_at, (
                "refreshed credentials expire before the ones they replace"
            )
            assert refreshed.connector == credentials.connector
            assert refreshed.resource == credentials.resource
            assert refreshed.refresh is not None, "refreshed credentials cannot refresh again"
            secrets = self._secrets([credentials, refreshed])
            leaked = [s[:3] + "..." for s in secrets if s in repr(refreshed)]
            assert not leaked, f"secret value(s) {leaked} appear in repr(refreshed credentials)"
