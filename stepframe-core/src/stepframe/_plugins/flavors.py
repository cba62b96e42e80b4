"""The registry of component flavors that plugins declared, and who declared them."""

from __future__ import annotations

from stepframe._types import ComponentKind, Flavor

__all__ = ["KNOWN_FLAVOR_DISTRIBUTIONS", "FlavorRegistry"]

# Flavors we know a published distribution provides, to tell the user what to install.
KNOWN_FLAVOR_DISTRIBUTIONS: dict[str, str] = {
    "sagemaker": "stepframe-aws",
    "s3": "stepframe-aws",
    "ecr": "stepframe-aws",
    "aws": "stepframe-aws",
    "docker": "stepframe-docker",
}


class FlavorRegistry:
    """Flavors by kind and name, each with the plugin that registered it."""

    def __init__(self) -> None:
        self._flavors: dict[tuple[ComponentKind, str], tuple[Flavor, str]] = {}

    def add(self, flavor: Flavor, plugin: str) -> None:
        if not isinstance(flavor, Flavor):
            raise TypeError(f"register() takes a stepframe Flavor, not {flavor!r}")
        key = (ComponentKind(flavor.kind), flavor.name)
        if key in self._flavors:
            other = self._flavors[key][1]
            raise ValueError(
                f"{flavor.kind.value} flavor {flavor.name!r} is already registered "
                f"by plugin {other!r}"
            )
        self._flavors[key] = (flavor, plugin)

    def remove_plugin(self, plugin: str) -> None:
        """Forget every flavor ``plugin`` registered (when its registration failed)."""
        for key in [key for key, (_, owner) in self._flavors.items() if owner == plugin]:
            del self._flavors[key]

    def get(self, kind: ComponentKind, name: str) -> Flavor | None:
        entry = self._flavors.get((kind, name))
        return entry[0] if entry else None

    def provider(self, kind: ComponentKind, name: str) -> str | None:
        entry = self._flavors.get((kind, name))
        return entry[1] if entry else None

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
