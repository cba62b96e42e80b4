"""Finding, loading and describing plugins.

Plugins are modules named by entry points in the ``stepframe`` group.  Loading one must
cost milliseconds: a plugin module only defines hookimpls and imports heavy libraries
inside them.  A plugin that fails to import or to validate costs the user one warning,
never the run.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import attrs
import pluggy

from stepframe import hookspecs
from stepframe._artifacts.materializer import Materializer
from stepframe._plugins.discovery import (
    CORE_DISTRIBUTION,
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    LOAD_ENV,
    DistributionInfo,
    PluginConflictWarning,
    PluginLoadWarning,
    find_entry_points,
    plugin_is_wanted,
)
from stepframe._plugins.facade import Hooks
from stepframe._plugins.flavors import Claimed, FlavorRegistry
from stepframe._plugins.markers import PROJECT_NAME
from stepframe._types import Flavor

__all__ = [
    "CORE_DISTRIBUTION",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "PluginConflictWarning",
    "PluginInfo",
    "PluginLoadWarning",
    "PluginVersionWarning",
    "Plugins",
    "activated",
    "get_plugins",
    "load_plugins",
    "plugin_is_wanted",
    "reset_plugins",
    "run_in_this_context",
]


class PluginVersionWarning(UserWarning):
    """A plugin's distribution requires another stepframe-core than the one installed.

    The plugin is still loaded (it may well work); the warning says which versions
    disagree and what to upgrade.
    """


@attrs.frozen
class PluginInfo:
    """What ``stepframe plugins`` shows about one loaded plugin."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    hooks: tuple[str, ...]
    flavors: tuple[str, ...]


@attrs.define
class Plugins:
    """A plugin manager with everything the plugins registered, ready to use.

    Build one with `load_plugins`; tests build their own instead of using the
    process-wide one from `get_plugins`.
    """

    manager: pluggy.PluginManager
    hooks: Hooks
    flavors: FlavorRegistry
    materializers: tuple[Materializer, ...]
    infos: dict[str, PluginInfo]
    # Names of the plugins that registered materializers: a job must load them too.
    materializer_plugins: tuple[str, ...] = ()

    def describe(self) -> list[PluginInfo]:
        return sorted(self.infos.values(), key=lambda info: (info.distribution or "~", info.name))


def _warn(name: str, distribution: str | None, target: str, cause: str) -> None:
    warnings.warn(
        f"stepframe: skipped plugin {name!r} (distribution {distribution or 'unknown'}, "
        f"entry point {name} = {target}): {cause}",
        PluginLoadWarning,
        stacklevel=3,
    )


def _label(name: str, infos: Mapping[str, PluginInfo]) -> str:
    info = infos.get(name)
    distribution = info.distribution if info is not None else None
    where = f"distribution {distribution}" if distribution else "registered directly"
    return f"plugin {name!r} ({where})"


def _warn_claimed(claim: Claimed, plugin: str, infos: Mapping[str, PluginInfo]) -> None:
    warnings.warn(
        f"stepframe: {_label(plugin, infos)} and {_label(claim.owner, infos)} both provide "
        f"{claim.what}; {claim.owner!r} keeps it (registered first), {plugin!r} is not "
        f"used for it. Uninstall one of them, or disable one with "
        f"{DISABLE_ENV}={plugin}",
        PluginConflictWarning,
        stacklevel=4,
    )


# ---- version skew: a plugin built for another core -----------------------------------
# `packaging` reads requirements, markers and versions as pip does (PEP 508, PEP 440); it
# is imported only here, when a plugin distribution is found.


def core_requirement(requires: Iterable[str]) -> str | None:
    """The version specifier a distribution's ``Requires-Dist`` puts on stepframe-core.

    A requirement whose environment marker does not hold here is not counted, nor one that
    only applies with an extra (``; extra == "..."``).  Returns None when there is no such
    requirement or it has no version specifier.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    for text in requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # not ours to judge: pip refused or will refuse it
        if canonicalize_name(requirement.name) != CORE_DISTRIBUTION:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        return str(requirement.specifier) or None
    return None


def core_version_mismatch(specifier: str, installed: str) -> str | None:
    """The first clause of ``specifier`` that version ``installed`` breaks, if any.

    Versions compare as PEP 440 says (``0.3.0rc1`` comes before ``0.3``); a pre-release
    core is not refused for being one.  A clause or version that cannot be read is
    assumed to hold: the check warns only when it is sure.
    """
    from packaging.specifiers import InvalidSpecifier, Specifier
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(installed)
    except InvalidVersion:
        return None
    for clause in specifier.split(","):
        try:
            wanted = Specifier(clause.strip())
        except InvalidSpecifier:
            continue
        if not wanted.contains(version, prereleases=True):
            return str(wanted)
    return None


def _core_is_older(broken: str, installed: str) -> bool:
    """Whether the installed core is below the version the broken clause names."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(installed) < Version(broken.lstrip("=!~<>").removesuffix(".*"))
    except InvalidVersion:
        return False


