"""The image runs exactly what the client runs, on a real engine.

The client here has a distribution ``stepframe-fake`` installed normally in a folder of
its own (put on ``sys.path``), from a checkout that has been edited since: the image must
get the installed bytes, and its parity check must refuse an image whose copy differs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stepframe import ImageRef
from stepframe_docker import BuildReport, ParityError

if TYPE_CHECKING:
    import docker

Build = Callable[..., tuple[ImageRef, BuildReport]]
NAME = "stepframe-fake"


def _install(site: Path, code: str, origin: str) -> None:
    """``stepframe-fake`` 1.0 in ``site``, as pip leaves a normal install."""
    package = site / "stepframe_fake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(code)
    info = site / "stepframe_fake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {NAME}\nVersion: 1.0\n")
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    (info / "direct_url.json").write_text(json.dumps({"url": origin, "dir_info": {}}))
    files = ["stepframe_fake/__init__.py", *(f"{info.name}/{n}" for n in ("METADATA", "WHEEL"))]
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in [*files, f"{info.name}/RECORD"]))


@pytest.fixture
def client_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    checkout = tmp_path / "checkout"
    (checkout / "stepframe_fake").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text(
        '[project]\nname = "stepframe-fake"\nversion = "1.0"\n'
    )
    (checkout / "stepframe_fake" / "__init__.py").write_text("VALUE = 'edited after install'\n")
    site = tmp_path / "client-site"
    _install(site, "VALUE = 'the client runs this'\n", checkout.as_uri())
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    monkeypatch.setenv("STEPFRAME_DOCKER_CACHE", str(tmp_path / "cache"))
    return site


def _run(engine: docker.DockerClient, image: str, *command: str) -> str:
    output = engine.containers.run(
        image, list(command), network_mode="host", remove=True, stdout=True, stderr=True
    )
    return bytes(output).decode()


SETTINGS: dict[str, Any] = {"stepframe_packages": [NAME]}


def test_the_image_gets_the_installed_bytes_not_the_checkouts(
    build: Build, code: Callable[..., Path], client_site: Path, engine: docker.DockerClient
) -> None:
    ref, report = build(code(), SETTINGS)
    assert report.action == "built"
    value = _run(
        engine, ref.uri, "python", "-c", "import stepframe_fake; print(stepframe_fake.VALUE)"
    )
    assert value.strip() == "the client runs this"


def test_a_parent_with_other_bytes_under_the_same_version_fails_parity(
    build: Build, code: Callable[..., Path], client_site: Path, base_image: str
) -> None:
    """pip keeps an installed distribution of the same version; a version check passes,
    the content hash does not."""
    root = code(
        Dockerfile=f"""\
        FROM {base_image}
        COPY parent-site/ /usr/lib/python3/dist-packages/
        """
    )
    _install(root / "parent-site", "VALUE = 'something else'\n", "file:///elsewhere")
    with pytest.raises(ParityError) as caught:
        build(root, {**SETTINGS, "dockerfile": "Dockerfile"})
    message = str(caught.value)
    assert f"{NAME} 1.0 has content sha256:" in message
    assert message.count("sha256:") == 2 and "on the client" in message
