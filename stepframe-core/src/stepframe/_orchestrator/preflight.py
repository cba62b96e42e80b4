"""The pre-flight: every step of a plan checked by its plugins before anything runs.

`preflight` calls the ``check_step`` hook for each step and each component the step
uses (its operator; with an image, the builder and the registry too), collects every
problem of every step, and raises one error listing them all.  ``run`` calls it right
after the plan is made, before the run is recorded or any image is built; ``run
--dry-run`` calls the very same function, so a dry run is a real pre-flight.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from stepframe._orchestrator.plan import Plan
from stepframe._pipeline.pipeline import PipelineSpec
from stepframe._plugins.manager import Plugins
from stepframe._stack import Stack
from stepframe._types import Component, ComponentKind, PlannedStep
from stepframe.exceptions import ConfigError, PluginError

__all__ = ["PreflightError", "Problem", "check_plan", "planned_steps", "preflight"]


class PreflightError(ConfigError):
    """The pre-flight found problems; nothing ran and nothing was built (exit status 2)."""


@attrs.frozen
class Problem:
    """One problem ``check_step`` reported.

    :param step: the step it is about.
    :param plugin: the name of the plugin that reported it.
    :param message: what is wrong and how to fix it.
    """

    step: str
    plugin: str
    message: str

    def line(self) -> str:
        """The message with the step's name in front, unless it already starts with it."""
        prefix = f"step {self.step!r}"
        if self.message.startswith(prefix):
            return self.message
        return f"{prefix}: {self.message}"


def planned_steps(
    spec: PipelineSpec, stack: Stack, plan: Plan, plugins: Plugins, code_root: Path
) -> dict[str, PlannedStep]:
    """What ``check_step`` sees of each step of ``plan``."""
    planned = {}
    for name in spec.steps:
        operator = plan.operators[name]
        flavor = plugins.flavors.get(ComponentKind.STEP_OPERATOR, operator.flavor)
        planned[name] = PlannedStep(
            pipeline=spec.name,
            step=name,
            operator=operator,
            settings=plan.settings[name],
            settings_by_flavor={k: dict(v) for k, v in plan.merged_settings[name].items()},
            needs_image=bool(flavor is not None and flavor.needs_image),
            code_root=str(code_root),
            stack=stack.name,
            artifact_store=stack.artifact_store,
            artifact_store_uri=stack.artifact_store_uri,
            image_builder=stack.image_builder,
            container_registry=stack.container_registry,
        )
    return planned


def _components(step: PlannedStep) -> list[Component]:
    """The components a step uses that ``check_step`` is asked about, operator first."""
    components = [step.operator]
    if step.needs_image:
        components += [c for c in (step.image_builder, step.container_registry) if c]
    return components


def check_plan(
    spec: PipelineSpec, stack: Stack, plan: Plan, plugins: Plugins, code_root: Path
) -> list[Problem]:
    """Every problem ``check_step`` finds in any step of ``plan``, in step order.

    :raises PluginError: a plugin raised in ``check_step`` or answered with something
        else than a list of strings; the message lists every such failure, each naming
        the plugin, its distribution and the step.
    """
    problems: list[Problem] = []
    failures: list[str] = []
    for name, step in planned_steps(spec, stack, plan, plugins, code_root).items():
        for component in _components(step):
            try:
                answers = plugins.hooks.check_step(step, component)
            except PluginError as error:
                failures.append(str(error))
                continue
            for plugin, messages in answers:
                problems.extend(Problem(name, plugin, message) for message in messages)
    if failures:
        lines = "\n  ".join(failures)
        raise PluginError(f"the pre-flight check could not finish, nothing was run:\n  {lines}")
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    """Each problem once: a policy asked about several components of a step may repeat
    itself."""
    return list(dict.fromkeys(problems))


def preflight(
    spec: PipelineSpec, stack: Stack, plan: Plan, plugins: Plugins, code_root: Path
) -> None:
    """Check every step of ``plan``; raise `PreflightError` listing all problems.

    :raises PreflightError: when any plugin found a problem (exit status 2).
    :raises PluginError: when a plugin failed inside ``check_step``.
    """
    problems = check_plan(spec, stack, plan, plugins, code_root)
    if problems:
        raise PreflightError(describe(problems))


def describe(problems: list[Problem]) -> str:
    """The pre-flight's verdict: how many problems, then one line per problem."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = "\n  ".join(problem.line() for problem in problems)
    return f"the pre-flight check found {count}; nothing was run:\n  {lines}"