def _warn_version_skew(dist: DistributionInfo, distribution: str, version: str) -> None:
    """Warn if a plugin distribution was built for another stepframe-core than this one."""
    from stepframe import __version__ as installed

    try:
        requires = dist.requires or ()
        # The first-party plugins pin this very core: seen without importing packaging,
        # which is most of what this check costs the CLI's start-up.
        if f"{CORE_DISTRIBUTION}=={installed}" in (text.replace(" ", "") for text in requires):
            return
        specifier = core_requirement(requires)
    except Exception:  # unreadable metadata is not worth failing the load over
        return
    broken = None if specifier is None else core_version_mismatch(specifier, installed)
    if broken is None:
        return
    if _core_is_older(broken, installed):
        fix = f"upgrade the core: pip install -U 'stepframe-core{specifier}'"
    else:  # the core is newer than the plugin was made for
        fix = f"install a {distribution} release made for stepframe-core {installed}"
    warnings.warn(
        f"stepframe: plugin distribution {distribution} {version} requires "
        f"stepframe-core{specifier}, but stepframe-core {installed} is installed; its "
        f"plugins are loaded anyway and may fail: {fix}",
        PluginVersionWarning,
        stacklevel=4,
    )


def _entry_point_candidates(
    env: Mapping[str, str],
) -> Iterable[tuple[str, str | None, str | None, str, Any]]:
    checked: set[str] = set()  # one version warning per distribution, not per entry point
    for entry_point in find_entry_points([ENTRY_POINT_GROUP]):
        dist = entry_point.dist
        distribution = dist.name if dist is not None else None
        version = dist.version if dist is not None else None
        if not plugin_is_wanted(entry_point.name, distribution, env):
            continue
        if (
            dist is not None
            and distribution is not None
            and distribution != CORE_DISTRIBUTION
            and distribution not in checked
        ):
            checked.add(distribution)
            _warn_version_skew(dist, distribution, version or "(unknown version)")
        try:
            plugin = entry_point.load()
        except Exception as error:  # any import-time failure: warn and go on
            _warn(
                entry_point.name,
                distribution,
                entry_point.value,
                f"import failed: {type(error).__name__}: {error}",
            )
            continue
        yield entry_point.name, distribution, version, entry_point.value, plugin


def _own_impls(caller: Any, plugin: object) -> list[Any]:
    return [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]


