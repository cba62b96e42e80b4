"""The pre-flight (hook ``check_step``): every step checked by its plugins before anything
runs, all problems reported at once with exit status 2, and ``run --dry-run`` as the very
same check plus the plan (edges, operators, settings, cache).

The plugins are real distributions (dist-info on ``sys.path``) so that the CLI, in its own
process, loads them through their entry points as it would installed ones.
"""

from __future__ import annotations

import uuid

import attrs
import pytest

from stepframe import ComponentKind, Flavor, hookimpl
from stepframe._orchestrator.preflight import PreflightError
from stepframe.exceptions import PluginError

GATED_PLUGIN = """
import attrs
from stepframe import ComponentKind, Flavor, hookimpl


@attrs.frozen
class GatedSettings:
    size: int = 1


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.STEP_OPERATOR, name="gated", settings_class=GatedSettings))


@hookimpl
def check_step(step, component):
    if step.settings.size > 4:
        return [f"settings.gated.size is {step.settings.size}; the backend takes at most 4"]
    return []


@hookimpl
def submit_step(launch, operator, credentials):
    raise AssertionError("nothing may be submitted after a failed pre-flight")
"""

# A policy: it registers no flavor, so the core asks it about every step.
BUDGET_PLUGIN = """
from stepframe import ComponentKind, hookimpl


@hookimpl
def check_step(step, component):
    size = getattr(step.settings, "size", 0)
    if component.kind is ComponentKind.STEP_OPERATOR and size > 5:
        return [f"size {size} is over the team's budget of 5"]
    return None
"""

CRASHING_PLUGIN = """
from stepframe import hookimpl


@hookimpl
def check_step(step, component):
    if step.step == "big":
        raise KeyError("quota-table")
    return []
"""

SLOPPY_PLUGIN = """
from stepframe import hookimpl


@hookimpl
def check_step(step, component):
    return "everything is fine"
"""

PIPELINE = """
from pathlib import Path

from stepframe import pipeline, step


@step
def first() -> int:
    Path("first-ran").write_text("it ran")
    return 1


@step(operator="gated", settings={{"gated": {{"size": {big}}}}})
def big(x: int) -> int:
    return x


@step(operator="gated", settings={{"gated": {{"size": {bigger}}}}})
def bigger(x: int) -> int:
    return x


@pipeline
def sized():
    value = first()
    big(value)
    bigger(value)
"""


@pytest.fixture
def installed(dist, site):
    """``installed(name, source)``: a distribution ``stepframe-NAME`` with entry point NAME;
    returns the environment a CLI process needs to load it (with those before it)."""
    names: list[str] = []

    def install(name: str, source: str) -> dict[str, str]:
        distribution = dist(f"stepframe-{name}")
        distribution.install({name: distribution.module(source)})
        names.append(name)
        return {"PYTHONPATH": str(site), "STEPFRAME_LOAD_PLUGINS": ",".join(names)}

    return install


def _pipeline(project, big: int, bigger: int):
    return project.write(
        PIPELINE.format(big=big, bigger=bigger), name=f"sized_{uuid.uuid4().hex[:8]}"
    )


