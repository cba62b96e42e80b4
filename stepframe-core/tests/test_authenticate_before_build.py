"""Connectors are authenticated right after the pre-flight, before any image is built.

An expired token or a wrong secret is known as soon as the connector is asked; asking
only when a step is submitted reported it after a possibly minutes-long image build.  The
``gatekeeper`` connector below grants or refuses as its config says and writes each call
to a file; the builder and the operator write a file when they are reached.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from stepframe.exceptions import ConnectorError, UsageError

PLUGIN = """
from pathlib import Path

import attrs

from stepframe import (
    Component, ComponentKind, ConnectorError, Credentials, Flavor, ImageRef, hookimpl,
)


@attrs.frozen
class GatekeeperConfig:
    calls: str
    refuse: str = ""


@attrs.frozen
class ShelfConfig:
    uri: str


@hookimpl
def register_flavors(register):
    register(
        Flavor(kind=ComponentKind.CONNECTOR, name="gatekeeper", config_class=GatekeeperConfig,
               description="grants or refuses, as told")
    )
    register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="recording", description="records"))
    register(
        Flavor(kind=ComponentKind.CONTAINER_REGISTRY, name="shelf", config_class=ShelfConfig,
               description="a registry reached through a connector")
    )
    register(
        Flavor(kind=ComponentKind.STEP_OPERATOR, name="boxed", needs_image=True,
               description="local jobs in an image")
    )


@hookimpl
def authenticate(connector, resource):
    if connector.flavor != "gatekeeper":
        return None
    with open(connector.config.calls, "a") as calls:
        calls.write(f"{connector.name} {resource.kind}\\n")
    if connector.config.refuse:
        raise ConnectorError(connector.config.refuse)
    return Credentials(connector.name, resource, {"token": "granted"})


@hookimpl
def build_image(request, builder):
    if builder.flavor != "recording":
        return None
    with open(Path(request.code_root) / "built", "a") as built:
        built.write(f"{request.registry_credentials.values['token']}\\n")
    return ImageRef("registry.example.test/steps:1", "sha256:" + "0" * 64)


@hookimpl
def submit_step(launch, operator, credentials):
    if operator.flavor != "boxed":
        return None
    from stepframe._builtin import local

    with open(Path(launch.code_root) / "submitted", "a") as submitted:
        submitted.write(f"{launch.step} {credentials.values['token']}\\n")
    return local.submit_step(
        launch=attrs.evolve(launch, settings=None),
        operator=Component(ComponentKind.STEP_OPERATOR, operator.name, "local"),
        credentials=None,
    )
"""

STACK = """
active_stack = "boxed"

[connectors.ops]
flavor = "gatekeeper"
calls = "{calls}"
refuse = "{refuse}"

[connectors.reg]
flavor = "gatekeeper"
calls = "{calls}"

[image_builders.recording]
flavor = "recording"

[container_registries.local]
flavor = "shelf"
uri = "registry.example.test"
connector = "reg"

[step_operators.boxed]
flavor = "boxed"
connector = "ops"

[stacks.boxed]
image_builder = "recording"
container_registry = "local"
step_operators = ["boxed"]
"""

PIPELINE = """
from stepframe import pipeline, step


@step(operator="boxed")
def train() -> int:
    return 1


@step(operator="boxed")
def evaluate(model: int) -> int:
    return model + 1


@pipeline
def gated() -> None:
    evaluate(train())
"""

REFUSAL = (
    "connector 'ops' (access-token, user ada@contoso.com): the token expired 600 s ago; "
    "get a new one"
)


def test_a_refusing_connector_ends_the_run_before_anything_is_built(
    project, dist, site: Path, cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    distribution = dist("stepframe-gatekeeper")
    distribution.install({"gatekeeper": distribution.module(PLUGIN)})
    calls = project.root / "calls"
    (project.root / "stepframe.toml").write_text(STACK.format(calls=calls, refuse=REFUSAL))
    path = project.write(PIPELINE)

    # The test's own import path after the plugin's: the CLI runs the stepframe it does.
    python_path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    result = cli(
        "run",
        f"{path}:gated",
        env={"PYTHONPATH": python_path, "STEPFRAME_LOAD_PLUGINS": "gatekeeper"},
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"stepframe: error: {REFUSAL}"]
    assert not (project.root / "built").exists()  # the builder was never called
    assert not (project.root / "submitted").exists()
    assert not project.database_path.exists()  # no run recorded
    # The registry's connector is asked first (a step needs an image), then the operator's.
    assert calls.read_text().splitlines() == ["reg container_registry", "ops generic"]


def test_the_refusal_is_a_connector_error_and_a_usage_error(project, make_plugins, run) -> None:
    module = project.module(PLUGIN)
    calls = project.root / "calls"
    (project.root / "stepframe.toml").write_text(STACK.format(calls=calls, refuse=REFUSAL))
    pipeline = project.load(PIPELINE, "gated")

    with pytest.raises(ConnectorError) as refused:
        run(pipeline, plugins=make_plugins((module.__name__, module)))

    assert isinstance(refused.value, UsageError)  # exit status 2 on the command line
    assert str(refused.value) == REFUSAL
    assert not (project.root / "built").exists()
    assert not (project.root / "submitted").exists()


def test_each_connector_is_authenticated_once_for_the_whole_run(project, make_plugins, run) -> None:
    module = project.module(PLUGIN)
    calls = project.root / "calls"
    (project.root / "stepframe.toml").write_text(STACK.format(calls=calls, refuse=""))
    pipeline = project.load(PIPELINE, "gated")

    result = run(pipeline, plugins=make_plugins((module.__name__, module)))

    assert result.status == "succeeded", run.output
    assert result.output("evaluate") == 2
    # Two steps, two images, two submits: each connector asked once, before the builds.
    assert calls.read_text().splitlines() == ["reg container_registry", "ops generic"]
    assert (project.root / "built").read_text().splitlines() == ["granted", "granted"]
    assert sorted((project.root / "submitted").read_text().splitlines()) == [
        "evaluate granted",
        "train granted",
    ]
