"""What finding plugins needs before any of them is loaded: the entry point groups, the
allow and deny lists, and the warnings.

Kept apart from `stepframe._plugins.manager` (pluggy, the hook facade, the flavor
registry) so that ``stepframe --help`` can list the commands plugins declare without
importing any of that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

__all__ = [
    "CORE_DISTRIBUTION",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "DistributionInfo",
    "FoundDistribution",
    "FoundEntryPoint",
    "PluginConflictWarning",
    "PluginLoadWarning",
    "find_entry_points",
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


# ---- reading entry points ------------------------------------------------------------
# importlib.metadata imports the email package to parse METADATA files: 30 ms or more of
# each `stepframe --help` and `stepframe plugins`, on a command line that answers in
# ~150 ms.  Installed distributions are dist-info (or egg-info) folders on sys.path whose
# entry_points.txt is a small INI file, so these are read directly; a distribution is the
# first folder of its name on sys.path, as importlib.metadata takes it.  Where that finds
# not even the core's own plugins (a zip application, a custom import finder) the standard
# library is asked instead.


class FoundDistribution:
    """An installed distribution, read as far as needed: its folder, then the header of
    its METADATA (name, version, requirements) on first use."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._header: dict[str, list[str]] | None = None

    def _fields(self) -> dict[str, list[str]]:
        if self._header is None:
            fields: dict[str, list[str]] = {}
            for file in ("METADATA", "PKG-INFO"):
                try:
                    with open(os.path.join(self.folder, file), encoding="utf-8") as lines:
                        for line in lines:
                            if not line.strip():
                                break  # the header ends; the description follows
                            key, sep, value = line.partition(":")
                            if sep and not line[0].isspace():
                                fields.setdefault(key.strip().lower(), []).append(value.strip())
                except OSError:
                    continue
                break
            self._header = fields
        return self._header

    @property
    def name(self) -> str:
        return (self._fields().get("name") or [""])[0]

    @property
    def version(self) -> str:
        return (self._fields().get("version") or [""])[0]

    @property
    def requires(self) -> list[str]:
        return self._fields().get("requires-dist", [])


class DistributionInfo(Protocol):
    """What plugin loading reads of a distribution (`FoundDistribution`, or the standard
    library's ``importlib.metadata.Distribution``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def requires(self) -> list[str] | None: ...


class FoundEntryPoint(NamedTuple):
    """One entry point: ``name = value`` in ``group``, of distribution ``dist``."""

    name: str
    value: str
    group: str
    dist: DistributionInfo | None

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].strip()

    def load(self) -> Any:
        """The object the entry point names (``module`` or ``module:attr.attr``)."""
        import importlib

        target = importlib.import_module(self.module)
        attributes = self.value.partition(":")[2].partition("[")[0].strip()
        for attribute in filter(None, attributes.split(".")):
            target = getattr(target, attribute)
        return target


def _parse_entry_points(text: str) -> Iterator[tuple[str, str, str]]:
    """(group, name, value) of each line of an entry_points.txt."""
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
            continue
        name, sep, value = line.partition("=")
        if sep and group is not None:
            yield group, name.strip(), value.strip()


def _distribution_folders() -> Iterator[str]:
    """Each installed distribution's metadata folder, the first one of each name."""
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # missing, or a file (a zip): not ours to read
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            project = name.rpartition(".")[0].partition("-")[0]
            key = project.lower().replace("-", "_").replace(".", "_")
            if key not in seen:
                seen.add(key)
                yield os.path.join(folder, name)


def find_entry_points(groups: Sequence[str]) -> list[FoundEntryPoint]:
    """Every installed entry point of ``groups``, in the order of sys.path."""
    found: list[FoundEntryPoint] = []
    core_seen = False
    for folder in _distribution_folders():
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as file:
                text = file.read()
        except OSError:
            continue
        dist = FoundDistribution(folder)
        for group, name, value in _parse_entry_points(text):
            if group in groups:
                found.append(FoundEntryPoint(name, value, group, dist))
            core_seen |= group == ENTRY_POINT_GROUP and value.startswith("stepframe._builtin")
    if core_seen:
        return found
    return _from_importlib_metadata(groups)


def _from_importlib_metadata(groups: Sequence[str]) -> list[FoundEntryPoint]:
    from importlib import metadata

    every = metadata.entry_points()
    return [
        FoundEntryPoint(entry_point.name, entry_point.value, group, entry_point.dist)
        for group in groups
        for entry_point in every.select(group=group)
    ]
