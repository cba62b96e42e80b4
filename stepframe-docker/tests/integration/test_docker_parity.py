"""The image runs exactly what the client runs, on a real engine.

The client here has a distribution ``stepframe-fake`` installed normally in a folder of
its own (put on ``sys.path``), from a checkout that has been edited since: the image must
get the installed bytes, and its parity check must refuse an image whose copy differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stepframe import ImageRef
from stepframe_docker import BuildReport, ParityError

if TYPE_CHECKING:
    import docker

Build = Callable[..., tuple[ImageRef, BuildReport]]
NAME = "stepframe-fake"  # the conftest's fake_stepframe


def _run(engine: docker.DockerClient, image: str, *command: str) -> str:
    output = engine.containers.run(
        image, list(command), network_mode="host", remove=True, stdout=True, stderr=True
    )
    return bytes(output).decode()


def test_the_image_gets_the_installed_bytes_not_the_checkouts(
    build: Build,
    code: Callable[..., Path],
    fake_stepframe: dict[str, Any],
    engine: docker.DockerClient,
) -> None:
    ref, report = build(code(), fake_stepframe)
    assert report.action == "built"
    value = _run(
        engine, ref.uri, "python", "-c", "import stepframe_fake; print(stepframe_fake.VALUE)"
    )
    assert value.strip() == "the client runs this"


def test_a_parent_with_other_bytes_under_the_same_version_fails_parity(
    build: Build,
    code: Callable[..., Path],
    fake_stepframe: dict[str, Any],
    install_fake: Callable[[Path, str, str], None],
    base_image: str,
) -> None:
    """pip keeps an installed distribution of the same version; a version check passes,
    the content hash does not."""
    root = code(
        Dockerfile=f"""\
        FROM {base_image}
        COPY parent-site/ /usr/lib/python3/dist-packages/
        """
    )
    install_fake(root / "parent-site", "VALUE = 'other'\n", "file:///elsewhere")
    with pytest.raises(ParityError) as caught:
        build(root, {**fake_stepframe, "dockerfile": "Dockerfile"})
    message = str(caught.value)
    assert f"{NAME} 1.0 has content sha256:" in message
    assert message.count("sha256:") == 2 and "on the client" in message
