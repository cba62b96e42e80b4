"""Which stepframe distributions an image gets by default.

Each test sees only the distributions it fakes (``sys.path`` holds just their folder), so
what happens to be installed in the test's environment cannot decide the outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepframe_docker._dists import default_packages


def _fake_plugin(site: Path, name: str, requires: list[str]) -> None:
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 0.1.0"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text(f"[stepframe]\n{name} = {name.replace('-', '_')}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _fake_plugin(tmp_path, "stepframe-docker", ["docker>=7"])
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    return tmp_path


def test_the_builder_stays_out_when_nothing_requires_it(site: Path) -> None:
    _fake_plugin(site, "stepframe-alone", ["requests"])
    assert default_packages() == ["stepframe-alone", "stepframe-core"]


def test_the_builder_goes_in_when_a_plugin_requires_it(site: Path) -> None:
    _fake_plugin(site, "stepframe-needs-docker", ["stepframe-docker>=0.1.0", "requests"])
    # requests is not first-party: pip gets it from the index inside the image.
    assert default_packages() == ["stepframe-core", "stepframe-docker", "stepframe-needs-docker"]


def test_a_requirement_behind_an_extra_is_not_followed(site: Path) -> None:
    _fake_plugin(site, "stepframe-extra-docker", ['stepframe-docker; extra == "build"'])
    assert default_packages() == ["stepframe-core", "stepframe-extra-docker"]
