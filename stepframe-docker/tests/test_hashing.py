"""The image tag: a hash of everything that goes into the image, and nothing else.

No engine here: planning is pure, given the parent image's id (which the builder asks the
engine for); everything else is real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stepframe import Component, ComponentKind, ConfigError, ImageRequest
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, _plan

REGISTRY = Component(
    ComponentKind.CONTAINER_REGISTRY, "reg", "default", ContainerRegistryConfig("127.0.0.1:5000/t")
)
BUILDER = Component(
    ComponentKind.IMAGE_BUILDER, "docker", "docker", DockerBuilderConfig(parent_image="base:1")
)


PARENT_IDS = {"base:1": "sha256:" + "1" * 64, "base:2": "sha256:" + "2" * 64}


@pytest.fixture
def parents() -> dict[str, str]:
    """The ids the engine would give the parent images."""
    return PARENT_IDS


def make_plan(request: ImageRequest, builder: Component = BUILDER) -> _plan.BuildPlan:
    settings = _plan.settings_for(request, builder)
    reference = _plan.parent_reference(request, settings)
    assert reference is not None
    return _plan.plan(request, builder, _plan.Parent(reference, PARENT_IDS[reference]))


@pytest.fixture
def code(tmp_path: Path) -> Path:
    root = tmp_path / "My Project"
    (root / "pkg").mkdir(parents=True)
    (root / "pipeline.py").write_text("print('hi')\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "requirements.txt").write_text("# pinned\nrequests==2.32.0\n")
    return root


def _tag(code: Path, **settings: Any) -> str:
    # No stepframe distributions: the checkout's are edited while tests run, and their
    # part of the tag is test_stepframe_goes_in_as_wheels_checked_by_content_hash's.
    settings.setdefault("stepframe_packages", [])
    request = ImageRequest(code_root=str(code), target_registry=REGISTRY, settings=settings)
    return make_plan(request).tag


def test_same_inputs_same_tag(parents: dict[str, str], code: Path) -> None:
    first = _tag(code)
    os.utime(code / "pipeline.py", (1, 1))
    (code / ".stepframe").mkdir()
    (code / ".stepframe" / "runs.db").write_text("state changes every run")
    (code / "pkg" / "__pycache__").mkdir()
    (code / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert _tag(code) == first


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"requirements": ["numpy==2.0"]}, id="requirements"),
        pytest.param({"requirements_file": "requirements.txt"}, id="requirements file"),
        pytest.param({"apt_packages": ["libgomp1"]}, id="apt packages"),
        pytest.param({"environment": {"A": "1"}}, id="environment"),
        pytest.param({"build_args": {"X": "1"}}, id="build args"),
        pytest.param({"parent_image": "base:2"}, id="parent image"),
        pytest.param({"platform": "linux/arm64"}, id="platform"),
    ],
)
def test_each_input_changes_the_tag(
    parents: dict[str, str], code: Path, change: dict[str, Any]
) -> None:
    assert _tag(code, **change) != _tag(code)


def test_settings_that_do_not_go_into_the_image_keep_the_tag(
    parents: dict[str, str], code: Path
) -> None:
    base = _tag(code)
    assert _tag(code, mem_limit="1g", cpus=2, gpus=1, network_mode="host") == base


def test_code_and_requirements_file_contents(parents: dict[str, str], code: Path) -> None:
    base = _tag(code, requirements_file="requirements.txt")
    (code / "requirements.txt").write_text("requests==2.32.1\n")
    changed_requirements = _tag(code, requirements_file="requirements.txt")
    assert changed_requirements != base
    (code / "pkg" / "model.py").write_text("x = 1\n")
    assert _tag(code, requirements_file="requirements.txt") != changed_requirements


def test_ignored_files_do_not_change_the_tag(parents: dict[str, str], code: Path) -> None:
    (code / ".dockerignore").write_text("scratch\n")
    base = _tag(code)
    (code / "scratch").mkdir()
    (code / "scratch" / "notes.txt").write_text("anything")
    assert _tag(code) == base


def test_repository_and_tag_shape(parents: dict[str, str], code: Path) -> None:
    settings: dict[str, Any] = {"stepframe_packages": []}
    request = ImageRequest(code_root=str(code), target_registry=REGISTRY, settings=settings)
    plan = make_plan(request)
    assert plan.repository == "127.0.0.1:5000/t/my-project"
    assert len(plan.tag) == _plan.TAG_LENGTH and int(plan.tag, 16) >= 0
    unregistered = make_plan(ImageRequest(code_root=str(code), settings=settings))
    assert unregistered.repository == "stepframe-local/my-project"
    assert unregistered.tag == plan.tag


def test_stepframe_goes_in_as_wheels_checked_by_content_hash(
    parents: dict[str, str], code: Path
) -> None:
    from stepframe_docker import _parity
    from stepframe_docker._dists import default_packages

    request = ImageRequest(code_root=str(code), target_registry=REGISTRY)
    the_plan = make_plan(request)
    # Which distributions go in (the builder only when a plugin requires it) is
    # test_dists.py's subject; here: the plan takes exactly those, each as a wheel whose
    # content hash the parity check in the image expects.
    assert {p.name for p in the_plan.packages} == set(default_packages())
    expected = json.loads(the_plan.expected)
    for package in the_plan.packages:
        assert package.wheel.name in the_plan.dockerfile
        assert package.content_hash == _parity.wheel_hash(package.wheel)
        assert expected["distributions"][package.name]["hash"] == package.content_hash
    # Third-party dependencies are pinned to the client's versions.
    from importlib.metadata import version

    assert f"attrs=={version('attrs')}".encode() in the_plan.constraints
    assert expected["pins"]["attrs"] == version("attrs")


def test_wrong_settings_name_the_key(parents: dict[str, str], code: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key.*parent_imag\b"):
        _tag(code, parent_imag="x")
    with pytest.raises(ConfigError, match="apt_packages"):
        _tag(code, apt_packages="libgomp1")
    with pytest.raises(ConfigError, match=r"requirements_file.*cannot read"):
        _tag(code, requirements_file="missing.txt")


def test_extra_files_go_in_and_count(parents: dict[str, str], code: Path) -> None:
    (code / "conf").mkdir()
    (code / "conf" / "app.toml").write_text("a = 1\n")
    settings = {"extra_files": {"conf": "/etc/app", "requirements.txt": "/opt/req.txt"}}
    request = ImageRequest(code_root=str(code), target_registry=REGISTRY, settings=settings)
    plan = make_plan(request)
    assert 'COPY ["extra/0/", "/etc/app"]' in plan.dockerfile
    assert 'COPY ["extra/1", "/opt/req.txt"]' in plan.dockerfile
    before = plan.tag
    (code / "conf" / "app.toml").write_text("a = 2\n")
    assert make_plan(request).tag != before
    with pytest.raises(ConfigError, match="does not exist"):
        _tag(code, extra_files={"missing": "/x"})
