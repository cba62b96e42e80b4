"""The registry of component flavors that plugins declared, and who declared them."""

from __future__ import annotations

import attrs

from stepframe._types import ComponentKind, Flavor

__all__ = ["KNOWN_FLAVOR_DISTRIBUTIONS", "Claimed", "FlavorRegistry"]

# Flavors we know a published distribution provides, to tell the user what to install.
KNOWN_FLAVOR_DISTRIBUTIONS: dict[str, str] = {
    "sagemaker": "stepframe-aws",
    "s3": "stepframe-aws",
    "ecr": "stepframe-aws",
    "aws": "stepframe-aws",
    "docker": "stepframe-docker",
}


@attrs.frozen
class Claimed:
    """A flavor name or URI scheme a plugin asked for that another plugin already has.

    :param what: ``"step_operator flavor 'x'"`` or ``"URI scheme 's3'"``.
    :param owner: the plugin that registered it first, and keeps it.
    """

    what: str
    owner: str


class FlavorRegistry:
    """Flavors by kind and name, each with the plugin that registered it, and the URI
    schemes artifact store flavors declared."""

    def __init__(self) -> None:
        self._flavors: dict[tuple[ComponentKind, str], tuple[Flavor, str]] = {}
        self._schemes: dict[str, tuple[Flavor, str]] = {}

    def add(self, flavor: Flavor, plugin: str) -> list[Claimed]:
        """Register ``flavor`` for ``plugin``; the first plugin to claim a name keeps it.

        :return: what ``plugin`` asked for that another plugin already had (the flavor,
            or some of its URI schemes); empty when everything was free.
        """
        if not isinstance(flavor, Flavor):
            raise TypeError(f"register() takes a stepframe Flavor, not {flavor!r}")
        key = (ComponentKind(flavor.kind), flavor.name)
        if key in self._flavors:
            other = self._flavors[key][1]
            return [Claimed(f"{flavor.kind.value} flavor {flavor.name!r}", other)]
        self._flavors[key] = (flavor, plugin)
        taken = []
        for scheme in flavor.uri_schemes:
            if scheme in self._schemes:
                taken.append(Claimed(f"URI scheme {scheme!r}", self._schemes[scheme][1]))
            else:
                self._schemes[scheme] = (flavor, plugin)
        return taken

    def remove_plugin(self, plugin: str) -> None:
        """Forget every flavor ``plugin`` registered (when its registration failed)."""
        for key in [key for key, (_, owner) in self._flavors.items() if owner == plugin]:
            del self._flavors[key]
        for scheme in [s for s, (_, owner) in self._schemes.items() if owner == plugin]:
            del self._schemes[scheme]

    def get(self, kind: ComponentKind, name: str) -> Flavor | None:
        entry = self._flavors.get((kind, name))
        return entry[0] if entry else None

    def provider(self, kind: ComponentKind, name: str) -> str | None:
        entry = self._flavors.get((kind, name))
        return entry[1] if entry else None

    def scheme_provider(self, scheme: str) -> str | None:
        """The plugin whose artifact store flavor declared URI ``scheme``, if any."""
        entry = self._schemes.get(scheme)
        return entry[1] if entry else None

    def scheme_owners(self) -> set[str]:
        """The names of the plugins whose store flavors declared URI schemes."""
        return {owner for _, owner in self._schemes.values()}

    def owners(self) -> set[str]:
        """The names of the plugins that registered at least one flavor."""
        return {owner for _, owner in self._flavors.values()}

    def of_kind(self, kind: ComponentKind | None = None) -> list[tuple[Flavor, str]]:
        return sorted(
            (entry for key, entry in self._flavors.items() if kind is None or key[0] == kind),
            key=lambda entry: (entry[0].kind.value, entry[0].name),
        )

    def install_hint(self, name: str) -> str:
        """What to tell a user who asked for a flavor nobody registered."""
        distribution = KNOWN_FLAVOR_DISTRIBUTIONS.get(name)
        if distribution:
            return f"install the plugin that provides it: pip install {distribution}"
        return "install a plugin that provides it, or check the spelling (`stepframe flavor list`)"
