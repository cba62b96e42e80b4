"""The hook implementations, the module the ``policy`` entry point names.

One hook, wrapped around every operator's ``submit_step``: before the operator sees the
launch, the policy refuses an instance type outside its allow-list (nothing is
submitted, so nothing is paid for) and adds cost-allocation tags to the job.

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

from stepframe import Component, Credentials, JobHandle, Launch, hookimpl
from stepframe_policy.policy import ALLOWED_ENV, Policy, PolicyViolation, current_policy

__all__ = ["JOB_TAGS_ENV", "instance_type_of", "job_tags", "submit_step"]

# The variable the tags reach the job (and tag-aware operators) in.
JOB_TAGS_ENV = "STEPFRAME_TAGS"


def instance_type_of(launch: Launch, operator: Component) -> str | None:
    """The instance type a job asks for: its settings' ``instance_type``, else its
    operator's configured one; None for operators without one (local, inprocess)."""
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


def _check(policy: Policy, launch: Launch, operator: Component) -> None:
    where = f"step {launch.step!r} (operator {operator.name!r})"
    instance_type = instance_type_of(launch, operator)
    allowed = policy.allowed_instance_types
    if instance_type is not None and allowed is not None and instance_type not in allowed:
        choices = ", ".join(sorted(allowed)) or "none"
        raise PolicyViolation(
            f"{where} asks for instance type {instance_type!r}, which the cost policy does "
            f"not allow (allowed: {choices}); choose an allowed one in the step's settings, "
            f"or change the policy ({ALLOWED_ENV})"
        )
    missing = [key for key in policy.required_tags if not policy.tags.get(key)]
    if missing:
        raise PolicyViolation(
            f"{where}: the cost policy requires tag(s) {', '.join(missing)}; set them, e.g. "
            f"STEPFRAME_POLICY_TAGS='{missing[0]}=...'"
        )


@hookimpl(wrapper=True)
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> Generator[None, JobHandle | None, JobHandle | None]:
    policy = current_policy()
    _check(policy, launch, operator)
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
