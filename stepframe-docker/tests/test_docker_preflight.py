"""The docker flavors' pre-flight (``check_step``): a missing Dockerfile, requirements or
extra file, or a malformed volume, user, memory limit or platform is reported for every
step before anything is built, all problems at once, instead of after the upstream steps
ran.  Nothing here needs a Docker engine: the checks never talk to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepframe import Component, ComponentKind, ConfigError
from stepframe.testing import make_plugins, stepframe_project  # noqa: F401 (a fixture)
from stepframe_docker._checks import builder_problems, operator_problems
from stepframe_docker._settings import DockerBuilderConfig, DockerSettings

PIPELINE = """
from pathlib import Path

from stepframe import pipeline, step


@step
def first() -> int:
    Path("first-ran").write_text("it ran")
    return 1


@step(operator="docker", settings={"docker": {
    "dockerfile": "missing.Dockerfile",
    "requirements_file": "requirements.txt",
    "volumes": ["data:/data"],
    "mem_limit": "lots",
}})
def train(x: int) -> int:
    return x


@pipeline
def trained():
    train(first())
"""

STACK = """
active_stack = "local-docker"

[image_builders.docker]
flavor = "docker"

[container_registries.registry]
flavor = "default"
uri = "127.0.0.1:5000"

[stacks.local-docker]
image_builder = "docker"
container_registry = "registry"
step_operators = ["docker"]
"""


def test_every_docker_problem_is_reported_before_anything_is_built(
    stepframe_project,  # noqa: F811 (the fixture, imported to be found)
    monkeypatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # no engine may be reached
    stepframe_project.write_config(STACK)
    (stepframe_project.root / "requirements.txt").write_text("attrs\n")
    pipe = stepframe_project.load(PIPELINE)
    plugins = make_plugins(load=("docker",))
    with pytest.raises(ConfigError) as caught:
        stepframe_project.run(pipe, plugins=plugins)
    message = str(caught.value)
    assert "the pre-flight check found 3 problems; nothing was run" in message
    assert "step 'train': settings.docker.dockerfile:" in message
    assert "missing.Dockerfile does not exist" in message
    assert "settings.docker.volumes: 'data:/data' is not /host/path:/container/path" in message
    assert "settings.docker.mem_limit 'lots' is not a size" in message
    assert "requirements_file" not in message  # it exists
    assert not (stepframe_project.root / "first-ran").exists()
    assert stepframe_project.runs() == []


def _step(tmp_path: Path, **docker: object):
    from stepframe import PlannedStep

    operator = Component(ComponentKind.STEP_OPERATOR, "docker", "docker")
    return PlannedStep(
        pipeline="p",
        step="s",
        operator=operator,
        settings=DockerSettings(**docker),  # type: ignore[arg-type]
        settings_by_flavor={"docker": dict(docker)},
        needs_image=True,
        code_root=str(tmp_path),
    )


def test_builder_checks(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    builder = Component(ComponentKind.IMAGE_BUILDER, "docker", "docker", DockerBuilderConfig())
    good = _step(tmp_path, dockerfile="Dockerfile", extra_files={"Dockerfile": "/etc/x"})
    assert builder_problems(good, builder) == []
    bad = _step(
        tmp_path,
        dockerignore=".nope",
        extra_files={"absent.txt": "relative/path"},
        platform="amd64",
    )
    problems = builder_problems(bad, builder)
    assert len(problems) == 4, problems
    assert any("dockerignore" in p and ".nope does not exist" in p for p in problems)
    assert any("absent.txt does not exist" in p for p in problems)
    assert any("destination 'relative/path' must be an absolute path" in p for p in problems)
    assert any("platform 'amd64' is not OS/ARCH" in p for p in problems)


def test_builder_defaults_count(tmp_path: Path) -> None:
    builder = Component(
        ComponentKind.IMAGE_BUILDER, "docker", "docker", DockerBuilderConfig(platform="arm64")
    )
    (problem,) = builder_problems(_step(tmp_path), builder)
    assert "platform 'arm64'" in problem


def test_operator_checks(tmp_path: Path) -> None:
    good = _step(tmp_path, volumes=["/a:/b:ro"], user="1000:1000", mem_limit="4g", cpus=1.5)
    assert operator_problems(good) == []
    bad = _step(tmp_path, volumes=["/a:/b:rx"], user="me me", cpus=0.0, gpus=-2, stop_timeout=-1)
    problems = operator_problems(bad)
    assert len(problems) == 5, problems
