"""The docker image builder against a real engine and registry."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import stepframe
from stepframe import ImageRef
from stepframe_docker import (
    BuildReport,
    ImageBuildStepError,
    ParentImageError,
    RegistryError,
)

if TYPE_CHECKING:
    import docker


Build = Callable[..., tuple[ImageRef, BuildReport]]


def _inspect(engine: docker.DockerClient, reference: str) -> dict[str, Any]:
    api: Any = engine.api
    return dict(api.inspect_image(reference))


def _layers(engine: docker.DockerClient, reference: str) -> list[str]:
    return list(_inspect(engine, reference)["RootFS"]["Layers"])


def _events(engine: docker.DockerClient, since: int, until: int) -> list[dict[str, Any]]:
    return list(engine.events(since=since, until=until + 1, decode=True))


def _run(engine: docker.DockerClient, image: str, *command: str) -> str:
    output = engine.containers.run(
        image, list(command), network_mode="host", remove=True, stdout=True, stderr=True
    )
    return bytes(output).decode()


def test_build_push_and_pull_by_digest(
    build: Build, registry: str, code: Callable[..., Path], engine: docker.DockerClient
) -> None:
    ref, report = build(code())
    assert report.action == "built"
    assert ref.digest is not None and ref.digest.startswith("sha256:")
    assert ref.uri.startswith(registry + "/")
    by_digest = f"{ref.uri.rsplit(':', 1)[0]}@{ref.digest}"
    image_id = _inspect(engine, ref.uri)["Id"]
    # Forget the local copy entirely, then pull it back by digest.
    engine.images.remove(ref.uri, force=True)
    engine.api.pull(by_digest.split("@")[0], tag=ref.digest)
    assert _inspect(engine, by_digest)["Id"] == image_id
    # The image runs the client's stepframe and Python, as `python` on PATH.
    out = _run(
        engine,
        by_digest,
        "python",
        "-c",
        "import sys, stepframe; print(stepframe.__version__, '%d.%d' % sys.version_info[:2])",
    )
    import sys

    assert out.split() == [stepframe.__version__, "{}.{}".format(*sys.version_info[:2])]
    assert _run(engine, by_digest, "python", "-c", "import steps; print(steps.f())").strip() == "1"


def test_unchanged_rebuild_builds_and_pushes_nothing(
    build: Build,
    code: Callable[..., Path],
    engine: docker.DockerClient,
    fake_stepframe: dict[str, Any],
) -> None:
    root = code()
    first, _ = build(root, fake_stepframe)
    import stepframe_docker

    stepframe_docker.forget_builds()  # as if in a new process: ask the registry
    started = time.time_ns()
    second, report = build(root, fake_stepframe)
    ended = time.time_ns()
    assert second == first
    assert report.action == "in-registry"
    assert report.steps == 0 and report.pushed_bytes == 0
    # The engine saw no build, tag or push of this image (other users of the engine may
    # do what they like meanwhile: only this repository's events count).  The engine
    # filters by whole seconds; each event's timeNano says if it came within the build.
    repository = first.uri.rsplit(":", 1)[0]
    seen = [
        (event.get("Type"), event.get("Action"), event.get("id"))
        for event in _events(engine, started // 10**9, ended // 10**9)
        if repository in json.dumps(event) and started <= int(event["timeNano"]) <= ended
    ]
    assert not [e for e in seen if e[1] in ("push", "tag", "create", "commit", "pull")], seen
    # Within one process an identical request is answered without asking anyone.
    third, report = build(root, fake_stepframe)
    assert third == first and report.action == "in-process"


def test_code_only_change_rebuilds_and_pushes_one_layer(
    build: Build,
    code: Callable[..., Path],
    engine: docker.DockerClient,
    fake_stepframe: dict[str, Any],
) -> None:
    root = code()
    before, _ = build(root, fake_stepframe)
    # Unique content: an identical layer pushed by an earlier session would already exist.
    unique = uuid.uuid4().hex
    code(**{"steps.py": f"def f():\n    return {unique!r}\n", "pkg__util.py": "X = 1\n"})
    after, report = build(root, fake_stepframe)
    assert after.digest != before.digest
    assert report.action == "built"
    old, new = _layers(engine, before.uri), _layers(engine, after.uri)
    assert len(old) == len(new)
    assert old[:-1] == new[:-1] and old[-1] != new[-1]
    assert report.pushed_layers == 1, report
    assert report.existing_layers == len(new) - 1
    assert report.pushed_bytes < 64 * 1024, report


def test_requirements_change_rebuilds_from_the_requirements_layer(
    build: Build,
    code: Callable[..., Path],
    engine: docker.DockerClient,
    base_image: str,
    fake_stepframe: dict[str, Any],
) -> None:
    root = code()
    before, _ = build(root, fake_stepframe)
    # iniconfig: not among stepframe's dependencies, so not pinned to the client's version.
    after, report = build(root, {**fake_stepframe, "requirements": ["iniconfig==2.0.0"]})
    assert report.action == "built"
    old, new = _layers(engine, before.uri), _layers(engine, after.uri)
    # The parent's and the venv's layers are kept; the requirements folder (the client's
    # constraints, now with the user's list) changes and their install comes in, before
    # the stepframe layers, which are rebuilt on top.
    kept = len(_layers(engine, base_image)) + 1
    assert new[:kept] == old[:kept]
    assert len(new) == len(old) + 1
    assert new[kept] not in old and new[kept + 1] not in old
    version = "import importlib.metadata as m; print(m.version('iniconfig'))"
    assert _run(engine, after.uri, "python", "-c", version).strip() == "2.0.0"


def test_stepframe_dependencies_are_the_clients_versions(
    build: Build, code: Callable[..., Path], engine: docker.DockerClient
) -> None:
    from importlib.metadata import version

    ref, _ = build(code())
    script = (
        "import importlib.metadata as m; "
        "print(m.version('attrs'), m.version('cattrs'), m.version('click'))"
    )
    out = _run(engine, ref.uri, "python", "-c", script).split()
    assert out == [version("attrs"), version("cattrs"), version("click")]
    # The content hashes the parity check verified are on the image.
    labels = _inspect(engine, ref.uri)["Config"]["Labels"]
    hashes = json.loads(labels["org.stepframe.distributions"])
    assert set(hashes) >= {"stepframe-core"}
    assert all(value.startswith("sha256:") for value in hashes.values())


def test_a_requirement_against_the_clients_pin_says_so(
    build: Build, code: Callable[..., Path]
) -> None:
    from importlib.metadata import version

    other = "23.1.0" if version("attrs") != "23.1.0" else "23.2.0"
    with pytest.raises(ImageBuildStepError) as caught:
        build(code(), {"requirements": [f"attrs=={other}"]})
    message = str(caught.value)
    assert f"attrs=={version('attrs')}" in message
    assert "the client's versions" in message and "\x1b" not in message


def test_failing_build_step_shows_the_step_and_its_output(
    build: Build, code: Callable[..., Path], base_image: str
) -> None:
    root = code(
        Dockerfile=f"""\
        FROM {base_image}
        RUN echo preparing && printf '\\033[31mthe thing broke\\033[0m\\n' >&2 && exit 3
        """
    )
    with pytest.raises(ImageBuildStepError) as caught:
        build(root, {"dockerfile": "Dockerfile"})
    message = str(caught.value)
    assert "Step 2/2 : RUN echo preparing" in message
    assert "the thing broke" in message
    assert "returned a non-zero code: 3" in message
    assert "\x1b" not in message  # the test's output is no terminal: no colour codes
    assert "Traceback" not in message


def test_user_dockerfile_is_the_parent(
    build: Build, code: Callable[..., Path], engine: docker.DockerClient, base_image: str
) -> None:
    root = code(
        Dockerfile=f"""\
        FROM {base_image}
        COPY steps.py /opt/copied-by-user.py
        """
    )
    ref, _ = build(root, {"dockerfile": "Dockerfile"})
    assert "copied-by-user" in _run(engine, ref.uri, "ls", "/opt")


def test_registry_unreachable_is_named(build: Build, code: Callable[..., Path]) -> None:
    with pytest.raises(RegistryError, match=r"127\.0\.0\.1:5999.*unreachable"):
        build(code(), registry="127.0.0.1:5999/nowhere")


def test_parent_image_that_cannot_be_pulled(
    build: Build, code: Callable[..., Path], registry: str
) -> None:
    missing = f"{registry.split('/')[0]}/sftest-missing/parent:1"
    with pytest.raises(ParentImageError, match=r"sftest-missing/parent:1.*cannot be pulled"):
        build(code(), {"parent_image": missing})


def test_identical_concurrent_requests_build_once(build: Build, code: Callable[..., Path]) -> None:
    import threading

    root = code(**{"unique.py": f"ID = {uuid.uuid4().hex!r}\n"})
    results: list[ImageRef] = []
    threads = [threading.Thread(target=lambda: results.append(build(root)[0])) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(set(results)) == 1
    import stepframe_docker

    actions = sorted(r.action for r in stepframe_docker.build_reports()[-3:])
    assert actions == ["built", "in-process", "in-process"]


def test_the_build_reports_its_step_and_the_bytes_it_pushes(
    build: Build, code: Callable[..., Path], fake_stepframe: dict[str, Any]
) -> None:
    lines: list[str] = []
    # Unique content: a layer to push that the registry cannot have.
    root = code(**{"unique.py": f"ID = {uuid.uuid4().hex!r}\n" * 2000})
    build(root, fake_stepframe, progress=lines.append)
    steps = [line for line in lines if line.startswith("image: step ")]
    assert steps[0].startswith("image: step 1/") and " FROM " in steps[0]
    assert any("COPY" in line and "/app/" in line for line in steps)
    pushing = [line for line in lines if line.startswith("image: pushing ")]
    assert pushing and pushing[-1].endswith(" MB"), lines
    assert lines.index(pushing[0]) > lines.index(steps[-1])
