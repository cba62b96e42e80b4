"""The policy: which instance types a job may ask for, and the tags every job carries.

It comes from a JSON file named by ``STEPFRAME_POLICY_FILE`` and from environment
variables, which win over the file:

- ``STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES``: comma-separated allow-list (set but empty:
  no step may ask for an instance type at all); unset means no restriction.
- ``STEPFRAME_POLICY_TAGS``: ``key=value`` pairs, comma-separated, added to every job.

The file holds the same, validated with cattrs so a typo is reported with its path::

    {"allowed_instance_types": ["ml.m5.large", "ml.g5.xlarge"],
     "tags": {"team": "forecasting", "cost-center": "4711"},
     "required_tags": ["team"]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stepframe import StepframeError

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "ALLOWED_ENV",
    "FILE_ENV",
    "TAGS_ENV",
    "Policy",
    "PolicyConfigError",
    "PolicyViolation",
    "current_policy",
    "parse_policy",
]

FILE_ENV = "STEPFRAME_POLICY_FILE"
ALLOWED_ENV = "STEPFRAME_POLICY_ALLOWED_INSTANCE_TYPES"
TAGS_ENV = "STEPFRAME_POLICY_TAGS"


class PolicyViolation(StepframeError):
    """A job asked for something the policy does not allow; it was not submitted."""


class PolicyConfigError(StepframeError):
    """The policy file or variables are malformed; the message gives each bad key's path."""


@attrs.frozen
class Policy:
    """What the policy enforces.

    :param allowed_instance_types: the instance types a job may ask for; None for any.
    :param tags: cost-allocation tags added to every job.
    :param required_tags: tag keys that must have a value; jobs are refused otherwise.
    """

    allowed_instance_types: frozenset[str] | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    required_tags: tuple[str, ...] = ()


def _converter() -> cattrs.Converter:
    import cattrs  # only when there is a policy file: plugin modules load cheaply

    converter = cattrs.Converter(forbid_extra_keys=True)

    def strict_str(value: Any, _: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")
        return value

    converter.register_structure_hook(str, strict_str)
    return converter


def parse_policy(data: Mapping[str, Any], where: str) -> Policy:
    """Validate policy data; `PolicyConfigError` lists every problem with its path."""
    import cattrs

    try:
        return _converter().structure(dict(data), Policy)
    except Exception as error:
        if isinstance(error, cattrs.BaseValidationError):
            problems = cattrs.transform_error(error, path=where)
        else:
            problems = [f"{error} @ {where}"]
        raise PolicyConfigError("invalid stepframe policy:\n  " + "\n  ".join(problems)) from None


def _pairs(text: str, variable: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise PolicyConfigError(f"{variable}: {item!r} is not key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def current_policy(env: Mapping[str, str] | None = None) -> Policy:
    """The policy now in force: the file, then the variables over it."""
    env = os.environ if env is None else env
    policy = Policy()
    path = env.get(FILE_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as stream:
                data = json.load(stream)
        except (OSError, ValueError) as error:
            raise PolicyConfigError(f"{FILE_ENV}={path}: cannot read it: {error}") from None
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{FILE_ENV}={path}: expected a JSON object")
        policy = parse_policy(data, path)
    if ALLOWED_ENV in env:
        allowed = frozenset(filter(None, (t.strip() for t in env[ALLOWED_ENV].split(","))))
        policy = attrs.evolve(policy, allowed_instance_types=allowed)
    if env.get(TAGS_ENV):
        policy = attrs.evolve(policy, tags={**policy.tags, **_pairs(env[TAGS_ENV], TAGS_ENV)})
    return policy