def test_every_problem_of_every_step_is_reported_before_anything_runs(
    project, cli, installed
) -> None:
    installed("gated", GATED_PLUGIN)
    env = installed("budget", BUDGET_PLUGIN)
    path = _pipeline(project, big=5, bigger=6)

    result = cli("run", str(path), env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "the pre-flight check found 3 problems; nothing was run" in result.stderr
    assert "step 'big': settings.gated.size is 5; the backend takes at most 4" in result.stderr
    assert "step 'bigger': settings.gated.size is 6; the backend takes at most 4" in result.stderr
    assert "step 'bigger': size 6 is over the team's budget of 5" in result.stderr
    # Nothing ran, not even the upstream step, and no run was recorded.
    assert not (project.root / "first-ran").exists()
    assert project.run_rows() == []


def test_a_dry_run_is_the_same_pre_flight(project, cli, installed) -> None:
    installed("gated", GATED_PLUGIN)
    env = installed("budget", BUDGET_PLUGIN)
    path = _pipeline(project, big=5, bigger=6)

    run = cli("run", str(path), env=env)
    dry = cli("run", str(path), "--dry-run", env=env)

    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert dry.stderr == run.stderr
    assert not (project.root / "first-ran").exists()
    assert not project.state_dir.exists()


def test_a_dry_run_prints_the_edges_settings_and_what_comes_from_the_cache(
    project, cli, installed
) -> None:
    env = installed("gated", GATED_PLUGIN)
    path = project.write(
        PIPELINE.format(big=2, bigger=3).replace('operator="gated"', 'operator="inprocess"'),
        name=f"sized_{uuid.uuid4().hex[:8]}",
    )
    dry = cli("run", str(path), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "pre-flight passed: pipeline 'sized', 3 steps" in dry.stderr
    blocks = dry.stdout.split("\n")
    assert blocks[:2] == [
        "first: operator inprocess (flavor inprocess)",
        "    cache: runs (no runs recorded yet)",
    ]
    assert "big: operator inprocess (flavor inprocess)" in blocks
    assert "    input x <- first.output" in blocks
    assert '    settings.gated = {"size": 2}' in blocks
    assert not project.state_dir.exists()  # a dry run records nothing

    assert cli("run", str(path), env=env).returncode == 0
    (project.root / "first-ran").unlink()
    dry = cli("run", str(path), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    cached = [line for line in dry.stdout.splitlines() if "cache: from the cache" in line]
    assert len(cached) == 3, dry.stdout
    assert "step first)" in cached[0] and "step bigger)" in cached[2]
    no_cache = cli("run", str(path), "--dry-run", "--no-cache", env=env)
    assert "    cache: runs: --no-cache" in no_cache.stdout.splitlines()
    assert not (project.root / "first-ran").exists()  # the dry runs ran nothing


def test_a_plugin_that_raises_in_the_pre_flight_stops_the_run_naming_itself(
    project, cli, installed
) -> None:
    installed("gated", GATED_PLUGIN)
    env = installed("crashy", CRASHING_PLUGIN)
    path = _pipeline(project, big=1, bigger=2)

    result = cli("run", str(path), env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "plugin 'crashy' (distribution stepframe-crashy) failed in check_step" in result.stderr
    assert "for step 'big'" in result.stderr and "KeyError: 'quota-table'" in result.stderr
    assert not (project.root / "first-ran").exists()
    assert project.run_rows() == []


def test_a_pre_flight_answer_of_the_wrong_type_is_a_plugin_error_naming_the_distribution(
    project, cli, installed
) -> None:
    installed("gated", GATED_PLUGIN)
    env = installed("sloppy", SLOPPY_PLUGIN)
    path = _pipeline(project, big=1, bigger=2)

    for args in ((), ("--dry-run",)):
        result = cli("run", str(path), *args, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "plugin 'sloppy' (distribution stepframe-sloppy) answered check_step" in (
            result.stderr
        )
        assert "with str, expected a list of strings (or None)" in result.stderr
    assert not (project.root / "first-ran").exists()


# ---- who is asked ------------------------------------------------------------------------


@attrs.frozen
class Seen:
    plugin: str
    step: str
    component: str


class Checker:
    """Registers ``flavors`` (step operators) and records every check_step call."""

    def __init__(self, name: str, flavors: tuple[str, ...], seen: list[Seen]) -> None:
        self.name = name
        self.flavors = flavors
        self.seen = seen

    @hookimpl
    def register_flavors(self, register):
        for flavor in self.flavors:
            register(Flavor(kind=ComponentKind.STEP_OPERATOR, name=flavor))

    @hookimpl
    def check_step(self, step, component):
        self.seen.append(Seen(self.name, step.step, component.name))
        return [f"{self.name} was asked"] if step.step == "refused" else None


TWO_OPERATORS = """
from stepframe import pipeline, step


@step(operator="mine")
def refused() -> int:
    return 1


@step
def plain() -> int:
    return 2


@pipeline
def two():
    refused()
    plain()
"""


def test_the_flavors_own_plugin_and_flavorless_plugins_are_asked(
    project, make_plugins, run
) -> None:
    seen: list[Seen] = []
    plugins = make_plugins(
        ("mine", Checker("mine", ("mine",), seen)),
        ("theirs", Checker("theirs", ("theirs",), seen)),
        ("policy", Checker("policy", (), seen)),
    )
    with pytest.raises(PreflightError) as caught:
        run(project.load(TWO_OPERATORS), plugins=plugins)

    assert str(caught.value).splitlines()[1:] == [
        "  step 'refused': mine was asked",
        "  step 'refused': policy was asked",
    ]
    assert sorted(seen, key=attrs.astuple) == [
        Seen("mine", "refused", "mine"),
        Seen("policy", "plain", "inprocess"),
        Seen("policy", "refused", "mine"),
    ]
    assert project.run_rows() == []


def test_a_crash_is_a_plugin_error_and_other_steps_are_still_checked(
    project, make_plugins, run
) -> None:
    class Crashes(Checker):
        @hookimpl
        def check_step(self, step, component):
            super().check_step(step, component)
            raise RuntimeError("no quota service")

    seen: list[Seen] = []
    plugins = make_plugins(("crashes", Crashes("crashes", (), seen)))
    with pytest.raises(PluginError) as caught:
        run(
            project.load(TWO_OPERATORS.replace('operator="mine"', 'operator="local"')),
            plugins=plugins,
        )
    message = str(caught.value)
    assert "plugin 'crashes' (registered directly) failed in check_step for step 'refused'" in (
        message
    )
    assert "for step 'plain'" in message  # every step is checked, every failure shown
    assert "RuntimeError: no quota service" in message
    assert project.run_rows() == []
