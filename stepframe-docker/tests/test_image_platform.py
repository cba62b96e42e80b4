"""The platform an image is built for: the step operator's (`ImageRequest.platform`,
SageMaker's ``linux/amd64``) over the builder's default, in the tag, and compared with
what the engine built.  No engine here (see integration/test_image_platform_engine.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stepframe import Component, ComponentKind, ConfigError, ImageRequest
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, _plan
from stepframe_docker._builder import image_platform, platform_matches

REGISTRY = Component(
    ComponentKind.CONTAINER_REGISTRY, "reg", "default", ContainerRegistryConfig("127.0.0.1:5000/t")
)
PARENT_ID = "sha256:" + "1" * 64


def _builder(**config: Any) -> Component:
    return Component(
        ComponentKind.IMAGE_BUILDER,
        "docker",
        "docker",
        DockerBuilderConfig(parent_image="base:1", **config),
    )


def _plan_of(request: ImageRequest, builder: Component) -> _plan.BuildPlan:
    settings = _plan.settings_for(request, builder)
    reference = _plan.parent_reference(request, settings)
    assert reference is not None
    return _plan.plan(request, builder, _plan.Parent(reference, PARENT_ID))


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text("def f():\n    return 1\n")
    return tmp_path


def _request(code: Path, operator_platform: str | None, **settings: Any) -> ImageRequest:
    settings.setdefault("stepframe_packages", [])  # the checkout's are edited meanwhile
    return ImageRequest(
        code_root=str(code),
        target_registry=REGISTRY,
        settings=settings,
        platform=operator_platform,
    )


def test_the_requested_platform_is_in_the_tag(code: Path) -> None:
    builder = _builder()
    amd64 = _plan_of(_request(code, "linux/amd64"), builder)
    arm64 = _plan_of(_request(code, "linux/arm64"), builder)
    assert (amd64.settings.platform, arm64.settings.platform) == ("linux/amd64", "linux/arm64")
    assert amd64.tag != arm64.tag
    # The same image whoever asked for the platform: the tag is of what goes in.
    assert _plan_of(_request(code, None), builder).tag == amd64.tag


def test_the_operators_platform_wins_over_the_builders_default(code: Path) -> None:
    # An Apple-silicon user's builder builds arm64 for local steps; SageMaker's still
    # get linux/amd64.
    builder = _builder(platform="linux/arm64")
    assert _plan.settings_for(_request(code, None), builder).platform == "linux/arm64"
    assert _plan.settings_for(_request(code, "linux/amd64"), builder).platform == "linux/amd64"


def test_a_step_setting_another_platform_than_its_operator_runs_is_refused(code: Path) -> None:
    request = _request(code, "linux/amd64", platform="linux/arm64")
    with pytest.raises(ConfigError) as raised:
        _plan.settings_for(request, _builder())
    assert str(raised.value) == (
        "settings docker.platform 'linux/arm64': this step's operator runs images on "
        "linux/amd64 only; remove the setting or set it to 'linux/amd64'"
    )
    agreeing = _request(code, "linux/amd64", platform="linux/amd64")
    assert _plan.settings_for(agreeing, _builder()).platform == "linux/amd64"


@pytest.mark.parametrize(
    ("inspected", "platform"),
    [
        ({"Os": "linux", "Architecture": "amd64"}, "linux/amd64"),
        ({"Os": "linux", "Architecture": "x86_64"}, "linux/amd64"),
        ({"Os": "linux", "Architecture": "arm64", "Variant": "v8"}, "linux/arm64/v8"),
        ({"Os": "linux", "Architecture": "aarch64"}, "linux/arm64"),
        ({}, "unknown/unknown"),
    ],
)
def test_an_images_platform_from_the_engines_answer(
    inspected: dict[str, str], platform: str
) -> None:
    assert image_platform(inspected) == platform


@pytest.mark.parametrize(
    ("built", "wanted", "runs"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/arm64/v8", "linux/arm64", True),  # a variant counts only when asked for
        ("linux/arm64/v8", "linux/aarch64", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm64/v8", "linux/amd64", False),
        ("linux/amd64", "linux/arm64", False),
        ("windows/amd64", "linux/amd64", False),
    ],
)
def test_which_built_platform_runs_where(built: str, wanted: str, runs: bool) -> None:
    assert platform_matches(built, wanted) is runs