def load_plugins(
    *,
    entry_points: bool = True,
    extra: Sequence[tuple[str, object]] = (),
    env: Mapping[str, str] | None = None,
) -> Plugins:
    """Build a plugin manager.

    :param entry_points: discover plugins from the ``stepframe`` entry point group.
    :param extra: ``(name, plugin object)`` pairs to register as well; what tests use.
    :param env: the environment to read the allow and deny lists from.
    """
    env = os.environ if env is None else env
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)

    candidates: list[tuple[str, str | None, str | None, str, Any]] = []
    if entry_points:
        # The core's own parts first, whatever the order of sys.path: a third-party
        # plugin that claims the name of a core flavor is the one that gets skipped.
        found = list(_entry_point_candidates(env))
        candidates.extend(sorted(found, key=lambda c: c[1] != CORE_DISTRIBUTION))
    for name, plugin in extra:
        module = getattr(plugin, "__name__", type(plugin).__module__)
        candidates.append((name, None, None, str(module), plugin))

    infos: dict[str, PluginInfo] = {}
    for name, distribution, version, target, plugin in candidates:
        if manager.has_plugin(name):
            _warn(name, distribution, target, "another plugin already uses that name")
            continue
        try:
            manager.register(plugin, name=name)
        except pluggy.PluginValidationError as error:
            _warn(name, distribution, target, f"invalid hook implementation: {error}")
            continue
        unknown = [
            impl.function.__name__
            for caller in manager.get_hookcallers(plugin) or []
            if not caller.has_spec()
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin and not impl.opts.get("optionalhook")
        ]
        if unknown:
            manager.unregister(plugin)
            _warn(name, distribution, target, f"implements unknown hooks: {', '.join(unknown)}")
            continue
        hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or []))
        module_name = plugin.__name__ if isinstance(plugin, ModuleType) else target
        infos[name] = PluginInfo(name, distribution, version, module_name, hooks, ())

    # Each plugin registers its flavors and materializers in one go: if any part fails
    # (a hook raises, a flavor name is taken, a materializer is not one), the plugin is
    # left out entirely, never half registered.
    flavors = FlavorRegistry()
    materializers: list[Materializer] = []
    materializer_plugins: list[str] = []
    for plugin_name, info in list(infos.items()):
        plugin = manager.get_plugin(plugin_name)
        registered: list[str] = []
        mine: list[Materializer] = []

        def register_flavor(
            flavor: Flavor, _plugin: str = plugin_name, _out: list[str] = registered
        ) -> None:
            taken = flavors.add(flavor, _plugin)
            for claim in taken:
                _warn_claimed(claim, _plugin, infos)
            if not any(claim.what.endswith(f"flavor {flavor.name!r}") for claim in taken):
                _out.append(f"{flavor.kind.value}:{flavor.name}")

        def register_materializer(
            materializer: Materializer, _out: list[Materializer] = mine
        ) -> None:
            if not isinstance(materializer, Materializer):
                raise TypeError(f"{materializer!r} is not a stepframe Materializer")
            _out.append(materializer)

        hook = "register_flavors"
        try:
            for impl in _own_impls(manager.hook.register_flavors, plugin):
                impl.function(register=register_flavor)
            hook = "register_materializers"
            for impl in _own_impls(manager.hook.register_materializers, plugin):
                impl.function(register=register_materializer)
        except Exception as error:
            flavors.remove_plugin(plugin_name)
            manager.unregister(name=plugin_name)
            del infos[plugin_name]
            _warn(plugin_name, info.distribution, info.module, f"{hook} failed: {error}")
            continue
        materializers.extend(mine)
        if mine:
            materializer_plugins.append(plugin_name)
        infos[plugin_name] = attrs.evolve(info, flavors=tuple(registered))

    typed_hooks = Hooks(manager)
    typed_hooks.bind(flavors, {name: info.distribution for name, info in infos.items()})
    return Plugins(
        manager=manager,
        hooks=typed_hooks,
        flavors=flavors,
        materializers=tuple(materializers),
        infos=infos,
        materializer_plugins=tuple(materializer_plugins),
    )


_process_plugins: Plugins | None = None
# Plugins a running pipeline was given explicitly; the in-process operator and the
# entrypoint it calls must use the same ones, not the process-wide set.  A context
# variable, so that two pipelines run on two threads each see their own: the threads a
# run starts for its steps carry its context over (`run_in_this_context`).
_active: contextvars.ContextVar[tuple[Plugins, ...]] = contextvars.ContextVar(
    "stepframe_active_plugins", default=()
)


def get_plugins() -> Plugins:
    """The plugins in use: those of the running pipeline, else the process-wide ones."""
    global _process_plugins
    active = _active.get()
    if active:
        return active[-1]
    if _process_plugins is None:
        _process_plugins = load_plugins()
    return _process_plugins


@contextmanager
def activated(plugins: Plugins) -> Iterator[Plugins]:
    """Make ``plugins`` what `get_plugins` returns while the block runs, in this thread
    (and the threads started with its context, `run_in_this_context`)."""
    token = _active.set((*_active.get(), plugins))
    try:
        yield plugins
    finally:
        _active.reset(token)


def run_in_this_context(target: Callable[[], None]) -> Callable[[], None]:
    """``target`` made to run in a copy of the calling thread's context: a thread started
    with it sees the plugins `activated` here, as a new thread would not."""
    context = contextvars.copy_context()
    return lambda: context.run(target)


def reset_plugins(plugins: Plugins | None = None) -> None:
    """Replace (or forget) the process-wide plugins; for tests and embedding."""
    global _process_plugins
    _process_plugins = plugins
