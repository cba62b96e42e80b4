"""The operator that submitted a ledger row's job, and credentials to reach that job.

A recorded job is polled, cancelled and looked up with the credentials of the operator
that submitted it (the row's ``operator``), whatever operator its step names now: after a
change of stack (or of the step) between a run and its ``--resume``, the step's current
operator may authenticate somewhere else entirely.  ``run --resume``, ``stepframe jobs
list|stop|attach`` all come here, so there is one way to get credentials for a ledger row.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stepframe._types import Component, ComponentKind, Credentials, ResourceRequest
from stepframe.exceptions import ConfigError

if TYPE_CHECKING:
    from stepframe._config.stacks import Stack
    from stepframe._plugins.manager import Plugins

__all__ = ["JobOperator", "job_operator"]


@attrs.frozen
class JobOperator:
    """A job's own operator component and generic credentials through its connector.

    :param outside_stack: when the run's stack no longer has the operator, what to tell
        the user (it is then taken from the operators registered in ``stepframe.toml``).
    """

    component: Component
    credentials: Credentials | None
    outside_stack: str | None = None


def job_operator(
    name: str,
    flavor: str,
    *,
    job: str,
    plugins: Plugins,
    config: Path,
    stack: Stack | None = None,
) -> JobOperator:
    """The operator ``name`` (of ``flavor``) that submitted a job, and its credentials.

    :param job: the job as the user knows it ("sagemaker job X of step 'train'"), for
        the error that says the operator is gone.
    :param config: the project's ``stepframe.toml``, read only when ``stack`` lacks the
        operator (or no stack is given).
    :param stack: the run's stack: its operator of that name comes first.
    :raises ConfigError: the operator is registered nowhere any more, or is now of another
        flavor: nobody can reach the job with it.
    """
    from stepframe._stack import connector_credentials

    generic = ResourceRequest("generic")
    if stack is not None and name in stack.step_operators:
        component = stack.step_operators[name]
        _check_flavor(component, flavor, job)
        return JobOperator(
            component, connector_credentials(stack, component, generic, plugins.hooks)
        )
    from stepframe._config.stacks import find_component

    document = _read(config)
    try:
        component = find_component(
            document, ComponentKind.STEP_OPERATOR, name, plugins.flavors, "job operator"
        )
    except ConfigError:
        gone = f"which stack {stack.name!r} no longer has and " if stack is not None else ""
        raise ConfigError(
            f"{job} was submitted by step operator {name!r}, {gone}which is no longer "
            f"registered in {config}; register it again (`stepframe step-operator register "
            f"{name} --flavor {flavor} ...`) to follow or stop the job, or stop it on the "
            "backend yourself"
        ) from None
    _check_flavor(component, flavor, job)
    credentials = None
    if component.connector is not None:
        connector = (stack.connectors if stack is not None else {}).get(component.connector)
        if connector is None:
            connector = find_component(
                document,
                ComponentKind.CONNECTOR,
                component.connector,
                plugins.flavors,
                f"step_operators.{name}.connector",
            )
        credentials = plugins.hooks.authenticate(connector, generic)
    outside = None
    if stack is not None:
        outside = (
            f"{job} was submitted by step operator {name!r}, which stack {stack.name!r} no "
            f"longer has; reaching the job with {name!r} as registered in {config.name}"
        )
    return JobOperator(component, credentials, outside)


def _check_flavor(component: Component, flavor: str, job: str) -> None:
    if component.flavor != flavor:
        raise ConfigError(
            f"{job} was submitted by a {flavor} step operator named {component.name!r}, and "
            f"{component.name!r} is now a {component.flavor} operator, which cannot reach "
            f"it; register a {flavor} operator under that name again to follow or stop the "
            "job, or stop it on the backend yourself"
        )


def _read(config: Path) -> Mapping[str, Any]:
    if not config.is_file():
        return {}  # only the built-in operators exist
    from stepframe._config.toml_file import read_toml

    document: Mapping[str, Any] = read_toml(config)
    return document
