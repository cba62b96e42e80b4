"""The ``estimate_cost`` hook (issue 13, ``stepframe runs show --price``) goes to the
plugin that registered the job's flavor only; a plugin without it gives no estimate, and a
wrong answer is a `PluginError` naming the plugin."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

import stepframe
from stepframe import ComponentKind, CostEstimate, Flavor, JobHandle, hookimpl
from stepframe.exceptions import PluginError


class Billed:
    """An operator flavor ``billed`` whose jobs cost a dollar per second in ``data``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Mapping[str, float]]] = []

    @hookimpl
    def register_flavors(self, register: Callable[[Flavor], None]) -> None:
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="billed"))

    @hookimpl
    def estimate_cost(
        self, handle: JobHandle, credentials: Any, prices: Mapping[str, float]
    ) -> Any:
        self.asked.append((handle.job_id, prices))
        if handle.job_id == "wrong":
            return 1.5
        return CostEstimate(float(handle.data["seconds"]), basis="a dollar a second")


class Free:
    """An operator flavor ``free`` whose plugin has no ``estimate_cost``."""

    @hookimpl
    def register_flavors(self, register: Callable[[Flavor], None]) -> None:
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="free"))


def _plugins(billed: Billed) -> Any:
    return stepframe.load_plugins(
        extra=[("billed-plugin", billed), ("free-plugin", Free())],
        env={"STEPFRAME_LOAD_PLUGINS": ""},
    )


def test_the_jobs_flavor_plugin_estimates_with_the_users_prices() -> None:
    billed = Billed()
    hooks = _plugins(billed).hooks
    job = JobHandle(flavor="billed", operator="op", job_id="j1", data={"seconds": 3})
    assert hooks.estimate_cost(job, None, {"x.large": 1.0}) == CostEstimate(
        3.0, basis="a dollar a second"
    )
    assert billed.asked == [("j1", {"x.large": 1.0})]


def test_a_plugin_without_the_hook_gives_no_estimate_and_no_other_plugin_is_asked() -> None:
    billed = Billed()
    hooks = _plugins(billed).hooks
    assert (
        hooks.estimate_cost(JobHandle(flavor="free", operator="op", job_id="j2"), None, {}) is None
    )
    assert billed.asked == []


def test_a_wrong_answer_names_the_plugin() -> None:
    hooks = _plugins(Billed()).hooks
    with pytest.raises(PluginError, match="billed-plugin"):
        hooks.estimate_cost(JobHandle(flavor="billed", operator="op", job_id="wrong"), None, {})
