"""What finding plugins needs before any of them is loaded: the entry point groups, the
allow and deny lists, and the warnings.

Kept apart from `stepframe._plugins.manager` (pluggy, the hook facade, the flavor
registry) so that ``stepframe --help`` can list the commands plugins declare without
importing any of that.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CORE_DISTRIBUTION",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "PluginConflictWarning",
    "PluginLoadWarning",
    "plugin_is_wanted",
]

ENTRY_POINT_GROUP = "stepframe"
CORE_DISTRIBUTION = "stepframe-core"
LOAD_ENV = "STEPFRAME_LOAD_PLUGINS"
DISABLE_ENV = "STEPFRAME_DISABLE_PLUGINS"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded or validated; stepframe goes on without it."""


class PluginConflictWarning(UserWarning):
    """Two plugins claim the same flavor name or artifact store URI scheme.

    The plugin registered first (the core's own before any other) keeps it; the other
    plugin is loaded with the rest of what it registered.
    """


def _names_from_env(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def plugin_is_wanted(name: str, distribution: str | None, env: Mapping[str, str]) -> bool:
    """Apply STEPFRAME_LOAD_PLUGINS / STEPFRAME_DISABLE_PLUGINS to one entry point.

    The allow-list governs plugins from other distributions: the core's own parts
    always load unless disabled by name, since without them nothing can run.
    """
    disabled = _names_from_env(env.get(DISABLE_ENV)) or set()
    if name in disabled:
        return False
    allowed = _names_from_env(env.get(LOAD_ENV))
    if allowed is None or distribution == CORE_DISTRIBUTION:
        return True
    return name in allowed
