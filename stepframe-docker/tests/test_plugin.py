"""The plugin's surface: cheap to load, its flavors, its pure helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stepframe import ImageRef, JobHandle, load_plugins
from stepframe_docker import _operator


def test_importing_the_plugin_does_not_import_docker() -> None:
    code = (
        "import sys, json\n"
        "import stepframe_docker.plugin, stepframe_docker\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('docker', 'requests', 'urllib3', 'cattrs'))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_flavors_are_registered_through_the_entry_point() -> None:
    plugins = load_plugins(env={"STEPFRAME_LOAD_PLUGINS": "docker"})
    info = plugins.infos["docker"]
    assert info.distribution == "stepframe-docker"
    assert set(info.flavors) == {
        "image_builder:docker",
        "container_registry:default",
        "step_operator:docker",
    }
    from stepframe import ComponentKind

    operator = plugins.flavors.get(ComponentKind.STEP_OPERATOR, "docker")
    assert operator is not None and operator.needs_image


def test_runs_by_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert _operator.image_reference(ImageRef("127.0.0.1:5000/ns/app:abc", digest)) == (
        f"127.0.0.1:5000/ns/app@{digest}"
    )
    assert _operator.image_reference(ImageRef("stepframe-local/app:abc")) == (
        "stepframe-local/app:abc"
    )


def test_log_timestamps_and_cursor() -> None:
    assert _operator._parse_timestamp("2026-11-22T03:49:54.123456789Z") == (1795319394, 123456789)
    assert _operator._parse_timestamp("2026-11-22T03:49:54.1Z") == (1795319394, 100000000)
    assert _operator._parse_timestamp("2026-11-22T03:49:54Z") == (1795319394, 0)
    assert _operator._parse_cursor(None) == ((0, 0), 0)
    assert _operator._parse_cursor("1795319394.000000007:2") == ((1795319394, 7), 2)


class _FakeContainer:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.since: list[object] = []

    def logs(self, **kwargs: object) -> bytes:
        self.since.append(kwargs.get("since"))
        return "".join(line + "\n" for line in self.lines).encode()


def test_log_cursor_returns_each_line_once() -> None:
    stamps = ["2026-11-22T03:49:54.000000001Z", "2026-11-22T03:49:54.000000001Z"]
    container = _FakeContainer([f"{stamps[0]} one", f"{stamps[1]} two"])
    lines, cursor = _operator._read_logs(container, None)  # type: ignore[arg-type]
    assert lines == ("one", "two")
    assert cursor == "1795319394.000000001:2"
    container.lines.append("2026-11-22T03:49:55.5Z three")
    lines, cursor = _operator._read_logs(container, cursor)  # type: ignore[arg-type]
    assert lines == ("three",)
    assert container.since[-1] == 1795319394
    lines, again = _operator._read_logs(container, cursor)  # type: ignore[arg-type]
    assert lines == () and again == cursor


def test_other_flavors_never_reach_the_plugin() -> None:
    """The core dispatches by flavor (hook contract, second edition): the plugin has no
    flavor checks of its own, and another flavor's job never gets to it."""
    from stepframe.exceptions import PluginError
    from stepframe.testing import make_plugins

    plugins = make_plugins(load=("docker",))
    handle = JobHandle(flavor="sagemaker", operator="x", job_id="1")
    with pytest.raises(PluginError, match="no installed plugin implements poll_step"):
        plugins.hooks.poll_step(handle, None, None)
    with pytest.raises(PluginError, match="no installed plugin implements cancel_step"):
        plugins.hooks.cancel_step(handle, None)
