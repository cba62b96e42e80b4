"""The hook implementations, the module the ``policy`` entry point names.

Two hooks:

- ``check_step``, the pre-flight: before anything runs or is built, every step whose
  instance type is outside the allow-list (or that would go without a required tag) is
  reported, all of them at once, and the run exits with status 2.  The plugin registers
  no flavor, so the core asks it about every component of every step; it looks at step
  operators only.
- a wrapper around every operator's ``submit_step``: the same check again as the last
  line before a job is paid for (the policy file may have changed since the pre-flight),
  and cost-allocation tags added to the job.

pluggy does not let a wrapper hand other arguments to the implementations it wraps, so
the tags go into ``launch.environment``, the dict of variables the job is started with
(the core builds a new one for every launch, and operators copy it into the job): as
JSON under ``STEPFRAME_TAGS``.  An operator that supports tags on its jobs (SageMaker,
Kubernetes labels) can read them from there; the step itself sees them too.

Only `stepframe`'s public API is used, and nothing heavy is imported: loading this
module costs well under a millisecond.
"""

from __future__ import annotations

import json
from collections.abc import Generator, MutableMapping
from typing import Any

from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    JobHandle,
    Launch,
    PlannedStep,
    hookimpl,
)
from stepframe_policy.policy import ALLOWED_ENV, Policy, PolicyViolation, current_policy

__all__ = ["JOB_TAGS_ENV", "check_step", "instance_type_of", "job_tags", "problems", "submit_step"]

# The variable the tags reach the job (and tag-aware operators) in.
JOB_TAGS_ENV = "STEPFRAME_TAGS"


def instance_type_of(launch: Launch | PlannedStep, operator: Component) -> str | None:
    """The instance type a job asks for: its settings' ``instance_type``, else its
    operator's configured one; None for operators without one (local, inprocess).

    :param launch: the launch, or the planned step in the pre-flight (both carry the
        operator flavor's ``settings``).
    """
    for source in (launch.settings, operator.config):
        if isinstance(source, dict):
            value = source.get("instance_type")
        else:
            value = getattr(source, "instance_type", None)
        if isinstance(value, str) and value:
            return value
    return None


def job_tags(policy: Policy, launch: Launch, operator: Component) -> dict[str, str]:
    """The policy's tags plus where the job comes from, for cost reports by pipeline."""
    return {
        "stepframe:pipeline": launch.pipeline,
        "stepframe:step": launch.step,
        "stepframe:run-id": launch.run_id,
        "stepframe:operator": operator.name,
        **policy.tags,
    }


def problems(policy: Policy, launch: Launch | PlannedStep, operator: Component) -> list[str]:
    """What the policy refuses about a step's job, one line each (empty: allowed)."""
    found = []
    instance_type = instance_type_of(launch, operator)
    allowed = policy.allowed_instance_types
    if instance_type is not None and allowed is not None and instance_type not in allowed:
        choices = ", ".join(sorted(allowed)) or "none"
        found.append(
            f"operator {operator.name!r} asks for instance type {instance_type!r}, which the "
            f"cost policy does not allow (allowed: {choices}); choose an allowed one in the "
            f"step's settings, or change the policy ({ALLOWED_ENV})"
        )
    missing = [key for key in policy.required_tags if not policy.tags.get(key)]
    if missing:
        found.append(
            f"the cost policy requires tag(s) {', '.join(missing)}; set them, e.g. "
            f"STEPFRAME_POLICY_TAGS='{missing[0]}=...'"
        )
    return found


@hookimpl
def check_step(step: PlannedStep, component: Component) -> list[str]:
    """The pre-flight: refuse a step before anything runs (the run exits with status 2)."""
    if component.kind is not ComponentKind.STEP_OPERATOR:
        return []  # asked about the image builder and registry too: nothing to say
    return problems(current_policy(), step, component)


@hookimpl(wrapper=True)
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> Generator[None, JobHandle | None, JobHandle | None]:
    policy = current_policy()
    refused = problems(policy, launch, operator)
    if refused:  # the last line: the policy may have changed since the pre-flight
        raise PolicyViolation(f"step {launch.step!r}: " + "; ".join(refused))
    environment = launch.environment
    if not isinstance(environment, MutableMapping):
        raise PolicyViolation(
            f"step {launch.step!r}: cannot tag the job, its launch environment is read-only"
        )
    tags: dict[str, Any] = {}
    if JOB_TAGS_ENV in environment:  # tags the user set in the step's settings stay
        try:
            tags.update(json.loads(environment[JOB_TAGS_ENV]))
        except ValueError:
            pass
    tags.update(job_tags(policy, launch, operator))
    environment[JOB_TAGS_ENV] = json.dumps(tags, sort_keys=True)
    # The operator's own submit_step runs here; its handle (or None when no operator
    # answered for this flavor) goes back to the core unchanged.
    return (yield)
