"""Jobs whose submit answer was lost: recorded as possibly submitted, settled by ``find_job``.

A ``submit_step`` that raised without proving that nothing was created (a dropped
connection after the request was sent, a read timeout, a 5xx, a process killed mid-call)
may have started a paid job.  The ledger keeps such a row with the launch it was for, and
the operator's ``find_job`` hook decides later, by the launch's deterministic job name:
the job is adopted, proven absent, or stays visible as ``unknown``.  The step runner asks
right after the failed submit, ``run --resume`` and ``stepframe jobs list`` ask again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stepframe._history.database import UNKNOWN
from stepframe._types import (
    ComponentKind,
    Credentials,
    ImageRef,
    JobHandle,
    JobNotFound,
    JobState,
    Launch,
)
from stepframe._validation import structure_config, unstructure_config

if TYPE_CHECKING:
    from stepframe._history.database import JobRecord, RunHistory
    from stepframe._plugins.facade import Hooks
    from stepframe._plugins.flavors import FlavorRegistry
    from stepframe._types import Component

__all__ = ["launch_from_record", "launch_record", "settle"]

# Left out of the generic copy: the credentials, which never go to disk, and the fields
# `launch_record` writes as plain JSON itself.
_NOT_COPIED = ("store_credentials", "settings", "image")


def launch_record(launch: Launch) -> dict[str, Any]:
    """The launch as JSON data for the ledger row, without credentials."""
    data = attrs.asdict(launch, recurse=False, filter=lambda a, _v: a.name not in _NOT_COPIED)
    data["command"] = list(launch.command)
    data["environment"] = dict(launch.environment)
    data["image"] = None if launch.image is None else attrs.asdict(launch.image)
    settings = launch.settings
    data["settings"] = (
        unstructure_config(settings) if attrs.has(type(settings)) else dict(settings or {})
    )
    return data


def launch_from_record(data: Mapping[str, Any], flavor: str, flavors: FlavorRegistry) -> Launch:
    """A ledger row's launch again, its settings as the flavor's settings class when known."""
    fields = dict(data)
    image = fields.pop("image", None)
    settings: Any = fields.pop("settings", None) or {}
    known = flavors.get(ComponentKind.STEP_OPERATOR, flavor)
    if known is not None and known.settings_class is not None:
        settings = structure_config(settings, known.settings_class, f"{flavor} settings")
    return Launch(
        **{**fields, "command": tuple(fields.get("command", ()))},
        image=None if image is None else ImageRef(**image),
        settings=settings,
    )


def settle(
    history: RunHistory,
    hooks: Hooks,
    row: JobRecord,
    launch: Launch,
    operator: Component,
    credentials: Credentials | None,
) -> JobHandle | JobNotFound | None:
    """Ask the operator whether the job of ``row`` exists, and record the answer.

    :return: the adopted job's handle (the row now has it), `JobNotFound` (the row is
        failed, with the backend's reason as its note), or None: the operator could not
        tell, and the row is ``unknown`` so that ``stepframe jobs list --running`` keeps
        showing it.
    """
    try:
        answer = hooks.find_job(launch, operator, credentials)
    except Exception as error:  # the backend is out of reach: nothing is proven either way
        history.update_job_state(
            row.id, UNKNOWN, note=f"looking it up failed: {type(error).__name__}: {error}"
        )
        return None
    if isinstance(answer, JobHandle):
        history.record_job_submitted(row.id, answer)
        return answer
    if isinstance(answer, JobNotFound):
        reason = f": {answer.reason}" if answer.reason else ""
        history.update_job_state(
            row.id, JobState.FAILED, note=f"never created (the backend has no such job{reason})"
        )
        return answer
    history.update_job_state(
        row.id,
        UNKNOWN,
        note=f"the {row.flavor} operator cannot tell whether job {launch.job_name!r} exists; "
        "check the backend",
    )
    return None
