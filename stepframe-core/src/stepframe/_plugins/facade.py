"""A typed facade over the plugin hooks, the only way the core calls plugins.

pluggy does not check what implementations return.  Each method here names the hook,
passes keyword arguments, and turns "no plugin answered" or "a plugin answered with the
wrong type" into errors that name the flavor, the plugin and its distribution.

It also dispatches by flavor (hook contract, second edition): a selection hook for a
component or job of flavor F calls the implementation of the plugin that registered F,
plus every wrapper (``wrapper=True``) of any plugin, and nobody else; for a flavor nobody
registered, only the wrappers run and the hook has no answer.  ``open_artifact_store``
goes to the plugin whose store flavor declared the URI's scheme; a URI of an undeclared
scheme is offered, first answer wins, to the plugins that declared none (first-edition
stores that find their URIs by trial).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from stepframe._artifacts.store import ArtifactStore
from stepframe._types import (
    Component,
    ComponentKind,
    ConnectorReport,
    CostEstimate,
    Credentials,
    ImageRef,
    ImageRequest,
    JobHandle,
    JobNotFound,
    JobStatus,
    Launch,
    PlannedStep,
    ResourceRequest,
    StepResult,
)
from stepframe.exceptions import PluginError

if TYPE_CHECKING:
    import click

    from stepframe._plugins.flavors import FlavorRegistry

__all__ = ["Hooks"]

_T = TypeVar("_T")


def _wrong_type(hook: str, value: object, expected: str, who: str, plugin: str) -> PluginError:
    return PluginError(
        f"{plugin} answered {hook} for {who} with {type(value).__name__}, expected "
        f"{expected}; this is a bug in that plugin"
    )


def _nobody(hook: str, who: str) -> PluginError:
    return PluginError(
        f"no installed plugin implements {hook} for {who}; "
        "install the plugin that provides that flavor (see `stepframe plugins`)"
    )


def _is_wrapper(impl: Any) -> bool:
    return bool(getattr(impl, "wrapper", False) or getattr(impl, "hookwrapper", False))


class Hooks:
    """One typed method per hook, dispatching by flavor once `bind` told it who owns what.

    :param manager: the plugin manager holding the hook implementations.
    """

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._manager = manager
        self._hook = manager.hook
        self._flavors: FlavorRegistry | None = None
        self._distributions: dict[str, str | None] = {}

    def bind(self, flavors: FlavorRegistry, distributions: Mapping[str, str | None]) -> None:
        """Learn which plugin registered each flavor, and each plugin's distribution."""
        self._flavors = flavors
        self._distributions = dict(distributions)

    # ---- dispatch ------------------------------------------------------------------

    def describe_plugin(self, name: str | None) -> str:
        """``plugin 'aws' (distribution stepframe-aws)``, for messages."""
        if name is None:
            return "the plugin answering"
        distribution = self._distributions.get(name)
        where = f"distribution {distribution}" if distribution else "registered directly"
        return f"plugin {name!r} ({where})"

    def owner(self, kind: ComponentKind, flavor: str) -> str | None:
        """The name of the plugin that registered ``flavor`` of ``kind``, if any."""
        return None if self._flavors is None else self._flavors.provider(kind, flavor)

    def _caller(self, hook: str, owner: str | None) -> Any:
        """The hook caller for ``owner``'s implementation and every plugin's wrappers
        (only the wrappers when ``owner`` is None: nobody registered the flavor)."""
        caller = getattr(self._hook, hook)
        if self._flavors is None:  # not bound: every implementation, as in edition one
            return caller
        keep = {self._manager.get_plugin(owner)} if owner is not None else set()
        return self._without(hook, lambda impl: impl.plugin not in keep and not _is_wrapper(impl))

    def _without(self, hook: str, leave_out: Any) -> Any:
        caller = getattr(self._hook, hook)
        plugins = {impl.plugin for impl in caller.get_hookimpls() if leave_out(impl)}
        return self._manager.subset_hook_caller(hook, plugins)

    def _store_caller(self, uri: str) -> tuple[Any, str | None]:
        """The caller for ``open_artifact_store`` on ``uri``, and the plugin it goes to.

        A scheme an artifact store flavor declared goes to that flavor's plugin.  Any
        other URI is offered to every plugin but those whose flavors declared their
        schemes (they said what they open): a first-edition store finds its URIs by trial.
        """
        scheme = urllib.parse.urlsplit(uri).scheme
        if self._flavors is None:
            return self._hook.open_artifact_store, None
        owner = self._flavors.scheme_provider(scheme) if scheme else None
        if owner is not None:
            return self._caller("open_artifact_store", owner), owner
        declared = {self._manager.get_plugin(name) for name in self._flavors.scheme_owners()}
        return self._without("open_artifact_store", lambda impl: impl.plugin in declared), None

    def _checked(
        self, hook: str, value: object, expected: type[_T], who: str, owner: str | None
    ) -> _T:
        if not isinstance(value, expected):
            raise _wrong_type(hook, value, expected.__name__, who, self.describe_plugin(owner))
        return value

    # ---- selection hooks -----------------------------------------------------------

    def build_image(self, request: ImageRequest, builder: Component) -> ImageRef:
        who = f"image builder {builder.name!r} (flavor {builder.flavor!r})"
        owner = self.owner(ComponentKind.IMAGE_BUILDER, builder.flavor)
        value = self._caller("build_image", owner)(request=request, builder=builder)
        if value is None:
            raise _nobody("build_image", who)
        return self._checked("build_image", value, ImageRef, who, owner)

    def authenticate(self, connector: Component, resource: ResourceRequest) -> Credentials:
        who = f"connector {connector.name!r} (flavor {connector.flavor!r})"
        owner = self.owner(ComponentKind.CONNECTOR, connector.flavor)
        value = self._caller("authenticate", owner)(connector=connector, resource=resource)
        if value is None:
            raise _nobody("authenticate", who)
        return self._checked("authenticate", value, Credentials, who, owner)

    def prepare_repository(
        self, registry: Component, repository: str, credentials: Credentials | None
    ) -> None:
        """Let the registry's flavor create ``repository``; no answer means nothing to do."""
        owner = self.owner(ComponentKind.CONTAINER_REGISTRY, registry.flavor)
        self._caller("prepare_repository", owner)(
            registry=registry, repository=repository, credentials=credentials
        )

    def verify_connector(
        self, connector: Component, resources: list[ResourceRequest]
    ) -> ConnectorReport:
        who = f"connector {connector.name!r} (flavor {connector.flavor!r})"
        owner = self.owner(ComponentKind.CONNECTOR, connector.flavor)
        value = self._caller("verify_connector", owner)(connector=connector, resources=resources)
        if value is None:
            raise PluginError(
                f"no installed plugin can verify {who}; its plugin does not implement "
                "verify_connector"
            )
        return self._checked("verify_connector", value, ConnectorReport, who, owner)

    def submit_step(
        self, launch: Launch, operator: Component, credentials: Credentials | None
    ) -> JobHandle:
        who = f"step operator {operator.name!r} (flavor {operator.flavor!r})"
        owner = self.owner(ComponentKind.STEP_OPERATOR, operator.flavor)
        value = self._caller("submit_step", owner)(
            launch=launch, operator=operator, credentials=credentials
        )
        if value is None:
            raise _nobody("submit_step", who)
        return self._checked("submit_step", value, JobHandle, who, owner)

    def find_job(
        self, launch: Launch, operator: Component, credentials: Credentials | None
    ) -> JobHandle | JobNotFound | None:
        """The lost job's handle, `JobNotFound` when provably absent, None when nobody
        can tell (the operator does not implement ``find_job``, or cannot look)."""
        who = f"step operator {operator.name!r} (flavor {operator.flavor!r})"
        owner = self.owner(ComponentKind.STEP_OPERATOR, operator.flavor)
        value = self._caller("find_job", owner)(
            launch=launch, operator=operator, credentials=credentials
        )
        if value is None or isinstance(value, (JobHandle, JobNotFound)):
            return value
        raise _wrong_type(
            "find_job", value, "JobHandle, JobNotFound or None", who, self.describe_plugin(owner)
        )

    def poll_step(
        self, handle: JobHandle, credentials: Credentials | None, cursor: str | None
    ) -> JobStatus:
        who = f"job {handle.job_id!r} (flavor {handle.flavor!r})"
        owner = self.owner(ComponentKind.STEP_OPERATOR, handle.flavor)
        value = self._caller("poll_step", owner)(
            handle=handle, credentials=credentials, cursor=cursor
        )
        if value is None:
            raise _nobody("poll_step", who)
        return self._checked("poll_step", value, JobStatus, who, owner)

    def fetch_artifacts(self, handle: JobHandle, launch: Launch) -> StepResult | None:
        """The flavor's own result, or None to let the core read the result manifest."""
        owner = self.owner(ComponentKind.STEP_OPERATOR, handle.flavor)
        value = self._caller("fetch_artifacts", owner)(handle=handle, launch=launch)
        if value is None:
            return None
        return self._checked("fetch_artifacts", value, StepResult, f"job {handle.job_id!r}", owner)

    def cancel_step(self, handle: JobHandle, credentials: Credentials | None) -> bool:
        who = f"job {handle.job_id!r} (flavor {handle.flavor!r})"
        owner = self.owner(ComponentKind.STEP_OPERATOR, handle.flavor)
        value = self._caller("cancel_step", owner)(handle=handle, credentials=credentials)
        if value is None:
            raise _nobody("cancel_step", who)
        return bool(value)

    # ---- cost (issue 13: `stepframe runs show --price`) --------------------------

    def estimate_cost(
        self, handle: JobHandle, credentials: Credentials | None, prices: Mapping[str, float]
    ) -> CostEstimate | None:
        """The job flavor's plugin's estimate, or None when it gives none."""
        who = f"job {handle.job_id!r} (flavor {handle.flavor!r})"
        owner = self.owner(ComponentKind.STEP_OPERATOR, handle.flavor)
        value = self._caller("estimate_cost", owner)(
            handle=handle, credentials=credentials, prices=prices
        )
        if value is None:
            return None
        return self._checked("estimate_cost", value, CostEstimate, who, owner)

    def open_artifact_store(self, uri: str, credentials: Credentials | None) -> ArtifactStore:
        who = f"artifact URI {uri!r}"
        caller, owner = self._store_caller(uri)
        value = caller(uri=uri, credentials=credentials)
        if value is None:
            raise _nobody("open_artifact_store", who)
        if not isinstance(value, ArtifactStore):  # an abstract class: no type[_T] for it
            raise _wrong_type(
                "open_artifact_store", value, "ArtifactStore", who, self.describe_plugin(owner)
            )
        return value

    # ---- the pre-flight -------------------------------------------------------------

    def check_step_implementations(self, component: Component) -> list[tuple[str, Any]]:
        """``(plugin name, hookimpl)`` of ``check_step`` to call for ``component``: its
        flavor's plugin, and every plugin that registers no flavor (policies)."""
        owner = self.owner(component.kind, component.flavor)
        owners = set() if self._flavors is None else self._flavors.owners()
        flavorless = set(self._distributions) - owners
        chosen = []
        for impl in self._hook.check_step.get_hookimpls():
            if _is_wrapper(impl):
                continue
            if impl.plugin_name == owner or impl.plugin_name in flavorless:
                chosen.append((impl.plugin_name, impl))
        return chosen

    def check_step(self, step: PlannedStep, component: Component) -> list[tuple[str, list[str]]]:
        """Each chosen plugin's problems with ``step`` for ``component``.

        :raises PluginError: a plugin raised, or answered something else than a list of
            strings; the message names the plugin, its distribution and the step.
        """
        answers = []
        arguments: dict[str, object] = {"step": step, "component": component}
        for name, impl in self.check_step_implementations(component):
            try:
                value = impl.function(**{arg: arguments[arg] for arg in impl.argnames})
            except Exception as error:
                raise PluginError(
                    f"{self.describe_plugin(name)} failed in check_step for step "
                    f"{step.step!r} ({component.kind.value.replace('_', ' ')} "
                    f"{component.name!r}): {type(error).__name__}: {error}"
                ) from error
            if value is None:
                continue
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(item, str) for item in value
            ):
                raise _wrong_type(
                    "check_step",
                    value,
                    "a list of strings (or None)",
                    f"step {step.step!r}",
                    self.describe_plugin(name),
                )
            answers.append((name, list(value)))
        return answers

    # ---- command line (issue 12) ---------------------------------------------------

    def register_commands(self, cli: click.Group) -> None:
        """Let every plugin add its commands to ``cli``.  A plugin that raises is a
        `PluginLoadWarning` naming it; a name already taken stays with its first owner
        (`PluginConflictWarning`)."""
        import warnings

        from stepframe._plugins.manager import PluginConflictWarning, PluginLoadWarning

        for impl in self._hook.register_commands.get_hookimpls():
            plugin = self._manager.get_name(impl.plugin)
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as error:  # a plugin's bug must not take the CLI down
                cli.commands = before
                warnings.warn(
                    f"{self.describe_plugin(plugin)} could not add its commands: {error}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            for name, command in before.items():
                if cli.commands.get(name) is not command:
                    cli.commands[name] = command
                    warnings.warn(
                        f"{self.describe_plugin(plugin)} adds a command {name!r}, which "
                        "stepframe already has; the first one stays",
                        PluginConflictWarning,
                        stacklevel=2,
                    )
