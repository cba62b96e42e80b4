"""stepframe-policy: an example third-party stepframe plugin.

It wraps every step operator's ``submit_step`` to refuse instance types outside an
allow-list and to add cost-allocation tags to every job.  See README.md.
"""

from __future__ import annotations

from stepframe_policy.policy import (
    Policy,
    PolicyConfigError,
    PolicyViolation,
    current_policy,
    parse_policy,
)

__version__ = "0.1.0"

__all__ = [
    "Policy",
    "PolicyConfigError",
    "PolicyViolation",
    "__version__",
    "current_policy",
    "parse_policy",
]
