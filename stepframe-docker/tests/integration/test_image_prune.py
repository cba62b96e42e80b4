"""``stepframe image prune`` against a real engine: the newest N tags of a project stay."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from stepframe_docker._prune import command

if TYPE_CHECKING:
    import docker


def _tiny_image(engine: docker.DockerClient, base_image: str, label: str) -> str:
    """An image of its own (a label changes the id), built on the base; its id."""
    dockerfile = f"FROM {base_image}\nLABEL stepframe.test.prune={label}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    image_id = None
    for chunk in engine.api.build(fileobj=context, custom_context=True, rm=True, decode=True):
        aux = chunk.get("aux") or {}
        image_id = aux.get("ID", image_id)
    assert image_id is not None
    return str(image_id)


@pytest.fixture
def project(engine: docker.DockerClient, base_image: str) -> Iterator[dict[str, list[str]]]:
    """Four builds of one project (oldest first), plus tags that prune must not touch."""
    name = f"prune-{uuid.uuid4().hex[:8]}"
    made: dict[str, list[str]] = {"ours": [], "others": [], "name": [name]}
    for index in range(4):
        image_id = _tiny_image(engine, base_image, f"{name}-{index}")
        tag = uuid.uuid4().hex[:40].ljust(40, "0")
        engine.api.tag(image_id, f"stepframe-local/{name}", tag)
        made["ours"].append(f"stepframe-local/{name}:{tag}")
    from stepframe_docker._engine import inspect_image

    oldest_id = str(inspect_image(engine, made["ours"][0])["Id"])
    for other in (f"stepframe-local/{name}:latest", f"stepframe-local/other-{name}:{'a' * 40}"):
        repository, tag = other.rsplit(":", 1)
        engine.api.tag(oldest_id, repository, tag)
        made["others"].append(other)
    yield made
    for reference in made["ours"] + made["others"]:
        try:
            engine.api.remove_image(reference, force=True)
        except Exception:  # already pruned
            pass


def _tags(engine: docker.DockerClient) -> set[str]:
    return {tag for image in engine.api.images() for tag in image.get("RepoTags") or []}


def test_prune_keeps_the_newest_tags_of_the_project_only(
    engine: docker.DockerClient, project: dict[str, list[str]]
) -> None:
    name = project["name"][0]
    dry = CliRunner().invoke(command(), ["prune", "--name", name, "--keep", "2", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove 2 tag(s)" in dry.output
    assert set(project["ours"]) <= _tags(engine)

    result = CliRunner().invoke(command(), ["prune", "--name", name, "--keep", "2"])
    assert result.exit_code == 0, result.output
    left = _tags(engine)
    oldest, older, newer, newest = project["ours"]
    assert {newer, newest} <= left
    assert not {oldest, older} & left
    # Not a content tag, or another project's: untouched.
    assert set(project["others"]) <= left
    assert f"removed {oldest}" in result.output and "removed 2 tag(s)" in result.output


def test_a_tag_a_container_uses_is_kept_and_said(
    engine: docker.DockerClient, project: dict[str, list[str]]
) -> None:
    name = project["name"][0]
    newest = project["ours"][-1]
    container = engine.api.create_container(newest, command=["true"])
    try:
        result = CliRunner().invoke(command(), ["prune", "--name", name, "--keep", "0"])
    finally:
        engine.api.remove_container(container["Id"], force=True)
    assert result.exit_code == 0, result.output
    assert f"kept {newest}:" in result.output
    assert newest in _tags(engine)


def test_no_engine_is_one_line(tmp_path: object) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from stepframe_docker._prune import command; command()()",
            "prune",
            "--docker-host",
            f"unix://{tmp_path}/none.sock",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ") and "not running" in result.stderr
